"""Match keys, match decisions, cluster choice, merge and the duplicates report.

Unit tests build NormalizedRecords directly; ``test_labelled_pairs`` runs the labelled set of
real and derived MARC records in tests/data/dedup through the real normaliser.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consortia.catalog.matching import (
    HARD_REFUSALS,
    RULE_LABELS,
    choose_cluster,
    decide,
    duplicates_within_member,
    match_keys,
    merge,
)
from consortia.catalog.record import Classification, Isbn, Name, NormalizedRecord
from consortia.catalog.textfold import fold, lccn_key, part_key, pinyin_key, title_key


def rec(**kw: Any) -> NormalizedRecord:
    base: dict[str, Any] = {
        "record_id": "r1",
        "flavour": "marc21",
        "title": "The art of computer programming",
        "remainder": "fundamental algorithms",
        "responsibility": "Donald E. Knuth",
        "names": [Name("Knuth, Donald Ervin, 1938-", "author")],
        "publisher": "Addison-Wesley",
        "place": "Reading, Mass.",
        "years": [1997],
        "edition": "3rd ed.",
        "edition_number": 3,
        "pages": 650,
        "isbns": [Isbn("9780201896831")],
        "languages": ["eng"],
    }
    base.update(kw)
    return NormalizedRecord(**base)


def cn(**kw: Any) -> NormalizedRecord:
    base: dict[str, Any] = {
        "record_id": "c1",
        "flavour": "unimarc",
        "title": "中国历史地理",
        "remainder": "",
        "responsibility": "谭其骧主编",
        "names": [Name("谭其骧", "editor")],
        "publisher": "人民出版社",
        "place": "北京",
        "years": [1990],
        "pages": 320,
        "languages": ["chi"],
    }
    base.update(kw)
    return NormalizedRecord(**base)


# --------------------------------------------------------------------------- folding, keys


def test_fold_case_diacritics_punctuation_width_and_chinese_script() -> None:
    assert fold("Les Misérables : roman /") == "les miserables roman"
    assert fold("ＡＢＣ　１２３") == "abc 123"
    assert fold("中國 歷史  地理") == "中国历史地理"
    assert fold("Øresund, Łódź") == "oresund lodz"
    assert title_key("The Hobbit") == "hobbit"
    assert title_key("L'Étranger") == "etranger"
    assert title_key("A") == "a"  # an article alone is the title, not noise


def test_part_keys_read_numbers_in_any_notation() -> None:
    for text in ("v. 2", "Vol. II", "Part two", "第二卷", "第2册", "Band 2"):
        assert part_key(text) == "2", text
    assert part_key("上册") == "1"
    assert part_key("下册") == "9"
    assert part_key("v. 1") != part_key("v. 10")


def test_lccn_and_pinyin_keys() -> None:
    assert lccn_key("n 78-890351 ") == "n78890351"
    assert lccn_key("  85012345 //r86") == "85012345"
    assert pinyin_key("中國歷史") == pinyin_key("Zhongguo li shi") == "zhongguolishi"


def test_match_keys_have_one_prefix_per_kind() -> None:
    r = rec(
        issns=["0317-8471"],
        lccn="  96039837 ",
        oclc=["(OCoLC)ocm00012345"],
        isbns=[Isbn("9780201896831"), Isbn("9780201000000", valid=False)],
    )
    keys = match_keys(r)
    assert "isbn:9780201896831" in keys
    assert not any(k.startswith("isbn:9780201000000") for k in keys)  # cancelled ISBN: no key
    assert "issn:03178471" in keys
    assert "lccn:96039837" in keys
    assert "oclc:12345" in keys
    assert "title:art of computer programming|1997" in keys
    assert all(len(k) <= 200 for k in keys)
    assert len(keys) == len(set(keys))


def test_keys_survive_typos_year_shifts_and_subtitle_changes() -> None:
    a = rec(isbns=[], years=[1997])
    typo = rec(isbns=[], title="The art of computer programing", years=[1997])
    shifted = rec(isbns=[], years=[1998])
    merged = rec(isbns=[], title="The art of computer programming : fundamental algorithms")
    dropped = rec(isbns=[], remainder="")
    ampersand = rec(isbns=[], title="The art & computer programming")
    ka = set(match_keys(a))
    assert "ta:knuth|aocp" in ka
    for other in (typo, shifted, merged, dropped):
        assert ka & set(match_keys(other)), other.title
    assert set(match_keys(rec(isbns=[], title="The art and computer programming"))) & set(
        match_keys(ampersand)
    )
    # Another book by the same author with other initials shares nothing.
    other_book = rec(isbns=[], title="Concrete mathematics", remainder="", years=[1994])
    assert not ka & set(match_keys(other_book))


def test_cjk_variants_block_together() -> None:
    simp = cn(title="中国历史地理")
    trad = cn(title="中國歷史地理")
    spaced = cn(title="中国 历史 地理")
    keys = [set(match_keys(r)) for r in (simp, trad, spaced)]
    assert keys[0] & keys[1] & keys[2]
    full = cn(title="Ｃ＋＋程序设计（第２版）")
    half = cn(title="C++程序设计(第2版)")
    assert set(match_keys(full)) & set(match_keys(half))


def test_romanised_and_vernacular_titles_block_together() -> None:
    marc21 = rec(
        title="Zhongguo li shi di li",
        remainder="",
        title_vernacular="中國歷史地理",
        names=[Name("Tan, Qixiang", "editor", vernacular="譚其驤")],
        languages=["chi"],
        years=[1990],
        isbns=[],
        edition="",
        edition_number=None,
    )
    cnmarc = cn()
    assert set(match_keys(marc21)) & set(match_keys(cnmarc))
    # Without the 880 the romanised title still meets the vernacular one through pinyin.
    bare = dataclasses.replace(marc21, title_vernacular="")
    assert {k for k in match_keys(bare) if k.startswith("py:")} & set(match_keys(cnmarc))


# --------------------------------------------------------------------------- decisions


def test_same_isbn_and_title_is_a_match_with_reasons() -> None:
    a = rec()
    b = rec(
        record_id="x9",
        title="Art of computer programming",
        remainder="",
        publisher="Addison Wesley Longman",
        names=[Name("Knuth, Donald E.")],
    )
    d = decide(a, b)
    assert d.same and d.rule == "isbn+title"
    assert "isbn=9780201896831" in d.reasons
    assert d.scores["title"] >= 90 and d.scores["year"] == 100
    assert 0.9 <= d.score <= 1.0


def test_oclc_and_lccn_rules() -> None:
    a = rec(isbns=[], oclc=["ocm36004201"])
    b = rec(isbns=[], oclc=["36004201"], publisher="AW", remainder="")
    assert decide(a, b).rule == "oclc" and decide(a, b).same
    c = rec(isbns=[], lccn="97-2147")
    e = rec(isbns=[], lccn="97002147", names=[])
    d = decide(c, e)
    assert d.same and d.rule == "lccn"


def test_title_author_year_publisher_without_identifiers() -> None:
    a = rec(isbns=[])
    b = rec(
        isbns=[],
        title="The Art of Computer Programing",  # typo
        remainder="Fundamental algorithms.",
        publisher="Addison-Wesley Pub. Co.",
        names=[Name("Knuth, D. E.")],
    )
    d = decide(a, b)
    assert d.same and d.rule == "title+author+year+publisher"
    # Another author with the same title and year is another book.
    c = dataclasses.replace(b, names=[Name("Smith, John")], responsibility="John Smith")
    assert decide(a, c).rule == "different-author"
    # One year apart (copyright against printing year): only with everything else agreeing.
    e = dataclasses.replace(b, years=[1998])
    d = decide(a, e)
    assert d.same and "year:1997~1998" in d.reasons
    f = dataclasses.replace(e, publisher="Dover")
    assert not decide(a, f).same
    g = dataclasses.replace(e, pages=None)
    assert not decide(a, g).same
    # Two years apart: another edition or a reprint, never clustered on title evidence.
    assert decide(a, dataclasses.replace(b, years=[1999])).rule == "different-year"


def test_different_edition_refused_even_with_shared_isbn() -> None:
    a = rec()
    b = rec(edition="2nd ed.", edition_number=2, years=[1973])
    d = decide(a, b)
    assert not d.same and d.rule == "different-edition"
    assert "edition:3≠2" in d.reasons
    # Stated edition on one side only, no shared identifier: refused, not guessed.
    c = rec(isbns=[], edition="", edition_number=None)
    e = rec(isbns=[])
    assert decide(c, e).rule == "different-edition"


def test_different_volume_of_a_set() -> None:
    a = rec(part="v. 1", isbns=[Isbn("9780201896831"), Isbn("9780201485417", "set")])
    b = rec(part="Vol. II", isbns=[Isbn("9780201896848"), Isbn("9780201485417", "set")])
    d = decide(a, b)
    assert not d.same and d.rule == "different-volume"
    c = cn(part="上册")
    e = cn(part="下册")
    assert decide(c, e).rule == "different-volume"
    # 上册 and 第一册 both mean volume 1: no volume conflict between them.
    assert decide(c, dataclasses.replace(c, part="第一册")).rule != "different-volume"


def test_print_ebook_and_reprint_are_different_manifestations() -> None:
    a = rec()
    b = rec(material="ebook")
    d = decide(a, b)
    assert not d.same and d.rule == "different-material"
    c = rec(reproduction=True, publisher="Dover", years=[2005])
    assert decide(a, c).rule == "reprint"
    # Same title and author decades later at another publisher, no flags: still not clustered.
    e = rec(isbns=[], publisher="Dover Publications", years=[2011])
    f = rec(isbns=[])
    r = decide(e, f)
    assert not r.same and r.rule == "reprint"


def test_isbn_reused_for_another_book_or_year() -> None:
    a = cn(isbns=[Isbn("9787010000000")])
    b = cn(
        title="现代汉语词典",
        names=[Name("中国社会科学院语言研究所")],
        isbns=[Isbn("9787010000000")],
    )
    d = decide(a, b)
    assert not d.same and d.rule == "isbn-reused"
    c = cn(isbns=[Isbn("9787010000000")], years=[1998])
    assert decide(a, c).rule == "isbn-reused"


def test_cjk_traditional_simplified_and_fullwidth_match() -> None:
    a = cn(isbns=[Isbn("9787010012345")])
    b = cn(
        record_id="c2",
        title="中國歷史地理",
        names=[Name("譚其驤")],
        publisher="人民出版社",
        isbns=[Isbn("9787010012345")],
    )
    assert decide(a, b).same
    # No ISBN at all: title, author, year and publisher carry it.
    c, e = cn(), cn(title="中國 歷史 地理", names=[Name("譚其驤")], publisher="人民出版社")
    d = decide(c, e)
    assert d.same and d.rule == "title+author+year+publisher"
    f = cn(title="Ｃ＋＋程序设计", names=[Name("谭浩强")], publisher="清华大学出版社", years=[2004])
    g = cn(title="C++程序设计", names=[Name("譚浩強")], publisher="清华大学出版社", years=[2004])
    assert decide(f, g).same


def test_romanised_vs_vernacular_title() -> None:
    marc21 = rec(
        title="Zhongguo li shi di li",
        remainder="",
        title_vernacular="中國歷史地理",
        responsibility="Tan Qixiang zhu bian",
        names=[Name("Tan, Qixiang", "editor", vernacular="譚其驤")],
        publisher="Ren min chu ban she",
        languages=["chi"],
        years=[1990],
        pages=320,
        isbns=[Isbn("9787010012345")],
        edition="",
        edition_number=None,
    )
    cnmarc = cn(isbns=[Isbn("9787010012345")])
    d = decide(marc21, cnmarc)
    assert d.same and d.rule == "isbn+title"
    # Romanised title without any 880: pinyin carries the comparison.
    bare = dataclasses.replace(marc21, title_vernacular="")
    d2 = decide(bare, cnmarc)
    assert d2.same and "title-form=pinyin" in d2.reasons


def test_different_books_sharing_a_title_word_stay_apart() -> None:
    a = rec(isbns=[], title="History", remainder="a very short introduction", years=[2000])
    b = rec(isbns=[], title="History", remainder="fiction or science?", years=[2000])
    assert not decide(a, b).same
    c = rec(isbns=[Isbn("9780192853523")], title="Poems", remainder="", names=[Name("Keats, John")])
    e = rec(isbns=[Isbn("9780140424355")], title="Poems", remainder="", names=[Name("Keats, J.")])
    # Different ISBNs, otherwise alike but with no page count to confirm: refused.
    assert decide(c, dataclasses.replace(e, pages=None)).rule == "different-isbn"


def test_translations_and_other_languages_stay_apart() -> None:
    eng = rec(isbns=[], title="Costa Rica", remainder="", languages=["eng"])
    spa = rec(isbns=[], title="Costa Rica", remainder="", languages=["spa"])
    d = decide(eng, spa)
    assert not d.same and d.rule == "different-language"
    # Unknown language on one side is no conflict.
    assert decide(eng, dataclasses.replace(spa, languages=["und"])).same


def test_volume_written_into_the_title() -> None:
    a = cn(title="中国民族主义与马克思主义的兴起", isbns=[])
    b = cn(title="中国民族主义与马克思主义的兴起（下册）", isbns=[])
    assert decide(a, b).rule == "different-volume"
    c = cn(title="中国民族主义与马克思主义的兴起（上册）", isbns=[])
    assert decide(b, c).rule == "different-volume"
    e = rec(isbns=[], title="Collected papers. v. 2", remainder="")
    f = rec(isbns=[], title="Collected papers. v. 3", remainder="")
    assert decide(e, f).rule == "different-volume"
    # A title that merely ends in a number is not a volume.
    g = rec(isbns=[], title="Dreamweaver 3 bible", remainder="")
    assert decide(g, dataclasses.replace(g, record_id="x")).same


def test_set_and_series_isbns_are_no_evidence() -> None:
    a = rec(
        title="The roots of the Vietnam War",
        remainder="",
        isbns=[Isbn("9780815335313"), Isbn("9780815335306", "set")],
        names=[Name("Hixson, Walter L.")],
    )
    b = rec(
        title="Leadership and diplomacy in the Vietnam War",
        remainder="",
        isbns=[Isbn("9780815335337"), Isbn("9780815335306", "set")],
        names=[Name("Hixson, Walter L.")],
    )
    d = decide(a, b)
    assert not d.same
    assert not any(r.startswith("isbn=") for r in d.reasons)
    assert "isbn:9780815335306" in match_keys(a)  # still a blocking key


def test_shared_isbn_with_another_title_word_is_reuse() -> None:
    a = rec(title="Christian festival tales", remainder="", isbns=[Isbn("9780739827338")])
    b = rec(title="Jewish festival tales", remainder="", isbns=[Isbn("9780739827338")])
    d = decide(a, b)
    assert not d.same and d.rule == "isbn-reused" and "title-words-differ" in d.reasons


def test_typos_in_short_titles_are_tolerated() -> None:
    for typo in ("Afirca", "Afrca", "Africca"):
        a = rec(title="Africa", remainder="", isbns=[Isbn("9781575724461")])
        b = rec(title=typo, remainder="", isbns=[Isbn("9781575724461")])
        assert decide(a, b).same, typo
    # A different short word is not a typo.
    c = rec(title="Wolves", remainder="", isbns=[Isbn("9780439162951")])
    e = rec(title="Whales", remainder="", isbns=[Isbn("9780439162951")])
    assert not decide(c, e).same


def test_disjoint_isbns_are_refused_without_other_identifier() -> None:
    a = rec(isbns=[Isbn("9781575051505", "lib. bdg")], remainder="")
    b = rec(isbns=[Isbn("9781575051758")], remainder="")
    assert decide(a, b).rule == "different-isbn"
    # ISBN-10 and ISBN-13 forms were already folded by the normaliser: they are one ISBN.
    c = dataclasses.replace(b, isbns=[Isbn("9781575051505")])
    assert decide(a, c).same


def test_romanised_edition_and_publisher_against_script() -> None:
    marc21 = rec(
        title="Zhongguo shu fa li lun ti xi",
        remainder="",
        edition="3 ban",
        edition_number=None,
        publisher="Xiong shi tu shu gu fen you xian gong si",
        names=[Name("Xiong, Bingming")],
        years=[2000],
        pages=219,
        languages=["chi"],
        isbns=[],
    )
    cnmarc = cn(
        title="中國書法理論體系",
        edition="三版",
        publisher="雄獅圖書股份有限公司",
        names=[Name("熊秉明")],
        years=[2000],
        pages=219,
    )
    d = decide(marc21, cnmarc)
    assert d.same and "title-form=pinyin" in d.reasons
    assert d.scores["author"] >= 90 and d.scores["publisher"] >= 80
    # Another edition in the script is still another edition.
    assert not decide(marc21, dataclasses.replace(cnmarc, edition="修订版")).same


def test_edition_qualifiers_against_descriptions() -> None:
    a = rec(isbns=[], edition="8th ed.", edition_number=8)
    brief = dataclasses.replace(a, edition="8th ed., Brief ed.")
    assert decide(a, brief).rule == "different-edition"
    described = dataclasses.replace(a, edition="8th ed., with additional illustrations in colour")
    assert decide(a, described).same


def test_subtitle_cut_short_still_matches() -> None:
    a = rec(title="Framed", remainder="lesbians, feminists, and media culture", names=[])
    b = dataclasses.replace(a, remainder="lesbians, feminists, and")
    assert decide(a, b).same
    c = dataclasses.replace(a, remainder="lesbians in the cinema")
    assert not decide(a, c).same


def test_multi_volume_extent_against_a_single_volume() -> None:
    a = rec(isbns=[], extent="2 v.", pages=None)
    b = rec(isbns=[], extent="627 p.", pages=627)
    assert decide(a, b).rule == "different-volume"


def test_decision_is_symmetric_on_rule() -> None:
    pairs = [
        (rec(), rec(material="ebook")),
        (rec(), rec(edition_number=2, edition="2nd ed.")),
        (cn(), cn(title="中國歷史地理")),
        (rec(isbns=[]), rec(isbns=[], names=[Name("Smith, J.")])),
    ]
    for a, b in pairs:
        assert decide(a, b).rule == decide(b, a).rule
        assert decide(a, b).same == decide(b, a).same


def test_every_rule_has_a_label() -> None:
    for a, b in [(rec(), rec()), (rec(), rec(material="ebook")), (cn(), cn(part="v. 2"))]:
        assert decide(a, b).rule in RULE_LABELS
    assert set(RULE_LABELS) >= HARD_REFUSALS
    assert "different-language" in HARD_REFUSALS


def test_serials_match_on_issn_and_title() -> None:
    a = rec(
        isbns=[],
        issns=["0317-8471"],
        title="Journal of library history",
        remainder="",
        material="serial",
        names=[],
        edition="",
        edition_number=None,
        years=[1966],
        pages=None,
    )
    b = dataclasses.replace(a, title="The journal of library history", publisher="")
    d = decide(a, b)
    assert d.same and d.rule == "issn+title" and "issn=03178471" in d.reasons
    c = dataclasses.replace(a, title="Libraries and culture", issns=["0894-8631"])
    assert not decide(a, c).same


# --------------------------------------------------------------------------- clusters


def test_choose_cluster_takes_best_agreeing_cluster() -> None:
    new = rec(record_id="n1")
    other_book = rec(record_id="o1", title="Concrete mathematics", isbns=[Isbn("9780201558029")])
    same_book = rec(record_id="s1", remainder="", publisher="Addison Wesley")
    cid, d = choose_cluster(new, [(10, [other_book]), (20, [same_book])])
    assert cid == 20 and d is not None and d.rule == "isbn+title"
    assert choose_cluster(new, [(10, [other_book])]) == (None, None)
    assert choose_cluster(new, []) == (None, None)


def test_choose_cluster_needs_the_representative_and_honours_vetoes() -> None:
    new = rec(record_id="n1", isbns=[])
    # Only the second record of the cluster would match: the representative does not.
    rep = rec(record_id="r1", title="Something else entirely", isbns=[])
    assert choose_cluster(new, [(1, [rep, rec(record_id="r2", isbns=[])])]) == (None, None)
    # The representative matches but another record of the cluster is the e-book: vetoed.
    ok_rep = rec(record_id="r3", isbns=[])
    ebook = rec(record_id="r4", isbns=[], material="ebook")
    assert choose_cluster(new, [(2, [ok_rep, ebook])]) == (None, None)
    cid, _ = choose_cluster(new, [(2, [ok_rep, ebook]), (3, [ok_rep])])
    assert cid == 3


def test_choose_cluster_same_member_needs_identifier_evidence() -> None:
    new = rec(record_id="n1", isbns=[])
    there = rec(record_id="m1", isbns=[])
    # Title-level agreement with the member's own record: the member keeps two clusters.
    assert choose_cluster(new, [(5, [("CN-A", there)])], member="CN-A") == (None, None)
    cid, d = choose_cluster(new, [(5, [("CN-A", there)])], member="CN-B")
    assert cid == 5 and d is not None
    # Shared ISBN with the member's own record: a real duplicate; it joins (and is reported).
    a, b = rec(record_id="n2"), rec(record_id="m2")
    cid, d = choose_cluster(a, [(6, [("CN-A", b)])], member="CN-A")
    assert cid == 6 and d is not None and d.rule == "isbn+title"


# --------------------------------------------------------------------------- merge, report


def test_merge_keeps_provenance_and_unions() -> None:
    full = rec(
        record_id="lc1",
        subjects=["Computer programming"],
        classifications=[Classification("lcc", "QA76.6 .K64 1997")],
        lccn="96039837",
    )
    thin = rec(
        record_id="b7",
        remainder="",
        names=[],
        isbns=[Isbn("9780201896831"), Isbn("0201896834".zfill(13))],
        subjects=["Computer programming.", "Algorithms"],
        classifications=[Classification("clc", "TP311.1")],
    )
    m = merge([("CN-B", thin), ("CN-A", full)])
    assert m["representative"] == {"member": "CN-A", "record_id": "lc1"}
    assert m["title"] == {
        "value": "The art of computer programming",
        "member": "CN-A",
        "record_id": "lc1",
    }
    assert m["lccn"]["member"] == "CN-A"
    isbn = next(i for i in m["isbns"] if i["isbn13"] == "9780201896831")
    assert {s["member"] for s in isbn["sources"]} == {"CN-A", "CN-B"}
    subjects = {s["value"]: {x["member"] for x in s["sources"]} for s in m["subjects"]}
    assert subjects["Computer programming"] == {"CN-A", "CN-B"}  # folded: one subject
    assert "Algorithms" in subjects
    assert {c["scheme"] for c in m["classifications"]} == {"lcc", "clc"}
    assert m["members"] == ["CN-A", "CN-B"]
    assert [s["record_id"] for s in m["sources"]] == ["lc1", "b7"]


def test_merge_shows_vernacular_title_for_chinese_books() -> None:
    marc21 = rec(
        record_id="lc9",
        title="Zhongguo li shi di li",
        remainder="",
        title_vernacular="中國歷史地理",
        languages=["chi"],
        subjects=["China -- Historical geography", "Geography"],
    )
    cnmarc = cn(record_id="gz1")
    m = merge([("CN-LC", marc21), ("CN-GZ", cnmarc)])
    # The CNMARC title (script in the title proper) is shown, the romanised one kept beside it,
    # and the script forms of the other elements win over the romanised ones.
    assert m["title"] == {"value": "中国历史地理", "member": "CN-GZ", "record_id": "gz1"}
    assert m["title_romanised"]["value"] == "Zhongguo li shi di li"
    assert m["title_romanised"]["member"] == "CN-LC"
    assert m["publisher"]["value"] == "人民出版社"
    # Fields without script forms still come from the most complete record.
    assert m["pages"]["member"] == m["representative"]["member"]
    # Without a CNMARC record, the 880 form is the display title.
    m2 = merge([("CN-LC", marc21)])
    assert m2["title"]["value"] == "中國歷史地理"
    assert m2["title_romanised"]["value"] == "Zhongguo li shi di li"
    # One person, romanised with its 880 in one record and in the script in the other.
    named = dataclasses.replace(marc21, names=[Name("Tan, Qixiang", "editor", vernacular="譚其驤")])
    m3 = merge([("CN-LC", named), ("CN-GZ", cnmarc)])
    assert len(m3["names"]) == 1
    assert {s["member"] for s in m3["names"][0]["sources"]} == {"CN-LC", "CN-GZ"}


def has_han(s: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in s)


def test_duplicates_within_member_report() -> None:
    a = rec(record_id="1")
    b = rec(record_id="2", remainder="")
    c = rec(record_id="3")
    report = duplicates_within_member([("CN-A", a), ("CN-A", b), ("CN-B", c)])
    assert len(report) == 1
    entry = report[0]
    assert entry["member"] == "CN-A"
    assert set(entry["record_ids"]) == {"1", "2"}
    assert entry["comparisons"][0]["same"] is True
    assert duplicates_within_member([("CN-A", a), ("CN-B", c)]) == []


@pytest.mark.parametrize("field", ["title", "names", "years", "isbns"])
def test_missing_data_never_raises(field: str) -> None:
    empty: Any = "" if field == "title" else []
    a = rec(**{field: empty})
    b = rec()
    d = decide(a, b)
    assert d.rule in RULE_LABELS
    assert isinstance(match_keys(a), list)


def test_rule_labels_are_translated() -> None:
    from consortia.i18n import gettext

    for label in RULE_LABELS.values():
        zh = gettext("zh-CN", label)
        assert zh != label and any("\u4e00" <= ch <= "\u9fff" for ch in zh), label
        assert gettext("en", label) == label


# --------------------------------------------------------------------------- labelled set


def test_labelled_pairs_precision_and_recall() -> None:
    """The labelled set (tests/data/dedup, built by build_pairs.py from the shared MARC files)
    through the real reader, normaliser and decide(): the quality the issue asks for."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "dedup"))
    from labelled import load_pairs, load_records

    records = load_records()
    pairs = load_pairs()
    assert len(pairs) >= 2000
    assert sum(p.hard for p in pairs) >= 300
    categories = {p.category for p in pairs}
    for wanted in (
        "same-isbn-two-sources",
        "corrupted-copy",
        "cjk-trad-simp",
        "cjk-fullwidth",
        "romanised-vs-vernacular",
        "other-edition",
        "volume-of-set",
        "print-vs-ebook",
        "reprint-derived",
        "isbn-reused",
        "same-title-other-book",
    ):
        assert wanted in categories, wanted
    tp = fp = fn = 0
    wrong: list[str] = []
    for p in pairs:
        d = decide(records[p.a], records[p.b])
        if d.same and p.same:
            tp += 1
        elif d.same:
            fp += 1
            wrong.append(f"FP {p.category} {p.a}-{p.b} {d.rule}")
        elif p.same:
            fn += 1
            wrong.append(f"FN {p.category} {p.a}-{p.b} {d.rule}")
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    assert precision >= 0.995, (precision, wrong[:20])
    assert recall >= 0.97, (recall, wrong[:20])


# --------------------------------------------------------------------------- properties


_text = st.text(
    alphabet=st.sampled_from(
        list("abcxyz ÉéüØ&.:;/-()[]1234 中國历史上下册第二卷ＡＢ１２　かな한")
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(
    t1=_text,
    t2=_text,
    r1=_text,
    p1=_text,
    y1=st.one_of(st.none(), st.integers(1800, 2030)),
    y2=st.one_of(st.none(), st.integers(1800, 2030)),
)
def test_decide_and_keys_are_total_and_symmetric(
    t1: str, t2: str, r1: str, p1: str, y1: int | None, y2: int | None
) -> None:
    a = rec(title=t1, remainder=r1, part=p1, years=[y1] if y1 else [], isbns=[])
    b = rec(title=t2, remainder="", years=[y2] if y2 else [], isbns=[])
    d1, d2 = decide(a, b), decide(b, a)
    assert d1.same == d2.same
    assert d1.rule in RULE_LABELS and 0.0 <= d1.score <= 1.0
    for k in match_keys(a) + match_keys(b):
        assert len(k) <= 200 and ":" in k
    assert decide(a, a).rule != "different-title" or not title_key(t1)
