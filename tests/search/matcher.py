"""A reference evaluator of the query tree over in-memory records.

It follows the matching rules that ``consortia.search.query`` and ``consortia.search.cjk``
document for backends, word for word, so the tests can check the whole path from what a reader
types to which record is found, without a database. Real backends must agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consortia.search import cjk
from consortia.search.query import (
    KEYWORD_FIELDS,
    And,
    MatchAll,
    Node,
    Not,
    Or,
    Phrase,
    Range,
    Term,
)

TEXT_FIELDS = ("title", "author", "subject", "publisher")


@dataclass
class Rec:
    title: list[str] = field(default_factory=list)  # vernacular and romanised forms alike
    author: list[str] = field(default_factory=list)
    subject: list[str] = field(default_factory=list)
    publisher: list[str] = field(default_factory=list)
    isbn: list[str] = field(default_factory=list)
    issn: list[str] = field(default_factory=list)
    language: list[str] = field(default_factory=list)
    classification: list[str] = field(default_factory=list)
    member: list[str] = field(default_factory=list)
    years: list[int] = field(default_factory=list)

    def texts(self, name: str) -> list[str]:
        if name == "any":
            return [t for f in TEXT_FIELDS for t in getattr(self, f)]
        return list(getattr(self, name))


def _contains_run(stream: list[str], tokens: tuple[str, ...], prefix: bool) -> bool:
    n = len(tokens)
    for i in range(len(stream) - n + 1):
        window = stream[i : i + n]
        head_ok = window[:-1] == list(tokens[:-1])
        last_ok = window[-1].startswith(tokens[-1]) if prefix else window[-1] == tokens[-1]
        if head_ok and last_ok:
            return True
    return False


def _alternative_matches(alt: cjk.Alternative, values: list[str]) -> bool:
    if alt.adjacent:
        return any(_contains_run(cjk.index_tokens(v), alt.tokens, alt.prefix) for v in values)
    bag = {t for v in values for t in cjk.index_tokens(v)}
    *head, last = alt.tokens
    if not all(t in bag for t in head):
        return False
    return any(t.startswith(last) for t in bag) if alt.prefix else last in bag


def matches(node: Node, rec: Rec) -> bool:
    if isinstance(node, MatchAll):
        return True
    if isinstance(node, And):
        return all(matches(i, rec) for i in node.items)
    if isinstance(node, Or):
        return any(matches(i, rec) for i in node.items)
    if isinstance(node, Not):
        return matches(node.base, rec) and not matches(node.exclude, rec)
    if isinstance(node, Range):
        return any(
            (node.low is None or y > node.low or (node.low_inclusive and y == node.low))
            and (node.high is None or y < node.high or (node.high_inclusive and y == node.high))
            for y in rec.years
        )
    values = rec.texts(node.field)
    if node.field in KEYWORD_FIELDS:
        keys = [cjk.keyword(node.field, v) for v in values]
        want = node.text
        return any(k.startswith(want) if node.truncation else k == want for k in keys)
    if isinstance(node, Term) and node.relation == "==":
        want = " ".join(cjk.fold(node.text).split())
        return any(" ".join(cjk.fold(v).split()) == want for v in values)
    alts = cjk.alternatives(
        node.field, node.text, truncation=node.truncation, phrase=isinstance(node, Phrase)
    )
    return any(_alternative_matches(a, values) for a in alts)


def found(node: Node, records: dict[str, Rec]) -> set[str]:
    return {name for name, rec in records.items() if matches(node, rec)}
