"""Search backends behind one interface: SQLite FTS5 (embedded default) and PostgreSQL.

A backend compiles a query tree (``consortia.search.query``) into one full-text expression (an
FTS5 MATCH string, a tsquery) — every node can be: keyword fields, facets, year ranges and
``MatchAll`` are tokens of the ``keys`` column (see ``consortia.search.index``) — and runs it:
count, ranked or sorted page, facet counts, and scan of an index's vocabulary. It also writes
the documents ``index.build_document`` makes. The service picks the backend from the engine's
dialect.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from consortia.db import fetch_all, placeholders
from consortia.search import cjk
from consortia.search.index import (
    ALL_TOKEN,
    FACETS,
    KEY_PREFIX,
    Document,
    key_token,
    year_cover,
)
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

# Field weights for relevance (title > author > subject > the rest).
WEIGHTS = {"title": 10.0, "author": 5.0, "subject": 3.0, "publisher": 2.0, "rest": 1.0, "keys": 0.0}
# Facet counts are exact up to this many matching clusters; beyond, they are estimated from a
# sample of about as many (the matches in evenly spread windows of cluster ids: the same
# sample on every backend, independent of ranking, and read without a pass over the whole
# result), and the service says so (``facets_sampled``). Counting costs 2-3 µs per cluster
# (eight to ten facet rows each, grouped): 500 keeps it to 1-2 ms.
FACET_CAP = 500
NEVER = "znone"  # a keys token no document has: what an empty condition compiles to


@dataclass(frozen=True, slots=True)
class SortKey:
    """``field``: relevance, title, author, year or publisher."""

    field: str
    ascending: bool = True


SORT_FIELDS = ("relevance", "title", "author", "year", "publisher")


class Backend(ABC):
    """One search engine. ``expr`` arguments are what ``compile`` returned."""

    name: str
    AND = " AND "
    OR = " OR "

    # --- compiling ----------------------------------------------------------------------

    def compile(self, node: Node) -> str:
        if isinstance(node, And):
            return self.AND.join(f"({self.compile(i)})" for i in node.items)
        if isinstance(node, Or):
            return self.OR.join(f"({self.compile(i)})" for i in node.items)
        if isinstance(node, Not):
            return self.not_(self.compile(node.base), self.compile(node.exclude))
        if isinstance(node, MatchAll):
            return self.keys([ALL_TOKEN], prefix=False)
        if isinstance(node, Range):
            tokens = year_cover(
                _bound(node.low, node.low_inclusive, +1), _bound(node.high, node.high_inclusive, -1)
            )
            return self.keys(tokens or [NEVER], prefix=False)
        return self.leaf(node)

    def leaf(self, node: Term | Phrase) -> str:
        phrase = isinstance(node, Phrase) or (isinstance(node, Term) and node.relation == "==")
        if node.field in KEYWORD_FIELDS:
            kind = node.field
            alts = cjk.alternatives(kind, node.text, truncation=node.truncation)
            if not alts or kind not in KEY_PREFIX:
                return self.keys([NEVER], prefix=False)
            return self.keys([key_token(kind, alts[0].tokens[0])], prefix=alts[0].prefix)
        alts = cjk.alternatives(node.field, node.text, truncation=node.truncation, phrase=phrase)
        if not alts:
            return self.keys([NEVER], prefix=False)
        return self.text(node.field, alts)

    @abstractmethod
    def keys(self, tokens: Sequence[str], *, prefix: bool) -> str:
        """Any of these tokens of the keys column (``prefix``: each is a prefix)."""

    @abstractmethod
    def text(self, field: str, alternatives: Sequence[cjk.Alternative]) -> str:
        """Any of the alternatives in the field (any = every text column)."""

    @abstractmethod
    def not_(self, base: str, exclude: str) -> str: ...

    # --- running ------------------------------------------------------------------------

    def pinned(self, conn: Connection) -> AbstractContextManager[None]:
        """Within this, the running methods answer from one view of the index (a backend
        that keeps a copy of it uses one copy throughout)."""
        return nullcontext()

    @abstractmethod
    def count(self, conn: Connection, expr: str) -> int: ...

    @abstractmethod
    def page(
        self,
        conn: Connection,
        expr: str,
        *,
        offset: int,
        limit: int,
        sort: Sequence[SortKey],
        boost: str | None,
        rank: str | None,
        rank_covers: bool = False,
        within: Sequence[int] | None = None,
    ) -> list[int]:
        """Cluster ids of one page: ``boost`` matches first (exact ISBN/ISSN hits), then the
        sort keys (relevance when none: how well a match fits ``rank``; no ``rank``, no
        relevance order), then cluster id. ``rank_covers``: every match of ``expr`` matches
        ``rank`` too (a backend may then find the ranked matches through ``rank``); ``within``:
        then also every match of ``expr`` (ascending ids), when the caller has them."""

    id_column: str  # what matching_ids selects as id

    @abstractmethod
    def matching_ids(self, conn: Connection) -> str:
        """SQL selecting ``id`` of every match of the expression given as the first DBAPI
        parameter (a subquery for joins)."""

    def facet_counts(
        self,
        conn: Connection,
        expr: str,
        facets: Sequence[str],
        windows: Sequence[tuple[int, int]] = (),
    ) -> tuple[dict[str, dict[str, int]], int]:
        """Facet counts over the matching clusters — only those with an id in one of the
        ``windows`` (inclusive id ranges) when there are windows — and how many clusters that
        is. One statement: the index seeks to each window and reads only the matches in it,
        which are joined to their facet rows."""
        out: dict[str, dict[str, int]] = {f: {} for f in facets}
        if not facets:
            return out, 0
        mark = placeholders(conn, 1)
        if windows:
            one = f"{self.matching_ids(conn)} AND {self.id_column} BETWEEN {mark} AND {mark}"
            sample = " UNION ALL ".join([one] * len(windows))
            args: tuple[object, ...] = tuple(v for w in windows for v in (expr, *w))
        else:
            sample, args = self.matching_ids(conn), (expr,)
        # The sample's size rides along as a row with an empty facet name.
        rows = conn.exec_driver_sql(
            f"WITH m AS MATERIALIZED ({sample}) "
            "SELECT f.facet, f.value, count(*) FROM m JOIN search_facets f "
            f"ON f.cluster_id = m.id WHERE {_facet_filter(conn, facets)}"
            "GROUP BY f.facet, f.value "
            "UNION ALL SELECT '', '', count(*) FROM m",
            (*args, *_facet_args(facets)),
        )
        n = 0
        for facet, value, count in rows:
            if facet:
                out[facet][value] = int(count)
            else:
                n = int(count)
        return out, n

    def first_ids(self, conn: Connection, expr: str, n: int) -> list[int]:
        """The ``n`` lowest cluster ids among the matches, in order."""
        rows = fetch_all(
            conn, f"{self.matching_ids(conn)} ORDER BY {self.id_column} LIMIT {int(n)}", (expr,)
        )
        return [int(i) for (i,) in rows]

    def facet_counts_of(
        self, conn: Connection, ids: Sequence[int], facets: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """Facet counts over these clusters."""
        out: dict[str, dict[str, int]] = {f: {} for f in facets}
        if not ids or not facets:
            return out
        rows = conn.exec_driver_sql(
            "SELECT facet, value, count(*) FROM search_facets f "
            f"WHERE cluster_id IN ({placeholders(conn, len(ids))}) "
            f"AND {_facet_filter(conn, facets)}"
            "GROUP BY facet, value",
            (*ids, *_facet_args(facets)),
        )
        for facet, value, count in rows:
            out[facet][value] = int(count)
        return out

    def id_range(self, conn: Connection) -> tuple[int, int]:
        """The lowest and highest cluster id in the index (0, 0 when empty)."""
        row = conn.exec_driver_sql(
            "SELECT (SELECT min(cluster_id) FROM search_documents), "
            "(SELECT max(cluster_id) FROM search_documents)"
        ).one()
        return int(row[0] or 0), int(row[1] or 0)

    @abstractmethod
    def all_count(self, conn: Connection) -> int: ...

    @abstractmethod
    def scan(
        self, conn: Connection, column: str, start: str, *, before: int = 0, after: int = 10
    ) -> list[tuple[str, int]]:
        """Index terms of a column (title, author, subject, publisher) in order, with the
        number of clusters each is in: ``before`` terms before ``start``, then ``after`` terms
        from ``start`` on."""

    # --- writing ------------------------------------------------------------------------

    @abstractmethod
    def replace_documents(self, conn: Connection, ids: Sequence[int], docs: list[Document]) -> None:
        """Drop the documents of ``ids`` and write ``docs`` (clusters gone have none)."""

    @abstractmethod
    def insert_documents(self, conn: Connection, docs: list[Document]) -> None: ...

    def replace_range(
        self, conn: Connection, first: int, last: int | None, docs: list[Document]
    ) -> None:
        """Drop the documents of clusters ``first..last`` (``None``: no upper end) and write
        ``docs``."""
        where = "cluster_id >= :first" + ("" if last is None else " AND cluster_id <= :last")
        ids = [
            int(i)
            for i in conn.scalars(
                text(f"SELECT cluster_id FROM search_documents WHERE {where}"),
                {"first": first, "last": last},
            )
        ]
        self.replace_documents(conn, ids, docs)

    @abstractmethod
    def clear(self, conn: Connection) -> None:
        """Empty the index (only used when it is empty already or about to be rebuilt)."""

    def finish_rebuild(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """After ``reindex_all``: optimise the index."""


def _bound(value: int | None, inclusive: bool, step: int) -> int | None:
    if value is None:
        return None
    return value if inclusive else value + step


def _facet_filter(conn: Connection, facets: Sequence[str]) -> str:
    """The condition on ``f.facet`` for these facets. None when all are wanted; else tested
    row by row (unary +): as an index constraint the IN would seek each cluster's rows once
    per facet named."""
    if set(facets) >= set(FACETS):
        return "1 = 1 "
    return f"+f.facet IN ({placeholders(conn, len(facets))}) "


def _facet_args(facets: Sequence[str]) -> tuple[str, ...]:
    return () if set(facets) >= set(FACETS) else tuple(facets)


def facet_rows(docs: list[Document]) -> list[tuple[int, str, str]]:
    return [row for d in docs for row in d.facet_rows()]


_BACKENDS: dict[str, Backend] = {}


def backend_for(dialect: str) -> Backend:
    """The backend of a SQLAlchemy dialect name (sqlite, postgresql)."""
    backend = _BACKENDS.get(dialect)
    if backend is None:
        if dialect == "sqlite":
            from consortia.search.backends.sqlite_fts5 import SQLiteFTS5

            backend = SQLiteFTS5()
        elif dialect == "postgresql":
            from consortia.search.backends.postgres import PostgresFTS

            backend = PostgresFTS()
        else:
            raise RuntimeError(f"no search backend for the {dialect} dialect")
        _BACKENDS[dialect] = backend
    return backend
