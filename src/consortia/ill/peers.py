"""ISO 18626 to member systems: what the hub tells them, and the outbox worker that delivers it.

A member whose ``iso18626_url`` is set runs its own ILL system (another hub, Koha, FOLIO, ...).
The hub talks to it in two roles:

- **as requester**, when one of the hub's requests is routed to that member: a ``Request`` when
  the request is sent to it, then ``RequestingAgencyMessage``s for the requester's actions
  (Received, ShippedReturn, Cancel, Renew), each naming the member system's own id for the
  request (``supplyingAgencyRequestId``, kept from its answers), and a Cancel when the hub
  moves on from it because it did not answer (or ship) in time.
  Its answers come back to ``/iso18626`` as ``SupplyingAgencyMessage``s
  (``ill/iso18626_api.py``).
- **as supplier network**, for requests that member sent to the hub's ``/iso18626``: a
  ``SupplyingAgencyMessage`` for each step the hub's lending library takes (the request is with
  a lender: ExpectToSupply; WillSupply; Loaned / CopyCompleted; LoanCompleted; Unfilled when no
  library of the hub can supply; the answers to Cancel and Renew).

What to send is derived from the request's events (the event log is written in the same
transaction as every transition, so no transition can be missed): ``messages_for_request``
maps each event to the message it calls for, built deterministically from the event (its
``at`` is the message's header timestamp). ``sync_request`` writes the missing ones to the
outbox (``ill_outbox``, unique ``message_key``: writing the same message twice is a no-op), so
it is idempotent and may run as often as one likes:

- the service calls ``after_transition(session, request_id)`` in the transaction of each
  transition (``service._tell_peers``), so that the message is committed with the change;
- ``sync(factory)`` (run by the outbox task before each delivery round) catches up every open
  request that involves a member system, so nothing is lost when a process died between the
  commit and the delivery, or when a message could not be built at the time.

Delivery (``deliver_due``): due ``pending`` rows, oldest first, each claimed by a lease (its
``next_attempt_at`` is pushed past the send's time-out, so a second worker, or a second
process on SQLite where there are no row locks, leaves it alone; on PostgreSQL the claim also
uses ``FOR UPDATE SKIP LOCKED``), then sent with ``outbox.attempt``: OK -> ``delivered``; the
peer's ERROR -> ``rejected`` (kept with its errorData for staff); no usable answer -> stays
``pending`` with exponential back-off. Rows are never deleted. A message waits while an older
one to the same peer about the same request is still pending, so a peer never sees Loaned
before WillSupply or ShippedReturn before Received.

Credentials: a member system's endpoint is called with the API token *it* issued to the hub
(``Authorization: Bearer``), the setting ``iso18626_tokens`` (``CONSORTIA_ISO18626_TOKENS``, a
JSON object from member code to token, ``{"CN-B": "ctk_..."}``; see ``consortia.settings``);
kept out of the database so that a copy of it does not hold the keys to the peers. A member
without a token is called without one.

Agency ids are ``ISIL:<member code>`` on both sides. Request ids: as requester, the hub's
request id is ``requestingAgencyRequestId`` and the member system's own id
(``supplyingAgencyRequestId``) is kept on its rota row (``ill_lender_attempts.supplier_ref``);
as supplier, the member system's id is kept as the request's ``requester_ref`` and the hub's
request id is the ``supplyingAgencyRequestId``. No reader's personal data leaves the hub: the
Request carries no patron details.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consortia.db import utcnow
from consortia.events.models import Event
from consortia.ill import iso18626 as iso
from consortia.ill import outbox
from consortia.ill.models import IllRequest, LenderAttempt, OutboxRow, ReceivedMessage
from consortia.ill.states import (
    TERMINAL_REQUEST_STATES,
    RequesterAction,
    ServiceType,
    Status,
    SupplierMessageReason,
)
from consortia.members.models import Member
from consortia.settings import get_settings

log = logging.getLogger(__name__)

AGENCY_TYPE = "ISIL"
# The schema version the hub writes. v1.2 (2017) is what deployed peers read; our own endpoint
# reads both.
SEND_VERSION: iso.SchemaVersion = "2017"
ENTITY = "ill_request"
# Closed requests are still looked at this long by ``sync`` (their last message, e.g.
# LoanCompleted, is written by the transition that closed them).
SYNC_WINDOW = dt.timedelta(days=7)
# A claimed row is left alone this long beyond the send's time-out (a crashed worker's claim
# runs out and the message is tried again).
LEASE_MARGIN = dt.timedelta(seconds=60)

# Requester-side events (the lender is a member system) and the action each one is.
REQUESTER_ACTIONS: dict[str, RequesterAction] = {
    "ill.request.received": RequesterAction.RECEIVED,
    "ill.request.returned": RequesterAction.SHIPPED_RETURN,
    "ill.request.cancel_requested": RequesterAction.CANCEL,
    "ill.loan.renew_requested": RequesterAction.RENEW,
}
SUPPLIER_EVENTS = frozenset(
    {
        "ill.request.sent",
        "ill.lender.status",
        "ill.request.shipped",
        "ill.request.completed",
        "ill.request.unfilled",
        "ill.request.cancelled",
        "ill.request.cancel_refused",
        "ill.loan.renewed",
        "ill.loan.renewal_refused",
    }
)


def agency(code: str) -> iso.AgencyId:
    return iso.AgencyId(AGENCY_TYPE, code)


@dataclass(frozen=True)
class Peer:
    id: int
    code: str
    url: str | None


@dataclass(frozen=True)
class Outgoing:
    """One message the hub owes a member system."""

    url: str
    member_id: int
    message: iso.Message
    event_id: int | None = None


def _members(session: Session) -> dict[int, Peer]:
    return {
        mid: Peer(mid, code, (url or "").strip() or None)
        for mid, code, url in session.execute(
            select(Member.id, Member.code, Member.iso18626_url)
        ).all()
    }


def peer_ids(session: Session) -> list[int]:
    """Members that run their own ISO 18626 system."""
    return [
        int(i)
        for i in session.scalars(
            select(Member.id).where(Member.iso18626_url.is_not(None), Member.iso18626_url != "")
        )
    ]


# ----------------------------------------------------------------------------- building messages


def _bibliographic(req: IllRequest) -> iso.BibliographicInfo:
    item_ids: list[iso.BibliographicItemId] = []
    if req.isbn:
        item_ids.append(iso.BibliographicItemId(req.isbn, iso.SchemeValue("ISBN")))
    if req.issn:
        item_ids.append(iso.BibliographicItemId(req.issn, iso.SchemeValue("ISSN")))
    if req.doi:
        item_ids.append(iso.BibliographicItemId(req.doi, iso.SchemeValue("DOI")))
    record_ids: tuple[iso.BibliographicRecordId, ...] = ()
    if req.cluster_id is not None:
        record_ids = (iso.BibliographicRecordId(str(req.cluster_id), iso.SchemeValue("CONSORTIA")),)
    return iso.BibliographicInfo(
        title=req.title or None,
        author=req.author or None,
        edition=req.edition or None,
        title_of_component=req.article_title or None,
        volumes=(req.volume,) if req.volume else (),
        issue=req.issue or None,
        pages_requested=req.pages or None,
        item_ids=tuple(item_ids),
        record_ids=record_ids,
    )


def build_request(req: IllRequest, borrower: str, lender: str, at: dt.datetime) -> iso.Request:
    """The Request the hub sends when one of its requests goes to a member system."""
    need = None
    if req.needed_by is not None:
        need = dt.datetime.combine(req.needed_by, dt.time(), tzinfo=dt.UTC)
    publication = None
    if req.publisher or req.year:
        publication = iso.PublicationInfo(
            publisher=req.publisher or None, publication_date=req.year or None
        )
    return iso.Request(
        header=iso.Header(
            requesting_agency_id=agency(borrower),
            supplying_agency_id=agency(lender),
            timestamp=at,
            requesting_agency_request_id=str(req.id),
        ),
        bibliographic_info=_bibliographic(req),
        publication_info=publication,
        service_info=iso.ServiceInfo(
            service_type=ServiceType(req.service_type),
            request_type=iso.RequestType.NEW,
            need_before_date=need,
            note=req.note or None,
        ),
    )


def build_action(
    req: IllRequest,
    borrower: str,
    lender: str,
    action: RequesterAction,
    at: dt.datetime,
    *,
    note: str | None = None,
    supplier_ref: str | None = None,
) -> iso.RequestingAgencyMessage:
    """A requester action on one of the hub's requests, for the member system lending it."""
    return iso.RequestingAgencyMessage(
        header=iso.Header(
            requesting_agency_id=agency(borrower),
            supplying_agency_id=agency(lender),
            timestamp=at,
            requesting_agency_request_id=str(req.id),
            supplying_agency_request_id=supplier_ref,
        ),
        action=action,
        note=note or None,
    )


def build_supplier_message(
    req: IllRequest,
    borrower: str,
    lender: str,
    reason: SupplierMessageReason,
    status: Status,
    at: dt.datetime,
    *,
    answer: bool | None = None,
    note: str | None = None,
    due: dt.datetime | None = None,
    shipped: bool = False,
) -> iso.SupplyingAgencyMessage:
    """A step of the hub's lender on a request a member system sent to the hub."""
    assert req.requester_ref is not None
    return iso.SupplyingAgencyMessage(
        header=iso.Header(
            requesting_agency_id=agency(borrower),
            supplying_agency_id=agency(lender),
            timestamp=at,
            requesting_agency_request_id=req.requester_ref,
            supplying_agency_request_id=str(req.id),
        ),
        message_info=iso.MessageInfo(reason_for_message=reason, answer_yes_no=answer, note=note),
        status_info=iso.StatusInfo(status=status, last_change=at, due_date=due),
        delivery_info=iso.DeliveryInfo(date_sent=at) if shipped else None,
    )


def _dt(value: Any) -> dt.datetime | None:
    if not value:
        return None
    out = dt.datetime.fromisoformat(str(value))
    return out if out.tzinfo else out.replace(tzinfo=dt.UTC)


def _supplier_message(
    ev: Event, req: IllRequest, borrower: str, lender: str
) -> iso.SupplyingAgencyMessage | None:
    """The SupplyingAgencyMessage an event of the hub's lender calls for (None: nothing)."""
    p = ev.payload or {}
    R = SupplierMessageReason

    def sam(reason: SupplierMessageReason, status: Status, **kw: Any) -> iso.SupplyingAgencyMessage:
        return build_supplier_message(req, borrower, lender, reason, status, ev.at, **kw)

    action = ev.action
    if action == "ill.request.sent":
        # A library of the hub has it in its lending queue.
        return sam(R.REQUEST_RESPONSE, Status.EXPECT_TO_SUPPLY)
    if action == "ill.lender.status" and p.get("status"):
        first = p.get("previous") == Status.REQUEST_RECEIVED.value
        note = p.get("condition") or None
        return sam(R.REQUEST_RESPONSE if first else R.STATUS_CHANGE, Status(p["status"]), note=note)
    if action == "ill.request.shipped" and p.get("status"):
        return sam(R.STATUS_CHANGE, Status(p["status"]), due=_dt(p.get("loan_due")), shipped=True)
    if action == "ill.request.completed" and p.get("status"):
        # Without a status it is the hub closing a delivered copy: the peer closed it already.
        return sam(R.STATUS_CHANGE, Status(p["status"]))
    if action == "ill.request.unfilled":
        reasons = p.get("reasons") or []
        note = "; ".join(str(r) for r in reasons)[:2000] or None
        return sam(R.REQUEST_RESPONSE, Status.UNFILLED, note=note)
    if action == "ill.request.cancelled":
        return sam(R.CANCEL_RESPONSE, Status.CANCELLED, answer=True)
    if action == "ill.request.cancel_refused":
        return sam(R.CANCEL_RESPONSE, Status(_status_now(req, p)), answer=False)
    if action == "ill.loan.renewed":
        return sam(
            R.RENEW_RESPONSE,
            Status(p.get("status") or Status.LOANED.value),
            answer=True,
            due=_dt(p.get("loan_due")),
        )
    if action == "ill.loan.renewal_refused":
        return sam(R.RENEW_RESPONSE, Status(_status_now(req, p)), answer=False)
    return None


def _status_now(req: IllRequest, payload: dict[str, Any]) -> str:
    """The lender's status for an answer that did not change it (a refusal)."""
    if payload.get("status"):
        return str(payload["status"])
    return Status.LOANED.value if req.shipped_at is not None else Status.WILL_SUPPLY.value


def addressed_supplier(session: Session, request_id: int) -> str | None:
    """The supplying agency a member system's Request named (read back from the confirmation
    the hub stored for it), or None (a 2021 Request may name none)."""
    answers = session.scalars(
        select(ReceivedMessage.answer).where(
            ReceivedMessage.request_id == request_id,
            ReceivedMessage.kind == iso.MessageKind.REQUEST.value,
        )
    ).all()
    for answer in answers:
        if not answer:
            continue
        try:
            confirmation = iso.parse(bytes(answer))
        except iso.Iso18626Error:
            continue
        header = getattr(confirmation, "confirmation_header", None)
        if header is not None and header.supplying_agency_id is not None:
            return str(header.supplying_agency_id.value)
    return None


def messages_for_request(
    session: Session, request_id: int, members: dict[int, Peer] | None = None
) -> list[Outgoing]:
    """Every ISO 18626 message the request's history calls for, in the order of its events."""
    req = session.get(IllRequest, request_id)
    if req is None:
        return []
    members = members if members is not None else _members(session)
    borrower = members.get(req.borrower_id)
    if borrower is None:
        return []
    events = session.scalars(
        select(Event)
        .where(Event.entity_type == ENTITY, Event.entity_id == str(request_id))
        .order_by(Event.id)
    ).all()
    out: list[Outgoing] = []
    addressed: str | None = None
    if borrower.url and req.requester_ref:
        addressed = addressed_supplier(session, request_id)
    for ev in events:
        p = ev.payload or {}
        lender_id = p.get("lender")
        lender = members.get(int(lender_id)) if lender_id is not None else None
        if lender is not None and lender.url and not borrower.url:
            # The hub asks a member system: a Request, then the requester's actions.
            msg: iso.Message | None = None
            # The member system's own id, as it stood when the event was written (the event
            # carries it): the message is the same, and so is its key, whenever it is built.
            ref = p.get("supplier_ref") or None
            if ev.action == "ill.request.sent":
                msg = build_request(req, borrower.code, lender.code, ev.at)
            elif ev.action in REQUESTER_ACTIONS:
                note = p.get("reason") or None
                msg = build_action(
                    req,
                    borrower.code,
                    lender.code,
                    REQUESTER_ACTIONS[ev.action],
                    ev.at,
                    note=note,
                    supplier_ref=ref,
                )
            elif ev.action == "ill.request.declined" and p.get("status") == "expired":
                # No answer (or no shipment) in time: the hub moved on to the next lender. The
                # member system's transaction is over too; tell it, or it would still supply.
                msg = build_action(
                    req,
                    borrower.code,
                    lender.code,
                    RequesterAction.CANCEL,
                    ev.at,
                    note=p.get("reason") or None,
                    supplier_ref=ref,
                )
            if msg is not None:
                out.append(Outgoing(lender.url, lender.id, msg, ev.id))
        elif (
            borrower.url
            and req.requester_ref
            and ev.action in SUPPLIER_EVENTS
            and (lender is None or not lender.url)
        ):
            # A member system asked the hub: each step of the hub's lender, in the name of the
            # library it asked (the hub may have routed the request to another of its members).
            supplier = addressed or (lender.code if lender is not None else None)
            if supplier is None:
                log.warning("request %s: no supplying agency to answer in the name of", req.id)
                continue
            sam = _supplier_message(ev, req, borrower.code, supplier)
            if sam is not None:
                out.append(Outgoing(borrower.url, borrower.id, sam, ev.id))
    return out


# ----------------------------------------------------------------------------- the outbox


def enqueue(
    session: Session,
    url: str,
    message: iso.Message,
    *,
    request_id: int | None = None,
    member_id: int | None = None,
    version: iso.SchemaVersion = SEND_VERSION,
    now: dt.datetime | None = None,
) -> OutboxRow | None:
    """Write one outgoing message to the outbox in the caller's transaction.

    The message is validated against the schema here (``MessageInvalid``: nothing written).
    Returns the new row, or None when the same message (``iso18626.message_key``) is queued or
    delivered already: enqueueing is idempotent.
    """
    body = iso.to_xml(message, version)
    key = iso.message_key(message)
    if session.scalar(select(OutboxRow.id).where(OutboxRow.message_key == key)) is not None:
        return None
    now = now or utcnow()
    row = OutboxRow(
        request_id=request_id,
        member_id=member_id,
        url=url,
        body=body,
        kind=message.kind.value,
        message_key=key,
        state=outbox.OutboxState.PENDING.value,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    return row


def sync_request(session: Session, request_id: int, *, now: dt.datetime | None = None) -> int:
    """Write the messages the request's history calls for and the outbox lacks; the count."""
    written = 0
    for out in messages_for_request(session, request_id):
        row = enqueue(
            session, out.url, out.message, request_id=request_id, member_id=out.member_id, now=now
        )
        written += row is not None
    return written


def after_transition(session: Session, request_id: int) -> int:
    """The hook for ``ill/service.py``: call it in the transaction of every transition of a
    request, so that the messages it calls for commit with it (cheap when no member system is
    involved: one look-up of the request and the members)."""
    req = session.get(IllRequest, request_id)
    if req is None:
        return 0
    peers = set(peer_ids(session))
    if not peers:
        return 0
    asked = set(
        session.scalars(
            select(LenderAttempt.lender_id).where(
                LenderAttempt.request_id == request_id, LenderAttempt.status.is_not(None)
            )
        )
    )
    if req.borrower_id not in peers and not (asked & peers):
        return 0
    return sync_request(session, request_id)


def requests_to_sync(session: Session, now: dt.datetime) -> list[int]:
    """Requests that involve a member system and are open (or closed within SYNC_WINDOW)."""
    peers = peer_ids(session)
    if not peers:
        return []
    asked = select(LenderAttempt.request_id).where(
        LenderAttempt.lender_id.in_(peers), LenderAttempt.status.is_not(None)
    )
    terminal = [s.value for s in TERMINAL_REQUEST_STATES]
    stmt = (
        select(IllRequest.id)
        .where(
            or_(IllRequest.borrower_id.in_(peers), IllRequest.id.in_(asked)),
            or_(
                IllRequest.state.not_in(terminal),
                IllRequest.closed_at.is_(None),
                IllRequest.closed_at >= now - SYNC_WINDOW,
            ),
        )
        .order_by(IllRequest.id)
    )
    return [int(i) for i in session.scalars(stmt)]


def sync(factory: Callable[[], Session], *, now: dt.datetime | None = None) -> int:
    """Catch up the outbox for every request involving a member system (idempotent)."""
    now = now or utcnow()
    with factory() as session:
        ids = requests_to_sync(session, now)
        session.rollback()
    written = 0
    for request_id in ids:
        with factory() as session:
            try:
                written += sync_request(session, request_id, now=now)
                session.commit()
            except IntegrityError:
                # Another worker wrote the same message meanwhile (unique message_key).
                session.rollback()
    return written


@dataclass
class DeliveryReport:
    """What one delivery round did (for the task's log and the tests)."""

    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    waiting: int = 0  # an older message to the same peer about the same request goes first
    skipped: int = 0  # claimed by another worker
    errors: list[str] = field(default_factory=list)


def peer_tokens() -> dict[str, str]:
    """Member code (upper case) -> the bearer token its system gave the hub: the setting
    ``iso18626_tokens`` (``CONSORTIA_ISO18626_TOKENS``; a value that is not a JSON object of
    strings stops the settings from loading, naming the setting)."""
    return dict(get_settings().iso18626_tokens)


def _as_message(row: OutboxRow) -> outbox.OutboxMessage:
    return outbox.OutboxMessage(
        url=row.url,
        body=bytes(row.body),
        kind=iso.MessageKind(row.kind),
        message_key=row.message_key,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        attempts=row.attempts,
        state=outbox.OutboxState(row.state),
        last_error=row.last_error,
        last_attempt_at=row.last_attempt_at,
        id=row.id,
    )


def _older_pending(session: Session, row: OutboxRow) -> bool:
    if row.request_id is None:
        return False
    found = session.scalar(
        select(OutboxRow.id)
        .where(
            OutboxRow.state == outbox.OutboxState.PENDING.value,
            OutboxRow.url == row.url,
            OutboxRow.request_id == row.request_id,
            OutboxRow.id < row.id,
        )
        .limit(1)
    )
    return found is not None


def deliver_due(
    factory: Callable[[], Session],
    *,
    now: dt.datetime | None = None,
    limit: int = 500,
    timeout: float = outbox.DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
    tokens: Mapping[str, str] | None = None,
) -> DeliveryReport:
    """Send the due messages of the outbox, oldest first; never deletes one.

    ``tokens`` (member code -> bearer token) defaults to ``peer_tokens()``; a given ``client``
    is used as it is (its own headers).
    """
    now = now or utcnow()
    report = DeliveryReport()
    bearer = {k.upper(): v for k, v in (tokens if tokens is not None else peer_tokens()).items()}
    codes: dict[int, str] = {}
    pending = outbox.OutboxState.PENDING.value
    with factory() as session:
        ids = list(
            session.scalars(
                select(OutboxRow.id)
                .where(OutboxRow.state == pending, OutboxRow.next_attempt_at <= now)
                .order_by(OutboxRow.id)
                .limit(limit)
            )
        )
        session.rollback()
    lease = now + dt.timedelta(seconds=timeout) + LEASE_MARGIN
    for row_id in ids:
        with factory() as session:
            stmt = select(OutboxRow).where(
                OutboxRow.id == row_id,
                OutboxRow.state == pending,
                OutboxRow.next_attempt_at <= now,
            )
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            row = session.scalar(stmt)
            if row is None:
                report.skipped += 1
                session.rollback()
                continue
            if _older_pending(session, row):
                report.waiting += 1
                session.rollback()
                continue
            # Claim it: a row whose next attempt lies in the future is nobody else's to send.
            claimed = session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == row_id,
                    OutboxRow.state == pending,
                    OutboxRow.next_attempt_at <= now,
                )
                .values(next_attempt_at=lease)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                report.skipped += 1
                session.rollback()
                continue
            message = _as_message(row)
            member_id = row.member_id
            session.commit()
            if member_id is not None and member_id not in codes:
                codes[member_id] = (
                    session.scalar(select(Member.code).where(Member.id == member_id)) or ""
                )
            token = bearer.get(codes.get(member_id or 0, "").upper())
            if client is None and token:
                with httpx.Client(
                    headers={"Authorization": f"Bearer {token}"}, follow_redirects=False
                ) as own:
                    updated, _confirmation = outbox.attempt(
                        message, now=now, timeout=timeout, client=own
                    )
            else:
                updated, _confirmation = outbox.attempt(
                    message, now=now, timeout=timeout, client=client
                )
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id)
                .values(
                    state=updated.state.value,
                    attempts=updated.attempts,
                    next_attempt_at=updated.next_attempt_at,
                    last_attempt_at=updated.last_attempt_at,
                    last_error=updated.last_error,
                )
                .execution_options(synchronize_session=False)
            )
            session.commit()
            if updated.state is outbox.OutboxState.DELIVERED:
                report.delivered += 1
            elif updated.state is outbox.OutboxState.REJECTED:
                report.rejected += 1
                report.errors.append(f"{row_id}: {updated.last_error}")
                log.warning("ISO 18626 message %s refused: %s", row_id, updated.last_error)
            else:
                report.failed += 1
                report.errors.append(f"{row_id}: {updated.last_error}")
    return report


def run_once(
    factory: Callable[[], Session],
    *,
    now: dt.datetime | None = None,
    timeout: float = outbox.DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
    tokens: Mapping[str, str] | None = None,
) -> DeliveryReport:
    """One round of the worker: catch up the outbox, then deliver what is due."""
    sync(factory, now=now)
    return deliver_due(factory, now=now, timeout=timeout, client=client, tokens=tokens)


def outbox_rows(session: Session, request_id: int | None = None) -> Iterable[OutboxRow]:
    """The outbox, oldest first (for staff pages and tests)."""
    stmt = select(OutboxRow).order_by(OutboxRow.id)
    if request_id is not None:
        stmt = stmt.where(OutboxRow.request_id == request_id)
    return session.scalars(stmt).all()


# ----------------------------------------------------------------------------- the periodic task

from huey import crontab  # noqa: E402

from consortia.tasks import huey  # noqa: E402


@huey.periodic_task(crontab(minute="*"))
def deliver_outbox() -> dict[str, int]:
    """Every minute: catch up and deliver the ISO 18626 outbox (back-off is per message)."""
    from consortia.db import session_factory

    report = run_once(session_factory())
    return {
        "delivered": report.delivered,
        "rejected": report.rejected,
        "failed": report.failed,
        "waiting": report.waiting,
    }
