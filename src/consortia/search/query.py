"""The one query tree that every front end produces and every backend consumes.

Front ends: the search box (``searchbox.parse``), CQL for SRU (``cql.parse``), later Z39.50 RPN.
Backends (SQLite FTS5, PostgreSQL) walk the tree; they match text through
``consortia.search.cjk`` (``alternatives``, ``keyword``) and never fold text themselves.

Nodes (immutable, hashable, comparable):

``Term(field, text, truncation=False, relation="=")``
    ``relation="="``: every token of ``text`` occurs in the field, in any order (so
    ``Term("title", "harry potter")`` is both words). ``truncation``: the last word is a prefix.
    ``relation="=="``: the whole field value equals ``text`` after folding (CQL ``==``/exact);
    a backend that cannot compare whole values may treat it as a ``Phrase``.
``Phrase(field, text, truncation=False)``
    the tokens in this order, adjacent.
``Range(field, low, high, low_inclusive=True, high_inclusive=True)``
    numeric, only for ``year``; ``None`` is an open end. Every year condition is a ``Range``
    (year:1990 is ``Range("year", 1990, 1990)``).
``And(items)``, ``Or(items)``
    n-ary, at least two items after ``normalise``.
``Not(base, exclude)``
    records of ``base`` that do not match ``exclude`` (CQL's binary NOT, FTS5's NOT). A
    search-box ``-word`` with nothing positive beside it is ``Not(MatchAll(), word)``.
``MatchAll()``
    every record: an empty search box, CQL ``cql.allRecords = 1``. A front end shows its
    help page for an empty search box instead of searching.

Fields: any, title, author, subject, isbn, issn, publisher, year, language, classification,
member. Text fields (any, title, author, subject, publisher) are tokenised; keyword fields
(isbn, issn, language, classification, member) hold one normalised value, already in the tree
(``Term("isbn", "9787117123456")``); ``member`` is a member code, matched on holdings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from consortia.errors import DomainError
from consortia.search import cjk

FIELDS: tuple[str, ...] = (
    "any",
    "title",
    "author",
    "subject",
    "isbn",
    "issn",
    "publisher",
    "year",
    "language",
    "classification",
    "member",
)
TEXT_FIELDS = cjk.TEXT_FIELDS
KEYWORD_FIELDS = cjk.KEYWORD_FIELDS

# Limits for anything a reader or a client sends. The examples (10,000 characters,
# 500 terms) must be refused; these leave room for any real query.
MAX_QUERY_CHARS = 2000
MAX_TERMS = 100
MAX_DEPTH = 32  # nested parentheses


class QueryError(DomainError):
    """A query that cannot be run. ``diagnostic`` is the SRU diagnostic number
    (info:srw/diagnostic/1/N) a protocol front end reports."""

    status = 400
    code = "bad_query"
    diagnostic = 10

    @property
    def uri(self) -> str:
        return f"info:srw/diagnostic/1/{self.diagnostic}"


class QueryTooLong(QueryError):
    """Over one of the size limits; the message names the limit and the value found."""

    code = "query_too_long"

    def __init__(self, message: str, *, limit: int, count: int, diagnostic: int) -> None:
        self.limit = limit
        self.count = count
        self.diagnostic = diagnostic
        super().__init__(message, field="query", limit=limit, count=count)


def check_length(text: str) -> None:
    if len(text) > MAX_QUERY_CHARS:
        raise QueryTooLong(
            "The query is too long: at most {limit} characters are allowed, it has {count}.",
            limit=MAX_QUERY_CHARS,
            count=len(text),
            diagnostic=12,  # Too many characters in query
        )


def too_many_terms(count: int) -> QueryTooLong:
    return QueryTooLong(
        "The query has too many terms: at most {limit} are allowed, it has {count}.",
        limit=MAX_TERMS,
        count=count,
        diagnostic=38,  # Too many boolean operators in query
    )


def too_deep(depth: int) -> QueryTooLong:
    return QueryTooLong(
        "The query nests parentheses too deeply: at most {limit} levels are allowed, "
        "it has {count}.",
        limit=MAX_DEPTH,
        count=depth,
        diagnostic=13,  # Invalid or unsupported use of parentheses
    )


# --- nodes -------------------------------------------------------------------------------

Relation = Literal["=", "=="]


@dataclass(frozen=True, slots=True)
class Term:
    field: str
    text: str
    truncation: bool = False
    relation: Relation = "="


@dataclass(frozen=True, slots=True)
class Phrase:
    field: str
    text: str
    truncation: bool = False


@dataclass(frozen=True, slots=True)
class Range:
    field: str
    low: int | None
    high: int | None
    low_inclusive: bool = True
    high_inclusive: bool = True


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    base: Node
    exclude: Node


@dataclass(frozen=True, slots=True)
class MatchAll:
    pass


Node = Term | Phrase | Range | And | Or | Not | MatchAll
Leaf = Term | Phrase | Range


def is_empty(node: Node) -> bool:
    """Nothing to search for: the front end shows its help page."""
    return isinstance(node, MatchAll)


def leaves(node: Node) -> Iterator[Leaf]:
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, And | Or):
            stack.extend(reversed(n.items))
        elif isinstance(n, Not):
            stack.extend((n.exclude, n.base))
        elif not isinstance(n, MatchAll):
            yield n


def count_terms(node: Node) -> int:
    """Words in terms and phrases plus ranges: what ``MAX_TERMS`` limits."""
    total = 0
    for leaf in leaves(node):
        total += 1 if isinstance(leaf, Range) else max(1, len(leaf.text.split()))
    return total


def check_terms(node: Node) -> None:
    count = count_terms(node)
    if count > MAX_TERMS:
        raise too_many_terms(count)


# --- normalising -------------------------------------------------------------------------


def has_tokens(leaf: Term | Phrase) -> bool:
    if leaf.field in KEYWORD_FIELDS:
        return bool(cjk.keyword(leaf.field, leaf.text))
    return bool(cjk.query_tokens(leaf.text))


def normalise(node: Node) -> Node:
    """The canonical form of a tree; backends may rely on it.

    Terms and phrases without a searchable token are dropped; a phrase of one token is a term;
    nested ands and ors are flattened, duplicates removed, single items unwrapped; ``MatchAll``
    is dropped from ands and absorbs ors; negations in an ``And`` are gathered into one
    ``Not(And(positives), Or(negatives))``, and ``Not(Not(a, b), c)`` is ``Not(a, Or(b, c))``.
    Returns ``MatchAll()`` when nothing is left.
    """
    out = _normalise(node)
    return MatchAll() if out is None else out


def _normalise(node: Node) -> Node | None:
    if isinstance(node, Term | Phrase):
        if not has_tokens(node):
            return None
        if isinstance(node, Phrase) and (node.field in KEYWORD_FIELDS or _one_token(node.text)):
            return Term(node.field, node.text, node.truncation)
        return node
    if isinstance(node, Range):
        if node.low is not None and node.high is not None and node.low > node.high:
            return Range(node.field, node.high, node.low, node.high_inclusive, node.low_inclusive)
        return node
    if isinstance(node, MatchAll):
        return node
    if isinstance(node, Not):
        base = _normalise(node.base)
        exclude = _normalise(node.exclude)
        if exclude is None or isinstance(exclude, MatchAll):
            # Excluding an empty term excludes nothing; excluding everything is kept as is.
            return base if exclude is None else Not(base or MatchAll(), exclude)
        if base is None:
            base = MatchAll()
        if isinstance(base, Not):
            return Not(base.base, _or([base.exclude, exclude]))
        return Not(base, exclude)
    if isinstance(node, Or):
        items: list[Node] = []
        for item in node.items:
            n = _normalise(item)
            if n is None:
                continue
            if isinstance(n, MatchAll):
                return n
            items.extend(n.items if isinstance(n, Or) else (n,))
        return _or(items) if items else None
    # And
    positives: list[Node] = []
    negatives: list[Node] = []
    for item in node.items:
        n = _normalise(item)
        if n is None or isinstance(n, MatchAll):
            continue
        if isinstance(n, And):
            positives.extend(n.items)
        elif isinstance(n, Not) and isinstance(n.base, MatchAll):
            negatives.append(n.exclude)
        else:
            positives.append(n)
    if not positives and not negatives:
        return None
    base_node: Node = _and(positives) if positives else MatchAll()
    if not negatives:
        return base_node
    if isinstance(base_node, Not):
        return Not(base_node.base, _or([base_node.exclude, *negatives]))
    return Not(base_node, _or(negatives))


def _one_token(text: str) -> bool:
    """A phrase of one token is a term; "中 医" is not (as a phrase it is the bigram 中医)."""
    tokens = cjk.query_tokens(text)
    return len(tokens) == 1 and tokens == cjk.query_tokens(text, phrase=True)


def _dedupe(items: Iterable[Node]) -> list[Node]:
    seen: set[Node] = set()
    out: list[Node] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _and(items: list[Node]) -> Node:
    flat: list[Node] = []
    for i in items:
        flat.extend(i.items if isinstance(i, And) else (i,))
    unique = _dedupe(flat)
    return unique[0] if len(unique) == 1 else And(tuple(unique))


def _or(items: list[Node]) -> Node:
    flat: list[Node] = []
    for i in items:
        flat.extend(i.items if isinstance(i, Or) else (i,))
    unique = _dedupe(flat)
    return unique[0] if len(unique) == 1 else Or(tuple(unique))


# --- reading and writing -----------------------------------------------------------------


def to_dict(node: Node) -> dict[str, Any]:
    """A JSON-ready form (API echo, query logs, caching keys)."""
    if isinstance(node, Term):
        return {
            "type": "term",
            "field": node.field,
            "text": node.text,
            "truncation": node.truncation,
            "relation": node.relation,
        }
    if isinstance(node, Phrase):
        return {
            "type": "phrase",
            "field": node.field,
            "text": node.text,
            "truncation": node.truncation,
        }
    if isinstance(node, Range):
        return {
            "type": "range",
            "field": node.field,
            "low": node.low,
            "high": node.high,
            "low_inclusive": node.low_inclusive,
            "high_inclusive": node.high_inclusive,
        }
    if isinstance(node, And | Or):
        return {
            "type": "and" if isinstance(node, And) else "or",
            "items": [to_dict(i) for i in node.items],
        }
    if isinstance(node, Not):
        return {"type": "not", "base": to_dict(node.base), "exclude": to_dict(node.exclude)}
    return {"type": "all"}


def from_dict(data: dict[str, Any]) -> Node:
    """The inverse of ``to_dict``; raises ``QueryError`` for anything else."""
    try:
        kind = data["type"]
        if kind == "term":
            rel = data.get("relation", "=")
            if rel not in ("=", "=="):
                raise ValueError(rel)
            return Term(_field(data["field"]), str(data["text"]), bool(data.get("truncation")), rel)
        if kind == "phrase":
            return Phrase(_field(data["field"]), str(data["text"]), bool(data.get("truncation")))
        if kind == "range":
            return Range(
                _field(data["field"]),
                _opt_int(data.get("low")),
                _opt_int(data.get("high")),
                bool(data.get("low_inclusive", True)),
                bool(data.get("high_inclusive", True)),
            )
        if kind in ("and", "or"):
            items = tuple(from_dict(i) for i in data["items"])
            return And(items) if kind == "and" else Or(items)
        if kind == "not":
            return Not(from_dict(data["base"]), from_dict(data["exclude"]))
        if kind == "all":
            return MatchAll()
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        pass
    raise QueryError("This is not a query tree.", field="query")


def _field(value: Any) -> str:
    if value not in FIELDS:
        raise ValueError(value)
    return str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def to_text(node: Node) -> str:
    """A readable, CQL-like rendering, for logs, tests and "you searched for"."""
    if isinstance(node, Term):
        star = "*" if node.truncation else ""
        return f"{node.field}{node.relation}{_quote(node.text)}{star}"
    if isinstance(node, Phrase):
        star = "*" if node.truncation else ""
        return f'{node.field} adj "{_escape(node.text)}"{star}'
    if isinstance(node, Range):
        lo = "" if node.low is None else str(node.low)
        hi = "" if node.high is None else str(node.high)
        left = "[" if node.low_inclusive else "("
        right = "]" if node.high_inclusive else ")"
        return f"{node.field} in {left}{lo}..{hi}{right}"
    if isinstance(node, And | Or):
        op = " AND " if isinstance(node, And) else " OR "
        return "(" + op.join(to_text(i) for i in node.items) + ")"
    if isinstance(node, Not):
        if isinstance(node.base, MatchAll):
            return f"(NOT {to_text(node.exclude)})"
        return f"({to_text(node.base)} NOT {to_text(node.exclude)})"
    return "*"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    if text and all(c.isalnum() or c in "-." for c in text):
        return text
    return f'"{_escape(text)}"'
