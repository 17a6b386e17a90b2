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

from sqlalchemy import delete, func, insert, select, update
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

BATCH_SIZE = 1000  # records per transaction
CHUNK_RECORDS = 250  # records per job sent to a worker process
FORMATS = ("auto", "iso2709", "marcxml", "json")
ENCODINGS = ("auto", "utf-8", "marc8", "gbk", "gb18030")
FLAVOURS = ("auto", "marc21", "unimarc")
RECORD_TERMINATOR = b"\x1d"
_CHUNK_READ = 1 << 22


@dataclass
class Prepared:
    """A record made ready for the writer (picklable: it crosses process boundaries)."""

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


ProgressFn = Callable[[int, int], None]  # (bytes done, records done)


# ---------------------------------------------------------------------------- preparing


def prepare(
    result: ReadResult | ReadFailure, mapping: Mapping | None, base_offset: int = 0
) -> Prepared | Failed:
    """Normalise one read record; a record that cannot be normalised is a failure too."""
    if isinstance(result, ReadFailure):
        return Failed(result.raw, base_offset + result.offset, result.reason, result.record_id)
    fingerprint = hashlib.sha1(result.raw).hexdigest()
    if result.deleted:
        return Prepared(
            result.record_id,
            result.raw,
            base_offset + result.offset,
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
    except Exception as exc:  # a record we cannot understand must not stop the load
        return Failed(
            result.raw,
            base_offset + result.offset,
            f"cannot normalise: {type(exc).__name__}: {exc}",
            result.record_id,
        )
    return Prepared(
        result.record_id,
        result.raw,
        base_offset + result.offset,
        result.flavour,
        result.encoding,
        False,
        fingerprint,
        rec,
        keys,
        items,
    )


def _prepare_chunk(
    args: tuple[bytes, int, str, str, str, Mapping | None],
) -> list[Prepared | Failed]:
    data, base, encoding, flavour, filename, mapping = args
    return [
        prepare(r, mapping, base)
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
) -> Iterator[Prepared | Failed]:
    with source.open("rb") as fh:
        fmt = format if format != "auto" else sniff_format(fh.read(64))
        fh.seek(0)
        if fmt != "iso2709" or workers <= 1:
            for res in read_records(
                fh, format=fmt, encoding=encoding, flavour=flavour, filename=source.name
            ):
                yield prepare(res, mapping)
                on_bytes(fh.tell())
            return
        chunks = (
            (data, base, encoding, flavour, source.name, mapping)
            for data, base in _iso_chunks(fh, on_bytes)
        )
        # spawn, not fork: the web server that may call us runs threads.
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for prepared in pool.map(_prepare_chunk, chunks, chunksize=1):
                yield from prepared


# ---------------------------------------------------------------------------- writing


class Writer:
    """Applies prepared records to the database for one member, one batch per transaction."""

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

    # -- one batch --------------------------------------------------------------------
    def apply(self, batch: list[Prepared | Failed]) -> None:
        conn = self.conn
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
        detach: list[int] = []  # live source record ids whose keys/holdings/cluster go
        dirty: set[int] = set()  # clusters to recount and re-merge after this batch
        seen_unchanged: list[int] = []
        for rid, p in latest.items():
            old = existing.get(rid)
            if p.deleted:
                if old is not None and not old.deleted:
                    detach.append(old.id)
                    if old.cluster_id is not None:
                        dirty.add(old.cluster_id)
                    conn.execute(
                        update(SourceRecord)
                        .where(SourceRecord.id == old.id)
                        .values(
                            deleted=True,
                            raw=p.raw,
                            fingerprint=p.fingerprint,
                            batch_id=self.batch_id,
                            updated_at=now,
                            match_rule="",
                            match_score=0.0,
                            match_detail={},
                        )
                    )
                    self.summary.deleted += 1
                elif old is not None:
                    seen_unchanged.append(old.id)
                continue
            if old is None:
                to_insert.append(p)
            elif old.fingerprint == p.fingerprint and not old.deleted:
                self.summary.unchanged += 1
                seen_unchanged.append(old.id)
            else:
                detach.append(old.id)
                if old.cluster_id is not None:
                    dirty.add(old.cluster_id)
                to_update.append((old.id, p))
        if seen_unchanged:
            conn.execute(
                update(SourceRecord)
                .where(SourceRecord.id.in_(seen_unchanged))
                .values(batch_id=self.batch_id)
            )
        if detach:
            conn.execute(delete(MatchKey).where(MatchKey.source_record_id.in_(detach)))
            conn.execute(delete(Holding).where(Holding.source_record_id.in_(detach)))
            conn.execute(
                update(SourceRecord).where(SourceRecord.id.in_(detach)).values(cluster_id=None)
            )
            # Re-elect representatives (or drop emptied clusters) before anything is compared
            # with them: a changed record must not rejoin a cluster through its old self.
            self._refresh(dirty)
        if to_insert or to_update:
            self._store(to_insert, to_update, now, dirty)
        self._refresh(dirty)
        self.summary.touched |= dirty

    def _store(
        self,
        to_insert: list[Prepared],
        to_update: list[tuple[int, Prepared]],
        now: dt.datetime,
        dirty: set[int],
    ) -> None:
        conn = self.conn
        work: list[tuple[int | None, Prepared]] = [(None, p) for p in to_insert]
        work += [(i, p) for i, p in to_update]
        decisions = self._cluster(work, now)
        new_rows = [self._row(p, decisions[id(p)], now) for p in to_insert]
        ids: list[int] = []
        if new_rows:
            ids = list(
                conn.scalars(
                    insert(SourceRecord).returning(SourceRecord.id, sort_by_parameter_order=True),
                    new_rows,
                )
            )
        for sid, p in to_update:
            conn.execute(
                update(SourceRecord)
                .where(SourceRecord.id == sid)
                .values(**self._row(p, decisions[id(p)], now), deleted=False)
            )
            ids.append(sid)
        prepared = to_insert + [p for _, p in to_update]
        pairs = list(zip(ids, prepared, strict=True))
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
        for _sid, p in pairs:
            dirty.add(decisions[id(p)][0])

    def _row(
        self, p: Prepared, decision: tuple[int, matching.MatchDecision | None], now: dt.datetime
    ) -> dict[str, Any]:
        cid, dec = decision
        assert p.normalized is not None
        return {
            "member_id": self.member_id,
            "record_id": p.record_id,
            "flavour": p.flavour,
            "encoding": p.encoding,
            "raw": p.raw,
            "fingerprint": p.fingerprint,
            "normalized": p.normalized.to_dict(),
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

    # -- clustering ---------------------------------------------------------------------
    def _cluster(
        self, work: list[tuple[int | None, Prepared]], now: dt.datetime
    ) -> dict[int, tuple[int, matching.MatchDecision | None]]:
        """Choose a cluster for every record: an existing one (via its blocking keys) or new."""
        conn = self.conn
        all_keys = sorted({k for _, p in work for k in p.keys})
        key_clusters: dict[str, set[int]] = {}
        for i in range(0, len(all_keys), 500):
            part = all_keys[i : i + 500]
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
        for i in range(0, len(cand_ids), 500):
            cpart = cand_ids[i : i + 500]
            crows = conn.execute(
                select(
                    SourceRecord.cluster_id,
                    Member.code,
                    SourceRecord.normalized,
                    (SourceRecord.id == Cluster.representative_id).label("is_rep"),
                )
                .join(Member, Member.id == SourceRecord.member_id)
                .join(Cluster, Cluster.id == SourceRecord.cluster_id)
                .where(SourceRecord.cluster_id.in_(cpart), SourceRecord.deleted.is_(False))
                .order_by(SourceRecord.cluster_id, SourceRecord.id)
            )
            for cid, code, norm, is_rep in crows:
                entry = (code, record_from_dict(norm))
                bucket = members_of.setdefault(int(cid), [])
                if is_rep:
                    bucket.insert(0, entry)
                else:
                    bucket.append(entry)
        out: dict[int, tuple[int, matching.MatchDecision | None]] = {}
        for _sid, p in work:
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
                chosen = int(
                    conn.scalar(
                        insert(Cluster)
                        .returning(Cluster.id)
                        .values(
                            title=p.normalized.title[:1000],
                            year=p.normalized.year,
                            updated_at=now,
                            merged={},
                            record_count=0,
                            member_count=0,
                        )
                    )
                    or 0
                )
                members_of[chosen] = []
                decision = None
            members_of[chosen].append((self.member_code, p.normalized))
            # Later records of this batch can join clusters made or joined earlier in it.
            for k in p.keys:
                key_clusters.setdefault(k, set()).add(chosen)
            out[id(p)] = (chosen, decision)
        return out

    def _refresh(self, dirty: set[int]) -> None:
        """Recount and re-merge clusters whose records changed; drop emptied ones."""
        conn = self.conn
        todo = sorted(dirty)
        now = dt.datetime.now(dt.UTC)
        for i in range(0, len(todo), 500):
            part = todo[i : i + 500]
            members: dict[int, list[tuple[int, str, dict[str, Any]]]] = {c: [] for c in part}
            rows = conn.execute(
                select(
                    SourceRecord.cluster_id, SourceRecord.id, Member.code, SourceRecord.normalized
                )
                .join(Member, Member.id == SourceRecord.member_id)
                .where(SourceRecord.cluster_id.in_(part), SourceRecord.deleted.is_(False))
                .order_by(SourceRecord.id)
            )
            for cid, sid, code, norm in rows:
                members[cid].append((sid, code, norm))
            empty = [c for c, recs in members.items() if not recs]
            if empty:
                conn.execute(delete(Cluster).where(Cluster.id.in_(empty)))
            for cid, recs in members.items():
                if not recs:
                    continue
                normalized = [(code, record_from_dict(norm)) for _, code, norm in recs]
                conn.execute(
                    update(Cluster)
                    .where(Cluster.id == cid)
                    .values(
                        merged=matching.merge(normalized),
                        record_count=len(recs),
                        member_count=len({code for _, code, _ in recs}),
                        title=normalized[0][1].title[:1000],
                        year=normalized[0][1].year,
                        representative_id=recs[0][0],
                        updated_at=now,
                    )
                )

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
        for i in range(0, len(gone), 500):
            part = gone[i : i + 500]
            ids = [r.id for r in part]
            self.summary.touched.update(r.cluster_id for r in part if r.cluster_id is not None)
            conn.execute(delete(MatchKey).where(MatchKey.source_record_id.in_(ids)))
            conn.execute(delete(Holding).where(Holding.source_record_id.in_(ids)))
            conn.execute(
                update(SourceRecord)
                .where(SourceRecord.id.in_(ids))
                .values(deleted=True, cluster_id=None, updated_at=dt.datetime.now(dt.UTC))
            )
        self.summary.deleted += len(gone)
        dirty = {r.cluster_id for r in gone if r.cluster_id is not None}
        self._refresh(dirty)


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
