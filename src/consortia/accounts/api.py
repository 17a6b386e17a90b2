"""Sign-in and sign-out, who am I, API tokens for member systems."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts import service
from consortia.accounts.models import ApiToken
from consortia.accounts.roles import STAFF_ROLES, Principal, Role
from consortia.errors import DomainError, Forbidden, NotFound
from consortia.members.models import Member
from consortia.settings import get_settings
from consortia.web.deps import CSRF_COOKIE, SESSION_COOKIE, allow, get_db, public

router = APIRouter()
PEOPLE = (*STAFF_ROLES, Role.reader)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _safe_next(value: str | None) -> str:
    # Only same-site paths: never redirect a reader to another host after sign-in.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


@router.get("/login", include_in_schema=False)
def login_page(request: Request, principal: Principal | None = public()) -> Response:
    from consortia.web.templating import render

    return render(request, "login.html", {"next": request.query_params.get("next", "/")})


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=80)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> Response:
    from consortia.web.templating import render

    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        raise Forbidden("Missing or wrong CSRF token")
    try:
        user = service.authenticate(db, username, password, _client_address(request))
    except DomainError as exc:
        db.commit()  # keep the recorded failure: it is what throttles guessing
        return render(
            request,
            "login.html",
            {"error": exc, "next": next, "username": username},
            status=exc.status,
        )
    opened = service.open_session(db, user)
    db.commit()
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.cookie_value,
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
        max_age=get_settings().session_hours * 3600,
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout(
    request: Request, db: Session = Depends(get_db), principal: Principal = allow(*PEOPLE)
) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        service.close_session(db, cookie)
        db.commit()
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


class Me(BaseModel):
    kind: str
    label: str
    role: str | None
    member: str | None


@router.get("/api/v1/me", response_model=Me, tags=["accounts"])
def me(principal: Principal = allow(*Role)) -> Me:
    return Me(
        kind=principal.kind,
        label=principal.label,
        role=principal.role.value if principal.role else None,
        member=principal.member_code,
    )


class TokenIn(BaseModel):
    member: str
    name: str = ""


class TokenCreated(BaseModel):
    id: int
    member: str
    token: str


class TokenOut(BaseModel):
    id: int
    member: str
    name: str
    prefix: str
    revoked: bool


def _check_member_scope(principal: Principal, member_code: str) -> None:
    if principal.role is Role.library_admin and principal.member_code != member_code:
        raise Forbidden("You may manage only your own library's tokens")


@router.post("/api/v1/tokens", response_model=TokenCreated, status_code=201, tags=["accounts"])
def create_token(
    body: TokenIn,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.consortium_admin, Role.library_admin),
) -> TokenCreated:
    """Create an API token for a member system; the secret is shown in this answer only."""
    _check_member_scope(principal, body.member)
    new = service.create_token(db, principal, body.member, body.name)
    db.commit()
    return TokenCreated(id=new.id, member=new.member, token=new.token)


@router.get("/api/v1/tokens", response_model=list[TokenOut], tags=["accounts"])
def list_tokens(
    member: str | None = None,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.consortium_admin, Role.library_admin),
) -> list[TokenOut]:
    if principal.role is Role.library_admin:
        member = principal.member_code
    stmt = select(ApiToken, Member.code).join(Member, Member.id == ApiToken.member_id)
    if member:
        stmt = stmt.where(Member.code == member)
    return [
        TokenOut(
            id=t.id, member=code, name=t.name, prefix=t.prefix, revoked=t.revoked_at is not None
        )
        for t, code in db.execute(stmt.order_by(ApiToken.id))
    ]


@router.delete("/api/v1/tokens/{token_id}", status_code=204, tags=["accounts"])
def revoke_token(
    token_id: int,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.consortium_admin, Role.library_admin),
) -> Response:
    tok = db.get(ApiToken, token_id)
    if tok is None or not principal.may_act_for(tok.member_id):
        raise NotFound("Unknown token: {id}", field="token_id", id=token_id)
    service.revoke_token(db, principal, token_id)
    db.commit()
    return Response(status_code=204)
