"""Loading members' records into the union catalogue.

read → normalise → match keys → cluster → holdings → store. Parsing is CPU work and runs in a
process pool (both cores); one writer applies batches, each batch one transaction, so a crash
loses at most the batch in flight and a re-run picks up where it stopped (loads are idempotent per
member and record id: an unchanged record is recognised by its fingerprint without re-clustering).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, BinaryIO, cast

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
from consortia.errors import Invalid, NotFound
from consortia.events.models import Event
from consortia.members.models import Member
from consortia.search import index as search_index

BATCH_SIZE = 1000  # records per transaction
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
    as_json: dict[str, Any] = field(default_factory=dict)
    merged_alone: dict[str, Any] = field(default_factory=dict)


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
) -> Prepared | Failed:
    """Normalise one read record; a record that cannot be normalised is a failure too."""
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
        items = items_from_record(result.record, result.flavour, mapping)
        merged = matching.merge([(member_code, rec)])
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
        rec.to_dict(),
        merged,
    )


def _prepare_chunk(
    args: tuple[bytes, int, str, str, str, Mapping | None, str],
) -> list[Prepared | Failed]:
    data, base, encoding, flavour, filename, mapping, member_code = args
    return [
        prepare(r, mapping, base, member_code)
        for r in read_records(
            io.BytesIO(data),
            format="iso2709",
            encoding=encoding,
            flavour=flavour,
            filename=filename,
        )
    ]


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
) -> Iterator[Prepared | Failed]:
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
            (data, base, encoding, flavour, source.name, mapping, member_code)
            for data, base in _iso_chunks(fh, on_bytes)
        )
        # spawn, not fork: the web server that may call us runs threads.
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            # A bounded window of chunks in flight keeps memory flat on huge files.
            window: list[Any] = []
            for chunk in chunks:
                window.append(pool.submit(_prepare_chunk, chunk))
                if len(window) >= workers * 4:
                    yield from window.pop(0).result()
            for fut in window:
                yield from fut.result()


# ---------------------------------------------------------------------------- writing


@dataclass
class _NewCluster:
    """A cluster made in the current batch, before it has a database id."""

    records: list[tuple[str, NormalizedRecord, Prepared]] = field(default_factory=list)


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

    def apply(self, batch: list[Prepared | Failed]) -> None:
        # The clusters this batch touches are collected apart and indexed for search in the
        # batch's own transaction.
        earlier, self.summary.touched = self.summary.touched, set()
        self.merged_now: dict[int, dict[str, Any]] = {}  # merged records made in this batch
        try:
            self._apply(batch)
            search_index.reindex_clusters(self.conn, self.summary.touched, self.merged_now)
        finally:
            earlier |= self.summary.touched
            self.summary.touched = earlier

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
            for part in _parts(detach):
                conn.execute(delete(MatchKey).where(MatchKey.source_record_id.in_(part)))
                conn.execute(delete(Holding).where(Holding.source_record_id.in_(part)))
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
        decisions, new_clusters = self._cluster(work)
        # New clusters: one insert with their final figures (their records are all in hand).
        provisional = sorted(new_clusters)
        real_ids: dict[int, int] = {}
        if provisional:
            rows = []
            for pid in provisional:
                recs = new_clusters[pid].records
                first = recs[0][1]
                merged = (
                    recs[0][2].merged_alone
                    if len(recs) == 1
                    else matching.merge([(m, r) for m, r, _ in recs])
                )
                rows.append(
                    {
                        "title": first.title[:1000],
                        "year": first.year,
                        "merged": merged,
                        "record_count": len(recs),
                        "member_count": len({m for m, _, _ in recs}),
                        "updated_at": now,
                    }
                )
            ids = conn.scalars(
                insert(Cluster).returning(Cluster.id, sort_by_parameter_order=True), rows
            )
            real_ids = dict(zip(provisional, ids, strict=True))
            for pid, row in zip(provisional, rows, strict=True):
                self.merged_now[real_ids[pid]] = cast(dict[str, Any], row["merged"])

        def cluster_id(p: Prepared) -> int:
            cid = decisions[id(p)][0]
            return real_ids[cid] if cid < 0 else cid

        new_rows = [self._row(p, cluster_id(p), decisions[id(p)][1], now) for p in to_insert]
        sids: list[int] = []
        if new_rows:
            sids = list(
                conn.scalars(
                    insert(SourceRecord).returning(SourceRecord.id, sort_by_parameter_order=True),
                    new_rows,
                )
            )
        if to_update:
            conn.execute(
                update(SourceRecord)
                .where(SourceRecord.id == bindparam("sid"))
                .values({k: bindparam(k) for k in _UPDATABLE}),
                [
                    {
                        "sid": sid,
                        **self._row(p, cluster_id(p), decisions[id(p)][1], now),
                        "deleted": False,
                    }
                    for sid, p in to_update
                ],
            )
            sids += [sid for sid, _ in to_update]
        pairs = list(zip(sids, work, strict=True))
        key_rows = [
            {"key": k, "source_record_id": sid} for sid, p in pairs for k in dict.fromkeys(p.keys)
        ]
        if key_rows:
            conn.execute(insert(MatchKey), key_rows)
        item_rows = [
            {"member_id": self.member_id, "source_record_id": sid, **it.to_dict()}
            for sid, p in pairs
            for it in p.items
        ]
        if item_rows:
            conn.execute(insert(Holding), item_rows)
        self.summary.added += len(to_insert)
        self.summary.updated += len(to_update)
        for sid, p in pairs:
            cid = decisions[id(p)][0]
            if cid > 0 and cid in self._live and p.normalized is not None:
                self._live[cid].append((sid, self.member_code, p.normalized))
        # Representatives of new clusters: their first record.
        sid_of = {id(p): sid for sid, p in pairs}
        reps = [
            {"cid": real_ids[pid], "rep": sid_of[id(new_clusters[pid].records[0][2])]}
            for pid in provisional
        ]
        if reps:
            conn.execute(
                update(Cluster)
                .where(Cluster.id == bindparam("cid"))
                .values(representative_id=bindparam("rep")),
                reps,
            )
        self.summary.touched.update(real_ids.values())
        return {cid for cid, _ in decisions.values() if cid > 0}

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
            "normalized": p.as_json,
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
        self, work: list[Prepared]
    ) -> tuple[dict[int, tuple[int, matching.MatchDecision | None]], dict[int, _NewCluster]]:
        """Choose a cluster for every record: an existing one (found through its blocking keys,
        in the database or earlier in this batch) or a new one (a negative provisional id)."""
        conn = self.conn
        all_keys = sorted({k for p in work for k in p.keys})
        key_clusters: dict[str, set[int]] = {}
        for part in _parts(all_keys):
            rows = conn.execute(
                select(MatchKey.key, SourceRecord.cluster_id)
                .join(SourceRecord, SourceRecord.id == MatchKey.source_record_id)
                .where(MatchKey.key.in_(part), SourceRecord.cluster_id.is_not(None))
            )
            for key, cid in rows:
                key_clusters.setdefault(key, set()).add(cast(int, cid))
        cand_ids: list[int] = sorted({c for cs in key_clusters.values() for c in cs})
        # Each candidate cluster's live records, its representative first, with their members:
        # a record must agree with the representative and not be vetoed by the others.
        members_of: dict[int, list[tuple[str, NormalizedRecord]]] = {}
        for cpart in _parts(cand_ids):
            crows = conn.execute(
                select(
                    SourceRecord.cluster_id,
                    Member.code,
                    SourceRecord.normalized,
                    (SourceRecord.id == Cluster.representative_id).label("is_rep"),
                    SourceRecord.id,
                )
                .join(Member, Member.id == SourceRecord.member_id)
                .join(Cluster, Cluster.id == SourceRecord.cluster_id)
                .where(SourceRecord.cluster_id.in_(cpart), SourceRecord.deleted.is_(False))
                .order_by(SourceRecord.cluster_id, SourceRecord.id)
            )
            for cid, code, norm, is_rep, sid in crows:
                entry = (code, record_from_dict(norm))
                self._live.setdefault(cast(int, cid), []).append((sid, code, entry[1]))
                bucket = members_of.setdefault(cast(int, cid), [])
                if is_rep:
                    bucket.insert(0, entry)
                else:
                    bucket.append(entry)
        new_clusters: dict[int, _NewCluster] = {}
        out: dict[int, tuple[int, matching.MatchDecision | None]] = {}
        for p in work:
            assert p.normalized is not None
            cands = sorted({c for k in p.keys for c in key_clusters.get(k, ())})
            candidates = [(c, members_of[c]) for c in cands if members_of.get(c)]
            chosen: int | None = None
            decision: matching.MatchDecision | None = None
            if candidates:
                chosen, decision = matching.choose_cluster(
                    p.normalized, candidates, member=self.member_code
                )
            if chosen is None:
                chosen = -(len(new_clusters) + 1)
                new_clusters[chosen] = _NewCluster()
                members_of[chosen] = []
                decision = None
            members_of[chosen].append((self.member_code, p.normalized))
            if chosen < 0:
                new_clusters[chosen].records.append((self.member_code, p.normalized, p))
            # Later records of this batch can join clusters made or joined earlier in it.
            for k in p.keys:
                key_clusters.setdefault(k, set()).add(chosen)
            out[id(p)] = (chosen, decision)
        return out, new_clusters

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
        for u in updates:
            self.merged_now[cast(int, u["cid"])] = cast(dict[str, Any], u["merged"])
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
        self.merged_now = {}
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
        search_index.reindex_clusters(conn, dirty, self.merged_now)


_UPDATABLE = (
    "record_id",
    "flavour",
    "encoding",
    "raw",
    "fingerprint",
    "normalized",
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
) -> LoadSummary:
    """Load files for a member. ``conn_factory`` gives a fresh Connection context (engine.begin
    is not used: each batch commits on its own so acknowledged work survives a crash)."""
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
        done_before = 0
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
                )
                for item in stream:
                    pending.append(item)
                    if len(pending) >= BATCH_SIZE:
                        _commit_batch(conn, writer, pending, state["bytes"], progress, total)
                        pending = []
                if pending:
                    _commit_batch(conn, writer, pending, state["bytes"], progress, total)
                done_before += path.stat().st_size
            if replace:
                writer.finish_replace()
            summary = writer.summary
            summary.clusters_touched = len(summary.touched)
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
    return summary


def _commit_batch(
    conn: Connection,
    writer: Writer,
    pending: list[Prepared | Failed],
    bytes_done: int,
    progress: Callable[[int, int, int], None] | None,
    total: int,
) -> None:
    writer.apply(pending)
    conn.execute(
        update(LoadBatch)
        .where(LoadBatch.id == writer.batch_id)
        .values(bytes_done=bytes_done, counts=writer.summary.as_dict())
    )
    conn.commit()
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
