"""Union catalogue pages: a record (the merged record, who holds it, the source records), the
data-quality page for staff (quarantine, in-member duplicates, totals) and the upload pages.

The HTML face of the same service calls as ``catalog/api.py``: pages parse, call the service and
render; every change goes through ``catalog.service``.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum import isbn as stdisbn

from consortia.accounts.roles import STAFF_ROLES, Principal, Role
from consortia.catalog import marc, service
from consortia.catalog.marc import ENCODINGS, FORMATS
from consortia.catalog.matching import RULE_LABELS
from consortia.catalog.models import LoadBatch
from consortia.errors import Forbidden, Invalid, NotFound
from consortia.i18n import gettext
from consortia.members.models import Member, MemberStatus
from consortia.settings import get_settings
from consortia.web.deps import allow, get_db, public, request_language
from consortia.web.templating import render

router = APIRouter(include_in_schema=False)

STAFF = (Role.consortium_admin, Role.library_admin, Role.library_staff)
QUARANTINE_PAGE = 50
RECENT_UPLOADS = 20
DUPLICATES_SHOWN = 200
# A cluster id is a database integer: longer digit strings cannot name one.
_CLUSTER_ID = re.compile(r"[0-9]{1,18}")

# The rule stored for the record that started a cluster (no decision was needed).
MSG_FIRST_RECORD = "First record of this cluster"
# ingest.prepare() words a record it read but could not normalise like this.
R_NORMALISE = "cannot normalise: {error}"

# Relator codes and words as members write them, folded onto the roles the page labels.
_ROLE_ALIASES = {
    "aut": "author",
    "author": "author",
    "著": "author",
    "edt": "editor",
    "ed": "editor",
    "editor": "editor",
    "编": "editor",
    "主编": "editor",
    "trl": "translator",
    "tr": "translator",
    "translator": "translator",
    "译": "translator",
    "ill": "illustrator",
    "illustrator": "illustrator",
    "绘": "illustrator",
    "com": "compiler",
    "compiler": "compiler",
    "编著": "compiler",
    "ctb": "contributor",
    "contributor": "contributor",
    "spn": "sponsor",
    "sponsor": "sponsor",
}


# ---------------------------------------------------------------------------- helpers


def _when(value: dt.datetime | str | None) -> str:
    """A stored time as the page shows it: minutes, UTC, the same in both languages."""
    if value is None:
        return ""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _number(value: int | float | None) -> str:
    return f"{value or 0:,}"


def _isbn_display(value: str, valid: bool) -> str:
    """ISBN-13 with its hyphens when it is a real one; anything else exactly as given."""
    if valid and stdisbn.is_valid(value):
        return str(stdisbn.format(value))
    return value


def qualifier_parts(qualifiers: list[str]) -> list[tuple[str, str]]:
    """An ISBN's normalised qualifiers ("pbk", "vol. 2; hbk") as (kind, value) for the labels;
    kind is pbk, hbk, ebook, set, vol, or text for anything else (shown as given)."""
    out: list[tuple[str, str]] = []
    for q in qualifiers:
        for part in q.split("; "):
            part = part.strip()
            if part in ("pbk", "hbk", "ebook", "set"):
                item = (part, "")
            elif part.startswith("vol. "):
                item = ("vol", part[5:])
            else:
                item = ("text", part)
            if part and item not in out:
                out.append(item)
    return out


def role_key(role: str) -> str:
    """A name's role folded to the key the page labels (``aut.`` -> ``author``)."""
    folded = role.strip().strip(".,;:").strip().lower()
    return _ROLE_ALIASES.get(folded, folded)


def _members_by_code(db: Session, codes: set[str]) -> dict[str, Member]:
    if not codes:
        return {}
    return {m.code: m for m in db.scalars(select(Member).where(Member.code.in_(codes)))}


def _is_staff(principal: Principal | None) -> bool:
    return principal is not None and principal.role in STAFF_ROLES


# ---------------------------------------------------------------------------- quarantine reasons


@lru_cache(maxsize=1)
def reason_templates() -> tuple[str, ...]:
    """The reasons the MARC reader gives (its ``_Bad`` msgids), read from marc.py itself so that
    a new reason is found without a list to keep in step; plus the normaliser's."""
    try:
        tree = ast.parse(Path(marc.__file__).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):  # installed without sources: reasons stay in English
        return (R_NORMALISE,)
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name not in ("_Bad", "_xml_fail"):
            continue
        for arg in node.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append(arg.value)
                break
    return (*dict.fromkeys(found), R_NORMALISE)


@lru_cache(maxsize=1)
def _reason_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    out = []
    for template in reason_templates():
        parts = re.split(r"\{(\w+)\}", template)
        rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.*?)" for i, p in enumerate(parts))
        out.append((re.compile(rx + r"\Z", re.DOTALL), template))
    # The most literal text first, so that "unreadable: {error}" does not swallow the rest.
    out.sort(key=lambda pt: -len(re.sub(r"\{\w+\}", "", pt[1])))
    return tuple(out)


def reason_text(reason: str, lang: str) -> str:
    """A quarantine reason (stored in English) in the page's language, its values kept."""
    for rx, template in _reason_patterns():
        m = rx.match(reason)
        if m is None:
            continue
        translated = gettext(lang, template)
        try:
            return translated.format(**m.groupdict())
        except (KeyError, IndexError, ValueError):
            return reason
    return reason


# ---------------------------------------------------------------------------- record page


def _provenance(sources: list[dict[str, Any]], all_records: int) -> dict[str, Any]:
    """Where a list value came from: every record of the cluster, or these members."""
    members = list(dict.fromkeys(s["member"] for s in sources))
    return {"every": all_records > 1 and len(sources) >= all_records, "members": members}


def _record_view(db: Session, cluster: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = cluster["merged"] or {}
    sources: list[dict[str, Any]] = cluster["sources"]
    n = len(sources)

    def lists(key: str) -> list[dict[str, Any]]:
        return [{**e, "prov": _provenance(e.get("sources", []), n)} for e in merged.get(key) or []]

    # The merge keeps one qualifier per ISBN; the records may each give one (平装, pbk, v. 2).
    qualifiers: dict[str, list[str]] = {}
    for s in sources:
        for i in (s.get("normalized") or {}).get("isbns", []):
            if i.get("qualifier"):
                found = qualifiers.setdefault(i["isbn13"], [])
                if i["qualifier"] not in found:
                    found.append(i["qualifier"])
    isbns = [
        {
            **e,
            "display": _isbn_display(e["isbn13"], e["valid"]),
            "qualifiers": qualifier_parts(
                qualifiers.get(e["isbn13"]) or ([e["qualifier"]] if e["qualifier"] else [])
            ),
        }
        for e in lists("isbns")
    ]
    names = [{**e, "role_key": role_key(e.get("role") or "")} for e in lists("names")]
    codes = {s["member"] for s in sources} | {h["member"] for h in cluster["holdings"]}
    members = _members_by_code(db, codes)
    holders: dict[str, dict[str, Any]] = {}
    for s in sources:
        holders.setdefault(s["member"], {"member": members[s["member"]], "copies": []})
    for h in cluster["holdings"]:
        holders.setdefault(h["member"], {"member": members[h["member"]], "copies": []})
        holders[h["member"]]["copies"].append(h)
    # Active members first (they can lend), then by region and code as the member lists do.
    ordered = sorted(
        holders.values(),
        key=lambda e: (
            e["member"].status is not MemberStatus.active,
            e["member"].region.code,
            e["member"].code,
        ),
    )
    for s in sources:
        s["member_obj"] = members[s["member"]]
        s["rule_label"] = (
            MSG_FIRST_RECORD if s["rule"] == "new" else RULE_LABELS.get(s["rule"], s["rule"])
        )
        s["loaded"] = _when(s["loaded_at"])
        s["score_pct"] = f"{round((s['score'] or 0) * 100)}%"
    publication = [merged.get(k) for k in ("place", "publisher", "year")]
    return {
        "merged": merged,
        "isbns": isbns,
        "names": names,
        "subjects": lists("subjects"),
        "classifications": lists("classifications"),
        "record_languages": lists("languages"),
        "issns": lists("issns"),
        "oclc": lists("oclc"),
        "holders": ordered,
        "sources": sources,
        "record_count": n,
        "publication_from": list(dict.fromkeys(f["member"] for f in publication if f)),
    }


@router.get("/records/{cluster_id}")
def record_page(
    cluster_id: str,
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> Response:
    """A cluster for readers: the merged record, every holding member, the source records."""
    if not _CLUSTER_ID.fullmatch(cluster_id):
        raise NotFound("Unknown cluster: {id}", field="cluster", id=cluster_id[:40])
    cluster = service.get_cluster(db, int(cluster_id))
    view = _record_view(db, cluster)
    merged = view["merged"]
    # A record without a title (it happens) is still a page with a heading.
    title = (
        (merged.get("title") or {}).get("value")
        or cluster["title"]
        or gettext(request_language(request), "Record {id}").format(id=cluster["id"])
    )
    return render(
        request,
        "catalog/record.html",
        {
            "cluster": cluster,
            "title": title,
            "staff": _is_staff(principal),
            **view,
        },
    )


# ---------------------------------------------------------------------------- quality page


def _scope(principal: Principal, member: str) -> str | None:
    """The member whose data a page shows: any (or all) for the office, one's own for staff."""
    if principal.is_consortium_admin:
        return member or None
    if member and member != principal.member_code:
        raise Forbidden("You may see only your own library's records")
    return principal.member_code


def _query_value(request: Request, name: str, limit: int = 40) -> str:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise Invalid("Give {name} only once", field=name, name=name)
    value = values[0].strip() if values else ""
    if len(value) > limit:
        raise Invalid("{name}: at most {n} characters", field=name, name=name, n=limit)
    return value


def _query_int(request: Request, name: str, default: int = 0) -> int:
    value = _query_value(request, name, 12)
    if not value:
        return default
    if not value.isdigit():
        raise Invalid("{name}: a whole number of 0 or more", field=name, name=name)
    return int(value)


@router.get("/quality")
def quality_page(
    request: Request, db: Session = Depends(get_db), principal: Principal = allow(*STAFF)
) -> Response:
    """Data quality: records in quarantine, in-member duplicates and the catalogue's totals."""
    member = _query_value(request, "member", 16)
    scope = _scope(principal, member)
    include_resolved = _query_value(request, "resolved", 1) == "1"
    offset = _query_int(request, "offset")
    lang = request_language(request)
    quarantine = service.quarantine(
        db, scope, include_resolved=include_resolved, offset=offset, limit=QUARANTINE_PAGE
    )
    for item in quarantine["items"]:
        item["reason_text"] = reason_text(item["reason"], lang)
        item["created"] = _when(item["created_at"])
    duplicates = service.duplicates_report(db, scope)
    totals = service.stats(db)
    rows = [r for r in totals["members"] if scope is None or r["member"] == scope]
    outcome = _query_value(request, "outcome", 10)
    done = _query_int(request, "item") if outcome in ("loaded", "failed") else 0
    members = (
        list(db.scalars(select(Member).order_by(Member.code)))
        if principal.is_consortium_admin
        else []
    )
    base = {"member": member} if member and principal.is_consortium_admin else {}
    if include_resolved:
        base["resolved"] = "1"

    def page_url(new_offset: int) -> str:
        query = {**base, **({"offset": str(new_offset)} if new_offset else {})}
        return "/quality" + (f"?{urlencode(query)}" if query else "")

    return render(
        request,
        "catalog/quality.html",
        {
            "nav": "quality",
            "scope": scope,
            "member_filter": member,
            "members": members,
            "include_resolved": include_resolved,
            "quarantine": quarantine,
            "offset": offset,
            "page_size": QUARANTINE_PAGE,
            "prev_url": page_url(max(0, offset - QUARANTINE_PAGE)) if offset else None,
            "next_url": page_url(offset + QUARANTINE_PAGE)
            if offset + QUARANTINE_PAGE < quarantine["total"]
            else None,
            "duplicates": duplicates[:DUPLICATES_SHOWN],
            "duplicate_total": len(duplicates),
            "totals": totals,
            "member_rows": rows,
            "outcome": outcome if done else "",
            "done_item": done,
            "encodings": ENCODINGS,
            "number": _number,
        },
    )


def _upload_bytes(file: UploadFile | None) -> bytes | None:
    """The bytes of a file field; None when the form was sent without choosing a file."""
    if file is None or not file.filename:
        return None
    limit = get_settings().max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise Invalid("file: larger than {limit} bytes", field="file", limit=limit)
    if not data:
        raise Invalid("file: the upload is empty", field="file")
    return data


@router.post("/quality/quarantine/{qid}/resubmit")
def resubmit_form(
    qid: int,
    request: Request,
    file: Annotated[UploadFile | None, File()] = None,
    encoding: Annotated[str, Form(max_length=10)] = "auto",
    member: Annotated[str, Form(max_length=16)] = "",
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> Response:
    """Re-submit a quarantined record as it was (with an encoding) or corrected (a file)."""
    q = service.quarantined(db, qid)
    if not principal.may_act_for(q.member_id):
        # As the API: another library's record is not there for this user.
        raise NotFound("Unknown quarantined record: {id}", field="id", id=qid)
    if encoding not in ENCODINGS:
        raise Invalid("encoding: one of {choices}", field="encoding", choices=", ".join(ENCODINGS))
    data = _upload_bytes(file)
    # The load writes through its own connections; this session must not hold SQLite's lock.
    db.rollback()
    result = service.resubmit(principal, qid, data, encoding=encoding)
    query = {"outcome": "loaded" if result["loaded"] else "failed", "item": str(qid)}
    if member and principal.is_consortium_admin:
        query["member"] = member
    return RedirectResponse(f"/quality?{urlencode(query)}#quarantine", status_code=303)


# ---------------------------------------------------------------------------- uploads


def _recent_batches(db: Session, principal: Principal) -> list[dict[str, Any]]:
    stmt = select(LoadBatch, Member.code).join(Member, Member.id == LoadBatch.member_id)
    if not principal.is_consortium_admin:
        stmt = stmt.where(LoadBatch.member_id == principal.member_id)
    rows = db.execute(stmt.order_by(LoadBatch.id.desc()).limit(RECENT_UPLOADS))
    return [_batch_view(b, code) for b, code in rows]


def _batch_view(batch: LoadBatch, code: str) -> dict[str, Any]:
    total = batch.bytes_total or 0
    done = min(batch.bytes_done or 0, total) if total else 0
    return {
        "id": batch.id,
        "member": code,
        "filename": batch.filename,
        "format": batch.format,
        "encoding": batch.encoding,
        "replace": batch.replace,
        "status": batch.status,
        "counts": batch.counts or {},
        "bytes_total": total,
        "bytes_done": batch.bytes_total if batch.status == "done" else done,
        "percent": 100 if batch.status == "done" else (done * 100 // total if total else 0),
        "error": batch.error,
        "created": _when(batch.created_at),
        "started": _when(batch.started_at),
        "finished": _when(batch.finished_at),
        "running": batch.status in ("queued", "running"),
    }


def _upload_form(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    error: str = "",
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    members = (
        list(db.scalars(select(Member).order_by(Member.code)))
        if principal.is_consortium_admin
        else []
    )
    own = (
        db.scalar(select(Member).where(Member.id == principal.member_id))
        if principal.member_id
        else None
    )
    return render(
        request,
        "catalog/upload.html",
        {
            "nav": "upload",
            "members": members,
            "own_member": own,
            "formats": FORMATS,
            "encodings": ENCODINGS,
            "batches": _recent_batches(db, principal),
            "error": error,
            "values": values or {},
            "max_bytes": get_settings().max_upload_bytes,
            "number": _number,
        },
        status=status,
    )


@router.get("/catalog/upload")
def upload_page(
    request: Request, db: Session = Depends(get_db), principal: Principal = allow(*STAFF)
) -> Response:
    """The form to load a MARC file for a library, and the library's recent loads."""
    return _upload_form(request, db, principal)


@router.post("/catalog/upload")
def upload_submit(
    request: Request,
    file: Annotated[UploadFile | None, File()] = None,
    member: Annotated[str, Form(max_length=16)] = "",
    format: Annotated[str, Form(max_length=10)] = "auto",
    encoding: Annotated[str, Form(max_length=10)] = "auto",
    replace: Annotated[bool, Form()] = False,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> Response:
    """Keep the file, create its batch, start the background load, show its progress."""
    code = member.strip() or (principal.member_code or "")
    values = {"member": code, "format": format, "encoding": encoding, "replace": replace}
    lang = request_language(request)
    try:
        if not code:
            raise Invalid("member: choose the library the records belong to", field="member")
        data = _upload_bytes(file)
        if data is None:
            raise Invalid("file: choose a file to upload", field="file")
        batch = service.queue_upload(
            db,
            principal,
            code,
            file.filename if file is not None and file.filename else "upload",
            data,
            format=format,
            encoding=encoding,
            replace=replace,
            upload_dir=get_settings().upload_dir,
        )
    except (Invalid, NotFound) as exc:
        # The form again with what was chosen, the problem named beside it.
        db.rollback()
        return _upload_form(
            request,
            db,
            principal,
            error=exc.render(lambda m: gettext(lang, m)),
            values=values,
            status=exc.status,
        )
    db.commit()
    from consortia.catalog.tasks import load_upload

    load_upload(batch.id)
    return RedirectResponse(f"/catalog/uploads/{batch.id}", status_code=303)


@router.get("/catalog/uploads/{batch_id}")
def upload_status_page(
    batch_id: int,
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> Response:
    """A load's progress: refreshes itself while it runs (a script polls the API instead)."""
    row = db.execute(
        select(LoadBatch, Member.code)
        .join(Member, Member.id == LoadBatch.member_id)
        .where(LoadBatch.id == batch_id)
    ).first()
    if row is None or not principal.may_act_for(row[0].member_id):
        raise NotFound("Unknown load batch: {id}", field="batch_id", id=batch_id)
    batch = _batch_view(row[0], row[1])
    member = db.scalar(select(Member).where(Member.code == row[1]))
    return render(
        request,
        "catalog/upload_status.html",
        {"nav": "upload", "batch": batch, "member": member, "number": _number},
    )
