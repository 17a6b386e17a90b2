"""Sign-in, sessions, CSRF, throttling and API tokens."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts import service as accounts
from consortia.accounts.models import ApiToken, User
from consortia.accounts.roles import CLI, Role
from tests.conftest import PASSWORD, login


def test_password_is_hashed_with_argon2(session: Session, users: dict[Role, str]) -> None:
    user = session.scalar(select(User).where(User.username == "reader"))
    assert user is not None and user.password_hash.startswith("$argon2")
    assert PASSWORD not in user.password_hash


def test_login_sets_httponly_samesite_cookie_and_me_answers(
    client: TestClient, users: dict[Role, str]
) -> None:
    client.get("/login")
    r = client.post(
        "/login",
        data={
            "username": "staff",
            "password": PASSWORD,
            "csrf_token": client.cookies["consortia_csrf"],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "consortia_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = client.get("/api/v1/me").json()
    assert me == {
        "kind": "user",
        "label": "user:staff",
        "role": "library_staff",
        "member": "CN-TEST",
    }


def test_login_form_without_csrf_is_refused(client: TestClient, users: dict[Role, str]) -> None:
    client.get("/login")
    r = client.post(
        "/login", data={"username": "staff", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert r.status_code == 403
    assert client.get("/api/v1/me").status_code == 401


def test_writes_with_a_session_need_the_csrf_token(
    client: TestClient, users: dict[Role, str]
) -> None:
    csrf = login(client, "office")
    r = client.post("/api/v1/tokens", json={"member": "CN-TEST"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = client.post("/api/v1/tokens", json={"member": "CN-TEST"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201


def test_wrong_password_then_throttled_per_account(
    client: TestClient, users: dict[Role, str]
) -> None:
    client.get("/login")
    csrf = client.cookies["consortia_csrf"]
    codes = [
        client.post(
            "/login", data={"username": "reader", "password": "wrong-password!", "csrf_token": csrf}
        ).status_code
        for _ in range(6)
    ]
    assert codes == [401] * 5 + [429]
    # Even the right password is refused while the account is throttled.
    r = client.post(
        "/login",
        data={"username": "reader", "password": PASSWORD, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 429


def test_api_token_is_shown_once_stored_hashed_and_revocable(
    client: TestClient, session: Session, member: Any
) -> None:
    new = accounts.create_token(session, CLI, member.code, "Koha")
    session.commit()
    stored = session.scalar(select(ApiToken).where(ApiToken.id == new.id))
    assert stored is not None and new.token not in (stored.secret_hash, stored.prefix)
    headers = {"Authorization": f"Bearer {new.token}"}
    assert client.get("/api/v1/me", headers=headers).json()["role"] == "member_system"
    accounts.revoke_token(session, CLI, new.id)
    session.commit()
    r = client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401
    assert (
        client.get("/api/v1/me", headers={"Authorization": "Bearer ctk_nonsense"}).status_code
        == 401
    )


def test_library_admin_may_not_make_tokens_for_another_library(
    client: TestClient, session: Session, users: dict[Role, str]
) -> None:
    from tests.conftest import add_region_and_member

    add_region_and_member(session, code="CN-OTHER")
    session.commit()
    csrf = login(client, "libadmin")
    r = client.post("/api/v1/tokens", json={"member": "CN-OTHER"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    r = client.post("/api/v1/tokens", json={"member": "CN-TEST"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["token"].startswith("ctk_")
