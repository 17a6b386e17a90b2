"""Holdings (items) from the record itself — MARC21 852, Koha 952, UNIMARC 995, or a member's
own tag — or from a separate holdings CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from consortia.errors import RowErrors

STATUSES = ("available", "on_loan", "in_transit", "missing", "lost", "not_for_loan", "on_order")


@dataclass(frozen=True)
class Item:
    barcode: str
    call_number: str
    location: str
    status: str
    origin: str

    def to_dict(self) -> dict[str, str]:
        return {
            "barcode": self.barcode,
            "call_number": self.call_number,
            "location": self.location,
            "status": self.status,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class Mapping:
    """Which tag and subfields carry a member's items."""

    tag: str
    barcode: str = ""
    call_number: str = ""
    location: str = ""
    status: str = ""


def _first(field: Any, code: str) -> str:
    if not code:
        return ""
    values = field.get_subfields(code)
    return str(values[0]).strip() if values else ""


def _koha_status(field: Any) -> str:
    # Koha 952: $1 lost, $0 withdrawn, $7 not for loan, $q date due (on loan), $4 damaged.
    if _first(field, "1") not in ("", "0"):
        return "lost"
    if _first(field, "0") not in ("", "0"):
        return "missing"
    if _first(field, "7") not in ("", "0"):
        return "not_for_loan"
    if _first(field, "q"):
        return "on_loan"
    return "available"


def _free_status(value: str) -> str:
    v = value.strip().lower().replace(" ", "_").replace("-", "_")
    aliases = {
        "": "available",
        "in": "available",
        "available": "available",
        "在架": "available",
        "out": "on_loan",
        "checked_out": "on_loan",
        "on_loan": "on_loan",
        "借出": "on_loan",
        "transit": "in_transit",
        "in_transit": "in_transit",
        "missing": "missing",
        "lost": "lost",
        "丢失": "lost",
        "not_for_loan": "not_for_loan",
        "reference": "not_for_loan",
        "不外借": "not_for_loan",
        "on_order": "on_order",
        "0": "available",
    }
    return aliases.get(v, "not_for_loan" if v.isdigit() else "available")


def items_from_record(record: Any, flavour: str, mapping: Mapping | None = None) -> list[Item]:
    """Every item a record carries; a member's mapping, when set, wins over the defaults."""
    items: list[Item] = []
    if mapping is not None:
        for f in record.get_fields(mapping.tag):
            items.append(
                Item(
                    _first(f, mapping.barcode),
                    _first(f, mapping.call_number),
                    _first(f, mapping.location),
                    _free_status(_first(f, mapping.status)),
                    mapping.tag,
                )
            )
        return items
    for f in record.get_fields("952"):
        call = _first(f, "o")
        loc = " ".join(x for x in (_first(f, "a"), _first(f, "c")) if x)
        items.append(Item(_first(f, "p"), call, loc, _koha_status(f), "952"))
    if flavour == "unimarc":
        for f in record.get_fields("995"):
            status = "not_for_loan" if _first(f, "o") not in ("", "0") else "available"
            if _first(f, "n"):
                status = "on_loan"
            loc = " ".join(x for x in (_first(f, "b"), _first(f, "e")) if x)
            items.append(Item(_first(f, "f"), _first(f, "k"), loc, status, "995"))
    else:
        for f in record.get_fields("852"):
            call = " ".join(x for x in (_first(f, "h"), _first(f, "i")) if x)
            loc = " ".join(x for x in (_first(f, "a"), _first(f, "b"), _first(f, "c")) if x)
            items.append(Item(_first(f, "p"), call, loc, "available", "852"))
    return items


HOLDINGS_CSV_COLUMNS = ("member", "record_id", "barcode", "call_number", "location", "status")


def read_holdings_csv(data: bytes, member_code: str) -> dict[str, list[Item]]:
    """Parse a holdings CSV (member, record id, barcode, call number, location, status).

    All-or-nothing: every bad row is reported with its line number and field.
    """
    problems: list[dict[str, Any]] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RowErrors(
            "Holdings file is not UTF-8 text", [{"line": 0, "field": "file", "message": str(exc)}]
        ) from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in HOLDINGS_CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RowErrors(
            "Holdings file lacks columns: {columns}",
            [{"line": 1, "field": c, "message": "missing column"} for c in missing],
            columns=", ".join(missing),
        )
    out: dict[str, list[Item]] = {}
    for row in reader:
        line = reader.line_num
        if (row.get("member") or "").strip() != member_code:
            problems.append({"line": line, "field": "member", "message": f"expected {member_code}"})
            continue
        rid = (row.get("record_id") or "").strip()
        if not rid:
            problems.append({"line": line, "field": "record_id", "message": "required"})
            continue
        status = (row.get("status") or "available").strip() or "available"
        if status not in STATUSES:
            problems.append(
                {"line": line, "field": "status", "message": f"one of {', '.join(STATUSES)}"}
            )
            continue
        out.setdefault(rid, []).append(
            Item(
                (row.get("barcode") or "").strip(),
                (row.get("call_number") or "").strip(),
                (row.get("location") or "").strip(),
                status,
                "csv",
            )
        )
    if problems:
        raise RowErrors(
            "Holdings file has {n} bad rows; nothing was loaded", problems, n=len(problems)
        )
    return out
