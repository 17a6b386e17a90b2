"""The dashboard: every report's page in both languages with its chart and exports; who may
see it (the consortium office and the member libraries' staff and admins, not readers)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from consortia.accounts.roles import Role
from consortia.stats import service as stats
from tests.conftest import login
from tests.stats.test_reports import BOOKS, make_history
from tests.stats.world import build

WEEK = {"from": "2016-10-17", "to": "2016-10-23"}
HTML = {"Accept": "text/html"}


@pytest.fixture
def history(session: Session, tmp_path: Path, users: dict[Role, str]) -> dict[Role, str]:
    world = build(session, tmp_path, BOOKS)
    make_history(session, world)
    return users


def test_every_report_page_renders_in_both_languages_with_its_chart(
    client: TestClient, history: dict[Role, str]
) -> None:
    login(client, history[Role.consortium_admin])
    for lang, title, word in (
        ("zh-CN", "服务统计", "满足率"),
        ("en", "Service statistics", "Fill rate"),
    ):
        r = client.get("/stats", params={"lang": lang}, headers=HTML)
        assert r.status_code == 200 and title in r.text
        assert "2015-10-19" in r.text  # the first day with requests
        for name in stats.REPORTS:
            r = client.get(f"/stats/{name}", params={"lang": lang}, headers=HTML)
            assert r.status_code == 200, (name, lang, r.text[-500:])
            assert f'src="/api/v1/stats/{name}/chart.svg?' in r.text, name
            assert "format=xlsx" in r.text and "format=csv" in r.text
        r = client.get("/stats/service", params={**WEEK, "lang": lang}, headers=HTML)
        assert word in r.text and "66.7" in r.text
        assert (
            "广州中医药大学" if lang == "zh-CN" else "Guangzhou University of Chinese Medicine"
        ) in r.text


def test_charts_are_svg_with_the_report_in_them(
    client: TestClient, history: dict[Role, str]
) -> None:
    login(client, history[Role.library_staff])
    for name, extra in (
        ("service", {}),
        ("monthly", {"from": "2016-01-01", "to": "2016-12-31"}),
        ("yearly", {"from": "2015-01-01", "to": "2016-12-31"}),
        ("turnaround", {}),
        ("lending", {}),
        ("change", {"compare_from": "2015-10-17", "compare_to": "2015-10-23"}),
        ("overlap", {"to": "2099-12-31"}),
    ):
        r = client.get(f"/api/v1/stats/{name}/chart.svg", params={**WEEK, **extra, "lang": "en"})
        assert r.status_code == 200, (name, r.text[:300])
        assert r.headers["content-type"].startswith("image/svg+xml")
        root = etree.fromstring(r.content)
        ids = {el.get("id") for el in root.iter() if el.get("id")}
        assert any(i.startswith("series-") for i in ids), name


def test_exports_read_back_with_the_numbers_of_the_report(
    client: TestClient, history: dict[Role, str]
) -> None:
    login(client, history[Role.library_admin])
    data = client.get("/api/v1/stats/service", params=WEEK).json()
    rows = data["tables"][0]["rows"]
    text = client.get("/api/v1/stats/service", params={**WEEK, "format": "csv"})
    assert text.headers["content-disposition"].endswith('service_2016-10-17_2016-10-23.csv"')
    parsed = list(csv.DictReader(io.StringIO(text.text)))
    assert [
        (p["library_en"], int(p["chinese_requests"]), p["fill_rate_percent"]) for p in parsed
    ] == [(r["library_en"], r["chinese_requests"], f"{r['fill_rate_percent']:.1f}") for r in rows]
    xlsx = client.get("/api/v1/stats/service", params={**WEEK, "format": "xlsx", "lang": "en"})
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    ws = load_workbook(io.BytesIO(xlsx.content))["service"]
    body = [list(r) for r in ws.iter_rows(min_row=4, values_only=True)]
    assert body[0] == [1, "Guangzhou University of Chinese Medicine", 4, 3, 2, 1, 66.7]
    assert body[1] == [2, "Shenzhen Library", 2, 2, 0, 0, 100.0]
    assert body[2][0] == "Total" and body[2][-1] == 75.0
    # Every table of a report is a sheet; CSV takes one by name.
    lending = load_workbook(
        io.BytesIO(client.get("/api/v1/stats/lending", params={**WEEK, "format": "xlsx"}).content)
    )
    assert lending.sheetnames == ["members", "regions"]
    regions = client.get(
        "/api/v1/stats/lending", params={**WEEK, "format": "csv", "table": "regions"}
    ).text
    assert regions.splitlines()[0].startswith("region,region_zh,region_en,lent,borrowed")
    assert (
        client.get(
            "/api/v1/stats/lending", params={**WEEK, "format": "csv", "table": "nope"}
        ).status_code
        == 422
    )


def test_who_may_see_the_dashboard(client: TestClient, history: dict[Role, str]) -> None:
    r = client.get("/stats/service", headers=HTML)
    assert r.status_code == 401  # the sign-in page
    for role in (Role.consortium_admin, Role.library_admin, Role.library_staff):
        client.cookies.clear()
        login(client, history[role])
        assert client.get("/stats/lending", params=WEEK, headers=HTML).status_code == 200
    client.cookies.clear()
    login(client, history[Role.reader])
    assert client.get("/stats", headers=HTML).status_code == 403
    assert client.get("/api/v1/stats/service", params=WEEK).status_code == 403
