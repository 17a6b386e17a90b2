"""POST /iso18626 through the real app: hostile input, errorData naming what is wrong, both
schema versions, idempotent retries, and what each message does to the hub's requests.

The consortium is the demo's (tests/ill/world.py). CN-SYSU runs its own ILL system (its
iso18626_url is set) and calls the hub with its API token; CN-GZUCM is an ordinary member.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts import service as accounts
from consortia.accounts.roles import SYSTEM
from consortia.catalog.models import Cluster
from consortia.db import session_factory
from consortia.events.models import Event
from consortia.ill import iso18626 as iso
from consortia.ill import peers
from consortia.ill import service as ill
from consortia.ill.iso18626_api import MAX_BODY
from consortia.ill.models import IllRequest, LenderAttempt, OutboxRow, ReceivedMessage
from consortia.ill.service import NewRequest
from consortia.ill.states import RequesterAction, ServiceType, Status, SupplierMessageReason
from consortia.members import service as members
from tests.ill import world
from tests.ill.test_xmlsafe import BILLION_LAUGHS
from tests.ill.world import World

PEER_URL = "http://127.0.0.1:9/iso18626"  # never called here: nothing is delivered
BOOKS = {
    "zh0": {"CN-SYSU": ["available"]},  # only the member system holds it
    "zh1": {"CN-GZUCM": ["available"]},  # only an ordinary member holds it
}
SYSU = peers.agency("CN-SYSU")
GZUCM = peers.agency("CN-GZUCM")


@dataclasses.dataclass
class Hub:
    w: World
    token: str  # CN-SYSU's API token
    other_token: str  # CN-GZUCM's API token


@pytest.fixture
def hub(session: Session, tmp_path: Path) -> Hub:
    w = world.build(session, tmp_path, BOOKS, readers=("CN-GZUCM",))
    members.update_member(session, SYSTEM, "CN-SYSU", {"iso18626_url": PEER_URL})
    token = accounts.create_token(session, SYSTEM, "CN-SYSU").token
    other = accounts.create_token(session, SYSTEM, "CN-GZUCM").token
    session.commit()
    ill.reset_caches()
    return Hub(w, token, other)


def post(client: TestClient, body: bytes, token: str | None) -> iso.Confirmation:
    headers = {"Content-Type": "application/xml"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = client.post("/iso18626", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    answer = iso.parse(r.content)
    assert isinstance(
        answer,
        iso.RequestConfirmation
        | iso.SupplyingAgencyMessageConfirmation
        | iso.RequestingAgencyMessageConfirmation,
    )
    return answer


def raw_post(client: TestClient, body: bytes, token: str) -> bytes:
    r = client.post(
        "/iso18626",
        content=body,
        headers={"Content-Type": "application/xml", "Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200
    return r.content


def error_of(answer: iso.Confirmation) -> tuple[str, str]:
    assert answer.confirmation_header.message_status is iso.MessageStatus.ERROR
    assert answer.errors, "an ERROR confirmation carries errorData"
    err = answer.errors[0]
    return err.error_type.value, err.error_value or ""


def counts(session: Session) -> tuple[int, ...]:
    session.expire_all()
    return tuple(
        int(session.scalar(select(func.count()).select_from(t)) or 0)
        for t in (Event, IllRequest, ReceivedMessage, OutboxRow)
    )


def lend_from_sysu(session: Session, hub: Hub, service_type: str = "Loan") -> int:
    """A GZUCM reader's request, routed to CN-SYSU (a member system)."""
    extra: dict[str, Any] = {}
    if service_type == "Copy":
        extra = {"article_title": "第三章", "pages": "45-60"}
    result = ill.create_request(
        session,
        hub.w.readers["CN-GZUCM"],
        NewRequest(service_type=service_type, cluster_id=hub.w.clusters["zh0"], **extra),
    )
    session.commit()
    assert result.lender_id == hub.w.ids["CN-SYSU"] and result.state == "Sent"
    return result.request_id


def sam(
    request_id: int | str,
    status: Status,
    *,
    reason: SupplierMessageReason = SupplierMessageReason.STATUS_CHANGE,
    supplier: iso.AgencyId = SYSU,
    requester: iso.AgencyId = GZUCM,
    at: dt.datetime | None = None,
    due: dt.datetime | None = None,
    answer: bool | None = None,
) -> iso.SupplyingAgencyMessage:
    when = at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    return iso.SupplyingAgencyMessage(
        header=iso.Header(
            requesting_agency_id=requester,
            supplying_agency_id=supplier,
            timestamp=when,
            requesting_agency_request_id=str(request_id),
            supplying_agency_request_id="SYSU-77",
        ),
        message_info=iso.MessageInfo(reason_for_message=reason, answer_yes_no=answer),
        status_info=iso.StatusInfo(status=status, last_change=when, due_date=due),
    )


def lender_status(session: Session, request_id: int) -> tuple[str, str | None]:
    session.expire_all()
    req = session.get(IllRequest, request_id)
    assert req is not None
    status = session.scalar(
        select(LenderAttempt.status).where(
            LenderAttempt.request_id == request_id, LenderAttempt.position == req.position
        )
    )
    return req.state, status


# ----------------------------------------------------------------------------- hostile input

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626" version="1.2">&xxe;\
</ISO18626Message>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE ISO18626Message SYSTEM "http://127.0.0.1:9/iso.dtd">
<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626" version="1.2"/>"""


def _huge() -> bytes:
    head = b'<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626" version="1.2"><!--'
    return head + b"x" * (10 * 1024 * 1024) + b"--></ISO18626Message>"


@pytest.mark.parametrize(
    "name, body",
    [
        ("billion laughs", BILLION_LAUGHS),
        ("external entity", EXTERNAL_ENTITY),
        ("external DTD", EXTERNAL_DTD),
        ("10 MB", _huge()),
        ("not XML", b"GET / HTTP/1.1\r\n\r\n{json: true}"),
        ("empty", b""),
        ("wrong root", b"<html><body>hello</body></html>"),
    ],
)
def test_hostile_or_broken_input_is_a_badly_formed_message_and_changes_nothing(
    client: TestClient, session: Session, hub: Hub, name: str, body: bytes
) -> None:
    lend_from_sysu(session, hub)
    before = counts(session)
    answer = post(client, body, hub.token)
    assert isinstance(answer, iso.RequestConfirmation)
    error_type, value = error_of(answer)
    assert error_type == "BadlyFormedMessage", (name, value)
    assert value
    if name == "10 MB":
        assert value == f"message larger than {MAX_BODY} bytes"
    assert counts(session) == before


def test_no_token_is_refused(client: TestClient, session: Session, hub: Hub) -> None:
    request_id = lend_from_sysu(session, hub)
    before = counts(session)
    body = iso.to_xml(sam(request_id, Status.WILL_SUPPLY), "2017")
    r = client.post("/iso18626", content=body, headers={"Content-Type": "application/xml"})
    assert r.status_code == 401
    r = client.post(
        "/iso18626", content=body, headers={"Authorization": "Bearer ctk_not-a-real-token"}
    )
    assert r.status_code == 401
    assert counts(session) == before
    assert lender_status(session, request_id) == ("Sent", "RequestReceived")


# ----------------------------------------------------------------------------- errorData


def test_unknown_request_id_is_named(client: TestClient, session: Session, hub: Hub) -> None:
    lend_from_sysu(session, hub)
    before = counts(session)
    for ref in ("999999", "R-17"):
        answer = post(client, iso.to_xml(sam(ref, Status.WILL_SUPPLY), "2017"), hub.token)
        assert isinstance(answer, iso.SupplyingAgencyMessageConfirmation)
        assert error_of(answer) == (
            "UnrecognisedDataValue",
            f"requestingAgencyRequestId: {ref} is unknown",
        )
    # Refusals are remembered (a retry gets the same answer) but nothing else changed.
    after = counts(session)
    assert (after[0], after[1], after[3]) == (before[0], before[1], before[3])


def test_unknown_agency_and_a_token_of_another_member_are_named(
    client: TestClient, session: Session, hub: Hub
) -> None:
    request_id = lend_from_sysu(session, hub)
    before = counts(session)
    stranger = iso.AgencyId("ISIL", "CN-NOWHERE")
    answer = post(
        client,
        iso.to_xml(sam(request_id, Status.WILL_SUPPLY, supplier=stranger), "2017"),
        hub.token,
    )
    assert error_of(answer) == (
        "UnrecognisedDataValue",
        "supplyingAgencyId: CN-NOWHERE is not a member of this consortium",
    )
    # CN-GZUCM's token may not speak for CN-SYSU.
    answer = post(client, iso.to_xml(sam(request_id, Status.WILL_SUPPLY), "2017"), hub.other_token)
    assert error_of(answer) == (
        "UnrecognisedDataValue",
        "supplyingAgencyId: CN-SYSU is not the member of the API token (CN-GZUCM)",
    )
    # The wrong requesting library for the request.
    wrong = iso.AgencyId("ISIL", "CN-GDZSL")
    answer = post(
        client, iso.to_xml(sam(request_id, Status.WILL_SUPPLY, requester=wrong), "2017"), hub.token
    )
    assert error_of(answer) == (
        "UnrecognisedDataValue",
        f"requestingAgencyId: CN-GDZSL is not the requesting library of request {request_id}",
    )
    assert lender_status(session, request_id) == ("Sent", "RequestReceived")
    assert counts(session)[:2] == before[:2]


def test_a_status_the_state_does_not_allow_is_named(
    client: TestClient, session: Session, hub: Hub
) -> None:
    request_id = lend_from_sysu(session, hub)
    events = counts(session)[0]
    answer = post(client, iso.to_xml(sam(request_id, Status.LOAN_COMPLETED), "2021"), hub.token)
    assert error_of(answer) == (
        "UnrecognisedDataValue",
        "status: LoanCompleted is not allowed when the request is RequestReceived",
    )
    copy_status = post(
        client, iso.to_xml(sam(request_id, Status.COPY_COMPLETED), "2017"), hub.token
    )
    assert error_of(copy_status)[1] == (
        "status: CopyCompleted is not allowed when the request is RequestReceived"
    )
    assert lender_status(session, request_id) == ("Sent", "RequestReceived")
    assert counts(session)[0] == events


# ----------------------------------------------------------------------------- the lender's side


@pytest.mark.parametrize("version", ["2017", "2021"])
def test_a_member_system_lends_a_book_to_the_end(
    client: TestClient, session: Session, hub: Hub, version: iso.SchemaVersion
) -> None:
    request_id = lend_from_sysu(session, hub)
    due = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)
    steps = [
        (SupplierMessageReason.REQUEST_RESPONSE, Status.WILL_SUPPLY, None, ("Sent", "WillSupply")),
        (SupplierMessageReason.STATUS_CHANGE, Status.LOANED, due, ("Shipped", "Loaned")),
    ]
    for reason, status, when, expected in steps:
        answer = post(
            client, iso.to_xml(sam(request_id, status, reason=reason, due=when), version), hub.token
        )
        assert answer.confirmation_header.message_status is iso.MessageStatus.OK, answer
        assert isinstance(answer, iso.SupplyingAgencyMessageConfirmation)
        assert answer.reason_for_message is reason
        assert lender_status(session, request_id) == expected
    req = session.get(IllRequest, request_id)
    assert req is not None and req.loan_due_at == due
    # The requester's steps become RequestingAgencyMessages in the outbox, in order.
    staff = hub.w.staff["CN-GZUCM"]
    ill.received(session, staff, request_id)
    ill.returned(session, staff, request_id)
    session.commit()
    peers.sync(session_factory())
    session.expire_all()
    rows = peers.outbox_rows(session, request_id)
    kinds = [iso.parse(bytes(r.body)) for r in rows]
    assert [type(m).__name__ for m in kinds] == [
        "Request",
        "RequestingAgencyMessage",
        "RequestingAgencyMessage",
    ]
    actions = [m.action for m in kinds if isinstance(m, iso.RequestingAgencyMessage)]
    assert actions == [RequesterAction.RECEIVED, RequesterAction.SHIPPED_RETURN]
    assert all(r.url == PEER_URL and r.state == "pending" for r in rows)
    first = kinds[0]
    assert isinstance(first, iso.Request)
    assert first.header.requesting_agency_request_id == str(request_id)
    assert first.header.supplying_agency_id == SYSU
    answer = post(client, iso.to_xml(sam(request_id, Status.LOAN_COMPLETED), version), hub.token)
    assert answer.confirmation_header.message_status is iso.MessageStatus.OK
    assert lender_status(session, request_id) == ("Completed", "LoanCompleted")
    actions_logged = [
        e.action for e in session.scalars(select(Event).where(Event.entity_id == str(request_id)))
    ]
    assert actions_logged[-4:] == [
        "ill.request.shipped",
        "ill.request.received",
        "ill.request.returned",
        "ill.request.completed",
    ]


def test_a_retried_message_gets_the_same_answer_and_changes_nothing(
    client: TestClient, session: Session, hub: Hub
) -> None:
    request_id = lend_from_sysu(session, hub)
    body = iso.to_xml(sam(request_id, Status.WILL_SUPPLY), "2017")
    first = raw_post(client, body, hub.token)
    after_first = counts(session)
    assert lender_status(session, request_id) == ("Sent", "WillSupply")
    # The same message again, and once more with other whitespace and the 2021 schema.
    again = raw_post(client, body, hub.token)
    same_message = iso.to_xml(iso.parse(body), "2021")
    assert same_message != body
    third = raw_post(client, same_message, hub.token)
    assert again == first and third == first
    assert counts(session) == after_first
    # Another member's token does not get the stored answer.
    other = iso.parse(raw_post(client, body, hub.other_token))
    assert error_of(other) == (  # type: ignore[arg-type]
        "UnrecognisedDataValue",
        "supplyingAgencyId: CN-SYSU is not the member of the API token (CN-GZUCM)",
    )
    # An error answer is remembered as well.
    bad = iso.to_xml(sam(request_id, Status.COPY_COMPLETED), "2017")
    refused = raw_post(client, bad, hub.token)
    assert raw_post(client, bad, hub.token) == refused
    assert error_of(iso.parse(refused))[0] == "UnrecognisedDataValue"  # type: ignore[arg-type]


def test_a_confirmation_sent_as_a_message_is_refused(
    client: TestClient, session: Session, hub: Hub
) -> None:
    lend_from_sysu(session, hub)
    before = counts(session)
    confirmation = iso.confirmation_for(sam(1, Status.WILL_SUPPLY))
    answer = post(client, confirmation, hub.token)
    assert error_of(answer)[0] == "BadlyFormedMessage"
    assert counts(session) == before


# ----------------------------------------------------------------------------- the hub as supplier


def incoming_request(
    session: Session,
    hub: Hub,
    ref: str,
    service_type: ServiceType = ServiceType.LOAN,
    supplier: iso.AgencyId | None = GZUCM,
) -> iso.Request:
    title = session.scalar(select(Cluster.title).where(Cluster.id == hub.w.clusters["zh1"]))
    assert title
    return iso.Request(
        header=iso.Header(
            requesting_agency_id=SYSU,
            supplying_agency_id=supplier,
            timestamp=dt.datetime.now(dt.UTC).replace(microsecond=0),
            requesting_agency_request_id=ref,
        ),
        bibliographic_info=iso.BibliographicInfo(
            title=title,
            title_of_component="第一章" if service_type is ServiceType.COPY else None,
            pages_requested="1-20" if service_type is ServiceType.COPY else None,
        ),
        service_info=iso.ServiceInfo(service_type=service_type),
        patron_info=iso.PatronInfo(patron_id="P-0042"),
    )


@pytest.mark.parametrize("version", ["2017", "2021"])
def test_a_member_system_borrows_through_the_hub(
    client: TestClient, session: Session, hub: Hub, version: iso.SchemaVersion
) -> None:
    msg = incoming_request(session, hub, "SYSU-REQ-1")
    answer = post(client, iso.to_xml(msg, version), hub.token)
    assert isinstance(answer, iso.RequestConfirmation)
    assert answer.confirmation_header.message_status is iso.MessageStatus.OK, answer
    session.expire_all()
    req = session.scalar(select(IllRequest).where(IllRequest.requester_ref == "SYSU-REQ-1"))
    assert req is not None
    assert (req.via, req.borrower_id, req.reader_id, req.patron_ref) == (
        "iso18626",
        hub.w.ids["CN-SYSU"],
        None,
        "P-0042",
    )
    assert (req.state, req.lender_id) == ("Sent", hub.w.ids["CN-GZUCM"])
    # The hub's lender works it; each step is owed to CN-SYSU as a SupplyingAgencyMessage.
    lender = hub.w.staff["CN-GZUCM"]
    ill.will_supply(session, lender, req.id)
    ill.ship(session, lender, req.id)
    session.commit()
    # The member system says it received the book, then shipped it back.
    for action in (RequesterAction.RECEIVED, RequesterAction.SHIPPED_RETURN):
        ram = iso.RequestingAgencyMessage(
            header=iso.Header(
                requesting_agency_id=SYSU,
                supplying_agency_id=GZUCM,
                timestamp=dt.datetime.now(dt.UTC),
                requesting_agency_request_id="SYSU-REQ-1",
                supplying_agency_request_id=str(req.id),
            ),
            action=action,
        )
        answer = post(client, iso.to_xml(ram, version), hub.token)
        assert isinstance(answer, iso.RequestingAgencyMessageConfirmation)
        assert answer.confirmation_header.message_status is iso.MessageStatus.OK, answer
        assert answer.action is action
    ill.checked_in(session, lender, req.id)
    session.commit()
    assert lender_status(session, req.id) == ("Completed", "LoanCompleted")
    peers.sync(session_factory())
    session.expire_all()
    sent = [iso.parse(bytes(r.body)) for r in peers.outbox_rows(session, req.id)]
    assert all(isinstance(m, iso.SupplyingAgencyMessage) for m in sent)
    statuses = [m.status_info.status for m in sent if isinstance(m, iso.SupplyingAgencyMessage)]
    assert statuses == [
        Status.EXPECT_TO_SUPPLY,
        Status.WILL_SUPPLY,
        Status.LOANED,
        Status.LOAN_COMPLETED,
    ]
    first = sent[0]
    assert isinstance(first, iso.SupplyingAgencyMessage)
    assert first.header.requesting_agency_request_id == "SYSU-REQ-1"
    assert first.header.supplying_agency_request_id == str(req.id)
    # Syncing again writes nothing new.
    assert peers.sync(session_factory()) == 0


def test_requests_from_a_member_system_are_checked(
    client: TestClient, session: Session, hub: Hub
) -> None:
    before = counts(session)
    nowhere = iso.AgencyId("ISIL", "CN-NOWHERE")
    answer = post(
        client,
        iso.to_xml(incoming_request(session, hub, "X-1", supplier=nowhere), "2021"),
        hub.token,
    )
    assert error_of(answer) == (
        "UnrecognisedDataValue",
        "supplyingAgencyId: CN-NOWHERE is not a member of this consortium",
    )
    answer = post(
        client, iso.to_xml(incoming_request(session, hub, "X-2", supplier=SYSU), "2021"), hub.token
    )
    assert error_of(answer) == (
        "UnrecognisedDataValue",
        "supplyingAgencyId: CN-SYSU is the requesting agency itself",
    )
    assert counts(session)[:2] == before[:2]
    # The same request id twice (a new message, not a retry) names the request that has it.
    ok = post(client, iso.to_xml(incoming_request(session, hub, "X-3"), "2017"), hub.token)
    assert ok.confirmation_header.message_status is iso.MessageStatus.OK
    dup = incoming_request(session, hub, "X-3")
    dup = dataclasses.replace(
        dup,
        header=dataclasses.replace(
            dup.header, timestamp=dup.header.timestamp + dt.timedelta(seconds=5)
        ),
    )
    answer = post(client, iso.to_xml(dup, "2017"), hub.token)
    kind, value = error_of(answer)
    assert kind == "UnrecognisedDataValue" and value.startswith(
        "requester_ref: X-3 is already used"
    )


def test_requesting_agency_messages_are_checked(
    client: TestClient, session: Session, hub: Hub
) -> None:
    post(client, iso.to_xml(incoming_request(session, hub, "R-1"), "2017"), hub.token)

    def ram(ref: str, action: RequesterAction) -> bytes:
        return iso.to_xml(
            iso.RequestingAgencyMessage(
                header=iso.Header(
                    requesting_agency_id=SYSU,
                    supplying_agency_id=GZUCM,
                    timestamp=dt.datetime.now(dt.UTC),
                    requesting_agency_request_id=ref,
                ),
                action=action,
            ),
            "2021",
        )

    before = counts(session)
    answer = post(client, ram("R-404", RequesterAction.RECEIVED), hub.token)
    assert error_of(answer) == (
        "UnrecognisedDataValue",
        "requestingAgencyRequestId: R-404 is unknown",
    )
    answer = post(client, ram("R-1", RequesterAction.RECEIVED), hub.token)
    assert error_of(answer) == (
        "UnrecognisedDataValue",
        "action: Received is not allowed when the request is RequestReceived",
    )
    answer = post(client, ram("R-1", RequesterAction.LOST), hub.token)
    assert error_of(answer) == ("UnsupportedActionType", "action: Lost")
    assert counts(session)[:2] == before[:2]
    # Cancel before the lender acted: cancelled at once, and the CancelResponse is owed.
    answer = post(client, ram("R-1", RequesterAction.CANCEL), hub.token)
    assert answer.confirmation_header.message_status is iso.MessageStatus.OK
    session.expire_all()
    req = session.scalar(select(IllRequest).where(IllRequest.requester_ref == "R-1"))
    assert req is not None and req.state == "Cancelled"
    peers.sync(session_factory())
    session.expire_all()
    last = iso.parse(bytes(list(peers.outbox_rows(session, req.id))[-1].body))
    assert isinstance(last, iso.SupplyingAgencyMessage)
    assert last.message_info.reason_for_message is SupplierMessageReason.CANCEL_RESPONSE
    assert (last.message_info.answer_yes_no, last.status_info.status) == (True, Status.CANCELLED)


def test_the_same_message_sent_at_once_by_several_threads_moves_the_request_once(
    client: TestClient, session: Session, hub: Hub
) -> None:
    import threading

    request_id = lend_from_sysu(session, hub)
    body = iso.to_xml(sam(request_id, Status.WILL_SUPPLY), "2017")
    answers: list[bytes] = []

    def send() -> None:
        answers.append(raw_post(client, body, hub.token))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 4
    # One of them moved the request; the others got its stored answer.
    assert iso.is_ok(iso.parse(answers[0]))
    assert all(a == answers[0] for a in answers)
    assert lender_status(session, request_id) == ("Sent", "WillSupply")
    statuses = session.scalars(
        select(Event.action).where(
            Event.entity_id == str(request_id), Event.action == "ill.lender.status"
        )
    ).all()
    assert len(statuses) == 1
    assert raw_post(client, body, hub.token) == answers[0]


# ----------------------------------------------------------------------------- the peer's own id


def outbox_messages(session: Session, request_id: int) -> list[iso.Message]:
    peers.sync(session_factory())
    session.expire_all()
    return [iso.parse(bytes(r.body)) for r in peers.outbox_rows(session, request_id)]


def supplier_ref(session: Session, request_id: int) -> str | None:
    session.expire_all()
    req = session.get(IllRequest, request_id)
    assert req is not None
    return session.scalar(
        select(LenderAttempt.supplier_ref).where(
            LenderAttempt.request_id == request_id, LenderAttempt.position == req.position
        )
    )


def first_turn(session: Session, request_id: int) -> tuple[str, str | None, str | None]:
    """The request's state, and how its first lender's turn stands."""
    session.expire_all()
    req = session.get(IllRequest, request_id)
    assert req is not None
    attempt = session.scalar(
        select(LenderAttempt).where(
            LenderAttempt.request_id == request_id, LenderAttempt.position == 0
        )
    )
    assert attempt is not None
    return req.state, attempt.status, attempt.closed


def test_the_member_systems_own_id_is_kept_and_named_in_the_hubs_later_messages(
    client: TestClient, session: Session, hub: Hub
) -> None:
    request_id = lend_from_sysu(session, hub)
    assert supplier_ref(session, request_id) is None
    answer = post(client, iso.to_xml(sam(request_id, Status.WILL_SUPPLY), "2017"), hub.token)
    assert answer.confirmation_header.message_status is iso.MessageStatus.OK
    assert supplier_ref(session, request_id) == "SYSU-77"
    due = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)
    post(client, iso.to_xml(sam(request_id, Status.LOANED, due=due), "2021"), hub.token)
    staff = hub.w.staff["CN-GZUCM"]
    ill.renew(session, staff, request_id)
    ill.received(session, staff, request_id)
    ill.returned(session, staff, request_id)
    session.commit()
    sent = outbox_messages(session, request_id)
    assert isinstance(sent[0], iso.Request)
    assert sent[0].header.supplying_agency_request_id is None  # not known yet
    actions = [
        (m.action, m.header.supplying_agency_request_id)
        for m in sent
        if isinstance(m, iso.RequestingAgencyMessage)
    ]
    assert actions == [
        (RequesterAction.RENEW, "SYSU-77"),
        (RequesterAction.RECEIVED, "SYSU-77"),
        (RequesterAction.SHIPPED_RETURN, "SYSU-77"),
    ]
    # Built again, the messages are the same ones: nothing new is written.
    assert peers.sync(session_factory()) == 0


def test_an_overlong_id_of_the_member_system_is_refused_and_changes_nothing(
    client: TestClient, session: Session, hub: Hub
) -> None:
    request_id = lend_from_sysu(session, hub)
    msg = sam(request_id, Status.WILL_SUPPLY)
    msg = dataclasses.replace(
        msg, header=dataclasses.replace(msg.header, supplying_agency_request_id="X" * 101)
    )
    events = counts(session)[0]
    answer = post(client, iso.to_xml(msg, "2017"), hub.token)
    assert error_of(answer) == (
        "UnrecognisedDataValue",
        "supplyingAgencyRequestId: at most 100 characters",
    )
    assert lender_status(session, request_id) == ("Sent", "RequestReceived")
    assert supplier_ref(session, request_id) is None
    assert counts(session)[0] == events


def test_when_the_member_system_does_not_answer_in_time_it_is_sent_a_cancel(
    client: TestClient, session: Session, hub: Hub
) -> None:
    request_id = lend_from_sysu(session, hub, "Copy")
    # It said it expects to supply, then never shipped: the hub moves on (here no other
    # member holds the book, so the request ends Unfilled).
    post(
        client,
        iso.to_xml(
            sam(request_id, Status.EXPECT_TO_SUPPLY, reason=SupplierMessageReason.REQUEST_RESPONSE),
            "2017",
        ),
        hub.token,
    )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    report = ill.expire_unanswered(session_factory(), now=later)
    assert report.advanced == 1
    assert first_turn(session, request_id) == ("Unfilled", "ExpectToSupply", "expired")
    sent = outbox_messages(session, request_id)
    assert [type(m).__name__ for m in sent] == ["Request", "RequestingAgencyMessage"]
    cancel = sent[-1]
    assert isinstance(cancel, iso.RequestingAgencyMessage)
    assert cancel.action is RequesterAction.CANCEL
    assert cancel.header.supplying_agency_id == SYSU
    assert cancel.header.requesting_agency_request_id == str(request_id)
    assert cancel.header.supplying_agency_request_id == "SYSU-77"
    assert cancel.note == ill.R_EXPIRED
    # Its CancelResponse is acknowledged and changes nothing; anything else from it now is
    # refused naming it.
    events = counts(session)[0]
    answer = post(
        client,
        iso.to_xml(
            sam(
                request_id,
                Status.CANCELLED,
                reason=SupplierMessageReason.CANCEL_RESPONSE,
                answer=True,
            ),
            "2017",
        ),
        hub.token,
    )
    assert answer.confirmation_header.message_status is iso.MessageStatus.OK, answer
    late = post(client, iso.to_xml(sam(request_id, Status.COPY_COMPLETED), "2017"), hub.token)
    assert error_of(late) == (
        "UnrecognisedDataValue",
        f"supplyingAgencyId: CN-SYSU is not the lender of request {request_id}",
    )
    assert counts(session)[0] == events
    assert first_turn(session, request_id) == ("Unfilled", "ExpectToSupply", "expired")


def test_a_member_system_that_never_answered_is_cancelled_and_the_next_lender_asked(
    session: Session, tmp_path: Path
) -> None:
    w = world.build(
        session,
        tmp_path,
        {"zh0": {"CN-SYSU": ["available"], "CN-JLU": ["available"]}},
        readers=("CN-GZUCM",),
    )
    members.update_member(session, SYSTEM, "CN-SYSU", {"iso18626_url": PEER_URL})
    session.commit()
    ill.reset_caches()
    result = ill.create_request(
        session,
        w.readers["CN-GZUCM"],
        NewRequest(service_type="Loan", cluster_id=w.clusters["zh0"]),
    )
    session.commit()
    # Same region first: CN-SYSU (a member system), then CN-JLU (Jilin).
    assert result.lender_id == w.ids["CN-SYSU"]
    ill.expire_unanswered(session_factory(), now=dt.datetime.now(dt.UTC) + dt.timedelta(days=10))
    session.expire_all()
    req = session.get(IllRequest, result.request_id)
    assert req is not None and (req.state, req.lender_id) == ("Sent", w.ids["CN-JLU"])
    sent = outbox_messages(session, result.request_id)
    assert [type(m).__name__ for m in sent] == ["Request", "RequestingAgencyMessage"]
    cancel = sent[-1]
    assert isinstance(cancel, iso.RequestingAgencyMessage)
    assert (cancel.action, cancel.header.supplying_agency_request_id) == (
        RequesterAction.CANCEL,
        None,  # it never answered, so never said its id
    )
    # A lender that declines by itself is not sent a Cancel: only the hub's own moving on is.
    ill.unfilled(session, w.staff["CN-JLU"], result.request_id, "not on the shelf")
    session.commit()
    assert len(outbox_messages(session, result.request_id)) == 2
