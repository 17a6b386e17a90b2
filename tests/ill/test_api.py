"""/api/v1/requests and /openurl through the real app: roles, queues, actions, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts import service as accounts
from consortia.accounts.roles import CLI
from consortia.events.models import Event
from consortia.ill.models import IllRequest
from tests.conftest import login
from tests.ill import world
from tests.ill.world import World

API = "/api/v1/requests"
BOOKS = {
    "zh0": {"CN-GDZSL": ["available"], "CN-SYSU": ["available"]},
    "en1": {"CN-SCNU": ["available"]},
}


@pytest.fixture
def w(session: Session, tmp_path: Path) -> World:
    return world.build(
        session,
        tmp_path,
        BOOKS,
        readers=("CN-GZUCM", "CN-SYSU"),
        staff=("CN-GZUCM", "CN-GDZSL", "CN-JNU"),
    )


@pytest.fixture
def as_user(app: Any) -> Iterator[Any]:
    """A signed-in client per user name, with the CSRF header set for writes."""
    clients: list[TestClient] = []

    def make(username: str) -> TestClient:
        c = TestClient(app)
        c.__enter__()
        clients.append(c)
        c.headers["X-CSRF-Token"] = login(c, username)
        c.headers["Accept"] = "application/json"
        c.headers["Accept-Language"] = "en"
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def loan(w: World, key: str = "zh0") -> dict[str, Any]:
    return {"service_type": "Loan", "cluster_id": w.clusters[key]}


def ill_events(session: Session) -> int:
    session.expire_all()
    return (
        session.scalar(
            select(func.count()).select_from(Event).where(Event.entity_type == "ill_request")
        )
        or 0
    )


def test_a_reader_asks_and_follows_only_their_own(as_user: Any, w: World) -> None:
    reader = as_user("gzucm-reader")
    r = reader.post(API, json=loan(w))
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["state"], body["lender"], body["borrower"]) == ("Sent", "CN-GDZSL", "CN-GZUCM")
    assert (body["language"], body["lender_status"], body["via"]) == (
        "chinese",
        "RequestReceived",
        "reader",
    )
    assert [c["lender"] for c in body["rota"]] == ["CN-GDZSL", "CN-SYSU"]
    assert "regional centre +10.0" in body["rota"][0]["reason"]
    assert body["actions"] == ["cancel"]
    other = as_user("sysu-reader")
    theirs = other.post(API, json={"service_type": "Copy", "cluster_id": w.clusters["en1"]})
    assert theirs.status_code == 201
    page = reader.get(API).json()
    assert page["total"] == 1 and [i["id"] for i in page["items"]] == [body["id"]]
    assert reader.get(f"{API}/{theirs.json()['id']}").status_code == 404
    evs = reader.get(f"{API}/{body['id']}/events").json()
    assert [e["action"] for e in evs] == [
        "ill.request.created",
        "ill.request.routed",
        "ill.request.sent",
    ]
    assert all(e["actor"] is None for e in evs)
    # A duplicate names the open request.
    dup = reader.post(API, json=loan(w))
    assert dup.status_code == 409
    assert f"request {body['id']} (Sent)" in dup.json()["detail"]
    # The reader cancels; a library's staff sees who did it.
    done = reader.post(f"{API}/{body['id']}/cancel", json={"reason": "no longer needed"})
    assert done.status_code == 200 and done.json()["state"] == "Cancelled"
    staff = as_user("gzucm-staff")
    evs = staff.get(f"{API}/{body['id']}/events").json()
    assert evs[-1]["actor"] == "user:gzucm-reader" and evs[-1]["payload"]["to"] == "Cancelled"


def test_lending_and_borrowing_queues_and_their_actions(
    as_user: Any, w: World, session: Session
) -> None:
    reader, desk, lender = as_user("gzucm-reader"), as_user("gzucm-staff"), as_user("gdzsl-staff")
    rid = reader.post(API, json=loan(w)).json()["id"]
    queue = lender.get(API, params={"queue": "lending"}).json()
    assert [i["id"] for i in queue["items"]] == [rid]
    item = queue["items"][0]
    assert item["actions"] == ["will-supply", "conditional", "unfilled", "ship"]
    assert lender.get(API).json()["total"] == 0  # its own readers asked nothing
    assert [i["id"] for i in desk.get(API, params={"queue": "borrowing"}).json()["items"]] == [rid]

    # An action the state does not allow: 409 naming the state and the action; nothing changes.
    before = ill_events(session)
    refused = desk.post(f"{API}/{rid}/received")
    assert refused.status_code == 409
    assert refused.json()["error"] == "illegal_transition"
    assert refused.json()["detail"] == (
        "Received is not allowed when the request is RequestReceived"
    )
    assert ill_events(session) == before

    r = lender.post(f"{API}/{rid}/will-supply", json={"note": "pulling it"})
    assert r.status_code == 200 and r.json()["lender_status"] == "WillSupply"
    r = lender.post(f"{API}/{rid}/ship", json={"due": "2099-01-01T00:00:00Z"})
    assert r.json()["state"] == "Shipped" and r.json()["loan_due_at"].startswith("2099-01-01")
    assert desk.post(f"{API}/{rid}/received").json()["state"] == "Received"
    assert reader.post(f"{API}/{rid}/renew").json()["actions"] == ["renew"]
    r = lender.post(f"{API}/{rid}/renewal", json={"approve": False, "note": "reserved"})
    assert r.status_code == 200
    assert desk.post(f"{API}/{rid}/return").json()["state"] == "Returned"
    r = lender.post(f"{API}/{rid}/checked-in")
    assert r.json()["state"] == "Completed" and r.json()["actions"] == []
    again = lender.post(f"{API}/{rid}/checked-in")
    assert again.status_code == 409 and "Completed" in again.json()["detail"]


def test_unfilled_and_conditions_through_the_api(as_user: Any, w: World) -> None:
    reader, lender = as_user("gzucm-reader"), as_user("gdzsl-staff")
    rid = reader.post(API, json=loan(w)).json()["id"]
    missing = lender.post(f"{API}/{rid}/unfilled", json={})
    assert missing.status_code == 422 and missing.json()["problems"][0]["field"] == "reason"
    r = lender.post(f"{API}/{rid}/unfilled", json={"reason": "not on the shelf"})
    assert (r.json()["state"], r.json()["lender"]) == ("Sent", "CN-SYSU")
    assert r.json()["rota"][0]["closed"] == "unfilled"
    assert r.json()["rota"][0]["note"] == "not on the shelf"
    # It is no longer GDZSL's to act on.
    assert lender.post(f"{API}/{rid}/ship").status_code == 403
    copy = reader.post(API, json={"service_type": "Copy", "cluster_id": w.clusters["zh0"]})
    cid = copy.json()["id"]
    r = lender.post(f"{API}/{cid}/conditional", json={"condition": "a fee of 20 yuan"})
    assert r.json()["rota"][0]["condition_state"] == "pending"
    r = reader.post(f"{API}/{cid}/conditions", json={"accept": False})
    assert (r.json()["state"], r.json()["lender"]) == ("Sent", "CN-SYSU")


def test_other_libraries_are_refused(as_user: Any, w: World) -> None:
    reader, stranger = as_user("gzucm-reader"), as_user("jnu-staff")
    rid = reader.post(API, json=loan(w)).json()["id"]
    assert stranger.get(f"{API}/{rid}").status_code == 403
    r = stranger.post(f"{API}/{rid}/will-supply")
    assert r.status_code == 403 and r.json()["detail"] == "Only the lending library may do this"
    assert stranger.post(f"{API}/{rid}/cancel").status_code == 403
    assert stranger.get(API, params={"member": "CN-GZUCM"}).status_code == 403
    # Readers never act for a lender.
    assert reader.post(f"{API}/{rid}/will-supply").status_code == 403
    assert reader.post(f"{API}/{rid}/return").status_code == 403


def test_staff_ask_for_their_readers_and_bad_input_names_the_field(
    as_user: Any, w: World, session: Session
) -> None:
    desk = as_user("gzucm-staff")
    reader_id = w.users["gzucm-reader"]
    r = desk.post(API, json={**loan(w, "en1"), "reader_id": reader_id, "pickup": "CN-SYSU"})
    assert r.status_code == 201
    assert (r.json()["via"], r.json()["pickup"], r.json()["reader_id"]) == (
        "staff",
        "CN-SYSU",
        reader_id,
    )
    before = ill_events(session)
    for body, field in [
        ({"service_type": "Loan"}, "title"),
        ({"service_type": "Scan", "title": "x"}, "service_type"),
        ({"service_type": "Loan", "title": "x", "needed_by": "yesterday"}, "needed_by"),
        ({"service_type": "Loan", "title": "x"}, "reader_id"),
        (
            {"service_type": "Loan", "title": "x", "reader_id": reader_id, "pickup": "CN-X"},
            "member",
        ),
    ]:
        r = desk.post(API, json=body)
        assert 400 <= r.status_code < 500, (body, r.text)
        payload = r.json()
        fields = [p["field"] for p in payload.get("problems", [])] or [payload.get("field")]
        assert field in fields, (body, payload)
    assert ill_events(session) == before


def test_a_member_system_works_its_own_queues_with_a_token(
    client: TestClient, w: World, session: Session
) -> None:
    token = accounts.create_token(session, CLI, "CN-GDZSL", "Koha").token
    session.commit()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    r = client.post(
        API,
        json={"service_type": "Copy", "cluster_id": w.clusters["en1"], "requester_ref": "K-1"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert (r.json()["via"], r.json()["borrower"], r.json()["lender"]) == (
        "api",
        "CN-GDZSL",
        "CN-SCNU",
    )
    reader = TestClient(client.app)
    reader.headers["X-CSRF-Token"] = login(reader, "gzucm-reader")
    rid = reader.post(API, json=loan(w)).json()["id"]
    queue = client.get(API, params={"queue": "lending"}, headers=headers).json()
    assert [i["id"] for i in queue["items"]] == [rid]
    assert client.post(f"{API}/{rid}/ship", headers=headers).json()["state"] == "Shipped"


# ----------------------------------------------------------------------------- OpenURL

KEV = {
    "url_ver": "Z39.88-2004",
    "rft_val_fmt": "info:ofi/fmt:kev:mtx:book",
    "rft.genre": "bookitem",
    "rft.btitle": "中医药学概论",
    "rft.atitle": "第三章 脏腑",
    "rft.aulast": "孟",
    "rft.aufirst": "景春",
    "rft.spage": "45",
    "rft.epage": "60",
    "rft.date": "2009-05",
    "rft_id": "info:doi/10.1000/xyz",
}


def test_openurl_sends_a_stranger_to_sign_in_and_back(client: TestClient, w: World) -> None:
    r = client.get("/openurl", params=KEV, follow_redirects=False)
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert target.path == "/login"
    back = parse_qs(target.query)["next"][0]
    assert back.startswith("/openurl?") and "rft.btitle=" in back
    csrf = login(client, "gzucm-reader")
    assert csrf
    r = client.get(back, follow_redirects=False)
    assert r.status_code == 303
    form = urlsplit(r.headers["location"])
    assert form.path == "/requests/new"
    values = {k: v[0] for k, v in parse_qs(form.query).items()}
    assert values == {
        "service_type": "Copy",
        "title": "中医药学概论",
        "article_title": "第三章 脏腑",
        "author": "孟, 景春",
        "pages": "45-60",
        "year": "2009",
        "doi": "10.1000/xyz",
        "cluster": str(w.clusters["zh0"]),
    }
    page = client.get(r.headers["location"])
    assert page.status_code == 200 and "第三章 脏腑" in page.text


def test_openurl_reads_the_older_form_and_matches_by_isbn(
    client: TestClient, w: World, session: Session
) -> None:
    from consortia.catalog.models import Cluster

    cluster = session.get(Cluster, w.clusters["zh0"])
    assert cluster is not None
    isbn = cluster.merged["isbns"][0]["isbn13"]
    r = client.get(
        "/openurl",
        params={"genre": "book", "title": "some other words", "isbn": isbn, "aulast": "Meng"},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200
    assert r.json()["cluster_id"] == w.clusters["zh0"]
    assert r.json()["citation"]["service_type"] == "Loan"
    assert r.json()["citation"]["author"] == "Meng"
    nothing = client.get(
        "/openurl",
        params={"rft.jtitle": "Journal of Nowhere", "rft.atitle": "x" * 3000},
        headers={"Accept": "application/json"},
    ).json()
    assert nothing["cluster_id"] is None and len(nothing["citation"]["article_title"]) == 2000


def test_the_openurl_form_posts_a_request(client: TestClient, w: World, session: Session) -> None:
    csrf = login(client, "gzucm-reader")
    location = client.get("/openurl", params=KEV, follow_redirects=False).headers["location"]
    values = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    r = client.post("/requests/new", data={**values, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code in (200, 303), r.text[:500]
    session.expire_all()
    made = session.scalar(select(IllRequest))
    assert made is not None
    assert (made.article_title, made.cluster_id, made.doi) == (
        "第三章 脏腑",
        w.clusters["zh0"],
        "10.1000/xyz",
    )
    assert made.state == "Sent" and made.service_type == "Copy"
