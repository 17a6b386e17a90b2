"""Records per second of read_records + normalize against bare pymarc.MARCReader, same run,
and of everything a load's worker does to a new record (``ingest.prepare``: also its blocking
keys, holdings, merged record and JSON), in one process.

Run by hand: ``.venv/bin/python bench/parse.py [FILE.mrc] [--repeat N]``. Prints a table.
The issue's target: full ingest at >= 0.5x bare pymarc parse speed; read + normalize should be
well above that.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import platform
import time
from pathlib import Path

import pymarc

from consortia.catalog.ingest import Prepared, prepare
from consortia.catalog.marc import ReadResult, read_records
from consortia.catalog.normalize import normalize

DEFAULT = Path(__file__).resolve().parents[2] / (
    "shared/data/marc/loc-booksall/BooksAll.2016.part01.recs000001-040000.mrc"
)


def bare_pymarc(path: Path) -> int:
    n = 0
    with path.open("rb") as fh:
        for record in pymarc.MARCReader(fh):
            if record is not None:
                n += 1
    return n


def read_only(path: Path) -> int:
    return sum(1 for r in read_records(path) if isinstance(r, ReadResult))


def read_normalize(path: Path) -> int:
    n = 0
    for r in read_records(path):
        if isinstance(r, ReadResult):
            normalize(r.record, r.flavour, r.record_id)
            n += 1
    return n


def worker_prepare(path: Path) -> int:
    """A load worker's work on each new record, but the planning (see bench/ingest.py --floor
    for the same on both cores)."""
    n = 0
    for r in read_records(path):
        if isinstance(r, ReadResult) and isinstance(prepare(r, None, 0, "BENCH"), Prepared):
            n += 1
    return n


def timed(fn, path: Path, repeat: int) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    """Best wall-clock and best CPU seconds of ``repeat`` runs (CPU time is steadier on a busy
    machine; the ratio is taken on it)."""
    best_wall = best_cpu = float("inf")
    count = 0
    for _ in range(repeat):
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        count = fn(path)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return count, best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is kept")
    args = ap.parse_args()
    rows = []
    base_rate = 0.0
    for name, fn in (
        ("pymarc.MARCReader (bare)", bare_pymarc),
        ("read_records", read_only),
        ("read_records + normalize", read_normalize),
        ("ingest.prepare (a worker's)", worker_prepare),
    ):
        count, wall, cpu = timed(fn, args.file, args.repeat)
        rate = count / cpu
        if not base_rate:
            base_rate = rate
        rows.append((name, count, wall, cpu, rate, rate / base_rate))
    print(f"file: {args.file.name} ({args.file.stat().st_size / 1e6:.1f} MB)")
    version = importlib.metadata.version("pymarc")
    print(
        f"python {platform.python_version()}, pymarc {version}, {platform.machine()}, "
        f"best of {args.repeat}"
    )
    head = f"{'variant':<28} {'records':>8} {'wall s':>7} {'cpu s':>7} {'rec/cpu s':>10}"
    print(f"{head} {'vs pymarc':>10}")
    for name, count, wall, cpu, rate, ratio in rows:
        print(f"{name:<28} {count:>8} {wall:>7.2f} {cpu:>7.2f} {rate:>10.0f} {ratio:>9.2f}x")


if __name__ == "__main__":
    main()
