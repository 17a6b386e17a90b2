"""GET /api/v1/search and ``consortia search`` on real records: results with holdings, facets,
filters, sorts, paging, help for an empty query, limits and diagnostics for bad queries, and no
500 whatever a reader types (property-based)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from consortia.accounts.roles import CLI
from consortia.catalog import service as catalog
from consortia.search import searchbox, segment, service
from consortia.search.index import _sort_key as sort_key
from tests.conftest import add_region_and_member

DATA = Path(__file__).parent.parent / "data"
LOC = DATA / "ingest" / "loc-60.mrc"
CHI = DATA / "search" / "lc-chi-40.mrc"


@pytest.fixture
def loaded(session: Session) -> None:
    add_region_and_member(session, "CN-A", region="south")
    add_region_and_member(session, "CN-B", region="north")
    session.commit()
    catalog.load_files(CLI, "CN-A", [LOC, CHI], workers=1)
    catalog.load_files(CLI, "CN-B", [LOC], workers=1)


def get(client: TestClient, **params: Any) -> Any:
    return client.get("/api/v1/search", params=params)


def test_search_returns_clusters_with_holdings_and_facets(
    client: TestClient, session: Session, loaded: None
) -> None:
    r = get(client, q="history", limit=5)
    assert r.status_code == 200, r.text
    body = r.json()
    want = service.search(session, searchbox.parse("history"), limit=5)
    assert body["total"] == want.total > 5
    assert [h["id"] for h in body["hits"]] == [h["id"] for h in want.hits]
    assert body["query"] == "any=history"
    first = body["hits"][0]
    assert first["title"] == "A new history of the United States"
    assert [h["member"] for h in first["holdings"]] == ["CN-A", "CN-B"]
    assert {h["region"] for h in first["holdings"]} == {"south", "north"}
    assert set(body["facets"]) == {
        "language_group",
        "language",
        "year",
        "material",
        "member",
        "region",
        "classification",
    }
    members = {e["value"]: e["count"] for e in body["facets"]["member"]}
    # CN-B loaded only the LC file, CN-A also the Chinese records.
    not_chinese = get(client, q="history -lang:chi").json()["total"]
    assert members == {"CN-A": body["total"], "CN-B": not_chinese} and not_chinese > 5
    assert body["facets_sampled"] is None


def test_chinese_pinyin_and_cql(client: TestClient, loaded: None) -> None:
    by_hanzi = get(client, q="明代政治").json()
    by_pinyin = get(client, q="ming dai zheng zhi").json()
    assert by_hanzi["total"] == by_pinyin["total"] >= 1
    assert by_hanzi["hits"][0]["title"].startswith("明代政治制度")
    body = get(client, cql="dc.title = history sortby dc.title", facets="none").json()
    titles = [h["title"] for h in body["hits"]]
    assert body["sort"] == ["title"] and body["facets"] == {}
    assert titles == sorted(titles, key=sort_key)
    assert titles[0].startswith("The genealogy")  # under g: the article does not count


def test_filters_sort_and_paging(client: TestClient, loaded: None) -> None:
    chi = get(client, q="lang:chi", limit=100, facets="none").json()
    filtered = get(client, q="*", facet="language:chi").json()
    assert filtered["total"] == chi["total"] >= 40
    both = get(client, facet=["language_group:chinese", "member:CN-B"]).json()
    assert both["total"] == 0  # CN-B loaded no Chinese records
    by_year = get(client, facet="language:chi", sort="-year", limit=100, facets="none").json()
    years = [h["year"] for h in by_year["hits"] if h["year"] is not None]
    assert years == sorted(years, reverse=True) and len(set(years)) > 3
    pages = []
    for offset in range(0, chi["total"], 9):
        page = get(client, q="lang:chi", offset=offset, limit=9, facets="none").json()
        assert page["total"] == chi["total"]
        pages += [h["id"] for h in page["hits"]]
    assert pages == [h["id"] for h in chi["hits"]]


def test_empty_query_answers_with_help_not_an_error(client: TestClient, loaded: None) -> None:
    for params in ({}, {"q": ""}, {"q": "   "}, {"q": '"" () -'}):
        r = client.get("/api/v1/search", params=params, headers={"Accept-Language": "en"})
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == 0 and body["hits"] == []
        assert any("quotes" in line for line in body["help"])
        assert body["limits"] == {"characters": 2000, "terms": 100}
    zh = client.get("/api/v1/search", headers={"Accept-Language": "zh-CN"}).json()
    assert any("拼音" in line for line in zh["help"])


def test_too_long_queries_are_400_naming_the_limit(client: TestClient, loaded: None) -> None:
    r = get(client, q="a" * 10_000)
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "query_too_long" and body["field"] == "q"
    assert body["limit"] == 2000 and "2000" in body["detail"] and "10000" in body["detail"]
    five_hundred = " ".join(["x"] * 500)  # 999 characters: within the character limit
    r = get(client, q=five_hundred)
    assert r.status_code == 400
    assert r.json()["limit"] == 100 and "500" in r.json()["detail"]
    r = get(client, cql=f'dc.title all "{five_hundred}"')
    assert r.status_code == 400 and r.json()["limit"] == 100
    assert r.json()["diagnostic"] == "info:srw/diagnostic/1/38"


def test_bad_cql_is_400_with_the_diagnostic_and_position(client: TestClient, loaded: None) -> None:
    r = get(client, cql="dc.title = (", **{"lang": "en"})
    assert r.status_code == 400
    body = r.json()
    assert body["diagnostic"] == "info:srw/diagnostic/1/10"
    assert body["position"] == 12 and "12" in body["detail"]
    r = get(client, cql="dc.colour = red", lang="zh-CN")
    assert r.status_code == 400
    assert r.json()["diagnostic"] == "info:srw/diagnostic/1/16"
    assert "dc.colour" in r.json()["detail"] and "不支持" in r.json()["detail"]


def test_bad_parameters_are_refused_naming_the_field(client: TestClient, loaded: None) -> None:
    cases = [
        ({"q": "x", "cql": "y"}, "q"),
        ({"q": "x", "facet": "colour:red"}, "facet"),
        ({"q": "x", "facet": "language"}, "facet"),
        ({"q": "x", "facets": "colour"}, "facets"),
        ({"q": "x", "sort": "colour"}, "sort"),
        ({"q": "x", "limit": "0"}, "limit"),
        ({"q": "x", "limit": "1000"}, "limit"),
        ({"q": "x", "offset": "-1"}, "offset"),
        ({"q": "x", "offset": "abc"}, "offset"),
    ]
    for params, field in cases:
        r = client.get("/api/v1/search", params=params)
        assert r.status_code in (400, 422), (params, r.text)
        body = r.json()
        named = body.get("field") or ",".join(p["field"] for p in body.get("problems", []))
        assert field in named, (params, body)


printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=300,
)
syntaxy = st.lists(
    st.sampled_from(
        [
            "(",
            ")",
            '"',
            "*",
            "-",
            "OR",
            "AND",
            "NOT",
            "title:",
            "year:",
            "isbn:",
            "lang:",
            "member:",
            "dc.title",
            "=",
            "==",
            "<",
            "/",
            "sortby",
            "prox",
            "within",
            "cql.allRecords",
            "\\",
            "中医",
            "zhong",
            "978-7-117",
            "1990-",
            " ",
            ">",
            "all",
            "any",
        ]
    ),
    max_size=25,
).map(" ".join)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.one_of(printable, syntaxy))
def test_nothing_a_reader_types_gives_a_500(client: TestClient, loaded: None, text: str) -> None:
    for params in ({"q": text}, {"cql": text}, {"q": text, "facet": f"year:{text[:8]}"}):
        r = client.get("/api/v1/search", params=params)
        assert r.status_code in (200, 400, 422), (params, r.text)
        json.loads(r.text)
    for version in ("1.2", "2.0"):
        r = client.get(
            "/sru",
            params={"version": version, "operation": "searchRetrieve", "query": text},
        )
        assert r.status_code == 200, (text, r.text)
        assert b"searchRetrieveResponse" in r.content
        r = client.get("/sru", params={"version": version, "scanClause": text, "operation": "scan"})
        assert r.status_code == 200 and b"scanResponse" in r.content


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> Any:
    from consortia.cli import app

    return CliRunner().invoke(app, list(args), env={"CONSORTIA_LANG": "en"})


def test_cli_search_table_and_json(loaded: None) -> None:
    out = run_cli("search", "sky", "pilot", "--limit", "3")
    assert out.exit_code == 0, out.output
    assert "1 found" in out.output and "The sky pilot" in out.output
    assert "CN-A" in out.output and "CN-B" in out.output
    out = run_cli("search", "--cql", "dc.title = history sortby dc.date/descending", "--json")
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert body["total"] == len(body["hits"]) == 5 and body["sort"] == ["-year"]
    years = [h["year"] for h in body["hits"]]
    assert years == sorted(years, reverse=True) and "facets" in body
    out = run_cli("search", "lang:chi", "--limit", "2", "--json", "--facet", "year:1990-1999")
    body = json.loads(out.output)
    assert all(1990 <= h["year"] <= 1999 for h in body["hits"])


def test_cli_errors_and_help(loaded: None) -> None:
    out = run_cli("search", "--cql", "dc.title = (")
    assert out.exit_code == 2 and "position 12" in out.output
    out = run_cli("search", "--cql", "dc.title = (", "--json")
    assert out.exit_code == 2 and json.loads(out.output)["error"] == "cql_error"
    out = run_cli("search")
    assert out.exit_code == 0 and "quotes" in out.output
    out = run_cli("search", "x" * 3000)
    assert out.exit_code == 2 and "2000" in out.output


def test_cli_reindex_rebuilds(loaded: None, session: Session) -> None:
    before = service.search(session, searchbox.parse("history"), limit=50, facets=[])
    out = run_cli("search", "reindex", "--json")
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert body["reindexed"] > 60
    session.commit()  # a new read transaction: the index as the CLI left it
    if session.get_bind().dialect.name == "sqlite":  # and its segment, current
        assert body["segment"]["documents"] == body["reindexed"]
        assert segment.current(session.connection()) is not None
    else:
        assert body["segment"] is None
    session.expire_all()
    after = service.search(session, searchbox.parse("history"), limit=50, facets=[])
    assert [h["id"] for h in after.hits] == [h["id"] for h in before.hits]
    out = run_cli("search", "segment")
    assert out.exit_code == 0, out.output
    assert ("is current" in out.output) == (session.get_bind().dialect.name == "sqlite")


def test_openapi_describes_the_query_parameters(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert list(params) == ["q", "cql", "facet", "facets", "sort", "offset", "limit"]
    assert params["facet"]["schema"]["type"] == "array"
    assert params["limit"]["schema"]["maximum"] == service.MAX_LIMIT


def test_out_of_range_numbers_name_the_range_in_both_languages(client: TestClient) -> None:
    en = client.get("/api/v1/search", params={"q": "x", "limit": "abc", "lang": "en"})
    assert en.status_code == 422 and en.json()["field"] == "limit"
    assert en.json()["detail"] == f"limit: between 1 and {service.MAX_LIMIT}"
    zh = client.get("/api/v1/search", params={"q": "x", "offset": "-5", "lang": "zh-CN"})
    assert zh.status_code == 422 and zh.json()["field"] == "offset"
    assert str(service.MAX_OFFSET) in zh.json()["detail"] and "offset:" not in zh.json()["detail"]
