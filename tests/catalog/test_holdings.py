"""Holdings from a separate CSV and from a member's own tag (the holdings mapping): service,
CLI and API, with the roles that may use them. Real LC records (tests/data/ingest/loc-60.mrc)."""

from __future__ import annotations

import json
from pathlib import Path

import pymarc
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from consortia.accounts import service as accounts
from consortia.accounts.roles import CLI, Principal, Role
from consortia.catalog import service
from consortia.catalog.models import Holding, SourceRecord
from consortia.cli import app as cli_app
from consortia.errors import Forbidden, Invalid, NotFound, RowErrors
from consortia.events.models import Event
from consortia.members.models import Member
from tests.catalog.test_ingest import LOC, loc_records, write
from tests.conftest import PASSWORD, add_region_and_member, login

HEADER = "member,record_id,barcode,call_number,location,status\n"


@pytest.fixture
def loaded(session: Session) -> list[str]:
    """CN-A and CN-B, CN-A's 60 LC records loaded (they carry no items), a staff account each."""
    add_region_and_member(session, code="CN-A")
    add_region_and_member(session, code="CN-B")
    for name, code in (("a-staff", "CN-A"), ("b-staff", "CN-B")):
        accounts.create_user(
            session,
            CLI,
            username=name,
            password=PASSWORD,
            role=Role.library_staff,
            member_code=code,
        )
    accounts.create_user(
        session, CLI, username="a-reader", password=PASSWORD, role=Role.reader, member_code="CN-A"
    )
    session.commit()
    service.load_files(CLI, "CN-A", [LOC], workers=1)
    return [r["001"].value().strip() for r in loc_records()]


def _items(session: Session, record_id: str) -> list[tuple[str, str, str, str, str]]:
    session.expire_all()
    return sorted(
        session.execute(
            select(
                Holding.barcode,
                Holding.call_number,
                Holding.location,
                Holding.status,
                Holding.origin,
            )
            .join(SourceRecord, SourceRecord.id == Holding.source_record_id)
            .where(SourceRecord.record_id == record_id)
        ).all()
    )


def _count(session: Session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(Holding)) or 0)


def test_csv_replaces_the_items_of_the_records_it_names(
    session: Session, loaded: list[str]
) -> None:
    a, b = loaded[0], loaded[1]
    csv = (
        HEADER
        + f"CN-A,{a},A0001,PL2658 .E8 2001,Stacks,available\n"
        + f"CN-A,{a},A0002,PL2658 .E8 2001 c.2,Reserve,on_loan\n"
        + f"CN-A,{b},A0003,QA76.73 .P98,Stacks,\n"
    ).encode()
    out = service.load_holdings(session, CLI, "CN-A", csv, filename="items.csv")
    session.commit()
    assert out == {"member": "CN-A", "records": 2, "items": 3}
    assert _items(session, a) == [
        ("A0001", "PL2658 .E8 2001", "Stacks", "available", "csv"),
        ("A0002", "PL2658 .E8 2001 c.2", "Reserve", "on_loan", "csv"),
    ]
    assert _items(session, b) == [("A0003", "QA76.73 .P98", "Stacks", "available", "csv")]
    ev = session.scalars(select(Event).where(Event.action == "catalog.holdings_loaded")).one()
    assert ev.payload["items"] == 3 and ev.payload["filename"] == "items.csv"

    # A second file for one record replaces that record's items only.
    service.load_holdings(
        session, CLI, "CN-A", (HEADER + f"CN-A,{a},A0009,X1,Annex,lost\n").encode()
    )
    session.commit()
    assert _items(session, a) == [("A0009", "X1", "Annex", "lost", "csv")]
    assert len(_items(session, b)) == 1


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (HEADER + "CN-A,{a},1,X,Stacks,shelved-somewhere\n", "status"),
        (HEADER + "CN-B,{a},1,X,Stacks,available\n", "member"),
        (HEADER + "CN-A,,1,X,Stacks,available\n", "record_id"),
        (HEADER + "CN-A,no-such-record,1,X,Stacks,available\n", "record_id"),
        ("member,record_id,barcode\nCN-A,{a},1\n", "call_number"),
    ],
)
def test_a_bad_row_refuses_the_whole_file_and_names_it(
    session: Session, loaded: list[str], body: str, problem: str
) -> None:
    good = f"CN-A,{loaded[1]},B1,Y,Stacks,available\n"
    data = (body.format(a=loaded[0]) + (good if body.startswith(HEADER) else "")).encode()
    before = _count(session)
    with pytest.raises(RowErrors) as caught:
        service.load_holdings(session, CLI, "CN-A", data)
    session.rollback()
    assert problem in {p["field"] for p in caught.value.problems}
    assert _count(session) == before  # nothing loaded, not even the good row


def test_csv_refusals(session: Session, loaded: list[str]) -> None:
    a_id = session.scalar(select(Member.id).where(Member.code == "CN-A"))
    b_id = session.scalar(select(Member.id).where(Member.code == "CN-B"))
    b_staff = Principal(kind="user", label="user:b-staff", role=Role.library_staff, member_id=b_id)
    row = f"CN-A,{loaded[0]},A1,X,Stacks,available\n"
    with pytest.raises(Invalid):
        service.load_holdings(session, CLI, "CN-A", b"")
    with pytest.raises(RowErrors):
        service.load_holdings(session, CLI, "CN-A", b"\xff\xfe not utf-8 \x80")
    with pytest.raises(Invalid):
        service.load_holdings(session, CLI, "CN-A", HEADER.encode())  # no rows
    with pytest.raises(Forbidden):
        service.load_holdings(session, b_staff, "CN-A", (HEADER + row).encode())
    with pytest.raises(NotFound):
        service.load_holdings(session, CLI, "CN-Z", (HEADER + row).encode())
    a_staff = Principal(kind="user", label="user:a-staff", role=Role.library_staff, member_id=a_id)
    assert service.load_holdings(session, a_staff, "CN-A", (HEADER + row).encode())["items"] == 1


def _with_949(records: list[pymarc.Record]) -> list[pymarc.Record]:
    for i, r in enumerate(records):
        for tag in ("852", "952"):
            r.remove_fields(tag)
        r.add_field(
            pymarc.Field(
                tag="949",
                indicators=pymarc.Indicators(" ", " "),
                subfields=[
                    pymarc.Subfield("i", f"39{i:06d}"),
                    pymarc.Subfield("c", f"CALL {i}"),
                    pymarc.Subfield("l", "Main"),
                    pymarc.Subfield("s", "on loan" if i % 2 else "available"),
                ],
            )
        )
    return records


def test_a_members_own_tag_is_read_by_its_next_load(
    session: Session, loaded: list[str], tmp_path: Path
) -> None:
    out = service.set_holdings_mapping(
        session, CLI, "CN-B", tag="949", barcode="i", call_number="c", location="l", status="s"
    )
    session.commit()
    assert out["mapping"] == {
        "tag": "949",
        "barcode": "i",
        "call_number": "c",
        "location": "l",
        "status": "s",
    }
    path = write(tmp_path / "b.mrc", _with_949(loc_records()[:4]))
    service.load_files(CLI, "CN-B", [path], workers=1)
    rid = loc_records()[1]["001"].value().strip()
    rows = [r for r in _items(session, rid) if r[4] == "949"]
    assert rows == [("39000001", "CALL 1", "Main", "on_loan", "949")]

    # Cleared: the next load of a changed record reads the standard tags, which it lacks.
    assert service.clear_holdings_mapping(session, CLI, "CN-B")["mapping"] is None
    session.commit()
    assert service.holdings_mapping(session, CLI, "CN-B")["mapping"] is None


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"tag": "95"}, "tag"),
        ({"tag": "005"}, "tag"),
        ({"tag": "9a9"}, "tag"),
        ({"tag": "949", "barcode": "ab"}, "barcode"),
        ({"tag": "949", "location": "$"}, "location"),
        ({"tag": "949"}, "call_number"),
    ],
)
def test_a_bad_mapping_is_refused_naming_the_field(
    session: Session, loaded: list[str], fields: dict[str, str], named: str
) -> None:
    with pytest.raises(Invalid) as caught:
        service.set_holdings_mapping(session, CLI, "CN-A", **fields)
    assert caught.value.field == named
    session.rollback()
    assert service.holdings_mapping(session, CLI, "CN-A")["mapping"] is None


def test_cli_loads_holdings_and_sets_the_mapping(
    session: Session, loaded: list[str], tmp_path: Path
) -> None:
    runner = CliRunner()
    csv = tmp_path / "items.csv"
    csv.write_text(HEADER + f"CN-A,{loaded[2]},C1,Z 100,Stacks,missing\n", encoding="utf-8")
    r = runner.invoke(cli_app, ["catalog", "holdings", str(csv), "--member", "CN-A", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"member": "CN-A", "records": 1, "items": 1}
    assert _items(session, loaded[2]) == [("C1", "Z 100", "Stacks", "missing", "csv")]

    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "CN-A,nope,C1,Z,Stacks,available\n", encoding="utf-8")
    r = runner.invoke(cli_app, ["catalog", "holdings", str(bad), "--member", "CN-A", "--json"])
    assert r.exit_code != 0 and "nope" in r.stdout + r.stderr

    args = ["catalog", "holdings-mapping", "--member", "CN-A"]
    r = runner.invoke(cli_app, [*args, "--tag", "949", "--barcode", "i", "--call-number", "c"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, [*args, "--json"])
    assert json.loads(r.stdout)["mapping"]["tag"] == "949"
    r = runner.invoke(cli_app, [*args, "--clear", "--json"])
    assert json.loads(r.stdout)["mapping"] is None


def test_api_holdings_and_mapping_for_own_library_only(
    client: TestClient, session: Session, loaded: list[str]
) -> None:
    csrf = login(client, "a-staff")
    headers = {"X-CSRF-Token": csrf}
    body = (HEADER + f"CN-A,{loaded[3]},D1,PN 1,Stacks,available\n").encode()
    r = client.post(
        "/api/v1/catalog/holdings",
        data={"member": "CN-A"},
        files={"file": ("items.csv", body, "text/csv")},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"member": "CN-A", "records": 1, "items": 1}
    r = client.put(
        "/api/v1/catalog/holdings-mapping/CN-A",
        json={"tag": "949", "barcode": "i", "call_number": "c"},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["mapping"]["tag"] == "949"
    assert client.get("/api/v1/catalog/holdings-mapping/CN-A").json()["mapping"]["barcode"] == "i"

    # Another library's: refused, nothing changed.
    before = _count(session)
    r = client.post(
        "/api/v1/catalog/holdings",
        data={"member": "CN-B"},
        files={"file": ("items.csv", body.replace(b"CN-A", b"CN-B"), "text/csv")},
        headers=headers,
    )
    assert r.status_code == 403
    assert _count(session) == before
    assert (
        client.put(
            "/api/v1/catalog/holdings-mapping/CN-B",
            json={"tag": "949", "barcode": "i"},
            headers=headers,
        ).status_code
        == 403
    )
    assert client.get("/api/v1/catalog/holdings-mapping/CN-B").status_code == 403

    # A bad row: 422 naming the line and field.
    r = client.post(
        "/api/v1/catalog/holdings",
        data={"member": "CN-A"},
        files={"file": ("x.csv", (HEADER + "CN-A,zzz,1,X,S,available\n").encode(), "text/csv")},
        headers=headers,
    )
    assert r.status_code == 422 and "zzz" in r.text
    client.post("/logout", headers=headers)

    # A reader may not load holdings.
    csrf = login(client, "a-reader")
    r = client.post(
        "/api/v1/catalog/holdings",
        data={"member": "CN-A"},
        files={"file": ("items.csv", body, "text/csv")},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 403


def test_csv_items_outlive_a_changed_record_and_go_with_a_deleted_one(
    session: Session, loaded: list[str], tmp_path: Path
) -> None:
    a = loaded[0]
    service.load_holdings(
        session, CLI, "CN-A", (HEADER + f"CN-A,{a},A0001,PL 1,Stacks,available\n").encode()
    )
    session.commit()
    record = loc_records()[0]
    record.add_field(
        pymarc.Field(
            tag="500",
            indicators=pymarc.Indicators(" ", " "),
            subfields=[pymarc.Subfield("a", "Catalogued again.")],
        )
    )
    changed = service.load_files(CLI, "CN-A", [write(tmp_path / "c.mrc", [record])], workers=1)
    assert changed.updated == 1
    assert _items(session, a) == [("A0001", "PL 1", "Stacks", "available", "csv")]

    record.leader = record.leader[:5] + "d" + record.leader[6:]
    gone = service.load_files(CLI, "CN-A", [write(tmp_path / "d.mrc", [record])], workers=1)
    assert gone.deleted == 1
    assert _items(session, a) == []
