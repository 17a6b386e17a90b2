"""The reader's search pages on real records: results with holdings in the page's language,
Chinese found by simplified and traditional characters and by pinyin, facets that filter and
whose counts add up, sorts, paging, the tips page for an empty box, a 400 naming the limit, the
advanced form, suggestions, the header search box and navigation on every page, both languages,
and no 5xx whatever a reader types (property-based).

Records: LC's (tests/data/ingest/loc-60.mrc), marc-perl's MARC-8 record with 880 script fields
(鲁迅与浙东文化), the CNMARC test records (tests/data/unimarc) and CNMARC records of the demo's
Chinese books (consortia.demo.catalog), among them 中医药学概论 and the traditional-script
中醫藥學概論.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import html as lhtml
from sqlalchemy.orm import Session

from consortia.accounts import service as accounts
from consortia.accounts.roles import CLI, Role
from consortia.catalog import service as catalog
from consortia.demo.catalog import CHINESE_BOOKS, cnmarc_record
from consortia.search import searchbox, service
from consortia.search.pages import MAX_PAGE, PAGE_SIZE, search_url
from consortia.search.query import MAX_QUERY_CHARS, MAX_TERMS
from tests.conftest import PASSWORD, add_region_and_member, login

DATA = Path(__file__).parent.parent / "data"
LOC = DATA / "ingest" / "loc-60.mrc"
CJK3 = DATA / "marc" / "marc-perl_marc-charset__t__cjk3.marc"  # 鲁迅与浙东文化 with 880s
CNMARC = DATA / "unimarc" / "cnmarc-utf8.mrc"
ZH = {"Accept-Language": "zh-CN,zh;q=0.9", "Accept": "text/html"}
EN = {"Accept-Language": "en-GB,en;q=0.8", "Accept": "text/html"}
BOOK = {b[0]: b for b in CHINESE_BOOKS}
SIMPLIFIED = "中医药学概论"
TRADITIONAL = "中醫藥學概論"


def page(r: Response) -> Any:
    return lhtml.fromstring(r.text)


def text_of(el: Any) -> str:
    return " ".join(el.text_content().split())


def write_cnmarc(path: Path, code: str, books: list[tuple[str, str]]) -> Path:
    """CNMARC records of demo books (title, item status) as one member catalogues them."""
    records = [
        cnmarc_record(
            BOOK[title], f"{code}-zh{i}", f"{BOOK[title][6]}/{i}", f"{code}-Z{i}", status, code
        )
        for i, (title, status) in enumerate(books)
    ]
    path.write_bytes(b"".join(r.as_marc() for r in records))
    return path


@pytest.fixture
def catalogue(session: Session, tmp_path: Path) -> dict[str, int]:
    """CN-A (Guangdong): LC's 60 records, the 880 record, 中医药学概论 on the shelf and three
    more Chinese books. CN-B (Jilin): 中医药学概论 on loan, 中醫藥學概論 on the shelf, 针灸学,
    the CNMARC test records. Returns cluster ids by title."""
    add_region_and_member(
        session,
        "CN-A",
        region="guangdong",
        name_zh="中山大学图书馆",
        name_en="Sun Yat-sen University Library",
    )
    add_region_and_member(
        session, "CN-B", region="jilin", name_zh="吉林省图书馆", name_en="Jilin Provincial Library"
    )
    from consortia.members.models import Region

    names = {"guangdong": ("广东", "Guangdong"), "jilin": ("吉林", "Jilin")}
    for region in session.query(Region):
        region.name_zh, region.name_en = names[region.code]
    session.commit()
    a_books = [
        (SIMPLIFIED, "available"),
        ("中医诊断学", "available"),
        ("红楼梦", "on_loan"),
        ("乡土中国", "available"),
    ]
    b_books = [(SIMPLIFIED, "on_loan"), (TRADITIONAL, "available"), ("针灸学", "available")]
    catalog.load_files(
        CLI, "CN-A", [LOC, CJK3, write_cnmarc(tmp_path / "a.mrc", "CN-A", a_books)], workers=1
    )
    catalog.load_files(
        CLI, "CN-B", [CNMARC, write_cnmarc(tmp_path / "b.mrc", "CN-B", b_books)], workers=1
    )
    ids: dict[str, int] = {}
    for code, books in (("CN-A", a_books), ("CN-B", b_books)):
        rids = [f"{code}-zh{i}" for i in range(len(books))]
        for (title, _status), found in zip(
            books, catalog.cluster_of(session, code, rids), strict=True
        ):
            ids[title] = int(found["cluster"])
    ids["Botanical"] = int(catalog.cluster_of(session, "CN-A", ["00000002"])[0]["cluster"])
    return ids


def hit_titles(doc: Any) -> list[str]:
    return [text_of(a) for a in doc.xpath("//ol[@class='hits']/li//h2/a")]


def hit_ids(doc: Any) -> list[int]:
    return [int(a.get("href").rsplit("/", 1)[1]) for a in doc.xpath("//ol[@class='hits']/li//h2/a")]


def total_of(doc: Any) -> int:
    summary = text_of(doc.xpath("//p[@class='result-summary']/strong")[0])
    return int(re.sub(r"\D", "", summary))


def hit_item(doc: Any, cluster: int) -> Any:
    return doc.xpath(f"//ol[@class='hits']/li[.//h2/a[@href='/records/{cluster}']]")[0]


def facet_links(doc: Any, facet: str) -> list[Any]:
    return doc.xpath(
        f"//section[contains(@class,'facet-{facet}')]//a[contains(@class,'facet-link')]"
    )


def facet_entry(link: Any) -> tuple[str, int | None]:
    label = text_of(link.xpath(".//span[@class='facet-label']")[0])
    count = link.xpath(".//span[@class='facet-count']")
    return label, int(text_of(count[0]).replace(",", "")) if count else None


# ---------------------------------------------------------------------------- finding


@pytest.mark.parametrize("headers", [ZH, EN], ids=["zh", "en"])
def test_chinese_characters_either_script_and_pinyin_find_both_books(
    client: TestClient, session: Session, catalogue: dict[str, int], headers: dict[str, str]
) -> None:
    wanted = {catalogue[SIMPLIFIED], catalogue[TRADITIONAL]}
    for q in ("中医", "中醫", "zhong yi", "zhongyi", "中医药学", "zhong yi yao xue"):
        r = client.get("/search", params={"q": q}, headers=headers)
        assert r.status_code == 200, (q, r.text[:300])
        doc = page(r)
        ids = hit_ids(doc)
        assert wanted <= set(ids), (q, hit_titles(doc))
        # The page shows what the service finds, in its order.
        want = service.search(session, searchbox.parse(q), limit=PAGE_SIZE)
        assert total_of(doc) == want.total and ids == [h["id"] for h in want.hits]
        assert doc.xpath("//input[@id='site-q']/@value") == [q]
    # Each hit links to its record page, which shows the same book.
    r = client.get(f"/records/{catalogue[TRADITIONAL]}", headers=headers)
    assert r.status_code == 200 and text_of(page(r).xpath("//h1")[0]) == TRADITIONAL


def test_a_hit_shows_title_responsibility_publication_and_who_has_it_on_the_shelf(
    client: TestClient, session: Session, catalogue: dict[str, int]
) -> None:
    doc = page(client.get("/search", params={"q": SIMPLIFIED}, headers=ZH))
    item = hit_item(doc, catalogue[SIMPLIFIED])
    assert text_of(item.xpath(".//h2")[0]) == SIMPLIFIED
    assert item.xpath(".//h2/a/@lang") == ["zh"]
    assert text_of(item.xpath(".//p[@class='hit-responsibility']")[0]) == "孟景春主编"
    facts = text_of(item.xpath(".//p[@class='hit-facts']")[0])
    assert "北京 : 人民卫生出版社" in facts and "2009" in facts and "图书" in facts
    holdings = text_of(item.xpath(".//div[@class='hit-holdings']")[0])
    # CN-A has it on the shelf, CN-B lent its copy: the shelf first, names in Chinese.
    assert "1 个馆在架可借" in holdings and "2 个馆收藏" in holdings
    names = [text_of(li) for li in item.xpath(".//ul[@class='holder-names']/li")]
    assert names == ["中山大学图书馆 · 在架", "吉林省图书馆 · 均已借出"]

    doc = page(client.get("/search", params={"q": SIMPLIFIED}, headers=EN))
    item = hit_item(doc, catalogue[SIMPLIFIED])
    holdings = text_of(item.xpath(".//div[@class='hit-holdings']")[0])
    assert "On the shelf at 1 library" in holdings and "Held by 2 libraries" in holdings
    names = [text_of(li) for li in item.xpath(".//ul[@class='holder-names']/li")]
    assert names == [
        "Sun Yat-sen University Library · on the shelf",
        "Jilin Provincial Library · all copies out",
    ]
    # A book whose only copy is out says so.
    doc = page(client.get("/search", params={"q": "红楼梦"}, headers=EN))
    assert "No copy on the shelf now" in text_of(hit_item(doc, catalogue["红楼梦"]))
    # A suspended library lends nothing: its copy on the shelf does not count as one.
    from consortia.members import service as members

    members.suspend_member(session, CLI, "CN-B", "unpaid fees")
    session.commit()
    doc = page(client.get("/search", params={"q": TRADITIONAL}, headers=ZH))
    item = hit_item(doc, catalogue[TRADITIONAL])
    assert "目前没有在架的复本" in text_of(item)
    names = [text_of(li) for li in item.xpath(".//ul[@class='holder-names']/li")]
    assert names == ["吉林省图书馆 · 在架 · 已暂停"]


def test_english_words_find_the_lc_record_and_vernacular_titles_show_their_romanisation(
    client: TestClient, catalogue: dict[str, int]
) -> None:
    doc = page(client.get("/search", params={"q": "botanical materia medica"}, headers=EN))
    assert hit_ids(doc)[0] == catalogue["Botanical"]
    item = hit_item(doc, catalogue["Botanical"])
    assert text_of(item.xpath(".//h2")[0]).startswith("Botanical materia medica and pharmacology")
    assert item.xpath(".//h2/a/@lang") == ["en"]
    assert "Held by 1 library" in text_of(item) and "Sun Yat-sen University Library" in text_of(
        item
    )
    # The MARC 21 record with 880s: the vernacular title, its romanisation under it.
    for q in ("鲁迅 浙东", "lu xun"):
        doc = page(client.get("/search", params={"q": q}, headers=EN))
        # The record spaces its words (鲁 迅 与 浙东 文化), as some Chinese cataloguing does.
        hit = doc.xpath(
            "//ol[@class='hits']/li[.//h2[contains(translate(., ' ', ''), '鲁迅与浙东文化')]]"
        )
        assert hit, (q, hit_titles(doc))
        romanised = hit[0].xpath(".//p[@class='hit-romanised']")[0]
        assert text_of(romanised).lower().startswith("lu xun yu zhe dong wen hua")
        assert romanised.get("lang") == "zh-Latn"


# ---------------------------------------------------------------------------- facets


def test_facets_filter_and_their_counts_add_up(
    client: TestClient, catalogue: dict[str, int]
) -> None:
    q = "year:1000-2100"  # every record with a year
    doc = page(client.get("/search", params={"q": q}, headers=EN))
    total = total_of(doc)
    assert total > 60
    groups = dict(facet_entry(a) for a in facet_links(doc, "language_group"))
    assert set(groups) == {"Chinese-language books", "Foreign-language books"}
    assert sum(c for c in groups.values() if c) == total  # each record is in exactly one
    members = {facet_entry(a)[0]: a for a in facet_links(doc, "member")}
    assert set(members) == {"Sun Yat-sen University Library", "Jilin Provincial Library"}

    # Each value's link: as many results as its count, and the filter shows as chosen.
    for facet in ("language_group", "member", "year", "region", "classification", "material"):
        for link in facet_links(doc, facet)[:3]:
            label, count = facet_entry(link)
            r = client.get(link.get("href"), headers=EN)
            assert r.status_code == 200, (facet, label, r.text[:200])
            narrowed = page(r)
            assert total_of(narrowed) == count, (facet, label)
            chosen = narrowed.xpath("//a[contains(@class,'facet-link is-selected')]")
            assert [facet_entry(c)[0] for c in chosen] == [label]
            assert "remove this filter" in text_of(chosen[0])
            chips = narrowed.xpath("//section[@class='active-filters']//a[@class='chip']")
            assert len(chips) == 1 and label in text_of(chips[0])
            # The chip and the chosen value both lead back to the whole result.
            for back in (chips[0], chosen[0]):
                assert total_of(page(client.get(back.get("href"), headers=EN))) == total

    # Two values of one facet: either; two facets: both.
    both_groups = client.get(
        "/search",
        params={"q": q, "facet": ["language_group:chinese", "language_group:foreign"]},
        headers=EN,
    )
    assert total_of(page(both_groups)) == total
    chinese_at_b = page(
        client.get(
            "/search",
            params={"q": q, "facet": ["language_group:chinese", "member:CN-B"]},
            headers=EN,
        )
    )
    titles = hit_titles(chinese_at_b)
    assert SIMPLIFIED in titles and TRADITIONAL in titles and "中医诊断学" not in titles
    # Decade facet: every hit in the decade.
    decade = page(client.get("/search", params={"q": q, "facet": "year:2000-2009"}, headers=EN))
    years = [int(t) for t in decade.xpath("//span[@class='hit-year']/text()")]
    assert years and all(2000 <= y <= 2009 for y in years)


def test_facet_values_are_named_in_the_pages_language(
    client: TestClient, catalogue: dict[str, int]
) -> None:
    doc = page(client.get("/search", params={"q": "中医"}, headers=ZH))
    labels = {f: [facet_entry(a)[0] for a in facet_links(doc, f)] for f in ("language_group",)}
    assert labels["language_group"] == ["中文文献"]
    assert {facet_entry(a)[0] for a in facet_links(doc, "member")} == {
        "中山大学图书馆",
        "吉林省图书馆",
    }
    assert {facet_entry(a)[0] for a in facet_links(doc, "region")} == {"广东", "吉林"}
    assert "R 医药、卫生 中图法" in [facet_entry(a)[0] for a in facet_links(doc, "classification")]
    headings = [text_of(h) for h in doc.xpath("//aside[@id='facets']//h3")]
    assert headings[:3] == ["中外文", "语种", "出版年"]
    doc = page(client.get("/search", params={"q": "history"}, headers=EN))
    classes = [facet_entry(a)[0] for a in facet_links(doc, "classification")]
    assert any(c.startswith("E History of the Americas LCC") for c in classes), classes


# ---------------------------------------------------------------------------- sort, paging


def test_sorts_follow_the_service_and_show_which_is_current(
    client: TestClient, session: Session, catalogue: dict[str, int]
) -> None:
    q = "year:1000-2100"
    for sort in ("-year", "year", "title", "author"):
        doc = page(client.get("/search", params={"q": q, "sort": sort}, headers=EN))
        want = service.search(
            session, searchbox.parse(q), limit=PAGE_SIZE, sort=service.parse_sort(sort)
        )
        assert hit_ids(doc) == [h["id"] for h in want.hits], sort
        current = doc.xpath("//nav[@class='sort-links']//*[@aria-current='true']")
        assert len(current) == 1
    years = [int(y) for y in doc.xpath("//span[@class='hit-year']/text()")]
    doc = page(client.get("/search", params={"q": q, "sort": "-year"}, headers=EN))
    years = [int(y) for y in doc.xpath("//span[@class='hit-year']/text()")]
    assert years == sorted(years, reverse=True) and years[0] >= 2009
    # The sort links keep the query and the filters.
    doc = page(client.get("/search", params={"q": "中医", "facet": "member:CN-B"}, headers=ZH))
    links = doc.xpath("//nav[@class='sort-links']//a/@href")
    assert links and all("facet=member%3ACN-B" in h and "q=%E4%B8%AD%E5%8C%BB" in h for h in links)
    r = client.get("/search", params={"q": q, "sort": "colour"}, headers=EN)
    assert r.status_code == 422 and "sort" in text_of(page(r).xpath("//*[@role='alert']")[0])


def test_paging_with_rel_links_covers_every_result_once(
    client: TestClient, session: Session, catalogue: dict[str, int]
) -> None:
    q = "year:1000-2100"
    want = [
        h["id"] for h in service.search(session, searchbox.parse(q), limit=service.MAX_LIMIT).hits
    ]
    assert len(want) > 2 * PAGE_SIZE
    seen: list[int] = []
    url: str | None = search_url(q)
    starts = []
    while url:
        doc = page(client.get(url, headers=EN))
        seen += hit_ids(doc)
        starts.append(int(doc.xpath("//ol[@class='hits']/@start")[0]))
        nxt = doc.xpath("//nav[contains(@class,'search-pager')]//a[@rel='next']/@href")
        if len(starts) > 1:
            assert doc.xpath("//nav[contains(@class,'search-pager')]//a[@rel='prev']")
            assert doc.xpath("//head/link[@rel='prev']")
        url = nxt[0] if nxt else None
        if url:
            assert doc.xpath("//head/link[@rel='next']/@href") == [url]
    assert seen == want[: len(seen)] and len(seen) == total_of(doc)
    assert starts == [1 + PAGE_SIZE * i for i in range(len(starts))]
    current = doc.xpath("//nav[contains(@class,'search-pager')]//*[@aria-current='page']")
    assert text_of(current[0]).endswith(str(len(starts)))
    # Past the last page: a page that says so, with the way back; bad page numbers are 422.
    r = client.get("/search", params={"q": q, "page": len(starts) + 3}, headers=ZH)
    assert r.status_code == 200 and "此页没有结果" in r.text
    for bad in ("0", "-1", "abc", str(MAX_PAGE + 1)):
        r = client.get("/search", params={"q": q, "page": bad}, headers=EN)
        assert r.status_code == 422, bad


# ---------------------------------------------------------------------------- empty, errors


@pytest.mark.parametrize(
    ("headers", "heading", "pinyin"),
    [(ZH, "检索联合目录", "拼音"), (EN, "Search the union catalogue", "Pinyin")],
    ids=["zh", "en"],
)
def test_an_empty_box_shows_the_search_tips(
    client: TestClient,
    catalogue: dict[str, int],
    headers: dict[str, str],
    heading: str,
    pinyin: str,
) -> None:
    for params in ({}, {"q": ""}, {"q": "   "}, {"q": '"" () -'}):
        r = client.get("/search", params=params, headers=headers)
        assert r.status_code == 200, params
        doc = page(r)
        assert text_of(doc.xpath("//h1")[0]) == heading
        assert pinyin in text_of(doc.xpath("//table[@class='tips-table']")[0])
    examples = doc.xpath("//table[@class='tips-table']//a[@class='example']")
    typed = [text_of(a) for a in examples]
    for needed in (
        "中医",
        "zhong yi",
        "title:history",
        "题名:中医",
        "中医 year:1990-2000",
        "中医 -针灸",
    ):
        assert needed in typed, needed
    assert any(t.startswith("isbn:") for t in typed)
    # Every example runs and finds something (or, for the exclusion, fewer than without it).
    counts = {}
    for a in examples:
        r = client.get(a.get("href"), headers=headers)
        assert r.status_code == 200, a.get("href")
        counts[text_of(a)] = total_of(page(r))
    assert counts["中医"] == counts["中醫"] == counts["zhong yi"] > 0
    assert 0 < counts["中医 -针灸"] < counts["中医"]
    assert counts["题名:中医"] > 0 and counts["title:history"] > 0


@pytest.mark.parametrize("headers", [ZH, EN], ids=["zh", "en"])
def test_an_over_long_query_is_a_400_page_naming_the_limit(
    client: TestClient, catalogue: dict[str, int], headers: dict[str, str]
) -> None:
    # 10,000 characters, half of them Chinese (a longer URL than that is refused by clients).
    r = client.get("/search", params={"q": "中医" * 2500 + "a" * 5000}, headers=headers)
    assert r.status_code == 400
    doc = page(r)
    alert = text_of(doc.xpath("//*[@role='alert']")[0])
    assert str(MAX_QUERY_CHARS) in alert and "10000" in alert
    assert ("查询太长" in alert) == (headers is ZH)
    # The box keeps what fits, to be shortened.
    assert len(doc.xpath("//input[@id='site-q']/@value")[0]) == MAX_QUERY_CHARS
    r = client.get("/search", params={"q": " ".join(["词"] * 500)}, headers=headers)
    assert r.status_code == 400
    alert = text_of(page(r).xpath("//*[@role='alert']")[0])
    assert str(MAX_TERMS) in alert and "500" in alert


def test_bad_facets_are_refused_naming_the_parameter(
    client: TestClient, catalogue: dict[str, int]
) -> None:
    for facet in ("colour:red", "language", "year:abc"):
        r = client.get("/search", params={"q": "x", "facet": facet}, headers=EN)
        assert r.status_code in (400, 422), facet
        assert "facet" in text_of(page(r).xpath("//*[@role='alert']")[0])


def test_nothing_found_says_what_to_try(client: TestClient, catalogue: dict[str, int]) -> None:
    doc = page(client.get("/search", params={"q": "qwxzvy"}, headers=ZH))
    assert total_of(doc) == 0 and not hit_ids(doc)
    assert "中醫" in text_of(doc.xpath("//div[contains(@class,'no-results')]")[0])
    doc = page(client.get("/search", params={"q": "qwxzvy", "facet": "member:CN-B"}, headers=EN))
    again = doc.xpath("//a[normalize-space()='Search again without the filters']/@href")
    assert again == ["/search?q=qwxzvy"]


# ---------------------------------------------------------------------------- advanced form


def test_the_advanced_form_writes_the_search_box_query(
    client: TestClient, catalogue: dict[str, int]
) -> None:
    doc = page(client.get("/search", headers=EN))
    form = doc.xpath("//form[@action='/search/advanced']")[0]
    assert {i.get("name") for i in form.xpath(".//input | .//select")} >= {
        "all",
        "title",
        "author",
        "year_from",
        "year_to",
        "language",
        "material",
        "match",
    }
    r = client.get(
        "/search/advanced",
        params={
            "title": "中医 (药学",
            "author": "孟景春",
            "year_from": "2000",
            "year_to": "2010",
            "language": "chi",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    params = parse_qs(target.query)
    assert params["q"] == ["title:(中医 药学) author:孟景春 year:2000-2010"]
    assert params["facet"] == ["language:chi"]
    found = hit_titles(page(client.get(r.headers["location"], headers=EN)))
    assert sorted(found) == sorted([SIMPLIFIED, TRADITIONAL])

    r = client.get(
        "/search/advanced",
        params={"title": "红楼梦", "author": "费孝通", "match": "any"},
        follow_redirects=False,
    )
    assert parse_qs(urlsplit(r.headers["location"]).query)["q"] == ["title:红楼梦 OR author:费孝通"]
    found = hit_titles(page(client.get(r.headers["location"], headers=EN)))
    assert sorted(found) == sorted(["红楼梦", "乡土中国"])

    r = client.get("/search/advanced", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/search"
    r = client.get("/search/advanced", params={"year_from": "19x0"}, headers=EN)
    assert r.status_code == 422 and "year_from" in r.text
    r = client.get("/search/advanced", params={"title": "x" * 400}, headers=EN)
    assert r.status_code == 422 and "300" in r.text


# ---------------------------------------------------------------------------- suggestions


def suggest(client: TestClient, q: str, lang: str = "en") -> list[dict[str, Any]]:
    r = client.get("/search/suggest", params={"q": q}, headers={"Accept-Language": lang})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["query"] == q and len(body["suggestions"]) <= 8
    found: list[dict[str, Any]] = body["suggestions"]
    return found


def test_suggestions_complete_titles_and_authors_in_both_scripts_and_pinyin(
    client: TestClient, catalogue: dict[str, int]
) -> None:
    for q in ("中医", "中醫", "zhong yi", "中医药"):
        labels = [s["label"] for s in suggest(client, q)]
        assert SIMPLIFIED in labels and TRADITIONAL in labels, (q, labels)
    hist = suggest(client, "botan")
    assert hist[0]["label"].startswith("Botanical materia medica")
    assert hist[0]["kind"] == "title" and hist[0]["kind_label"] == "Title"
    assert hist[0]["value"] == hist[0]["label"]  # nothing in it the box would misread

    zh = suggest(client, "孟景", "zh-CN")
    author = [s for s in zh if s["kind"] == "author"]
    assert author and author[0]["label"] == "孟景春"
    assert author[0]["value"] == '作者:"孟景春"' and author[0]["kind_label"] == "著者"
    en = [s for s in suggest(client, "孟景", "en") if s["kind"] == "author"]
    assert en[0]["value"] == 'author:"孟景春"' and en[0]["kind_label"] == "Author"
    # What a suggestion puts in the box finds it.
    for s in zh[:3] + hist[:3]:
        doc = page(client.get("/search", params={"q": s["value"]}, headers=ZH))
        assert total_of(doc) >= 1, s
        if s["kind"] == "title":
            assert s["label"] in [t.split(" : ")[0] for t in hit_titles(doc)], s

    # Many hits: at most eight. Nothing to complete: none.
    assert len(suggest(client, "t")) <= 8
    for q in ("", "   ", "year:1990", "isbn:9787117123457", "中医 OR 中药", "-x"):
        assert suggest(client, q) == [], q
    r = client.get("/search/suggest", params={"q": "x" * 10_000})
    assert r.status_code == 400
    assert r.json()["limit"] == MAX_QUERY_CHARS and str(MAX_QUERY_CHARS) in r.json()["detail"]


def test_a_title_with_search_syntax_is_suggested_in_quotes() -> None:
    from consortia.search.pages import _box_value

    assert _box_value("Philosophy of history") == "Philosophy of history"
    assert _box_value("Peace OR war") == '"Peace OR war"'
    assert _box_value('Re: the "new" deal') == '"Re: the  new  deal"'
    assert _box_value("-30- a newspaper story") == '"-30- a newspaper story"'
    assert _box_value("红楼梦") == "红楼梦"


# ---------------------------------------------------------------------------- every page


@pytest.mark.parametrize(
    ("headers", "words"),
    [(ZH, ["首页", "检索", "成员馆"]), (EN, ["Home", "Search", "Members"])],
    ids=["zh", "en"],
)
def test_every_page_has_the_search_box_and_the_menu(
    client: TestClient, catalogue: dict[str, int], headers: dict[str, str], words: list[str]
) -> None:
    for path in ("/", "/members", f"/records/{catalogue[SIMPLIFIED]}", "/search?q=x", "/nowhere"):
        doc = page(client.get(path, headers=headers))
        form = doc.xpath("//header//form[@role='search']")
        assert (
            len(form) == 1 and form[0].get("action") == "/search" and form[0].get("method") == "get"
        )
        box = form[0].xpath(".//input[@name='q']")[0]
        assert doc.xpath(f"//label[@for='{box.get('id')}']"), path
        assert box.get("data-suggest-url") == "/search/suggest"
        menu = [text_of(a) for a in doc.xpath("//nav[@class='site-nav']//a")]
        assert menu == words, (path, menu)
        assert doc.xpath("//script[@src='/static/search.js']")
    doc = page(client.get("/search?q=x", headers=headers))
    assert doc.xpath("//nav[@class='site-nav']//a[@aria-current='page']/@href") == ["/search"]


def test_staff_see_the_data_quality_and_load_links_and_readers_do_not(
    client: TestClient, session: Session, catalogue: dict[str, int]
) -> None:
    for username, role in (("staff1", Role.library_staff), ("reader1", Role.reader)):
        accounts.create_user(
            session, CLI, username=username, password=PASSWORD, role=role, member_code="CN-A"
        )
    session.commit()
    login(client, "reader1")
    menu = page(client.get("/search?q=x", headers=ZH)).xpath("//nav[@class='site-nav']//a/@href")
    assert menu == ["/", "/search", "/members", "/requests/mine"]
    client.cookies.clear()
    login(client, "staff1")
    doc = page(client.get("/search?q=x", headers=ZH))
    links = {text_of(a): a.get("href") for a in doc.xpath("//nav[@class='site-nav']//a")}
    assert links["数据质量"] == "/quality" and links["装载记录"] == "/catalog/upload"
    assert links["出借队列"] == "/queues/lending" and "/requests/mine" not in links.values()
    for href in ("/quality", "/catalog/upload"):
        assert client.get(href, headers=ZH).status_code == 200
    doc = page(client.get("/quality", headers=EN))
    current = doc.xpath("//nav[@class='site-nav']//a[@aria-current='page']")
    assert [text_of(a) for a in current] == ["Data quality"]


def test_the_language_switch_keeps_the_query_the_filters_and_the_page(
    client: TestClient, catalogue: dict[str, int]
) -> None:
    params = {"q": "zhong yi", "facet": "member:CN-B", "sort": "-year"}
    doc = page(client.get("/search", params=params, headers=ZH))
    english = doc.xpath("//nav[@class='lang-switch']//a[@hreflang='en']/@href")[0]
    got = parse_qs(urlsplit(english).query)
    assert got == {
        "q": ["zhong yi"],
        "facet": ["member:CN-B"],
        "sort": ["-year"],
        "lang": ["en"],
    }
    r = client.get(english, headers=ZH)
    doc_en = page(r)
    assert doc_en.get("lang") == "en"
    assert hit_ids(doc_en) == hit_ids(doc)
    assert text_of(doc_en.xpath("//h1")[0]) == "Results for zhong yi"


@pytest.mark.parametrize("headers", [ZH, EN], ids=["zh", "en"])
def test_search_pages_keep_the_accessibility_basics(
    client: TestClient, catalogue: dict[str, int], headers: dict[str, str]
) -> None:
    for url in (
        "/search",
        "/search?q=%E4%B8%AD%E5%8C%BB",
        "/search?q=year:1000-2100&facet=language_group:chinese&page=2",
        "/search?q=qwxzvy",
        "/search?q=" + "a" * 3000,
    ):
        r = client.get(url, headers=headers)
        doc = page(r)
        assert len(doc.xpath("//h1")) == 1, url
        focusable = doc.xpath("//body//a[@href] | //body//button | //body//input")
        assert focusable[0].get("class") == "skip-link"
        for control in doc.xpath("//input[not(@type='hidden')] | //select"):
            cid = control.get("id")
            assert cid and doc.xpath(f"//label[@for='{cid}']"), (url, lhtml.tostring(control))
        for nav in doc.xpath("//nav"):
            assert nav.get("aria-label"), (url, lhtml.tostring(nav)[:80])
        assert not doc.xpath("//script[not(@src)] | //*[@style]")
        ids = doc.xpath("//@id")
        assert len(ids) == len(set(ids)), url
        assert r.headers["content-language"] == doc.get("lang")


# ---------------------------------------------------------------------------- no 5xx


# Any character (NUL too: PostgreSQL refuses it in text, so it must never reach a query).
printable = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
pieces = st.lists(
    st.sampled_from(
        [
            "(",
            ")",
            '"',
            "《",
            "》",
            "“",
            ":",
            "：",
            "*",
            "-",
            "+",
            "|",
            "OR",
            "AND",
            "NOT",
            "title:",
            "题名:",
            "作者：",
            "year:",
            "年:",
            "isbn:",
            "lang:",
            "class:",
            "member:",
            "中医",
            "中醫",
            "zhong",
            "yi",
            "978-7-117-12345-7",
            "1990-",
            ">=",
            "%",
            "&",
            "#",
            "?",
            "/",
            "\\",
            "\u200b",
            "🀄",
            " ",
        ]
    ),
    max_size=30,
).map(" ".join)
facet_values = st.lists(
    st.one_of(
        st.sampled_from(
            ["language:chi", "member:CN-A", "year:2000-2009", "region:jilin", "colour:red", ":"]
        ),
        st.text(max_size=20),
    ),
    max_size=3,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    text=st.one_of(printable, pieces),
    facets=facet_values,
    sort=st.one_of(
        st.none(), st.sampled_from(["-year", "title", "x", ",", "-"]), st.text(max_size=8)
    ),
    page_no=st.one_of(st.none(), st.integers(-3, MAX_PAGE + 3).map(str), st.text(max_size=4)),
)
def test_nothing_a_reader_types_is_a_server_error(
    client: TestClient,
    catalogue: dict[str, int],
    text: str,
    facets: list[str],
    sort: str | None,
    page_no: str | None,
) -> None:
    params: dict[str, Any] = {"q": text, "facet": facets}
    if sort is not None:
        params["sort"] = sort
    if page_no is not None:
        params["page"] = page_no
    r = client.get("/search", params=params, headers=ZH)
    assert r.status_code in (200, 400, 422), (params, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html")
    r = client.get("/search/suggest", params={"q": text})
    assert r.status_code in (200, 400), (text, r.text[:300])
    json.loads(r.text)
    r = client.get("/api/v1/search", params={"q": text, "facet": facets})
    assert r.status_code in (200, 400, 422), (params, r.text[:300])
    json.loads(r.text)
    adv = {"title": text[:300], "author": text[:50], "year_from": text[:4], "match": "any"}
    r = client.get("/search/advanced", params=adv, follow_redirects=False)
    assert r.status_code in (303, 422), (adv, r.text[:300])
