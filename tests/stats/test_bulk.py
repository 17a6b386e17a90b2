"""The benchmark's bulk-written events (``demo/bulk.py``) are the service's: the same rows for
the same lives, and the same roll-ups."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.db import session_factory
from consortia.demo import bulk, simulator
from consortia.events.models import Event
from consortia.stats import rollup
from consortia.stats import service as stats
from consortia.stats.models import LendingRollup, RequestRollup, TurnaroundRollup
from tests.stats.world import build

BOOKS = {
    "zh0": ["CN-GDZSL", "CN-SYSU", "CN-JNU"],
    "zh1": ["CN-GZUCM", "CN-JNU"],
    "en0": ["CN-GDZSL", "CN-JNU", "CN-SYSU"],
    "en1": ["CN-GZUCM", "CN-SYSU"],
}
# Half a year of the 2014 peak, filled at 82 %: loans, copies and unfilled requests.
CAL = simulator.Calibration(start=dt.date(2014, 1, 1), end=dt.date(2014, 6, 30))
OFFSET = 1_000_000


def _service_rows(session: Session) -> dict[str, list[bulk.Row]]:
    by_request: dict[str, list[bulk.Row]] = defaultdict(list)
    for e in session.scalars(
        select(Event).where(Event.entity_type == bulk.ENTITY).order_by(Event.id)
    ):
        by_request[e.entity_id].append(
            (
                e.at,
                e.actor,
                e.actor_user_id,
                e.action,
                e.entity_type,
                e.entity_id,
                e.member_id,
                dict(e.payload),
            )
        )
    return by_request


def _moment(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def life_of(rows: list[bulk.Row]) -> bulk.Life:
    """The facts of one request, read back from the service's events."""
    first = rows[0][7]
    routed = next(r[7] for r in rows if r[3] == "ill.request.routed")
    life = bulk.Life(
        int(rows[0][5]),
        int(first["borrower"]),
        str(first["service"]),
        str(first["lang"]),
        rows[0][0],
        first["cluster"],
        list(routed["rota"]),
        dict(routed["excluded"]),
    )
    for at, *_rest, p in rows:
        action = _rest[2]
        if action == "ill.request.sent":
            life.tries.append(bulk.Try(int(p["lender"]), _moment(p["due"])))
        elif action == "ill.request.declined":
            life.tries[-1].declined = at
        elif action == "ill.request.unfilled":
            life.unfilled = at
        elif action == "ill.lender.status":
            life.will_supply = at
        elif action == "ill.request.shipped":
            life.shipped = at
            life.loan_due = _moment(p["loan_due"]) if p["loan_due"] else None
        elif action == "ill.request.received":
            life.received = at
        elif action == "ill.request.returned":
            life.returned = at
        elif action == "ill.request.completed":
            life.completed = at
    return life


def _rollups(session: Session) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    out: dict[str, dict[tuple[Any, ...], tuple[int, ...]]] = {}
    r = RequestRollup
    out["requests"] = {
        (g, str(p), b, s, la): (n, t, u, c)
        for g, p, b, s, la, n, t, u, c in session.execute(
            select(
                r.grain,
                r.period,
                r.borrower_id,
                r.service,
                r.lang,
                r.requests,
                r.transfers,
                r.unfilled,
                r.cancelled,
            )
        )
    }
    t = LendingRollup
    out["lending"] = {
        (g, str(p), le, b, s, la): (n,)
        for g, p, le, b, s, la, n in session.execute(
            select(t.grain, t.period, t.lender_id, t.borrower_id, t.service, t.lang, t.transfers)
        )
    }
    h = TurnaroundRollup
    out["turnaround"] = {
        (g, str(p), le, s, la, hours): (n,)
        for g, p, le, s, la, hours, n in session.execute(
            select(h.grain, h.period, h.lender_id, h.service, h.lang, h.hours, h.n)
        )
    }
    return out


def test_bulk_rows_are_the_services_and_give_the_same_roll_ups(
    session: Session, tmp_path: Path
) -> None:
    build(session, tmp_path, BOOKS)
    summary = simulator.Life(session_factory(), CAL, 0.004, 11).run()
    assert summary.requests > 500
    outcomes = summary.outcomes
    assert outcomes.get("Unfilled") and outcomes.get("Completed")
    codes = bulk.member_codes(session)
    written = _service_rows(session)
    assert len(written) == summary.requests
    actions: set[str] = set()
    lives = []
    for rows in written.values():
        life = life_of(rows)
        # The rows the bulk writer makes of the facts are the very rows the service wrote.
        assert bulk.events(life, codes) == rows, rows[0][5]
        actions |= {r[3] for r in rows}
        lives.append(life)
    assert {
        "ill.request.declined",
        "ill.request.unfilled",
        "ill.lender.status",
        "ill.request.returned",
        "ill.request.completed",
    } <= actions

    rollup.rebuild(session)
    session.commit()
    by_service = _rollups(session)
    assert by_service["requests"] and by_service["lending"] and by_service["turnaround"]
    # The same lives written in bulk under other request ids: every roll-up count doubles.
    copies = [dataclasses.replace(life, request_id=life.request_id + OFFSET) for life in lives]
    by_day: dict[dt.date, list[bulk.Life]] = defaultdict(list)
    for life in copies:
        by_day[rollup.local_day(life.created)].append(life)
    n = bulk.write(session, bulk.time_ordered(sorted(by_day.items()), codes), commit_every=500)
    assert n == sum(len(r) for r in written.values())
    rollup.catch_up(session)
    session.commit()
    doubled = _rollups(session)
    for table, counts in by_service.items():
        assert doubled[table] == {k: tuple(2 * x for x in v) for k, v in counts.items()}, table


def test_the_bulk_plan_follows_the_calibration(session: Session, tmp_path: Path) -> None:
    build(session, tmp_path, BOOKS)
    scale = 0.002
    days = list(bulk.plan(session, scale=scale, seed=5, clusters=50))
    lives = [life for _day, todays in days for life in todays]
    expected = simulator.expected_requests(scale=scale)
    assert expected - 13 <= len(lives) <= expected
    codes = bulk.member_codes(session)
    n = bulk.write(session, bulk.time_ordered(days, codes))
    assert n == session.scalar(select(func.count()).select_from(Event).where(
        Event.entity_type == bulk.ENTITY))  # fmt: skip
    # Ids ascend with the moment, as in a replay.
    moments = list(session.scalars(select(Event.at).where(
        Event.entity_type == bulk.ENTITY).order_by(Event.id)))  # fmt: skip
    assert moments == sorted(moments)
    years = stats.yearly(session, stats.Filters(dt.date(2010, 1, 1), dt.date(2016, 12, 31)))
    by_year = {r["year"]: r for r in years.tables[0].rows}
    assert sum(r["requests"] for r in by_year.values()) == len(lives)
    assert years.extra["peak_year_requests"] == 2014
    filled = sum(1 for life in lives if life.shipped is not None)
    assert sum(r["transfers"] for r in by_year.values()) == filled
    months = stats.monthly(
        session, stats.Filters(dt.date(2016, 1, 1), dt.date(2016, 12, 31), member="CN-GZUCM")
    )
    assert months.extra["peak_month"] == "2016-01"
