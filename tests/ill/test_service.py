"""Requests through the service: creation, routing, every transition, refusals, the events.

The consortium is the demo's (tests/ill/world.py) with a union catalogue loaded through ingest.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts.models import User
from consortia.accounts.roles import CLI, Principal, Role
from consortia.errors import Conflict, Forbidden, Invalid, NotFound
from consortia.events.models import Event
from consortia.ill import service as ill
from consortia.ill.models import IllRequest, LenderAttempt
from consortia.ill.service import NewRequest
from consortia.ill.states import IllegalTransition
from consortia.members import service as members
from tests.ill import world
from tests.ill.world import TUESDAY, World

BOOKS = {
    # A Chinese book: the centre, a Guangdong member, a Jilin member, and the borrower itself.
    "zh0": {
        "CN-GDZSL": ["available"],
        "CN-SYSU": ["available"],
        "CN-JLU": ["available"],
        "CN-GZUCM": ["available"],
    },
    # On loan at one holder, a reference copy at the other: a copy is possible, a loan is not.
    "zh1": {"CN-SYSU": ["on_loan"], "CN-JNU": ["not_for_loan"]},
    "en1": {"CN-SCNU": ["available"], "CN-JLPL": ["available"]},
    "en2": {"CN-FOSU": []},  # a record without item data
}
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def w(session: Session, tmp_path: Path) -> World:
    return world.build(session, tmp_path, BOOKS, readers=("CN-GZUCM", "CN-SYSU"))


def reader(w: World) -> Principal:
    return w.readers["CN-GZUCM"]


def loan(w: World, key: str = "zh0", **kw: Any) -> NewRequest:
    return NewRequest(service_type="Loan", cluster_id=w.clusters[key], **kw)


def copy(w: World, key: str = "zh0", **kw: Any) -> NewRequest:
    kw.setdefault("article_title", "第三章 脏腑")
    kw.setdefault("pages", "45-60")
    return NewRequest(service_type="Copy", cluster_id=w.clusters[key], **kw)


def events(session: Session, request_id: int) -> list[Event]:
    session.expire_all()
    return ill.history(session, request_id)


def actions(session: Session, request_id: int) -> list[str]:
    return [e.action for e in events(session, request_id)]


def request_row(session: Session, request_id: int) -> IllRequest:
    session.expire_all()
    row = session.get(IllRequest, request_id)
    assert row is not None
    return row


def snapshot(session: Session, request_id: int) -> tuple[Any, ...]:
    """Everything a refused action must leave as it was."""
    session.expire_all()
    r = request_row(session, request_id)
    rota = [(a.status, a.closed, a.condition_state) for a in ill.rota_of(session, request_id)]
    n = session.scalar(select(func.count()).select_from(Event)) or 0
    return (r.state, r.version, r.lender_id, r.position, r.due_at, rota, n)


def lender_of(w: World, result: ill.Result) -> Principal:
    code = w.code(result.lender_id)
    assert code is not None
    return w.staff[code]


# ----------------------------------------------------------------------------- creating


def test_a_loan_goes_to_the_best_lender_with_the_rota_explained(session: Session, w: World) -> None:
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    session.commit()
    assert result.state == "Sent" and result.position == 0
    assert w.code(result.lender_id) == "CN-GDZSL"  # the region's centre
    r = request_row(session, result.request_id)
    assert (r.service_type, r.language, r.via) == ("Loan", "chinese", "reader")
    assert r.borrower_id == w.ids["CN-GZUCM"] == r.pickup_id
    assert r.reader_id == reader(w).user_id and r.title == "中医药学概论"
    assert r.created_at == TUESDAY and r.version == 2
    # Due in two working days: Thursday, same time.
    assert r.due_at == TUESDAY + dt.timedelta(days=2)
    rota = ill.rota_of(session, result.request_id)
    assert [w.code(a.lender_id) for a in rota] == ["CN-GDZSL", "CN-SYSU", "CN-JLU"]
    assert [a.status for a in rota] == ["RequestReceived", None, None]
    assert rota[0].sent_at == TUESDAY and rota[0].due_at == r.due_at
    assert rota[0].score > rota[1].score > rota[2].score
    assert "regional centre +10.0" in rota[0].reason and "same region" not in rota[2].reason
    assert rota[0].factors["centre"] == 10
    evs = events(session, result.request_id)
    assert [e.action for e in evs] == [
        "ill.request.created",
        "ill.request.routed",
        "ill.request.sent",
    ]
    assert [(e.payload["from"], e.payload["to"]) for e in evs] == [
        (None, "Submitted"),
        ("Submitted", "Routing"),
        ("Routing", "Sent"),
    ]
    for e in evs:
        assert e.at == TUESDAY and e.entity_type == "ill_request"
        assert e.payload["borrower"] == w.ids["CN-GZUCM"]
        assert (e.payload["service"], e.payload["lang"], e.payload["v"]) == ("Loan", "chinese", 2)
        assert e.actor == "user:gzucm-reader"
    assert evs[1].payload["rota"] == [a.lender_id for a in rota]
    assert evs[1].payload["excluded"] == {str(w.ids["CN-GZUCM"]): "borrower"}
    assert evs[2].payload["lender"] == w.ids["CN-GDZSL"] and evs[2].member_id == w.ids["CN-GDZSL"]


def test_language_comes_from_the_record_or_the_script_of_the_citation(
    session: Session, w: World
) -> None:
    english = ill.create_request(session, reader(w), loan(w, "en1"), at=TUESDAY)
    assert request_row(session, english.request_id).language == "foreign"
    # An English article in a Chinese journal is a foreign document, and the other way round.
    article = ill.create_request(
        session, reader(w), copy(w, "zh0", article_title="Acupuncture in Europe"), at=TUESDAY
    )
    assert request_row(session, article.request_id).language == "foreign"
    chapter = ill.create_request(
        session, reader(w), copy(w, "en1", article_title="中医在美国"), at=TUESDAY
    )
    assert request_row(session, chapter.request_id).language == "chinese"
    # Japanese (kana) is foreign even though it is written with Han characters too.
    assert ill.detect_language(article_title="漢方医学の歴史") == "foreign"
    assert ill.detect_language(title="黄帝内经") == "chinese"
    assert ill.detect_language(record_languages=["und", "chi"]) == "chinese"
    assert ill.detect_language() == "foreign"


def test_a_citation_is_matched_to_the_catalogue_by_isbn_or_title(
    session: Session, w: World
) -> None:
    cluster = session.get(ill.IllRequest.__mapper__.class_, 1)  # nothing yet
    assert cluster is None
    from consortia.catalog.models import Cluster

    zh0 = session.get(Cluster, w.clusters["zh0"])
    assert zh0 is not None
    isbn = zh0.merged["isbns"][0]["isbn13"]
    by_isbn = ill.create_request(
        session,
        reader(w),
        NewRequest(service_type="Loan", title="whatever the reader typed", isbn=isbn),
        at=TUESDAY,
    )
    assert request_row(session, by_isbn.request_id).cluster_id == w.clusters["zh0"]
    assert by_isbn.state == "Sent"
    by_title = ill.match_citation(session, NewRequest(service_type="Loan", title="中医药学概论"))
    assert by_title == w.clusters["zh0"]
    unknown = ill.create_request(
        session,
        reader(w),
        NewRequest(service_type="Copy", title="Journal of Nowhere", article_title="Nothing"),
        at=TUESDAY,
    )
    session.commit()
    r = request_row(session, unknown.request_id)
    assert (unknown.state, r.cluster_id, r.lender_id) == ("Unfilled", None, None)
    assert r.outcome == ill.R_NO_HOLDER and r.closed_at == TUESDAY
    evs = events(session, unknown.request_id)
    assert [e.action for e in evs] == ["ill.request.created", "ill.request.unfilled"]
    assert evs[1].payload["from"] == "Submitted" and evs[1].payload["to"] == "Unfilled"
    assert evs[1].payload["reasons"] == [ill.R_NO_HOLDER]


def test_holders_that_cannot_lend_make_it_unfilled_with_their_reasons(
    session: Session, w: World
) -> None:
    result = ill.create_request(session, reader(w), loan(w, "zh1"), at=TUESDAY)
    assert result.state == "Unfilled"
    reasons = events(session, result.request_id)[-1].payload["reasons"]
    assert reasons == [
        ill.R_NONE_ELIGIBLE,
        "CN-JNU: no copy available",
        "CN-SYSU: no copy available",
    ]
    # The reference copy at JNU may be copied.
    result = ill.create_request(session, reader(w), copy(w, "zh1"), at=TUESDAY)
    assert result.state == "Sent" and w.code(result.lender_id) == "CN-JNU"


def test_a_duplicate_of_an_open_request_is_refused_naming_it(session: Session, w: World) -> None:
    first = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    session.commit()
    before = snapshot(session, first.request_id)
    with pytest.raises(Conflict) as refused:
        ill.create_request(session, reader(w), loan(w), at=TUESDAY + HOUR)
    session.rollback()
    assert f"request {first.request_id} (Sent)" in str(refused.value)
    assert refused.value.params["id"] == first.request_id
    assert snapshot(session, first.request_id) == before
    assert session.scalar(select(func.count()).select_from(IllRequest)) == 1
    # Another chapter of the same book, another service, another reader: not duplicates.
    ill.create_request(session, reader(w), copy(w, pages="1-10"), at=TUESDAY)
    ill.create_request(session, reader(w), copy(w, pages="11-20"), at=TUESDAY)
    other = ill.create_request(session, w.readers["CN-SYSU"], loan(w), at=TUESDAY)
    assert w.code(other.lender_id) == "CN-GDZSL"
    # Once the first is over, the reader may ask again.
    ill.cancel(session, reader(w), first.request_id, at=TUESDAY + HOUR)
    again = ill.create_request(session, reader(w), loan(w), at=TUESDAY + 2 * HOUR)
    assert again.state == "Sent"


def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    session: Session, w: World
) -> None:
    cases: list[tuple[NewRequest, type[Exception], str]] = [
        (NewRequest(service_type="Scan", title="x"), Invalid, "service_type"),
        (NewRequest(service_type="Loan"), Invalid, "title"),
        (NewRequest(service_type="Loan", title="x" * 2001), Invalid, "title"),
        (NewRequest(service_type="Loan", cluster_id=999_999), NotFound, "cluster_id"),
        (
            NewRequest(service_type="Loan", title="x", needed_by=dt.date(2024, 3, 4)),
            Invalid,
            "needed_by",
        ),
        (NewRequest(service_type="Loan", title="x", language="latin"), Invalid, "language"),
        (NewRequest(service_type="Loan", title="x", pickup="CN-NOPE"), NotFound, "member"),
        (NewRequest(service_type="Loan", title="x", reader_id=999), Forbidden, ""),
    ]
    for new, error, field in cases:
        with pytest.raises(error) as refused:
            ill.create_request(session, reader(w), new, at=TUESDAY)
        session.rollback()
        assert refused.value.field == (field or None), new  # type: ignore[attr-defined]
    assert session.scalar(select(func.count()).select_from(IllRequest)) == 0
    ill_events = select(func.count()).select_from(Event).where(Event.action.like("ill.%"))
    assert session.scalar(ill_events) == 0
    with pytest.raises(Invalid, match="time zone"):
        ill.create_request(session, reader(w), loan(w), at=dt.datetime(2024, 3, 5))


def test_staff_create_for_their_own_readers_only(session: Session, w: World) -> None:
    gzucm_reader = reader(w).user_id
    staff = w.staff["CN-GZUCM"]
    result = ill.create_request(
        session, staff, loan(w, reader_id=gzucm_reader, pickup="CN-SYSU"), at=TUESDAY
    )
    r = request_row(session, result.request_id)
    assert (r.via, r.reader_id) == ("staff", gzucm_reader)
    assert r.pickup_id == w.ids["CN-SYSU"] and r.borrower_id == w.ids["CN-GZUCM"]
    with pytest.raises(Forbidden):
        ill.create_request(session, w.staff["CN-SYSU"], copy(w, reader_id=gzucm_reader))
    with pytest.raises(Invalid, match="reader_id"):
        ill.create_request(session, staff, copy(w))
    colleague = world.add_user(session, w, "gzucm-desk", Role.library_staff, "CN-GZUCM")
    with pytest.raises(Invalid, match="is not a reader"):
        ill.create_request(session, staff, copy(w, reader_id=colleague.user_id))
    session.rollback()
    with pytest.raises(NotFound, match="Unknown reader"):
        ill.create_request(session, staff, copy(w, reader_id=999_999))
    session.rollback()
    gone = session.get(User, gzucm_reader)
    assert gone is not None
    gone.active = False
    session.commit()
    with pytest.raises(Invalid, match="no longer active"):
        ill.create_request(session, staff, copy(w, reader_id=gzucm_reader))
    session.rollback()
    gone.active = True
    session.commit()
    with pytest.raises(Forbidden, match="only for themselves"):
        ill.create_request(session, reader(w), copy(w, reader_id=w.readers["CN-SYSU"].user_id))
    # The office or an import names the requesting library when there is no reader.
    imported = ill.create_request(
        session, CLI, copy(w, "en1", borrower="CN-SZLIB", requester_ref="SZ-17"), at=TUESDAY
    )
    r = request_row(session, imported.request_id)
    assert (r.via, r.reader_id, r.borrower_id) == ("import", None, w.ids["CN-SZLIB"])
    with pytest.raises(Conflict, match="SZ-17"):
        ill.create_request(session, CLI, copy(w, "en2", borrower="CN-SZLIB", requester_ref="SZ-17"))


def test_a_suspended_library_neither_borrows_nor_lends(session: Session, w: World) -> None:
    members.suspend_member(session, CLI, "CN-GDZSL", "fees unpaid")
    session.commit()
    ill.reset_caches()
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    assert w.code(result.lender_id) == "CN-SYSU"
    excluded = events(session, result.request_id)[1].payload["excluded"]
    assert excluded[str(w.ids["CN-GDZSL"])] == "not_active"
    with pytest.raises(Conflict, match="not an active member"):
        ill.create_request(session, CLI, copy(w, borrower="CN-GDZSL"))


# ----------------------------------------------------------------------------- the lender


def test_a_copy_from_request_to_completion(session: Session, w: World) -> None:
    result = ill.create_request(session, reader(w), copy(w), at=TUESDAY)
    lender = lender_of(w, result)
    shipped = ill.ship(session, lender, result.request_id, at=TUESDAY + 5 * HOUR)
    assert shipped.state == "Shipped"
    r = request_row(session, result.request_id)
    assert r.shipped_at == TUESDAY + 5 * HOUR
    # A delivered copy stays open for the reader as long as the policy's links live.
    assert r.due_at == r.shipped_at + dt.timedelta(days=14)
    done = ill.received(session, reader(w), result.request_id, at=TUESDAY + 9 * HOUR)
    session.commit()
    assert done.state == "Completed"
    r = request_row(session, result.request_id)
    assert (r.closed_at, r.received_at, r.due_at) == (TUESDAY + 9 * HOUR, r.closed_at, None)
    assert ill.rota_of(session, result.request_id)[0].status == "CopyCompleted"
    evs = events(session, result.request_id)
    assert [e.action for e in evs][3:] == ["ill.request.shipped", "ill.request.received"]
    shipped_event = evs[3]
    assert shipped_event.payload["status"] == "CopyCompleted"
    assert shipped_event.payload["lender"] == w.ids["CN-GDZSL"] and shipped_event.payload["v"] == 3
    assert shipped_event.member_id == w.ids["CN-GDZSL"] and shipped_event.actor == lender.label
    assert (evs[4].payload["from"], evs[4].payload["to"], evs[4].payload["v"]) == (
        "Shipped",
        "Completed",
        4,
    )
    assert evs[4].at == TUESDAY + 9 * HOUR


def test_a_loan_from_request_to_completion_with_a_renewal(session: Session, w: World) -> None:
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    rid, lender, desk = result.request_id, lender_of(w, result), w.staff["CN-GZUCM"]
    t = TUESDAY
    ill.will_supply(session, lender, rid, at=t + HOUR)
    r = request_row(session, rid)
    assert r.state == "Sent" and r.due_at == t + HOUR + dt.timedelta(days=6)  # 4 working days
    assert ill.rota_of(session, rid)[0].answered_at == t + HOUR
    ill.ship(session, lender, rid, at=t + 5 * HOUR)
    r = request_row(session, rid)
    assert r.loan_due_at == t + 5 * HOUR + dt.timedelta(days=30)
    assert r.due_at == r.loan_due_at - dt.timedelta(days=3)  # the reminder
    ill.received(session, desk, rid, at=t + dt.timedelta(days=2))
    ill.renew(session, reader(w), rid, at=t + dt.timedelta(days=20))
    ill.renew(session, reader(w), rid, at=t + dt.timedelta(days=20, hours=1))  # a repeat
    granted = ill.answer_renewal(session, lender, rid, approve=True, at=t + dt.timedelta(days=21))
    assert granted.state == "Received"
    r = request_row(session, rid)
    assert r.loan_due_at == t + 5 * HOUR + dt.timedelta(days=60)
    assert ill.rota_of(session, rid)[0].renewals == 1
    ill.returned(session, desk, rid, at=t + dt.timedelta(days=40))
    done = ill.checked_in(session, lender, rid, at=t + dt.timedelta(days=42))
    session.commit()
    assert done.state == "Completed"
    assert actions(session, rid)[3:] == [
        "ill.lender.status",
        "ill.request.shipped",
        "ill.request.received",
        "ill.loan.renew_requested",
        "ill.loan.renewed",
        "ill.request.returned",
        "ill.request.completed",
    ]
    states = [(e.payload["from"], e.payload["to"]) for e in events(session, rid)[3:]]
    assert states == [
        ("Sent", "Sent"),
        ("Sent", "Shipped"),
        ("Shipped", "Received"),
        ("Received", "Received"),
        ("Received", "Received"),
        ("Received", "Returned"),
        ("Returned", "Completed"),
    ]
    assert [e.payload["v"] for e in events(session, rid)] == [2, 2, 2, 3, 4, 5, 6, 7, 8, 9]
    assert ill.rota_of(session, rid)[0].status == "LoanCompleted"


def test_unfilled_moves_on_to_the_next_lender_until_the_rota_ends(
    session: Session, w: World
) -> None:
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    rid = result.request_id
    second = ill.unfilled(session, lender_of(w, result), rid, "not on the shelf", at=TUESDAY + HOUR)
    assert (second.state, w.code(second.lender_id), second.position) == ("Sent", "CN-SYSU", 1)
    r = request_row(session, rid)
    assert r.due_at == TUESDAY + HOUR + dt.timedelta(days=2)
    third = ill.unfilled(session, lender_of(w, second), rid, "damaged", at=TUESDAY + 2 * HOUR)
    assert w.code(third.lender_id) == "CN-JLU"
    last = ill.unfilled(session, lender_of(w, third), rid, "lost", at=TUESDAY + 3 * HOUR)
    session.commit()
    assert (last.state, last.lender_id) == ("Unfilled", None)
    r = request_row(session, rid)
    assert r.outcome == ill.R_EXHAUSTED and r.closed_at == TUESDAY + 3 * HOUR
    rota = ill.rota_of(session, rid)
    assert [(a.status, a.closed, a.note) for a in rota] == [
        ("Unfilled", "unfilled", "not on the shelf"),
        ("Unfilled", "unfilled", "damaged"),
        ("Unfilled", "unfilled", "lost"),
    ]
    evs = events(session, rid)
    assert [e.action for e in evs][3:] == [
        "ill.request.declined",
        "ill.request.sent",
        "ill.request.declined",
        "ill.request.sent",
        "ill.request.declined",
        "ill.request.unfilled",
    ]
    declined = evs[3]
    assert (declined.payload["from"], declined.payload["to"]) == ("Sent", "Routing")
    assert declined.payload["lender"] == w.ids["CN-GDZSL"]
    assert declined.payload["reason"] == "not on the shelf"
    assert evs[4].payload["lender"] == w.ids["CN-SYSU"] and evs[4].payload["position"] == 1
    assert evs[-1].payload["reasons"] == [
        "CN-GDZSL: unfilled (not on the shelf)",
        "CN-SYSU: unfilled (damaged)",
        "CN-JLU: unfilled (lost)",
    ]
    assert evs[-1].payload["lender"] is None


def test_a_candidate_suspended_meanwhile_is_skipped(session: Session, w: World) -> None:
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    members.suspend_member(session, CLI, "CN-SYSU")
    session.commit()
    ill.reset_caches()
    nxt = ill.unfilled(session, lender_of(w, result), result.request_id, "no", at=TUESDAY + HOUR)
    assert w.code(nxt.lender_id) == "CN-JLU" and nxt.position == 2
    rota = ill.rota_of(session, result.request_id)
    assert (rota[1].status, rota[1].closed) == (None, "skipped")


def test_conditions_accepted_or_rejected(session: Session, w: World) -> None:
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    rid, lender = result.request_id, lender_of(w, result)
    ill.conditional(session, lender, rid, "library use only", at=TUESDAY + HOUR)
    attempt = ill.rota_of(session, rid)[0]
    assert (attempt.status, attempt.condition, attempt.condition_state) == (
        "ExpectToSupply",
        "library use only",
        "pending",
    )
    with pytest.raises(IllegalTransition, match="conditions pending"):
        ill.ship(session, lender, rid)
    ill.decide_conditions(session, reader(w), rid, accept=True, at=TUESDAY + 2 * HOUR)
    assert ill.ship(session, lender, rid, at=TUESDAY + 3 * HOUR).state == "Shipped"
    assert "ill.lender.conditions_accepted" in actions(session, rid)
    # Another request: the reader rejects the condition and the next lender is asked.
    other = ill.create_request(session, reader(w), copy(w), at=TUESDAY)
    ill.conditional(session, lender_of(w, other), other.request_id, "a fee of 20 yuan")
    nxt = ill.decide_conditions(session, reader(w), other.request_id, accept=False)
    assert w.code(nxt.lender_id) == "CN-SYSU"
    first = ill.rota_of(session, other.request_id)[0]
    assert (first.status, first.closed, first.condition_state) == (
        "Cancelled",
        "conditions_rejected",
        "rejected",
    )
    with pytest.raises(Conflict, match="no condition"):
        ill.decide_conditions(session, reader(w), other.request_id, accept=True)


def test_cancel_at_once_before_the_lender_acts_else_the_lender_agrees(
    session: Session, w: World
) -> None:
    result = ill.create_request(session, reader(w), copy(w), at=TUESDAY)
    done = ill.cancel(session, reader(w), result.request_id, reason="found it", at=TUESDAY + HOUR)
    assert done.state == "Cancelled"
    r = request_row(session, result.request_id)
    assert (r.outcome, r.closed_at) == ("found it", TUESDAY + HOUR)
    assert ill.rota_of(session, result.request_id)[0].status == "Cancelled"
    # Once the lender said it will supply, it must agree.
    other = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    rid, lender = other.request_id, lender_of(w, other)
    ill.will_supply(session, lender, rid)
    asked = ill.cancel(session, reader(w), rid, reason="too late")
    assert asked.state == "Sent"
    ill.answer_cancel(session, lender, rid, approve=False, note="already in the van")
    assert request_row(session, rid).state == "Sent"
    ill.cancel(session, reader(w), rid)
    agreed = ill.answer_cancel(session, lender, rid, approve=True)
    assert agreed.state == "Cancelled"
    assert actions(session, rid)[4:] == [
        "ill.request.cancel_requested",
        "ill.request.cancel_refused",
        "ill.request.cancel_requested",
        "ill.request.cancelled",
    ]
    untouched = ill.create_request(session, w.readers["CN-SYSU"], copy(w), at=TUESDAY)
    assert untouched.lender_id == other.lender_id
    with pytest.raises(Conflict, match="no cancellation"):
        ill.answer_cancel(session, lender, untouched.request_id, approve=True)
    with pytest.raises(IllegalTransition, match="when the request is Cancelled"):
        ill.answer_cancel(session, lender, rid, approve=True)


# ----------------------------------------------------------------------------- refusals


def test_an_illegal_action_is_refused_naming_state_and_action_and_changes_nothing(
    session: Session, w: World
) -> None:
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    rid, lender, desk = result.request_id, lender_of(w, result), w.staff["CN-GZUCM"]
    session.commit()
    before = snapshot(session, rid)
    refusals = [
        (
            lambda: ill.received(session, desk, rid),
            "Received is not allowed when the request is RequestReceived",
        ),
        (lambda: ill.returned(session, desk, rid), "ShippedReturn is not allowed"),
        (lambda: ill.renew(session, reader(w), rid), "Renew is not allowed"),
        (
            lambda: ill.checked_in(session, lender, rid),
            "LoanCompleted is not allowed when the request is RequestReceived",
        ),
        (
            lambda: ill.lender_status(session, lender, rid, "CopyCompleted"),
            "CopyCompleted is not allowed",
        ),
    ]
    for call, message in refusals:
        with pytest.raises(IllegalTransition, match=message):
            call()
        session.rollback()
        assert snapshot(session, rid) == before
    with pytest.raises(Conflict, match="no renewal"):
        ill.answer_renewal(session, lender, rid, approve=True)
    session.rollback()
    assert snapshot(session, rid) == before


def test_terminal_states_never_change(session: Session, w: World) -> None:
    result = ill.create_request(session, reader(w), copy(w), at=TUESDAY)
    rid, lender = result.request_id, lender_of(w, result)
    ill.ship(session, lender, rid)
    ill.received(session, reader(w), rid)
    session.commit()
    before = snapshot(session, rid)
    for call in (
        lambda: ill.cancel(session, reader(w), rid),
        lambda: ill.received(session, reader(w), rid),
        lambda: ill.ship(session, lender, rid),
        lambda: ill.unfilled(session, lender, rid, "no"),
        lambda: ill.will_supply(session, lender, rid),
    ):
        with pytest.raises(IllegalTransition) as refused:
            call()
        session.rollback()
        assert refused.value.state == "Completed"
        assert snapshot(session, rid) == before


def test_who_may_act(session: Session, w: World) -> None:
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    rid = result.request_id
    session.commit()
    before = snapshot(session, rid)
    sysu_reader = w.readers["CN-SYSU"]
    refusals: list[tuple[Any, type[Exception]]] = [
        (lambda: ill.will_supply(session, reader(w), rid), Forbidden),  # a reader is no lender
        (lambda: ill.will_supply(session, w.staff["CN-SYSU"], rid), Forbidden),  # not its turn
        (lambda: ill.ship(session, w.staff["CN-GZUCM"], rid), Forbidden),  # the borrower
        (lambda: ill.cancel(session, sysu_reader, rid), NotFound),  # someone else's
        (lambda: ill.cancel(session, w.staff["CN-JNU"], rid), Forbidden),
        (lambda: ill.will_supply(session, lender_of(w, result), 999), NotFound),
    ]
    for call, error in refusals:
        with pytest.raises(error):
            call()
        session.rollback()
        assert snapshot(session, rid) == before
    # The office may act for anyone.
    office = Principal(kind="user", label="user:office", role=Role.consortium_admin)
    assert ill.will_supply(session, office, rid).state == "Sent"
    # A reader confirms a copy, not a loan (it arrives at the library's desk).
    ill.ship(session, office, rid)
    with pytest.raises(Forbidden):
        ill.received(session, reader(w), rid)


def test_a_stale_write_is_refused(session: Session, w: World, engine: Any) -> None:
    """Two writers read the same version: the second one's write finds it moved."""
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    session.commit()
    from consortia.ill.service import _SQL_LOAD, _Db, _Row, _Tx

    with engine.connect() as a, engine.connect() as b:
        # Plain reads (PostgreSQL's transitions lock the row first; SQLite's cannot).
        found_a = _Db(a).one(_SQL_LOAD, (result.request_id,))
        found_b = _Db(b).one(_SQL_LOAD, (result.request_id,))
        assert found_a is not None and found_b is not None
        row_a, row_b = _Row(*found_a), _Row(*found_b)
        assert row_a.version == row_b.version
        tx = _Tx(_Db(a), row_a, CLI, TUESDAY)
        tx.event("test.one", "Sent", "Sent", None)
        tx.write()
        a.commit()
        tx = _Tx(_Db(b), row_b, CLI, TUESDAY)
        tx.event("test.two", "Sent", "Sent", None)
        with pytest.raises(Conflict, match="changed meanwhile"):
            tx.write()
        b.rollback()
    assert actions(session, result.request_id)[-1] == "test.one"


# ----------------------------------------------------------------------------- reads


def test_lists_by_role(session: Session, w: World) -> None:
    mine = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    theirs = ill.create_request(session, w.readers["CN-SYSU"], copy(w, "en1"), at=TUESDAY)
    session.commit()
    items, total = ill.list_requests(session, reader(w))
    assert [r.id for r in items] == [mine.request_id] and total == 1
    lending, _ = ill.list_requests(session, w.staff["CN-GDZSL"], queue="lending")
    assert {r.id for r in lending} == {mine.request_id}
    borrowing, _ = ill.list_requests(session, w.staff["CN-SYSU"])
    assert [r.id for r in borrowing] == [theirs.request_id]
    scnu_lending, _ = ill.list_requests(session, w.staff["CN-SCNU"], queue="lending")
    assert [r.id for r in scnu_lending] == [theirs.request_id]
    with pytest.raises(Forbidden):
        ill.list_requests(session, w.staff["CN-SYSU"], member="CN-GZUCM")
    office = Principal(kind="user", label="user:office", role=Role.consortium_admin)
    _, total = ill.list_requests(session, office)
    assert total == 2
    gz, _ = ill.list_requests(session, office, member="CN-GZUCM")
    assert [r.id for r in gz] == [mine.request_id]
    with pytest.raises(Invalid, match="queue"):
        ill.list_requests(session, office, queue="both")
    # Seeing one request: its lender and borrower may, others may not.
    assert ill.get_request(session, w.staff["CN-GDZSL"], mine.request_id).id == mine.request_id
    with pytest.raises(Forbidden):
        ill.get_request(session, w.staff["CN-JNU"], mine.request_id)
    with pytest.raises(NotFound):
        ill.get_request(session, w.readers["CN-SYSU"], mine.request_id)
    # A library asked earlier in the rota keeps seeing what it was asked.
    ill.unfilled(session, w.staff["CN-GDZSL"], mine.request_id, "no")
    session.commit()
    seen = ill.get_request(session, w.staff["CN-GDZSL"], mine.request_id)
    assert seen.lender_id == w.ids["CN-SYSU"]


def test_allowed_actions_follow_the_state(session: Session, w: World) -> None:
    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    r = request_row(session, result.request_id)
    lender = lender_of(w, result)
    assert ill.allowed_actions(lender, r, "RequestReceived") == [
        "will-supply",
        "conditional",
        "unfilled",
        "ship",
    ]
    assert ill.allowed_actions(reader(w), r, "RequestReceived") == ["cancel"]
    ill.ship(session, lender, r.id)
    r = request_row(session, r.id)
    assert ill.allowed_actions(w.staff["CN-GZUCM"], r, "Loaned") == ["received", "renew", "return"]
    assert ill.allowed_actions(reader(w), r, "Loaned") == ["renew"]
    assert ill.allowed_actions(lender, r, "Loaned") == ["checked-in"]


def test_policy_and_calendar_are_the_offices(session: Session, w: World) -> None:
    assert ill.current_policy(session, TUESDAY) == ill.DEFAULT_POLICY
    office = Principal(kind="user", label="user:office", role=Role.consortium_admin)
    with pytest.raises(Forbidden):
        ill.set_policy(session, w.staff["CN-GZUCM"], link_valid_days=3)
    with pytest.raises(Invalid, match="between 1 and 365"):
        ill.set_policy(session, office, link_valid_days=0)
    ill.set_policy(session, office, effective_from=TUESDAY, link_valid_days=7, note="test")
    session.commit()
    policy = ill.current_policy(session, TUESDAY + HOUR)
    assert policy.link_valid_days == 7 and policy.max_pages_per_request == 50
    assert ill.current_policy(session, TUESDAY - HOUR) == ill.DEFAULT_POLICY
    result = ill.create_request(session, reader(w), copy(w), at=TUESDAY)
    ill.ship(session, lender_of(w, result), result.request_id, at=TUESDAY + HOUR)
    assert request_row(session, result.request_id).due_at == TUESDAY + HOUR + dt.timedelta(days=7)
    # Thursday a holiday: a request sent on Tuesday is due on Friday.
    ill.set_calendar_day(session, office, dt.date(2024, 3, 7), working=False, name="test")
    session.commit()
    other = ill.create_request(session, reader(w), loan(w, "en1"), at=TUESDAY)
    assert request_row(session, other.request_id).due_at == TUESDAY + dt.timedelta(days=3)
    assert (
        session.scalar(
            select(func.count()).select_from(Event).where(Event.action == "ill.calendar.set")
        )
        == 1
    )


def test_attempt_rows_are_the_rota(session: Session, w: World) -> None:
    result = ill.create_request(session, reader(w), copy(w, "en2"), at=TUESDAY)
    (only,) = ill.rota_of(session, result.request_id)
    assert isinstance(only, LenderAttempt)
    assert w.code(only.lender_id) == "CN-FOSU"
    assert only.factors["no_item_data"] == -5
    # FOSU takes three working days to respond: Tuesday -> Friday.
    assert only.due_at == TUESDAY + dt.timedelta(days=3)


def test_sqlite_connections_the_service_writes_on_checkpoint_less_often(
    session: Session, w: World
) -> None:
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        pytest.skip("a SQLite setting")
    ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    # The same DBAPI connection, as the pool keeps it for the next transaction.
    assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 40_000
    assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -65_536
    session.commit()
    assert session.connection().exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_on_sqlite_a_transition_waits_its_turn_for_the_write_lock(
    session: Session, w: World, engine: Any
) -> None:
    """Another process holding SQLite's write lock: the transition waits for it (asking again
    every fraction of a millisecond, not by the busy handler's growing sleeps), then writes;
    one that waited too long is refused with nothing written."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    import sqlite3
    import threading
    import time

    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    session.commit()
    rid, lender = result.request_id, lender_of(w, result)
    other = sqlite3.connect(engine.url.database, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.2, other.execute, ("COMMIT",)).start()
        started = time.monotonic()
        with engine.connect() as conn:
            assert ill.will_supply(conn, lender, rid, at=TUESDAY + HOUR).version == 3
            conn.commit()
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert time.monotonic() - started >= 0.2
        # Held past the wait: refused, nothing written, the busy timeout as it was.
        other.execute("BEGIN IMMEDIATE")
        wait = ill.WRITE_LOCK_WAIT
        ill.WRITE_LOCK_WAIT = 0.3
        try:
            with engine.connect() as conn:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    ill.ship(conn, lender, rid, at=TUESDAY + 2 * HOUR)
                conn.rollback()
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        finally:
            ill.WRITE_LOCK_WAIT = wait
            other.execute("COMMIT")
    finally:
        other.close()
    session.expire_all()
    assert request_row(session, rid).version == 3
    assert actions(session, rid)[-1] == "ill.lender.status"


def _wal_index(path: Path) -> tuple[int, int]:
    """The WAL's last frame and the last one copied back to the database file (the wal-index
    header, sqlite.org/walformat.html: mxFrame at byte 16, nBackfill at byte 96)."""
    import struct

    data = Path(f"{path}-shm").read_bytes()[:100]
    return struct.unpack_from("=I", data, 16)[0], struct.unpack_from("=I", data, 96)[0]


def test_on_sqlite_the_wal_is_copied_back_off_the_writers_thread(
    session: Session, w: World, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer checkpoints only every 40,000 WAL pages; a thread copies the WAL back into
    the database file meanwhile (without blocking anyone) and stops when nothing is written."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's WAL")
    import threading
    import time

    monkeypatch.setattr(ill, "CHECKPOINT_EVERY", 0.01)
    monkeypatch.setattr(ill, "CHECKPOINT_IDLE", 0.3)
    path = Path(engine.url.database)

    def checkpointers() -> int:
        return sum(t.name == "consortia-ill-checkpoint" for t in threading.enumerate())

    result = ill.create_request(session, reader(w), loan(w), at=TUESDAY)
    session.commit()
    ill.will_supply(session, lender_of(w, result), result.request_id, at=TUESDAY + HOUR)
    session.commit()
    assert checkpointers() >= 1
    deadline = time.monotonic() + 5
    while True:
        last, copied = _wal_index(path)
        if last and copied == last:
            break
        assert time.monotonic() < deadline, (last, copied)
        time.sleep(0.01)
    # Idle: the thread ends; the next transition starts it again.
    deadline = time.monotonic() + 5
    while checkpointers():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ill.ship(session, lender_of(w, result), result.request_id, at=TUESDAY + 2 * HOUR)
    session.commit()
    assert checkpointers() == 1
    assert request_row(session, result.request_id).state == "Shipped"
