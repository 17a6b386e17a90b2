"""Loading records: idempotent, re-clustering on change, deletes, --replace, quarantine,
holdings, crash safety. Real LC records (tests/data/ingest/loc-60.mrc, from LC's BooksAll)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pymarc
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.catalog import service
from consortia.catalog.models import Cluster, Holding, MatchKey, QuarantinedRecord, SourceRecord
from consortia.search import index as search_index
from consortia.search.models import SearchDocument, SearchFacet
from tests.conftest import add_region_and_member

DATA = Path(__file__).parent.parent / "data" / "ingest"
LOC = DATA / "loc-60.mrc"


def loc_records() -> list[pymarc.Record]:
    with LOC.open("rb") as fh:
        return [r for r in pymarc.MARCReader(fh) if r is not None]


def write(path: Path, records: list[pymarc.Record]) -> Path:
    path.write_bytes(b"".join(r.as_marc() for r in records))
    return path


def snapshot(session: Session) -> dict[str, Any]:
    session.expire_all()
    return {
        "records": sorted(
            session.execute(
                select(
                    SourceRecord.member_id,
                    SourceRecord.record_id,
                    SourceRecord.fingerprint,
                    SourceRecord.cluster_id,
                    SourceRecord.deleted,
                )
            ).all()
        ),
        "clusters": sorted(
            session.execute(select(Cluster.id, Cluster.record_count, Cluster.member_count)).all()
        ),
        "keys": session.scalar(select(func.count()).select_from(MatchKey)),
        "holdings": session.scalar(select(func.count()).select_from(Holding)),
    }


@pytest.fixture
def two_members(session: Session) -> tuple[str, str]:
    add_region_and_member(session, code="CN-A")
    add_region_and_member(session, code="CN-B")
    session.commit()
    return "CN-A", "CN-B"


def test_load_is_idempotent(session: Session, two_members: tuple[str, str]) -> None:
    first = service.load_files(CLI, "CN-A", [LOC], workers=1)
    assert (first.read, first.added, first.quarantined) == (60, 60, 0)
    before = snapshot(session)
    again = service.load_files(CLI, "CN-A", [LOC], workers=1)
    assert (again.added, again.updated, again.unchanged, again.deleted) == (0, 0, 60, 0)
    assert snapshot(session) == before
    stats = service.stats(session)
    assert stats["records"] == 60 and stats["quarantined"] == 0
    assert stats["members"][0]["member"] == "CN-A"


def test_two_members_cluster_together_and_cluster_of_explains(
    session: Session, two_members: tuple[str, str]
) -> None:
    service.load_files(CLI, "CN-A", [LOC], workers=1)
    clusters_one = service.stats(session)["clusters"]
    service.load_files(CLI, "CN-B", [LOC], workers=1)
    stats = service.stats(session)
    assert stats["clusters"] == clusters_one
    assert stats["records"] == 120
    ids = [r["001"].value().strip() for r in loc_records()[:3]]
    out = service.cluster_of(session, "CN-B", ids)
    for d in out:
        assert d["cluster"] is not None and d["rule"] not in (None, "", "new")
        assert {"member": "CN-A", "id": d["id"]} in d["records"]
        assert {"member": "CN-B", "id": d["id"]} in d["records"]
    unknown = service.cluster_of(session, "CN-B", ["no-such-id"])
    assert unknown == [
        {
            "member": "CN-B",
            "id": "no-such-id",
            "cluster": None,
            "records": [],
            "rule": None,
            "score": None,
        }
    ]


def test_changed_record_splits_then_merges_again(
    session: Session, two_members: tuple[str, str], tmp_path: Path
) -> None:
    service.load_files(CLI, "CN-A", [LOC], workers=1)
    service.load_files(CLI, "CN-B", [LOC], workers=1)
    recs = loc_records()
    rid = recs[5]["001"].value().strip()
    before = service.cluster_of(session, "CN-B", [rid])[0]
    assert len(before["records"]) == 2
    # Member B's record now describes another book: new title, no shared numbers.
    changed = loc_records()
    rec = changed[5]
    for tag in ("020", "010", "035", "245"):
        rec.remove_fields(tag)
    rec.add_ordered_field(
        pymarc.Field(
            tag="245",
            indicators=["1", "0"],
            subfields=[
                pymarc.Subfield("a", "Quantum chromodynamics for beginners /"),
                pymarc.Subfield("c", "Zhang San."),
            ],
        )
    )
    summary = service.load_files(CLI, "CN-B", [write(tmp_path / "b.mrc", changed)], workers=1)
    assert (summary.updated, summary.unchanged) == (1, 59)
    after = service.cluster_of(session, "CN-B", [rid])[0]
    assert after["cluster"] != before["cluster"]
    assert after["records"] == [{"member": "CN-B", "id": rid}]
    a_side = service.cluster_of(session, "CN-A", [rid])[0]
    assert a_side["records"] == [{"member": "CN-A", "id": rid}]
    # And back: the record rejoins member A's cluster.
    service.load_files(CLI, "CN-B", [LOC], workers=1)
    again = service.cluster_of(session, "CN-B", [rid])[0]
    assert again["cluster"] == a_side["cluster"] and len(again["records"]) == 2


def test_leader_d_deletes_and_replace_marks_absent_deleted(
    session: Session, two_members: tuple[str, str], tmp_path: Path
) -> None:
    service.load_files(CLI, "CN-A", [LOC], workers=1)
    recs = loc_records()
    gone = recs[0]
    gone.leader = gone.leader[:5] + "d" + gone.leader[6:]
    summary = service.load_files(CLI, "CN-A", [write(tmp_path / "d.mrc", [gone])], workers=1)
    assert summary.deleted == 1
    rid = gone["001"].value().strip()
    assert service.cluster_of(session, "CN-A", [rid])[0]["cluster"] is None
    assert service.stats(session)["records"] == 59
    # A full load of 50 records with --replace: the other 9 live ones are deleted.
    full = write(tmp_path / "full.mrc", loc_records()[10:])
    summary = service.load_files(CLI, "CN-A", [full], workers=1, replace=True)
    assert summary.deleted == 9
    assert service.stats(session)["records"] == 50
    live = session.scalar(select(func.count()).select_from(Cluster))
    assert live == service.stats(session)["clusters"]


def test_bad_record_is_quarantined_and_the_load_goes_on(
    session: Session, two_members: tuple[str, str], tmp_path: Path
) -> None:
    raw = [r.as_marc() for r in loc_records()[:5]]
    broken = b"00x12" + raw[2][5:]  # a record length that is not a number
    path = tmp_path / "mixed.mrc"
    path.write_bytes(raw[0] + raw[1] + broken + raw[3] + raw[4])
    summary = service.load_files(CLI, "CN-A", [path], workers=1)
    assert (summary.added, summary.quarantined) == (4, 1)
    q = service.quarantine(session, "CN-A")
    assert q["total"] == 1
    item = q["items"][0]
    assert item["offset"] == len(raw[0]) + len(raw[1])
    assert item["filename"] == "mixed.mrc" and "leader" in item["reason"].lower()
    stored = session.get(QuarantinedRecord, item["id"])
    assert stored is not None and stored.raw == broken
    # Staff correct it and re-submit: it loads and the entry is resolved.
    result = service.resubmit(CLI, item["id"], raw[2])
    assert result["loaded"] and result["added"] == 1
    assert service.quarantine(session, "CN-A")["total"] == 0
    assert service.stats(session)["records"] == 5


def test_holdings_from_852_and_952(
    session: Session, two_members: tuple[str, str], tmp_path: Path
) -> None:
    recs = loc_records()[:2]
    recs[0].add_ordered_field(
        pymarc.Field(
            tag="852",
            indicators=[" ", " "],
            subfields=[
                pymarc.Subfield("b", "Main stacks"),
                pymarc.Subfield("h", "R733"),
                pymarc.Subfield("i", ".A9 1898"),
                pymarc.Subfield("p", "3100001"),
            ],
        )
    )
    recs[1].add_ordered_field(
        pymarc.Field(
            tag="952",
            indicators=[" ", " "],
            subfields=[
                pymarc.Subfield("a", "CN-A"),
                pymarc.Subfield("o", "Q1 .B2"),
                pymarc.Subfield("p", "3100002"),
                pymarc.Subfield("q", "2026-12-01"),
            ],
        )
    )
    service.load_files(CLI, "CN-A", [write(tmp_path / "h.mrc", recs)], workers=1)
    rows = sorted(
        session.execute(
            select(
                Holding.barcode,
                Holding.call_number,
                Holding.location,
                Holding.status,
                Holding.origin,
            )
        ).all()
    )
    assert rows == [
        ("3100001", "R733 .A9 1898", "Main stacks", "available", "852"),
        ("3100002", "Q1 .B2", "CN-A", "on_loan", "952"),
    ]


def test_two_workers_give_the_same_catalogue_as_one(
    session: Session, two_members: tuple[str, str]
) -> None:
    service.load_files(CLI, "CN-A", [LOC], workers=1)
    one = service.stats(session)
    service.load_files(CLI, "CN-B", [LOC], workers=2)
    rows = session.execute(
        select(SourceRecord.record_id, SourceRecord.member_id, SourceRecord.cluster_id)
    ).all()
    by_id: dict[str, set[int | None]] = {}
    for rid, _mid, cid in rows:
        by_id.setdefault(rid, set()).add(cid)
    assert all(len(c) == 1 for c in by_id.values())
    assert service.stats(session)["clusters"] == one["clusters"]


def _many(tmp_path: Path, n: int) -> Path:
    """n distinct records made from the real ones (new ids and titles)."""
    base = loc_records()
    out = []
    for i in range(n):
        rec = base[i % len(base)]
        rec = pymarc.Record(leader=rec.leader, fields=list(rec.fields))
        rec.remove_fields("001", "020", "010", "035", "245")
        rec.add_ordered_field(pymarc.Field(tag="001", data=f"gen{i:06d}"))
        rec.add_ordered_field(
            pymarc.Field(
                tag="245",
                indicators=["1", "0"],
                subfields=[
                    pymarc.Subfield(
                        "a", f"Generated study number {i} of {base[i % 60]['245']['a']}"
                    )
                ],
            )
        )
        out.append(rec)
    return write(tmp_path / "many.mrc", out)


def _children(pid: int) -> list[int]:
    try:
        text_ = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text_.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_kill_mid_load_loses_nothing_acknowledged(
    session: Session, two_members: tuple[str, str], tmp_path: Path, db_url: str, workers: int
) -> None:
    path = _many(tmp_path, 6000)
    env = {**os.environ, "CONSORTIA_DATABASE_URL": db_url}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "consortia",
            "ingest",
            "--member",
            "CN-A",
            "--workers",
            str(workers),
            "--json",
            str(path),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        session.rollback()
        committed = session.scalar(text("SELECT count(*) FROM source_records")) or 0
        if committed >= 1000:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    children = _children(proc.pid)
    assert len(children) >= workers if workers > 1 else True
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Its worker processes notice and go too (none is left waiting for work).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(c) for c in children):
        time.sleep(0.2)
    assert not [c for c in children if _alive(c)]
    session.rollback()
    after_kill = session.scalar(text("SELECT count(*) FROM source_records")) or 0
    # Whatever was committed is still there, whole batches only.
    assert after_kill >= committed and after_kill % 1000 == 0
    summary = service.load_files(CLI, "CN-A", [path], workers=1)
    assert summary.unchanged == after_kill
    assert summary.added == 6000 - after_kill
    assert service.stats(session)["records"] == 6000


def _catalogue(session: Session) -> dict[frozenset[tuple[int, str]], tuple[Any, ...]]:
    """The clusters by their records (cluster ids differ between loads), with what each says."""
    session.expire_all()
    recs = session.execute(
        select(
            SourceRecord.id,
            SourceRecord.cluster_id,
            SourceRecord.member_id,
            SourceRecord.record_id,
            SourceRecord.match_rule,
        ).where(SourceRecord.deleted.is_(False))
    ).all()
    by_cluster: dict[int, set[tuple[int, str]]] = {}
    rid_of = {r.id: (r.member_id, r.record_id) for r in recs}
    rules = {}
    for r in recs:
        by_cluster.setdefault(r.cluster_id, set()).add((r.member_id, r.record_id))
        rules[(r.member_id, r.record_id)] = r.match_rule
    out: dict[frozenset[tuple[int, str]], tuple[Any, ...]] = {}
    for c in session.execute(select(Cluster)).scalars():
        members = frozenset(by_cluster[c.id])
        out[members] = (
            c.title,
            c.year,
            c.record_count,
            c.member_count,
            rid_of[c.representative_id] if c.representative_id else None,
            c.merged,
            tuple(sorted(rules[m] for m in members)),
        )
    return out


def _index_rows(session: Session) -> tuple[list[Any], list[Any]]:
    session.expire_all()
    docs = session.execute(
        select(SearchDocument.cluster_id, SearchDocument.keys, SearchDocument.title).order_by(
            SearchDocument.cluster_id
        )
    ).all()
    facets = session.execute(
        select(SearchFacet.cluster_id, SearchFacet.facet, SearchFacet.value).order_by(
            SearchFacet.cluster_id, SearchFacet.facet, SearchFacet.value
        )
    ).all()
    return [tuple(d) for d in docs], [tuple(f) for f in facets]


def _clear_catalogue(session: Session) -> None:
    for table in (MatchKey, Holding, SourceRecord, Cluster):
        session.execute(table.__table__.delete())
    session.commit()


def _member_variant(prefix: str, duplicate_every: int) -> list[pymarc.Record]:
    """Another member's copy of the LC records: own ids, ISBD punctuation dropped from some
    titles, upper case in some, and some records twice (an in-member duplicate next to it)."""
    out = []
    for i, rec in enumerate(loc_records()):
        rec = pymarc.Record(leader=rec.leader, fields=list(rec.fields))
        rid = rec["001"].data.strip()
        rec.remove_fields("001", "035")
        rec.add_ordered_field(pymarc.Field(tag="001", data=f"{prefix}{rid}"))
        title = rec["245"]
        if title is not None and title.subfields and i % 3 == 0:
            sf = title.subfields[0]
            title.subfields[0] = pymarc.Subfield(sf.code, sf.value.rstrip(" /:;.,").upper())
        out.append(rec)
        if i % duplicate_every == 0:
            twin = pymarc.Record(leader=rec.leader, fields=list(rec.fields))
            twin.remove_fields("001")
            twin.add_ordered_field(pymarc.Field(tag="001", data=f"{prefix}twin-{rid}"))
            out.append(twin)
    return out


def test_worker_plans_give_the_catalogue_the_writer_gives(
    session: Session,
    two_members: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With two workers the workers cluster new records against the committed catalogue and
    the writer takes their plans when nothing changed since; the result must be exactly the
    catalogue the writer alone makes. Small batches and chunks put chunks several batches
    ahead of the writer, so plans go stale (twins in nearby chunks) and must be refused."""
    from consortia.catalog import ingest

    monkeypatch.setattr(ingest, "BATCH_SIZE", 7)
    monkeypatch.setattr(ingest, "CHUNK_RECORDS", 5)
    b_file = write(tmp_path / "b.mrc", _member_variant("b-", 4))
    a_twins = write(tmp_path / "a2.mrc", _member_variant("a-", 5))

    def load(workers: int) -> tuple[Any, list[int]]:
        planned = []
        for code, path in (("CN-A", LOC), ("CN-B", b_file), ("CN-A", a_twins)):
            s = service.load_files(CLI, code, [path], workers=workers)
            planned.append(s.planned)
        return _catalogue(session), planned

    alone, planned_alone = load(1)
    assert planned_alone == [0, 0, 0]
    _clear_catalogue(session)
    with_plans, planned = load(2)
    assert with_plans == alone
    # The search index kept up with the clusters the workers' plans joined: rebuilding every
    # cluster's document from the stored merged records changes nothing.
    kept = _index_rows(session)
    conn = session.connection()
    search_index.reindex_clusters(conn, list(session.scalars(select(Cluster.id))))
    session.commit()
    assert _index_rows(session) == kept
    assert any("mem" in row[1] and row[1].count("mem") >= 2 for row in kept[0])
    # Most new records took the worker's plan; twins next to their original did not.
    assert planned[0] > 40 and planned[1] > 40
    assert planned[1] < 60 + 15
    joined = [k for k in alone if len({m for m, _ in k}) == 2]
    assert len(joined) >= 55


def test_no_plans_taken_while_another_load_runs(
    session: Session, two_members: tuple[str, str]
) -> None:
    """Keys another member's load adds while this one runs are not in the writer's view of
    recent batches, so with another load running the writer decides every record itself."""
    from consortia.catalog import ingest
    from consortia.catalog.models import LoadBatch

    other = ingest.create_batch(session.connection(), "CN-B", "other.mrc")
    session.execute(
        LoadBatch.__table__.update()
        .where(LoadBatch.id == other)
        .values(status="running", started_at=dt.datetime.now(dt.UTC))
    )
    session.commit()
    summary = service.load_files(CLI, "CN-A", [LOC], workers=2)
    assert (summary.added, summary.planned) == (60, 0)
