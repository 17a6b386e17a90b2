"""Charts are valid SVG with their series; CSV and XLSX exports read back with the same numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from lxml import etree
from openpyxl import load_workbook

from consortia.stats import charts, export
from consortia.stats.service import Column, Report, Table

SVG = "{http://www.w3.org/2000/svg}"


def _report(kind: str = "lines") -> Report:
    rows = [
        {
            "code": "CN-A",
            "library_zh": "甲馆",
            "library_en": "Library A",
            "requests": 10,
            "transfers": 9,
            "fill_rate_percent": Decimal("90.0"),
        },
        {
            "code": "CN-B",
            "library_zh": "乙馆",
            "library_en": "Library B",
            "requests": 0,
            "transfers": 0,
            "fill_rate_percent": None,
        },
    ]
    columns = [
        Column("code", "Code", "text"),
        Column("library_zh", "Library", "text", lang="zh-CN"),
        Column("library_en", "Library", "text", lang="en"),
        Column("requests", "Requests"),
        Column("transfers", "Transfers"),
        Column("fill_rate_percent", "Fill rate %", "percent"),
    ]
    r = Report(
        "service",
        "Service table",
        {"from": "2016-10-17", "to": "2016-10-23", "member": None},
        [
            Table(
                "service",
                "Requests and transfers by requesting library",
                columns,
                rows,
                {"requests": 10, "transfers": 9, "fill_rate_percent": Decimal("90.0")},
            )
        ],
    )
    r.chart = {
        "kind": kind,
        "categories": ["CN-A", "CN-B"],
        "series": [("requests", "Requests", [10, 0]), ("transfers", "Transfers", [9, 0])],
    }
    r.extra["as_of"] = kind
    return r


def _ids(svg: bytes) -> set[str]:
    root = etree.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return {el.get("id") for el in root.iter() if el.get("id")}


def _texts(svg: bytes) -> str:
    root = etree.fromstring(svg)
    return " ".join("".join(el.itertext()) for el in root.iter(f"{SVG}text"))


def test_line_chart_is_svg_with_a_line_per_series_and_translated_text() -> None:
    zh = charts.render(_report("lines"), "zh-CN")
    en = charts.render(_report("lines"), "en")
    for svg in (zh, en):
        ids = _ids(svg)
        assert {"series-requests", "series-transfers"} <= ids
    assert "服务统计表" in _texts(zh) and "请求" in _texts(zh)
    assert "Service table" in _texts(en) and "Requests" in _texts(en)
    # Cached: the same report, language and data give the very same bytes.
    assert charts.render(_report("lines"), "zh-CN") is zh


def test_bar_chart_has_one_bar_per_category_and_series() -> None:
    ids = _ids(charts.render(_report("bars"), "en"))
    assert {
        "series-requests-0",
        "series-requests-1",
        "series-transfers-0",
        "series-transfers-1",
    } <= ids


def test_heatmap_and_diverging_and_impact_render() -> None:
    r = _report("heatmap")
    r.chart = {
        "kind": "heatmap",
        "rows": ["CN-A", "CN-B"],
        "columns": ["CN-A", "CN-B"],
        "values": [[5, 2], [2, 7]],
    }
    svg = charts.render(r, "zh-CN")
    assert "series-overlap" in _ids(svg)
    assert "两馆共同收藏的题名" in _texts(svg)
    d = _report("diverging")
    d.chart["series"] = [("lent", "Lent", [4, 1]), ("borrowed", "Borrowed", [-1, -4])]
    assert "series-borrowed-1" in _ids(charts.render(d, "en"))
    i = _report("impact")
    i.chart = {
        "kind": "impact",
        "categories": ["2016-01", "2016-02", "2016-03", "2016-04"],
        "series": [
            ("value", "Requests", [1.0, 2.0, 5.0, 6.0]),
            ("fitted", "Fitted", [1.0, 2.0, 5.0, 6.0]),
            ("without_change", "Without the change", [None, None, 3.0, 4.0]),
        ],
        "marker": 2,
    }
    ids = _ids(charts.render(i, "en"))
    assert {
        "series-value",
        "series-fitted-before",
        "series-fitted-after",
        "series-without_change",
        "intervention",
    } <= ids


def test_csv_has_the_column_keys_and_empty_for_no_fill_rate() -> None:
    text = export.to_csv(_report())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "code",
        "library_zh",
        "library_en",
        "requests",
        "transfers",
        "fill_rate_percent",
    ]
    assert rows[0]["fill_rate_percent"] == "90.0"
    assert rows[1]["fill_rate_percent"] == ""  # no requests: no fill rate, not 0 %
    assert len(rows) == 2  # no total row in CSV


def test_xlsx_reads_back_with_the_same_numbers_and_translated_headers() -> None:
    data = export.to_xlsx(_report(), "zh-CN")
    ws = load_workbook(io.BytesIO(data)).active
    assert ws is not None
    values = [list(r) for r in ws.iter_rows(values_only=True)]
    assert values[2] == ["代码", "图书馆", "请求", "传递", "满足率 %"]
    assert values[3] == ["CN-A", "甲馆", 10, 9, 90.0]
    assert values[4] == ["CN-B", "乙馆", 0, 0, None]
    assert values[5] == ["合计", None, 10, 9, 90.0]
    en = load_workbook(io.BytesIO(export.to_xlsx(_report(), "en"))).active
    assert en is not None
    assert [c.value for c in en[3]] == ["Code", "Library", "Requests", "Transfers", "Fill rate %"]
    assert en["B4"].value == "Library A"
