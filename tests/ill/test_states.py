"""The ILL state machines, checked against a specification written out here pair by pair.

The expected transitions below are spelled out independently of the tables in states.py, from
the ISO 18626 status and action definitions, so a slip in either shows up as a difference.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consortia.errors import Conflict
from consortia.ill.states import (
    COPY_ONLY,
    LOAN_ONLY,
    TERMINAL,
    TERMINAL_REQUEST_STATES,
    HubEvent,
    IllegalTransition,
    RequesterAction,
    RequestState,
    ServiceType,
    Status,
    SupplierMessageReason,
    UnsupportedAction,
    allowed_actions,
    apply_requester_action,
    effective_service_type,
    hub_event_for_status,
    next_request_state,
    next_supplier_status,
    reachable_statuses,
)


def pairs(spec: str) -> set[tuple[Status, Status]]:
    """``"A -> B C"`` lines to {(A, B), (A, C)}."""
    out = set()
    for line in spec.strip().splitlines():
        left, right = line.split("->")
        for target in right.split():
            out.add((Status(left.strip()), Status(target)))
    return out


LOAN_SPEC = pairs("""
RequestReceived -> ExpectToSupply WillSupply Loaned RetryPossible Unfilled Cancelled
ExpectToSupply -> WillSupply Loaned RetryPossible Unfilled Cancelled
WillSupply -> Loaned RetryPossible Unfilled Cancelled
RetryPossible -> Unfilled Cancelled
Loaned -> Overdue Recalled HoldReturn LoanCompleted CompletedWithoutReturn
Overdue -> Loaned Recalled HoldReturn LoanCompleted CompletedWithoutReturn
Recalled -> Overdue LoanCompleted CompletedWithoutReturn
HoldReturn -> ReleaseHoldReturn LoanCompleted CompletedWithoutReturn
ReleaseHoldReturn -> Overdue Recalled LoanCompleted CompletedWithoutReturn
""")
COPY_SPEC = pairs("""
RequestReceived -> ExpectToSupply WillSupply CopyCompleted RetryPossible Unfilled Cancelled
ExpectToSupply -> WillSupply CopyCompleted RetryPossible Unfilled Cancelled
WillSupply -> CopyCompleted RetryPossible Unfilled Cancelled
RetryPossible -> Unfilled Cancelled
""")
SPEC = {
    ServiceType.LOAN: LOAN_SPEC,
    ServiceType.COPY: COPY_SPEC,
    ServiceType.COPY_OR_LOAN: LOAN_SPEC | COPY_SPEC,
}
TERMINAL_SPEC = {
    "Unfilled",
    "CopyCompleted",
    "LoanCompleted",
    "CompletedWithoutReturn",
    "Cancelled",
}

ALL_PAIRS = [
    (svc, cur, new) for svc in ServiceType for cur, new in itertools.product(Status, Status)
]


def test_terminal_statuses_are_the_iso_ones() -> None:
    assert {s.value for s in TERMINAL} == TERMINAL_SPEC


def test_status_and_action_values_are_the_schema_enumerations() -> None:
    # The XSD spellings, character for character (2017 + 2021 additions).
    assert {s.value for s in Status} == {
        "RequestReceived", "ExpectToSupply", "WillSupply", "Loaned", "Overdue", "Recalled",
        "RetryPossible", "Unfilled", "CopyCompleted", "LoanCompleted", "CompletedWithoutReturn",
        "Cancelled", "HoldReturn", "ReleaseHoldReturn",
    }  # fmt: skip
    assert {a.value for a in RequesterAction} == {
        "StatusRequest", "Received", "Cancel", "Renew", "ShippedReturn", "ShippedForward",
        "Notification", "HoldReturn", "Lost",
    }  # fmt: skip
    assert {r.value for r in SupplierMessageReason} == {
        "RequestResponse", "StatusRequestResponse", "RenewResponse", "CancelResponse",
        "StatusChange", "Notification",
    }  # fmt: skip
    assert {s.value for s in ServiceType} == {"Loan", "Copy", "CopyOrLoan"}


@pytest.mark.parametrize(("service_type", "current", "new"), ALL_PAIRS)
def test_every_supplier_status_pair(
    service_type: ServiceType, current: Status, new: Status
) -> None:
    if new == current:
        assert next_supplier_status(service_type, current, new) is current
    elif (current, new) in SPEC[service_type]:
        assert next_supplier_status(service_type, current, new) is new
    else:
        with pytest.raises(IllegalTransition) as info:
            next_supplier_status(service_type, current, new)
        err = info.value
        assert (err.state, err.action, err.what) == (current.value, new.value, "status")
        # Both are named in the message a person reads.
        assert current.value in str(err) and new.value in str(err)
        assert isinstance(err, Conflict) and err.status == 409


@pytest.mark.parametrize("service_type", list(ServiceType))
def test_terminal_statuses_never_change(service_type: ServiceType) -> None:
    for terminal, new in itertools.product(TERMINAL, Status):
        if new == terminal:
            assert next_supplier_status(service_type, terminal, new) is terminal
            continue
        with pytest.raises(IllegalTransition):
            next_supplier_status(service_type, terminal, new)


def test_loans_and_copies_take_different_branches() -> None:
    assert not reachable_statuses(ServiceType.COPY) & LOAN_ONLY
    assert Status.COPY_COMPLETED not in reachable_statuses(ServiceType.LOAN)
    assert reachable_statuses(ServiceType.COPY_OR_LOAN) == frozenset(Status)
    with pytest.raises(IllegalTransition):
        next_supplier_status(ServiceType.COPY, Status.WILL_SUPPLY, Status.LOANED)
    with pytest.raises(IllegalTransition):
        next_supplier_status(ServiceType.LOAN, Status.WILL_SUPPLY, Status.COPY_COMPLETED)
    # CopyOrLoan: once lent, never a copy.
    with pytest.raises(IllegalTransition):
        next_supplier_status(ServiceType.COPY_OR_LOAN, Status.LOANED, Status.COPY_COMPLETED)
    assert effective_service_type(ServiceType.COPY_OR_LOAN, Status.OVERDUE) is ServiceType.LOAN
    assert effective_service_type(ServiceType.COPY_OR_LOAN, Status.COPY_COMPLETED) is (
        ServiceType.COPY
    )
    assert effective_service_type(ServiceType.COPY_OR_LOAN, Status.WILL_SUPPLY) is (
        ServiceType.COPY_OR_LOAN
    )


def test_unknown_values_are_refused_not_guessed() -> None:
    with pytest.raises(ValueError):
        next_supplier_status(ServiceType.LOAN, Status.LOANED, "Lent")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- requester actions

BEFORE = {"RequestReceived", "ExpectToSupply", "WillSupply", "RetryPossible"}
ON_LOAN = {"Loaned", "Overdue", "Recalled", "HoldReturn", "ReleaseHoldReturn"}
EVERY = {s.value for s in Status}
ACTION_SPEC: dict[ServiceType, dict[str, set[str]]] = {
    ServiceType.LOAN: {
        "StatusRequest": EVERY,
        "Notification": EVERY,
        "Cancel": BEFORE,
        "Renew": {"Loaned", "Overdue"},
        "Received": ON_LOAN,
        "ShippedReturn": {"Loaned", "Overdue", "Recalled", "ReleaseHoldReturn"},
    },
    ServiceType.COPY: {
        "StatusRequest": EVERY,
        "Notification": EVERY,
        "Cancel": BEFORE,
        "Renew": set(),
        "Received": {"CopyCompleted"},
        "ShippedReturn": set(),
    },
}
ACTION_SPEC[ServiceType.COPY_OR_LOAN] = {
    a: ACTION_SPEC[ServiceType.LOAN][a] | ACTION_SPEC[ServiceType.COPY][a]
    for a in ACTION_SPEC[ServiceType.LOAN]
}
REPLY_SPEC = {
    "StatusRequest": "StatusRequestResponse",
    "Cancel": "CancelResponse",
    "Renew": "RenewResponse",
    "Received": None,
    "ShippedReturn": None,
    "Notification": None,
}


@pytest.mark.parametrize(
    ("service_type", "status", "action"),
    [(svc, s, a) for svc in ServiceType for s in Status for a in RequesterAction],
)
def test_every_requester_action_in_every_status(
    service_type: ServiceType, status: Status, action: RequesterAction
) -> None:
    spec = ACTION_SPEC[service_type]
    if action.value not in spec:
        with pytest.raises(UnsupportedAction) as unsupported:
            apply_requester_action(service_type, status, action)
        assert unsupported.value.action == action.value and action.value in str(unsupported.value)
        return
    if status.value in spec[action.value]:
        outcome = apply_requester_action(service_type, status, action)
        assert outcome.status is status  # only the supplier moves its status
        assert outcome.action is action
        expected = REPLY_SPEC[action.value]
        assert (outcome.expects.value if outcome.expects else None) == expected
    else:
        with pytest.raises(IllegalTransition) as info:
            apply_requester_action(service_type, status, action)
        assert (info.value.state, info.value.action) == (status.value, action.value)
        assert info.value.what == "action"
        assert status.value in str(info.value) and action.value in str(info.value)


def test_allowed_actions_lists_what_apply_accepts() -> None:
    assert allowed_actions(ServiceType.LOAN, Status.LOANED) == [
        RequesterAction.STATUS_REQUEST,
        RequesterAction.RECEIVED,
        RequesterAction.RENEW,
        RequesterAction.SHIPPED_RETURN,
        RequesterAction.NOTIFICATION,
    ]
    assert allowed_actions(ServiceType.COPY, Status.WILL_SUPPLY) == [
        RequesterAction.STATUS_REQUEST,
        RequesterAction.CANCEL,
        RequesterAction.NOTIFICATION,
    ]


# ----------------------------------------------------------------------------- the hub's view

R, E = RequestState, HubEvent


def run(service_type: ServiceType, events: list[HubEvent]) -> RequestState:
    state = R.SUBMITTED
    for event in events:
        state = next_request_state(service_type, state, event)
    return state


def test_a_loan_goes_round_the_rota_then_home() -> None:
    events = [
        E.VALIDATED, E.SENT, E.LENDER_DECLINED,  # first lender: Unfilled
        E.SENT, E.LENDER_DECLINED,  # second lender: time-out
        E.SENT, E.SHIPPED, E.RECEIVED, E.RETURNED, E.COMPLETED,
    ]  # fmt: skip
    assert run(ServiceType.LOAN, events) is R.COMPLETED


def test_a_received_copy_is_complete() -> None:
    events = [E.VALIDATED, E.SENT, E.SHIPPED, E.RECEIVED]
    assert run(ServiceType.COPY, events) is R.COMPLETED


def test_end_of_rota_is_unfilled_and_final() -> None:
    state = run(ServiceType.LOAN, [E.VALIDATED, E.SENT, E.LENDER_DECLINED, E.ROTA_EXHAUSTED])
    assert state is R.UNFILLED
    for event in HubEvent:
        with pytest.raises(IllegalTransition) as info:
            next_request_state(ServiceType.LOAN, state, event)
        assert info.value.state == "Unfilled" and info.value.action == event.value


@pytest.mark.parametrize(
    ("service_type", "state", "event"),
    [(svc, s, e) for svc in ServiceType for s in RequestState for e in HubEvent],
)
def test_every_hub_state_and_event(
    service_type: ServiceType, state: RequestState, event: HubEvent
) -> None:
    expected = {
        (R.SUBMITTED, E.VALIDATED): R.ROUTING,
        (R.SUBMITTED, E.ROTA_EXHAUSTED): R.UNFILLED,
        (R.SUBMITTED, E.CANCELLED): R.CANCELLED,
        (R.ROUTING, E.SENT): R.SENT,
        (R.ROUTING, E.ROTA_EXHAUSTED): R.UNFILLED,
        (R.ROUTING, E.CANCELLED): R.CANCELLED,
        (R.SENT, E.LENDER_DECLINED): R.ROUTING,
        (R.SENT, E.SHIPPED): R.SHIPPED,
        (R.SENT, E.CANCELLED): R.CANCELLED,
    }
    if service_type is ServiceType.COPY:
        expected |= {(R.SHIPPED, E.RECEIVED): R.COMPLETED, (R.SHIPPED, E.COMPLETED): R.COMPLETED}
    else:
        expected |= {
            (R.SHIPPED, E.RECEIVED): R.RECEIVED,
            (R.SHIPPED, E.RETURNED): R.RETURNED,
            (R.SHIPPED, E.COMPLETED): R.COMPLETED,
            (R.RECEIVED, E.RETURNED): R.RETURNED,
            (R.RECEIVED, E.COMPLETED): R.COMPLETED,
            (R.RETURNED, E.COMPLETED): R.COMPLETED,
        }
    if (state, event) in expected:
        assert next_request_state(service_type, state, event) is expected[(state, event)]
    else:
        with pytest.raises(IllegalTransition) as info:
            next_request_state(service_type, state, event)
        assert (info.value.state, info.value.action) == (state.value, event.value)
        assert info.value.what == "event"


def test_supplier_statuses_map_to_hub_events() -> None:
    loan, copy = ServiceType.LOAN, ServiceType.COPY
    assert hub_event_for_status(loan, None, Status.UNFILLED) is E.LENDER_DECLINED
    assert hub_event_for_status(loan, Status.WILL_SUPPLY, Status.RETRY_POSSIBLE) is (
        E.LENDER_DECLINED
    )
    assert hub_event_for_status(loan, Status.WILL_SUPPLY, Status.LOANED) is E.SHIPPED
    assert hub_event_for_status(copy, Status.WILL_SUPPLY, Status.COPY_COMPLETED) is E.SHIPPED
    assert hub_event_for_status(loan, Status.RECALLED, Status.LOAN_COMPLETED) is E.COMPLETED
    assert hub_event_for_status(loan, Status.WILL_SUPPLY, Status.CANCELLED) is E.CANCELLED
    # A renewal (Overdue -> Loaned) is not a second shipment; repeats mean nothing.
    assert hub_event_for_status(loan, Status.OVERDUE, Status.LOANED) is None
    assert hub_event_for_status(loan, Status.LOANED, Status.LOANED) is None
    assert hub_event_for_status(loan, Status.LOANED, Status.OVERDUE) is None
    assert hub_event_for_status(loan, None, Status.EXPECT_TO_SUPPLY) is None


# ----------------------------------------------------------------------------- random walks

statuses = st.sampled_from(list(Status))
actions = st.sampled_from(list(RequesterAction))
steps = st.lists(
    st.one_of(statuses.map(lambda s: ("status", s)), actions.map(lambda a: ("action", a))),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(service_type=st.sampled_from(list(ServiceType)), walk=steps)
def test_random_walks_keep_the_invariants(
    service_type: ServiceType, walk: list[tuple[str, Status | RequesterAction]]
) -> None:
    """One lender, random supplier reports and requester actions, both machines driven the way
    the service will drive them. Invariants: terminal is absorbing; a copy never takes the loan
    branch and a loan never the copy one; a refused step changes nothing; and an accepted
    supplier status never makes the hub's machine refuse (the two tables agree)."""
    status = Status.REQUEST_RECEIVED
    hub = next_request_state(service_type, R.SUBMITTED, E.VALIDATED)
    hub = next_request_state(service_type, hub, E.SENT)
    current_lender = True
    seen_terminal: Status | None = None
    for kind, value in walk:
        before = (status, hub)
        if kind == "status":
            new = Status(value)
            try:
                after = next_supplier_status(service_type, status, new)
            except IllegalTransition:
                assert (status, hub) == before
                continue
            event = hub_event_for_status(service_type, status, after)
            status = after
            if current_lender and event is not None:
                hub = next_request_state(
                    effective_service_type(service_type, status), hub, event
                )  # must not raise
                if hub is R.ROUTING:
                    current_lender = False  # later messages of this lender do not move it
        else:
            action = RequesterAction(value)
            try:
                outcome = apply_requester_action(service_type, status, action)
                if outcome.hub_event is not None and current_lender:
                    hub = next_request_state(
                        effective_service_type(service_type, status), hub, outcome.hub_event
                    )
            except (IllegalTransition, UnsupportedAction):
                status, hub = before
                continue
            assert outcome.status is status
        if seen_terminal is not None:
            assert status is seen_terminal
        if status in TERMINAL:
            seen_terminal = status
        if service_type is ServiceType.COPY:
            assert status not in LOAN_ONLY
        if service_type is ServiceType.LOAN:
            assert status not in COPY_ONLY
    if hub in TERMINAL_REQUEST_STATES:
        for event in HubEvent:
            with pytest.raises(IllegalTransition):
                next_request_state(service_type, hub, event)
