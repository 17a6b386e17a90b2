"""The index's in-memory segment answers exactly as SQLite FTS5 does (SQLite only).

FTS5 is the reference here: every search runs twice on the same catalogue, once through the
segment and once through the SQL, and the two results — totals, hits in order (bm25 and its
ties), facet counts — must be equal. Then the whole backend suite (tests/search/test_backend.py)
runs again with a segment built after the catalogue is loaded: the same reference matcher,
ranking rules and upkeep, now answered by the segment while it is current.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.catalog import service as catalog
from consortia.db import get_engine
from consortia.search import cql, searchbox, segment, service
from consortia.search.backends import SortKey
from consortia.settings import get_settings
from tests.conftest import PG_URL
from tests.search import test_backend
from tests.search.test_backend import *  # noqa: F403 - the backend suite, run on a segment
from tests.search.test_backend import (
    CHI,
    CQL_QUERIES,
    SEARCHBOX_QUERIES,
    IndexedRec,
    records,
    searchbox_queries,
)

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="segments are kept for SQLite")


def build(session: Session) -> segment.Built:
    session.commit()
    built = segment.build(session.connection())
    session.commit()
    return built


@pytest.fixture
def catalogue(session: Session) -> Iterator[dict[str, IndexedRec]]:
    """The backend suite's catalogue, with a segment built once it is loaded."""
    test_backend.add_region_and_member(session, "CN-A", region="south")
    test_backend.add_region_and_member(session, "CN-B", region="north")
    session.commit()
    catalog.load_files(CLI, "CN-A", [test_backend.LOC, CHI], workers=1)
    catalog.load_files(
        CLI, "CN-B", [test_backend.LOC, test_backend.CNMARC, test_backend.ALT880], workers=1
    )
    recs = records(session)
    build(session)
    yield recs
    segment.forget()


def both(session: Session, tree: Any, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The search answered by the segment, then by the SQL."""
    settings_ = get_settings()
    assert segment.current(session.connection()) is not None
    via_segment = service.search(session, tree, **kw).as_dict()
    settings_.search_segments = False
    try:
        via_sql = service.search(session, tree, **kw).as_dict()
    finally:
        settings_.search_segments = True
    return via_segment, via_sql


ARGS: list[dict[str, Any]] = [
    {},
    {"offset": 3, "limit": 7},
    {"limit": 100},
    {"sort": [SortKey("relevance")], "limit": 50},
    {"filters": [("language", "eng")]},
    {"filters": [("member", "CN-B"), ("year", "1890-1910")], "facets": ["member", "year"]},
]


def test_every_query_of_the_suite_gets_the_same_answer(
    session: Session, catalogue: dict[str, IndexedRec], monkeypatch: pytest.MonkeyPatch
) -> None:
    trees = [searchbox.parse(q) for q in SEARCHBOX_QUERIES]
    trees += [cql.parse(q).tree for q in CQL_QUERIES]
    seg = segment.current(session.connection())
    assert seg is not None
    ranked = 0
    for tier_min in (service.TIER_MIN, 3):  # also the title tier apart, on this small catalogue
        monkeypatch.setattr(service, "TIER_MIN", tier_min)
        for tree in trees:
            for kw in ARGS:
                a, b = both(session, tree, **kw)
                assert a == b, (tree, kw)
                ranked += len(a["hits"]) > 1
    assert ranked > 100
    assert seg._matches  # the segment did answer


def test_big_results_sample_their_facets_the_same_way(
    session: Session, catalogue: dict[str, IndexedRec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "FACET_CAP", 10)
    for head_max in (5000, 10):
        monkeypatch.setattr(service, "HEAD_MAX", head_max)
        for q in ("the", "history", "zall", "-history", "lang:eng"):
            a, b = both(session, searchbox.parse(q), offset=2, limit=5)
            assert a == b, (q, head_max)
            assert a["facets_sampled"] or a["total"] <= 10


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(q=searchbox_queries())
def test_random_queries_get_the_same_answer(
    session: Session, catalogue: dict[str, IndexedRec], q: str
) -> None:
    a, b = both(session, searchbox.parse(q), limit=30)
    assert a == b, q


def test_a_change_retires_the_segment_until_the_next_build(
    session: Session, catalogue: dict[str, IndexedRec]
) -> None:
    conn = session.connection()
    first = segment.current(conn)
    assert first is not None
    before = service.search(session, searchbox.parse("明代"), facets=[]).total
    session.commit()
    test_backend.add_region_and_member(session, "CN-C", region="east")
    session.commit()
    catalog.load_files(CLI, "CN-C", [CHI], workers=1)
    session.expire_all()
    # The index changed: the segment no longer matches it, the SQL answers (and sees the load).
    assert segment.current(session.connection()) is None
    assert service.search(session, searchbox.parse("member:CN-C"), facets=[]).total >= 40
    assert service.search(session, searchbox.parse("明代"), facets=[]).total == before
    session.commit()
    built = build(session)
    assert built.fresh and built.generation > first.generation
    assert sorted(p.name for p in built.path.parent.iterdir()) == [built.path.name]
    again = segment.current(session.connection())
    assert again is not None and again.generation == built.generation
    a, b = both(session, searchbox.parse("member:CN-C"))
    assert a == b and a["total"] >= 40
    # Nothing changed since: building again writes nothing.
    assert not build(session).fresh


def test_an_empty_index_builds_an_empty_segment(session: Session) -> None:
    built = build(session)
    assert built.documents == 0 and built.terms == 0
    seg = segment.current(session.connection())
    assert seg is not None and seg.docs == 0
    r = service.search(session, searchbox.parse("history"))
    assert r.total == 0 and r.hits == []


def test_expressions_parse_as_fts5_reads_them() -> None:
    tree = segment.parse(
        '{title author} : (("a" AND "b" *) OR ("c d")) AND (keys : ("memx" OR "y1" *)) '
        'NOT ({title} : ("e"))'
    )
    assert isinstance(tree, segment.Op) and tree.kind == "AND"
    assert [(p.tokens, p.prefix, p.cols) for p in segment.phrases(tree)] == [
        (("a",), False, (0, 1)),
        (("b",), True, (0, 1)),
        (("c", "d"), False, (0, 1)),
        (("memx",), False, (5,)),
        (("y1",), True, (5,)),
        (("e",), False, (0,)),
    ]
    # NOT binds tighter than AND, AND than OR.
    t = segment.parse('"a" OR "b" AND "c" NOT "d"')
    assert isinstance(t, segment.Op) and t.kind == "OR"
    for bad in ('"a" AND', '("a"', '{colour} : "a"', '"a" @ "b"', "NEAR(a b)", 'keys : ("a b")'):
        with pytest.raises(segment.Unsupported):
            segment.parse(bad)


def test_the_background_task_builds_once_the_index_stands_still(
    session: Session, catalogue: dict[str, IndexedRec]
) -> None:
    from consortia.search import tasks

    session.commit()
    test_backend.add_region_and_member(session, "CN-C", region="east")
    session.commit()
    catalog.load_files(CLI, "CN-C", [CHI], workers=1)
    assert tasks.refresh()["waiting"]  # first sight of this generation: wait a tick
    out = tasks.refresh()["segment"]
    assert out["fresh"] and out["documents"] == len(records(session))
    assert not tasks.refresh()["segment"]["fresh"]
    assert segment.current(session.connection()) is not None


def test_a_search_keeps_one_view_of_the_index(
    session: Session, catalogue: dict[str, IndexedRec]
) -> None:
    """The segment current when a search starts answers all of it, even if the index changes
    meanwhile; the next search sees the change."""
    session.commit()
    test_backend.add_region_and_member(session, "CN-C", region="east")
    session.commit()
    be = service.backend(session)
    expr = be.compile(searchbox.parse("member:CN-C"))
    with get_engine().connect() as conn:
        with be.pinned(conn):
            assert be.count(conn, expr) == 0
            catalog.load_files(CLI, "CN-C", [CHI], workers=1)
            assert segment.current(conn) is None  # the index has moved on
            assert be.count(conn, expr) == 0 and be.first_ids(conn, expr, 5) == []
        assert be.count(conn, expr) >= 40
