"""A segment: an in-memory copy of the SQLite search index that answers FTS5 expressions on arrays.

FTS5 answers a query by walking posting lists in the database file, and ranks with ``bm25``,
which reads every match's position lists (a big result costs about a microsecond a match on
top of the match itself). A segment holds the same index — the tokens of ``search_documents``
and the rows of ``search_facets`` — as NumPy arrays in files beside the database, memory-mapped
by every process (one copy in the page cache for all of them), and evaluates the very
expressions the SQLite backend compiles, parsed back from their text, with the same results:

* the same matches (phrases by token positions within a column, prefixes by a range of the
  sorted vocabulary, column filters, AND / OR / NOT);
* the same order: FTS5's ``bm25`` formula (k1 1.2, b 0.75, the column weights, each phrase's
  IDF over the whole table, a row's length in tokens of all its columns) computed on arrays
  with the same floating-point operations, ties by cluster id;
* the same facet rows.

It is used only while ``search_state.generation`` (advanced by every change of
``search_documents``, migration 0009) equals the generation it was built at: a search after a
change runs the SQL until a new segment is built (``consortia search segment``, or the
background task once changes have stopped for a minute). So a segment is never stale; at
worst it is unused.

Layout of ``<database>.segments/g<generation>/`` (``.npy`` files and ``meta.json``): ``doc_ids``
(cluster ids, ascending: an array position is a document's ordinal), ``doc_len``; the
vocabulary sorted by code point (``vocab`` bytes and ``vocab_off``); postings per (token,
column) — columns 0-5 as ``COLUMNS``, 6 the five text columns together (the any-field) —
``post_ptr``, ``post_doc`` (ordinals) and ``post_w`` (occurrences times the column's weight);
positions per (token, text column): ``occ_ptr``, ``occ`` (ordinal << 20 | position); facets per
document: ``facet_ptr``, ``facet_val`` (an index into ``meta.json``'s value list).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import shutil
import tempfile
import threading
import time
from array import array
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from consortia.db import fetch_all
from consortia.search.backends import WEIGHTS
from consortia.search.index import COLUMNS, TEXT_COLUMNS

FORMAT = 1
ANY = len(COLUMNS)  # the column number of the any-field postings
NCOL = ANY + 1
NTEXT = len(TEXT_COLUMNS)
POS_BITS = 20  # positions within a column; a document's ordinal above them
# FTS5's bm25 constants (fts5_aux.c).
K1 = 1.2
B = 0.75
_WEIGHT = [WEIGHTS[c] for c in COLUMNS]

Ints = NDArray[np.int64]
Ords = NDArray[np.int32]
_EMPTY = np.empty(0, dtype=np.int32)


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Phrase:
    """Tokens that follow each other in one of ``cols`` (the last one a prefix if ``prefix``)."""

    tokens: tuple[str, ...]
    prefix: bool
    cols: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Op:
    kind: str  # AND, OR, NOT (NOT: the first item without any of the others)
    items: tuple[Expr, ...]


Expr = Phrase | Op

_TOKEN_RE = re.compile(r'\s*(?:(\()|(\))|\{([^}]*)\}|(:)|"([^"]*)"|(\*)|([A-Za-z_]+))')


class Unsupported(ValueError):
    """An expression outside what the SQLite backend compiles: the caller runs the SQL."""


@lru_cache(maxsize=512)
def parse(expr: str) -> Expr:
    """The tree of an FTS5 expression as ``SQLiteFTS5`` writes them: quoted phrases with an
    optional ``*``, column filters (``{a b} :`` or ``name :``), parentheses, AND, OR, NOT
    (binding NOT, then AND, then OR, as FTS5 does). Phrases keep their order of appearance:
    it is FTS5's phrase numbering."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = expr.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise Unsupported(f"cannot read {text[pos : pos + 20]!r}")
        pos = m.end()
        if m.group(1):
            tokens.append(("(", ""))
        elif m.group(2):
            tokens.append((")", ""))
        elif m.group(3) is not None:
            tokens.append(("cols", m.group(3)))
        elif m.group(4):
            tokens.append((":", ""))
        elif m.group(5) is not None:
            tokens.append(("phrase", m.group(5)))
        elif m.group(6):
            tokens.append(("*", ""))
        else:
            word = m.group(7)
            tokens.append((word, "") if word in ("AND", "OR", "NOT") else ("cols", word))
    parser = _Parser(tokens)
    tree = parser.or_(tuple(range(NCOL - 1)))
    if parser.i != len(tokens):
        raise Unsupported(f"unexpected {tokens[parser.i][0]!r}")
    return tree


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else ""

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            raise Unsupported(f"expected {kind!r}")
        value = self.tokens[self.i][1]
        self.i += 1
        return value

    def binary(self, kind: str, item: Any, cols: tuple[int, ...]) -> Expr:
        items = [item(cols)]
        while self.peek() == kind:
            self.i += 1
            items.append(item(cols))
        return items[0] if len(items) == 1 else Op(kind, tuple(items))

    def or_(self, cols: tuple[int, ...]) -> Expr:
        return self.binary("OR", self.and_, cols)

    def and_(self, cols: tuple[int, ...]) -> Expr:
        return self.binary("AND", self.not_, cols)

    def not_(self, cols: tuple[int, ...]) -> Expr:
        return self.binary("NOT", self.primary, cols)

    def primary(self, cols: tuple[int, ...]) -> Expr:
        kind = self.peek()
        if kind == "(":
            self.i += 1
            tree = self.or_(cols)
            self.take(")")
            return tree
        if kind == "cols":
            names = self.take("cols").split()
            self.take(":")
            try:
                named = {COLUMNS.index(n) for n in names}
            except ValueError as e:
                raise Unsupported(f"unknown column in {names}") from e
            return self.primary(tuple(c for c in cols if c in named))
        if kind == "phrase":
            words = tuple(self.take("phrase").split())
            prefix = self.peek() == "*"
            if prefix:
                self.i += 1
            if not words:
                raise Unsupported("empty phrase")
            if len(words) > 1 and any(c >= NTEXT for c in cols):
                # Positions are kept for the text columns only (keys are single tokens).
                raise Unsupported("a phrase of several tokens over the keys column")
            return Phrase(words, prefix, cols)
        raise Unsupported(f"unexpected {kind or 'end'!r}")


def phrases(tree: Expr) -> list[Phrase]:
    """The phrases of a tree in order of appearance (bm25 scores each, duplicates too)."""
    if isinstance(tree, Phrase):
        return [tree]
    return [p for item in tree.items for p in phrases(item)]


# --------------------------------------------------------------------------- set operations


def _find(sorted_: NDArray[Any], keys: NDArray[Any]) -> tuple[Ints, NDArray[np.bool_]]:
    """For each key, its position in ``sorted_`` and whether it is there (a binary search
    each; a position is only meaningful where found)."""
    at = np.searchsorted(sorted_, keys)
    at[at == len(sorted_)] = 0
    return at, np.asarray(sorted_[at] == keys) if len(sorted_) else np.zeros(len(keys), bool)


def intersect(a: Ords, b: Ords) -> Ords:
    """Sorted unique ordinals in both (the shorter probed in the longer)."""
    if len(a) > len(b):
        a, b = b, a
    return a[member(a, b)] if len(a) else _EMPTY


def member(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.bool_]:
    """For each of ``a``, whether it is in ``b`` (both sorted)."""
    return _find(b, a)[1]


def _sum_by_doc(docs: Ords, w: NDArray[np.float64]) -> tuple[Ords, NDArray[np.float64]]:
    """Unique documents, ascending, with their weights summed."""
    if not len(docs):
        return _EMPTY, np.empty(0)
    uniq, inverse = np.unique(docs, return_inverse=True)
    return uniq.astype(np.int32, copy=False), np.bincount(inverse, weights=w).astype(np.float64)


# --------------------------------------------------------------------------- the segment


class Segment:
    """One built segment, memory-mapped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: segment format {meta.get('format')}, not {FORMAT}")
        self.generation = int(meta["generation"])
        self.facet_values: list[tuple[str, str]] = [tuple(v) for v in meta["facet_values"]]
        self.tokens_total = int(meta["tokens_total"])

        def arr(name: str) -> Any:
            # A plain ndarray view of the mapping (a memmap would wrap every result).
            return np.asarray(np.load(path / f"{name}.npy", mmap_mode="r"))

        self.doc_ids: Ints = arr("doc_ids")
        self.doc_len: NDArray[np.float64] = arr("doc_len")
        with open(path / "vocab.bin", "rb") as f:
            # Terms are read as bytes slices of the mapping: no copy of the vocabulary.
            self._vocab = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if _size(f) else b""
        self.vocab_off: Ints = arr("vocab_off")
        self.post_ptr: Ints = arr("post_ptr")
        self.post_doc: Ords = arr("post_doc")
        self.post_w: NDArray[np.float32] = arr("post_w")
        self.occ_ptr: Ints = arr("occ_ptr")
        self.occ: Ints = arr("occ")
        self.facet_ptr: Ints = arr("facet_ptr")
        self.facet_val: NDArray[np.int32] = arr("facet_val")
        self.docs = len(self.doc_ids)
        self.avgdl = self.tokens_total / self.docs if self.docs else 0.0
        self.terms = len(self.vocab_off) - 1
        self._matches: dict[str, Ords] = {}
        self._phrases: dict[Phrase, tuple[Ords, NDArray[np.float64]]] = {}
        self._lock = threading.Lock()

    # --- vocabulary ---------------------------------------------------------------------

    def _term(self, i: int) -> bytes:
        return self._vocab[int(self.vocab_off[i]) : int(self.vocab_off[i + 1])]

    def _bisect(self, key: bytes) -> int:
        lo, hi = 0, self.terms
        while lo < hi:
            mid = (lo + hi) // 2
            if self._term(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def token_range(self, token: str, prefix: bool) -> tuple[int, int]:
        """The vocabulary numbers of ``token`` (or of every token it begins, for a prefix)."""
        key = token.encode()
        lo = self._bisect(key)
        if prefix:
            # No UTF-8 text has the byte 0xff: key + 0xff sorts after every token it begins.
            return lo, self._bisect(key + b"\xff")
        return (lo, lo + 1) if lo < self.terms and self._term(lo) == key else (lo, lo)

    # --- postings -----------------------------------------------------------------------

    def _postings(self, lo: int, hi: int, col: int) -> tuple[Ords, NDArray[np.float64]]:
        if hi - lo == 1:
            a, b = self.post_ptr[lo * NCOL + col], self.post_ptr[lo * NCOL + col + 1]
            return self.post_doc[a:b], self.post_w[a:b].astype(np.float64)
        docs, ws = [], []
        for t in range(lo, hi):
            a, b = self.post_ptr[t * NCOL + col], self.post_ptr[t * NCOL + col + 1]
            if b > a:
                docs.append(self.post_doc[a:b])
                ws.append(self.post_w[a:b])
        if not docs:
            return _EMPTY, np.empty(0)
        return _sum_by_doc(np.concatenate(docs), np.concatenate(ws).astype(np.float64))

    def _occurrences(self, lo: int, hi: int, col: int) -> Ints:
        parts = [
            self.occ[self.occ_ptr[t * NTEXT + col] : self.occ_ptr[t * NTEXT + col + 1]]
            for t in range(lo, hi)
        ]
        parts = [p for p in parts if len(p)]
        if not parts:
            return np.empty(0, dtype=np.int64)
        return parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))

    def phrase(self, p: Phrase) -> tuple[Ords, NDArray[np.float64]]:
        """The documents with the phrase in one of its columns, ascending, and for each the
        number of its occurrences there times the column's weight (FTS5's phrase frequency
        for bm25). A search asks for the same phrase several times (matching, the title tier,
        ranking): the last few are kept."""
        with self._lock:
            hit = self._phrases.get(p)
        if hit is None:
            hit = self._phrase(p)
            with self._lock:
                if len(self._phrases) >= 32:
                    self._phrases.pop(next(iter(self._phrases)))
                self._phrases[p] = hit
        return hit

    def _phrase(self, p: Phrase) -> tuple[Ords, NDArray[np.float64]]:
        last = len(p.tokens) - 1
        ranges = [self.token_range(t, p.prefix and i == last) for i, t in enumerate(p.tokens)]
        if any(lo == hi for lo, hi in ranges):
            return _EMPTY, np.empty(0)
        if len(p.tokens) == 1:
            lo, hi = ranges[0]
            if set(p.cols) == set(range(NTEXT)):
                return self._postings(lo, hi, ANY)
            if len(p.cols) == 1:
                return self._postings(lo, hi, p.cols[0])
            parts = [self._postings(lo, hi, c) for c in p.cols]
            return _sum_by_doc(
                np.concatenate([d for d, _ in parts]), np.concatenate([w for _, w in parts])
            )
        docs, ws = [], []
        for col in p.cols:
            starts = self._occurrences(*ranges[0], col)
            for i, (lo, hi) in enumerate(ranges[1:], start=1):
                if not len(starts):
                    break
                nxt = self._occurrences(lo, hi, col) - i
                starts = starts[member(starts, nxt)]
            if len(starts):
                d = (starts >> POS_BITS).astype(np.int32)
                docs.append(d)
                ws.append(np.full(len(d), _WEIGHT[col]))
        if not docs:
            return _EMPTY, np.empty(0)
        return _sum_by_doc(np.concatenate(docs), np.concatenate(ws))

    # --- matching -----------------------------------------------------------------------

    def match(self, expr: str) -> Ords:
        """Ordinals of the documents matching an FTS5 expression, ascending."""
        with self._lock:
            hit = self._matches.get(expr)
        if hit is None:
            hit = self._eval(parse(expr))
            with self._lock:
                if len(self._matches) >= 16:
                    self._matches.pop(next(iter(self._matches)))
                self._matches[expr] = hit
        return hit

    def _eval(self, tree: Expr) -> Ords:
        if isinstance(tree, Phrase):
            return self.phrase(tree)[0]
        sets = [self._eval(i) for i in tree.items]
        out = sets[0]
        if tree.kind == "AND":
            for s in sorted(sets[1:], key=len):
                out = intersect(out, s)
        elif tree.kind == "OR":
            out = np.union1d(out, np.concatenate(sets[1:])).astype(np.int32, copy=False)
        else:
            for s in sets[1:]:
                out = out[~member(out, s)]
        return out

    def ordinals(self, cluster_ids: Sequence[int]) -> Ords:
        """Ordinals of these cluster ids (those with a document), ascending."""
        ids = np.asarray(cluster_ids, dtype=np.int64)
        if not len(ids) or not self.docs:
            return _EMPTY
        if not (ids[1:] > ids[:-1]).all():  # a result's ids come sorted: no need to sort them
            ids = np.unique(ids)
        at, found = _find(self.doc_ids, ids)
        return at[found].astype(np.int32)

    # --- ranking ------------------------------------------------------------------------

    def bm25(self, expr: str, docs: Ords) -> NDArray[np.float64]:
        """FTS5's ``bm25(search_fts, <weights>)`` of the documents for a MATCH of ``expr``:
        negative, lower is better. The same operations in the same order as fts5_aux.c."""
        score = np.zeros(len(docs))
        if not len(docs):
            return score
        n = float(self.docs)
        norm = K1 * (1 - B + B * self.doc_len[docs] / self.avgdl)
        counted: list[tuple[Phrase, NDArray[np.bool_] | None]] = []
        self._counted(parse(expr), docs, None, counted)
        for p, where in counted:
            pd, pw = self.phrase(p)
            hits = len(pd)
            if not hits:
                continue  # no occurrence anywhere: it adds nothing
            idf = math.log((n - hits + 0.5) / (hits + 0.5))  # libm's log, as FTS5
            if idf <= 0.0:
                idf = 1e-6
            at, found = _find(pd, docs)
            if where is not None:
                found &= where
            f = np.where(found, pw[at], 0.0)
            score += idf * ((f * (K1 + 1.0)) / (f + norm))
        return -1.0 * score

    def _counted(
        self,
        tree: Expr,
        docs: Ords,
        where: NDArray[np.bool_] | None,
        out: list[tuple[Phrase, NDArray[np.bool_] | None]],
    ) -> None:
        """Each phrase with the documents (of ``docs``, all matching the root) where FTS5
        counts its occurrences: those where every AND and NOT above it matches — FTS5 reads a
        phrase's positions only where its node stands on the row, and an AND's children move
        together to the AND's own next match — and none for an excluded phrase (NOT's right
        side stands past the row). In phrase order."""
        if isinstance(tree, Phrase):
            out.append((tree, where))
            return
        if tree.kind == "OR":
            for item in tree.items:
                self._counted(item, docs, where, out)
            return
        here = member(docs, self._eval(tree))
        if where is not None:
            here &= where
        self._counted(tree.items[0], docs, here, out)
        never = np.zeros(len(docs), dtype=bool)
        for item in tree.items[1:]:
            if tree.kind == "AND":
                self._counted(item, docs, here, out)
            else:
                out.extend((p, never) for p in phrases(item))

    def page(
        self,
        expr: str,
        *,
        offset: int,
        limit: int,
        boost: str | None,
        ranked_by: str | None,
        within: str | None = None,
    ) -> list[int]:
        """Cluster ids of one page of the matches of ``expr`` (kept to the matches of
        ``within`` too): ``boost`` matches first, then by bm25 of ``ranked_by`` when given,
        then by cluster id."""
        docs = self.match(expr)
        if within is not None:
            docs = intersect(docs, self.match(within))
        k = offset + limit
        groups = [docs]
        if boost is not None:
            first = member(docs, self.match(boost))
            groups = [docs[first], docs[~first]]
        out: list[NDArray[np.int32]] = []
        for g in groups:
            out.append(g if ranked_by is None else _best(g, self.bm25(ranked_by, g), k))
            if sum(len(o) for o in out) >= k:
                break
        ords = np.concatenate(out)[offset:k] if out else _EMPTY
        ids: list[int] = self.doc_ids[ords].tolist()
        return ids

    # --- facets -------------------------------------------------------------------------

    def facet_counts(self, docs: Ords, facets: Sequence[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {f: {} for f in facets}
        if not len(docs) or not facets:
            return out
        starts = self.facet_ptr[docs]
        lens = self.facet_ptr[docs + 1] - starts
        total = int(lens.sum())
        if not total:
            return out
        at = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
        counts = np.bincount(self.facet_val[at], minlength=len(self.facet_values))
        for v in np.flatnonzero(counts).tolist():
            facet, value = self.facet_values[v]
            if facet in out:
                out[facet][value] = int(counts[v])
        return out

    def in_windows(self, docs: Ords, windows: Sequence[tuple[int, int]]) -> Ords:
        """The documents with a cluster id in one of the (inclusive) windows; a document in
        two windows twice, as the SQL's UNION ALL of windows has it."""
        if not windows:
            return _EMPTY
        bounds = np.asarray(windows, dtype=np.int64)
        low = np.searchsorted(self.doc_ids, bounds[:, 0], "left")
        high = np.searchsorted(self.doc_ids, bounds[:, 1], "right")
        starts, ends = np.searchsorted(docs, low), np.searchsorted(docs, high)
        return np.concatenate(
            [docs[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
        )


def _size(f: Any) -> int:
    return os.fstat(f.fileno()).st_size


def _best(docs: Ords, bm25: NDArray[np.float64], k: int) -> Ords:
    """The ``k`` best documents (lowest bm25, then lowest ordinal), in order."""
    if len(docs) > 4 * k:
        cut = np.partition(bm25, k - 1)[k - 1]
        keep = bm25 <= cut
        docs, bm25 = docs[keep], bm25[keep]
    return docs[np.lexsort((docs, bm25))][:k]


# --------------------------------------------------------------------------- where segments live


def directory(conn: Connection) -> Path | None:
    """Where the segments of this SQLite database are (None for an in-memory database)."""
    if conn.dialect.name != "sqlite":
        return None
    return _directory(conn.engine.url.database or "")


@lru_cache(maxsize=64)
def _directory(name: str) -> Path | None:
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name).resolve().with_name(Path(name).name + ".segments")


def generation(conn: Connection) -> int:
    # On the driver's cursor: asked several times a search, and SQLAlchemy's statement
    # machinery costs several times the read.
    rows = fetch_all(conn, "SELECT generation FROM search_state WHERE id = 1")
    return int(rows[0][0]) if rows else 0


_loaded: dict[Path, Segment] = {}
_loaded_lock = threading.Lock()


def current(conn: Connection) -> Segment | None:
    """The segment that is exactly the index as this connection sees it, if one is built."""
    where = directory(conn)
    if where is None:
        return None
    gen = generation(conn)
    seg = _loaded.get(where)
    if seg is not None and seg.generation == gen:
        return seg
    path = where / f"g{gen}"
    if not (path / "meta.json").exists():
        return None
    with _loaded_lock:
        seg = _loaded.get(where)
        if seg is None or seg.generation != gen:
            seg = _loaded[where] = Segment(path)
    return seg


def forget() -> None:
    """Drop the segments this process has loaded (tests)."""
    with _loaded_lock:
        _loaded.clear()


# --------------------------------------------------------------------------- building


@dataclass
class Built:
    path: Path
    generation: int
    documents: int
    tokens: int
    terms: int
    bytes: int
    seconds: float
    fresh: bool  # False: a segment of this generation was there already

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "generation": self.generation,
            "documents": self.documents,
            "tokens": self.tokens,
            "terms": self.terms,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "fresh": self.fresh,
        }


def build(conn: Connection) -> Built:
    """Write the segment of the index as this connection's transaction sees it (one read
    transaction: the documents, the facets and the generation agree), unless there is one
    already; older segments are removed. Returns what it wrote."""
    where = directory(conn)
    if where is None:
        raise ValueError("segments are kept for SQLite databases in a file")
    started = time.perf_counter()
    gen = generation(conn)
    path = where / f"g{gen}"
    if (path / "meta.json").exists():
        return _built(path, gen, started, fresh=False)
    where.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=where))
    try:
        _write(conn, gen, tmp)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in where.iterdir():
        if old != path and old.name.startswith("g"):
            shutil.rmtree(old, ignore_errors=True)
    return _built(path, gen, started, fresh=True)


def _built(path: Path, gen: int, started: float, *, fresh: bool) -> Built:
    meta = json.loads((path / "meta.json").read_text())
    size = sum(f.stat().st_size for f in path.iterdir())
    return Built(
        path,
        gen,
        meta["documents"],
        meta["tokens_total"],
        meta["terms"],
        size,
        time.perf_counter() - started,
        fresh,
    )


def _pointers(keys: Ints, n: int) -> Ints:
    """Where each of the keys 0..n-1 starts in the sorted ``keys`` (and the end, n + 1)."""
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=ptr[1:])
    return ptr


def _write(conn: Connection, gen: int, out: Path) -> None:
    vocab: defaultdict[str, int] = defaultdict(count().__next__)
    tok = array("i")  # every token of every column, document by document
    lengths = array("i")  # tokens per (document, column)
    doc_ids = array("q")
    cur = conn.connection.cursor()
    try:
        cur.execute(
            f"SELECT cluster_id, {', '.join(COLUMNS)} FROM search_documents ORDER BY cluster_id"
        )
        while rows := cur.fetchmany(10_000):
            for row in rows:
                doc_ids.append(row[0])
                for text in row[1:]:
                    numbers = [vocab[t] for t in text.split()]
                    tok.extend(numbers)
                    lengths.append(len(numbers))
    finally:
        cur.close()
    n_docs = len(doc_ids)
    ncols = len(COLUMNS)
    n_terms = len(vocab)
    # Vocabulary in code point order (UTF-8 byte order is the same): prefixes are ranges.
    terms = sorted(vocab)
    renumber = np.empty(n_terms, dtype=np.int64)
    renumber[np.fromiter((vocab[t] for t in terms), dtype=np.int64, count=n_terms)] = np.arange(
        n_terms
    )
    encoded = [t.encode() for t in terms]
    vocab_off = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=vocab_off[1:])
    (out / "vocab.bin").write_bytes(b"".join(encoded))

    # 32-bit arrays where the values fit (a token of the text is one entry in each): the
    # build's memory is mostly these, 15 million entries for a million records.
    t = renumber.astype(np.int32)[np.frombuffer(tok, dtype=np.int32)]
    lens = np.frombuffer(lengths, dtype=np.int32)
    group = np.arange(len(lens), dtype=np.int32)  # document * ncols + column
    doc = np.repeat(group // ncols, lens)
    col = np.repeat((group % ncols).astype(np.int8), lens)
    pos = np.arange(len(t), dtype=np.int64) - np.repeat(
        np.cumsum(lens, dtype=np.int64) - lens, lens
    )
    if len(pos) and int(pos.max()) >= 1 << POS_BITS:
        raise ValueError("a column of over a million tokens")
    pos = pos.astype(np.int32)
    doc_len = (
        lens.reshape(-1, ncols).sum(axis=1, dtype=np.int64).astype(np.float64)
        if n_docs
        else np.empty(0)
    )
    weight = np.asarray(_WEIGHT, dtype=np.float32)[col]

    # Postings: (token, column) and (token, any-field) pairs, each document once with its
    # weighted count.
    is_text = col < NTEXT
    p_key = np.concatenate([t * NCOL + col, t[is_text] * NCOL + ANY])
    p_doc = np.concatenate([doc, doc[is_text]])
    p_w = np.concatenate([weight, weight[is_text]])
    combined = p_key.astype(np.int64) * max(n_docs, 1) + p_doc
    order = np.argsort(combined, kind="stable")
    combined = combined[order]
    change = np.ones(len(combined), dtype=bool)
    change[1:] = combined[1:] != combined[:-1]
    del combined
    starts = np.flatnonzero(change)
    post_key = p_key[order][starts]
    post_doc = p_doc[order][starts].astype(np.int32)
    post_w = (
        np.add.reduceat(p_w[order].astype(np.float64), starts).astype(np.float32)
        if len(starts)
        else np.empty(0, np.float32)
    )
    del order, p_key, p_doc, p_w
    post_ptr = _pointers(post_key, n_terms * NCOL)

    # Positions of the text columns, by (token, column), in document and position order.
    o_key = t[is_text] * NTEXT + col[is_text]
    o_order = np.argsort(o_key, kind="stable")
    occ = (doc[is_text][o_order].astype(np.int64) << POS_BITS) | pos[is_text][o_order]
    occ_ptr = _pointers(o_key, n_terms * NTEXT)

    # Facets: each document's value numbers.
    ids = np.frombuffer(doc_ids, dtype=np.int64) if n_docs else np.empty(0, np.int64)
    values: dict[tuple[str, str], int] = {}
    f_doc = array("q")
    f_val = array("i")
    for cid, facet, value in conn.exec_driver_sql(
        "SELECT cluster_id, facet, value FROM search_facets ORDER BY cluster_id"
    ):
        f_doc.append(cid)
        f_val.append(values.setdefault((facet, value), len(values)))
    f_ord = np.searchsorted(ids, np.frombuffer(f_doc, dtype=np.int64) if f_doc else ids[:0])
    facet_ptr = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(np.bincount(f_ord, minlength=n_docs), out=facet_ptr[1:])
    facet_val = np.frombuffer(f_val, dtype=np.int32) if len(f_val) else np.empty(0, np.int32)

    arrays = {
        "doc_ids": ids,
        "doc_len": doc_len,
        "vocab_off": vocab_off,
        "post_ptr": post_ptr,
        "post_doc": post_doc,
        "post_w": post_w.astype(np.float32),
        "occ_ptr": occ_ptr,
        "occ": occ.astype(np.int64),
        "facet_ptr": facet_ptr,
        "facet_val": facet_val,
    }
    for name, a in arrays.items():
        np.save(out / f"{name}.npy", np.ascontiguousarray(a))
    meta = {
        "format": FORMAT,
        "generation": gen,
        "documents": n_docs,
        "tokens_total": len(t),
        "terms": n_terms,
        "facet_values": [list(v) for v in values],
    }
    (out / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
