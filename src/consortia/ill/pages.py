"""Resource sharing's pages: a reader's requests, the request form, the lending and borrowing
queues with bulk actions, and printable pull slips.

The HTML face of the same service calls as ``ill/api.py``: pages parse, call ``ill.service``
and render. Every item of a bulk action is its own transaction, so one refusal (reported with
its reason) never undoes the others. Each change that succeeds also queues its e-mail notices
(``ill.notices.after``) in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.models import User
from consortia.accounts.roles import STAFF_ROLES, Principal, Role
from consortia.catalog.models import Cluster, Holding, SourceRecord
from consortia.errors import DomainError, Forbidden, Invalid, NotFound
from consortia.i18n import gettext
from consortia.ill import notices
from consortia.ill import service as ill
from consortia.ill.models import DeliveredDocument, IllRequest, LenderAttempt
from consortia.members.models import Member
from consortia.web.deps import allow, get_db, request_language
from consortia.web.templating import render

router = APIRouter(include_in_schema=False)

STAFF = (Role.consortium_admin, Role.library_admin, Role.library_staff)
PEOPLE = (*STAFF, Role.reader)
PAGE = 50
QUEUES = ("lending", "borrowing")
MAX_BULK = 200
_ID = re.compile(r"[0-9]{1,18}")

# Messages of these pages (English msgids; zh-CN in locale/zh_CN/LC_MESSAGES/ill_pages.po).
MSG_ACTION = "action: choose one of {choices}"
MSG_NOTHING_CHOSEN = "Choose at least one request"
MSG_TOO_MANY = "At most {n} requests at once"
MSG_BAD_ID = "Not a request number: {value}"
MSG_UNKNOWN_USER = "Unknown reader: {name}"
MSG_SERVICE_CHOICE = "service_type: choose a loan or a copy"
MSG_DATE = "needed_by: not a date (YYYY-MM-DD): {value}"
MSG_FILTER = "{name}: at most {n} characters"
MSG_OFFSET = "offset: a whole number from 0"
MSG_QUEUE = "Unknown queue: {name}"
MSG_NO_FILE = "file: choose a PDF to upload"
MSG_CHOOSE_MEMBER = "member: choose the library whose slips to print"

# Page actions -> how each is done; ``text`` is the form's reason/condition/note field.
Act = Callable[[Session, Principal, int, str], ill.Result]


LENDING_ACTIONS: dict[str, Act] = {
    "will-supply": lambda s, p, i, t: ill.will_supply(s, p, i, note=t),
    "unfilled": lambda s, p, i, t: ill.unfilled(s, p, i, t),
    "conditional": lambda s, p, i, t: ill.conditional(s, p, i, t),
    "ship": lambda s, p, i, t: ill.ship(s, p, i, note=t),
    "checked-in": lambda s, p, i, t: ill.checked_in(s, p, i),
    "renewal-yes": lambda s, p, i, t: ill.answer_renewal(s, p, i, approve=True, note=t),
    "renewal-no": lambda s, p, i, t: ill.answer_renewal(s, p, i, approve=False, note=t),
    "cancel-yes": lambda s, p, i, t: ill.answer_cancel(s, p, i, approve=True, note=t),
    "cancel-no": lambda s, p, i, t: ill.answer_cancel(s, p, i, approve=False, note=t),
}
BORROWING_ACTIONS: dict[str, Act] = {
    "received": lambda s, p, i, t: ill.received(s, p, i),
    "return": lambda s, p, i, t: ill.returned(s, p, i),
    "renew": lambda s, p, i, t: ill.renew(s, p, i),
    "cancel": lambda s, p, i, t: ill.cancel(s, p, i, reason=t),
    "conditions-yes": lambda s, p, i, t: ill.decide_conditions(s, p, i, accept=True),
    "conditions-no": lambda s, p, i, t: ill.decide_conditions(s, p, i, accept=False),
}
ACTIONS = {"lending": LENDING_ACTIONS, "borrowing": BORROWING_ACTIONS}


# ---------------------------------------------------------------------------- helpers


def _when(value: dt.datetime | None) -> str:
    """A stored time as pages show it: minutes, UTC, the same in both languages."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _query(request: Request, name: str, limit: int = 40) -> str:
    values = request.query_params.getlist(name)
    value = values[-1].strip() if values else ""
    if len(value) > limit:
        raise Invalid(MSG_FILTER, field=name, name=name, n=limit)
    return value


def _offset(request: Request) -> int:
    raw = _query(request, "offset", 12) or "0"
    if not raw.isdigit():
        raise Invalid(MSG_OFFSET, field="offset")
    return int(raw)


def _members(db: Session) -> dict[int, Member]:
    return {m.id: m for m in db.scalars(select(Member))}


@dataclass
class Outcome:
    """One item of an action: done (with the state it reached) or refused (with why)."""

    request_id: str
    ok: bool
    message: str
    error: DomainError | None = None
    action: str = ""


def _attempts(db: Session, ids: list[int]) -> dict[int, list[LenderAttempt]]:
    out: dict[int, list[LenderAttempt]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = db.scalars(
        select(LenderAttempt)
        .where(LenderAttempt.request_id.in_(ids))
        .order_by(LenderAttempt.request_id, LenderAttempt.position)
        .execution_options(populate_existing=True)
    )
    for a in rows:
        out[a.request_id].append(a)
    return out


def _documents(db: Session, ids: list[int]) -> dict[int, list[DeliveredDocument]]:
    out: dict[int, list[DeliveredDocument]] = {i: [] for i in ids}
    if not ids:
        return out
    for d in db.scalars(
        select(DeliveredDocument)
        .where(DeliveredDocument.request_id.in_(ids), DeliveredDocument.removed_at.is_(None))
        .order_by(DeliveredDocument.id)
    ):
        out[d.request_id].append(d)
    return out


def _current(req: IllRequest, attempts: list[LenderAttempt]) -> LenderAttempt | None:
    if req.position < 0:
        return None
    return next((a for a in attempts if a.position == req.position), None)


def _item(
    db: Session,
    principal: Principal,
    req: IllRequest,
    attempts: list[LenderAttempt],
    members: dict[int, Member],
    documents: list[DeliveredDocument] | None = None,
) -> dict[str, Any]:
    """What a row of a list shows of one request."""
    current = _current(req, attempts)
    status = current.status if current else None
    asked = [a for a in attempts if a.status is not None]
    return {
        "r": req,
        "current": current,
        "status": status,
        "actions": ill.allowed_actions(principal, req, status),
        "attempts": attempts,
        "asked": len(asked),
        "rota_size": len(attempts),
        "lender": members.get(req.lender_id or 0),
        "borrower": members.get(req.borrower_id),
        "pickup": members.get(req.pickup_id),
        "created": _when(req.created_at),
        "due": _when(req.due_at),
        "loan_due": _when(req.loan_due_at),
        "documents": documents or [],
        "renewal_asked": current is not None and current.renew_requested_at is not None,
        "cancel_asked": current is not None and current.cancel_requested_at is not None,
        "condition_pending": current is not None and current.condition_state == "pending",
    }


def _safe_next(value: str, default: str) -> str:
    """Back to one of these pages only (never to another site)."""
    if value.startswith(("/requests/", "/queues/")) and "//" not in value and "\\" not in value:
        return value
    return default


# ---------------------------------------------------------------------------- my requests


@router.get("/requests/mine")
def my_requests(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.reader),
) -> Response:
    """The reader's own requests, newest first: state, how far the rota went, history,
    downloads, and cancel where it is still possible."""
    offset = _offset(request)
    items, total = ill.list_requests(db, principal, offset=offset, limit=PAGE)
    ids = [r.id for r in items]
    members = _members(db)
    attempts = _attempts(db, ids)
    documents = _documents(db, ids)
    views = []
    for req in items:
        view = _item(db, principal, req, attempts[req.id], members, documents[req.id])
        view["history"] = [
            {"at": _when(e.at), "action": e.action, "payload": e.payload}
            for e in ill.history(db, req.id)
        ]
        views.append(view)
    created = _query(request, "created", 18)
    return render(
        request,
        "ill/mine.html",
        {
            "items": views,
            "total": total,
            "offset": offset,
            "page_size": PAGE,
            "created": int(created) if created.isdigit() else None,
            "members_by_id": members,
        },
    )


READER_ACTIONS: dict[str, Act] = {
    "cancel": BORROWING_ACTIONS["cancel"],
    "renew": BORROWING_ACTIONS["renew"],
    "received": BORROWING_ACTIONS["received"],
    "conditions-yes": BORROWING_ACTIONS["conditions-yes"],
    "conditions-no": BORROWING_ACTIONS["conditions-no"],
}


def _request_id(raw: str) -> int:
    if not _ID.fullmatch(raw):
        raise NotFound(ill.MSG_UNKNOWN_REQUEST, field="request", id=raw[:40])
    return int(raw)


@router.post("/requests/{request_id}/act")
def reader_action(
    request_id: str,
    action: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.reader),
) -> Response:
    """A reader's own action on a request: cancel, renew, confirm a copy, answer a condition."""
    rid = _request_id(request_id)
    if action not in READER_ACTIONS:
        raise Invalid(MSG_ACTION, field="action", choices=", ".join(READER_ACTIONS))
    ill.get_request(db, principal, rid)  # others' requests are unknown to readers
    result = READER_ACTIONS[action](db, principal, rid, reason)
    notices.after(db, result)
    db.commit()
    return RedirectResponse(f"/requests/mine#request-{rid}", status_code=303)


@router.post("/requests/{request_id}/download")
def download_request(
    request_id: str,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.reader, *STAFF),
) -> Response:
    """To the stamped document: a fresh token for the reader's link (the old token stops
    working; expiry and downloads left carry over), then the download itself."""
    from consortia.ill import delivery

    rid = _request_id(request_id)
    status = delivery.link_for(db, principal, rid)
    if status.token is None:
        status = delivery.reissue_link(db, principal, rid)
    db.commit()
    return RedirectResponse(f"/download/{status.token}", status_code=303)


# ---------------------------------------------------------------------------- new request


FIELDS = (
    "title",
    "article_title",
    "author",
    "volume",
    "issue",
    "pages",
    "year",
    "issn",
    "isbn",
    "doi",
    "publisher",
    "edition",
    "note",
)


def _cluster(db: Session, cluster_id: int | None) -> Cluster | None:
    if cluster_id is None:
        return None
    found = db.get(Cluster, cluster_id)
    if found is None:
        raise NotFound(ill.MSG_UNKNOWN_CLUSTER, field="cluster", id=cluster_id)
    return found


def _new_form(
    request: Request,
    db: Session,
    principal: Principal,
    values: dict[str, str],
    *,
    error: str = "",
    error_field: str = "",
    duplicate: int | None = None,
    status: int = 200,
) -> Response:
    cid = values.get("cluster", "")
    cluster = _cluster(db, int(cid)) if _ID.fullmatch(cid) else None
    pickups = list(db.scalars(select(Member).order_by(Member.code)))
    return render(
        request,
        "ill/new.html",
        {
            "values": values,
            "cluster": cluster,
            "error": error,
            "error_field": error_field,
            "duplicate": duplicate,
            "staff": principal.role in STAFF_ROLES,
            "pickups": pickups,
        },
        status=status,
    )


@router.get("/requests/new")
def new_request_page(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(*PEOPLE),
) -> Response:
    """The request form: from a catalogue record (``?cluster=``) or a citation."""
    cluster = _query(request, "cluster", 18)
    if cluster and not _ID.fullmatch(cluster):
        raise NotFound(ill.MSG_UNKNOWN_CLUSTER, field="cluster", id=cluster)
    values = {"cluster": cluster, "service_type": _query(request, "service_type", 10)}
    for name in FIELDS:
        values[name] = _query(request, name, ill.LIMITS.get(name, 200))
    openurl = _from_openurl(request)
    values.update({k: v for k, v in openurl.items() if not values.get(k)})
    values["service_type"] = values["service_type"] or "Loan"
    # Counted apart in the statistics: requests that came from a database's OpenURL link.
    if openurl or _query(request, "via", 10) == "openurl":
        values["via"] = "openurl"
    return _new_form(request, db, principal, values)


# OpenURL 1.0 KEV keys (Z39.88-2004 journal and book formats) -> the form's fields.
_OPENURL = {
    "rft.atitle": "article_title",
    "rft.jtitle": "title",
    "rft.btitle": "title",
    "rft.title": "title",
    "rft.stitle": "title",
    "rft.au": "author",
    "rft.volume": "volume",
    "rft.issue": "issue",
    "rft.pages": "pages",
    "rft.date": "year",
    "rft.issn": "issn",
    "rft.eissn": "issn",
    "rft.isbn": "isbn",
    "rft.pub": "publisher",
    "rft.edition": "edition",
}


def _from_openurl(request: Request) -> dict[str, str]:
    """A citation given as OpenURL 1.0 keys (a link from a database, or the hub's /openurl)
    fills the form; the reader still checks and sends it."""
    q = request.query_params
    if not any(k.startswith(("rft.", "rft_id")) for k in q):
        return {}
    out: dict[str, str] = {}
    for key, name in _OPENURL.items():
        value = q.get(key, "").strip()
        if value and not out.get(name):
            out[name] = value[: ill.LIMITS.get(name, 200)]
    if not out.get("author") and q.get("rft.aulast"):
        first = q.get("rft.aufirst", "").strip()
        out["author"] = (q["rft.aulast"].strip() + (f", {first}" if first else ""))[:500]
    if not out.get("pages") and q.get("rft.spage"):
        end = q.get("rft.epage", "").strip()
        out["pages"] = (q["rft.spage"].strip() + (f"-{end}" if end else ""))[:60]
    if out.get("year"):
        out["year"] = out["year"][:4] if out["year"][:4].isdigit() else out["year"][:20]
    for rft_id in q.getlist("rft_id"):
        if rft_id.startswith("info:doi/"):
            out["doi"] = rft_id[len("info:doi/") :][:200]
    genre = q.get("rft.genre", "")
    if out.get("article_title") or genre in ("article", "bookitem", "chapter"):
        out["service_type"] = "Copy"
    return out


def _reader_id(db: Session, principal: Principal, name: str) -> int | None:
    """Staff name the reader by user name; readers request for themselves."""
    if principal.role is Role.reader:
        return None
    name = name.strip()
    if not name:
        raise Invalid(ill.MSG_READER_NEEDED, field="reader")
    user_id = db.scalar(select(User.id).where(User.username == name))
    if user_id is None:
        raise NotFound(MSG_UNKNOWN_USER, field="reader", name=name[:100])
    return int(user_id)


@router.post("/requests/new")
async def new_request_submit(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(*PEOPLE),
) -> Response:
    form = await request.form()
    values = {
        k: (v.strip() if isinstance(v, str) else "")
        for k, v in form.items()
        if k in (*FIELDS, "cluster", "service_type", "needed_by", "reader", "pickup", "via")
    }
    lang = request_language(request)
    try:
        service_type = values.get("service_type", "")
        if service_type not in ill.SERVICE_TYPES:
            raise Invalid(MSG_SERVICE_CHOICE, field="service_type")
        cid = values.get("cluster", "")
        if cid and not _ID.fullmatch(cid):
            raise NotFound(ill.MSG_UNKNOWN_CLUSTER, field="cluster", id=cid[:40])
        needed: dt.date | None = None
        if values.get("needed_by"):
            try:
                needed = dt.date.fromisoformat(values["needed_by"])
            except ValueError:
                raise Invalid(MSG_DATE, field="needed_by", value=values["needed_by"][:40]) from None
        new = ill.NewRequest(
            service_type=service_type,
            cluster_id=int(cid) if cid else None,
            needed_by=needed,
            reader_id=_reader_id(db, principal, values.get("reader", "")),
            pickup=values.get("pickup") or None,
            via="openurl" if values.get("via") == "openurl" else None,
            **{k: values.get(k, "") for k in FIELDS},
        )
        result = ill.create_request(db, principal, new)
        notices.after(db, result)
        db.commit()
    except DomainError as exc:
        db.rollback()
        duplicate = None
        if exc.message == ill.MSG_DUPLICATE:
            duplicate = int(exc.params["id"])
        return _new_form(
            request,
            db,
            principal,
            values,
            error=exc.render(lambda m: gettext(lang, m)),
            error_field=exc.field or "",
            duplicate=duplicate,
            status=exc.status,
        )
    if principal.role is Role.reader:
        return RedirectResponse(
            f"/requests/mine?created={result.request_id}#request-{result.request_id}",
            status_code=303,
        )
    return RedirectResponse(
        f"/queues/borrowing?created={result.request_id}#request-{result.request_id}",
        status_code=303,
    )


# ---------------------------------------------------------------------------- queues


def _scope(db: Session, principal: Principal, member: str) -> str | None:
    """The office may look at any member's queues; staff only at their own."""
    if member and not principal.is_consortium_admin and member != principal.member_code:
        raise Forbidden(ill.MSG_CHOOSE_LIBRARY)
    if principal.is_consortium_admin:
        if not member:
            return None
        if db.scalar(select(Member.id).where(Member.code == member)) is None:
            raise NotFound(ill.MSG_UNKNOWN_MEMBER, field="member", code=member)
        return member
    return None


def _queue_page(
    request: Request,
    db: Session,
    principal: Principal,
    queue: str,
    *,
    results: list[Outcome] | None = None,
    status: int = 200,
) -> Response:
    member = _query(request, "member", 40)
    state = _query(request, "state", 12)
    offset = _offset(request)
    code = _scope(db, principal, member)
    if principal.is_consortium_admin and code is None:
        items: list[IllRequest] = []
        total = 0
    else:
        items, total = ill.list_requests(
            db, principal, queue=queue, member=code, state=state or None, offset=offset, limit=PAGE
        )
    ids = [r.id for r in items]
    members = _members(db)
    attempts = _attempts(db, ids)
    documents = _documents(db, ids)
    views = [_item(db, principal, r, attempts[r.id], members, documents[r.id]) for r in items]
    created = _query(request, "created", 18)

    def page_url(new_offset: int) -> str:
        query = {"member": member, "state": state, "offset": str(new_offset)}
        return f"/queues/{queue}?" + urlencode({k: v for k, v in query.items() if v})

    return render(
        request,
        "ill/queue.html",
        {
            "queue": queue,
            "items": views,
            "total": total,
            "offset": offset,
            "page_size": PAGE,
            "page_url": page_url,
            "filters": {"member": member, "state": state},
            "member_code": code or principal.member_code,
            "office": principal.is_consortium_admin,
            "all_members": sorted(members.values(), key=lambda m: m.code),
            "states": [s for s in ill.LENDING_QUEUE_STATES]
            if queue == "lending"
            else list(ill.OPEN_STATES) + sorted(ill.TERMINAL),
            "actions": list(ACTIONS[queue]),
            "results": results or [],
            "created": int(created) if created.isdigit() else None,
            "delivery": _delivery_ready(),
            "done": _query(request, "done", 18),
        },
        status=status,
    )


def _delivery_ready() -> bool:
    """Whether the delivery module (uploads of scans) is installed yet."""
    try:
        from consortia.ill import delivery  # noqa: F401
    except ImportError:
        return False
    return True


@router.get("/queues/lending")
def lending_queue(
    request: Request, db: Session = Depends(get_db), principal: Principal = allow(*STAFF)
) -> Response:
    """Requests this library was asked to supply, by deadline."""
    return _queue_page(request, db, principal, "lending")


@router.get("/queues/borrowing")
def borrowing_queue(
    request: Request, db: Session = Depends(get_db), principal: Principal = allow(*STAFF)
) -> Response:
    """This library's readers' requests, newest first."""
    return _queue_page(request, db, principal, "borrowing")


def _act(
    db: Session, principal: Principal, queue: str, action: str, raw_ids: list[str], text: str
) -> list[Outcome]:
    """Each item through the service in its own transaction; refusals are reported, not
    raised, so the rest still happen."""
    table = ACTIONS[queue]
    if action not in table:
        raise Invalid(MSG_ACTION, field="action", choices=", ".join(table))
    if not raw_ids:
        raise Invalid(MSG_NOTHING_CHOSEN, field="ids")
    if len(raw_ids) > MAX_BULK:
        raise Invalid(MSG_TOO_MANY, field="ids", n=MAX_BULK)
    out: list[Outcome] = []
    for raw in dict.fromkeys(raw_ids):
        if not _ID.fullmatch(raw):
            out.append(Outcome(raw[:40], False, MSG_BAD_ID, action=action))
            continue
        rid = int(raw)
        try:
            ill.get_request(db, principal, rid)
            result = table[action](db, principal, rid, text)
            notices.after(db, result)
            db.commit()
        except DomainError as exc:
            db.rollback()
            out.append(Outcome(raw, False, exc.message, exc, action))
            continue
        out.append(Outcome(raw, True, result.state, action=action))
    return out


@router.post("/queues/{queue}/act")
async def queue_action(
    queue: str,
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> Response:
    """One action on the chosen requests (bulk), or on one request (its row's button)."""
    if queue not in QUEUES:
        raise NotFound(MSG_QUEUE, field="queue", name=queue[:20])
    form = await request.form()
    one = form.get("one")
    text = str(form.get("text") or "").strip()
    if len(text) > 2000:
        raise Invalid(MSG_FILTER, field="text", name="text", n=2000)
    if isinstance(one, str) and one:
        # A row's own button: "<id>:<action>".
        raw_id, _, action = one.partition(":")
        ids = [raw_id]
    else:
        action = str(form.get("action") or "")
        ids = [str(v) for v in form.getlist("ids")]
    results = _act(db, principal, queue, action, ids, text)
    lang = request_language(request)
    for r in results:
        if r.error is not None:
            r.message = r.error.render(lambda m: gettext(lang, m))
        elif not r.ok:
            r.message = gettext(lang, r.message).format(value=r.request_id)
    return _queue_page(request, db, principal, queue, results=results)


# ---------------------------------------------------------------------------- pull slips


_SHELF_TOKEN = re.compile(r"\.?[0-9]+|[^\W\d_]+|[^\w\s]", re.UNICODE)


def shelving_key(call_number: str) -> tuple[tuple[int, str, float], ...]:
    """Call numbers in shelf order: letters as text, whole numbers by value, and a number
    after a point as a decimal fraction (LC ``QA76.73 .P98`` and CLC ``R2/1``, ``TP312.8``)."""
    out: list[tuple[int, str, float]] = []
    for token in _SHELF_TOKEN.findall(call_number.upper()):
        if token[0] == ".":
            out.append((1, "", float("0" + token)))
        elif token[0].isdigit():
            out.append((1, "", float(token)))
        elif token.isalpha():
            out.append((2, token, 0.0))
        else:
            out.append((0, token, 0.0))
    return tuple(out)


@router.get("/queues/lending/slips")
def pull_slips(
    request: Request, db: Session = Depends(get_db), principal: Principal = allow(*STAFF)
) -> Response:
    """Pull slips for the requests waiting to be supplied (state Sent), in shelving order:
    one per request, with the lender's call number and location of its copies."""
    member = _query(request, "member", 40)
    code = _scope(db, principal, member)
    if principal.is_consortium_admin and code is None:
        raise Invalid(MSG_CHOOSE_MEMBER, field="member")
    items, _total = ill.list_requests(
        db, principal, queue="lending", member=code, state="Sent", limit=ill.MAX_PAGE
    )
    lender_id = (
        principal.member_id
        if code is None
        else db.scalar(select(Member.id).where(Member.code == code))
    )
    members = _members(db)
    slips: list[dict[str, Any]] = []
    for req in items:
        holdings: list[Holding] = []
        if req.cluster_id is not None:
            holdings = list(
                db.scalars(
                    select(Holding)
                    .join(SourceRecord, SourceRecord.id == Holding.source_record_id)
                    .where(
                        SourceRecord.cluster_id == req.cluster_id,
                        Holding.member_id == lender_id,
                    )
                    .order_by(Holding.id)
                )
            )
        best = sorted(holdings, key=lambda h: (h.status != "available", h.id))
        call = best[0].call_number if best else ""
        slips.append(
            {
                "r": req,
                "call_number": call,
                "location": best[0].location if best else "",
                "copies": best,
                "pickup": members.get(req.pickup_id),
                "borrower": members.get(req.borrower_id),
                "due": _when(req.due_at),
            }
        )
    # Requests without a call number (citations not in the catalogue) go last.
    slips.sort(key=lambda s: (not s["call_number"], shelving_key(str(s["call_number"])), s["r"].id))
    return render(
        request,
        "ill/slips.html",
        {
            "slips": slips,
            "member": members.get(lender_id or 0),
            "printed": _when(dt.datetime.now(dt.UTC)),
        },
    )


# ---------------------------------------------------------------------------- document upload


def _lent_copy(db: Session, principal: Principal, rid: int) -> IllRequest:
    req = ill.get_request(db, principal, rid)
    if req.lender_id is None or not principal.may_act_for(req.lender_id):
        raise Forbidden(ill.MSG_NOT_LENDER)
    return req


@router.get("/queues/lending/{request_id}/document")
def document_form(
    request_id: str,
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> Response:
    req = _lent_copy(db, principal, _request_id(request_id))
    return render(request, "ill/document.html", {"r": req})


@router.post("/queues/lending/{request_id}/document")
def document_upload(
    request_id: str,
    request: Request,
    file: Annotated[UploadFile | None, File()] = None,
    source_pages: Annotated[str, Form(max_length=60)] = "",
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> Response:
    """The lender's scan: checked, stamped and delivered by ``ill.delivery``; the request is
    shipped and the reader told that the document is ready."""
    from consortia.ill import delivery

    rid = _request_id(request_id)
    req = _lent_copy(db, principal, rid)
    lang = request_language(request)
    files: tuple[Any, ...] = ()
    try:
        if file is None or not file.filename:
            raise Invalid(MSG_NO_FILE, field="file")
        uploaded = delivery.upload(db, principal, rid, file.file, source_pages=source_pages)
        files = uploaded.files
        notices.notify(db, rid, "ill.document.uploaded", document=uploaded.document_id)
        db.commit()
    except DomainError as exc:
        db.rollback()
        delivery.discard(files)
        req = _lent_copy(db, principal, rid)
        return render(
            request,
            "ill/document.html",
            {"r": req, "error": exc.render(lambda m: gettext(lang, m))},
            status=exc.status,
        )
    except BaseException:
        db.rollback()
        delivery.discard(files)
        raise
    return RedirectResponse(f"/queues/lending?done={rid}#request-{rid}", status_code=303)
