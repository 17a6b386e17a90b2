"""Ingest benchmark: full load (read, normalise, cluster, store) against a bare pymarc parse of
the same file, measured in the same run. Prints a table.

    .venv/bin/python bench/ingest.py FILE.mrc [--limit N] [--members 1] [--database URL]

With --members K the file is loaded K times as K members, each copy with realistic per-member
variation (own record ids, some records dropped, ISBD punctuation and case changes, local
holdings), which is how a consortium's union catalogue fills up.
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


def bare_parse(path: Path, limit: int | None) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    with path.open("rb") as fh:
        for rec in pymarc.MARCReader(fh):
            if rec is not None:
                n += 1
            if limit and n >= limit:
                break
    return n, time.perf_counter() - start


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
            rec.add_ordered_field(pymarc.Field(
                tag="852", indicators=pymarc.Indicators(" ", " "),
                subfields=[pymarc.Subfield("b", f"Library {member}"),
                           pymarc.Subfield("h", f"CALL {i}"),
                           pymarc.Subfield("p", f"B{member}{i:08d}")]))
            dst.write(rec.as_marc())
            n += 1
    return n


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
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="consortia-bench-"))
    url = args.database or f"sqlite:///{tmp / 'bench.db'}"
    os.environ["CONSORTIA_DATABASE_URL"] = url
    from consortia.accounts.roles import CLI
    from consortia.catalog import service
    from consortia.db import migrate, session_scope
    from consortia.members import service as members

    migrate()
    with session_scope() as s:
        members.ensure_region(s, CLI, "bench", "基准", "Bench")
        members.import_rows(s, CLI, [
            {"code": f"CN-B{k}", "name_zh": f"馆{k}", "name_en": f"Library {k}",
             "type": "academic", "sector": "education", "region": "bench"}
            for k in range(args.members)])

    files = []
    for k in range(args.members):
        out = tmp / f"member{k}.mrc"
        member_copy(args.file, out, k, args.limit, seed=2016)
        files.append(out)

    rows = []
    total_read = 0
    total_secs = 0.0
    bare_total = 0.0
    for k, f in enumerate(files):
        n_bare, t_bare = bare_parse(f, None)
        t0 = time.perf_counter()
        summary = service.load_files(CLI, f"CN-B{k}", [f], workers=args.workers)
        secs = time.perf_counter() - t0
        total_read += summary.read
        total_secs += secs
        bare_total += t_bare
        rows.append((f"CN-B{k}", summary.read, summary.added, summary.quarantined,
                     summary.clusters_touched, n_bare / t_bare, summary.read / secs,
                     (summary.read / secs) / (n_bare / t_bare), secs))
    with session_scope() as s:
        stats = service.stats(s)
    me, kids = peak_rss_mb()
    print(f"database: {url.split('://')[0]}   workers: {args.workers}   file: {args.file.name}")
    print(f"{'member':8} {'read':>9} {'added':>9} {'quar.':>6} {'clusters':>9} "
          f"{'bare rec/s':>11} {'ingest rec/s':>13} {'ratio':>6} {'secs':>8}")
    for r in rows:
        print(f"{r[0]:8} {r[1]:9d} {r[2]:9d} {r[3]:6d} {r[4]:9d} {r[5]:11.0f} {r[6]:13.0f} "
              f"{r[7]:6.2f} {r[8]:8.1f}")
    print(f"{'total':8} {total_read:9d} {'':9} {'':6} {stats['clusters']:9d} "
          f"{total_read / bare_total:11.0f} {total_read / total_secs:13.0f} "
          f"{(total_read / total_secs) / (total_read / bare_total):6.2f} {total_secs:8.1f}")
    print(f"peak RSS: main {me:.0f} MB, largest worker {kids:.0f} MB")


if __name__ == "__main__":
    main()
