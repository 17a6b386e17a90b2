"""/api/v1/members through the real app: public reads, office writes, refusals by role."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts.roles import Role
from consortia.events.models import Event
from consortia.members.models import Member
from tests.conftest import add_region_and_member, login

API = "/api/v1/members"


def new(code: str = "CN-NEW", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "name_zh": "新馆",
        "name_en": "New Library",
        "type": "academic",
        "region": "guangdong",
    }
    body.update(extra)
    return body


def as_office(client: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": login(client, "office")}


def member_count(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Member)) or 0


def test_anyone_may_list_and_read_members(client: TestClient, session: Session) -> None:
    add_region_and_member(session, "CN-AAA", is_centre=True)
    add_region_and_member(session, "CN-BBB", region="jilin")
    session.commit()
    r = client.get(API)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 2 and page["offset"] == 0 and page["limit"] == 50
    assert [m["code"] for m in page["items"]] == ["CN-AAA", "CN-BBB"]
    assert page["items"][1]["region"] == "jilin" and page["items"][0]["is_centre"] is True
    r = client.get(API, params={"region": "jilin"})
    assert [m["code"] for m in r.json()["items"]] == ["CN-BBB"]
    r = client.get(API, params={"limit": 1, "offset": 1})
    assert [m["code"] for m in r.json()["items"]] == ["CN-BBB"] and r.json()["total"] == 2
    r = client.get(f"{API}/CN-AAA")
    assert r.status_code == 200 and r.json()["name_en"] == "Test Library"


def test_bad_list_filters_name_the_parameter(client: TestClient) -> None:
    for params, field in [({"limit": 0}, "limit"), ({"type": "zoo"}, "type")]:
        r = client.get(API, params=params)
        assert r.status_code == 422
        assert [p["field"] for p in r.json()["problems"]] == [field]


def test_unknown_code_is_404_naming_it_in_both_languages(client: TestClient) -> None:
    r = client.get(f"{API}/CN-GHOST", headers={"Accept-Language": "en"})
    assert r.status_code == 404
    assert r.json()["detail"] == "Unknown member code: CN-GHOST"
    r = client.get(f"{API}/CN-GHOST", headers={"Accept-Language": "zh-CN"})
    assert r.json()["detail"] == "未知的成员馆代码：CN-GHOST"


def test_office_creates_member_and_duplicate_is_409(
    client: TestClient, users: dict[Role, str], session: Session
) -> None:
    headers = as_office(client)
    r = client.post(API, json=new(is_centre=True, sru_url="https://x.org/sru"), headers=headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["code"] == "CN-NEW" and body["sector"] == "education"
    assert body["status"] == "active" and body["sru_url"] == "https://x.org/sru"
    ev = session.scalar(select(Event).where(Event.action == "member.created"))
    assert ev is not None and ev.actor == "user:office" and ev.entity_id == "CN-NEW"
    r = client.post(API, json=new(), headers=headers)
    assert r.status_code == 409
    assert r.json()["field"] == "code" and "CN-NEW" in r.json()["detail"]
    r = client.post(API, json=new("CN-TEST"), headers=headers)  # the fixture's member
    assert r.status_code == 409 and "CN-TEST" in r.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name_zh": ""}, "name_zh"),
        ({"name_en": "   "}, "name_en"),
        ({"name_zh": None}, "name_zh"),
        ({"code": "GZUCM"}, "code"),
        ({"code": "CN-ABCDEFGHIJKL"}, "code"),
        ({"sru_url": "sru.example.org"}, "sru_url"),
        ({"oai_url": "mailto:x@y.org"}, "oai_url"),
        ({"iso18626_url": "https://:80/x"}, "iso18626_url"),
        ({"z3950_port": 0}, "z3950_port"),
        ({"z3950_port": 65536}, "z3950_port"),
        ({"max_open_lending": 100001}, "max_open_lending"),
        ({"days_to_respond": 0}, "days_to_respond"),
        ({"loan_period_days": 366}, "loan_period_days"),
        ({"contact_email": "x@"}, "contact_email"),
        ({"type": "museum"}, "type"),
        ({"joined_on": "2020-02-30"}, "joined_on"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_invalid_field_is_422_naming_it(
    client: TestClient,
    users: dict[Role, str],
    session: Session,
    changes: dict[str, Any],
    field: str,
) -> None:
    headers = as_office(client)
    before = member_count(session)
    body = new()
    body.update(changes)
    if changes == {"name_zh": None}:
        del body["name_zh"]
    r = client.post(API, json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert [p["field"] for p in r.json()["problems"]] == [field]
    assert field in r.json()["detail"]
    assert member_count(session) == before


def test_centre_rules_are_422_naming_centre(
    client: TestClient, users: dict[Role, str], session: Session
) -> None:
    headers = as_office(client)
    for centre, text in [("CN-NOWHERE", "CN-NOWHERE"), ("CN-TEST", "not a regional centre")]:
        r = client.post(API, json=new(centre=centre), headers={**headers, "Accept-Language": "en"})
        assert r.status_code == 422
        assert r.json()["field"] == "centre" and text in r.json()["detail"]
    r = client.post(API, json=new(centre="CN-TEST"), headers={**headers, "Accept-Language": "zh"})
    assert r.json()["detail"] == "centre：CN-TEST 不是区域中心馆"
    assert member_count(session) == 1


def test_only_the_office_may_create_or_suspend(client: TestClient, users: dict[Role, str]) -> None:
    assert client.post(API, json=new()).status_code == 401
    for role in (Role.library_admin, Role.library_staff, Role.reader):
        client.cookies.clear()
        csrf = login(client, users[role])
        headers = {"X-CSRF-Token": csrf}
        assert client.post(API, json=new(), headers=headers).status_code == 403
        assert client.post(f"{API}/CN-TEST/suspend", headers=headers).status_code == 403
        assert client.post(f"{API}/CN-TEST/reinstate", headers=headers).status_code == 403
    client.cookies.clear()
    for role in (Role.library_staff, Role.reader):
        client.cookies.clear()
        headers = {"X-CSRF-Token": login(client, users[role])}
        r = client.patch(f"{API}/CN-TEST", json={"contact_name": "x"}, headers=headers)
        assert r.status_code == 403
    assert client.get(f"{API}/CN-TEST").json()["status"] == "active"


def test_library_admin_updates_only_own_allowed_fields(
    client: TestClient, users: dict[Role, str], session: Session
) -> None:
    add_region_and_member(session, "CN-ELSE")
    session.commit()
    headers = {"X-CSRF-Token": login(client, users[Role.library_admin])}
    r = client.patch(
        f"{API}/CN-TEST",
        json={
            "contact_email": "ill@test.example.org",
            "z3950_host": "z.test.example.org",
            "max_open_lending": 20,
            "lends_copies": False,
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["contact_email"] == "ill@test.example.org" and body["z3950_port"] == 210
    assert body["max_open_lending"] == 20 and body["lends_copies"] is False
    for field, value in [
        ("code", "CN-OTHER"),
        ("type", "public"),
        ("region", "jilin"),
        ("status", "suspended"),
        ("centre", None),
    ]:
        r = client.patch(f"{API}/CN-TEST", json={field: value}, headers=headers)
        assert r.status_code in (403, 422), (field, r.text)
        assert field in r.text
    r = client.patch(f"{API}/CN-ELSE", json={"contact_name": "x"}, headers=headers)
    assert r.status_code == 403
    r = client.patch(f"{API}/CN-TEST", json={"days_to_respond": 99}, headers=headers)
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "days_to_respond"
    assert client.get(f"{API}/CN-TEST").json()["type"] == "academic"


def test_office_patch_and_suspend_keeps_member_listed(
    client: TestClient, users: dict[Role, str], session: Session
) -> None:
    headers = as_office(client)
    r = client.patch(
        f"{API}/CN-TEST", json={"name_en": "Renamed", "region": "hainan"}, headers=headers
    )
    assert r.status_code == 200 and r.json()["region"] == "hainan"
    assert client.patch(f"{API}/CN-NOPE", json={"name_en": "x"}, headers=headers).status_code == 404
    r = client.post(f"{API}/CN-TEST/suspend", json={"reason": "fees"}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    assert client.post(f"{API}/CN-TEST/suspend", headers=headers).status_code == 409
    listed = client.get(API).json()["items"]
    assert [(m["code"], m["status"]) for m in listed] == [("CN-TEST", "suspended")]
    assert client.get(API, params={"status": "active"}).json()["total"] == 0
    r = client.post(f"{API}/CN-TEST/reinstate", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert client.post(f"{API}/CN-GHOST/suspend", headers=headers).status_code == 404
    actions = session.scalars(
        select(Event.action).where(Event.entity_id == "CN-TEST").order_by(Event.id)
    ).all()
    assert actions == ["member.updated", "member.suspended", "member.reinstated"]


def test_a_member_system_token_cannot_write(client: TestClient, member: Member) -> None:
    from consortia.accounts import service as accounts
    from consortia.accounts.roles import CLI
    from consortia.db import session_scope

    with session_scope() as s:
        token = accounts.create_token(s, CLI, "CN-TEST", "koha").token
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{API}/CN-TEST", headers=auth).status_code == 200
    assert (
        client.patch(f"{API}/CN-TEST", json={"contact_name": "x"}, headers=auth).status_code == 403
    )


def test_openapi_describes_the_member_routes(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    paths = spec["paths"]
    assert set(paths[API]) == {"get", "post"}
    assert set(paths[API + "/{code}"]) == {"get", "patch"}
    assert "post" in paths[API + "/{code}/suspend"] and "post" in paths[API + "/{code}/reinstate"]
    schemas = spec["components"]["schemas"]
    port = schemas["MemberCreate"]["properties"]["days_to_respond"]
    assert (port["minimum"], port["maximum"]) == (1, 60)
    assert "status" in schemas["MemberOut"]["properties"]
    assert set(schemas["MemberPage"]["properties"]) == {"items", "total", "offset", "limit"}


def test_codes_with_a_slash_work_in_paths(client: TestClient, users: dict[Role, str]) -> None:
    # ISIL allows "/" and ":" after the prefix; the routes must not split on them.
    headers = as_office(client)
    assert client.post(API, json=new("CN-A/1:2"), headers=headers).status_code == 201
    assert client.get(f"{API}/CN-A/1:2").json()["code"] == "CN-A/1:2"
    r = client.post(f"{API}/CN-A/1:2/suspend", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    r = client.patch(f"{API}/CN-A/1:2", json={"name_en": "Slash"}, headers=headers)
    assert r.status_code == 200 and r.json()["name_en"] == "Slash"
