"""The paper's Table 1, exactly, from request events made through the resource-sharing service:
``consortia demo --paper-week`` into an empty database, then ``consortia report service``."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.db import session_factory
from consortia.demo import paper_week
from consortia.errors import Conflict
from consortia.events.models import Event
from consortia.stats import export
from consortia.stats import service as stats

TABLE1 = paper_week.TABLE1
WEEK = stats.Filters(dt.date(2016, 10, 17), dt.date(2016, 10, 23))


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consortia", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.timeout(1200)
def test_demo_paper_week_then_report_service_prints_table_1(
    db_url: str, tmp_path: Path, session: Session
) -> None:
    env = {
        **os.environ,
        "CONSORTIA_DATABASE_URL": db_url,
        "CONSORTIA_LANG": "en",
        "COLUMNS": "160",
    }
    done = _cli(env, tmp_path, "demo", "--paper-week", "--no-serve")
    assert done.returncode == 0, done.stderr[-2000:]
    printed = _cli(
        env,
        tmp_path,
        "report",
        "service",
        "--from",
        "2016-10-17",
        "--to",
        "2016-10-23",
        "--format",
        "csv",
    )
    assert printed.returncode == 0, printed.stderr
    # All ten rows, every number, byte for byte as the paper's file.
    assert printed.stdout == TABLE1.read_text(encoding="utf-8")

    # The default format is a table for people, with the total.
    table = _cli(env, tmp_path, "report", "service", "--from", "2016-10-17", "--to", "2016-10-23")
    assert table.returncode == 0
    assert "Guangzhou University of Chinese Medicine" in table.stdout
    assert "Total" in table.stdout and "18551" in table.stdout and "94.8" in table.stdout

    # Every request is in the event log as the service wrote it.
    counted = dict(
        session.execute(
            select(Event.action, func.count())
            .where(
                Event.action.in_(
                    ["ill.request.created", "ill.request.shipped", "ill.request.unfilled"]
                )
            )
            .group_by(Event.action)
        ).all()
    )
    assert counted == {
        "ill.request.created": 21119,
        "ill.request.shipped": 20029,
        "ill.request.unfilled": 1090,
    }
    report = stats.service_table(session, WEEK)
    with TABLE1.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["rank"] for r in report.tables[0].rows] == [int(r["rank"]) for r in rows]
    total = report.tables[0].total
    assert total is not None
    assert (total["requests"], str(total["fill_rate_percent"])) == (21119, "94.8")

    # The days around the week are empty: a wider period gives the same table.
    wider = stats.service_table(session, stats.Filters(dt.date(2016, 1, 1), dt.date(2016, 12, 31)))
    assert export.to_csv(wider) == TABLE1.read_text(encoding="utf-8")
    earlier = stats.service_table(
        session, stats.Filters(dt.date(2016, 10, 1), dt.date(2016, 10, 16))
    )
    assert earlier.tables[0].rows == []
    # A language filter keeps the other language's columns at zero.
    chinese = stats.service_table(session, replace(WEEK, language="chinese")).tables[0].rows[0]
    assert (chinese["code"], chinese["chinese_requests"], chinese["foreign_requests"]) == (
        "CN-GZUCM",
        4919,
        0,
    )
    assert chinese["fill_rate_percent"] == stats.percent(4679, 4919)

    # A second load is refused: the week goes into an empty database only.
    again = _cli(env, tmp_path, "demo", "--paper-week", "--no-serve")
    assert again.returncode == 2
    assert "already holds 21119 requests" in again.stderr
    with pytest.raises(Conflict):
        paper_week.replay(session_factory())
