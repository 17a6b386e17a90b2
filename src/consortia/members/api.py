"""REST routes for the member registry (/api/v1/members).

Anyone may read the registry (the home page lists the members); the consortium office admits,
changes and suspends members; a library's own admin keeps its contacts, endpoints and lending
policy current (the service enforces which fields).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal, Role
from consortia.members import service
from consortia.members.models import MemberStatus, MemberType, Sector
from consortia.members.schemas import MemberCreate, MemberOut, MemberPage, MemberUpdate, SuspendIn
from consortia.web.deps import allow, get_db, public

router = APIRouter(prefix="/api/v1/members", tags=["members"])

CodePath = Annotated[str, Path(max_length=16, description="Member code, e.g. CN-GZUCM.")]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown member code"},
    409: {"description": "Member code already exists, or the status does not allow it"},
    422: {"description": "A field is invalid; the answer names it"},
}


@router.get("", response_model=MemberPage)
def list_members(
    region: Annotated[str | None, Query(max_length=40)] = None,
    type: MemberType | None = None,
    sector: Sector | None = None,
    status: MemberStatus | None = None,
    is_centre: bool | None = None,
    centre: Annotated[str | None, Query(max_length=16, description="Code of a centre")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in code or names")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> MemberPage:
    """Members ordered by code, filtered and paged; suspended members are listed, marked so."""
    items, total = service.list_members(
        db,
        region=region,
        type=type,
        sector=sector,
        status=status,
        is_centre=is_centre,
        centre=centre,
        q=q,
        offset=offset,
        limit=limit,
    )
    return MemberPage(
        items=[MemberOut.of(m) for m in items], total=total, offset=offset, limit=limit
    )


@router.get("/{code:path}", response_model=MemberOut, responses={404: ERRORS[404]})
def get_member(
    code: CodePath, db: Session = Depends(get_db), principal: Principal | None = public()
) -> MemberOut:
    return MemberOut.of(service.get_member(db, code))


@router.post(
    "",
    response_model=MemberOut,
    status_code=201,
    responses={409: ERRORS[409], 422: ERRORS[422]},
)
def create_member(
    body: MemberCreate,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.consortium_admin),
) -> MemberOut:
    """Admit a member. An unknown region is created, named by its code until renamed."""
    member = service.create_member(db, principal, body)
    db.commit()
    return MemberOut.of(member)


@router.patch("/{code:path}", response_model=MemberOut, responses=ERRORS)
def update_member(
    code: CodePath,
    body: MemberUpdate,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.consortium_admin, Role.library_admin),
) -> MemberOut:
    """Change the given fields only; ``null`` clears an optional one. A library admin may change
    its own library's contacts, endpoints and lending policy."""
    member = service.update_member(db, principal, code, body)
    db.commit()
    return MemberOut.of(member)


@router.post("/{code:path}/suspend", response_model=MemberOut, responses=ERRORS)
def suspend_member(
    code: CodePath,
    body: Annotated[SuspendIn | None, Body()] = None,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.consortium_admin),
) -> MemberOut:
    """Suspend a member from today; it stays in the registry, marked suspended."""
    member = service.suspend_member(db, principal, code, body.reason if body else "")
    db.commit()
    return MemberOut.of(member)


@router.post("/{code:path}/reinstate", response_model=MemberOut, responses=ERRORS)
def reinstate_member(
    code: CodePath,
    body: Annotated[SuspendIn | None, Body()] = None,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.consortium_admin),
) -> MemberOut:
    """End a suspension; the member is active again from today."""
    member = service.reinstate_member(db, principal, code, body.reason if body else "")
    db.commit()
    return MemberOut.of(member)
