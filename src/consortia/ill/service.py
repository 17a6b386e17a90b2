"""Resource sharing's service: requests, their routing through the rota, every transition, the
timers, and the reads the front ends need. The only code that writes the ILL tables.

Transitions
-----------
Each public function that changes a request runs inside the caller's transaction (the API, the
CLI, a timer or the bench commits), checks the state machines of ``ill/states.py`` first, and
then writes the request row, its rota row and the events together; a refusal raises before
anything is written (``IllegalTransition`` names the state and the action). Terminal states
never change. Automatic steps are taken in the same transaction as the step that causes them,
each with its own event: a new request is validated, routed and sent to its first lender; a
lender's Unfilled (or its time-out) moves the request back to Routing and on to the next
candidate, or to Unfilled when the rota is exhausted.

Two workers cannot both advance one request: the request is read ``FOR UPDATE`` on PostgreSQL
and every write is conditional on the version read (``UPDATE ... WHERE version = ?``), which
also guards SQLite, where the read is not part of the write transaction. A write that finds
the version moved raises ``Conflict`` and the caller's transaction rolls back.

Events (entity ``ill_request``, id = the request's id) and what statistics read from them
-----------------------------------------------------------------------------------------
Every event's payload has ``from`` and ``to`` (the hub's states), ``borrower`` (the requesting
member's id), ``lender`` (the current lender's id or null), ``service`` (Loan/Copy) and
``lang`` (chinese/foreign); the event's ``at`` is the moment of the transition (``at=`` of the
call, so replays of history keep their dates) and its ``member_id`` the member on whose side
it happened (the borrower for requester actions, the lender for lender answers).

=========================== ===========================================================
``ill.request.created``     Submitted; ``via``, ``cluster``, ``pickup``, ``needed_by``
``ill.request.routed``      Routing; ``rota`` (member ids in order), ``excluded``
``ill.request.sent``        Sent to a lender; ``position``, ``due``
``ill.lender.status``       a lender's answer that keeps the state (ExpectToSupply,
                            WillSupply, a condition, Overdue, ...); ``status``, ``previous``
``ill.request.declined``    Sent -> Routing; ``status`` (Unfilled, RetryPossible, Cancelled)
                            or ``expired``; ``reason``
``ill.request.shipped``     Sent -> Shipped (a transfer); ``status`` Loaned/CopyCompleted,
                            ``loan_due``
``ill.request.received``    Shipped -> Received (loan) or -> Completed (copy)
``ill.request.returned``    -> Returned (the reader's library shipped the loan back)
``ill.request.completed``   -> Completed (the lender checked the loan in; a delivered copy
                            nobody confirmed, ``auto``)
``ill.request.unfilled``    -> Unfilled; ``reasons`` (each lender and why)
``ill.request.cancelled``   -> Cancelled; ``reason``
``ill.loan.*``              renewals asked, granted, refused; reminders and overdue notices
=========================== ===========================================================

The hot path uses a handful of hand-written statements on the session's own DBAPI connection
(``_Db``): the whole year of the paper's busiest consortium must replay in minutes, and the
SQLAlchemy statement layer costs more than the database itself on these short transactions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from stdnum import isbn as stdnum_isbn
from stdnum import issn as stdnum_issn

from consortia.accounts.roles import Principal, Role
from consortia.catalog.textfold import has_han_only, title_key
from consortia.db import utcnow
from consortia.errors import Conflict, Forbidden, Invalid, NotFound
from consortia.events.models import Event
from consortia.ill import rota, workdays
from consortia.ill.models import (
    CalendarDay,
    CopyrightPolicy,
    IllRequest,
    LenderAttempt,
)
from consortia.ill.states import (
    INITIAL_STATUS,
    SUPPLIER_TRANSITIONS,
    TERMINAL_REQUEST_STATES,
    HubEvent,
    IllegalTransition,
    RequesterAction,
    RequestState,
    ServiceType,
    Status,
    apply_requester_action,
    hub_event_for_status,
    next_request_state,
    next_supplier_status,
    request_state_of,
    service_type_of,
    status_of,
)
from consortia.ill.states import allowed_actions as iso_actions
from consortia.members.models import Member

# ----------------------------------------------------------------------------- vocabulary
# (The hot path reads the state machines' members' values as ``._value_``, the plain
# attribute behind enum's ``.value`` property: the property's machinery ran 440,000 times in
# a 20,000-request replay.)

ENTITY = "ill_request"
CHINESE = "chinese"
FOREIGN = "foreign"
LANGUAGES = (CHINESE, FOREIGN)
SERVICE_TYPES = (ServiceType.LOAN.value, ServiceType.COPY.value)
VIA = ("reader", "staff", "openurl", "api", "iso18626", "import")
OPEN_STATES = tuple(s.value for s in RequestState if s not in TERMINAL_REQUEST_STATES)
TERMINAL = frozenset(s.value for s in TERMINAL_REQUEST_STATES)
LENDING_QUEUE_STATES = ("Sent", "Shipped", "Received", "Returned")

# Timers
LOAN_REMINDER_DAYS = 3  # the reader is reminded this many days before a loan is due
OVERDUE_REMINDER_DAYS = 7  # and every this many days once it is overdue
# After a lender answered (ExpectToSupply, WillSupply) it has this many times its
# days-to-respond, from the answer, to ship before the hub moves on.
SHIP_BY_FACTOR = 2
LOAD_WINDOW = dt.timedelta(days=90)  # routing's "recent" lending figures


# Messages (English msgids; zh-CN in locale/zh_CN/LC_MESSAGES/ill.po)
MSG_UNKNOWN_REQUEST = "Unknown request: {id}"
MSG_DUPLICATE = "You already have an open request for this item: request {id} ({state})"
MSG_WHAT = "Give a catalogue record or at least a title"
MSG_SERVICE = "service_type: one of {choices}"
MSG_LANGUAGE = "language: one of {choices}"
MSG_VIA = "via: one of {choices}"
MSG_TOO_LONG = "{name}: at most {n} characters"
MSG_NEEDED_BY = "needed_by: the date has passed ({date})"
MSG_NAIVE = "at: give a time zone"
MSG_UNKNOWN_CLUSTER = "Unknown catalogue record: {id}"
MSG_UNKNOWN_MEMBER = "Unknown member code: {code}"
MSG_UNKNOWN_READER = "Unknown reader: {id}"
MSG_NOT_A_READER = "User {id} is not a reader"
MSG_READER_INACTIVE = "Reader {id} is no longer active"
MSG_READER_ELSEWHERE = "Reader {id} belongs to another library"
MSG_READER_NEEDED = "reader_id: give the reader the request is for"
MSG_BORROWER_NEEDED = "borrower: give the requesting library"
MSG_READER_OWN = "Readers may request only for themselves"
MSG_BORROWER_INACTIVE = "The requesting library {code} is not an active member"
MSG_PICKUP_INACTIVE = "pickup: {code} is not an active member"
MSG_CHANGED = "Request {id} changed meanwhile; try again"
MSG_NOT_LENDER = "Only the lending library may do this"
MSG_NOT_REQUESTER = "Only the requesting library may do this"
MSG_NOT_FOR_READERS = "Readers may not do this; ask your library"
MSG_NO_CONDITION = "Request {id} has no condition waiting for an answer"
MSG_NO_RENEWAL = "Request {id} has no renewal waiting for an answer"
MSG_NO_CANCEL = "Request {id} has no cancellation waiting for an answer"
MSG_REASON_NEEDED = "reason: say why"
MSG_DUE_PAST = "due: the date must be after {date}"
MSG_POLICY_UNKNOWN = "{name}: not a policy value"
MSG_POLICY_VALUE = "{name}: must be between {low} and {high}"
CONDITIONS_PENDING = "ExpectToSupply (conditions pending)"
MSG_OTHER_LIBRARY = "This request belongs to another library"
MSG_OFFICE_ONLY = "Only the consortium office may do this"
MSG_CHOOSE_LIBRARY = "Your role may not choose another library"
MSG_QUEUE = "queue: one of {choices}"
MSG_STATE = "state: one of {choices}"
MSG_REQUESTER_REF_TAKEN = "requester_ref: {ref} is already used by request {id}"
# Reasons written on requests (outcome) and on rota rows.
R_NO_HOLDER = "No member library holds this item"
R_NONE_ELIGIBLE = "No member library can supply it now"
R_EXHAUSTED = "Every library asked was unable to supply it"
R_EXPIRED = "no answer in time"
R_AUTO_COMPLETED = "completed automatically: delivered and not confirmed in time"

LIMITS = {
    "title": 2000,
    "article_title": 2000,
    "author": 500,
    "volume": 40,
    "issue": 40,
    "pages": 60,
    "year": 20,
    "issn": 20,
    "isbn": 20,
    "doi": 200,
    "publisher": 300,
    "edition": 100,
    "note": 2000,
    "requester_ref": 100,
    "patron_ref": 100,
}


# The unit of work the transitions run in: a request's ORM session, or the connection a worker
# (a job consumer, a replay) keeps; either way the caller commits.
Work = Session | Connection

# ----------------------------------------------------------------------------- input, results


@dataclass(frozen=True)
class NewRequest:
    """What a request is created from: a catalogue cluster, a citation, or both."""

    service_type: str
    cluster_id: int | None = None
    title: str = ""
    article_title: str = ""
    author: str = ""
    volume: str = ""
    issue: str = ""
    pages: str = ""
    year: str = ""
    issn: str = ""
    isbn: str = ""
    doi: str = ""
    publisher: str = ""
    edition: str = ""
    needed_by: dt.date | None = None
    note: str = ""
    # Staff, member systems and the office name the reader; readers are themselves.
    reader_id: int | None = None
    # Only without a reader (a member system's own patron, an import): the requesting member.
    borrower: str | None = None
    pickup: str | None = None  # member code; default the requesting member
    via: str | None = None
    language: str | None = None  # staff may set it; otherwise detected
    requester_ref: str | None = None
    patron_ref: str | None = None


@dataclass(frozen=True)
class Result:
    """Where a request stands after a call."""

    request_id: int
    state: str
    version: int
    lender_id: int | None
    position: int
    events: tuple[str, ...] = ()
    service_type: str = ""


# ----------------------------------------------------------------------------- the hot path's SQL


_PG_SQL: dict[str, str] = {}


# SQLite, set once per DBAPI connection the service writes on (the pool keeps connections
# open). Every transition is a short transaction touching some twenty index pages; with the
# default checkpoint every 1,000 WAL pages the database was copied back and fsync'ed every
# fifty requests, and that took more wall time than the transactions themselves (a year's
# replay: 2.2x faster with 10,000). Durability is unchanged (WAL, synchronous=NORMAL). Since the
# copying is done by _Checkpointer's thread as the WAL grows, the writer's own checkpoint (which
# is what lets the WAL start again from its beginning) is left with the last pages and its two
# syncs; at 40,000 pages it comes a quarter as often as at 10,000 (a 20,000-request replay:
# 0.9 s of stalls -> 0.3 s), and the WAL file grows to about 160 MB. A 64 MB page cache (default
# 2 MB; filled only as pages are read) keeps the live requests' rows and index pages out of
# read() calls.
_SQLITE_WRITER_TUNING = ("PRAGMA wal_autocheckpoint = 40000", "PRAGMA cache_size = -65536")
_TUNED = "consortia_ill_tuned"

# SQLite has one writer at a time. When another process holds the write lock, SQLite's own busy
# handler sleeps 1, 2, 5, 10, 15 ... ms between tries while a transition holds the lock for
# about 0.1 ms, so two processes writing transitions spent most of their time asleep. The
# service therefore takes the lock itself (BEGIN IMMEDIATE, just before a transaction's first
# write; everything read before it is checked again by the version in the write) and, when it
# is taken, tries again after this many seconds, for as long as the busy timeout
# (db._sqlite_pragmas) would have waited.
#
# Switching the busy handler off and on again costs two statements a transaction (~5 % of a
# transition), so a connection that never found the lock taken asks with a plain BEGIN
# IMMEDIATE under its busy timeout (which waits as long, WRITE_LOCK_WAIT); the first time that
# BEGIN had to wait again and again, the connection asks by itself for good (_CONTENDED).
WRITE_LOCK_RETRY = 0.00005
WRITE_LOCK_WAIT = 30.0
_BUSY_WAIT = WRITE_LOCK_WAIT  # db._sqlite_pragmas' busy timeout, in seconds
_SQL_BUSY_TIMEOUT = f"PRAGMA busy_timeout = {int(_BUSY_WAIT * 1000)}"
_CONTENDED = "consortia_ill_contended"
_WAITED = 0.0009  # a BEGIN that took this long met the lock taken (the first sleep is 1 ms)
# ... or was kept off its core that long on a busy machine, now and then: each slow BEGIN adds
# _SLOW, each quick one takes 1 away, and the connection switches at _SWITCH (ten slow BEGINs
# close together, as two writers meet; not the odd one a busy machine makes).
_SLOW = 100
_SWITCH = 1000


class _Db:
    """Hand-written statements on the session's DBAPI connection, in its transaction.

    Statements are written with ``?`` and rewritten once for psycopg's ``%s``. Timestamps are
    stored the way ``db.UTCDateTime`` stores them (naive UTC text on SQLite).
    """

    __slots__ = ("cur", "info", "pg", "raw")

    def __init__(self, session: Work) -> None:
        if isinstance(session, Connection):
            conn = session
            if not conn.in_transaction():
                # The statements below bypass SQLAlchemy; begin its transaction so that the
                # caller's commit() reaches the database.
                conn.begin()
        else:
            conn = session.connection()
        self.pg = conn.dialect.name == "postgresql"
        raw: Any = conn.connection.dbapi_connection
        self.cur: Any = raw.cursor()
        # SQLite's connection: its write lock is taken by begin_write().
        self.raw: Any = None if self.pg else raw
        self.info: dict[Any, Any] | None = None
        if not self.pg:
            info = self.info = conn.connection.info
            ckpt: Any = info.get(_TUNED, False)
            if ckpt is False:
                for pragma in _SQLITE_WRITER_TUNING:
                    self.cur.execute(pragma)
                ckpt = info[_TUNED] = _Checkpointer.for_path(conn.engine.url.database)
            if ckpt is not None:
                ckpt.touch()

    def _sql(self, sql: str) -> str:
        if not self.pg:
            return sql
        out = _PG_SQL.get(sql)
        if out is None:
            out = _PG_SQL[sql] = sql.replace("?", "%s")
        return out

    def ts(self, value: dt.datetime | None) -> Any:
        if value is None or self.pg:
            return value
        if value.tzinfo is not dt.UTC:
            value = value.astimezone(dt.UTC)
        # "YYYY-MM-DD HH:MM:SS.ffffff" without the "+00:00" (as db.UTCDateTime stores it).
        return value.isoformat(" ", "microseconds")[:26]

    def read_ts(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        out: dt.datetime = value
        return out if out.tzinfo else out.replace(tzinfo=dt.UTC)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.cur.execute(self._sql(sql), params)
        row: tuple[Any, ...] | None = self.cur.fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cur.execute(self._sql(sql), params)
        return list(self.cur.fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """A write (UPDATE, INSERT, DELETE)."""
        if self.raw is not None and not self.raw.in_transaction:
            self.begin_write()
        self.cur.execute(self._sql(sql), params)
        return int(self.cur.rowcount)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            if self.raw is not None and not self.raw.in_transaction:
                self.begin_write()
            self.cur.executemany(self._sql(sql), rows)

    def begin_write(self) -> None:
        """SQLite, before a transaction's first write: take the write lock (see
        ``WRITE_LOCK_RETRY``). Nothing to do on PostgreSQL, or once the transaction wrote."""
        raw = self.raw
        if raw is None or raw.in_transaction:
            return
        cur = self.cur
        info = self.info
        if info is not None and WRITE_LOCK_WAIT == _BUSY_WAIT:
            waits = info.get(_CONTENDED, 0)
            if waits < _SWITCH:
                started = time.perf_counter()
                cur.execute("BEGIN IMMEDIATE")
                if time.perf_counter() - started > _WAITED:
                    info[_CONTENDED] = waits + _SLOW
                elif waits:
                    info[_CONTENDED] = waits - 1
                return
        # No busy handler while asking: a lock that is taken is asked for again here, at once.
        cur.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = 0.0
            while True:
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _locked(exc):
                        raise
                    now = time.monotonic()
                    if not deadline:
                        deadline = now + WRITE_LOCK_WAIT
                    elif now > deadline:
                        raise
                if raw.in_transaction:  # pragma: no cover - a refused BEGIN opens nothing
                    raw.rollback()
                time.sleep(WRITE_LOCK_RETRY)
        finally:
            cur.execute(_SQL_BUSY_TIMEOUT)

    def close(self) -> None:
        self.cur.close()


class _Checkpointer:
    """SQLite: WAL checkpoints off the writer's thread.

    A checkpoint copies the pages the WAL holds back into the database file and syncs both
    files; done by the writing connection (``wal_autocheckpoint``) it stalled a transition for
    tens of milliseconds every few thousand transitions (a year's replay: ~18 % of its wall
    time). This thread, one per database file and process, runs a PASSIVE checkpoint every
    ``CHECKPOINT_EVERY`` seconds on its own connection while the service writes: it never
    blocks the writer or a reader, and the writer's own checkpoint (still every
    ``wal_autocheckpoint`` pages, which is what lets the WAL file start again from its
    beginning) then finds nearly everything copied already. Durability is unchanged: the same
    checkpoint with the same syncs (synchronous=NORMAL), on another thread. The thread ends
    after ``CHECKPOINT_IDLE`` seconds without a transition and starts again with the next.
    """

    _lock = threading.Lock()
    _by_path: dict[str, _Checkpointer] = {}

    __slots__ = ("idle", "path", "pid", "running", "uses")

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.uses = 0
        self.idle = 0
        self.running = False

    @classmethod
    def for_path(cls, database: str | None) -> _Checkpointer | None:
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        path = os.path.abspath(database)
        with cls._lock:
            found = cls._by_path.get(path)
            if found is None or found.pid != os.getpid():  # a forked worker starts its own
                found = cls._by_path[path] = cls(path)
        return found

    def touch(self) -> None:
        self.uses += 1
        if not self.running:
            with self._lock:
                if not self.running and self.pid == os.getpid():
                    self.running = True
                    self.idle = 0
                    threading.Thread(
                        target=self._run, name="consortia-ill-checkpoint", daemon=True
                    ).start()

    def _run(self) -> None:
        con: sqlite3.Connection | None = None
        try:
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA synchronous = NORMAL")  # the platform's (db._sqlite_pragmas)
            con.execute("PRAGMA busy_timeout = 0")  # PASSIVE: never wait for anyone
            seen = -1
            while True:
                time.sleep(CHECKPOINT_EVERY)
                uses = self.uses
                if uses == seen:
                    self.idle += 1
                    if self.idle * CHECKPOINT_EVERY >= CHECKPOINT_IDLE:
                        return
                    continue
                seen, self.idle = uses, 0
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:  # the file went away (tests), or is not a database: stop
            return
        finally:
            with self._lock:
                self.running = False
            if con is not None:
                con.close()


CHECKPOINT_EVERY = 0.1  # seconds between the checkpointer's PASSIVE checkpoints
CHECKPOINT_IDLE = 5.0  # seconds without a transition before the checkpointer stops


def _locked(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_BUSY) & 0xFF == sqlite3.SQLITE_BUSY


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_SQL_EVENT = (
    "INSERT INTO events (at, actor, actor_user_id, action, entity_type, entity_id, member_id, "
    "payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

_REQUEST_COLUMNS = (
    "reader_id, borrower_id, pickup_id, created_by_id, via, service_type, language, cluster_id, "
    "title, article_title, author, volume, issue, pages, year, issn, isbn, doi, publisher, "
    "edition, needed_by, note, state, position, lender_id, due_at, loan_due_at, version, "
    "outcome, requester_ref, patron_ref, dedupe_key, created_at, updated_at, closed_at"
)
_SQL_INSERT_REQUEST = (
    f"INSERT INTO ill_requests ({_REQUEST_COLUMNS}) VALUES "
    f"({', '.join('?' for _ in _REQUEST_COLUMNS.split(','))}) RETURNING id"
)
_SQL_INSERT_ATTEMPT = (
    "INSERT INTO ill_lender_attempts (request_id, position, lender_id, score, reason, factors, "
    "status, note, renewals, sent_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, '', 0, ?, ?)"
)

# The request with its current lender's rota row: everything a transition needs.
_SQL_LOAD = (
    "SELECT r.id, r.state, r.service_type, r.version, r.borrower_id, r.pickup_id, r.lender_id, "
    "r.position, r.language, r.reader_id, r.due_at, r.loan_due_at, a.status, "
    "a.condition_state, a.renew_requested_at, a.cancel_requested_at, a.renewals, "
    "a.answered_at, a.supplier_ref FROM ill_requests r LEFT JOIN ill_lender_attempts a "
    "ON a.request_id = r.id AND a.position = r.position WHERE r.id = ?"
)
_SQL_LOAD_LOCKED = _SQL_LOAD + " FOR UPDATE OF r"
_SQL_LOAD_SKIP_LOCKED = _SQL_LOAD + " FOR UPDATE OF r SKIP LOCKED"


class _Row(NamedTuple):
    id: int
    state: str
    service_type: str
    version: int
    borrower_id: int
    pickup_id: int
    lender_id: int | None
    position: int
    language: str
    reader_id: int | None
    due_at: Any
    loan_due_at: Any
    status: str | None
    condition_state: str | None
    renew_requested_at: Any
    cancel_requested_at: Any
    renewals: int | None
    answered_at: Any
    # The lender's own id when it runs its own ILL system (ISO 18626 supplyingAgencyRequestId).
    supplier_ref: str | None


def _load(db: _Db, request_id: int, *, skip_locked: bool = False) -> _Row | None:
    sql = _SQL_LOAD
    if db.pg:
        sql = _SQL_LOAD_SKIP_LOCKED if skip_locked else _SQL_LOAD_LOCKED
    row = db.one(sql, (request_id,))
    return _Row(*row) if row is not None else None


def _must_load(db: _Db, request_id: int) -> _Row:
    row = _load(db, request_id)
    if row is None:
        raise NotFound(MSG_UNKNOWN_REQUEST, field="request", id=request_id)
    return row


_UPDATE_SQL: dict[tuple[str, ...], str] = {}
_ATTEMPT_SQL: dict[tuple[str, ...], str] = {}


class _Tx:
    """One transition's writes: the request row (checked against the version read), the
    current rota row, other rota rows, and the events, written in that order."""

    __slots__ = (
        "actor",
        "at",
        "attempt",
        "db",
        "events",
        "now",
        "others",
        "request",
        "row",
        "session",
        "v",
    )

    def __init__(
        self,
        db: _Db,
        row: _Row,
        actor: Principal,
        at: dt.datetime,
        v: int | None = None,
        session: Work | None = None,
    ) -> None:
        self.session = session  # given: member systems hear of the transition (ill/peers.py)
        self.db = db
        self.row = row
        self.actor = actor
        self.at = at
        self.now = db.ts(at)  # ``at`` as stored, computed once
        # The request's version once this write is done: every event of the write carries it.
        self.v = row.version + 1 if v is None else v
        self.request: dict[str, Any] = {}
        self.attempt: dict[str, Any] = {}
        self.others: list[tuple[int, dict[str, Any]]] = []
        self.events: list[tuple[Any, ...]] = []

    @property
    def state(self) -> str:
        return str(self.request.get("state", self.row.state))

    @property
    def lender_id(self) -> int | None:
        value = self.request.get("lender_id", self.row.lender_id)
        return int(value) if value is not None else None

    @property
    def position(self) -> int:
        return int(self.request.get("position", self.row.position))

    def event(
        self,
        action: str,
        frm: str | None,
        to: str,
        member_id: int | None,
        **extra: Any,
    ) -> None:
        row = self.row
        payload = {
            "from": frm,
            "to": to,
            "borrower": row.borrower_id,
            "lender": self.lender_id,
            "service": row.service_type,
            "lang": row.language,
            "v": self.v,
        }
        payload.update(extra)
        self.events.append(
            (
                self.now,
                self.actor.label,
                self.actor.user_id,
                action,
                ENTITY,
                str(row.id),
                member_id,
                _json(payload),
            )
        )

    def move(self, event: HubEvent, action: str, member_id: int | None, **extra: Any) -> str:
        """Apply a hub event (refused by ``IllegalTransition``) and record it."""
        frm = self.state
        to = next_request_state(self.row.service_type, frm, event)
        self.request["state"] = to._value_
        self.event(action, frm, to._value_, member_id, **extra)
        return to._value_

    def write(self) -> Result:
        db, row = self.db, self.row
        if self.request or self.attempt or self.others or self.events:
            changes = dict(self.request)
            changes["updated_at"] = self.now
            keys = tuple(sorted(changes))
            sql = _UPDATE_SQL.get(keys)
            if sql is None:
                sets = ", ".join(f"{k} = ?" for k in keys)
                sql = _UPDATE_SQL[keys] = (
                    f"UPDATE ill_requests SET {sets}, version = ? WHERE id = ? AND version = ?"
                )
            params = [changes[k] for k in keys]
            params += [row.version + 1, row.id, row.version]
            if db.run(sql, params) != 1:
                raise Conflict(MSG_CHANGED, field="request", id=row.id)
            if self.attempt:
                self._attempt(row.position, self.attempt)
            for position, values in self.others:
                self._attempt(position, values)
            if len(self.events) == 1:
                db.run(_SQL_EVENT, self.events[0])
            else:
                db.many(_SQL_EVENT, self.events)
            version = row.version + 1
            if self.session is not None:
                _tell_peers(self.session, db, row.id)
        else:
            version = row.version
        return Result(
            row.id,
            self.state,
            version,
            self.lender_id,
            self.position,
            tuple(e[3] for e in self.events),
            row.service_type,
        )

    def _attempt(self, position: int, values: dict[str, Any]) -> None:
        keys = tuple(sorted(values))
        sql = _ATTEMPT_SQL.get(keys)
        if sql is None:
            sets = ", ".join(f"{k} = ?" for k in keys)
            sql = _ATTEMPT_SQL[keys] = (
                f"UPDATE ill_lender_attempts SET {sets} WHERE request_id = ? AND position = ?"
            )
        self.db.run(sql, [*(values[k] for k in keys), self.row.id, position])


def _tell_peers(session: Work, db: _Db, request_id: int) -> None:
    """Queue, in the transition's transaction, the ISO 18626 messages it calls for when a member
    runs its own ILL system (``ill/peers.py``); nothing to do, and no statement, when none
    does."""
    _members(session, db)
    if not _cache(session).has_peers:
        return
    from consortia.ill import peers

    if isinstance(session, Connection):
        with Session(bind=session) as orm:
            peers.after_transition(orm, request_id)
            orm.flush()
    else:
        peers.after_transition(session, request_id)


# ----------------------------------------------------------------------------- caches


class _EngineCache:
    """Per-engine data that changes rarely: members, the calendar, the routing figures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: dict[int, rota.MemberInfo] = {}
        self.members_stamp: tuple[Any, ...] | None = None
        self.members_checked = 0.0
        self.has_peers = False  # a member runs its own ILL system (ISO 18626)
        # Cluster id -> (title, record languages): what language detection needs.
        self.clusters: dict[int, tuple[str, list[str]]] = {}
        self.calendar: dict[dt.date, bool] | None = None
        self.calendar_loaded = 0.0
        self.loads: dict[int, rota.Load] = {}
        self.loads_as_of: dt.datetime | None = None
        self.loads_loaded = 0.0
        self.policies: list[Policy] | None = None
        self.policies_loaded = 0.0
        self.book_pages: dict[int, int | None] = {}


_caches_lock = threading.Lock()
_CACHE_ATTR = "_consortia_ill_cache"  # kept on the engine: it lives and goes with it
_cached_engines: weakref.WeakSet[Engine] = weakref.WeakSet()  # for reset_caches only
CALENDAR_TTL = 60.0  # seconds; edits made in this process are seen at once
MEMBERS_TTL = 2.0  # seconds
CLUSTER_CACHE = 20_000  # clusters' titles and languages kept per engine
LOADS_TTL = 60.0  # seconds of wall time
LOADS_SPAN = dt.timedelta(days=30)  # or when the routing moment moved this far (replays)


def _cache(session: Work) -> _EngineCache:
    if isinstance(session, Connection):
        engine = session.engine
    else:
        bind = session.get_bind()
        engine = bind if isinstance(bind, Engine) else bind.engine
    found: _EngineCache | None = getattr(engine, _CACHE_ATTR, None)
    if found is None:
        with _caches_lock:
            found = getattr(engine, _CACHE_ATTR, None)
            if found is None:
                found = _EngineCache()
                setattr(engine, _CACHE_ATTR, found)
                _cached_engines.add(engine)
    return found


def reset_caches() -> None:
    """Forget cached members, calendar, policies and routing figures (tests, after bulk
    changes made behind the service's back)."""
    with _caches_lock:
        for engine in list(_cached_engines):
            if hasattr(engine, _CACHE_ATTR):
                delattr(engine, _CACHE_ATTR)
        _cached_engines.clear()


def _members(session: Work, db: _Db) -> dict[int, rota.MemberInfo]:
    """All members, re-read when one changed; whether one did is asked at most every
    ``MEMBERS_TTL`` seconds (a suspension reaches routing within that time)."""
    cache = _cache(session)
    now = time.monotonic()
    if cache.members and now - cache.members_checked < MEMBERS_TTL:
        return cache.members
    stamp = db.one("SELECT count(*), max(updated_at) FROM members")
    cache.members_checked = now
    if stamp != cache.members_stamp:
        rows = db.all(
            "SELECT id, code, region_id, is_centre, status, lends_loans, lends_copies, "
            "max_open_lending, days_to_respond, loan_period_days, iso18626_url FROM members"
        )
        cache.members = {
            r[0]: rota.MemberInfo(
                id=r[0],
                code=r[1],
                region_id=r[2],
                is_centre=bool(r[3]),
                status=r[4],
                lends_loans=bool(r[5]),
                lends_copies=bool(r[6]),
                max_open_lending=r[7],
                days_to_respond=r[8],
                loan_period_days=r[9],
                iso18626_url=r[10],
            )
            for r in rows
        }
        cache.members_stamp = stamp
        cache.has_peers = any(m.iso18626_url for m in cache.members.values())
    return cache.members


def _calendar(session: Work, db: _Db) -> dict[dt.date, bool]:
    cache = _cache(session)
    now = time.monotonic()
    if cache.calendar is None or now - cache.calendar_loaded > CALENDAR_TTL:
        rows = db.all("SELECT day, working FROM ill_calendar")
        cache.calendar = {
            (r[0] if isinstance(r[0], dt.date) else dt.date.fromisoformat(r[0])): bool(r[1])
            for r in rows
        }
        cache.calendar_loaded = now
    return cache.calendar


def _loads(session: Work, db: _Db, at: dt.datetime) -> dict[int, rota.Load]:
    """Each member's recent lending figures, read at most once a minute (or when a replay's
    clock moved a month) and kept current in between with what this process did."""
    cache = _cache(session)
    now = time.monotonic()
    fresh = (
        cache.loads_as_of is not None
        and now - cache.loads_loaded < LOADS_TTL
        and abs(at - cache.loads_as_of) < LOADS_SPAN
    )
    if fresh:
        return cache.loads
    with cache.lock:
        loads: dict[int, rota.Load] = {}

        def get(member_id: int) -> rota.Load:
            found = loads.get(member_id)
            if found is None:
                found = loads[member_id] = rota.Load()
            return found

        since, until = db.ts(at - LOAD_WINDOW), db.ts(at)
        for lender, borrower, n in db.all(
            "SELECT lender_id, borrower_id, count(*) FROM ill_requests "
            "WHERE shipped_at >= ? AND shipped_at <= ? GROUP BY lender_id, borrower_id",
            (since, until),
        ):
            if lender is not None:
                get(lender).lent += n
            get(borrower).borrowed += n
        for lender, n in db.all(
            "SELECT lender_id, count(*) FROM ill_requests WHERE state = 'Sent' "
            "AND lender_id IS NOT NULL GROUP BY lender_id"
        ):
            get(lender).open = n
        days = (
            "avg(extract(epoch FROM shipped_at - sent_at)) / 86400.0"
            if db.pg
            else "avg(julianday(shipped_at) - julianday(sent_at))"
        )
        for lender, answered, filled, turnaround in db.all(
            "SELECT lender_id, count(*), "
            "sum(CASE WHEN shipped_at IS NOT NULL THEN 1 ELSE 0 END), "
            f"{days} FROM ill_lender_attempts WHERE sent_at >= ? AND sent_at <= ? "
            "AND (shipped_at IS NOT NULL OR closed IS NOT NULL) GROUP BY lender_id",
            (since, until),
        ):
            load = get(lender)
            load.answered = int(answered)
            load.filled = int(filled or 0)
            load.turnaround_days = float(turnaround) if turnaround is not None else None
        cache.loads = loads
        cache.loads_as_of = at
        cache.loads_loaded = now
    return loads


def _note_load(
    session: Work,
    lender_id: int | None,
    borrower_id: int,
    *,
    sent: int = 0,
    left: int = 0,
    filled: int = 0,
    declined: int = 0,
) -> None:
    """Keep the cached routing figures current with this process's own transitions."""
    loads = _cache(session).loads
    if lender_id is None:
        return
    load = loads.get(lender_id)
    if load is None:
        load = loads[lender_id] = rota.Load()
    load.open = max(load.open + sent - left, 0)
    if filled:
        load.lent += filled
        load.filled += filled
        load.answered += filled
        b = loads.get(borrower_id)
        if b is None:
            b = loads[borrower_id] = rota.Load()
        b.borrowed += filled
    if declined:
        load.answered += declined


# ----------------------------------------------------------------------------- helpers


def _when(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise Invalid(MSG_NAIVE, field="at")
    return at


def _respond_by(session: Work, db: _Db, member: rota.MemberInfo, at: dt.datetime) -> dt.datetime:
    return workdays.add_working_days(at, member.days_to_respond, _calendar(session, db))


def _strip(value: str | None, name: str) -> str:
    text = (value or "").strip()
    limit = LIMITS.get(name)
    if limit is not None and len(text) > limit:
        raise Invalid(MSG_TOO_LONG, field=name, name=name, n=limit)
    return text


_WORD = re.compile(r"\W+", re.UNICODE)


def _fold(text: str) -> str:
    return _WORD.sub("", text.casefold()) if text else ""


def detect_language(
    *, article_title: str = "", title: str = "", record_languages: Iterable[str] = ()
) -> str:
    """Chinese or foreign, for the statistics: the script of the article or chapter title,
    else the catalogue record's language, else the script of the title."""
    if article_title:
        return CHINESE if has_han_only(article_title) else FOREIGN
    langs = [code.lower() for code in record_languages if code]
    known = [c for c in langs if c not in ("und", "mul", "zxx", "")]
    if known:
        return CHINESE if known[0] in ("chi", "zho") else FOREIGN
    if title:
        return CHINESE if has_han_only(title) else FOREIGN
    return FOREIGN


def _isbn13(value: str) -> str:
    if not value:
        return ""
    raw = value.replace("-", "").replace(" ", "").upper()
    try:
        return str(stdnum_isbn.to_isbn13(stdnum_isbn.validate(raw))).replace("-", "")
    except Exception:  # stdnum raises several ValidationError kinds; a bad one just won't match
        return ""


def _issn8(value: str) -> str:
    if not value:
        return ""
    raw = value.replace("-", "").replace(" ", "").upper()
    try:
        return str(stdnum_issn.validate(raw))
    except Exception:
        return ""


def dedupe_key(new: NewRequest, cluster_id: int | None) -> str:
    """The same document and service for one reader: two chapters of one book differ."""
    parts = [
        new.service_type,
        str(cluster_id or ""),
        _isbn13(new.isbn) or _fold(new.isbn),
        _issn8(new.issn) or _fold(new.issn),
        new.doi.strip().lower(),
        "" if cluster_id else _fold(new.title),
        _fold(new.article_title),
        _fold(new.volume),
        _fold(new.issue),
        _fold(new.pages),
    ]
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def _member_by_code(members: dict[int, rota.MemberInfo], code: str) -> rota.MemberInfo:
    wanted = code.strip().upper()
    for m in members.values():
        if m.code.upper() == wanted:
            return m
    raise NotFound(MSG_UNKNOWN_MEMBER, field="member", code=code)


def _is_staff(actor: Principal) -> bool:
    return actor.role in (Role.library_staff, Role.library_admin, Role.member_system)


def _is_office(actor: Principal) -> bool:
    return actor.is_consortium_admin


# ----------------------------------------------------------------------------- creating


@dataclass
class _Who:
    reader_id: int | None
    borrower_id: int
    via: str
    created_by: int | None


def _who_requests(db: _Db, actor: Principal, new: NewRequest) -> _Who:
    """Who the request is for and which member asks, by the actor's role."""
    if actor.role is Role.reader:
        if new.reader_id is not None and new.reader_id != actor.user_id:
            raise Forbidden(MSG_READER_OWN)
        if actor.member_id is None or actor.user_id is None:
            raise Forbidden(MSG_READER_OWN)
        return _Who(actor.user_id, actor.member_id, new.via or "reader", actor.user_id)
    via_default = "api" if actor.role is Role.member_system else "staff"
    if actor.kind in ("cli", "system"):
        via_default = "import"
    if new.reader_id is None:
        if actor.role in (Role.library_staff, Role.library_admin):
            raise Invalid(MSG_READER_NEEDED, field="reader_id")
        if actor.role is Role.member_system and actor.member_id is not None:
            return _Who(None, actor.member_id, new.via or via_default, None)
        if not new.borrower:
            raise Invalid(MSG_BORROWER_NEEDED, field="borrower")
        # The office, the CLI and the system name the requesting library.
        return _Who(None, -1, new.via or via_default, actor.user_id)
    found = db.one("SELECT role, member_id, active FROM users WHERE id = ?", (new.reader_id,))
    if found is None:
        raise NotFound(MSG_UNKNOWN_READER, field="reader_id", id=new.reader_id)
    role, member_id, active = found
    if role != Role.reader.value or member_id is None:
        raise Invalid(MSG_NOT_A_READER, field="reader_id", id=new.reader_id)
    if not active:
        raise Invalid(MSG_READER_INACTIVE, field="reader_id", id=new.reader_id)
    if not actor.may_act_for(member_id):
        raise Forbidden(MSG_READER_ELSEWHERE, id=new.reader_id)
    return _Who(new.reader_id, int(member_id), new.via or via_default, actor.user_id)


def _clean(new: NewRequest, at: dt.datetime) -> NewRequest:
    if new.service_type not in SERVICE_TYPES:
        raise Invalid(MSG_SERVICE, field="service_type", choices=", ".join(SERVICE_TYPES))
    if new.language is not None and new.language not in LANGUAGES:
        raise Invalid(MSG_LANGUAGE, field="language", choices=", ".join(LANGUAGES))
    if new.via is not None and new.via not in VIA:
        raise Invalid(MSG_VIA, field="via", choices=", ".join(VIA))
    changed: dict[str, Any] = {}
    for name in LIMITS:
        value = getattr(new, name)
        if value:
            stripped = _strip(value, name)
            if stripped != value:
                changed[name] = stripped
    for name in ("requester_ref", "patron_ref"):
        if name in changed and not changed[name]:
            changed[name] = None
    cleaned = replace(new, **changed) if changed else new
    if cleaned.cluster_id is None and not (cleaned.title or cleaned.article_title):
        raise Invalid(MSG_WHAT, field="title")
    if cleaned.needed_by is not None:
        today = at.astimezone(workdays.CHINA).date()
        if cleaned.needed_by < today:
            raise Invalid(MSG_NEEDED_BY, field="needed_by", date=cleaned.needed_by.isoformat())
    return cleaned


def _cluster_facts(session: Work, db: _Db, cluster_id: int) -> tuple[str, list[str]]:
    """A cluster's display title and its records' languages (cached: both change rarely and
    only language detection and the citation's default title use them)."""
    cache = _cache(session).clusters
    found = cache.get(cluster_id)
    if found is not None:
        return found
    row = db.one("SELECT title, merged FROM clusters WHERE id = ?", (cluster_id,))
    if row is None:
        raise NotFound(MSG_UNKNOWN_CLUSTER, field="cluster_id", id=cluster_id)
    title, merged = row
    data = orjson.loads(merged) if isinstance(merged, str | bytes) else (merged or {})
    langs = [str(e.get("value", "")) for e in data.get("languages", []) if isinstance(e, dict)]
    if len(cache) >= CLUSTER_CACHE:
        cache.clear()
    found = cache[cluster_id] = (str(title or ""), langs)
    return found


def match_citation(session: Work, new: NewRequest) -> int | None:
    """The catalogue cluster a citation names, by ISBN, then ISSN, then title (and year).

    When several clusters share the key, the one held by most members wins.
    """
    db = _Db(session)
    return _match_citation(db, new)


def _match_citation(db: _Db, new: NewRequest) -> int | None:
    # Each tier is a key or a key range of match_keys (its primary key): ISBN, ISSN, then the
    # title with the year given, or with any year ("title:<key>|" up to "title:<key>}").
    tiers: list[tuple[str, str]] = []
    isbn = _isbn13(new.isbn)
    if isbn:
        tiers.append((f"isbn:{isbn}", f"isbn:{isbn}"))
    issn = _issn8(new.issn)
    if issn:
        tiers.append((f"issn:{issn}", f"issn:{issn}"))
    title = new.title or ("" if new.issn else new.article_title)
    key = title_key(title) if title else ""
    if key:
        year = new.year[:4] if new.year[:4].isdigit() else ""
        if year:
            tiers.append((f"title:{key}|{year}", f"title:{key}|{year}"))
        else:
            tiers.append((f"title:{key}|", f"title:{key}}}"))
    for low, high in tiers:
        found = db.one(
            "SELECT s.cluster_id FROM match_keys k JOIN source_records s "
            "ON s.id = k.source_record_id JOIN clusters c ON c.id = s.cluster_id "
            "WHERE k.key >= ? AND k.key <= ? AND s.deleted = ? AND s.cluster_id IS NOT NULL "
            "ORDER BY c.member_count DESC, s.cluster_id LIMIT 1",
            (low, high, False),
        )
        if found is not None:
            return int(found[0])
    return None


def _holders(db: _Db, cluster_id: int) -> dict[int, list[str | None]]:
    """Each member holding the cluster with its items' statuses (None: no item data)."""
    out: dict[int, list[str | None]] = {}
    for member_id, status in db.all(
        "SELECT s.member_id, h.status FROM source_records s LEFT JOIN holdings h "
        "ON h.source_record_id = s.id WHERE s.cluster_id = ? AND s.deleted = ?",
        (cluster_id, False),
    ):
        out.setdefault(member_id, []).append(status)
    return out


def _check_copyright(
    session: Work, db: _Db, reader_id: int, new: NewRequest, cluster_id: int | None, at: dt.datetime
) -> None:
    """``delivery.check_limits`` for a new copy of a catalogued book, in two statements at
    most: the policy in force and the book's page count are cached, and the reader's pages of
    the book in the last seven days are one range scan of (reader, cluster, created)."""
    from consortia.ill import delivery

    if cluster_id is None:
        # A citation the catalogue does not know: by ISBN, if any (rare; the general check).
        delivery.check_limits(
            session, reader_id, delivery.count_pages(new.pages), new.isbn or None, at
        )
        return
    pages = delivery.count_pages(new.pages)
    if pages is None:
        return
    policy = _policy_at(session, db, at)
    if pages > policy.max_pages_per_request:
        raise Invalid(
            delivery.MSG_PAGES_LIMIT,
            field="pages",
            pages=pages,
            limit=policy.max_pages_per_request,
        )
    total = _book_pages(session, db, cluster_id)
    if not total:
        return
    used = 0
    for asked, delivered in db.all(
        "SELECT r.pages, (SELECT d.pages FROM ill_documents d WHERE d.request_id = r.id "
        "ORDER BY d.id DESC LIMIT 1) FROM ill_requests r WHERE r.reader_id = ? "
        "AND r.cluster_id = ? AND r.created_at > ? AND r.created_at <= ? "
        "AND r.service_type = 'Copy' AND r.state NOT IN ('Cancelled', 'Unfilled')",
        (reader_id, cluster_id, db.ts(at - delivery.SHARE_WINDOW), db.ts(at)),
    ):
        used += delivered if delivered is not None else (delivery.count_pages(asked) or 0)
    wanted = used + pages
    if wanted * 100 > policy.max_book_share_percent * total:
        raise Invalid(
            delivery.MSG_SHARE_LIMIT,
            field="pages",
            pages=wanted,
            total=total,
            percent=f"{wanted * 100 / total:.1f}",
            limit=policy.max_book_share_percent,
        )


def _book_pages(session: Work, db: _Db, cluster_id: int) -> int | None:
    """A book's page count (cached): the merged record's, else its largest source record's."""
    cache = _cache(session).book_pages
    if cluster_id in cache:
        return cache[cluster_id]
    found: int | None = None
    row = db.one("SELECT merged FROM clusters WHERE id = ?", (cluster_id,))
    merged = row[0] if row is not None else None
    data = orjson.loads(merged) if isinstance(merged, str | bytes) else (merged or {})
    value = (data.get("pages") or {}).get("value") if isinstance(data, dict) else None
    if isinstance(value, int) and value > 0:
        found = value
    else:
        for (normalized,) in db.all(
            "SELECT normalized FROM source_records WHERE cluster_id = ? AND deleted = ?",
            (cluster_id, False),
        ):
            rec = orjson.loads(normalized) if isinstance(normalized, str | bytes) else normalized
            n = (rec or {}).get("pages")
            if isinstance(n, int) and n > 0 and (found is None or n > found):
                found = n
    if len(cache) >= CLUSTER_CACHE:
        cache.clear()
    cache[cluster_id] = found
    return found


def create_request(
    session: Work, actor: Principal, new: NewRequest, *, at: dt.datetime | None = None
) -> Result:
    """Create a request and, in the same transaction, route it to its first lender.

    A duplicate of an open request by the same reader is refused naming the existing one. No
    holder, or none that can lend now: the request ends Unfilled at once, with the reasons.
    """
    at = _when(at)
    new = _clean(new, at)
    db = _Db(session)
    who = _who_requests(db, actor, new)
    members = _members(session, db)
    if who.borrower_id == -1:
        who.borrower_id = _member_by_code(members, new.borrower or "").id
    borrower = members.get(who.borrower_id)
    if borrower is None:
        raise NotFound(MSG_UNKNOWN_MEMBER, field="borrower", code=str(who.borrower_id))
    if not borrower.active:
        raise Conflict(MSG_BORROWER_INACTIVE, field="borrower", code=borrower.code)
    pickup = borrower
    if new.pickup:
        pickup = _member_by_code(members, new.pickup)
        if not pickup.active:
            raise Invalid(MSG_PICKUP_INACTIVE, field="pickup", code=pickup.code)

    cluster_id = new.cluster_id
    record_langs: list[str] = []
    title = new.title
    if cluster_id is not None:
        cluster_title, record_langs = _cluster_facts(session, db, cluster_id)
        title = title or cluster_title
    else:
        cluster_id = _match_citation(db, new)
        if cluster_id is not None:
            _, record_langs = _cluster_facts(session, db, cluster_id)
    language = new.language or detect_language(
        article_title=new.article_title, title=title, record_languages=record_langs
    )
    key = dedupe_key(new, cluster_id)
    if who.reader_id is not None:
        dup = db.one(
            "SELECT id, state FROM ill_requests WHERE reader_id = ? AND dedupe_key = ? "
            "AND state NOT IN ('Completed', 'Unfilled', 'Cancelled') LIMIT 1",
            (who.reader_id, key),
        )
        if dup is not None:
            raise Conflict(MSG_DUPLICATE, field="request", id=dup[0], state=dup[1])
    if new.requester_ref is not None:
        taken = db.one(
            "SELECT id FROM ill_requests WHERE borrower_id = ? AND requester_ref = ?",
            (borrower.id, new.requester_ref),
        )
        if taken is not None:
            raise Conflict(
                MSG_REQUESTER_REF_TAKEN, field="requester_ref", ref=new.requester_ref, id=taken[0]
            )

    if new.service_type == ServiceType.COPY._value_ and who.reader_id is not None:
        # Copyright limits (pages per request, share of one book per reader per week) are
        # checked before routing: a request over a limit is refused naming it.
        _check_copyright(session, db, who.reader_id, new, cluster_id, at)
    holders = _holders(db, cluster_id) if cluster_id is not None else {}
    loads = _loads(session, db, at)
    plan = rota.build(borrower, new.service_type, holders, members, loads)
    svc = service_type_of(new.service_type)
    first = plan.candidates[0] if plan.candidates else None
    states = [RequestState.SUBMITTED]
    if first is not None:
        states.append(next_request_state(svc, states[-1], HubEvent.VALIDATED))
        states.append(next_request_state(svc, states[-1], HubEvent.SENT))
        outcome = ""
        lender = members[first.member_id]
        due: dt.datetime | None = _respond_by(session, db, lender, at)
    else:
        states.append(next_request_state(svc, states[-1], HubEvent.ROTA_EXHAUSTED))
        outcome = R_NO_HOLDER if not holders else R_NONE_ELIGIBLE
        due = None
    final = states[-1]._value_
    ts = db.ts(at)
    db.begin_write()
    found = db.one(
        _SQL_INSERT_REQUEST,
        (
            who.reader_id,
            borrower.id,
            pickup.id,
            who.created_by,
            who.via,
            new.service_type,
            language,
            cluster_id,
            title,
            new.article_title,
            new.author,
            new.volume,
            new.issue,
            new.pages,
            new.year,
            new.issn,
            new.isbn,
            new.doi,
            new.publisher,
            new.edition,
            new.needed_by if db.pg or new.needed_by is None else new.needed_by.isoformat(),
            new.note,
            final,
            0 if first else -1,
            first.member_id if first else None,
            db.ts(due),
            None,
            len(states) - 1,
            outcome,
            new.requester_ref,
            new.patron_ref,
            key,
            ts,
            ts,
            None if first else ts,
        ),
    )
    assert found is not None
    request_id = int(found[0])
    db.many(
        _SQL_INSERT_ATTEMPT,
        [
            (
                request_id,
                i,
                c.member_id,
                c.score,
                c.reason,
                _json(c.factors),
                INITIAL_STATUS._value_ if i == 0 else None,
                ts if i == 0 else None,
                db.ts(due) if i == 0 else None,
            )
            for i, c in enumerate(plan.candidates)
        ],
    )
    row = _Row(
        request_id,
        final,
        new.service_type,
        len(states) - 1,
        borrower.id,
        pickup.id,
        first.member_id if first else None,
        0 if first else -1,
        language,
        who.reader_id,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )
    tx = _Tx(db, row, actor, at, v=len(states) - 1, session=session)
    tx.request["lender_id"] = None
    tx.event(
        "ill.request.created",
        None,
        RequestState.SUBMITTED._value_,
        borrower.id,
        via=who.via,
        cluster=cluster_id,
        pickup=pickup.id,
        needed_by=new.needed_by.isoformat() if new.needed_by else None,
    )
    if first is not None:
        tx.event(
            "ill.request.routed",
            states[0]._value_,
            states[1]._value_,
            borrower.id,
            rota=[c.member_id for c in plan.candidates],
            excluded={e.member_id: e.why.name.lower() for e in plan.excluded},
        )
        tx.request["lender_id"] = first.member_id
        tx.event(
            "ill.request.sent",
            states[1]._value_,
            states[2]._value_,
            first.member_id,
            position=0,
            due=due.isoformat() if due else None,
        )
        _note_load(session, first.member_id, borrower.id, sent=1)
    else:
        tx.event(
            "ill.request.unfilled",
            states[0]._value_,
            states[1]._value_,
            borrower.id,
            reasons=[outcome] + [f"{e.code}: {e.why._value_}" for e in plan.excluded],
        )
    db.many(_SQL_EVENT, tx.events)
    _tell_peers(session, db, request_id)
    return Result(
        request_id,
        final,
        len(states) - 1,
        first.member_id if first else None,
        0 if first else -1,
        tuple(e[3] for e in tx.events),
        new.service_type,
    )


# ----------------------------------------------------------------------------- routing onwards


def _advance(session: Work, tx: _Tx, actor_member: int | None) -> None:
    """From Routing: send to the next candidate still able to lend, or end Unfilled."""
    db, row, at = tx.db, tx.row, tx.at
    members = _members(session, db)
    loads = _cache(session).loads
    for position, lender_id in db.all(
        "SELECT position, lender_id FROM ill_lender_attempts WHERE request_id = ? "
        "AND position > ? AND status IS NULL AND closed IS NULL ORDER BY position",
        (row.id, row.position),
    ):
        member = members.get(lender_id)
        if member is None or not rota.eligible_now(member, row.service_type, loads.get(lender_id)):
            tx.others.append((position, {"closed": "skipped", "closed_at": tx.now}))
            continue
        due = _respond_by(session, db, member, at)
        tx.others.append(
            (
                position,
                {
                    "status": INITIAL_STATUS._value_,
                    "sent_at": tx.now,
                    "due_at": db.ts(due),
                    "status_at": tx.now,
                },
            )
        )
        tx.request.update(position=position, lender_id=lender_id, due_at=db.ts(due))
        tx.move(
            HubEvent.SENT, "ill.request.sent", lender_id, position=position, due=due.isoformat()
        )
        _note_load(session, lender_id, row.borrower_id, sent=1)
        return
    reasons = _rota_reasons(db, row.id, tx)
    tx.request.update(
        lender_id=None, due_at=None, closed_at=tx.now, outcome=R_EXHAUSTED, position=-1
    )
    tx.move(HubEvent.ROTA_EXHAUSTED, "ill.request.unfilled", row.borrower_id, reasons=reasons)


def _rota_reasons(db: _Db, request_id: int, tx: _Tx) -> list[str]:
    """Each lender asked (or skipped) and why it did not supply, for the reader."""
    pending = {pos: values for pos, values in tx.others}
    if tx.attempt:
        pending[tx.row.position] = tx.attempt
    out: list[str] = []
    for position, code, closed, note in db.all(
        "SELECT a.position, m.code, a.closed, a.note FROM ill_lender_attempts a "
        "JOIN members m ON m.id = a.lender_id WHERE a.request_id = ? ORDER BY a.position",
        (request_id,),
    ):
        values = pending.get(position, {})
        closed = values.get("closed", closed)
        note = values.get("note", note)
        if closed:
            out.append(f"{code}: {closed}" + (f" ({note})" if note else ""))
    return out


def _decline(
    session: Work,
    tx: _Tx,
    *,
    closed: str,
    status: str | None,
    note: str,
    member_id: int | None,
) -> None:
    """The current lender will not supply: close its turn, then route onwards."""
    tx.attempt.update(closed=closed, closed_at=tx.now, status_at=tx.now)
    if status is not None:
        tx.attempt["status"] = status
    if note:
        tx.attempt["note"] = note
    if tx.row.answered_at is None and closed != "expired":
        tx.attempt["answered_at"] = tx.now
    tx.move(
        HubEvent.LENDER_DECLINED,
        "ill.request.declined",
        member_id,
        position=tx.row.position,
        status=status or closed,
        reason=note,
        **_peer_ref(tx.row),
    )
    _note_load(session, tx.row.lender_id, tx.row.borrower_id, left=1, declined=1)
    _advance(session, tx, member_id)


# ----------------------------------------------------------------------------- who may act


def _peer_ref(row: _Row) -> dict[str, str]:
    """For the events of the requester's side: the lender system's own id for the request, so
    that the ISO 18626 message each event calls for (``ill/peers.py``, built from the event)
    names it, and is the same message whenever it is built. Nothing for the hub's libraries."""
    return {"supplier_ref": row.supplier_ref} if row.supplier_ref else {}


def _check_lender(actor: Principal, row: _Row) -> None:
    if row.lender_id is None or not actor.may_act_for(row.lender_id):
        raise Forbidden(MSG_NOT_LENDER)
    if actor.role is Role.reader:
        raise Forbidden(MSG_NOT_LENDER)


def _check_requester(actor: Principal, row: _Row, *, readers: bool) -> None:
    if actor.role is Role.reader:
        if row.reader_id is None or row.reader_id != actor.user_id:
            raise NotFound(MSG_UNKNOWN_REQUEST, field="request", id=row.id)
        if not readers:
            raise Forbidden(MSG_NOT_FOR_READERS)
        return
    if actor.may_act_for(row.borrower_id) or actor.may_act_for(row.pickup_id):
        return
    raise Forbidden(MSG_NOT_REQUESTER)


def _start(
    session: Work, actor: Principal, request_id: int, at: dt.datetime | None
) -> tuple[_Tx, dt.datetime]:
    when = _when(at)
    db = _Db(session)
    row = _must_load(db, request_id)
    return _Tx(db, row, actor, when, session=session), when


# ----------------------------------------------------------------------------- lender side


def lender_status(
    session: Work,
    actor: Principal,
    request_id: int,
    status: Status | str,
    *,
    note: str = "",
    due: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Result:
    """The current lender reports a status (its staff, or its system over ISO 18626).

    ExpectToSupply / WillSupply: an answer (the lender now has a ship-by deadline); Unfilled /
    RetryPossible: declined, the next lender is asked; Loaned / CopyCompleted: shipped (a loan's
    due date is ``due`` or the lender's loan period); LoanCompleted / CompletedWithoutReturn:
    completed; Cancelled: agreed to the requester's cancellation (without one it is a decline).
    A repeat of the current status changes nothing.
    """
    tx, at = _start(session, actor, request_id, at)
    _check_lender(actor, tx.row)
    _supplier(session, tx, status_of(status), note=_strip(note, "note"), due=due)
    return tx.write()


SUPPLIER_REF_MAX = 100  # ill_lender_attempts.supplier_ref


def note_supplier_ref(session: Work, actor: Principal, request_id: int, ref: str | None) -> bool:
    """Keep the current lender system's own id for the request (ISO 18626
    ``supplyingAgencyRequestId``, from its SupplyingAgencyMessages) on its rota row; the
    requester's later messages to it name it. Not a transition (no state, no event: the message
    that carried it is kept in ``ill_received_messages``); True when it was new or changed."""
    ref = (ref or "").strip()
    if not ref:
        return False
    if len(ref) > SUPPLIER_REF_MAX:
        raise Invalid(
            MSG_TOO_LONG,
            field="supplier_ref",
            name="supplyingAgencyRequestId",
            n=SUPPLIER_REF_MAX,
        )
    db = _Db(session)
    row = _must_load(db, request_id)
    _check_lender(actor, row)
    if row.status is None or row.supplier_ref == ref:
        return False
    db.run(
        "UPDATE ill_lender_attempts SET supplier_ref = ? WHERE request_id = ? AND position = ?",
        (ref, row.id, row.position),
    )
    return True


def _supplier(
    session: Work,
    tx: _Tx,
    status: Status,
    *,
    note: str = "",
    due: dt.datetime | None = None,
    attempt_extra: dict[str, Any] | None = None,
    event_extra: dict[str, Any] | None = None,
) -> None:
    row, db, at = tx.row, tx.db, tx.at
    if row.state in TERMINAL or row.lender_id is None or row.status is None:
        raise IllegalTransition(row.state, status._value_, what="status")
    svc = service_type_of(row.service_type)
    current = status_of(row.status)
    new = next_supplier_status(svc, current, status)
    if new == current and not attempt_extra:
        return
    lender = row.lender_id
    hub = hub_event_for_status(svc, current, new)
    if new is Status.CANCELLED and row.cancel_requested_at is None:
        hub = HubEvent.LENDER_DECLINED  # the lender gave up by itself: ask the next one
    if hub is HubEvent.LENDER_DECLINED:
        if row.state != RequestState.SENT._value_:
            raise IllegalTransition(row.state, new._value_, what="status")
        closed = "unfilled" if new is not Status.CANCELLED else "cancelled"
        if attempt_extra:
            tx.attempt.update(attempt_extra)
        _decline(session, tx, closed=closed, status=new._value_, note=note, member_id=lender)
        return
    tx.attempt.update(status=new._value_, status_at=tx.now)
    if attempt_extra:
        tx.attempt.update(attempt_extra)
    if note:
        tx.attempt["note"] = note
    first_answer = row.answered_at is None
    if first_answer:
        tx.attempt["answered_at"] = tx.now
    if hub is None:
        if row.state == RequestState.SENT._value_ and first_answer:
            member = _members(session, db).get(lender)
            if member is not None:
                ship_by = workdays.add_working_days(
                    at, member.days_to_respond * SHIP_BY_FACTOR, _calendar(session, db)
                )
                tx.request["due_at"] = db.ts(ship_by)
        tx.event(
            "ill.lender.status",
            row.state,
            row.state,
            lender,
            status=new._value_,
            previous=current._value_,
            **(event_extra or {}),
        )
        return
    if hub is HubEvent.SHIPPED:
        loan_due: dt.datetime | None = None
        if new is Status.LOANED:
            member = _members(session, db).get(lender)
            period = member.loan_period_days if member else 30
            loan_due = due or (at + dt.timedelta(days=period))
            if loan_due <= at:
                raise Invalid(MSG_DUE_PAST, field="due", date=at.date().isoformat())
            tx.request["loan_due_at"] = db.ts(loan_due)
            tx.request["due_at"] = db.ts(_loan_timer_at(at, loan_due))
        else:
            tx.request["due_at"] = db.ts(at + dt.timedelta(days=_policy_days(session, db, at)))
        tx.request["shipped_at"] = tx.now
        tx.attempt["shipped_at"] = tx.now
        tx.move(
            HubEvent.SHIPPED,
            "ill.request.shipped",
            lender,
            status=new._value_,
            position=row.position,
            loan_due=loan_due.isoformat() if loan_due else None,
        )
        _note_load(session, lender, row.borrower_id, left=1, filled=1)
        return
    if hub is HubEvent.COMPLETED:
        tx.attempt["closed_at"] = tx.now
        tx.request.update(due_at=None, closed_at=tx.now)
        tx.move(HubEvent.COMPLETED, "ill.request.completed", lender, status=new._value_)
        return
    if hub is HubEvent.CANCELLED:
        tx.attempt.update(closed="cancelled", closed_at=tx.now)
        tx.request.update(due_at=None, closed_at=tx.now)
        tx.move(HubEvent.CANCELLED, "ill.request.cancelled", lender, status=new._value_)
        return
    raise IllegalTransition(row.state, new._value_, what="status")  # pragma: no cover


def _loan_timer_at(at: dt.datetime, loan_due: dt.datetime) -> dt.datetime:
    """A loan's next timer: the reminder before it is due, or the due moment itself."""
    remind = loan_due - dt.timedelta(days=LOAN_REMINDER_DAYS)
    return remind if remind > at else loan_due


def will_supply(
    session: Work,
    actor: Principal,
    request_id: int,
    *,
    note: str = "",
    at: dt.datetime | None = None,
) -> Result:
    return lender_status(session, actor, request_id, Status.WILL_SUPPLY, note=note, at=at)


def unfilled(
    session: Work,
    actor: Principal,
    request_id: int,
    reason: str,
    *,
    at: dt.datetime | None = None,
) -> Result:
    """The lender cannot supply; ``reason`` is shown to the reader if no one else can."""
    if not reason.strip():
        raise Invalid(MSG_REASON_NEEDED, field="reason")
    return lender_status(session, actor, request_id, Status.UNFILLED, note=reason, at=at)


def conditional(
    session: Work,
    actor: Principal,
    request_id: int,
    condition: str,
    *,
    at: dt.datetime | None = None,
) -> Result:
    """The lender will supply on a condition (a fee, library use only, ...): ExpectToSupply
    until the requesting side accepts or rejects it."""
    condition = _strip(condition, "note")
    if not condition:
        raise Invalid(MSG_REASON_NEEDED, field="condition")
    tx, at = _start(session, actor, request_id, at)
    _check_lender(actor, tx.row)
    if tx.row.state != RequestState.SENT._value_:
        raise IllegalTransition(tx.row.state, "Conditional", what="status")
    _supplier(
        session,
        tx,
        Status.EXPECT_TO_SUPPLY,
        attempt_extra={"condition": condition, "condition_state": "pending"},
        event_extra={"condition": condition},
    )
    return tx.write()


def ship(
    session: Work,
    actor: Principal,
    request_id: int,
    *,
    due: dt.datetime | None = None,
    note: str = "",
    at: dt.datetime | None = None,
) -> Result:
    """The lender supplied: Loaned for a loan, CopyCompleted for a copy."""
    tx, at = _start(session, actor, request_id, at)
    row = tx.row
    _check_lender(actor, row)
    loan = row.service_type == ServiceType.LOAN._value_
    status = Status.LOANED if loan else Status.COPY_COMPLETED
    if row.condition_state == "pending":
        raise IllegalTransition(CONDITIONS_PENDING, status._value_, what="status")
    _supplier(session, tx, status, note=_strip(note, "note"), due=due)
    return tx.write()


def checked_in(
    session: Work, actor: Principal, request_id: int, *, at: dt.datetime | None = None
) -> Result:
    """The lender has its book back: LoanCompleted, the request is completed."""
    return lender_status(session, actor, request_id, Status.LOAN_COMPLETED, at=at)


def answer_renewal(
    session: Work,
    actor: Principal,
    request_id: int,
    *,
    approve: bool,
    due: dt.datetime | None = None,
    note: str = "",
    at: dt.datetime | None = None,
) -> Result:
    """The lender grants a renewal (a new due date, the loan is Loaned again) or refuses it."""
    tx, at = _start(session, actor, request_id, at)
    row, db = tx.row, tx.db
    _check_lender(actor, row)
    if row.renew_requested_at is None or row.state in TERMINAL or row.status is None:
        raise Conflict(MSG_NO_RENEWAL, field="request", id=row.id)
    note = _strip(note, "note")
    if not approve:
        tx.attempt["renew_requested_at"] = None
        tx.event("ill.loan.renewal_refused", row.state, row.state, row.lender_id, reason=note)
        return tx.write()
    # Overdue -> Loaned is the supplier's renewal answer; Loaned stays Loaned.
    current = status_of(row.status)
    new = next_supplier_status(service_type_of(row.service_type), current, Status.LOANED)
    member = _members(session, db).get(row.lender_id or 0)
    period = member.loan_period_days if member else 30
    old_due = db.read_ts(row.loan_due_at) or at
    start = max(old_due, at)
    new_due = due or (start + dt.timedelta(days=period))
    if new_due <= start:
        raise Invalid(MSG_DUE_PAST, field="due", date=start.date().isoformat())
    tx.request.update(loan_due_at=db.ts(new_due), due_at=db.ts(_loan_timer_at(at, new_due)))
    tx.attempt.update(
        status=new._value_,
        status_at=tx.now,
        renew_requested_at=None,
        renewals=(row.renewals or 0) + 1,
    )
    tx.event(
        "ill.loan.renewed",
        row.state,
        row.state,
        row.lender_id,
        status=new._value_,
        previous=current._value_,
        loan_due=new_due.isoformat(),
    )
    return tx.write()


def answer_cancel(
    session: Work,
    actor: Principal,
    request_id: int,
    *,
    approve: bool,
    note: str = "",
    at: dt.datetime | None = None,
) -> Result:
    """The lender agrees to the requester's cancellation (Cancelled) or refuses it."""
    tx, at = _start(session, actor, request_id, at)
    row = tx.row
    _check_lender(actor, row)
    if row.cancel_requested_at is None:
        raise Conflict(MSG_NO_CANCEL, field="request", id=row.id)
    if approve:
        _supplier(session, tx, Status.CANCELLED, note=_strip(note, "note"))
    else:
        tx.attempt["cancel_requested_at"] = None
        tx.event("ill.request.cancel_refused", row.state, row.state, row.lender_id, reason=note)
    return tx.write()


# ----------------------------------------------------------------------------- requester side


def _requester_action(tx: _Tx, action: RequesterAction) -> HubEvent | None:
    row = tx.row
    if row.state in TERMINAL or row.status is None:
        raise IllegalTransition(row.state, action._value_)
    svc = service_type_of(row.service_type)
    outcome = apply_requester_action(svc, status_of(row.status), action)
    if outcome.hub_event is not None:
        # The hub's table must agree too (e.g. no Received after Returned).
        next_request_state(svc, request_state_of(row.state), outcome.hub_event)
    return outcome.hub_event


def received(
    session: Work, actor: Principal, request_id: int, *, at: dt.datetime | None = None
) -> Result:
    """The requesting side has it: a loan is Received (until returned), a copy Completed.

    Readers may confirm a copy they downloaded; a loan arrives at their library's desk.
    """
    tx, at = _start(session, actor, request_id, at)
    row = tx.row
    _check_requester(actor, row, readers=row.service_type == ServiceType.COPY._value_)
    event = _requester_action(tx, RequesterAction.RECEIVED)
    assert event is HubEvent.RECEIVED
    tx.request["received_at"] = tx.now
    if row.service_type == ServiceType.COPY._value_:
        tx.request.update(due_at=None, closed_at=tx.now)
    tx.move(event, "ill.request.received", row.borrower_id, **_peer_ref(row))
    return tx.write()


def returned(
    session: Work, actor: Principal, request_id: int, *, at: dt.datetime | None = None
) -> Result:
    """The requesting library shipped the loan back to the lender (ShippedReturn)."""
    tx, at = _start(session, actor, request_id, at)
    row = tx.row
    _check_requester(actor, row, readers=False)
    event = _requester_action(tx, RequesterAction.SHIPPED_RETURN)
    assert event is HubEvent.RETURNED
    tx.request["due_at"] = None
    tx.move(event, "ill.request.returned", row.borrower_id, **_peer_ref(row))
    return tx.write()


def renew(
    session: Work, actor: Principal, request_id: int, *, at: dt.datetime | None = None
) -> Result:
    """Ask the lender for more time with a loan; it answers with ``answer_renewal``."""
    tx, at = _start(session, actor, request_id, at)
    row = tx.row
    _check_requester(actor, row, readers=True)
    _requester_action(tx, RequesterAction.RENEW)
    if row.renew_requested_at is not None:
        return tx.write()  # asked already: a repeat changes nothing
    tx.attempt["renew_requested_at"] = tx.now
    tx.event("ill.loan.renew_requested", row.state, row.state, row.borrower_id, **_peer_ref(row))
    return tx.write()


def cancel(
    session: Work,
    actor: Principal,
    request_id: int,
    *,
    reason: str = "",
    at: dt.datetime | None = None,
) -> Result:
    """Cancel a request not yet supplied.

    Before any lender acted on it, it is cancelled at once; once a lender answered (or when
    the lender is an outside system), the lender must agree (``answer_cancel``).
    """
    tx, at = _start(session, actor, request_id, at)
    row, db = tx.row, tx.db
    _check_requester(actor, row, readers=True)
    reason = _strip(reason, "note")
    if row.state in (RequestState.SUBMITTED._value_, RequestState.ROUTING._value_):
        tx.request.update(closed_at=tx.now, outcome=reason, due_at=None)
        tx.move(HubEvent.CANCELLED, "ill.request.cancelled", row.borrower_id, reason=reason)
        return tx.write()
    _requester_action(tx, RequesterAction.CANCEL)
    if row.cancel_requested_at is not None:
        return tx.write()
    member = _members(session, db).get(row.lender_id or 0)
    local = member is not None and not member.iso18626_url
    if local and row.status == Status.REQUEST_RECEIVED._value_:
        tx.attempt.update(
            status=Status.CANCELLED._value_,
            status_at=tx.now,
            closed="cancelled",
            closed_at=tx.now,
            cancel_requested_at=tx.now,
        )
        tx.request.update(closed_at=tx.now, outcome=reason, due_at=None)
        tx.move(HubEvent.CANCELLED, "ill.request.cancelled", row.borrower_id, reason=reason)
        _note_load(session, row.lender_id, row.borrower_id, left=1)
        return tx.write()
    tx.attempt["cancel_requested_at"] = tx.now
    tx.request["outcome"] = reason
    tx.event(
        "ill.request.cancel_requested",
        row.state,
        row.state,
        row.borrower_id,
        reason=reason,
        **_peer_ref(row),
    )
    return tx.write()


def decide_conditions(
    session: Work,
    actor: Principal,
    request_id: int,
    *,
    accept: bool,
    at: dt.datetime | None = None,
) -> Result:
    """Accept the lender's condition (it goes on to supply) or reject it (the next lender is
    asked)."""
    tx, at = _start(session, actor, request_id, at)
    row = tx.row
    _check_requester(actor, row, readers=True)
    if row.condition_state != "pending" or row.state != RequestState.SENT._value_:
        raise Conflict(MSG_NO_CONDITION, field="request", id=row.id)
    if accept:
        tx.attempt["condition_state"] = "accepted"
        tx.event("ill.lender.conditions_accepted", row.state, row.state, row.borrower_id)
        return tx.write()
    tx.attempt["condition_state"] = "rejected"
    # The lender's transaction ends (Cancelled) and the hub asks the next one.
    next_supplier_status(ServiceType(row.service_type), Status(row.status or ""), Status.CANCELLED)
    _decline(
        session,
        tx,
        closed="conditions_rejected",
        status=Status.CANCELLED._value_,
        note="",
        member_id=row.borrower_id,
    )
    return tx.write()


# ----------------------------------------------------------------------------- timers


@dataclass
class TimerReport:
    """What one run of a timer did (for the task's log and the tests)."""

    checked: int = 0
    advanced: int = 0
    skipped: int = 0  # taken by another worker, or changed since it was found
    events: dict[str, int] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)

    def add(self, result: Result) -> None:
        self.advanced += 1
        self.results.append(result)
        for name in result.events:
            self.events[name] = self.events.get(name, 0) + 1


def _claim_due(session: Work, states: Sequence[str], now: dt.datetime, batch: int) -> list[int]:
    """Ids of requests in ``states`` whose deadline passed, earliest first, lender by lender:
    each a range scan of the lending-queue index (lender, state, due_at)."""
    db = _Db(session)
    marks = ", ".join("?" for _ in states)
    sql = (
        f"SELECT id FROM ill_requests WHERE lender_id = ? AND state IN ({marks}) "
        "AND due_at <= ? ORDER BY due_at LIMIT ?"
    )
    ts = db.ts(now)
    out: list[int] = []
    for member_id in sorted(_members(session, db)):
        out.extend(int(r[0]) for r in db.all(sql, (member_id, *states, ts, batch)))
    return out


def _run_timer(
    factory: Callable[[], Session],
    states: Sequence[str],
    handle: Callable[[Session, _Tx, dt.datetime], bool],
    now: dt.datetime,
    limit: int,
    batch: int = 200,
) -> TimerReport:
    """Find due requests, then take each in its own transaction: lock it (SKIP LOCKED on
    PostgreSQL: another worker has it), check it is still due in this state, handle it, commit.
    A request changed by someone else in between is left alone (idempotent)."""
    report = TimerReport()
    seen: set[int] = set()
    while report.checked < limit:
        with factory() as session:
            found = _claim_due(session, states, now, batch)
            session.rollback()
        ids = [i for i in found if i not in seen][: limit - report.checked]
        if not ids:
            break
        # One session for the batch; each request is still its own transaction, and sees no
        # object an earlier one loaded (member systems' messages use the ORM).
        with factory() as session:
            for request_id in ids:
                seen.add(request_id)
                report.checked += 1
                if session.identity_map:
                    session.expunge_all()
                try:
                    db = _Db(session)
                    row = _load(db, request_id, skip_locked=True)
                    due = db.read_ts(row.due_at) if row is not None else None
                    if row is None or row.state not in states or due is None or due > now:
                        report.skipped += 1
                        session.rollback()
                        continue
                    tx = _Tx(db, row, SYSTEM_TIMER, now, session=session)
                    if not handle(session, tx, now):
                        report.skipped += 1
                        session.rollback()
                        continue
                    result = tx.write()
                    session.commit()
                    report.add(result)
                except Conflict:
                    session.rollback()
                    report.skipped += 1
    return report


SYSTEM_TIMER = Principal(kind="system", label="system:timers")


def _expire_one(session: Work, tx: _Tx, now: dt.datetime) -> bool:
    _decline(
        session,
        tx,
        closed="expired",
        status=None,
        note=R_EXPIRED,
        member_id=tx.row.lender_id,
    )
    return True


def expire_unanswered(
    factory: Callable[[], Session], *, now: dt.datetime | None = None, limit: int = 10_000
) -> TimerReport:
    """Lenders that did not answer (or ship) in time: the next candidate is asked."""
    return _run_timer(factory, (RequestState.SENT._value_,), _expire_one, _when(now), limit)


def _loan_one(session: Work, tx: _Tx, now: dt.datetime) -> bool:
    row, db = tx.row, tx.db
    if row.service_type != ServiceType.LOAN._value_ or row.loan_due_at is None:
        return False
    loan_due = db.read_ts(row.loan_due_at)
    assert loan_due is not None
    if now < loan_due:
        _queue_notice(db, row, "loan_due_soon", f"loan_due:{row.id}:{loan_due.date()}", now)
        tx.request["due_at"] = db.ts(loan_due)
        tx.event(
            "ill.loan.reminded",
            row.state,
            row.state,
            row.borrower_id,
            loan_due=loan_due.isoformat(),
        )
        return True
    member = _members(session, db).get(row.lender_id or 0)
    local = member is not None and not member.iso18626_url
    week = (now - loan_due).days // OVERDUE_REMINDER_DAYS
    _queue_notice(db, row, "loan_overdue", f"loan_overdue:{row.id}:{week}", now)
    tx.request["due_at"] = db.ts(now + dt.timedelta(days=OVERDUE_REMINDER_DAYS))
    if local and row.status == Status.LOANED._value_:
        # The hub keeps the local lender's status: the loan is now Overdue.
        _supplier(session, tx, Status.OVERDUE, event_extra={"loan_due": loan_due.isoformat()})
    else:
        tx.event(
            "ill.loan.overdue_reminded",
            row.state,
            row.state,
            row.borrower_id,
            loan_due=loan_due.isoformat(),
        )
    return True


def loan_timers(
    factory: Callable[[], Session], *, now: dt.datetime | None = None, limit: int = 10_000
) -> TimerReport:
    """Loans coming due (a reminder to the reader) and overdue (Overdue, reminders weekly)."""
    states = (RequestState.SHIPPED._value_, RequestState.RECEIVED._value_)
    return _run_timer(factory, states, _loan_or_copy_one, _when(now), limit)


def _loan_or_copy_one(session: Work, tx: _Tx, now: dt.datetime) -> bool:
    if tx.row.service_type == ServiceType.COPY._value_:
        return _copy_one(session, tx, now)
    return _loan_one(session, tx, now)


def _copy_one(session: Work, tx: _Tx, now: dt.datetime) -> bool:
    row = tx.row
    if row.state != RequestState.SHIPPED._value_:
        return False
    tx.request.update(due_at=None, closed_at=tx.now)
    tx.move(HubEvent.COMPLETED, "ill.request.completed", row.borrower_id, auto=True)
    return True


def _queue_notice(db: _Db, row: _Row, kind: str, key: str, now: dt.datetime) -> None:
    """A notice for the reader, written once (``dedupe_key``); a job renders and sends it."""
    if row.reader_id is None:
        return
    found = db.one("SELECT email, language FROM users WHERE id = ?", (row.reader_id,))
    email, language = (found or ("", None))[:2]
    params = _json({"request": row.id})
    sql = (
        "INSERT INTO ill_notices (request_id, user_id, member_id, email, kind, language, "
        "dedupe_key, params, subject, body, state, attempts, created_at) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, '', '', 'pending', 0, ?) ON CONFLICT (dedupe_key) DO NOTHING"
    )
    db.run(
        sql,
        (
            row.id,
            row.reader_id,
            row.borrower_id,
            email or "",
            kind,
            language or "zh-CN",
            key,
            params,
            db.ts(now),
        ),
    )


def expire_links(
    factory: Callable[[], Session], *, now: dt.datetime | None = None, limit: int = 10_000
) -> int:
    """Download links past their time: marked expired (once), with an event each."""
    now = _when(now)
    done = 0
    while done < limit:
        with factory() as session:
            db = _Db(session)
            rows = db.all(
                "SELECT l.id, l.request_id, r.borrower_id FROM ill_download_links l "
                "JOIN ill_requests r ON r.id = l.request_id "
                "WHERE l.expires_at <= ? AND l.expired_at IS NULL AND l.revoked_at IS NULL "
                f"ORDER BY l.id LIMIT ?{' FOR UPDATE OF l SKIP LOCKED' if db.pg else ''}",
                (db.ts(now), min(200, limit - done)),
            )
            if not rows:
                break
            marked = []
            for link_id, request_id, borrower_id in rows:
                if (
                    db.run(
                        "UPDATE ill_download_links SET expired_at = ? "
                        "WHERE id = ? AND expired_at IS NULL",
                        (db.ts(now), link_id),
                    )
                    == 1
                ):
                    marked.append(
                        (
                            db.ts(now),
                            SYSTEM_TIMER.label,
                            None,
                            "ill.link.expired",
                            ENTITY,
                            str(request_id),
                            borrower_id,
                            _json({"link": link_id}),
                        )
                    )
            db.many(_SQL_EVENT, marked)
            session.commit()
            done += len(rows)
            if len(rows) < 200:
                break
    return done


ANONYMISE_AFTER = dt.timedelta(days=365)


def anonymise_closed(
    factory: Callable[[], Session],
    *,
    now: dt.datetime | None = None,
    after: dt.timedelta = ANONYMISE_AFTER,
    batch: int = 1000,
) -> int:
    """Requests closed longer than ``after`` forget their reader (the reader, the patron
    reference, the note); the statistics keep their counts, which come from the events."""
    now = _when(now)
    cutoff = now - after
    done = 0
    while True:
        with factory() as session:
            db = _Db(session)
            ids = [
                int(r[0])
                for r in db.all(
                    "SELECT id FROM ill_requests WHERE closed_at < ? AND anonymised_at IS NULL "
                    "ORDER BY id LIMIT ?",
                    (db.ts(cutoff), batch),
                )
            ]
            if not ids:
                return done
            marks = ", ".join("?" for _ in ids)
            # Conditional: a second worker on the same rows changes (and records) nothing.
            count = db.run(
                "UPDATE ill_requests SET reader_id = NULL, patron_ref = NULL, note = '', "
                f"anonymised_at = ? WHERE id IN ({marks}) AND anonymised_at IS NULL",
                (db.ts(now), *ids),
            )
            if count:
                db.run(
                    _SQL_EVENT,
                    (
                        db.ts(now),
                        SYSTEM_TIMER.label,
                        None,
                        "ill.requests.anonymised",
                        "ill_requests",
                        f"{ids[0]}-{ids[-1]}",
                        None,
                        _json({"count": count, "closed_before": cutoff.isoformat()}),
                    ),
                )
            session.commit()
            done += count


# ----------------------------------------------------------------------------- policy, calendar


@dataclass(frozen=True)
class Policy:
    max_pages_per_request: int
    max_book_share_percent: int
    link_valid_days: int
    max_downloads: int
    effective_from: dt.datetime | None = None


# Copyright policy when the consortium office has set none.
DEFAULT_POLICY = Policy(
    max_pages_per_request=50, max_book_share_percent=20, link_valid_days=14, max_downloads=5
)

POLICY_BOUNDS = {
    "max_pages_per_request": (1, 10_000),
    "max_book_share_percent": (1, 100),
    "link_valid_days": (1, 365),
    "max_downloads": (1, 1000),
}


def current_policy(session: Work, at: dt.datetime | None = None) -> Policy:
    """The copyright policy in force at ``at`` (the defaults when none was set)."""
    at = _when(at)
    t = CopyrightPolicy
    row = session.execute(
        select(
            t.max_pages_per_request,
            t.max_book_share_percent,
            t.link_valid_days,
            t.max_downloads,
            t.effective_from,
        )
        .where(t.effective_from <= at)
        .order_by(t.effective_from.desc(), t.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return DEFAULT_POLICY
    return Policy(*row)


def _policy_at(session: Work, db: _Db, at: dt.datetime) -> Policy:
    """The policy in force at ``at`` from the cached list of policies (they are few)."""
    cache = _cache(session)
    now = time.monotonic()
    if cache.policies is None or now - cache.policies_loaded > CALENDAR_TTL:
        rows = db.all(
            "SELECT effective_from, max_pages_per_request, max_book_share_percent, "
            "link_valid_days, max_downloads FROM ill_copyright_policies "
            "ORDER BY effective_from, id"
        )
        cache.policies = [Policy(r[1], r[2], r[3], r[4], db.read_ts(r[0])) for r in rows]
        cache.policies_loaded = now
    found = DEFAULT_POLICY
    for policy in cache.policies:
        assert policy.effective_from is not None
        if policy.effective_from <= at:
            found = policy
    return found


def _policy_days(session: Work, db: _Db, at: dt.datetime) -> int:
    """Days a delivered copy stays open for the reader (the policy's link validity)."""
    return _policy_at(session, db, at).link_valid_days


def set_policy(
    session: Session,
    actor: Principal,
    *,
    effective_from: dt.datetime | None = None,
    note: str = "",
    **values: int,
) -> CopyrightPolicy:
    """A new copyright policy from a date on (the office only); unnamed values are kept."""
    if not _is_office(actor):
        raise Forbidden(MSG_OFFICE_ONLY)
    at = _when(effective_from)
    base = current_policy(session, at)
    merged = {name: getattr(base, name) for name in POLICY_BOUNDS}
    for name, value in values.items():
        if name not in POLICY_BOUNDS:
            raise Invalid(MSG_POLICY_UNKNOWN, field=name, name=name)
        low, high = POLICY_BOUNDS[name]
        if not isinstance(value, int) or not low <= value <= high:
            raise Invalid(MSG_POLICY_VALUE, field=name, name=name, low=low, high=high)
        merged[name] = value
    row = CopyrightPolicy(effective_from=at, set_by=actor.label, note=note.strip(), **merged)
    session.add(row)
    session.flush()
    _cache(session).policies = None
    from consortia.events import service as events

    events.record(session, actor, "ill.policy.set", "ill_policy", row.id, {**merged})
    return row


def set_calendar_day(
    session: Session, actor: Principal, day: dt.date, *, working: bool, name: str = ""
) -> CalendarDay:
    """Mark a day as a holiday (or a worked weekend day) for lenders' deadlines."""
    if not _is_office(actor):
        raise Forbidden(MSG_OFFICE_ONLY)
    row = session.get(CalendarDay, day)
    if row is None:
        row = CalendarDay(day=day, working=working, name=name.strip())
        session.add(row)
    else:
        row.working = working
        row.name = name.strip()
    session.flush()
    _cache(session).calendar = None
    from consortia.events import service as events

    events.record(
        session,
        actor,
        "ill.calendar.set",
        "ill_calendar",
        day.isoformat(),
        {"working": working, "name": name.strip()},
    )
    return row


# ----------------------------------------------------------------------------- reads


def visible_to(actor: Principal, request: IllRequest, asked: Iterable[int] = ()) -> bool:
    """Readers see their own requests; a library sees its readers' requests and those it
    was asked to supply; the office sees all."""
    if _is_office(actor):
        return True
    if actor.role is Role.reader:
        return request.reader_id is not None and request.reader_id == actor.user_id
    if actor.member_id is None:
        return False
    return actor.member_id in (request.borrower_id, request.pickup_id, request.lender_id) or (
        actor.member_id in set(asked)
    )


def get_request(session: Session, actor: Principal, request_id: int) -> IllRequest:
    """A request the actor may see (others are 'unknown' to readers, refused to libraries)."""
    request = session.scalar(
        select(IllRequest)
        .where(IllRequest.id == request_id)
        .execution_options(populate_existing=True)
    )
    if request is None:
        raise NotFound(MSG_UNKNOWN_REQUEST, field="request", id=request_id)
    asked = session.scalars(
        select(LenderAttempt.lender_id).where(
            LenderAttempt.request_id == request_id, LenderAttempt.status.is_not(None)
        )
    ).all()
    if not visible_to(actor, request, asked):
        if actor.role is Role.reader:
            raise NotFound(MSG_UNKNOWN_REQUEST, field="request", id=request_id)
        raise Forbidden(MSG_OTHER_LIBRARY)
    return request


def rota_of(session: Session, request_id: int) -> list[LenderAttempt]:
    return list(
        session.scalars(
            select(LenderAttempt)
            .where(LenderAttempt.request_id == request_id)
            .order_by(LenderAttempt.position)
            .execution_options(populate_existing=True)
        )
    )


def history(session: Session, request_id: int) -> list[Event]:
    return list(
        session.scalars(
            select(Event)
            .where(Event.entity_type == ENTITY, Event.entity_id == str(request_id))
            .order_by(Event.id)
        )
    )


MAX_PAGE = 200


def list_requests(
    session: Session,
    actor: Principal,
    *,
    queue: str | None = None,
    member: str | None = None,
    state: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[IllRequest], int]:
    """A reader's own requests; a library's lending or borrowing queue; anything for the office.

    ``queue``: ``borrowing`` (the library's readers' requests, the default for libraries) or
    ``lending`` (requests where the library is the current lender). ``member`` (the office
    only) chooses the library.
    """
    if queue not in (None, "borrowing", "lending"):
        raise Invalid(MSG_QUEUE, field="queue", choices="borrowing, lending")
    if state is not None and state not in {s.value for s in RequestState}:
        raise Invalid(
            MSG_STATE,
            field="state",
            choices=", ".join(s.value for s in RequestState),
        )
    where: list[Any] = []
    order: list[Any] = [IllRequest.created_at.desc(), IllRequest.id.desc()]
    if actor.role is Role.reader:
        where.append(IllRequest.reader_id == (actor.user_id or -1))
    else:
        member_id = actor.member_id
        if member is not None:
            if not _is_office(actor):
                raise Forbidden(MSG_CHOOSE_LIBRARY)
            member_id = session.scalar(select(Member.id).where(Member.code == member))
            if member_id is None:
                raise NotFound(MSG_UNKNOWN_MEMBER, field="member", code=member)
        if member_id is not None:
            if queue == "lending":
                where.append(IllRequest.lender_id == member_id)
                if state is None:
                    where.append(IllRequest.state.in_(LENDING_QUEUE_STATES))
                order = [IllRequest.due_at.asc(), IllRequest.id]
            else:
                where.append(IllRequest.borrower_id == member_id)
        elif not _is_office(actor):
            raise Forbidden(MSG_NOT_REQUESTER)
    if state is not None:
        where.append(IllRequest.state == state)
    total = int(session.scalar(select(func.count()).select_from(IllRequest).where(*where)) or 0)
    items = list(
        session.scalars(
            select(IllRequest)
            .where(*where)
            .order_by(*order)
            .offset(offset)
            .limit(min(limit, MAX_PAGE))
            .execution_options(populate_existing=True)
        )
    )
    return items, total


def allowed_actions(actor: Principal, request: IllRequest, status: str | None) -> list[str]:
    """The actions the actor may take on the request now (for pages and the API)."""
    out: list[str] = []
    if request.state in TERMINAL:
        return out
    svc = ServiceType(request.service_type)
    lender_side = request.lender_id is not None and (
        actor.role is not Role.reader and actor.may_act_for(request.lender_id)
    )
    if actor.role is Role.reader:
        requester_side = request.reader_id == actor.user_id
    else:
        requester_side = actor.may_act_for(request.borrower_id) or actor.may_act_for(
            request.pickup_id
        )
    current = Status(status) if status else None
    if lender_side and current is not None:
        nexts = SUPPLIER_TRANSITIONS[svc].get(current, frozenset())
        if Status.WILL_SUPPLY in nexts:
            out.append("will-supply")
        if Status.EXPECT_TO_SUPPLY in nexts and request.state == RequestState.SENT.value:
            out.append("conditional")
        if Status.UNFILLED in nexts:
            out.append("unfilled")
        if Status.LOANED in nexts or Status.COPY_COMPLETED in nexts:
            out.append("ship")
        if Status.LOAN_COMPLETED in nexts:
            out.append("checked-in")
    if requester_side and current is not None:
        for action in iso_actions(svc, current):
            name = {
                RequesterAction.RECEIVED: "received",
                RequesterAction.SHIPPED_RETURN: "return",
                RequesterAction.RENEW: "renew",
                RequesterAction.CANCEL: "cancel",
            }.get(action)
            if name is None:
                continue
            if name == "received" and request.state not in ("Shipped",):
                continue
            if name == "return" and request.state not in ("Shipped", "Received"):
                continue
            if actor.role is Role.reader and name == "return":
                continue
            if actor.role is Role.reader and name == "received" and svc is ServiceType.LOAN:
                continue
            out.append(name)
    elif requester_side and request.state in ("Submitted", "Routing"):
        out.append("cancel")
    return out
