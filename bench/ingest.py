"""Ingest benchmark: full load (read, normalise, cluster, store) against a bare pymarc parse of
the same file, measured in the same run. Prints a table.

    .venv/bin/python bench/ingest.py FILE.mrc [--limit N] [--members 1] [--database URL]
        [--workers 2] [--cache DIR] [--index auto|once] [--floor]

With --members K the file is loaded K times as K members, each copy with realistic per-member
variation (own record ids, some records dropped, ISBD punctuation and case changes, local
holdings), which is how a consortium's union catalogue fills up.
--index auto: each load brings the search index up to date at its end (what a single load
does); once (the default with several members: a bulk build): the loads defer it and one
drain at the end indexes every cluster once; its time is a row of its own and in the total.
--floor: before each load, the same file only read and normalised by the load's workers, as a
load's workers do it (keys, holdings, its merged record, its JSON; planned against an empty
catalogue), with nothing clustered, stored or indexed: the ceiling any full load of the file
can reach on this machine. Its rate and ratio are printed per member and in the total.
The 250,000-record LC file (BooksAll.2016.part01.utf8) is in the pymarc 5.4.0 sdist on PyPI:
    pip download --no-deps --no-binary :all: pymarc==5.4.0
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import pymarc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def bare_parse(path: Path, limit: int | None) -> tuple[int, float, float]:
    """Records, wall and CPU seconds of a bare pymarc parse (one core)."""
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    with path.open("rb") as fh:
        for rec in pymarc.MARCReader(fh):
            if rec is not None:
                n += 1
            if limit and n >= limit:
                break
    return n, time.perf_counter() - start, time.process_time() - cpu


def prepare_only(path: Path, workers: int, empty_db: str) -> tuple[int, float, float]:
    """Records, wall and all-process CPU seconds of the workers' read-and-normalise alone."""
    from consortia.catalog import ingest

    start, cpu, kids = time.perf_counter(), time.process_time(), children_cpu()
    n = sum(
        1
        for _ in ingest.prepared_stream(
            path,
            format="auto",
            encoding="auto",
            flavour="auto",
            mapping=None,
            workers=workers,
            on_bytes=lambda _n: None,
            member_code="FLOOR",
            db_url=empty_db,
        )
    )
    return n, time.perf_counter() - start, time.process_time() - cpu + children_cpu() - kids


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def member_copy(path: Path, out: Path, member: int, limit: int | None, seed: int) -> int:
    """A member's version of the file: own ids, ~3% dropped, small cataloguing differences."""
    rnd = random.Random(seed + member)
    n = 0
    with path.open("rb") as fh, out.open("wb") as dst:
        for i, rec in enumerate(pymarc.MARCReader(fh)):
            if limit and i >= limit:
                break
            if rec is None or (member and rnd.random() < 0.03):
                continue
            if member:
                for f in rec.get_fields("001"):
                    f.data = f"m{member}-{(f.data or '').strip()}"
                for f in rec.get_fields("245"):
                    if rnd.random() < 0.3 and f.subfields:
                        sf = f.subfields[0]
                        f.subfields[0] = pymarc.Subfield(sf.code, sf.value.rstrip(" /:;.,"))
                    if rnd.random() < 0.1 and f.subfields:
                        sf = f.subfields[0]
                        f.subfields[0] = pymarc.Subfield(sf.code, sf.value.upper())
                rec.remove_fields("035")
            rec.add_ordered_field(
                pymarc.Field(
                    tag="852",
                    indicators=pymarc.Indicators(" ", " "),
                    subfields=[
                        pymarc.Subfield("b", f"Library {member}"),
                        pymarc.Subfield("h", f"CALL {i}"),
                        pymarc.Subfield("p", f"B{member}{i:08d}"),
                    ],
                )
            )
            dst.write(rec.as_marc())
            n += 1
    return n


def add_members(prefix: str, n: int) -> None:
    """n members, codes prefix0 .. prefix{n-1}, in one region, in the migrated database of
    CONSORTIA_DATABASE_URL."""
    from consortia.accounts.roles import CLI
    from consortia.db import session_scope
    from consortia.members import service as members

    with session_scope() as s:
        members.ensure_region(s, CLI, "bench", "基准", "Bench")
        members.import_rows(
            s,
            CLI,
            [
                {
                    "code": f"{prefix}{k}",
                    "name_zh": f"馆{k}",
                    "name_en": f"Library {k}",
                    "type": "academic",
                    "sector": "education",
                    "region": "bench",
                }
                for k in range(n)
            ],
        )


def peak_rss_mb() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database", default=None, help="default: a fresh SQLite file")
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep the member copies here and reuse them in later runs",
    )
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also time the workers' read and normalise alone (nothing stored) per file",
    )
    ap.add_argument(
        "--index",
        choices=("auto", "once"),
        default=None,
        help="default: auto with one member, once with several",
    )
    args = ap.parse_args()
    once = (args.index or ("once" if args.members > 1 else "auto")) == "once"

    tmp = Path(tempfile.mkdtemp(prefix="consortia-bench-", dir=args.cache))
    url = args.database or f"sqlite:///{tmp / 'bench.db'}"
    os.environ["CONSORTIA_DATABASE_URL"] = url
    from consortia.accounts.roles import CLI
    from consortia.catalog import service
    from consortia.db import engine_for, migrate, session_scope

    migrate()
    add_members("CN-B", args.members)

    empty_db = ""
    if args.floor:
        empty_db = f"sqlite:///{tmp / 'floor.db'}"
        # An empty catalogue, migrated as any: the workers' plans find nothing, as for new
        # records.
        migrate(engine_for(empty_db))

    files = []
    for k in range(args.members):
        out = (args.cache or tmp) / f"member{k}-{args.limit or 'all'}.mrc"
        if not out.exists():
            member_copy(args.file, out, k, args.limit, seed=2016)
        files.append(out)

    rows = []
    total_read = 0
    total_secs = total_main = total_kids = 0.0
    bare_n = 0
    bare_secs = bare_cpu = 0.0
    loads = []
    floor_n = 0
    floor_secs = floor_cpu = 0.0
    for k, f in enumerate(files):
        n_bare, t_bare, c_bare = bare_parse(f, None)
        bare_n += n_bare
        bare_secs += t_bare
        bare_cpu += c_bare
        if args.floor:
            n_floor, t_floor, c_floor = prepare_only(f, args.workers, empty_db)
            floor_n += n_floor
            floor_secs += t_floor
            floor_cpu += c_floor
            print(
                f"floor {k}: {n_floor} read and normalised in {t_floor:.1f}s = "
                f"{n_floor / t_floor:.0f}/s, ratio {(n_floor / t_floor) / (n_bare / t_bare):.2f}, "
                f"cpu {c_floor:.1f}s ({c_floor / n_floor * 1e6:.0f} µs a record; bare parse "
                f"{c_bare / n_bare * 1e6:.0f})",
                flush=True,
            )
        load0 = os.getloadavg()[0]
        t0, c0, k0 = time.perf_counter(), time.process_time(), children_cpu()
        summary = service.load_files(CLI, f"CN-B{k}", [f], workers=args.workers, defer_index=once)
        secs = time.perf_counter() - t0
        main_cpu, kids_cpu = time.process_time() - c0, children_cpu() - k0
        loads.append((load0, os.getloadavg()[0]))
        total_read += summary.read
        total_secs += secs
        total_main += main_cpu
        total_kids += kids_cpu
        rows.append(
            (
                f"CN-B{k}",
                summary.read,
                summary.added,
                summary.planned,
                n_bare / t_bare,
                summary.read / secs,
                (summary.read / secs) / (n_bare / t_bare),
                secs,
                main_cpu,
                kids_cpu,
                rss_mb(),
                n_bare / c_bare,
                summary.read / max(main_cpu, (main_cpu + kids_cpu) / 2),
                summary.index_cpu,
            )
        )
        r = rows[-1]
        print(
            f"done {r[0]}: read {r[1]} planned {r[3]} bare {r[4]:.0f}/s ingest {r[5]:.0f}/s "
            f"ratio {r[6]:.2f} wall {r[7]:.1f}s main cpu {r[8]:.1f}s workers cpu {r[9]:.1f}s "
            f"rss {r[10]:.0f} MB bare/cpu {r[11]:.0f}/s cpu est {r[12]:.0f}/s "
            f"index cpu {r[13]:.1f}s load {loads[-1][0]:.1f}-{loads[-1][1]:.1f}",
            flush=True,
        )
    drain = None
    if once:
        t0, c0, k0 = time.perf_counter(), time.process_time(), children_cpu()
        n = service.index_pending(workers=args.workers)
        drain = (n, time.perf_counter() - t0, time.process_time() - c0, children_cpu() - k0)
        total_secs += drain[1]
        total_main += drain[2]
        total_kids += drain[3]
        print(
            f"done index: {n} clusters wall {drain[1]:.1f}s main cpu {drain[2]:.1f}s "
            f"workers cpu {drain[3]:.1f}s",
            flush=True,
        )
    with session_scope() as s:
        stats = service.stats(s)
    me, kids = peak_rss_mb()
    print(
        f"database: {url.split('://')[0]}   workers: {args.workers}   file: {args.file.name}"
        f"   members: {args.members}   limit: {args.limit}"
    )
    print(
        "ratio = ingest rec/s / bare pymarc rec/s (wall, same run); cpu est = records / "
        "max(writer cpu, all cpu / 2): the rate two idle cores would allow"
    )
    print(
        f"{'member':8} {'read':>8} {'added':>8} {'planned':>8} {'bare r/s':>9} "
        f"{'ingest r/s':>10} {'ratio':>6} {'wall s':>7} {'main cpu':>8} {'wkr cpu':>8} "
        f"{'rss MB':>7} {'bare/cpu':>9} {'cpu est':>8} {'cpu ratio':>9} {'index cpu':>9} load"
    )
    for r, ld in zip(rows, loads, strict=True):
        print(
            f"{r[0]:8} {r[1]:8d} {r[2]:8d} {r[3]:8d} {r[4]:9.0f} {r[5]:10.0f} {r[6]:6.2f} "
            f"{r[7]:7.1f} {r[8]:8.1f} {r[9]:8.1f} {r[10]:7.0f} {r[11]:9.0f} {r[12]:8.0f} "
            f"{r[12] / r[11]:9.2f} {r[13]:9.1f} {ld[0]:.1f}-{ld[1]:.1f}"
        )
    if drain is not None:
        print(
            f"{'index':8} {drain[0]:8d} {'':8} {'':8} {'':9} {'':10} {'':6} {drain[1]:7.1f} "
            f"{drain[2]:8.1f} {drain[3]:8.1f}   (clusters indexed once, after the loads)"
        )
    est = total_read / max(total_main, (total_main + total_kids) / 2)
    print(
        f"{'total':8} {total_read:8d} {'':8} {'':8} {bare_n / bare_secs:9.0f} "
        f"{total_read / total_secs:10.0f} "
        f"{(total_read / total_secs) / (bare_n / bare_secs):6.2f} {total_secs:7.1f} "
        f"{total_main:8.1f} {total_kids:8.1f} {'':7} {bare_n / bare_cpu:9.0f} {est:8.0f} "
        f"{est / (bare_n / bare_cpu):9.2f}"
    )
    if floor_n:
        print(
            f"{'floor':8} {floor_n:8d} {'':8} {'':8} {bare_n / bare_secs:9.0f} "
            f"{floor_n / floor_secs:10.0f} {(floor_n / floor_secs) / (bare_n / bare_secs):6.2f} "
            f"{floor_secs:7.1f} {floor_cpu:17.1f}   (read and normalise only: nothing stored; "
            "cpu of all processes; its workers count in the peak RSS below)"
        )
    print(
        f"clusters: {stats['clusters']}   peak RSS: main {me:.0f} MB, largest worker {kids:.0f} MB"
    )


if __name__ == "__main__":
    main()
