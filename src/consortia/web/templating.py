"""Jinja2 templates with the zh-CN / en catalogues installed.

Every visible string in a template goes through ``_()`` (``%(name)s`` placeholders);
tests/web/test_translations.py extracts them and checks both catalogues.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import inspect as sa_inspect

from consortia.i18n import LANGUAGES, gettext
from consortia.settings import get_settings
from consortia.web.deps import CSRF_COOKIE, SESSION_COOKIE, request_language

TEMPLATE_DIR = Path(__file__).parent / "templates"

# Pages load nothing from other hosts and run no inline code; the CSP makes that a rule.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

env = Environment(
    loader=FileSystemLoader(str(TEMPLATE_DIR)),
    autoescape=select_autoescape(["html", "xml"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)

LANGUAGE_NAMES = {"zh-CN": "中文", "en": "English"}


def switch_language_url(request: Request, lang: str) -> str:
    """The current page in another language: same path and query, ``lang`` replaced."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    query.append(("lang", lang))
    return f"{request.url.path}?{urlencode(query)}"


def _resolve_principal_for_page(request: Request) -> None:
    """Pages whose route never ran (404, 405) still show who is signed in."""
    if hasattr(request.state, "principal"):
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    request.state.principal = None
    if not cookie:
        return
    from consortia.accounts.service import resolve_session
    from consortia.db import session_scope

    try:
        with session_scope() as session:
            resolved = resolve_session(session, cookie)
    except Exception:  # an error page must render even when the database does not answer
        return
    if resolved is not None:
        request.state.principal = resolved.principal
        request.state.user = resolved.user
        request.state.csrf_token = resolved.csrf_token


def _display_name(request: Request) -> str:
    """The signed-in person's name without touching the database: error pages render after the
    request's session was rolled back and closed, when the ORM user can no longer load."""
    principal = getattr(request.state, "principal", None)
    user = getattr(request.state, "user", None)
    if user is not None:
        name = sa_inspect(user).dict.get("display_name")
        if name:
            return str(name)
    if principal is None:
        return ""
    return str(principal.label).split(":", 1)[-1]


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    lang = request_language(request)

    def _(msgid: str, **params: Any) -> str:
        text = gettext(lang, msgid)
        return text % params if params else text

    def local_name(obj: Any) -> str:
        """An object's name in the page's language (``name_zh`` / ``name_en``)."""
        if obj is None:
            return ""
        name = obj.name_zh if lang == "zh-CN" else obj.name_en
        return str(name or obj.name_en or obj.name_zh)

    _resolve_principal_for_page(request)
    csrf = getattr(request.state, "csrf_token", None) or request.cookies.get(CSRF_COOKIE)
    if not csrf:
        # First visit: mint the double-submit token now so the form and the cookie agree.
        csrf = secrets.token_urlsafe(32)
        request.state.new_csrf_cookie = csrf
    settings = get_settings()
    ctx: dict[str, Any] = {
        "request": request,
        "lang": lang,
        "languages": LANGUAGES,
        "language_names": LANGUAGE_NAMES,
        "switch_language_url": lambda code: switch_language_url(request, code),
        "principal": getattr(request.state, "principal", None),
        "display_name": _display_name(request),
        "csrf_token": csrf,
        "consortium_name": settings.consortium_name_zh
        if lang == "zh-CN"
        else settings.consortium_name_en,
        "local_name": local_name,
        "_": _,
        "gettext": _,
        "ngettext": lambda s, p, n, **kw: _(s if n == 1 else p, **kw),
    }
    ctx.update(context or {})
    html = env.get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Language"] = lang
    # The same URL answers in two languages and for different users: caches must know.
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-store" if ctx["principal"] else "no-cache"
    return response
