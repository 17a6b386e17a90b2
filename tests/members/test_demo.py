"""``consortia demo --no-serve`` loads the demo members through the registry, once."""

from __future__ import annotations

import csv
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from consortia.accounts.models import User
from consortia.cli import app
from consortia.demo.load import DATA
from consortia.events.models import Event
from consortia.members.models import Member, MemberStatus, Region


def counts(session: Session) -> tuple[int, ...]:
    session.expire_all()
    return tuple(
        session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Member, Region, Event, User)
    )


def test_demo_loads_the_thirteen_members_once(db_url: str, session: Session) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--no-serve"])
    assert first.exit_code == 0, (first.output, first.exception)
    members = {m.code: m for m in session.scalars(select(Member))}
    assert len(members) == 13
    with (DATA / "table1_service_2016-10-17_2016-10-23.csv").open(encoding="utf-8") as fh:
        table1 = [(r["library_zh"], r["library_en"]) for r in csv.DictReader(fh)]
    assert len(table1) == 10
    names = {(m.name_zh, m.name_en) for m in members.values()}
    assert set(table1) <= names
    gdzsl = members["CN-GDZSL"]
    assert gdzsl.is_centre and gdzsl.region.code == "guangdong" and gdzsl.region.name_zh == "广东"
    in_guangdong = [m for m in members.values() if m.region.code == "guangdong"]
    assert len(in_guangdong) == 10
    assert all(
        m.centre is not None and m.centre.code == "CN-GDZSL" for m in in_guangdong if m is not gdzsl
    )
    assert members["CN-BCLIB"].centre is not None
    assert members["CN-BCLIB"].centre.code == "CN-JLPL"
    assert (members["CN-BCLIB"].lends_copies, members["CN-BCLIB"].loan_period_days) == (False, 21)
    assert all(m.status is MemberStatus.active for m in members.values())
    created = session.scalars(select(Event.entity_id).where(Event.action == "member.created"))
    assert sorted(created) == sorted(members)
    before = counts(session)

    second = runner.invoke(app, ["demo", "--no-serve"])
    assert second.exit_code == 0, (second.output, second.exception)
    assert "already loaded" in second.output
    assert counts(session) == before


def test_demo_members_csv_uses_only_api_field_names() -> None:
    from consortia.members.schemas import MemberCreate

    with (DATA / "members.csv").open(encoding="utf-8") as fh:
        header: Any = csv.DictReader(fh).fieldnames
    assert header and set(header) <= set(MemberCreate.model_fields)
