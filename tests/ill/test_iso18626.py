"""ISO 18626 messages against the official schemas: round trips, peers' shapes, hostile input.

Every document produced here is validated with lxml against the XSD loaded independently of the
module under test: the schema is the peer nobody here wrote.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from consortia.ill import iso18626 as iso
from consortia.ill.states import RequesterAction, ServiceType, Status, SupplierMessageReason
from tests.ill import samples
from tests.ill.test_xmlsafe import BILLION_LAUGHS

DATA = Path(__file__).parent.parent / "data" / "iso18626"
NS = "http://illtransactions.org/2013/iso18626"
Q = f"{{{NS}}}"
XSD = {
    "2017": iso.SCHEMA_DIR / "ISO-18626-v1_2.xsd",
    "2021": iso.SCHEMA_DIR / "ISO-18626-2021-2.xsd",
}
_official: dict[str, etree.XMLSchema] = {}


def official(version: str) -> etree.XMLSchema:
    if version not in _official:
        _official[version] = etree.XMLSchema(etree.parse(str(XSD[version])))
    return _official[version]


def assert_valid(xml: bytes, version: str) -> etree._Element:
    root = etree.fromstring(xml)
    schema = official(version)
    assert schema.validate(root), schema.error_log
    return root


def versions_valid(xml: bytes) -> list[str]:
    root = etree.fromstring(xml)
    return [v for v in ("2017", "2021") if official(v).validate(root)]


def refused(data: bytes) -> iso.Iso18626Error:
    with pytest.raises(iso.Iso18626Error) as info:
        iso.parse(data)
    return info.value


def answer(err: iso.Iso18626Error) -> etree._Element:
    """The confirmation for a refused message: must fit the schema of its version."""
    xml = iso.confirmation_for(None, err)
    assert versions_valid(xml), xml
    root = etree.fromstring(xml)
    assert root.findtext(f".//{Q}messageStatus") == "ERROR"
    assert root.findtext(f".//{Q}errorType") == err.error_type.value
    assert root.findtext(f".//{Q}errorValue") == err.value
    return root


# ----------------------------------------------------------------------------- schemas


def test_packaged_schemas_are_the_published_files() -> None:
    sums = {v: hashlib.sha256(p.read_bytes()).hexdigest() for v, p in XSD.items()}
    assert sums == {
        "2017": "a8ed076e4bd8b145fd46a8ef412503a4c36fca55ce56c25cdc064626ab189a41",
        "2021": "79715975a404e15b8d636975841c1a3287c4d13e44e909e4f8e3563f4c790a40",
    }
    for path in XSD.values():
        root = etree.parse(str(path)).getroot()
        assert root.get("targetNamespace") == NS
        assert root.find("{http://www.w3.org/2001/XMLSchema}import") is None


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", ["2017", "2021"])
@pytest.mark.parametrize("msg", samples.all_messages(), ids=lambda m: f"{m.kind}-{id(m) % 1000}")
def test_every_kind_round_trips_and_fits_the_schema(msg: iso.Message, version: str) -> None:
    xml = iso.to_xml(msg, version)  # type: ignore[arg-type]
    root = assert_valid(xml, version)
    assert root.tag == f"{Q}ISO18626Message"
    assert root.get(f"{Q}version") == {"2017": "1.2", "2021": "2021-2"}[version]
    assert root[0].tag == f"{Q}{msg.kind.value}"
    received = iso.parse_envelope(xml)
    assert received.message == msg
    assert received.version == version
    assert iso.message_key(received.message) == iso.message_key(msg)


def test_the_versions_differ_where_the_schemas_do() -> None:
    req = samples.request()
    old = etree.fromstring(iso.to_xml(req, "2017"))
    new = etree.fromstring(iso.to_xml(req, "2021"))
    item_old = old.find(f".//{Q}bibliographicItemId")
    item_new = new.find(f".//{Q}bibliographicItemId")
    assert item_old is not None and item_new is not None
    assert [etree.QName(c).localname for c in item_old] == [
        "bibliographicItemIdentifier",
        "bibliographicItemIdentifierCode",
    ]
    assert [etree.QName(c).localname for c in item_new] == [
        "bibliographicItemIdentifierCode",
        "bibliographicItemIdentifier",
    ]
    assert old.find(f".//{Q}header/{Q}multipleItemRequestId") is not None  # mandatory in v1_2
    assert old.find(f".//{Q}preferredFormat") is not None
    assert new.find(f".//{Q}itemFormat") is not None
    sam = samples.supplying_agency_message()
    old = etree.fromstring(iso.to_xml(sam, "2017"))
    new = etree.fromstring(iso.to_xml(sam, "2021"))
    assert old.find(f".//{Q}messageInfo/{Q}retryAfter") is not None
    assert new.find(f".//{Q}retryInfo/{Q}retryAfter") is not None
    assert new.find(f".//{Q}header/{Q}multipleItemRequestId") is None
    assert old.find(f".//{Q}sentVia") is not None and new.find(f".//{Q}deliveryMethod") is not None


def test_2017_cannot_say_what_only_2021_has() -> None:
    hold = samples.supplying_agency_message(Status.HOLD_RETURN)
    with pytest.raises(iso.MessageInvalid) as info:
        iso.to_xml(hold, "2017")
    assert "status" in info.value.detail and "HoldReturn" in str(info.value)
    assert_valid(iso.to_xml(hold, "2021"), "2021")
    lost = samples.requesting_agency_message(RequesterAction.LOST)
    with pytest.raises(iso.MessageInvalid):
        iso.to_xml(lost, "2017")
    assert_valid(iso.to_xml(lost, "2021"), "2021")
    # A Request without a supplier is fine in 2021 (broadcast), not in 2017.
    open_request = dataclasses.replace(
        samples.request(), header=samples.header(supplier=None, supplier_request_id=None)
    )
    with pytest.raises(iso.MessageInvalid) as info:
        iso.to_xml(open_request, "2017")
    assert "supplyingAgencyId" in info.value.detail
    assert_valid(iso.to_xml(open_request, "2021"), "2021")
    # 2021 requires serviceInfo.
    bare = dataclasses.replace(samples.request(), service_info=None)
    assert_valid(iso.to_xml(bare, "2017"), "2017")
    with pytest.raises(iso.MessageInvalid):
        iso.to_xml(bare, "2021")


def test_what_2017_holds_once_is_joined() -> None:
    req = dataclasses.replace(
        samples.request(),
        bibliographic_info=dataclasses.replace(
            samples.request().bibliographic_info, volumes=("45", "3")
        ),
    )
    xml = iso.to_xml(req, "2017")
    assert etree.fromstring(xml).findtext(f".//{Q}volume") == "45; 3"
    assert iso.parse(iso.to_xml(req, "2021")) == req


# ----------------------------------------------------------------------------- peers' messages


def example(name: str) -> iso.Received:
    return iso.parse_envelope((DATA / name).read_bytes())


def test_a_v1_2_request_in_the_default_namespace() -> None:
    got = example("request-v1_2-default-namespace.xml")
    assert (got.version, got.declared_version) == ("2017", "1.2")
    msg = got.message
    assert isinstance(msg, iso.Request)
    assert msg.header.supplying_agency_id == iso.AgencyId("ISIL", "CN-SYSU")
    assert msg.header.requesting_agency_id.symbol == "ISIL:CN-GZUCM"
    assert msg.header.multiple_item_request_id is None  # empty element
    assert msg.header.timestamp == dt.datetime(2024, 11, 28, 10, 25, 11, 136000, tzinfo=dt.UTC)
    assert msg.bibliographic_info.item_id("isbn") == "9780702077050"
    assert msg.service_info is not None
    assert msg.service_info.service_type is ServiceType.LOAN
    assert msg.service_info.request_type is iso.RequestType.NEW
    assert msg.supplier_info == (iso.SupplierInfo(),)
    addr = msg.requested_delivery_info[0].address
    assert isinstance(addr, iso.PhysicalAddress) and addr.locality == "Guangzhou"
    assert msg.patron_info == iso.PatronInfo(patron_id="123")


def test_a_prefixed_supplying_agency_message_with_nanoseconds() -> None:
    msg = example("sam-v1_2-prefixed-loaned.xml").message
    assert isinstance(msg, iso.SupplyingAgencyMessage)
    assert msg.message_info.reason_for_message is SupplierMessageReason.STATUS_CHANGE
    assert msg.message_info.reason_unfilled is None  # empty element, not an empty code
    assert msg.status_info.status is Status.LOANED
    assert msg.status_info.last_change == dt.datetime(
        2024, 12, 12, 20, 12, 0, 629710, tzinfo=dt.UTC
    )
    assert msg.status_info.due_date == dt.datetime(2025, 1, 11, 16, 0, tzinfo=dt.UTC)
    assert msg.delivery_info is not None
    assert msg.delivery_info.item_ids == ("31234000123456",)
    assert msg.delivery_info.sent_to_patron is False
    assert msg.delivery_info.loan_conditions == ()


def test_a_cancel_from_a_requester() -> None:
    msg = example("ram-v1_2-cancel.xml").message
    assert isinstance(msg, iso.RequestingAgencyMessage)
    assert msg.action is RequesterAction.CANCEL
    assert msg.note == "Reader no longer needs it"
    assert msg.header.supplying_agency_request_id == "7f3d2a10-9c41-4b8e-a2d5-0e6b51c9d842"


def test_a_2021_copy_request() -> None:
    got = example("request-2021-copy.xml")
    assert (got.version, got.declared_version) == ("2021", "2021-2")
    msg = got.message
    assert isinstance(msg, iso.Request)
    assert msg.header.supplying_agency_id is None
    assert msg.header.consortial_id == iso.AgencyId("ISIL", "CN-CONSORTIA")
    assert msg.header.requesting_agency_id.type_scheme is not None
    assert msg.header.timestamp == dt.datetime(2025, 3, 1, 1, 15, tzinfo=dt.UTC)
    assert msg.bibliographic_info.volumes == ("45", "3")
    assert msg.bibliographic_info.item_id("ISSN") == "0255-7053"
    assert msg.service_info is not None
    assert msg.service_info.service_type is ServiceType.COPY
    assert msg.service_info.item_format == iso.SchemeValue("PDF")
    wanted = msg.requested_delivery_info[0]
    assert wanted.address == iso.ElectronicAddress("Email", "ill@lib.gzucm.edu.cn")
    assert wanted.delivery_method == iso.SchemeValue("Email")


def test_an_old_1_1_request_is_accepted() -> None:
    got = example("request-v1_1-no-multipleItemRequestId.xml")
    assert got.declared_version == "1.1" and got.version == "2017"
    msg = got.message
    assert isinstance(msg, iso.Request)
    assert msg.header.supplying_agency_id is not None
    assert msg.header.supplying_agency_id.type_scheme is not None  # unqualified scheme read
    assert msg.header.timestamp == dt.datetime(2016, 10, 18, 9, 30, tzinfo=dt.UTC)
    assert msg.service_info is not None
    assert msg.service_info.service_type is ServiceType.COPY_OR_LOAN


def test_the_us_spelling_of_error_types_is_read() -> None:
    msg = example("confirmation-us-spelling-error.xml").message
    assert isinstance(msg, iso.RequestConfirmation)
    assert not iso.is_ok(msg)
    assert msg.errors == (
        iso.ErrorData(
            iso.ErrorType.UNRECOGNISED_DATA_VALUE,
            "requestingAgencyRequestId: request with a given ID already exists",
        ),
    )
    assert iso.ErrorType.parse("UnrecognizedDataElement") is iso.ErrorType.UNRECOGNISED_DATA_ELEMENT


def test_a_message_that_fits_only_the_other_schema_is_accepted() -> None:
    # A 2021-shaped SAM (no multipleItemRequestId, retryInfo) that says version 1.2.
    xml = iso.to_xml(samples.supplying_agency_message(), "2021").replace(
        b'ill:version="2021-2"', b'ill:version="1.2"'
    )
    got = iso.parse_envelope(xml)
    assert (got.version, got.declared_version) == ("2021", "1.2")
    assert got.message == samples.supplying_agency_message()


# ----------------------------------------------------------------------------- bad input


def sam_xml(**replace: str) -> bytes:
    text = iso.to_xml(samples.supplying_agency_message(), "2017").decode()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text.encode()


def ram_xml(old: str, new: str) -> bytes:
    text = iso.to_xml(samples.requesting_agency_message(), "2017").decode()
    assert old in text
    return text.replace(old, new).encode()


def req_xml(old: str, new: str) -> bytes:
    text = iso.to_xml(samples.request(), "2017").decode()
    assert old in text
    return text.replace(old, new, 1).encode()


def test_billion_laughs() -> None:
    err = refused(BILLION_LAUGHS)
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE and "DOCTYPE" in err.value
    root = answer(err)
    assert root[0].tag == f"{Q}requestConfirmation"  # kind unknown: the fewest-parts answer


def test_external_entity(tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0")
    xml = sam_xml(**{"<ill:note>已寄出</ill:note>": "<ill:note>&xxe;</ill:note>"}).decode()
    xml = xml.replace(
        "?>", f'?><!DOCTYPE ill:ISO18626Message [<!ENTITY xxe SYSTEM "file://{secret}">]>', 1
    )
    err = refused(xml.encode())
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE
    assert "root:x" not in err.value
    assert "root:x" not in iso.confirmation_for(None, err).decode()
    answer(err)


def test_a_plain_dtd() -> None:
    xml = iso.to_xml(samples.request(), "2017").replace(b"?>", b"?><!DOCTYPE x>", 1)
    err = refused(xml)
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE
    answer(err)


def test_ten_megabytes() -> None:
    note = "x" * (10 * 1024 * 1024)
    xml = sam_xml(**{"已寄出": note})
    err = refused(xml)
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE and "larger" in err.value
    answer(err)


@pytest.mark.parametrize("data", [b"", b"hello", b'{"json": true}', b"<a>", b"\x00\x01\x02"])
def test_not_xml(data: bytes) -> None:
    err = refused(data)
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE
    assert err.kind is None
    answer(err)


def test_wrong_namespace() -> None:
    xml = iso.to_xml(samples.request(), "2017").replace(
        NS.encode(), b"http://illtransactions.org/2099/other"
    )
    err = refused(xml)
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE
    assert "namespace" in err.value and NS in err.value
    answer(err)


def test_not_an_iso18626_document() -> None:
    err = refused(b'<ill:request xmlns:ill="' + NS.encode() + b'"/>')
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE and "ISO18626Message" in err.value
    answer(err)
    err = refused(
        b'<ISO18626Message xmlns="'
        + NS.encode()
        + b'" xmlns:i="'
        + NS.encode()
        + b'" i:version="1.2"/>'
    )
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE
    answer(err)


def test_an_unknown_message_element() -> None:
    xml = sam_xml(**{"ill:supplyingAgencyMessage>": "ill:supplyingAgencyMemo>"})
    err = refused(xml)
    assert err.error_type is iso.ErrorType.UNRECOGNISED_DATA_ELEMENT
    assert err.value == "ISO18626Message/supplyingAgencyMemo"
    answer(err)


def test_missing_required_element() -> None:
    xml = sam_xml(**{"<ill:reasonForMessage>StatusChange</ill:reasonForMessage>": ""})
    err = refused(xml)
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE
    assert "messageInfo" in err.value and "reasonForMessage" in err.value
    assert err.kind is iso.MessageKind.SUPPLYING_AGENCY_MESSAGE
    root = answer(err)
    assert root[0].tag == f"{Q}supplyingAgencyMessageConfirmation"
    # What could be read of the header is echoed back.
    assert root.findtext(f".//{Q}requestingAgencyRequestId") == "GZUCM-2024-0001"
    assert root.findtext(f".//{Q}timestampReceived") == "2024-03-05T08:30:15.250000Z"


def test_missing_version_attribute() -> None:
    xml = iso.to_xml(samples.request(), "2017").replace(b' ill:version="1.2"', b"")
    err = refused(xml)
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE and "version" in err.value
    assert answer(err)[0].tag == f"{Q}requestConfirmation"


def test_unknown_action() -> None:
    err = refused(ram_xml("<ill:action>Renew</ill:action>", "<ill:action>WeCancel</ill:action>"))
    assert err.error_type is iso.ErrorType.UNSUPPORTED_ACTION_TYPE
    assert err.value == "action: WeCancel"
    root = answer(err)
    assert root[0].tag == f"{Q}requestingAgencyMessageConfirmation"
    assert root.find(f".//{Q}action") is None  # not echoed: it is not a valid action


def test_an_action_only_2021_knows_in_a_1_2_message() -> None:
    err = refused(ram_xml("<ill:action>Renew</ill:action>", "<ill:action>Lost</ill:action>"))
    assert err.error_type is iso.ErrorType.UNSUPPORTED_ACTION_TYPE and err.value == "action: Lost"
    answer(err)


def test_unknown_reason_for_message() -> None:
    err = refused(sam_xml(StatusChange="StatusChanged"))
    assert err.error_type is iso.ErrorType.UNSUPPORTED_REASON_FOR_MESSAGE_TYPE
    assert err.value == "reasonForMessage: StatusChanged"
    root = answer(err)
    assert root[0].tag == f"{Q}supplyingAgencyMessageConfirmation"


def test_unknown_status_value() -> None:
    err = refused(sam_xml(**{"<ill:status>Loaned<": "<ill:status>Lent<"}))
    assert err.error_type is iso.ErrorType.UNRECOGNISED_DATA_VALUE
    assert err.value == "supplyingAgencyMessage/statusInfo/status: Lent"
    answer(err)


def test_a_bad_date() -> None:
    err = refused(sam_xml(**{"<ill:dateSent>2024-03-06T09:00:00Z": "<ill:dateSent>yesterday"}))
    assert err.error_type is iso.ErrorType.UNRECOGNISED_DATA_VALUE
    assert err.value == "supplyingAgencyMessage/deliveryInfo/dateSent: yesterday"
    answer(err)


def test_an_unknown_element() -> None:
    err = refused(sam_xml(**{"</ill:statusInfo>": "<ill:mood>happy</ill:mood></ill:statusInfo>"}))
    assert err.error_type is iso.ErrorType.UNRECOGNISED_DATA_ELEMENT
    assert err.value == "supplyingAgencyMessage/statusInfo/mood"
    answer(err)
    err = refused(req_xml("<ill:title>", '<x:colour xmlns:x="urn:x">red</x:colour><ill:title>'))
    assert err.error_type is iso.ErrorType.UNRECOGNISED_DATA_ELEMENT
    assert "colour" in err.value
    assert answer(err)[0].tag == f"{Q}requestConfirmation"


def test_a_known_element_in_the_wrong_place() -> None:
    err = refused(sam_xml(**{"</ill:statusInfo>": "<ill:title>x</ill:title></ill:statusInfo>"}))
    assert err.error_type is iso.ErrorType.BADLY_FORMED_MESSAGE
    assert "statusInfo/title" in err.value
    answer(err)


# ----------------------------------------------------------------------------- confirmations


@pytest.mark.parametrize("version", ["2017", "2021"])
def test_ok_confirmations_echo_the_message(version: str) -> None:
    now = dt.datetime(2024, 3, 5, 9, 0, tzinfo=dt.UTC)
    cases: list[tuple[iso.Message, str]] = [
        (samples.request(), "requestConfirmation"),
        (samples.supplying_agency_message(), "supplyingAgencyMessageConfirmation"),
        (samples.requesting_agency_message(), "requestingAgencyMessageConfirmation"),
    ]
    for msg, kind in cases:
        xml = iso.confirmation_for(msg, None, version=version, now=now)  # type: ignore[arg-type]
        root = assert_valid(xml, version)
        assert root[0].tag == f"{Q}{kind}"
        reply = iso.parse(xml)
        assert isinstance(
            reply,
            iso.RequestConfirmation
            | iso.SupplyingAgencyMessageConfirmation
            | iso.RequestingAgencyMessageConfirmation,
        )
        assert iso.is_ok(reply) and reply.errors == ()
        ch = reply.confirmation_header
        assert ch.timestamp == now and ch.timestamp_received == samples.T0
        assert ch.requesting_agency_id == samples.GZUCM and ch.supplying_agency_id == samples.SYSU
        assert ch.requesting_agency_request_id == "GZUCM-2024-0001"
        if isinstance(reply, iso.SupplyingAgencyMessageConfirmation):
            assert reply.reason_for_message is SupplierMessageReason.STATUS_CHANGE
        if isinstance(reply, iso.RequestingAgencyMessageConfirmation):
            assert reply.action is RequesterAction.RENEW


@pytest.mark.parametrize("version", ["2017", "2021"])
def test_service_errors_name_what_is_wrong(version: str) -> None:
    """What the service will raise for unknown agencies, ids and refused actions."""
    errors = [
        iso.Iso18626Error(
            iso.ErrorType.UNRECOGNISED_DATA_VALUE, "requestingAgencyId: ISIL:CN-NOWHERE is unknown"
        ),
        iso.Iso18626Error(
            iso.ErrorType.UNRECOGNISED_DATA_VALUE,
            "requestingAgencyRequestId: GZUCM-2024-0001 is unknown",
        ),
        iso.Iso18626Error(
            iso.ErrorType.UNRECOGNISED_DATA_VALUE,
            "action: Renew is not allowed when the request is WillSupply",
        ),
    ]
    for err in errors:
        xml = iso.confirmation_for(
            samples.requesting_agency_message(),
            err,
            version=version,  # type: ignore[arg-type]
        )
        assert_valid(xml, version)
        reply = iso.parse(xml)
        assert isinstance(reply, iso.RequestingAgencyMessageConfirmation)
        assert not iso.is_ok(reply)
        assert reply.errors == (iso.ErrorData(err.error_type, err.value),)


def test_a_confirmation_is_not_confirmed() -> None:
    conf = samples.confirmations()[0]
    xml = iso.confirmation_for(conf, None)
    root = assert_valid(xml, "2017")
    assert root[0].tag == f"{Q}requestConfirmation"
    assert root.findtext(f".//{Q}errorType") == "BadlyFormedMessage"
    assert "requestConfirmation" in (root.findtext(f".//{Q}errorValue") or "")
    with pytest.raises(TypeError):
        iso.is_ok(samples.request())


def test_echoed_values_that_would_not_fit_are_dropped() -> None:
    # A 2021 Request with no supplier, answered in 2017: the confirmation header stays valid.
    open_request = dataclasses.replace(
        samples.request(), header=samples.header(supplier=None, supplier_request_id=None)
    )
    xml = iso.confirmation_for(open_request, None, version="2017")
    assert_valid(xml, "2017")
    err = iso.Iso18626Error(
        iso.ErrorType.BADLY_FORMED_MESSAGE,
        "x",
        kind=iso.MessageKind.SUPPLYING_AGENCY_MESSAGE,
        reason_for_message="HoldReturn",
    )
    assert_valid(iso.confirmation_for(None, err), "2017")


# ----------------------------------------------------------------------------- idempotency


def test_the_same_message_has_the_same_key_however_it_is_written() -> None:
    for msg in samples.all_messages():
        keys = {iso.message_key(msg)}
        for version in ("2017", "2021"):
            xml = iso.to_xml(msg, version)  # type: ignore[arg-type]
            keys.add(iso.message_key(iso.parse(xml)))
            pretty = etree.tostring(etree.fromstring(xml), pretty_print=True)
            keys.add(iso.message_key(iso.parse(pretty)))
        assert len(keys) == 1, msg.kind


def test_different_messages_have_different_keys() -> None:
    sam = samples.supplying_agency_message()
    variants = [
        sam,
        dataclasses.replace(
            sam, status_info=dataclasses.replace(sam.status_info, status=Status.OVERDUE)
        ),
        dataclasses.replace(
            sam,
            message_info=dataclasses.replace(
                sam.message_info, reason_for_message=SupplierMessageReason.RENEW_RESPONSE
            ),
        ),
        dataclasses.replace(sam, header=dataclasses.replace(sam.header, timestamp=samples.T1)),
        dataclasses.replace(
            sam, header=dataclasses.replace(sam.header, requesting_agency_request_id="other")
        ),
        dataclasses.replace(sam, message_info=dataclasses.replace(sam.message_info, note="n2")),
        dataclasses.replace(
            sam, status_info=dataclasses.replace(sam.status_info, due_date=samples.T1)
        ),
    ]
    ram = samples.requesting_agency_message()
    variants += [ram, dataclasses.replace(ram, action=RequesterAction.STATUS_REQUEST)]
    variants += [samples.request(), samples.request(ServiceType.COPY)]
    assert len({iso.message_key(v) for v in variants}) == len(variants)


# ----------------------------------------------------------------------------- fuzzing


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_only_ever_give_iso18626_errors(data: bytes) -> None:
    try:
        iso.parse(data)
    except iso.Iso18626Error as err:
        assert versions_valid(iso.confirmation_for(None, err))


_SEEDS = [iso.to_xml(m, v) for m in samples.all_messages() for v in ("2017", "2021")]  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    cut=st.integers(min_value=0, max_value=10_000),
    length=st.integers(min_value=0, max_value=60),
    insert=st.text(alphabet="<>/&;:\"'= abcilmnoqrstuvxyzACDLRSTU01-", max_size=20),
)
def test_damaged_messages_give_a_message_or_an_answerable_error(
    seed: bytes, cut: int, length: int, insert: str
) -> None:
    cut %= len(seed)
    data = seed[:cut] + insert.encode() + seed[cut + length :]
    try:
        received = iso.parse_envelope(data)
    except iso.Iso18626Error as err:
        assert versions_valid(iso.confirmation_for(None, err))
        return
    # Whatever was accepted can be written back and fits its schema.
    msg = received.message
    assert versions_valid(iso.confirmation_for(msg, None, version=received.version))


# ----------------------------------------------------------------------------- refusals


def test_state_machine_refusals_become_iso18626_errors() -> None:
    from consortia.ill.states import (
        IllegalTransition,
        UnsupportedAction,
        apply_requester_action,
        next_supplier_status,
    )

    with pytest.raises(IllegalTransition) as refused_action:
        apply_requester_action(ServiceType.LOAN, Status.WILL_SUPPLY, RequesterAction.RENEW)
    err = iso.error_for_refusal(refused_action.value)
    assert err.error_type is iso.ErrorType.UNRECOGNISED_DATA_VALUE
    assert err.value == "action: Renew is not allowed when the request is WillSupply"
    with pytest.raises(IllegalTransition) as refused_status:
        next_supplier_status(ServiceType.COPY, Status.WILL_SUPPLY, Status.LOANED)
    err = iso.error_for_refusal(refused_status.value)
    assert err.value == "status: Loaned is not allowed when the request is WillSupply"
    with pytest.raises(UnsupportedAction) as unsupported:
        apply_requester_action(ServiceType.LOAN, Status.LOANED, RequesterAction.SHIPPED_FORWARD)
    err = iso.error_for_refusal(unsupported.value)
    assert err.error_type is iso.ErrorType.UNSUPPORTED_ACTION_TYPE
    assert err.value == "action: ShippedForward"
    xml = iso.confirmation_for(samples.requesting_agency_message(), err)
    assert_valid(xml, "2017")


def test_sender_and_recipient() -> None:
    assert iso.sender(samples.request()) == samples.GZUCM
    assert iso.recipient(samples.request()) == samples.SYSU
    assert iso.sender(samples.requesting_agency_message()) == samples.GZUCM
    assert iso.sender(samples.supplying_agency_message()) == samples.SYSU
    assert iso.recipient(samples.supplying_agency_message()) == samples.GZUCM
    assert iso.sender(samples.confirmations()[0]) is None
    msg = example("request-2021-copy.xml").message
    assert iso.recipient(msg) is None
