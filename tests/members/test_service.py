"""The member registry's service: create, update, list, suspend, import; events; refusals."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI, Principal, Role
from consortia.errors import Conflict, Forbidden, Invalid, NotFound
from consortia.events.models import Event
from consortia.members import service
from consortia.members.models import Member, MemberStatus, MemberType, Region, Sector
from consortia.members.schemas import ImportRefused

OFFICE = Principal(kind="user", label="user:office", role=Role.consortium_admin, user_id=1)


def base(code: str, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "code": code,
        "name_zh": f"{code} 馆",
        "name_en": f"{code} Library",
        "type": "academic",
        "region": "guangdong",
    }
    values.update(extra)
    return values


def count(session: Session, model: type[Any]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def events_for(session: Session, code: str) -> list[Event]:
    return list(
        session.scalars(
            select(Event)
            .where(Event.entity_type == "member", Event.entity_id == code)
            .order_by(Event.id)
        )
    )


def test_create_fills_defaults_creates_region_and_records_events(session: Session) -> None:
    m = service.create_member(
        session,
        OFFICE,
        base("CN-NEW", type="public", region="hainan", joined_on="2020-05-01", z3950_host="z.x"),
    )
    session.commit()
    assert m.sector is Sector.culture  # from type public
    assert m.status is MemberStatus.active
    assert m.status_since == dt.date(2020, 5, 1)  # active since it joined
    assert m.z3950_port == 210  # the Z39.50 port when only a host is given
    assert (m.lends_loans, m.lends_copies, m.max_open_lending) == (True, True, 500)
    region = session.scalar(select(Region).where(Region.code == "hainan"))
    assert region is not None and (region.name_zh, region.name_en) == ("hainan", "hainan")
    region_events = session.scalars(select(Event).where(Event.action == "region.created")).all()
    assert [e.entity_id for e in region_events] == ["hainan"]
    [created] = events_for(session, "CN-NEW")
    assert created.action == "member.created"
    assert created.actor == "user:office" and created.actor_user_id == 1
    assert created.member_id == m.id
    assert created.payload["region"] == "hainan" and created.payload["sector"] == "culture"


def test_sector_defaults_follow_type(session: Session) -> None:
    expected = {
        "academic": Sector.education,
        "school": Sector.education,
        "public": Sector.culture,
        "special": Sector.other,
    }
    for i, (kind, sector) in enumerate(expected.items()):
        m = service.create_member(session, CLI, base(f"CN-S{i}", type=kind))
        assert m.sector is sector
    m = service.create_member(session, CLI, base("CN-S9", type="public", sector="education"))
    assert m.sector is Sector.education  # given wins


def test_duplicate_code_is_a_conflict_even_in_other_case(session: Session) -> None:
    service.create_member(session, CLI, base("CN-DUP"))
    session.commit()
    with pytest.raises(Conflict) as err:
        service.create_member(session, CLI, base("CN-dup"))
    assert "CN-dup" in str(err.value) and err.value.field == "code"
    session.commit()  # the caller commits anyway: nothing half-written may appear
    assert count(session, Member) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"code": "cn-lower"}, "code"),
        ({"code": "CN-MUCHTOOLONGCODE"}, "code"),
        ({"name_zh": "  "}, "name_zh"),
        ({"name_en": ""}, "name_en"),
        ({"type": "museum"}, "type"),
        ({"sru_url": "ftp://x.org/sru"}, "sru_url"),
        ({"oai_url": "not a url"}, "oai_url"),
        ({"iso18626_url": "https://"}, "iso18626_url"),
        ({"z3950_port": 70000}, "z3950_port"),
        ({"max_open_lending": -1}, "max_open_lending"),
        ({"days_to_respond": 61}, "days_to_respond"),
        ({"loan_period_days": 0}, "loan_period_days"),
        ({"contact_email": "nobody"}, "contact_email"),
        ({"z3950_database": "Default"}, "z3950_host"),
        ({"left_on": "2020-01-01"}, "left_on"),
        ({"centre": "CN-NOPE"}, "centre"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    session: Session, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(Invalid) as err:
        service.create_member(session, CLI, {**base("CN-BAD"), **changes})
    assert err.value.field == field
    assert field in str(err.value)
    session.commit()
    assert count(session, Member) == 0 and count(session, Region) == 0


def test_centre_must_exist_and_be_a_centre(session: Session) -> None:
    service.create_member(session, CLI, base("CN-HUB", is_centre=True))
    service.create_member(session, CLI, base("CN-LEAF"))
    with pytest.raises(Invalid) as err:
        service.create_member(session, CLI, base("CN-X", centre="CN-LEAF"))
    assert err.value.field == "centre" and "CN-LEAF is not a regional centre" in str(err.value)
    m = service.create_member(session, CLI, base("CN-Y", centre="CN-HUB"))
    assert m.centre is not None and m.centre.code == "CN-HUB"


def test_get_unknown_code_names_it(session: Session) -> None:
    with pytest.raises(NotFound) as err:
        service.get_member(session, "CN-GHOST")
    assert str(err.value) == "Unknown member code: CN-GHOST"


def test_update_changes_only_what_is_given_and_logs_the_diff(session: Session) -> None:
    service.create_member(session, CLI, base("CN-HUB", is_centre=True))
    service.create_member(session, CLI, base("CN-UPD", contact_name="Li", contact_phone="123"))
    m = service.update_member(
        session,
        OFFICE,
        "CN-UPD",
        {"contact_name": None, "days_to_respond": 5, "centre": "CN-HUB", "region": "jilin"},
    )
    session.commit()
    assert m.contact_name is None and m.contact_phone == "123"  # null clears; absent stays
    assert m.days_to_respond == 5 and m.centre is not None and m.region.code == "jilin"
    updated = events_for(session, "CN-UPD")[-1]
    assert updated.action == "member.updated" and updated.actor == "user:office"
    assert updated.payload["changes"] == {
        "region": ["guangdong", "jilin"],
        "centre": [None, "CN-HUB"],
        "contact_name": ["Li", None],
        "days_to_respond": [2, 5],
    }


def test_update_refuses_clearing_required_and_unknown_code(session: Session) -> None:
    service.create_member(session, CLI, base("CN-UPD"))
    with pytest.raises(Invalid) as err:
        service.update_member(session, CLI, "CN-UPD", {"name_en": None})
    assert err.value.field == "name_en"
    with pytest.raises(NotFound):
        service.update_member(session, CLI, "CN-NONE", {"name_en": "x"})


def test_leaving_sets_dates_and_a_centre_with_members_cannot_stop_being_one(
    session: Session,
) -> None:
    service.create_member(session, CLI, base("CN-HUB", is_centre=True))
    service.create_member(session, CLI, base("CN-LEAF", centre="CN-HUB"))
    with pytest.raises(Invalid) as err:
        service.update_member(session, CLI, "CN-HUB", {"is_centre": False})
    assert err.value.field == "is_centre" and "CN-LEAF" in str(err.value)
    m = service.update_member(session, CLI, "CN-LEAF", {"status": "left"})
    assert m.status is MemberStatus.left
    assert m.status_since == dt.date.today() and m.left_on == dt.date.today()
    m = service.update_member(session, CLI, "CN-LEAF", {"status": "active"})
    assert m.left_on is None  # rejoined


def test_library_admin_changes_only_own_contacts_endpoints_policy(session: Session) -> None:
    own = service.create_member(session, CLI, base("CN-OWN"))
    service.create_member(session, CLI, base("CN-OTHER"))
    admin = Principal(
        kind="user",
        label="user:la",
        role=Role.library_admin,
        member_id=own.id,
        member_code="CN-OWN",
    )
    m = service.update_member(
        session, admin, "CN-OWN", {"contact_email": "a@b.org", "sru_url": "https://x.org/sru"}
    )
    assert m.contact_email == "a@b.org"
    for field, value in [("type", "public"), ("region", "jilin"), ("status", "left")]:
        with pytest.raises(Forbidden) as err:
            service.update_member(session, admin, "CN-OWN", {field: value})
        assert err.value.field == field
    with pytest.raises(Forbidden):
        service.update_member(session, admin, "CN-OTHER", {"contact_name": "x"})
    staff = Principal(kind="user", label="u:s", role=Role.library_staff, member_id=own.id)
    with pytest.raises(Forbidden):
        service.update_member(session, staff, "CN-OWN", {"contact_name": "x"})
    with pytest.raises(Forbidden):
        service.create_member(session, admin, base("CN-NEW"))
    with pytest.raises(Forbidden):
        service.suspend_member(session, admin, "CN-OWN")


def test_filters_and_paging(session: Session) -> None:
    service.create_member(session, CLI, base("CN-C1", is_centre=True, name_en="Hub One"))
    service.create_member(session, CLI, base("CN-A1", centre="CN-C1", name_zh="中医药大学"))
    service.create_member(session, CLI, base("CN-P1", type="public", region="jilin"))
    service.create_member(session, CLI, base("CN-P2", type="public", name_en="100% Library"))
    service.create_member(session, CLI, base("CN-S1", type="special", centre="CN-C1"))
    service.suspend_member(session, CLI, "CN-P2")

    def codes(**filters: Any) -> list[str]:
        items, _total = service.list_members(session, **filters)
        return [m.code for m in items]

    assert codes() == ["CN-A1", "CN-C1", "CN-P1", "CN-P2", "CN-S1"]
    assert codes(region="jilin") == ["CN-P1"]
    assert codes(region="GUANGDONG") == ["CN-A1", "CN-C1", "CN-P2", "CN-S1"]
    assert codes(type=MemberType.public) == ["CN-P1", "CN-P2"]
    assert codes(sector=Sector.other) == ["CN-S1"]
    assert codes(status=MemberStatus.suspended) == ["CN-P2"]
    assert codes(is_centre=True) == ["CN-C1"]
    assert codes(centre="CN-C1") == ["CN-A1", "CN-S1"]
    assert codes(q="中医药") == ["CN-A1"]
    assert codes(q="hub") == ["CN-C1"]
    assert codes(q="cn-p") == ["CN-P1", "CN-P2"]
    assert codes(q="100%") == ["CN-P2"]  # % is text, not a wildcard
    assert codes(q="0%") == ["CN-P2"] and codes(q="%") == ["CN-P2"]
    items, total = service.list_members(session, offset=1, limit=2)
    assert [m.code for m in items] == ["CN-C1", "CN-P1"] and total == 5
    items, total = service.list_members(session, type=MemberType.public, offset=1, limit=1)
    assert [m.code for m in items] == ["CN-P2"] and total == 2
    with pytest.raises(Invalid) as err:
        service.list_members(session, limit=0)
    assert err.value.field == "limit"


def test_suspend_and_reinstate(session: Session) -> None:
    service.create_member(session, CLI, base("CN-SUS", joined_on="2010-01-01"))
    m = service.suspend_member(session, OFFICE, "CN-SUS", "unpaid fees")
    assert m.status is MemberStatus.suspended and m.status_since == dt.date.today()
    with pytest.raises(Conflict) as err:
        service.suspend_member(session, OFFICE, "CN-SUS")
    assert "already suspended" in str(err.value)
    items, _ = service.list_members(session)
    assert [(x.code, x.status) for x in items] == [("CN-SUS", MemberStatus.suspended)]
    m = service.reinstate_member(session, OFFICE, "cn-sus")
    assert m.status is MemberStatus.active
    with pytest.raises(Conflict):
        service.reinstate_member(session, OFFICE, "CN-SUS")
    session.commit()
    actions = [(e.action, e.payload.get("reason")) for e in events_for(session, "CN-SUS")]
    assert actions == [
        ("member.created", None),
        ("member.suspended", "unpaid fees"),
        ("member.reinstated", ""),
    ]


# --- import -------------------------------------------------------------------------------

HEADER = ["code", "name_zh", "name_en", "type", "region", "is_centre", "centre", "days_to_respond"]


def rows(*lines: list[str]) -> list[dict[str, str]]:
    return [dict(zip(HEADER, cells, strict=True)) for cells in lines]


def test_import_allows_centres_defined_later_in_the_file(session: Session) -> None:
    created = service.import_rows(
        session,
        OFFICE,
        rows(
            ["CN-LEAF", "叶馆", "Leaf", "academic", "hunan", "", "CN-HUB", ""],
            ["CN-HUB", "中心", "Hub", "public", "hunan", "是", "", "3"],
        ),
    )
    session.commit()
    assert [m.code for m in created] == ["CN-LEAF", "CN-HUB"]
    leaf = service.get_member(session, "CN-LEAF")
    assert leaf.centre is not None and leaf.centre.code == "CN-HUB"
    assert leaf.days_to_respond == 2  # empty cell: the default
    assert service.get_member(session, "CN-HUB").is_centre is True
    assert len(events_for(session, "CN-LEAF")) == 1
    assert events_for(session, "CN-LEAF")[0].payload["centre"] == "CN-HUB"


def test_import_reports_every_bad_row_and_writes_nothing(session: Session) -> None:
    service.create_member(session, CLI, base("CN-OLD"))
    session.commit()
    before = (count(session, Member), count(session, Event), count(session, Region))
    bad = rows(
        ["CN-OK1", "好馆", "Good", "academic", "hunan", "no", "", "2"],  # line 2
        ["cn-bad", "", "Bad", "academic", "hunan", "", "", "99"],  # line 3: 3 fields
        ["CN-OLD", "旧馆", "Old", "academic", "hunan", "", "", ""],  # line 4: exists
        ["CN-OK1", "重复", "Again", "public", "hunan", "", "", ""],  # line 5: twice
        ["CN-X", "馆", "X", "academic", "hunan", "maybe", "CN-OK1", "x"],  # line 6
        ["CN-Y", "馆", "Y", "zoo", "hunan", "", "", ""],  # line 7
        ["CN-Z", "馆", "Z", "school", "hunan", "", "CN-NOWHERE", ""],  # line 8
        ["CN-W", "馆", "W", "school", "hunan", "", "CN-OK1", ""],  # line 9: not a centre
    )
    with pytest.raises(ImportRefused) as err:
        service.import_rows(session, OFFICE, bad)
    found = [(p["line"], p["field"]) for p in err.value.problems]
    assert found == [
        (3, "code"),
        (3, "name_zh"),
        (3, "days_to_respond"),
        (4, "code"),
        (5, "code"),
        (6, "is_centre"),
        (6, "days_to_respond"),
        (7, "type"),
        (8, "centre"),
        (9, "centre"),
    ]
    messages = {(p["line"], p["field"]): p["message"] for p in err.value.problems}
    assert messages[(3, "days_to_respond")] == "must be between 1 and 60"
    assert messages[(5, "code")] == "appears twice in this file (also on line 2)"
    assert messages[(4, "code")] == "is already in the registry: CN-OLD"
    assert messages[(8, "centre")] == "is not a member: CN-NOWHERE"
    assert messages[(9, "centre")] == "CN-OK1 is not a regional centre"
    assert "7 bad rows, 10 problems" in str(err.value)
    session.commit()
    assert (count(session, Member), count(session, Event), count(session, Region)) == before


def test_import_refuses_a_centre_that_is_not_one_and_bad_headers(session: Session) -> None:
    with pytest.raises(ImportRefused) as err:
        service.import_rows(
            session,
            OFFICE,
            rows(
                ["CN-A", "甲", "A", "academic", "hunan", "false", "CN-B", ""],
                ["CN-B", "乙", "B", "academic", "hunan", "false", "", ""],
            ),
        )
    assert [(p["line"], p["field"]) for p in err.value.problems] == [(2, "centre")]
    with pytest.raises(ImportRefused) as err:
        service.import_rows(session, OFFICE, [{"code": "CN-A", "nom": "x", "type": "public"}])
    assert [(p["line"], p["field"]) for p in err.value.problems] == [
        (1, "name_zh"),
        (1, "name_en"),
        (1, "region"),
        (1, "nom"),
    ]


def test_import_uses_given_line_numbers(session: Session) -> None:
    with pytest.raises(ImportRefused) as err:
        service.import_rows(
            session,
            OFFICE,
            rows(["CN-A", "", "A", "academic", "hunan", "", "", ""]),
            lines=[7],
        )
    assert err.value.problems == [{"line": 7, "field": "name_zh", "message": "is required"}]


def test_region_change_reaches_the_search_facets(session: Session) -> None:
    """The region facet of the union catalogue follows the registry at once (same transaction)."""
    from pathlib import Path

    from consortia.catalog import service as catalog
    from consortia.search import searchbox
    from consortia.search import service as search

    loc = Path(__file__).parent.parent / "data" / "ingest" / "loc-60.mrc"
    service.create_member(session, CLI, base("CN-MOVE"))
    session.commit()
    catalog.load_files(CLI, "CN-MOVE", [loc], workers=1)
    session.expire_all()

    def regions() -> set[str]:
        found = search.search(session, searchbox.parse("member:CN-MOVE"), limit=1)
        assert found.total == 60
        return {e["value"] for e in found.facets["region"]}

    assert regions() == {"guangdong"}
    service.update_member(session, OFFICE, "CN-MOVE", {"region": "jilin"})
    session.commit()
    assert regions() == {"jilin"}
    # Any other change leaves the index alone (nothing to redo) and the facet as it is.
    service.update_member(session, OFFICE, "CN-MOVE", {"days_to_respond": 4})
    session.commit()
    assert regions() == {"jilin"}
