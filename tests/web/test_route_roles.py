"""Every route, every role, and no login: the refusals (401/403) are what the routes declare.

The routes are walked from the app itself, so a new route is covered without touching this file.
For each route and method: without a login a non-public route answers 401 "Please sign in"; each
role the route does not declare gets 403 "Your role may not do this"; each declared role gets past
the role check (the route may still answer 404, 422 or a 403 of its own for another library's
data, but never the role refusal, never a CSRF refusal and never a server error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response

from consortia import db as dbmod
from consortia.accounts import service as accounts
from consortia.accounts.models import User
from consortia.accounts.roles import CLI, Role
from consortia.i18n import gettext
from consortia.web.app import create_app
from consortia.web.deps import PUBLIC, SESSION_COOKIE, UNSAFE_METHODS, allow, declared_roles

ROLE_REFUSAL = gettext("en", "Your role may not do this")
SIGN_IN = gettext("en", "Please sign in")
CSRF_REFUSAL = gettext("en", "Missing or wrong CSRF token")
MEMBER = "CN-TEST"  # the `member` fixture
# Least privileged first: a declared admin's request may change data (suspend, revoke), so it
# goes last.
ROLE_ORDER = [
    Role.member_system,
    Role.reader,
    Role.library_staff,
    Role.library_admin,
    Role.consortium_admin,
]
# Routes that are not FastAPI routes with a declaration: FastAPI's own docs and the static files.
FRAMEWORK_PUBLIC = {"/api/v1/openapi.json", "/api/docs", "/docs/oauth2-redirect", "/static"}
PARAM = re.compile(r"{(\w+)(?::\w+)?}")


@dataclass(frozen=True)
class Case:
    method: str
    template: str  # e.g. /api/v1/members/{code}
    path: str  # concrete, e.g. /api/v1/members/CN-TEST
    roles: frozenset[str]

    @property
    def public(self) -> bool:
        return PUBLIC in self.roles


def _value_for(name: str, annotation: Any) -> str:
    if annotation is int:
        return "1"
    if "code" in name or name in ("member", "lender", "borrower"):
        return MEMBER
    return "1" if name.endswith("id") else "test"


def route_cases(app: FastAPI) -> list[Case]:
    cases = []
    for ctx in iter_route_contexts(app.routes):
        if not isinstance(ctx.original_route, APIRoute):
            continue
        roles = declared_roles(ctx)
        assert roles is not None, f"{ctx.path} declares no roles"
        types = {p.name: p.field_info.annotation for p in ctx.dependant.path_params}
        template = PARAM.sub(lambda m: "{" + m.group(1) + "}", str(ctx.path))
        path = PARAM.sub(
            lambda m, types=types: _value_for(m.group(1), types.get(m.group(1))), str(ctx.path)
        )
        for method in sorted(ctx.methods or ()):
            cases.append(Case(method, template, path, roles))
    return cases


# Walked at collection: each route and method is its own test, with a fresh database.
CASES = route_cases(create_app(run_migrations=False))


def _credentials(role: Role | None) -> dict[str, str]:
    """Headers for one request as ``role``: a fresh web session (or token) every time, because
    a request may end it (sign-out) or revoke it (token routes)."""
    if role is None:
        return {}
    with dbmod.session_scope() as s:
        if role is Role.member_system:
            token = accounts.create_token(s, CLI, MEMBER, "route walk")
            return {"Authorization": f"Bearer {token.token}"}
        user = s.query(User).filter_by(role=role).one()
        opened = accounts.open_session(s, user)
        return {
            "Cookie": f"{SESSION_COOKIE}={opened.cookie_value}",
            # Writes with a cookie session carry the session's CSRF token, as the pages do.
            "X-CSRF-Token": opened.csrf_token,
        }


def _call(client: TestClient, case: Case, role: Role | None) -> Response:
    client.cookies.clear()
    headers = {"Accept": "application/json", "Accept-Language": "en", **_credentials(role)}
    return client.request(case.method, case.path, headers=headers, follow_redirects=False)


def _detail(response: Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("detail", "")) if isinstance(body, dict) else ""


def _who(role: Role | None) -> str:
    return role.value if role else "nobody"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.method} {c.template}" for c in CASES])
def test_route_refuses_exactly_the_undeclared(
    case: Case, client: TestClient, users: dict[Role, str]
) -> None:
    label = f"{case.method} {case.path} (declares {sorted(case.roles)})"

    r = _call(client, case, None)
    if case.public:
        assert r.status_code != 401, f"{label}: public route asked nobody to sign in"
        assert _detail(r) != ROLE_REFUSAL, f"{label}: public route refused nobody by role"
    else:
        assert r.status_code == 401, f"{label}: nobody got {r.status_code} {r.text[:200]}"
        assert _detail(r) == SIGN_IN, f"{label}: {r.text[:200]}"

    undeclared = [role for role in ROLE_ORDER if not case.public and role.value not in case.roles]
    declared = [role for role in ROLE_ORDER if case.public or role.value in case.roles]
    for role in undeclared:
        r = _call(client, case, role)
        assert r.status_code == 403, f"{label}: {role.value} got {r.status_code} {r.text[:200]}"
        assert _detail(r) == ROLE_REFUSAL, f"{label}: {role.value}: {r.text[:200]}"
    for role in declared:
        r = _call(client, case, role)
        assert r.status_code != 401, f"{label}: {role.value} got 401 {r.text[:200]}"
        assert r.status_code < 500, f"{label}: {role.value} got {r.status_code}"
        if r.status_code == 403:
            assert _detail(r) not in (ROLE_REFUSAL, CSRF_REFUSAL), (
                f"{label}: {role.value} (declared) was refused: {r.text[:200]}"
            )


# What the walk must find today; more is fine, fewer means the walk lost routes.
KNOWN = {
    ("GET", "/"): {PUBLIC},
    ("GET", "/members"): {PUBLIC},
    ("GET", "/members/{code}"): {PUBLIC},
    ("GET", "/login"): {PUBLIC},
    ("POST", "/login"): {PUBLIC},
    ("POST", "/logout"): {"consortium_admin", "library_admin", "library_staff", "reader"},
    ("GET", "/api/v1/me"): {r.value for r in Role},
    ("POST", "/api/v1/tokens"): {"consortium_admin", "library_admin"},
    ("GET", "/api/v1/tokens"): {"consortium_admin", "library_admin"},
    ("DELETE", "/api/v1/tokens/{token_id}"): {"consortium_admin", "library_admin"},
    ("GET", "/api/v1/members"): {PUBLIC},
    ("GET", "/api/v1/members/{code}"): {PUBLIC},
    ("POST", "/api/v1/members"): {"consortium_admin"},
    ("PATCH", "/api/v1/members/{code}"): {"consortium_admin", "library_admin"},
    ("POST", "/api/v1/members/{code}/suspend"): {"consortium_admin"},
    ("POST", "/api/v1/members/{code}/reinstate"): {"consortium_admin"},
}


def test_the_walk_sees_the_routes_known_today_with_their_roles() -> None:
    walked = {(c.method, c.template): set(c.roles) for c in CASES}
    missing = sorted(set(KNOWN) - set(walked))
    assert not missing, f"the walk lost routes: {missing}"
    changed = {k: (v, walked[k]) for k, v in KNOWN.items() if walked[k] != v}
    assert not changed, f"declarations changed (expected, now): {changed}"
    # Unsafe methods with a cookie session need CSRF: the walk must include some to prove it.
    assert any(c.method in UNSAFE_METHODS and not c.public for c in CASES)


def test_every_other_route_is_a_known_framework_route(app: FastAPI) -> None:
    others = {
        str(ctx.path)
        for ctx in iter_route_contexts(app.routes)
        if not isinstance(ctx.original_route, APIRoute)
    }
    assert others <= FRAMEWORK_PUBLIC, f"routes without a role declaration: {others}"


def test_framework_routes_are_public(client: TestClient) -> None:
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 200
    r = client.get("/static/site.css")
    assert r.status_code == 200 and "skip-link" in r.text


def test_create_app_refuses_a_route_without_a_declaration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import consortia.web.pages as pages

    sneaky = APIRouter()
    sneaky.include_router(pages.router)

    @sneaky.get("/sneaky")
    def undeclared() -> dict[str, str]:
        return {"secret": "data"}

    monkeypatch.setattr(pages, "router", sneaky)
    with pytest.raises(RuntimeError, match="/sneaky"):
        create_app(run_migrations=False)


def test_a_router_level_declaration_counts_and_is_enforced(
    monkeypatch: pytest.MonkeyPatch, db_url: str, users: dict[Role, str]
) -> None:
    import consortia.web.pages as pages

    staff_only = APIRouter(prefix="/staff-area", dependencies=[allow(Role.library_staff)])

    @staff_only.get("/queue")
    def queue() -> dict[str, str]:
        return {"queue": "empty"}

    combined = APIRouter()
    combined.include_router(pages.router)
    combined.include_router(staff_only)
    monkeypatch.setattr(pages, "router", combined)
    app = create_app(run_migrations=False)
    cases = [c for c in route_cases(app) if c.template == "/staff-area/queue"]
    assert [c.roles for c in cases] == [frozenset({"library_staff"})]
    with TestClient(app) as client:
        assert _call(client, cases[0], None).status_code == 401
        assert _call(client, cases[0], Role.reader).status_code == 403
        assert _call(client, cases[0], Role.library_staff).json() == {"queue": "empty"}
