"""Reports as CSV, XLSX and JSON, and as plain cells for the Rich and HTML tables.

CSV: one table (the report's first, or the one named), a header of the column keys (the paper's
Table 1 file has the same header as ``report service`` prints), numbers as printed, no total
row. XLSX (openpyxl): one sheet per table with its title and translated headers, numbers as
numbers, the total row last. JSON: every table with its rows and total, the parameters, notes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from consortia.i18n import gettext
from consortia.stats.service import Column, Report, Table

FORMATS = ("table", "csv", "xlsx", "json")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def visible_columns(table: Table, lang: str) -> list[Column]:
    """The columns a person reads in ``lang`` (a name column per language)."""
    return [c for c in table.columns if c.lang is None or c.lang == lang]


def cell_text(value: Any, column: Column | None = None) -> str:
    """A value as printed: empty for none, one decimal for percentages."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "✓" if value else ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def header(column: Column, lang: str) -> str:
    return gettext(lang, column.label)


def to_csv(report: Report, table_key: str | None = None) -> str:
    table = report.table(table_key)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.key for c in table.columns])
    for row in table.rows:
        writer.writerow([cell_text(row.get(c.key), c) for c in table.columns])
    return out.getvalue()


def _excel_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bool):
        return "✓" if value else ""
    return value


def to_xlsx(report: Report, lang: str) -> bytes:
    wb = Workbook()
    first = True
    for table in report.tables:
        ws = wb.active if first else wb.create_sheet()
        assert ws is not None
        first = False
        ws.title = table.key[:31]
        columns = visible_columns(table, lang)
        ws.append([gettext(lang, report.title) + " · " + gettext(lang, table.title)])
        ws["A1"].font = Font(bold=True)
        ws.append(_param_line(report))
        ws.append([header(c, lang) for c in columns])
        for cell in ws[3]:
            cell.font = Font(bold=True)
        for row in table.rows:
            ws.append([_excel_value(row.get(c.key)) for c in columns])
        if table.total is not None:
            ws.append(
                [
                    gettext(lang, "Total") if i == 0 else _excel_value(table.total.get(c.key))
                    for i, c in enumerate(columns)
                ]
            )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _param_line(report: Report) -> list[str]:
    return [f"{k}={v}" for k, v in report.params.items() if v is not None]


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def to_json(report: Report, lang: str) -> dict[str, Any]:
    return {
        "report": report.name,
        "title": gettext(lang, report.title),
        "params": report.params,
        "tables": [
            {
                "key": t.key,
                "title": gettext(lang, t.title),
                "columns": [
                    {"key": c.key, "label": gettext(lang, c.label), "kind": c.kind, "lang": c.lang}
                    for c in t.columns
                ],
                "rows": [{k: _json_value(v) for k, v in row.items()} for row in t.rows],
                "total": None
                if t.total is None
                else {k: _json_value(v) for k, v in t.total.items()},
            }
            for t in report.tables
        ],
        "notes": [gettext(lang, msg).format(**params) for msg, params in report.notes],
        "extra": {k: _json_value(v) for k, v in report.extra.items()},
    }


def filename(report: Report, ext: str) -> str:
    p = report.params
    parts = [report.name, str(p.get("from")), str(p.get("to"))]
    if p.get("member"):
        parts.append(str(p["member"]))
    return "_".join(parts) + f".{ext}"
