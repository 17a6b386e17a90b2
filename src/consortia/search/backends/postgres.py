"""PostgreSQL: a tsvector per cluster with a GIN index.

The tsvector is written as a literal (``'token':3A,17A …``) and queries as tsquery literals, so
PostgreSQL's parser and dictionaries never touch the tokens: both sides are exactly
``cjk.index_tokens``/``cjk.alternatives``, as on SQLite. Field weights: A title, B author,
C subject, D the rest. Publisher tokens are stored twice — plain (found by any-field searches)
and as ``p:token`` (found by publisher searches) — and keyword/facet tokens as ``k:token``.
Positions leave a gap between fields so that a phrase never spans two. Relevance is
``ts_rank`` with the weights, normalised by document length.

Scan reads the vocabulary with ``ts_stat`` on catalogues up to ``SCAN_LIVE_LIMIT`` documents;
bigger ones read ``search_fts_terms``, which ``consortia search reindex`` refreshes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from consortia.db import placeholders
from consortia.search import cjk
from consortia.search.backends import Backend, SortKey, facet_rows
from consortia.search.index import BARRIER, COLUMNS, DOC_COLUMNS, Document

_WEIGHT = {"title": "A", "author": "B", "subject": "C", "publisher": "D", "rest": "D", "keys": "D"}
# ts_rank's weights are given in the order D, C, B, A.
_RANK_WEIGHTS = "'{0.1, 0.3, 0.5, 1.0}'"
_MAX_POS = 16383
_MAX_POSITIONS = 255  # per lexeme
SCAN_LIVE_LIMIT = 50_000
_SORT_COLUMNS = {
    "title": "d.sort_title",
    "author": "d.sort_author",
    "publisher": "d.sort_publisher",
    "year": "d.year",
}
_SCAN_WEIGHT = {"title": "A", "author": "B", "subject": "C", "publisher": "D"}

_INSERT_DOC = (
    f"INSERT INTO search_documents ({', '.join(DOC_COLUMNS)}) "
    f"VALUES ({', '.join('%s' for _ in DOC_COLUMNS)})"
)
_INSERT_TSV = "INSERT INTO search_fts (cluster_id, tsv) VALUES (%s, CAST(%s AS tsvector))"
_INSERT_FACET = "INSERT INTO search_facets (cluster_id, facet, value) VALUES (%s, %s, %s)"


def tsvector_literal(doc: Document) -> str:
    positions: dict[str, list[str]] = {}
    pos = 1

    def put(tokens: Sequence[str], prefix: str, weight: str) -> None:
        nonlocal pos
        for t in tokens:
            if t == BARRIER:
                pos += 1
                continue
            lst = positions.setdefault(prefix + t, [])
            if len(lst) < _MAX_POSITIONS:
                lst.append(f"{min(pos, _MAX_POS)}{weight}")
            pos += 1
        pos += 1  # a gap: phrases do not run from one field into the next

    for col in COLUMNS:
        tokens = doc.columns[col]
        if col == "keys":
            put(tokens, "k:", "D")
        else:
            put(tokens, "", _WEIGHT[col])
            if col == "publisher":
                put(tokens, "p:", "D")
    return " ".join(f"'{lex}':{','.join(ps)}" for lex, ps in positions.items())


class PostgresFTS(Backend):
    name = "postgresql"
    AND = " & "
    OR = " | "

    # --- compiling ----------------------------------------------------------------------

    def keys(self, tokens: Sequence[str], *, prefix: bool) -> str:
        star = ":*" if prefix else ""
        return " | ".join(f"'k:{t}'{star}" for t in tokens)

    def text(self, field: str, alternatives: Sequence[cjk.Alternative]) -> str:
        weight = {"title": "A", "author": "B", "subject": "C"}.get(field, "")
        pfx = "p:" if field == "publisher" else ""
        parts = []
        for alt in alternatives:
            lits = []
            for i, t in enumerate(alt.tokens):
                star = "*" if alt.prefix and i == len(alt.tokens) - 1 else ""
                suffix = f":{star}{weight}" if star or weight else ""
                lits.append(f"'{pfx}{t}'{suffix}")
            parts.append((" <-> " if alt.adjacent else " & ").join(lits))
        return " | ".join(f"({p})" for p in parts)

    def not_(self, base: str, exclude: str) -> str:
        return f"({base}) & !({exclude})"

    # --- running ------------------------------------------------------------------------

    def count(self, conn: Connection, expr: str) -> int:
        return int(
            conn.scalar(
                text("SELECT count(*) FROM search_fts WHERE tsv @@ CAST(:q AS tsquery)"),
                {"q": expr},
            )
            or 0
        )

    def all_count(self, conn: Connection) -> int:
        return int(conn.scalar(text("SELECT count(*) FROM search_documents")) or 0)

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
        order: list[str] = []
        params: dict[str, object] = {"q": expr, "limit": limit, "offset": offset}
        if boost is not None:
            order.append("(s.tsv @@ CAST(:b AS tsquery)) DESC")
            params["b"] = boost
        join = ""
        for key in sort or (SortKey("relevance"),):
            if key.field == "relevance":
                if rank is not None:
                    order.append(f"ts_rank({_RANK_WEIGHTS}, s.tsv, CAST(:r AS tsquery), 1) DESC")
                    params["r"] = rank
                continue
            col = _SORT_COLUMNS[key.field]
            join = " JOIN search_documents d ON d.cluster_id = s.cluster_id"
            empty = f"{col} IS NULL" if key.field == "year" else f"{col} = ''"
            order.append(f"({empty})")
            # Byte order, as SQLite compares: both backends sort titles the same way.
            collate = "" if key.field == "year" else ' COLLATE "C"'
            order.append(col + collate + ("" if key.ascending else " DESC"))
        order.append("s.cluster_id")
        sql = (
            f"SELECT s.cluster_id FROM search_fts s{join} WHERE s.tsv @@ CAST(:q AS tsquery) "
            f"ORDER BY {', '.join(order)} LIMIT :limit OFFSET :offset"
        )
        return [int(r) for r in conn.scalars(text(sql), params)]

    id_column = "cluster_id"

    def matching_ids(self, conn: Connection) -> str:
        return "SELECT cluster_id AS id FROM search_fts WHERE tsv @@ CAST(%s AS tsquery)"

    def scan(
        self, conn: Connection, column: str, start: str, *, before: int = 0, after: int = 10
    ) -> list[tuple[str, int]]:
        weight = _SCAN_WEIGHT[column]
        pfx = "p:" if column == "publisher" else ""
        cached = self.all_count(conn) > SCAN_LIVE_LIMIT and bool(
            conn.scalar(text("SELECT 1 FROM search_fts_terms LIMIT 1"))
        )
        if not cached:  # small catalogue, or the cache not built yet: read the index itself
            source = (
                f"(SELECT word AS term, ndoc AS doc FROM ts_stat("
                f"'SELECT tsv FROM search_fts', '{weight}')) v"
            )
            params: dict[str, object] = {}
        else:
            source = "(SELECT term, doc FROM search_fts_terms WHERE col = :col) v"
            params = {"col": column}
        # Publisher terms are the p: copies; in the other columns, no prefixed token.
        where = "term LIKE 'p:%'" if pfx else "term NOT LIKE '_:%'"
        out: list[tuple[str, int]] = []
        if before:
            rows = conn.execute(
                text(
                    f'SELECT term, doc FROM {source} WHERE {where} AND term COLLATE "C" < :t '
                    f'ORDER BY term COLLATE "C" DESC LIMIT :n'
                ),
                {**params, "t": pfx + start, "n": before * 4 + 20},
            )
            out = [(t[len(pfx) :], int(n)) for t, n in rows if not _hidden(t[len(pfx) :])]
            out = out[:before][::-1]
        rows = conn.execute(
            text(
                f'SELECT term, doc FROM {source} WHERE {where} AND term COLLATE "C" >= :t '
                f'ORDER BY term COLLATE "C" LIMIT :n'
            ),
            {**params, "t": pfx + start, "n": after * 4 + 20},
        )
        after_terms = [(t[len(pfx) :], int(n)) for t, n in rows if not _hidden(t[len(pfx) :])]
        return out + after_terms[:after]

    def refresh_terms(self, conn: Connection) -> None:
        """Rebuild the vocabulary cache that scan reads on big catalogues."""
        conn.exec_driver_sql("DELETE FROM search_fts_terms")
        for col, weight in _SCAN_WEIGHT.items():
            conn.execute(
                text(
                    "INSERT INTO search_fts_terms (col, term, doc) SELECT :col, word, ndoc "
                    f"FROM ts_stat('SELECT tsv FROM search_fts', '{weight}')"
                ),
                {"col": col},
            )

    # --- writing ------------------------------------------------------------------------

    def replace_documents(self, conn: Connection, ids: Sequence[int], docs: list[Document]) -> None:
        if ids:
            # search_fts and search_facets go with their document (ON DELETE CASCADE).
            args = tuple(ids)
            conn.exec_driver_sql(
                "DELETE FROM search_documents "
                f"WHERE cluster_id IN ({placeholders(conn, len(args))})",
                args,
            )
        self.insert_documents(conn, docs)

    def insert_documents(self, conn: Connection, docs: list[Document]) -> None:
        if not docs:
            return
        conn.exec_driver_sql(_INSERT_DOC, [d.row() for d in docs])
        conn.exec_driver_sql(_INSERT_TSV, [(d.cluster_id, tsvector_literal(d)) for d in docs])
        rows = facet_rows(docs)
        if rows:
            conn.exec_driver_sql(_INSERT_FACET, rows)

    def clear(self, conn: Connection) -> None:
        # DELETE, not TRUNCATE: no exclusive lock that would wait on (and block) searches.
        conn.exec_driver_sql("DELETE FROM search_documents")

    def finish_rebuild(self, conn: Connection) -> None:
        conn.exec_driver_sql("ANALYZE search_documents")
        conn.exec_driver_sql("ANALYZE search_fts")
        conn.exec_driver_sql("ANALYZE search_facets")
        self.refresh_terms(conn)


def _hidden(term: str) -> bool:
    return len(term) > 1 and term[0] == "0" and term[1].isalpha()
