"""``POST /iso18626``: member systems' ISO 18626 messages to the hub.

Who may call: a member library's system with its API token (``Authorization: Bearer``, role
``member_system``); the consortium office too (for tests and for relaying by hand). The sending
agency (``requestingAgencyId`` of a Request or a RequestingAgencyMessage, ``supplyingAgencyId``
of a SupplyingAgencyMessage) must be the token's member, else the answer is an ERROR naming
both. Without a token the answer is HTTP 401 (a peer's outbox retries it later).

Every answer to a readable POST is HTTP 200 with the matching confirmation (``application/xml``),
OK or ERROR with errorData:

- the body is read up to ``MAX_BODY`` bytes and no further; a larger one, not XML, a DOCTYPE
  (entities, external entities, DTDs), the wrong root -> BadlyFormedMessage; schema errors ->
  the error type ``iso18626.parse`` names; nothing is changed;
- an unknown agency, an unknown request id, an action or a status the request's state does not
  allow -> UnrecognisedDataValue naming the element and the value (or UnsupportedActionType);
- a message handled before (same ``iso18626.message_key``) gets the very same answer again and
  changes nothing (the answer is stored in ``ill_received_messages`` in the transaction of the
  change it made).

What each message does:

- ``SupplyingAgencyMessage`` (a member system lends for one of the hub's requests; the request
  is the one whose id is ``requestingAgencyRequestId``): RequestResponse, StatusChange and
  StatusRequestResponse report the lender's status (``service.lender_status``); RenewResponse
  answers a renewal (``answer_renewal``), CancelResponse a cancellation (``answer_cancel``);
  Notification is acknowledged. The member system's own id (``supplyingAgencyRequestId``) is
  kept on its rota row (``service.note_supplier_ref``) and named in the hub's later messages
  to it. A CancelResponse from a member the hub already moved on from (it sent that member a
  Cancel) is acknowledged and changes nothing.
- ``Request`` (a member system borrows through the hub, the hub acting as supplier network):
  a request of the hub with the member as requesting library and no reader of the hub (the
  member system's own patron is kept only as ``patron_ref``, the patron id it sent), its
  ``requestingAgencyRequestId`` as ``requester_ref``; it is routed by the hub's rota like any
  other. CopyOrLoan is asked as a Copy when a part (pages, an article) is named, else as a Loan.
- ``RequestingAgencyMessage`` (about such a request, found by the member and its
  ``requestingAgencyRequestId``): Received, ShippedReturn, Cancel and Renew are the service's
  requester actions; StatusRequest is answered by a StatusRequestResponse through the outbox;
  Notification is acknowledged.

The hub's own answers (its SupplyingAgencyMessages, its RequestingAgencyMessages) go out
through the outbox (``ill/peers.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from consortia.accounts.roles import Principal, Role
from consortia.errors import DomainError
from consortia.ill import iso18626 as iso
from consortia.ill import peers
from consortia.ill import service as ill
from consortia.ill.models import IllRequest, LenderAttempt, ReceivedMessage
from consortia.ill.states import (
    IllegalTransition,
    RequesterAction,
    ServiceType,
    Status,
    SupplierMessageReason,
    UnsupportedAction,
)
from consortia.ill.xmlsafe import MAX_BYTES
from consortia.members.models import Member
from consortia.web.deps import allow, get_db

MAX_BODY = MAX_BYTES
MEDIA_TYPE = "application/xml; charset=utf-8"

# errorData values (English; the protocol's field, also in locale/*/iso18626.po).
MSG_TOO_LARGE = "message larger than {n} bytes"
MSG_NO_AGENCY = "{element}: missing"
MSG_UNKNOWN_AGENCY = "{element}: {value} is not a member of this consortium"
MSG_NOT_TOKEN = "{element}: {value} is not the member of the API token ({code})"
MSG_UNKNOWN_REQUEST = "requestingAgencyRequestId: {value} is unknown"
MSG_NOT_REQUESTER = "requestingAgencyId: {value} is not the requesting library of request {id}"
MSG_NOT_LENDER = "supplyingAgencyId: {value} is not the lender of request {id}"
MSG_SAME_AGENCY = "supplyingAgencyId: {value} is the requesting agency itself"

BAD = iso.ErrorType.BADLY_FORMED_MESSAGE
VALUE = iso.ErrorType.UNRECOGNISED_DATA_VALUE

router = APIRouter(tags=["iso18626"])


class _Refused(Exception):
    """A refusal answered with errorData and not remembered (a retry may fare better)."""

    def __init__(self, error: iso.Iso18626Error) -> None:
        self.error = error


def _err(error_type: iso.ErrorType, template: str, **params: Any) -> iso.Iso18626Error:
    return iso.Iso18626Error(error_type, template.format(**params))


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (the rest is never read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/iso18626",
    response_class=Response,
    summary="ISO 18626 messages from member systems (2017 v1.2 and 2021-2)",
    responses={200: {"content": {"application/xml": {}}, "description": "The confirmation"}},
)
async def receive(
    request: Request,
    principal: Principal = allow(Role.member_system, Role.consortium_admin),
    db: Session = Depends(get_db),
) -> Response:
    body = await _read_limited(request, MAX_BODY)
    if body is None:
        answer = iso.confirmation_for(None, _err(BAD, MSG_TOO_LARGE, n=MAX_BODY))
    else:
        answer = await run_in_threadpool(handle, db, principal, body)
    return Response(answer, media_type=MEDIA_TYPE)


def handle(session: Session, principal: Principal, body: bytes) -> bytes:
    """Read, check and act on one message; the confirmation to answer with. Commits."""
    try:
        received = iso.parse_envelope(body, max_bytes=MAX_BODY)
    except iso.Iso18626Error as err:
        return iso.confirmation_for(None, err)
    msg, version = received.message, received.version
    if not isinstance(msg, iso.Request | iso.SupplyingAgencyMessage | iso.RequestingAgencyMessage):
        return iso.confirmation_for(msg, None, version=version)  # a confirmation: refused
    try:
        member = _sender(session, principal, msg)
    except _Refused as refused:
        session.rollback()
        return iso.confirmation_for(msg, refused.error, version=version)
    # Looked up only once the sender is known to be the caller: no member reads another's.
    key = iso.message_key(msg)
    stored = session.get(ReceivedMessage, key)
    if stored is not None and stored.answer is not None:
        return bytes(stored.answer)
    request_id: int | None = None
    actor = Principal(
        kind="token",
        label=principal.label,
        role=Role.member_system,
        user_id=principal.user_id,
        member_id=member.id,
        member_code=member.code,
    )
    try:
        request_id = _dispatch(session, actor, member, msg)
        answer = iso.confirmation_for(msg, None, version=version)
    except iso.Iso18626Error as err:
        session.rollback()
        answer = iso.confirmation_for(msg, err, version=version)
    except (IllegalTransition, UnsupportedAction) as exc:
        session.rollback()
        answer = iso.confirmation_for(msg, iso.error_for_refusal(exc), version=version)
    except DomainError as exc:
        session.rollback()
        error = iso.Iso18626Error(VALUE, exc.render())
        if exc.message == ill.MSG_CHANGED:
            # Another message moved the request meanwhile: if it was this very message (a
            # retry racing the original), its answer; else not remembered, a retry will do.
            stored = session.get(ReceivedMessage, key)
            if stored is not None and stored.answer is not None:
                return bytes(stored.answer)
            return iso.confirmation_for(msg, error, version=version)
        answer = iso.confirmation_for(msg, error, version=version)
    sender = iso.sender(msg)
    session.add(
        ReceivedMessage(
            message_key=key,
            kind=msg.kind.value,
            sender=(sender.symbol if sender else "")[:100],
            request_id=request_id,
            answer=answer,
        )
    )
    try:
        session.commit()
    except IntegrityError:
        # The same message was handled at the same moment by another process: its answer.
        session.rollback()
        stored = session.get(ReceivedMessage, key)
        if stored is not None and stored.answer is not None:
            return bytes(stored.answer)
        raise
    return answer


# ----------------------------------------------------------------------------- who sends


def _member_by_code(session: Session, code: str) -> Member | None:
    return session.scalar(select(Member).where(func.upper(Member.code) == code.strip().upper()))


def _sender(session: Session, principal: Principal, msg: iso.Message) -> Member:
    """The member that sent the message. Refusals here are not remembered: the right
    member's retry of the same bytes, or one sent after the member was admitted, is heard."""
    element = (
        "supplyingAgencyId" if isinstance(msg, iso.SupplyingAgencyMessage) else "requestingAgencyId"
    )
    agency = iso.sender(msg)
    if agency is None or not agency.value.strip():
        raise _Refused(_err(VALUE, MSG_NO_AGENCY, element=element))
    member = _member_by_code(session, agency.value)
    if member is None:
        raise _Refused(_err(VALUE, MSG_UNKNOWN_AGENCY, element=element, value=agency.value))
    if principal.role is Role.member_system and principal.member_id != member.id:
        raise _Refused(
            _err(
                VALUE,
                MSG_NOT_TOKEN,
                element=element,
                value=agency.value,
                code=principal.member_code or "?",
            )
        )
    return member


# ----------------------------------------------------------------------------- dispatch


def _dispatch(session: Session, actor: Principal, member: Member, msg: iso.Message) -> int | None:
    if isinstance(msg, iso.SupplyingAgencyMessage):
        return _supplying(session, actor, member, msg)
    if isinstance(msg, iso.RequestingAgencyMessage):
        return _requesting(session, actor, member, msg)
    assert isinstance(msg, iso.Request)
    return _request(session, actor, member, msg)


def _hub_request(session: Session, raw: str) -> IllRequest:
    """One of the hub's own requests, by the id the hub sent as requestingAgencyRequestId."""
    text = raw.strip()
    req = session.get(IllRequest, int(text)) if text.isdigit() and len(text) < 19 else None
    if req is None:
        raise _err(VALUE, MSG_UNKNOWN_REQUEST, value=raw)
    return req


def _supplying(
    session: Session, actor: Principal, member: Member, msg: iso.SupplyingAgencyMessage
) -> int:
    """A member system lending for one of the hub's requests reports how it goes."""
    header = msg.header
    req = _hub_request(session, header.requesting_agency_request_id)
    borrower = session.get(Member, req.borrower_id)
    wanted = header.requesting_agency_id.value.strip().upper()
    if borrower is None or borrower.code.upper() != wanted:
        raise _err(VALUE, MSG_NOT_REQUESTER, value=header.requesting_agency_id.value, id=req.id)
    info, status = msg.message_info, msg.status_info
    reason = info.reason_for_message
    if req.lender_id != member.id:
        if reason is SupplierMessageReason.CANCEL_RESPONSE and _former_lender(session, req, member):
            # The answer to the Cancel the hub sent when it moved on from this member (no
            # answer in time): acknowledged, nothing left to change.
            return req.id
        raise _err(VALUE, MSG_NOT_LENDER, value=member.code, id=req.id)
    # The member system's own id for the request, named again in the hub's later messages.
    ill.note_supplier_ref(session, actor, req.id, header.supplying_agency_request_id)
    note = info.note or ""
    if reason is SupplierMessageReason.RENEW_RESPONSE:
        approve = info.answer_yes_no is True or (
            info.answer_yes_no is None and status.due_date is not None
        )
        ill.answer_renewal(session, actor, req.id, approve=approve, due=status.due_date, note=note)
    elif reason is SupplierMessageReason.CANCEL_RESPONSE:
        ill.answer_cancel(
            session, actor, req.id, approve=info.answer_yes_no is not False, note=note
        )
    elif reason is SupplierMessageReason.NOTIFICATION:
        pass  # acknowledged; nothing changes
    else:
        ill.lender_status(session, actor, req.id, status.status, note=note, due=status.due_date)
    return req.id


def _former_lender(session: Session, req: IllRequest, member: Member) -> bool:
    """The member was asked for the request earlier and its turn is over."""
    found = session.scalar(
        select(LenderAttempt.id).where(
            LenderAttempt.request_id == req.id,
            LenderAttempt.lender_id == member.id,
            LenderAttempt.status.is_not(None),
            LenderAttempt.closed.is_not(None),
        )
    )
    return found is not None


def _requesting(
    session: Session, actor: Principal, member: Member, msg: iso.RequestingAgencyMessage
) -> int:
    """A member system that borrowed through the hub acts on its request."""
    ref = msg.header.requesting_agency_request_id
    req = session.scalar(
        select(IllRequest).where(
            IllRequest.borrower_id == member.id, IllRequest.requester_ref == ref.strip()
        )
    )
    if req is None:
        raise _err(VALUE, MSG_UNKNOWN_REQUEST, value=ref)
    action = msg.action
    if action is RequesterAction.RECEIVED:
        ill.received(session, actor, req.id)
    elif action is RequesterAction.SHIPPED_RETURN:
        ill.returned(session, actor, req.id)
    elif action is RequesterAction.CANCEL:
        ill.cancel(session, actor, req.id, reason=msg.note or "")
    elif action is RequesterAction.RENEW:
        ill.renew(session, actor, req.id)
    elif action is RequesterAction.STATUS_REQUEST:
        _status_response(session, member, req, msg)
    elif action is RequesterAction.NOTIFICATION:
        pass  # acknowledged; nothing changes
    else:
        raise UnsupportedAction(action.value)
    return req.id


def _status_response(
    session: Session, member: Member, req: IllRequest, msg: iso.RequestingAgencyMessage
) -> None:
    """Answer a StatusRequest with the current lender's status, through the outbox."""
    if not member.iso18626_url or req.lender_id is None:
        return
    lender = session.get(Member, req.lender_id)
    attempt_status = session.scalar(
        select(LenderAttempt.status).where(
            LenderAttempt.request_id == req.id, LenderAttempt.position == req.position
        )
    )
    if lender is None or attempt_status is None:
        return
    sam = peers.build_supplier_message(
        req,
        member.code,
        lender.code,
        SupplierMessageReason.STATUS_REQUEST_RESPONSE,
        Status(attempt_status),
        msg.header.timestamp,
        due=req.loan_due_at,
    )
    peers.enqueue(session, member.iso18626_url, sam, request_id=req.id, member_id=member.id)


def _request(session: Session, actor: Principal, member: Member, msg: iso.Request) -> int:
    """A member system borrows through the hub."""
    header = msg.header
    supplier = header.supplying_agency_id
    if supplier is not None and supplier.value.strip():
        found = _member_by_code(session, supplier.value)
        if found is None:
            raise _err(VALUE, MSG_UNKNOWN_AGENCY, element="supplyingAgencyId", value=supplier.value)
        if found.id == member.id:
            raise _err(VALUE, MSG_SAME_AGENCY, value=supplier.value)
    bib = msg.bibliographic_info
    service = msg.service_info
    part = bool(bib.title_of_component or bib.pages_requested)
    kind = service.service_type if service is not None else ServiceType.LOAN
    if kind is ServiceType.COPY_OR_LOAN:
        kind = ServiceType.COPY if part else ServiceType.LOAN
    pub = msg.publication_info
    need = service.need_before_date if service is not None else None
    patron = msg.patron_info
    new = ill.NewRequest(
        service_type=kind.value,
        title=bib.title or "",
        article_title=bib.title_of_component or "",
        author=bib.author or bib.author_of_component or "",
        volume="; ".join(bib.volumes),
        issue=bib.issue or "",
        pages=bib.pages_requested or "",
        year=(pub.publication_date or "") if pub else "",
        isbn=bib.item_id("ISBN") or "",
        issn=bib.item_id("ISSN") or "",
        doi=bib.item_id("DOI") or "",
        publisher=(pub.publisher or "") if pub else "",
        edition=bib.edition or "",
        needed_by=need.date() if need is not None else None,
        note=(service.note or "") if service is not None else "",
        via="iso18626",
        requester_ref=header.requesting_agency_request_id,
        patron_ref=patron.patron_id if patron is not None else None,
    )
    result = ill.create_request(session, actor, new)
    return result.request_id
