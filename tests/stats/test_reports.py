"""Every report's figures on a small history made through the resource-sharing service, counted
by hand; the roll-ups rebuilt from the event log give the same figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.errors import Invalid
from consortia.stats import rollup
from consortia.stats import service as stats
from consortia.stats.models import LendingRollup, RequestRollup, TurnaroundRollup
from tests.stats.world import World, at, build

BOOKS = {
    "zh0": ["CN-SYSU"],
    "zh1": ["CN-GDZSL"],
    "zh2": ["CN-GDZSL", "CN-JLU"],
    "en0": ["CN-SYSU"],
    "en1": ["CN-JLU"],
}
WEEK = stats.Filters(dt.date(2016, 10, 17), dt.date(2016, 10, 23))


def make_history(
    session: Session, w: World, after_each: Callable[[], object] = lambda: None
) -> None:
    """The week of 17-23 October 2016, with requests just outside it and a year before;
    ``after_each`` runs after every request's steps."""
    # 1. GZUCM, Chinese copy, SYSU supplies after 6.5 hours.
    r = w.request(session, "CN-GZUCM", "zh0", at("2016-10-17", 9))
    w.ship(session, r, at("2016-10-17", 15, 30))
    after_each()
    # 2. GZUCM, Chinese copy, the centre supplies after two days.
    r = w.request(session, "CN-GZUCM", "zh1", at("2016-10-17", 10))
    w.ship(session, r, at("2016-10-19", 10))
    after_each()
    # 3. GZUCM, foreign copy, the only holder declines: unfilled.
    r = w.request(session, "CN-GZUCM", "en0", at("2016-10-18", 9))
    w.unfill(session, r, at("2016-10-18", 12))
    after_each()
    # 4. GZUCM, foreign loan from Jilin, shipped after two days.
    r = w.request(session, "CN-GZUCM", "en1", at("2016-10-18", 11), service="Loan")
    w.ship(session, r, at("2016-10-20", 11))
    after_each()
    # 5. GZUCM, Chinese copy: the centre declines, Jilin supplies ten hours after the request.
    r = w.request(session, "CN-GZUCM", "zh2", at("2016-10-19", 9))
    assert r.lender_id == w.ids["CN-GDZSL"]
    r = w.decline(session, r, at("2016-10-19", 12))
    assert r.state == "Sent" and r.lender_id == w.ids["CN-JLU"]
    w.ship(session, r, at("2016-10-19", 19))
    after_each()
    # 6. GZUCM, Chinese copy, cancelled before the lender answered.
    r = w.request(session, "CN-GZUCM", "zh0", at("2016-10-20", 9))
    assert w.cancel(session, r, at("2016-10-20", 10)).state == "Cancelled"
    after_each()
    # 7. SZLIB, Chinese copy from the centre after two days.
    r = w.request(session, "CN-SZLIB", "zh1", at("2016-10-19", 9))
    w.ship(session, r, at("2016-10-21", 9))
    after_each()
    # 8. SZLIB, late on Sunday: made in the week, supplied after it (2.5 hours).
    r = w.request(session, "CN-SZLIB", "zh0", at("2016-10-23", 23, 30))
    w.ship(session, r, at("2016-10-24", 2))
    after_each()
    # 9. Just after the week (Monday 00:30 in China).
    r = w.request(session, "CN-SZLIB", "zh0", at("2016-10-24", 0, 30))
    w.ship(session, r, at("2016-10-24", 5))
    after_each()
    # 10. Just before the week (Sunday 23:59), supplied in it.
    r = w.request(session, "CN-GZUCM", "zh1", at("2016-10-16", 23, 59))
    w.ship(session, r, at("2016-10-17", 10))
    after_each()
    # 11, 12. A year earlier: one supplied, one unfilled.
    r = w.request(session, "CN-GZUCM", "zh0", at("2015-10-19", 10))
    w.ship(session, r, at("2015-10-19", 14))
    r = w.request(session, "CN-GZUCM", "en0", at("2015-10-20", 10))
    w.unfill(session, r, at("2015-10-20", 11))
    after_each()


@pytest.fixture
def world(session: Session, tmp_path: Path) -> World:
    w = build(session, tmp_path, BOOKS)
    make_history(session, w)
    return w


def rows_by_code(table: stats.Table) -> dict[str, dict[str, Any]]:
    return {r["code"]: r for r in table.rows}


def test_service_table_with_its_filters(session: Session, world: World) -> None:
    report = stats.service_table(session, WEEK)
    rows = report.tables[0].rows
    assert [(r["rank"], r["code"]) for r in rows] == [(1, "CN-GZUCM"), (2, "CN-SZLIB")]
    gz, sz = rows
    assert (gz["chinese_requests"], gz["chinese_transfers"]) == (4, 3)
    assert (gz["foreign_requests"], gz["foreign_transfers"]) == (2, 1)
    assert gz["fill_rate_percent"] == Decimal("66.7")
    assert (sz["chinese_requests"], sz["chinese_transfers"], sz["foreign_requests"]) == (2, 2, 0)
    assert sz["fill_rate_percent"] == Decimal("100.0")
    assert report.tables[0].total == {
        "chinese_requests": 6,
        "chinese_transfers": 5,
        "foreign_requests": 2,
        "foreign_transfers": 1,
        "requests": 8,
        "transfers": 6,
        "fill_rate_percent": Decimal("75.0"),
    }

    loans = stats.service_table(session, replace(WEEK, service="loan")).tables[0].rows
    assert [(r["code"], r["foreign_requests"], r["foreign_transfers"]) for r in loans] == [
        ("CN-GZUCM", 1, 1)
    ]
    foreign = stats.service_table(session, replace(WEEK, language="foreign")).tables[0].rows
    assert [(r["code"], r["fill_rate_percent"]) for r in foreign] == [("CN-GZUCM", Decimal("50.0"))]
    public = stats.service_table(session, replace(WEEK, member_type="public")).tables[0].rows
    assert [r["code"] for r in public] == ["CN-SZLIB"]
    assert stats.service_table(session, replace(WEEK, region="jilin")).tables[0].rows == []
    jlu = stats.service_table(session, replace(WEEK, member="cn-jlu")).tables[0].rows
    assert [(r["code"], r["chinese_requests"], r["fill_rate_percent"]) for r in jlu] == [
        ("CN-JLU", 0, None)
    ]
    one_day = stats.service_table(
        session, stats.Filters(dt.date(2016, 10, 23), dt.date(2016, 10, 23))
    )
    assert [(r["code"], r["chinese_requests"]) for r in one_day.tables[0].rows] == [("CN-SZLIB", 1)]


def test_turnaround_per_lender_and_service(session: Session, world: World) -> None:
    report = stats.turnaround(session, WEEK)
    got = {
        (r["code"], r["service"]): (r["transfers"], r["median_hours"], r["p90_hours"])
        for r in report.table("lenders").rows
    }
    assert got == {
        ("CN-SYSU", "Copy"): (2, Decimal("5.0"), Decimal("7.0")),  # 7 h and 3 h
        ("CN-GDZSL", "Copy"): (2, Decimal("48.0"), Decimal("48.0")),
        ("CN-JLU", "Copy"): (1, Decimal("10.0"), Decimal("10.0")),
        ("CN-JLU", "Loan"): (1, Decimal("48.0"), Decimal("48.0")),
    }
    services = {r["service"]: r for r in report.table("services").rows}
    # Copies: 3, 7, 10, 48, 48 hours.
    assert (services["Copy"]["median_hours"], services["Copy"]["p90_hours"]) == (
        Decimal("10.0"),
        Decimal("48.0"),
    )
    assert services["Loan"]["transfers"] == 1
    only_jlu = stats.turnaround(session, replace(WEEK, member="CN-JLU")).table("lenders").rows
    assert {r["service"] for r in only_jlu} == {"Copy", "Loan"}
    assert len(report.chart["series"]) == 2


def test_net_lending_per_member_and_region(session: Session, world: World) -> None:
    report = stats.lending(session, WEEK)
    rows = report.table("members").rows
    assert [(r["code"], r["lent"], r["borrowed"], r["net"]) for r in rows] == [
        ("CN-GDZSL", 2, 0, 2),
        ("CN-JLU", 2, 0, 2),
        ("CN-SYSU", 2, 0, 2),
        ("CN-SZLIB", 0, 2, -2),
        ("CN-GZUCM", 0, 4, -4),
    ]
    assert rows[0]["lent_per_borrowed"] is None  # borrowed nothing: no ratio
    regions = {r["region"]: r for r in report.table("regions").rows}
    assert (regions["guangdong"]["lent"], regions["guangdong"]["borrowed"]) == (4, 6)
    assert regions["guangdong"]["within_region"] == 4
    assert regions["guangdong"]["within_region_percent"] == Decimal("66.7")
    assert (regions["jilin"]["lent"], regions["jilin"]["borrowed"]) == (2, 0)
    assert regions["jilin"]["within_region_percent"] is None
    jilin = stats.lending(session, replace(WEEK, region="jilin")).table("members").rows
    assert [(r["code"], r["lent"]) for r in jilin] == [("CN-JLU", 2)]


def test_monthly_yearly_and_change(session: Session, world: World) -> None:
    month = stats.monthly(session, stats.Filters(dt.date(2016, 10, 1), dt.date(2016, 10, 31)))
    assert month.tables[0].rows == [
        {
            "month": "2016-10",
            "requests": 10,
            "transfers": 8,
            "unfilled": 1,
            "fill_rate_percent": Decimal("80.0"),
            "partial": False,
        }
    ]
    gz = (
        stats.monthly(
            session, stats.Filters(dt.date(2016, 9, 1), dt.date(2016, 11, 30), member="CN-GZUCM")
        )
        .tables[0]
        .rows
    )
    assert [(r["month"], r["requests"], r["transfers"], r["fill_rate_percent"]) for r in gz] == [
        ("2016-09", 0, 0, None),
        ("2016-10", 7, 5, Decimal("71.4")),
        ("2016-11", 0, 0, None),
    ]
    years = stats.yearly(session, stats.Filters(dt.date(2015, 1, 1), dt.date(2016, 12, 31)))
    assert [
        (
            r["year"],
            r["requests"],
            r["requests_change_percent"],
            r["transfers"],
            r["transfers_change_percent"],
            r["fill_rate_percent"],
        )
        for r in years.tables[0].rows
    ] == [
        (2015, 2, None, 1, None, Decimal("50.0")),
        (2016, 10, Decimal("400.0"), 8, Decimal("700.0"), Decimal("80.0")),
    ]
    assert years.extra["peak_year_requests"] == 2016
    change = stats.change(session, WEEK, dt.date(2015, 10, 17), dt.date(2015, 10, 23))
    got = {
        r["measure"]: (r["compared"], r["period"], r["change"], r["change_percent"])
        for r in change.tables[0].rows
    }
    assert got["requests"] == (2, 8, 6, Decimal("300.0"))
    assert got["transfers"] == (1, 6, 5, Decimal("500.0"))
    assert got["unfilled"] == (1, 1, 0, Decimal("0.0"))
    assert got["fill_rate_percent"] == (
        Decimal("50.0"),
        Decimal("75.0"),
        Decimal("25.0"),
        Decimal("50.0"),
    )


def test_before_and_after_an_intervention(session: Session, world: World) -> None:
    # Two requests a month from January to March 2017, six a month from April.
    for month, n in ((1, 2), (2, 2), (3, 2), (4, 6), (5, 6), (6, 6)):
        for i in range(n):
            world.request(session, "CN-SZUTL", "zh0", at(f"2017-{month:02d}-{i + 2:02d}", 10))
    f = stats.Filters(dt.date(2017, 1, 1), dt.date(2017, 6, 30), member="CN-SZUTL")
    report = stats.impact(session, f, dt.date(2017, 4, 1), "requests")
    model = {r["parameter"]: r for r in report.table("model").rows}
    assert model["level_before"]["estimate"] == Decimal("2.0")
    assert model["trend_before"]["estimate"] == Decimal("0.0")
    assert model["level_change"]["estimate"] == Decimal("4.0")
    assert model["trend_change"]["estimate"] == Decimal("0.0")
    assert model["level_after"]["estimate"] == Decimal("6.0")
    assert model["level_change"]["ci_low"] == model["level_change"]["ci_high"] == Decimal("4.0")
    series = report.table("series").rows
    assert [(r["month"], r["value"], r["phase"]) for r in series] == [
        ("2017-01", 2, "before"),
        ("2017-02", 2, "before"),
        ("2017-03", 2, "before"),
        ("2017-04", 6, "after"),
        ("2017-05", 6, "after"),
        ("2017-06", 6, "after"),
    ]
    assert series[4]["without_change"] == Decimal("2.0")
    assert (report.extra["months_before"], report.extra["months_after"]) == (3, 3)
    # In mid-April, April is the change-over and only two months are left after it.
    with pytest.raises(Invalid) as err:
        stats.impact(session, f, dt.date(2017, 4, 15), "requests")
    assert err.value.field == "intervention"
    assert err.value.params == {"before": 3, "after": 2, "min": 3}


def _snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for model in (RequestRollup, LendingRollup, TurnaroundRollup):
        cols = [c for c in model.__table__.columns]
        rows = session.execute(select(*cols)).all()
        out[model.__tablename__] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


def test_rebuilding_from_the_event_log_gives_the_same_figures(
    session: Session, world: World
) -> None:
    # The roll-ups were kept as events arrived: catch up now (the reports would).
    rollup.refresh(session)
    kept = _snapshot(session)
    assert len(kept["stats_requests"]) > 0 and len(kept["stats_turnaround"]) > 0
    before = stats.service_table(session, WEEK).tables[0].rows
    result = rollup.rebuild(session)
    session.commit()
    assert result.events_applied == rollup.state(session).events_applied
    assert _snapshot(session) == kept
    assert stats.service_table(session, WEEK).tables[0].rows == before
