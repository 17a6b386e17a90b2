"""A join whose cost does not grow with its cluster: the stored match features, the merged
record made from the stored one (matching.merge_into), and a worker's plan that reads only a
cluster's head. Every figure is checked against the full computation over real records."""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from consortia.catalog import matching
from consortia.catalog.record import NormalizedRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "dedup"))
from labelled import load_pairs, load_records


@pytest.fixture(scope="module")
def records() -> list[NormalizedRecord]:
    return [r for r in load_records() if not r.deleted]


def _stored(value: Any) -> Any:
    """As a JSON column gives it back."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


def test_stored_features_are_the_features(records: list[NormalizedRecord]) -> None:
    for r in records:
        f = matching.match_features(r)
        assert matching.features_from_json(_stored(matching.features_json(f))) == f, r.record_id


def test_features_of_another_form_are_not_used(records: list[NormalizedRecord]) -> None:
    stored = _stored(matching.features_json(matching.match_features(records[0])))
    assert matching.features_from_json([matching.FEATURES_VERSION + 1, *stored[1:]]) is None
    assert matching.features_from_json(stored[:-1]) is None
    assert matching.features_from_json(None) is None
    assert matching.features_from_json({"main": "x"}) is None


def _groups(records: list[NormalizedRecord]) -> list[list[int]]:
    """The labelled set's books (records labelled the same, joined), and random groups of up to
    40 records: merge() does not ask whether they match, and random groups reach every order,
    tie and script mix."""
    by_id = {r.record_id: i for i, r in enumerate(records)}
    parent = list(range(len(records)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in load_pairs():
        a, b = by_id.get(str(p.a)), by_id.get(str(p.b))
        if p.same and a is not None and b is not None:
            parent[find(a)] = find(b)
    books: dict[int, list[int]] = {}
    for i in range(len(records)):
        books.setdefault(find(i), []).append(i)
    rnd = random.Random(2026)
    groups = [g for g in books.values() if len(g) > 1]
    groups += [rnd.sample(range(len(records)), rnd.randint(2, 12)) for _ in range(800)]
    groups += [rnd.sample(range(len(records)), 40) for _ in range(20)]
    return groups


def test_merge_into_gives_what_a_full_merge_gives(records: list[NormalizedRecord]) -> None:
    """Records join one at a time, in a random order, from members that repeat (duplicates in a
    member): after each, the merged record made from the stored one equals merge() of all."""
    rnd = random.Random(18)
    made = fell_back = 0
    for group in _groups(records):
        rnd.shuffle(group)
        members = [rnd.choice(["CN-A", "CN-B", "CN-C", "CN-D"]) for _ in group]
        held = {(m, records[i].record_id): records[i] for m, i in zip(members, group, strict=True)}
        joined = [(members[0], records[group[0]])]
        stored = _stored(matching.merge(joined))
        for m, i in zip(members[1:], group[1:], strict=True):
            rec = records[i]
            shown: list[tuple[str, str]] = []

            def record_of(
                member: str,
                record_id: str,
                shown: list[tuple[str, str]] = shown,
                held: dict[tuple[str, str], NormalizedRecord] = held,
            ) -> NormalizedRecord | None:
                shown.append((member, record_id))
                return held.get((member, record_id))

            incremental = matching.merge_into(stored, m, rec, record_of)
            joined.append((m, rec))
            full = _stored(matching.merge(joined))
            if incremental is None:
                fell_back += 1
                # Only where the answer needs the records the stored form no longer shows.
                script_before = matching.has_cjk(stored["title"]["value"])
                script_now = matching.has_cjk(rec.title) or matching.has_cjk(rec.title_vernacular)
                assert (not script_before and script_now) or (
                    script_before and matching.has_cjk(rec.title) and "remainder" not in stored
                ), (group, m, rec.record_id)
            else:
                made += 1
                assert _stored(incremental) == full, (group, m, rec.record_id)
                # One record looked up at most (the shown title's, for a book in script).
                assert len(shown) <= 1
            stored = full
    assert made > 10 * fell_back > 0


def test_merge_into_declines_what_it_cannot_know(records: list[NormalizedRecord]) -> None:
    latin = next(r for r in records if r.title and not matching.has_cjk(r.title))
    other = next(r for r in records if r.title and r is not latin)
    stored = _stored(matching.merge([("CN-A", latin)]))

    def none(_m: str, _r: str) -> NormalizedRecord | None:
        return None

    assert matching.merge_into(stored, "CN-B", other, none) is not None
    # The same record again, a stored form this code does not make, an empty one.
    assert matching.merge_into(stored, "CN-A", latin, none) is None
    assert matching.merge_into({**stored, "future_field": 1}, "CN-B", other, none) is None
    assert matching.merge_into({}, "CN-B", other, none) is None
    broken = {**stored, "sources": [{"member": "CN-A"}]}
    assert matching.merge_into(broken, "CN-B", other, none) is None
    # A book in script whose shown title's record cannot be read.
    cjk = next(r for r in records if matching.has_cjk(r.title))
    cjk_stored = _stored(matching.merge([("CN-A", cjk)]))
    assert matching.merge_into(cjk_stored, "CN-B", other, none) is None


def test_choose_cluster_looks_at_the_head_of_a_cluster_only() -> None:
    """A veto from the 22nd record of a cluster is not looked at (nor is one of the first 21
    missed), whether the records or their features are given."""
    from tests.catalog.test_matching import rec

    book = rec(record_id="new")
    same = [rec(record_id=f"r{i}") for i in range(25)]
    ebook = rec(record_id="e", material="ebook")
    late = [*same[:21], ebook]
    early = [*same[:5], ebook, *same[5:]]
    for cluster, joined in ((late, True), (early, False)):
        by_records = matching.choose_cluster(book, [(7, cluster)])
        by_features = matching.choose_cluster_by_features(
            matching.match_features(book),
            [(7, [(None, matching.match_features(r)) for r in cluster])],
        )
        assert by_records == by_features
        assert (by_records[0] == 7) is joined


# --------------------------------------------------------------------------- a worker's plan

DATA = Path(__file__).resolve().parents[1] / "data"
FILES = (DATA / "ingest" / "loc-60.mrc", DATA / "search" / "lc-chi-40.mrc")


def _variant(member: int) -> bytes:
    """A member's copy of the test records (LC and LC Chinese, with 880s): own ids, ISBD
    punctuation dropped from some titles, upper case in others, some records left out."""
    import pymarc

    out = []
    for f in FILES:
        with f.open("rb") as fh:
            for i, rec in enumerate(r for r in pymarc.MARCReader(fh) if r is not None):
                if member and (i + member) % 7 == 0:
                    continue
                rid = rec["001"].data.strip()
                rec.remove_fields("001", "035")
                rec.add_ordered_field(pymarc.Field(tag="001", data=f"m{member}-{rid}"))
                title = rec["245"]
                if title is not None and title.subfields and (i + member) % 3 == 0:
                    sf = title.subfields[0]
                    value = sf.value.rstrip(" /:;.,")
                    title.subfields[0] = pymarc.Subfield(
                        sf.code, value.upper() if member % 2 else value
                    )
                out.append(rec.as_marc())
    return b"".join(out)


def test_a_workers_plan_is_the_full_computation_over_the_whole_cluster(
    session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five members loaded by the writer alone (full merges); some records' stored features
    removed, as for records stored before there were any. The sixth member's records are then
    planned as a worker plans them, with only the first 3 records of a cluster looked at
    (CHECK_LIMIT 2): each plan's cluster and decision are choose_cluster's over the cluster's
    records, and its merged record is merge() of all of them and the new one."""
    from sqlalchemy import select, update

    from consortia.accounts.roles import CLI
    from consortia.catalog import ingest, service
    from consortia.catalog.marc import read_records
    from consortia.catalog.models import SourceRecord
    from consortia.db import get_engine
    from tests.conftest import add_region_and_member

    codes = [f"CN-J{k}" for k in range(6)]
    for code in codes:
        add_region_and_member(session, code=code)
    session.commit()
    for k, code in enumerate(codes[:5]):
        path = tmp_path / f"{code}.mrc"
        path.write_bytes(_variant(k))
        service.load_files(CLI, code, [path], workers=1)
    stored = session.scalars(select(SourceRecord.features)).all()
    assert stored and all(matching.features_from_json(f) is not None for f in stored)
    session.execute(update(SourceRecord).where(SourceRecord.id % 3 == 0).values(features=None))
    session.commit()

    monkeypatch.setattr(matching, "CHECK_LIMIT", 2)
    code = codes[5]
    prepared = [
        p
        for p in (
            ingest.prepare(r, None, 0, code, alone=False)
            for r in read_records(io.BytesIO(_variant(5)))
        )
        if isinstance(p, ingest.Prepared)
    ]
    with get_engine().connect() as conn:
        ingest.plan_records(conn, prepared, code)
        joins = script = 0
        for p in prepared:
            assert p.plan is not None and p.normalized is not None
            clusters = ingest._key_clusters(conn, p.keys)
            cands = sorted({c for cs in clusters.values() for c in cs})
            members = ingest._cluster_members(conn, cands)[0]
            assert set(p.plan.seen) == set(cands)
            expected = matching.choose_cluster(
                p.normalized,
                [(c, [(m, r) for _, m, r in members[c]]) for c in cands],
                member=code,
                check_limit=2,
            )
            assert (p.plan.cluster_id, p.plan.decision) == expected, p.record_id
            if p.plan.cluster_id is None:
                continue
            recs = [(m, r) for _, m, r in members[p.plan.cluster_id]]
            full = matching.merge([*recs, (code, p.normalized)])
            assert orjson.loads(p.plan.merged) == _stored(full), p.record_id
            assert p.plan.record_count == len(recs) + 1
            assert p.plan.member_count == len(full["members"])
            joins += len(recs) > 3
            script += matching.has_cjk(full["title"]["value"])
    # Clusters bigger than the head joined, books in Chinese script among them.
    assert joins > 50 and script > 20, (joins, script)


def test_a_catalogue_from_before_0011_joins_as_one_loaded_now(
    session: Any, engine: Any, tmp_path: Path
) -> None:
    """A catalogue stored before migration 0011 (no stored features, keys without their
    cluster) is brought up by it: every key names its record's cluster, and the next member's
    records, planned by the workers on derived features, give every cluster the merged record
    merge() gives its records."""
    from alembic import command
    from sqlalchemy import select

    from consortia.accounts.roles import CLI
    from consortia.catalog import ingest, service
    from consortia.catalog.models import Cluster, MatchKey, SourceRecord
    from consortia.db import alembic_config, migrate
    from tests.conftest import add_region_and_member

    for k in range(3):
        add_region_and_member(session, code=f"CN-M{k}")
    session.commit()
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"m{k}.mrc")
        paths[-1].write_bytes(_variant(k))
    for k in range(2):
        service.load_files(CLI, f"CN-M{k}", [paths[k]], workers=1)
    try:
        command.downgrade(alembic_config(engine), "0010")
        command.upgrade(alembic_config(engine), "0011")
    finally:
        migrate(engine)
    session.expire_all()
    assert set(session.scalars(select(SourceRecord.features))) == {None}
    keys = session.execute(
        select(MatchKey.cluster_id, SourceRecord.cluster_id).join(
            SourceRecord, SourceRecord.id == MatchKey.source_record_id
        )
    ).all()
    assert len(keys) > 500 and all(a == b is not None for a, b in keys)

    summary = service.load_files(CLI, "CN-M2", [paths[2]], workers=2)
    assert summary.planned > 80
    session.expire_all()
    with engine.connect() as conn:
        clusters = session.scalars(select(Cluster)).all()
        members = ingest._cluster_members(conn, [c.id for c in clusters])[0]
    assert sum(c.record_count == 3 for c in clusters) > 60
    for c in clusters:
        recs = [(m, r) for _, m, r in members[c.id]]
        assert c.merged == _stored(matching.merge(recs)), c.id
        assert c.record_count == len(recs)


def test_the_features_version_names_the_code_that_derives_them() -> None:
    """Stored features are used as they are while their version is FEATURES_VERSION: a change
    to how they are derived must come with a new version, or joins would compare records by
    features an older code derived. The digest covers match_features, what it calls in
    matching, and textfold. If this fails after such a change: bump FEATURES_VERSION and put
    the new digest here (the stored features of the old version are then derived again)."""
    import hashlib
    import inspect

    from consortia.catalog import textfold

    parts = [
        inspect.getsource(matching.match_features),
        inspect.getsource(matching._split_title_part),
        inspect.getsource(matching.MatchFeatures),
        *(
            p.pattern
            for p in (
                matching._COLLECTIVE_ISBN,
                matching._TITLE_PART_CJK,
                matching._TITLE_PART_LATIN,
                matching._VOLUMES,
            )
        ),
        repr(sorted(matching._LANG_UNKNOWN)),
        inspect.getsource(textfold),
    ]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    assert (matching.FEATURES_VERSION, digest) == (1, "3f68aceaf3946cbb"), digest


def test_a_members_own_record_counts_wherever_it_sits_in_the_cluster() -> None:
    """A cluster already holding a record of the loading member is joined only on identifier
    evidence, also when that record is not among the records that may veto (the 24th of 25):
    the records' members all count, or the holders given with the features (the merged
    record's ``members``)."""
    from tests.catalog.test_matching import rec

    others = [(f"CN-{i:02d}", rec(record_id=f"r{i}", isbns=[])) for i in range(25)]
    own = [*others[:23], ("CN-A", rec(record_id="a1", isbns=[])), *others[23:]]
    title_only = rec(record_id="a2", isbns=[])
    assert matching.choose_cluster(title_only, [(9, others)], member="CN-A")[0] == 9
    assert matching.choose_cluster(title_only, [(9, own)], member="CN-A") == (None, None)
    head = [(m, matching.match_features(r)) for m, r in own[:21]]
    fr = matching.match_features(title_only)
    holders = {9: sorted({m for m, _ in own})}
    assert matching.choose_cluster_by_features(fr, [(9, head)], member="CN-A", holders=holders) == (
        None,
        None,
    )
    # Identifier evidence still joins: a real duplicate in the member's catalogue.
    with_isbn = rec(record_id="a3")
    own_isbn = [(m, rec(record_id=r.record_id)) for m, r in own]
    cid, d = matching.choose_cluster(with_isbn, [(9, own_isbn)], member="CN-A")
    assert cid == 9 and d is not None and d.rule == "isbn+title"
