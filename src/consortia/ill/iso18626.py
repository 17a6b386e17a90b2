"""ISO 18626 messages: typed dataclasses, XML in both schema versions, confirmations.

The peer nobody here wrote is the official schema: every document this module writes is
validated against it before it leaves (``to_xml``), and every document it reads is validated
against it before it is trusted (``parse``). The schemas are in ``consortia/ill/schemas``
(see SOURCES.md there): ``ISO-18626-v1_2.xsd`` ("2017": ISO 18626:2014 with the 2017 minor
revision, declared ``ill:version="1.2"``) and ``ISO-18626-2021-2.xsd`` ("2021", declared
``ill:version="2021-2"``). Both use the namespace ``http://illtransactions.org/2013/iso18626``;
the version attribute tells them apart.

Interface (used by ``ill/service.py`` and the ``/iso18626`` endpoint)::

    received = parse_envelope(body)     # Received(message, version, declared_version)
    msg = parse(body)                   # just the typed message
    # both raise Iso18626Error(error_type, value) — and nothing else, whatever the bytes

    body = to_xml(msg, version="2017")  # or "2021"; raises MessageInvalid if the schema refuses
    reply = confirmation_for(msg, None, version=received.version)          # OK
    reply = confirmation_for(msg, Iso18626Error(ErrorType.UNRECOGNISED_DATA_VALUE,
                             "requestingAgencyRequestId: R-17 is unknown"), version=...)
    reply = confirmation_for(None, err)  # parse() failed: answer from what the error kept
    err = error_for_refusal(exc)        # IllegalTransition / UnsupportedAction -> Iso18626Error
    key = message_key(msg)              # stable hash: the same message retried -> same key
    sender(msg), recipient(msg)         # the AgencyIds to look members up by (errorData if unknown)

The endpoint's whole job is then::

    try:
        received = parse_envelope(body)
    except Iso18626Error as err:
        return confirmation_for(None, err)            # always schema-valid, never raises
    try:
        service.handle(received)                      # may raise Iso18626Error itself
    except Iso18626Error as err:
        return confirmation_for(received.message, err, version=received.version)
    return confirmation_for(received.message, None, version=received.version)

Unreadable input: when not even the message kind can be read (not XML, a DOCTYPE, wrong root,
no message element), the answer is a ``requestConfirmation`` with messageStatus ERROR and
errorType BadlyFormedMessage: the confirmation with the fewest required parts and the one a
sender of a Request (the usual first message) expects. When the kind is known (the element under
``ISO18626Message`` has a known name) the matching confirmation is sent, echoing whatever of the
header could be read.

Leniency on input (each seen in deployed peers): an unqualified ``version`` or ``scheme``
attribute is taken as the qualified one; errorType ``UnrecognizedDataElement/Value`` (US
spelling) is read as ``Unrecognised...``; a 1.x message without ``header/multipleItemRequestId``
(which v1_2 wrongly made mandatory) is accepted; a message that fails the schema of its declared
version but fits the other schema is accepted (``Received.version`` says which one it fit).

Error types of ``Iso18626Error`` (ISO 18626 ``type_errorType``):
BadlyFormedMessage (not XML, hostile XML, missing or misplaced elements, wrong namespace),
UnsupportedActionType (an action outside the schema's list), UnsupportedReasonForMessageType
(likewise reasonForMessage), UnrecognisedDataElement (an element the schema does not know),
UnrecognisedDataValue (a value of the wrong type or outside its list; also what the service
raises for unknown agencies, unknown request ids and actions the state refuses).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from lxml import etree

from consortia.errors import Invalid
from consortia.ill.states import (
    IllegalTransition,
    RequesterAction,
    ServiceType,
    Status,
    SupplierMessageReason,
    UnsupportedAction,
)
from consortia.ill.xmlsafe import MAX_BYTES, XmlRejected, parse_bytes

NS = "http://illtransactions.org/2013/iso18626"
SCHEMA_DIR = Path(__file__).parent / "schemas"
SchemaVersion = Literal["2017", "2021"]
VERSIONS: tuple[SchemaVersion, ...] = ("2017", "2021")
SCHEMA_FILES: dict[SchemaVersion, str] = {
    "2017": "ISO-18626-v1_2.xsd",
    "2021": "ISO-18626-2021-2.xsd",
}
# What we write in ill:version.
VERSION_ATTRIBUTE: dict[SchemaVersion, str] = {"2017": "1.2", "2021": "2021-2"}

MSG_ISO_ERROR = "ISO 18626 {error_type}: {value}"
MSG_SCHEMA = "The ISO 18626 message does not fit the {version} schema: {detail}"


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


# ----------------------------------------------------------------------------- enums


class ErrorType(enum.StrEnum):
    """ISO 18626 ``type_errorType``."""

    UNSUPPORTED_ACTION_TYPE = "UnsupportedActionType"
    UNSUPPORTED_REASON_FOR_MESSAGE_TYPE = "UnsupportedReasonForMessageType"
    UNRECOGNISED_DATA_ELEMENT = "UnrecognisedDataElement"
    UNRECOGNISED_DATA_VALUE = "UnrecognisedDataValue"
    BADLY_FORMED_MESSAGE = "BadlyFormedMessage"

    @classmethod
    def parse(cls, text: str) -> ErrorType:
        """Also reads the US spelling (UnrecognizedDataElement) some peers send."""
        return cls(text.strip().replace("Unrecognized", "Unrecognised"))


class MessageKind(enum.StrEnum):
    """The element under ISO18626Message."""

    REQUEST = "request"
    REQUEST_CONFIRMATION = "requestConfirmation"
    SUPPLYING_AGENCY_MESSAGE = "supplyingAgencyMessage"
    SUPPLYING_AGENCY_MESSAGE_CONFIRMATION = "supplyingAgencyMessageConfirmation"
    REQUESTING_AGENCY_MESSAGE = "requestingAgencyMessage"
    REQUESTING_AGENCY_MESSAGE_CONFIRMATION = "requestingAgencyMessageConfirmation"


class MessageStatus(enum.StrEnum):
    OK = "OK"
    ERROR = "ERROR"


class RequestType(enum.StrEnum):
    NEW = "New"
    RETRY = "Retry"
    REMINDER = "Reminder"


CONFIRMATION_OF: dict[MessageKind, MessageKind] = {
    MessageKind.REQUEST: MessageKind.REQUEST_CONFIRMATION,
    MessageKind.SUPPLYING_AGENCY_MESSAGE: MessageKind.SUPPLYING_AGENCY_MESSAGE_CONFIRMATION,
    MessageKind.REQUESTING_AGENCY_MESSAGE: MessageKind.REQUESTING_AGENCY_MESSAGE_CONFIRMATION,
}


class Iso18626Error(Invalid):
    """A message we refuse, with the ISO 18626 error type and the offending element/value.

    ``kind``, ``header`` and ``version`` keep what could still be read of the refused message,
    so that ``confirmation_for(None, err)`` can answer with the right confirmation and echo ids.
    """

    code = "iso18626"

    def __init__(
        self,
        error_type: ErrorType,
        value: str,
        *,
        kind: MessageKind | None = None,
        header: Header | None = None,
        version: SchemaVersion | None = None,
        reason_for_message: str | None = None,
        action: str | None = None,
    ) -> None:
        self.error_type = ErrorType(error_type)
        self.value = value
        self.kind = kind
        self.header = header
        self.version = version
        self.reason_for_message = reason_for_message
        self.action = action
        super().__init__(MSG_ISO_ERROR, error_type=self.error_type.value, value=value)


class MessageInvalid(Invalid):
    """A message we built does not fit the schema (a bug or bad data; nothing was sent)."""

    def __init__(self, version: str, detail: str) -> None:
        self.version = version
        self.detail = detail
        super().__init__(MSG_SCHEMA, version=version, detail=detail)


def error_for_refusal(exc: IllegalTransition | UnsupportedAction) -> Iso18626Error:
    """The ISO 18626 error to answer with when the state machine refused a message.

    An action the hub does not implement -> UnsupportedActionType; an action or a status the
    current state does not allow -> UnrecognisedDataValue naming both, e.g.
    ``action: Renew is not allowed when the request is WillSupply``.
    """
    if isinstance(exc, UnsupportedAction):
        return Iso18626Error(ErrorType.UNSUPPORTED_ACTION_TYPE, f"action: {exc.action}")
    return Iso18626Error(
        ErrorType.UNRECOGNISED_DATA_VALUE,
        f"{exc.what}: {exc.action} is not allowed when the request is {exc.state}",
    )


# ----------------------------------------------------------------------------- data elements


@dataclass(frozen=True)
class SchemeValue:
    """``type_schemeValuePair``: a code with the scheme (a URI) it comes from."""

    value: str
    scheme: str | None = None


@dataclass(frozen=True)
class AgencyId:
    """``type_agencyId``, e.g. AgencyId("ISIL", "CN-GZUCM")."""

    type: str
    value: str
    type_scheme: str | None = None

    @property
    def symbol(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True)
class Costs:
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class Authentication:
    account_id: str | None = None
    security_code: str | None = None


@dataclass(frozen=True)
class Header:
    """The message header (2017: one ``header``; 2021: three per-message variants).

    ``supplying_agency_id`` may be None only in a 2021 Request; ``multiple_item_request_id`` is
    written only where the schema has it; ``consortial_id`` only in 2021.
    """

    requesting_agency_id: AgencyId
    timestamp: dt.datetime
    requesting_agency_request_id: str
    supplying_agency_id: AgencyId | None = None
    supplying_agency_request_id: str | None = None
    multiple_item_request_id: str | None = None
    consortial_id: AgencyId | None = None
    authentication: Authentication | None = None


@dataclass(frozen=True)
class BibliographicItemId:
    """An ISBN, ISSN, ... : identifier with its code (``SchemeValue("ISBN")``)."""

    identifier: str
    code: SchemeValue


@dataclass(frozen=True)
class BibliographicRecordId:
    """A catalogue record id (e.g. code "OCLC", or the union catalogue's cluster id)."""

    identifier: str
    code: SchemeValue


@dataclass(frozen=True)
class BibliographicInfo:
    supplier_unique_record_id: str | None = None
    title: str | None = None
    author: str | None = None
    author_id: str | None = None  # 2021 only
    subtitle: str | None = None
    series_title: str | None = None
    edition: str | None = None
    title_of_component: str | None = None
    author_of_component: str | None = None
    volumes: tuple[str, ...] = ()  # 2017 holds one: more are joined with "; "
    issue: str | None = None
    pages_requested: str | None = None
    estimated_no_pages: str | None = None
    item_ids: tuple[BibliographicItemId, ...] = ()
    sponsor: str | None = None
    information_source: str | None = None
    record_ids: tuple[BibliographicRecordId, ...] = ()

    def item_id(self, code: str) -> str | None:
        """The first identifier with this code (case-insensitive), e.g. ``item_id("ISBN")``."""
        for item in self.item_ids:
            if item.code.value.casefold() == code.casefold():
                return item.identifier
        return None


@dataclass(frozen=True)
class PublicationInfo:
    publisher: str | None = None
    publisher_id: str | None = None  # 2021 only
    publication_type: SchemeValue | None = None
    publication_date: str | None = None
    place_of_publication: str | None = None


@dataclass(frozen=True)
class ServiceInfo:
    service_type: ServiceType
    request_type: RequestType | None = None
    request_sub_types: tuple[str, ...] = ()
    requesting_agency_previous_request_id: str | None = None
    service_level: SchemeValue | None = None
    item_format: SchemeValue | None = None  # 2017 preferredFormat, 2021 itemFormat
    need_before_date: dt.datetime | None = None
    copyright_compliance: SchemeValue | None = None
    any_edition: bool | None = None
    start_date: dt.datetime | None = None
    end_date: dt.datetime | None = None
    note: str | None = None


@dataclass(frozen=True)
class PhysicalAddress:
    line1: str | None = None
    line2: str | None = None
    locality: str | None = None
    postal_code: str | None = None
    region: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class ElectronicAddress:
    type: str  # e.g. "Email", "URL"
    data: str


Address = PhysicalAddress | ElectronicAddress


@dataclass(frozen=True)
class SupplierInfo:
    sort_order: int | None = None
    supplier_code: AgencyId | None = None
    supplier_description: str | None = None
    record_id: BibliographicRecordId | None = None
    call_number: str | None = None
    summary_holdings: str | None = None
    availability_note: str | None = None


@dataclass(frozen=True)
class RequestedDeliveryInfo:
    sort_order: int | None = None
    address: Address | None = None
    delivery_method: SchemeValue | None = None  # 2021 only


@dataclass(frozen=True)
class RequestingAgencyInfo:
    name: str | None = None
    contact_name: str | None = None
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True)
class PatronInfo:
    """Kept minimal on purpose: readers' personal data goes only where the service needs it."""

    patron_id: str | None = None
    surname: str | None = None
    given_name: str | None = None
    patron_type: SchemeValue | None = None
    send_to_patron: bool | None = None
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True)
class BillingInfo:
    payment_method: SchemeValue | None = None
    maximum_costs: Costs | None = None
    billing_method: SchemeValue | None = None
    billing_name: str | None = None


@dataclass(frozen=True)
class MessageInfo:
    reason_for_message: SupplierMessageReason
    answer_yes_no: bool | None = None
    note: str | None = None
    reason_unfilled: SchemeValue | None = None
    reason_retry: SchemeValue | None = None
    # 2017 keeps these in messageInfo, 2021 in retryInfo; one place here.
    offered_costs: Costs | None = None
    retry_after: dt.datetime | None = None
    retry_before: dt.datetime | None = None


@dataclass(frozen=True)
class StatusInfo:
    status: Status
    last_change: dt.datetime
    expected_delivery_date: dt.datetime | None = None
    due_date: dt.datetime | None = None


@dataclass(frozen=True)
class DeliveryInfo:
    date_sent: dt.datetime
    item_ids: tuple[str, ...] = ()  # 2017 holds one: more are joined with ","
    url: str | None = None  # 2021 only
    delivery_method: SchemeValue | None = None  # 2017 sentVia
    sent_to_patron: bool | None = None
    loan_conditions: tuple[SchemeValue, ...] = ()  # 2017 holds one
    item_format: SchemeValue | None = None  # 2017 deliveredFormat
    service_type: ServiceType | None = None  # 2021 only
    delivery_costs: Costs | None = None


@dataclass(frozen=True)
class ReturnInfo:
    return_agency_id: AgencyId | None = None
    name: str | None = None
    address: PhysicalAddress | None = None


@dataclass(frozen=True)
class ErrorData:
    error_type: ErrorType
    error_value: str | None = None


@dataclass(frozen=True)
class ConfirmationHeader:
    timestamp: dt.datetime
    timestamp_received: dt.datetime
    message_status: MessageStatus
    supplying_agency_id: AgencyId | None = None
    requesting_agency_id: AgencyId | None = None
    requesting_agency_request_id: str | None = None
    multiple_item_request_id: str | None = None  # 2017 only


# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Request:
    header: Header
    bibliographic_info: BibliographicInfo
    service_info: ServiceInfo | None = None  # required by 2021
    publication_info: PublicationInfo | None = None
    supplier_info: tuple[SupplierInfo, ...] = ()
    requested_delivery_info: tuple[RequestedDeliveryInfo, ...] = ()
    requesting_agency_info: RequestingAgencyInfo | None = None
    patron_info: PatronInfo | None = None
    billing_info: BillingInfo | None = None
    kind: MessageKind = field(default=MessageKind.REQUEST, init=False)


@dataclass(frozen=True)
class SupplyingAgencyMessage:
    header: Header
    message_info: MessageInfo
    status_info: StatusInfo
    delivery_info: DeliveryInfo | None = None
    return_info: ReturnInfo | None = None
    kind: MessageKind = field(default=MessageKind.SUPPLYING_AGENCY_MESSAGE, init=False)


@dataclass(frozen=True)
class RequestingAgencyMessage:
    header: Header
    action: RequesterAction
    note: str | None = None
    kind: MessageKind = field(default=MessageKind.REQUESTING_AGENCY_MESSAGE, init=False)


@dataclass(frozen=True)
class RequestConfirmation:
    confirmation_header: ConfirmationHeader
    errors: tuple[ErrorData, ...] = ()  # 2017 holds one
    kind: MessageKind = field(default=MessageKind.REQUEST_CONFIRMATION, init=False)


@dataclass(frozen=True)
class SupplyingAgencyMessageConfirmation:
    confirmation_header: ConfirmationHeader
    reason_for_message: SupplierMessageReason | None = None
    errors: tuple[ErrorData, ...] = ()
    kind: MessageKind = field(default=MessageKind.SUPPLYING_AGENCY_MESSAGE_CONFIRMATION, init=False)


@dataclass(frozen=True)
class RequestingAgencyMessageConfirmation:
    confirmation_header: ConfirmationHeader
    action: RequesterAction | None = None
    errors: tuple[ErrorData, ...] = ()
    kind: MessageKind = field(
        default=MessageKind.REQUESTING_AGENCY_MESSAGE_CONFIRMATION, init=False
    )


Message = (
    Request
    | RequestConfirmation
    | SupplyingAgencyMessage
    | SupplyingAgencyMessageConfirmation
    | RequestingAgencyMessage
    | RequestingAgencyMessageConfirmation
)
Confirmation = (
    RequestConfirmation | SupplyingAgencyMessageConfirmation | RequestingAgencyMessageConfirmation
)


@dataclass(frozen=True)
class Received:
    """A parsed message with the schema it fit and the version string it declared."""

    message: Message
    version: SchemaVersion
    declared_version: str


# ----------------------------------------------------------------------------- schemas

_schemas = threading.local()  # lxml validators keep an error log: one per thread


def schema(version: SchemaVersion) -> etree.XMLSchema:
    """The compiled XML Schema of a version (the XSDs import nothing)."""
    cache: dict[str, etree.XMLSchema] | None = getattr(_schemas, "cache", None)
    if cache is None:
        cache = _schemas.cache = {}
    found = cache.get(version)
    if found is None:
        xsd = (SCHEMA_DIR / SCHEMA_FILES[version]).read_bytes()
        found = cache[version] = etree.XMLSchema(parse_bytes(xsd))
    return found


def _schema_element_names(version: SchemaVersion) -> frozenset[str]:
    names = getattr(_schemas, f"names_{version}", None)
    if names is None:
        xsd = parse_bytes((SCHEMA_DIR / SCHEMA_FILES[version]).read_bytes())
        names = frozenset(
            str(el.get("name"))
            for el in xsd.iter("{http://www.w3.org/2001/XMLSchema}element")
            if el.get("name")
        )
        setattr(_schemas, f"names_{version}", names)
    return names


def validate(root: etree._Element, version: SchemaVersion) -> list[Any]:
    """Schema errors of a document (an empty list when it is valid)."""
    s = schema(version)
    if s.validate(root):
        return []
    log: Any = s.error_log  # lxml-stubs do not declare _ErrorLog iterable
    return list(log)


# ----------------------------------------------------------------------------- writing


def _fmt_dt(value: dt.datetime) -> str:
    """xs:dateTime in UTC with a Z; a naive datetime is taken to be UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.isoformat(timespec=spec) + "Z"


class _W:
    """Element writer: every child in the ISO 18626 namespace, skipping empty values."""

    def __init__(self, version: SchemaVersion) -> None:
        self.version = version
        self.v2021 = version == "2021"

    def el(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        child = etree.SubElement(parent, _q(name))
        if text is not None:
            child.text = text
        return child

    def text(self, parent: etree._Element, name: str, value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            self.el(parent, name, "true" if value else "false")
        elif isinstance(value, dt.datetime):
            self.el(parent, name, _fmt_dt(value))
        elif isinstance(value, enum.Enum):
            self.el(parent, name, str(value.value))
        else:
            self.el(parent, name, str(value))

    def yes_no(self, parent: etree._Element, name: str, value: bool | None) -> None:
        if value is not None:
            self.el(parent, name, "Y" if value else "N")

    def scheme(self, parent: etree._Element, name: str, value: SchemeValue | None) -> None:
        if value is None:
            return
        child = self.el(parent, name, value.value)
        if value.scheme:
            child.set(_q("scheme"), value.scheme)

    def agency(self, parent: etree._Element, name: str, value: AgencyId | None) -> None:
        if value is None:
            return
        child = self.el(parent, name)
        self.scheme(child, "agencyIdType", SchemeValue(value.type, value.type_scheme))
        self.el(child, "agencyIdValue", value.value)

    def costs(self, parent: etree._Element, name: str, value: Costs | None) -> None:
        if value is None:
            return
        child = self.el(parent, name)
        self.el(child, "currencyCode", value.currency)
        self.el(child, "monetaryValue", format(value.amount, "f"))

    def physical(self, parent: etree._Element, a: PhysicalAddress) -> None:
        p = self.el(parent, "physicalAddress")
        self.text(p, "line1", a.line1)
        self.text(p, "line2", a.line2)
        self.text(p, "locality", a.locality)
        self.text(p, "postalCode", a.postal_code)
        if self.v2021:
            self.text(p, "region", a.region)
        else:
            self.scheme(p, "region", SchemeValue(a.region) if a.region else None)
        self.scheme(p, "country", SchemeValue(a.country) if a.country else None)

    def address(self, parent: etree._Element, a: Address | None) -> None:
        if a is None:
            return
        wrap = self.el(parent, "address")
        if isinstance(a, ElectronicAddress):
            e = self.el(wrap, "electronicAddress")
            self.scheme(e, "electronicAddressType", SchemeValue(a.type))
            self.el(e, "electronicAddressData", a.data)
        else:
            self.physical(wrap, a)

    def record_id(self, parent: etree._Element, r: BibliographicRecordId | None) -> None:
        if r is None:
            return
        e = self.el(parent, "bibliographicRecordId")
        self.scheme(e, "bibliographicRecordIdentifierCode", r.code)
        self.el(e, "bibliographicRecordIdentifier", r.identifier)

    def header(self, parent: etree._Element, h: Header, kind: MessageKind) -> None:
        e = self.el(parent, "header")
        if self.v2021:
            self.agency(e, "supplyingAgencyId", h.supplying_agency_id)
            self.agency(e, "requestingAgencyId", h.requesting_agency_id)
            if kind is not MessageKind.SUPPLYING_AGENCY_MESSAGE:
                self.agency(e, "consortialId", h.consortial_id)
            if kind is MessageKind.REQUEST:
                self.text(e, "multipleItemRequestId", h.multiple_item_request_id)
            self.text(e, "timestamp", h.timestamp)
            self.text(e, "requestingAgencyRequestId", h.requesting_agency_request_id)
            if kind is not MessageKind.REQUEST:
                self.text(e, "supplyingAgencyRequestId", h.supplying_agency_request_id)
            if kind is not MessageKind.SUPPLYING_AGENCY_MESSAGE:
                self.auth(e, h.authentication)
        else:
            self.agency(e, "supplyingAgencyId", h.supplying_agency_id)
            self.agency(e, "requestingAgencyId", h.requesting_agency_id)
            # v1_2 makes it mandatory; an empty element is what deployed peers send.
            self.el(e, "multipleItemRequestId", h.multiple_item_request_id or "")
            self.text(e, "timestamp", h.timestamp)
            self.text(e, "requestingAgencyRequestId", h.requesting_agency_request_id)
            self.text(e, "supplyingAgencyRequestId", h.supplying_agency_request_id)
            self.auth(e, h.authentication)

    def auth(self, parent: etree._Element, a: Authentication | None) -> None:
        if a is None:
            return
        e = self.el(parent, "requestingAgencyAuthentication")
        self.text(e, "accountId", a.account_id)
        self.text(e, "securityCode", a.security_code)

    def bib(self, parent: etree._Element, b: BibliographicInfo) -> None:
        e = self.el(parent, "bibliographicInfo")
        self.text(e, "supplierUniqueRecordId", b.supplier_unique_record_id)
        self.text(e, "title", b.title)
        self.text(e, "author", b.author)
        if self.v2021:
            self.text(e, "authorId", b.author_id)
        self.text(e, "subtitle", b.subtitle)
        self.text(e, "seriesTitle", b.series_title)
        self.text(e, "edition", b.edition)
        self.text(e, "titleOfComponent", b.title_of_component)
        self.text(e, "authorOfComponent", b.author_of_component)
        if self.v2021:
            for v in b.volumes:
                self.el(e, "volume", v)
        elif b.volumes:
            self.el(e, "volume", "; ".join(b.volumes))
        self.text(e, "issue", b.issue)
        self.text(e, "pagesRequested", b.pages_requested)
        self.text(e, "estimatedNoPages", b.estimated_no_pages)
        for item in b.item_ids:
            i = self.el(e, "bibliographicItemId")
            # The 2021 schema reversed the order of these two children.
            if self.v2021:
                self.scheme(i, "bibliographicItemIdentifierCode", item.code)
                self.el(i, "bibliographicItemIdentifier", item.identifier)
            else:
                self.el(i, "bibliographicItemIdentifier", item.identifier)
                self.scheme(i, "bibliographicItemIdentifierCode", item.code)
        self.text(e, "sponsor", b.sponsor)
        self.text(e, "informationSource", b.information_source)
        for r in b.record_ids:
            self.record_id(e, r)

    def publication(self, parent: etree._Element, p: PublicationInfo | None) -> None:
        if p is None:
            return
        e = self.el(parent, "publicationInfo")
        self.text(e, "publisher", p.publisher)
        if self.v2021:
            self.text(e, "publisherId", p.publisher_id)
        self.scheme(e, "publicationType", p.publication_type)
        self.text(e, "publicationDate", p.publication_date)
        self.text(e, "placeOfPublication", p.place_of_publication)

    def service(self, parent: etree._Element, s: ServiceInfo | None) -> None:
        if s is None:
            return
        e = self.el(parent, "serviceInfo")
        self.text(e, "requestType", s.request_type)
        for sub in s.request_sub_types:
            self.el(e, "requestSubType", sub)
        self.text(e, "requestingAgencyPreviousRequestId", s.requesting_agency_previous_request_id)
        self.text(e, "serviceType", s.service_type)
        self.scheme(e, "serviceLevel", s.service_level)
        self.scheme(e, "itemFormat" if self.v2021 else "preferredFormat", s.item_format)
        self.text(e, "needBeforeDate", s.need_before_date)
        self.scheme(e, "copyrightCompliance", s.copyright_compliance)
        self.yes_no(e, "anyEdition", s.any_edition)
        self.text(e, "startDate", s.start_date)
        self.text(e, "endDate", s.end_date)
        self.text(e, "note", s.note)

    def supplier(self, parent: etree._Element, s: SupplierInfo) -> None:
        e = self.el(parent, "supplierInfo")
        self.text(e, "sortOrder", s.sort_order)
        self.agency(e, "supplierCode", s.supplier_code)
        self.text(e, "supplierDescription", s.supplier_description)
        self.record_id(e, s.record_id)
        self.text(e, "callNumber", s.call_number)
        self.text(e, "summaryHoldings", s.summary_holdings)
        self.text(e, "availabilityNote", s.availability_note)

    def delivery_wanted(self, parent: etree._Element, d: RequestedDeliveryInfo) -> None:
        e = self.el(parent, "requestedDeliveryInfo")
        self.text(e, "sortOrder", d.sort_order)
        self.address(e, d.address)
        if self.v2021:
            self.scheme(e, "deliveryMethod", d.delivery_method)

    def message_info(self, parent: etree._Element, m: MessageInfo) -> None:
        e = self.el(parent, "messageInfo")
        self.text(e, "reasonForMessage", m.reason_for_message)
        self.yes_no(e, "answerYesNo", m.answer_yes_no)
        self.text(e, "note", m.note)
        self.scheme(e, "reasonUnfilled", m.reason_unfilled)
        self.scheme(e, "reasonRetry", m.reason_retry)
        if not self.v2021:
            self.costs(e, "offeredCosts", m.offered_costs)
            self.text(e, "retryAfter", m.retry_after)
            self.text(e, "retryBefore", m.retry_before)

    def retry_info(self, parent: etree._Element, m: MessageInfo) -> None:
        if not self.v2021 or (m.offered_costs, m.retry_after, m.retry_before) == (None,) * 3:
            return
        e = self.el(parent, "retryInfo")
        self.costs(e, "offeredCosts", m.offered_costs)
        self.text(e, "retryBefore", m.retry_before)
        self.text(e, "retryAfter", m.retry_after)

    def status_info(self, parent: etree._Element, s: StatusInfo) -> None:
        e = self.el(parent, "statusInfo")
        self.text(e, "status", s.status)
        self.text(e, "expectedDeliveryDate", s.expected_delivery_date)
        self.text(e, "dueDate", s.due_date)
        self.text(e, "lastChange", s.last_change)

    def delivery(self, parent: etree._Element, d: DeliveryInfo | None) -> None:
        if d is None:
            return
        e = self.el(parent, "deliveryInfo")
        self.text(e, "dateSent", d.date_sent)
        if self.v2021:
            for i in d.item_ids:
                self.el(e, "itemId", i)
            self.text(e, "URL", d.url)
            self.scheme(e, "deliveryMethod", d.delivery_method)
            self.text(e, "sentToPatron", d.sent_to_patron)
            for c in d.loan_conditions:
                self.scheme(e, "loanCondition", c)
            self.scheme(e, "itemFormat", d.item_format)
            self.text(e, "serviceType", d.service_type)
            self.costs(e, "deliveryCosts", d.delivery_costs)
        else:
            if d.item_ids:
                self.el(e, "itemId", ",".join(d.item_ids))
            self.scheme(e, "sentVia", d.delivery_method)
            self.text(e, "sentToPatron", d.sent_to_patron)
            if d.loan_conditions:
                joined = "; ".join(c.value for c in d.loan_conditions)
                self.scheme(e, "loanCondition", SchemeValue(joined, d.loan_conditions[0].scheme))
            self.scheme(e, "deliveredFormat", d.item_format)
            self.costs(e, "deliveryCosts", d.delivery_costs)

    def return_info(self, parent: etree._Element, r: ReturnInfo | None) -> None:
        if r is None:
            return
        e = self.el(parent, "returnInfo")
        self.agency(e, "returnAgencyId", r.return_agency_id)
        self.text(e, "name", r.name)
        if r.address is not None:
            self.physical(e, r.address)

    def confirmation_header(self, parent: etree._Element, c: ConfirmationHeader) -> None:
        e = self.el(parent, "confirmationHeader")
        self.agency(e, "supplyingAgencyId", c.supplying_agency_id)
        self.agency(e, "requestingAgencyId", c.requesting_agency_id)
        self.text(e, "timestamp", c.timestamp)
        self.text(e, "requestingAgencyRequestId", c.requesting_agency_request_id)
        if not self.v2021:
            self.text(e, "multipleItemRequestId", c.multiple_item_request_id or None)
        self.text(e, "timestampReceived", c.timestamp_received)
        self.text(e, "messageStatus", c.message_status)

    def errors(self, parent: etree._Element, errors: Sequence[ErrorData]) -> None:
        # 2017 allows one errorData: the first (the one that made us refuse) is kept.
        for err in errors if self.v2021 else errors[:1]:
            e = self.el(parent, "errorData")
            self.text(e, "errorType", err.error_type)
            self.text(e, "errorValue", err.error_value)


def to_element(msg: Message, version: SchemaVersion = "2017") -> etree._Element:
    """The ``ISO18626Message`` element of a message, not yet validated."""
    if version not in VERSIONS:
        raise ValueError(f"unknown ISO 18626 schema version {version!r}")
    w = _W(version)
    root = etree.Element(_q("ISO18626Message"), nsmap={"ill": NS})
    root.set(_q("version"), VERSION_ATTRIBUTE[version])
    body = w.el(root, msg.kind.value)
    if isinstance(msg, Request):
        w.header(body, msg.header, msg.kind)
        w.bib(body, msg.bibliographic_info)
        w.publication(body, msg.publication_info)
        w.service(body, msg.service_info)
        for s in msg.supplier_info:
            w.supplier(body, s)
        for d in msg.requested_delivery_info:
            w.delivery_wanted(body, d)
        if (a := msg.requesting_agency_info) is not None:
            e = w.el(body, "requestingAgencyInfo")
            w.text(e, "name", a.name)
            w.text(e, "contactName", a.contact_name)
            for addr in a.addresses:
                w.address(e, addr)
        if (p := msg.patron_info) is not None:
            e = w.el(body, "patronInfo")
            w.text(e, "patronId", p.patron_id)
            w.text(e, "surname", p.surname)
            w.text(e, "givenName", p.given_name)
            w.scheme(e, "patronType", p.patron_type)
            w.yes_no(e, "sendToPatron", p.send_to_patron)
            for addr in p.addresses:
                w.address(e, addr)
        if (b := msg.billing_info) is not None:
            e = w.el(body, "billingInfo")
            w.scheme(e, "paymentMethod", b.payment_method)
            w.costs(e, "maximumCosts", b.maximum_costs)
            w.scheme(e, "billingMethod", b.billing_method)
            w.text(e, "billingName", b.billing_name)
    elif isinstance(msg, SupplyingAgencyMessage):
        w.header(body, msg.header, msg.kind)
        w.message_info(body, msg.message_info)
        w.status_info(body, msg.status_info)
        w.retry_info(body, msg.message_info)
        w.delivery(body, msg.delivery_info)
        w.return_info(body, msg.return_info)
    elif isinstance(msg, RequestingAgencyMessage):
        w.header(body, msg.header, msg.kind)
        w.text(body, "action", msg.action)
        w.text(body, "note", msg.note)
    elif isinstance(msg, RequestConfirmation):
        w.confirmation_header(body, msg.confirmation_header)
        w.errors(body, msg.errors)
    elif isinstance(msg, SupplyingAgencyMessageConfirmation):
        w.confirmation_header(body, msg.confirmation_header)
        w.text(body, "reasonForMessage", msg.reason_for_message)
        w.errors(body, msg.errors)
    else:
        w.confirmation_header(body, msg.confirmation_header)
        w.text(body, "action", msg.action)
        w.errors(body, msg.errors)
    return root


def to_xml(msg: Message, version: SchemaVersion = "2017") -> bytes:
    """The message as an XML document of ``version``, validated against that schema.

    Raises ``MessageInvalid`` naming the first schema error when it does not fit (e.g. a 2021
    status such as HoldReturn asked for in 2017, or a 2017 Request without a supplier).
    """
    root = to_element(msg, version)
    errors = validate(root, version)
    if errors:
        raise MessageInvalid(version, _describe(root, errors[0]))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# ----------------------------------------------------------------------------- reading

_DATETIME = re.compile(r"^(-?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def parse_datetime(text: str) -> dt.datetime:
    """xs:dateTime to an aware datetime (UTC when no zone is given); ValueError if out of range.

    Accepts what Python does not: fractions beyond microseconds, ``24:00:00``.
    """
    m = _DATETIME.match(text.strip())
    if not m:
        raise ValueError(text)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or ".0")[1:7].ljust(6, "0")
    zone = m.group(8)
    tz = dt.UTC
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    extra = dt.timedelta()
    if hour == 24 and minute == 0 and second == 0:
        hour, extra = 0, dt.timedelta(days=1)
    value = dt.datetime(year, month, day, hour, minute, second, int(frac), tzinfo=tz) + extra
    return value


class _R:
    """Reads children by local name from a schema-valid element."""

    def __init__(self, el: etree._Element) -> None:
        self.el = el

    def child(self, name: str) -> _R | None:
        found = self.el.find(_q(name))
        return _R(found) if found is not None else None

    def children(self, name: str) -> list[_R]:
        return [_R(e) for e in self.el.findall(_q(name))]

    def text(self, name: str) -> str | None:
        found = self.el.find(_q(name))
        if found is None:
            return None
        value = (found.text or "").strip()
        return value or None

    def texts(self, name: str) -> tuple[str, ...]:
        return tuple(v for e in self.el.findall(_q(name)) if (v := (e.text or "").strip()))

    def datetime(self, name: str) -> dt.datetime | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return parse_datetime(value)
        except ValueError:
            raise _ValueProblem(name, value) from None

    def required_datetime(self, name: str) -> dt.datetime:
        value = self.datetime(name)
        if value is None:
            raise _ValueProblem(name, "")
        return value

    def int(self, name: str) -> int | None:
        value = self.text(name)
        return int(value) if value is not None else None

    def yes_no(self, name: str) -> bool | None:
        value = self.text(name)
        return None if value is None else value == "Y"

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        return None if value is None else value in ("true", "1")

    def scheme(self, name: str) -> SchemeValue | None:
        found = self.el.find(_q(name))
        if found is None:
            return None
        value = (found.text or "").strip()
        if not value:
            return None
        return SchemeValue(value, found.get(_q("scheme")) or None)

    def schemes(self, name: str) -> tuple[SchemeValue, ...]:
        out = []
        for found in self.el.findall(_q(name)):
            value = (found.text or "").strip()
            if value:
                out.append(SchemeValue(value, found.get(_q("scheme")) or None))
        return tuple(out)

    def agency(self, name: str) -> AgencyId | None:
        found = self.child(name)
        if found is None:
            return None
        kind = found.scheme("agencyIdType")
        value = found.text("agencyIdValue")
        if kind is None or value is None:
            return None
        return AgencyId(kind.value, value, kind.scheme)

    def costs(self, name: str) -> Costs | None:
        found = self.child(name)
        if found is None:
            return None
        currency = found.text("currencyCode") or ""
        try:
            amount = Decimal(found.text("monetaryValue") or "")
        except InvalidOperation:
            raise _ValueProblem("monetaryValue", found.text("monetaryValue") or "") from None
        return Costs(currency, amount)


class _ValueProblem(Exception):
    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value
        super().__init__(name, value)


def _address(r: _R) -> Address | None:
    e = r.child("electronicAddress")
    if e is not None:
        kind = e.scheme("electronicAddressType")
        return ElectronicAddress(kind.value if kind else "", e.text("electronicAddressData") or "")
    p = r.child("physicalAddress")
    return _physical(p) if p is not None else None


def _physical(p: _R) -> PhysicalAddress:
    country = p.scheme("country")
    return PhysicalAddress(
        line1=p.text("line1"),
        line2=p.text("line2"),
        locality=p.text("locality"),
        postal_code=p.text("postalCode"),
        region=p.text("region"),
        country=country.value if country else None,
    )


def _addresses(r: _R) -> tuple[Address, ...]:
    return tuple(a for x in r.children("address") if (a := _address(x)) is not None)


def _record_id(r: _R | None) -> BibliographicRecordId | None:
    if r is None:
        return None
    code = r.scheme("bibliographicRecordIdentifierCode") or SchemeValue("")
    return BibliographicRecordId(r.text("bibliographicRecordIdentifier") or "", code)


def _read_header(r: _R) -> Header:
    requesting = r.agency("requestingAgencyId")
    if requesting is None:
        raise _ValueProblem("requestingAgencyId", "")
    auth = r.child("requestingAgencyAuthentication")
    return Header(
        requesting_agency_id=requesting,
        timestamp=r.required_datetime("timestamp"),
        requesting_agency_request_id=r.text("requestingAgencyRequestId") or "",
        supplying_agency_id=r.agency("supplyingAgencyId"),
        supplying_agency_request_id=r.text("supplyingAgencyRequestId"),
        multiple_item_request_id=r.text("multipleItemRequestId"),
        consortial_id=r.agency("consortialId"),
        authentication=(
            Authentication(auth.text("accountId"), auth.text("securityCode")) if auth else None
        ),
    )


def _read_bib(r: _R) -> BibliographicInfo:
    items = []
    for i in r.children("bibliographicItemId"):
        code = i.scheme("bibliographicItemIdentifierCode") or SchemeValue("")
        items.append(BibliographicItemId(i.text("bibliographicItemIdentifier") or "", code))
    return BibliographicInfo(
        supplier_unique_record_id=r.text("supplierUniqueRecordId"),
        title=r.text("title"),
        author=r.text("author"),
        author_id=r.text("authorId"),
        subtitle=r.text("subtitle"),
        series_title=r.text("seriesTitle"),
        edition=r.text("edition"),
        title_of_component=r.text("titleOfComponent"),
        author_of_component=r.text("authorOfComponent"),
        volumes=r.texts("volume"),
        issue=r.text("issue"),
        pages_requested=r.text("pagesRequested"),
        estimated_no_pages=r.text("estimatedNoPages"),
        item_ids=tuple(items),
        sponsor=r.text("sponsor"),
        information_source=r.text("informationSource"),
        record_ids=tuple(
            x for c in r.children("bibliographicRecordId") if (x := _record_id(c)) is not None
        ),
    )


def _read_request(r: _R) -> Request:
    header = r.child("header")
    bib = r.child("bibliographicInfo")
    assert header is not None and bib is not None  # the schema requires them
    pub = r.child("publicationInfo")
    svc = r.child("serviceInfo")
    service = None
    if svc is not None:
        rt = svc.text("requestType")
        service = ServiceInfo(
            service_type=ServiceType(svc.text("serviceType") or ""),
            request_type=RequestType(rt) if rt else None,
            request_sub_types=svc.texts("requestSubType"),
            requesting_agency_previous_request_id=svc.text("requestingAgencyPreviousRequestId"),
            service_level=svc.scheme("serviceLevel"),
            item_format=svc.scheme("itemFormat") or svc.scheme("preferredFormat"),
            need_before_date=svc.datetime("needBeforeDate"),
            copyright_compliance=svc.scheme("copyrightCompliance"),
            any_edition=svc.yes_no("anyEdition"),
            start_date=svc.datetime("startDate"),
            end_date=svc.datetime("endDate"),
            note=svc.text("note"),
        )
    suppliers = tuple(
        SupplierInfo(
            sort_order=s.int("sortOrder"),
            supplier_code=s.agency("supplierCode"),
            supplier_description=s.text("supplierDescription"),
            record_id=_record_id(s.child("bibliographicRecordId")),
            call_number=s.text("callNumber"),
            summary_holdings=s.text("summaryHoldings"),
            availability_note=s.text("availabilityNote"),
        )
        for s in r.children("supplierInfo")
    )
    wanted = []
    for d in r.children("requestedDeliveryInfo"):
        addr = d.child("address")
        wanted.append(
            RequestedDeliveryInfo(
                sort_order=d.int("sortOrder"),
                address=_address(addr) if addr is not None else None,
                delivery_method=d.scheme("deliveryMethod"),
            )
        )
    agency_info = r.child("requestingAgencyInfo")
    patron = r.child("patronInfo")
    billing = r.child("billingInfo")
    return Request(
        header=_read_header(header),
        bibliographic_info=_read_bib(bib),
        service_info=service,
        publication_info=(
            PublicationInfo(
                publisher=pub.text("publisher"),
                publisher_id=pub.text("publisherId"),
                publication_type=pub.scheme("publicationType"),
                publication_date=pub.text("publicationDate"),
                place_of_publication=pub.text("placeOfPublication"),
            )
            if pub is not None
            else None
        ),
        supplier_info=suppliers,
        requested_delivery_info=tuple(wanted),
        requesting_agency_info=(
            RequestingAgencyInfo(
                name=agency_info.text("name"),
                contact_name=agency_info.text("contactName"),
                addresses=_addresses(agency_info),
            )
            if agency_info is not None
            else None
        ),
        patron_info=(
            PatronInfo(
                patron_id=patron.text("patronId"),
                surname=patron.text("surname"),
                given_name=patron.text("givenName"),
                patron_type=patron.scheme("patronType"),
                send_to_patron=patron.yes_no("sendToPatron"),
                addresses=_addresses(patron),
            )
            if patron is not None
            else None
        ),
        billing_info=(
            BillingInfo(
                payment_method=billing.scheme("paymentMethod"),
                maximum_costs=billing.costs("maximumCosts"),
                billing_method=billing.scheme("billingMethod"),
                billing_name=billing.text("billingName"),
            )
            if billing is not None
            else None
        ),
    )


def _read_sam(r: _R) -> SupplyingAgencyMessage:
    header, info, status = r.child("header"), r.child("messageInfo"), r.child("statusInfo")
    assert header is not None and info is not None and status is not None
    retry = r.child("retryInfo") or info  # 2021 moved these into retryInfo
    answer = info.text("answerYesNo")
    delivery = r.child("deliveryInfo")
    ret = r.child("returnInfo")
    delivery_info = None
    if delivery is not None:
        item_ids: tuple[str, ...] = delivery.texts("itemId")
        svc = delivery.text("serviceType")
        delivery_info = DeliveryInfo(
            date_sent=delivery.required_datetime("dateSent"),
            item_ids=item_ids,
            url=delivery.text("URL"),
            delivery_method=delivery.scheme("deliveryMethod") or delivery.scheme("sentVia"),
            sent_to_patron=delivery.boolean("sentToPatron"),
            loan_conditions=delivery.schemes("loanCondition"),
            item_format=delivery.scheme("itemFormat") or delivery.scheme("deliveredFormat"),
            service_type=ServiceType(svc) if svc else None,
            delivery_costs=delivery.costs("deliveryCosts"),
        )
    ret_addr = ret.child("physicalAddress") if ret is not None else None
    return SupplyingAgencyMessage(
        header=_read_header(header),
        message_info=MessageInfo(
            reason_for_message=SupplierMessageReason(info.text("reasonForMessage") or ""),
            answer_yes_no=None if answer is None else answer == "Y",
            note=info.text("note"),
            reason_unfilled=info.scheme("reasonUnfilled"),
            reason_retry=info.scheme("reasonRetry"),
            offered_costs=retry.costs("offeredCosts"),
            retry_after=retry.datetime("retryAfter"),
            retry_before=retry.datetime("retryBefore"),
        ),
        status_info=StatusInfo(
            status=Status(status.text("status") or ""),
            last_change=status.required_datetime("lastChange"),
            expected_delivery_date=status.datetime("expectedDeliveryDate"),
            due_date=status.datetime("dueDate"),
        ),
        delivery_info=delivery_info,
        return_info=(
            ReturnInfo(
                return_agency_id=ret.agency("returnAgencyId"),
                name=ret.text("name"),
                address=_physical(ret_addr) if ret_addr is not None else None,
            )
            if ret is not None
            else None
        ),
    )


def _read_ram(r: _R) -> RequestingAgencyMessage:
    header = r.child("header")
    assert header is not None
    return RequestingAgencyMessage(
        header=_read_header(header),
        action=RequesterAction(r.text("action") or ""),
        note=r.text("note"),
    )


def _read_confirmation_header(r: _R) -> ConfirmationHeader:
    return ConfirmationHeader(
        timestamp=r.required_datetime("timestamp"),
        timestamp_received=r.required_datetime("timestampReceived"),
        message_status=MessageStatus(r.text("messageStatus") or ""),
        supplying_agency_id=r.agency("supplyingAgencyId"),
        requesting_agency_id=r.agency("requestingAgencyId"),
        requesting_agency_request_id=r.text("requestingAgencyRequestId"),
        multiple_item_request_id=r.text("multipleItemRequestId"),
    )


def _read_errors(r: _R) -> tuple[ErrorData, ...]:
    return tuple(
        ErrorData(ErrorType.parse(e.text("errorType") or ""), e.text("errorValue"))
        for e in r.children("errorData")
    )


def _read_message(kind: MessageKind, r: _R) -> Message:
    if kind is MessageKind.REQUEST:
        return _read_request(r)
    if kind is MessageKind.SUPPLYING_AGENCY_MESSAGE:
        return _read_sam(r)
    if kind is MessageKind.REQUESTING_AGENCY_MESSAGE:
        return _read_ram(r)
    ch = r.child("confirmationHeader")
    assert ch is not None
    header = _read_confirmation_header(ch)
    if kind is MessageKind.REQUEST_CONFIRMATION:
        return RequestConfirmation(header, _read_errors(r))
    if kind is MessageKind.SUPPLYING_AGENCY_MESSAGE_CONFIRMATION:
        reason = r.text("reasonForMessage")
        return SupplyingAgencyMessageConfirmation(
            header, SupplierMessageReason(reason) if reason else None, _read_errors(r)
        )
    action = r.text("action")
    return RequestingAgencyMessageConfirmation(
        header, RequesterAction(action) if action else None, _read_errors(r)
    )


# ----------------------------------------------------------------------------- parse


def _version_of(declared: str) -> SchemaVersion:
    """The schema to try first for a declared ill:version (1.x -> 2017, anything else 2021)."""
    d = declared.strip()
    return "2017" if d == "1" or d.startswith(("1.", "v1")) else "2021"


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _name_path(root: etree._Element, el: etree._Element) -> str:
    """``requestingAgencyMessage/header/timestamp``: the element's path below the root."""
    names = []
    node: etree._Element | None = el
    while node is not None and node is not root:
        names.append(_local(node.tag))
        node = node.getparent()
    return "/".join(reversed(names)) or _local(root.tag)


def _element_at(root: etree._Element, path: str | None) -> etree._Element | None:
    if not path:
        return None
    # libxml2 writes the path with the document's own prefixes (or * for a default namespace).
    namespaces: dict[str, str] = {}
    for el in root.iter():
        for prefix, uri in el.nsmap.items():
            if prefix and uri:
                namespaces.setdefault(prefix, uri)
    try:
        found = root.getroottree().xpath(path, namespaces=namespaces)
    except etree.XPathError:
        return None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return found[0]
    return None


_NOT_EXPECTED = re.compile(r"Element '([^']+)': This element is not expected")
_MISSING = re.compile(r"Missing child element\(s\)\. Expected is (?:one of )?\( ?([^)]*)\)")
_ATTRIBUTE = re.compile(r"The attribute '([^']+)' is (?:not allowed|required but missing)")


def _describe(root: etree._Element, error: Any) -> str:
    """One schema error in words, naming the element by its path."""
    el = _element_at(root, getattr(error, "path", None))
    where = _name_path(root, el) if el is not None else "ISO18626Message"
    message = str(getattr(error, "message", error))
    message = message.replace(f"{{{NS}}}", "")
    return f"{where}: {message}"


def _classify(
    root: etree._Element, errors: Sequence[Any], version: SchemaVersion
) -> tuple[ErrorType, str]:
    """The ISO 18626 error type and value for schema errors (the most specific one wins)."""
    known = _schema_element_names(version)
    found: list[tuple[int, ErrorType, str]] = []
    for err in errors:
        el = _element_at(root, getattr(err, "path", None))
        msg = str(err.message)
        name = _local(el.tag) if el is not None else ""
        where = _name_path(root, el) if el is not None else "ISO18626Message"
        value = (el.text or "").strip() if el is not None else ""
        if "enumeration" in msg and name == "action":
            found.append((0, ErrorType.UNSUPPORTED_ACTION_TYPE, f"action: {value}"))
        elif "enumeration" in msg and name == "reasonForMessage":
            found.append(
                (0, ErrorType.UNSUPPORTED_REASON_FOR_MESSAGE_TYPE, f"reasonForMessage: {value}")
            )
        elif m := _NOT_EXPECTED.search(msg):
            qname = etree.QName(m.group(1))
            if qname.namespace != NS or qname.localname not in known:
                shown = qname.localname if qname.namespace == NS else m.group(1)
                parent = where.rsplit("/", 1)[0] if "/" in where else where
                found.append((1, ErrorType.UNRECOGNISED_DATA_ELEMENT, f"{parent}/{shown}"))
            else:
                found.append((3, ErrorType.BADLY_FORMED_MESSAGE, _misplaced(el, where, msg)))
        elif m := _MISSING.search(msg):
            wanted = m.group(1).replace(f"{{{NS}}}", "").strip()
            found.append((3, ErrorType.BADLY_FORMED_MESSAGE, f"{where}: missing {wanted}"))
        elif m := _ATTRIBUTE.search(msg):
            attr = m.group(1).replace(f"{{{NS}}}", "")
            if "not allowed" in msg:
                found.append((1, ErrorType.UNRECOGNISED_DATA_ELEMENT, f"{where}/@{attr}"))
            else:
                found.append((3, ErrorType.BADLY_FORMED_MESSAGE, f"{where}: missing @{attr}"))
        elif el is not None and ("is not a valid value" in msg or "facet" in msg):
            found.append((2, ErrorType.UNRECOGNISED_DATA_VALUE, f"{where}: {value}"))
        else:
            found.append((3, ErrorType.BADLY_FORMED_MESSAGE, _describe(root, err)))
    found.sort(key=lambda t: t[0])
    _rank, error_type, value = found[0]
    return error_type, value[:500]


_EXPECTED = re.compile(r"Expected is (?:one of )?\( ?([^)]*)\)")


def _misplaced(el: etree._Element | None, where: str, message: str) -> str:
    """A known element where the schema wanted another: usually a required one is missing."""
    m = _EXPECTED.search(message)
    wanted = [w.strip().replace(f"{{{NS}}}", "") for w in m.group(1).split(",")] if m else []
    parent = el.getparent() if el is not None else None
    if len(wanted) == 1 and parent is not None and parent.find(_q(wanted[0])) is None:
        return f"{where.rsplit('/', 1)[0]}: missing {wanted[0]}"
    if wanted:
        return f"{where}: not expected here (expected {', '.join(wanted)})"
    return f"{where}: not expected here"


def _normalise(root: etree._Element) -> None:
    """Tolerate what deployed peers send that the letter of the schema does not allow."""
    if root.get(_q("version")) is None and root.get("version") is not None:
        root.set(_q("version"), root.attrib.pop("version"))
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if "scheme" in el.attrib and _q("scheme") not in el.attrib:
            el.set(_q("scheme"), el.attrib.pop("scheme"))
        if el.tag == _q("errorType") and el.text and "Unrecognized" in el.text:
            el.text = el.text.replace("Unrecognized", "Unrecognised")


def _add_multiple_item_request_id(body: etree._Element) -> None:
    """v1_2 requires header/multipleItemRequestId that 1.0/1.1 peers never send."""
    header = body.find(_q("header"))
    if header is None or header.find(_q("multipleItemRequestId")) is not None:
        return
    anchor = header.find(_q("requestingAgencyId"))
    if anchor is not None:
        anchor.addnext(etree.Element(_q("multipleItemRequestId")))


def _best_effort_header(body: etree._Element) -> Header | None:
    """What of the header can be read from a refused message, for echoing in the answer."""
    h = body.find(_q("header"))
    if h is None:
        return None
    r = _R(h)
    try:
        requesting = r.agency("requestingAgencyId")
        if requesting is None:
            return None
        supplying = r.agency("supplyingAgencyId")
        try:
            stamp = r.required_datetime("timestamp")
        except _ValueProblem:
            stamp = dt.datetime.now(dt.UTC)
        return Header(
            requesting_agency_id=requesting,
            timestamp=stamp,
            requesting_agency_request_id=r.text("requestingAgencyRequestId") or "",
            supplying_agency_id=supplying,
            multiple_item_request_id=r.text("multipleItemRequestId"),
        )
    except Exception:  # whatever is broken, the answer goes out without the echo
        return None


def parse_envelope(data: bytes, *, max_bytes: int = MAX_BYTES) -> Received:
    """Read one ISO 18626 document; raises ``Iso18626Error`` and nothing else."""
    try:
        return _parse(data, max_bytes)
    except Iso18626Error:
        raise
    except Exception as exc:  # a bug must still come out as a protocol answer
        raise Iso18626Error(
            ErrorType.BADLY_FORMED_MESSAGE, f"unreadable message ({type(exc).__name__})"
        ) from exc


def parse(data: bytes, *, max_bytes: int = MAX_BYTES) -> Message:
    """The typed message of one ISO 18626 document (see ``parse_envelope``)."""
    return parse_envelope(data, max_bytes=max_bytes).message


def _parse(data: bytes, max_bytes: int) -> Received:
    bad = ErrorType.BADLY_FORMED_MESSAGE
    try:
        root = parse_bytes(data, max_bytes=max_bytes)
    except XmlRejected as exc:
        raise Iso18626Error(bad, exc.render()) from None
    if root.tag != _q("ISO18626Message"):
        qn = etree.QName(root.tag) if isinstance(root.tag, str) else None
        if qn is not None and qn.localname == "ISO18626Message":
            value = f"ISO18626Message: namespace must be {NS}, not {qn.namespace or 'none'}"
        else:
            value = f"root element must be ISO18626Message in {NS}"
        raise Iso18626Error(bad, value)
    children = [c for c in root if isinstance(c.tag, str)]
    if not children:
        raise Iso18626Error(bad, "ISO18626Message: no message element")
    body = children[0]
    try:
        kind: MessageKind | None = (
            MessageKind(_local(body.tag)) if etree.QName(body.tag).namespace == NS else None
        )
    except ValueError:
        kind = None
    if kind is None:
        raise Iso18626Error(
            ErrorType.UNRECOGNISED_DATA_ELEMENT, f"ISO18626Message/{_local(body.tag)}"
        )
    header = _best_effort_header(body)
    _normalise(root)
    declared = root.get(_q("version"))
    first = _version_of(declared or "")
    context: dict[str, Any] = {"kind": kind, "header": header, "version": first}
    reason_el = body.find(f"{_q('messageInfo')}/{_q('reasonForMessage')}")
    if reason_el is None:
        reason_el = body.find(_q("reasonForMessage"))
    action_el = body.find(_q("action"))
    if reason_el is not None and reason_el.text in set(SupplierMessageReason):
        context["reason_for_message"] = reason_el.text
    if action_el is not None and action_el.text in set(RequesterAction):
        context["action"] = action_el.text
    if declared is None:
        raise Iso18626Error(bad, "ISO18626Message: missing @version", **context)

    errors_by_version: dict[SchemaVersion, tuple[etree._Element, list[Any]]] = {}
    chosen: SchemaVersion | None = None
    chosen_root = root
    for version in (first, "2021" if first == "2017" else "2017"):
        candidate = root
        if version == "2017":
            candidate = copy.deepcopy(root)
            _add_multiple_item_request_id(candidate[0])
        errors = validate(candidate, version)
        if not errors:
            chosen, chosen_root = version, candidate
            break
        errors_by_version[version] = (candidate, errors)
    if chosen is None:
        # Error paths point into the tree that was validated (2017 may have one more element).
        tree, errors = errors_by_version[first]
        error_type, value = _classify(tree, errors, first)
        raise Iso18626Error(error_type, value, **context)
    context["version"] = chosen
    try:
        message = _read_message(kind, _R(chosen_root[0]))
    except _ValueProblem as exc:
        raise Iso18626Error(
            ErrorType.UNRECOGNISED_DATA_VALUE, f"{exc.name}: {exc.value}", **context
        ) from None
    except ValueError as exc:  # an enum the schema allows and we do not know (cannot happen)
        raise Iso18626Error(ErrorType.UNRECOGNISED_DATA_VALUE, str(exc)[:200], **context) from None
    return Received(message, chosen, declared)


# ----------------------------------------------------------------------------- confirmations


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def confirmation_for(
    msg: Message | None,
    error: Iso18626Error | None = None,
    *,
    version: SchemaVersion | None = None,
    now: dt.datetime | None = None,
) -> bytes:
    """The schema-valid confirmation answering ``msg`` (OK) or refusing it (ERROR + errorData).

    ``msg`` may be None when ``parse`` failed: the answer is built from what ``error`` kept
    (kind, header, version). Never raises for any (msg, error) pair that parse/the service can
    produce: echoed values that would not fit the schema are left out.
    """
    stamp = now or _now()
    if version is None:
        version = (error.version if error else None) or "2017"
    kind = msg.kind if msg is not None else (error.kind if error else None)
    header = getattr(msg, "header", None) if msg is not None else (error.header if error else None)
    answer_kind = CONFIRMATION_OF.get(kind) if kind is not None else None
    if answer_kind is None:
        # Unknown kind, or a confirmation sent where a message was expected.
        answer_kind = MessageKind.REQUEST_CONFIRMATION
        if error is None:
            what = kind.value if kind else "?"
            error = Iso18626Error(
                ErrorType.BADLY_FORMED_MESSAGE, f"{what}: not a message that is confirmed"
            )
    ch = ConfirmationHeader(
        timestamp=stamp,
        timestamp_received=header.timestamp if header is not None else stamp,
        message_status=MessageStatus.ERROR if error else MessageStatus.OK,
        supplying_agency_id=header.supplying_agency_id if header else None,
        requesting_agency_id=header.requesting_agency_id if header else None,
        requesting_agency_request_id=(header.requesting_agency_request_id or None)
        if header
        else None,
        multiple_item_request_id=header.multiple_item_request_id if header else None,
    )
    errors = (ErrorData(error.error_type, error.value or None),) if error else ()
    reply: Confirmation
    if answer_kind is MessageKind.SUPPLYING_AGENCY_MESSAGE_CONFIRMATION:
        reason: str | None = None
        if isinstance(msg, SupplyingAgencyMessage):
            reason = msg.message_info.reason_for_message
        elif error is not None:
            reason = error.reason_for_message
        known_reason = reason in set(SupplierMessageReason)
        reply = SupplyingAgencyMessageConfirmation(
            ch, SupplierMessageReason(reason) if reason and known_reason else None, errors
        )
    elif answer_kind is MessageKind.REQUESTING_AGENCY_MESSAGE_CONFIRMATION:
        action: str | None = None
        if isinstance(msg, RequestingAgencyMessage):
            action = msg.action
        elif error is not None:
            action = error.action
        known_action = action in set(RequesterAction)
        reply = RequestingAgencyMessageConfirmation(
            ch, RequesterAction(action) if action and known_action else None, errors
        )
    else:
        reply = RequestConfirmation(ch, errors)
    for attempt in _fallbacks(reply):
        try:
            return to_xml(attempt, version)
        except MessageInvalid:
            continue
    raise AssertionError("a bare confirmation must fit the schema")  # pragma: no cover


def _fallbacks(reply: Confirmation) -> Iterable[Confirmation]:
    """The reply, then with less echoed (values that would not fit the schema dropped)."""
    yield reply
    bare = dataclasses.replace(
        reply.confirmation_header,
        supplying_agency_id=None,
        requesting_agency_id=None,
        requesting_agency_request_id=None,
        multiple_item_request_id=None,
    )
    yield dataclasses.replace(reply, confirmation_header=bare)
    if isinstance(reply, SupplyingAgencyMessageConfirmation):
        yield dataclasses.replace(reply, confirmation_header=bare, reason_for_message=None)
    if isinstance(reply, RequestingAgencyMessageConfirmation):
        yield dataclasses.replace(reply, confirmation_header=bare, action=None)


def is_ok(confirmation: Message) -> bool:
    """Whether a confirmation says OK (False for ERROR; TypeError for a non-confirmation)."""
    if not isinstance(
        confirmation,
        RequestConfirmation
        | SupplyingAgencyMessageConfirmation
        | RequestingAgencyMessageConfirmation,
    ):
        raise TypeError(f"not a confirmation: {confirmation.kind}")
    return confirmation.confirmation_header.message_status is MessageStatus.OK


# ----------------------------------------------------------------------------- routing


def sender(msg: Message) -> AgencyId | None:
    """The agency that sent a message: the requester for Request and RequestingAgencyMessage,
    the supplier for SupplyingAgencyMessage (None for confirmations, which answer in-line)."""
    if isinstance(msg, Request | RequestingAgencyMessage):
        return msg.header.requesting_agency_id
    if isinstance(msg, SupplyingAgencyMessage):
        return msg.header.supplying_agency_id
    return None


def recipient(msg: Message) -> AgencyId | None:
    """The agency a message is addressed to (None: a 2021 Request to whoever can supply)."""
    if isinstance(msg, Request | RequestingAgencyMessage):
        return msg.header.supplying_agency_id
    if isinstance(msg, SupplyingAgencyMessage):
        return msg.header.requesting_agency_id
    return None


# ----------------------------------------------------------------------------- idempotency


def _utc(value: dt.datetime | None) -> str | None:
    return _fmt_dt(value) if value is not None else None


def _agency(value: AgencyId | None) -> str | None:
    return f"{value.type.casefold()}:{value.value}" if value is not None else None


def message_key(msg: Message) -> str:
    """A stable hash of what makes a message the same message: a retry has the same key.

    It covers the kind, both agencies, the request ids, the header timestamp and what the
    message says (reason, answer, status, dates, note; action and note; for a Request its
    service type and request type). Whitespace, element order, prefixes and the schema
    version do not change it.
    """
    parts: dict[str, Any] = {"kind": msg.kind.value}
    header: Header | None = getattr(msg, "header", None)
    if header is not None:
        parts.update(
            requesting=_agency(header.requesting_agency_id),
            supplying=_agency(header.supplying_agency_id),
            requesting_request_id=header.requesting_agency_request_id,
            supplying_request_id=header.supplying_agency_request_id,
            timestamp=_utc(header.timestamp),
        )
    if isinstance(msg, Request):
        s = msg.service_info
        parts.update(
            service_type=s.service_type.value if s else None,
            request_type=s.request_type.value if s and s.request_type else None,
            previous=s.requesting_agency_previous_request_id if s else None,
        )
    elif isinstance(msg, SupplyingAgencyMessage):
        m, st = msg.message_info, msg.status_info
        parts.update(
            reason=m.reason_for_message.value,
            answer=m.answer_yes_no,
            note=m.note,
            status=st.status.value,
            last_change=_utc(st.last_change),
            due=_utc(st.due_date),
        )
    elif isinstance(msg, RequestingAgencyMessage):
        parts.update(action=msg.action.value, note=msg.note)
    else:
        ch = msg.confirmation_header
        parts.update(
            requesting=_agency(ch.requesting_agency_id),
            supplying=_agency(ch.supplying_agency_id),
            requesting_request_id=ch.requesting_agency_request_id,
            timestamp=_utc(ch.timestamp),
            received=_utc(ch.timestamp_received),
            status=ch.message_status.value,
        )
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


__all__ = [
    "NS",
    "VERSIONS",
    "Address",
    "AgencyId",
    "Authentication",
    "BibliographicInfo",
    "BibliographicItemId",
    "BibliographicRecordId",
    "BillingInfo",
    "Confirmation",
    "ConfirmationHeader",
    "Costs",
    "DeliveryInfo",
    "ElectronicAddress",
    "ErrorData",
    "ErrorType",
    "Header",
    "Iso18626Error",
    "Message",
    "MessageInfo",
    "MessageInvalid",
    "MessageKind",
    "MessageStatus",
    "PatronInfo",
    "PhysicalAddress",
    "PublicationInfo",
    "Received",
    "Request",
    "RequestConfirmation",
    "RequestType",
    "RequestedDeliveryInfo",
    "RequestingAgencyInfo",
    "RequestingAgencyMessage",
    "RequestingAgencyMessageConfirmation",
    "ReturnInfo",
    "SchemeValue",
    "ServiceInfo",
    "StatusInfo",
    "SupplierInfo",
    "SupplyingAgencyMessage",
    "SupplyingAgencyMessageConfirmation",
    "confirmation_for",
    "error_for_refusal",
    "is_ok",
    "message_key",
    "parse",
    "parse_envelope",
    "recipient",
    "sender",
    "to_xml",
]
