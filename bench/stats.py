"""Statistics benchmark: ten million request events, every report for any period, and the
roll-ups rebuilt from the event log.

    .venv/bin/python bench/stats.py [--scale 1.0] [--sqlite PATH] [--postgresql URL]
                                    [--copy-events-from SQLITE_PATH] [--reuse] [--repeat 5]

1. The consortium: the demo's 13 members and its union catalogue (loaded through ingest).
2. Its history 2010-2016 made by ``demo/simulator.py`` through the resource-sharing service at
   ``--scale`` (1.0: about 1.87 million requests and ten million events), every transition a
   service call with its own moment, committed every 1,000 calls. ``--reuse`` keeps a database
   that already has it (``--sqlite PATH`` names the file to keep).
   ``--copy-events-from`` (PostgreSQL only) is the faster documented path: the members and the
   event log of a finished SQLite run are copied (COPY) instead of replaying the history a
   second time; the roll-ups are then rebuilt from that log like any other.
3. The roll-ups rebuilt from the whole event log (``rollup.rebuild``), timed; a day of new
   traffic made through the service and caught up (the incremental path), timed; the check
   a report makes when nothing is new, timed.
4. Every report over a week, a month, a year, the whole history and an odd span, without
   filters, for one member, and for a region + service + language, each ``--repeat`` times
   (median and worst), as the API answers it (the report and its JSON); each chart drawn once
   (uncached) too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
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
FILTERS: dict[str, dict[str, str]] = {
    "-": {},
    "member": {"member": "CN-GZUCM"},
    "region+svc+lang": {"region": "guangdong", "service": "copy", "language": "foreign"},
}


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
    from consortia.demo.catalog import load_demo_catalogue
    from consortia.demo.load import demo_rows
    from consortia.members import service as members

    use_database(url)
    migrate(get_engine())
    with session_scope() as s:
        for row in demo_rows("regions.csv"):
            members.ensure_region(s, SYSTEM, row["code"], row["name_zh"], row["name_en"])
        members.import_rows(s, SYSTEM, demo_rows("members.csv"))
    t = time.perf_counter()
    n = load_demo_catalogue(SYSTEM, [r["code"] for r in demo_rows("members.csv")])
    print(f"  catalogue: {n:,} records in {time.perf_counter() - t:.0f} s", flush=True)


def count_events() -> int:
    from sqlalchemy import func, select

    from consortia.db import session_scope
    from consortia.events.models import Event

    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(Event)) or 0)


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


def generate(scale: float) -> dict[str, Any]:
    from consortia.db import session_factory
    from consortia.demo import simulator

    started = time.perf_counter()
    last = [started]

    def progress(day: dt.date, summary: simulator.Summary) -> None:
        if day.month in (1, 7) and time.perf_counter() - last[0] > 5:
            last[0] = time.perf_counter()
            rate = summary.calls / (last[0] - started)
            print(
                f"    {day}: {summary.requests:,} requests, {summary.calls:,} calls "
                f"({rate:,.0f}/s)",
                flush=True,
            )

    summary = simulator.simulate(session_factory(), scale=scale, progress=progress)
    return {
        "requests": summary.requests,
        "calls": summary.calls,
        "events": sum(summary.events.values()),
        "seconds": time.perf_counter() - started,
    }


def copy_events(sqlite_path: str, url: str) -> dict[str, Any]:
    """Members, regions and the event log of a SQLite run into PostgreSQL, by COPY."""
    import sqlite3

    from consortia.db import get_engine

    use_database(url)
    src = sqlite3.connect(sqlite_path)
    started = time.perf_counter()
    engine = get_engine()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        n = 0
        cols = "id, at, actor, actor_user_id, action, entity_type, entity_id, member_id, payload"
        with cur.copy(f"COPY events ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in src.execute(
                f"SELECT {cols} FROM events WHERE entity_type = 'ill_request' ORDER BY id"
            ):
                at = row[1] + "+00" if isinstance(row[1], str) else row[1]
                copy.write_row((row[0], at, *row[2:]))
                n += 1
        cur.execute("SELECT setval('events_id_seq', (SELECT max(id) FROM events))")
        # New requests (the incremental day) must not reuse the copied history's request ids.
        cur.execute(
            "SELECT setval('ill_requests_id_seq', (SELECT max(entity_id::bigint) FROM events "
            "WHERE entity_type = 'ill_request'))"
        )
        raw.commit()
    finally:
        raw.close()
        src.close()
    return {"events": n, "seconds": time.perf_counter() - started}


def rebuild() -> dict[str, Any]:
    from consortia.db import session_scope
    from consortia.stats import rollup

    t = time.perf_counter()
    with session_scope() as s:
        result = rollup.rebuild(s)
    return {
        "events_read": result.events_read,
        "events_applied": result.events_applied,
        "seconds": time.perf_counter() - t,
    }


def forget_copy_holes() -> None:
    """The copied log lacks the SQLite run's other events (members, catalogue): their ids look
    like transactions still in flight. Let the roll-ups give them up now rather than after the
    wait, as they would by themselves ten minutes later."""
    from consortia.db import session_scope, utcnow
    from consortia.stats import rollup

    with session_scope() as s:
        rollup.catch_up(s, now=utcnow() + rollup.GAP_WAIT + dt.timedelta(seconds=1))


def one_more_day() -> dict[str, Any]:
    """A day of traffic through the service (2017-01-03, a Tuesday at the 2016 rate), then the
    catch-up a report would do."""
    from consortia.db import session_factory, session_scope
    from consortia.demo import simulator
    from consortia.stats import rollup

    cal = simulator.Calibration(
        start=dt.date(2017, 1, 3),
        end=dt.date(2017, 1, 3),
        requests=((2017, 250_000),),
        fill_rate=((2017, 0.95),),
    )
    t = time.perf_counter()
    summary = simulator.Life(session_factory(), cal, 1.0, 2017).run()
    made = time.perf_counter() - t
    t = time.perf_counter()
    with session_scope() as s:
        result = rollup.catch_up(s)
    return {
        "requests": summary.requests,
        "events": sum(summary.events.values()),
        "make_seconds": made,
        "catch_up_seconds": time.perf_counter() - t,
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


def time_reports(repeat: int) -> list[dict[str, Any]]:
    from consortia.db import session_factory
    from consortia.errors import Invalid
    from consortia.stats import charts, export
    from consortia.stats import service as stats

    out = []
    factory = session_factory()
    cases = [(name, "requests") for name in stats.REPORTS]
    # Before/after on the heaviest series too: monthly medians from the hour histograms.
    cases.insert(cases.index(("impact", "requests")) + 1, ("impact", "turnaround"))
    for name, series in cases:
        for pname, (start, end) in PERIODS.items():
            for fname, extra in FILTERS.items():
                if name == "overlap" and "service" in extra:
                    continue
                f = stats.Filters(start, end, **extra)
                options = stats.Options(
                    compare_from=stats.year_earlier(start),
                    compare_to=stats.year_earlier(end),
                    intervention=dt.date(2014, 1, 1) if pname in ("all", "odd") else start,
                    series=series,
                )
                if name == "impact" and pname not in ("all", "odd"):
                    continue  # a week or a month has no months on both sides (422)
                times = []
                for _ in range(repeat):
                    with factory() as s:
                        t = time.perf_counter()
                        try:
                            report = stats.run(s, name, f, options)
                        except Invalid as exc:
                            raise SystemExit(f"{name} {pname} {fname}: {exc}") from exc
                        export.to_json(report, "en")
                        times.append(time.perf_counter() - t)
                t = time.perf_counter()
                report.extra["as_of"] = ("bench", time.perf_counter())  # uncached
                charts.render(report, "zh-CN")
                chart = time.perf_counter() - t
                out.append(
                    {
                        "report": name if series == "requests" else f"{name} ({series})",
                        "period": pname,
                        "filters": fname,
                        "median": statistics.median(times),
                        "max": max(times),
                        "chart": chart,
                    }
                )
    return out


def run(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"{label}: {url}", flush=True)
    use_database(url)
    result: dict[str, Any] = {"label": label}
    if args.copy_events_from and label == "PostgreSQL":
        setup(url)
        result["copy"] = copy_events(args.copy_events_from, url)
        print(f"  copied {result['copy']['events']:,} events", flush=True)
    elif args.reuse and count_events() > 0:
        print("  reusing the database's history", flush=True)
    else:
        setup(url)
        result["generate"] = generate(args.scale)
        g = result["generate"]
        print(f"  history: {g['requests']:,} requests in {g['seconds']:.0f} s", flush=True)
    use_database(url)
    result["request_events"] = count_request_events()
    print(f"  request events: {result['request_events']:,}; rebuilding …", flush=True)
    result["rebuild"] = rebuild()
    print(f"  rebuilt in {result['rebuild']['seconds']:.1f} s", flush=True)
    if "copy" in result:
        forget_copy_holes()
    result["day"] = one_more_day()
    result["nothing_new"] = nothing_new(args.repeat)
    result["reports"] = time_reports(args.repeat)
    return result


def report(r: dict[str, Any]) -> None:
    print()
    print(f"### {r['label']}")
    print()
    print("| step | figure |")
    print("|---|---|")
    if "generate" in r:
        g = r["generate"]
        print(
            f"| history made through the service | {g['requests']:,} requests, "
            f"{g['calls']:,} service calls, {g['events']:,} events in {g['seconds'] / 60:.1f} min "
            f"({g['calls'] / g['seconds']:,.0f} calls/s) |"
        )
    if "copy" in r:
        c = r["copy"]
        print(f"| event log copied from SQLite | {c['events']:,} events in {c['seconds']:.0f} s |")
    b = r["rebuild"]
    print(f"| request events in the log | {r['request_events']:,} |")
    print(
        f"| roll-ups rebuilt from the log | {b['events_read']:,} events read in "
        f"{b['seconds']:.1f} s ({b['events_read'] / b['seconds']:,.0f} events/s) |"
    )
    d = r["day"]
    print(
        f"| a new day: {d['requests']:,} requests ({d['events']:,} events) through the service | "
        f"{d['make_seconds']:.1f} s; caught up in {d['catch_up_seconds'] * 1000:.0f} ms |"
    )
    print(f"| a report's check when nothing is new | {r['nothing_new'] * 1000:.1f} ms |")
    rows = r["reports"]
    worst = max(rows, key=lambda x: x["max"])
    print(
        f"| slowest report answer (worst of all runs) | {worst['max'] * 1000:.0f} ms "
        f"({worst['report']}, {worst['period']}, {worst['filters']}) |"
    )
    print()
    print("| report | period | filters | median ms | worst ms | chart ms |")
    print("|---|---|---|---:|---:|---:|")
    for x in rows:
        print(
            f"| {x['report']} | {x['period']} | {x['filters']} | {x['median'] * 1000:.1f} | "
            f"{x['max'] * 1000:.1f} | {x['chart'] * 1000:.0f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--sqlite", metavar="PATH", help="SQLite file (kept); default a temp file")
    ap.add_argument("--postgresql", metavar="URL", help="a PostgreSQL database to use")
    ap.add_argument("--copy-events-from", metavar="SQLITE_PATH")
    ap.add_argument("--reuse", action="store_true", help="keep an existing history")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-sqlite", action="store_true")
    args = ap.parse_args()
    results = []
    if not args.no_sqlite:
        if args.sqlite:
            results.append(run("SQLite", f"sqlite:///{args.sqlite}", args))
        else:
            with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
                results.append(run("SQLite", f"sqlite:///{tmp}/stats.db", args))
        report(results[-1])
    if args.postgresql:
        results.append(run("PostgreSQL", args.postgresql, args))
        report(results[-1])
    over = [x for r in results for x in r["reports"] if x["max"] > 1.0]
    if over:
        print(f"\n{len(over)} report answers took more than 1 s")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
