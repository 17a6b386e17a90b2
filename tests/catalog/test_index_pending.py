"""The search index of a big load is brought up to date at its end, not batch by batch: the
writer marks the clusters it touches (``search_pending``) in each batch's transaction and
``index.index_pending`` indexes them. Search must find exactly what inline indexing finds, and
a load killed mid-way must leave its clusters marked, to be indexed by the next drain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.catalog import ingest, service, tasks
from consortia.catalog.models import Cluster, SearchPending, SourceRecord
from consortia.db import get_engine
from consortia.search import index as search_index
from consortia.search import searchbox
from consortia.search import service as search
from consortia.search.backends import backend_for
from consortia.search.models import SearchDocument, SearchFacet
from consortia.tasks import huey
from tests.catalog.test_ingest import LOC, _clear_catalogue, _many, _member_variant, write
from tests.conftest import add_region_and_member

DATA = Path(__file__).parent.parent / "data"
CHI = DATA / "search" / "lc-chi-40.mrc"
CNMARC = DATA / "unimarc" / "cnmarc-utf8.mrc"
QUERIES = (
    "history",
    "title:history",
    "author:smith",
    "china",
    "明代",
    "zhongguo",
    "subject:united states",
    "isbn:9780",
    "year:1990-2010",
    "united states history",
)


@pytest.fixture
def members(session: Session) -> None:
    add_region_and_member(session, code="CN-A", region="south")
    add_region_and_member(session, code="CN-B", region="north")
    session.commit()


def _records_of(session: Session) -> dict[int, frozenset[tuple[int, str]]]:
    out: dict[int, set[tuple[int, str]]] = {}
    for cid, mid, rid in session.execute(
        select(SourceRecord.cluster_id, SourceRecord.member_id, SourceRecord.record_id).where(
            SourceRecord.deleted.is_(False)
        )
    ):
        out.setdefault(cid, set()).add((mid, rid))
    return {c: frozenset(r) for c, r in out.items()}


def _index(session: Session) -> dict[str, Any]:
    """Documents, facets and search answers, by the records of each cluster (cluster ids may
    differ between two loads of the same files)."""
    session.expire_all()
    recs = _records_of(session)
    docs = {
        recs[row[0]]: tuple(row[1:])
        for row in session.execute(
            select(*(getattr(SearchDocument, c) for c in search_index.DOC_COLUMNS))
        )
    }
    facets: dict[frozenset[tuple[int, str]], set[tuple[str, str]]] = {}
    for cid, facet, value in session.execute(
        select(SearchFacet.cluster_id, SearchFacet.facet, SearchFacet.value)
    ):
        facets.setdefault(recs[cid], set()).add((facet, value))
    answers = {}
    for q in QUERIES:
        r = search.search(session, searchbox.parse(q), limit=100)
        answers[q] = (
            r.total,
            [recs[h["id"]] for h in r.hits],
            {f: sorted((v["value"], v["count"]) for v in vs) for f, vs in r.facets.items()},
        )
    session.rollback()
    return {"docs": docs, "facets": facets, "answers": answers, "clusters": len(recs)}


def _load_all(workers: int) -> None:
    service.load_files(CLI, "CN-A", [LOC, CHI], workers=workers)
    service.load_files(CLI, "CN-B", [LOC, CNMARC], workers=workers)


def _pending(session: Session) -> int:
    session.rollback()
    return int(session.scalar(select(func.count()).select_from(SearchPending)) or 0)


@pytest.mark.parametrize(("workers", "once"), [(1, False), (2, False), (2, True)])
def test_a_deferred_index_finds_what_inline_indexing_finds(
    session: Session,
    members: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    once: bool,
) -> None:
    # Inline: every batch's clusters indexed after its commit (small batches: many of them,
    # and clusters the second member joins are indexed twice).
    monkeypatch.setattr(ingest, "BATCH_SIZE", 13)
    b_twins = write(tmp_path / "b2.mrc", _member_variant("b-", 4))
    loads = [("CN-A", [LOC, CHI]), ("CN-B", [LOC, CNMARC]), ("CN-B", [b_twins])]
    for code, paths in loads:
        service.load_files(CLI, code, paths, workers=workers)
    inline = _index(session)
    assert _pending(session) == 0
    assert inline["clusters"] > 100 and len(inline["docs"]) == inline["clusters"]
    assert any(a[0] for a in inline["answers"].values())

    _clear_catalogue(session)
    assert session.scalar(select(func.count()).select_from(SearchDocument)) == 0
    # Deferred: the clusters are marked batch by batch and indexed once at the end of each
    # load (with two workers the documents are built in the worker processes) or, with
    # defer_index, once after all the loads.
    monkeypatch.setattr(ingest, "INLINE_INDEX_BYTES", 0)
    marked: list[int] = []
    real = search_index.index_pending

    def spy(conn: Any, **kw: Any) -> int:
        marked.append(int(conn.scalar(select(func.count()).select_from(SearchPending)) or 0))
        conn.commit()
        return real(conn, **kw)

    monkeypatch.setattr(search_index, "index_pending", spy)
    for code, paths in loads:
        service.load_files(CLI, code, paths, workers=workers, defer_index=once)
    if once:
        assert marked == []
        marks = _pending(session)
        assert marks >= inline["clusters"]
        assert session.scalar(select(func.count()).select_from(SearchDocument)) == 0
        assert service.index_pending(workers=workers) == marks
        assert len(marked) == 1
    else:
        # One drain per load, at its end, with that load's clusters marked.
        assert len(marked) == 3 and all(n > 0 for n in marked)
    assert _pending(session) == 0
    assert _index(session) == inline


def test_a_drain_leaves_a_cluster_marked_again_since_it_read_the_mark(
    session: Session, members: None
) -> None:
    service.load_files(CLI, "CN-A", [LOC], workers=1)
    with get_engine().connect() as conn:
        cid = int(conn.scalar(select(func.min(Cluster.id))) or 0)
        search_index.mark_pending(conn, [cid])
        (version,) = conn.execute(
            select(SearchPending.version).where(SearchPending.cluster_id == cid)
        ).one()
        # Another writer changes the cluster after the drain read the mark: its mark is newer.
        search_index.mark_pending(conn, [cid])
        conn.commit()
        search_index._write_part(conn, backend_for(conn.dialect.name), [(cid, version)], [])
        left = conn.scalar(select(SearchPending.version).where(SearchPending.cluster_id == cid))
        assert left is not None and left > version
        # The next drain reads the newer mark, indexes the cluster again and clears it.
        assert search_index.index_pending(conn) == 1
    assert _pending(session) == 0
    assert session.scalar(
        select(func.count()).select_from(SearchDocument).where(SearchDocument.cluster_id == cid)
    )


def test_a_document_built_before_its_cluster_went_is_not_written(
    session: Session, members: None
) -> None:
    """A drain builds documents from what it read; a load may empty and delete one of those
    clusters before the drain writes: that cluster gets no document (and the part no error)."""
    service.load_files(CLI, "CN-A", [LOC], workers=1)
    with get_engine().connect() as conn:
        first, second = (int(c) for c in conn.scalars(select(Cluster.id).limit(2)))
        regions = search_index.member_regions(conn)
        docs = [
            search_index.build_document(cid, m, regions)
            for cid, m in search_index._merged_of(conn, [first, second])
        ]
        search_index.mark_pending(conn, [first, second])
        marks = [
            (int(c), int(v))
            for c, v in conn.execute(select(SearchPending.cluster_id, SearchPending.version))
        ]
        conn.execute(
            SourceRecord.__table__.update()
            .where(SourceRecord.cluster_id == first)
            .values(cluster_id=None)
        )
        conn.execute(SearchDocument.__table__.delete().where(SearchDocument.cluster_id == first))
        conn.execute(Cluster.__table__.delete().where(Cluster.id == first))
        conn.commit()
        search_index._write_part(conn, backend_for(conn.dialect.name), marks, docs)
        written = set(conn.scalars(select(SearchDocument.cluster_id)))
    assert second in written and first not in written
    assert _pending(session) == 0


def _kill_when(session: Session, proc: subprocess.Popen[bytes], done: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        session.rollback()
        if (session.scalar(text("SELECT count(*) FROM source_records")) or 0) >= done:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _deferred_cli_load(path: Path, db_url: str, workers: int) -> subprocess.Popen[bytes]:
    """`consortia ingest` of ``path`` for CN-A in a process of its own, with every load
    deferring its index (as a big one does)."""
    code = (
        "import sys; from consortia.catalog import ingest; ingest.INLINE_INDEX_BYTES = 0; "
        "from consortia.cli import main; sys.argv[0] = 'consortia'; main()"
    )
    args = ["ingest", "--member", "CN-A", "--workers", str(workers), "--json", str(path)]
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "CONSORTIA_DATABASE_URL": db_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_a_killed_deferred_load_leaves_its_clusters_marked_and_they_get_indexed(
    session: Session,
    members: None,
    tmp_path: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc = _deferred_cli_load(_many(tmp_path, 6000), db_url, workers=2)
    _kill_when(session, proc, 2000)
    session.rollback()
    clusters = int(session.scalar(select(func.count()).select_from(Cluster)) or 0)
    docs = int(session.scalar(select(func.count()).select_from(SearchDocument)) or 0)
    pending = _pending(session)
    # Every committed batch's clusters are marked; none was indexed yet.
    assert clusters >= 2000 and docs == 0 and pending == clusters
    # The background task leaves them while marks are fresh (a load may be running) ...
    assert tasks.index_pending.call_local() == {"indexed": 0}
    assert _pending(session) == pending
    # ... and indexes them once no load marks any more (here: a consumer that starts).
    monkeypatch.setattr(tasks, "QUIET_SECONDS", 0)
    huey._startup["index_pending_on_start"]()
    assert _pending(session) == 0
    session.rollback()
    kept = _index(session)
    assert len(kept["docs"]) == clusters
    # What was indexed is what indexing every cluster from scratch gives.
    search_index.reindex_clusters(session.connection(), list(session.scalars(select(Cluster.id))))
    session.commit()
    assert _index(session) == kept
    assert kept["answers"]["history"][0] > 0


def test_the_next_load_indexes_what_a_killed_load_left(
    session: Session, members: None, tmp_path: Path, db_url: str
) -> None:
    proc = _deferred_cli_load(_many(tmp_path, 6000), db_url, workers=1)
    _kill_when(session, proc, 1000)
    assert _pending(session) > 0
    # A small load of another member (indexed inline) also clears what the killed one left.
    service.load_files(CLI, "CN-B", [LOC], workers=1)
    assert _pending(session) == 0
    session.rollback()
    assert session.scalar(select(func.count()).select_from(SearchDocument)) == session.scalar(
        select(func.count()).select_from(Cluster)
    )


def test_a_big_load_says_when_its_index_step_starts(
    session: Session, members: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's progress bar reads "indexing" for the end-of-load index step of a big load
    (it comes after the last record); an upload-sized load indexes as it goes and says nothing."""
    told: list[int] = []

    def count_then_tell() -> None:
        told.append(_pending(session))  # the step has not run yet: this load's clusters wait

    service.load_files(CLI, "CN-A", [LOC], workers=1, indexing=count_then_tell)
    assert told == []  # small: indexed batch by batch
    monkeypatch.setattr(ingest, "INLINE_INDEX_BYTES", 0)
    service.load_files(CLI, "CN-B", [CHI], workers=1, indexing=count_then_tell)
    assert len(told) == 1 and told[0] > 0
    assert _pending(session) == 0
    service.load_files(CLI, "CN-B", [CHI], workers=1, defer_index=True, indexing=count_then_tell)
    assert len(told) == 1  # deferred: no index step in this load
