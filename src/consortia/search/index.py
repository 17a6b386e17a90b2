"""Keeping the search index current: one document per cluster, built from its merged record.

The ingest writer does not write documents itself: in every batch's transaction it marks the
clusters the batch touched (made, changed or emptied) as pending (``mark_pending``, table
``search_pending``), and ``index_pending`` brings their documents up to date — right after each
batch for a small load (search sees it at once), once at the end for a big one (a cluster four
members join is indexed once, not four times; documents built in the load's worker processes),
and whatever a crash left behind at the next load or in the background task. Every document
write goes through ``index_pending`` or ``reindex_clusters``; both are set-based (a fixed number
of statements per part) because ingest speed depends on them.
``reindex_all`` rebuilds everything (``consortia search reindex``); ``reindex_member`` redoes a
member's clusters when its region changes (facets carry the holding members' regions).

What a document holds (columns of ``search_documents``, each a space-joined list of
``cjk.index_tokens``):

* ``title``: title proper, other title information, part, the romanised title of a vernacular
  record; ``author``: names (and their vernacular forms), the statement of responsibility;
  ``subject``: subject headings; ``publisher``; ``rest``: place, edition, series.
* ``keys``: one token per keyword value (``key_token``): ISBN-13 and ISSN keys, languages,
  material, holding members and their regions, classification numbers and their top class,
  year tokens at four resolutions (year, decade, century, millennium) so that any year range
  is a short OR of tokens, and ``zall`` in every document (what ``MatchAll`` matches).

Pinyin tokens are made for records in Chinese or with Han characters only: on English text
they would be noise (many English words are pinyin syllables) and cost indexing time.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from consortia.catalog.models import Cluster, SearchPending, SourceRecord
from consortia.db import engine_for, placeholder, placeholders
from consortia.members.models import Member, Region
from consortia.search import cjk

TEXT_COLUMNS = ("title", "author", "subject", "publisher", "rest")
COLUMNS = (*TEXT_COLUMNS, "keys")
FACETS = (
    "language_group",
    "language",
    "year",
    "material",
    "member",
    "region",
    "classification",
)
ALL_TOKEN = "zall"
# Between two values of a column (two subject headings, title and subtitle): a phrase does not
# run from one value into the next. Upper case, so no query token (always folded) is ever it;
# the ascii tokenizer leaves non-ASCII case alone. PostgreSQL leaves a position gap instead.
BARRIER = "\u03a9"
YEAR_MIN = 1
YEAR_MAX = 2999
KEY_PREFIX = {
    "isbn": "isbn",
    "issn": "issn",
    "language": "lang",
    "language_group": "lgrp",
    "material": "mat",
    "member": "mem",
    "region": "reg",
    "classification": "cls",
    "class_top": "ctop",
}
_HAN_RE = re.compile("[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_PART = 500


_ENC_TABLE = {c: f"z{c:x}y" for c in range(128) if not chr(c).isalnum()} | {ord("z"): "zz"}


def _enc(value: str) -> str:
    """A keyword value as letters and digits only, prefix-preserving and one-to-one: letters
    and digits stay (lower-cased), ``z`` is ``zz``, any other character ``z<hex>y``."""
    low = value.lower()
    if low.isascii():
        return low.translate(_ENC_TABLE)
    return "".join(
        ch if ch.isalnum() and ch != "z" else ("zz" if ch == "z" else f"z{ord(ch):x}y")
        for ch in low
    )


@lru_cache(maxsize=65536)
def key_token(kind: str, value: str) -> str:
    """The index token of a keyword value (``kind`` is a ``KEY_PREFIX`` key)."""
    return KEY_PREFIX[kind] + _enc(value)


def year_tokens(year: int) -> list[str]:
    return [f"y{year}", f"yd{year // 10}", f"yc{year // 100}", f"ym{year // 1000}"]


def year_cover(low: int | None, high: int | None) -> list[str]:
    """Tokens whose union is exactly the years ``low..high`` (inclusive, open ends allowed);
    [] for an empty range. At most a few dozen tokens for any range."""
    lo = YEAR_MIN if low is None else max(low, YEAR_MIN)
    hi = YEAR_MAX if high is None else min(high, YEAR_MAX)
    out: list[str] = []
    y = lo
    while y <= hi:
        for size, prefix in ((1000, "ym"), (100, "yc"), (10, "yd")):
            if y % size == 0 and y + size - 1 <= hi:
                out.append(f"{prefix}{y // size}")
                y += size
                break
        else:
            out.append(f"y{y}")
            y += 1
    return out


def decade(year: int) -> str:
    start = year // 10 * 10
    return f"{start}-{start + 9}"


def class_top(scheme: str, value: str) -> str | None:
    """The top level of a classification number: CLC and LCC main class (letter), DDC hundreds."""
    v = value.strip().upper()
    if not v:
        return None
    if scheme in ("clc", "lcc"):
        return f"{scheme}:{v[0]}" if "A" <= v[0] <= "Z" else None
    if scheme == "ddc":
        return f"ddc:{v[0]}00" if v[0].isdigit() else None
    return None


# --------------------------------------------------------------------------- tokens

# ASCII text (most of any Western catalogue) takes a path that gives exactly what
# cjk.index_tokens gives without pinyin (tests/search/test_backend_index.py checks it): the same
# two kinds of piece, hyphen-joined numbers and words, found by one compiled pattern.
_ASCII_PIECES_RE = re.compile(r"(?<![a-z0-9])(\d+(?:-\d+)+(?:-x)?)(?![a-z0-9])|([a-z0-9]+)")
# Without a hyphen there is no hyphen-joined number: words alone, by a pattern twice as fast.
_ASCII_WORDS_RE = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=131072)
def text_tokens(text: str, pinyin: bool) -> tuple[str, ...]:
    """``cjk.index_tokens`` of one value, cached (names and subject headings repeat)."""
    if pinyin:
        return tuple(cjk.index_tokens(text, pinyin=True))
    # index_tokens folds first and then reads only the folded text: Latin text with diacritics
    # (a quarter of LC's values) folds to ASCII and takes the fast path too.
    low = text.lower() if text.isascii() else cjk.fold(text)
    if not low.isascii():
        return tuple(cjk.index_tokens(text, pinyin=False))
    if "-" not in low:
        return tuple(_ASCII_WORDS_RE.findall(low))
    primary: list[str] = []
    secondary: list[str] = []
    for num, word in _ASCII_PIECES_RE.findall(low):
        if num:
            parts = num.split("-")
            primary.append("".join(parts))
            secondary.extend(p for p in parts if p)
        else:
            primary.append(word)
    return (*primary, *secondary)


# --------------------------------------------------------------------------- documents


@dataclass
class Document:
    cluster_id: int
    columns: dict[str, list[str]]
    year: int | None
    sort_title: str
    sort_author: str
    sort_publisher: str
    facets: list[tuple[str, str]] = field(default_factory=list)
    display: str = ""  # display_fields as JSON

    def row(self) -> tuple[Any, ...]:
        """The ``search_documents`` row, in ``DOC_COLUMNS`` order."""
        c = self.columns
        return (
            self.cluster_id,
            " ".join(c["title"]),
            " ".join(c["author"]),
            " ".join(c["subject"]),
            " ".join(c["publisher"]),
            " ".join(c["rest"]),
            " ".join(c["keys"]),
            self.year,
            self.sort_title,
            self.sort_author,
            self.sort_publisher,
            self.display,
        )

    def facet_rows(self) -> list[tuple[int, str, str]]:
        return [
            (self.cluster_id, f, v) for f, v in dict.fromkeys((f, v[:100]) for f, v in self.facets)
        ]


class PrebuiltDocument(Document):
    """A document built in a worker process, as it crosses back: its ``search_documents`` row
    and facet rows (strings unpickle several times faster than the token lists); the token
    lists are made again (split) only when a backend asks for them (PostgreSQL's tsvector)."""

    def __init__(self, row: tuple[Any, ...], facet_rows: list[tuple[int, str, str]]) -> None:
        self._row = row
        self._facet_rows = facet_rows
        self.cluster_id = row[0]
        self.year = row[7]
        self.sort_title, self.sort_author, self.sort_publisher, self.display = row[8:12]
        self.facets = [(f, v) for _, f, v in facet_rows]

    @property
    def columns(self) -> dict[str, list[str]]:  # type: ignore[override]
        return {
            c: (v.split(" ") if v else []) for c, v in zip(COLUMNS, self._row[1:7], strict=True)
        }

    def row(self) -> tuple[Any, ...]:
        return self._row

    def facet_rows(self) -> list[tuple[int, str, str]]:
        return self._facet_rows


DOC_COLUMNS = (
    "cluster_id",
    "title",
    "author",
    "subject",
    "publisher",
    "rest",
    "keys",
    "year",
    "sort_title",
    "sort_author",
    "sort_publisher",
    "display",
)


_LEADING_RE = re.compile(r"^(?:[\W_]+|(?:the|an|a)\s+)+")


def _sort_key(text: str) -> str:
    """What titles, names and publishers sort by: folded, without leading punctuation or an
    English article ("The sky pilot" sorts under s; the records rarely say how many characters
    to skip)."""
    return _LEADING_RE.sub("", cjk.fold(text))[:200]


@lru_cache(maxsize=65536)
def _class_keys(scheme: str, value: str) -> tuple[str | None, str | None]:
    """(classification token, top-class token and facet value) of a classification number."""
    k = cjk.keyword("classification", value)
    top = class_top(scheme, value)
    return (key_token("classification", k) if k else None), top


@lru_cache(maxsize=4096)
def _member_key(code: str) -> str:
    return key_token("member", cjk.keyword("member", code))


@lru_cache(maxsize=4096)
def _year_keys(year: int) -> tuple[str, ...]:
    return tuple(year_tokens(year))


def build_document(
    cluster_id: int, merged: Mapping[str, Any], regions: Mapping[str, str]
) -> Document:
    """The index document of a cluster from its merged record (``matching.merge``).

    On the ingest path for every cluster a batch touches: written for speed (one pass over
    the scalar fields, cached keyword tokens)."""
    # Single-valued fields are {"value", "member", "record_id"}: their text values, once.
    text: dict[str, str] = {}
    for name, entry in merged.items():
        if isinstance(entry, dict):
            v = entry.get("value")
            if isinstance(v, str):
                text[name] = v
    get = text.get
    languages = [str(e["value"]) for e in merged.get("languages", ()) if e.get("value")]
    title = get("title", "")
    names = merged.get("names", ())
    pinyin = (
        "chi" in languages
        or bool(_HAN_RE.search(title))
        or any(_HAN_RE.search(n.get("vernacular") or "") for n in names)
    )

    def tokens(texts: Iterable[str]) -> list[str]:
        out: list[str] = []
        for t in texts:
            toks = text_tokens(t, pinyin) if t else ()
            if toks:
                if out:
                    out.append(BARRIER)
                out.extend(toks)
        return out

    author_texts = [t for n in names for t in (n.get("name", ""), n.get("vernacular", ""))]
    author_texts.append(get("responsibility", ""))
    columns: dict[str, list[str]] = {
        "title": tokens((title, get("remainder", ""), get("part", ""), get("title_romanised", ""))),
        "author": tokens(author_texts),
        "subject": tokens(str(e.get("value", "")) for e in merged.get("subjects", ())),
        "publisher": tokens((get("publisher", ""),)),
        "rest": tokens((get("place", ""), get("edition", ""), get("series", ""))),
    }
    keys: list[str] = [ALL_TOKEN]
    facets: list[tuple[str, str]] = []
    for e in merged.get("isbns", ()):
        raw = str(e.get("isbn13", ""))
        # A valid merged ISBN is already the ISBN-13 key; stdnum's check costs 30 µs a call.
        k = raw if e.get("valid") and len(raw) == 13 and raw.isdigit() else cjk.isbn_key(raw)
        if k:
            keys.append(key_token("isbn", k))
    for e in merged.get("issns", ()):
        k = cjk.issn_key(str(e.get("value", "")))
        if k:
            keys.append(key_token("issn", k))
    for code in dict.fromkeys(cjk.language_code(lang) for lang in languages):
        keys.append(key_token("language", code))
        facets.append(("language", code))
    if languages:
        group = "chinese" if "chi" in languages else "foreign"
        keys.append(key_token("language_group", group))
        facets.append(("language_group", group))
    material = get("material", "")
    if material:
        keys.append(key_token("material", material))
        facets.append(("material", material))
    seen_regions: set[str] = set()
    for code in merged.get("members", ()):
        keys.append(_member_key(code))
        facets.append(("member", code))
        region = regions.get(code)
        if region and region not in seen_regions:
            seen_regions.add(region)
            keys.append(key_token("region", region))
            facets.append(("region", region))
    tops: set[str] = set()
    for c in merged.get("classifications", ()):
        token, top = _class_keys(str(c.get("scheme", "")), str(c.get("value", "")))
        if token:
            keys.append(token)
        if top and top not in tops:
            tops.add(top)
            keys.append(key_token("class_top", top))
            facets.append(("classification", top))
    entry = merged.get("year")
    year = entry.get("value") if isinstance(entry, dict) else None
    year = year if isinstance(year, int) and YEAR_MIN <= year <= YEAR_MAX else None
    if year is not None:
        keys.extend(_year_keys(year))
        facets.append(("year", decade(year)))
    columns["keys"] = keys
    first_name = names[0].get("name", "") if names else ""
    return Document(
        cluster_id=cluster_id,
        columns=columns,
        year=year,
        sort_title=_sort_key(title),
        sort_author=_sort_key(first_name),
        sort_publisher=_sort_key(get("publisher", "")),
        facets=facets,
        display=orjson.dumps(display_fields(merged, text)).decode(),
    )


def _value(merged: Mapping[str, Any], name: str) -> Any:
    entry = merged.get(name)
    return entry.get("value") if isinstance(entry, dict) else None


def display_fields(
    merged: Mapping[str, Any], text: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What a result list shows of a cluster, from its merged record (without provenance):
    kept in its index document so that a page of hits does not decode whole merged records.
    ``text``: the merged record's single-valued text fields, when the caller has them."""
    if text is None:
        text = {
            name: e["value"]
            for name, e in merged.items()
            if isinstance(e, dict) and isinstance(e.get("value"), str)
        }
    get = text.get
    return {
        "title": get("title", ""),
        "remainder": get("remainder", ""),
        "part": get("part", ""),
        "title_romanised": get("title_romanised", ""),
        "responsibility": get("responsibility", ""),
        "authors": [
            {
                "name": n.get("name", ""),
                "vernacular": n.get("vernacular", ""),
                "role": n.get("role"),
            }
            for n in merged.get("names", [])
        ],
        "publisher": get("publisher", ""),
        "place": get("place", ""),
        "year": _value(merged, "year"),
        "edition": get("edition", ""),
        "material": get("material", ""),
        "isbns": [i["isbn13"] for i in merged.get("isbns", []) if i.get("valid")],
        "issns": [i["value"] for i in merged.get("issns", [])],
        "languages": [lang["value"] for lang in merged.get("languages", [])],
        "subjects": [s["value"] for s in merged.get("subjects", [])][:20],
        "classifications": [
            {"scheme": c.get("scheme"), "value": c.get("value")}
            for c in merged.get("classifications", [])
        ],
    }


# --------------------------------------------------------------------------- writing


def _parts(values: Sequence[int], size: int = _PART) -> Iterator[list[int]]:
    for i in range(0, len(values), size):
        yield list(values[i : i + size])


def member_regions(conn: Connection) -> dict[str, str]:
    return {
        code: region
        for code, region in conn.execute(
            select(Member.code, Region.code).join(Region, Region.id == Member.region_id)
        )
    }


def _merged_of(conn: Connection, ids: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(id, merged record) of existing clusters, read as text and decoded here: the JSON type
    layer costs more than the decoding for a whole batch. Decoded one at a time, as the caller
    goes: a part's merged records all alive at once (hundreds of small objects each) made the
    cyclic GC walk them again and again for nothing."""
    marks = placeholders(conn, len(ids))
    rows = conn.exec_driver_sql(
        f"SELECT id, CAST(merged AS TEXT) FROM clusters WHERE id IN ({marks})", tuple(ids)
    ).all()
    for cid, m in rows:
        yield int(cid), orjson.loads(m) if m else {}


def reindex_clusters(
    conn: Connection,
    cluster_ids: Iterable[int],
    merged: Mapping[int, Mapping[str, Any]] | None = None,
) -> int:
    """Bring the documents of these clusters up to date (a cluster gone loses its document).

    ``merged``: merged records the caller has in hand (the ingest writer made them in this
    batch), so they need not be read back; the others are read. Runs in the caller's
    transaction. Returns the number of documents written."""
    from consortia.search.backends import backend_for

    ids = sorted(set(cluster_ids))
    if not ids:
        return 0
    backend = backend_for(conn.dialect.name)
    _lock_documents(conn)
    regions = member_regions(conn)
    known = merged or {}
    written = 0
    for part in _parts(ids):
        have = [(cid, known[cid]) for cid in part if cid in known]
        missing = [cid for cid in part if cid not in known]
        pairs = have + (list(_merged_of(conn, missing)) if missing else [])
        docs = [build_document(cid, m, regions) for cid, m in pairs]
        backend.replace_documents(conn, part, docs)
        written += len(docs)
    return written


# --------------------------------------------------------------------------- pending clusters

# Concurrent writers of documents (two drains, a drain and ``reindex_member``) take turns on
# PostgreSQL through this transaction-level advisory lock (SQLite has one writer at a time).
_PG_LOCK = 0x5EA2C4  # an arbitrary constant of this application
_last_version = 0


def _lock_documents(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))


def _version() -> int:
    """A mark's version: the time in ns, strictly increasing within the process."""
    global _last_version
    _last_version = max(time.time_ns(), _last_version + 1)
    return _last_version


def mark_pending(conn: Connection, cluster_ids: Iterable[int]) -> int:
    """Mark clusters whose documents ``index_pending`` is to bring up to date, in the caller's
    transaction (so a crash after its commit loses no mark). Returns the number marked."""
    ids = sorted(set(cluster_ids))
    if not ids:
        return 0
    ph = placeholder(conn)
    version = _version()
    conn.exec_driver_sql(
        f"INSERT INTO search_pending (cluster_id, version) VALUES ({ph}, {ph}) "
        "ON CONFLICT (cluster_id) DO UPDATE SET version = excluded.version",
        [(i, version) for i in ids],
    )
    return len(ids)


def pending_state(conn: Connection) -> tuple[int, int | None]:
    """(clusters pending, the newest mark's version in ns or None)."""
    n, newest = conn.execute(
        select(func.count(), func.max(SearchPending.version)).select_from(SearchPending)
    ).one()
    return int(n or 0), (int(newest) if newest is not None else None)


def build_part(
    db_url: str, ids: list[int]
) -> list[tuple[tuple[Any, ...], list[tuple[int, str, str]]]]:
    """The documents of these clusters (their rows and facet rows: see ``PrebuiltDocument``),
    read and built in a worker process; the clusters gone have none. Their merged records are
    read after the caller read the marks, so a document is never older than the mark it
    clears."""
    with engine_for(db_url).connect() as conn:
        regions = member_regions(conn)
        docs = [build_document(cid, m, regions) for cid, m in _merged_of(conn, ids)]
        conn.rollback()
    return [(d.row(), d.facet_rows()) for d in docs]


def _write_part(
    conn: Connection,
    backend: Any,
    marks: list[tuple[int, int]],
    docs: list[Document],
) -> None:
    """One part's transaction: the documents replaced and the marks that are still as read
    cleared (a cluster marked again meanwhile stays pending: its document may be older)."""
    ph = placeholder(conn)
    ids = [cid for cid, _ in marks]
    in_ids = f"id IN ({placeholders(conn, len(ids))})"
    _lock_documents(conn)
    live: set[int] | None = None
    if conn.dialect.name == "postgresql":
        # Clusters a load deletes meanwhile get no document (its foreign key would fail): the
        # ones still there are kept until the commit, taken before any mark (a load marks at
        # the end of its batch, so it never waits on this part while this part waits on it).
        live = {
            int(c)
            for (c,) in conn.exec_driver_sql(
                f"SELECT id FROM clusters WHERE {in_ids} FOR KEY SHARE", tuple(ids)
            )
        }
    # On SQLite a write first: the transaction then reads what is committed once it holds the
    # write lock, not a snapshot from before another writer's commit.
    conn.exec_driver_sql(
        f"DELETE FROM search_pending WHERE cluster_id = {ph} AND version = {ph}", marks
    )
    if live is None:
        live = {
            int(c)
            for (c,) in conn.exec_driver_sql(f"SELECT id FROM clusters WHERE {in_ids}", tuple(ids))
        }
    backend.replace_documents(conn, ids, [d for d in docs if d.cluster_id in live])
    conn.commit()


def index_pending(
    conn: Connection,
    *,
    ids: Iterable[int] | None = None,
    pool: Executor | None = None,
    db_url: str | None = None,
    window: int = 4,
    part_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Bring the documents of pending clusters up to date (all of them, or those of ``ids``),
    one transaction per part of ``part_size`` clusters; returns the number of clusters done.

    With ``pool``
    (worker processes that can open ``db_url``) the documents are built there, ``window``
    parts ahead, while this connection writes: the writer only writes. Clusters marked again
    while this runs stay pending for the next drain. ``progress`` gets the number done so far.
    """
    from consortia.search.backends import backend_for

    backend = backend_for(conn.dialect.name)
    ph = placeholder(conn)
    wanted = sorted(set(ids)) if ids is not None else None
    regions: dict[str, str] | None = None
    done = 0
    last = 0
    at = 0  # position in ``wanted``

    def next_marks() -> list[tuple[int, int]]:
        nonlocal last, at
        if wanted is not None:
            part = wanted[at : at + part_size]
            at += part_size
            if not part:
                return []
            rows = conn.exec_driver_sql(
                "SELECT cluster_id, version FROM search_pending "
                f"WHERE cluster_id IN ({placeholders(conn, len(part))}) ORDER BY cluster_id",
                tuple(part),
            ).all()
            if not rows and at < len(wanted):
                return next_marks()
        else:
            rows = conn.exec_driver_sql(
                "SELECT cluster_id, version FROM search_pending WHERE cluster_id > "
                f"{ph} ORDER BY cluster_id LIMIT {int(part_size)}",
                (last,),
            ).all()
        if rows:
            last = int(rows[-1][0])
        return [(int(c), int(v)) for c, v in rows]

    if pool is not None and db_url is not None:
        flight: deque[tuple[list[tuple[int, int]], Future[Any]]] = deque()
        try:
            while True:
                while len(flight) < window:
                    marks = next_marks()
                    if not marks:
                        break
                    flight.append((marks, pool.submit(build_part, db_url, [c for c, _ in marks])))
                # The reads above end before the write transaction begins (SQLite snapshot).
                conn.commit()
                if not flight:
                    break
                marks, fut = flight.popleft()
                built: list[Document] = [
                    PrebuiltDocument(row, facets) for row, facets in fut.result()
                ]
                _write_part(conn, backend, marks, built)
                done += len(marks)
                if progress is not None:
                    progress(done)
        finally:
            for _, fut in flight:
                fut.cancel()
        return done
    while True:
        marks = next_marks()
        if not marks:
            conn.commit()
            break
        if regions is None:
            regions = member_regions(conn)
        # Read after the marks: a document is never older than the mark it clears.
        docs = [
            build_document(cid, m, regions) for cid, m in _merged_of(conn, [c for c, _ in marks])
        ]
        conn.commit()
        _write_part(conn, backend, marks, docs)
        done += len(marks)
        if progress is not None:
            progress(done)
    return done


def reindex_all(conn: Connection, *, progress: Any = None, part_size: int = 2000) -> int:
    """Rebuild every document, committing every ``part_size`` clusters; ``progress`` is called
    with (last cluster id, highest cluster id, documents written).

    Online: each part replaces its clusters' documents in one transaction, so searches keep
    finding everything while it runs (and nothing waits on a lock for long). An empty index is
    filled the fast way instead (on SQLite: the FTS index built in one pass at the end)."""
    from consortia.search.backends import backend_for

    backend = backend_for(conn.dialect.name)
    fresh = backend.all_count(conn) == 0
    if fresh:
        backend.clear(conn)
        conn.commit()
    done = 0
    try:
        regions = member_regions(conn)
        top = int(conn.scalar(select(Cluster.id).order_by(Cluster.id.desc()).limit(1)) or 0)
        last = 0
        while True:
            rows = conn.execute(
                select(Cluster.id, Cluster.merged)
                .where(Cluster.id > last)
                .order_by(Cluster.id)
                .limit(part_size)
            ).all()
            if not rows:
                break
            first, last = rows[0][0], rows[-1][0]
            docs = [build_document(cid, merged or {}, regions) for cid, merged in rows]
            if fresh:
                backend.insert_documents(conn, docs)
            else:
                # Documents of clusters gone between first and last go too.
                backend.replace_range(conn, first, last, docs)
            conn.commit()
            done += len(rows)
            if progress is not None:
                progress(last, top, done)
        if not fresh:
            backend.replace_range(conn, last + 1, None, [])
            conn.commit()
    finally:
        conn.rollback()
        backend.finish_rebuild(conn)
        conn.commit()
    return done


def reindex_member(conn: Connection, member_code: str) -> int:
    """Redo the documents of every cluster a member has records in (region or code changed)."""
    ids = [
        cast(int, cid)
        for cid in conn.scalars(
            select(SourceRecord.cluster_id)
            .join(Member, Member.id == SourceRecord.member_id)
            .where(
                Member.code == member_code,
                SourceRecord.deleted.is_(False),
                SourceRecord.cluster_id.is_not(None),
            )
            .distinct()
        )
    ]
    return reindex_clusters(conn, ids)
