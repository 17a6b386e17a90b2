"""Every answer — page, JSON, error, static file — carries the security headers, and a first
visit gets the CSRF cookie the login form's double-submit needs (web.app.CookiesAndHeaders)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


@pytest.mark.parametrize(
    ("path", "accept", "status"),
    [
        ("/", "text/html", 200),
        ("/api/v1/search?q=", "application/json", 200),
        ("/api/v1/no-such-thing", "application/json", 404),
        ("/no-such-page", "text/html", 404),
        ("/static/no-such-file.css", "text/css", 404),
    ],
)
def test_security_headers_and_csrf_cookie_on_every_answer(
    client: TestClient, path: str, accept: str, status: int
) -> None:
    r = client.get(path, headers={"Accept": accept})
    assert r.status_code == status
    for name, value in SECURITY.items():
        assert r.headers[name] == value
    set_cookie = r.headers.get_list("set-cookie")
    csrf = [c for c in set_cookie if c.startswith("consortia_csrf=")]
    assert len(csrf) == 1
    assert "HttpOnly" in csrf[0] and "SameSite=strict" in csrf[0]


def test_a_known_csrf_cookie_is_not_replaced(client: TestClient) -> None:
    first = client.get("/api/v1/search?q=")
    cookie = first.cookies["consortia_csrf"]
    again = client.get("/api/v1/search?q=")
    assert not any(c.startswith("consortia_csrf=") for c in again.headers.get_list("set-cookie"))
    assert client.cookies["consortia_csrf"] == cookie


def test_a_page_hands_its_form_token_to_the_cookie(client: TestClient) -> None:
    r = client.get("/login", headers={"Accept": "text/html"})
    token = r.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert r.cookies["consortia_csrf"] == token


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_lang_parameter_sets_the_language_cookie(client: TestClient, lang: str) -> None:
    r = client.get(f"/api/v1/search?q=&lang={lang}")
    assert r.cookies["consortia_lang"] == lang
    r = client.get("/api/v1/search?q=&lang=fr")
    assert not any(c.startswith("consortia_lang=") for c in r.headers.get_list("set-cookie"))
