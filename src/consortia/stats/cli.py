"""``consortia report NAME`` and ``consortia stats status|catch-up|rebuild``.

``consortia report service --from 2016-10-17 --to 2016-10-23 --format csv`` prints the paper's
Table 1 from the database; ``--format table`` (the default) prints a Rich table in the
language of ``CONSORTIA_LANG`` / ``LANG``; ``xlsx`` writes the workbook to ``--output`` (or to
standard output when it is not a terminal); ``json`` prints every table.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from consortia.cliutil import JsonOption, cli_language, console, emit_json, fail, unit_of_work
from consortia.db import migrate, session_scope
from consortia.errors import DomainError, Invalid
from consortia.i18n import gettext
from consortia.stats import export, overlap, rollup
from consortia.stats import service as stats

stats_app = typer.Typer(
    help="Statistics roll-ups: status, catch up, rebuild. / 统计汇总表。", no_args_is_help=True
)
MSG_XLSX_TERMINAL = "format xlsx: give --output FILE (a workbook is not for the terminal)"
MSG_FORMAT = "format: the output format, one of {choices}"


def _day(value: str | None, name: str) -> dt.date | None:
    if value is None or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(stats.MSG_DATE_NEEDED, field=name, name=name) from None


def report_command(
    name: str = typer.Argument(..., help="One of: " + ", ".join(stats.REPORTS)),
    start: str = typer.Option(None, "--from", help="First day, YYYY-MM-DD."),
    end: str = typer.Option(None, "--to", help="Last day, YYYY-MM-DD."),
    member: str = typer.Option(None, "--member", help="Member code."),
    region: str = typer.Option(None, "--region", help="Region code."),
    member_type: str = typer.Option(None, "--member-type", help="academic, public, ..."),
    service: str = typer.Option(None, "--service", help="loan or copy."),
    language: str = typer.Option(None, "--language", help="chinese or foreign."),
    compare_from: str = typer.Option(None, "--compare-from", help="change: compared period."),
    compare_to: str = typer.Option(None, "--compare-to", help="change: compared period."),
    intervention: str = typer.Option(None, "--intervention", help="impact: date of the change."),
    series: str = typer.Option("requests", "--series", help="impact: " + ", ".join(stats.SERIES)),
    table: str = typer.Option(None, "--table", help="csv: which table (default the first)."),
    fmt: str = typer.Option("table", "--format", help="table, csv, xlsx or json."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file."),
) -> None:
    """Print a statistics report. / 输出统计报表。"""
    as_json = fmt == "json"
    lang = cli_language()
    migrate()
    try:
        if fmt not in export.FORMATS:
            raise Invalid(MSG_FORMAT, field="format", choices=", ".join(export.FORMATS))
        filters = stats.Filters(
            _day(start, "from"),
            _day(end, "to"),
            member,
            region,
            member_type,
            service,
            language,
        )
        options = stats.Options(
            _day(compare_from, "compare_from"),
            _day(compare_to, "compare_to"),
            _day(intervention, "intervention"),
            series,
        )
        with session_scope() as session:
            result = stats.run(session, name, filters, options)
        if fmt == "xlsx" and output is None and sys.stdout.isatty():
            raise Invalid(MSG_XLSX_TERMINAL, field="output")
        if fmt == "csv":
            text = export.to_csv(result, table)
            _write(text.encode("utf-8"), output)
            return
    except DomainError as exc:
        fail(exc, as_json)
        return
    if fmt == "xlsx":
        _write(export.to_xlsx(result, lang), output)
    elif fmt == "json":
        if output is not None:
            import json

            output.write_text(
                json.dumps(export.to_json(result, lang), ensure_ascii=False, indent=2, default=str)
            )
        else:
            emit_json(export.to_json(result, lang))
    else:
        _print_tables(result, lang)


def _write(data: bytes, output: Path | None) -> None:
    if output is not None:
        output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _print_tables(result: stats.Report, lang: str) -> None:
    title = gettext(lang, result.title)
    p = result.params
    console.print(f"[bold]{title}[/bold]  {p.get('from')} – {p.get('to')}")
    for t in result.tables:
        cols = export.visible_columns(t, lang)
        rt = RichTable(title=gettext(lang, t.title))
        for c in cols:
            rt.add_column(gettext(lang, c.label), justify="left" if c.kind == "text" else "right")
        for row in t.rows:
            cells = []
            for c in cols:
                value = row.get(c.key)
                if c.key in ("measure", "parameter"):
                    value = gettext(lang, str(row.get("label", value)))
                elif c.key == "phase":
                    value = gettext(lang, stats.PHASES.get(str(value), str(value)))
                cells.append(export.cell_text(value))
            rt.add_row(*cells)
        if t.total is not None:
            rt.add_row(
                *[
                    gettext(lang, "Total") if i == 0 else export.cell_text(t.total.get(c.key))
                    for i, c in enumerate(cols)
                ],
                style="bold",
            )
        console.print(rt)
    for msg, params in result.notes:
        console.print(gettext(lang, msg).format(**params), style="dim")


@stats_app.command("status")
def status_command(as_json: bool = JsonOption) -> None:
    """How far the roll-ups have read the event log. / 汇总进度。"""
    with unit_of_work(as_json) as session:
        s = rollup.state(session)
    data = {
        "last_event_id": s.last_event_id,
        "newest_event_id": s.newest_event_id,
        "events_applied": s.events_applied,
        "gaps": s.gaps,
        "updated_at": s.updated_at,
        "rebuilt_at": s.rebuilt_at,
    }
    if as_json:
        emit_json(data)
    else:
        for k, v in data.items():
            console.print(f"{k}: {v}")


def _run_with_progress(rebuild: bool, as_json: bool) -> None:
    migrate()
    started = time.perf_counter()
    with session_scope() as session:
        newest = rollup.state(session).newest_event_id
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} / {task.total:,} events"),
            TimeElapsedColumn(),
            console=console,
            disable=as_json or not sys.stderr.isatty(),
        )
        with progress:
            task = progress.add_task("roll-ups / 汇总", total=newest)
            step = rollup.rebuild if rebuild else rollup.catch_up
            result = step(session, progress=lambda _n, last: progress.update(task, completed=last))
        # Rebuilding rebuilds the overlap roll-up from the catalogue too.
        built = overlap.build(session, force=True) if rebuild else None
    data: dict[str, Any] = {
        "events_read": result.events_read,
        "events_applied": result.events_applied,
        "last_event_id": result.last_event_id,
        "gaps": result.gaps,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if built is not None:
        data["overlap_titles"] = built.clusters
    if as_json:
        emit_json(data)
    else:
        console.print(
            f"{data['events_read']:,} events read, {data['events_applied']:,} counted, "
            f"up to event {data['last_event_id']:,}, in {data['seconds']} s"
        )


@stats_app.command("catch-up")
def catch_up_command(as_json: bool = JsonOption) -> None:
    """Apply the events the roll-ups have not read yet. / 汇总新事件。"""
    _run_with_progress(False, as_json)


@stats_app.command("rebuild")
def rebuild_command(as_json: bool = JsonOption) -> None:
    """Rebuild the roll-ups from the whole event log (same figures). / 从事件日志重建汇总表。"""
    _run_with_progress(True, as_json)
