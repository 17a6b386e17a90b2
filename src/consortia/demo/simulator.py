"""A consortium's life, 2010-2016, lived through the real services and calibrated to the paper.

Every request is made, routed, answered, supplied, received and returned (or declined by every
lender until it ends unfilled) by the resource-sharing service at its own moment (``at=``): the
statistics come from the events this writes, never from rows written into report tables.

Calibration (``CALIBRATION``; ``scale`` multiplies every volume):

- the consortium's requests per year double from 2010 (175,000) to the 2014 peak (350,000) and
  fall in 2015 and 2016, 2016 below 2012 (Fig. 2);
- the fill rate per year makes transfers double 2010 → 2013, peak in 2013 and fall after (Fig. 3:
  in 2014 the lenders could not keep up);
- the months follow the academic year with the New-Year peak (January highest, the Spring
  Festival in February and the summer low), weekdays busier than weekends, 08:00-22:00 (Fig. 1);
- the largest member, Guangzhou University of Chinese Medicine, asks for about 15,000 a month
  in 2016 (Fig. 1); the other members share the rest in the proportions of the paper's Table 1,
  each with its own Chinese/foreign mix from Table 1; the Jilin members add a little from when
  they joined. The paper's figures come from different consortia and cannot all hold at once
  at Table 1's scale (its week alone is 21,119 requests); the week itself is replayed exactly by
  ``demo/paper_week.py``.

Volumes are deterministic (counts per member and day are the calibrated expectations carried
over from day to day, so a year's total is its target at any scale; the language and the fill
decisions are spread the same way), the rest comes from a seeded random generator: the same
seed gives the same history. Members ask only after they joined (``joined_on``) and only for
titles that members which had joined by then hold, so routing never reaches into the future.

Requests are filed by each member's own library system (a member-system principal, as a Koha
or an Aleph would over the API); each lender's staff answer. 85 % are copies (document
delivery), 15 % loans; each lender has its own pace.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.models import User
from consortia.accounts.roles import Principal, Role
from consortia.catalog.models import Cluster, Holding, SourceRecord
from consortia.demo.load import DATA, demo_rows
from consortia.members.models import Member

CST = dt.timezone(dt.timedelta(hours=8))
HOUR = 3600.0
DAY = 86400.0
LARGEST = "CN-GZUCM"
TABLE1 = "table1_service_2016-10-17_2016-10-23.csv"


@dataclass(frozen=True)
class Calibration:
    start: dt.date = dt.date(2010, 1, 1)
    end: dt.date = dt.date(2016, 12, 31)
    # Requests of the whole consortium per year (Fig. 2).
    requests: tuple[tuple[int, int], ...] = (
        (2010, 175_000),
        (2011, 215_000),
        (2012, 262_000),
        (2013, 320_000),
        (2014, 350_000),
        (2015, 300_000),
        (2016, 250_000),
    )
    # Share of requests filled per year (Fig. 3: transfers peak in 2013).
    fill_rate: tuple[tuple[int, float], ...] = (
        (2010, 0.90),
        (2011, 0.92),
        (2012, 0.94),
        (2013, 0.95),
        (2014, 0.82),
        (2015, 0.92),
        (2016, 0.95),
    )
    # January to December (Fig. 1: highest at the beginning of the year).
    months: tuple[float, ...] = (
        1.40,
        0.70,
        1.10,
        1.05,
        1.05,
        0.95,
        0.75,
        0.70,
        1.00,
        1.05,
        1.10,
        1.15,
    )
    weekend: float = 0.45  # a weekend day against a weekday
    largest_share: float = 0.76  # of the consortium's requests: ~15,000 a month in 2016
    jilin_share: float = 0.008  # each Jilin member, from its joining
    copy_share: float = 0.85


CALIBRATION = Calibration()


@dataclass
class Summary:
    requests: int = 0
    calls: int = 0
    events: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, result: Any) -> None:
        self.calls += 1
        for name in result.events:
            self.events[name] = self.events.get(name, 0) + 1


def table1_mix() -> dict[str, tuple[int, float]]:
    """Requests per member in the paper's week and its Chinese share."""
    import csv

    names = {r["name_en"]: r["code"] for r in demo_rows("members.csv")}
    out: dict[str, tuple[int, float]] = {}
    with (DATA / TABLE1).open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            zh, foreign = int(row["chinese_requests"]), int(row["foreign_requests"])
            out[names[row["library_en"]]] = (zh + foreign, zh / (zh + foreign))
    return out


@dataclass(frozen=True)
class MemberPlan:
    id: int
    code: str
    joined: dt.date
    weight: float
    chinese_share: float
    pace: float  # the lender's delays are multiplied by this


def member_plans(session: Session, cal: Calibration, rnd: random.Random) -> list[MemberPlan]:
    mix = table1_mix()
    others = sum(n for code, (n, _zh) in mix.items() if code != LARGEST)
    out = []
    for m in session.scalars(select(Member).order_by(Member.code)):
        if m.code == LARGEST:
            weight, zh = cal.largest_share, mix[m.code][1]
        elif m.code in mix:
            weight = (1 - cal.largest_share) * mix[m.code][0] / others
            zh = mix[m.code][1]
        else:
            weight, zh = cal.jilin_share, 0.9
        out.append(
            MemberPlan(
                m.id,
                m.code,
                m.joined_on or cal.start,
                weight,
                zh,
                0.6 + rnd.random(),
            )
        )
    return out


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Arrival:
    t: float  # seconds since the start, China's time
    member: int  # index into the plans
    language: str
    service: str
    filled: bool


class Carry:
    """Spreads expectations over whole units: the running total never drifts from the target."""

    __slots__ = ("acc",)

    def __init__(self) -> None:
        self.acc = 0.0

    def take(self, expected: float) -> int:
        self.acc += expected
        n = int(self.acc)
        self.acc -= n
        return n

    def hit(self, share: float) -> bool:
        self.acc += share
        if self.acc >= 1.0 - 1e-12:
            self.acc -= 1.0
            return True
        return False


def day_weights(cal: Calibration, year: int) -> dict[dt.date, float]:
    d = max(dt.date(year, 1, 1), cal.start)
    last = min(dt.date(year, 12, 31), cal.end)
    out: dict[dt.date, float] = {}
    while d <= last:
        w = cal.months[d.month - 1] * (cal.weekend if d.weekday() >= 5 else 1.0)
        out[d] = w
        d += dt.timedelta(days=1)
    return out


def arrivals(
    cal: Calibration, plans: list[MemberPlan], scale: float, rnd: random.Random
) -> Iterator[tuple[dt.date, list[Arrival]]]:
    """Each day's requests, in time order."""
    yearly = dict(cal.requests)
    fill = dict(cal.fill_rate)
    counts = [Carry() for _ in plans]
    langs = [Carry() for _ in plans]
    unfilled = [Carry() for _ in plans]
    origin = dt.datetime.combine(cal.start, dt.time(), CST)
    for year in range(cal.start.year, cal.end.year + 1):
        weights = day_weights(cal, year)
        # A whole year's weights, so a partial first or last year keeps its months' shares.
        full = sum(
            day_weights(Calibration(dt.date(year, 1, 1), dt.date(year, 12, 31)), year).values()
        )
        for day, w in weights.items():
            expected = yearly.get(year, 0) * scale * w / full
            joined = [i for i, p in enumerate(plans) if p.joined <= day]
            total_weight = sum(plans[i].weight for i in joined) or 1.0
            today: list[Arrival] = []
            base = (dt.datetime.combine(day, dt.time(), CST) - origin).total_seconds()
            for i in joined:
                p = plans[i]
                for _ in range(counts[i].take(expected * p.weight / total_weight)):
                    t = base + 8 * HOUR + rnd.random() * 14 * HOUR
                    lang = "chinese" if langs[i].hit(p.chinese_share) else "foreign"
                    service = "Copy" if rnd.random() < cal.copy_share else "Loan"
                    filled = not unfilled[i].hit(1.0 - fill.get(year, 0.95))
                    today.append(Arrival(t, i, lang, service, filled))
            today.sort(key=lambda a: a.t)
            yield day, today


# ----------------------------------------------------------------------------- what is held


class Pools:
    """Titles a member may ask for: held (an item on the shelf) by another member that had
    joined, and lends the service type. Chosen by language; recomputed when members join."""

    def __init__(self, session: Session, plans: list[MemberPlan]) -> None:
        self.plans = plans
        holders: dict[int, set[int]] = {}
        for cid, mid in session.execute(
            select(SourceRecord.cluster_id, Holding.member_id)
            .join(Holding, Holding.source_record_id == SourceRecord.id)
            .where(
                SourceRecord.cluster_id.is_not(None),
                SourceRecord.deleted.is_(False),
                Holding.status == "available",
            )
        ):
            if cid is not None:
                holders.setdefault(int(cid), set()).add(int(mid))
        self.holders = holders
        self.language: dict[int, str] = {}
        for cid, merged in session.execute(select(Cluster.id, Cluster.merged)):
            values = [e.get("value") for e in (merged or {}).get("languages", [])]
            self.language[int(cid)] = "chinese" if values[:1] in (["chi"], ["zho"]) else "foreign"
        lends = {m.id: (m.lends_loans, m.lends_copies) for m in session.scalars(select(Member))}
        self.lends = lends
        self.cache: dict[tuple[int, str, str, frozenset[int]], list[int]] = {}

    def pick(
        self, rnd: random.Random, member: int, lang: str, service: str, joined: frozenset[int]
    ) -> int | None:
        pool = self.pool(member, lang, service, joined)
        if not pool:
            return None
        return pool[rnd.randrange(len(pool))]

    def pool(self, member: int, lang: str, service: str, joined: frozenset[int]) -> list[int]:
        key = (member, lang, service, joined)
        pool = self.cache.get(key)
        if pool is None:
            mine = self.plans[member].id
            slot = 0 if service == "Loan" else 1
            pool = sorted(
                cid
                for cid, hs in self.holders.items()
                if self.language.get(cid) == lang
                and any(h != mine and h in joined and self.lends.get(h, (1, 1))[slot] for h in hs)
            )
            self.cache[key] = pool
        return pool


# ----------------------------------------------------------------------------- the replay


def _principals(
    session: Session, plans: list[MemberPlan]
) -> tuple[dict[int, Principal], dict[int, Principal]]:
    """Each member's system (files requests) and staff (answers as lender): the demo's staff
    accounts when they exist."""
    from consortia.accounts.service import principal_for

    systems: dict[int, Principal] = {}
    staff: dict[int, Principal] = {}
    for p in plans:
        short = p.code.lower().removeprefix("cn-")
        systems[p.id] = Principal(
            kind="token",
            label=f"token:{short}-system",
            role=Role.member_system,
            member_id=p.id,
            member_code=p.code,
        )
        user = session.scalar(select(User).where(User.username == f"{short}-staff"))
        staff[p.id] = (
            principal_for(user, p.code)
            if user is not None
            else Principal(
                kind="user",
                label=f"user:{short}-staff",
                role=Role.library_staff,
                member_id=p.id,
                member_code=p.code,
            )
        )
    return systems, staff


class Life:
    """Replays the plan: arrivals by the day, each request's next steps from a time-ordered
    queue; commits every ``batch`` service calls (a call refused by the service changes nothing
    and is not retried)."""

    def __init__(
        self,
        factory: Callable[[], Session],
        cal: Calibration,
        scale: float,
        seed: int,
        batch: int = 1000,
        progress: Callable[[dt.date, Summary], None] | None = None,
    ) -> None:
        self.factory = factory
        self.cal = cal
        self.scale = scale
        self.rnd = random.Random(seed)
        self.batch = batch
        self.progress = progress
        self.session = factory()
        self.plans = member_plans(self.session, cal, self.rnd)
        self.pools = Pools(self.session, self.plans)
        self.systems, self.staff = _principals(self.session, self.plans)
        self.session.commit()
        self.origin = dt.datetime.combine(cal.start, dt.time(), CST)
        self.heap: list[tuple[float, int, str, int, int]] = []
        self.seq = 0
        self.pending = 0
        self.summary = Summary()
        self.borrower: dict[int, int] = {}
        self.lender: dict[int, int] = {}
        self.destiny: dict[int, bool] = {}
        self.pages = 0
        self.joined: frozenset[int] = frozenset()

    def at(self, t: float) -> dt.datetime:
        return (self.origin + dt.timedelta(seconds=t)).astimezone(dt.UTC)

    def push(self, t: float, step: str, request_id: int, position: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, step, request_id, position))

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        result = fn(self.session, *args, **kw)
        self.summary.add(result)
        self.pending += 1
        if self.pending >= self.batch:
            self.session.commit()
            self.pending = 0
        return result

    def pace(self, request_id: int) -> float:
        lender = self.lender.get(request_id)
        for p in self.plans:
            if p.id == lender:
                return p.pace
        return 1.0

    def follow(self, t: float, result: Any) -> None:
        rid = result.request_id
        if result.lender_id is not None:
            self.lender[rid] = result.lender_id
        if result.state == "Sent":
            delay = self.pace(rid)
            if not self.destiny[rid]:
                self.push(
                    t + (1 + self.rnd.random() * 20) * HOUR * delay, "decline", rid, result.position
                )
            elif result.service_type == "Copy":
                self.push(
                    t + (4 + self.rnd.random() * 32) * HOUR * delay, "ship", rid, result.position
                )
            else:
                self.push(
                    t + (1 + self.rnd.random() * 19) * HOUR * delay, "will", rid, result.position
                )
        elif result.state in ("Unfilled", "Completed", "Cancelled"):
            self.summary.outcomes[result.state] = self.summary.outcomes.get(result.state, 0) + 1
            self.destiny.pop(rid, None)
            self.lender.pop(rid, None)
            self.borrower.pop(rid, None)

    def create(self, a: Arrival) -> None:
        from consortia.ill import service
        from consortia.ill.service import NewRequest

        plan = self.plans[a.member]
        cluster = self.pools.pick(self.rnd, a.member, a.language, a.service, self.joined)
        self.pages += 1
        new = NewRequest(
            service_type=a.service,
            cluster_id=cluster,
            title="" if cluster is not None else "Unlisted item",
            article_title="",
            pages=f"{self.pages % 400 + 1}-{self.pages % 400 + 12}" if a.service == "Copy" else "",
            language=a.language,
            via="api",
        )
        result = self.call(service.create_request, self.systems[plan.id], new, at=self.at(a.t))
        self.summary.requests += 1
        self.borrower[result.request_id] = plan.id
        self.destiny[result.request_id] = a.filled
        self.follow(a.t, result)

    def step(self, t: float, step: str, rid: int, position: int) -> None:
        from consortia.ill import service

        when = self.at(t)
        lender = self.staff.get(self.lender.get(rid, -1))
        borrower = self.systems[self.borrower[rid]]
        delay = self.pace(rid)
        if step == "decline":
            assert lender is not None
            self.follow(t, self.call(service.unfilled, lender, rid, "not on the shelf", at=when))
        elif step == "will":
            assert lender is not None
            self.call(service.will_supply, lender, rid, at=when)
            self.push(t + (1 + self.rnd.random() * 19) * HOUR * delay, "ship", rid, position)
        elif step == "ship":
            assert lender is not None
            result = self.call(service.ship, lender, rid, at=when)
            if result.service_type == "Copy":
                self.push(t + (1 + self.rnd.random() * 47) * HOUR, "received", rid, position)
            else:
                self.push(t + (1 + self.rnd.random() * 2) * DAY, "received", rid, position)
        elif step == "received":
            result = self.call(service.received, borrower, rid, at=when)
            if result.state == "Completed":
                self.follow(t, result)
            else:
                self.push(t + (5 + self.rnd.random() * 17) * DAY, "return", rid, position)
        elif step == "return":
            self.call(service.returned, borrower, rid, at=when)
            self.push(t + (1 + self.rnd.random() * 2) * DAY * delay, "checkin", rid, position)
        elif step == "checkin":
            assert lender is not None
            self.follow(t, self.call(service.checked_in, lender, rid, at=when))

    def run(self) -> Summary:
        try:
            return self._run()
        finally:
            self.session.close()

    def _run(self) -> Summary:
        from consortia.ill import service

        service.reset_caches()
        started = time.perf_counter()
        month = None
        for day, todays in arrivals(self.cal, self.plans, self.scale, self.rnd):
            end_of_day = (
                dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), CST) - self.origin
            ).total_seconds()
            self.joined = frozenset(p.id for p in self.plans if p.joined <= day)
            i = 0
            while i < len(todays) or (self.heap and self.heap[0][0] < end_of_day):
                next_step = self.heap[0][0] if self.heap else float("inf")
                if i < len(todays) and todays[i].t <= next_step:
                    self.create(todays[i])
                    i += 1
                else:
                    t, _seq, step, rid, position = heapq.heappop(self.heap)
                    self.step(t, step, rid, position)
            if self.progress is not None and day.month != month:
                month = day.month
                self.progress(day, self.summary)
        # Let what is under way finish (the last loans come back early in the next year).
        while self.heap:
            t, _seq, step, rid, position = heapq.heappop(self.heap)
            self.step(t, step, rid, position)
        self.session.commit()
        self.summary.seconds = time.perf_counter() - started
        return self.summary


def simulate(
    factory: Callable[[], Session],
    *,
    scale: float = 1.0,
    seed: int = 2016,
    calibration: Calibration = CALIBRATION,
    progress: Callable[[dt.date, Summary], None] | None = None,
    batch: int = 1000,
) -> Summary:
    """Live the consortium's history through the services; roll-ups are brought up to date at
    the end. Needs the members and a union catalogue (``demo.load``)."""
    from consortia.stats import rollup

    summary = Life(factory, calibration, scale, seed, batch, progress).run()
    with factory() as session:
        rollup.catch_up(session)
        session.commit()
    return summary


def expected_requests(calibration: Calibration = CALIBRATION, scale: float = 1.0) -> int:
    return round(sum(n for _y, n in calibration.requests) * scale)


SCALES = {"none": 0.0, "small": 0.003, "full": 1.0}
MSG_SCALE = "scale: none, small, full or a number between 0 and 1"


def parse_scale(value: str) -> float:
    from consortia.errors import Invalid

    if value in SCALES:
        return SCALES[value]
    try:
        number = float(value)
    except ValueError:
        raise Invalid(MSG_SCALE, field="scale") from None
    if not 0 <= number <= 1:
        raise Invalid(MSG_SCALE, field="scale")
    return number


def load_traffic(console: Any, scale: float, seed: int = 2016) -> Summary | None:
    """The demo's history at ``scale`` (skipped when requests exist already)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import func

    from consortia.db import session_factory
    from consortia.ill.models import IllRequest

    if scale <= 0:
        return None
    factory = session_factory()
    with factory() as session:
        n = int(session.scalar(select(func.count()).select_from(IllRequest)) or 0)
    if n:
        console.print(
            f"demo traffic already loaded ({n:,} requests) / 演示流量已载入（{n:,} 条请求）"
        )
        return None
    months = (CALIBRATION.end.year - CALIBRATION.start.year) * 12 + CALIBRATION.end.month
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[requests]:,} requests"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("2010–2016 / 模拟联盟历史", total=months, requests=0)

        def step(day: dt.date, summary: Summary) -> None:
            done = (day.year - CALIBRATION.start.year) * 12 + day.month
            bar.update(task, completed=done, requests=summary.requests)

        summary = simulate(factory, scale=scale, seed=seed, progress=step)
        bar.update(task, completed=months, requests=summary.requests)
    console.print(
        f"{summary.requests:,} requests, {sum(summary.events.values()):,} events in "
        f"{summary.seconds:.0f} s / 请求 {summary.requests:,} 条"
    )
    return summary
