"""Resource-sharing benchmark: one year at the Changbei Academic Library Alliance's 2014 peak,
replayed through the service layer to completion, every transition and every event.

    flock /tmp/bench.lock .venv/bin/python bench/ill.py [--requests 350000] [--sqlite]
        [--postgresql URL] [--workers 2] [--seed 2014] [--no-baseline]

With SQLite, a raw baseline runs in the same temporary directory just before and just after the
replay (``raw_sqlite``: transactions of two statements through Python's sqlite3 with the
platform's pragmas), and the report gives the service's calls per second and per CPU second as
a ratio to it. Profiles of the replay: ``BENCH_PROFILE=FILE`` (cProfile, CPU time) or
``BENCH_PYINSTRUMENT=FILE`` (sampling; pyinstrument on PYTHONPATH, not a dependency).

The year: 350,000 requests over 2014 (weekdays busier than weekends, 08:00-22:00 China time),
85 % copies and 15 % loans, each requesting library and its Chinese/foreign mix as in the
paper's Table 1 (the three Jilin members add a little), about 5 % unfilled at the first lender
(4 % say Unfilled, 1 % never answer and the days-to-respond timer moves on), a few renewals,
late returns (reminders, Overdue) and copies never confirmed (completed by the timer). Copies
are chapters of a few pages, checked against the copyright policy like any other (one over a
short book's weekly share is asked again for a single page). Lenders and readers act at
realistic delays; every step is a service call with ``at=`` its moment.

The consortium: the demo's 13 members and its union catalogue (2,500 real LC records and
CNMARC Chinese books over the members, loaded through ingest), 200 readers and one staff
account per member. Setup is not timed; the replay is. At the end every request must be in a
terminal state, and its events must form one unbroken chain (each transition from the state the
previous one reached) with one write per version: no request advanced twice.

SQLite runs one process (``--sqlite-workers N``: N, which take SQLite's one write lock in turn,
each transition's reads and decisions made before it and checked by the version in the
write). PostgreSQL runs ``--workers`` processes: each replays its share of the arrivals, and
at every timer tick (every 6 simulated hours) all of them run the timers over the same due
requests at once, which row locks with SKIP LOCKED must keep apart (on SQLite, the version
check). The workers stop together, when none has anything left and no request is open.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import gc
import heapq
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

HOUR = 3600.0
DAY = 86400.0
CST = dt.timezone(dt.timedelta(hours=8))
YEAR_START = dt.datetime(2014, 1, 1, tzinfo=CST)
YEAR_START_UTC = YEAR_START.astimezone(dt.UTC)
TICK = 6 * HOUR  # timers run every six simulated hours
COPY_SHARE = 0.85
FIRST_UNFILLED = 0.04  # the first lender says Unfilled
FIRST_SILENT = 0.01  # the first lender never answers (the timer moves on)
LATER_UNFILLED = 0.03
RENEW_SHARE = 0.03
LATE_RETURN_SHARE = 0.02
UNCONFIRMED_COPIES = 0.05
READERS_PER_MEMBER = 200
JILIN_SHARE = 0.01  # of all requests, per Jilin member


# ----------------------------------------------------------------------------- setup


@dataclass
class Setup:
    codes: list[str]
    ids: dict[str, int]
    readers: dict[str, list[Any]]  # member code -> reader principals
    staff: dict[int, Any]  # member id -> staff principal
    clusters: dict[str, dict[str, list[int]]]  # borrower code -> language -> cluster ids


def use_database(url: str) -> None:
    os.environ["CONSORTIA_DATABASE_URL"] = url
    from consortia import db
    from consortia.ill import service
    from consortia.settings import reset_settings

    reset_settings()
    db.reset_engine()
    service.reset_caches()
    if url.startswith("postgresql") and os.environ.get("BENCH_PG_SYNC", "off") == "off":
        from sqlalchemy import event

        def _async_commit(dbapi_connection: Any, _record: Any) -> None:
            # The durability SQLite's WAL with synchronous=NORMAL gives (a crash may lose the
            # last moments, never corrupts): this machine's fsync takes ~5 ms a commit.
            with dbapi_connection.cursor() as cur:
                cur.execute("SET synchronous_commit = off")
            dbapi_connection.commit()

        event.listen(db.get_engine(), "connect", _async_commit)
    pragmas = os.environ.get("BENCH_PRAGMAS")
    if pragmas and url.startswith("sqlite"):
        from sqlalchemy import event

        def _more(dbapi_connection: Any, _record: Any) -> None:
            for p in pragmas.split(";"):
                dbapi_connection.execute(f"PRAGMA {p}")

        event.listen(db.get_engine(), "connect", _more)


def setup(url: str) -> Setup:
    from sqlalchemy import select

    import consortia.all_models  # noqa: F401
    from consortia.accounts import service as accounts
    from consortia.accounts.roles import SYSTEM, Role
    from consortia.catalog.models import Cluster, Holding, SourceRecord
    from consortia.db import get_engine, migrate, session_scope
    from consortia.demo.catalog import load_demo_catalogue
    from consortia.demo.load import demo_rows
    from consortia.members import service as members
    from consortia.members.models import Member

    use_database(url)
    migrate(get_engine())
    with session_scope() as s:
        for row in demo_rows("regions.csv"):
            members.ensure_region(s, SYSTEM, row["code"], row["name_zh"], row["name_en"])
        members.import_rows(s, SYSTEM, demo_rows("members.csv"))
    with session_scope() as s:
        ids = {m.code: m.id for m in s.scalars(select(Member))}
    codes = sorted(ids)
    t = time.perf_counter()
    load_demo_catalogue(SYSTEM, codes)
    print(f"  catalogue loaded in {time.perf_counter() - t:.0f} s", flush=True)
    readers: dict[str, list[Any]] = {c: [] for c in codes}
    staff: dict[int, Any] = {}
    # Accounts are made with a cheap password hash: setup time is not what is measured.
    accounts.hash_password = lambda password: "bench-not-a-password"  # type: ignore[assignment]
    with session_scope() as s:
        for code in codes:
            short = code[3:].lower()
            for i in range(READERS_PER_MEMBER):
                u = accounts.create_user(
                    s,
                    SYSTEM,
                    username=f"{short}-r{i}",
                    password="bench-password",
                    role=Role.reader,
                    member_code=code,
                )
                readers[code].append(accounts.principal_for(u, code))
            u = accounts.create_user(
                s,
                SYSTEM,
                username=f"{short}-staff",
                password="bench-password",
                role=Role.library_staff,
                member_code=code,
            )
            staff[ids[code]] = accounts.principal_for(u, code)
    clusters: dict[str, dict[str, list[int]]] = {c: {"chinese": [], "foreign": []} for c in codes}
    with session_scope() as s:
        holders: dict[int, set[int]] = {}
        for cid, mid in s.execute(
            select(SourceRecord.cluster_id, Holding.member_id)
            .join(Holding, Holding.source_record_id == SourceRecord.id)
            .where(SourceRecord.cluster_id.is_not(None), Holding.status == "available")
        ):
            holders.setdefault(cid, set()).add(mid)
        langs: dict[int, str] = {}
        for cid, merged in s.execute(select(Cluster.id, Cluster.merged)):
            values = [e.get("value") for e in (merged or {}).get("languages", [])]
            langs[cid] = "chinese" if values[:1] in (["chi"], ["zho"]) else "foreign"
    for code in codes:
        mid = ids[code]
        for cid, hs in holders.items():
            if hs - {mid}:
                clusters[code][langs.get(cid, "foreign")].append(cid)
    return Setup(codes, ids, readers, staff, clusters)


# ----------------------------------------------------------------------------- the year's plan


@dataclass(frozen=True)
class Arrival:
    t: float  # seconds since YEAR_START
    borrower: str
    reader: int
    cluster: int
    service: str
    article: str
    pages: str


def table1() -> dict[str, tuple[int, float]]:
    """Requests per member and its Chinese share, from the paper's Table 1."""
    from consortia.demo.load import DATA, demo_rows

    names = {r["name_en"]: r["code"] for r in demo_rows("members.csv")}
    out: dict[str, tuple[int, float]] = {}
    with (DATA / "table1_service_2016-10-17_2016-10-23.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            zh, foreign = int(row["chinese_requests"]), int(row["foreign_requests"])
            out[names[row["library_en"]]] = (zh + foreign, zh / (zh + foreign))
    return out


def plan(n: int, seed: int, s: Setup) -> list[Arrival]:
    rnd = random.Random(seed)
    t1 = table1()
    total = sum(v[0] for v in t1.values())
    weights: dict[str, float] = {code: t1[code][0] / total for code in t1}
    zh_share: dict[str, float] = {code: t1[code][1] for code in t1}
    for code in s.codes:
        if code not in weights:
            weights[code] = JILIN_SHARE
            zh_share[code] = 0.9
    codes = sorted(weights)
    cum = []
    acc = 0.0
    for code in codes:
        acc += weights[code]
        cum.append(acc)
    days = [
        (d, 1.0 if (YEAR_START + dt.timedelta(days=d)).weekday() < 5 else 0.5) for d in range(365)
    ]
    day_cum = []
    acc = 0.0
    for _, w in days:
        acc += w
        day_cum.append(acc)
    out = []
    for _ in range(n):
        code = codes[bisect.bisect_left(cum, rnd.random() * cum[-1])]
        day = bisect.bisect_left(day_cum, rnd.random() * day_cum[-1])
        t = day * DAY + 8 * HOUR + rnd.random() * 14 * HOUR
        lang = "chinese" if rnd.random() < zh_share[code] else "foreign"
        pool = s.clusters[code][lang] or s.clusters[code]["foreign"]
        service = "Copy" if rnd.random() < COPY_SHARE else "Loan"
        article = pages = ""
        if service == "Copy":
            # A chapter or an article: a few pages, within the copyright policy's share of a
            # book (the service refuses more).
            k = rnd.randrange(1, 40)
            article = f"第{k}章" if lang == "chinese" else f"Chapter {k}"
            start = rnd.randrange(1, 200)
            pages = f"{start}-{start + rnd.randrange(1, 8)}"
        out.append(
            Arrival(
                t,
                code,
                rnd.randrange(READERS_PER_MEMBER),
                pool[rnd.randrange(len(pool))],
                service,
                article,
                pages,
            )
        )
    out.sort(key=lambda a: a.t)
    return out


# ----------------------------------------------------------------------------- the replay


def fate(request_id: int, salt: int) -> float:
    """A request's own dice: the same in whichever worker handles it."""
    x = (request_id * 0x9E3779B1 + salt * 0x85EBCA77) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    return x / 0x100000000


class Replay:
    def __init__(
        self, s: Setup, arrivals: list[Arrival], worker: int, barrier: Any, busy: Any = None
    ) -> None:
        from consortia.db import get_engine, session_factory

        self.s = s
        self.arrivals = arrivals
        self.worker = worker
        self.barrier = barrier
        self.busy = busy  # shared: which workers still have steps or arrivals to replay
        self.factory = session_factory()
        # A worker keeps its connection (as a job consumer does); each call is still its own
        # transaction, committed before the next.
        self.conn = get_engine().connect()
        self.heap: list[tuple[float, int, str, int, int]] = []
        self.seq = 0
        self.calls = 0
        self.duplicates = 0
        self.copyright = 0  # refused by the copyright policy, asked again smaller
        self.dropped = 0  # nobody could ask for it
        self.outcomes: Counter[str] = Counter()
        self.lender: dict[int, int] = {}
        self.pos: dict[int, int] = {}
        self.late = 0
        self.who: dict[int, tuple[int, Any]] = {}

    def at(self, t: float) -> dt.datetime:
        return YEAR_START_UTC + dt.timedelta(seconds=t)

    def push(self, t: float, step: str, request_id: int, position: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, step, request_id, position))

    def commit(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            result = fn(self.conn, *args, **kw)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        self.calls += 1
        return result

    def lender_turn(self, t: float, request_id: int, position: int, service: str) -> None:
        """Schedule what the lender at ``position`` does with the request."""
        u = fate(request_id, position)
        if position == 0 and u < FIRST_UNFILLED:
            self.push(t + HOUR + u * 20 * HOUR, "unfilled", request_id, position)
        elif position == 0 and u < FIRST_UNFILLED + FIRST_SILENT:
            pass  # no answer: the days-to-respond timer will move on
        elif position > 0 and u < LATER_UNFILLED:
            self.push(t + 2 * HOUR, "unfilled", request_id, position)
        elif service == "Copy":
            self.push(
                t + 4 * HOUR + fate(request_id, 10 + position) * 32 * HOUR,
                "ship",
                request_id,
                position,
            )
        else:
            self.push(
                t + HOUR + fate(request_id, 10 + position) * 19 * HOUR, "will", request_id, position
            )

    def follow(self, t: float, result: Any) -> None:
        if result.lender_id is not None:
            self.lender[result.request_id] = result.lender_id
            self.pos[result.request_id] = result.position
        if result.state == "Sent":
            self.lender_turn(t, result.request_id, result.position, result.service_type)
        elif result.state in ("Unfilled", "Completed", "Cancelled"):
            self.outcomes[result.state] += 1

    def create(self, a: Arrival) -> None:
        from consortia.errors import Conflict, Invalid
        from consortia.ill import service
        from consortia.ill.service import NewRequest

        readers = self.s.readers[a.borrower]
        pages = a.pages
        for attempt in range(len(readers)):
            who = readers[(a.reader + attempt) % len(readers)]
            try:
                result = self.commit(
                    service.create_request,
                    who,
                    NewRequest(
                        service_type=a.service,
                        cluster_id=a.cluster,
                        article_title=a.article,
                        pages=pages,
                    ),
                    at=self.at(a.t),
                )
            except Conflict:
                self.duplicates += 1  # the same reader has it open: another reader asks
                continue
            except Invalid as exc:
                if exc.field != "pages":
                    raise
                # Over the copyright share of a (short) book: a single page, or another reader.
                self.copyright += 1
                pages = "1"
                continue
            self.who[result.request_id] = (self.s.ids[a.borrower], who)
            self.follow(a.t, result)
            return
        self.dropped += 1

    def step(self, t: float, step: str, rid: int, position: int) -> None:
        from consortia.ill import service

        when = self.at(t)
        u = fate(rid, 20 + position)
        if self.pos.get(rid) != position:
            self.late += 1  # that lender's turn ended (its time ran out) before it acted
            return
        if step == "unfilled":
            lender = self.staff_of(rid)
            result = self.commit(service.unfilled, lender, rid, "not on the shelf", at=when)
            self.follow(t, result)
        elif step == "ship":
            result = self.commit(service.ship, self.staff_of(rid), rid, at=when)
            if result.service_type == "Copy":
                if fate(rid, 30) >= UNCONFIRMED_COPIES:
                    self.push(t + HOUR + u * 47 * HOUR, "received", rid, position)
            else:
                self.push(t + DAY + u * 2 * DAY, "received", rid, position)
        elif step == "will":
            self.commit(service.will_supply, self.staff_of(rid), rid, at=when)
            self.push(t + HOUR + u * 19 * HOUR, "ship", rid, position)
        elif step == "received":
            result = self.commit(service.received, self.borrower_staff(rid), rid, at=when)
            if result.state == "Completed":
                self.outcomes["Completed"] += 1
            elif fate(rid, 40) < RENEW_SHARE:
                self.push(t + 20 * DAY, "renew", rid, position)
            elif fate(rid, 41) < LATE_RETURN_SHARE:
                self.push(t + 31 * DAY + u * 4 * DAY, "return", rid, position)
            else:
                self.push(t + 5 * DAY + u * 17 * DAY, "return", rid, position)
        elif step == "renew":
            self.commit(service.renew, self.reader_of(rid), rid, at=when)
            self.push(t + 2 * HOUR + u * 20 * HOUR, "renewed", rid, position)
        elif step == "renewed":
            self.commit(service.answer_renewal, self.staff_of(rid), rid, approve=True, at=when)
            self.push(t + 10 * DAY + u * 10 * DAY, "return", rid, position)
        elif step == "return":
            self.commit(service.returned, self.borrower_staff(rid), rid, at=when)
            self.push(t + DAY + u * 2 * DAY, "checkin", rid, position)
        elif step == "checkin":
            self.commit(service.checked_in, self.staff_of(rid), rid, at=when)
            self.outcomes["Completed"] += 1

    # Who acts: the lender's staff, the borrowing library's staff, the reader. Remembered from
    # the service's answers; a request another worker created is looked up once.
    def staff_of(self, rid: int) -> Any:
        return self.s.staff[self.lender[rid]]

    def borrower_staff(self, rid: int) -> Any:
        return self.s.staff[self.people(rid)[0]]

    def reader_of(self, rid: int) -> Any:
        return self.people(rid)[1]

    def people(self, rid: int) -> tuple[int, Any]:
        found = self.who.get(rid)
        if found is None:
            from sqlalchemy import text

            reader, borrower, code = self.conn.execute(
                text(
                    "SELECT r.reader_id, r.borrower_id, m.code FROM ill_requests r "
                    "JOIN members m ON m.id = r.borrower_id WHERE r.id = :id"
                ),
                {"id": rid},
            ).one()
            self.conn.rollback()
            principal = next(p for p in self.s.readers[code] if p.user_id == reader)
            found = self.who[rid] = (int(borrower), principal)
        return found

    def timers(self, now_t: float, pending: bool = True) -> bool:
        """Run the timers at ``now_t`` (every worker at once); True when no worker has anything
        left to replay and no request is open. ``pending``: this worker has arrivals left."""
        from consortia.ill import service

        if self.barrier is not None:
            self.barrier.wait()
        now = self.at(now_t)
        for timer in (service.expire_unanswered, service.loan_timers):
            report = timer(self.factory, now=now)
            self.calls += report.advanced
            for result in report.results:
                self.follow(now_t, result)
        if self.barrier is None:
            return not pending and not self.heap and self.open_count() == 0
        # Decided while every worker waits between two barriers, so all of them decide alike
        # (a worker that stopped on its own would leave the others waiting at the next tick).
        self.busy[self.worker] = 1 if pending or self.heap else 0
        self.barrier.wait()
        done = not any(self.busy) and self.open_count() == 0
        self.barrier.wait()
        return done

    def run(self) -> dict[str, Any]:
        i = 0
        tick = TICK
        arrivals = self.arrivals
        while i < len(arrivals) or self.heap:
            next_arrival = arrivals[i].t if i < len(arrivals) else float("inf")
            next_step = self.heap[0][0] if self.heap else float("inf")
            t = min(next_arrival, next_step)
            if t >= tick:
                self.timers(tick)
                tick += TICK
                continue
            if next_arrival <= next_step:
                self.create(arrivals[i])
                i += 1
            else:
                _, _, step, rid, position = heapq.heappop(self.heap)
                self.step(t, step, rid, position)
        # Drain: the last copies and loans finish by their timers; keep ticking (in step with
        # the other workers) until nobody has anything open.
        for _ in range(200):
            done = self.timers(tick, pending=False)
            tick += TICK
            if done:
                break
        self.conn.close()
        return {
            "calls": self.calls,
            "duplicates": self.duplicates,
            "copyright": self.copyright,
            "dropped": self.dropped,
            "outcomes": dict(self.outcomes),
        }

    def open_count(self) -> int:
        from sqlalchemy import text

        n = self.conn.execute(
            text(
                "SELECT count(*) FROM ill_requests "
                "WHERE state NOT IN ('Completed', 'Unfilled', 'Cancelled')"
            )
        ).scalar()
        self.conn.rollback()
        return int(n or 0)


def _worker(
    url: str, s: Setup, arrivals: list[Arrival], worker: int, barrier: Any, busy: Any, out: Any
) -> None:
    use_database(url)
    out.put((worker, Replay(s, arrivals, worker, barrier, busy).run()))


# ----------------------------------------------------------------------------- checks


def verify(url: str) -> dict[str, Any]:
    """Every request terminal; its events one chain; one write per version."""
    from sqlalchemy import text

    from consortia.db import get_engine

    use_database(url)
    engine = get_engine()
    problems: list[str] = []
    states: dict[int, tuple[str, int]] = {}
    with engine.connect() as conn:
        for rid, state, version in conn.execute(
            text("SELECT id, state, version FROM ill_requests")
        ):
            states[int(rid)] = (state, int(version))
        events = conn.execute(
            text(
                "SELECT entity_id, action, payload FROM events WHERE entity_type = 'ill_request' "
                "AND action != 'ill.link.expired' ORDER BY id"
            )
        )
        import orjson

        chain: dict[int, str | None] = {}
        versions: dict[int, set[int]] = {}
        count = 0
        actions: Counter[str] = Counter()
        created_lang: Counter[tuple[str, str]] = Counter()
        shipped = 0
        for entity_id, action, payload in events:
            count += 1
            actions[action] += 1
            rid = int(entity_id)
            p = orjson.loads(payload) if isinstance(payload, str | bytes) else payload
            frm, to = p.get("from"), p.get("to")
            if action == "ill.request.created":
                if rid in chain:
                    problems.append(f"request {rid} created twice")
                created_lang[(p["service"], p["lang"])] += 1
            elif chain.get(rid) != frm:
                problems.append(f"request {rid}: {action} from {frm} but it was {chain.get(rid)}")
            if action == "ill.request.shipped":
                shipped += 1
            chain[rid] = to
            versions.setdefault(rid, set()).add(int(p["v"]))
    for rid, (state, version) in states.items():
        if state not in ("Completed", "Unfilled", "Cancelled"):
            problems.append(f"request {rid} still {state}")
        if chain.get(rid) != state:
            problems.append(f"request {rid} is {state} but its events end at {chain.get(rid)}")
        seen = versions.get(rid, set())
        # The creating write is version 1 (unfilled at once) or 2 (routed and sent); then
        # every later write exactly one more.
        expected = set(range(min(seen, default=0), version + 1))
        if seen != expected or min(seen, default=0) not in (1, 2):
            problems.append(f"request {rid}: writes {sorted(seen)} for version {version}")
    return {
        "requests": len(states),
        "events": count,
        "actions": actions,
        "created": created_lang,
        "shipped": shipped,
        "final": Counter(s for s, _ in states.values()),
        "problems": problems,
    }


# ----------------------------------------------------------------------------- the baseline

RAW_SCHEMA = (
    "CREATE TABLE requests (id INTEGER PRIMARY KEY, state TEXT NOT NULL, lender_id INTEGER, "
    "due_at TEXT, version INTEGER NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE INDEX ix_requests_lender_state_due ON requests (lender_id, state, due_at)",
    # The event log's shape and indexes (consortia/events/models.py).
    "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, "
    "actor TEXT NOT NULL, actor_user_id INTEGER, action TEXT NOT NULL, entity_type TEXT NOT NULL, "
    "entity_id TEXT NOT NULL, member_id INTEGER, payload TEXT NOT NULL)",
    # (ix_events_action_at and ix_events_member_id went with migration 0008.)
    "CREATE INDEX ix_events_entity ON events (entity_type, entity_id)",
)


def raw_sqlite(directory: str, n: int = 50_000, rows: int = 100_000) -> dict[str, float]:
    """What SQLite itself manages here, in the same run: transactions of two statements (move
    one row of a requests table, append one event), committed one by one, through Python's
    sqlite3 with the platform's pragmas (WAL, synchronous=NORMAL, foreign keys)."""
    import sqlite3

    Path(directory).mkdir()
    path = Path(directory) / "raw.db"
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        con.execute(f"PRAGMA {pragma}")
    for ddl in RAW_SCHEMA:
        con.execute(ddl)
    rnd = random.Random(1)
    stamp = "2014-03-01 08:00:00.000000"
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO requests VALUES (?, 'Sent', ?, ?, 1, ?)",
        ((i, rnd.randrange(13), stamp, stamp) for i in range(1, rows + 1)),
    )
    con.execute("COMMIT")
    payload = orjson_payload()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        rid = rnd.randrange(1, rows + 1)
        at = f"2014-03-{1 + i * 27 // n:02d} 09:{i % 60:02d}:00.000000"
        con.execute("BEGIN")
        con.execute(
            "UPDATE requests SET state = ?, due_at = ?, version = version + 1, updated_at = ? "
            "WHERE id = ?",
            ("Shipped" if i % 2 else "Sent", at, at, rid),
        )
        con.execute(
            "INSERT INTO events (at, actor, actor_user_id, action, entity_type, entity_id, "
            "member_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (at, "user:staff", 7, "ill.request.shipped", "ill_request", str(rid), 3, payload),
        )
        con.execute("COMMIT")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    con.close()
    return {"transactions": n, "seconds": wall, "cpu": cpu, "per_s": n / wall, "per_cpu_s": n / cpu}


def orjson_payload() -> str:
    import orjson

    return orjson.dumps(
        {
            "from": "Sent",
            "to": "Shipped",
            "borrower": 3,
            "lender": 7,
            "service": "Copy",
            "lang": "chinese",
            "v": 4,
            "status": "CopyCompleted",
            "position": 0,
            "loan_due": None,
        }
    ).decode()


# ----------------------------------------------------------------------------- main


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run(label: str, url: str, n: int, seed: int, workers: int) -> dict[str, Any]:
    print(f"{label}: setting up {url}", flush=True)
    t = time.perf_counter()
    s = setup(url)
    arrivals = plan(n, seed, s)
    print(
        f"  setup and plan: {time.perf_counter() - t:.0f} s; {len(arrivals):,} arrivals", flush=True
    )
    from consortia.events.models import Event  # noqa: F401

    # The plan (350,000 arrivals), the accounts and the catalogue's setup stay alive through
    # the replay: out of the garbage collector's sight, whose full passes would walk them again
    # and again as the replay's own bookkeeping grows (not the service's cost).
    gc.collect()
    gc.freeze()
    cpu0 = cpu_seconds()
    start = time.perf_counter()
    if workers == 1:
        use_database(url)
        replay = Replay(s, arrivals, 0, None)
        if os.environ.get("BENCH_PYINSTRUMENT"):
            # A sampling profile (pyinstrument, not a dependency: put it on PYTHONPATH).
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
            results = [replay.run()]
            profiler.stop()
            Path(os.environ["BENCH_PYINSTRUMENT"]).write_text(
                profiler.output_text(unicode=True, show_all=False)
            )
        elif os.environ.get("BENCH_PROFILE"):
            import cProfile

            # CPU time, not wall: on a shared machine waiting for a core is not the code's cost.
            profile = cProfile.Profile(time.process_time)
            results = [profile.runcall(replay.run)]
            profile.dump_stats(os.environ["BENCH_PROFILE"])
        else:
            results = [replay.run()]
    else:
        ctx = mp.get_context("fork")
        barrier = ctx.Barrier(workers)
        busy = ctx.Array("b", workers)
        out = ctx.Queue()
        from consortia import db

        db.reset_engine()  # no connection crosses a fork
        procs = [
            ctx.Process(target=_worker, args=(url, s, arrivals[w::workers], w, barrier, busy, out))
            for w in range(workers)
        ]
        for p in procs:
            p.start()
        results = [out.get()[1] for _ in procs]
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise SystemExit(f"worker failed: {p.exitcode}")
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    print(f"  replay: {elapsed:.1f} s; verifying …", flush=True)
    checked = verify(url)
    calls = sum(r["calls"] for r in results)
    return {
        "label": label,
        "workers": workers,
        "requests": checked["requests"],
        "seconds": elapsed,
        "cpu": cpu,
        "calls": calls,
        "events": checked["events"],
        "duplicates": sum(r["duplicates"] for r in results),
        "copyright": sum(r["copyright"] for r in results),
        "dropped": sum(r["dropped"] for r in results),
        "checked": checked,
    }


def report(r: dict[str, Any]) -> None:
    c = r["checked"]
    final = c["final"]
    created = c["created"]
    total = sum(created.values()) or 1
    zh = sum(v for (svc, lang), v in created.items() if lang == "chinese")
    copies = sum(v for (svc, lang), v in created.items() if svc == "Copy")
    print()
    print(f"| {r['label']} | value |")
    print("|---|---|")
    print(f"| workers | {r['workers']} |")
    if r["label"] == "PostgreSQL":
        print(f"| synchronous_commit | {os.environ.get('BENCH_PG_SYNC', 'off')} |")
    print(f"| requests | {r['requests']:,} |")
    print(f"| total time (replay) | {r['seconds']:.1f} s ({r['seconds'] / 60:.2f} min) |")
    print(f"| requests/s | {r['requests'] / r['seconds']:,.0f} |")
    print(f"| CPU time (all processes) | {r['cpu']:.1f} s |")
    print(f"| service calls committed | {r['calls']:,} ({r['calls'] / r['seconds']:,.0f}/s) |")
    print(f"| events written | {r['events']:,} |")
    print(f"| copies / Chinese | {copies / total:.1%} / {zh / total:.1%} |")
    print(f"| shipped (transfers) | {c['shipped']:,} ({c['shipped'] / total:.1%}) |")
    print(f"| final states | {dict(final)} |")
    print(f"| duplicates refused (retried by another reader) | {r['duplicates']:,} |")
    print(f"| copies refused by the copyright policy, asked again | {r['copyright']:,} |")
    print(f"| arrivals nobody could ask for | {r['dropped']:,} |")
    print(f"| declined by a lender / expired | {c['actions']['ill.request.declined']:,} |")
    verdict = "none" if not c["problems"] else f"{len(c['problems'])} PROBLEMS"
    print(f"| requests advanced twice or left open | {verdict} |")
    raws = r.get("raw") or []
    if raws:
        per_s = sum(x["per_s"] for x in raws) / len(raws)
        per_cpu = sum(x["per_cpu_s"] for x in raws) / len(raws)
        shown = " / ".join(f"{x['per_s']:,.0f}" for x in raws)
        cpu_shown = " / ".join(f"{x['per_cpu_s']:,.0f}" for x in raws)
        calls_s = r["calls"] / r["seconds"]
        calls_cpu = r["calls"] / r["cpu"]
        print(f"| raw SQLite 2-statement transactions/s (before / after) | {shown} |")
        print(f"| raw SQLite transactions per CPU second (before / after) | {cpu_shown} |")
        print(f"| service calls/s ÷ raw transactions/s (wall) | {calls_s / per_s:.3f} |")
        print(f"| service calls per CPU s ÷ raw per CPU s | {calls_cpu / per_cpu:.3f} |")
    if r["label"] == "SQLite":
        met = "met" if r["seconds"] <= 300 else "NOT met"
        print(f"| target (whole year <= 5 min wall) | {met} |")
    for p in c["problems"][:20]:
        print("   ", p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=350_000)
    ap.add_argument("--seed", type=int, default=2014)
    ap.add_argument(
        "--sqlite", action="store_true", help="run on SQLite (default if no --postgresql)"
    )
    ap.add_argument(
        "--postgresql",
        metavar="URL",
        help="server URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    )
    ap.add_argument("--workers", type=int, default=2, help="worker processes on PostgreSQL")
    ap.add_argument("--sqlite-workers", type=int, default=1, help="worker processes on SQLite")
    ap.add_argument("--no-baseline", action="store_true", help="skip the raw SQLite baseline")
    ap.add_argument(
        "--pg-synchronous-commit",
        choices=("on", "off"),
        default="off",
        help="off (default) matches SQLite's WAL + synchronous=NORMAL durability",
    )
    args = ap.parse_args()
    os.environ["BENCH_PG_SYNC"] = args.pg_synchronous_commit
    runs = []
    if args.sqlite or not args.postgresql:
        with tempfile.TemporaryDirectory(
            prefix="bench-ill-", dir=os.environ.get("BENCH_DIR")
        ) as tmp:
            url = f"sqlite:///{tmp}/ill.db"
            # The baseline before and after the replay (the machine is shared: both shown,
            # their mean used for the ratio).
            raws = [raw_sqlite(tmp + "/before")] if not args.no_baseline else []
            runs.append(run("SQLite", url, args.requests, args.seed, args.sqlite_workers))
            if raws:
                raws.append(raw_sqlite(tmp + "/after"))
            runs[-1]["raw"] = raws
            report(runs[-1])
    if args.postgresql:
        from sqlalchemy import create_engine, make_url, text

        base = make_url(args.postgresql)
        name = f"bench_ill_{os.getpid()}"
        admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = base.set(database=name).render_as_string(hide_password=False)
            runs.append(run("PostgreSQL", url, args.requests, args.seed, args.workers))
            report(runs[-1])
        finally:
            from consortia import db

            db.reset_engine()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    if any(r["checked"]["problems"] for r in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
