"""Collection overlap's roll-up: the union catalogue's titles grouped by the members holding
them, so that the overlap report reads a few thousand rows instead of every source record.

A member holds a title (a cluster) from the China day its first live record of it was loaded;
a title's holders therefore grow over time, and ``stats_overlap`` keeps, per set of holders and
language, how many titles had exactly that set from which day until which day
(``stats/models.py``). The report for a period asks for the sets on its last day.

The roll-up is derived data, built whole from the catalogue (``build``) when it changed:
database triggers mark every change to source records (added, removed, moved to another
cluster, deleted, loaded again) and to a cluster's merged record (its language) in
``stats_catalogue_dirty`` (migration 0006). A build first removes the marks it sees and then
reads the catalogue, in that order, so a change committed meanwhile leaves its mark and is
built next time; nothing is ever missed, at worst built twice. Reports build it when marked
(``refresh``); the minute task (``stats/tasks.py``) does so in the background.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

from sqlalchemy.orm import Session

from consortia.db import utcnow
from consortia.stats.rollup import _Raw

FOREVER = "9999-12-31"
CHINESE = ("chi", "zho")


@dataclass(frozen=True)
class Built:
    clusters: int
    rows: int
    seconds: float


def is_current(session: Session) -> bool:
    """Built, and no change to the catalogue since (no lock taken)."""
    raw = _Raw(session)
    try:
        built = raw.one("SELECT built_at FROM stats_overlap_state WHERE id = 1")
        dirty = raw.one("SELECT id FROM stats_catalogue_dirty LIMIT 1")
    finally:
        raw.close()
    return built is not None and built[0] is not None and dirty is None


def _catalogue_sql(pg: bool) -> str:
    if pg:
        day = "to_char((min(loaded_at) AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD')"
        lang = "c.merged->'languages'->0->>'value'"
    else:
        day = "date(min(loaded_at), '+8 hours')"
        lang = "json_extract(c.merged, '$.languages[0].value')"
    # One statement: one snapshot of the catalogue, also under READ COMMITTED.
    return (
        f"SELECT g.cluster_id, g.member_id, g.day, {lang} FROM ("
        f"SELECT cluster_id, member_id, {day} AS day FROM source_records "
        "WHERE deleted = ? AND cluster_id IS NOT NULL GROUP BY cluster_id, member_id) g "
        "JOIN clusters c ON c.id = g.cluster_id ORDER BY g.cluster_id"
    )


def build(session: Session, *, force: bool = False) -> Built | None:
    """Rebuild the roll-up from the catalogue in the caller's transaction (the caller commits);
    None when another build made it current meanwhile."""
    started = time.perf_counter()
    raw = _Raw(session)
    try:
        raw.run(
            "INSERT INTO stats_overlap_state (id, built_at, clusters) VALUES (1, NULL, 0) "
            "ON CONFLICT (id) DO NOTHING"
        )
        # Write first: two builds take turns, and on SQLite the catalogue read below is then
        # the latest committed.
        raw.run("UPDATE stats_overlap_state SET clusters = clusters WHERE id = 1")
        built = raw.one("SELECT built_at FROM stats_overlap_state WHERE id = 1")
        dirty = raw.one("SELECT id FROM stats_catalogue_dirty LIMIT 1")
        if not force and built is not None and built[0] is not None and dirty is None:
            return None
        raw.run("DELETE FROM stats_catalogue_dirty")
        counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
        clusters = 0
        raw.cur.execute(raw.sql(_catalogue_sql(raw.pg)), (False,))
        tail: list[tuple[object, ...]] = []
        while True:
            fetched = raw.cur.fetchmany(50_000)
            rows = tail + list(fetched)
            if not fetched:
                tail = []
            else:
                # The last cluster may go on in the next fetch: keep it for then.
                cut = len(rows)
                while cut > 0 and rows[cut - 1][0] == rows[-1][0]:
                    cut -= 1
                rows, tail = rows[:cut], rows[cut:]
            for _cid, group in groupby(rows, key=itemgetter(0)):
                clusters += 1
                _fold(counts, list(group))
            if not fetched:
                break
        raw.run("DELETE FROM stats_overlap")
        raw.many(
            "INSERT INTO stats_overlap (holders, lang, since, until, n) VALUES (?, ?, ?, ?, ?)",
            [
                (h, la, raw.day(dt.date.fromisoformat(s)), raw.day(dt.date.fromisoformat(u)), n)
                for (h, la, s, u), n in counts.items()
            ],
        )
        raw.run(
            "UPDATE stats_overlap_state SET built_at = ?, clusters = ? WHERE id = 1",
            (raw.ts(utcnow()), clusters),
        )
        return Built(clusters, len(counts), time.perf_counter() - started)
    finally:
        raw.close()


def _fold(counts: dict[tuple[str, str, str, str], int], items: list[tuple[object, ...]]) -> None:
    value = items[0][3]
    lang = "chinese" if value in CHINESE else "foreign"
    ordered = sorted((str(day), int(member)) for _c, member, day, _l in items)  # type: ignore[call-overload]
    members: list[int] = []
    i = 0
    while i < len(ordered):
        day = ordered[i][0]
        while i < len(ordered) and ordered[i][0] == day:
            members.append(ordered[i][1])
            i += 1
        until = ordered[i][0] if i < len(ordered) else FOREVER
        counts[(",".join(map(str, sorted(members))), lang, day, until)] += 1


def refresh(session: Session) -> Built | None:
    """Build the roll-up when the catalogue changed, and commit that (None: it was current)."""
    if is_current(session):
        return None
    result = build(session)
    session.commit()
    return result


def holder_sets(
    session: Session, day: dt.date, language: str | None
) -> list[tuple[frozenset[int], int]]:
    """The sets of members holding titles on ``day`` (China's), with how many titles each."""
    raw = _Raw(session)
    try:
        sql = "SELECT holders, sum(n) FROM stats_overlap WHERE since <= ? AND until > ?"
        params: list[object] = [raw.day(day), raw.day(day)]
        if language is not None:
            sql += " AND lang = ?"
            params.append(language)
        rows = raw.all(sql + " GROUP BY holders", params)
    finally:
        raw.close()
    return [(frozenset(int(m) for m in str(h).split(",")), int(n)) for h, n in rows]
