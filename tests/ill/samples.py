"""Fully populated ISO 18626 messages of every kind, for round trips and schema checks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from consortia.ill import iso18626 as iso
from consortia.ill.states import RequesterAction, ServiceType, Status, SupplierMessageReason

T0 = dt.datetime(2024, 3, 5, 8, 30, 15, 250000, tzinfo=dt.UTC)
T1 = dt.datetime(2024, 3, 6, 9, 0, tzinfo=dt.UTC)
DUE = dt.datetime(2024, 4, 6, 0, 0, tzinfo=dt.UTC)

HUB = iso.AgencyId("ISIL", "CN-CONSORTIA")
GZUCM = iso.AgencyId(
    "ISIL", "CN-GZUCM", "http://illtransactions.org/ISO18626/OpenCodeList/AgencyIdTypeList"
)
SYSU = iso.AgencyId("ISIL", "CN-SYSU")


def header(
    *,
    supplier: iso.AgencyId | None = SYSU,
    supplier_request_id: str | None = "S-900",
    multiple: str | None = None,
) -> iso.Header:
    return iso.Header(
        requesting_agency_id=GZUCM,
        timestamp=T0,
        requesting_agency_request_id="GZUCM-2024-0001",
        supplying_agency_id=supplier,
        supplying_agency_request_id=supplier_request_id,
        multiple_item_request_id=multiple,
    )


def request(service_type: ServiceType = ServiceType.LOAN) -> iso.Request:
    return iso.Request(
        header=header(supplier_request_id=None),
        bibliographic_info=iso.BibliographicInfo(
            supplier_unique_record_id="sysu-b1234567",
            title="中医基础理论",
            author="孙广仁",
            subtitle="第2版",
            edition="2",
            title_of_component="第三章 藏象",
            author_of_component="孙广仁",
            volumes=("上册",),
            pages_requested="45-78",
            item_ids=(
                iso.BibliographicItemId("9787513206820", iso.SchemeValue("ISBN")),
                iso.BibliographicItemId("1001-1668", iso.SchemeValue("ISSN")),
            ),
            record_ids=(iso.BibliographicRecordId("cluster-42", iso.SchemeValue("CONSORTIA")),),
        ),
        publication_info=iso.PublicationInfo(
            publisher="中国中医药出版社",
            publication_type=iso.SchemeValue("Book"),
            publication_date="2012",
            place_of_publication="北京",
        ),
        service_info=iso.ServiceInfo(
            service_type=service_type,
            request_type=iso.RequestType.NEW,
            request_sub_types=("PatronRequest",),
            service_level=iso.SchemeValue("Normal"),
            item_format=iso.SchemeValue("PDF"),
            need_before_date=DUE,
            copyright_compliance=iso.SchemeValue("CN-Copyright-Law-Art24"),
            any_edition=True,
            note="请尽快",
        ),
        supplier_info=(
            iso.SupplierInfo(sort_order=1, supplier_code=SYSU, call_number="R22/S95"),
            iso.SupplierInfo(sort_order=2, supplier_code=iso.AgencyId("ISIL", "CN-SCNU")),
        ),
        requested_delivery_info=(
            iso.RequestedDeliveryInfo(
                sort_order=1,
                address=iso.PhysicalAddress(
                    line1="机场路12号", locality="广州", postal_code="510405", country="CN"
                ),
            ),
            iso.RequestedDeliveryInfo(
                sort_order=2, address=iso.ElectronicAddress("Email", "ill@lib.gzucm.edu.cn")
            ),
        ),
        requesting_agency_info=iso.RequestingAgencyInfo(
            name="广州中医药大学图书馆", contact_name="馆际互借部"
        ),
        patron_info=iso.PatronInfo(patron_id="R-0042", patron_type=iso.SchemeValue("Student")),
        billing_info=iso.BillingInfo(maximum_costs=iso.Costs("CNY", Decimal("20.00"))),
    )


def supplying_agency_message(
    status: Status = Status.LOANED,
    reason: SupplierMessageReason = SupplierMessageReason.STATUS_CHANGE,
) -> iso.SupplyingAgencyMessage:
    return iso.SupplyingAgencyMessage(
        header=header(),
        message_info=iso.MessageInfo(
            reason_for_message=reason,
            answer_yes_no=True,
            note="已寄出",
            reason_unfilled=None,
            offered_costs=iso.Costs("CNY", Decimal("5.5")),
            retry_after=T1,
            retry_before=DUE,
        ),
        status_info=iso.StatusInfo(
            status=status, last_change=T1, due_date=DUE, expected_delivery_date=T1
        ),
        delivery_info=iso.DeliveryInfo(
            date_sent=T1,
            item_ids=("31234000123456",),
            delivery_method=iso.SchemeValue("Mail"),
            sent_to_patron=False,
            loan_conditions=(iso.SchemeValue("LibraryUseOnly"),),
            item_format=iso.SchemeValue("Printed"),
            delivery_costs=iso.Costs("CNY", Decimal("12")),
        ),
        return_info=iso.ReturnInfo(
            return_agency_id=SYSU,
            name="中山大学图书馆",
            address=iso.PhysicalAddress(line1="新港西路135号", locality="广州", country="CN"),
        ),
    )


def requesting_agency_message(
    action: RequesterAction = RequesterAction.RENEW,
) -> iso.RequestingAgencyMessage:
    return iso.RequestingAgencyMessage(header=header(), action=action, note="请续借两周")


def confirmation_header(status: iso.MessageStatus = iso.MessageStatus.OK) -> iso.ConfirmationHeader:
    return iso.ConfirmationHeader(
        timestamp=T1,
        timestamp_received=T0,
        message_status=status,
        supplying_agency_id=SYSU,
        requesting_agency_id=GZUCM,
        requesting_agency_request_id="GZUCM-2024-0001",
    )


def confirmations() -> list[iso.Message]:
    err = (iso.ErrorData(iso.ErrorType.UNRECOGNISED_DATA_VALUE, "requestingAgencyRequestId: X"),)
    return [
        iso.RequestConfirmation(confirmation_header()),
        iso.RequestConfirmation(confirmation_header(iso.MessageStatus.ERROR), err),
        iso.SupplyingAgencyMessageConfirmation(
            confirmation_header(), SupplierMessageReason.RENEW_RESPONSE
        ),
        iso.RequestingAgencyMessageConfirmation(
            confirmation_header(iso.MessageStatus.ERROR), RequesterAction.CANCEL, err
        ),
    ]


def all_messages() -> list[iso.Message]:
    return [
        request(),
        request(ServiceType.COPY),
        supplying_agency_message(),
        requesting_agency_message(),
        *confirmations(),
    ]
