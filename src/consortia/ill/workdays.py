"""Working days for lenders' deadlines: Monday to Friday in China's time, with the consortium's
calendar of exceptions (public holidays, and the weekend days worked in their place, 调休)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

# China keeps one time zone and no daylight saving: a fixed offset needs no tz database.
CHINA = dt.timezone(dt.timedelta(hours=8), "CST")
ONE_DAY = dt.timedelta(days=1)


def is_working_day(day: dt.date, exceptions: Mapping[dt.date, bool]) -> bool:
    """Monday-Friday, unless the calendar says otherwise for this day."""
    found = exceptions.get(day)
    return found if found is not None else day.weekday() < 5


def add_working_days(
    start: dt.datetime, days: int, exceptions: Mapping[dt.date, bool] | None = None
) -> dt.datetime:
    """The same local time ``days`` working days after ``start`` (aware; returned in UTC).

    Sent on a Friday afternoon with two days to respond: due on Tuesday afternoon. Sent on a
    Saturday: Monday counts as the first day.
    """
    if start.tzinfo is None:
        raise ValueError("naive datetime given; use an aware datetime")
    exceptions = exceptions or {}
    local = start.astimezone(CHINA)
    counted = 0
    # A bounded walk: even a calendar of nothing but holidays cannot loop for ever.
    for _ in range(days * 7 + 366):
        if counted >= days:
            break
        local += ONE_DAY
        if is_working_day(local.date(), exceptions):
            counted += 1
    return local.astimezone(dt.UTC)


def working_days_between(
    start: dt.datetime, end: dt.datetime, exceptions: Mapping[dt.date, bool] | None = None
) -> int:
    """Whole working days from ``start`` to ``end`` (0 when ``end`` is not later)."""
    exceptions = exceptions or {}
    a = start.astimezone(CHINA).date()
    b = end.astimezone(CHINA).date()
    count = 0
    while a < b:
        a += ONE_DAY
        if is_working_day(a, exceptions):
            count += 1
    return count
