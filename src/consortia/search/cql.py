"""CQL 1.2 (the Contextual Query Language of SRU) → the query tree.

Two layers:

* ``parse_syntax(text)`` — the grammar only: prefix assignments, search clauses with index,
  relation and relation modifiers, booleans with modifiers, parentheses, quoted terms (escapes
  kept, as CQL requires), and a trailing ``sortby`` clause (SRU 2.0). Any malformed query is a
  ``CQLError`` with SRU diagnostic 10 and the 1-based character position.
* ``parse(text)`` — the grammar plus meaning: indexes, relations and masking are mapped onto
  ``consortia.search.query`` nodes; whatever is not supported is a ``CQLError`` with the SRU
  diagnostic that names it (15 context set, 16 index, 19 relation, 20 relation modifier,
  22 relation with this index, 27 empty term, 28 masking character, 29 masked word too short,
  31 anchoring, 36 term format, 37 boolean operator, 81 sort modifier).

Indexes: ``cql.serverChoice``/``cql.anywhere``/``cql.keywords`` (any), ``cql.allRecords``;
``dc.title creator contributor subject publisher date language identifier``;
``bath.title keyTitle uniformTitle seriesTitle name personalName corporateName conferenceName
author subject topicalSubject geographicName isbn issn publisher standardIdentifier``;
and the tree's own field names (``title``, ``author``, ``isbn``, ``year``, ``member``, …).

Relations: ``=`` (one word: the word; several: adjacent, as CQL 1.2 says), ``adj``, ``all``,
``any``, ``==``/``exact`` (whole value), and for years ``<``, ``>``, ``<=``, ``>=``, ``within``;
each also as ``cql.<name>``. Masking: ``*`` at the end of a word is right truncation;
``\\*``, ``\\?``, ``\\^``, ``\\"``, ``\\\\`` are the literal characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from consortia.search import cjk
from consortia.search.query import (
    KEYWORD_FIELDS,
    MAX_DEPTH,
    MAX_TERMS,
    And,
    MatchAll,
    Node,
    Not,
    Or,
    Phrase,
    QueryError,
    Range,
    Term,
    check_length,
    check_terms,
    normalise,
    too_deep,
    too_many_terms,
)


class CQLError(QueryError):
    """A CQL query that cannot be run: ``diagnostic`` (SRU diagnostic number), ``position``
    (1-based character position in the query, or None), ``details`` (what SRU puts in the
    diagnostic's details: the index, relation, character or position)."""

    code = "cql_error"

    def __init__(
        self,
        diagnostic: int,
        message: str,
        *,
        position: int | None = None,
        details: str = "",
        **params: Any,
    ) -> None:
        self.diagnostic = diagnostic
        self.position = position
        self.details = details if details else ("" if position is None else str(position))
        super().__init__(message, field="query", position=position, details=details, **params)


# --- syntax tree -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Modifier:
    name: str
    comparison: str | None
    value: str | None
    position: int


@dataclass(frozen=True, slots=True)
class SearchClause:
    index: str | None  # None: a bare term (cql.serverChoice)
    relation: str
    modifiers: tuple[Modifier, ...]
    term: str  # as written, escapes kept
    position: int  # of the clause
    relation_position: int
    term_position: int  # of the term's first character (inside the quotes when quoted)
    prefixes: tuple[tuple[str, str], ...]  # context-set assignments in scope: (name, uri)


@dataclass(frozen=True, slots=True)
class BooleanClause:
    op: str  # and, or, not, prox (lower case)
    modifiers: tuple[Modifier, ...]
    left: CQLNode
    right: CQLNode
    position: int


CQLNode = SearchClause | BooleanClause


@dataclass(frozen=True, slots=True)
class SortSpec:
    index: str
    modifiers: tuple[Modifier, ...]
    position: int
    prefixes: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ParsedCQL:
    root: CQLNode
    sort: tuple[SortSpec, ...]


@dataclass(frozen=True, slots=True)
class SortKey:
    field: str  # title, author, year, publisher
    ascending: bool = True


@dataclass(frozen=True, slots=True)
class CQLQuery:
    tree: Node
    sort: tuple[SortKey, ...]


# --- lexer -------------------------------------------------------------------------------

_SYMBOLS = ("==", "<>", "<=", ">=", "=", "<", ">")
_BOOLEANS = frozenset({"and", "or", "not", "prox"})


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "(", ")", "/", "cmp", "str", "qstr", "eof"
    text: str
    pos: int  # 0-based offset of the token
    end: int = 0

    def word(self) -> str | None:
        """The lower-cased text of an unquoted string (keywords are never quoted)."""
        return self.text.lower() if self.kind == "str" else None


def _lex(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()/":
            out.append(_Tok(c, c, i, i + 1))
            i += 1
        elif c in "=<>":
            sym = next(s for s in _SYMBOLS if text.startswith(s, i))
            out.append(_Tok("cmp", sym, i, i + len(sym)))
            i += len(sym)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise _syntax("unclosed_quote", i)
            out.append(_Tok("qstr", text[i + 1 : j], i, j + 1))
            i = j + 1
        else:
            j = i
            while j < n and not (text[j].isspace() or text[j] in '()/=<>"'):
                j += 2 if text[j] == "\\" else 1  # a backslash keeps the next character
            j = min(j, n)
            out.append(_Tok("str", text[i:j], i, j))
            i = j
    out.append(_Tok("eof", "", n, n))
    return out


# Syntax error messages: (what was expected, whether the query ended there) → msgid.
_SYNTAX_MESSAGES = {
    "term": "Query syntax error at position {position}: a search term is expected, not {found}.",
    "term_eof": "Query syntax error at position {position}: the query ends where a search term "
    "is expected.",
    "close": "Query syntax error at position {position}: a closing parenthesis is expected, "
    "not {found}.",
    "close_eof": "Query syntax error at position {position}: a parenthesis is not closed.",
    "modifier": "Query syntax error at position {position}: a modifier name is expected after "
    "/, not {found}.",
    "modifier_eof": "Query syntax error at position {position}: the query ends where a modifier "
    "name is expected.",
    "value": "Query syntax error at position {position}: a modifier value is expected, "
    "not {found}.",
    "value_eof": "Query syntax error at position {position}: the query ends where a modifier "
    "value is expected.",
    "sort": "Query syntax error at position {position}: an index to sort by is expected, "
    "not {found}.",
    "sort_eof": "Query syntax error at position {position}: the query ends where an index to "
    "sort by is expected.",
    "prefix": "Query syntax error at position {position}: a context set identifier is expected, "
    "not {found}.",
    "prefix_eof": "Query syntax error at position {position}: the query ends where a context "
    "set identifier is expected.",
    "unexpected": "Query syntax error at position {position}: {found} is not expected here.",
    "unclosed_quote": "Query syntax error at position {position}: the quoted term is not closed.",
    "empty": "The query is empty.",
}


def _syntax(kind: str, pos: int, found: str = "") -> CQLError:
    """A diagnostic 10 at 0-based offset ``pos`` (reported 1-based)."""
    return CQLError(10, _SYNTAX_MESSAGES[kind], position=pos + 1, details=str(pos + 1), found=found)


def _unexpected(expected: str, tok: _Tok) -> CQLError:
    if tok.kind == "eof":
        return _syntax(f"{expected}_eof", tok.pos)
    shown = f'"{tok.text}"' if tok.kind == "qstr" else f"“{tok.text}”"
    return _syntax(expected, tok.pos, shown)


# --- parser ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _lex(text)
        self.i = 0
        self.prefixes: tuple[tuple[str, str], ...] = ()
        self.clauses = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.peek()
        self.i += 1
        return tok

    def is_term(self, tok: _Tok) -> bool:
        return tok.kind in ("str", "qstr")

    def parse(self) -> ParsedCQL:
        if self.peek().kind == "eof":
            raise _syntax("empty", 0)
        root = self.query(0)
        sort: tuple[SortSpec, ...] = ()
        if self.peek().word() == "sortby" and self.peek(1).kind != "eof":
            sort = self.sort_spec()
        elif self.peek().word() == "sortby":
            raise _unexpected("sort", self.peek(1))
        tok = self.peek()
        if tok.kind != "eof":
            raise _unexpected("unexpected", tok)
        return ParsedCQL(root, sort)

    def query(self, depth: int) -> CQLNode:
        """cqlQuery ::= prefixAssignment cqlQuery | scopedClause — assignments are scoped."""
        saved = self.prefixes
        while self.peek().kind == "cmp" and self.peek().text == ">":
            self.take()
            first = self.take()
            if not self.is_term(first):
                raise _unexpected("prefix", first)
            if self.peek().kind == "cmp" and self.peek().text == "=":
                self.take()
                uri = self.take()
                if not self.is_term(uri):
                    raise _unexpected("prefix", uri)
                self.prefixes = (*self.prefixes, (first.text.lower(), uri.text))
            else:
                self.prefixes = (*self.prefixes, ("", first.text))
        node = self.scoped_clause(depth)
        self.prefixes = saved
        return node

    def scoped_clause(self, depth: int) -> CQLNode:
        left = self.search_clause(depth)
        while (op := self.peek().word()) in _BOOLEANS:
            tok = self.take()
            mods = self.modifiers()
            right = self.search_clause(depth)
            left = BooleanClause(op or "", mods, left, right, tok.pos + 1)
        return left

    def search_clause(self, depth: int) -> CQLNode:
        tok = self.peek()
        if tok.kind == "(":
            if depth >= MAX_DEPTH:
                raise too_deep(depth + 1)
            opening = self.take()
            inner = self.query(depth + 1)
            close = self.take()
            if close.kind == "eof":  # point at the parenthesis that is never closed
                raise _syntax("close_eof", opening.pos)
            if close.kind != ")":
                raise _unexpected("close", close)
            return inner
        if not self.is_term(tok):
            raise _unexpected("term", tok)
        self.clauses += 1
        if self.clauses > MAX_TERMS:
            raise too_many_terms(self.clauses)
        nxt = self.peek(1)
        named = nxt.kind == "str" and nxt.word() not in _BOOLEANS and nxt.word() != "sortby"
        if nxt.kind == "cmp" or named:
            index = self.take()
            rel = self.take()
            mods = self.modifiers()
            term = self.take()
            if not self.is_term(term):
                raise _unexpected("term", term)
            return SearchClause(
                index.text,
                rel.text,
                mods,
                term.text,
                index.pos + 1,
                rel.pos + 1,
                term.pos + (2 if term.kind == "qstr" else 1),
                self.prefixes,
            )
        self.take()
        return SearchClause(
            None,
            "=",
            (),
            tok.text,
            tok.pos + 1,
            tok.pos + 1,
            tok.pos + (2 if tok.kind == "qstr" else 1),
            self.prefixes,
        )

    def modifiers(self) -> tuple[Modifier, ...]:
        mods: list[Modifier] = []
        while self.peek().kind == "/":
            self.take()
            name = self.take()
            if not self.is_term(name):
                raise _unexpected("modifier", name)
            comparison = value = None
            if self.peek().kind == "cmp":
                comparison = self.take().text
                val = self.take()
                if not self.is_term(val):
                    raise _unexpected("value", val)
                value = val.text
            mods.append(Modifier(name.text, comparison, value, name.pos + 1))
        return tuple(mods)

    def sort_spec(self) -> tuple[SortSpec, ...]:
        self.take()  # sortby
        keys: list[SortSpec] = []
        while self.is_term(self.peek()):
            tok = self.take()
            keys.append(SortSpec(tok.text, self.modifiers(), tok.pos + 1, self.prefixes))
        return tuple(keys)


def parse_syntax(text: str) -> ParsedCQL:
    """The CQL syntax tree; only syntax (diagnostic 10) and size errors are raised here."""
    check_length(text)
    return _Parser(text).parse()


# --- meaning -----------------------------------------------------------------------------

_CONTEXT_SETS = {
    "info:srw/cql-context-set/1/cql-v1.2": "cql",
    "info:srw/cql-context-set/1/cql-v1.1": "cql",
    "info:srw/cql-context-set/1/dc-v1.1": "dc",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://zing.z3950.org/cql/bath/2.0/": "bath",
    "info:srw/cql-context-set/15/bath-v2.0": "bath",
}
_IDENTIFIER = "identifier"  # isbn or issn, told apart by the term
_ALL_RECORDS = "allrecords"
_INDEXES: dict[str, dict[str, str]] = {
    "cql": {
        "serverchoice": "any",
        "anywhere": "any",
        "keywords": "any",
        "allindexes": "any",
        "allrecords": _ALL_RECORDS,
    },
    "dc": {
        "title": "title",
        "creator": "author",
        "contributor": "author",
        "subject": "subject",
        "publisher": "publisher",
        "date": "year",
        "language": "language",
        "identifier": _IDENTIFIER,
    },
    "bath": {
        "title": "title",
        "keytitle": "title",
        "uniformtitle": "title",
        "seriestitle": "title",
        "name": "author",
        "personalname": "author",
        "corporatename": "author",
        "conferencename": "author",
        "author": "author",
        "subject": "subject",
        "topicalsubject": "subject",
        "geographicname": "subject",
        "isbn": "isbn",
        "issn": "issn",
        "publisher": "publisher",
        "standardidentifier": _IDENTIFIER,
    },
    "": {
        "any": "any",
        "keyword": "any",
        "keywords": "any",
        "serverchoice": "any",
        "title": "title",
        "author": "author",
        "creator": "author",
        "name": "author",
        "subject": "subject",
        "isbn": "isbn",
        "issn": "issn",
        "publisher": "publisher",
        "year": "year",
        "date": "year",
        "language": "language",
        "lang": "language",
        "classification": "classification",
        "class": "classification",
        "clc": "classification",
        "member": "member",
        "library": "member",
        "identifier": _IDENTIFIER,
    },
}
_SORTABLE = frozenset({"title", "author", "year", "publisher"})
_RELATIONS = frozenset({"=", "==", "exact", "all", "any", "adj", "<", ">", "<=", ">=", "within"})
_ORDERING = frozenset({"<", ">", "<=", ">=", "within"})
_RELATION_MODIFIERS = frozenset({"relevant", "masked", "unmasked", "ignorecase", "ignoreaccents"})
_SORT_MODIFIERS = frozenset(
    {"ascending", "descending", "ignorecase", "respectcase", "missinglow", "missinghigh"}
)
_YEAR_RE = re.compile(r"(\d{1,4})(?:-\d{1,2}(?:-\d{1,2})?)?")  # 1999, 1999-05, 1999-05-31


def _context_set(prefix: str, prefixes: tuple[tuple[str, str], ...], at: int) -> str:
    for name, uri in reversed(prefixes):
        if name == prefix:
            known = _CONTEXT_SETS.get(uri) or _CONTEXT_SETS.get(uri.rstrip("/") + "/")
            if known is None:
                raise CQLError(15, "Unsupported context set: {details}.", position=at, details=uri)
            return known
    if prefix in ("cql", "dc", "bath"):
        return prefix
    if prefix == "":
        return ""
    raise CQLError(15, "Unsupported context set: {details}.", position=at, details=prefix)


def _field_of(index: str | None, prefixes: tuple[tuple[str, str], ...], at: int) -> str:
    if index is None:
        return "any"
    prefix, dot, name = index.lower().partition(".")
    if not dot:
        prefix, name = "", prefix
    cset = _context_set(prefix, prefixes, at)
    field = _INDEXES[cset].get(name)
    if field is None and cset == "" and not dot:
        field = _INDEXES["cql"].get(name)
    if field is None:
        raise CQLError(16, "Unsupported index: {details}.", position=at, details=index)
    return field


def _strip_cql(name: str) -> str:
    lower = name.lower()
    return lower[4:] if lower.startswith("cql.") else lower


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    truncation: bool
    position: int  # 1-based, of the word's first character


def _words(clause: SearchClause, masked: bool) -> list[_Word]:
    """Unescape the term and split it into words; apply CQL masking rules."""
    raw = clause.term
    base = clause.term_position
    words: list[_Word] = []
    chars: list[str] = []
    specials: list[tuple[int, str]] = []  # (index in chars, character) of unescaped * ? ^
    start = 0
    i = 0

    def flush() -> None:
        if not chars:
            return
        # Trailing unescaped stars are truncation; every other special is refused.
        end = len(chars)
        while end and (end - 1, "*") in specials:
            end -= 1
        truncation = end < len(chars)
        for idx, ch in specials:
            if idx < end:
                offset = positions[idx]
                if ch == "^":
                    raise CQLError(
                        31,
                        "The anchoring character ^ at position {position} is not supported.",
                        position=base + offset,
                        details="^",
                    )
                raise CQLError(
                    28,
                    "The masking character {details} at position {position} is not supported: "
                    "only * at the end of a word (right truncation).",
                    position=base + offset,
                    details=ch,
                )
        text = "".join(chars[:end])
        if truncation and not _long_enough(text):
            raise CQLError(
                29,
                "The masked word at position {position} is too short: at least two characters "
                "(or one Chinese character) must come before *.",
                position=base + start,
                details=text + "*",
            )
        words.append(_Word(text, truncation, base + start))

    positions: list[int] = []
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            if not chars:
                start = i
            chars.append(raw[i + 1])
            positions.append(i + 1)
            i += 2
            continue
        if c.isspace():
            flush()
            chars, specials, positions = [], [], []
            i += 1
            continue
        if not chars:
            start = i
        if masked and c in "*?^":
            specials.append((len(chars), c))
        chars.append(c)
        positions.append(i)
        i += 1
    flush()
    return words


def _long_enough(stem: str) -> bool:
    folded = cjk.fold(stem)
    return len(folded) >= 2 or any(cjk.is_cjk(c) for c in folded)


def _clause_node(clause: SearchClause) -> Node:
    field = _field_of(clause.index, clause.prefixes, clause.position)
    relation = _strip_cql(clause.relation)  # another set's relation keeps its dot: refused
    if relation not in _RELATIONS:
        raise CQLError(
            19,
            "Unsupported relation: {details}.",
            position=clause.relation_position,
            details=clause.relation,
        )
    masked = True
    for mod in clause.modifiers:
        name = _strip_cql(mod.name)
        if name not in _RELATION_MODIFIERS:
            raise CQLError(
                20,
                "Unsupported relation modifier: {details}.",
                position=mod.position,
                details=mod.name,
            )
        if name == "unmasked":
            masked = False
    if field == _ALL_RECORDS:
        return MatchAll()
    words = _words(clause, masked)
    if not words:
        raise CQLError(
            27,
            "Empty term unsupported at position {position}.",
            position=clause.term_position,
            details=clause.index or "cql.serverChoice",
        )
    if field == _IDENTIFIER:
        joined = "".join(w.text for w in words)
        field = "issn" if cjk.looks_like_issn(joined) else "isbn"
    if relation in _ORDERING and field != "year":
        raise CQLError(
            22,
            "The relation {relation} cannot be used with the index {index}.",
            position=clause.relation_position,
            details=clause.relation,
            relation=clause.relation,
            index=clause.index or "cql.serverChoice",
        )
    if field == "year":
        return _year_node(clause, relation, words)
    if field in KEYWORD_FIELDS:
        return _keyword_node(clause, field, relation, words)
    return _text_node(clause, field, relation, words)


def _searchable(clause: SearchClause, node: Term | Phrase) -> Node:
    if not cjk.query_tokens(node.text):
        raise CQLError(
            27,
            "The term at position {position} has nothing that can be searched.",
            position=clause.term_position,
            details=node.text,
        )
    return node


def _text_node(clause: SearchClause, field: str, relation: str, words: list[_Word]) -> Node:
    if relation in ("==", "exact"):
        text = " ".join(w.text for w in words)
        return _searchable(clause, Term(field, text, words[-1].truncation, "=="))
    if relation == "any":
        return Or(tuple(_searchable(clause, Term(field, w.text, w.truncation)) for w in words))
    if relation == "all" or len(words) == 1:
        # Words up to each truncated one form a term (its last word is the prefix).
        terms: list[Node] = []
        run: list[str] = []
        for w in words:
            run.append(w.text)
            if w.truncation:
                terms.append(_searchable(clause, Term(field, " ".join(run), True)))
                run = []
        if run:
            terms.append(_searchable(clause, Term(field, " ".join(run))))
        return terms[0] if len(terms) == 1 else And(tuple(terms))
    # "=" and "adj" with several words: a phrase; only its last word may be truncated.
    for w in words[:-1]:
        if w.truncation:
            raise CQLError(
                28,
                "The masking character {details} at position {position} is not supported: "
                "only * at the end of a word (right truncation).",
                position=w.position + len(w.text),
                details="*",
            )
    text = " ".join(w.text for w in words)
    return _searchable(clause, Phrase(field, text, words[-1].truncation))


def _keyword_node(clause: SearchClause, field: str, relation: str, words: list[_Word]) -> Node:
    def term(text: str, truncation: bool) -> Term:
        value = cjk.keyword(field, text)
        if not value:
            raise CQLError(
                27,
                "The term at position {position} has nothing that can be searched.",
                position=clause.term_position,
                details=text,
            )
        return Term(field, value, truncation)

    if relation == "any" or (relation == "all" and field not in ("isbn", "issn")):
        items = tuple(term(w.text, w.truncation) for w in words)
        if len(items) == 1:
            return items[0]
        return Or(items) if relation == "any" else And(items)
    # A number written with spaces is one number; a class number may contain spaces.
    for w in words[:-1]:
        if w.truncation:
            raise CQLError(
                28,
                "The masking character {details} at position {position} is not supported: "
                "only * at the end of a word (right truncation).",
                position=w.position + len(w.text),
                details="*",
            )
    return term(" ".join(w.text for w in words), words[-1].truncation)


def _year_of(clause: SearchClause, word: _Word) -> int:
    m = _YEAR_RE.fullmatch(word.text)
    if not m:
        raise CQLError(
            36,
            "The term {details} at position {position} is not a year.",
            position=word.position,
            details=word.text,
        )
    return int(m.group(1))


def _year_node(clause: SearchClause, relation: str, words: list[_Word]) -> Node:
    if relation == "within":
        if len(words) != 2 or any(w.truncation for w in words):
            raise CQLError(
                36,
                "The term {details} at position {position} is not two years (within).",
                position=clause.term_position,
                details=clause.term,
            )
        return Range("year", _year_of(clause, words[0]), _year_of(clause, words[1]))
    if relation in ("any", "all"):
        ranges = tuple(_year_range(clause, w) for w in words)
        if len(ranges) == 1:
            return ranges[0]
        return Or(ranges) if relation == "any" else And(ranges)
    if len(words) != 1:
        raise CQLError(
            36,
            "The term {details} at position {position} is not a year.",
            position=clause.term_position,
            details=clause.term,
        )
    word = words[0]
    if relation in ("<", ">", "<=", ">="):
        if word.truncation:
            raise CQLError(
                28,
                "The masking character {details} at position {position} is not supported: "
                "only * at the end of a word (right truncation).",
                position=word.position + len(word.text),
                details="*",
            )
        y = _year_of(clause, word)
        if relation.startswith(">"):
            return Range("year", y, None, low_inclusive=relation == ">=")
        return Range("year", None, y, high_inclusive=relation == "<=")
    return _year_range(clause, word)


def _year_range(clause: SearchClause, word: _Word) -> Range:
    if word.truncation:
        if not (word.text.isdigit() and len(word.text) <= 4):
            raise CQLError(
                36,
                "The term {details} at position {position} is not a year.",
                position=word.position,
                details=word.text + "*",
            )
        width = 4 - len(word.text)
        low = int(word.text) * 10**width
        return Range("year", low, low + 10**width - 1)
    y = _year_of(clause, word)
    return Range("year", y, y)


def _boolean_node(clause: BooleanClause, left: Node, right: Node) -> Node:
    if clause.op == "prox":
        raise CQLError(
            37,
            "Unsupported boolean operator: {details}.",
            position=clause.position,
            details="prox",
        )
    for mod in clause.modifiers:
        # rel.* modifiers only tune ranking, which the backends do their own way.
        if not mod.name.lower().startswith("rel."):
            raise CQLError(
                37,
                "Unsupported boolean operator: {details}.",
                position=mod.position,
                details=f"{clause.op}/{mod.name}",
            )
    if clause.op == "and":
        return And((left, right))
    if clause.op == "or":
        return Or((left, right))
    return Not(left, right)


def _tree(node: CQLNode) -> Node:
    # Left-deep chains of booleans are walked without recursion (a or b or c or …).
    spine: list[BooleanClause] = []
    cur: CQLNode = node
    while isinstance(cur, BooleanClause):
        spine.append(cur)
        cur = cur.left
    result = _clause_node(cur)
    for b in reversed(spine):
        result = _boolean_node(b, result, _tree(b.right))
    return result


def _sort_key(spec: SortSpec) -> SortKey:
    field = _field_of(spec.index, spec.prefixes, spec.position)
    if field not in _SORTABLE:
        raise CQLError(
            16,
            "The index {details} cannot be used for sorting.",
            position=spec.position,
            details=spec.index,
        )
    ascending = True
    for mod in spec.modifiers:
        name = mod.name.lower()
        name = name[5:] if name.startswith("sort.") else name
        if name not in _SORT_MODIFIERS:
            raise CQLError(
                81,
                "Unsupported sort modifier: {details}.",
                position=mod.position,
                details=mod.name,
            )
        if name in ("ascending", "descending"):
            ascending = name == "ascending"
    return SortKey(field, ascending)


def parse(text: str) -> CQLQuery:
    """A CQL query → the normalised query tree and its sort keys; ``CQLError`` otherwise."""
    parsed = parse_syntax(text)
    tree = normalise(_tree(parsed.root))
    check_terms(tree)
    return CQLQuery(tree, tuple(_sort_key(s) for s in parsed.sort))
