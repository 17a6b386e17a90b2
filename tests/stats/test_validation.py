"""Bad input: 422 naming the parameter (404 for an unknown report), and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from consortia.accounts.roles import Role
from tests.conftest import login

WEEK = {"from": "2016-10-17", "to": "2016-10-23"}


@pytest.fixture
def office(client: TestClient, users: dict[Role, str]) -> TestClient:
    login(client, users[Role.consortium_admin])
    return client


def _get(client: TestClient, path: str, **params: Any) -> Any:
    return client.get(path, params=params, headers={"Accept-Language": "en"})


@pytest.mark.parametrize(
    ("report", "params", "field", "text"),
    [
        ("service", {"member": "CN-NOPE"}, "member", "no member has the code CN-NOPE"),
        ("service", {"region": "atlantis"}, "region", "no region has the code atlantis"),
        ("service", {"member_type": "museum"}, "member_type", "member_type: one of"),
        ("service", {"service": "fax"}, "service", "one of loan, copy"),
        ("service", {"language": "latin"}, "language", "one of chinese, foreign"),
        (
            "turnaround",
            {"from": "2016-10-23", "to": "2016-10-17"},
            "to",
            "to: 2016-10-17 is before from: 2016-10-23",
        ),
        ("lending", {"from": None}, "from", "from: give a date"),
        ("monthly", {"to": None}, "to", "to: give a date"),
        (
            "monthly",
            {"from": "1990-01-01", "to": "2016-10-23"},
            "to",
            "too long for a monthly series: 322 months, at most 240",
        ),
        (
            "yearly",
            {"from": "1900-01-01", "to": "2016-10-23"},
            "to",
            "too long for a yearly series: 117 years, at most 60",
        ),
        ("overlap", {"service": "loan"}, "service", "does not apply to the overlap report"),
        ("change", {"compare_from": "2015-10-17"}, "compare_to", "compare_to: give a date"),
        (
            "change",
            {"compare_from": "2015-10-23", "compare_to": "2015-10-17"},
            "compare_to",
            "is before compare_from",
        ),
        ("impact", {}, "intervention", "give the date of the change"),
        ("impact", {"intervention": "2017-01-01"}, "intervention", "is not inside the period"),
        (
            "impact",
            {"intervention": "2016-10-20"},
            "intervention",
            "0 whole months before and 0 after",
        ),
        ("impact", {"intervention": "2016-10-20", "series": "mood"}, "series", "series: one of"),
        ("service", {"format": "pdf"}, "format", "one of json, csv, xlsx"),
    ],
)
def test_bad_parameters_are_refused_naming_them(
    office: TestClient, report: str, params: dict[str, Any], field: str, text: str
) -> None:
    query = {**WEEK, **params}
    query = {k: v for k, v in query.items() if v is not None}
    r = _get(office, f"/api/v1/stats/{report}", **query)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field, body
    assert text in body["detail"], body


def test_a_date_that_is_no_date_names_the_parameter(office: TestClient) -> None:
    r = _get(office, "/api/v1/stats/service", **{"from": "2016-13-45", "to": "2016-10-23"})
    assert r.status_code == 422
    assert "from" in r.json()["detail"]


def test_unknown_report_is_404_and_messages_are_translated(office: TestClient) -> None:
    r = _get(office, "/api/v1/stats/horoscope", **WEEK)
    assert r.status_code == 404
    assert "Unknown report: horoscope" in r.json()["detail"]
    r = office.get(
        "/api/v1/stats/service",
        params={**WEEK, "member": "CN-NOPE"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert r.status_code == 422
    assert r.json()["detail"] == "member：没有代码为 CN-NOPE 的成员馆"


def test_readers_may_not_see_statistics(client: TestClient, users: dict[Role, str]) -> None:
    login(client, users[Role.reader])
    assert _get(client, "/api/v1/stats/service", **WEEK).status_code == 403
    assert client.get("/stats/service", headers={"Accept": "text/html"}).status_code == 403


def test_the_page_shows_a_bad_filter_beside_the_form(office: TestClient) -> None:
    for lang, text in (("en", "no member has the code CN-NOPE"), ("zh-CN", "没有代码为 CN-NOPE")):
        r = office.get(
            "/stats/service",
            params={**WEEK, "member": "CN-NOPE", "lang": lang},
            headers={"Accept": "text/html"},
        )
        assert r.status_code == 422
        assert text in r.text
        assert 'aria-invalid="true"' in r.text


def test_an_empty_consortium_has_no_fill_rate_not_zero(office: TestClient) -> None:
    r = _get(office, "/api/v1/stats/service", **WEEK, member="CN-TEST")
    assert r.status_code == 200
    rows = r.json()["tables"][0]["rows"]
    assert len(rows) == 1
    assert rows[0]["code"] == "CN-TEST"
    assert rows[0]["chinese_requests"] == 0
    assert rows[0]["fill_rate_percent"] is None
    csv_text = _get(office, "/api/v1/stats/service", **WEEK, member="CN-TEST", format="csv").text
    assert csv_text.splitlines()[1].endswith(",0,0,0,0,")
    r = _get(office, "/api/v1/stats/monthly", **WEEK)
    assert r.json()["tables"][0]["rows"][0]["fill_rate_percent"] is None
    r = _get(
        office, "/api/v1/stats/change", **WEEK, compare_from="2015-10-17", compare_to="2015-10-23"
    )
    fill = r.json()["tables"][0]["rows"][-1]
    assert fill["measure"] == "fill_rate_percent"
    assert fill["period"] is None and fill["change"] is None and fill["change_percent"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "", "to": "2016-10-23"}, "from"),  # an empty period: no first day
        ({"from": "2016-10-17", "to": ""}, "to"),
        ({"from": "2016-10-24", "to": "2016-10-23"}, "to"),  # ends the day before it starts
    ],
)
def test_an_empty_or_inverted_period_names_the_parameter(
    office: TestClient, params: dict[str, str], field: str
) -> None:
    for report in ("service", "monthly", "overlap"):
        r = _get(office, f"/api/v1/stats/{report}", **params)
        assert r.status_code == 422, r.text
        body = r.json()
        # Ours name it in "field"; a value that is no date at all is the framework's "problems".
        named = body.get("field") or body["problems"][0]["field"]
        assert named == field, body
        assert field in body["detail"]


def test_one_day_is_a_period(office: TestClient) -> None:
    r = _get(office, "/api/v1/stats/service", **{"from": "2016-10-17", "to": "2016-10-17"})
    assert r.status_code == 200


def test_a_period_too_long_for_the_before_and_after_series(office: TestClient) -> None:
    r = _get(
        office,
        "/api/v1/stats/impact",
        **{"from": "1990-01-01", "to": "2016-10-23", "intervention": "2000-01-01"},
    )
    assert r.status_code == 422
    assert r.json()["field"] == "to"
    assert "322 months, at most 240" in r.json()["detail"]


def test_refused_reports_change_nothing(office: TestClient, session: Any) -> None:
    from consortia.stats import rollup

    # A good report first: it brings the roll-ups up to date with the log.
    assert _get(office, "/api/v1/stats/service", **WEEK).status_code == 200
    session.expire_all()
    before = rollup.state(session)
    for params in ({"member": "CN-NOPE"}, {"from": "2016-10-24"}):
        assert _get(office, "/api/v1/stats/service", **{**WEEK, **params}).status_code == 422
    session.expire_all()
    after = rollup.state(session)
    assert (after.last_event_id, after.events_applied) == (
        before.last_event_id,
        before.events_applied,
    )
