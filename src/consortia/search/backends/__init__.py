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
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from consortia.search import cjk
from consortia.search.index import ALL_TOKEN, KEY_PREFIX, Document, key_token, year_cover
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
# sample of about as many (every k-th cluster id among the matches: the same sample on every
# backend, independent of ranking, so the sample costs no ranking of the whole result), and
# the service says so (``facets_sampled``). Counting costs 2-3 µs per cluster (eight facet rows
# each, grouped): 1,000 keeps it to 2-3 ms.
FACET_CAP = 1_000
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
    ) -> list[int]:
        """Cluster ids of one page: ``boost`` matches first (exact ISBN/ISSN hits), then the
        sort keys (relevance when none: how well a match fits ``rank``; no ``rank``, no
        relevance order), then cluster id."""

    @abstractmethod
    def matching_ids(self, conn: Connection) -> str:
        """SQL selecting ``id`` of every match of the expression given as the first DBAPI
        parameter (a subquery for joins)."""

    def facet_counts(
        self, conn: Connection, expr: str, facets: Sequence[str], stride: int = 1
    ) -> tuple[dict[str, dict[str, int]], int]:
        """Facet counts over the matching clusters whose id is a multiple of ``stride`` (1:
        all of them), and how many clusters that is. One statement: the matches are read
        once, by id, and only the sampled ones are joined to their facet rows."""
        out: dict[str, dict[str, int]] = {f: {} for f in facets}
        if not facets:
            return out, 0
        sample = f"({self.matching_ids(conn)})"
        mark = marks(conn, 1)
        if stride > 1:
            mod = "%" if mark == "?" else "%%"  # psycopg's format style: % written twice
            sample = f"(SELECT id FROM {sample} a WHERE id {mod} {mark} = 0)"
        args: tuple[object, ...] = (expr, stride) if stride > 1 else (expr,)
        # The sample's size rides along as a row with an empty facet name.
        rows = conn.exec_driver_sql(
            f"WITH m AS MATERIALIZED {sample} "
            "SELECT f.facet, f.value, count(*) FROM m JOIN search_facets f "
            f"ON f.cluster_id = m.id WHERE f.facet IN ({marks(conn, len(facets))}) "
            "GROUP BY f.facet, f.value "
            "UNION ALL SELECT '', '', count(*) FROM m",
            (*args, *facets),
        )
        n = 0
        for facet, value, count in rows:
            if facet:
                out[facet][value] = int(count)
            else:
                n = int(count)
        return out, n

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


def facet_rows(docs: list[Document]) -> list[tuple[int, str, str]]:
    return [row for d in docs for row in d.facet_rows()]


def marks(conn: Connection, n: int) -> str:
    """n DBAPI placeholders: the bulk paths talk to the driver directly (executemany with
    tuples), several times cheaper per row than SQLAlchemy's parameter processing."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


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
