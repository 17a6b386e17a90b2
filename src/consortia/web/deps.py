"""Request dependencies: the database session, the principal, and role declarations.

Every route declares who may call it with ``allow(...)`` (or ``public()``); the app refuses to
start when a route declares nothing, and tests/web/test_route_roles.py walks every route with
every role.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from consortia.accounts import service as accounts
from consortia.accounts.roles import Principal, Role
from consortia.db import session_factory
from consortia.errors import Forbidden, Unauthorized
from consortia.i18n import negotiate, normalize_language
from consortia.settings import get_settings

SESSION_COOKIE = "consortia_session"
CSRF_COOKIE = "consortia_csrf"
LANG_COOKIE = "consortia_lang"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROLES_ATTR = "__consortia_roles__"
PUBLIC = "public"


async def get_db() -> AsyncIterator[Session]:
    # Opening a session does no I/O, and closing one hands its connection back to the pool: done
    # here on the event loop rather than in two trips through the thread pool (~0.1 ms a
    # request). The routes themselves use it in the thread pool, one thread at a time.
    session = session_factory()()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


_P = ParamSpec("_P")
_T = TypeVar("_T")
# One lane per event loop (a limiter belongs to the loop it was made on; tests run several).
_search_lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


async def in_search_lane(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run ``fn`` (a search: the API, SRU, the results page) in a worker thread, at most
    ``settings.search_threads`` of them at once in this process; the rest wait their turn in
    arrival order, so that under load a long search is not stretched by every other one
    running beside it (bench/RESULTS.md, search, evening)."""
    loop = asyncio.get_running_loop()
    lane = _search_lanes.get(loop)
    if lane is None:
        lane = _search_lanes[loop] = anyio.CapacityLimiter(get_settings().search_threads)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=lane)


def request_language(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if lang:
        return normalize_language(lang)
    return negotiate(request.headers.get("accept-language"))


async def _csrf_ok(request: Request, expected: str) -> bool:
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent, expected)


async def resolve_principal(request: Request, db: Session) -> Principal | None:
    """Bearer token (member systems) or session cookie (people); cached on the request."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal: Principal | None = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        principal = accounts.resolve_token(db, auth[7:].strip())
        if principal is None:
            raise Unauthorized("Invalid or revoked API token")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            resolved = accounts.resolve_session(db, cookie)
            if resolved is not None:
                principal = resolved.principal
                request.state.csrf_token = resolved.csrf_token
                request.state.user = resolved.user
                if request.method in UNSAFE_METHODS and not await _csrf_ok(
                    request, resolved.csrf_token
                ):
                    raise Forbidden("Missing or wrong CSRF token")
    request.state.principal = principal
    return principal


def _dependency(allowed: frozenset[str]) -> Callable[..., Any]:
    async def dependency(request: Request, db: Session = Depends(get_db)) -> Principal | None:
        principal = await resolve_principal(request, db)
        if PUBLIC in allowed:
            return principal
        if principal is None:
            raise Unauthorized("Please sign in")
        if principal.role is None or principal.role.value not in allowed:
            raise Forbidden("Your role may not do this")
        return principal

    setattr(dependency, ROLES_ATTR, allowed)
    return dependency


def allow(*roles: Role) -> Any:
    """Declare the roles that may call a route; returns the principal."""
    if not roles:
        raise ValueError("allow() needs at least one role; use public() for open routes")
    return Depends(_dependency(frozenset(r.value for r in roles)))


def public() -> Any:
    """Declare a route open to everyone; returns the principal if one is signed in."""
    return Depends(_dependency(frozenset({PUBLIC})))


def declared_roles(route: Any) -> frozenset[str] | None:
    """The roles a route declared, found among its dependencies (None when it declared none)."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, ROLES_ATTR, None)
        if roles is not None:
            return frozenset(roles)
        stack.extend(dep.dependencies)
    return None
