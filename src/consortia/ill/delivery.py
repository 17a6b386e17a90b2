"""Electronic delivery of copies with copyright control.

The lending library uploads the scan of a copy request (a PDF); it is checked (a real PDF that
opens, not encrypted, within the size limit and the policy's pages per request), stored, and a
stamped form made: every page carries the reader's card number, the request id and the date. The
request is then shipped through the service (CopyCompleted). The reader gets one download link,
whose token is shown once and stored hashed; it expires the policy's ``link_valid_days`` after
the upload and after ``max_downloads`` downloads. Every use of a link, allowed or refused, is
logged (``ill_download_log``) and appended to the event log.

The copyright limits (``check_limits``) are checked before a copy request is routed: pages per
request, and the share of one book one reader receives in seven days.

Readers have no card domain yet: the "card number" stamped is the reader's username (the account
name the home library issued), or ``U<user id>`` when the name is not plain ASCII (the stamp's
font is the PDF standard Helvetica, which has no CJK glyphs).

Events (entity ``ill_request``): ``ill.document.uploaded`` (document, pages, sha256, bytes),
``ill.link.created`` / ``ill.link.reissued`` (link, expires, max), ``ill.document.downloaded``
(link, count) and ``ill.document.download_refused`` (link, outcome).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pypdf import PdfReader, PdfWriter, Transformation
from reportlab.lib.colors import Color
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from stdnum import isbn as stdnum_isbn

from consortia.accounts.models import User
from consortia.accounts.roles import STAFF_ROLES, Principal, Role
from consortia.catalog.models import Cluster, MatchKey, SourceRecord
from consortia.db import utcnow
from consortia.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unauthorized
from consortia.events import service as events
from consortia.ill import service
from consortia.ill.models import (
    DeliveredDocument,
    DownloadLink,
    DownloadLog,
    IllRequest,
    LenderAttempt,
)
from consortia.ill.service import NewRequest, Policy, Result, Work
from consortia.ill.states import RequestState, ServiceType
from consortia.ill.workdays import CHINA
from consortia.settings import get_settings

PDF_MAGIC = b"%PDF-"
CHUNK = 1 << 20
SHARE_WINDOW = dt.timedelta(days=7)
CONTENT_TYPE = "application/pdf"
# Requests that no longer count against the weekly share: nothing was or will be delivered.
NOT_COUNTED = ("Cancelled", "Unfilled")

MSG_EMPTY_FILE = "file: the file is empty"
MSG_NOT_PDF = "file: not a PDF (it does not begin with %PDF-)"
MSG_BROKEN_PDF = "file: the PDF cannot be read"
MSG_ENCRYPTED = "file: the PDF is encrypted; upload it without a password"
MSG_NO_PAGES = "file: the PDF has no pages"
MSG_TOO_BIG = "file: larger than the limit of {limit} MB"
MSG_DOC_PAGES = "file: {pages} pages, over the limit of {limit} pages per request"
MSG_LOAN = "Request {id} is a loan; only copies are delivered as documents"
MSG_NO_DOCUMENT = "Request {id} has no delivered document yet"
MSG_DELIVERED = "Request {id} already has a delivered document ({pages} pages)"
MSG_PAGES_LIMIT = "pages: {pages} pages, over the limit of {limit} pages per request"
MSG_SHARE_LIMIT = (
    "pages: {pages} of the {total} pages of this book in seven days ({percent}%), over the "
    "limit of {limit}% of a book per reader per week"
)
MSG_DOC_SHARE = (
    "file: {pages} of the {total} pages of this book in seven days ({percent}%), over the "
    "limit of {limit}% of a book per reader per week"
)
# The limits' messages by what is checked: a request's page list, or a delivered file.
LIMIT_MESSAGES = {
    "pages": (MSG_PAGES_LIMIT, MSG_SHARE_LIMIT),
    "file": (MSG_DOC_PAGES, MSG_DOC_SHARE),
}
MSG_LINK_UNKNOWN = "Unknown or withdrawn download link"
MSG_LINK_EXPIRED = "The download link expired on {date}"
MSG_LINK_EXHAUSTED = "The download link was used {n} times, the most allowed"
MSG_LINK_REVOKED = "The download link was replaced by a newer one"
MSG_LINK_NOT_YOURS = "This download link is for another reader"
MSG_FILE_REMOVED = "The document was removed after its links expired"
MSG_SIGN_IN = "Please sign in to download the document"
MSG_LINK_WHO = "Only the requesting reader or the borrowing library may get the link"
MSG_NO_ACTIVE_LINK = "Request {id} has no usable download link to replace"


class Gone(DomainError):
    """The thing existed but is no longer available (an expired or used-up link)."""

    status = 410
    code = "gone"


# ----------------------------------------------------------------------------- pages, books


_RANGE = re.compile(r"^\s*(\d{1,6})\s*(?:[-–—~]\s*(\d{1,6}))?\s*$")


def count_pages(spec: str) -> int | None:
    """Pages in a citation's page list ("45-60", "3, 7-9", "12"); None when not countable
    (roman numerals, "passim", empty)."""
    if not spec or not spec.strip():
        return None
    total = 0
    for part in re.split(r"[,，;；]", spec):
        if not part.strip():
            continue
        m = _RANGE.match(part.replace("pp.", "").replace("p.", "").replace("页", ""))
        if m is None:
            return None
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        if last < first:
            return None
        total += last - first + 1
    return total or None


def _isbn13(value: str) -> str:
    raw = value.replace("-", "").replace(" ", "").upper()
    if not raw:
        return ""
    try:
        return str(stdnum_isbn.to_isbn13(stdnum_isbn.validate(raw))).replace("-", "")
    except Exception:  # stdnum raises several ValidationError kinds; a bad one matches nothing
        return ""


def _clusters_of(session: Work, book_key: int | str) -> set[int]:
    """The catalogue clusters a book key names: a cluster id, or every cluster with the ISBN."""
    if isinstance(book_key, int):
        return {book_key}
    isbn = _isbn13(book_key)
    if not isbn:
        return set()
    found = session.scalars(
        select(SourceRecord.cluster_id)
        .join(MatchKey, MatchKey.source_record_id == SourceRecord.id)
        .where(MatchKey.key == "isbn:" + isbn, SourceRecord.cluster_id.is_not(None))
    ).all()
    return {int(c) for c in found if c is not None}


def book_pages(session: Work, book_key: int | str) -> int | None:
    """A book's page count: the merged record's, else the largest of its source records'."""
    clusters = _clusters_of(session, book_key)
    best: int | None = None
    for cid in sorted(clusters):
        merged = session.scalar(select(Cluster.merged).where(Cluster.id == cid)) or {}
        value = (merged.get("pages") or {}).get("value")
        if isinstance(value, int) and value > 0:
            return value
        for normalized in session.scalars(
            select(SourceRecord.normalized).where(
                SourceRecord.cluster_id == cid, SourceRecord.deleted.is_(False)
            )
        ):
            pages = (normalized or {}).get("pages")
            if isinstance(pages, int) and pages > 0 and (best is None or pages > best):
                best = pages
    return best


def _same_book(cluster_id: int | None, req_isbn: str, clusters: set[int], isbn: str) -> bool:
    if cluster_id is not None and cluster_id in clusters:
        return True
    return bool(isbn) and _isbn13(req_isbn) == isbn


def pages_received(
    session: Work,
    reader_id: int,
    book_key: int | str,
    at: dt.datetime,
    *,
    exclude_request: int | None = None,
) -> int:
    """Pages of one book the reader asked for (or received) by copy in the seven days up to
    ``at``: a delivered document's page count, else the request's page list."""
    clusters = _clusters_of(session, book_key)
    isbn = _isbn13(book_key) if isinstance(book_key, str) else ""
    t = IllRequest
    rows = session.execute(
        select(t.id, t.cluster_id, t.isbn, t.pages).where(
            t.reader_id == reader_id,
            t.service_type == ServiceType.COPY.value,
            t.created_at > at - SHARE_WINDOW,
            t.created_at <= at,
            t.state.not_in(NOT_COUNTED),
        )
    ).all()
    total = 0
    for request_id, cluster_id, req_isbn, pages in rows:
        if request_id == exclude_request or not _same_book(cluster_id, req_isbn, clusters, isbn):
            continue
        delivered = session.scalar(
            select(DeliveredDocument.pages)
            .where(DeliveredDocument.request_id == request_id)
            .order_by(DeliveredDocument.id.desc())
            .limit(1)
        )
        total += delivered if delivered is not None else (count_pages(pages) or 0)
    return total


def check_limits(
    session: Work,
    reader: int | None,
    pages: int | None,
    book_key: int | str | None,
    at: dt.datetime | None = None,
    *,
    exclude_request: int | None = None,
    field: str = "pages",
) -> Policy:
    """Refuse a copy over the consortium's copyright policy in force at ``at``.

    ``pages``: pages wanted (None: not known, nothing to check); ``book_key``: the catalogue
    cluster id, or an ISBN. Over the pages per request, or over the share of one book the reader
    may receive in seven days (this request included): ``Invalid`` naming the limit. A book
    whose page count the catalogue does not know cannot be measured and passes the share check.
    ``field``: "pages" (a request's citation) or "file" (a delivered document), named in the
    refusal.
    """
    at = at or utcnow()
    per_request, share = LIMIT_MESSAGES[field]
    policy = service.current_policy(session, at)
    if pages is None:
        return policy
    if pages > policy.max_pages_per_request:
        raise Invalid(per_request, field=field, pages=pages, limit=policy.max_pages_per_request)
    if reader is None or book_key is None:
        return policy
    total = book_pages(session, book_key)
    if not total:
        return policy
    used = pages_received(session, reader, book_key, at, exclude_request=exclude_request)
    wanted = used + pages
    if wanted * 100 > policy.max_book_share_percent * total:
        raise Invalid(
            share,
            field=field,
            pages=wanted,
            total=total,
            percent=f"{wanted * 100 / total:.1f}",
            limit=policy.max_book_share_percent,
        )
    return policy


def check_request(
    session: Work, actor: Principal, new: NewRequest, at: dt.datetime | None = None
) -> None:
    """The copyright limits of a new request, before it is routed (copies only)."""
    if new.service_type != ServiceType.COPY.value:
        return
    reader = new.reader_id
    if reader is None and actor.role is Role.reader:
        reader = actor.user_id
    book_key: int | str | None = new.cluster_id
    if book_key is None and new.isbn:
        book_key = new.isbn
    check_limits(session, reader, count_pages(new.pages), book_key, at)


def create_request(
    session: Session, actor: Principal, new: NewRequest, *, at: dt.datetime | None = None
) -> Result:
    """``service.create_request`` with the copyright limits checked first (nothing is written
    when a limit refuses it)."""
    check_request(session, actor, new, at)
    return service.create_request(session, actor, new, at=at)


# ----------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class CheckedPdf:
    path: Path  # a temporary file holding the upload
    sha256: str
    size_bytes: int
    pages: int


def _spool(source: IO[bytes] | bytes, limit: int) -> tuple[Path, str, int]:
    """Copy the upload to a temporary file, hashing it, refusing it once over ``limit``."""
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(prefix="consortia-upload-", suffix=".pdf")
    path = Path(name)
    stream: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with open(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise Invalid(MSG_TOO_BIG, field="file", limit=_mb(limit))
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest(), size


def _mb(limit: int) -> str:
    return f"{limit / (1024 * 1024):.2f}".rstrip("0").rstrip(".")


def check_pdf(source: IO[bytes] | bytes, *, limit: int | None = None) -> CheckedPdf:
    """The upload as a temporary file once it is a readable, unencrypted PDF within the size
    limit (``settings.max_upload_bytes`` by default); otherwise ``Invalid`` naming the reason
    and no file left behind."""
    limit = limit or get_settings().max_upload_bytes
    path, sha, size = _spool(source, limit)
    try:
        if size == 0:
            raise Invalid(MSG_EMPTY_FILE, field="file")
        with path.open("rb") as fh:
            head = fh.read(1024)
        # The header may follow a little junk (the PDF reference allows 1 KiB of it).
        if PDF_MAGIC not in head:
            raise Invalid(MSG_NOT_PDF, field="file")
        try:
            reader = PdfReader(path, strict=False)
            if reader.is_encrypted:
                raise Invalid(MSG_ENCRYPTED, field="file")
            pages = len(reader.pages)
            for page in reader.pages:
                _ = page.mediabox  # a page tree that does not resolve is a broken file
        except Invalid:
            raise
        except Exception as exc:  # a damaged file breaks pypdf in many ways; all mean unreadable
            raise Invalid(MSG_BROKEN_PDF, field="file") from exc
        if pages == 0:
            raise Invalid(MSG_NO_PAGES, field="file")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return CheckedPdf(path, sha, size, pages)


def card_number(user: User | None) -> str:
    """What the stamp calls the reader's card number (see the module's note)."""
    if user is None:
        return "-"
    name = user.username
    return name if name.isascii() and name.isprintable() else f"U{user.id}"


def stamp_text(card: str, request_id: int, day: dt.date) -> str:
    return f"Card {card} | ILL request {request_id} | {day.isoformat()} | For private study only"


def stamp(source: Path, target: Path, text: str) -> None:
    """Write ``source`` to ``target`` with ``text`` drawn at the foot of every page."""
    reader = PdfReader(source, strict=False)
    writer = PdfWriter()
    overlays: dict[tuple[float, float], Any] = {}
    for page in reader.pages:
        box = page.mediabox
        width, height = float(box.width), float(box.height)
        key = (round(width, 2), round(height, 2))
        overlay = overlays.get(key)
        if overlay is None:
            buf = io.BytesIO()
            canvas = Canvas(buf, pagesize=(width, height))
            size = max(5.0, min(8.0, width / 80))
            canvas.setFont("Helvetica", size)
            canvas.setFillColor(Color(0.35, 0.35, 0.35))
            canvas.drawCentredString(width / 2, size * 1.5, text)
            canvas.showPage()
            canvas.save()
            buf.seek(0)
            overlay = overlays[key] = PdfReader(buf).pages[0]
        out = writer.add_page(page)
        # The overlay is drawn at the page's own origin (a media box need not start at 0,0),
        # undoing the page's rotation so the line reads upright at the bottom as displayed.
        out.transfer_rotation_to_content()
        box = out.mediabox
        out.merge_transformed_page(
            overlay, Transformation().translate(float(box.left), float(box.bottom))
        )
        # Merging leaves the page's content uncompressed (a text page grows tenfold).
        out.compress_content_streams()
    writer.add_metadata({"/Subject": text})
    with target.open("wb") as fh:
        writer.write(fh)


def documents_dir() -> Path:
    return get_settings().upload_dir / "documents"


# ----------------------------------------------------------------------------- upload


@dataclass(frozen=True)
class Uploaded:
    document_id: int
    request_id: int
    pages: int
    size_bytes: int
    sha256: str
    state: str
    files: tuple[Path, ...]  # written; the caller removes them if its commit fails


def _china_day(at: dt.datetime) -> dt.date:
    return at.astimezone(CHINA).date()


def upload(
    session: Session,
    actor: Principal,
    request_id: int,
    source: IO[bytes] | bytes,
    *,
    source_pages: str = "",
    at: dt.datetime | None = None,
) -> Uploaded:
    """The current lender delivers the document of a copy request.

    Checked first (the request, the lender, the file, the policy's pages per request); then the
    request is shipped (CopyCompleted), the original and the stamped file stored and the
    document recorded, with its event. The caller commits (and calls ``discard`` on failure).
    """
    at = at or utcnow()
    request = service.get_request(session, actor, request_id)
    if request.service_type != ServiceType.COPY.value:
        raise Conflict(MSG_LOAN, field="request", id=request_id)
    if actor.role is Role.reader or not actor.may_act_for(request.lender_id):
        raise Forbidden(service.MSG_NOT_LENDER)
    # ship() repeats CopyCompleted silently; a second document would leave two versions.
    earlier = session.scalar(
        select(DeliveredDocument.pages).where(DeliveredDocument.request_id == request_id).limit(1)
    )
    if earlier is not None:
        raise Conflict(MSG_DELIVERED, field="request", id=request_id, pages=earlier)
    source_pages = source_pages.strip()
    if len(source_pages) > 60:
        raise Invalid(service.MSG_TOO_LONG, field="source_pages", n=60)
    checked = check_pdf(source)
    files: list[Path] = []
    try:
        # What was delivered counts, not what was cited: the lender may not send more.
        book_key: int | str | None = request.cluster_id
        if book_key is None and request.isbn:
            book_key = request.isbn
        check_limits(
            session,
            request.reader_id,
            checked.pages,
            book_key,
            at,
            exclude_request=request_id,
            field="file",
        )
        lender_id = request.lender_id
        position = request.position
        result = service.ship(session, actor, request_id, at=at)
        reader = session.get(User, request.reader_id) if request.reader_id else None
        folder = documents_dir() / str(request_id)
        folder.mkdir(parents=True, exist_ok=True)
        original = folder / f"{checked.sha256}.pdf"
        stamped = folder / f"{checked.sha256}-stamped.pdf"
        shutil.move(checked.path, original)
        files.append(original)
        files.append(stamped)
        try:
            stamp(original, stamped, stamp_text(card_number(reader), request_id, _china_day(at)))
        except Exception as exc:  # it opened but its pages cannot be rewritten
            raise Invalid(MSG_BROKEN_PDF, field="file") from exc
        attempt_id = session.scalar(
            select(LenderAttempt.id).where(
                LenderAttempt.request_id == request_id, LenderAttempt.position == position
            )
        )
        doc = DeliveredDocument(
            request_id=request_id,
            attempt_id=attempt_id,
            file_path=str(original),
            stamped_path=str(stamped),
            sha256=checked.sha256,
            content_type=CONTENT_TYPE,
            pages=checked.pages,
            size_bytes=checked.size_bytes,
            source_pages=source_pages,
            uploaded_by_id=actor.user_id,
            uploaded_at=at,
        )
        session.add(doc)
        session.flush()
        events.record(
            session,
            actor,
            "ill.document.uploaded",
            service.ENTITY,
            request_id,
            {
                "document": doc.id,
                "pages": checked.pages,
                "bytes": checked.size_bytes,
                "sha256": checked.sha256,
                "lender": lender_id,
                "borrower": request.borrower_id,
            },
            member_id=lender_id,
        )
        session.flush()
    except BaseException:
        checked.path.unlink(missing_ok=True)
        discard(files)
        raise
    return Uploaded(
        doc.id,
        request_id,
        checked.pages,
        checked.size_bytes,
        checked.sha256,
        result.state,
        tuple(files),
    )


def discard(files: Iterable[Path]) -> None:
    """Remove files written by a transaction that did not commit."""
    for path in files:
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- links


@dataclass(frozen=True)
class LinkStatus:
    request_id: int
    document_id: int
    link_id: int
    pages: int
    created_at: dt.datetime
    expires_at: dt.datetime
    max_downloads: int
    downloads: int
    state: str  # active, expired, exhausted
    token: str | None = None  # only in the answer that created the link


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _link_state(link: DownloadLink, at: dt.datetime) -> str:
    if link.revoked_at is not None:
        return "revoked"
    if link.expired_at is not None or _aware(link.expires_at) <= at:
        return "expired"
    if link.downloads >= link.max_downloads:
        return "exhausted"
    return "active"


def _status(
    link: DownloadLink, doc: DeliveredDocument, at: dt.datetime, token: str | None
) -> LinkStatus:
    return LinkStatus(
        request_id=link.request_id,
        document_id=doc.id,
        link_id=link.id,
        pages=doc.pages,
        created_at=_aware(link.created_at),
        expires_at=_aware(link.expires_at),
        max_downloads=link.max_downloads,
        downloads=link.downloads,
        state=_link_state(link, at),
        token=token,
    )


def _requester_side(session: Session, actor: Principal, request_id: int) -> IllRequest:
    request = service.get_request(session, actor, request_id)
    if actor.role is Role.reader:
        return request  # get_request shows readers only their own
    if actor.is_consortium_admin or (
        actor.role in STAFF_ROLES
        and (actor.may_act_for(request.borrower_id) or actor.may_act_for(request.pickup_id))
    ):
        return request
    raise Forbidden(MSG_LINK_WHO)


def _document(session: Session, request: IllRequest) -> DeliveredDocument:
    doc = session.scalar(
        select(DeliveredDocument)
        .where(DeliveredDocument.request_id == request.id)
        .order_by(DeliveredDocument.id.desc())
        .limit(1)
    )
    if doc is None:
        if request.service_type != ServiceType.COPY.value:
            raise Conflict(MSG_LOAN, field="request", id=request.id)
        raise NotFound(MSG_NO_DOCUMENT, field="request", id=request.id)
    return doc


def _current_link(session: Session, doc: DeliveredDocument) -> DownloadLink | None:
    return session.scalar(
        select(DownloadLink)
        .where(DownloadLink.document_id == doc.id, DownloadLink.revoked_at.is_(None))
        .order_by(DownloadLink.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )


def _new_link(
    session: Session,
    actor: Principal,
    request: IllRequest,
    doc: DeliveredDocument,
    *,
    expires_at: dt.datetime,
    max_downloads: int,
    downloads: int,
    at: dt.datetime,
    action: str,
) -> tuple[DownloadLink, str]:
    token = secrets.token_urlsafe(32)
    link = DownloadLink(
        document_id=doc.id,
        request_id=request.id,
        reader_id=request.reader_id,
        token_hash=_hash(token),
        created_at=at,
        expires_at=expires_at,
        max_downloads=max_downloads,
        downloads=downloads,
    )
    session.add(link)
    session.flush()
    events.record(
        session,
        actor,
        action,
        service.ENTITY,
        request.id,
        {"link": link.id, "expires": expires_at.isoformat(), "max": max_downloads},
        member_id=request.borrower_id,
    )
    session.flush()
    return link, token


def link_for(
    session: Session, actor: Principal, request_id: int, *, at: dt.datetime | None = None
) -> LinkStatus:
    """The reader's download link of a delivered copy: created at the first call (its token
    is in this answer only), its status afterwards. It expires ``link_valid_days`` after the
    upload (the policy in force then) and after ``max_downloads`` downloads."""
    at = at or utcnow()
    request = _requester_side(session, actor, request_id)
    doc = _document(session, request)
    link = _current_link(session, doc)
    if link is not None:
        return _status(link, doc, at, None)
    uploaded = _aware(doc.uploaded_at)
    policy = service.current_policy(session, uploaded)
    expires = uploaded + dt.timedelta(days=policy.link_valid_days)
    # Never asked for in time: no link is made that could not be used.
    if expires <= at:
        raise Gone(MSG_LINK_EXPIRED, date=_china_day(expires).isoformat())
    if doc.removed_at is not None:
        raise Gone(MSG_FILE_REMOVED)
    link, token = _new_link(
        session,
        actor,
        request,
        doc,
        expires_at=expires,
        max_downloads=policy.max_downloads,
        downloads=0,
        at=at,
        action="ill.link.created",
    )
    return _status(link, doc, at, token)


def reissue_link(
    session: Session, actor: Principal, request_id: int, *, at: dt.datetime | None = None
) -> LinkStatus:
    """A new token for a usable link whose token was lost: the old one stops working; the
    expiry and the downloads left are carried over (a new link never extends either)."""
    at = at or utcnow()
    request = _requester_side(session, actor, request_id)
    doc = _document(session, request)
    old = _current_link(session, doc)
    if old is None:
        return link_for(session, actor, request_id, at=at)
    state = _link_state(old, at)
    if state != "active":
        raise Conflict(MSG_NO_ACTIVE_LINK, field="request", id=request_id)
    old.revoked_at = at
    session.flush()
    link, token = _new_link(
        session,
        actor,
        request,
        doc,
        expires_at=_aware(old.expires_at),
        max_downloads=old.max_downloads,
        downloads=old.downloads,
        at=at,
        action="ill.link.reissued",
    )
    return _status(link, doc, at, token)


# ----------------------------------------------------------------------------- download


@dataclass(frozen=True)
class Download:
    """The outcome of a use of a link; the caller commits (the log), then raises ``error``."""

    outcome: str  # ok, unauthenticated, forbidden, revoked, expired, exhausted, removed
    path: Path | None = None
    filename: str = ""
    error: DomainError | None = None


def _may_download(actor: Principal, link: DownloadLink, request: IllRequest) -> bool:
    if actor.user_id is not None and link.reader_id is not None and actor.user_id == link.reader_id:
        return True
    if actor.role is Role.reader:
        return False
    return actor.is_consortium_admin or (
        actor.role in STAFF_ROLES
        and (actor.may_act_for(request.borrower_id) or actor.may_act_for(request.pickup_id))
    )


def download(
    session: Session,
    actor: Principal | None,
    token: str,
    *,
    address: str = "",
    at: dt.datetime | None = None,
) -> Download:
    """Use a download link: only its reader (or the borrowing library's staff), before it
    expires and while downloads are left. Every use is logged with who, when and from where;
    the reader's first download confirms the copy received (the request completes)."""
    at = at or utcnow()
    stmt = select(DownloadLink).where(DownloadLink.token_hash == _hash(token.strip()))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    link = session.scalar(stmt.execution_options(populate_existing=True))
    if link is None:
        raise NotFound(MSG_LINK_UNKNOWN, field="token")
    request = session.get(IllRequest, link.request_id, populate_existing=True)
    doc = session.get(DeliveredDocument, link.document_id)
    assert request is not None and doc is not None  # foreign keys with ON DELETE CASCADE
    error: DomainError | None = None
    outcome = "ok"
    state = _link_state(link, at)
    if actor is None:
        outcome, error = "unauthenticated", Unauthorized(MSG_SIGN_IN)
    elif not _may_download(actor, link, request):
        outcome, error = "forbidden", Forbidden(MSG_LINK_NOT_YOURS)
    elif state == "revoked":
        outcome, error = "revoked", Gone(MSG_LINK_REVOKED)
    elif state == "expired":
        day = _china_day(_aware(link.expires_at)).isoformat()
        outcome, error = "expired", Gone(MSG_LINK_EXPIRED, date=day)
    elif state == "exhausted":
        outcome, error = "exhausted", Gone(MSG_LINK_EXHAUSTED, n=link.max_downloads)
    elif doc.removed_at is not None or not doc.stamped_path or not Path(doc.stamped_path).exists():
        outcome, error = "removed", Gone(MSG_FILE_REMOVED)
    else:
        # Conditional on the count read: two downloads at once cannot both take the last one.
        counted = session.execute(
            update(DownloadLink)
            .where(DownloadLink.id == link.id, DownloadLink.downloads < DownloadLink.max_downloads)
            .values(downloads=DownloadLink.downloads + 1)
            .execution_options(synchronize_session=False)
        )
        if counted.rowcount != 1:  # type: ignore[attr-defined]
            outcome, error = "exhausted", Gone(MSG_LINK_EXHAUSTED, n=link.max_downloads)
    session.add(
        DownloadLog(
            link_id=link.id,
            at=at,
            user_id=actor.user_id if actor else None,
            address=address[:64],
            outcome=outcome,
        )
    )
    who = actor or Principal(kind="anonymous", label=f"anonymous:{address[:40]}")
    payload: dict[str, Any] = {"link": link.id, "document": doc.id, "outcome": outcome}
    if outcome == "ok":
        payload["count"] = link.downloads + 1
    events.record(
        session,
        who,
        "ill.document.downloaded" if outcome == "ok" else "ill.document.download_refused",
        service.ENTITY,
        request.id,
        payload,
        member_id=request.borrower_id,
    )
    session.flush()
    if (
        outcome == "ok"
        and actor is not None
        and actor.role is Role.reader
        and request.state == RequestState.SHIPPED.value
    ):
        service.received(session, actor, request.id, at=at)
    if error is not None:
        return Download(outcome, error=error)
    assert doc.stamped_path is not None
    return Download(outcome, Path(doc.stamped_path), f"ill-{request.id}.pdf")


# ----------------------------------------------------------------------------- clean-up


FILES_PAGE = 200  # documents looked at per statement by remove_expired_files


def remove_expired_files(
    session: Session, actor: Principal, *, now: dt.datetime | None = None, limit: int = 500
) -> int:
    """Delete the files of delivered documents nobody can download any more: past their link
    time (``link_valid_days`` after the upload, the policy then), or whose link is used up.
    The rows stay, marked ``removed_at``, for the statistics; each removal is an event. At most
    ``limit`` removals; the count. The caller commits; a file already gone is no error (a retry
    after a crash).

    Documents are looked at oldest first, page by page past those still in use, so a used-up
    link behind many live ones is reached too. On PostgreSQL the rows are locked with SKIP
    LOCKED: two workers at once never remove (and record) one document twice."""
    now = now or utcnow()
    pg = session.get_bind().dialect.name == "postgresql"
    done = 0
    after = 0
    while done < limit:
        stmt = (
            select(DeliveredDocument)
            .where(
                DeliveredDocument.removed_at.is_(None),
                DeliveredDocument.uploaded_at <= now,
                DeliveredDocument.id > after,
            )
            .order_by(DeliveredDocument.id)
            .limit(FILES_PAGE)
        )
        if pg:
            stmt = stmt.with_for_update(skip_locked=True)
        docs = session.scalars(stmt).all()
        if not docs:
            break
        for doc in docs:
            after = doc.id
            if done >= limit:
                break
            uploaded = _aware(doc.uploaded_at)
            days = service.current_policy(session, uploaded).link_valid_days
            link = _current_link(session, doc)
            spent = link is not None and _link_state(link, now) in ("expired", "exhausted")
            if uploaded + dt.timedelta(days=days) > now and not spent:
                continue
            for name in (doc.file_path, doc.stamped_path):
                if name:
                    Path(name).unlink(missing_ok=True)
            doc.removed_at = now
            request = session.get(IllRequest, doc.request_id)
            events.record(
                session,
                actor,
                "ill.document.removed",
                service.ENTITY,
                doc.request_id,
                {"document": doc.id, "reason": "exhausted" if spent else "expired"},
                member_id=request.borrower_id if request else None,
            )
            done += 1
    session.flush()
    return done
