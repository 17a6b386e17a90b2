"""The union catalogue's service: loads, look-ups, quarantine and the data-quality report.

The only code that writes the catalogue's tables (with ingest.py, which it drives).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal
from consortia.catalog import ingest
from consortia.catalog.holdings import read_holdings_csv
from consortia.catalog.models import (
    Cluster,
    Holding,
    HoldingsMapping,
    LoadBatch,
    QuarantinedRecord,
    SourceRecord,
)
from consortia.db import get_engine, session_scope
from consortia.errors import Forbidden, Invalid, NotFound, RowErrors
from consortia.events import service as events
from consortia.members.models import Member, Region


@contextmanager
def _connection() -> Iterator[Connection]:
    with get_engine().connect() as conn:
        yield conn


def load_files(
    actor: Principal,
    member_code: str,
    paths: list[Path],
    *,
    format: str = "auto",
    encoding: str = "auto",
    flavour: str = "auto",
    replace: bool = False,
    workers: int | None = None,
    batch_id: int | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    defer_index: bool = False,
    indexing: Callable[[], None] | None = None,
) -> ingest.LoadSummary:
    """Load files for a member (each batch commits on its own: a crash keeps what was done).
    ``defer_index``: leave the search index to ``index_pending``; ``indexing``: told when the
    end-of-load index step starts (see ``ingest.ingest_files``)."""
    return ingest.ingest_files(
        _connection,
        member_code,
        paths,
        format=format,
        encoding=encoding,
        flavour=flavour,
        replace=replace,
        actor=actor.label,
        workers=workers,
        batch_id=batch_id,
        progress=progress,
        defer_index=defer_index,
        indexing=indexing,
    )


def queue_upload(
    session: Session,
    actor: Principal,
    member_code: str,
    filename: str,
    data: bytes,
    *,
    format: str = "auto",
    encoding: str = "auto",
    replace: bool = False,
    upload_dir: Path,
) -> LoadBatch:
    """Keep an uploaded file and create its batch; a background job loads it."""
    ingest._check_options(format, encoding, "auto")
    member = session.scalar(select(Member).where(Member.code == member_code))
    if member is None:
        raise NotFound("Unknown member code: {code}", field="member", code=member_code)
    if not actor.may_act_for(member.id):
        raise Forbidden("You may load records only for your own library")
    if not data:
        raise Invalid("file: the upload is empty", field="file")
    batch = LoadBatch(
        member_id=member.id,
        filename=Path(filename).name[:500] or "upload",
        format=format,
        encoding=encoding,
        replace=replace,
        actor=actor.label,
        status="queued",
        counts={},
        bytes_total=len(data),
    )
    session.add(batch)
    session.flush()
    upload_dir.mkdir(parents=True, exist_ok=True)
    (upload_dir / f"batch-{batch.id}.dat").write_bytes(data)
    events.record(
        session,
        actor,
        "catalog.upload_queued",
        "load_batch",
        batch.id,
        {"member": member_code, "filename": batch.filename, "bytes": len(data)},
        member_id=member.id,
    )
    return batch


def run_batch(batch_id: int, upload_dir: Path) -> ingest.LoadSummary:
    """Load a queued upload (the background job's body). Safe to run again after a crash."""
    with session_scope() as session:
        row = session.execute(
            select(LoadBatch, Member.code)
            .join(Member, Member.id == LoadBatch.member_id)
            .where(LoadBatch.id == batch_id)
        ).first()
    if row is None:
        raise NotFound("Unknown load batch: {id}", field="batch", id=batch_id)
    batch, code = row
    path = upload_dir / f"batch-{batch_id}.dat"
    return ingest.ingest_files(
        _connection,
        code,
        [path],
        format=batch.format,
        encoding=batch.encoding,
        replace=batch.replace,
        actor=batch.actor,
        workers=1,
        batch_id=batch_id,
    )


def index_pending(*, quiet_seconds: float = 0.0, workers: int = 1) -> int:
    """Bring the search documents of the clusters still marked pending up to date (what a
    crashed or killed load left, or loads with ``defer_index``); returns how many. With
    ``quiet_seconds``: only when no mark is younger than that (no load is marking now). With
    ``workers`` > 1 the documents are built in that many processes."""
    from consortia.search import index as search_index

    with _connection() as conn:
        count, newest = search_index.pending_state(conn)
        conn.commit()
        if not count:
            return 0
        if quiet_seconds and newest is not None and time.time_ns() - newest < quiet_seconds * 1e9:
            return 0
        url = conn.engine.url
        if workers <= 1 or (
            url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
        ):
            return search_index.index_pending(conn)
        with ingest.worker_pool(workers) as pool:
            return search_index.index_pending(
                conn, pool=pool, db_url=url.render_as_string(hide_password=False)
            )


# ---------------------------------------------------------------------------- look-ups


def stats(session: Session) -> dict[str, Any]:
    return ingest.catalog_totals(session.connection())


def _member_id(session: Session, code: str) -> int:
    mid = session.scalar(select(Member.id).where(Member.code == code))
    if mid is None:
        raise NotFound("Unknown member code: {code}", field="member", code=code)
    return int(mid)


def cluster_of(session: Session, member_code: str, record_ids: list[str]) -> list[dict[str, Any]]:
    """For each id: its cluster, the cluster's records and the rule that put it there."""
    member_id = _member_id(session, member_code)
    rows = {
        r.record_id: r
        for r in session.execute(
            select(
                SourceRecord.record_id,
                SourceRecord.cluster_id,
                SourceRecord.match_rule,
                SourceRecord.match_score,
                SourceRecord.deleted,
            ).where(SourceRecord.member_id == member_id, SourceRecord.record_id.in_(record_ids))
        )
    }
    cluster_ids = {r.cluster_id for r in rows.values() if r.cluster_id is not None}
    records: dict[int, list[dict[str, str]]] = {c: [] for c in cluster_ids}
    if cluster_ids:
        for cid, code, rid in session.execute(
            select(SourceRecord.cluster_id, Member.code, SourceRecord.record_id)
            .join(Member, Member.id == SourceRecord.member_id)
            .where(SourceRecord.cluster_id.in_(cluster_ids), SourceRecord.deleted.is_(False))
            .order_by(Member.code, SourceRecord.record_id)
        ):
            records[cast(int, cid)].append({"member": code, "id": rid})
    out = []
    for rid in record_ids:
        r = rows.get(rid)
        cid = r.cluster_id if r is not None and not r.deleted else None
        out.append(
            {
                "member": member_code,
                "id": rid,
                "cluster": cid,
                "records": records.get(cid, []) if cid is not None else [],
                "rule": r.match_rule if r is not None and cid is not None else None,
                "score": r.match_score if r is not None and cid is not None else None,
            }
        )
    return out


def get_cluster(session: Session, cluster_id: int) -> dict[str, Any]:
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        raise NotFound("Unknown cluster: {id}", field="cluster", id=cluster_id)
    sources = []
    for sr, code, name_zh, name_en in session.execute(
        select(SourceRecord, Member.code, Member.name_zh, Member.name_en)
        .join(Member, Member.id == SourceRecord.member_id)
        .where(SourceRecord.cluster_id == cluster_id, SourceRecord.deleted.is_(False))
        .order_by(Member.code, SourceRecord.record_id)
    ):
        sources.append(
            {
                "source_id": sr.id,
                "member": code,
                "member_name_zh": name_zh,
                "member_name_en": name_en,
                "id": sr.record_id,
                "flavour": sr.flavour,
                "encoding": sr.encoding,
                "rule": sr.match_rule,
                "score": sr.match_score,
                "detail": sr.match_detail,
                "filename": sr.filename,
                "loaded_at": sr.loaded_at.isoformat(),
                "normalized": sr.normalized,
            }
        )
    holdings = []
    for h, code, name_zh, name_en, region, status in session.execute(
        select(Holding, Member.code, Member.name_zh, Member.name_en, Region.code, Member.status)
        .join(SourceRecord, SourceRecord.id == Holding.source_record_id)
        .join(Member, Member.id == Holding.member_id)
        .join(Region, Region.id == Member.region_id)
        .where(SourceRecord.cluster_id == cluster_id, SourceRecord.deleted.is_(False))
        .order_by(Member.code, Holding.call_number)
    ):
        holdings.append(
            {
                "member": code,
                "member_name_zh": name_zh,
                "member_name_en": name_en,
                "region": region,
                "member_status": status.value,
                "barcode": h.barcode,
                "call_number": h.call_number,
                "location": h.location,
                "status": h.status,
            }
        )
    return {
        "id": cluster.id,
        "title": cluster.title,
        "year": cluster.year,
        "merged": cluster.merged,
        "record_count": cluster.record_count,
        "member_count": cluster.member_count,
        "sources": sources,
        "holdings": holdings,
    }


def source_record(session: Session, member_code: str, record_id: str) -> SourceRecord:
    member_id = _member_id(session, member_code)
    sr = session.scalar(
        select(SourceRecord).where(
            SourceRecord.member_id == member_id, SourceRecord.record_id == record_id
        )
    )
    if sr is None:
        raise NotFound(
            "Unknown record {id} of {member}", field="id", id=record_id, member=member_code
        )
    return sr


# ---------------------------------------------------------------------------- quality


def quarantine(
    session: Session,
    member_code: str | None,
    *,
    include_resolved: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    stmt = select(QuarantinedRecord, Member.code).join(
        Member, Member.id == QuarantinedRecord.member_id
    )
    if member_code:
        stmt = stmt.where(QuarantinedRecord.member_id == _member_id(session, member_code))
    if not include_resolved:
        stmt = stmt.where(QuarantinedRecord.resolved_at.is_(None))
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    items = [
        {
            "id": q.id,
            "member": code,
            "filename": q.filename,
            "offset": q.file_offset,
            "record_id": q.record_id,
            "reason": q.reason,
            "bytes": len(q.raw),
            "created_at": q.created_at.isoformat(),
            "resolved": q.resolved_at is not None,
        }
        for q, code in session.execute(
            stmt.order_by(QuarantinedRecord.id).offset(offset).limit(limit)
        )
    ]
    return {"total": total, "items": items}


def quarantined(session: Session, quarantine_id: int) -> QuarantinedRecord:
    q = session.get(QuarantinedRecord, quarantine_id)
    if q is None:
        raise NotFound("Unknown quarantined record: {id}", field="id", id=quarantine_id)
    return q


def resubmit(
    actor: Principal,
    quarantine_id: int,
    data: bytes | None = None,
    *,
    encoding: str = "auto",
    format: str = "auto",
) -> dict[str, Any]:
    """Load a quarantined record again — as it was (e.g. with another encoding) or corrected.

    When it loads, the quarantine entry is marked resolved; when it fails again, it stays and
    the new failure is quarantined beside it with its reason.
    """
    with session_scope() as session:
        row = session.execute(
            select(QuarantinedRecord, Member.code)
            .join(Member, Member.id == QuarantinedRecord.member_id)
            .where(QuarantinedRecord.id == quarantine_id)
        ).first()
    if row is None:
        raise NotFound("Unknown quarantined record: {id}", field="id", id=quarantine_id)
    q, code = row
    if not actor.may_act_for(q.member_id):
        raise Forbidden("You may resubmit only your own library's records")
    payload = data if data is not None else q.raw
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (Path(q.filename).name or "resubmitted")
        path.write_bytes(payload)
        summary = ingest.ingest_files(
            _connection,
            code,
            [path],
            format=format,
            encoding=encoding,
            actor=actor.label,
            workers=1,
        )
    loaded = (
        summary.quarantined == 0
        and (summary.added + summary.updated + summary.unchanged + summary.deleted) > 0
    )
    if loaded:
        with get_engine().begin() as conn:
            conn.execute(
                update(QuarantinedRecord)
                .where(QuarantinedRecord.id == quarantine_id)
                .values(resolved_at=dt.datetime.now(dt.UTC))
            )
    return {"id": quarantine_id, "loaded": loaded, **summary.as_dict()}


def duplicates_report(session: Session, member_code: str | None = None) -> list[dict[str, Any]]:
    """Clusters holding more than one record of the same member: in-member duplicates."""
    stmt = (
        select(SourceRecord.cluster_id, SourceRecord.member_id, func.count())
        .where(SourceRecord.deleted.is_(False), SourceRecord.cluster_id.is_not(None))
        .group_by(SourceRecord.cluster_id, SourceRecord.member_id)
        .having(func.count() > 1)
    )
    if member_code:
        stmt = stmt.where(SourceRecord.member_id == _member_id(session, member_code))
    groups = list(session.execute(stmt))
    out = []
    for cid, mid, n in groups:
        ids = list(
            session.scalars(
                select(SourceRecord.record_id)
                .where(
                    SourceRecord.cluster_id == cid,
                    SourceRecord.member_id == mid,
                    SourceRecord.deleted.is_(False),
                )
                .order_by(SourceRecord.record_id)
            )
        )
        code = session.scalar(select(Member.code).where(Member.id == mid))
        title = session.scalar(select(Cluster.title).where(Cluster.id == cid))
        out.append(
            {"cluster": cid, "member": code, "title": title, "count": int(n), "records": ids}
        )
    return sorted(out, key=lambda d: (d["member"] or "", d["cluster"]))


# ---------------------------------------------------------------------------- holdings


def _member_for(session: Session, actor: Principal, code: str) -> Member:
    member = session.scalar(select(Member).where(Member.code == code))
    if member is None:
        raise NotFound("Unknown member code: {code}", field="member", code=code)
    if not actor.may_act_for(member.id):
        raise Forbidden("You may change holdings only for your own library")
    return member


def load_holdings(
    session: Session, actor: Principal, member_code: str, data: bytes, *, filename: str = ""
) -> dict[str, Any]:
    """Replace the items of the records a holdings CSV names (member, record id, barcode, call
    number, location, status) — for members whose MARC export carries no items.

    All or nothing: a bad row or a record id the member never loaded (or deleted) refuses the
    whole file, every problem named with its line. The CSV is the authority for the records it
    names; the member's other records keep their items."""
    member = _member_for(session, actor, member_code)
    if not data:
        raise Invalid("file: the upload is empty", field="file")
    items = read_holdings_csv(data, member_code)
    if not items:
        raise Invalid("file: no holdings rows", field="file")
    known: dict[str, int] = {}
    names = list(items)
    for i in range(0, len(names), 500):
        for rid, sid in session.execute(
            select(SourceRecord.record_id, SourceRecord.id).where(
                SourceRecord.member_id == member.id,
                SourceRecord.record_id.in_(names[i : i + 500]),
                SourceRecord.deleted.is_(False),
            )
        ):
            known[rid] = int(sid)
    unknown = [rid for rid in names if rid not in known]
    if unknown:
        raise RowErrors(
            "Holdings file names {n} records this library has not loaded; nothing was loaded",
            [{"line": 0, "field": "record_id", "message": rid} for rid in unknown[:100]],
            n=len(unknown),
        )
    ids = list(known.values())
    for i in range(0, len(ids), 500):
        session.execute(delete(Holding).where(Holding.source_record_id.in_(ids[i : i + 500])))
    rows = [
        {
            "member_id": member.id,
            "source_record_id": known[rid],
            **item.to_dict(),
        }
        for rid, its in items.items()
        for item in its
    ]
    session.execute(insert(Holding), rows)
    summary = {"member": member_code, "records": len(known), "items": len(rows)}
    events.record(
        session,
        actor,
        "catalog.holdings_loaded",
        "member",
        member.id,
        {**summary, "filename": filename},
        member_id=member.id,
    )
    return summary


def _mapping_out(code: str, m: HoldingsMapping | None) -> dict[str, Any]:
    if m is None:
        return {"member": code, "mapping": None}
    return {
        "member": code,
        "mapping": {
            "tag": m.tag,
            "barcode": m.barcode,
            "call_number": m.call_number,
            "location": m.location,
            "status": m.status,
        },
    }


def holdings_mapping(session: Session, actor: Principal, member_code: str) -> dict[str, Any]:
    """The member's own holdings tag and subfields (null: 852, 952 or 995 are read)."""
    member = _member_for(session, actor, member_code)
    return _mapping_out(member_code, session.get(HoldingsMapping, member.id))


def _subfield(name: str, value: str) -> str:
    value = value.strip()
    if value and (len(value) != 1 or not value.isascii() or not value.isalnum()):
        raise Invalid("{field}: one subfield code, a letter or digit", field=name)
    return value.lower() if value.isalpha() else value


def set_holdings_mapping(
    session: Session,
    actor: Principal,
    member_code: str,
    *,
    tag: str,
    barcode: str = "",
    call_number: str = "",
    location: str = "",
    status: str = "",
) -> dict[str, Any]:
    """Set which tag and subfields carry the member's items; read by its next loads."""
    member = _member_for(session, actor, member_code)
    tag = tag.strip()
    if len(tag) != 3 or not tag.isdigit() or tag < "010":
        raise Invalid("tag: a data field tag, 010 to 999", field="tag")
    codes = {
        "barcode": _subfield("barcode", barcode),
        "call_number": _subfield("call_number", call_number),
        "location": _subfield("location", location),
        "status": _subfield("status", status),
    }
    if not codes["barcode"] and not codes["call_number"]:
        raise Invalid(
            "call_number: a barcode or call number subfield is needed", field="call_number"
        )
    m = session.get(HoldingsMapping, member.id)
    if m is None:
        m = HoldingsMapping(member_id=member.id, tag=tag, **codes)
        session.add(m)
    else:
        m.tag = tag
        for k, v in codes.items():
            setattr(m, k, v)
    session.flush()
    events.record(
        session,
        actor,
        "catalog.holdings_mapping_set",
        "member",
        member.id,
        {"tag": tag, **codes},
        member_id=member.id,
    )
    return _mapping_out(member_code, m)


def clear_holdings_mapping(session: Session, actor: Principal, member_code: str) -> dict[str, Any]:
    """Back to the standard tags (852, 952, 995)."""
    member = _member_for(session, actor, member_code)
    m = session.get(HoldingsMapping, member.id)
    if m is not None:
        session.delete(m)
        session.flush()
        events.record(
            session,
            actor,
            "catalog.holdings_mapping_cleared",
            "member",
            member.id,
            {},
            member_id=member.id,
        )
    return _mapping_out(member_code, None)
