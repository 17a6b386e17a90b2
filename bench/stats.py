"""Statistics benchmark: ten million request events, every report for any period from the
roll-ups against the same report computed on the raw event log, the roll-ups rebuilt.

    flock /tmp/bench.lock .venv/bin/python bench/stats.py [--scale 1.0] [--sqlite PATH]
        [--postgresql URL] [--no-sqlite] [--reuse] [--repeat 5] [--clusters 250000]

Per database:

1. The demo's 13 members and regions.
2. A union catalogue of ``--clusters`` titles held by about ten members each, **bulk-inserted**
   (clusters and source records only: the overlap counts records; no items, no match keys, no
   search index), with each member's load on its own day and a later top-up, so that the
   catalogue grows over time as a real one does.
3. The consortium's history 2010-2016 at ``--scale`` (1.0: 1.87 million requests, about ten
   million events), **bulk-written** by ``demo/bulk.py`` from the simulator's calibrated plan
   in the very shape the resource-sharing service writes (``tests/stats/test_bulk.py`` proves
   the rows and the roll-ups equal the service's). Made through the service itself it runs at
   about 2,000 calls/s here, close to an hour per database.
4. The roll-ups rebuilt from the whole event log (``rollup.rebuild``) and the overlap roll-up
   built from the catalogue, timed; a further day of events caught up (the incremental path),
   and the check a report makes when nothing is new, timed.
5. Every report over a week, a month, a year, the whole history and an odd span; without
   filters, for one member, and for a region + service + language; ``--repeat`` times each, as
   the API answers it (the report and its JSON): p50 and p95 over all of them, wall and CPU.
6. The baseline, in the same run: each report's figures computed straight from the event log
   (no roll-ups: the requests made in the period joined to their outcomes), and collection
   overlap straight from the source records, over the week, month, year and whole history
   without filters; the roll-up report's figures are checked against them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

PERIODS = {
    "week": (dt.date(2016, 10, 17), dt.date(2016, 10, 23)),
    "month": (dt.date(2016, 10, 1), dt.date(2016, 10, 31)),
    "year": (dt.date(2014, 1, 1), dt.date(2014, 12, 31)),
    "all": (dt.date(2010, 1, 1), dt.date(2016, 12, 31)),
    "odd": (dt.date(2010, 1, 15), dt.date(2016, 10, 23)),
}
BASELINE_PERIODS = ("week", "month", "year", "all")
FILTERS: dict[str, dict[str, str]] = {
    "-": {},
    "member": {"member": "CN-GZUCM"},
    "region+svc+lang": {"region": "guangdong", "service": "copy", "language": "foreign"},
}
FIRST_REQUEST = 10_000_001  # bulk request ids: far from those the service hands out
CST = dt.timezone(dt.timedelta(hours=8))


def use_database(url: str) -> None:
    os.environ["CONSORTIA_DATABASE_URL"] = url
    from consortia import db
    from consortia.settings import reset_settings

    reset_settings()
    db.reset_engine()


def setup(url: str) -> None:
    import consortia.all_models  # noqa: F401
    from consortia.accounts.roles import SYSTEM
    from consortia.db import get_engine, migrate, session_scope
    from consortia.demo.load import demo_rows
    from consortia.members import service as members

    use_database(url)
    migrate(get_engine())
    with session_scope() as s:
        for row in demo_rows("regions.csv"):
            members.ensure_region(s, SYSTEM, row["code"], row["name_zh"], row["name_en"])
        members.import_rows(s, SYSTEM, demo_rows("members.csv"))


def _raw(session: Any) -> tuple[bool, Any]:
    conn = session.connection()
    return conn.dialect.name == "postgresql", conn.connection.dbapi_connection


def bulk_catalogue(n_clusters: int, seed: int = 250) -> dict[str, Any]:
    """Clusters with the source records of about ten members each, bulk-inserted."""
    from sqlalchemy import select

    from consortia.db import session_scope
    from consortia.members.models import Member

    rnd = random.Random(seed)
    t = time.perf_counter()
    with session_scope() as s:
        members = sorted(int(i) for i in s.scalars(select(Member.id)))
        pg, raw = _raw(s)
        cur = raw.cursor()
        load_day = {m: dt.datetime(2015, 3, 1, 2, tzinfo=dt.UTC) + dt.timedelta(days=7 * i)
                    for i, m in enumerate(members)}  # fmt: skip
        top_up = dt.datetime(2016, 6, 1, 2, tzinfo=dt.UTC)
        clusters: list[tuple[Any, ...]] = []
        records: list[tuple[Any, ...]] = []
        rid = 0

        def ts(v: dt.datetime) -> Any:
            return v if pg else v.replace(tzinfo=None).isoformat(" ", "microseconds")

        def flush() -> None:
            if pg:
                with cur.copy(
                    "COPY clusters (id, title, merged, record_count, member_count, updated_at) "
                    "FROM STDIN"
                ) as copy:
                    for row in clusters:
                        copy.write_row(row)
                with cur.copy(
                    "COPY source_records (id, member_id, record_id, flavour, encoding, raw, "
                    "fingerprint, normalized, deleted, cluster_id, match_rule, match_score, "
                    "match_detail, filename, file_offset, loaded_at, updated_at) FROM STDIN"
                ) as copy:
                    for row in records:
                        copy.write_row(row)
            else:
                cur.executemany(
                    "INSERT INTO clusters (id, title, merged, record_count, member_count, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    clusters,
                )
                cur.executemany(
                    "INSERT INTO source_records (id, member_id, record_id, flavour, encoding, "
                    "raw, fingerprint, normalized, deleted, cluster_id, match_rule, match_score, "
                    "match_detail, filename, file_offset, loaded_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    records,
                )
            clusters.clear()
            records.clear()

        for cid in range(1, n_clusters + 1):
            lang = "chi" if rnd.random() < 0.6 else "eng"
            # 15 % held by one member (characteristic collections), else about ten.
            k = 1 if rnd.random() < 0.15 else min(len(members), 4 + sum(
                rnd.random() < 0.6 for _ in range(10)))  # fmt: skip
            holders = rnd.sample(members, k)
            merged = json.dumps({"languages": [{"value": lang}]})
            clusters.append((cid, f"title {cid}", merged, k, k, ts(top_up)))
            for m in holders:
                rid += 1
                at = top_up if rnd.random() < 0.05 else load_day[m]
                records.append((rid, m, f"b{rid}", "marc21", "utf-8", b"", "-", "{}", False,
                                cid, "bench", 1.0, "{}", "bench", 0, ts(at), ts(at)))  # fmt: skip
            if len(records) >= 100_000:
                flush()
        flush()
        if pg:
            cur.execute("SELECT setval('clusters_id_seq', %s)", (n_clusters,))
            cur.execute("SELECT setval('source_records_id_seq', %s)", (rid,))
        cur.close()
    return {"clusters": n_clusters, "records": rid, "seconds": time.perf_counter() - t}


def bulk_history(scale: float) -> dict[str, Any]:
    from consortia.db import session_factory
    from consortia.demo import bulk

    t = time.perf_counter()
    last = [t]

    def progress(n: int) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"    {n:,} events ({n / (last[0] - t):,.0f}/s)", flush=True)

    with session_factory()() as s:
        codes = bulk.member_codes(s)
        lives = [0]

        def days() -> Any:
            for day, todays in bulk.plan(
                s, scale=scale, clusters=250_000, first_request_id=FIRST_REQUEST
            ):
                lives[0] += len(todays)
                yield day, todays

        n = bulk.write(s, bulk.time_ordered(days(), codes), progress=progress)
    return {"requests": lives[0], "events": n, "seconds": time.perf_counter() - t}


def count_request_events() -> int:
    from sqlalchemy import func, select

    from consortia.db import session_scope
    from consortia.events.models import Event

    with session_scope() as s:
        return int(
            s.scalar(
                select(func.count()).select_from(Event).where(Event.entity_type == "ill_request")
            )
            or 0
        )


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def analyze(tables: tuple[str, ...]) -> None:
    """PostgreSQL: the planner's statistics of freshly bulk-loaded tables now, as autovacuum
    would soon (a plan made without them reads a week of events by a full scan)."""
    from consortia.db import get_engine

    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE {table}")
        conn.commit()


def rebuild() -> dict[str, Any]:
    from consortia.db import session_scope
    from consortia.stats import overlap, rollup

    def both() -> Any:
        with session_scope() as s:
            return rollup.rebuild(s)

    result, wall, cpu = timed(both)
    analyze(("stats_requests", "stats_lending", "stats_turnaround"))

    def build() -> Any:
        with session_scope() as s:
            return overlap.build(s, force=True)

    built, owall, ocpu = timed(build)
    analyze(("stats_overlap",))
    return {
        "events_read": result.events_read,
        "events_applied": result.events_applied,
        "seconds": wall,
        "cpu": cpu,
        "overlap_seconds": owall,
        "overlap_cpu": ocpu,
        "overlap_rows": built.rows,
        "overlap_clusters": built.clusters,
    }


def one_more_day() -> dict[str, Any]:
    """2017-01-03's events (a Tuesday at the 2016 rate) appended, then the catch-up a report
    would do."""
    from sqlalchemy import func, select

    from consortia.db import session_factory, session_scope
    from consortia.demo import bulk, simulator
    from consortia.events.models import Event
    from consortia.stats import rollup

    cal = simulator.Calibration(
        start=dt.date(2017, 1, 3),
        end=dt.date(2017, 1, 3),
        requests=((2017, 250_000),),
        fill_rate=((2017, 0.95),),
    )
    with session_factory()() as s:
        codes = bulk.member_codes(s)
        # A run reusing the database made such days already: new request ids after theirs.
        made = s.scalar(
            select(func.count())
            .select_from(Event)
            .where(
                Event.action == "ill.request.created",
                Event.at >= dt.datetime(2017, 1, 1, tzinfo=dt.UTC),
            )
        )
        first = FIRST_REQUEST * 2 + int(made or 0)
        days = list(bulk.plan(s, calibration=cal, seed=2017, first_request_id=first))
        n = bulk.write(s, bulk.time_ordered(days, codes))

    def catch() -> Any:
        with session_scope() as s:
            return rollup.catch_up(s)

    result, wall, _cpu = timed(catch)
    return {
        "requests": sum(len(t) for _d, t in days),
        "events": n,
        "catch_up_seconds": wall,
        "caught_up": result.events_read,
    }


def nothing_new(repeat: int) -> float:
    from consortia.db import session_factory
    from consortia.stats import rollup

    times = []
    for _ in range(repeat):
        with session_factory()() as s:
            t = time.perf_counter()
            assert rollup.refresh(s) is None
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _options(start: dt.date, end: dt.date, pname: str, series: str) -> Any:
    from consortia.stats import service as stats

    return stats.Options(
        compare_from=stats.year_earlier(start),
        compare_to=stats.year_earlier(end),
        intervention=dt.date(2014, 1, 1) if pname in ("all", "odd") else start,
        series=series,
    )


def _cases() -> list[tuple[str, str]]:
    from consortia.stats import service as stats

    cases = [(name, "requests") for name in stats.REPORTS]
    # Before/after on the heaviest series too: monthly medians from the hour histograms.
    cases.insert(cases.index(("impact", "requests")) + 1, ("impact", "turnaround"))
    return cases


def _label(name: str, series: str) -> str:
    return name if series == "requests" else f"{name} ({series})"


def time_reports(repeat: int) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Any]]:
    from consortia.db import session_factory
    from consortia.errors import Invalid
    from consortia.stats import charts, export
    from consortia.stats import service as stats

    out = []
    kept: dict[tuple[str, str], Any] = {}
    factory = session_factory()
    for name, series in _cases():
        for pname, (start, end) in PERIODS.items():
            if name == "impact" and pname not in ("all", "odd"):
                continue  # a week or a month has no months on both sides (422)
            for fname, extra in FILTERS.items():
                if name == "overlap" and "service" in extra:
                    continue
                f = stats.Filters(start, end, **extra)
                options = _options(start, end, pname, series)
                walls, cpus = [], []
                for _ in range(repeat):
                    with factory() as s:
                        t, c = time.perf_counter(), time.process_time()
                        try:
                            report = stats.run(s, name, f, options)
                        except Invalid as exc:
                            raise SystemExit(f"{name} {pname} {fname}: {exc}") from exc
                        export.to_json(report, "en")
                        walls.append(time.perf_counter() - t)
                        cpus.append(time.process_time() - c)
                if fname == "-":
                    kept[(_label(name, series), pname)] = report
                t = time.perf_counter()
                report.extra["as_of"] = ("bench", time.perf_counter())  # uncached
                charts.render(report, "zh-CN")
                chart = time.perf_counter() - t
                out.append(
                    {
                        "report": _label(name, series),
                        "period": pname,
                        "filters": fname,
                        "walls": walls,
                        "cpus": cpus,
                        "chart": chart,
                    }
                )
    return out, kept


# ----------------------------------------------------------------------------- the baseline


def _bounds(pg: bool, start: dt.date, end: dt.date) -> tuple[Any, Any]:
    a = dt.datetime.combine(start, dt.time(), CST).astimezone(dt.UTC)
    b = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), CST).astimezone(dt.UTC)
    if pg:
        return a, b
    return (
        a.replace(tzinfo=None).isoformat(" ", "microseconds"),
        b.replace(tzinfo=None).isoformat(" ", "microseconds"),
    )


def _j(pg: bool, alias: str, key: str, cast_int: bool = False) -> str:
    if pg:
        expr = f"({alias}.payload->>'{key}')"
        return f"{expr}::int" if cast_int else expr
    return f"json_extract({alias}.payload, '$.{key}')"


def raw_requests(s: Any, start: dt.date, end: dt.date, group: str) -> list[tuple[Any, ...]]:
    """Requests made in the period (their created events) with their outcomes, straight from
    the event log: ``group`` is borrower_lang, month or total."""
    pg, raw = _raw(s)
    exists = (
        "CASE WHEN EXISTS (SELECT 1 FROM events o WHERE o.entity_type = 'ill_request' "
        "AND o.entity_id = c.entity_id AND o.action = '{}') THEN 1 ELSE 0 END"
    )
    if group == "borrower_lang":
        cols = f"{_j(pg, 'c', 'borrower', True)}, {_j(pg, 'c', 'lang')}"
    elif group == "month":
        cols = (
            "to_char(c.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')"
            if pg
            else "substr(datetime(c.at, '+8 hours'), 1, 7)"
        )
    else:
        cols = ""
    sql = (
        f"SELECT {cols + ', ' if cols else ''}count(*), "
        f"sum({exists.format('ill.request.shipped')}), "
        f"sum({exists.format('ill.request.unfilled')}) FROM events c "
        "WHERE c.action = 'ill.request.created' AND c.at >= {p} AND c.at < {p} "
        + (f"GROUP BY {cols}" if cols else "")
    ).replace("{p}", "%s" if pg else "?")
    cur = raw.cursor()
    cur.execute(sql, _bounds(pg, start, end))
    rows = list(cur.fetchall())
    cur.close()
    return rows


def raw_shipped(s: Any, start: dt.date, end: dt.date, group: str) -> list[tuple[Any, ...]]:
    """Transfers of the requests made in the period: ``group`` lender_service_hours (with the
    turnaround) or lender_borrower."""
    pg, raw = _raw(s)
    if pg:
        hours = "ceil(extract(epoch FROM o.at - c.at) / 3600.0 - 1e-9)::int"
    else:
        x = "((julianday(o.at) - julianday(c.at)) * 24.0)"
        hours = f"(CAST({x} AS INTEGER) + ({x} > CAST({x} AS INTEGER)))"
    if group == "lender_service_hours":
        cols = f"{_j(pg, 'o', 'lender', True)}, {_j(pg, 'c', 'service')}, {hours}"
    else:
        cols = f"{_j(pg, 'o', 'lender', True)}, {_j(pg, 'c', 'borrower', True)}"
    sql = (
        f"SELECT {cols}, count(*) FROM events c JOIN events o ON o.entity_type = 'ill_request' "
        "AND o.entity_id = c.entity_id AND o.action = 'ill.request.shipped' "
        "WHERE c.action = 'ill.request.created' AND c.at >= {p} AND c.at < {p} "
        f"GROUP BY {cols}"
    ).replace("{p}", "%s" if pg else "?")
    cur = raw.cursor()
    cur.execute(sql, _bounds(pg, start, end))
    rows = list(cur.fetchall())
    cur.close()
    return rows


def raw_overlap(s: Any, end: dt.date) -> dict[int, int]:
    """Collection overlap straight from the source records (as the report did before its
    roll-up): titles by the number of members holding them, and the member × member matrix."""
    pg, raw = _raw(s)
    b = _bounds(pg, end, end)[1]
    cur = raw.cursor()
    cur.execute(
        "SELECT cluster_id, member_id FROM source_records WHERE deleted = {p} "
        "AND cluster_id IS NOT NULL AND loaded_at < {p} GROUP BY cluster_id, member_id".replace(
            "{p}", "%s" if pg else "?"
        ),
        (False, b),
    )
    holders: dict[int, list[int]] = defaultdict(list)
    for cid, mid in cur.fetchall():
        holders[int(cid)].append(int(mid))
    cur.close()
    matrix: dict[tuple[int, int], int] = defaultdict(int)
    by_count: dict[int, int] = defaultdict(int)
    for members_of in holders.values():
        by_count[len(members_of)] += 1
        for a in members_of:
            for c in members_of:
                matrix[(a, c)] += 1
    return dict(by_count)


def baseline(report: str, s: Any, start: dt.date, end: dt.date) -> Any:
    from consortia.stats import service as stats

    if report == "service":
        return raw_requests(s, start, end, "borrower_lang")
    if report in ("monthly", "impact"):
        return raw_requests(s, start, end, "month")
    if report == "yearly":
        out = []
        for year in range(start.year, end.year + 1):
            a, b = max(start, dt.date(year, 1, 1)), min(end, dt.date(year, 12, 31))
            out.append(raw_requests(s, a, b, "total"))
            out.append(raw_requests(s, stats.year_earlier(a), stats.year_earlier(b), "total"))
        return out
    if report in ("turnaround", "impact (turnaround)"):
        return raw_shipped(s, start, end, "lender_service_hours")
    if report == "lending":
        return raw_shipped(s, start, end, "lender_borrower")
    if report == "change":
        return [
            raw_requests(s, start, end, "total"),
            raw_requests(s, stats.year_earlier(start), stats.year_earlier(end), "total"),
        ]
    if report == "overlap":
        return raw_overlap(s, end)
    raise ValueError(report)


def check(label: str, report: Any, raw: Any) -> str | None:
    """The roll-up report's figures against the raw computation (None: they agree)."""
    if label == "service":
        rows = report.tables[0].rows
        want = sum(int(r[2]) for r in raw), sum(int(r[3]) for r in raw)
        got = sum(r["requests"] for r in rows), sum(r["transfers"] for r in rows)
    elif label == "monthly":
        want = {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in raw}
        got = {
            r["month"]: (r["requests"], r["transfers"], r["unfilled"])
            for r in report.tables[0].rows
            if r["requests"]
        }
    elif label == "turnaround":
        want = sum(int(r[3]) for r in raw)
        got = sum(r["transfers"] for r in report.table("services").rows)
    elif label == "lending":
        want = sum(int(r[2]) for r in raw)
        got = sum(r["lent"] for r in report.table("members").rows)
    elif label == "change":
        want = int(raw[0][0][0]) if raw[0] else 0
        got = next(r["period"] for r in report.tables[0].rows if r["measure"] == "requests")
    elif label == "overlap":
        want = raw
        got = {r["members"]: r["titles"] for r in report.table("distribution").rows}
    else:
        return None
    return None if want == got else f"{label}: roll-ups {got} != raw {want}"


def time_baseline(kept: dict[tuple[str, str], Any]) -> tuple[list[dict[str, Any]], list[str]]:
    from consortia.db import session_factory

    out = []
    problems = []
    factory = session_factory()
    for name, series in _cases():
        label = _label(name, series)
        for pname in BASELINE_PERIODS:
            if (label, pname) not in kept:
                continue
            start, end = PERIODS[pname]
            with factory() as s:
                raw, wall, cpu = timed(lambda s=s, a=start, b=end, n=label: baseline(n, s, a, b))
            problem = check(label, kept[(label, pname)], raw)
            if problem:
                problems.append(f"{pname}: {problem}")
            out.append({"report": label, "period": pname, "wall": wall, "cpu": cpu})
            print(f"    raw {label} {pname}: {wall:.2f} s", flush=True)
    return out, problems


# ----------------------------------------------------------------------------- the run


def run(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"{label}: {url}", flush=True)
    use_database(url)
    result: dict[str, Any] = {"label": label}
    if args.reuse and count_request_events() > 0:
        print("  reusing the database's history and catalogue", flush=True)
    else:
        setup(url)
        result["catalogue"] = bulk_catalogue(args.clusters)
        c = result["catalogue"]
        print(f"  catalogue: {c['records']:,} records in {c['seconds']:.0f} s", flush=True)
        result["history"] = bulk_history(args.scale)
        h = result["history"]
        print(f"  history: {h['events']:,} events in {h['seconds']:.0f} s", flush=True)
    use_database(url)
    analyze(("events", "source_records", "clusters"))
    result["request_events"] = count_request_events()
    if args.no_rebuild:
        # A run cut short after its rebuild: the roll-ups are current (caught up below).
        print(f"  request events: {result['request_events']:,}; not rebuilt", flush=True)
    else:
        print(f"  request events: {result['request_events']:,}; rebuilding …", flush=True)
        result["rebuild"] = rebuild()
        b = result["rebuild"]
        print(
            f"  rebuilt in {b['seconds']:.1f} s; overlap {b['overlap_seconds']:.1f} s", flush=True
        )
    result["day"] = one_more_day()
    result["nothing_new"] = nothing_new(args.repeat)
    print("  timing the reports …", flush=True)
    result["reports"], kept = time_reports(args.repeat)
    print("  timing the baseline …", flush=True)
    result["baseline"], result["problems"] = time_baseline(kept)
    return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def report(r: dict[str, Any], load: str) -> None:
    print()
    print(f"### {r['label']} (load average at the start {load})")
    print()
    print("| step | figure |")
    print("|---|---|")
    if "catalogue" in r:
        c = r["catalogue"]
        print(
            f"| catalogue bulk-inserted | {c['clusters']:,} clusters, {c['records']:,} source "
            f"records in {c['seconds']:.0f} s |"
        )
    if "history" in r:
        h = r["history"]
        print(
            f"| history bulk-written | {h['requests']:,} requests, {h['events']:,} events in "
            f"{h['seconds'] / 60:.1f} min ({h['events'] / h['seconds']:,.0f} events/s) |"
        )
    print(f"| request events in the log | {r['request_events']:,} |")
    if "rebuild" in r:
        b = r["rebuild"]
        print(
            f"| roll-ups rebuilt from the log | {b['events_read']:,} events in "
            f"{b['seconds']:.1f} s ({b['cpu']:.1f} CPU s; "
            f"{b['events_read'] / b['seconds']:,.0f} events/s) |"
        )
        print(
            f"| overlap roll-up built from the catalogue | {b['overlap_clusters']:,} clusters "
            f"→ {b['overlap_rows']:,} rows in {b['overlap_seconds']:.1f} s "
            f"({b['overlap_cpu']:.1f} CPU s) |"
        )
    d = r["day"]
    print(
        f"| a new day: {d['requests']:,} requests ({d['events']:,} events) caught up | "
        f"{d['catch_up_seconds'] * 1000:.0f} ms |"
    )
    print(f"| a report's check when nothing is new | {r['nothing_new'] * 1000:.1f} ms |")
    rows = r["reports"]
    worst = max(rows, key=lambda x: max(x["walls"]))
    print(
        f"| slowest report answer (worst of all runs) | {max(worst['walls']) * 1000:.0f} ms "
        f"({worst['report']}, {worst['period']}, {worst['filters']}) |"
    )
    print()
    print(
        "| report | answers | p50 ms | p95 ms | worst ms | CPU p50 ms | raw p50 ms | raw worst "
        "ms | raw ÷ roll-ups, whole history | chart ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    by_report: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for x in rows:
        by_report[x["report"]].append(x)
    base: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for x in r["baseline"]:
        base[x["report"]].append(x)
    for name, xs in by_report.items():
        walls = [w for x in xs for w in x["walls"]]
        cpus = [c for x in xs for c in x["cpus"]]
        raws = [x["wall"] for x in base.get(name, [])]
        whole = next((x for x in xs if x["period"] == "all" and x["filters"] == "-"), None)
        raw_all = next((x["wall"] for x in base.get(name, []) if x["period"] == "all"), None)
        ratio = (
            f"{raw_all / statistics.median(whole['walls']):,.0f}×"
            if whole is not None and raw_all is not None
            else "—"
        )
        print(
            f"| {name} | {len(walls)} | {pct(walls, 0.5) * 1000:.1f} | "
            f"{pct(walls, 0.95) * 1000:.1f} | {max(walls) * 1000:.1f} | "
            f"{pct(cpus, 0.5) * 1000:.1f} | "
            f"{(statistics.median(raws) * 1000) if raws else 0:,.0f} | "
            f"{(max(raws) * 1000) if raws else 0:,.0f} | {ratio} | "
            f"{statistics.median(x['chart'] for x in xs) * 1000:.0f} |"
        )
    print()
    print("Per period, no filters (median ms, roll-ups / raw):")
    print()
    print("| report | " + " | ".join(PERIODS) + " |")
    print("|---|" + "---:|" * len(PERIODS))
    for name, xs in by_report.items():
        cells = []
        for pname in PERIODS:
            x = next((x for x in xs if x["period"] == pname and x["filters"] == "-"), None)
            raw = next((b["wall"] for b in base.get(name, []) if b["period"] == pname), None)
            cell = "—" if x is None else f"{statistics.median(x['walls']) * 1000:.1f}"
            if raw is not None:
                cell += f" / {raw * 1000:,.0f}"
            cells.append(cell)
        print(f"| {name} | " + " | ".join(cells) + " |")
    if r["problems"]:
        print()
        print("Figures that differ from the raw computation:")
        for p in r["problems"]:
            print(f"- {p}")
    else:
        print()
        print("The roll-up reports' figures equal the raw computation's in every baseline case.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--clusters", type=int, default=250_000)
    ap.add_argument("--sqlite", metavar="PATH", help="SQLite file (kept); default a temp file")
    ap.add_argument("--postgresql", metavar="URL", help="a PostgreSQL database to use")
    ap.add_argument("--reuse", action="store_true", help="keep an existing history")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-rebuild", action="store_true", help="with --reuse: keep the roll-ups")
    args = ap.parse_args()
    results = []
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, load average {load}", flush=True)
    if not args.no_sqlite:
        if args.sqlite:
            results.append(run("SQLite", f"sqlite:///{args.sqlite}", args))
        else:
            with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
                results.append(run("SQLite", f"sqlite:///{tmp}/stats.db", args))
        report(results[-1], load)
    if args.postgresql:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        results.append(run("PostgreSQL", args.postgresql, args))
        report(results[-1], load)
    over = [x for r in results for x in r["reports"] if max(x["walls"]) > 1.0]
    if over:
        print(f"\n{len(over)} report cases took more than 1 s at least once")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
