"""The statistics roll-ups, kept from the event log by a high-water mark.

How they stay exact and current
-------------------------------
The resource-sharing service appends its events (``ill.request.*``) and knows nothing of
statistics. ``catch_up`` reads the events after the mark (``stats_rollup_state``), folds the
four that count into the roll-ups (``stats/models.py``) and moves the mark, in one transaction:

=========================  ================================================================
``ill.request.created``    a request of the borrower, service and language, on its day
``ill.request.shipped``    a transfer of that request; the lender's transfer to the borrower;
                           the turnaround (hours from the request to the supply, rounded up)
``ill.request.unfilled``   the request ended unfilled
``ill.request.cancelled``  the request was cancelled
=========================  ================================================================

Every count goes to the day the request was made (its ``created`` event), in China's time, at
the three grains (day, month, year). It runs

- before every report (``refresh``): a report always includes every committed event, and costs
  two cheap reads when nothing is new;
- every minute in the background (``stats/tasks.py``), so that the backlog a report finds is
  small;
- from the start by ``rebuild`` (``consortia stats rebuild``), which empties the roll-ups and
  reads the whole log again in one transaction: the same figures, since both are the same fold.

Only one catch-up runs at a time: it first writes the state row (a row lock on PostgreSQL, the
write lock on SQLite) and only then reads the mark. PostgreSQL hands out event ids before
commit, so an id below the newest one seen may still be invisible; such missing ids are kept as
*gaps* and looked for again at every run until they appear or are older than ``GAP_WAIT`` (no
transaction of the service lasts that long; a rolled-back one never appears).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session

from consortia.db import utcnow

# Days are China's days (one time zone, no daylight saving: a fixed offset is exact).
CHINA = dt.timezone(dt.timedelta(hours=8), "CST")
CREATED = "ill.request.created"
SHIPPED = "ill.request.shipped"
UNFILLED = "ill.request.unfilled"
CANCELLED = "ill.request.cancelled"
COUNTED = (CREATED, SHIPPED, UNFILLED, CANCELLED)
ENTITY = "ill_request"
GRAINS = ("d", "m", "y")

BATCH = 20_000  # events read per statement
FLUSH_KEYS = 200_000  # pending roll-up rows written out once this many are held
CREATED_CACHE = 500_000  # request creation times remembered across batches
GAP_WAIT = dt.timedelta(minutes=10)
MAX_GAPS = 10_000


def local_day(at: dt.datetime) -> dt.date:
    """The day in China of an aware moment: the day a request counts for."""
    return at.astimezone(CHINA).date()


def periods(day: dt.date) -> tuple[tuple[str, dt.date], ...]:
    """The day, its month and its year, as (grain, period start)."""
    return (("d", day), ("m", day.replace(day=1)), ("y", day.replace(month=1, day=1)))


def turnaround_hours(created: dt.datetime, shipped: dt.datetime) -> int:
    """Whole hours from request to supply, rounded up (a supply within the hour is 1 hour)."""
    seconds = (shipped - created).total_seconds()
    return max(0, math.ceil(seconds / 3600.0 - 1e-9))


# ----------------------------------------------------------------------------- raw SQL


class _Raw:
    """Statements on the session's DBAPI connection (the hot path: millions of rows)."""

    def __init__(self, session: Session) -> None:
        conn = session.connection()
        self.pg = conn.dialect.name == "postgresql"
        self.cur: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    def all(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cur.execute(self.sql(text), params)
        return list(self.cur.fetchall())

    def one(self, text: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.cur.execute(self.sql(text), params)
        row: tuple[Any, ...] | None = self.cur.fetchone()
        return row

    def run(self, text: str, params: Sequence[Any] = ()) -> None:
        self.cur.execute(self.sql(text), params)

    def many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(self.sql(text), rows)

    def upsert(
        self, text: str, rows: Sequence[Sequence[Any]], types: Sequence[str], chunk: int = 20_000
    ) -> None:
        """An ``INSERT ... VALUES (one row) ... ON CONFLICT`` for many rows. SQLite, in
        process, runs it per row; PostgreSQL gets the rows as one array per column (``unnest``),
        one short statement per chunk instead of a round trip per row."""
        if not rows:
            return
        if not self.pg:
            self.cur.executemany(text, rows)
            return
        head, rest = text.split(" VALUES ", 1)
        tail = rest.split(") ", 1)[1]
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        sql = f"{head} SELECT * FROM unnest({arrays}) {tail}"
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            # Array literals built here: the values are numbers, ISO dates and plain words, and
            # psycopg's per-element array dumping costs more than the statement itself.
            self.cur.execute(
                sql, ["{" + ",".join(map(str, col)) + "}" for col in zip(*part, strict=True)]
            )

    def ts(self, value: dt.datetime) -> Any:
        if self.pg:
            return value
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def read_ts(self, value: Any) -> dt.datetime:
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        out: dt.datetime = value
        return out if out.tzinfo else out.replace(tzinfo=dt.UTC)

    def day(self, value: dt.date) -> Any:
        return value if self.pg else value.isoformat()

    def payload(self, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, str | bytes):
            out: dict[str, Any] = orjson.loads(value)
            return out
        return dict(value)

    def close(self) -> None:
        self.cur.close()


_UPSERT_REQUESTS = (
    "INSERT INTO stats_requests (grain, period, borrower_id, service, lang, requests, "
    "transfers, unfilled, cancelled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (grain, period, borrower_id, service, lang) DO UPDATE SET "
    "requests = stats_requests.requests + excluded.requests, "
    "transfers = stats_requests.transfers + excluded.transfers, "
    "unfilled = stats_requests.unfilled + excluded.unfilled, "
    "cancelled = stats_requests.cancelled + excluded.cancelled"
)
_UPSERT_LENDING = (
    "INSERT INTO stats_lending (grain, period, lender_id, borrower_id, service, lang, transfers) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (grain, period, lender_id, borrower_id, service, lang) DO UPDATE SET "
    "transfers = stats_lending.transfers + excluded.transfers"
)
_UPSERT_TURNAROUND = (
    "INSERT INTO stats_turnaround (grain, period, lender_id, service, lang, hours, n) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (grain, period, lender_id, service, lang, hours) DO UPDATE SET "
    "n = stats_turnaround.n + excluded.n"
)


# ----------------------------------------------------------------------------- the fold


class _Fold:
    """Pending roll-up increments, summed in memory and written out in batches."""

    def __init__(self, raw: _Raw) -> None:
        self.raw = raw
        # (grain, period, borrower, service, lang) -> [requests, transfers, unfilled, cancelled]
        self.requests: dict[tuple[Any, ...], list[int]] = {}
        self.lending: dict[tuple[Any, ...], int] = {}
        self.turnaround: dict[tuple[Any, ...], int] = {}
        self.applied = 0

    def _count(self, day: dt.date, borrower: int, service: str, lang: str, slot: int) -> None:
        for grain, period in periods(day):
            key = (grain, period, borrower, service, lang)
            found = self.requests.get(key)
            if found is None:
                found = self.requests[key] = [0, 0, 0, 0]
            found[slot] += 1

    def created(self, day: dt.date, p: dict[str, Any]) -> None:
        self._count(day, int(p["borrower"]), str(p["service"]), str(p["lang"]), 0)

    def shipped(self, day: dt.date, hours: int | None, p: dict[str, Any]) -> None:
        borrower, service, lang = int(p["borrower"]), str(p["service"]), str(p["lang"])
        self._count(day, borrower, service, lang, 1)
        lender = p.get("lender")
        if lender is None:
            return
        lender = int(lender)
        for grain, period in periods(day):
            key = (grain, period, lender, borrower, service, lang)
            self.lending[key] = self.lending.get(key, 0) + 1
            if hours is not None:
                tkey = (grain, period, lender, service, lang, hours)
                self.turnaround[tkey] = self.turnaround.get(tkey, 0) + 1

    def ended(self, day: dt.date, p: dict[str, Any], slot: int) -> None:
        self._count(day, int(p["borrower"]), str(p["service"]), str(p["lang"]), slot)

    def size(self) -> int:
        return len(self.requests) + len(self.lending) + len(self.turnaround)

    def flush(self) -> None:
        raw = self.raw
        raw.upsert(
            _UPSERT_REQUESTS,
            [(g, raw.day(p), b, s, la, *v) for (g, p, b, s, la), v in self.requests.items()],
            ("text", "date", "int", "text", "text", "int", "int", "int", "int"),
        )
        raw.upsert(
            _UPSERT_LENDING,
            [(g, raw.day(p), le, b, s, la, n) for (g, p, le, b, s, la), n in self.lending.items()],
            ("text", "date", "int", "int", "text", "text", "int"),
        )
        raw.upsert(
            _UPSERT_TURNAROUND,
            [
                (g, raw.day(p), le, s, la, h, n)
                for (g, p, le, s, la, h), n in self.turnaround.items()
            ],
            ("text", "date", "int", "text", "text", "int", "int"),
        )
        self.requests.clear()
        self.lending.clear()
        self.turnaround.clear()


class _CreatedTimes:
    """When each request was made: from the batch itself, else from its ``created`` event."""

    def __init__(self, raw: _Raw, capacity: int = CREATED_CACHE) -> None:
        self.raw = raw
        self.capacity = capacity
        self.known: OrderedDict[str, dt.datetime] = OrderedDict()

    def add(self, entity_id: str, at: dt.datetime) -> None:
        self.known[entity_id] = at
        if len(self.known) > self.capacity:
            # Requests are answered within weeks: the oldest creations are needed least.
            for _ in range(self.capacity // 10):
                self.known.popitem(last=False)

    def load(self, entity_ids: Iterable[str]) -> None:
        wanted = sorted({e for e in entity_ids if e not in self.known})
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for entity_id, at in self.raw.all(
                "SELECT entity_id, at FROM events WHERE entity_type = ? "
                f"AND entity_id IN ({marks}) AND action = ?",
                (ENTITY, *chunk, CREATED),
            ):
                self.add(str(entity_id), self.raw.read_ts(at))

    def get(self, entity_id: str) -> dt.datetime | None:
        return self.known.get(entity_id)


_SELECT_EVENTS = (
    "SELECT id, action, entity_type, entity_id, at, "
    "CASE WHEN action IN (?, ?, ?, ?) THEN payload END FROM events "
)
_COUNTED_PARAMS = COUNTED


def _apply(fold: _Fold, created: _CreatedTimes, rows: Sequence[tuple[Any, ...]]) -> None:
    """Fold one batch of events (in id order) into the pending increments."""
    raw = fold.raw
    later: list[tuple[str, str, dt.datetime, dict[str, Any]]] = []
    for _id, action, entity_type, entity_id, at, payload in rows:
        if entity_type != ENTITY or action not in _COUNTED_PARAMS:
            continue
        when = raw.read_ts(at)
        p = raw.payload(payload)
        eid = str(entity_id)
        fold.applied += 1
        if action == CREATED:
            created.add(eid, when)
            fold.created(local_day(when), p)
        else:
            later.append((action, eid, when, p))
    if not later:
        return
    created.load(e for _a, e, _w, _p in later if created.get(e) is None)
    for action, eid, when, p in later:
        made = created.get(eid)
        # A request whose creation is not in the log (impossible through the service) counts
        # on the day of the event itself, without a turnaround.
        day = local_day(made) if made is not None else local_day(when)
        if action == SHIPPED:
            hours = turnaround_hours(made, when) if made is not None else None
            fold.shipped(day, hours, p)
        elif action == UNFILLED:
            fold.ended(day, p, 2)
        else:
            fold.ended(day, p, 3)


# ----------------------------------------------------------------------------- catching up


@dataclass(frozen=True)
class CatchUp:
    """What one catch-up did."""

    events_read: int
    events_applied: int
    last_event_id: int
    gaps: int
    seconds: float


def _ensure_state(raw: _Raw) -> None:
    raw.run(
        "INSERT INTO stats_rollup_state (id, last_event_id, gaps, events_applied) "
        "VALUES (1, 0, ?, 0) ON CONFLICT (id) DO NOTHING",
        ("{}",),
    )


def is_current(session: Session) -> bool:
    """True when no event is newer than the mark and no gap is open (no lock taken)."""
    raw = _Raw(session)
    try:
        state = raw.one("SELECT last_event_id, gaps FROM stats_rollup_state WHERE id = 1")
        newest = raw.one("SELECT max(id) FROM events")
    finally:
        raw.close()
    newest_id = int(newest[0]) if newest and newest[0] is not None else 0
    if state is None:
        return newest_id == 0
    gaps = raw.payload(state[1])
    return int(state[0]) >= newest_id and not gaps


def catch_up(
    session: Session,
    *,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CatchUp:
    """Apply every event after the mark (and any gap that appeared) in the caller's
    transaction; the caller commits. ``progress(read, last_id)`` is called per batch."""
    started = utcnow()
    now = now or started
    raw = _Raw(session)
    try:
        _ensure_state(raw)
        # Write first: this takes the lock, so the mark read next is the latest committed.
        raw.run("UPDATE stats_rollup_state SET updated_at = ? WHERE id = 1", (raw.ts(now),))
        state = raw.one(
            "SELECT last_event_id, gaps, events_applied FROM stats_rollup_state WHERE id = 1"
        )
        assert state is not None
        mark = int(state[0])
        gaps: dict[str, str] = {str(k): str(v) for k, v in raw.payload(state[1]).items()}
        applied_before = int(state[2])
        fold = _Fold(raw)
        created = _CreatedTimes(raw)
        read = 0
        if gaps:
            ids = sorted(int(k) for k in gaps)
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ", ".join("?" for _ in chunk)
                rows = raw.all(
                    _SELECT_EVENTS + f"WHERE id IN ({marks}) ORDER BY id",
                    (*_COUNTED_PARAMS, *chunk),
                )
                for row in rows:
                    gaps.pop(str(row[0]), None)
                read += len(rows)
                _apply(fold, created, rows)
        while True:
            rows = raw.all(
                _SELECT_EVENTS + "WHERE id > ? ORDER BY id LIMIT ?",
                (*_COUNTED_PARAMS, mark, BATCH),
            )
            if not rows:
                break
            expected = mark + 1
            for row in rows:
                event_id = int(row[0])
                # Ids skipped over may belong to transactions not yet committed.
                for missing in range(expected, min(event_id, expected + MAX_GAPS)):
                    gaps[str(missing)] = now.isoformat()
                expected = event_id + 1
            mark = int(rows[-1][0])
            read += len(rows)
            _apply(fold, created, rows)
            if fold.size() >= FLUSH_KEYS:
                fold.flush()
            if progress is not None:
                progress(read, mark)
            if len(rows) < BATCH:
                break
        fold.flush()
        limit = now - GAP_WAIT
        kept = {k: v for k, v in gaps.items() if dt.datetime.fromisoformat(v) > limit}
        if len(kept) > MAX_GAPS:
            kept = dict(sorted(kept.items(), key=lambda kv: int(kv[0]))[-MAX_GAPS:])
        raw.run(
            "UPDATE stats_rollup_state SET last_event_id = ?, gaps = ?, events_applied = ? "
            "WHERE id = 1",
            (mark, orjson.dumps(kept).decode(), applied_before + fold.applied),
        )
        seconds = (utcnow() - started).total_seconds()
        return CatchUp(read, fold.applied, mark, len(kept), seconds)
    finally:
        raw.close()


def refresh(session: Session) -> CatchUp | None:
    """Bring the roll-ups up to date before a report, and commit that (None: nothing new)."""
    if is_current(session):
        return None
    result = catch_up(session)
    session.commit()
    return result


def rebuild(session: Session, *, progress: Callable[[int, int], None] | None = None) -> CatchUp:
    """Empty the roll-ups and fold the whole event log again, in the caller's transaction."""
    raw = _Raw(session)
    try:
        _ensure_state(raw)
        raw.run("UPDATE stats_rollup_state SET updated_at = ? WHERE id = 1", (raw.ts(utcnow()),))
        for table in ("stats_requests", "stats_lending", "stats_turnaround"):
            raw.run(f"DELETE FROM {table}")
        raw.run(
            "UPDATE stats_rollup_state SET last_event_id = 0, gaps = ?, events_applied = 0, "
            "rebuilt_at = ? WHERE id = 1",
            ("{}", raw.ts(utcnow())),
        )
    finally:
        raw.close()
    return catch_up(session, progress=progress)


@dataclass(frozen=True)
class State:
    last_event_id: int
    events_applied: int
    gaps: int
    updated_at: dt.datetime | None
    rebuilt_at: dt.datetime | None
    newest_event_id: int


def state(session: Session) -> State:
    raw = _Raw(session)
    try:
        row = raw.one(
            "SELECT last_event_id, events_applied, gaps, updated_at, rebuilt_at "
            "FROM stats_rollup_state WHERE id = 1"
        )
        newest = raw.one("SELECT max(id) FROM events")
        newest_id = int(newest[0]) if newest and newest[0] is not None else 0
        if row is None:
            return State(0, 0, 0, None, None, newest_id)
        return State(
            int(row[0]),
            int(row[1]),
            len(raw.payload(row[2])),
            raw.read_ts(row[3]) if row[3] is not None else None,
            raw.read_ts(row[4]) if row[4] is not None else None,
            newest_id,
        )
    finally:
        raw.close()
