"""Loading members' records into the union catalogue.

read → normalise → match keys → cluster → holdings → store. Parsing is CPU work and runs in a
process pool (both cores); one writer applies batches, each batch one transaction, so a crash
loses at most the batch in flight and a re-run picks up where it stopped (loads are idempotent per
member and record id: an unchanged record is recognised by its fingerprint without re-clustering).

The search index is not written in the batches: each batch marks the clusters it touched
(``search_pending``) in its own transaction; a small load (``INLINE_INDEX_BYTES``) indexes them
right after each commit, a big one once at its end, documents built in the worker processes
(``search.index.index_pending``). Marks a crash left are indexed by the next load or the
background task (``catalog.tasks.index_pending``), so nothing acknowledged is lost to search.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import io
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from consortia.catalog import matching
from consortia.catalog.holdings import Item, Mapping, items_from_record
from consortia.catalog.marc import ReadFailure, ReadResult, read_records
from consortia.catalog.models import (
    Cluster,
    Holding,
    HoldingsMapping,
    LoadBatch,
    MatchKey,
    QuarantinedRecord,
    SourceRecord,
)
from consortia.catalog.normalize import normalize
from consortia.catalog.record import NormalizedRecord, record_from_dict
from consortia.db import engine_for, placeholder, placeholders
from consortia.errors import Invalid, NotFound
from consortia.events.models import Event
from consortia.members.models import Member
from consortia.search import index as search_index

BATCH_SIZE = 1000  # records per transaction
# A load of at most this many bytes (about 8,000 MARC records) brings the search index up to
# date after every batch, so search sees its records as they commit; a bigger one marks the
# clusters it touches and indexes them once at the end (see search.index.index_pending).
INLINE_INDEX_BYTES = 8 << 20
# SQLite, during a load, on the writer's connection: a page cache that holds the indexes' hot
# pages (the default 2 MB makes every key insert read pages back), and a WAL checkpointed every
# ~64 MB instead of every 4 MB (a page written by many batches is copied back once, not once a
# batch). Both are restored when the load ends.
LOAD_CACHE_KIB = 128 << 10
LOAD_CHECKPOINT_PAGES = 16_000
CHUNK_RECORDS = 250  # records per job sent to a worker process
FORMATS = ("auto", "iso2709", "marcxml", "json")
ENCODINGS = ("auto", "utf-8", "marc8", "gbk", "gb18030")
FLAVOURS = ("auto", "marc21", "unimarc")
RECORD_TERMINATOR = b"\x1d"
_CHUNK_READ = 1 << 22


@dataclass
class Prepared:
    """A record made ready for the writer (picklable: it crosses process boundaries).

    The worker does all per-record CPU work: normalising, keys, items, the JSON form and the
    merged display record the record would have alone in a new cluster."""

    record_id: str
    raw: bytes
    offset: int
    flavour: str
    encoding: str
    deleted: bool
    fingerprint: str
    normalized: NormalizedRecord | None
    keys: list[str]
    items: list[Item]
    normalized_json: bytes = b""  # the record as stored (the JSON column's own serialisation)
    # The merged record it would have alone in a new cluster, as JSON (the writer stores it as
    # it is: no decoding and encoding again in the single writer).
    merged_alone: bytes = b""
    title: str = ""  # what a new cluster of this record alone shows
    year: int | None = None
    features_json: bytes = b""  # matching.features_json, as stored
    # Its features themselves, for a worker's planning (not sent: rebuilt from the JSON if wanted).
    features: matching.MatchFeatures | None = None
    plan: Plan | None = None
    seq: int = -1  # the writer's committed batch count when the worker was given the record

    def record(self) -> NormalizedRecord:
        """The normalised record; a worker sends it as JSON only (decoding is cheaper than
        unpickling the objects, and the writer rarely needs it)."""
        if self.normalized is None:
            self.normalized = record_from_dict(orjson.loads(self.normalized_json))
        return self.normalized


@dataclass
class Plan:
    """A worker's clustering of a new record against the committed catalogue.

    The writer takes it as it is unless something the worker could not see has changed since:
    a candidate cluster changed (its ``updated_at``), or this load added one of the record's keys
    after the worker's snapshot. Then the writer decides again itself."""

    cluster_id: int | None  # None: a new cluster of its own
    decision: matching.MatchDecision | None
    seen: dict[int, dt.datetime]  # candidate clusters and the updated_at the worker saw
    merged: bytes = b""  # the joined cluster's merged record with this one, as JSON
    record_count: int = 0
    member_count: int = 0


@dataclass
class Failed:
    raw: bytes
    offset: int
    reason: str
    record_id: str | None


@dataclass
class LoadSummary:
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    clusters_touched: int = 0
    batch_id: int | None = None
    planned: int = 0  # new records clustered by a worker's plan (the rest by the writer)
    index_cpu: float = 0.0  # CPU seconds the writer spent keeping the search index (benchmarks)
    touched: set[int] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "quarantined": self.quarantined,
            "clusters_touched": self.clusters_touched,
        }


# ---------------------------------------------------------------------------- preparing


def prepare(
    result: ReadResult | ReadFailure,
    mapping: Mapping | None,
    base_offset: int = 0,
    member_code: str = "",
    alone: bool = True,
) -> Prepared | Failed:
    """Normalise one read record; a record that cannot be normalised is a failure too.
    ``alone``: also make the merged record it would have alone in a new cluster (a worker that
    plans makes it afterwards, only for the records that do not join a cluster)."""
    if isinstance(result, ReadFailure):
        return Failed(result.raw, base_offset + result.offset, result.reason, result.record_id)
    fingerprint = hashlib.sha1(result.raw).hexdigest()
    offset = base_offset + result.offset
    if result.deleted:
        return Prepared(
            result.record_id,
            result.raw,
            offset,
            result.flavour,
            result.encoding,
            True,
            fingerprint,
            None,
            [],
            [],
        )
    try:
        rec = normalize(result.record, result.flavour, result.record_id)
        keys = matching.match_keys(rec)
        features = matching.match_features(rec)
        items = items_from_record(result.record, result.flavour, mapping)
        merged = _json(matching.merge([(member_code, rec)])) if alone else b""
        as_json = orjson.dumps(rec.to_dict(), option=orjson.OPT_NON_STR_KEYS)
    except Exception as exc:  # a record we cannot understand must not stop the load
        return Failed(
            result.raw, offset, f"cannot normalise: {type(exc).__name__}: {exc}", result.record_id
        )
    return Prepared(
        result.record_id,
        result.raw,
        offset,
        result.flavour,
        result.encoding,
        False,
        fingerprint,
        rec,
        keys,
        items,
        as_json,
        merged,
        rec.title[:1000],
        rec.year,
        _json(matching.features_json(features)),
        features,
    )


def _json(value: Any) -> bytes:
    """A JSON column's value as the database gets it (consortia.db's serialiser)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _prepare_chunk(
    args: tuple[bytes, int, str, str, str, Mapping | None, str, str | None, int],
) -> list[Prepared | Failed]:
    data, base, encoding, flavour, filename, mapping, member_code, db_url, seq = args
    out = [
        prepare(r, mapping, base, member_code, alone=db_url is None)
        for r in read_records(
            io.BytesIO(data),
            format="iso2709",
            encoding=encoding,
            flavour=flavour,
            filename=filename,
        )
    ]
    if db_url is not None:
        ready = [p for p in out if isinstance(p, Prepared)]
        for p in ready:
            p.seq = seq
        try:
            with engine_for(db_url).connect() as conn:
                plan_records(conn, ready, member_code)
        except Exception:  # planning is an optimisation: the writer can always decide alone
            for p in ready:
                p.plan = None
        for i, item in enumerate(out):
            if not isinstance(item, Prepared):
                continue
            if not item.deleted and (item.plan is None or item.plan.cluster_id is None):
                # Not joining a cluster by plan: the merged record of its own new cluster.
                try:
                    item.merged_alone = _json(matching.merge([(member_code, item.record())]))
                except Exception as exc:  # as in prepare: such a record must not stop the load
                    out[i] = Failed(
                        item.raw,
                        item.offset,
                        f"cannot normalise: {type(exc).__name__}: {exc}",
                        item.record_id,
                    )
            item.normalized = None  # sent as normalized_json
    for item in out:
        if isinstance(item, Prepared):
            item.features = None  # sent as features_json
    return out


def sniff_format(head: bytes) -> str:
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        return "marcxml"
    if stripped.startswith((b"[", b"{")):
        return "json"
    return "iso2709"


def _iso_chunks(fh: BinaryIO, progress: Callable[[int], None]) -> Iterator[tuple[bytes, int]]:
    """Cut an ISO 2709 stream into runs of whole records (at record terminators)."""
    pending = b""
    base = 0
    consumed = 0
    while True:
        block = fh.read(_CHUNK_READ)
        if not block:
            break
        consumed += len(block)
        pending += block
        start = 0
        count = 0
        pos = 0
        while True:
            nxt = pending.find(RECORD_TERMINATOR, pos)
            if nxt < 0:
                break
            pos = nxt + 1
            count += 1
            if count == CHUNK_RECORDS:
                yield pending[start:pos], base + start
                start = pos
                count = 0
        if start:
            base += start
            pending = pending[start:]
        progress(consumed)
    if pending:
        yield pending, base
    progress(consumed)


def prepared_stream(
    source: Path,
    *,
    format: str,
    encoding: str,
    flavour: str,
    mapping: Mapping | None,
    workers: int,
    on_bytes: Callable[[int], None],
    member_code: str = "",
    db_url: str | None = None,
    seq: Callable[[], int] = lambda: 0,
    pool: Executor | None = None,
) -> Iterator[Prepared | Failed]:
    """Prepared records in file order. With ``db_url`` the workers also cluster new records
    against the committed catalogue (``Plan``); ``seq`` tells them how many batches the writer
    had committed when they were given a chunk."""
    with source.open("rb") as fh:
        fmt = format if format != "auto" else sniff_format(fh.read(64))
        fh.seek(0)
        if fmt != "iso2709" or workers <= 1:
            for res in read_records(
                fh, format=fmt, encoding=encoding, flavour=flavour, filename=source.name
            ):
                yield prepare(res, mapping, 0, member_code)
                on_bytes(fh.tell())
            return
        chunks = (
            (data, base, encoding, flavour, source.name, mapping, member_code, db_url, seq())
            for data, base in _iso_chunks(fh, on_bytes)
        )
        with contextlib.ExitStack() as stack:
            if pool is None:
                pool = stack.enter_context(worker_pool(workers))
            # A bounded window of chunks in flight keeps memory flat on huge files.
            window: list[Any] = []
            for chunk in chunks:
                window.append(pool.submit(_prepare_chunk, chunk))
                if len(window) >= workers * 4:
                    yield from window.pop(0).result()
            for fut in window:
                yield from fut.result()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The load's worker processes (started on first use). spawn, not fork: the web server
    that may call us runs threads."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init
    )


def _key_clusters(conn: Connection, keys: list[str]) -> dict[str, set[int]]:
    """The clusters holding live records with each of these blocking keys."""
    out: dict[str, set[int]] = {}
    for part in _parts(keys):
        # Straight to the driver: a record's keys find ~10 rows, and SQLAlchemy's row
        # handling cost more than the look-up.
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT key, cluster_id FROM match_keys "
            f"WHERE key IN ({placeholders(conn, len(part))}) AND cluster_id IS NOT NULL",
            tuple(part),
        ).fetchall()
        for key, cid in rows:
            found = out.get(key)
            if found is None:
                out[key] = {cid}
            else:
                found.add(cid)
    return out


def _cluster_members(
    conn: Connection, cluster_ids: list[int]
) -> tuple[dict[int, list[tuple[int, str, NormalizedRecord]]], dict[int, dt.datetime]]:
    """Each cluster's live records (source id, member code, record), its representative first
    (a record must agree with the representative and not be vetoed by the others), and the
    cluster's ``updated_at``."""
    members: dict[int, list[tuple[int, str, NormalizedRecord]]] = {}
    versions: dict[int, dt.datetime] = {}
    ph = placeholder(conn)
    as_time = Cluster.__table__.c.updated_at.type._cached_result_processor(conn.dialect, None)
    codes: dict[int, str] = {}
    for part in _parts(cluster_ids):
        # Straight to the driver, as in _key_clusters; the JSON decoded here, once.
        rows = conn.exec_driver_sql(
            "SELECT source_records.cluster_id, source_records.member_id, "
            "source_records.normalized, clusters.representative_id, source_records.id, "
            "clusters.updated_at FROM source_records "
            "JOIN clusters ON clusters.id = source_records.cluster_id "
            f"WHERE source_records.cluster_id IN ({placeholders(conn, len(part))}) "
            f"AND source_records.deleted = {ph} "
            "ORDER BY source_records.cluster_id, source_records.id",
            (*part, False),
        ).fetchall()
        missing = {mid for _, mid, *_ in rows if mid not in codes}
        if missing:
            for mid, code in conn.execute(
                select(Member.id, Member.code).where(Member.id.in_(missing))
            ):
                codes[mid] = code
        for cid, mid, norm, rep, sid, at in rows:
            record = record_from_dict(_loaded(norm))
            entry = (sid, codes[mid], record)
            bucket = members.get(cid)
            if bucket is None:
                bucket = members[cid] = []
                versions[cid] = cast(dt.datetime, as_time(at) if as_time is not None else at)
            if sid == rep:
                bucket.insert(0, entry)
            else:
                bucket.append(entry)
    return members, versions


@dataclass
class _Head:
    """What a worker needs of a candidate cluster to plan a join, however big the cluster:
    the features of its representative and of the next ``CHECK_LIMIT`` live records, its stored
    merged record, and its version."""

    records: list[tuple[str | None, matching.MatchFeatures]]
    merged: dict[str, Any]
    updated_at: dt.datetime
    record_count: int


def _cluster_heads(conn: Connection, cluster_ids: list[int]) -> dict[int, _Head]:
    """Each cluster's head (see ``_Head``): its representative first, then its live records by
    id, as ``matching.choose_cluster`` looks at them; features as stored, or derived from the
    record when stored in another form."""
    heads: dict[int, _Head] = {}
    ph = placeholder(conn)
    as_time = Cluster.__table__.c.updated_at.type._cached_result_processor(conn.dialect, None)
    codes: dict[int, str] = {}
    decoded: dict[str, matching.MatchFeatures | None] = {}
    for part in _parts(cluster_ids):
        marks = placeholders(conn, len(part))
        clusters = {
            cid: (_loaded(merged), at)
            for cid, merged, at in conn.exec_driver_sql(
                f"SELECT id, merged, updated_at FROM clusters WHERE id IN ({marks})", tuple(part)
            )
        }
        # The first records by id (and the representative), numbered in the covering index;
        # only those rows are read for their features.
        rows = conn.exec_driver_sql(
            "SELECT h.cluster_id, h.id, h.member_id, h.total, h.id = c.representative_id, "
            "s.features FROM (SELECT cluster_id, id, member_id, "
            "ROW_NUMBER() OVER (PARTITION BY cluster_id ORDER BY id) AS n, "
            "COUNT(*) OVER (PARTITION BY cluster_id) AS total FROM source_records "
            f"WHERE cluster_id IN ({marks}) AND deleted = {ph}) h "
            "JOIN clusters c ON c.id = h.cluster_id "
            "JOIN source_records s ON s.id = h.id "
            f"WHERE h.n <= {ph} OR h.id = c.representative_id "
            "ORDER BY h.cluster_id, h.id",
            (*part, False, matching.CHECK_LIMIT + 1),
        ).fetchall()
        missing = {mid for _, _, mid, *_ in rows if mid not in codes}
        if missing:
            for mid, code in conn.execute(
                select(Member.id, Member.code).where(Member.id.in_(missing))
            ):
                codes[mid] = code
        features: dict[int, matching.MatchFeatures | None] = {}
        for _, sid, _, _, _, stored in rows:
            if isinstance(stored, str):
                # Members' copies of one record mostly fold to the same features: decoded once.
                if stored not in decoded:
                    decoded[stored] = matching.features_from_json(orjson.loads(stored))
                features[sid] = decoded[stored]
            else:
                features[sid] = matching.features_from_json(stored)
        # Records stored before their features were (or with another form of them).
        underived = sorted(sid for sid, f in features.items() if f is None)
        for sids in _parts(underived):
            for sid, norm in conn.exec_driver_sql(
                "SELECT id, normalized FROM source_records "
                f"WHERE id IN ({placeholders(conn, len(sids))})",
                tuple(sids),
            ):
                features[sid] = matching.match_features(record_from_dict(_loaded(norm)))
        for cid, sid, mid, total, is_rep, _ in rows:
            head = heads.get(cid)
            if head is None:
                merged, at = clusters[cid]
                version = cast(dt.datetime, as_time(at) if as_time is not None else at)
                head = heads[cid] = _Head([], merged, version, int(total))
            entry = (codes[mid], cast(matching.MatchFeatures, features[sid]))
            if is_rep:
                head.records.insert(0, entry)
            else:
                head.records.append(entry)
    return heads


def _loaded(value: Any) -> Any:
    """A JSON column's value as read straight from the driver (text on SQLite, decoded on
    PostgreSQL)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _record_of(conn: Connection, member_code: str, record_id: str) -> NormalizedRecord | None:
    """One member's live record, decoded."""
    norm = conn.execute(
        select(SourceRecord.normalized)
        .join(Member, Member.id == SourceRecord.member_id)
        .where(
            Member.code == member_code,
            SourceRecord.record_id == record_id,
            SourceRecord.deleted.is_(False),
        )
    ).scalar()
    return None if norm is None else record_from_dict(norm)


def plan_records(conn: Connection, prepared: list[Prepared], member_code: str) -> None:
    """Cluster new records against the committed catalogue in a worker (reading only), so the
    single writer need not: the candidate clusters' heads, the decision and the merged record
    of the joined cluster, made from its stored merged record (the whole cluster is read only
    when that cannot tell). The writer checks each plan before it takes it."""
    work = [p for p in prepared if not p.deleted and p.normalized is not None]
    if not work:
        return
    key_clusters = _key_clusters(conn, sorted({k for p in work for k in p.keys}))
    heads = _cluster_heads(conn, sorted({c for cs in key_clusters.values() for c in cs}))
    for p in work:
        assert p.normalized is not None
        cands = sorted({c for k in p.keys for c in key_clusters.get(k, ())})
        if any(c not in heads for c in cands):
            continue  # changed under the worker's feet: the writer decides
        features = p.features or matching.match_features(p.normalized)
        chosen, decision = (
            matching.choose_cluster_by_features(
                features,
                [(c, heads[c].records) for c in cands],
                member=member_code,
                holders={c: heads[c].merged.get("members", ()) for c in cands},
            )
            if cands
            else (None, None)
        )
        plan = Plan(chosen, decision, {c: heads[c].updated_at for c in cands})
        if chosen is not None:
            head = heads[chosen]
            merged = matching.merge_into(
                head.merged,
                member_code,
                p.normalized,
                lambda m, rid: _record_of(conn, m, rid),
            )
            if merged is None:
                recs = [(m, r) for _, m, r in _cluster_members(conn, [chosen])[0].get(chosen, [])]
                merged = matching.merge([*recs, (member_code, p.normalized)])
            plan.merged = _json(merged)
            plan.record_count = head.record_count + 1
            plan.member_count = len(merged["members"])
        p.plan = plan


def _worker_init() -> None:
    # Records are trees of small objects that live briefly: the cyclic GC's default thresholds
    # make it walk them over and over for nothing.
    gc.set_threshold(50_000, 50, 50)
    # A load killed outright (kill -9) must not leave its workers waiting for work forever.
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="ingest-parent-watch").start()


# ---------------------------------------------------------------------------- writing


@dataclass
class _NewCluster:
    """A cluster made in the current batch, before it has a database id."""

    records: list[tuple[str, Prepared]] = field(default_factory=list)


class Writer:
    """Applies prepared records to the database for one member, one batch per transaction.

    Everything is set-based: a batch costs a fixed number of statements (executemany), not a
    few per record, which is what makes a million-record load fit in minutes on SQLite."""

    def __init__(
        self,
        conn: Connection,
        member_id: int,
        member_code: str,
        batch_id: int,
        filename: str,
        actor: str,
    ) -> None:
        self.conn = conn
        self.member_id = member_id
        self.member_code = member_code
        self.batch_id = batch_id
        self.filename = filename
        self.actor = actor
        self.summary = LoadSummary(batch_id=batch_id)
        self.seq = 0  # batches committed
        # The blocking keys each recent batch added: a worker's plan made before a batch was
        # committed did not see them (a chunk is planned at most a few batches ahead).
        self._recent_keys: deque[tuple[int, set[str]]] = deque(maxlen=16)
        self._batch_keys: set[str] = set()
        self.last_touched: set[int] = set()  # the clusters the last batch touched

    def apply(self, batch: list[Prepared | Failed]) -> None:
        # The clusters this batch touches are collected apart and marked for the search index
        # in the batch's own transaction (indexed after the commit or at the end of the load).
        earlier, self.summary.touched = self.summary.touched, set()
        self._batch_keys = set()
        try:
            self._apply(batch)
            cpu = time.process_time()
            search_index.mark_pending(self.conn, self.summary.touched)
            self.summary.index_cpu += time.process_time() - cpu
        finally:
            self.last_touched = self.summary.touched
            earlier |= self.summary.touched
            self.summary.touched = earlier
        self._recent_keys.append((self.seq + 1, self._batch_keys))

    def committed(self) -> None:
        self.seq += 1

    def _apply(self, batch: list[Prepared | Failed]) -> None:
        conn = self.conn
        # Live records of the clusters this batch looked at (filled by _cluster, extended by
        # _store): the refresh at the end re-merges them without reading them back.
        self._live: dict[int, list[tuple[int, str, NormalizedRecord]]] = {}
        now = dt.datetime.now(dt.UTC)
        failures = [b for b in batch if isinstance(b, Failed)]
        # The last occurrence of a record id in a batch wins, as it would across batches.
        latest: dict[str, Prepared] = {}
        for b in batch:
            if isinstance(b, Prepared):
                latest.pop(b.record_id, None)
                latest[b.record_id] = b
        self.summary.read += len(batch)
        if conn.dialect.name == "sqlite":
            # Take the write lock now: the ids this batch gives its new rows stay free.
            conn.execute(
                update(LoadBatch)
                .where(LoadBatch.id == self.batch_id)
                .values(bytes_done=LoadBatch.bytes_done)
            )
        if failures:
            conn.execute(
                insert(QuarantinedRecord),
                [
                    {
                        "member_id": self.member_id,
                        "batch_id": self.batch_id,
                        "filename": self.filename,
                        "file_offset": f.offset,
                        "record_id": f.record_id,
                        "reason": f.reason,
                        "raw": f.raw,
                        "created_at": now,
                    }
                    for f in failures
                ],
            )
            self.summary.quarantined += len(failures)
        if not latest:
            return
        existing = {
            row.record_id: row
            for row in conn.execute(
                select(
                    SourceRecord.id,
                    SourceRecord.record_id,
                    SourceRecord.fingerprint,
                    SourceRecord.deleted,
                    SourceRecord.cluster_id,
                ).where(
                    SourceRecord.member_id == self.member_id,
                    SourceRecord.record_id.in_(list(latest)),
                )
            )
        }
        to_insert: list[Prepared] = []
        to_update: list[tuple[int, Prepared]] = []
        deletions: list[tuple[int, Prepared]] = []
        detach: list[int] = []  # live source record ids whose keys/holdings/cluster go
        dirty: set[int] = set()  # existing clusters to recount and re-merge
        seen_unchanged: list[int] = []
        for rid, p in latest.items():
            old = existing.get(rid)
            if p.deleted:
                if old is not None and not old.deleted:
                    deletions.append((old.id, p))
                    detach.append(old.id)
                    if old.cluster_id is not None:
                        dirty.add(old.cluster_id)
                elif old is not None:
                    seen_unchanged.append(old.id)
                continue
            if old is None:
                to_insert.append(p)
            elif old.fingerprint == p.fingerprint and not old.deleted:
                self.summary.unchanged += 1
                seen_unchanged.append(old.id)
            else:
                if not old.deleted:
                    detach.append(old.id)
                if old.cluster_id is not None:
                    dirty.add(old.cluster_id)
                to_update.append((old.id, p))
        if seen_unchanged:
            for part in _parts(seen_unchanged):
                conn.execute(
                    update(SourceRecord)
                    .where(SourceRecord.id.in_(part))
                    .values(batch_id=self.batch_id)
                )
        if deletions:
            conn.execute(
                update(SourceRecord)
                .where(SourceRecord.id == bindparam("sid"))
                .values(
                    deleted=True,
                    raw=bindparam("raw"),
                    fingerprint=bindparam("fp"),
                    batch_id=self.batch_id,
                    updated_at=now,
                    match_rule="",
                    match_score=0.0,
                    match_detail={},
                ),
                [{"sid": sid, "raw": p.raw, "fp": p.fingerprint} for sid, p in deletions],
            )
            self.summary.deleted += len(deletions)
        if detach:
            gone = {sid for sid, _ in deletions}
            for part in _parts(detach):
                conn.execute(delete(MatchKey).where(MatchKey.source_record_id.in_(part)))
                # Items from a holdings CSV outlive a changed record (the member's MARC export
                # carries none); they go with the record or with the member's next CSV.
                conn.execute(
                    delete(Holding).where(
                        Holding.source_record_id.in_(part),
                        (Holding.origin != "csv")
                        | Holding.source_record_id.in_([sid for sid in part if sid in gone]),
                    )
                )
                conn.execute(
                    update(SourceRecord).where(SourceRecord.id.in_(part)).values(cluster_id=None)
                )
            # Re-elect representatives (or drop emptied clusters) before anything is compared
            # with them: a changed record must not rejoin a cluster through its old self.
            self._refresh(dirty)
        if to_insert or to_update:
            dirty |= self._store(to_insert, to_update, now)
        self._refresh(dirty)
        self.summary.touched |= dirty

    def _store(
        self, to_insert: list[Prepared], to_update: list[tuple[int, Prepared]], now: dt.datetime
    ) -> set[int]:
        """Cluster and write new and changed records; returns the existing clusters joined."""
        conn = self.conn
        work = to_insert + [p for _, p in to_update]
        decisions, new_clusters = self._cluster(work, len(to_insert))
        # On SQLite the writer numbers new rows itself (see _insert_ids), so a new cluster is
        # inserted with its representative and needs no update after.
        numbered = conn.dialect.name == "sqlite"
        new_sid: dict[int, int] = {}
        if numbered and to_insert:
            top = int(conn.scalar(select(func.max(SourceRecord.id))) or 0)
            new_sid = {id(p): top + 1 + i for i, p in enumerate(to_insert)}
        # New clusters: one insert with their final figures (their records are all in hand).
        provisional = sorted(new_clusters)
        real_ids: dict[int, int] = {}
        if provisional:
            rows = []
            for pid in provisional:
                recs = new_clusters[pid].records
                first = recs[0][1]
                merged: Any = (
                    orjson.Fragment(first.merged_alone)
                    if len(recs) == 1 and first.merged_alone
                    else matching.merge([(m, r.record()) for m, r in recs])
                )
                rows.append(
                    {
                        "title": first.title,
                        "year": first.year,
                        "merged": merged,
                        "record_count": len(recs),
                        "member_count": len({m for m, _ in recs}),
                        "updated_at": now,
                        "representative_id": new_sid.get(id(first)),
                    }
                )
            ids = self._insert_ids(Cluster, rows)
            real_ids = dict(zip(provisional, ids, strict=True))

        def cluster_id(p: Prepared) -> int:
            cid = decisions[id(p)][0]
            return real_ids[cid] if cid < 0 else cid

        new_rows = [self._row(p, cluster_id(p), decisions[id(p)][1], now) for p in to_insert]
        sids: list[int] = []
        if new_rows and numbered:
            sids = [new_sid[id(p)] for p in to_insert]
            _driver_insert(
                conn, SourceRecord, [{"id": i, **r} for r, i in zip(new_rows, sids, strict=True)]
            )
        elif new_rows:
            sids = self._insert_ids(SourceRecord, new_rows)
        if to_update:
            conn.execute(
                update(SourceRecord)
                .where(SourceRecord.id == bindparam("sid"))
                .values({k: bindparam(k) for k in _UPDATABLE}),
                [
                    {
                        "sid": sid,
                        **self._row(p, cluster_id(p), decisions[id(p)][1], now),
                    }
                    for sid, p in to_update
                ],
            )
            sids += [sid for sid, _ in to_update]
        pairs = list(zip(sids, work, strict=True))
        # Plain rows of strings and integers: straight to the driver (SQLAlchemy's per-row
        # parameter handling cost more than SQLite's insert itself).
        ph = placeholder(conn)
        key_rows = [(k, sid, cluster_id(p)) for sid, p in pairs for k in dict.fromkeys(p.keys)]
        if key_rows:
            conn.exec_driver_sql(
                "INSERT INTO match_keys (key, source_record_id, cluster_id) "
                f"VALUES ({ph}, {ph}, {ph})",
                key_rows,
            )
        item_rows = [
            (
                self.member_id,
                sid,
                it.barcode,
                it.call_number,
                it.location,
                it.status,
                it.origin,
            )
            for sid, p in pairs
            for it in p.items
        ]
        if item_rows:
            conn.exec_driver_sql(
                "INSERT INTO holdings (member_id, source_record_id, barcode, call_number, "
                f"location, status, origin) VALUES ({placeholders(conn, 7)})",
                item_rows,
            )
        self.summary.added += len(to_insert)
        self.summary.updated += len(to_update)
        for sid, p in pairs:
            cid = decisions[id(p)][0]
            if cid > 0 and cid in self._live and not p.deleted:
                self._live[cid].append((sid, self.member_code, p.record()))
        # Representatives of new clusters: their first record.
        sid_of = {id(p): sid for sid, p in pairs}
        reps = [
            {"cid": real_ids[pid], "rep": sid_of[id(new_clusters[pid].records[0][1])]}
            for pid in provisional
            if not numbered or id(new_clusters[pid].records[0][1]) not in new_sid
        ]
        if reps:
            conn.execute(
                update(Cluster)
                .where(Cluster.id == bindparam("cid"))
                .values(representative_id=bindparam("rep")),
                reps,
            )
        self.summary.touched.update(real_ids.values())
        # Existing clusters joined by a worker's plan and by nothing else in this batch take
        # the merged record the worker made; the others are re-merged by _refresh.
        slow = {cid for cid, _, fast in decisions.values() if cid > 0 and not fast}
        plans = {
            cast(int, p.plan.cluster_id): p.plan
            for p in to_insert
            if p.plan is not None and decisions[id(p)][2] and decisions[id(p)][0] > 0
        }
        fast_rows: list[dict[str, Any]] = [
            {
                "cid": cid,
                "merged": orjson.Fragment(plan.merged),
                "record_count": plan.record_count,
                "member_count": plan.member_count,
                "now": now,
            }
            for cid, plan in plans.items()
            if cid not in slow
        ]
        if fast_rows and numbered:
            _driver_update(
                conn,
                Cluster,
                [
                    {
                        "merged": r["merged"],
                        "record_count": r["record_count"],
                        "member_count": r["member_count"],
                        "updated_at": r["now"],
                        "id": r["cid"],
                    }
                    for r in fast_rows
                ],
            )
        elif fast_rows:
            conn.execute(
                update(Cluster)
                .where(Cluster.id == bindparam("cid"))
                .values(
                    merged=bindparam("merged"),
                    record_count=bindparam("record_count"),
                    member_count=bindparam("member_count"),
                    updated_at=bindparam("now"),
                ),
                fast_rows,
            )
        self.summary.touched.update(fr["cid"] for fr in fast_rows)
        return slow

    def _insert_ids(
        self, table: type[Cluster] | type[SourceRecord], rows: list[dict[str, Any]]
    ) -> list[int]:
        """Insert rows, returning their new ids in order.

        On SQLite the writer numbers them itself (the next rowids, as SQLite would): RETURNING
        with a guaranteed order makes SQLAlchemy insert row by row there. The batch holds
        SQLite's write lock by then (see _apply), so nobody else takes those ids."""
        conn = self.conn
        if conn.dialect.name != "sqlite":
            return list(
                conn.scalars(insert(table).returning(table.id, sort_by_parameter_order=True), rows)
            )
        top = int(conn.scalar(select(func.max(table.id))) or 0)
        ids = list(range(top + 1, top + 1 + len(rows)))
        _driver_insert(conn, table, [{"id": i, **r} for r, i in zip(rows, ids, strict=True)])
        return ids

    def _row(
        self, p: Prepared, cid: int, dec: matching.MatchDecision | None, now: dt.datetime
    ) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "record_id": p.record_id,
            "flavour": p.flavour,
            "encoding": p.encoding,
            "raw": p.raw,
            "fingerprint": p.fingerprint,
            "normalized": orjson.Fragment(p.normalized_json),
            "features": orjson.Fragment(p.features_json) if p.features_json else None,
            "deleted": False,
            "cluster_id": cid,
            "match_rule": dec.rule if dec else "new",
            "match_score": float(dec.score) if dec else 1.0,
            "match_detail": {"scores": dec.scores, "reasons": dec.reasons} if dec else {},
            "batch_id": self.batch_id,
            "filename": self.filename,
            "file_offset": p.offset,
            "loaded_at": now,
            "updated_at": now,
        }

    def _cluster(
        self, work: list[Prepared], n_insert: int
    ) -> tuple[dict[int, tuple[int, matching.MatchDecision | None, bool]], dict[int, _NewCluster]]:
        """Choose a cluster for every record: an existing one (found through its blocking keys,
        in the database or earlier in this batch) or a new one (a negative provisional id).

        A new record that a worker already clustered (``Prepared.plan``) keeps the worker's
        choice when nothing it depended on has changed since; the third element of a decision
        says so (the worker also made the joined cluster's merged record)."""
        conn = self.conn
        inserting = {id(p) for p in work[:n_insert]}
        valid = self._valid_plans([p for p in work if p.plan is not None and id(p) in inserting])
        key_clusters: dict[str, set[int]] = {}
        fetched: set[str] = set()
        # In-batch records stand for themselves (Prepared): decoded only if compared with.
        members_of: dict[int, list[tuple[str, NormalizedRecord | Prepared]]] = {}
        added: dict[int, list[tuple[str, NormalizedRecord | Prepared]]] = {}  # joined in this batch

        def fetch(keys: Iterable[str]) -> None:
            want = sorted({k for k in keys if k not in fetched})
            if not want:
                return
            fetched.update(want)
            found = _key_clusters(conn, want)
            for k, cs in found.items():
                key_clusters.setdefault(k, set()).update(cs)
            new_ids = sorted({c for cs in found.values() for c in cs} - set(members_of))
            for cid, recs in _cluster_members(conn, new_ids)[0].items():
                self._live.setdefault(cid, []).extend(recs)
                entries: list[tuple[str, NormalizedRecord | Prepared]] = [
                    (code, r) for _, code, r in recs
                ]
                members_of[cid] = entries + added.get(cid, [])

        fetch(k for p in work if id(p) not in valid for k in p.keys)
        batch_keys: set[str] = set()
        joined: set[int] = set()
        new_clusters: dict[int, _NewCluster] = {}
        out: dict[int, tuple[int, matching.MatchDecision | None, bool]] = {}
        for p in work:
            plan = p.plan if id(p) in valid else None
            if plan is not None and (
                any(k in batch_keys for k in p.keys) or any(c in joined for c in plan.seen)
            ):
                plan = None  # an earlier record of this batch changed what the worker saw
            chosen: int | None
            decision: matching.MatchDecision | None = None
            if plan is not None:
                chosen, decision = plan.cluster_id, plan.decision
            else:
                fetch(p.keys)
                cands = sorted({c for k in p.keys for c in key_clusters.get(k, ())})
                candidates = [
                    (c, [(m, _as_record(r)) for m, r in members_of[c]])
                    for c in cands
                    if members_of.get(c)
                ]
                chosen = None
                if candidates:
                    chosen, decision = matching.choose_cluster(
                        p.record(), candidates, member=self.member_code
                    )
            if chosen is None:
                chosen = -(len(new_clusters) + 1)
                new_clusters[chosen] = _NewCluster()
                members_of[chosen] = []
                decision = None
            entry: tuple[str, NormalizedRecord | Prepared] = (self.member_code, p)
            if chosen in members_of:
                members_of[chosen].append(entry)
            if chosen < 0:
                new_clusters[chosen].records.append((self.member_code, p))
            else:
                joined.add(chosen)
                added.setdefault(chosen, []).append(entry)
            # Later records of this batch can join clusters made or joined earlier in it.
            for k in p.keys:
                batch_keys.add(k)
                key_clusters.setdefault(k, set()).add(chosen)
            out[id(p)] = (chosen, decision, plan is not None)
            self.summary.planned += plan is not None
        self._batch_keys = batch_keys
        return out, new_clusters

    def _valid_plans(self, planned: list[Prepared]) -> set[int]:
        """The records whose worker plan still holds against what other batches did since."""
        if not planned:
            return set()
        # Keys another load adds meanwhile are not in _recent_keys: while another load runs
        # (started within the day; one that crashed stays "running"), the writer decides alone.
        others = self.conn.scalar(
            select(func.count())
            .select_from(LoadBatch)
            .where(
                LoadBatch.status == "running",
                LoadBatch.id != self.batch_id,
                LoadBatch.started_at > dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
            )
        )
        if others:
            return set()
        ok: set[int] = set()
        since: dict[int, set[str] | None] = {}
        retained = {seq: keys for seq, keys in self._recent_keys}
        for p in planned:
            if p.seq not in since:
                later = range(p.seq + 1, self.seq + 1)
                # None: a batch the worker did not see is no longer remembered.
                since[p.seq] = (
                    set().union(*(retained[b] for b in later))
                    if all(b in retained for b in later)
                    else None
                )
            seen_keys = since[p.seq]
            if seen_keys is None or any(k in seen_keys for k in p.keys):
                continue
            ok.add(id(p))
        wanted = sorted({c for p in planned if id(p) in ok for c in cast(Plan, p.plan).seen})
        now: dict[int, dt.datetime] = {}
        for part in _parts(wanted):
            now.update(
                (cast(int, cid), cast(dt.datetime, at))
                for cid, at in self.conn.execute(
                    select(Cluster.id, Cluster.updated_at).where(Cluster.id.in_(part))
                )
            )
        return {
            id(p)
            for p in planned
            if id(p) in ok and all(now.get(c) == at for c, at in cast(Plan, p.plan).seen.items())
        }

    def _refresh(self, dirty: set[int]) -> None:
        """Recount and re-merge existing clusters whose records changed; drop emptied ones."""
        conn = self.conn
        now = dt.datetime.now(dt.UTC)
        live = getattr(self, "_live", {})
        cached = {c: sorted(live[c], key=lambda t: t[0]) for c in dirty if c in live}
        members: dict[int, list[tuple[int, str, NormalizedRecord]]] = dict(cached)
        for part in _parts(sorted(dirty - set(cached))):
            for c in part:
                members[c] = []
            rows = conn.execute(
                select(
                    SourceRecord.cluster_id, SourceRecord.id, Member.code, SourceRecord.normalized
                )
                .join(Member, Member.id == SourceRecord.member_id)
                .where(SourceRecord.cluster_id.in_(part), SourceRecord.deleted.is_(False))
                .order_by(SourceRecord.id)
            )
            for cid, sid, code, norm in rows:
                members[cast(int, cid)].append((sid, code, record_from_dict(norm)))
        empty = [c for c, recs in members.items() if not recs]
        for part in _parts(empty):
            conn.execute(delete(Cluster).where(Cluster.id.in_(part)))
        updates = []
        for cid, recs in members.items():
            if not recs:
                continue
            first = recs[0][2]
            updates.append(
                {
                    "cid": cid,
                    "merged": matching.merge([(code, r) for _, code, r in recs]),
                    "record_count": len(recs),
                    "member_count": len({c for _, c, _ in recs}),
                    "title": first.title[:1000],
                    "year": first.year,
                    "rep": recs[0][0],
                    "now": now,
                }
            )
        if updates:
            conn.execute(
                update(Cluster)
                .where(Cluster.id == bindparam("cid"))
                .values(
                    merged=bindparam("merged"),
                    record_count=bindparam("record_count"),
                    member_count=bindparam("member_count"),
                    title=bindparam("title"),
                    year=bindparam("year"),
                    representative_id=bindparam("rep"),
                    updated_at=bindparam("now"),
                ),
                updates,
            )
        for c in dirty:
            live.pop(c, None)

    def finish_replace(self) -> None:
        """--replace: the member's live records absent from this full load are deleted."""
        conn = self.conn
        gone = list(
            conn.execute(
                select(SourceRecord.id, SourceRecord.cluster_id).where(
                    SourceRecord.member_id == self.member_id,
                    SourceRecord.deleted.is_(False),
                    (SourceRecord.batch_id != self.batch_id) | SourceRecord.batch_id.is_(None),
                )
            )
        )
        dirty = {cast(int, r.cluster_id) for r in gone if r.cluster_id is not None}
        for part in _parts([r.id for r in gone]):
            conn.execute(delete(MatchKey).where(MatchKey.source_record_id.in_(part)))
            conn.execute(delete(Holding).where(Holding.source_record_id.in_(part)))
            conn.execute(
                update(SourceRecord)
                .where(SourceRecord.id.in_(part))
                .values(deleted=True, cluster_id=None, updated_at=dt.datetime.now(dt.UTC))
            )
        self.summary.deleted += len(gone)
        self._refresh(dirty)
        self.summary.touched |= dirty
        search_index.mark_pending(conn, dirty)


_UPDATABLE = (
    "record_id",
    "flavour",
    "encoding",
    "raw",
    "fingerprint",
    "normalized",
    "features",
    "cluster_id",
    "match_rule",
    "match_score",
    "match_detail",
    "batch_id",
    "filename",
    "file_offset",
    "updated_at",
    "deleted",
)


def _driver_rows(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as the driver takes them, each value through its column type's bind processing
    (the same strings SQLAlchemy would send); a value repeated from the row before (a batch's
    timestamp) is processed once."""
    cols = list(rows[0])
    columns = table.__table__.c
    procs = [columns[c].type._cached_bind_processor(conn.dialect) for c in cols]
    last: list[tuple[Any, Any]] = [(None, None)] * len(cols)
    out = []
    for r in rows:
        values = []
        for i, c in enumerate(cols):
            v = r[c]
            f = procs[i]
            if f is not None and v is not None:
                before, after = last[i]
                if before is not v:
                    after = f(v)
                    last[i] = (v, after)
                v = after
            values.append(v)
        out.append(tuple(values))
    return out


def _driver_insert(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """executemany straight to the driver: SQLAlchemy's per-row parameter handling cost more
    than SQLite's insert itself. Rows all have the same keys."""
    if not rows:
        return
    cols = list(rows[0])
    conn.exec_driver_sql(
        f"INSERT INTO {table.__tablename__} ({', '.join(cols)}) "
        f"VALUES ({placeholders(conn, len(cols))})",
        _driver_rows(conn, table, rows),
    )


def _driver_update(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """UPDATE by id straight to the driver; each row's last key is ``id``."""
    if not rows:
        return
    ph = placeholder(conn)
    cols = list(rows[0])[:-1]
    conn.exec_driver_sql(
        f"UPDATE {table.__tablename__} SET {', '.join(f'{c} = {ph}' for c in cols)} "
        f"WHERE id = {ph}",
        _driver_rows(conn, table, rows),
    )


def _as_record(r: NormalizedRecord | Prepared) -> NormalizedRecord:
    return r.record() if isinstance(r, Prepared) else r


def _parts(values: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


# ---------------------------------------------------------------------------- the load


def _check_options(format: str, encoding: str, flavour: str) -> None:
    if format not in FORMATS:
        raise Invalid("format: one of {choices}", field="format", choices=", ".join(FORMATS))
    if encoding not in ENCODINGS:
        raise Invalid("encoding: one of {choices}", field="encoding", choices=", ".join(ENCODINGS))
    if flavour not in FLAVOURS:
        raise Invalid("flavour: one of {choices}", field="flavour", choices=", ".join(FLAVOURS))


def _member(conn: Connection, code: str) -> tuple[int, Mapping | None]:
    member_id = conn.scalar(select(Member.id).where(Member.code == code))
    if member_id is None:
        raise NotFound("Unknown member code: {code}", field="member", code=code)
    m = conn.execute(select(HoldingsMapping).where(HoldingsMapping.member_id == member_id)).first()
    mapping = None
    if m is not None:
        mapping = Mapping(m.tag, m.barcode, m.call_number, m.location, m.status)
    return int(member_id), mapping


def create_batch(
    conn: Connection,
    member_code: str,
    filename: str,
    *,
    format: str = "auto",
    encoding: str = "auto",
    replace: bool = False,
    actor: str = "cli",
    bytes_total: int = 0,
) -> int:
    member_id, _ = _member(conn, member_code)
    return int(
        conn.scalar(
            insert(LoadBatch)
            .returning(LoadBatch.id)
            .values(
                member_id=member_id,
                filename=filename,
                format=format,
                encoding=encoding,
                replace=replace,
                actor=actor,
                status="queued",
                counts={},
                bytes_total=bytes_total,
            )
        )
        or 0
    )


def ingest_files(
    conn_factory: Callable[[], Any],
    member_code: str,
    paths: Iterable[Path],
    *,
    format: str = "auto",
    encoding: str = "auto",
    flavour: str = "auto",
    replace: bool = False,
    actor: str = "cli",
    workers: int | None = None,
    batch_id: int | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    defer_index: bool = False,
    indexing: Callable[[], None] | None = None,
) -> LoadSummary:
    """Load files for a member. ``conn_factory`` gives a fresh Connection context (engine.begin
    is not used: each batch commits on its own so acknowledged work survives a crash).

    The search index: a load of at most INLINE_INDEX_BYTES is indexed after every batch, a
    bigger one at its end (with everything else still pending); ``defer_index`` leaves it to
    the background task or the next load (a bulk build of several members' files, one load
    after another: each cluster is then indexed once, not once per load). ``indexing`` is
    called when that end-of-load index step starts (it takes tens of seconds for a big load,
    after the last record: a progress bar says so)."""
    _check_options(format, encoding, flavour)
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise Invalid("file not found: {path}", field="files", path=str(p))
    total = sum(p.stat().st_size for p in paths)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    with conn_factory() as conn:
        member_id, mapping = _member(conn, member_code)
        if batch_id is None:
            batch_id = create_batch(
                conn,
                member_code,
                ", ".join(p.name for p in paths),
                format=format,
                encoding=encoding,
                replace=replace,
                actor=actor,
                bytes_total=total,
            )
        conn.execute(
            update(LoadBatch)
            .where(LoadBatch.id == batch_id)
            .values(status="running", started_at=dt.datetime.now(dt.UTC), bytes_total=total)
        )
        conn.commit()
        writer = Writer(conn, member_id, member_code, batch_id, "", actor)
        db_url = conn.engine.url.render_as_string(hide_password=False)
        if conn.dialect.name == "sqlite" and conn.engine.url.database in (None, "", ":memory:"):
            db_url = None  # the workers cannot see a private in-memory database
        inline = total <= INLINE_INDEX_BYTES and not defer_index
        done_before = 0
        gc_was = gc.get_threshold()
        # The writer keeps few long-lived objects but makes many short-lived trees (records,
        # rows): with the default thresholds the cyclic GC walks them over and over.
        gc.freeze()
        gc.set_threshold(50_000, 50, 50)
        stack = contextlib.ExitStack()
        pool = stack.enter_context(worker_pool(workers)) if workers > 1 else None
        if conn.dialect.name == "sqlite":
            stack.enter_context(_sqlite_load_settings(conn))
        try:
            for path in paths:
                writer.filename = path.name
                state = {"bytes": 0}

                def on_bytes(n: int, _base: int = done_before, _s: dict[str, int] = state) -> None:
                    _s["bytes"] = _base + n

                pending: list[Prepared | Failed] = []
                stream = prepared_stream(
                    path,
                    format=format,
                    encoding=encoding,
                    flavour=flavour,
                    mapping=mapping,
                    workers=workers,
                    on_bytes=on_bytes,
                    member_code=member_code,
                    db_url=db_url,
                    seq=lambda: writer.seq,
                    pool=pool,
                )
                for item in stream:
                    pending.append(item)
                    if len(pending) >= BATCH_SIZE:
                        _commit_batch(
                            conn, writer, pending, state["bytes"], progress, total, inline
                        )
                        pending = []
                if pending:
                    _commit_batch(conn, writer, pending, state["bytes"], progress, total, inline)
                done_before += path.stat().st_size
            if replace:
                writer.finish_replace()
                conn.commit()
            summary = writer.summary
            summary.clusters_touched = len(summary.touched)
            if not defer_index:
                # Everything still pending (this load's clusters, or a crashed load's):
                # documents built in the worker processes while this process writes them.
                if indexing is not None and not inline:
                    indexing()
                cpu = time.process_time()
                search_index.index_pending(
                    conn, pool=pool if db_url is not None else None, db_url=db_url
                )
                summary.index_cpu += time.process_time() - cpu
            conn.execute(
                update(LoadBatch)
                .where(LoadBatch.id == batch_id)
                .values(
                    status="done",
                    counts=summary.as_dict(),
                    bytes_done=total,
                    finished_at=dt.datetime.now(dt.UTC),
                )
            )
            conn.execute(
                insert(Event).values(
                    at=dt.datetime.now(dt.UTC),
                    actor=actor,
                    action="catalog.load_finished",
                    entity_type="load_batch",
                    entity_id=str(batch_id),
                    member_id=member_id,
                    payload={"member": member_code, **summary.as_dict()},
                )
            )
            conn.commit()
        except BaseException as exc:
            conn.rollback()
            conn.execute(
                update(LoadBatch)
                .where(LoadBatch.id == batch_id)
                .values(
                    status="failed",
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                    counts=writer.summary.as_dict(),
                    finished_at=dt.datetime.now(dt.UTC),
                )
            )
            conn.commit()
            raise
        finally:
            stack.close()
            gc.set_threshold(*gc_was)
            gc.unfreeze()
    return summary


@contextlib.contextmanager
def _sqlite_load_settings(conn: Connection) -> Iterator[None]:
    """LOAD_CACHE_KIB and LOAD_CHECKPOINT_PAGES for the duration of a load."""
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    checkpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{int(LOAD_CACHE_KIB)}")
    conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {int(LOAD_CHECKPOINT_PAGES)}")
    try:
        yield
    finally:
        conn.rollback()
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache or -2000)}")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {int(checkpoint or 1000)}")


def _commit_batch(
    conn: Connection,
    writer: Writer,
    pending: list[Prepared | Failed],
    bytes_done: int,
    progress: Callable[[int, int, int], None] | None,
    total: int,
    inline: bool = True,
) -> None:
    writer.apply(pending)
    conn.execute(
        update(LoadBatch)
        .where(LoadBatch.id == writer.batch_id)
        .values(bytes_done=bytes_done, counts=writer.summary.as_dict())
    )
    conn.commit()
    writer.committed()
    if inline:
        cpu = time.process_time()
        search_index.index_pending(conn, ids=writer.last_touched)
        writer.summary.index_cpu += time.process_time() - cpu
    if progress:
        progress(bytes_done, total, writer.summary.read)


def catalog_totals(conn: Connection) -> dict[str, Any]:
    """Totals for `consortia catalog stats`: records, clusters, holdings, quarantined."""
    rec = dict(
        conn.execute(
            select(SourceRecord.member_id, func.count())
            .where(SourceRecord.deleted.is_(False))
            .group_by(SourceRecord.member_id)
        ).all()
    )
    hold = dict(
        conn.execute(select(Holding.member_id, func.count()).group_by(Holding.member_id)).all()
    )
    quar = dict(
        conn.execute(
            select(QuarantinedRecord.member_id, func.count())
            .where(QuarantinedRecord.resolved_at.is_(None))
            .group_by(QuarantinedRecord.member_id)
        ).all()
    )
    clus = dict(
        conn.execute(
            select(SourceRecord.member_id, func.count(func.distinct(SourceRecord.cluster_id)))
            .where(SourceRecord.deleted.is_(False))
            .group_by(SourceRecord.member_id)
        ).all()
    )
    members = []
    for mid, code in conn.execute(select(Member.id, Member.code).order_by(Member.code)):
        if mid in rec or mid in quar:
            members.append(
                {
                    "member": code,
                    "records": rec.get(mid, 0),
                    "clusters": clus.get(mid, 0),
                    "holdings": hold.get(mid, 0),
                    "quarantined": quar.get(mid, 0),
                }
            )
    return {
        "records": sum(rec.values()),
        "clusters": int(conn.scalar(select(func.count()).select_from(Cluster)) or 0),
        "holdings": sum(hold.values()),
        "quarantined": sum(quar.values()),
        "members": members,
    }
