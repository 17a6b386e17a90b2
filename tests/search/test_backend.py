"""The search backends against the reference matcher, on real records loaded through ingest.

The same tests run on SQLite FTS5 and on PostgreSQL (CONSORTIA_TEST_DATABASE_URL): both must
find exactly what ``tests/search/matcher.py`` finds by the documented matching rules, order by
the same rules (exact ISBN first, title > subject, sort keys), count the same facets, and follow
every change the ingest writer makes.

Records: LC Books All (tests/data/ingest/loc-60.mrc) for two members in two regions, 40 LC
records in Chinese with their 880 vernacular fields (tests/data/search/lc-chi-40.mrc, from
tests/data/dedup), CNMARC records (tests/data/unimarc) and a record with an 880 title.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pymarc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.catalog import service as catalog
from consortia.catalog.models import Cluster
from consortia.db import get_engine
from consortia.members.models import Member, Region
from consortia.search import cjk, cql, searchbox, service
from consortia.search import index as search_index
from consortia.search.backends import SortKey, backend_for
from consortia.search.query import Node
from tests.conftest import add_region_and_member
from tests.search import matcher
from tests.search.matcher import Rec

DATA = Path(__file__).parent.parent / "data"
LOC = DATA / "ingest" / "loc-60.mrc"
CHI = DATA / "search" / "lc-chi-40.mrc"
CNMARC = DATA / "unimarc" / "cnmarc-utf8.mrc"
ALT880 = (
    DATA / "marc" / "openlibrary_openlibrary__catalog__marc__tests__test_data__bin_input__"
    "880_alternate_script.mrc"
)


class IndexedRec(Rec):
    """The matcher's record plus what the index puts only in the any-field (place, edition,
    series), and whether it has pinyin tokens: the index makes them only for records in
    Chinese or with Han characters in the title or a name (on English text they are noise)."""

    rest: list[str]
    pinyin: bool

    def texts(self, name: str) -> list[str]:
        values = super().texts(name)
        return values + self.rest if name == "any" else values


class _Tokens:
    """cjk as the matcher sees it for one record: pinyin tokens or not, as the index has."""

    def __init__(self, pinyin: bool) -> None:
        self.pinyin = pinyin

    def __getattr__(self, name: str) -> Any:
        return getattr(cjk, name)

    def index_tokens(self, text: str, *, pinyin: bool = True) -> list[str]:
        return cjk.index_tokens(text, pinyin=pinyin and self.pinyin)


def found(node: Node, records: dict[str, IndexedRec]) -> set[str]:
    """The reference matcher's answer, record by record with that record's token rule."""
    out = set()
    saved = matcher.cjk
    try:
        for name, rec in records.items():
            matcher.cjk = _Tokens(rec.pinyin)  # type: ignore[assignment]
            if matcher.matches(node, rec):
                out.add(name)
    finally:
        matcher.cjk = saved
    return out


def _v(merged: dict[str, Any], name: str) -> str:
    entry = merged.get(name)
    value = entry.get("value") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else ""


def rec_of(merged: dict[str, Any]) -> IndexedRec:
    """What the index documents say a cluster holds, field by field."""
    rec = IndexedRec(
        title=[
            t
            for t in (
                _v(merged, "title"),
                _v(merged, "remainder"),
                _v(merged, "part"),
                _v(merged, "title_romanised"),
            )
            if t
        ],
        author=[
            t for n in merged.get("names", []) for t in (n["name"], n.get("vernacular", "")) if t
        ]
        + [t for t in [_v(merged, "responsibility")] if t],
        subject=[s["value"] for s in merged.get("subjects", [])],
        publisher=[t for t in [_v(merged, "publisher")] if t],
        isbn=[i["isbn13"] for i in merged.get("isbns", [])],
        issn=[i["value"] for i in merged.get("issns", [])],
        language=[lang["value"] for lang in merged.get("languages", [])],
        classification=[c["value"] for c in merged.get("classifications", [])],
        member=list(merged.get("members", [])),
        years=[merged["year"]["value"]] if "year" in merged else [],
    )
    rec.rest = [t for t in (_v(merged, "place"), _v(merged, "edition"), _v(merged, "series")) if t]
    han = re.compile("[\u3400-\u9fff]")
    rec.pinyin = (
        "chi" in rec.language
        or bool(han.search(_v(merged, "title")))
        or any(han.search(n.get("vernacular", "")) for n in merged.get("names", []))
    )
    return rec


@pytest.fixture
def catalogue(session: Session) -> dict[str, IndexedRec]:
    add_region_and_member(session, "CN-A", region="south")
    add_region_and_member(session, "CN-B", region="north")
    session.commit()
    catalog.load_files(CLI, "CN-A", [LOC, CHI], workers=1)
    catalog.load_files(CLI, "CN-B", [LOC, CNMARC, ALT880], workers=1)
    return records(session)


def records(session: Session) -> dict[str, IndexedRec]:
    session.expire_all()
    return {str(cid): rec_of(m) for cid, m in session.execute(select(Cluster.id, Cluster.merged))}


def all_ids(session: Session, tree: Node, **kw: Any) -> tuple[int, list[int]]:
    out: list[int] = []
    offset = 0
    total = 0
    while True:
        r = service.search(session, tree, offset=offset, limit=100, facets=[], **kw)
        total = r.total
        out += [h["id"] for h in r.hits]
        offset += 100
        if offset >= total:
            return total, out


SEARCHBOX_QUERIES = [
    "history",
    "History of the United States",
    '"united states"',
    '"history united"',
    "title:history",
    "author:morris",
    "subject:fiction",
    "publisher:macmillan",
    "poems -songs",
    "poem*",
    "title:lesson* author:dewey",
    "history OR poems",
    "year:1900",
    "year:1890-1899 title:history",
    "isbn:0836932722",
    "lang:chi",
    "language:eng title:civil",
    "member:CN-B",
    "class:PS*",
    "明代",
    "明代政治制度",
    "明代政治",
    "明",
    "全球变迁",  # simplified: the records are in traditional characters
    "quan qiu",
    "quanqiu bianqian",
    "ming dai zheng zhi",
    "Ming dai zheng zhi zhi du",
    "张治安",
    "作者:张治安",
    "《明代政治制度》",
    "-history -poems",
    "9787508617725",
    "乔布斯",
    "qiao bu si",
    "boston",
    '-"united america"',  # "america" reads as pinyin (a me ri ca): English records have none
    "america",
]
CQL_QUERIES = [
    "dc.title = history",
    'dc.title = "united states"',
    'dc.title all "history states"',
    'dc.title any "history poems"',
    "dc.creator = morris and dc.date = 1899",
    "dc.subject = fiction not dc.title = golden",
    'dc.date within "1895 1899"',
    "dc.date > 1899",
    "dc.date <= 1899 and dc.title = civil",
    "dc.language = chi",
    "bath.isbn = 0836932722",
    "dc.title = hist*",
    "cql.allRecords = 1 not dc.title = history",
    "(dc.title = poems or dc.title = stories) and dc.date = 1899",
    "dc.title = 明代",
    'dc.title = "zheng zhi"',
]


def test_index_finds_what_the_reference_finds(
    session: Session, catalogue: dict[str, IndexedRec]
) -> None:
    trees = [searchbox.parse(q) for q in SEARCHBOX_QUERIES]
    trees += [cql.parse(q).tree for q in CQL_QUERIES]
    nonempty = 0
    for q, tree in zip(SEARCHBOX_QUERIES + CQL_QUERIES, trees, strict=True):
        expected = found(tree, catalogue)
        total, ids = all_ids(session, tree)
        assert {str(i) for i in ids} == expected, q
        assert total == len(ids) == len(set(ids)), q
        nonempty += bool(expected)
    assert nonempty >= len(trees) - 3  # the queries really find things


WORDS = [
    "history",
    "united",
    "states",
    "poems",
    "stories",
    "civil",
    "law",
    "fiction",
    "morris",
    "dewey",
    "lessons",
    "the",
    "of",
    "明代",
    "政治",
    "全球",
    "zheng",
    "zhi",
    "1899",
    "america*",
    "hist*",
]
FIELDS = ["", "title:", "author:", "subject:", "publisher:"]


@st.composite
def searchbox_queries(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        word = draw(st.sampled_from(WORDS))
        field = draw(st.sampled_from(FIELDS))
        quote = draw(st.booleans()) and not word.endswith("*")
        neg = draw(st.integers(0, 5)) == 0
        token = (
            f'{field}"{word} {draw(st.sampled_from(WORDS)).rstrip("*")}"' if quote else field + word
        )
        parts.append(("-" if neg else "") + token)
        if draw(st.integers(0, 3)) == 0:
            parts.append("OR")
    return " ".join(parts)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(q=searchbox_queries())
def test_random_queries_agree_with_the_reference(
    session: Session, catalogue: dict[str, IndexedRec], q: str
) -> None:
    tree = searchbox.parse(q)
    total, ids = all_ids(session, tree)
    assert {str(i) for i in ids} == found(tree, catalogue), q
    assert total == len(ids)


def _titles(r: service.SearchResult) -> list[str]:
    return [h["title"] for h in r.hits]


def test_title_hits_rank_above_subject_hits(session: Session, catalogue: dict[str, Any]) -> None:
    r = service.search(session, searchbox.parse("history"), limit=50, facets=[])

    def in_title_column(h: dict[str, Any]) -> bool:
        return "history" in (h["title"] + " " + h["remainder"]).lower()

    in_title = [h["id"] for h in r.hits if in_title_column(h)]
    elsewhere = [h["id"] for h in r.hits if not in_title_column(h)]
    assert in_title and elsewhere
    order = [h["id"] for h in r.hits]
    assert max(order.index(i) for i in in_title) < min(order.index(i) for i in elsewhere)


def test_exact_isbn_hits_come_first(session: Session, catalogue: dict[str, Any]) -> None:
    # "The loom of destiny" has ISBN 0836932722; "history" finds a dozen other books.
    tree = searchbox.parse("history OR isbn:0836932722")
    r = service.search(session, tree, limit=5, facets=[])
    assert r.hits[0]["title"] == "The loom of destiny"
    assert r.total == 1 + service.search(session, searchbox.parse("history"), facets=[]).total
    # Also under a sort: the exact hit stays first.
    r = service.search(session, tree, limit=5, facets=[], sort=[SortKey("title")])
    assert r.hits[0]["title"] == "The loom of destiny"


def test_sort_by_year_and_title(session: Session, catalogue: dict[str, Any]) -> None:
    tree = searchbox.parse("lang:chi")
    total, _ = all_ids(session, tree)
    assert total >= 40
    asc = service.search(session, tree, limit=100, sort=[SortKey("year")], facets=[]).hits
    years = [h["year"] for h in asc]
    known = [y for y in years if y is not None]
    assert known == sorted(known) and years[: len(known)] == known  # missing years last
    desc = service.search(session, tree, limit=100, sort=[SortKey("year", False)], facets=[]).hits
    known_desc = [h["year"] for h in desc if h["year"] is not None]
    assert known_desc == sorted(known, reverse=True)
    by_title = service.search(
        session, searchbox.parse("history"), limit=50, sort=[SortKey("title")], facets=[]
    ).hits
    keys = [search_index._sort_key(h["title"]) for h in by_title]
    assert keys == sorted(keys)


def test_paging_is_stable_and_total_is_exact(session: Session, catalogue: dict[str, Any]) -> None:
    tree = searchbox.parse("the")
    total, ids = all_ids(session, tree)
    assert total > 30
    pages: list[int] = []
    for offset in range(0, total, 7):
        r = service.search(session, tree, offset=offset, limit=7, facets=[])
        assert r.total == total
        pages += [h["id"] for h in r.hits]
    assert pages == ids
    beyond = service.search(session, tree, offset=total + 5, limit=7, facets=[])
    assert beyond.total == total and beyond.hits == []


def _facets_of(recs: list[IndexedRec], regions: dict[str, str]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {f: Counter() for f in search_index.FACETS}
    for r in recs:
        langs = set(r.language)
        out["language"].update(langs)
        if langs:
            out["language_group"]["chinese" if "chi" in langs else "foreign"] += 1
        out["member"].update(set(r.member))
        out["region"].update({regions[m] for m in r.member})
        if r.years:
            out["year"][search_index.decade(r.years[0])] += 1
    return out


def test_facet_counts_are_those_of_the_matching_clusters(
    session: Session, catalogue: dict[str, IndexedRec]
) -> None:
    regions = {
        code: reg
        for code, reg in session.execute(
            select(Member.code, Region.code).join(Region, Region.id == Member.region_id)
        )
    }
    for q in ("history", "the", "lang:chi", "明代 OR poems"):
        tree = searchbox.parse(q)
        r = service.search(session, tree, limit=1)
        matching = [catalogue[c] for c in sorted(found(tree, catalogue))]
        want = _facets_of(matching, regions)
        for facet in ("language", "language_group", "member", "region", "year"):
            got = {e["value"]: e["count"] for e in r.facets[facet]}
            assert got == dict(want[facet]), (q, facet)
        assert r.facets_sampled is None
        material = {e["value"]: e["count"] for e in r.facets["material"]}
        assert sum(material.values()) == r.total  # one material per cluster
        classes = r.facets["classification"]
        assert all(e["value"].split(":")[0] in ("lcc", "clc", "ddc") for e in classes)


def test_facet_filters_narrow_the_search(session: Session, catalogue: dict[str, Any]) -> None:
    tree = searchbox.parse("the")
    base = service.search(session, tree, limit=1)
    counts = {f: {e["value"]: e["count"] for e in vs} for f, vs in base.facets.items()}
    for facet in ("language", "member", "region", "year", "material", "classification"):
        for value, n in list(counts[facet].items())[:3]:
            r = service.search(session, tree, limit=1, filters=[(facet, value)])
            assert r.total == n, (facet, value)
    # Values of one facet are OR'ed, facets are AND'ed.
    r = service.search(
        session,
        tree,
        limit=1,
        filters=[("member", "CN-A"), ("member", "CN-B"), ("language_group", "foreign")],
    )
    assert r.total == counts["language_group"]["foreign"]
    r = service.search(session, searchbox.parse("明代"), limit=1, filters=[("year", "1000-2999")])
    assert r.total >= 1
    empty = service.search(session, tree, limit=1, filters=[("member", "CN-NOPE")])
    assert empty.total == 0 and empty.hits == []


def test_hits_carry_holdings_of_every_member(session: Session, catalogue: dict[str, Any]) -> None:
    r = service.search(session, searchbox.parse('title:"sky pilot"'), limit=5)
    assert r.total == 1
    hit = r.hits[0]
    assert hit["title"].startswith("The sky pilot")
    assert [h["member"] for h in hit["holdings"]] == ["CN-A", "CN-B"]
    assert {h["region"] for h in hit["holdings"]} == {"south", "north"}
    assert hit["member_count"] == 2 and hit["record_count"] == 2


def test_bad_arguments_are_refused(session: Session, catalogue: dict[str, Any]) -> None:
    from consortia.errors import Invalid

    tree = searchbox.parse("history")
    for kw in (
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"facets": ["colour"]},
        {"sort": [SortKey("colour")]},
    ):
        with pytest.raises(Invalid):
            service.search(session, tree, **kw)  # type: ignore[arg-type]
    for raw in (["language"], ["colour:red"], ["year:abc"]):
        with pytest.raises(Invalid):
            service.search(session, tree, filters=service.parse_filters(raw))
    with pytest.raises(Invalid):
        service.parse_sort("colour")


# --------------------------------------------------------------------------- upkeep


def _count(session: Session, q: str) -> int:
    return service.search(session, searchbox.parse(q), limit=1, facets=[]).total


def test_changed_and_deleted_records_leave_the_index(
    session: Session, catalogue: dict[str, Any], tmp_path: Path
) -> None:
    recs = [r for r in pymarc.MARCReader(LOC.open("rb")) if r is not None]
    sky = next(r for r in recs if "sky pilot" in (r.title or "").lower())
    assert _count(session, '"sky pilot"') == 1
    assert _count(session, "zeppelinophile") == 0
    # Member B's copy now has another title: it leaves the cluster and is found by its new title.
    changed = pymarc.Record(leader=sky.leader)
    for f in sky.fields:
        if f.tag == "245":
            f = pymarc.Field(
                tag="245",
                indicators=pymarc.Indicators("1", "0"),
                subfields=[pymarc.Subfield("a", "The zeppelinophile's handbook")],
            )
        if f.tag not in ("010", "020", "035"):
            changed.add_field(f)
    path = tmp_path / "b.mrc"
    path.write_bytes(changed.as_marc())
    catalog.load_files(CLI, "CN-B", [path], workers=1)
    session.expire_all()
    r = service.search(session, searchbox.parse("zeppelinophile"), limit=5)
    assert r.total == 1 and r.facets["member"] == [{"value": "CN-B", "count": 1}]
    r = service.search(session, searchbox.parse('"sky pilot"'), limit=5)
    assert r.total == 1 and r.facets["member"] == [{"value": "CN-A", "count": 1}]
    # Deleted (leader/05 d): gone from the index; the cluster it left is gone with it.
    changed.leader = pymarc.Leader(str(changed.leader)[:5] + "d" + str(changed.leader)[6:])
    path.write_bytes(changed.as_marc())
    catalog.load_files(CLI, "CN-B", [path], workers=1)
    assert _count(session, "zeppelinophile") == 0
    # --replace with only the Chinese records: CN-B's LC records leave their clusters.
    before = _count(session, "member:CN-B")
    catalog.load_files(CLI, "CN-B", [CNMARC, ALT880], workers=1, replace=True)
    after = _count(session, "member:CN-B")
    assert after < before and after == _count(session, "member:CN-B lang:chi") + _count(
        session, "member:CN-B -lang:chi"
    )
    assert found(searchbox.parse("member:CN-B"), records(session)) == {
        str(i) for i in all_ids(session, searchbox.parse("member:CN-B"))[1]
    }
    assert _fts_consistent(session)


def _fts_consistent(session: Session) -> bool:
    """The full-text side holds exactly the documents (no leftovers of deleted clusters)."""
    conn = session.connection()
    docs = conn.scalar(text("SELECT count(*) FROM search_documents"))
    clusters = conn.scalar(text("SELECT count(*) FROM clusters"))
    if conn.dialect.name == "sqlite":
        fts = conn.scalar(text("SELECT count(*) FROM search_fts WHERE search_fts MATCH 'zall'"))
    else:
        fts = conn.scalar(text("SELECT count(*) FROM search_fts"))
    return bool(docs == clusters == fts)


def test_reindex_all_gives_the_same_results(session: Session, catalogue: dict[str, Any]) -> None:
    queries = ["history", "明代", "title:poems -songs", "year:1900", "member:CN-B"]
    before = [all_ids(session, searchbox.parse(q)) for q in queries]
    session.commit()
    with get_engine().connect() as conn:
        n = search_index.reindex_all(conn, part_size=17)
    assert n == session.scalar(text("SELECT count(*) FROM clusters"))
    session.expire_all()
    assert [all_ids(session, searchbox.parse(q)) for q in queries] == before
    assert _fts_consistent(session)
    session.commit()
    # From an empty index (the fast path: on SQLite the FTS index is built in one pass).
    with get_engine().connect() as conn:
        backend_for(conn.dialect.name).clear(conn)
        conn.commit()
        assert all_ids(session, searchbox.parse("history"))[0] == 0
        search_index.reindex_all(conn, part_size=17)
    session.expire_all()
    assert [all_ids(session, searchbox.parse(q)) for q in queries] == before
    assert _fts_consistent(session)
    # The index still follows loads after a rebuild (SQLite: the triggers are back).
    catalog.load_files(CLI, "CN-B", [CHI], workers=1)
    assert _count(session, "member:CN-B lang:chi") >= 40
    assert _fts_consistent(session)


def test_region_change_reaches_the_facets(session: Session, catalogue: dict[str, Any]) -> None:
    r = service.search(session, searchbox.parse("member:CN-B"), limit=1)
    assert {e["value"] for e in r.facets["region"]} >= {"north"}
    east = Region(code="east", name_zh="华东", name_en="East")
    session.add(east)
    session.flush()
    session.execute(
        Member.__table__.update().where(Member.code == "CN-B").values(region_id=east.id)
    )
    search_index.reindex_member(session.connection(), "CN-B")
    session.commit()
    r = service.search(session, searchbox.parse("member:CN-B"), limit=1, filters=[])
    regions = {e["value"] for e in r.facets["region"]}
    assert "east" in regions and "north" not in regions


# --------------------------------------------------------------------------- scan


def test_scan_lists_index_terms_in_order(session: Session, catalogue: dict[str, Any]) -> None:
    terms = service.scan(session, "title", "hist", after=5)
    assert terms[0][0].startswith("hist")
    assert [t for t, _ in terms] == sorted(t for t, _ in terms)
    history = dict(terms)["history"]
    assert history == _count(session, "title:history")
    around = service.scan(session, "title", "history", before=2, after=3)
    assert [t for t, _ in around][2] == "history" and len(around) == 5
    authors = service.scan(session, "author", "Morris", after=3)
    assert authors[0][0] == "morris"
    # Chinese terms are bigrams; pinyin tokens are not listed.
    cjk_terms = service.scan(session, "title", "明代", after=3)
    assert cjk_terms[0][0] == "明代"
    assert not any(
        t.startswith("0") and t[1:2].isalpha()
        for t, _ in service.scan(session, "title", "0", after=50)
    )
    with pytest.raises(service.Invalid):
        service.scan(session, "colour", "x")


def test_postgres_scan_cache_gives_the_same_terms(
    session: Session, catalogue: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On big PostgreSQL catalogues scan reads the vocabulary cache reindex refreshes."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's scan cache")
    from consortia.search.backends import postgres

    live = [service.scan(session, f, "h", before=2, after=8) for f in service.SCAN_FIELDS]
    backend_for("postgresql").refresh_terms(conn)  # type: ignore[attr-defined]
    monkeypatch.setattr(postgres, "SCAN_LIVE_LIMIT", 0)
    assert [service.scan(session, f, "h", before=2, after=8) for f in service.SCAN_FIELDS] == live


# --------------------------------------------------------------------------- pieces


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab z09-_.,:;/()'xX \téÜøßʹ－１Ａ‐–中ｶ"), max_size=30))
def test_fast_tokens_equal_index_tokens(value: str) -> None:
    from consortia.search import cjk

    search_index.text_tokens.cache_clear()
    assert list(search_index.text_tokens(value, False)) == cjk.index_tokens(value, pinyin=False)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.integers(-5, 3100)),
    st.one_of(st.none(), st.integers(-5, 3100)),
    st.integers(1, 2999),
)
def test_year_cover_is_exactly_the_range(low: int | None, high: int | None, year: int) -> None:
    cover = set(search_index.year_cover(low, high))
    inside = (low is None or year >= low) and (high is None or year <= high)
    assert bool(cover & set(search_index.year_tokens(year))) == inside
    assert len(cover) <= 60


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.text(max_size=12))
def test_key_encoding_is_one_to_one_and_keeps_prefixes(a: str, b: str) -> None:
    ea, eb = search_index._enc(a), search_index._enc(b)
    assert ea.isalnum() or ea == ""
    assert (ea == eb) == (a.lower() == b.lower())
    if b.lower().startswith(a.lower()):
        assert eb.startswith(ea)


@pytest.mark.parametrize("head_max", [5000, 10])
def test_facets_of_a_large_result_are_estimated_from_a_sample(
    session: Session,
    catalogue: dict[str, IndexedRec],
    monkeypatch: pytest.MonkeyPatch,
    head_max: int,
) -> None:
    """Beyond FACET_CAP matches the facets are estimated from a sample, scaled to the total,
    whatever the order shown, and the result gives the size of the sample: every k-th match
    by cluster id (k = ceil(total / FACET_CAP)) when the result is read whole (up to
    HEAD_MAX), else the matches in windows of cluster ids spread evenly over the catalogue.
    Paging is not affected."""
    monkeypatch.setattr(service, "FACET_CAP", 10)
    monkeypatch.setattr(service, "HEAD_MAX", head_max)
    tree = searchbox.parse("the")
    total, ids = all_ids(session, tree)
    assert total > 10
    ordered = sorted(ids)
    if total <= head_max:
        sample_ids = ordered[:: -(-total // 10)]
    else:
        every = sorted(int(c) for c in catalogue)
        windows = service.facet_windows(every[0], every[-1], total)
        assert 1 < len(windows) <= service.FACET_WINDOWS
        sample_ids = [i for i in ordered if any(a <= i <= b for a, b in windows)]
    sample = [catalogue[str(i)] for i in sample_ids]
    assert 0 < len(sample) < total
    regions = {
        code: reg
        for code, reg in session.execute(
            select(Member.code, Region.code).join(Region, Region.id == Member.region_id)
        )
    }
    want = _facets_of(sample, regions)
    for sort in ([], [SortKey("year", False)]):
        r = service.search(session, tree, limit=5, offset=3, sort=sort)
        assert r.total == total and r.facets_sampled == len(sample)
        for facet in ("member", "region", "year", "language"):
            got = {e["value"]: e["count"] for e in r.facets[facet]}
            scaled = {v: max(1, round(n * total / len(sample))) for v, n in want[facet].items()}
            assert got == scaled, (facet, sort)
        best = service.search(session, tree, limit=10, sort=sort, facets=[]).hits
        assert [h["id"] for h in r.hits] == [h["id"] for h in best[3:8]]
    # Exact again when the result is small enough.
    r = service.search(session, searchbox.parse('title:"sky pilot"'), limit=5)
    assert r.facets_sampled is None


def test_big_relevance_searches_rank_the_title_tier_first(
    session: Session, catalogue: dict[str, IndexedRec], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past TIER_MIN matches, those with a query word in the title come first (each tier by
    relevance): the same set, a stable order across pages and across the tier boundary."""
    monkeypatch.setattr(service, "TIER_MIN", 3)
    mixed = 0
    for q in ("history", "the", '"united states"', "poems OR history -fiction"):
        tree = searchbox.parse(q)
        total, ids = all_ids(session, tree)
        assert {str(i) for i in ids} == found(tree, catalogue), q

        def in_title(cid: int, tree: Node = tree) -> bool:
            rec = {str(cid): catalogue[str(cid)]}
            return any(
                found(replace(leaf, field="title"), rec) for leaf in service._positive_leaves(tree)
            )

        flags = [in_title(i) for i in ids]
        assert flags == sorted(flags, reverse=True), q  # the title tier, then the rest
        mixed += any(flags) and not all(flags)
        pages: list[int] = []
        for offset in range(0, total, 4):
            pages += [
                h["id"]
                for h in service.search(session, tree, offset=offset, limit=4, facets=[]).hits
            ]
        assert pages == ids, q
    assert mixed >= 3


def test_hits_show_the_merged_record_whether_read_from_the_document_or_not(
    session: Session, catalogue: dict[str, Any]
) -> None:
    """A page of hits takes its display fields from the index document; a document written
    before it had them (empty) falls back to the merged record; the two agree."""
    merged = dict(session.execute(select(Cluster.id, Cluster.merged)).tuples().all())
    ids = sorted(merged)
    from_documents = service.hits(session, ids)
    assert [h["id"] for h in from_documents] == ids
    for h in from_documents:
        m = merged[h["id"]]
        assert h["title"] == (m.get("title") or {}).get("value", "")
        assert h["authors"] == [
            {
                "name": n.get("name", ""),
                "vernacular": n.get("vernacular", ""),
                "role": n.get("role"),
            }
            for n in m.get("names", [])
        ]
        assert h["isbns"] == [i["isbn13"] for i in m.get("isbns", []) if i.get("valid")]
    assert any(h["authors"] for h in from_documents) and any(h["isbns"] for h in from_documents)
    session.execute(text("UPDATE search_documents SET display = ''"))
    assert service.hits(session, ids) == from_documents
