"""Between two real hub processes over HTTP (the fixtures of tests/interop/test_two_hubs.py):
hub A keeps hub B's own id for each request (supplyingAgencyRequestId) and names it in its later
messages; when B does not supply in time, A moves on and sends B a Cancel, which B acts on and
answers, and A acknowledges the answer.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from consortia.ill import iso18626 as iso
from consortia.ill import peers
from consortia.ill import service as ill
from consortia.ill.models import LenderAttempt
from consortia.ill.service import NewRequest
from consortia.ill.states import RequesterAction
from tests.interop.test_two_hubs import (  # noqa: F401  (hubs: the fixture)
    HubProcess,
    _act,
    _delivered,
    _events,
    _incoming,
    _outbox,
    _reader,
    _staff,
    _state,
    hubs,
)

pytestmark = pytest.mark.interop


def _sent_actions(hub: HubProcess, request_id: int) -> list[tuple[RequesterAction, str | None]]:
    """The RequestingAgencyMessages the hub sent about its request, with the peer's id named."""
    with hub.session() as s:
        out = []
        for row in peers.outbox_rows(s, request_id):
            msg = iso.parse(bytes(row.body))
            if isinstance(msg, iso.RequestingAgencyMessage):
                out.append((msg.action, msg.header.supplying_agency_request_id))
        return out


def _supplier_ref(hub: HubProcess, request_id: int) -> str | None:
    with hub.session() as s:
        return s.scalar(
            select(LenderAttempt.supplier_ref).where(
                LenderAttempt.request_id == request_id, LenderAttempt.position == 0
            )
        )


def test_the_peers_own_request_id_travels_back(
    hubs: tuple[HubProcess, HubProcess],  # noqa: F811
) -> None:
    a, b = hubs
    staff_a = _staff(a, "CN-A")
    loan = _act(
        a,
        ill.create_request,
        _reader(a, "CN-A"),
        NewRequest(service_type="Loan", cluster_id=a.clusters["zh2"]),
    )
    _delivered(a.worker(), 1)  # Request -> hub B
    b_loan = _incoming(b, loan.request_id)
    assert _supplier_ref(a, loan.request_id) is None
    _delivered(b.worker(), 1)  # ExpectToSupply, naming B's request id
    assert _supplier_ref(a, loan.request_id) == str(b_loan)
    due = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=28)
    _act(b, ill.ship, _staff(b, "CN-B"), b_loan, due=due)
    _delivered(b.worker(), 1)
    _act(a, ill.received, staff_a, loan.request_id)
    _act(a, ill.returned, staff_a, loan.request_id)
    _delivered(a.worker(), 2)
    assert _state(b, b_loan) == ("Returned", "Loaned")
    assert _sent_actions(a, loan.request_id) == [
        (RequesterAction.RECEIVED, str(b_loan)),
        (RequesterAction.SHIPPED_RETURN, str(b_loan)),
    ]


def test_a_peer_that_does_not_supply_in_time_is_sent_a_cancel(
    hubs: tuple[HubProcess, HubProcess],  # noqa: F811
) -> None:
    a, b = hubs
    loan = _act(
        a,
        ill.create_request,
        _reader(a, "CN-A"),
        NewRequest(service_type="Loan", cluster_id=a.clusters["zh2"]),
    )
    _delivered(a.worker(), 1)
    b_loan = _incoming(b, loan.request_id)
    _delivered(b.worker(), 1)  # ExpectToSupply; then B's library does nothing
    assert _state(a, loan.request_id) == ("Sent", "ExpectToSupply")
    # A's days-to-respond timer, a month on: A moves on (no one else holds the book: Unfilled).
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert ill.expire_unanswered(a.factory, now=later).advanced == 1
    assert _state(a, loan.request_id)[0] == "Unfilled"
    assert _state(b, b_loan) == ("Sent", "RequestReceived")
    _delivered(a.worker(), 1)  # the Cancel, naming B's request id
    assert _sent_actions(a, loan.request_id) == [(RequesterAction.CANCEL, str(b_loan))]
    # B's library had not acted on it: cancelled there at once, and B answers Yes.
    assert _state(b, b_loan) == ("Cancelled", "Cancelled")
    _delivered(b.worker(), 1)  # CancelResponse, acknowledged by A (not refused)
    assert _state(a, loan.request_id)[0] == "Unfilled"
    assert [e for e, _ in _events(a, loan.request_id)][-2:] == [
        "ill.request.declined",
        "ill.request.unfilled",
    ]
    assert {state for _, state, _ in _outbox(a) + _outbox(b)} == {"delivered"}
    # Nothing more for either to say.
    _delivered(a.worker(), 0)
    _delivered(b.worker(), 0)
