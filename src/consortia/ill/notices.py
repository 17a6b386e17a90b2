"""E-mail notices of resource sharing: to readers (request received, supplied, document ready,
unfilled with the reasons, cancelled, loan due soon, overdue) and to lending libraries (a new
request in their queue), in the reader's language (zh-CN when not known).

A notice is written first (``ill_notices``, once per ``dedupe_key``) in the transaction of the
change that causes it, and sent later by ``send_pending`` (the Huey task in
``ill/notice_tasks.py``): a change never waits for, or fails with, the mail server, and a
notice of a change that rolled back is never sent.

Hooks: ``after(session, result)`` takes the ``Result`` of any ``ill.service`` transition and
writes the notices of its events; ``notify(session, request_id, action)`` does it for one event
(e.g. ``delivered`` with the download link, from the delivery module). The timers of
``ill.service`` queue ``loan_due_soon`` and ``loan_overdue`` rows themselves without text;
``send_pending`` composes those before sending.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import smtplib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.models import User
from consortia.db import utcnow
from consortia.events.models import Event
from consortia.i18n import DEFAULT_LANGUAGE, LANGUAGES, gettext, normalize_language
from consortia.ill.models import IllRequest, LenderAttempt, Notice
from consortia.members.models import Member
from consortia.settings import get_settings

MAX_ATTEMPTS = 5
SEND_BATCH = 100

# Which notices an event of the request's log causes.
READER = "reader"
LENDER = "lender"
EVENT_NOTICES: dict[str, tuple[tuple[str, str], ...]] = {
    "ill.request.created": (("created", READER),),
    "ill.request.sent": (("new_lending", LENDER),),
    "ill.request.shipped": (("shipped", READER),),
    "ill.request.unfilled": (("unfilled", READER),),
    "ill.request.cancelled": (("cancelled", READER),),
    "delivered": (("delivered", READER),),
    "ill.document.uploaded": (("delivered", READER),),
}

# Subjects and bodies (English msgids; zh-CN in locale/zh_CN/LC_MESSAGES/ill_pages.po).
SUBJECTS = {
    "created": "Your request {id} was received",
    "new_lending": "New request {id} in your lending queue",
    "shipped": "Your request {id} was supplied",
    "delivered": "Your document for request {id} is ready",
    "unfilled": "Your request {id} could not be filled",
    "cancelled": "Your request {id} was cancelled",
    "loan_due_soon": "Request {id}: your loan is due on {due}",
    "loan_overdue": "Request {id}: your loan is overdue since {due}",
}
BODIES = {
    "created": (
        "We received your request {id} for \u201c{title}\u201d ({service}). "
        "We are asking {lender} to supply it."
    ),
    "created_none": (
        "We received your request {id} for \u201c{title}\u201d ({service}). "
        "No library could be asked to supply it."
    ),
    "new_lending": (
        "{borrower} asks your library to supply \u201c{title}\u201d ({service}), request {id}. "
        "Please answer by {due}: {url}"
    ),
    "shipped_loan": (
        "{lender} sent the book \u201c{title}\u201d for your request {id}. "
        "Collect it at {pickup}; it is due back on {due}."
    ),
    "shipped_copy": "{lender} supplied \u201c{title}\u201d for your request {id}.",
    "delivered": (
        "The document \u201c{title}\u201d for your request {id} is ready. "
        "Download it from your requests: {url}"
    ),
    "unfilled": (
        "We are sorry: your request {id} for \u201c{title}\u201d could not be filled.\n"
        "Reasons:\n{reasons}"
    ),
    "cancelled": "Your request {id} for \u201c{title}\u201d was cancelled.",
    "loan_due_soon": (
        "The book \u201c{title}\u201d (request {id}) is due back on {due}. "
        "Return it to {pickup} or ask for a renewal: {url}"
    ),
    "loan_overdue": (
        "The book \u201c{title}\u201d (request {id}) was due back on {due}. "
        "Please return it to {pickup} as soon as you can."
    ),
}
SERVICE_NAMES = {"Loan": "loan", "Copy": "copy"}
GREETING = "Dear {name},"
SIGNATURE = "Your requests: {url}"
NO_ADDRESS = "no e-mail address"
UNKNOWN_LIBRARY = "no library"


def _t(lang: str, msgid: str, **params: Any) -> str:
    return gettext(lang, msgid).format(**params)


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d")


def _member_name(member: Member | None, lang: str) -> str:
    if member is None:
        return gettext(lang, UNKNOWN_LIBRARY)
    return str((member.name_zh if lang == "zh-CN" else member.name_en) or member.code)


@dataclass(frozen=True)
class Composed:
    subject: str
    body: str


def compose(
    session: Session, req: IllRequest, kind: str, lang: str, extra: dict[str, Any] | None = None
) -> Composed:
    """A notice's subject and text in ``lang`` (zh-CN or en)."""
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
    extra = extra or {}
    base = get_settings().public_url.rstrip("/")
    lender = session.get(Member, req.lender_id) if req.lender_id else None
    params: dict[str, Any] = {
        "id": req.id,
        "title": req.article_title or req.title,
        "service": gettext(lang, SERVICE_NAMES.get(req.service_type, req.service_type)),
        "lender": _member_name(lender, lang),
        "borrower": _member_name(session.get(Member, req.borrower_id), lang),
        "pickup": _member_name(session.get(Member, req.pickup_id), lang),
        "due": _when(req.loan_due_at or req.due_at),
        "url": f"{base}/requests/mine",
        "link": extra.get("link", ""),
        "expires": extra.get("expires", ""),
        "reasons": "",
    }
    body_key = kind
    if kind == "created" and req.lender_id is None:
        body_key = "created_none"
    elif kind == "shipped":
        body_key = "shipped_loan" if req.service_type == "Loan" else "shipped_copy"
    elif kind == "new_lending":
        params["due"] = _when(req.due_at)
        params["url"] = f"{base}/queues/lending"
    elif kind == "unfilled":
        params["reasons"] = "\n".join(f"- {r}" for r in _reasons(session, req, lang))
    subject = _t(lang, SUBJECTS[kind], **params)
    text = _t(lang, BODIES[body_key], **params)
    name = str(extra.get("name") or "")
    lines = [_t(lang, GREETING, name=name), "", text, ""]
    if kind != "new_lending":
        lines.append(_t(lang, SIGNATURE, url=f"{base}/requests/mine"))
    return Composed(subject, "\n".join(lines).strip() + "\n")


def _reasons(session: Session, req: IllRequest, lang: str) -> list[str]:
    """Why nobody supplied it: each asked library's own words, then the hub's reason."""
    out: list[str] = []
    for a in session.scalars(
        select(LenderAttempt)
        .where(LenderAttempt.request_id == req.id, LenderAttempt.status.is_not(None))
        .order_by(LenderAttempt.position)
    ):
        member = session.get(Member, a.lender_id)
        why = a.note or gettext(lang, a.closed or "") or ""
        if why:
            out.append(f"{_member_name(member, lang)}: {why}")
    if req.outcome:
        out.append(gettext(lang, req.outcome))
    return out


def _recipient(
    session: Session, req: IllRequest, who: str
) -> tuple[int | None, int | None, str, str, str]:
    """(user id, member id, address, language, name) of a notice's recipient."""
    if who == READER:
        user = session.get(User, req.reader_id) if req.reader_id else None
        if user is None:
            return None, req.borrower_id, "", DEFAULT_LANGUAGE, ""
        lang = normalize_language(user.language) if user.language else DEFAULT_LANGUAGE
        return user.id, req.borrower_id, user.email or "", lang, user.display_name or user.username
    lender = session.get(Member, req.lender_id) if req.lender_id else None
    if lender is None:
        return None, None, "", DEFAULT_LANGUAGE, ""
    name = lender.contact_name or lender.name_zh
    return None, lender.id, lender.contact_email or "", DEFAULT_LANGUAGE, name


def _dedupe(kind: str, req: IllRequest, extra: dict[str, Any]) -> str:
    if kind == "new_lending":
        return f"new_lending:{req.id}:{req.position}"
    if kind == "delivered":
        return f"delivered:{req.id}:{extra.get('document', extra.get('link', ''))}"[:120]
    return f"{kind}:{req.id}"


def notify(session: Session, request_id: int, action: str, **extra: Any) -> list[Notice]:
    """Write the notices one event of a request causes (nothing for other events; a notice
    already written is not written again). ``extra``: ``link`` and ``expires`` for delivered."""
    plan = EVENT_NOTICES.get(action, ())
    if not plan:
        return []
    req = session.scalar(
        select(IllRequest)
        .where(IllRequest.id == request_id)
        .execution_options(populate_existing=True)
    )
    if req is None:
        return []
    out: list[Notice] = []
    for kind, who in plan:
        key = _dedupe(kind, req, extra)
        if session.scalar(select(Notice.id).where(Notice.dedupe_key == key)) is not None:
            continue
        user_id, member_id, email, lang, name = _recipient(session, req, who)
        if user_id is None and member_id is None:
            continue
        text = compose(session, req, kind, lang, {**extra, "name": name})
        notice = Notice(
            request_id=req.id,
            user_id=user_id,
            member_id=member_id,
            email=email,
            kind=kind,
            language=lang,
            dedupe_key=key,
            params={"request": req.id, **{k: str(v) for k, v in extra.items()}},
            subject=text.subject,
            body=text.body,
            state="pending" if email else "skipped",
            last_error=None if email else NO_ADDRESS,
        )
        session.add(notice)
        out.append(notice)
    session.flush()
    return out


class _HasEvents(Protocol):
    @property
    def request_id(self) -> int: ...
    @property
    def events(self) -> tuple[str, ...]: ...


def after(session: Session, result: _HasEvents) -> list[Notice]:
    """The notices of every event a service call wrote (its ``Result``)."""
    out: list[Notice] = []
    for action in result.events:
        out.extend(notify(session, result.request_id, action))
    return out


# Events read again behind the mark: on PostgreSQL a transaction may commit an event with a
# lower id after a higher one was read (ids are taken at insert, visible at commit).
SCAN_OVERLAP = 500
# Events older than this get no notice (a replayed history, a mark lost with the job store).
SCAN_WINDOW = dt.timedelta(days=2)
ENTITY = "ill_request"


def notify_from_events(
    session: Session, *, after_id: int = 0, now: dt.datetime | None = None, limit: int = 5000
) -> int:
    """The notices of the request events written since event ``after_id`` by anyone (the API,
    ISO 18626 peers, the timers), whether or not the caller called ``after``: notices are
    written once, so reading an event twice is harmless. Returns the mark for the next run."""
    now = now or utcnow()
    rows = session.execute(
        select(Event.id, Event.entity_id, Event.action, Event.at)
        .where(
            Event.id > max(0, after_id - SCAN_OVERLAP),
            Event.entity_type == ENTITY,
            Event.action.in_(list(EVENT_NOTICES)),
        )
        .order_by(Event.id)
        .limit(limit)
    ).all()
    last = after_id
    for event_id, entity_id, action, at in rows:
        last = max(last, int(event_id))
        moment = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        if moment < now - SCAN_WINDOW or not str(entity_id).isdigit():
            continue
        notify(session, int(entity_id), action)
    return last


# ---------------------------------------------------------------------------- sending


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    skipped: int = 0


def _message(notice: Notice) -> EmailMessage:
    settings = get_settings()
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = notice.email
    msg["Subject"] = notice.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or "localhost")
    msg["Content-Language"] = notice.language
    msg.set_content(notice.body, charset="utf-8")
    return msg


def _fill(session: Session, notice: Notice) -> None:
    """Text for a notice queued without it (the service's loan timers)."""
    req = session.get(IllRequest, notice.request_id) if notice.request_id else None
    if req is None or notice.kind not in SUBJECTS:
        return
    name = ""
    if notice.user_id:
        user = session.get(User, notice.user_id)
        if user is not None:
            name = user.display_name or user.username
    text = compose(session, req, notice.kind, normalize_language(notice.language), {"name": name})
    notice.subject, notice.body = text.subject, text.body


def send_pending(
    factory: Callable[[], Session],
    *,
    limit: int = SEND_BATCH,
    connect: Callable[[], smtplib.SMTP] | None = None,
) -> SendReport:
    """Send waiting notices over SMTP, oldest first; each is committed as it goes, so a crash
    resends at most one. Without ``smtp_host`` nothing is sent (they wait)."""
    report = SendReport()
    settings = get_settings()
    if connect is None:
        if not settings.smtp_host:
            return report
        host, port = settings.smtp_host, settings.smtp_port

        def connect() -> smtplib.SMTP:
            return smtplib.SMTP(host, port, timeout=30)

    smtp: smtplib.SMTP | None = None
    try:
        session = factory()
        try:
            ids = list(
                session.scalars(
                    select(Notice.id)
                    .where(Notice.state == "pending")
                    .order_by(Notice.created_at, Notice.id)
                    .limit(limit)
                )
            )
            for nid in ids:
                notice = session.scalar(
                    select(Notice)
                    .where(Notice.id == nid, Notice.state == "pending")
                    .with_for_update(skip_locked=True)
                )
                if notice is None:
                    session.rollback()
                    continue
                if not notice.subject:
                    _fill(session, notice)
                if not notice.email or not notice.subject:
                    notice.state = "skipped"
                    notice.last_error = NO_ADDRESS if not notice.email else "no text"
                    report.skipped += 1
                    session.commit()
                    continue
                notice.attempts += 1
                try:
                    if smtp is None:
                        smtp = connect()
                    smtp.send_message(_message(notice))
                except (OSError, smtplib.SMTPException) as exc:
                    notice.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                    if notice.attempts >= MAX_ATTEMPTS:
                        notice.state = "failed"
                    report.failed += 1
                    smtp = None
                else:
                    notice.state = "sent"
                    notice.sent_at = utcnow()
                    notice.last_error = None
                    report.sent += 1
                session.commit()
        finally:
            session.rollback()
            session.close()
    finally:
        if smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.quit()
    return report


def notices_of(session: Session, request_ids: Iterable[int]) -> list[Notice]:
    """The notices of some requests, oldest first (for pages and tests)."""
    return list(
        session.scalars(
            select(Notice).where(Notice.request_id.in_(list(request_ids))).order_by(Notice.id)
        )
    )
