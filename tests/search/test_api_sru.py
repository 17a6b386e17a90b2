"""The SRU server (/sru) in process: SRU 1.2 and 2.0 explain, searchRetrieve and scan, SOAP as
yaz-client sends it, both record schemas and packings, sortKeys, and every diagnostic the
issue names (bad CQL with its position, unsupported index, relation, schema, ...).
The same server under uvicorn, driven by yaz-client, is tests/interop/test_sru_yaz.py."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pymarc
import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.catalog import service as catalog
from consortia.search import cql, service
from tests.conftest import add_region_and_member

DATA = Path(__file__).parent.parent / "data"
LOC = DATA / "ingest" / "loc-60.mrc"
CHI = DATA / "search" / "lc-chi-40.mrc"
NS1 = {
    "zs": "http://www.loc.gov/zing/srw/",
    "diag": "http://www.loc.gov/zing/srw/diagnostic/",
    "marc": "http://www.loc.gov/MARC21/slim",
    "dc": "http://purl.org/dc/elements/1.1/",
    "zr": "http://explain.z3950.org/dtd/2.0/",
}
NS2 = {
    "sru": "http://docs.oasis-open.org/ns/search-ws/sruResponse",
    "diag": "http://docs.oasis-open.org/ns/search-ws/diagnostic",
    "scan": "http://docs.oasis-open.org/ns/search-ws/scan",
    "marc": "http://www.loc.gov/MARC21/slim",
    "zr": "http://explain.z3950.org/dtd/2.0/",
}


@pytest.fixture
def loaded(session: Session) -> None:
    add_region_and_member(session, "CN-A", region="south")
    session.commit()
    catalog.load_files(CLI, "CN-A", [LOC, CHI], workers=1)


def sources() -> dict[str, pymarc.Record]:
    out = {}
    for path in (LOC, CHI):
        with path.open("rb") as fh:
            for r in pymarc.MARCReader(fh, to_unicode=True):
                out[r["001"].value()] = r
    return out


def sru(client: TestClient, **params: Any) -> etree._Element:
    r = client.get("/sru", params=params)
    assert r.status_code == 200, r.text
    return etree.fromstring(r.content)


def diag(root: etree._Element, ns: dict[str, str] = NS1) -> tuple[int, str, str]:
    d = root.find(".//diag:diagnostic", ns)
    assert d is not None, etree.tostring(root)
    uri = d.findtext("diag:uri", namespaces=ns) or ""
    return (
        int(uri.rsplit("/", 1)[1]),
        d.findtext("diag:details", default="", namespaces=ns),
        d.findtext("diag:message", default="", namespaces=ns),
    )


def marc_of(element: etree._Element) -> pymarc.Record:
    records = pymarc.parse_xml_to_array(io.BytesIO(etree.tostring(element)))
    assert len(records) == 1
    return records[0]


def test_search_retrieve_12_gives_the_source_records(client: TestClient, loaded: None) -> None:
    root = sru(
        client,
        version="1.2",
        operation="searchRetrieve",
        query="dc.title = history",
        maximumRecords="3",
    )
    total = int(root.findtext("zs:numberOfRecords", "", NS1))
    assert root.findtext("zs:version", namespaces=NS1) == "1.2"
    assert total == 5
    recs = root.findall("zs:records/zs:record", NS1)
    assert [r.findtext("zs:recordPosition", namespaces=NS1) for r in recs] == ["1", "2", "3"]
    assert root.findtext("zs:nextRecordPosition", namespaces=NS1) == "4"
    src = sources()
    for rec in recs:
        assert rec.findtext("zs:recordSchema", namespaces=NS1) == "info:srw/schema/1/marcxml-v1.1"
        assert rec.findtext("zs:recordPacking", namespaces=NS1) == "xml"
        got = marc_of(rec.find("zs:recordData/marc:record", NS1))
        want = src[got["001"].value()]
        assert got.as_dict() == want.as_dict()
        assert "history" in got.title.lower()
    # The rest of the result set, then past its end.
    root = sru(
        client,
        version="1.2",
        operation="searchRetrieve",
        query="dc.title = history",
        startRecord="4",
        maximumRecords="10",
    )
    recs = root.findall("zs:records/zs:record", NS1)
    assert [r.findtext("zs:recordPosition", namespaces=NS1) for r in recs] == ["4", "5"]
    assert root.find("zs:nextRecordPosition", NS1) is None
    root = sru(
        client,
        version="1.2",
        operation="searchRetrieve",
        query="dc.title = history",
        startRecord="6",
    )
    assert diag(root)[:2] == (61, "6")
    # maximumRecords=0: the count only (what yaz-client's find sends).
    root = sru(client, version="1.2", operation="searchRetrieve", query="明代", maximumRecords="0")
    assert int(root.findtext("zs:numberOfRecords", "", NS1)) >= 1
    assert root.find("zs:records", NS1) is None


def test_string_packing_dublin_core_and_sort_keys(client: TestClient, loaded: None) -> None:
    root = sru(
        client,
        version="1.2",
        operation="searchRetrieve",
        query="dc.title = history",
        recordPacking="string",
        maximumRecords="1",
    )
    data = root.findtext("zs:records/zs:record/zs:recordData", namespaces=NS1) or ""
    assert data.startswith("<record") and "marc:record" not in data
    rec = marc_of(etree.fromstring(data.encode()))
    assert "history" in rec.title.lower()
    root = sru(
        client,
        version="1.2",
        operation="searchRetrieve",
        query='dc.title = "ming dai"',
        recordSchema="dc",
    )
    dc = root.find("zs:records/zs:record/zs:recordData/*", NS1)
    assert dc is not None and etree.QName(dc).localname == "dc"
    titles = [t.text for t in dc.findall("dc:title", NS1)]
    assert titles[0].startswith("明代政治制度") and "Ming dai" in titles[1]
    assert dc.findtext("dc:language", namespaces=NS1) == "chi"
    for keys, reverse in (("dc.date,,0", True), ("dc.date,,1", False), ("dc.date", False)):
        root = sru(
            client,
            version="1.2",
            operation="searchRetrieve",
            query="dc.language = chi",
            recordSchema="dc",
            sortKeys=keys,
            maximumRecords="50",
        )
        years = [
            int(d.text or 0)
            for d in root.findall("zs:records/zs:record/zs:recordData/*/dc:date", NS1)
        ]
        assert len(years) > 20 and years == sorted(years, reverse=reverse), keys


def test_sru_20_records_and_cql_sortby(client: TestClient, loaded: None) -> None:
    root = sru(client, query="dc.title = history sortby dc.title/descending", maximumRecords="5")
    assert etree.QName(root).namespace == NS2["sru"]
    assert root.findtext("sru:version", namespaces=NS2) == "2.0"
    assert root.findtext("sru:numberOfRecords", namespaces=NS2) == "5"
    recs = root.findall("sru:records/sru:record", NS2)
    assert recs[0].findtext("sru:recordXMLEscaping", namespaces=NS2) == "xml"
    titles = [marc_of(r.find("sru:recordData/marc:record", NS2)).title for r in recs]
    folded = [cql_free(t) for t in titles]
    assert folded == sorted(folded, reverse=True)
    root = sru(client, version="2.0", query="dc.title = history", recordXMLEscaping="string")
    text = root.findtext("sru:records/sru:record/sru:recordData", namespaces=NS2) or ""
    assert text.startswith("<record")
    r = client.get("/sru", params={"query": "dc.title = history"})
    assert r.headers["content-type"].startswith("application/sru+xml")


def cql_free(title: str) -> str:
    from consortia.search.index import _sort_key

    return _sort_key(title)


def test_soap_request_as_yaz_client_sends_it(client: TestClient, loaded: None) -> None:
    body = (
        '<?xml version="1.0"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/'
        'soap/envelope/"><SOAP-ENV:Body><zs:searchRetrieveRequest xmlns:zs="http://www.loc.gov/'
        'zing/srw/"><zs:version>1.2</zs:version><zs:query>dc.title = history</zs:query>'
        "<zs:startRecord>2</zs:startRecord><zs:maximumRecords>1</zs:maximumRecords>"
        "</zs:searchRetrieveRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
    r = client.post("/sru", content=body, headers={"Content-Type": "text/xml"})
    assert r.status_code == 200
    env = etree.fromstring(r.content)
    resp = env.find(
        "{http://schemas.xmlsoap.org/soap/envelope/}Body/zs:searchRetrieveResponse", NS1
    )
    assert resp is not None
    assert resp.findtext("zs:numberOfRecords", namespaces=NS1) == "5"
    assert resp.findtext("zs:records/zs:record/zs:recordPosition", namespaces=NS1) == "2"
    # Form POST works too; a SOAP body that is not XML is a diagnostic, not an error page.
    r = client.post(
        "/sru",
        data={"version": "1.2", "operation": "searchRetrieve", "query": "dc.title=history"},
    )
    assert etree.fromstring(r.content).findtext("zs:numberOfRecords", namespaces=NS1) == "5"
    r = client.post("/sru", content=b"<not xml", headers={"Content-Type": "text/xml"})
    assert r.status_code == 200 and b"info:srw/diagnostic/1/10" in r.content


def test_explain_12_and_20(client: TestClient, loaded: None) -> None:
    for params, ns, prefix in (
        ({"version": "1.2", "operation": "explain"}, NS1, "zs"),
        ({}, NS2, "sru"),
    ):
        root = sru(client, **params)
        assert etree.QName(root).localname == "explainResponse"
        z = root.find(f"{prefix}:record/{prefix}:recordData/zr:explain", ns)
        assert z is not None
        assert z.findtext("zr:serverInfo/zr:database", namespaces=ns) == "sru"
        names = {
            (n.get("set"), n.text) for n in z.findall("zr:indexInfo/zr:index/zr:map/zr:name", ns)
        }
        assert {
            ("dc", "title"),
            ("dc", "creator"),
            ("bath", "isbn"),
            ("cql", "serverChoice"),
        } <= names
        # Every index the explain record announces is one the CQL parser accepts.
        for set_name, index in names:
            full = f"{set_name}.{index}" if set_name else index
            term = "1" if index == "allRecords" else "1990" if index in ("date", "year") else "x"
            cql.parse(f"{full} = {term}")
        schemas = {s.get("name") for s in z.findall("zr:schemaInfo/zr:schema", ns)}
        assert schemas == {"marcxml", "dc"}


def test_scan_lists_terms_with_counts(client: TestClient, loaded: None, session: Session) -> None:
    root = sru(
        client, version="1.2", operation="scan", scanClause="dc.title = hist", maximumTerms="5"
    )
    terms = [
        (t.findtext("zs:value", namespaces=NS1), int(t.findtext("zs:numberOfRecords", "0", NS1)))
        for t in root.findall("zs:terms/zs:term", NS1)
    ]
    assert len(terms) == 5 and terms[0][0] == "history"
    assert terms[0][1] == service.search(session, cql.parse("dc.title = history").tree).total
    root = sru(
        client,
        version="1.2",
        operation="scan",
        scanClause="dc.title = history",
        responsePosition="3",
        maximumTerms="5",
    )
    values = [t.text for t in root.findall("zs:terms/zs:term/zs:value", NS1)]
    assert values[2] == "history" and values == sorted(values)
    root = sru(client, operation="scan", version="2.0", scanClause="dc.creator = morris")
    assert etree.QName(root).namespace == NS2["scan"]
    assert root.findtext("scan:terms/scan:term/scan:value", namespaces=NS2) == "morris"
    assert diag(sru(client, version="1.2", operation="scan", scanClause="dc.date = 1899"))[:2] == (
        16,
        "dc.date",
    )
    bad = sru(
        client,
        version="1.2",
        operation="scan",
        scanClause="dc.title = a",
        responsePosition="30",
        maximumTerms="5",
    )
    assert diag(bad)[0] == 120
    assert diag(sru(client, version="1.2", operation="scan"))[:2] == (7, "scanClause")


@pytest.mark.parametrize(
    ("params", "number", "details"),
    [
        ({"query": "dc.title = ("}, 10, "12"),
        ({"query": 'dc.title = "unclosed'}, 10, "12"),
        ({"query": "dc.title = history and"}, 10, "23"),
        ({"query": "dc.colour = red"}, 16, "dc.colour"),
        ({"query": "dc.title foo red"}, 19, "foo"),
        ({"query": "dc.title any/stem red"}, 20, "stem"),
        ({"query": "dc.title = red", "recordSchema": "mods"}, 66, "mods"),
        ({"query": "dc.title = red", "recordPacking": "zip"}, 71, "zip"),
        ({"query": "dc.title = red", "startRecord": "0"}, 6, "startRecord"),
        ({"query": "dc.title = red", "startRecord": "100002"}, 6, "startRecord"),
        ({"query": "dc.title = red", "maximumRecords": "many"}, 6, "maximumRecords"),
        ({"query": "dc.title = red", "colour": "blue"}, 8, "colour"),
        ({"query": "dc.title = red", "sortKeys": "dc.colour,,1"}, 88, "dc.colour"),
        ({"query": "dc.title = red", "sortKeys": "dc.title,,up"}, 90, "up"),
        ({"query": "dc.title = red", "recordXPath": "/a"}, 72, ""),
        ({"query": "dc.title = red", "stylesheet": "x.xsl"}, 110, "x.xsl"),
        ({}, 7, "query"),
        ({"query": "x" * 3000}, 12, "2000"),
    ],
)
def test_diagnostics_12(
    client: TestClient, loaded: None, params: dict[str, str], number: int, details: str
) -> None:
    root = sru(client, version="1.2", operation="searchRetrieve", **params)
    assert etree.QName(root).localname == "searchRetrieveResponse"
    assert root.findtext("zs:numberOfRecords", namespaces=NS1) == "0"
    got = diag(root)
    assert got[:2] == (number, details)
    assert got[2]  # a message for people


def test_diagnostics_20_and_versions(client: TestClient, loaded: None) -> None:
    root = sru(client, query="dc.title = (", version="2.0")
    assert diag(root, NS2)[:2] == (10, "12")
    assert "position 12" in diag(root, NS2)[2]
    assert diag(sru(client, query="x", queryType="rpn"), NS2)[:2] == (6, "queryType")
    assert diag(sru(client, query="x", httpAccept="text/html"), NS2)[:2] == (6, "httpAccept")
    assert diag(sru(client, query="x", recordXMLEscaping="zip"), NS2)[:2] == (71, "zip")
    assert diag(sru(client, query="x", sortKeys="dc.title"), NS2)[:2] == (8, "sortKeys")
    root = sru(client, query="dc.title = history", version="3.0")
    assert diag(root, NS2)[:2] == (5, "2.0")
    root = sru(client, version="1.2", operation="delete")
    assert diag(root)[:2] == (4, "delete")
    zh = client.get(
        "/sru",
        params={"version": "1.2", "operation": "searchRetrieve", "query": "dc.colour = x"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert "不支持的检索点" in zh.text or "不支持" in zh.text
