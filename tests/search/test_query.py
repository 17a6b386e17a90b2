"""The query tree: normalising, size limits, reading and writing."""

from __future__ import annotations

import pytest

from consortia.errors import DomainError
from consortia.search import query
from consortia.search.query import (
    MAX_QUERY_CHARS,
    MAX_TERMS,
    And,
    MatchAll,
    Not,
    Or,
    Phrase,
    QueryError,
    QueryTooLong,
    Range,
    Term,
    normalise,
)

a, b, c, d = (Term("any", w) for w in "abcd")


def test_flattens_and_dedupes() -> None:
    assert normalise(And((a, And((b, And((c, a))))))) == And((a, b, c))
    assert normalise(Or((Or((a, b)), c, b))) == Or((a, b, c))
    assert normalise(And((a,))) == a


def test_drops_empty_terms_and_match_all() -> None:
    assert normalise(And((a, Term("any", "!!!"), MatchAll()))) == a
    assert normalise(Or((Term("title", "  "),))) == MatchAll()
    assert normalise(Or((a, MatchAll()))) == MatchAll()
    assert normalise(Not(a, Term("any", "..."))) == a


def test_gathers_negations_into_one_binary_not() -> None:
    tree = And((a, Not(MatchAll(), b), c, Not(MatchAll(), d)))
    assert normalise(tree) == Not(And((a, c)), Or((b, d)))
    assert normalise(Not(Not(a, b), c)) == Not(a, Or((b, c)))
    assert normalise(Not(MatchAll(), a)) == Not(MatchAll(), a)


def test_one_word_phrase_is_a_term_but_spaced_cjk_is_not() -> None:
    assert normalise(Phrase("title", "potter")) == Term("title", "potter")
    assert normalise(Phrase("title", "中 医")) == Phrase("title", "中 医")
    assert normalise(Phrase("isbn", "9787301048153")) == Term("isbn", "9787301048153")


def test_reversed_range_is_turned_round() -> None:
    assert normalise(Range("year", 2000, 1990)) == Range("year", 1990, 2000)


def test_dict_round_trip() -> None:
    tree = Not(
        And((Term("title", "中医", True), Phrase("author", "j k rowling"))),
        Or((Range("year", None, 1990, high_inclusive=False), Term("isbn", "9787301048153"))),
    )
    assert query.from_dict(query.to_dict(tree)) == tree
    assert query.from_dict({"type": "all"}) == MatchAll()


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"type": "term", "field": "nonsense", "text": "x"},
        {"type": "term", "field": "title", "text": "x", "relation": "<"},
        {"type": "and", "items": "x"},
        {"type": "range", "field": "year", "low": "soon"},
    ],
)
def test_from_dict_refuses_what_is_not_a_tree(bad: dict[str, object]) -> None:
    with pytest.raises(QueryError) as err:
        query.from_dict(bad)
    assert err.value.status == 400


def test_to_text_is_readable() -> None:
    tree = Not(And((Term("title", "harry potter"), Range("year", 1990, None))), Term("any", "x"))
    assert query.to_text(tree) == '((title="harry potter" AND year in [1990..]) NOT any=x)'


def test_length_limit_names_the_limit() -> None:
    query.check_length("x" * MAX_QUERY_CHARS)
    with pytest.raises(QueryTooLong) as err:
        query.check_length("x" * 10_000)
    e = err.value
    assert isinstance(e, DomainError) and e.status == 400
    assert e.limit == MAX_QUERY_CHARS and e.count == 10_000
    assert str(MAX_QUERY_CHARS) in str(e) and "10000" in str(e)
    assert e.diagnostic == 12


def test_term_limit_counts_words() -> None:
    query.check_terms(Term("any", " ".join(["w"] * MAX_TERMS)))
    with pytest.raises(QueryTooLong) as err:
        query.check_terms(Term("any", " ".join(["w"] * 500)))
    assert err.value.limit == MAX_TERMS and err.value.count == 500
    assert f"at most {MAX_TERMS}" in str(err.value)
