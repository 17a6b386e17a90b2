"""The FastAPI application: routers of every domain, error handling, start-up migration."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consortia import __version__
from consortia.db import get_engine, migrate
from consortia.errors import DomainError, RowErrors
from consortia.i18n import gettext
from consortia.web.deps import CSRF_COOKIE, LANG_COOKIE, declared_roles, request_language

STATIC_DIR = Path(__file__).parent / "static"


def wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/sru", "/iso18626", "/oai", "/openurl")):
        return False
    return "text/html" in request.headers.get("accept", "")


def _error_response(
    request: Request, status: int, code: str, message: str, extra: dict[str, object] | None = None
) -> Response:
    if wants_html(request):
        from consortia.web.templating import render

        template = "login.html" if status == 401 else "error.html"
        context: dict[str, object] = {"status": status, "message": message}
        if status == 401 and request.method == "GET":
            # Back to the page that asked for sign-in once signed in.
            query = f"?{request.url.query}" if request.url.query else ""
            context["next"] = request.url.path + query
        return render(request, template, context, status=status)
    body: dict[str, object] = {"error": code, "detail": message}
    body.update(extra or {})
    return JSONResponse(body, status_code=status)


class CookiesAndHeaders:
    """The CSRF and language cookies and the security headers on every answer.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs the
    app in another task and streams the body through a memory channel, about a millisecond a
    request (measured on the search API).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The dict Request.state writes to, so a page can hand its new CSRF cookie over.
        state: dict[str, Any] = scope.setdefault("state", {})
        request = HTTPConnection(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if CSRF_COOKIE not in request.cookies:
                    value = state.get("new_csrf_cookie") or secrets.token_urlsafe(32)
                    _set_cookie(headers, CSRF_COOKIE, value, httponly=True, samesite="strict")
                lang = request.query_params.get("lang")
                if lang in ("zh-CN", "en"):
                    _set_cookie(headers, LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400)
                for name, value in _SECURITY_HEADERS:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


_SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
)


def _set_cookie(headers: MutableHeaders, name: str, value: str, **options: Any) -> None:
    # Response.set_cookie's formatting, onto headers that are already on their way.
    carrier = Response()
    carrier.set_cookie(name, value, **options)
    for key, raw in carrier.raw_headers:
        if key == b"set-cookie":
            headers.append("set-cookie", raw.decode("latin-1"))


def create_app(*, run_migrations: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            migrate(get_engine())
        yield

    app = FastAPI(
        title="Consortia",
        version=__version__,
        description="Union catalogue, resource sharing, one card and statistics for a library "
        "consortium. 图书馆联盟：联合目录、资源共享、一卡通与服务统计。",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        lang = request_language(request)
        message = exc.render(lambda m: gettext(lang, m))
        extra: dict[str, object] = {}
        if exc.field:
            extra["field"] = exc.field
        if isinstance(exc, RowErrors):
            extra["problems"] = exc.problems
        return _error_response(request, exc.status, exc.code, message, extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        lang = request_language(request)
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            problems.append({"field": ".".join(loc), "message": err.get("msg", "")})
        fields = ", ".join(p["field"] for p in problems if p["field"])
        message = gettext(lang, "Invalid field: {fields}").format(fields=fields or "?")
        return _error_response(request, 422, "invalid", message, {"problems": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        lang = request_language(request)
        message = gettext(lang, str(exc.detail)) if exc.detail else ""
        return _error_response(request, exc.status_code, "http_error", message)

    app.add_middleware(CookiesAndHeaders)

    from consortia.accounts.api import router as accounts_router
    from consortia.catalog.api import router as catalog_router
    from consortia.catalog.pages import router as catalog_pages_router
    from consortia.ill.api import router as ill_router
    from consortia.ill.delivery_api import router as delivery_router
    from consortia.ill.iso18626_api import router as iso18626_router
    from consortia.ill.openurl import router as openurl_router
    from consortia.ill.pages import router as ill_pages_router
    from consortia.members.api import router as members_router
    from consortia.protocols.sru.server import router as sru_router
    from consortia.search.api import router as search_router
    from consortia.search.pages import router as search_pages_router
    from consortia.stats.api import router as stats_router
    from consortia.stats.pages import router as stats_pages_router
    from consortia.web.pages import router as pages_router

    # Routes are matched in order, every route of every router before the one that answers
    # (~6 µs a route): the busiest, read-only ones first — the static files every page asks
    # for, the search API, SRU, the search and record pages.
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(search_router)
    app.include_router(sru_router)
    app.include_router(search_pages_router)
    app.include_router(catalog_pages_router)
    app.include_router(accounts_router)
    app.include_router(catalog_router)
    app.include_router(ill_pages_router)
    app.include_router(delivery_router)
    app.include_router(ill_router)
    app.include_router(openurl_router)
    app.include_router(iso18626_router)
    app.include_router(members_router)
    app.include_router(stats_router)
    app.include_router(stats_pages_router)
    app.include_router(pages_router)

    # Included routers are not flattened into app.routes (FastAPI >= 0.16x): walk their contexts,
    # which also carry router-level dependencies.
    undeclared = [
        str(r.path)
        for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIRoute) and declared_roles(r) is None
    ]
    if undeclared:
        raise RuntimeError(f"routes without a role declaration: {undeclared}")
    return app
