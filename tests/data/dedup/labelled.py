"""Load the labelled pairs (built by build_pairs.py) as NormalizedRecords through the real reader
and normaliser. Used by tests/catalog/test_matching.py and bench/dedup.py."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

from consortia.catalog.marc import ReadResult, read_records
from consortia.catalog.normalize import normalize
from consortia.catalog.record import NormalizedRecord

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Pair:
    a: int
    b: int
    same: bool
    category: str
    hard: bool
    note: str


def load_records(folder: Path = HERE) -> list[NormalizedRecord]:
    flavours: list[str] = []
    with open(folder / "records.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            flavours.append(line.split("\t", 2)[1])
    out: list[NormalizedRecord] = []
    with gzip.open(folder / "records.mrc.gz", "rb") as fh:
        data = io.BytesIO(fh.read())
        for i, res in enumerate(read_records(data, format="iso2709", encoding="utf-8")):
            if not isinstance(res, ReadResult):
                raise ValueError(f"record {i} of the labelled set cannot be read: {res.reason}")
            out.append(normalize(res.record, flavours[i], f"{i}"))
    if len(out) != len(flavours):
        raise ValueError(f"records.mrc.gz holds {len(out)} records, records.tsv {len(flavours)}")
    return out


def load_pairs(folder: Path = HERE) -> list[Pair]:
    with open(folder / "pairs.jsonl", encoding="utf-8") as fh:
        return [Pair(**json.loads(line)) for line in fh if line.strip()]
