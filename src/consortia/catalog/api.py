"""REST routes of the union catalogue (/api/v1/catalog/...)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.roles import STAFF_ROLES, Principal, Role
from consortia.catalog import service
from consortia.catalog.export import merged_marcxml, source_marcxml
from consortia.catalog.models import LoadBatch, QuarantinedRecord
from consortia.errors import Forbidden, Invalid, NotFound
from consortia.members.models import Member
from consortia.settings import get_settings
from consortia.web.deps import allow, get_db, public

router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"])
LOADERS = (*STAFF_ROLES, Role.member_system)
MAX_IDS = 200


class BatchOut(BaseModel):
    id: int
    member: str
    filename: str
    status: str
    counts: dict[str, int]
    bytes_total: int
    bytes_done: int
    error: str | None


def _batch_out(batch: LoadBatch, code: str) -> BatchOut:
    return BatchOut(
        id=batch.id,
        member=code,
        filename=batch.filename,
        status=batch.status,
        counts=batch.counts or {},
        bytes_total=batch.bytes_total,
        bytes_done=batch.bytes_done,
        error=batch.error,
    )


@router.post("/uploads", response_model=BatchOut, status_code=202)
def upload(
    member: Annotated[str, Form(max_length=16)],
    file: Annotated[UploadFile, File()],
    format: Annotated[str, Form(max_length=10)] = "auto",
    encoding: Annotated[str, Form(max_length=10)] = "auto",
    replace: Annotated[bool, Form()] = False,
    db: Session = Depends(get_db),
    principal: Principal = allow(*LOADERS),
) -> BatchOut:
    """Upload a MARC file for a member; it loads in the background (poll the batch)."""
    settings = get_settings()
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise Invalid(
            "file: larger than {limit} bytes", field="file", limit=settings.max_upload_bytes
        )
    batch = service.queue_upload(
        db,
        principal,
        member,
        file.filename or "upload",
        data,
        format=format,
        encoding=encoding,
        replace=replace,
        upload_dir=settings.upload_dir,
    )
    db.commit()
    from consortia.catalog.tasks import load_upload

    load_upload(batch.id)
    return _batch_out(batch, member)


@router.get("/uploads/{batch_id}", response_model=BatchOut)
def upload_status(
    batch_id: int, db: Session = Depends(get_db), principal: Principal = allow(*LOADERS)
) -> BatchOut:
    row = db.execute(
        select(LoadBatch, Member.code)
        .join(Member, Member.id == LoadBatch.member_id)
        .where(LoadBatch.id == batch_id)
    ).first()
    if row is None or not principal.may_act_for(row[0].member_id):
        raise NotFound("Unknown load batch: {id}", field="batch_id", id=batch_id)
    return _batch_out(row[0], row[1])


@router.get("/stats")
def stats(db: Session = Depends(get_db), principal: Principal | None = public()) -> dict[str, Any]:
    """Totals of records, clusters, holdings and quarantined records, and per member."""
    return service.stats(db)


@router.get("/cluster-of")
def cluster_of(
    member: str,
    id: Annotated[list[str], Query(max_length=MAX_IDS)],
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> list[dict[str, Any]]:
    """For each record id of a member: its cluster, the cluster's records and the rule."""
    return service.cluster_of(db, member, id)


@router.get("/clusters/{cluster_id}")
def cluster(
    cluster_id: int, db: Session = Depends(get_db), principal: Principal | None = public()
) -> dict[str, Any]:
    """The merged record with every holding and the source records it was built from."""
    data = service.get_cluster(db, cluster_id)
    for s in data["sources"]:
        s.pop("normalized", None)
    return data


@router.get("/clusters/{cluster_id}/marcxml")
def cluster_marcxml(
    cluster_id: int, db: Session = Depends(get_db), principal: Principal | None = public()
) -> Response:
    """The merged record as MARCXML, with the provenance of each field."""
    return Response(
        merged_marcxml(service.get_cluster(db, cluster_id)), media_type="application/marcxml+xml"
    )


@router.get("/records/{member}/{record_id}")
def source_record(
    member: str,
    record_id: str,
    format: str = Query("marcxml", pattern="^(marcxml|iso2709)$"),
    db: Session = Depends(get_db),
    principal: Principal = allow(*LOADERS),
) -> Response:
    """A member's source record exactly as loaded (ISO 2709) or as MARCXML."""
    sr = service.source_record(db, member, record_id)
    if format == "iso2709":
        return Response(sr.raw, media_type="application/marc")
    return Response(
        source_marcxml(sr.raw, sr.flavour, sr.encoding), media_type="application/marcxml+xml"
    )


def _scope_member(principal: Principal, member: str | None) -> str | None:
    if principal.is_consortium_admin:
        return member
    if member and member != principal.member_code:
        raise Forbidden("You may see only your own library's records")
    return principal.member_code


@router.get("/quarantine")
def quarantine(
    member: str | None = None,
    include_resolved: bool = False,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    db: Session = Depends(get_db),
    principal: Principal = allow(*LOADERS),
) -> dict[str, Any]:
    """Records that could not be read: file, byte offset, reason."""
    return service.quarantine(
        db,
        _scope_member(principal, member),
        include_resolved=include_resolved,
        offset=offset,
        limit=limit,
    )


def _own_quarantined(db: Session, principal: Principal, qid: int) -> QuarantinedRecord:
    q = service.quarantined(db, qid)
    if not principal.may_act_for(q.member_id):
        raise NotFound("Unknown quarantined record: {id}", field="id", id=qid)
    return q


@router.get("/quarantine/{qid}/raw")
def quarantine_raw(
    qid: int, db: Session = Depends(get_db), principal: Principal = allow(*LOADERS)
) -> Response:
    """The quarantined bytes, to inspect or correct."""
    q = _own_quarantined(db, principal, qid)
    return Response(
        q.raw,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="quarantine-{qid}.mrc"'},
    )


@router.post("/quarantine/{qid}/resubmit")
def quarantine_resubmit(
    qid: int,
    file: Annotated[UploadFile | None, File()] = None,
    encoding: Annotated[str, Form(max_length=10)] = "auto",
    db: Session = Depends(get_db),
    principal: Principal = allow(*LOADERS),
) -> dict[str, Any]:
    """Load a quarantined record again, as it was (another encoding) or corrected."""
    _own_quarantined(db, principal, qid)
    db.rollback()
    limit = get_settings().max_upload_bytes
    data = file.file.read(limit + 1) if file is not None else None
    if data is not None and len(data) > limit:
        raise Invalid("file: larger than {limit} bytes", field="file", limit=limit)
    return service.resubmit(principal, qid, data, encoding=encoding)


@router.get("/duplicates")
def duplicates(
    member: str | None = None, db: Session = Depends(get_db), principal: Principal = allow(*LOADERS)
) -> list[dict[str, Any]]:
    """In-member duplicates (the data-quality report)."""
    return service.duplicates_report(db, _scope_member(principal, member))


@router.post("/holdings")
def holdings_upload(
    member: Annotated[str, Form(max_length=16)],
    file: Annotated[UploadFile, File()],
    db: Session = Depends(get_db),
    principal: Principal = allow(*LOADERS),
) -> dict[str, Any]:
    """Load a holdings CSV (member, record_id, barcode, call_number, location, status)."""
    limit = get_settings().max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise Invalid("file: larger than {limit} bytes", field="file", limit=limit)
    out = service.load_holdings(db, principal, member, data, filename=file.filename or "")
    db.commit()
    return out


class HoldingsMappingIn(BaseModel):
    tag: str
    barcode: str = ""
    call_number: str = ""
    location: str = ""
    status: str = ""


@router.get("/holdings-mapping/{member}")
def holdings_mapping(
    member: str, db: Session = Depends(get_db), principal: Principal = allow(*LOADERS)
) -> dict[str, Any]:
    """The member's own holdings tag and subfields; null when 852, 952 or 995 are read."""
    return service.holdings_mapping(db, principal, member)


@router.put("/holdings-mapping/{member}")
def set_holdings_mapping(
    member: str,
    body: HoldingsMappingIn,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF_ROLES),
) -> dict[str, Any]:
    """Set the tag and subfields that carry the member's items (read by its next loads)."""
    out = service.set_holdings_mapping(db, principal, member, **body.model_dump())
    db.commit()
    return out


@router.delete("/holdings-mapping/{member}")
def clear_holdings_mapping(
    member: str, db: Session = Depends(get_db), principal: Principal = allow(*STAFF_ROLES)
) -> dict[str, Any]:
    """Back to the standard holdings tags."""
    out = service.clear_holdings_mapping(db, principal, member)
    db.commit()
    return out
