"""Searching the union catalogue: one query tree in, clusters with their holdings out.

Used by every front end (the JSON API, the CLI, SRU, later the search pages and Z39.50). The
backend (SQLite FTS5 or PostgreSQL) is chosen from the session's dialect. Reading only: the
index is written by ``consortia.search.index`` from the ingest writer.

Ranking: exact ISBN/ISSN hits of the query first, then relevance (BM25 on SQLite, ts_rank on
PostgreSQL, both with field weights title > author > subject > the rest), or the sort keys asked
for; ties by cluster id, so paging is stable. Facets are counted over the matching clusters:
exactly when there are at most ``FACET_CAP`` of them; beyond, estimated from a sample of about
``FACET_CAP`` matches (those in ``FACET_WINDOWS`` windows of cluster ids spread evenly: the same
on every backend, independent of the ranking, and read by seeking to each window rather than
by a pass over the whole result), scaled to the total; the result says so in
``facets_sampled`` (the size of the sample).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from consortia.catalog.models import Cluster, SourceRecord
from consortia.db import fetch_all, placeholders
from consortia.errors import Invalid
from consortia.members.models import Member
from consortia.search import cjk
from consortia.search.backends import (
    FACET_CAP,
    SORT_FIELDS,
    Backend,
    SortKey,
    backend_for,
)
from consortia.search.index import FACETS, display_fields, key_token, year_cover
from consortia.search.query import (
    TEXT_FIELDS,
    And,
    MatchAll,
    Node,
    Not,
    Or,
    Phrase,
    Term,
    is_empty,
)

MAX_LIMIT = 100
MAX_OFFSET = 100_000
MAX_FILTERS = 20
FACET_VALUES = 30  # values shown per facet, the most frequent first
SCAN_FIELDS = ("title", "author", "subject", "publisher")
MAX_SCAN = 100
_YEAR_FILTER_RE = re.compile(r"(\d{1,4})(?:\s*-\s*(\d{1,4}))?")


@dataclass
class SearchResult:
    total: int
    offset: int
    limit: int
    hits: list[dict[str, Any]]
    facets: dict[str, list[dict[str, Any]]]
    # Facet counts estimated from a sample of this many matches, because more matched.
    facets_sampled: int | None = None
    sort: list[SortKey] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "sort": [("" if k.ascending else "-") + k.field for k in self.sort] or ["relevance"],
            "hits": self.hits,
            "facets": self.facets,
            "facets_sampled": self.facets_sampled,
        }


def backend(session: Session) -> Backend:
    return backend_for(session.get_bind().dialect.name)


# SQLite's defaults are sized for small databases (a 2 MB page cache, no memory map): a search
# of a million-record catalogue reads tens of MB of index pages, and re-reading them through
# read() system calls costs more than the FTS work. Set once per DBAPI connection (the pool
# keeps connections open across requests).
_SQLITE_TUNING = ("PRAGMA cache_size = -131072", "PRAGMA mmap_size = 2147483648")


def connection(session: Session) -> Connection:
    """The session's connection, tuned for searching the first time it is seen."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        info = conn.connection.info
        if not info.get("search_tuned"):
            for pragma in _SQLITE_TUNING:
                conn.exec_driver_sql(pragma)
            info["search_tuned"] = True
    return conn


# --------------------------------------------------------------------------- arguments


def parse_sort(value: str | None) -> list[SortKey]:
    """``relevance``, ``title``, ``-year``, ``author,-year`` … (a leading ``-``: descending)."""
    if not value or not value.strip():
        return []
    keys: list[SortKey] = []
    for part in value.split(","):
        name = part.strip()
        ascending = not name.startswith("-")
        name = name.lstrip("-+").strip().lower()
        if name not in SORT_FIELDS:
            raise Invalid(
                "sort: one of {choices}, optionally with - for descending",
                field="sort",
                choices=", ".join(SORT_FIELDS),
            )
        keys.append(SortKey(name, ascending))
    if len(keys) > 3:
        raise Invalid("sort: at most {limit} keys", field="sort", limit=3)
    return keys


def parse_filters(values: Iterable[str]) -> list[tuple[str, str]]:
    """``facet=language:chi`` style filters → (facet, value) pairs."""
    out: list[tuple[str, str]] = []
    for raw in values:
        facet, sep, value = raw.partition(":")
        facet = facet.strip().lower()
        value = value.strip()
        if not sep or facet not in FACETS or not value:
            raise Invalid(
                "facet: give facet:value, the facet one of {choices}",
                field="facet",
                choices=", ".join(FACETS),
            )
        out.append((facet, value))
    if len(out) > MAX_FILTERS:
        raise Invalid("facet: at most {limit} filters", field="facet", limit=MAX_FILTERS)
    return out


def _filter_expr(be: Backend, facet: str, values: Sequence[str]) -> str:
    tokens: list[str] = []
    for value in values:
        if facet == "year":
            m = _YEAR_FILTER_RE.fullmatch(value)
            if not m:
                raise Invalid(
                    "facet: a year filter is a year or a range like 1990-1999", field="facet"
                )
            low = int(m.group(1))
            high = int(m.group(2)) if m.group(2) else low
            tokens.extend(year_cover(min(low, high), max(low, high)))
        elif facet == "language":
            tokens.append(key_token("language", cjk.language_code(value)))
        elif facet == "member":
            tokens.append(key_token("member", cjk.keyword("member", value)))
        elif facet == "classification":
            tokens.append(key_token("class_top", value))
        else:
            tokens.append(key_token(facet, value))
    return be.keys(tokens or ["znone"], prefix=False)


def _positive_leaves(tree: Node) -> list[Term | Phrase]:
    """Terms and phrases a match must have (not under an exclusion), in query order."""
    out: list[Term | Phrase] = []
    stack: list[tuple[Node, bool]] = [(tree, False)]
    while stack:
        node, negated = stack.pop()
        if isinstance(node, Not):
            stack.append((node.exclude, True))
            stack.append((node.base, negated))
        elif isinstance(node, And | Or):
            stack.extend((item, negated) for item in reversed(node.items))
        elif isinstance(node, Term | Phrase) and not negated:
            out.append(node)
    return list(dict.fromkeys(out))


def _boost(be: Backend, tree: Node) -> str | None:
    """Exact ISBN/ISSN terms of the query (not excluded ones): their hits come first."""
    if isinstance(tree, Term):
        return None  # the query is the number itself: every hit is exact
    wanted = [
        n
        for n in _positive_leaves(tree)
        if isinstance(n, Term) and n.field in ("isbn", "issn") and not n.truncation
    ]
    if not wanted:
        return None
    return be.OR.join(f"({be.compile(n)})" for n in wanted)


def _rank(be: Backend, tree: Node) -> str | None:
    """What relevance is computed on: the text terms a match has. None when the query has
    none (keyword fields, years, facets only): then every match is as relevant as the next,
    and they come in cluster order on either backend."""
    text = [n for n in _positive_leaves(tree) if n.field in TEXT_FIELDS]
    if not text:
        return None
    return be.OR.join(f"({be.compile(n)})" for n in text)


def _needs_text(tree: Node) -> bool:
    """Whether every match of the tree has one of its positive text terms (``_rank``'s)."""
    if isinstance(tree, Term | Phrase):
        return tree.field in TEXT_FIELDS
    if isinstance(tree, And):
        return any(_needs_text(i) for i in tree.items)
    if isinstance(tree, Or):
        return all(_needs_text(i) for i in tree.items)
    if isinstance(tree, Not):
        return _needs_text(tree.base)
    return False


def _title_tier(be: Backend, tree: Node) -> str | None:
    """Matches with a query word in the title: ranked first, by themselves, when a relevance
    search finds many (title > author > subject > the rest, applied to whole tiers). None when
    the query's text terms name another field (author:, subject:, publisher:)."""
    text = [n for n in _positive_leaves(tree) if n.field in TEXT_FIELDS]
    if not text or any(n.field not in ("any", "title") for n in text):
        return None
    titles = [replace(n, field="title") for n in text]
    return be.OR.join(f"({be.compile(n)})" for n in dict.fromkeys(titles))


# Results up to this many clusters are read whole as a list of ids (about 0.2 µs an id).
HEAD_MAX = 5000
# Below this many matches everything is ranked in one pass (bm25 costs a few microseconds a
# match; beyond, ranking the title tier apart keeps big result sets fast).
TIER_MIN = 3000


def _ranked(
    be: Backend,
    conn: Connection,
    expr: str,
    total: int,
    *,
    offset: int,
    limit: int,
    sort: Sequence[SortKey],
    boost: str | None,
    rank: str | None,
    tier: str | None,
    covers: bool = False,
    within: Sequence[int] | None = None,
) -> list[int]:
    """One page in result order: title-tier matches first (each tier by relevance) for a big
    relevance search, else all matches in one order. ``covers``: every match has a text term
    of ``rank``; ``within``: all the matches, when the caller has them."""
    if sort or boost is not None or rank is None or tier is None or total <= TIER_MIN:
        return be.page(
            conn,
            expr,
            offset=offset,
            limit=limit,
            sort=sort,
            boost=boost,
            rank=rank,
            rank_covers=covers,
            within=within if covers else None,
        )
    first = f"({expr}){be.AND}({tier})"
    out = be.page(
        conn, first, offset=offset, limit=limit, sort=(), boost=None, rank=rank, rank_covers=covers
    )
    if len(out) == limit:
        return out  # the page lies within the title tier: its size is not needed
    # The title tier ends on this page (it has offset + len(out) matches) or before it.
    n_first = offset + len(out) if out else be.count(conn, first)
    out += be.page(
        conn,
        be.not_(expr, tier),
        offset=max(0, offset - n_first),
        limit=limit - len(out),
        sort=(),
        boost=None,
        rank=rank,
        rank_covers=covers,
    )
    return out


# --------------------------------------------------------------------------- searching


def search(
    session: Session,
    tree: Node,
    *,
    offset: int = 0,
    limit: int = 20,
    sort: Sequence[SortKey] = (),
    facets: Sequence[str] | None = None,
    filters: Sequence[tuple[str, str]] = (),
) -> SearchResult:
    """One page of clusters matching ``tree`` (and the facet ``filters``), with facet counts
    for ``facets`` (None: all of ``index.FACETS``; []: none)."""
    if not 0 <= offset <= MAX_OFFSET:
        raise Invalid("offset: between 0 and {limit}", field="offset", limit=MAX_OFFSET)
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid("limit: between 1 and {limit}", field="limit", limit=MAX_LIMIT)
    wanted = list(FACETS) if facets is None else list(dict.fromkeys(facets))
    for f in wanted:
        if f not in FACETS:
            raise Invalid(
                "facets: each one of {choices}", field="facets", choices=", ".join(FACETS)
            )
    for k in sort:
        if k.field not in SORT_FIELDS:
            raise Invalid(
                "sort: one of {choices}, optionally with - for descending",
                field="sort",
                choices=", ".join(SORT_FIELDS),
            )
    be = backend(session)
    conn = connection(session)
    # One view of the index for the whole search (SQLite: the segment current now, if any).
    with be.pinned(conn):
        return _search(session, be, conn, tree, offset, limit, sort, wanted, filters)


def _search(
    session: Session,
    be: Backend,
    conn: Connection,
    tree: Node,
    offset: int,
    limit: int,
    sort: Sequence[SortKey],
    wanted: list[str],
    filters: Sequence[tuple[str, str]],
) -> SearchResult:
    parts = [] if is_empty(tree) else [be.compile(tree)]
    by_facet: dict[str, list[str]] = {}
    for facet, value in filters:
        by_facet.setdefault(facet, []).append(value)
    parts += [_filter_expr(be, f, vs) for f, vs in by_facet.items()]
    # A result of up to HEAD_MAX clusters is read whole, by id, in one pass: its size, its
    # facets (exact up to FACET_CAP, else over every k-th id) and, in cluster order, its page
    # come from that list, and ranking is kept to it. A bigger one is counted, and its facets
    # sampled in windows of ids.
    head: list[int] | None = None
    if not parts:
        expr = be.compile(MatchAll())
        total = be.all_count(conn)
    else:
        expr = be.AND.join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]
        head = be.first_ids(conn, expr, HEAD_MAX + 1)
        if len(head) <= HEAD_MAX:
            total = len(head)
        else:
            head = None
            total = be.count(conn, expr)
    ids: list[int] = []
    boost, rank = _boost(be, tree), _rank(be, tree)
    if total and offset < total:
        if head is not None and rank is None and boost is None and not sort:
            ids = head[offset : offset + limit]
        else:
            ids = _ranked(
                be,
                conn,
                expr,
                total,
                offset=offset,
                limit=limit,
                sort=sort,
                boost=boost,
                rank=rank,
                tier=_title_tier(be, tree),
                covers=_needs_text(tree),
                within=head,
            )
    counts: dict[str, dict[str, int]] = {}
    sampled: int | None = None
    if total and wanted:
        if head is not None:
            stride = -(-total // FACET_CAP)  # ceil: at most FACET_CAP clusters
            sample = head[::stride]
            counts = be.facet_counts_of(conn, sample, wanted)
            if stride > 1:
                sampled = len(sample)
        else:
            windows = facet_windows(*be.id_range(conn), total) if total > FACET_CAP else []
            counts, sampled = be.facet_counts(conn, expr, wanted, windows)
            if not windows:
                sampled = None
        if sampled:
            counts = {f: _estimate(vs, total, sampled) for f, vs in counts.items()}
    facet_out = {f: _facet_values(f, counts.get(f, {})) for f in wanted}
    return SearchResult(
        total=total,
        offset=offset,
        limit=limit,
        hits=hits(session, ids),
        facets=facet_out,
        facets_sampled=sampled,
        sort=list(sort),
    )


# Windows of the facet sample: as many as this, one at the start of each equal slice of the
# cluster ids (clusters are numbered as records arrive, so a window is a run of one member's
# file; sixteen spread over it keep the sample from leaning on one part of the catalogue).
FACET_WINDOWS = 16


def facet_windows(low: int, high: int, total: int) -> list[tuple[int, int]]:
    """Id windows (inclusive) that together hold about ``FACET_CAP`` of ``total`` matches
    spread evenly over the ids ``low..high``."""
    span = high - low + 1
    step = span / FACET_WINDOWS
    width = max(1, round(step * FACET_CAP / total))
    starts = dict.fromkeys(low + int(i * step) for i in range(FACET_WINDOWS))
    return [(a, a + width - 1) for a in starts]


def _estimate(counts: Mapping[str, int], total: int, sampled: int) -> dict[str, int]:
    """Counts of a sample scaled to the whole result (at least 1 for a value seen)."""
    if not sampled:
        return {}
    return {v: max(1, round(n * total / sampled)) for v, n in counts.items()}


def _facet_values(facet: str, counts: Mapping[str, int]) -> list[dict[str, Any]]:
    if facet == "year":  # decades, newest first
        ordered = sorted(counts.items(), key=lambda kv: kv[0], reverse=True)
    else:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"value": v, "count": n} for v, n in ordered[:FACET_VALUES]]


# --------------------------------------------------------------------------- hits


def hits(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Clusters in the given order with their holdings, member by member."""
    if not ids:
        return []
    conn = connection(session)
    # Plain DBAPI reads: the ORM's row and JSON processing cost more than the page itself.
    args = tuple(ids)
    merged_text = "c.merged" if conn.dialect.name == "sqlite" else "CAST(c.merged AS TEXT)"
    # The display fields come from the index document (a small JSON), the merged record only
    # for a cluster whose document predates them or is not written yet.
    clusters = {
        int(cid): (display, rc, mc, merged)
        for cid, display, rc, mc, merged in fetch_all(
            conn,
            f"SELECT c.id, d.display, c.record_count, c.member_count, "
            f"CASE WHEN d.display IS NULL OR d.display = '' THEN {merged_text} END "
            "FROM clusters c LEFT JOIN search_documents d ON d.cluster_id = c.id "
            f"WHERE c.id IN ({placeholders(conn, len(args))})",
            args,
        )
    }
    holdings = _holdings(conn, list(clusters))
    out = []
    for cid in ids:
        c = clusters.get(cid)
        if c is None:  # removed between the search and this read
            continue
        display, record_count, member_count, merged = c
        fields = orjson.loads(display) if display else display_fields(orjson.loads(merged or "{}"))
        h = {"id": cid, **fields, "record_count": record_count, "member_count": member_count}
        h["holdings"] = holdings.get(cid, [])
        h["available"] = any(m["available"] for m in h["holdings"])
        out.append(h)
    return out


def holdings_summary(
    session: Session, cluster_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """Per cluster, the members holding it: call numbers, locations, items and available items.

    A member with a record but no item on file is listed with no items (it catalogued the book;
    its copies are not known to the hub)."""
    return _holdings(session.connection(), cluster_ids)


def _holdings(conn: Connection, cluster_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    if not cluster_ids:
        return {}
    args = tuple(cluster_ids)
    false = "0" if conn.dialect.name == "sqlite" else "false"
    # The live records and their items (the records from their covering index), then the few
    # members they belong to: joining the member and region to every row cost more than both.
    rows = fetch_all(
        conn,
        "SELECT s.cluster_id, s.member_id, h.call_number, h.location, h.status "
        "FROM source_records s LEFT JOIN holdings h ON h.source_record_id = s.id "
        f"WHERE s.cluster_id IN ({placeholders(conn, len(args))}) AND s.deleted = {false}",
        args,
    )
    member_ids = tuple({row[1] for row in rows})
    members = (
        {
            mid: rest
            for mid, *rest in fetch_all(
                conn,
                "SELECT m.id, m.code, m.name_zh, m.name_en, r.code, m.status "
                "FROM members m JOIN regions r ON r.id = m.region_id "
                f"WHERE m.id IN ({placeholders(conn, len(member_ids))})",
                member_ids,
            )
        }
        if member_ids
        else {}
    )
    out: dict[int, dict[str, dict[str, Any]]] = {}
    # By cluster, member code and call number (code point order on every backend).
    for cid, mid, call, location, status in sorted(
        rows, key=lambda r: (r[0], members[r[1]][0], r[2] or "")
    ):
        code, name_zh, name_en, region, mstatus = members[mid]
        by_code = out.setdefault(int(cid), {})
        entry = by_code.get(code)
        if entry is None:
            entry = by_code[code] = {
                "member": code,
                "name_zh": name_zh,
                "name_en": name_en,
                "region": region,
                "member_status": mstatus,
                "call_numbers": [],
                "locations": [],
                "items": 0,
                "available": 0,
            }
        if status is None:
            continue
        entry["items"] += 1
        if status == "available":
            entry["available"] += 1
        if call and call not in entry["call_numbers"]:
            entry["call_numbers"].append(call)
        if location and location not in entry["locations"]:
            entry["locations"].append(location)
    return {cid: list(by_code.values()) for cid, by_code in out.items()}


# --------------------------------------------------------------------------- records, scan


@dataclass
class ClusterRecord:
    """What protocol front ends serve for a hit: the merged record and the representative
    source record as loaded."""

    cluster_id: int
    merged: dict[str, Any]
    raw: bytes
    flavour: str
    encoding: str
    member: str
    record_id: str


def cluster_records(session: Session, ids: Sequence[int]) -> list[ClusterRecord]:
    """For each cluster id (in order; ids no longer there are skipped), its merged record and
    its representative source record."""
    if not ids:
        return []
    rows = {
        r.id: r
        for r in session.execute(
            select(
                Cluster.id,
                Cluster.merged,
                SourceRecord.raw,
                SourceRecord.flavour,
                SourceRecord.encoding,
                SourceRecord.record_id,
                Member.code,
            )
            .join(SourceRecord, SourceRecord.id == Cluster.representative_id)
            .join(Member, Member.id == SourceRecord.member_id)
            .where(Cluster.id.in_(list(ids)))
        )
    }
    return [
        ClusterRecord(
            r.id, r.merged or {}, bytes(r.raw), r.flavour, r.encoding, r.code, r.record_id
        )
        for cid in ids
        if (r := rows.get(cid)) is not None
    ]


def scan(
    session: Session, field: str, start: str, *, before: int = 0, after: int = 10
) -> list[tuple[str, int]]:
    """Terms of an index (title, author, subject, publisher) around ``start`` (folded as the
    index folds), each with its number of clusters."""
    if field not in SCAN_FIELDS:
        raise Invalid(
            "scan: the index is one of {choices}", field="index", choices=", ".join(SCAN_FIELDS)
        )
    if not (0 <= before <= MAX_SCAN and 0 <= after <= MAX_SCAN):
        raise Invalid("scan: at most {limit} terms", field="count", limit=MAX_SCAN)
    tokens = cjk.query_tokens(start)
    first = tokens[0] if tokens else ""
    return backend(session).scan(session.connection(), field, first, before=before, after=after)
