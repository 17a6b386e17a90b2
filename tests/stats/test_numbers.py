"""The arithmetic of the reports: rounding, percentiles, periods as roll-up ranges, and the
segmented regression."""

from __future__ import annotations

import csv
import datetime as dt
import random
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consortia.stats import regression
from consortia.stats.rollup import local_day, periods, turnaround_hours
from consortia.stats.service import (
    change_percent,
    median_and_p90,
    months_between,
    percent,
    spans,
)

TABLE1 = (
    Path(__file__).parents[2] / "src/consortia/demo/data/table1_service_2016-10-17_2016-10-23.csv"
)


def test_percent_rounds_half_up_to_one_decimal() -> None:
    assert percent(9465, 10000) == Decimal("94.7")  # exactly half: up (banker's gives 94.6)
    assert percent(9485, 10000) == Decimal("94.9")  # (banker's gives 94.8)
    assert percent(1, 3) == Decimal("33.3")
    assert percent(2, 3) == Decimal("66.7")
    assert percent(0, 5) == Decimal("0.0")
    assert percent(5, 5) == Decimal("100.0")


def test_no_division_by_zero() -> None:
    assert percent(0, 0) is None
    assert change_percent(10, 0) is None
    assert change_percent(None, 3) is None
    assert change_percent(110, 100) == Decimal("10.0")
    assert change_percent(95, 100) == Decimal("-5.0")


def test_the_printed_fill_rates_follow_from_the_printed_counts() -> None:
    with TABLE1.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10
    for row in rows:
        requests = int(row["chinese_requests"]) + int(row["foreign_requests"])
        transfers = int(row["chinese_transfers"]) + int(row["foreign_transfers"])
        assert str(percent(transfers, requests)) == row["fill_rate_percent"], row


def test_median_and_90th_percentile_of_whole_hours() -> None:
    assert median_and_p90({}) == (None, None)
    assert median_and_p90({5: 1}) == (Decimal("5.0"), Decimal("5.0"))
    # 1, 2, 3, 4: median between 2 and 3; rank ceil(3.6) = 4 -> 4
    assert median_and_p90({1: 1, 2: 1, 3: 1, 4: 1}) == (Decimal("2.5"), Decimal("4.0"))
    # 10 values 1..10: median 5.5, rank 9 -> 9
    assert median_and_p90({h: 1 for h in range(1, 11)}) == (Decimal("5.5"), Decimal("9.0"))
    # 7 times 3 hours, 3 times 50 hours: median 3, rank 9 -> 50
    assert median_and_p90({3: 7, 50: 3}) == (Decimal("3.0"), Decimal("50.0"))


def test_turnaround_hours_round_up_and_days_are_chinas() -> None:
    t = dt.datetime(2016, 10, 16, 20, 0, tzinfo=dt.UTC)  # 04:00 on the 17th in China
    assert local_day(t) == dt.date(2016, 10, 17)
    assert turnaround_hours(t, t) == 0
    assert turnaround_hours(t, t + dt.timedelta(minutes=1)) == 1
    assert turnaround_hours(t, t + dt.timedelta(hours=2)) == 2
    assert turnaround_hours(t, t + dt.timedelta(hours=2, seconds=1)) == 3
    assert periods(dt.date(2016, 10, 17)) == (
        ("d", dt.date(2016, 10, 17)),
        ("m", dt.date(2016, 10, 1)),
        ("y", dt.date(2016, 1, 1)),
    )


def _days_of(ranges: list[tuple[str, dt.date, dt.date]]) -> list[dt.date]:
    out: list[dt.date] = []
    for grain, lo, hi in ranges:
        if grain == "d":
            d = lo
            while d <= hi:
                out.append(d)
                d += dt.timedelta(days=1)
        elif grain == "m":
            for m in months_between(lo, hi):
                d = m
                while d.month == m.month:
                    out.append(d)
                    d += dt.timedelta(days=1)
        else:
            for year in range(lo.year, hi.year + 1):
                d = dt.date(year, 1, 1)
                while d.year == year:
                    out.append(d)
                    d += dt.timedelta(days=1)
    return out


dates = st.dates(min_value=dt.date(2008, 1, 1), max_value=dt.date(2018, 12, 31))


@given(dates, dates)
def test_spans_cover_every_day_of_the_period_exactly_once(a: dt.date, b: dt.date) -> None:
    start, end = min(a, b), max(a, b)
    for grains in (("y", "m", "d"), ("m", "d"), ("d",)):
        ranges = spans(start, end, grains)
        days = _days_of(ranges)
        assert len(days) == len(set(days))
        assert set(days) == {start + dt.timedelta(days=i) for i in range((end - start).days + 1)}
        assert {g for g, _, _ in ranges} <= set(grains)


def test_spans_use_few_rows_for_long_periods() -> None:
    ranges = spans(dt.date(2010, 1, 15), dt.date(2016, 10, 23))
    assert ranges == [
        ("d", dt.date(2010, 1, 15), dt.date(2010, 1, 31)),
        ("m", dt.date(2010, 2, 1), dt.date(2010, 12, 1)),
        ("y", dt.date(2011, 1, 1), dt.date(2015, 1, 1)),
        ("m", dt.date(2016, 1, 1), dt.date(2016, 9, 1)),
        ("d", dt.date(2016, 10, 1), dt.date(2016, 10, 23)),
    ]


def test_segmented_regression_recovers_an_exact_break() -> None:
    ts = list(range(24))
    t0 = 12
    ys = [100 + 2 * t if t < t0 else 100 + 2 * t0 + 30 + 5 * (t - t0) for t in ts]
    fit = regression.segmented(ts, ys, t0)
    assert fit.level_before.value == pytest.approx(124)
    assert fit.trend_before.value == pytest.approx(2)
    assert fit.level_change.value == pytest.approx(30)
    assert fit.trend_change.value == pytest.approx(3)
    assert fit.level_after.value == pytest.approx(154)
    assert fit.trend_after.value == pytest.approx(5)
    assert fit.level_change.se == pytest.approx(0, abs=1e-6)
    assert fit.counterfactual(20) == pytest.approx(140)
    assert fit.fitted == pytest.approx(ys)


def test_segmented_regression_intervals_cover_the_truth_at_their_level() -> None:
    """95 % intervals from 400 noisy series: the true level change falls in about 95 % of them."""
    rnd = random.Random(6)
    hits = {"level_change": 0, "trend_change": 0, "trend_before": 0}
    truth = {"level_change": -20.0, "trend_change": 1.5, "trend_before": 0.5}
    reps = 400
    for _ in range(reps):
        ts = list(range(30))
        ys = [50 + 0.5 * t + (t >= 15) * (-20 + 1.5 * (t - 15)) + rnd.gauss(0, 4) for t in ts]
        fit = regression.segmented(ts, ys, 15)
        for name in hits:
            est = getattr(fit, name)
            hits[name] += est.low <= truth[name] <= est.high
    for name, n in hits.items():
        assert 0.91 <= n / reps <= 0.985, (name, n)


def test_segmented_regression_needs_points_on_both_sides() -> None:
    with pytest.raises(ValueError):
        regression.segmented([0, 1, 2, 3, 4], [1, 2, 3, 4, 5], 4)
