"""SQLite FTS5: the embedded default.

``search_fts`` is an FTS5 external-content table over ``search_documents`` with the ``ascii``
tokenizer: the columns already hold ``cjk.index_tokens`` joined by spaces, every token letters
and digits, so the tokenizer only has to split on spaces (and fold ASCII case, a no-op here).
Triggers keep it in step with ``search_documents`` (also when a cluster's deletion cascades).
Relevance is FTS5's ``bm25`` with column weights; ``search_fts_vocab`` (fts5vocab, per column)
serves SRU scan.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import text
from sqlalchemy.engine import Connection

from consortia.db import placeholders
from consortia.search import cjk, segment
from consortia.search.backends import WEIGHTS, Backend, SortKey, facet_rows
from consortia.search.index import BARRIER, COLUMNS, DOC_COLUMNS, Document
from consortia.settings import get_settings

_COLSETS = {
    "any": "{title author subject publisher rest}",
    "title": "{title}",
    "author": "{author}",
    "subject": "{subject}",
    "publisher": "{publisher}",
}
RANK = "bm25(search_fts, " + ", ".join(str(WEIGHTS[c]) for c in COLUMNS) + ")"
_SORT_COLUMNS = {
    "title": "d.sort_title",
    "author": "d.sort_author",
    "publisher": "d.sort_publisher",
    "year": "d.year",
}

# The DDL the migration runs (kept here too: rebuilding drops and restores the triggers).
FTS_TABLE = (
    "CREATE VIRTUAL TABLE search_fts USING fts5("
    "title, author, subject, publisher, rest, keys, "
    "content='search_documents', content_rowid='cluster_id', tokenize='ascii')"
)
VOCAB_TABLE = "CREATE VIRTUAL TABLE search_fts_vocab USING fts5vocab(search_fts, 'col')"
_COLS = "title, author, subject, publisher, rest, keys"
_NEW = "new.title, new.author, new.subject, new.publisher, new.rest, new.keys"
_OLD = "old.title, old.author, old.subject, old.publisher, old.rest, old.keys"
TRIGGERS = (
    "CREATE TRIGGER search_fts_ai AFTER INSERT ON search_documents BEGIN "
    f"INSERT INTO search_fts(rowid, {_COLS}) VALUES (new.cluster_id, {_NEW}); END",
    "CREATE TRIGGER search_fts_ad AFTER DELETE ON search_documents BEGIN "
    f"INSERT INTO search_fts(search_fts, rowid, {_COLS}) "
    f"VALUES ('delete', old.cluster_id, {_OLD}); END",
    "CREATE TRIGGER search_fts_au AFTER UPDATE ON search_documents BEGIN "
    f"INSERT INTO search_fts(search_fts, rowid, {_COLS}) "
    f"VALUES ('delete', old.cluster_id, {_OLD}); "
    f"INSERT INTO search_fts(rowid, {_COLS}) VALUES (new.cluster_id, {_NEW}); END",
)
TRIGGER_NAMES = ("search_fts_ai", "search_fts_ad", "search_fts_au")

_INSERT_DOCS = f"INSERT INTO search_documents ({', '.join(DOC_COLUMNS)}) VALUES "
_INSERT_FACETS = "INSERT INTO search_facets (cluster_id, facet, value) VALUES "
# Parameters per statement, under SQLite's limit of 32,766.
_MAX_PARAMS = 30_000


def _insert_rows(conn: Connection, head: str, rows: Sequence[tuple[object, ...]]) -> None:
    """Many rows per INSERT statement, not one statement a row: SQLite opens a statement
    savepoint for every statement that fires a trigger, and FTS5 writes its pending terms out
    as a new segment at every savepoint, so a row a statement costs FTS5 a segment a row
    (measured: 49 µs a document with executemany, 19 µs in statements of many rows)."""
    if not rows:
        return
    width = len(rows[0])
    one = "(" + ", ".join(["?"] * width) + ")"
    step = _MAX_PARAMS // width
    for i in range(0, len(rows), step):
        part = rows[i : i + step]
        conn.exec_driver_sql(
            head + ", ".join([one] * len(part)), tuple(v for row in part for v in row)
        )


def _q(token: str) -> str:
    # Tokens are letters and digits only (cjk.index_tokens, index.key_token): quoting is safe.
    return f'"{token}"'


class SQLiteFTS5(Backend):
    name = "sqlite"

    # --- compiling ----------------------------------------------------------------------

    def keys(self, tokens: Sequence[str], *, prefix: bool) -> str:
        star = " *" if prefix else ""
        return "keys : (" + " OR ".join(_q(t) + star for t in tokens) + ")"

    def text(self, field: str, alternatives: Sequence[cjk.Alternative]) -> str:
        parts = []
        for alt in alternatives:
            star = " *" if alt.prefix else ""
            if alt.adjacent:
                parts.append('"' + " ".join(alt.tokens) + '"' + star)
            else:
                quoted = [_q(t) for t in alt.tokens]
                quoted[-1] += star
                parts.append(" AND ".join(quoted))
        return _COLSETS[field] + " : (" + " OR ".join(f"({p})" for p in parts) + ")"

    def not_(self, base: str, exclude: str) -> str:
        return f"({base}) NOT ({exclude})"

    # --- running ------------------------------------------------------------------------

    # Each running method answers from the segment when one is exactly the index (see
    # consortia.search.segment: the same answers, from arrays), else with the SQL.

    @contextmanager
    def pinned(self, conn: Connection) -> Iterator[None]:
        """The segment current at the start answers the whole search (one generation read,
        and one view of the index throughout), or none does."""
        token = _pinned.set((segment.current(conn) if get_settings().search_segments else None,))
        try:
            yield
        finally:
            _pinned.reset(token)

    def count(self, conn: Connection, expr: str) -> int:
        seg = _segment(conn, expr)
        if seg is not None:
            return len(seg.match(expr))
        return int(
            conn.scalar(
                text("SELECT count(*) FROM search_fts WHERE search_fts MATCH :q"), {"q": expr}
            )
            or 0
        )

    def all_count(self, conn: Connection) -> int:
        seg = _segment(conn)
        if seg is not None:
            return seg.docs
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
        relevance = all(k.field == "relevance" for k in sort)
        seg = _segment(conn, expr, rank, boost) if relevance else None
        if seg is not None:
            # What the SQL below does: a MATCH of the ranking expression kept to the matches
            # of expr when rank covers them, else a MATCH of expr; bm25 of that MATCH.
            narrowed = rank is not None and rank_covers and rank != expr
            return seg.page(
                expr,
                offset=offset,
                limit=limit,
                boost=boost,
                ranked_by=(rank if narrowed else expr) if rank is not None else None,
                within=rank if narrowed else None,
            )
        order: list[str] = []
        params: dict[str, object] = {"q": expr, "limit": limit, "offset": offset}
        if boost is not None:
            order.append(
                "(search_fts.rowid IN (SELECT rowid FROM search_fts WHERE search_fts MATCH :b)) "
                "DESC"
            )
            params["b"] = boost
        join = ""
        where = "search_fts MATCH :q"
        for key in sort or (SortKey("relevance"),):
            if key.field == "relevance":
                if rank is None:
                    continue
                order.append(RANK)
                if rank_covers and rank != expr and within is not None:
                    # The matches are in hand: the ranking MATCH kept to them (see below).
                    where = (
                        "search_fts MATCH :r AND +search_fts.rowid IN "
                        f"({', '.join(str(int(i)) for i in within) or 'NULL'})"
                    )
                    params["r"] = rank
                elif rank_covers and rank != expr:
                    # bm25 reads, once a query, the whole posting list of every phrase of the
                    # MATCH (its IDF), also of the keys and excluded phrases, which add nothing
                    # to the score (weight 0, or absent): a facet filter's token is in a
                    # quarter of the catalogue. So the ranking MATCH is the text terms alone,
                    # kept to the matches of the query (unary +: the IN is tested on each row,
                    # not pushed into FTS5 as a rowid look-up per value).
                    where = (
                        "search_fts MATCH :r AND +search_fts.rowid IN "
                        "(SELECT rowid FROM search_fts WHERE search_fts MATCH :q)"
                    )
                    params["r"] = rank
                continue
            col = _SORT_COLUMNS[key.field]
            join = " JOIN search_documents d ON d.cluster_id = search_fts.rowid"
            empty = f"{col} IS NULL" if key.field == "year" else f"{col} = ''"
            order.append(f"({empty})")  # missing values last, whichever the direction
            order.append(col + ("" if key.ascending else " DESC"))
        order.append("search_fts.rowid")
        sql = (
            f"SELECT search_fts.rowid FROM search_fts{join} WHERE {where} "
            f"ORDER BY {', '.join(order)} LIMIT :limit OFFSET :offset"
        )
        return [int(r) for r in conn.scalars(text(sql), params)]

    id_column = "rowid"

    def first_ids(self, conn: Connection, expr: str, n: int) -> list[int]:
        seg = _segment(conn, expr)
        if seg is not None:
            ids: list[int] = seg.doc_ids[seg.match(expr)[: int(n)]].tolist()
            return ids
        return super().first_ids(conn, expr, n)

    def facet_counts(
        self,
        conn: Connection,
        expr: str,
        facets: Sequence[str],
        windows: Sequence[tuple[int, int]] = (),
    ) -> tuple[dict[str, dict[str, int]], int]:
        seg = _segment(conn, expr)
        if seg is None:
            return super().facet_counts(conn, expr, facets, windows)
        docs = seg.match(expr)
        if windows:
            docs = seg.in_windows(docs, windows)
        return seg.facet_counts(docs, facets), len(docs) if facets else 0

    def facet_counts_of(
        self, conn: Connection, ids: Sequence[int], facets: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        seg = _segment(conn)
        if seg is None:
            return super().facet_counts_of(conn, ids, facets)
        return seg.facet_counts(seg.ordinals(ids), facets)

    def id_range(self, conn: Connection) -> tuple[int, int]:
        seg = _segment(conn)
        if seg is None:
            return super().id_range(conn)
        return (int(seg.doc_ids[0]), int(seg.doc_ids[-1])) if seg.docs else (0, 0)

    def matching_ids(self, conn: Connection) -> str:
        return "SELECT rowid AS id FROM search_fts WHERE search_fts MATCH ?"

    def scan(
        self, conn: Connection, column: str, start: str, *, before: int = 0, after: int = 10
    ) -> list[tuple[str, int]]:
        terms: list[tuple[str, int]] = []
        if before:
            rows = conn.execute(
                text(
                    "SELECT term, doc FROM search_fts_vocab WHERE col = :col AND term < :t "
                    "ORDER BY term DESC LIMIT :n"
                ),
                {"col": column, "t": start, "n": before * 4 + 20},
            )
            terms = [(t, int(n)) for t, n in rows if not _hidden(t)][:before][::-1]
        rows = conn.execute(
            text(
                "SELECT term, doc FROM search_fts_vocab WHERE col = :col AND term >= :t "
                "ORDER BY term LIMIT :n"
            ),
            {"col": column, "t": start, "n": after * 4 + 20},
        )
        return terms + [(t, int(n)) for t, n in rows if not _hidden(t)][:after]

    # --- writing ------------------------------------------------------------------------

    def replace_documents(self, conn: Connection, ids: Sequence[int], docs: list[Document]) -> None:
        rows = [d.row() for d in docs]
        if ids:
            args = tuple(ids)
            where = f"WHERE cluster_id IN ({placeholders(conn, len(args))})"
            # A document that comes out the same is left alone: taking it out of the FTS
            # index and putting it back is most of the cost of a write.
            existing = {
                r[0]: tuple(r)
                for r in conn.exec_driver_sql(
                    f"SELECT {', '.join(DOC_COLUMNS)} FROM search_documents {where}", args
                )
            }
            same = {row[0] for row in rows if existing.get(row[0]) == row}
            stale = tuple(cid for cid in existing if cid not in same)
            if stale:
                # The trigger takes each document out of the FTS index.
                conn.exec_driver_sql(
                    "DELETE FROM search_documents "
                    f"WHERE cluster_id IN ({placeholders(conn, len(stale))})",
                    stale,
                )
            conn.exec_driver_sql(f"DELETE FROM search_facets {where}", args)
            rows = [row for row in rows if row[0] not in same]
        _insert_rows(conn, _INSERT_DOCS, rows)
        _insert_rows(conn, _INSERT_FACETS, facet_rows(docs))

    def insert_documents(self, conn: Connection, docs: list[Document]) -> None:
        _insert_rows(conn, _INSERT_DOCS, [d.row() for d in docs])
        _insert_rows(conn, _INSERT_FACETS, facet_rows(docs))

    def clear(self, conn: Connection) -> None:
        # Without the triggers: a whole rebuild fills the FTS index in one pass at the end.
        for name in TRIGGER_NAMES:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        conn.exec_driver_sql("DELETE FROM search_facets")
        conn.exec_driver_sql("DELETE FROM search_documents")
        conn.exec_driver_sql("INSERT INTO search_fts(search_fts) VALUES ('delete-all')")

    def finish_rebuild(self, conn: Connection) -> None:
        missing = {
            name
            for name in TRIGGER_NAMES
            if not conn.scalar(
                text("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = :n"),
                {"n": name},
            )
        }
        if missing:  # a fresh build: the FTS index in one pass, then the triggers again
            conn.exec_driver_sql("INSERT INTO search_fts(search_fts) VALUES ('rebuild')")
            for ddl, name in zip(TRIGGERS, TRIGGER_NAMES, strict=True):
                if name in missing:
                    conn.exec_driver_sql(ddl)
        conn.exec_driver_sql("INSERT INTO search_fts(search_fts) VALUES ('optimize')")


# The segment pinned for the search running in this context (None: none is current).
_pinned: ContextVar[tuple[segment.Segment | None] | None] = ContextVar("pinned", default=None)


def _segment(conn: Connection, *exprs: str | None) -> segment.Segment | None:
    """The segment to answer from: one exactly the index, that reads these expressions."""
    if not get_settings().search_segments:
        return None
    pin = _pinned.get()
    seg = segment.current(conn) if pin is None else pin[0]
    if seg is None:
        return None
    try:
        for e in exprs:
            if e is not None:
                segment.parse(e)
    except segment.Unsupported:
        return None
    return seg


def _hidden(term: str) -> bool:
    """Pinyin tokens (0zhong0yi) are for matching, not for showing in a scan list; nor is the
    barrier between values."""
    return term == BARRIER or (len(term) > 1 and term[0] == "0" and term[1].isalpha())
