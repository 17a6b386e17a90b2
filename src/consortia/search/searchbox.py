"""What a reader types in the search box → the query tree.

Forgiving by design: apart from the size limits (``QueryTooLong``), ``parse`` never raises.
Unbalanced quotes and parentheses, stray colons and operators degrade to a sensible search.

Syntax (Google-like):

* words: ``中医 基础``; consecutive plain words form one ``Term`` (all of them, any order),
  so "zhong yi" can also match as pinyin;
* ``"quoted phrase"``, and ``《书名》`` as a phrase; “curly”, 「corner」 quotes too;
* field prefixes on the next word, phrase or parenthesised group: ``title:``, ``author:``,
  ``subject:``, ``isbn:``, ``issn:``, ``publisher:``, ``year:``, ``lang:``/``language:``,
  ``class:``/``classification:``, ``member:``, and Chinese ``题名:`` ``责任者:``/``作者:``
  ``主题:`` ``出版社:`` ``年:`` … (full-width colons work);
* years: ``year:1990``, ``year:1990-2000``, ``year:1990-``, ``year:>=1990``, ``year:199*``;
* ``word*``: right truncation;
* ``a OR b`` (upper-case OR, or ``|``) binds tighter than the implicit AND, so
  ``中医 OR 中药 教材`` is (中医 OR 中药) AND 教材; ``AND`` may be written;
* ``-word``, ``-"a phrase"``, ``NOT word``: exclude;
* a lone ISBN-10/13 (hyphens or spaces allowed, valid check digit) or ISSN searches ``isbn``
  or ``issn`` by itself.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from consortia.search import cjk
from consortia.search.query import (
    KEYWORD_FIELDS,
    MAX_DEPTH,
    And,
    MatchAll,
    Node,
    Not,
    Or,
    Phrase,
    Range,
    Term,
    check_length,
    check_terms,
    normalise,
)

FIELD_ALIASES: dict[str, str] = {
    # English
    "any": "any",
    "all": "any",
    "kw": "any",
    "keyword": "any",
    "title": "title",
    "ti": "title",
    "author": "author",
    "au": "author",
    "creator": "author",
    "subject": "subject",
    "su": "subject",
    "isbn": "isbn",
    "issn": "issn",
    "publisher": "publisher",
    "pub": "publisher",
    "year": "year",
    "date": "year",
    "py": "year",
    "lang": "language",
    "language": "language",
    "la": "language",
    "class": "classification",
    "classification": "classification",
    "clc": "classification",
    "member": "member",
    "library": "member",
    # Chinese
    "任意": "any",
    "关键词": "any",
    "题名": "title",
    "书名": "title",
    "标题": "title",
    "责任者": "author",
    "作者": "author",
    "著者": "author",
    "主题": "subject",
    "主题词": "subject",
    "出版社": "publisher",
    "出版者": "publisher",
    "年": "year",
    "年份": "year",
    "出版年": "year",
    "语种": "language",
    "语言": "language",
    "分类": "classification",
    "分类号": "classification",
    "成员馆": "member",
    "馆": "member",
}

_QUOTES = str.maketrans({c: '"' for c in "“”„‟「」『』"})
_WORD_END = frozenset('()"《')
_ISBN_ALONE_RE = re.compile(r"(?i)\s*(?:isbn\s*[:]?\s*)?([0-9][0-9 \-]{8,24}[0-9x])\s*")
_ISSN_ALONE_RE = re.compile(r"(?i)\s*(?:issn\s*[:]?\s*)?([0-9]{4}[ \-]?[0-9]{3}[0-9x])\s*")
_ISBN_WORD_RE = re.compile(r"(?i)[0-9][0-9\-]{8,20}[0-9x]")
_ISSN_WORD_RE = re.compile(r"(?i)[0-9]{4}-[0-9]{3}[0-9x]")
_YEAR_RANGE_RE = re.compile(r"(\d{1,4})?\s*(?:-|\.\.|–|~|至|到)\s*(\d{1,4})?")
_YEAR_CMP_RE = re.compile(r"(>=|<=|>|<)\s*(\d{1,4})")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # word, phrase, field, lparen, rparen, or, and, not, neg
    text: str = ""


@dataclass(frozen=True, slots=True)
class _Word:
    """A plain word in the default field, before neighbouring words are merged."""

    text: str


_Unit = Node | _Word


def parse(text: str) -> Node:
    """The query tree for what a reader typed; ``MatchAll()`` when there is nothing to find."""
    check_length(text)
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    alone = _standard_number_alone(text)
    if alone is not None:
        return alone
    node = normalise(_Parser(_lex(text)).parse())
    check_terms(node)
    return node


def _standard_number_alone(text: str) -> Node | None:
    m = _ISBN_ALONE_RE.fullmatch(text)
    if m and cjk.looks_like_isbn(m.group(1)):
        return Term("isbn", cjk.isbn_key(m.group(1)))
    m = _ISSN_ALONE_RE.fullmatch(text)
    if m and cjk.looks_like_issn(m.group(1)):
        return Term("issn", cjk.issn_key(m.group(1)))
    return None


# --- lexer -------------------------------------------------------------------------------


def _lex(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "(":
            out.append(_Tok("lparen"))
            i += 1
        elif c == ")":
            out.append(_Tok("rparen"))
            i += 1
        elif c in '"《':
            close = '"' if c == '"' else "》"
            end = text.find(close, i + 1)
            end = n if end < 0 else end  # unbalanced: the phrase runs to the end
            out.append(_Tok("phrase", text[i + 1 : end]))
            i = end + 1
        elif c in "-+" and i + 1 < n and not text[i + 1].isspace() and text[i + 1] not in "-+":
            if c == "-":
                out.append(_Tok("neg"))
            i += 1
        else:
            j = i
            while j < n and not (text[j].isspace() or text[j] in _WORD_END):
                j += 1
            if j == i:  # a lone sign or similar: skip it
                j = i + 1
            out.extend(_word_tokens(text[i:j]))
            i = j
    return out


def _word_tokens(word: str) -> list[_Tok]:
    if word in ("OR", "|", "||"):
        return [_Tok("or")]
    if word in ("AND", "&", "&&"):
        return [_Tok("and")]
    if word == "NOT":
        return [_Tok("not")]
    if word in ("-", "+"):
        return []
    out: list[_Tok] = []
    while True:  # title:author:x — every known prefix is a field token
        prefix, colon, rest = word.partition(":")
        field = FIELD_ALIASES.get(prefix.casefold()) if colon else None
        if field is None:
            break
        out.append(_Tok("field", field))
        word = rest
    return out + ([_Tok("word", word)] if word else [])


# --- parser ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> Node:
        return self.sequence(0, closing=False)

    def sequence(self, depth: int, *, closing: bool) -> Node:
        """Units joined by implicit AND, OR chains binding tighter."""
        items: list[_Unit] = []
        pending_or = False
        while (tok := self.peek()) is not None:
            if tok.kind == "rparen":
                self.i += 1
                if closing:
                    break
                continue  # a stray ")" at the top: ignore it
            if tok.kind == "or":
                self.i += 1
                pending_or = bool(items)
                continue
            if tok.kind == "and":
                self.i += 1
                pending_or = False
                continue
            unit = self.unary(depth)
            if unit is None:
                continue
            if pending_or and items:
                items[-1] = Or((_node(items[-1]), _node(unit)))
            else:
                items.append(unit)
            pending_or = False
        return _combine(items)

    def unary(self, depth: int) -> _Unit | None:
        negate = False
        while (tok := self.peek()) is not None and tok.kind in ("neg", "not"):
            negate = not negate
            self.i += 1
        unit = self.primary(depth)
        if unit is None or not negate:
            return unit
        return Not(MatchAll(), _node(unit))

    def primary(self, depth: int) -> _Unit | None:
        tok = self.peek()
        if tok is None:
            return None
        if tok.kind == "field":
            field = tok.text
            self.i += 1
            while (nxt := self.peek()) is not None and nxt.kind == "field":
                field = nxt.text  # title:author:x — the last prefix wins
                self.i += 1
            nxt = self.peek()
            if nxt is None or nxt.kind not in ("word", "phrase", "lparen"):
                return None  # a prefix with nothing after it is ignored
            unit = self.primary(depth)
            return None if unit is None else _with_field(field, unit)
        self.i += 1
        if tok.kind == "word":
            return _plain_word(tok.text)
        if tok.kind == "phrase":
            return Phrase("any", tok.text) if tok.text.strip() else None
        if tok.kind == "lparen":
            if depth >= MAX_DEPTH:
                return None  # too deep: the parenthesis is ignored, its words still count
            return self.sequence(depth + 1, closing=True)
        return None  # an operator where a word should be: ignored


def _node(unit: _Unit) -> Node:
    return Term("any", unit.text) if isinstance(unit, _Word) else unit


def _combine(items: list[_Unit]) -> Node:
    """AND the units; neighbouring plain words become one term ("zhong yi")."""
    nodes: list[Node] = []
    run: list[str] = []
    for k, unit in enumerate(items):
        if isinstance(unit, _Word):
            nxt = items[k + 1] if k + 1 < len(items) else None
            if unit.text.casefold() in ("isbn", "issn") and (
                isinstance(nxt, Term) and nxt.field == unit.text.casefold()
            ):
                continue  # "ISBN 978-…": the label is not a search word
            run.append(unit.text)
            continue
        if run:
            nodes.append(Term("any", " ".join(run)))
            run = []
        nodes.append(unit)
    if run:
        nodes.append(Term("any", " ".join(run)))
    if not nodes:
        return MatchAll()
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _split_truncation(text: str) -> tuple[str, bool]:
    stripped = text.rstrip("*")
    truncation = len(stripped) < len(text)
    return stripped.replace("*", ""), truncation


def _plain_word(text: str) -> _Unit | None:
    body, truncation = _split_truncation(text)
    if not body:
        return None
    if not truncation:
        if _ISBN_WORD_RE.fullmatch(body) and cjk.looks_like_isbn(body):
            return Term("isbn", cjk.isbn_key(body))
        if _ISSN_WORD_RE.fullmatch(body) and cjk.looks_like_issn(body):
            return Term("issn", cjk.issn_key(body))
        return _Word(body)
    return Term("any", body, truncation=True)


def _with_field(field: str, unit: _Unit) -> _Unit | None:
    """Apply a field prefix to a word, a phrase or every default-field term of a group."""
    if isinstance(unit, _Word):
        return _field_term(field, unit.text, phrase=False, truncation=False)
    if isinstance(unit, Term | Phrase):
        if unit.field != "any":
            return unit  # title:(author:x) — the inner prefix wins
        return _field_term(
            field, unit.text, phrase=isinstance(unit, Phrase), truncation=unit.truncation
        )
    if isinstance(unit, And | Or):
        items = [_with_field(field, i) for i in unit.items]
        kept = tuple(_node(i) for i in items if i is not None)
        if not kept:
            return None
        return And(kept) if isinstance(unit, And) else Or(kept)
    if isinstance(unit, Not):
        base = _with_field(field, unit.base) if not isinstance(unit.base, MatchAll) else None
        exclude = _with_field(field, unit.exclude)
        if exclude is None:
            return None if base is None else base
        return Not(MatchAll() if base is None else _node(base), _node(exclude))
    return unit


def _field_term(field: str, text: str, *, phrase: bool, truncation: bool) -> _Unit | None:
    if not phrase and not truncation:
        text, truncation = _split_truncation(text)
    if not text.strip():
        return None
    if field == "any":
        if phrase:
            return Phrase("any", text)
        return Term("any", text, truncation=True) if truncation else _Word(text)
    if field == "year":
        years = _year(text, truncation)
        # A year that is not one ("year:abc") is searched as words in every field.
        return years if years is not None else _Word(text)
    if field in KEYWORD_FIELDS:
        value = cjk.keyword(field, text)
        return Term(field, value, truncation=truncation) if value else None
    if phrase:
        return Phrase(field, text)
    return Term(field, text, truncation=truncation)


def _year(text: str, truncation: bool) -> Range | None:
    text = text.strip()
    if truncation:
        if text.isdigit() and 1 <= len(text) <= 4:
            width = 4 - len(text)
            low = int(text) * 10**width
            return Range("year", low, low + 10**width - 1)
        return None
    if text.isdigit() and len(text) <= 4:
        return Range("year", int(text), int(text))
    m = _YEAR_CMP_RE.fullmatch(text)
    if m:
        op, value = m.group(1), int(m.group(2))
        if op in (">", ">="):
            return Range("year", value, None, low_inclusive=op == ">=")
        return Range("year", None, value, high_inclusive=op == "<=")
    m = _YEAR_RANGE_RE.fullmatch(text)
    if m and (m.group(1) or m.group(2)):
        low = int(m.group(1)) if m.group(1) else None
        high = int(m.group(2)) if m.group(2) else None
        return Range("year", low, high)
    return None
