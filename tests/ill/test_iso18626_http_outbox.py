"""The DB-backed outbox worker (ill/peers.py) against a real HTTP peer on the loopback.

The peer is a small ISO 18626 endpoint run here: it reads each message with the same parser as
the hub and answers with a schema-valid confirmation (OK, or ERROR with errorData), or fails
with HTTP 503 when told to. It records what arrived, so the tests can see exactly-once
delivery, the order, and the token sent. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.db import session_factory
from consortia.ill import iso18626 as iso
from consortia.ill import peers
from consortia.ill import service as ill
from consortia.ill.models import OutboxRow
from consortia.ill.states import RequesterAction
from consortia.settings import Settings, get_settings, reset_settings
from tests.conftest import add_region_and_member

TOKENS_ENV = "CONSORTIA_ISO18626_TOKENS"


@dataclass
class Peer:
    url: str
    # What the next answers are: "ok", "error" (ERROR confirmation) or "503"; then "ok".
    script: list[str] = field(default_factory=list)
    received: list[tuple[str, str]] = field(default_factory=list)  # (message key, action)
    auth: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def peer() -> Iterator[Peer]:
    state = Peer("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                mode = state.script.pop(0) if state.script else "ok"
                state.auth.append(self.headers.get("authorization", ""))
            if mode == "503":
                self.send_response(503)
                self.end_headers()
                return
            msg = iso.parse(body)
            assert isinstance(msg, iso.RequestingAgencyMessage)
            error = None
            if mode == "error":
                error = iso.Iso18626Error(
                    iso.ErrorType.UNRECOGNISED_DATA_VALUE, "requestingAgencyRequestId: unknown"
                )
            else:
                with state.lock:
                    state.received.append((iso.message_key(msg), msg.action.value))
            answer = iso.confirmation_for(msg, error)
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/iso18626"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def requests(session: Session, peer: Peer) -> list[int]:
    """Two requests of CN-A whose lender is the member system CN-B (rows to hang messages on)."""
    add_region_and_member(session, "CN-A")
    add_region_and_member(session, "CN-B", iso18626_url=peer.url)
    session.commit()
    ids = []
    for title in ("Book one", "Book two"):
        result = ill.create_request(
            session, CLI, ill.NewRequest(service_type="Loan", title=title, borrower="CN-A")
        )
        ids.append(result.request_id)
    session.commit()
    return ids


T0 = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


def action(request_id: int, what: RequesterAction, n: int = 0) -> iso.RequestingAgencyMessage:
    return iso.RequestingAgencyMessage(
        header=iso.Header(
            requesting_agency_id=peers.agency("CN-A"),
            supplying_agency_id=peers.agency("CN-B"),
            timestamp=T0 + dt.timedelta(seconds=n),
            requesting_agency_request_id=str(request_id),
        ),
        action=what,
    )


def enqueue_all(session: Session, peer: Peer, msgs: list[tuple[int, iso.Message]]) -> None:
    for request_id, msg in msgs:
        assert peers.enqueue(session, peer.url, msg, request_id=request_id, now=T0) is not None
    session.commit()


def rows(session: Session) -> list[tuple[str, int, str | None]]:
    session.expire_all()
    return [(r.state, r.attempts, r.last_error) for r in peers.outbox_rows(session)]


def test_enqueue_is_idempotent_and_checks_the_schema(
    session: Session, peer: Peer, requests: list[int]
) -> None:
    msg = action(requests[0], RequesterAction.RECEIVED)
    assert peers.enqueue(session, peer.url, msg, request_id=requests[0]) is not None
    assert peers.enqueue(session, peer.url, msg, request_id=requests[0]) is None
    # A message the schema refuses (a 2021 Request needs serviceInfo) is not written.
    bad = iso.Request(
        header=iso.Header(
            requesting_agency_id=peers.agency("CN-A"),
            supplying_agency_id=peers.agency("CN-B"),
            timestamp=T0,
            requesting_agency_request_id=str(requests[0]),
        ),
        bibliographic_info=iso.BibliographicInfo(title="Book one"),
    )
    with pytest.raises(iso.MessageInvalid):
        peers.enqueue(session, peer.url, bad, request_id=requests[0], version="2021")
    session.commit()
    assert session.scalar(select(func.count()).select_from(OutboxRow)) == 1


def test_two_workers_deliver_each_message_exactly_once(
    session: Session, peer: Peer, requests: list[int]
) -> None:
    msgs: list[tuple[int, iso.Message]] = []
    for n in range(12):
        rid = requests[n % 2]
        msgs.append((rid, action(rid, RequesterAction.NOTIFICATION, n)))
    enqueue_all(session, peer, msgs)
    reports: list[peers.DeliveryReport] = []
    factory = session_factory()

    def work() -> None:
        reports.append(peers.deliver_due(factory, now=T0, timeout=5, tokens={}))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Whatever a worker skipped (claimed by the other, or waiting behind an older message)
    # the next round sends.
    reports.append(peers.deliver_due(factory, now=T0 + dt.timedelta(minutes=5), tokens={}))
    keys = [k for k, _ in peer.received]
    assert sorted(keys) == sorted(iso.message_key(m) for _, m in msgs)
    assert len(keys) == len(set(keys)) == 12
    assert sum(r.delivered for r in reports) == 12
    assert {r[0] for r in rows(session)} == {"delivered"}


def test_a_failed_message_holds_back_the_later_ones_of_its_request(
    session: Session, peer: Peer, requests: list[int]
) -> None:
    first, second = requests
    enqueue_all(
        session,
        peer,
        [
            (first, action(first, RequesterAction.RECEIVED, 1)),
            (first, action(first, RequesterAction.SHIPPED_RETURN, 2)),
            (second, action(second, RequesterAction.RECEIVED, 3)),
        ],
    )
    peer.script = ["503"]
    report = peers.deliver_due(session_factory(), now=T0, tokens={})
    # The first failed; the second waits behind it; the other request's message went.
    assert (report.failed, report.waiting, report.delivered) == (1, 1, 1), report
    assert peer.received == [
        (iso.message_key(action(second, RequesterAction.RECEIVED, 3)), "Received")
    ]
    state = rows(session)
    assert state[0][:2] == ("pending", 1) and "HTTP 503" in (state[0][2] or "")
    assert state[1] == ("pending", 0, None)
    # Nothing is due before the back-off; after it, both go, in order.
    assert (
        peers.deliver_due(session_factory(), now=T0 + dt.timedelta(seconds=5), tokens={}).delivered
        == 0
    )
    later = T0 + dt.timedelta(minutes=2)
    assert peers.deliver_due(session_factory(), now=later, tokens={}).delivered == 2
    assert [a for _, a in peer.received] == ["Received", "Received", "ShippedReturn"]
    assert [r[0] for r in rows(session)] == ["delivered"] * 3


def test_a_refused_message_is_kept_with_the_peers_error(
    session: Session, peer: Peer, requests: list[int]
) -> None:
    rid = requests[0]
    enqueue_all(
        session,
        peer,
        [
            (rid, action(rid, RequesterAction.RENEW, 1)),
            (rid, action(rid, RequesterAction.NOTIFICATION, 2)),
        ],
    )
    peer.script = ["error"]
    report = peers.deliver_due(session_factory(), now=T0, tokens={})
    assert (report.rejected, report.delivered) == (1, 1)
    state = rows(session)
    assert state[0][0] == "rejected"
    assert "UnrecognisedDataValue: requestingAgencyRequestId: unknown" in (state[0][2] or "")
    assert state[1][0] == "delivered"
    # Never sent again, never deleted.
    assert (
        peers.deliver_due(session_factory(), now=T0 + dt.timedelta(days=1), tokens={}).delivered
        == 0
    )
    assert len(rows(session)) == 2


def test_the_member_systems_token_is_sent(
    session: Session, peer: Peer, requests: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = requests[0]
    row = peers.enqueue(
        session,
        peer.url,
        action(rid, RequesterAction.RECEIVED),
        request_id=rid,
        member_id=_member_id(session, "CN-B"),
        now=T0,
    )
    assert row is not None
    session.commit()
    # The setting, from the environment like every other (codes in any case; empty: none).
    monkeypatch.setenv(TOKENS_ENV, '{"cn-b": "ctk_from-cn-b", "CN-C": ""}')
    reset_settings()
    assert get_settings().iso18626_tokens == {"CN-B": "ctk_from-cn-b"}
    assert "ctk_from-cn-b" not in repr(get_settings())
    assert peers.peer_tokens() == {"CN-B": "ctk_from-cn-b"}
    assert peers.deliver_due(session_factory(), now=T0).delivered == 1
    assert peer.auth == ["Bearer ctk_from-cn-b"]


@pytest.mark.parametrize("value", ["not json", '["CN-B", "ctk"]', '{"CN-B": ["ctk"]}'])
def test_a_tokens_setting_that_is_not_a_json_object_of_strings_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(TOKENS_ENV, value)
    with pytest.raises((SettingsError, ValidationError), match="iso18626_tokens"):
        Settings()


def _member_id(session: Session, code: str) -> int:
    from consortia.members.models import Member

    found = session.scalar(select(Member.id).where(Member.code == code))
    assert found is not None
    return int(found)


def test_the_periodic_task_catches_up_and_delivers(
    session: Session, peer: Peer, requests: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import consortia.tasks

    assert "consortia.ill.peers.deliver_outbox" in consortia.tasks.huey._registry._registry
    rid = requests[0]
    enqueue_all(session, peer, [(rid, action(rid, RequesterAction.NOTIFICATION))])
    monkeypatch.delenv(TOKENS_ENV, raising=False)
    reset_settings()
    result = peers.deliver_outbox.call_local()
    assert result == {"delivered": 1, "rejected": 0, "failed": 0, "waiting": 0}
    assert [a for _, a in peer.received] == ["Notification"]
    assert rows(session)[0][0] == "delivered"
