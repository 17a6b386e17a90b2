"""Request events written in bulk, in the shape the resource-sharing service writes them — for
the statistics benchmark only.

Ten million events made through the service (``demo/simulator.py``) take hours on a small
machine; the statistics read nothing but the event log. So ``bench/stats.py`` writes the
events of the simulator's calibrated plan directly: a request's whole life (``Life``) becomes
the rows the service would have appended for it — the same actions in the same order, the same
payload keys (``from``, ``to``, ``borrower``, ``lender``, ``service``, ``lang``, ``v`` and each
action's own), actors, member ids and moments (``events``). The request tables themselves are
not written: no report reads them. ``tests/stats/test_bulk.py`` rebuilds a life from each
request the service wrote, checks that ``events`` gives back the service's very rows, and that
the roll-ups of the bulk-written copy equal the service's.

``plan`` draws the lives from the simulator's plan (the same calibration, volumes and language
mix; a rota of two to four members that had joined, the lenders' paces and delays as the
simulator's); ``write`` appends rows in time order (ids ascend with the moment, as a replay's
do), with ``executemany`` on SQLite and ``COPY`` on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.demo import simulator
from consortia.members.models import Member

ENTITY = "ill_request"
REASON = "not on the shelf"
# One event row: at (aware), actor, actor_user_id, action, entity_type, entity_id, member_id,
# payload (a dict).
Row = tuple[dt.datetime, str, int | None, str, str, str, int | None, dict[str, Any]]


@dataclass
class Try:
    """A lender the request was sent to: when its answer is due, and when it declined."""

    lender: int
    due: dt.datetime
    declined: dt.datetime | None = None


@dataclass
class Life:
    """One request from its creation to its end, as the service would have recorded it."""

    request_id: int
    borrower: int
    service: str  # Loan, Copy
    lang: str  # chinese, foreign
    created: dt.datetime
    cluster: int | None
    rota: list[int]
    excluded: dict[str, str] = field(default_factory=dict)
    tries: list[Try] = field(default_factory=list)
    will_supply: dt.datetime | None = None  # loans: the lender's WillSupply
    shipped: dt.datetime | None = None  # by the last try's lender
    loan_due: dt.datetime | None = None
    received: dt.datetime | None = None
    returned: dt.datetime | None = None
    completed: dt.datetime | None = None  # a loan checked in by the lender
    unfilled: dt.datetime | None = None  # every lender of the rota declined


def system_label(code: str) -> str:
    """The member's library system (files requests, confirms receipt, returns loans)."""
    return f"token:{code.lower().removeprefix('cn-')}-system"


def staff_label(code: str) -> str:
    return f"user:{code.lower().removeprefix('cn-')}-staff"


def events(life: Life, codes: dict[int, str]) -> list[Row]:
    """The rows the service appends over the request's life (``ill/service.py``)."""
    eid = str(life.request_id)
    b = life.borrower
    system = system_label(codes[b])
    out: list[Row] = []
    v = 2

    def add(
        at: dt.datetime,
        actor: str,
        action: str,
        member: int | None,
        frm: str | None,
        to: str,
        lender: int | None,
        **extra: Any,
    ) -> None:
        payload = {
            "from": frm,
            "to": to,
            "borrower": b,
            "lender": lender,
            "service": life.service,
            "lang": life.lang,
            "v": v,
        }
        payload.update(extra)
        out.append((at, actor, None, action, ENTITY, eid, member, payload))

    t0 = life.created
    add(
        t0,
        system,
        "ill.request.created",
        b,
        None,
        "Submitted",
        None,
        via="api",
        cluster=life.cluster,
        pickup=b,
        needed_by=None,
    )
    add(t0, system, "ill.request.routed", b, "Submitted", "Routing", None, rota=life.rota,
        excluded=life.excluded)  # fmt: skip
    actor, at = system, t0
    reasons: list[str] = []
    for position, attempt in enumerate(life.tries):
        le = attempt.lender
        add(at, actor, "ill.request.sent", le, "Routing", "Sent", le, position=position,
            due=attempt.due.isoformat())  # fmt: skip
        if attempt.declined is None:
            break
        v += 1
        at, actor = attempt.declined, staff_label(codes[le])
        add(at, actor, "ill.request.declined", le, "Sent", "Routing", le, position=position,
            status="Unfilled", reason=REASON)  # fmt: skip
        reasons.append(f"{codes[le]}: unfilled ({REASON})")
    if life.unfilled is not None:
        add(life.unfilled, actor, "ill.request.unfilled", b, "Routing", "Unfilled", None,
            reasons=reasons)  # fmt: skip
        return out
    if life.shipped is None:
        return out
    le = life.tries[-1].lender
    staff = staff_label(codes[le])
    position = len(life.tries) - 1
    if life.will_supply is not None:
        v += 1
        add(life.will_supply, staff, "ill.lender.status", le, "Sent", "Sent", le,
            status="WillSupply", previous="RequestReceived")  # fmt: skip
    v += 1
    loan = life.service == "Loan"
    add(
        life.shipped,
        staff,
        "ill.request.shipped",
        le,
        "Sent",
        "Shipped",
        le,
        status="Loaned" if loan else "CopyCompleted",
        position=position,
        loan_due=life.loan_due.isoformat() if life.loan_due is not None else None,
    )
    if life.received is None:
        return out
    v += 1
    add(life.received, system, "ill.request.received", b, "Shipped",
        "Received" if loan else "Completed", le)  # fmt: skip
    if life.returned is None:
        return out
    v += 1
    add(life.returned, system, "ill.request.returned", b, "Received", "Returned", le)
    if life.completed is None:
        return out
    v += 1
    add(life.completed, staff, "ill.request.completed", le, "Returned", "Completed", le,
        status="LoanCompleted")  # fmt: skip
    return out


# ----------------------------------------------------------------------------- the plan


def _hours(rnd: random.Random, low: float, span: float, pace: float = 1.0) -> dt.timedelta:
    return dt.timedelta(hours=(low + rnd.random() * span) * pace)


def plan(
    session: Session,
    *,
    scale: float = 1.0,
    seed: int = 2016,
    calibration: simulator.Calibration = simulator.CALIBRATION,
    clusters: int = 100_000,
    first_request_id: int = 1,
) -> Iterator[tuple[dt.date, list[Life]]]:
    """Each day's lives, drawn from the simulator's plan (members, volumes, language mix,
    fill decisions) with the simulator's delays; ``clusters`` the ids a request may ask for."""
    rnd = random.Random(seed)
    plans = simulator.member_plans(session, calibration, rnd)
    origin = dt.datetime.combine(calibration.start, dt.time(), simulator.CST)
    pace = {p.id: p.pace for p in plans}
    rid = first_request_id
    for day, todays in simulator.arrivals(calibration, plans, scale, rnd):
        joined = [p.id for p in plans if p.joined <= day]
        lives = []
        for a in todays:
            b = plans[a.member].id
            others = [m for m in joined if m != b]
            rota = rnd.sample(others, min(len(others), 2 + rnd.randrange(3)))
            t = (origin + dt.timedelta(seconds=a.t)).astimezone(dt.UTC)
            life = Life(rid, b, a.service, a.language, t, 1 + rnd.randrange(clusters), rota)
            rid += 1
            if not a.filled:
                for le in rota:
                    t_next = t + _hours(rnd, 1, 20, pace[le])
                    life.tries.append(Try(le, t + dt.timedelta(days=4), t_next))
                    t = t_next
                life.unfilled = t
            else:
                le = rota[0]
                life.tries.append(Try(le, t + dt.timedelta(days=4)))
                if a.service == "Copy":
                    life.shipped = t + _hours(rnd, 4, 32, pace[le])
                    life.received = life.shipped + _hours(rnd, 1, 47)
                else:
                    life.will_supply = t + _hours(rnd, 1, 19, pace[le])
                    life.shipped = life.will_supply + _hours(rnd, 1, 19, pace[le])
                    life.loan_due = life.shipped + dt.timedelta(days=30)
                    life.received = life.shipped + _hours(rnd, 24, 48)
                    life.returned = life.received + _hours(rnd, 5 * 24, 17 * 24)
                    life.completed = life.returned + _hours(rnd, 24, 48, pace[le])
            lives.append(life)
        yield day, lives


def member_codes(session: Session) -> dict[int, str]:
    return {int(i): str(c) for i, c in session.execute(select(Member.id, Member.code))}


# ----------------------------------------------------------------------------- writing


def time_ordered(
    days: Iterable[tuple[dt.date, Sequence[Life]]], codes: dict[int, str]
) -> Iterator[list[Row]]:
    """Rows in the order a replay appends them (by moment), a day at a time."""
    heap: list[tuple[dt.datetime, int, Row]] = []
    seq = 0
    for day, lives in days:
        for life in lives:
            for row in events(life, codes):
                seq += 1
                heapq.heappush(heap, (row[0], seq, row))
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), simulator.CST)
        out = []
        while heap and heap[0][0] < end:
            out.append(heapq.heappop(heap)[2])
        yield out
    yield [heapq.heappop(heap)[2] for _ in range(len(heap))]


_INSERT = (
    "INSERT INTO events (at, actor, actor_user_id, action, entity_type, entity_id, member_id, "
    "payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "at, actor, actor_user_id, action, entity_type, entity_id, member_id, payload"


def _dumps(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS).decode()


def write(
    session: Session,
    batches: Iterable[Sequence[Row]],
    *,
    commit_every: int = 200_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append the rows (in the given order) to the event log; commits as it goes. Returns the
    number written."""
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    raw: Any = conn.connection.dbapi_connection
    cur = raw.cursor()
    n = pending = 0
    try:
        for batch in batches:
            if not batch:
                continue
            if pg:
                with cur.copy(f"COPY events ({_COLUMNS}) FROM STDIN") as copy:
                    for r in batch:
                        copy.write_row((*r[:7], _dumps(r[7])))
            else:
                cur.executemany(
                    _INSERT,
                    [
                        (
                            r[0]
                            .astimezone(dt.UTC)
                            .replace(tzinfo=None)
                            .isoformat(" ", "microseconds"),
                            *r[1:7],
                            _dumps(r[7]),
                        )
                        for r in batch
                    ],
                )
            n += len(batch)
            pending += len(batch)
            if pending >= commit_every:
                raw.commit()
                pending = 0
                if progress is not None:
                    progress(n)
        raw.commit()
    finally:
        cur.close()
    session.commit()
    return n
