"""Everything the compiled modules compute for a set of real records, as JSON lines.

Run as a script by tests/foundation/test_native.py, once with the compiled modules and once
with ``CONSORTIA_NATIVE=0``; the two outputs must be equal. Not a test module itself.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import orjson

from consortia import native
from consortia.catalog import matching
from consortia.catalog.holdings import Mapping, items_from_record
from consortia.catalog.marc import ReadResult, read_records
from consortia.catalog.normalize import normalize
from consortia.search import cjk
from consortia.search.index import build_document

DATA = Path(__file__).resolve().parents[1] / "data"


def _files() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted((DATA / "marc").rglob("*")) + sorted((DATA / "unimarc").rglob("*")):
        if path.is_file() and path.suffix not in (".md", ".py"):
            out.append((path.name, path.read_bytes()))
    out.append(("loc-60.mrc", (DATA / "ingest" / "loc-60.mrc").read_bytes()))
    out.append(("dedup", gzip.decompress((DATA / "dedup" / "records.mrc.gz").read_bytes())))
    return out


def _plain(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


def main() -> None:
    lines: list[str] = [json.dumps({"compiled": native.compiled()})]
    koha = Mapping("952", barcode="p", call_number="o", location="c", status="7")
    records = []
    for name, data in _files():
        for r in read_records(io.BytesIO(data), filename=name):
            if not isinstance(r, ReadResult):
                lines.append(json.dumps(["failure", name, r.offset, r.reason]))
                continue
            out: dict[str, Any] = {"file": name, "id": r.record_id, "flavour": r.flavour}
            out["encoding"], out["warnings"] = r.encoding, r.warnings
            try:
                rec = normalize(r.record, r.flavour, r.record_id)
            except Exception as exc:  # the same failure either way is an equal result
                out["error"] = f"{type(exc).__name__}: {exc}"
                lines.append(json.dumps(out, sort_keys=True))
                continue
            records.append(rec)
            merged = _plain(matching.merge([("CN-A", rec)]))
            out["record"] = _plain(rec.to_dict())
            out["keys"] = matching.match_keys(rec)
            out["items"] = [i.to_dict() for i in items_from_record(r.record, r.flavour, koha)]
            out["merged"] = merged
            out["document"] = list(build_document(1, merged, {"CN-A": "north"}).row())
            out["tokens"] = [cjk.index_tokens(rec.title, pinyin=True), cjk.fold(rec.title)]
            lines.append(json.dumps(out, sort_keys=True, ensure_ascii=False))
    # Decisions and clusters between neighbours: the same pairs in both runs.
    for a, b in itertools.pairwise(records):
        decision = matching.decide(a, b)
        lines.append(json.dumps(_plain(decision.to_dict()), sort_keys=True))
    for i in range(0, len(records) - 4, 4):
        group = [(f"CN-{k}", r) for k, r in enumerate(records[i : i + 4])]
        lines.append(json.dumps(_plain(matching.merge(group)), sort_keys=True, ensure_ascii=False))
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
