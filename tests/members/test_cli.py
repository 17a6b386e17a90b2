"""``consortia members ...`` run in-process against the test database (CONSORTIA_DATABASE_URL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from consortia.cli import app
from consortia.events.models import Event
from consortia.members.models import Member

runner = CliRunner()


def run(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Any:
    # Messages in English unless a test asks otherwise; the shell's LANG must not matter.
    result = runner.invoke(app, list(args), env={"CONSORTIA_LANG": "en", **(env or {})})
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def as_json(*args: str, code: int = 0) -> Any:
    return json.loads(run(*args, "--json", code=code).stdout)


def count(session: Session, model: type[Any]) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_issue_example_adds_a_member(db_url: str, session: Session) -> None:
    # The issue's example, with another code: the `member` fixture elsewhere holds CN-TEST.
    result = run(
        "members",
        "add",
        "CN-TEST2",
        "--name-zh",
        "测试馆",
        "--name-en",
        "Test Library",
        "--type",
        "academic",
        "--region",
        "guangdong",
    )
    assert "CN-TEST2" in result.stdout
    shown = as_json("members", "show", "CN-TEST2")
    assert shown["name_zh"] == "测试馆" and shown["name_en"] == "Test Library"
    assert shown["sector"] == "education" and shown["region"] == "guangdong"
    assert shown["status"] == "active"
    ev = session.scalar(select(Event).where(Event.action == "member.created"))
    assert ev is not None and ev.actor == "cli" and ev.entity_id == "CN-TEST2"


def test_add_with_policy_and_json_then_refusals(db_url: str, session: Session) -> None:
    out = as_json(
        "members", "add", "CN-HUB", "--name-zh", "中心馆", "--name-en", "Hub",
        "--type", "public", "--region", "hunan", "--is-centre",
        "--z3950-host", "z.hub.example.org", "--sru-url", "https://hub.example.org/sru",
        "--no-lends-copies", "--days-to-respond", "4", "--loan-period-days", "21",
    )  # fmt: skip
    assert out["is_centre"] is True and out["sector"] == "culture"
    assert out["z3950_port"] == 210 and out["lends_copies"] is False
    assert (out["days_to_respond"], out["loan_period_days"]) == (4, 21)
    leaf = as_json(
        "members", "add", "CN-LEAF", "--name-zh", "叶", "--name-en", "Leaf",
        "--type", "special", "--region", "hunan", "--centre", "CN-HUB",
    )  # fmt: skip
    assert leaf["centre"] == "CN-HUB" and leaf["sector"] == "other"
    err = as_json(
        "members", "add", "CN-HUB", "--name-zh", "x", "--name-en", "x",
        "--type", "public", "--region", "hunan", code=2,
    )  # fmt: skip
    assert err["error"] == "conflict" and err["field"] == "code" and "CN-HUB" in err["detail"]
    err = as_json(
        "members", "add", "CN-BAD", "--name-zh", "x", "--name-en", "x",
        "--type", "public", "--region", "hunan", "--sru-url", "nope", code=2,
    )  # fmt: skip
    assert err["error"] == "invalid" and err["field"] == "sru_url"
    result = run(
        "members", "add", "CN-BAD", "--name-zh", "x", "--name-en", "x",
        "--type", "zoo", "--region", "hunan", code=2, env={"CONSORTIA_LANG": "zh-CN"},
    )  # fmt: skip
    assert "type：必须是以下之一：academic, public, special, school" in result.output
    assert count(session, Member) == 2


def test_list_show_suspend_with_json(db_url: str) -> None:
    for code, kind in [("CN-A1", "academic"), ("CN-P1", "public")]:
        run("members", "add", code, "--name-zh", "馆", "--name-en", "Lib",
            "--type", kind, "--region", "guangdong")  # fmt: skip
    page = as_json("members", "list")
    assert page["total"] == 2 and [m["code"] for m in page["items"]] == ["CN-A1", "CN-P1"]
    assert [m["code"] for m in as_json("members", "list", "--type", "public")["items"]] == ["CN-P1"]
    out = as_json("members", "suspend", "CN-P1", "--reason", "unpaid")
    assert out["status"] == "suspended"
    table = run("members", "list").stdout
    assert "SUSPENDED" in table and "CN-A1" in table
    assert [m["code"] for m in as_json("members", "list", "--status", "suspended")["items"]] == [
        "CN-P1"
    ]
    err = as_json("members", "suspend", "CN-P1", code=2)
    assert err["error"] == "conflict"
    assert as_json("members", "suspend", "CN-P1", "--reinstate")["status"] == "active"
    err = as_json("members", "show", "CN-NONE", code=2)
    assert err == {"error": "not_found", "detail": "Unknown member code: CN-NONE", "field": "code"}
    assert "CN-A1" in run("members", "show", "CN-A1").stdout


GOOD_CSV = """code,name_zh,name_en,type,region,is_centre,centre,contact_email,days_to_respond
CN-L1,叶一,Leaf One,academic,hubei,否,CN-C1,l1@example.org,3
CN-C1,中心,Centre,public,hubei,是,,,
"""

BAD_CSV = """code,name_zh,name_en,type,region,is_centre,centre,contact_email,days_to_respond
CN-OK,好,Good,academic,hubei,,,,
CN-B1,,Bad One,academic,hubei,,,,
CN-B2,坏,"Bad
Two",academic,hubei,,,not-an-email,200
CN-OK,重,Again,academic,hubei,,,,
"""


def test_import_csv_all_or_nothing(db_url: str, session: Session, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_CSV, encoding="utf-8")
    err = as_json("members", "import", str(bad), code=2)
    assert err["error"] == "invalid_rows"
    # The third record spans lines 4-5 (a quoted line break): it is reported on line 4.
    assert [(p["line"], p["field"]) for p in err["problems"]] == [
        (3, "name_zh"),
        (4, "contact_email"),
        (4, "days_to_respond"),
        (6, "code"),
    ]
    assert count(session, Member) == 0 and count(session, Event) == 0
    result = run("members", "import", str(bad), code=2, env={"CONSORTIA_LANG": "zh-CN"})
    assert "导入被拒绝" in result.output
    assert "line 4: days_to_respond: 必须在 1 到 60 之间" in result.output

    good = tmp_path / "good.csv"
    good.write_bytes(b"\xef\xbb\xbf" + GOOD_CSV.encode())  # a spreadsheet's BOM
    assert as_json("members", "import", str(good)) == {
        "imported": 2,
        "codes": ["CN-L1", "CN-C1"],
    }
    leaf = as_json("members", "show", "CN-L1")
    assert leaf["centre"] == "CN-C1" and leaf["days_to_respond"] == 3
    assert as_json("members", "show", "CN-C1")["is_centre"] is True
    err = as_json("members", "import", str(good), code=2)
    assert [(p["line"], p["field"]) for p in err["problems"]] == [(2, "code"), (3, "code")]
    assert count(session, Member) == 2


def test_import_unreadable_files(db_url: str, tmp_path: Path) -> None:
    err = as_json("members", "import", str(tmp_path / "missing.csv"), code=2)
    assert err["error"] == "not_found" and "missing.csv" in err["detail"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("code,name_zh\nCN-X,caf\xe9\n".encode("latin-1"))
    err = as_json("members", "import", str(latin), code=2)
    assert err["field"] == "file" and "UTF-8" in err["detail"]
