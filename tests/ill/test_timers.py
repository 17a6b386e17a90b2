"""The timers: lenders' days to respond, loans coming due and overdue, unconfirmed copies, links.

And several workers at once on PostgreSQL: every due request advanced exactly once.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from consortia import db as dbmod
from consortia.events.models import Event
from consortia.ill import service as ill
from consortia.ill.models import DeliveredDocument, DownloadLink, IllRequest, Notice
from consortia.ill.service import NewRequest
from tests.ill import world
from tests.ill.world import TUESDAY, World

BOOKS = {
    "zh0": {"CN-GDZSL": ["available"], "CN-SYSU": ["available"], "CN-JLU": ["available"]},
    "en1": {"CN-SCNU": ["available"]},
}
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
THURSDAY = TUESDAY + 2 * DAY


@pytest.fixture
def w(session: Session, tmp_path: Path) -> World:
    return world.build(session, tmp_path, BOOKS, readers=("CN-GZUCM",))


def factory() -> Any:
    return dbmod.session_factory()


def loan(w: World, key: str = "zh0") -> NewRequest:
    return NewRequest(service_type="Loan", cluster_id=w.clusters[key])


def row(session: Session, request_id: int) -> IllRequest:
    session.expire_all()
    found = session.get(IllRequest, request_id)
    assert found is not None
    return found


def actions(session: Session, request_id: int) -> list[str]:
    session.expire_all()
    return [e.action for e in ill.history(session, request_id)]


def test_no_answer_in_time_moves_to_the_next_lender(session: Session, w: World) -> None:
    result = ill.create_request(session, w.readers["CN-GZUCM"], loan(w), at=TUESDAY)
    session.commit()
    rid = result.request_id
    early = ill.expire_unanswered(factory(), now=THURSDAY - dt.timedelta(minutes=1))
    assert (early.checked, early.advanced) == (0, 0)
    report = ill.expire_unanswered(factory(), now=THURSDAY + HOUR)
    assert (report.advanced, report.events) == (
        1,
        {"ill.request.declined": 1, "ill.request.sent": 1},
    )
    r = row(session, rid)
    assert w.code(r.lender_id) == "CN-SYSU" and r.position == 1
    # Sent on Thursday 11:00 in Guangzhou with two working days: Monday 11:00.
    assert r.due_at == THURSDAY + HOUR + 4 * DAY
    first = ill.rota_of(session, rid)[0]
    assert (first.status, first.closed, first.note) == (
        "RequestReceived",
        "expired",
        ill.R_EXPIRED,
    )
    declined = ill.history(session, rid)[3]
    assert declined.actor == "system:timers" and declined.at == THURSDAY + HOUR
    assert declined.payload["status"] == "expired"
    assert declined.payload["lender"] == w.ids["CN-GDZSL"]
    # Running again changes nothing.
    again = ill.expire_unanswered(factory(), now=THURSDAY + 2 * HOUR)
    assert again.advanced == 0
    assert actions(session, rid).count("ill.request.declined") == 1
    # The others let it expire too: Unfilled, with every lender's reason.
    ill.expire_unanswered(factory(), now=THURSDAY + 5 * DAY)
    last = ill.expire_unanswered(factory(), now=THURSDAY + 10 * DAY)
    assert last.results[0].state == "Unfilled"
    reasons = ill.history(session, rid)[-1].payload["reasons"]
    assert reasons == [
        "CN-GDZSL: expired (no answer in time)",
        "CN-SYSU: expired (no answer in time)",
        "CN-JLU: expired (no answer in time)",
    ]


def test_an_answer_gives_the_lender_time_to_ship(session: Session, w: World) -> None:
    result = ill.create_request(session, w.readers["CN-GZUCM"], loan(w), at=TUESDAY)
    lender = w.staff["CN-GDZSL"]
    ill.will_supply(session, lender, result.request_id, at=TUESDAY + HOUR)
    session.commit()
    assert ill.expire_unanswered(factory(), now=THURSDAY + HOUR).advanced == 0
    # Four working days from Tuesday 11:00: Monday 11:00.
    assert ill.expire_unanswered(factory(), now=TUESDAY + 6 * DAY).advanced == 0
    assert ill.expire_unanswered(factory(), now=TUESDAY + 6 * DAY + 2 * HOUR).advanced == 1


def test_loans_are_reminded_then_overdue(session: Session, w: World) -> None:
    reader = w.readers["CN-GZUCM"]
    result = ill.create_request(session, reader, loan(w), at=TUESDAY)
    rid, lender, desk = result.request_id, w.staff["CN-GDZSL"], w.staff["CN-GZUCM"]
    ill.ship(session, lender, rid, at=TUESDAY)
    ill.received(session, desk, rid, at=TUESDAY + DAY)
    session.commit()
    due = TUESDAY + 30 * DAY
    assert ill.loan_timers(factory(), now=due - 4 * DAY).advanced == 0
    reminded = ill.loan_timers(factory(), now=due - 3 * DAY)
    assert reminded.events == {"ill.loan.reminded": 1}
    notice = session.scalar(select(Notice).where(Notice.request_id == rid))
    assert notice is not None
    assert (notice.kind, notice.email, notice.state) == (
        "loan_due_soon",
        "gzucm@reader.example.org",
        "pending",
    )
    assert notice.user_id == reader.user_id and notice.dedupe_key.startswith(f"loan_due:{rid}:")
    assert row(session, rid).due_at == due
    assert ill.loan_timers(factory(), now=due - HOUR).advanced == 0
    overdue = ill.loan_timers(factory(), now=due + HOUR)
    assert overdue.events == {"ill.lender.status": 1}
    assert ill.rota_of(session, rid)[0].status == "Overdue"
    assert ill.history(session, rid)[-1].payload["status"] == "Overdue"
    assert row(session, rid).due_at == due + HOUR + 7 * DAY
    weekly = ill.loan_timers(factory(), now=due + 8 * DAY)
    assert weekly.events == {"ill.loan.overdue_reminded": 1}
    kinds = Counter(session.scalars(select(Notice.kind).where(Notice.request_id == rid)))
    assert kinds == {"loan_due_soon": 1, "loan_overdue": 2}
    # Renewed while overdue: Loaned again, with a new due date and its own reminder.
    ill.renew(session, reader, rid, at=due + 8 * DAY)
    ill.answer_renewal(session, lender, rid, approve=True, at=due + 9 * DAY)
    assert ill.rota_of(session, rid)[0].status == "Loaned"
    ill.returned(session, desk, rid, at=due + 10 * DAY)
    session.commit()
    assert row(session, rid).due_at is None
    assert ill.loan_timers(factory(), now=due + 100 * DAY).advanced == 0


def test_a_delivered_copy_nobody_confirms_completes_by_itself(session: Session, w: World) -> None:
    new = NewRequest(service_type="Copy", cluster_id=w.clusters["en1"], article_title="Ch. 1")
    result = ill.create_request(session, w.readers["CN-GZUCM"], new, at=TUESDAY)
    ill.ship(session, w.staff["CN-SCNU"], result.request_id, at=TUESDAY + HOUR)
    session.commit()
    assert ill.loan_timers(factory(), now=TUESDAY + 14 * DAY).advanced == 0
    report = ill.loan_timers(factory(), now=TUESDAY + 14 * DAY + HOUR)
    assert report.events == {"ill.request.completed": 1}
    r = row(session, result.request_id)
    assert (r.state, r.closed_at, r.due_at) == ("Completed", TUESDAY + 14 * DAY + HOUR, None)
    last = ill.history(session, result.request_id)[-1]
    assert last.payload["auto"] is True and last.payload["from"] == "Shipped"


def test_expired_links_are_marked_once(session: Session, w: World) -> None:
    new = NewRequest(service_type="Copy", cluster_id=w.clusters["en1"], article_title="Ch. 2")
    result = ill.create_request(session, w.readers["CN-GZUCM"], new, at=TUESDAY)
    session.commit()
    doc = DeliveredDocument(
        request_id=result.request_id,
        file_path="x.pdf",
        sha256="0" * 64,
        pages=3,
        size_bytes=100,
    )
    session.add(doc)
    session.flush()
    for i, expires in enumerate((TUESDAY + DAY, TUESDAY + 3 * DAY)):
        session.add(
            DownloadLink(
                document_id=doc.id,
                request_id=result.request_id,
                token_hash=f"{i:064d}",
                expires_at=expires,
                max_downloads=5,
            )
        )
    session.commit()
    assert ill.expire_links(factory(), now=TUESDAY + 2 * DAY) == 1
    assert ill.expire_links(factory(), now=TUESDAY + 2 * DAY) == 0
    assert ill.expire_links(factory(), now=TUESDAY + 4 * DAY) == 1
    session.expire_all()
    expired = session.scalars(select(DownloadLink.expired_at).order_by(DownloadLink.id)).all()
    assert expired == [TUESDAY + 2 * DAY, TUESDAY + 4 * DAY]
    assert actions(session, result.request_id).count("ill.link.expired") == 2


def test_two_workers_never_advance_a_request_twice(
    session: Session, w: World, engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip(
            "needs PostgreSQL: SQLite has one writer at a time, so two workers cannot race on "
            "a row there (the version check behind it is test_service's stale-write test)"
        )
    readers = [w.readers["CN-GZUCM"]]
    ids = []
    for i in range(120):
        new = NewRequest(
            service_type="Copy", cluster_id=w.clusters["zh0"], article_title=f"第{i}章"
        )
        ids.append(ill.create_request(session, readers[0], new, at=TUESDAY).request_id)
    session.commit()
    start = threading.Barrier(2)
    reports: list[ill.TimerReport] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait()
            # A small page makes both workers walk the same due rows together.
            reports.append(
                ill._run_timer(
                    factory(),
                    ("Sent",),
                    ill._expire_one,
                    THURSDAY + HOUR,
                    limit=10_000,
                    batch=10,
                )
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(r.advanced for r in reports) == len(ids)
    assert all(r.advanced > 0 for r in reports), [r.advanced for r in reports]
    # They met: each saw rows the other had taken (locked, or already moved on).
    assert sum(r.skipped for r in reports) > 0
    session.expire_all()
    declined = Counter(
        int(e)
        for e in session.scalars(
            select(Event.entity_id).where(Event.action == "ill.request.declined")
        )
    )
    assert declined == {rid: 1 for rid in ids}
    versions = {
        rid: v
        for rid, v in session.execute(
            select(IllRequest.id, IllRequest.version).where(IllRequest.id.in_(ids))
        )
    }
    assert set(versions.values()) == {3}
    positions = session.scalars(select(func.count()).where(IllRequest.position == 1)).one()
    assert positions == len(ids)


def test_closed_requests_forget_their_reader_after_a_year(session: Session, w: World) -> None:
    reader = w.readers["CN-GZUCM"]
    new = NewRequest(service_type="Copy", cluster_id=w.clusters["en1"], note="for my thesis")
    done = ill.create_request(session, reader, new, at=TUESDAY)
    ill.ship(session, w.staff["CN-SCNU"], done.request_id, at=TUESDAY)
    ill.received(session, reader, done.request_id, at=TUESDAY + DAY)
    still_open = ill.create_request(session, reader, loan(w), at=TUESDAY)
    session.commit()
    year = dt.timedelta(days=365)
    assert ill.anonymise_closed(factory(), now=TUESDAY + year) == 0
    assert ill.anonymise_closed(factory(), now=TUESDAY + DAY + year + HOUR) == 1
    assert ill.anonymise_closed(factory(), now=TUESDAY + 3 * year) == 0
    r = row(session, done.request_id)
    assert (r.reader_id, r.note, r.anonymised_at) == (None, "", TUESDAY + DAY + year + HOUR)
    assert row(session, still_open.request_id).reader_id == reader.user_id
    # The events still count it, for the statistics.
    assert actions(session, done.request_id)[0] == "ill.request.created"
    assert ill.history(session, done.request_id)[0].payload["lang"] == "foreign"


def test_the_timers_are_periodic_tasks_that_run_the_service(session: Session, w: World) -> None:
    from huey.api import PeriodicTask

    from consortia.ill import tasks

    periodic = {
        tasks.ill_expire_unanswered,
        tasks.ill_loan_timers,
        tasks.ill_expire_links,
        tasks.ill_anonymise,
    }
    assert all(isinstance(t.task_class(), PeriodicTask) for t in periodic)
    result = ill.create_request(session, w.readers["CN-GZUCM"], loan(w), at=TUESDAY)
    session.commit()
    # Run now (the request's deadline passed long ago): the task moves it on.
    summary = tasks.ill_expire_unanswered.call_local()
    assert summary["advanced"] == 1 and summary["events"]["ill.request.declined"] == 1
    assert row(session, result.request_id).position == 1
    assert tasks.ill_loan_timers.call_local()["advanced"] == 0
    assert tasks.ill_expire_links.call_local() == {"expired": 0}
