"""``consortia report`` and ``consortia stats`` in-process against the test database."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from consortia.cli import app
from tests.stats.test_reports import BOOKS, make_history
from tests.stats.world import build

runner = CliRunner()
WEEK = ["--from", "2016-10-17", "--to", "2016-10-23"]


def run(*args: str, code: int = 0, lang: str = "en") -> Any:
    result = runner.invoke(app, list(args), env={"CONSORTIA_LANG": lang, "COLUMNS": "200"})
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def test_report_in_every_format(db_url: str, session: Session, tmp_path: Path) -> None:
    make_history(session, build(session, tmp_path, BOOKS))
    table = run("report", "service", *WEEK).stdout
    assert "Guangzhou University of Chinese Medicine" in table and "66.7" in table
    zh = run("report", "service", *WEEK, lang="zh-CN").stdout
    assert "广州中医药大学" in zh and "满足率" in zh
    csv_text = run("report", "service", *WEEK, "--format", "csv").stdout
    assert csv_text.splitlines()[1] == (
        "1,广州中医药大学,Guangzhou University of Chinese Medicine,4,3,2,1,66.7"
    )
    data = json.loads(run("report", "lending", *WEEK, "--format", "json").stdout)
    assert [t["key"] for t in data["tables"]] == ["members", "regions"]
    regions = run("report", "lending", *WEEK, "--format", "csv", "--table", "regions").stdout
    assert regions.splitlines()[1].startswith("guangdong,广东,Guangdong,4,6,-2,4,66.7")
    out = tmp_path / "turnaround.xlsx"
    run("report", "turnaround", *WEEK, "--format", "xlsx", "--output", str(out))
    wb = load_workbook(io.BytesIO(out.read_bytes()))
    assert wb.sheetnames == ["lenders", "services"]
    change = run(
        "report", "change", *WEEK, "--compare-from", "2015-10-17", "--compare-to", "2015-10-23"
    ).stdout
    assert "Fill rate %" in change and "25.0" in change


def test_bad_input_is_named_and_exits_2(db_url: str, session: Session) -> None:
    result = run("report", "service", "--from", "2016-10-23", "--to", "2016-10-17", code=2)
    assert "to: 2016-10-17 is before from: 2016-10-23" in result.output
    result = run("report", "service", *WEEK, "--member", "CN-NOPE", code=2)
    assert "no member has the code CN-NOPE" in result.output
    result = run("report", "service", "--from", "yesterday", "--to", "2016-10-17", code=2)
    assert "from: give a date" in result.output
    result = run("report", "nonsense", *WEEK, code=2)
    assert "Unknown report: nonsense" in result.output
    result = run("report", "service", *WEEK, "--format", "pdf", code=2)
    assert "format: the output format" in result.output


def test_stats_status_catch_up_and_rebuild(db_url: str, session: Session, tmp_path: Path) -> None:
    make_history(session, build(session, tmp_path, BOOKS))
    status = json.loads(run("stats", "status", "--json").stdout)
    assert status["last_event_id"] == 0 and status["newest_event_id"] > 0
    caught = json.loads(run("stats", "catch-up", "--json").stdout)
    assert caught["last_event_id"] == status["newest_event_id"]
    assert caught["events_applied"] > 0
    before = run("report", "service", *WEEK, "--format", "csv").stdout
    rebuilt = json.loads(run("stats", "rebuild", "--json").stdout)
    assert rebuilt["events_applied"] == caught["events_applied"]
    assert rebuilt["overlap_titles"] == len(BOOKS)
    assert run("report", "service", *WEEK, "--format", "csv").stdout == before
