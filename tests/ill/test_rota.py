"""Lender routing (who is asked, in which order, and why) and working-day deadlines."""

from __future__ import annotations

import datetime as dt

import pytest

from consortia.ill import rota, workdays
from consortia.ill.rota import Exclusion, Load, MemberInfo

GD, JL = 1, 2


def member(mid: int, code: str, region: int = GD, **kw: object) -> MemberInfo:
    values: dict[str, object] = {
        "id": mid,
        "code": code,
        "region_id": region,
        "is_centre": False,
        "status": "active",
        "lends_loans": True,
        "lends_copies": True,
        "max_open_lending": 100,
        "days_to_respond": 2,
        "loan_period_days": 30,
    }
    values.update(kw)
    return MemberInfo(**values)  # type: ignore[arg-type]


BORROWER = member(1, "CN-GZUCM")
CENTRE = member(2, "CN-GDZSL", is_centre=True)
NEAR = member(3, "CN-SYSU")
FAR = member(4, "CN-JLU", region=JL)
FAR_CENTRE = member(5, "CN-JLPL", region=JL, is_centre=True)
MEMBERS = {m.id: m for m in (BORROWER, CENTRE, NEAR, FAR, FAR_CENTRE)}


def codes(plan: rota.Rota) -> list[str]:
    return [c.code for c in plan.candidates]


def test_same_region_first_and_its_centre_before_other_members_of_it() -> None:
    holdings = {m: ["available"] for m in MEMBERS}
    plan = rota.build(BORROWER, "Loan", holdings, MEMBERS, {})
    # Another region's centre gets no regional bonus.
    assert codes(plan) == ["CN-GDZSL", "CN-SYSU", "CN-JLPL", "CN-JLU"]
    assert [e.code for e in plan.excluded] == ["CN-GZUCM"]
    assert plan.excluded[0].why is Exclusion.BORROWER
    first = plan.candidates[0]
    assert first.score == pytest.approx(30 + 10 + 18)
    assert first.reason.startswith("same region +30.0; regional centre +10.0;")
    assert "fill rate 90% assumed +18.0" in first.reason
    assert first.factors["same_region"] == 30 and first.factors["centre"] == 10
    assert plan.candidates[1].score == pytest.approx(30 + 18)
    # Equal scores: by code, so the order is the same every time.
    assert plan.candidates[2].score == plan.candidates[3].score


def test_load_balance_prefers_members_that_borrow_more_than_they_lend() -> None:
    a, b = member(6, "CN-AAA"), member(7, "CN-BBB")
    members = {m.id: m for m in (BORROWER, a, b)}
    loads = {6: Load(lent=90, borrowed=10), 7: Load(lent=10, borrowed=90)}
    plan = rota.build(BORROWER, "Copy", {6: ["available"], 7: ["available"]}, members, loads)
    assert codes(plan) == ["CN-BBB", "CN-AAA"]
    balance = {c.code: c.factors["balance"]["points"] for c in plan.candidates}
    assert balance["CN-BBB"] == pytest.approx(10 * 80 / 110)
    assert balance["CN-AAA"] == pytest.approx(-10 * 80 / 110)
    assert "lent 10, borrowed 90 +7.3" in plan.candidates[0].reason


def test_open_queue_fill_rate_and_turnaround_move_a_member_down() -> None:
    quick, busy, poor, slow = (member(10 + i, f"CN-M{i}") for i in range(4))
    members = {m.id: m for m in (BORROWER, quick, busy, poor, slow)}
    loads = {
        quick.id: Load(answered=20, filled=19, turnaround_days=1.0),
        busy.id: Load(open=50, answered=20, filled=19, turnaround_days=1.0),
        poor.id: Load(answered=20, filled=10, turnaround_days=1.0),
        slow.id: Load(answered=20, filled=19, turnaround_days=30.0),
    }
    holdings = {m: ["available"] for m in (quick.id, busy.id, poor.id, slow.id)}
    plan = rota.build(BORROWER, "Loan", holdings, members, loads)
    by_code = {c.code: c for c in plan.candidates}
    assert codes(plan)[0] == "CN-M0"
    assert by_code["CN-M1"].factors["queue"]["points"] == pytest.approx(-15 * 50 / 100)
    assert by_code["CN-M2"].factors["fill_rate"]["points"] == pytest.approx(20 * 0.5)
    # Turnaround costs a point a day, at most ten.
    assert by_code["CN-M3"].factors["turnaround"]["points"] == -10
    assert "turnaround 30.0 d -10.0" in by_code["CN-M3"].reason
    assert by_code["CN-M0"].score > by_code["CN-M1"].score > by_code["CN-M2"].score


def test_exclusions_name_the_reason() -> None:
    suspended = member(20, "CN-SUS", status="suspended")
    no_loans = member(21, "CN-NOL", lends_loans=False)
    no_copies = member(22, "CN-NOC", lends_copies=False)
    full = member(23, "CN-FUL", max_open_lending=5)
    on_loan = member(24, "CN-OUT")
    reference = member(25, "CN-REF")
    unknown = member(26, "CN-UNK")
    members = {
        m.id: m
        for m in (BORROWER, suspended, no_loans, no_copies, full, on_loan, reference, unknown)
    }
    holdings: dict[int, list[str | None]] = {
        suspended.id: ["available"],
        no_loans.id: ["available"],
        no_copies.id: ["available"],
        full.id: ["available"],
        on_loan.id: ["on_loan", "missing"],
        reference.id: ["not_for_loan"],
        unknown.id: [None],  # a record without item data
        999: ["available"],  # a holder the registry does not know: ignored
    }
    loads = {full.id: Load(open=5)}
    loan = rota.build(BORROWER, "Loan", holdings, members, loads)
    why = {e.code: e.why for e in loan.excluded}
    assert why == {
        "CN-SUS": Exclusion.NOT_ACTIVE,
        "CN-NOL": Exclusion.NO_LOANS,
        "CN-FUL": Exclusion.QUEUE_FULL,
        "CN-OUT": Exclusion.NOT_AVAILABLE,
        "CN-REF": Exclusion.NOT_AVAILABLE,
    }
    assert codes(loan) == ["CN-NOC", "CN-UNK"]
    unknown_candidate = loan.candidates[1]
    assert unknown_candidate.factors["no_item_data"] == -5
    assert "no item data -5.0" in unknown_candidate.reason
    # A reference copy may be copied, not lent; a member that lends no copies is out.
    copy = rota.build(BORROWER, "Copy", holdings, members, loads)
    assert codes(copy) == ["CN-NOL", "CN-REF", "CN-UNK"]
    assert {e.code: e.why for e in copy.excluded}["CN-NOC"] is Exclusion.NO_COPIES


def test_eligible_now_rechecks_status_policy_and_queue() -> None:
    assert rota.eligible_now(NEAR, "Loan")
    assert not rota.eligible_now(member(3, "X", status="suspended"), "Loan")
    assert not rota.eligible_now(member(3, "X", lends_copies=False), "Copy")
    assert rota.eligible_now(member(3, "X", lends_copies=False), "Loan")
    assert not rota.eligible_now(member(3, "X", max_open_lending=2), "Loan", Load(open=2))


# ----------------------------------------------------------------------------- working days

CST = workdays.CHINA


def at(y: int, m: int, d: int, h: int = 10) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=CST)


def test_working_days_skip_weekends_in_china_time() -> None:
    friday = at(2024, 3, 8, 15)
    assert workdays.add_working_days(friday, 2) == at(2024, 3, 12, 15)
    assert workdays.add_working_days(friday, 2).tzinfo == dt.UTC
    assert workdays.add_working_days(at(2024, 3, 9), 1) == at(2024, 3, 11)  # Saturday
    assert workdays.add_working_days(at(2024, 3, 5), 0) == at(2024, 3, 5)
    # 23:30 on Friday in Guangzhou is still Friday there (15:30 UTC).
    late_friday = dt.datetime(2024, 3, 8, 15, 30, tzinfo=dt.UTC)
    assert workdays.add_working_days(late_friday, 1) == dt.datetime(
        2024, 3, 11, 15, 30, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError, match="naive"):
        workdays.add_working_days(dt.datetime(2024, 3, 8), 1)


def test_the_calendar_adds_holidays_and_worked_weekend_days() -> None:
    # Qingming 2024: Thu 4 - Sat 6 April off, Sunday 7 April worked (调休).
    cal = {
        dt.date(2024, 4, 4): False,
        dt.date(2024, 4, 5): False,
        dt.date(2024, 4, 7): True,
    }
    wednesday = at(2024, 4, 3)
    assert workdays.add_working_days(wednesday, 1, cal) == at(2024, 4, 7)
    assert workdays.add_working_days(wednesday, 2, cal) == at(2024, 4, 8)
    assert workdays.add_working_days(wednesday, 2) == at(2024, 4, 5)
    assert workdays.working_days_between(wednesday, at(2024, 4, 8), cal) == 2
    assert workdays.working_days_between(at(2024, 4, 8), wednesday, cal) == 0
    # A calendar of nothing but holidays cannot loop for ever.
    never = {at(2024, 1, 1).date() + dt.timedelta(days=i): False for i in range(800)}
    assert workdays.add_working_days(at(2024, 1, 1), 1, never) > at(2024, 1, 1)
