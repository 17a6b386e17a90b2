"""REST routes for resource sharing (/api/v1/requests): thin — parse, call ``ill.service``,
queue the notices of what changed, commit, answer with the request as it now stands.

Who sees what (the service decides): a reader only their own requests; a library's staff (and
its system's token) the requests of its readers and those it is asked to supply; the office
everything. An action the state does not allow is 409 with the state and the action named.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal, Role
from consortia.ill import notices, service
from consortia.ill.models import IllRequest, LenderAttempt
from consortia.members.models import Member
from consortia.web.deps import allow, get_db

router = APIRouter(prefix="/api/v1/requests", tags=["requests"])

STAFF = (Role.library_staff, Role.library_admin, Role.consortium_admin, Role.member_system)
ANYONE = (Role.reader, *STAFF)
RequestId = Annotated[int, Path(ge=1, le=2**62, description="The request's number.")]
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not your library's request, or not your side of it"},
    404: {"description": "Unknown request (or not yours, for a reader)"},
    409: {"description": "The request's state does not allow this; the answer names both"},
    422: {"description": "A field is invalid; the answer names it"},
}


# ----------------------------------------------------------------------------- schemas


class RequestIn(BaseModel):
    """A new request: a catalogue record (``cluster_id``), a citation, or both."""

    service_type: Literal["Loan", "Copy"] = Field(
        description="Loan (returnable, 返还式) or Copy (non-returnable, 非返还式)."
    )
    cluster_id: int | None = Field(default=None, ge=1, description="Union catalogue record.")
    title: str = Field(default="", description="Book or journal title.")
    article_title: str = Field(default="", description="Article or chapter.")
    author: str = ""
    volume: str = ""
    issue: str = ""
    pages: str = ""
    year: str = ""
    issn: str = ""
    isbn: str = ""
    doi: str = ""
    publisher: str = ""
    edition: str = ""
    needed_by: dt.date | None = None
    note: str = ""
    reader_id: int | None = Field(
        default=None, ge=1, description="Staff: the reader it is for. Readers: leave out."
    )
    borrower: str | None = Field(
        default=None, max_length=16, description="The office only, without a reader."
    )
    pickup: str | None = Field(default=None, max_length=16, description="Member code.")
    language: Literal["chinese", "foreign"] | None = Field(
        default=None, description="Staff may set it; otherwise detected."
    )
    requester_ref: str | None = Field(default=None, description="Your system's own id for it.")
    patron_ref: str | None = None


class RotaOut(BaseModel):
    position: int
    lender: str
    score: float
    reason: str
    factors: dict[str, Any]
    status: str | None
    closed: str | None
    note: str
    condition: str | None
    condition_state: str | None
    sent_at: dt.datetime | None
    due_at: dt.datetime | None
    answered_at: dt.datetime | None
    shipped_at: dt.datetime | None


class RequestOut(BaseModel):
    id: int
    state: str
    service_type: str
    language: str
    via: str
    borrower: str
    pickup: str
    lender: str | None
    lender_status: str | None
    position: int
    reader_id: int | None
    cluster_id: int | None
    title: str
    article_title: str
    author: str
    volume: str
    issue: str
    pages: str
    year: str
    issn: str
    isbn: str
    doi: str
    publisher: str
    edition: str
    needed_by: dt.date | None
    note: str
    outcome: str
    due_at: dt.datetime | None
    loan_due_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    shipped_at: dt.datetime | None
    received_at: dt.datetime | None
    closed_at: dt.datetime | None
    version: int
    actions: list[str] = Field(description="What you may do with it now.")
    rota: list[RotaOut] = Field(default_factory=list)


class RequestPage(BaseModel):
    items: list[RequestOut]
    total: int
    offset: int
    limit: int


class EventOut(BaseModel):
    at: dt.datetime
    action: str
    actor: str | None
    payload: dict[str, Any]


class Note(BaseModel):
    note: str = ""


class Reason(BaseModel):
    reason: str = Field(min_length=1, description="Why; shown to the reader.")


class Condition(BaseModel):
    condition: str = Field(min_length=1, description="e.g. library use only, a fee.")


class Ship(BaseModel):
    due: dt.datetime | None = Field(default=None, description="A loan's due date.")
    note: str = ""


class Answer(BaseModel):
    approve: bool
    due: dt.datetime | None = None
    note: str = ""


class CancelIn(BaseModel):
    reason: str = ""


class Decision(BaseModel):
    accept: bool


# ----------------------------------------------------------------------------- helpers


def _codes(db: Session) -> dict[int, str]:
    return {int(i): str(c) for i, c in db.execute(select(Member.id, Member.code))}


def _out(
    db: Session,
    principal: Principal,
    request: IllRequest,
    codes: dict[int, str],
    rota: list[LenderAttempt] | None = None,
) -> RequestOut:
    current = rota[request.position] if rota and 0 <= request.position < len(rota) else None
    if rota is None and request.position >= 0:
        current = db.scalar(
            select(LenderAttempt).where(
                LenderAttempt.request_id == request.id,
                LenderAttempt.position == request.position,
            )
        )
    status = current.status if current is not None else None
    return RequestOut(
        id=request.id,
        state=request.state,
        service_type=request.service_type,
        language=request.language,
        via=request.via,
        borrower=codes.get(request.borrower_id, ""),
        pickup=codes.get(request.pickup_id, ""),
        lender=codes.get(request.lender_id) if request.lender_id else None,
        lender_status=status,
        position=request.position,
        reader_id=request.reader_id,
        cluster_id=request.cluster_id,
        title=request.title,
        article_title=request.article_title,
        author=request.author,
        volume=request.volume,
        issue=request.issue,
        pages=request.pages,
        year=request.year,
        issn=request.issn,
        isbn=request.isbn,
        doi=request.doi,
        publisher=request.publisher,
        edition=request.edition,
        needed_by=request.needed_by,
        note=request.note,
        outcome=request.outcome,
        due_at=request.due_at,
        loan_due_at=request.loan_due_at,
        created_at=request.created_at,
        updated_at=request.updated_at,
        shipped_at=request.shipped_at,
        received_at=request.received_at,
        closed_at=request.closed_at,
        version=request.version,
        actions=service.allowed_actions(principal, request, status),
        rota=[
            RotaOut(
                position=a.position,
                lender=codes.get(a.lender_id, ""),
                score=a.score,
                reason=a.reason,
                factors=a.factors,
                status=a.status,
                closed=a.closed,
                note=a.note,
                condition=a.condition,
                condition_state=a.condition_state,
                sent_at=a.sent_at,
                due_at=a.due_at,
                answered_at=a.answered_at,
                shipped_at=a.shipped_at,
            )
            for a in rota or []
        ],
    )


def _detail(db: Session, principal: Principal, request_id: int) -> RequestOut:
    request = service.get_request(db, principal, request_id)
    return _out(db, principal, request, _codes(db), service.rota_of(db, request_id))


def _done(db: Session, principal: Principal, result: service.Result) -> RequestOut:
    """Queue the notices of what changed, commit, answer with the request as it now is."""
    notices.after(db, result)
    db.commit()
    return _detail(db, principal, result.request_id)


# ----------------------------------------------------------------------------- reading


@router.post("", response_model=RequestOut, status_code=201, responses=ERRORS)
def create_request(
    body: RequestIn,
    db: Session = Depends(get_db),
    principal: Principal = allow(*ANYONE),
) -> RequestOut:
    """Ask for a loan or a copy. It is routed at once: the answer shows the lender asked and
    the rota with each candidate's score and reason (or Unfilled with the reasons). A duplicate
    of your open request is 409 naming it."""
    new = service.NewRequest(**body.model_dump(), via=None)
    return _done(db, principal, service.create_request(db, principal, new))


@router.get("", response_model=RequestPage)
def list_requests(
    queue: Annotated[
        Literal["borrowing", "lending"] | None,
        Query(description="Staff: borrowing (your readers') or lending (asked of you)."),
    ] = None,
    state: Annotated[str | None, Query(max_length=12)] = None,
    member: Annotated[str | None, Query(max_length=16, description="The office only.")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    db: Session = Depends(get_db),
    principal: Principal = allow(*ANYONE),
) -> RequestPage:
    """A reader's own requests; a library's borrowing or lending queue; the office's choice."""
    items, total = service.list_requests(
        db, principal, queue=queue, member=member, state=state, offset=offset, limit=limit
    )
    codes = _codes(db)
    return RequestPage(
        items=[_out(db, principal, r, codes) for r in items],
        total=total,
        offset=offset,
        limit=limit,
    )


@router.get("/{request_id}", response_model=RequestOut, responses=ERRORS)
def get_request(
    request_id: RequestId,
    db: Session = Depends(get_db),
    principal: Principal = allow(*ANYONE),
) -> RequestOut:
    """One request with its rota (every candidate, its score, reason and answer)."""
    return _detail(db, principal, request_id)


@router.get("/{request_id}/events", response_model=list[EventOut], responses=ERRORS)
def request_events(
    request_id: RequestId,
    db: Session = Depends(get_db),
    principal: Principal = allow(*ANYONE),
) -> list[EventOut]:
    """Every step of the request, oldest first (who acted is shown to libraries only)."""
    service.get_request(db, principal, request_id)
    show_actor = principal.role is not Role.reader
    return [
        EventOut(at=e.at, action=e.action, actor=e.actor if show_actor else None, payload=e.payload)
        for e in service.history(db, request_id)
    ]


# ----------------------------------------------------------------------------- the lender


@router.post("/{request_id}/will-supply", response_model=RequestOut, responses=ERRORS)
def will_supply(
    request_id: RequestId,
    body: Annotated[Note | None, Body()] = None,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> RequestOut:
    """The lending library will supply it (ISO 18626 WillSupply)."""
    note = body.note if body else ""
    return _done(db, principal, service.will_supply(db, principal, request_id, note=note))


@router.post("/{request_id}/conditional", response_model=RequestOut, responses=ERRORS)
def conditional(
    request_id: RequestId,
    body: Condition,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> RequestOut:
    """The lending library will supply it on a condition the requesting side must accept."""
    return _done(db, principal, service.conditional(db, principal, request_id, body.condition))


@router.post("/{request_id}/unfilled", response_model=RequestOut, responses=ERRORS)
def unfilled(
    request_id: RequestId,
    body: Reason,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> RequestOut:
    """The lending library cannot supply it: the next candidate is asked."""
    return _done(db, principal, service.unfilled(db, principal, request_id, body.reason))


@router.post("/{request_id}/ship", response_model=RequestOut, responses=ERRORS)
def ship(
    request_id: RequestId,
    body: Annotated[Ship | None, Body()] = None,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> RequestOut:
    """Shipped (a loan: Loaned, due on ``due`` or after the lender's loan period) or supplied
    (a copy: CopyCompleted)."""
    body = body or Ship()
    result = service.ship(db, principal, request_id, due=body.due, note=body.note)
    return _done(db, principal, result)


@router.post("/{request_id}/checked-in", response_model=RequestOut, responses=ERRORS)
def checked_in(
    request_id: RequestId,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> RequestOut:
    """The lending library has its book back (LoanCompleted)."""
    return _done(db, principal, service.checked_in(db, principal, request_id))


@router.post("/{request_id}/renewal", response_model=RequestOut, responses=ERRORS)
def answer_renewal(
    request_id: RequestId,
    body: Answer,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> RequestOut:
    """Grant (with a new due date) or refuse the renewal the borrower asked for."""
    result = service.answer_renewal(
        db, principal, request_id, approve=body.approve, due=body.due, note=body.note
    )
    return _done(db, principal, result)


@router.post("/{request_id}/cancellation", response_model=RequestOut, responses=ERRORS)
def answer_cancel(
    request_id: RequestId,
    body: Answer,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> RequestOut:
    """Agree to (Cancelled) or refuse the cancellation the borrower asked for."""
    result = service.answer_cancel(db, principal, request_id, approve=body.approve, note=body.note)
    return _done(db, principal, result)


# ----------------------------------------------------------------------------- the borrower


@router.post("/{request_id}/received", response_model=RequestOut, responses=ERRORS)
def received(
    request_id: RequestId,
    db: Session = Depends(get_db),
    principal: Principal = allow(*ANYONE),
) -> RequestOut:
    """Received: a loan at the library's desk, or a copy the reader has (then Completed)."""
    return _done(db, principal, service.received(db, principal, request_id))


@router.post("/{request_id}/return", response_model=RequestOut, responses=ERRORS)
def returned(
    request_id: RequestId,
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> RequestOut:
    """The borrowing library sent the book back (ShippedReturn)."""
    return _done(db, principal, service.returned(db, principal, request_id))


@router.post("/{request_id}/renew", response_model=RequestOut, responses=ERRORS)
def renew(
    request_id: RequestId,
    db: Session = Depends(get_db),
    principal: Principal = allow(*ANYONE),
) -> RequestOut:
    """Ask the lender for more time with a loan."""
    return _done(db, principal, service.renew(db, principal, request_id))


@router.post("/{request_id}/cancel", response_model=RequestOut, responses=ERRORS)
def cancel(
    request_id: RequestId,
    body: Annotated[CancelIn | None, Body()] = None,
    db: Session = Depends(get_db),
    principal: Principal = allow(*ANYONE),
) -> RequestOut:
    """Cancel: at once before the lender acted on it, else once the lender agrees."""
    reason = body.reason if body else ""
    return _done(db, principal, service.cancel(db, principal, request_id, reason=reason))


@router.post("/{request_id}/conditions", response_model=RequestOut, responses=ERRORS)
def decide_conditions(
    request_id: RequestId,
    body: Decision,
    db: Session = Depends(get_db),
    principal: Principal = allow(*ANYONE),
) -> RequestOut:
    """Accept the lender's condition, or reject it (the next lender is asked)."""
    result = service.decide_conditions(db, principal, request_id, accept=body.accept)
    return _done(db, principal, result)
