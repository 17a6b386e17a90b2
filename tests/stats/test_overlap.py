"""Collection overlap from the union catalogue, on a catalogue loaded through ingest."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from consortia.errors import Invalid
from consortia.stats import service as stats
from consortia.stats.rollup import local_day
from tests.stats.world import World, build, load_books

HOLDERS = {
    "zh0": ["CN-GZUCM", "CN-SYSU", "CN-GDZSL"],
    "zh1": ["CN-GZUCM"],
    "zh2": ["CN-GZUCM", "CN-SYSU"],
    "en0": ["CN-SYSU"],
    "en1": ["CN-JLU", "CN-GDZSL"],
    "en2": ["CN-GDZSL"],
}


def today() -> dt.date:
    # China's day, the one the overlap roll-up stamps a change with (stats.rollup.local_day):
    # from 16:00 UTC it is already tomorrow there, and the UTC date missed the day's loads.
    return local_day(dt.datetime.now(dt.UTC))


@pytest.fixture
def world(session: Session, tmp_path: Path) -> World:
    return build(session, tmp_path, HOLDERS)


def _run(session: Session, **kw: Any) -> stats.Report:
    f = stats.Filters(kw.pop("start", dt.date(2010, 1, 1)), kw.pop("end", today()), **kw)
    return stats.overlap(session, f)


def _dist(report: stats.Report) -> dict[int, int]:
    return {r["members"]: r["titles"] for r in report.table("distribution").rows}


def test_titles_by_how_many_members_hold_them(session: Session, world: World) -> None:
    report = _run(session)
    assert _dist(report) == {1: 3, 2: 2, 3: 1}
    assert report.extra["titles"] == 6
    shares = {r["members"]: str(r["share_percent"]) for r in report.table("distribution").rows}
    assert shares == {1: "50.0", 2: "33.3", 3: "16.7"}
    members = {r["code"]: (r["titles"], r["unique"]) for r in report.table("members").rows}
    assert members["CN-GZUCM"] == (3, 1)
    assert members["CN-SYSU"] == (3, 1)
    assert members["CN-GDZSL"] == (3, 1)
    assert members["CN-JLU"] == (1, 0)
    assert members["CN-SZLIB"] == (0, 0)
    szlib = next(r for r in report.table("members").rows if r["code"] == "CN-SZLIB")
    assert szlib["unique_percent"] is None  # holds nothing: no share, not 0 %


def test_the_member_by_member_matrix(session: Session, world: World) -> None:
    rows = {r["code"]: r for r in _run(session).table("matrix").rows}
    assert rows["CN-GZUCM"]["CN-SYSU"] == 2
    assert rows["CN-SYSU"]["CN-GZUCM"] == 2
    assert rows["CN-GZUCM"]["CN-GDZSL"] == 1
    assert rows["CN-GDZSL"]["CN-JLU"] == 1
    assert rows["CN-GZUCM"]["CN-GZUCM"] == 3  # the diagonal: titles held
    assert rows["CN-GZUCM"]["CN-JLU"] == 0


def test_language_region_member_and_moment_filters(session: Session, world: World) -> None:
    assert _dist(_run(session, language="chinese")) == {1: 1, 2: 1, 3: 1}
    assert _dist(_run(session, language="foreign")) == {1: 2, 2: 1}
    # Within Jilin, JLU's title is unique: it is compared with Jilin's members only.
    assert _dist(_run(session, region="jilin")) == {1: 1}
    # A member's own titles and how many others hold each.
    mine = _run(session, member="CN-GZUCM")
    assert _dist(mine) == {1: 1, 2: 1, 3: 1}
    assert [r["code"] for r in mine.table("members").rows] == ["CN-GZUCM"]
    # Before the catalogue was loaded there was nothing.
    before = _run(session, start=dt.date(2010, 1, 1), end=dt.date(2016, 10, 23))
    assert _dist(before) == {}
    with pytest.raises(Invalid) as err:
        _run(session, service="copy")
    assert err.value.field == "service"


def test_the_overlap_roll_up_follows_catalogue_changes(
    session: Session, world: World, tmp_path: Path
) -> None:
    from consortia.stats import overlap

    assert _dist(_run(session)) == {1: 3, 2: 2, 3: 1}
    assert overlap.is_current(session)
    # Shenzhen loads its copy of zh1 (GZUCM's only unique title) through ingest: the triggers
    # mark the catalogue changed and the next report sees it.
    more = tmp_path / "more"
    more.mkdir()
    load_books(session, world, more, {"zh1": ["CN-SZLIB"]})
    assert not overlap.is_current(session)
    report = _run(session)
    assert _dist(report) == {1: 2, 2: 3, 3: 1}
    rows = {r["code"]: r for r in report.table("matrix").rows}
    assert rows["CN-GZUCM"]["CN-SZLIB"] == 1
    assert overlap.is_current(session)
    # The roll-up gives what the catalogue gives when built from nothing.
    assert overlap.build(session, force=True) is not None
    session.commit()
    assert _dist(_run(session)) == {1: 2, 2: 3, 3: 1}
