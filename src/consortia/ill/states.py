"""The ILL state machines: pure tables, no database, no clock.

Three tables describe one request; ``ill/service.py`` checks them, then writes the new states
and appends the event in one transaction (a refusal raises before anything is written):

1. **The lender's status** (``Status``) — the ISO 18626 status of the transaction with one
   supplier (one row per lender of the rota). Only the *supplier* moves it, by the status it
   reports in a SupplyingAgencyMessage (or, when the hub is the supplier network, by the lending
   member's staff through the same function)::

       next_supplier_status(service_type, current, reported) -> Status

   The lender's status starts at ``RequestReceived`` (``INITIAL_STATUS``) when the Request was
   confirmed. A status equal to the current one is a repeat (a StatusRequestResponse, a
   RenewResponse keeping the loan, a retried message) and is accepted without change, also in
   a terminal status.

2. **The requester's actions** (``RequesterAction``, ISO 18626 ``type_action``) are checked
   against the lender's status; they never change it by themselves — the supplier answers
   (``Outcome.expects``) and its answer moves the status::

       apply_requester_action(service_type, current_status, action) -> Outcome

3. **The hub's view of the reader's request** (``RequestState``): what the reader and the
   requesting library see across the whole rota. It moves by ``HubEvent``::

       next_request_state(service_type, state, event) -> RequestState
       hub_event_for_status(service_type, previous, status) -> HubEvent | None

   - ``Submitted``: created by a reader or staff, not yet checked (the "idea").
   - ``Routing``: eligible and the rota is built; waiting to go to the next lender. Reached by
     VALIDATED, and again by LENDER_DECLINED when a lender said Unfilled/RetryPossible or let
     the request expire.
   - ``Sent``: one lender of the rota holds it (SENT). Which one (the lender index) is the
     service's to keep.
   - ``Shipped``: the lender supplied (SHIPPED): Loaned for a loan, CopyCompleted for a copy
     (the document was delivered).
   - ``Received``: the requester confirmed receipt (RECEIVED; loans only — a received copy is
     Completed).
   - ``Returned``: the requester shipped the loan back (RETURNED, from ShippedReturn).
   - ``Completed`` (terminal): LoanCompleted / CompletedWithoutReturn, or a copy received.
   - ``Unfilled`` (terminal): no lender of the rota could supply (ROTA_EXHAUSTED).
   - ``Cancelled`` (terminal): cancelled before it went out, or the lender agreed to a Cancel
     (CancelResponse Y, status Cancelled).

   ``hub_event_for_status`` maps a lender's status change to the hub's event: Unfilled and
   RetryPossible → LENDER_DECLINED (the hub does not negotiate retries; it tries the next
   lender), Loaned / CopyCompleted → SHIPPED (not again for a renewal, Overdue → Loaned),
   LoanCompleted / CompletedWithoutReturn → COMPLETED, Cancelled → CANCELLED; the others
   (ExpectToSupply, WillSupply, Overdue, Recalled, ...) leave the hub's state alone. A lender's
   time-out (a timer in the service) is LENDER_DECLINED too. Only the *current* lender's
   messages move the hub's state. A requester action the lender's status allows may still be
   refused by the hub's table (Received after Returned): check both before writing.

Every refusal is ``IllegalTransition`` (a ``Conflict``) naming the state and the action (its
``what`` says whether it was an ``action``, a ``status`` or an ``event``); an action the hub
does not implement at all (ShippedForward, HoldReturn, Lost) is ``UnsupportedAction``.
``iso18626.error_for_refusal`` turns either into the errorData to answer with. Terminal states
never change.

Loans and copies differ: a Copy never becomes Loaned, Overdue, Recalled, HoldReturn,
ReleaseHoldReturn or LoanCompleted, and a Loan never becomes CopyCompleted. CopyOrLoan allows
either branch until the supplier picks one (``effective_service_type`` tells which it took).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar, cast

from consortia.errors import Conflict

MSG_ILLEGAL = "{action} is not allowed when the request is {state}"
MSG_UNSUPPORTED = "The action {action} is not supported"


class ServiceType(enum.StrEnum):
    """ISO 18626 ``type_serviceType``."""

    LOAN = "Loan"
    COPY = "Copy"
    COPY_OR_LOAN = "CopyOrLoan"


class Status(enum.StrEnum):
    """ISO 18626 ``type_status`` (2017 and 2021; HoldReturn and ReleaseHoldReturn are 2021)."""

    REQUEST_RECEIVED = "RequestReceived"
    EXPECT_TO_SUPPLY = "ExpectToSupply"
    WILL_SUPPLY = "WillSupply"
    LOANED = "Loaned"
    OVERDUE = "Overdue"
    RECALLED = "Recalled"
    RETRY_POSSIBLE = "RetryPossible"
    UNFILLED = "Unfilled"
    HOLD_RETURN = "HoldReturn"
    RELEASE_HOLD_RETURN = "ReleaseHoldReturn"
    COPY_COMPLETED = "CopyCompleted"
    LOAN_COMPLETED = "LoanCompleted"
    COMPLETED_WITHOUT_RETURN = "CompletedWithoutReturn"
    CANCELLED = "Cancelled"


class RequesterAction(enum.StrEnum):
    """ISO 18626 ``type_action`` (2017 and 2021; HoldReturn and Lost are 2021)."""

    STATUS_REQUEST = "StatusRequest"
    RECEIVED = "Received"
    CANCEL = "Cancel"
    RENEW = "Renew"
    SHIPPED_RETURN = "ShippedReturn"
    SHIPPED_FORWARD = "ShippedForward"
    NOTIFICATION = "Notification"
    HOLD_RETURN = "HoldReturn"
    LOST = "Lost"


class SupplierMessageReason(enum.StrEnum):
    """ISO 18626 ``type_reasonForMessage``."""

    REQUEST_RESPONSE = "RequestResponse"
    STATUS_REQUEST_RESPONSE = "StatusRequestResponse"
    RENEW_RESPONSE = "RenewResponse"
    CANCEL_RESPONSE = "CancelResponse"
    STATUS_CHANGE = "StatusChange"
    NOTIFICATION = "Notification"


class RequestState(enum.StrEnum):
    """The hub's view of a reader's request across the rota (see the module docstring)."""

    SUBMITTED = "Submitted"
    ROUTING = "Routing"
    SENT = "Sent"
    SHIPPED = "Shipped"
    RECEIVED = "Received"
    RETURNED = "Returned"
    COMPLETED = "Completed"
    UNFILLED = "Unfilled"
    CANCELLED = "Cancelled"


class HubEvent(enum.StrEnum):
    """What moves a ``RequestState``."""

    VALIDATED = "validated"  # eligible, rota built
    SENT = "sent"  # the current lender has the request (RequestConfirmation OK / local queue)
    LENDER_DECLINED = "lender_declined"  # Unfilled, RetryPossible, or the lender's time-out
    ROTA_EXHAUSTED = "rota_exhausted"  # no lender left to try
    SHIPPED = "shipped"  # Loaned / CopyCompleted
    RECEIVED = "received"  # requester's Received
    RETURNED = "returned"  # requester's ShippedReturn
    COMPLETED = "completed"  # LoanCompleted / CompletedWithoutReturn
    CANCELLED = "cancelled"  # cancelled by the requester (and agreed by the lender, if any)


# Each vocabulary's members by value. ``ServiceType(x)`` goes through enum's call machinery even
# for a member; the transitions convert a few values each, a million times in a year's replay.
_SERVICE_TYPES = {m.value: m for m in ServiceType}
_STATUSES = {m.value: m for m in Status}
_REQUESTER_ACTIONS = {m.value: m for m in RequesterAction}
_REQUEST_STATES = {m.value: m for m in RequestState}
_HUB_EVENTS = {m.value: m for m in HubEvent}


_E = TypeVar("_E", bound=enum.Enum)


def _member_of(table: dict[str, _E], kind: type[_E], value: str) -> _E:
    # A dict look-up first; an unknown value goes to the enum itself for its ValueError.
    found = table.get(value)
    return found if found is not None else kind(value)


def service_type_of(value: str) -> ServiceType:
    """``ServiceType(value)``, cheaper (the same ``ValueError`` for an unknown value)."""
    return _member_of(_SERVICE_TYPES, ServiceType, value)


def status_of(value: str) -> Status:
    """``Status(value)``, cheaper."""
    return _member_of(_STATUSES, Status, value)


def request_state_of(value: str) -> RequestState:
    """``RequestState(value)``, cheaper."""
    return _member_of(_REQUEST_STATES, RequestState, value)


def _hub_event_of(value: str) -> HubEvent:
    return _member_of(_HUB_EVENTS, HubEvent, value)


def _requester_action_of(value: str) -> RequesterAction:
    return _member_of(_REQUESTER_ACTIONS, RequesterAction, value)


class IllegalTransition(Conflict):
    """An action or status change that the current state does not allow; nothing changed."""

    code = "illegal_transition"

    def __init__(self, state: str, action: str, *, what: str = "action") -> None:
        self.state = str(state)
        self.action = str(action)
        # What was refused: a requester "action", a supplier "status" or a hub "event".
        self.what = what
        super().__init__(MSG_ILLEGAL, state=self.state, action=self.action)


class UnsupportedAction(Conflict):
    """A valid ISO 18626 action this hub does not implement (maps to UnsupportedActionType)."""

    code = "unsupported_action"

    def __init__(self, action: str) -> None:
        self.action = str(action)
        super().__init__(MSG_UNSUPPORTED, action=self.action)


TERMINAL: frozenset[Status] = frozenset(
    {
        Status.UNFILLED,
        Status.COPY_COMPLETED,
        Status.LOAN_COMPLETED,
        Status.COMPLETED_WITHOUT_RETURN,
        Status.CANCELLED,
    }
)
TERMINAL_REQUEST_STATES: frozenset[RequestState] = frozenset(
    {RequestState.COMPLETED, RequestState.UNFILLED, RequestState.CANCELLED}
)
INITIAL_STATUS = Status.REQUEST_RECEIVED
LOAN_ONLY: frozenset[Status] = frozenset(
    {
        Status.LOANED,
        Status.OVERDUE,
        Status.RECALLED,
        Status.HOLD_RETURN,
        Status.RELEASE_HOLD_RETURN,
        Status.LOAN_COMPLETED,
    }
)
COPY_ONLY: frozenset[Status] = frozenset({Status.COPY_COMPLETED})
# The item is with the requester (a loan between shipping and completion).
ON_LOAN: frozenset[Status] = frozenset(
    {
        Status.LOANED,
        Status.OVERDUE,
        Status.RECALLED,
        Status.HOLD_RETURN,
        Status.RELEASE_HOLD_RETURN,
    }
)
# Nothing has been shipped yet.
BEFORE_SUPPLY: frozenset[Status] = frozenset(
    {
        Status.REQUEST_RECEIVED,
        Status.EXPECT_TO_SUPPLY,
        Status.WILL_SUPPLY,
        Status.RETRY_POSSIBLE,
    }
)

S = Status
_ENDINGS_BEFORE_SUPPLY = {S.RETRY_POSSIBLE, S.UNFILLED, S.CANCELLED}
_LOAN_ENDINGS = {S.LOAN_COMPLETED, S.COMPLETED_WITHOUT_RETURN}

# Supplier-reported status changes of a loan (current -> allowed new statuses).
_LOAN: dict[Status, frozenset[Status]] = {
    S.REQUEST_RECEIVED: frozenset(
        {S.EXPECT_TO_SUPPLY, S.WILL_SUPPLY, S.LOANED} | _ENDINGS_BEFORE_SUPPLY
    ),
    S.EXPECT_TO_SUPPLY: frozenset({S.WILL_SUPPLY, S.LOANED} | _ENDINGS_BEFORE_SUPPLY),
    S.WILL_SUPPLY: frozenset({S.LOANED} | _ENDINGS_BEFORE_SUPPLY),
    # RetryPossible waits for the requester's Retry request; the supplier may still give up.
    S.RETRY_POSSIBLE: frozenset({S.UNFILLED, S.CANCELLED}),
    S.LOANED: frozenset({S.OVERDUE, S.RECALLED, S.HOLD_RETURN} | _LOAN_ENDINGS),
    # An overdue loan that is renewed is Loaned again.
    S.OVERDUE: frozenset({S.LOANED, S.RECALLED, S.HOLD_RETURN} | _LOAN_ENDINGS),
    S.RECALLED: frozenset({S.OVERDUE} | _LOAN_ENDINGS),
    S.HOLD_RETURN: frozenset({S.RELEASE_HOLD_RETURN} | _LOAN_ENDINGS),
    S.RELEASE_HOLD_RETURN: frozenset({S.OVERDUE, S.RECALLED} | _LOAN_ENDINGS),
}
_COPY: dict[Status, frozenset[Status]] = {
    S.REQUEST_RECEIVED: frozenset(
        {S.EXPECT_TO_SUPPLY, S.WILL_SUPPLY, S.COPY_COMPLETED} | _ENDINGS_BEFORE_SUPPLY
    ),
    S.EXPECT_TO_SUPPLY: frozenset({S.WILL_SUPPLY, S.COPY_COMPLETED} | _ENDINGS_BEFORE_SUPPLY),
    S.WILL_SUPPLY: frozenset({S.COPY_COMPLETED} | _ENDINGS_BEFORE_SUPPLY),
    S.RETRY_POSSIBLE: frozenset({S.UNFILLED, S.CANCELLED}),
}


def _union(
    a: Mapping[Status, frozenset[Status]], b: Mapping[Status, frozenset[Status]]
) -> dict[Status, frozenset[Status]]:
    return {k: a.get(k, frozenset()) | b.get(k, frozenset()) for k in set(a) | set(b)}


SUPPLIER_TRANSITIONS: dict[ServiceType, dict[Status, frozenset[Status]]] = {
    ServiceType.LOAN: _LOAN,
    ServiceType.COPY: _COPY,
    ServiceType.COPY_OR_LOAN: _union(_LOAN, _COPY),
}


def reachable_statuses(service_type: ServiceType) -> frozenset[Status]:
    """Every status a lender's transaction of this service type can ever be in."""
    table = SUPPLIER_TRANSITIONS[service_type]
    seen = {INITIAL_STATUS}
    todo = [INITIAL_STATUS]
    while todo:
        for nxt in table.get(todo.pop(), frozenset()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


def next_supplier_status(service_type: ServiceType, current: Status, new_status: Status) -> Status:
    """The lender's status after it reports ``new_status``; ``IllegalTransition`` if it may not.

    A repeat of the current status is accepted and changes nothing.
    """
    service_type, current, new_status = (
        service_type_of(service_type),
        status_of(current),
        status_of(new_status),
    )
    if new_status == current:
        return current
    if new_status in SUPPLIER_TRANSITIONS[service_type].get(current, frozenset()):
        return new_status
    raise IllegalTransition(current.value, new_status.value, what="status")


def effective_service_type(service_type: ServiceType, status: Status) -> ServiceType:
    """For CopyOrLoan, which branch the supplier took once it is known."""
    if service_type is not ServiceType.COPY_OR_LOAN:
        return service_type
    if status in LOAN_ONLY:
        return ServiceType.LOAN
    if status in COPY_ONLY:
        return ServiceType.COPY
    return service_type


# ----------------------------------------------------------------------------- requester actions

SUPPORTED_ACTIONS: frozenset[RequesterAction] = frozenset(
    {
        RequesterAction.STATUS_REQUEST,
        RequesterAction.RECEIVED,
        RequesterAction.CANCEL,
        RequesterAction.RENEW,
        RequesterAction.SHIPPED_RETURN,
        RequesterAction.NOTIFICATION,
    }
)

_ANY = frozenset(Status)
_A = RequesterAction
# Where each action is allowed, per service type.
_ACTIONS_LOAN: dict[RequesterAction, frozenset[Status]] = {
    _A.STATUS_REQUEST: _ANY,
    _A.NOTIFICATION: _ANY,
    _A.CANCEL: BEFORE_SUPPLY,
    _A.RENEW: frozenset({S.LOANED, S.OVERDUE}),
    _A.RECEIVED: ON_LOAN,
    # Held items must stay with the requester until the supplier releases the hold.
    _A.SHIPPED_RETURN: ON_LOAN - {S.HOLD_RETURN},
}
_ACTIONS_COPY: dict[RequesterAction, frozenset[Status]] = {
    _A.STATUS_REQUEST: _ANY,
    _A.NOTIFICATION: _ANY,
    _A.CANCEL: BEFORE_SUPPLY,
    _A.RENEW: frozenset(),
    _A.RECEIVED: frozenset({S.COPY_COMPLETED}),
    _A.SHIPPED_RETURN: frozenset(),
}
REQUESTER_ACTIONS: dict[ServiceType, dict[RequesterAction, frozenset[Status]]] = {
    ServiceType.LOAN: _ACTIONS_LOAN,
    ServiceType.COPY: _ACTIONS_COPY,
    ServiceType.COPY_OR_LOAN: {a: _ACTIONS_LOAN[a] | _ACTIONS_COPY[a] for a in _ACTIONS_LOAN},
}

# The supplier's answer each action calls for (None: just the confirmation).
EXPECTED_REPLY: dict[RequesterAction, SupplierMessageReason | None] = {
    _A.STATUS_REQUEST: SupplierMessageReason.STATUS_REQUEST_RESPONSE,
    _A.CANCEL: SupplierMessageReason.CANCEL_RESPONSE,
    _A.RENEW: SupplierMessageReason.RENEW_RESPONSE,
    _A.RECEIVED: None,
    _A.SHIPPED_RETURN: None,
    _A.NOTIFICATION: None,
}
_ACTION_EVENT: dict[RequesterAction, HubEvent | None] = {
    _A.RECEIVED: HubEvent.RECEIVED,
    _A.SHIPPED_RETURN: HubEvent.RETURNED,
    # Cancel moves the hub's state only once the lender agrees (CancelResponse Y -> Cancelled).
    _A.CANCEL: None,
    _A.RENEW: None,
    _A.STATUS_REQUEST: None,
    _A.NOTIFICATION: None,
}


@dataclass(frozen=True)
class Outcome:
    """What an accepted requester action means.

    ``status``: the lender's status, unchanged (only the supplier changes it);
    ``expects``: the SupplyingAgencyMessage reason the lender owes in reply, if any;
    ``hub_event``: the event to apply to the hub's ``RequestState`` now, if any.
    """

    action: RequesterAction
    status: Status
    expects: SupplierMessageReason | None
    hub_event: HubEvent | None


def apply_requester_action(
    service_type: ServiceType, current_status: Status, action: RequesterAction
) -> Outcome:
    """Check a requester action against the lender's status.

    ``UnsupportedAction`` for ShippedForward, HoldReturn and Lost (not offered by this hub);
    ``IllegalTransition`` naming the status and the action when the status does not allow it.
    """
    service_type, current_status, action = (
        service_type_of(service_type),
        status_of(current_status),
        _requester_action_of(action),
    )
    if action not in SUPPORTED_ACTIONS:
        raise UnsupportedAction(action.value)
    if current_status not in REQUESTER_ACTIONS[service_type][action]:
        raise IllegalTransition(current_status.value, action.value)
    return Outcome(action, current_status, EXPECTED_REPLY[action], _ACTION_EVENT[action])


def allowed_actions(service_type: ServiceType, status: Status) -> list[RequesterAction]:
    """The requester actions the status allows, in ISO 18626 order (for menus and the API)."""
    table = REQUESTER_ACTIONS[ServiceType(service_type)]
    return [a for a in RequesterAction if a in table and Status(status) in table[a]]


# ----------------------------------------------------------------------------- the hub's view

R = RequestState
E = HubEvent
_HUB_COMMON: dict[RequestState, dict[HubEvent, RequestState]] = {
    R.SUBMITTED: {
        E.VALIDATED: R.ROUTING,
        E.ROTA_EXHAUSTED: R.UNFILLED,  # no member holds it, or it is not eligible
        E.CANCELLED: R.CANCELLED,
    },
    R.ROUTING: {E.SENT: R.SENT, E.ROTA_EXHAUSTED: R.UNFILLED, E.CANCELLED: R.CANCELLED},
    R.SENT: {
        E.LENDER_DECLINED: R.ROUTING,
        E.SHIPPED: R.SHIPPED,
        E.CANCELLED: R.CANCELLED,
    },
}
_HUB_LOAN: dict[RequestState, dict[HubEvent, RequestState]] = {
    **_HUB_COMMON,
    R.SHIPPED: {
        E.RECEIVED: R.RECEIVED,
        E.RETURNED: R.RETURNED,  # returned before its receipt was recorded
        E.COMPLETED: R.COMPLETED,  # e.g. CompletedWithoutReturn (lost in transit)
    },
    R.RECEIVED: {E.RETURNED: R.RETURNED, E.COMPLETED: R.COMPLETED},
    R.RETURNED: {E.COMPLETED: R.COMPLETED},
}
_HUB_COPY: dict[RequestState, dict[HubEvent, RequestState]] = {
    **_HUB_COMMON,
    # A delivered copy is done once received (or when the lender closes it).
    R.SHIPPED: {E.RECEIVED: R.COMPLETED, E.COMPLETED: R.COMPLETED},
}
REQUEST_TRANSITIONS: dict[ServiceType, dict[RequestState, dict[HubEvent, RequestState]]] = {
    ServiceType.LOAN: _HUB_LOAN,
    ServiceType.COPY: _HUB_COPY,
    # Until shipped, CopyOrLoan is the common part; after, pass effective_service_type().
    ServiceType.COPY_OR_LOAN: _HUB_LOAN,
}


# The same tables, looked up by value (members are their values: StrEnum).
_BY_VALUE = cast(Mapping[str, Mapping[str, Mapping[str, RequestState]]], REQUEST_TRANSITIONS)
_NO_STATES: Mapping[str, Mapping[str, RequestState]] = {}
_NO_EVENTS: Mapping[str, RequestState] = {}


def next_request_state(
    service_type: ServiceType | str, state: RequestState | str, event: HubEvent | str
) -> RequestState:
    """The hub's request state after ``event``; ``IllegalTransition`` if the state refuses it.

    Members or their values: a value finds its member's entry (a member of these string enums
    hashes and compares as its value), so an allowed transition is three look-ups; anything
    else is converted first (``ValueError`` for a value outside the vocabulary) and refused.
    """
    nxt = _BY_VALUE.get(service_type, _NO_STATES).get(state, _NO_EVENTS).get(event)
    if nxt is not None:
        return nxt
    service_type, state, event = (
        service_type_of(service_type),
        request_state_of(state),
        _hub_event_of(event),
    )
    nxt = REQUEST_TRANSITIONS[service_type].get(state, {}).get(event)
    if nxt is None:
        raise IllegalTransition(state.value, event.value, what="event")
    return nxt


_STATUS_EVENT: dict[Status, HubEvent] = {
    S.UNFILLED: E.LENDER_DECLINED,
    S.RETRY_POSSIBLE: E.LENDER_DECLINED,
    S.LOANED: E.SHIPPED,
    S.COPY_COMPLETED: E.SHIPPED,
    S.LOAN_COMPLETED: E.COMPLETED,
    S.COMPLETED_WITHOUT_RETURN: E.COMPLETED,
    S.CANCELLED: E.CANCELLED,
}


def hub_event_for_status(
    service_type: ServiceType, previous: Status | None, status: Status
) -> HubEvent | None:
    """The hub event a lender's status change ``previous`` -> ``status`` means, or None.

    ``previous`` is None for the lender's first answer. A repeated status means nothing, and a
    renewed loan (Overdue -> Loaned) is not shipped again. Apply the event only when the lender
    is the request's current one: a former lender's late messages do not move the hub's state.
    """
    service_type, status = service_type_of(service_type), status_of(status)
    prev = status_of(previous) if previous is not None else None
    if prev == status:
        return None
    if service_type is ServiceType.COPY and status in LOAN_ONLY:
        return None
    if service_type is ServiceType.LOAN and status in COPY_ONLY:
        return None
    event = _STATUS_EVENT.get(status)
    if event is HubEvent.SHIPPED and prev in ON_LOAN:
        return None
    return event
