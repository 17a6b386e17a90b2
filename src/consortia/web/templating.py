"""Jinja2 templates with the zh-CN / en catalogues installed."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from consortia.i18n import LANGUAGES, gettext
from consortia.settings import get_settings
from consortia.web.deps import CSRF_COOKIE, request_language

TEMPLATE_DIR = Path(__file__).parent / "templates"

env = Environment(
    loader=FileSystemLoader(str(TEMPLATE_DIR)),
    autoescape=select_autoescape(["html", "xml"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    lang = request_language(request)

    def _(msgid: str, **params: Any) -> str:
        text = gettext(lang, msgid)
        return text % params if params else text

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
        "principal": getattr(request.state, "principal", None),
        "user": getattr(request.state, "user", None),
        "csrf_token": csrf,
        "consortium_name": settings.consortium_name_zh
        if lang == "zh-CN"
        else settings.consortium_name_en,
        "_": _,
        "gettext": _,
        "ngettext": lambda s, p, n: _(s if n == 1 else p),
    }
    ctx.update(context or {})
    html = env.get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status)
