"""Property tests: nothing a reader or a client types breaks a parser or the tokenizer."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consortia.search import cjk, cql, searchbox
from consortia.search.query import (
    MAX_QUERY_CHARS,
    Phrase,
    QueryError,
    QueryTooLong,
    Term,
    count_terms,
    normalise,
)
from tests.search.matcher import Rec, matches

SETTINGS = settings(
    max_examples=int(os.environ.get("SEARCH_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Pieces that mean something to the parsers, so random queries reach deep into them.
PIECES = [
    "(", ")", '"', "/", "=", "==", "<", ">", "<=", ">=", "<>", "\\", "*", "?", "^", " ", " ",
    "-", "+", ":", "：", "《", "》", "“", "”", "|",
    "and", "or", "not", "prox", "sortby", "AND", "OR", "NOT",
    "dc.title", "dc.date", "bath.isbn", "cql.serverChoice", "cql.allRecords", "title", "year",
    "title:", "year:", "isbn:", "题名:", "any", "all", "adj", "within", "exact", "relevant",
    "sort.descending", "1990", "2000-", "978-7-301-04815-3", "0317-8471",
    "中医", "中醫", "药学", "zhong", "yi", "harry", "Zhōng", "ｆｕｌｌ", "x",
]  # fmt: skip
query_like = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
any_text = st.text(max_size=300)
cjk_text = st.text(
    alphabet=st.sampled_from(list("中醫医藥药學学概論论重庆银行绿色 ：，。abc 123-xかな한")),
    max_size=60,
)
texts = st.one_of(any_text, query_like, cjk_text)


@SETTINGS
@given(texts)
def test_searchbox_never_fails(text: str) -> None:
    try:
        tree = searchbox.parse(text)
    except QueryTooLong:
        return  # the only refusal the search box has (too many terms)
    assert normalise(tree) == tree
    assert count_terms(tree) <= 100


@SETTINGS
@given(texts)
def test_cql_fails_only_with_a_diagnostic(text: str) -> None:
    try:
        cql.parse(text)
    except cql.CQLError as err:
        assert err.diagnostic in {10, 15, 16, 19, 20, 22, 27, 28, 29, 31, 36, 37, 81}
        assert err.position is None or 1 <= err.position <= len(text) + 1
        assert err.render()  # the message formats
    except QueryTooLong as err:
        assert str(err.limit) in str(err)


@SETTINGS
@given(st.text(min_size=MAX_QUERY_CHARS + 1, max_size=MAX_QUERY_CHARS + 50))
def test_too_long_is_refused_with_the_limit(text: str) -> None:
    for parse in (searchbox.parse, cql.parse):
        try:
            parse(text)
        except QueryTooLong as err:
            assert err.limit == MAX_QUERY_CHARS and str(MAX_QUERY_CHARS) in str(err)
        except QueryError:
            raise AssertionError("the length is checked before anything else") from None
        else:
            raise AssertionError("a query over the limit was accepted")


@SETTINGS
@given(texts)
@example("中\U0002ebe1医")  # a CJK code point this Python's Unicode tables do not know
def test_tokens_are_letters_and_digits(text: str) -> None:
    for tok in cjk.index_tokens(text) + cjk.query_tokens(text) + cjk.pinyin_query_tokens(text):
        assert tok and all(c.isalnum() for c in tok), tok


@SETTINGS
@given(texts)
def test_fold_is_idempotent(text: str) -> None:
    once = cjk.fold(text)
    assert cjk.fold(once) == once


@SETTINGS
@given(texts)
def test_a_text_finds_itself(text: str) -> None:
    index = cjk.index_tokens(text)
    assert set(cjk.query_tokens(text)) <= set(index)
    assert set(cjk.pinyin_query_tokens(text)) <= set(index)
    rec = Rec(title=[text])
    for node in (Term("title", text), Phrase("title", text)):
        if cjk.query_tokens(text):
            assert matches(node, rec), node


han_text = st.text(alphabet=st.sampled_from(list("中醫医藥药學学概論论重庆银行绿色〇")), min_size=1)


@SETTINGS
@given(cjk_text, han_text, cjk_text)
def test_any_part_of_a_chinese_title_finds_the_title(before: str, part: str, after: str) -> None:
    # Chinese has no spaces between words: every run of characters must find its title,
    # whatever stands around it, in either script.
    rec = Rec(title=[before + part + after])
    assert matches(Phrase("title", part), rec)
    assert matches(Term("title", part), rec)


@SETTINGS
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80) | query_like)
def test_ascii_fast_path_cuts_like_the_general_one(text: str) -> None:
    folded = cjk.fold(text)
    if folded.isascii():
        assert cjk._pieces(folded) == cjk._pieces_general(folded)
