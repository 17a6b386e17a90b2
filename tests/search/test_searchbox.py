"""The search box: what readers type, and what they find with it."""

from __future__ import annotations

import pytest

from consortia.search import searchbox
from consortia.search.query import (
    MAX_TERMS,
    And,
    MatchAll,
    Not,
    Or,
    Phrase,
    QueryTooLong,
    Range,
    Term,
    is_empty,
    to_text,
)
from tests.search.matcher import Rec, found

RECORDS = {
    "zyyx": Rec(
        title=["中医药学概论"],
        author=["张伯礼"],
        subject=["中医学"],
        publisher=["人民卫生出版社"],
        isbn=["9787301048153"],
        language=["chi"],
        classification=["R2"],
        member=["CN-GZUCM"],
        years=[2012],
    ),
    "zyyx_trad": Rec(title=["中醫藥學"], author=["陳可冀"], language=["chi"], years=[1998]),
    # A romanised record (MARC 245 in pinyin with the 880 vernacular pair).
    "romanised": Rec(
        title=["Zhongguo li shi", "中国历史"], author=["Wang, Li"], language=["chi"], years=[1985]
    ),
    "zhongyao": Rec(title=["中药学"], language=["chi"], years=[2005]),
    "potter": Rec(
        title=["Harry Potter and the Philosopher's Stone"],
        author=["Rowling, J. K."],
        language=["eng"],
        years=[1997],
    ),
    "potter_film": Rec(title=["Harry Potter: the film companion"], years=[2001]),
    "mueller": Rec(title=["Grundlagen der Akupunktur"], author=["Müller, Jürgen"], years=[1990]),
}


def search(text: str) -> set[str]:
    return found(searchbox.parse(text), RECORDS)


@pytest.mark.parametrize("typed", ["中医", "中醫", "zhong yi", "zhongyi", "Zhōng yī", "zhong1 yi1"])
def test_issue_examples_find_zhongyiyaoxue(typed: str) -> None:
    assert {"zyyx", "zyyx_trad"} <= search(typed)
    assert "zhongyao" not in search(typed)


def test_romanised_and_vernacular_both_found() -> None:
    assert search("中国历史") == {"romanised"}
    assert search("zhongguo lishi") == {"romanised"}
    assert search("Zhongguo li shi") == {"romanised"}


def test_words_are_all_required_in_any_order() -> None:
    assert searchbox.parse("harry potter") == Term("any", "harry potter")
    assert search("potter harry") == {"potter", "potter_film"}
    assert search("harry potter stone") == {"potter"}


def test_quoted_phrase_needs_the_words_together() -> None:
    assert searchbox.parse('"harry potter"') == Phrase("any", "harry potter")
    assert search('"potter harry"') == set()
    assert search('"the philosopher"') == {"potter"}


def test_book_title_marks_are_a_phrase() -> None:
    assert searchbox.parse("《中药学》") == Phrase("any", "中药学")
    assert search("《中药学》") == {"zhongyao"}


def test_field_prefixes_english_and_chinese() -> None:
    assert searchbox.parse("title:中医") == Term("title", "中医")
    assert searchbox.parse("题名：中医 作者：张伯礼") == And(
        (Term("title", "中医"), Term("author", "张伯礼"))
    )
    assert search("author:rowling") == {"potter"}
    assert search("title:rowling") == set()
    assert search('title:"philosopher\'s stone"') == {"potter"}
    assert search("subject:中医学") == {"zyyx"}
    assert search("出版社:人民卫生") == {"zyyx"}
    assert search("member:cn-gzucm") == {"zyyx"}
    assert search("class:R*") == {"zyyx"}
    assert search("lang:英文") == {"potter"}
    assert search("language:chi 中药") == {"zhongyao"}


def test_prefix_applies_to_a_group() -> None:
    assert searchbox.parse("title:(中医 OR 中药)") == Or(
        (Term("title", "中医"), Term("title", "中药"))
    )


def test_years() -> None:
    assert searchbox.parse("year:1997") == Range("year", 1997, 1997)
    assert searchbox.parse("year:1990-2000") == Range("year", 1990, 2000)
    assert searchbox.parse("year:2000-") == Range("year", 2000, None)
    assert searchbox.parse("年:>1997") == Range("year", 1997, None, low_inclusive=False)
    assert searchbox.parse("year:199*") == Range("year", 1990, 1999)
    assert search("harry year:1990-1999") == {"potter"}
    assert search("year:<=1990") == {"romanised", "mueller"}


def test_truncation() -> None:
    assert searchbox.parse("pott*") == Term("any", "pott", truncation=True)
    assert search("philosoph*") == {"potter"}
    assert search("philosoph") == set()


def test_or_binds_tighter_than_and() -> None:
    tree = searchbox.parse("中医 OR 中药 学")
    assert tree == And((Or((Term("any", "中医"), Term("any", "中药"))), Term("any", "学")))
    assert search("中医 OR 中药 学") == {"zyyx", "zyyx_trad", "zhongyao"}  # 醫 → 医, 學 → 学
    assert search("中医 | 中药") >= {"zyyx", "zhongyao"}


def test_exclusion() -> None:
    assert search("harry potter -film") == {"potter"}
    assert search("harry potter NOT film") == {"potter"}
    assert search('harry -"film companion"') == {"potter"}
    assert searchbox.parse("-film") == Not(MatchAll(), Term("any", "film"))


def test_isbn_and_issn_are_recognised() -> None:
    for typed in ("978-7-301-04815-3", "9787301048153", "7-301-04815-7", "978 7 301 04815 3"):
        assert searchbox.parse(typed) == Term("isbn", "9787301048153"), typed
        assert search(typed) == {"zyyx"}
    assert searchbox.parse("ISBN 7301048157") == Term("isbn", "9787301048153")
    assert searchbox.parse("0317-8471") == Term("issn", "03178471")
    # A wrong check digit is not an ISBN: searched as a number in every field.
    assert searchbox.parse("978-7-301-04815-0") == Term("any", "978-7-301-04815-0")


def test_diacritics_and_width_do_not_matter() -> None:
    assert search("muller") == {"mueller"}
    assert search("MÜLLER jurgen") == {"mueller"}
    assert search("ｈａｒｒｙ　ｐｏｔｔｅｒ") == {"potter", "potter_film"}


@pytest.mark.parametrize("typed", ["", "   ", "\t\n", '""', "()", "title:", "*", "-", "!!! ???"])
def test_nothing_to_search_is_empty_not_an_error(typed: str) -> None:
    assert is_empty(searchbox.parse(typed))


@pytest.mark.parametrize(
    ("typed", "text"),
    [
        ('"unbalanced phrase', 'any adj "unbalanced phrase"'),
        ("((a b", 'any="a b"'),
        ("a ) b", 'any="a b"'),
        ("foo:bar", 'any="foo:bar"'),
        (":::", "*"),
        ("OR a OR", "any=a"),
        ("NOT", "*"),
        ("year:abc", "any=abc"),
        ("title:author:x", "author=x"),
    ],
)
def test_malformed_input_degrades(typed: str, text: str) -> None:
    assert to_text(searchbox.parse(typed)) == text


def test_deep_parentheses_do_not_crash() -> None:
    tree = searchbox.parse("(" * 900 + "x" + ")" * 900)
    assert tree == Term("any", "x")


def test_limits_are_named() -> None:
    with pytest.raises(QueryTooLong) as err:
        searchbox.parse("中" * 10_000)
    assert "2000" in str(err.value) and err.value.status == 400
    with pytest.raises(QueryTooLong) as err:
        searchbox.parse(" ".join(["x"] * 500))
    assert err.value.limit == MAX_TERMS and err.value.count == 500
    with pytest.raises(QueryTooLong):
        searchbox.parse(" OR ".join(f"w{i}" for i in range(150)))
