"""Join benchmark: what it costs to add one more member's copy of a book to clusters that
already hold k members' copies, for growing k. Prints a table.

    .venv/bin/python bench/join.py FILE.mrc [--records 500] [--sizes 1,2,4,8,16,32,64]
        [--cache DIR]

The file's first N records are loaded as one member after another (each copy with the
per-member variation of bench/ingest.py: own ids, ~3% dropped, cataloguing differences), so
every book's cluster grows by one record a load. Before the load that takes the clusters from
k to k + 1 records, the next member's records are planned against the catalogue in this
process, as a load's worker plans them (candidate clusters, the decision, the joined cluster's
merged record): its CPU a record, on one core. The load itself is timed too (the writer's and
the workers' CPU a record: the workers' includes reading and normalising, and their start).
A consortium loads its members one after the other; if a join cost more the bigger its
cluster, the hundredth holder of a book would cost a hundred times the second.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import add_members, member_copy  # bench/ingest.py


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def plan_cpu(path: Path, code: str, url: str) -> tuple[int, float]:
    """Records planned, and CPU seconds of planning them (not reading or normalising)."""
    from consortia.catalog import ingest
    from consortia.catalog.marc import read_records
    from consortia.db import engine_for

    data = path.read_bytes()
    ready = [
        p
        for p in (
            ingest.prepare(r, None, 0, code, alone=False)
            for r in read_records(io.BytesIO(data), format="iso2709", filename=path.name)
        )
        if isinstance(p, ingest.Prepared)
    ]
    gc.collect()
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 50, 50)  # as in a load's worker
    try:
        with engine_for(url).connect() as conn:
            cpu = time.process_time()
            for i in range(0, len(ready), ingest.CHUNK_RECORDS):
                ingest.plan_records(conn, ready[i : i + ingest.CHUNK_RECORDS], code)
            cpu = time.process_time() - cpu
    finally:
        gc.set_threshold(*thresholds)
    return len(ready), cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", type=Path)
    ap.add_argument("--records", type=int, default=500)
    ap.add_argument("--sizes", default="1,2,4,8,16,32,64")
    ap.add_argument("--cache", type=Path, default=None, help="keep the member copies here")
    args = ap.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    members = sizes[-1] + 1

    tmp = Path(tempfile.mkdtemp(prefix="consortia-join-", dir=args.cache))
    url = f"sqlite:///{tmp / 'join.db'}"
    os.environ["CONSORTIA_DATABASE_URL"] = url
    from sqlalchemy import text

    from consortia.accounts.roles import CLI
    from consortia.catalog import service
    from consortia.db import migrate, session_scope

    migrate()
    add_members("CN-J", members)
    files = []
    for k in range(members):
        out = (args.cache or tmp) / f"join-member{k}-{args.records}.mrc"
        if not out.exists():
            member_copy(args.file, out, k, args.records, seed=2016)
        files.append(out)

    rows = []
    for k, f in enumerate(files):
        if k in sizes:
            n_plan, c_plan = plan_cpu(f, f"CN-J{k}", url)
        t0, c0, k0 = time.perf_counter(), time.process_time(), children_cpu()
        summary = service.load_files(CLI, f"CN-J{k}", [f], workers=2, defer_index=True)
        wall, writer, workers = (
            time.perf_counter() - t0,
            time.process_time() - c0,
            children_cpu() - k0,
        )
        if k in sizes:
            with session_scope() as s:
                merged = s.execute(
                    text(
                        "SELECT avg(length(merged)), avg(record_count) FROM clusters "
                        "WHERE record_count > 1"
                    )
                ).one()
            rows.append(
                (k, n_plan, c_plan, summary.read, summary.planned, wall, writer, workers, *merged)
            )
            print(f"done k={k}", flush=True)
    print(f"database: sqlite   file: {args.file.name}   records a member: {args.records}")
    print(
        "k = records already in each cluster; plan = a worker's planning alone, one core; "
        "writer and workers = the whole load of the next member (workers: read, normalise, plan)"
    )
    print(
        f"{'k':>4} {'records':>8} {'plan µs/rec':>12} {'planned':>8} {'wall s':>7} "
        f"{'writer µs/rec':>14} {'workers µs/rec':>15} {'merged KB':>10} {'cluster size':>13}"
    )
    for k, n_plan, c_plan, read, planned, wall, writer, workers, size, count in rows:
        print(
            f"{k:4d} {n_plan:8d} {c_plan / n_plan * 1e6:12.0f} {planned:8d} {wall:7.1f} "
            f"{writer / read * 1e6:14.0f} {workers / read * 1e6:15.0f} "
            f"{(size or 0) / 1024:10.1f} {count or 0:13.1f}"
        )


if __name__ == "__main__":
    main()
