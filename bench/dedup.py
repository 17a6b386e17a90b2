"""Matching benchmark: precision and recall of the match decision on the labelled pairs
(tests/data/dedup, built by tests/data/dedup/build_pairs.py from the real MARC files), overall,
on the hard pairs and per category; how many same pairs the blocking keys bring together; the
same figures for an in-memory clustering of every record (match_keys → choose_cluster); and speed.

    .venv/bin/python bench/dedup.py [--errors N]

Targets (issue 3): precision >= 0.995, recall >= 0.97.
"""

from __future__ import annotations

import argparse
import collections
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "data" / "dedup"))

from labelled import Pair, load_pairs, load_records  # noqa: E402

from consortia.catalog.matching import choose_cluster, decide, match_keys  # noqa: E402
from consortia.catalog.record import NormalizedRecord  # noqa: E402
from consortia.catalog.textfold import fold, pinyin_key  # noqa: E402


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, truth: bool, said: bool) -> None:
        if truth and said:
            self.tp += 1
        elif said:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def precision(self) -> str:
        return f"{self.tp / (self.tp + self.fp):.4f}" if self.tp + self.fp else "-"

    def recall(self) -> str:
        return f"{self.tp / (self.tp + self.fn):.4f}" if self.tp + self.fn else "-"

    def accuracy(self) -> str:
        return f"{(self.tp + self.tn) / self.n:.4f}" if self.n else "-"


def row(name: str, c: Counts) -> str:
    return (
        f"| {name:28} | {c.n:5} | {c.tp + c.fn:5} | {c.precision():>9} | {c.recall():>6} "
        f"| {c.accuracy():>8} | {c.fp:3} | {c.fn:3} |"
    )


HEAD = (
    "| pairs                        |     n |  same | precision | recall | accuracy |  FP |  FN |\n"
    "|------------------------------|-------|-------|-----------|--------|----------|-----|-----|"
)


def cluster_all(records: list[NormalizedRecord]) -> list[int]:
    """Every record through blocking and choose_cluster, in file order, as ingest does."""
    by_key: dict[str, set[int]] = collections.defaultdict(set)
    members: dict[int, list[NormalizedRecord]] = {}
    cluster_of: list[int] = []
    for rec in records:
        keys = match_keys(rec)
        cands = sorted({c for k in keys for c in by_key.get(k, ())})
        cid, _ = choose_cluster(rec, [(c, members[c]) for c in cands])
        if cid is None:
            cid = len(members)
            members[cid] = []
        members[cid].append(rec)
        for k in keys:
            by_key[k].add(cid)
        cluster_of.append(cid)
    return cluster_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--errors", type=int, default=0, help="list the first N wrong decisions")
    args = ap.parse_args()

    t0 = time.perf_counter()
    records = load_records()
    pairs = load_pairs()
    t_load = time.perf_counter() - t0

    # One-time set-up (OpenCC dictionaries, the folding table, pypinyin) is not per-pair work.
    fold("中國 é")
    pinyin_key("中")

    overall, hard = Counts(), Counts()
    per: dict[str, Counts] = collections.defaultdict(Counts)
    wrong: list[tuple[Pair, str]] = []
    t0 = time.perf_counter()
    for p in pairs:
        d = decide(records[p.a], records[p.b])
        overall.add(p.same, d.same)
        per[p.category].add(p.same, d.same)
        if p.hard:
            hard.add(p.same, d.same)
        if d.same != p.same:
            wrong.append((p, d.rule))
    t_decide = time.perf_counter() - t0

    t0 = time.perf_counter()
    keys = [match_keys(r) for r in records]
    t_keys = time.perf_counter() - t0
    blocked = Counts()
    for p in pairs:
        blocked.add(p.same, bool(set(keys[p.a]) & set(keys[p.b])))

    t0 = time.perf_counter()
    cluster_of = cluster_all(records)
    t_cluster = time.perf_counter() - t0
    clustered = Counts()
    for p in pairs:
        clustered.add(p.same, cluster_of[p.a] == cluster_of[p.b])

    print(f"# Matching on the labelled pairs — {time.strftime('%Y-%m-%d')}")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    print(
        f"{len(records)} records, {len(pairs)} pairs ({sum(p.same for p in pairs)} same, "
        f"{sum(not p.same for p in pairs)} different, {sum(p.hard for p in pairs)} hard); "
        f"read + normalise {t_load:.2f} s"
    )
    print()
    print(HEAD)
    print(row("decide(): all pairs", overall))
    print(row("decide(): hard pairs", hard))
    print(row("blocking: share a key", blocked))
    print(row("clustering: same cluster", clustered))
    print()
    print(HEAD.replace("pairs      ", "category   "))
    for cat in sorted(per):
        print(row(cat, per[cat]))
    print()
    print("| speed | figure |")
    print("|---|---|")
    print(f"| decide() | {len(pairs) / t_decide:,.0f} pairs/s |")
    print(f"| match_keys() | {len(records) / t_keys:,.0f} records/s |")
    print(
        f"| clustering (keys + choose_cluster, in memory) | "
        f"{len(records) / t_cluster:,.0f} records/s ({len(set(cluster_of))} clusters) |"
    )
    targets_met = (
        overall.tp / (overall.tp + overall.fp) >= 0.995
        and overall.tp / (overall.tp + overall.fn) >= 0.97
    )
    print()
    print(f"targets (precision >= 0.995, recall >= 0.97): {'met' if targets_met else 'NOT met'}")
    if args.errors:
        print()
        for p, rule in wrong[: args.errors]:
            kind = "FN" if p.same else "FP"
            print(f"{kind} {p.category:26} {p.a:5} {p.b:5} rule={rule} note={p.note}")


if __name__ == "__main__":
    main()
