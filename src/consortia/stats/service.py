"""Service statistics: the paper's table and figures, and the analyses behind them.

Every report takes the same filters (``Filters``): a period (``start``..``end``, days in China's
time, both included), a member, a region, a member type, a service type (Loan, Copy) and a
document language (chinese, foreign). A period selects the requests *made* in it; their
outcomes count whenever they happen (``stats/models.py``). The member filters apply to the
member a report is about: the requesting library in the service table and the monthly and
yearly series, the lender in turnaround, either side in net lending.

Reports read the roll-ups only, after bringing them up to date (``rollup.refresh``, which
commits): they are exact and cost a few hundred rows whatever the period. The reports:

=============  =================================================================================
``service``    per requesting member: Chinese and foreign requests and transfers, fill rate
               (Table 1)
``monthly``    requests and transfers per month, of a member or the consortium (Fig. 1)
``yearly``     requests and transfers per year with the change on the year before (Figs. 2, 3)
``turnaround`` median and 90th percentile hours from request to supply, per lender and service
``lending``    lent and borrowed per member and per region: who carries the load
``change``     the service level of one period against another, with the counts behind it
``impact``     before/after an intervention date: segmented regression on a monthly series
``overlap``    collection overlap in the union catalogue: unique titles, titles held by 2, 3, …
               members, the member × member matrix
=============  =================================================================================

Figures that divide are ``None`` when the divisor is zero (a member without requests has no
fill rate, not 0 %). Percentages have one decimal, rounded half up (``percent``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from consortia.errors import Invalid, NotFound
from consortia.members.models import Member, MemberType, Region
from consortia.stats import overlap as overlap_rollup
from consortia.stats import regression, rollup
from consortia.stats.models import LendingRollup, RequestRollup, TurnaroundRollup


def N_(msgid: str) -> str:
    """Marks a msgid (a column, a title, a note) for the catalogues; translated where shown."""
    return msgid


SERVICES = ("Loan", "Copy")
LANGUAGES = ("chinese", "foreign")
MEMBER_TYPES = tuple(t.value for t in MemberType)
# Where a month stands in a before/after analysis (shown translated).
PHASES = {
    "before": N_("before"),
    "after": N_("after"),
    "change-over": N_("change-over"),
    "left out": N_("left out"),
}
SERIES = ("requests", "transfers", "fill_rate", "unfilled", "lent", "borrowed", "turnaround")
REPORTS = (
    "service",
    "monthly",
    "yearly",
    "turnaround",
    "lending",
    "change",
    "impact",
    "overlap",
)
TITLES = {
    "service": N_("Service table"),
    "monthly": N_("Monthly requests and transfers"),
    "yearly": N_("Yearly requests and transfers"),
    "turnaround": N_("Turnaround"),
    "lending": N_("Net lending"),
    "change": N_("Service level change"),
    "impact": N_("Before and after"),
    "overlap": N_("Collection overlap"),
}
EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(2199, 12, 31)
MAX_MONTHS = 240  # a monthly series: twenty years
MAX_YEARS = 60
MIN_SIDE_MONTHS = 3  # months on each side of an intervention

MSG_UNKNOWN_REPORT = "Unknown report: {name}; one of {choices}"
MSG_DATE_NEEDED = "{name}: give a date (YYYY-MM-DD)"
MSG_DATE_RANGE = "{name}: the date must be between {low} and {high}"
MSG_INVERTED = "to: {end} is before from: {start}"
MSG_COMPARE_INVERTED = "compare_to: {end} is before compare_from: {start}"
MSG_UNKNOWN_MEMBER = "member: no member has the code {code}"
MSG_UNKNOWN_REGION = "region: no region has the code {code}"
MSG_MEMBER_TYPE = "member_type: one of {choices}"
MSG_SERVICE = "service: the service type, one of {choices}"
MSG_LANGUAGE = "language: the document language, one of {choices}"
MSG_SERIES = "series: one of {choices}"
MSG_TOO_MANY_MONTHS = "The period is too long for a monthly series: {months} months, at most {max}"
MSG_TOO_MANY_YEARS = "The period is too long for a yearly series: {years} years, at most {max}"
MSG_INTERVENTION_NEEDED = "intervention: give the date of the change (YYYY-MM-DD)"
MSG_INTERVENTION_OUTSIDE = "intervention: {date} is not inside the period {start} to {end}"
MSG_TOO_FEW_MONTHS = (
    "intervention: {before} whole months before and {after} after; at least {min} on each side"
)
MSG_NOT_APPLICABLE = "{name}: does not apply to the {report} report"
MSG_NO_DATA = "No data for this period and these filters"
MSG_NOTE_TURNAROUND = (
    "Hours are whole hours from the request to the lender's supply, rounded up; "
    "the 90th percentile is the value at rank ⌈0.9 n⌉"
)
MSG_NOTE_CHANGE = (
    "The fill rate's change is given in percentage points (Change) "
    "and relative to the compared period (Change %)"
)
MSG_NOTE_MODEL = (
    "Model: value = level + trend × month + level change × after + trend change × months "
    "since the intervention; ordinary least squares, {before} months before and {after} after"
)

HUNDRED = Decimal(100)
ONE_PLACE = Decimal("0.1")


# ----------------------------------------------------------------------------- numbers


def percent(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    """``part`` of ``whole`` in percent, one decimal, rounded half up; None when whole is 0."""
    if not whole:
        return None
    return (Decimal(part) * HUNDRED / Decimal(whole)).quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


def change_percent(new: int | Decimal | None, old: int | Decimal | None) -> Decimal | None:
    """Relative change from ``old`` to ``new`` in percent (None when old is 0 or missing)."""
    if new is None or old is None or not old:
        return None
    return percent(Decimal(new) - Decimal(old), old)


def one_decimal(value: float | Decimal | None) -> Decimal | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return Decimal(str(value)).quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


def median_and_p90(histogram: dict[int, int]) -> tuple[Decimal | None, Decimal | None]:
    """Median (mean of the two middle values for an even count) and 90th percentile (nearest
    rank: the value at rank ⌈0.9 n⌉) of whole-hour values given as {hours: count}."""
    n = sum(histogram.values())
    if n == 0:
        return None, None
    ordered = sorted(histogram.items())

    def at_rank(rank: int) -> int:  # 1-based
        seen = 0
        for hours, count in ordered:
            seen += count
            if seen >= rank:
                return hours
        return ordered[-1][0]  # pragma: no cover

    if n % 2:
        median = Decimal(at_rank(n // 2 + 1))
    else:
        median = (Decimal(at_rank(n // 2)) + Decimal(at_rank(n // 2 + 1))) / 2
    p90 = Decimal(at_rank(math.ceil(0.9 * n)))
    return median.quantize(ONE_PLACE, rounding=ROUND_HALF_UP), p90.quantize(ONE_PLACE)


# ----------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """What a report is asked for (as given; ``resolve`` checks it)."""

    start: dt.date | None = None
    end: dt.date | None = None
    member: str | None = None
    region: str | None = None
    member_type: str | None = None
    service: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class MemberRef:
    id: int
    code: str
    name_zh: str
    name_en: str
    type: str
    region_code: str
    region_zh: str
    region_en: str


@dataclass(frozen=True)
class Scope:
    """Checked filters: the period, the members in focus (None: all), the service, language."""

    start: dt.date
    end: dt.date
    member: MemberRef | None
    region: str | None
    member_type: str | None
    service: str | None
    language: str | None
    members: dict[int, MemberRef]
    focus: frozenset[int] | None

    def params(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "member": self.member.code if self.member else None,
            "region": self.region,
            "member_type": self.member_type,
            "service": self.service,
            "language": self.language,
        }

    def in_focus(self, member_id: int) -> bool:
        return self.focus is None or member_id in self.focus


def all_members(session: Session) -> dict[int, MemberRef]:
    rows = session.execute(
        select(
            Member.id,
            Member.code,
            Member.name_zh,
            Member.name_en,
            Member.type,
            Region.code,
            Region.name_zh,
            Region.name_en,
        ).join(Region, Region.id == Member.region_id)
    )
    return {
        r[0]: MemberRef(r[0], r[1], r[2], r[3], str(getattr(r[4], "value", r[4])), *r[5:])
        for r in rows
    }


def check_date(value: dt.date | None, name: str) -> dt.date:
    if value is None:
        raise Invalid(MSG_DATE_NEEDED, field=name, name=name)
    if not EARLIEST <= value <= LATEST:
        raise Invalid(
            MSG_DATE_RANGE,
            field=name,
            name=name,
            low=EARLIEST.isoformat(),
            high=LATEST.isoformat(),
        )
    return value


def check_period(start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    """A period given by both ends, in order (the same day twice is one day)."""
    first = check_date(start, "from")
    last = check_date(end, "to")
    if last < first:
        raise Invalid(MSG_INVERTED, field="to", start=first.isoformat(), end=last.isoformat())
    return first, last


def normalise_service(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    for s in SERVICES:
        if value.strip().lower() == s.lower():
            return s
    raise Invalid(MSG_SERVICE, field="service", choices=", ".join(s.lower() for s in SERVICES))


def normalise_language(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    v = value.strip().lower()
    if v not in LANGUAGES:
        raise Invalid(MSG_LANGUAGE, field="language", choices=", ".join(LANGUAGES))
    return v


def resolve(session: Session, f: Filters) -> Scope:
    """Check the filters; an unknown member, region or type is refused naming the parameter."""
    start, end = check_period(f.start, f.end)
    members = all_members(session)
    service = normalise_service(f.service)
    language = normalise_language(f.language)
    focus: set[int] | None = None
    member: MemberRef | None = None
    if f.member is not None and f.member.strip():
        wanted = f.member.strip().upper()
        member = next((m for m in members.values() if m.code.upper() == wanted), None)
        if member is None:
            raise Invalid(MSG_UNKNOWN_MEMBER, field="member", code=f.member.strip())
        focus = {member.id}
    region: str | None = None
    if f.region is not None and f.region.strip():
        region = f.region.strip()
        known = {m.region_code for m in members.values()}
        known |= set(session.scalars(select(Region.code)))
        if region not in known:
            raise Invalid(MSG_UNKNOWN_REGION, field="region", code=region)
        inside = {m.id for m in members.values() if m.region_code == region}
        focus = inside if focus is None else focus & inside
    member_type: str | None = None
    if f.member_type is not None and f.member_type.strip():
        member_type = f.member_type.strip().lower()
        if member_type not in MEMBER_TYPES:
            raise Invalid(MSG_MEMBER_TYPE, field="member_type", choices=", ".join(MEMBER_TYPES))
        typed = {m.id for m in members.values() if m.type == member_type}
        focus = typed if focus is None else focus & typed
    return Scope(
        start,
        end,
        member,
        region,
        member_type,
        service,
        language,
        members,
        frozenset(focus) if focus is not None else None,
    )


# ----------------------------------------------------------------------------- periods


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def next_month(day: dt.date) -> dt.date:
    return (month_end(day) + dt.timedelta(days=1)).replace(day=1)


def year_earlier(day: dt.date) -> dt.date:
    """The same day a year earlier (29 February becomes the 28th)."""
    if day.month == 2 and day.day == 29:
        return day.replace(year=day.year - 1, day=28)
    return day.replace(year=day.year - 1)


def months_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """First days of the months the period touches."""
    out = []
    m = month_start(start)
    while m <= end:
        out.append(m)
        m = next_month(m)
    return out


def spans(
    start: dt.date, end: dt.date, grains: Sequence[str] = ("y", "m", "d")
) -> list[tuple[str, dt.date, dt.date]]:
    """The period as ranges of roll-up rows: whole years, whole months, the days at the edges.

    Each range is (grain, first period, last period); together they cover every day once.
    """
    out: list[tuple[str, dt.date, dt.date]] = []

    def by_months(a: dt.date, b: dt.date) -> None:
        first = a if a.day == 1 else next_month(a)
        last_end = b if b == month_end(b) else month_start(b) - dt.timedelta(days=1)
        if "m" not in grains or first > last_end:
            out.append(("d", a, b))
            return
        if a < first:
            out.append(("d", a, first - dt.timedelta(days=1)))
        out.append(("m", first, month_start(last_end)))
        if last_end < b:
            out.append(("d", last_end + dt.timedelta(days=1), b))

    if "y" in grains:
        first_year = start.year if (start.month, start.day) == (1, 1) else start.year + 1
        last_year = end.year if (end.month, end.day) == (12, 31) else end.year - 1
        if first_year <= last_year:
            y0 = dt.date(first_year, 1, 1)
            y1 = dt.date(last_year, 12, 31)
            if start < y0:
                by_months(start, y0 - dt.timedelta(days=1))
            out.append(("y", y0, dt.date(last_year, 1, 1)))
            if y1 < end:
                by_months(y1 + dt.timedelta(days=1), end)
            return out
    by_months(start, end)
    return out


def _in_spans(
    grain_col: Any, period_col: Any, ranges: Iterable[tuple[str, dt.date, dt.date]]
) -> Any:
    return or_(*(and_(grain_col == g, period_col >= lo, period_col <= hi) for g, lo, hi in ranges))


def _filters(table: Any, scope: Scope, member_col: Any | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if scope.service is not None:
        where.append(table.service == scope.service)
    if scope.language is not None:
        where.append(table.lang == scope.language)
    if member_col is not None and scope.focus is not None:
        where.append(member_col.in_(sorted(scope.focus) or [-1]))
    return where


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


# ----------------------------------------------------------------------------- report shape


@dataclass(frozen=True)
class Column:
    key: str
    label: str  # msgid
    kind: str = "int"  # text, int, percent, number, date
    lang: str | None = None  # shown only on pages and tables in this language (names)


@dataclass
class Table:
    key: str
    title: str  # msgid
    columns: list[Column]
    rows: list[dict[str, Any]]
    total: dict[str, Any] | None = None


@dataclass
class Report:
    name: str
    title: str  # msgid
    params: dict[str, Any]
    tables: list[Table]
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    chart: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def table(self, key: str | None = None) -> Table:
        if key is None:
            return self.tables[0]
        for t in self.tables:
            if t.key == key:
                return t
        raise Invalid(
            "table: one of {choices}", field="table", choices=", ".join(t.key for t in self.tables)
        )


def _member_cells(m: MemberRef) -> dict[str, Any]:
    return {"code": m.code, "library_zh": m.name_zh, "library_en": m.name_en}


NAME_COLUMNS = [
    Column("code", N_("Code"), "text"),
    Column("library_zh", N_("Library"), "text", lang="zh-CN"),
    Column("library_en", N_("Library"), "text", lang="en"),
]


# ----------------------------------------------------------------------------- reads


def _request_counts(
    session: Session, scope: Scope, start: dt.date, end: dt.date, by: Sequence[Any]
) -> list[tuple[Any, ...]]:
    r = RequestRollup
    stmt = (
        select(
            *by,
            func.sum(r.requests),
            func.sum(r.transfers),
            func.sum(r.unfilled),
            func.sum(r.cancelled),
        )
        .where(_in_spans(r.grain, r.period, spans(start, end)), *_filters(r, scope, r.borrower_id))
        .group_by(*by)
    )
    return [tuple(row) for row in session.execute(stmt)]


def _totals(session: Session, scope: Scope, start: dt.date, end: dt.date) -> dict[str, int]:
    rows = _request_counts(session, scope, start, end, [RequestRollup.lang])
    out = {"requests": 0, "transfers": 0, "unfilled": 0, "cancelled": 0}
    for lang, req, tr, unf, can in rows:
        out["requests"] += int(req or 0)
        out["transfers"] += int(tr or 0)
        out["unfilled"] += int(unf or 0)
        out["cancelled"] += int(can or 0)
        out[f"{lang}_requests"] = out.get(f"{lang}_requests", 0) + int(req or 0)
        out[f"{lang}_transfers"] = out.get(f"{lang}_transfers", 0) + int(tr or 0)
    for lang in LANGUAGES:
        out.setdefault(f"{lang}_requests", 0)
        out.setdefault(f"{lang}_transfers", 0)
    return out


def _monthly_requests(session: Session, scope: Scope) -> dict[dt.date, list[int]]:
    """Month -> [requests, transfers, unfilled, cancelled] within the period."""
    r = RequestRollup
    stmt = (
        select(
            r.grain,
            r.period,
            func.sum(r.requests),
            func.sum(r.transfers),
            func.sum(r.unfilled),
            func.sum(r.cancelled),
        )
        .where(
            _in_spans(r.grain, r.period, spans(scope.start, scope.end, ("m", "d"))),
            *_filters(r, scope, r.borrower_id),
        )
        .group_by(r.grain, r.period)
    )
    out: dict[dt.date, list[int]] = {
        m: [0, 0, 0, 0] for m in months_between(scope.start, scope.end)
    }
    for _grain, period, *counts in session.execute(stmt):
        month = month_start(_to_date(period))
        for i, v in enumerate(counts):
            out[month][i] += int(v or 0)
    return out


def _monthly_lending(session: Session, scope: Scope, side: str) -> dict[dt.date, int]:
    t = LendingRollup
    member_col = t.lender_id if side == "lent" else t.borrower_id
    stmt = (
        select(t.grain, t.period, func.sum(t.transfers))
        .where(
            _in_spans(t.grain, t.period, spans(scope.start, scope.end, ("m", "d"))),
            *_filters(t, scope, member_col),
        )
        .group_by(t.grain, t.period)
    )
    out: dict[dt.date, int] = {m: 0 for m in months_between(scope.start, scope.end)}
    for _grain, period, n in session.execute(stmt):
        out[month_start(_to_date(period))] += int(n or 0)
    return out


def _monthly_turnaround(session: Session, scope: Scope) -> dict[dt.date, Decimal | None]:
    t = TurnaroundRollup
    stmt = (
        select(t.grain, t.period, t.hours, func.sum(t.n))
        .where(
            _in_spans(t.grain, t.period, spans(scope.start, scope.end, ("m", "d"))),
            *_filters(t, scope, t.lender_id),
        )
        .group_by(t.grain, t.period, t.hours)
    )
    hist: dict[dt.date, dict[int, int]] = {m: {} for m in months_between(scope.start, scope.end)}
    for _grain, period, hours, n in session.execute(stmt):
        h = hist[month_start(_to_date(period))]
        h[int(hours)] = h.get(int(hours), 0) + int(n or 0)
    return {m: median_and_p90(h)[0] for m, h in hist.items()}


def _check_months(start: dt.date, end: dt.date) -> list[dt.date]:
    months = months_between(start, end)
    if len(months) > MAX_MONTHS:
        raise Invalid(MSG_TOO_MANY_MONTHS, field="to", months=len(months), max=MAX_MONTHS)
    return months


def _partial(month: dt.date, start: dt.date, end: dt.date) -> bool:
    return month < start or month_end(month) > end


# ----------------------------------------------------------------------------- the reports


def _begin(session: Session, f: Filters) -> Scope:
    rollup.refresh(session)
    return resolve(session, f)


def service_table(session: Session, f: Filters) -> Report:
    """Table 1: per requesting member, Chinese and foreign requests and transfers, fill rate;
    ranked by requests (then by code)."""
    scope = _begin(session, f)
    r = RequestRollup
    counts: dict[int, dict[str, int]] = defaultdict(
        lambda: {f"{la}_{k}": 0 for la in LANGUAGES for k in ("requests", "transfers")}
    )
    for borrower, lang, req, tr, _unf, _can in _request_counts(
        session, scope, scope.start, scope.end, [r.borrower_id, r.lang]
    ):
        c = counts[int(borrower)]
        c[f"{lang}_requests"] += int(req or 0)
        c[f"{lang}_transfers"] += int(tr or 0)
    if scope.member is not None:
        # The member asked for is shown even without requests (with no fill rate).
        _ = counts[scope.member.id]
    rows: list[dict[str, Any]] = []
    for member_id, c in counts.items():
        m = scope.members.get(member_id)
        if m is None:
            continue
        requests = c["chinese_requests"] + c["foreign_requests"]
        transfers = c["chinese_transfers"] + c["foreign_transfers"]
        rows.append(
            {
                **_member_cells(m),
                **c,
                "requests": requests,
                "transfers": transfers,
                "fill_rate_percent": percent(transfers, requests),
            }
        )
    rows.sort(key=lambda row: (-row["requests"], row["code"]))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    keys = [f"{la}_{k}" for la in LANGUAGES for k in ("requests", "transfers")]
    total: dict[str, Any] = {
        k: sum(row[k] for row in rows) for k in [*keys, "requests", "transfers"]
    }
    total["fill_rate_percent"] = percent(total["transfers"], total["requests"])
    columns = [
        Column("rank", N_("Rank")),
        Column("library_zh", N_("Library"), "text", lang="zh-CN"),
        Column("library_en", N_("Library"), "text", lang="en"),
        Column("chinese_requests", N_("Chinese requests")),
        Column("chinese_transfers", N_("Chinese transfers")),
        Column("foreign_requests", N_("Foreign requests")),
        Column("foreign_transfers", N_("Foreign transfers")),
        Column("fill_rate_percent", N_("Fill rate %"), "percent"),
    ]
    report = Report(
        "service",
        N_("Service table"),
        scope.params(),
        [
            Table(
                "service", N_("Requests and transfers by requesting library"), columns, rows, total
            )
        ],
    )
    report.chart = {
        "kind": "bars",
        "categories": [row["code"] for row in rows],
        "series": [
            ("requests", N_("Requests"), [row["requests"] for row in rows]),
            ("transfers", N_("Transfers"), [row["transfers"] for row in rows]),
        ],
    }
    if not rows:
        report.notes.append((MSG_NO_DATA, {}))
    return report


def monthly(session: Session, f: Filters) -> Report:
    """Fig. 1: requests and transfers per month, of a member or of the consortium."""
    scope = _begin(session, f)
    _check_months(scope.start, scope.end)
    data = _monthly_requests(session, scope)
    rows: list[dict[str, Any]] = []
    for month, (req, tr, unf, _can) in data.items():
        rows.append(
            {
                "month": month.strftime("%Y-%m"),
                "requests": req,
                "transfers": tr,
                "unfilled": unf,
                "fill_rate_percent": percent(tr, req),
                "partial": _partial(month, scope.start, scope.end),
            }
        )
    total_req = sum(r["requests"] for r in rows)
    total_tr = sum(r["transfers"] for r in rows)
    columns = [
        Column("month", N_("Month"), "text"),
        Column("requests", N_("Requests")),
        Column("transfers", N_("Transfers")),
        Column("unfilled", N_("Unfilled")),
        Column("fill_rate_percent", N_("Fill rate %"), "percent"),
    ]
    total = {
        "month": "",
        "requests": total_req,
        "transfers": total_tr,
        "unfilled": sum(r["unfilled"] for r in rows),
        "fill_rate_percent": percent(total_tr, total_req),
    }
    full: list[dict[str, Any]] = [r for r in rows if not r["partial"]]
    report = Report(
        "monthly",
        N_("Monthly requests and transfers"),
        scope.params(),
        [Table("monthly", N_("Requests and transfers per month"), columns, rows, total)],
    )
    if full:
        peak = max(full, key=lambda r: (r["requests"], r["month"]))
        report.extra["peak_month"] = peak["month"]
        report.extra["mean_requests"] = one_decimal(sum(r["requests"] for r in full) / len(full))
    if any(r["partial"] for r in rows):
        report.notes.append((N_("Months at the edges of the period are counted in part"), {}))
    report.chart = {
        "kind": "lines",
        "categories": [r["month"] for r in rows],
        "series": [
            ("requests", N_("Requests"), [r["requests"] for r in rows]),
            ("transfers", N_("Transfers"), [r["transfers"] for r in rows]),
        ],
    }
    return report


def yearly(session: Session, f: Filters) -> Report:
    """Figs. 2 and 3: requests and transfers per year, each with its change on the same days a
    year earlier (a year cut by the period is compared with the same part of the year before)."""
    scope = _begin(session, f)
    years = list(range(scope.start.year, scope.end.year + 1))
    if len(years) > MAX_YEARS:
        raise Invalid(MSG_TOO_MANY_YEARS, field="to", years=len(years), max=MAX_YEARS)
    rows: list[dict[str, Any]] = []
    for year in years:
        a = max(scope.start, dt.date(year, 1, 1))
        b = min(scope.end, dt.date(year, 12, 31))
        t = _totals(session, scope, a, b)
        # The same days a year earlier: a whole year against the year before, a part of a
        # year against the same part.
        prior = _totals(session, scope, year_earlier(a), year_earlier(b)) if year > 1900 else None
        rows.append(
            {
                "year": year,
                "from": a.isoformat(),
                "to": b.isoformat(),
                "requests": t["requests"],
                "requests_change_percent": change_percent(
                    t["requests"], prior["requests"] if prior else None
                ),
                "transfers": t["transfers"],
                "transfers_change_percent": change_percent(
                    t["transfers"], prior["transfers"] if prior else None
                ),
                "fill_rate_percent": percent(t["transfers"], t["requests"]),
                "partial": (a, b) != (dt.date(year, 1, 1), dt.date(year, 12, 31)),
            }
        )
    columns = [
        Column("year", N_("Year"), "text"),
        Column("from", N_("From"), "date"),
        Column("to", N_("To"), "date"),
        Column("requests", N_("Requests")),
        Column("requests_change_percent", N_("Change %"), "percent"),
        Column("transfers", N_("Transfers")),
        Column("transfers_change_percent", N_("Change %"), "percent"),
        Column("fill_rate_percent", N_("Fill rate %"), "percent"),
    ]
    report = Report(
        "yearly",
        N_("Yearly requests and transfers"),
        scope.params(),
        [Table("yearly", N_("Requests and transfers per year"), columns, rows)],
    )
    full = [r for r in rows if not r["partial"]] or rows
    if any(r["requests"] for r in full):
        report.extra["peak_year_requests"] = max(full, key=lambda r: r["requests"])["year"]
        report.extra["peak_year_transfers"] = max(full, key=lambda r: r["transfers"])["year"]
    if any(r["partial"] for r in rows):
        report.notes.append((N_("Years at the edges of the period are counted in part"), {}))
    report.chart = {
        "kind": "lines",
        "categories": [str(r["year"]) for r in rows],
        "series": [
            ("requests", N_("Requests"), [r["requests"] for r in rows]),
            ("transfers", N_("Transfers"), [r["transfers"] for r in rows]),
        ],
    }
    return report


def turnaround(session: Session, f: Filters) -> Report:
    """Median and 90th percentile hours from request to supply, per lender and service type,
    and for all lenders together."""
    scope = _begin(session, f)
    t = TurnaroundRollup
    stmt = (
        select(t.lender_id, t.service, t.hours, func.sum(t.n))
        .where(
            _in_spans(t.grain, t.period, spans(scope.start, scope.end)),
            *_filters(t, scope, t.lender_id),
        )
        .group_by(t.lender_id, t.service, t.hours)
    )
    hist: dict[tuple[int, str], dict[int, int]] = defaultdict(dict)
    overall: dict[str, dict[int, int]] = defaultdict(dict)
    for lender, service, hours, n in session.execute(stmt):
        h = hist[(int(lender), str(service))]
        h[int(hours)] = h.get(int(hours), 0) + int(n or 0)
        o = overall[str(service)]
        o[int(hours)] = o.get(int(hours), 0) + int(n or 0)
    rows: list[dict[str, Any]] = []
    for (lender, service), h in hist.items():
        m = scope.members.get(lender)
        if m is None:
            continue
        med, p90 = median_and_p90(h)
        rows.append(
            {
                **_member_cells(m),
                "service": service,
                "transfers": sum(h.values()),
                "median_hours": med,
                "p90_hours": p90,
            }
        )
    rows.sort(key=lambda r: (r["code"], SERVICES.index(r["service"])))
    by_service = []
    for service in SERVICES:
        h = overall.get(service, {})
        if not h:
            continue
        med, p90 = median_and_p90(h)
        by_service.append(
            {
                "service": service,
                "transfers": sum(h.values()),
                "median_hours": med,
                "p90_hours": p90,
            }
        )
    figure_cols = [
        Column("service", N_("Service type"), "text"),
        Column("transfers", N_("Transfers")),
        Column("median_hours", N_("Median hours"), "number"),
        Column("p90_hours", N_("90th percentile hours"), "number"),
    ]
    report = Report(
        "turnaround",
        N_("Turnaround"),
        scope.params(),
        [
            Table(
                "lenders",
                N_("Hours from request to supply, per lender"),
                NAME_COLUMNS + figure_cols,
                rows,
            ),
            Table("services", N_("All lenders"), figure_cols, by_service),
        ],
    )
    report.notes.append(
        (
            MSG_NOTE_TURNAROUND,
            {},
        )
    )
    codes = sorted({r["code"] for r in rows})
    series = []
    for service in SERVICES:
        found = {r["code"]: r["median_hours"] for r in rows if r["service"] == service}
        if found:
            series.append(
                (
                    f"median_{service.lower()}",
                    N_("Median hours, loans") if service == "Loan" else N_("Median hours, copies"),
                    [found.get(c) for c in codes],
                )
            )
    report.chart = {"kind": "bars", "categories": codes, "series": series}
    return report


def lending(session: Session, f: Filters) -> Report:
    """Net lending: transfers lent and borrowed per member and per region."""
    scope = _begin(session, f)
    t = LendingRollup
    stmt = (
        select(t.lender_id, t.borrower_id, func.sum(t.transfers))
        .where(
            _in_spans(t.grain, t.period, spans(scope.start, scope.end)), *_filters(t, scope, None)
        )
        .group_by(t.lender_id, t.borrower_id)
    )
    lent: dict[int, int] = defaultdict(int)
    borrowed: dict[int, int] = defaultdict(int)
    regions: dict[str, dict[str, int]] = defaultdict(
        lambda: {"lent": 0, "borrowed": 0, "within": 0}
    )
    for lender, borrower, n in session.execute(stmt):
        n = int(n or 0)
        lent[int(lender)] += n
        borrowed[int(borrower)] += n
        lm, bm = scope.members.get(int(lender)), scope.members.get(int(borrower))
        if lm is not None and scope.in_focus(lm.id):
            regions[lm.region_code]["lent"] += n
        if bm is not None and scope.in_focus(bm.id):
            regions[bm.region_code]["borrowed"] += n
        if (
            lm is not None
            and bm is not None
            and lm.region_code == bm.region_code
            and scope.in_focus(lm.id)
            and scope.in_focus(bm.id)
        ):
            regions[lm.region_code]["within"] += n
    ids = {i for i in set(lent) | set(borrowed) if scope.in_focus(i)}
    if scope.member is not None:
        ids.add(scope.member.id)
    rows: list[dict[str, Any]] = []
    for member_id in ids:
        m = scope.members.get(member_id)
        if m is None:
            continue
        a, b = lent.get(member_id, 0), borrowed.get(member_id, 0)
        rows.append(
            {
                **_member_cells(m),
                "region": m.region_code,
                "region_zh": m.region_zh,
                "region_en": m.region_en,
                "lent": a,
                "borrowed": b,
                "net": a - b,
                "lent_per_borrowed": None if not b else one_decimal(a / b),
            }
        )
    rows.sort(key=lambda r: (-r["net"], r["code"]))
    region_names = {m.region_code: (m.region_zh, m.region_en) for m in scope.members.values()}
    region_rows = []
    for code, v in sorted(regions.items()):
        zh, en = region_names.get(code, (code, code))
        region_rows.append(
            {
                "region": code,
                "region_zh": zh,
                "region_en": en,
                "lent": v["lent"],
                "borrowed": v["borrowed"],
                "net": v["lent"] - v["borrowed"],
                "within_region": v["within"],
                "within_region_percent": percent(v["within"], v["borrowed"]),
            }
        )
    member_cols = [
        *NAME_COLUMNS,
        Column("region_zh", N_("Region"), "text", lang="zh-CN"),
        Column("region_en", N_("Region"), "text", lang="en"),
        Column("lent", N_("Lent")),
        Column("borrowed", N_("Borrowed")),
        Column("net", N_("Net (lent − borrowed)")),
        Column("lent_per_borrowed", N_("Lent per borrowed"), "number"),
    ]
    region_cols = [
        Column("region", N_("Code"), "text"),
        Column("region_zh", N_("Region"), "text", lang="zh-CN"),
        Column("region_en", N_("Region"), "text", lang="en"),
        Column("lent", N_("Lent")),
        Column("borrowed", N_("Borrowed")),
        Column("net", N_("Net (lent − borrowed)")),
        Column("within_region", N_("Borrowed within the region")),
        Column("within_region_percent", N_("Within the region %"), "percent"),
    ]
    report = Report(
        "lending",
        N_("Net lending"),
        scope.params(),
        [
            Table("members", N_("Lent and borrowed per member"), member_cols, rows),
            Table("regions", N_("Lent and borrowed per region"), region_cols, region_rows),
        ],
    )
    report.chart = {
        "kind": "diverging",
        "categories": [r["code"] for r in rows],
        "series": [
            ("lent", N_("Lent"), [r["lent"] for r in rows]),
            ("borrowed", N_("Borrowed"), [-r["borrowed"] for r in rows]),
        ],
    }
    return report


def change(
    session: Session, f: Filters, compare_from: dt.date | None, compare_to: dt.date | None
) -> Report:
    """The service level of the period (``from``..``to``) against another period
    (``compare_from``..``compare_to``, usually the earlier one): requests, transfers and the
    fill rate of each, the change in counts and in percent, and in percentage points."""
    scope = _begin(session, f)
    b0 = check_date(compare_from, "compare_from")
    b1 = check_date(compare_to, "compare_to")
    if b1 < b0:
        raise Invalid(
            MSG_COMPARE_INVERTED, field="compare_to", start=b0.isoformat(), end=b1.isoformat()
        )
    now = _totals(session, scope, scope.start, scope.end)
    then = _totals(session, scope, b0, b1)
    rows: list[dict[str, Any]] = []
    for key, label in (
        ("requests", N_("Requests")),
        ("transfers", N_("Transfers")),
        ("unfilled", N_("Unfilled")),
        ("chinese_requests", N_("Chinese requests")),
        ("chinese_transfers", N_("Chinese transfers")),
        ("foreign_requests", N_("Foreign requests")),
        ("foreign_transfers", N_("Foreign transfers")),
    ):
        rows.append(
            {
                "measure": key,
                "label": label,
                "compared": then[key],
                "period": now[key],
                "change": now[key] - then[key],
                "change_percent": change_percent(now[key], then[key]),
            }
        )
    fr_now = percent(now["transfers"], now["requests"])
    fr_then = percent(then["transfers"], then["requests"])
    rows.append(
        {
            "measure": "fill_rate_percent",
            "label": N_("Fill rate %"),
            "compared": fr_then,
            "period": fr_now,
            "change": None if fr_now is None or fr_then is None else fr_now - fr_then,
            "change_percent": change_percent(fr_now, fr_then),
        }
    )
    columns = [
        Column("measure", N_("Measure"), "text"),
        Column("compared", N_("Compared period")),
        Column("period", N_("Period")),
        Column("change", N_("Change"), "number"),
        Column("change_percent", N_("Change %"), "percent"),
    ]
    params = scope.params() | {"compare_from": b0.isoformat(), "compare_to": b1.isoformat()}
    report = Report(
        "change",
        N_("Service level change"),
        params,
        [Table("change", N_("The period against the compared period"), columns, rows)],
    )
    report.extra["fill_rate_points"] = rows[-1]["change"]
    report.extra["fill_rate_change_percent"] = rows[-1]["change_percent"]
    report.notes.append(
        (
            MSG_NOTE_CHANGE,
            {},
        )
    )
    report.chart = {
        "kind": "bars",
        "categories": [N_("Requests"), N_("Transfers"), N_("Unfilled")],
        "translate_categories": True,
        "series": [
            (
                "compared",
                f"{b0.isoformat()} – {b1.isoformat()}",
                [then["requests"], then["transfers"], then["unfilled"]],
            ),
            (
                "period",
                f"{scope.start.isoformat()} – {scope.end.isoformat()}",
                [now["requests"], now["transfers"], now["unfilled"]],
            ),
        ],
        "literal_labels": True,
    }
    return report


def monthly_series(session: Session, scope: Scope, series: str) -> dict[dt.date, float | None]:
    """A monthly series by name (``SERIES``) within the scope's period."""
    if series in ("requests", "transfers", "unfilled", "fill_rate"):
        data = _monthly_requests(session, scope)
        out: dict[dt.date, float | None] = {}
        for month, (req, tr, unf, _can) in data.items():
            if series == "requests":
                out[month] = float(req)
            elif series == "transfers":
                out[month] = float(tr)
            elif series == "unfilled":
                out[month] = float(unf)
            else:
                fr = percent(tr, req)
                out[month] = float(fr) if fr is not None else None
        return out
    if series in ("lent", "borrowed"):
        return {m: float(v) for m, v in _monthly_lending(session, scope, series).items()}
    if series == "turnaround":
        return {
            m: float(v) if v is not None else None
            for m, v in _monthly_turnaround(session, scope).items()
        }
    raise Invalid(MSG_SERIES, field="series", choices=", ".join(SERIES))


SERIES_LABELS = {
    "requests": N_("Requests"),
    "transfers": N_("Transfers"),
    "fill_rate": N_("Fill rate %"),
    "unfilled": N_("Unfilled"),
    "lent": N_("Lent"),
    "borrowed": N_("Borrowed"),
    "turnaround": N_("Median hours"),
}


def impact(
    session: Session, f: Filters, intervention: dt.date | None, series: str = "requests"
) -> Report:
    """Before/after an intervention (a new card, a new member, a policy): segmented regression
    of a monthly series — level and trend before, and their change at the intervention, with
    95 % confidence intervals.

    Months that start on or after the intervention are *after*; the month it falls in (when it
    is not the 1st) is left out as the change-over; months the period covers only in part are
    left out of the fit.
    """
    if series not in SERIES:
        raise Invalid(MSG_SERIES, field="series", choices=", ".join(SERIES))
    scope = _begin(session, f)
    if intervention is None:
        raise Invalid(MSG_INTERVENTION_NEEDED, field="intervention")
    check_date(intervention, "intervention")
    if not scope.start <= intervention <= scope.end:
        raise Invalid(
            MSG_INTERVENTION_OUTSIDE,
            field="intervention",
            date=intervention.isoformat(),
            start=scope.start.isoformat(),
            end=scope.end.isoformat(),
        )
    months = _check_months(scope.start, scope.end)
    values = monthly_series(session, scope, series)
    ts: list[int] = []
    ys: list[float] = []
    phases: list[str] = []
    for i, month in enumerate(months):
        value = values.get(month)
        if _partial(month, scope.start, scope.end) or value is None:
            phases.append("left out")
        elif month >= intervention:
            phases.append("after")
        elif month_end(month) < intervention:
            phases.append("before")
        else:
            phases.append("change-over")
        if phases[-1] in ("before", "after"):
            ts.append(i)
            ys.append(float(value))  # type: ignore[arg-type]
    t0 = next((i for i, m in enumerate(months) if m >= intervention), len(months))
    before = sum(1 for p in phases if p == "before")
    after = sum(1 for p in phases if p == "after")
    if before < MIN_SIDE_MONTHS or after < MIN_SIDE_MONTHS:
        raise Invalid(
            MSG_TOO_FEW_MONTHS,
            field="intervention",
            before=before,
            after=after,
            min=MIN_SIDE_MONTHS,
        )
    fit = regression.segmented(ts, ys, t0)
    fitted = {t: v for t, v in zip(ts, fit.fitted, strict=True)}
    rows: list[dict[str, Any]] = []
    for i, month in enumerate(months):
        value = values.get(month)
        rows.append(
            {
                "month": month.strftime("%Y-%m"),
                "value": one_decimal(value)
                if series in ("fill_rate", "turnaround")
                else (None if value is None else int(value)),
                "phase": phases[i],
                "fitted": one_decimal(fitted[i]) if i in fitted else None,
                "without_change": one_decimal(fit.counterfactual(i)) if i >= t0 else None,
            }
        )
    model_rows = []
    for key, label, est in (
        ("level_before", N_("Level at the intervention, by the trend before"), fit.level_before),
        ("trend_before", N_("Trend before (per month)"), fit.trend_before),
        ("level_change", N_("Change of level at the intervention"), fit.level_change),
        ("trend_change", N_("Change of trend (per month)"), fit.trend_change),
        ("level_after", N_("Level just after the intervention"), fit.level_after),
        ("trend_after", N_("Trend after (per month)"), fit.trend_after),
    ):
        model_rows.append(
            {
                "parameter": key,
                "label": label,
                "estimate": one_decimal(est.value),
                "ci_low": one_decimal(est.low),
                "ci_high": one_decimal(est.high),
                "p_value": None
                if est.p is None
                else Decimal(str(est.p)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
            }
        )
    series_cols = [
        Column("month", N_("Month"), "text"),
        Column("value", SERIES_LABELS[series], "number"),
        Column("phase", N_("Phase"), "text"),
        Column("fitted", N_("Fitted"), "number"),
        Column("without_change", N_("Without the change"), "number"),
    ]
    model_cols = [
        Column("parameter", N_("Parameter"), "text"),
        Column("estimate", N_("Estimate"), "number"),
        Column("ci_low", N_("95% CI low"), "number"),
        Column("ci_high", N_("95% CI high"), "number"),
        Column("p_value", N_("p"), "number"),
    ]
    params = scope.params() | {"intervention": intervention.isoformat(), "series": series}
    report = Report(
        "impact",
        N_("Before and after"),
        params,
        [
            Table("model", N_("Segmented regression"), model_cols, model_rows),
            Table("series", N_("The monthly series"), series_cols, rows),
        ],
    )
    report.extra.update(
        {
            "months_before": before,
            "months_after": after,
            "r_squared": one_decimal(fit.r_squared * 100) if fit.r_squared is not None else None,
            "durbin_watson": None
            if fit.durbin_watson is None
            else Decimal(str(round(fit.durbin_watson, 2))),
        }
    )
    report.notes.append(
        (
            MSG_NOTE_MODEL,
            {"before": before, "after": after},
        )
    )
    report.chart = {
        "kind": "impact",
        "categories": [r["month"] for r in rows],
        "series": [
            (
                "value",
                SERIES_LABELS[series],
                [float(r["value"]) if r["value"] is not None else None for r in rows],
            ),
            (
                "fitted",
                N_("Fitted"),
                [float(r["fitted"]) if r["fitted"] is not None else None for r in rows],
            ),
            (
                "without_change",
                N_("Without the change"),
                [
                    float(r["without_change"]) if r["without_change"] is not None else None
                    for r in rows
                ],
            ),
        ],
        "marker": t0,
    }
    return report


# ----------------------------------------------------------------------------- overlap


def overlap(session: Session, f: Filters) -> Report:
    """Collection overlap in the union catalogue as it stood at the end of the period: titles
    (clusters) held by one member only — its characteristic collection — by 2, 3, … members,
    and the member × member matrix of shared titles. Region and type choose the members
    compared (a title unique within them); a member shows its own titles against the others;
    the language is the record's."""
    if f.service:
        normalise_service(f.service)
        raise Invalid(MSG_NOT_APPLICABLE, field="service", name="service", report="overlap")
    scope = _begin(session, f)
    overlap_rollup.refresh(session)
    universe = (
        frozenset(m.id for m in scope.members.values() if scope.in_focus(m.id))
        if scope.member is None
        else _universe_without_member_filter(session, scope)
    )
    ids = sorted(universe, key=lambda i: scope.members[i].code)
    index = {mid: i for i, mid in enumerate(ids)}
    size = len(ids)
    focus = scope.member.id if scope.member is not None else None
    # The holders of each title on the period's last day, narrowed to the members compared.
    within: dict[frozenset[int], int] = defaultdict(int)
    for members_of, n in overlap_rollup.holder_sets(session, scope.end, scope.language):
        inside = members_of & universe
        if inside and (focus is None or focus in inside):
            within[inside] += n
    by_count: dict[int, int] = defaultdict(int)
    unique: dict[int, int] = defaultdict(int)
    sets = list(within.items())
    # matrix[a][b]: titles held by both (the diagonal: titles held) = Xᵀ·diag(n)·X over the
    # sets (X: which members are in each set).
    x = np.zeros((len(sets), size), dtype=np.int64)
    weights = np.zeros(len(sets), dtype=np.int64)
    for i, (members_of, n) in enumerate(sets):
        by_count[len(members_of)] += n
        if len(members_of) == 1:
            unique[next(iter(members_of))] += n
        x[i, [index[m] for m in members_of]] = 1
        weights[i] = n
    product = x.T @ (x * weights[:, None]) if sets else np.zeros((size, size), dtype=np.int64)
    matrix = [[int(v) for v in line] for line in product]
    held = {mid: matrix[index[mid]][index[mid]] for mid in ids}
    titles = sum(by_count.values())
    dist_rows = [
        {"members": k, "titles": n, "share_percent": percent(n, titles)}
        for k, n in sorted(by_count.items())
    ]
    shown = [focus] if focus is not None else ids
    member_rows = []
    for mid in shown:
        m = scope.members[mid]
        member_rows.append(
            {
                **_member_cells(m),
                "titles": held.get(mid, 0),
                "unique": unique.get(mid, 0),
                "unique_percent": percent(unique.get(mid, 0), held.get(mid, 0)),
            }
        )
    member_rows.sort(key=lambda r: (-r["unique"], r["code"]))
    codes = [scope.members[i].code for i in ids]
    matrix_rows = []
    for mid in shown:
        row: dict[str, Any] = {"code": scope.members[mid].code}
        for j, code in enumerate(codes):
            row[code] = matrix[index[mid]][j]
        matrix_rows.append(row)
    report = Report(
        "overlap",
        N_("Collection overlap"),
        scope.params(),
        [
            Table(
                "distribution",
                N_("Titles by the number of members holding them"),
                [
                    Column("members", N_("Members holding")),
                    Column("titles", N_("Titles")),
                    Column("share_percent", N_("Share %"), "percent"),
                ],
                dist_rows,
                {"members": "", "titles": titles, "share_percent": percent(titles, titles)},
            ),
            Table(
                "members",
                N_("Titles held and titles held by no other member"),
                [
                    *NAME_COLUMNS,
                    Column("titles", N_("Titles held")),
                    Column("unique", N_("Held by it only")),
                    Column("unique_percent", N_("Held by it only %"), "percent"),
                ],
                member_rows,
            ),
            Table(
                "matrix",
                N_("Titles held by both members"),
                [Column("code", N_("Code"), "text"), *(Column(c, c, "int") for c in codes)],
                matrix_rows,
            ),
        ],
    )
    report.extra["titles"] = titles
    report.notes.append((N_("The catalogue as it stood at the end of the period"), {}))
    report.chart = {
        "kind": "heatmap",
        "rows": [scope.members[i].code for i in shown],
        "columns": codes,
        "values": [[matrix[index[i]][j] for j in range(size)] for i in shown],
    }
    return report


def _universe_without_member_filter(session: Session, scope: Scope) -> frozenset[int]:
    """With a member chosen: the members it is compared with (region and type still apply)."""
    assert scope.member is not None
    out = set()
    for m in scope.members.values():
        if scope.region is not None and m.region_code != scope.region:
            continue
        if scope.member_type is not None and m.type != scope.member_type:
            continue
        out.add(m.id)
    out.add(scope.member.id)
    return frozenset(out)


# ----------------------------------------------------------------------------- one entry


@dataclass(frozen=True)
class Options:
    """Report-specific parameters."""

    compare_from: dt.date | None = None
    compare_to: dt.date | None = None
    intervention: dt.date | None = None
    series: str = "requests"


def run(session: Session, name: str, f: Filters, options: Options | None = None) -> Report:
    """Any report by name (``REPORTS``); ``extra["as_of"]`` is the newest event it includes."""
    report = _run(session, name, f, options or Options())
    report.extra["as_of"] = rollup.state(session).last_event_id
    return report


def _run(session: Session, name: str, f: Filters, options: Options) -> Report:
    if name == "service":
        return service_table(session, f)
    if name == "monthly":
        return monthly(session, f)
    if name == "yearly":
        return yearly(session, f)
    if name == "turnaround":
        return turnaround(session, f)
    if name == "lending":
        return lending(session, f)
    if name == "change":
        return change(session, f, options.compare_from, options.compare_to)
    if name == "impact":
        return impact(session, f, options.intervention, options.series)
    if name == "overlap":
        return overlap(session, f)
    raise NotFound(MSG_UNKNOWN_REPORT, field="report", name=name, choices=", ".join(REPORTS))


def data_range(session: Session) -> tuple[dt.date, dt.date] | None:
    """The first and last day with requests (after bringing the roll-ups up to date)."""
    rollup.refresh(session)
    r = RequestRollup
    lo, hi = session.execute(
        select(func.min(r.period), func.max(r.period)).where(r.grain == "d")
    ).one()
    if lo is None or hi is None:
        return None
    return _to_date(lo), _to_date(hi)


def joins_within(session: Session, start: dt.date, end: dt.date) -> list[tuple[dt.date, str]]:
    """Members that joined inside the period (candidate interventions), by date."""
    rows = session.execute(
        select(Member.joined_on, Member.code)
        .where(Member.joined_on.is_not(None), Member.joined_on > start, Member.joined_on < end)
        .order_by(Member.joined_on, Member.code)
    )
    return [(d, c) for d, c in rows if d is not None]
