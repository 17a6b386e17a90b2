"""Two real hubs talk ISO 18626 over HTTP: hub A borrows from hub B, a loan and a copy to the end.

Each hub is a uvicorn process on a free port with its own SQLite file. Hub A knows CN-B as a
member whose ILL system is hub B (its iso18626_url); hub B knows CN-A as hub A. Each side holds
the API token the other issued to it. The libraries' staff act through each hub's service
(against that hub's database) and each hub's outbox worker is run between the steps, so every
message crosses the wire as XML: Request, SupplyingAgencyMessages, RequestingAgencyMessages and
their confirmations.

Also: the peer freezes and is killed while a message is on its way; the message stays in the
outbox, is tried again later with back-off, and arrives exactly once.

Always SQLite (two hubs need two databases); the endpoint's tests run on both databases.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from consortia import db as dbmod
from consortia.accounts import service as accounts
from consortia.accounts.roles import SYSTEM, Principal, Role
from consortia.events.models import Event
from consortia.ill import iso18626 as iso
from consortia.ill import peers
from consortia.ill import service as ill
from consortia.ill.models import IllRequest, LenderAttempt, OutboxRow
from consortia.ill.service import NewRequest
from consortia.settings import reset_settings
from tests.conftest import add_region_and_member, free_port
from tests.ill import world

pytestmark = pytest.mark.interop

ROOT = Path(__file__).parents[2]


@dataclass
class HubProcess:
    name: str
    dir: Path
    url: str  # sqlite URL
    port: int
    engine: Engine
    factory: sessionmaker[Session]
    proc: subprocess.Popen[bytes] | None = None
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # peer member code -> its token
    clusters: dict[str, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.base}/iso18626"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            CONSORTIA_DATABASE_URL=self.url,
            CONSORTIA_SECRET_KEY=f"two-hubs-{self.name}",
            CONSORTIA_HUEY_PATH=str(self.dir / "jobs.db"),
        )
        log = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "consortia.web.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=self.dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, (self.dir / "server.log").read_text()
            try:
                if httpx.get(f"{self.base}/api/v1/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"hub {self.name} did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def worker(self, **kw: Any) -> peers.DeliveryReport:
        """One round of this hub's outbox worker."""
        return peers.run_once(self.factory, tokens=self.tokens, timeout=kw.pop("timeout", 10), **kw)

    def session(self) -> Session:
        return self.factory()


def _staff(hub: HubProcess, code: str) -> Principal:
    return Principal(
        kind="user",
        label=f"user:{code.lower()}-staff",
        role=Role.library_staff,
        member_id=hub.ids[code],
        member_code=code,
    )


def _make_hub(tmp: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> HubProcess:
    folder = tmp / name
    folder.mkdir()
    url = f"sqlite:///{folder / 'hub.db'}"
    monkeypatch.setenv("CONSORTIA_DATABASE_URL", url)
    reset_settings()
    dbmod.reset_engine()
    dbmod.migrate(dbmod.get_engine())
    engine = dbmod.make_engine(url)
    return HubProcess(name, folder, url, free_port(), engine, sessionmaker(engine))


def _setup(
    hub: HubProcess, local: str, peer: str, peer_url: str, books: dict[str, dict[str, list[str]]]
) -> str:
    """Members (``local`` and ``peer`` with its endpoint), a reader at ``local``, a book held by
    ``book_holder``; returns the API token this hub issued to ``peer``."""
    with dbmod.session_scope() as s:
        add_region_and_member(s, local, name_zh=f"{local}馆", name_en=f"{local} Library")
        add_region_and_member(
            s, peer, name_zh=f"{peer}馆", name_en=f"{peer} Library", iso18626_url=peer_url
        )
    with dbmod.session_scope() as s:
        token = accounts.create_token(s, SYSTEM, peer, name="ISO 18626 peer").token
        accounts.create_user(
            s,
            SYSTEM,
            username=f"{local.lower()}-reader",
            password="correct-horse-battery",
            role=Role.reader,
            member_code=local,
        )
    session = dbmod.session_factory()()
    try:
        from consortia.members.models import Member

        hub.ids = {m.code: m.id for m in session.scalars(select(Member))}
        w = world.World(ids=dict(hub.ids))
        world.load_books(session, w, hub.dir, books)
        hub.clusters = dict(w.clusters)
    finally:
        session.close()
    return token


@pytest.fixture
def hubs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[HubProcess, HubProcess]]:
    monkeypatch.chdir(tmp_path)
    a = _make_hub(tmp_path, "a", monkeypatch)
    b_port = free_port()
    # Hub A's catalogue has CN-B holding two books; hub B's knows only the first.
    held = {"zh2": {"CN-B": ["available"]}, "zh3": {"CN-B": ["available"]}}
    a_token_for_b = _setup(a, "CN-A", "CN-B", f"http://127.0.0.1:{b_port}/iso18626", held)
    b = _make_hub(tmp_path, "b", monkeypatch)
    b.port = b_port
    b_token_for_a = _setup(b, "CN-B", "CN-A", a.endpoint, {"zh2": {"CN-B": ["available"]}})
    # Each side calls the other with the token the other issued.
    a.tokens = {"CN-B": b_token_for_a}
    b.tokens = {"CN-A": a_token_for_b}
    dbmod.reset_engine()
    ill.reset_caches()
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        for hub in (a, b):
            hub.kill()
            hub.engine.dispose()
        dbmod.reset_engine()
        ill.reset_caches()
        monkeypatch.undo()
        reset_settings()


def _reader(hub: HubProcess, code: str) -> Principal:
    from consortia.accounts.models import User
    from consortia.accounts.service import principal_for

    with hub.session() as s:
        user = s.scalar(select(User).where(User.username == f"{code.lower()}-reader"))
        assert user is not None
        return principal_for(user, code)


def _act(hub: HubProcess, fn: Callable[..., ill.Result], *args: Any, **kw: Any) -> ill.Result:
    with hub.session() as s:
        result = fn(s, *args, **kw)
        s.commit()
        return result


def _state(hub: HubProcess, request_id: int) -> tuple[str, str | None]:
    with hub.session() as s:
        req = s.get(IllRequest, request_id)
        assert req is not None
        status = s.scalar(
            select(LenderAttempt.status).where(
                LenderAttempt.request_id == request_id, LenderAttempt.position == req.position
            )
        )
        return req.state, status


def _events(hub: HubProcess, request_id: int) -> list[tuple[str, str | None]]:
    with hub.session() as s:
        return [
            (e.action, (e.payload or {}).get("status"))
            for e in s.scalars(
                select(Event)
                .where(Event.entity_type == "ill_request", Event.entity_id == str(request_id))
                .order_by(Event.id)
            )
        ]


def _incoming(hub: HubProcess, ref: int) -> int:
    with hub.session() as s:
        found = s.scalar(
            select(IllRequest.id).where(
                IllRequest.borrower_id == hub.ids["CN-A"], IllRequest.requester_ref == str(ref)
            )
        )
        assert found is not None, f"hub {hub.name} has no request {ref} from CN-A"
        return int(found)


def _delivered(report: peers.DeliveryReport, n: int) -> None:
    assert (report.delivered, report.rejected, report.failed) == (n, 0, 0), report


def _outbox(hub: HubProcess) -> list[tuple[str, str, int]]:
    with hub.session() as s:
        return [(r.kind, r.state, r.attempts) for r in peers.outbox_rows(s)]


def test_a_loan_and_a_copy_between_two_hubs(hubs: tuple[HubProcess, HubProcess]) -> None:
    a, b = hubs
    reader = _reader(a, "CN-A")
    lender_b = _staff(b, "CN-B")
    staff_a = _staff(a, "CN-A")

    # ---- the loan
    loan = _act(
        a, ill.create_request, reader, NewRequest(service_type="Loan", cluster_id=a.clusters["zh2"])
    )
    assert (loan.state, loan.lender_id) == ("Sent", a.ids["CN-B"])
    _delivered(a.worker(), 1)  # Request -> hub B
    b_loan = _incoming(b, loan.request_id)
    assert _state(b, b_loan) == ("Sent", "RequestReceived")
    _delivered(b.worker(), 1)  # ExpectToSupply -> hub A
    assert _state(a, loan.request_id) == ("Sent", "ExpectToSupply")

    _act(b, ill.will_supply, lender_b, b_loan)
    _delivered(b.worker(), 1)
    assert _state(a, loan.request_id) == ("Sent", "WillSupply")

    due = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=28)
    _act(b, ill.ship, lender_b, b_loan, due=due)
    _delivered(b.worker(), 1)
    assert _state(a, loan.request_id) == ("Shipped", "Loaned")
    with a.session() as s:
        req = s.get(IllRequest, loan.request_id)
        assert req is not None and req.loan_due_at == due  # the lender's due date travelled

    _act(a, ill.received, staff_a, loan.request_id)
    _delivered(a.worker(), 1)
    assert _state(b, b_loan) == ("Received", "Loaned")

    _act(a, ill.returned, staff_a, loan.request_id)
    _delivered(a.worker(), 1)
    assert _state(b, b_loan) == ("Returned", "Loaned")

    _act(b, ill.checked_in, lender_b, b_loan)
    _delivered(b.worker(), 1)
    assert _state(a, loan.request_id) == ("Completed", "LoanCompleted")
    assert _state(b, b_loan) == ("Completed", "LoanCompleted")

    # Nothing more to say: another round sends nothing.
    _delivered(a.worker(), 0)
    _delivered(b.worker(), 0)
    assert _events(a, loan.request_id) == [
        ("ill.request.created", None),
        ("ill.request.routed", None),
        ("ill.request.sent", None),
        ("ill.lender.status", "ExpectToSupply"),
        ("ill.lender.status", "WillSupply"),
        ("ill.request.shipped", "Loaned"),
        ("ill.request.received", None),
        ("ill.request.returned", None),
        ("ill.request.completed", "LoanCompleted"),
    ]
    assert _events(b, b_loan) == [
        ("ill.request.created", None),
        ("ill.request.routed", None),
        ("ill.request.sent", None),
        ("ill.lender.status", "WillSupply"),
        ("ill.request.shipped", "Loaned"),
        ("ill.request.received", None),
        ("ill.request.returned", None),
        ("ill.request.completed", "LoanCompleted"),
    ]
    with b.session() as s:
        req = s.get(IllRequest, b_loan)
        assert req is not None and (req.via, req.reader_id) == ("iso18626", None)

    # ---- the copy
    copy = _act(
        a,
        ill.create_request,
        reader,
        NewRequest(
            service_type="Copy",
            cluster_id=a.clusters["zh2"],
            article_title="第二章",
            pages="10-24",
        ),
    )
    _delivered(a.worker(), 1)
    b_copy = _incoming(b, copy.request_id)
    with b.session() as s:
        req = s.get(IllRequest, b_copy)
        assert req is not None
        assert (req.service_type, req.article_title, req.pages) == ("Copy", "第二章", "10-24")
    _act(b, ill.ship, lender_b, b_copy)
    _delivered(b.worker(), 2)  # ExpectToSupply, CopyCompleted
    assert _state(a, copy.request_id) == ("Shipped", "CopyCompleted")
    _act(a, ill.received, staff_a, copy.request_id)
    _delivered(a.worker(), 1)
    assert _state(a, copy.request_id) == ("Completed", "CopyCompleted")
    assert _state(b, b_copy) == ("Completed", "CopyCompleted")
    assert [e for e, _ in _events(b, b_copy)][-2:] == [
        "ill.request.shipped",
        "ill.request.received",
    ]
    # Every message of both hubs was confirmed OK, each on its first attempt.
    for hub in (a, b):
        assert {(kind, state, attempts) for kind, state, attempts in _outbox(hub)} <= {
            ("request", "delivered", 1),
            ("supplyingAgencyMessage", "delivered", 1),
            ("requestingAgencyMessage", "delivered", 1),
        }
    assert len(_outbox(a)) == 2 + 2 + 1  # two Requests, Received and ShippedReturn, Received
    assert len(_outbox(b)) == 4 + 2  # ExpectToSupply, WillSupply, Loaned, LoanCompleted; 2 copy

    # ---- a book hub B cannot supply: Unfilled there at once, and so in hub A
    gone = _act(
        a, ill.create_request, reader, NewRequest(service_type="Loan", cluster_id=a.clusters["zh3"])
    )
    _delivered(a.worker(), 1)
    b_gone = _incoming(b, gone.request_id)
    assert _state(b, b_gone)[0] == "Unfilled"
    _delivered(b.worker(), 1)
    assert _state(a, gone.request_id)[0] == "Unfilled"
    assert _events(a, gone.request_id)[-2:] == [
        ("ill.request.declined", "Unfilled"),
        ("ill.request.unfilled", None),
    ]


def test_a_message_survives_the_peer_dying_mid_send(hubs: tuple[HubProcess, HubProcess]) -> None:
    a, b = hubs
    reader = _reader(a, "CN-A")
    loan = _act(
        a, ill.create_request, reader, NewRequest(service_type="Loan", cluster_id=a.clusters["zh2"])
    )
    # Hub B hangs (its process is stopped): the send times out with the request on the wire,
    # then hub B dies. The message stays pending with a back-off.
    assert b.proc is not None
    b.proc.send_signal(signal.SIGSTOP)
    started = dt.datetime.now(dt.UTC)
    report = a.worker(timeout=2)
    assert (report.delivered, report.failed) == (0, 1), report
    assert "no answer within 2 s" in report.errors[0]
    b.kill()
    with a.session() as s:
        (row,) = peers.outbox_rows(s)
        assert (row.state, row.attempts) == ("pending", 1)
        assert row.next_attempt_at >= started + dt.timedelta(seconds=15)
        first_retry = row.next_attempt_at
    # Down: the next round finds nothing due yet; once due, it fails again and backs off more.
    assert a.worker(timeout=2).failed == 0
    report = a.worker(now=first_retry + dt.timedelta(seconds=1), timeout=2)
    assert report.failed == 1 and "ConnectError" in report.errors[0]
    with a.session() as s:
        (row,) = peers.outbox_rows(s)
        assert (row.state, row.attempts) == ("pending", 2)
        assert row.next_attempt_at - first_retry >= dt.timedelta(seconds=30)
        second_retry = row.next_attempt_at
    # Hub B comes back (same database); the retry delivers, once.
    b.start()
    _delivered(a.worker(now=second_retry + dt.timedelta(seconds=1)), 1)
    assert _outbox(a) == [("request", "delivered", 3)]
    b_loan = _incoming(b, loan.request_id)
    with b.session() as s:
        assert (
            len(
                s.scalars(
                    select(IllRequest).where(IllRequest.requester_ref == str(loan.request_id))
                ).all()
            )
            == 1
        )
    assert _state(b, b_loan) == ("Sent", "RequestReceived")
    # And the conversation goes on.
    _delivered(b.worker(), 1)
    assert _state(a, loan.request_id) == ("Sent", "ExpectToSupply")
    with a.session() as s:
        assert s.scalar(select(OutboxRow.state)) == "delivered"
    assert iso.MessageKind.REQUEST.value == _outbox(a)[0][0]


def test_renewal_and_cancellation_between_two_hubs(hubs: tuple[HubProcess, HubProcess]) -> None:
    a, b = hubs
    reader = _reader(a, "CN-A")
    lender_b = _staff(b, "CN-B")
    staff_a = _staff(a, "CN-A")
    loan = _act(
        a, ill.create_request, reader, NewRequest(service_type="Loan", cluster_id=a.clusters["zh2"])
    )
    _delivered(a.worker(), 1)
    b_loan = _incoming(b, loan.request_id)
    due = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=14)
    _act(b, ill.ship, lender_b, b_loan, due=due)
    _delivered(b.worker(), 2)  # ExpectToSupply, Loaned
    assert _state(a, loan.request_id) == ("Shipped", "Loaned")

    # Renew: asked in hub A, granted by hub B's lender with a new due date.
    _act(a, ill.renew, staff_a, loan.request_id)
    _delivered(a.worker(), 1)
    with b.session() as s:
        asked = s.scalar(
            select(LenderAttempt.renew_requested_at).where(LenderAttempt.request_id == b_loan)
        )
        assert asked is not None
    later = due + dt.timedelta(days=14)
    _act(b, ill.answer_renewal, lender_b, b_loan, approve=True, due=later)
    _delivered(b.worker(), 1)
    with a.session() as s:
        req = s.get(IllRequest, loan.request_id)
        assert req is not None and req.loan_due_at == later
    assert ("ill.loan.renewed", "Loaned") in _events(a, loan.request_id)

    # Cancel: a second request, cancelled before hub B's library did anything.
    other = _act(
        a,
        ill.create_request,
        reader,
        NewRequest(service_type="Copy", cluster_id=a.clusters["zh2"], pages="1-5"),
    )
    _delivered(a.worker(), 1)
    b_other = _incoming(b, other.request_id)
    _act(a, ill.cancel, staff_a, other.request_id, reason="no longer needed")
    assert _state(a, other.request_id) == ("Sent", "RequestReceived")  # the lender must agree
    _delivered(a.worker(), 1)
    assert _state(b, b_other) == ("Cancelled", "Cancelled")
    _delivered(b.worker(), 2)  # ExpectToSupply, CancelResponse Y
    assert _state(a, other.request_id) == ("Cancelled", "Cancelled")
    assert _events(a, other.request_id)[-2:] == [
        ("ill.lender.status", "ExpectToSupply"),
        ("ill.request.cancelled", "Cancelled"),
    ]
