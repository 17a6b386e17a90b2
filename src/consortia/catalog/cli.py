"""``consortia ingest`` and ``consortia catalog stats|cluster-of|quarantine|duplicates|export``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from consortia.accounts.roles import CLI
from consortia.catalog import service
from consortia.catalog.export import merged_marcxml, source_marcxml
from consortia.cliutil import JsonOption, console, emit_json, fail, unit_of_work
from consortia.db import migrate
from consortia.errors import DomainError

catalog_app = typer.Typer(help="The union catalogue. / 联合目录。", no_args_is_help=True)


def ingest_command(
    files: list[Path] = typer.Argument(..., help="MARC files (ISO 2709, MARCXML, MARC-in-JSON)."),
    member: str = typer.Option(..., "--member", help="The member whose records these are."),
    format: str = typer.Option("auto", "--format", help="auto, iso2709, marcxml, json"),
    encoding: str = typer.Option("auto", "--encoding", help="auto, utf-8, marc8, gbk, gb18030"),
    flavour: str = typer.Option("auto", "--flavour", help="auto, marc21, unimarc"),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="A full load: the member's records absent from it are deleted. / 全量替换。",
    ),
    workers: int = typer.Option(2, "--workers", min=1, max=16, help="Parsing processes."),
    as_json: bool = JsonOption,
) -> None:
    """Load a member's records into the union catalogue. / 装载成员馆书目记录。"""
    migrate()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[records]} records · {task.fields[rate]} rec/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    progress = Progress(
        *columns, console=console, disable=as_json or not sys.stderr.isatty(), transient=False
    )
    import time

    started = time.monotonic()
    with progress:
        task = progress.add_task(f"{member}", total=None, records=0, rate=0)

        def on_progress(done: int, total: int, records: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(
                task, completed=done, total=total, records=records, rate=int(records / elapsed)
            )

        try:
            summary = service.load_files(
                CLI,
                member,
                files,
                format=format,
                encoding=encoding,
                flavour=flavour,
                replace=replace,
                workers=workers,
                progress=on_progress,
                indexing=lambda: progress.update(
                    task, description=f"{member} · indexing / 建立检索索引"
                ),
            )
        except DomainError as exc:
            fail(exc, as_json)
            return
    seconds = time.monotonic() - started
    result = {
        "member": member,
        "batch": summary.batch_id,
        **summary.as_dict(),
        "seconds": round(seconds, 2),
        "records_per_second": round(summary.read / seconds, 1) if seconds else None,
    }
    if as_json:
        emit_json(result)
        return
    table = Table(title=f"{member} · batch {summary.batch_id}")
    for key in (
        "read",
        "added",
        "updated",
        "unchanged",
        "deleted",
        "quarantined",
        "clusters_touched",
        "seconds",
        "records_per_second",
    ):
        table.add_row(key, str(result[key]))
    console.print(table)


@catalog_app.command("stats")
def stats_command(as_json: bool = JsonOption) -> None:
    """Totals: records, clusters, holdings, quarantined, per member. / 统计。"""
    with unit_of_work(as_json) as session:
        data = service.stats(session)
    if as_json:
        emit_json(data)
        return
    table = Table("member", "records", "clusters", "holdings", "quarantined")
    for m in data["members"]:
        table.add_row(
            m["member"], *(str(m[k]) for k in ("records", "clusters", "holdings", "quarantined"))
        )
    table.add_row(
        "[bold]all", *(str(data[k]) for k in ("records", "clusters", "holdings", "quarantined"))
    )
    console.print(table)


@catalog_app.command("cluster-of")
def cluster_of_command(
    member: str = typer.Option(..., "--member"),
    ids: list[str] = typer.Option(..., "--id", help="Record id (001); repeatable."),
    as_json: bool = JsonOption,
) -> None:
    """Which cluster each record is in, with its records and the rule. / 记录所在合并记录。"""
    with unit_of_work(as_json) as session:
        data = service.cluster_of(session, member, ids)
    if as_json:
        emit_json(data)
        return
    for d in data:
        recs = ", ".join(f"{r['member']}:{r['id']}" for r in d["records"])
        console.print(f"{d['member']}:{d['id']} → cluster {d['cluster']} ({d['rule']}) [{recs}]")


@catalog_app.command("quarantine")
def quarantine_command(
    member: str | None = typer.Option(None, "--member"),
    limit: int = typer.Option(100, "--limit", min=1, max=10000),
    as_json: bool = JsonOption,
) -> None:
    """Records that could not be read, with the reason. / 隔离区记录。"""
    with unit_of_work(as_json) as session:
        data = service.quarantine(session, member, limit=limit)
    if as_json:
        emit_json(data)
        return
    table = Table("id", "member", "file", "offset", "record", "reason")
    for q in data["items"]:
        table.add_row(
            str(q["id"]),
            q["member"],
            q["filename"],
            str(q["offset"]),
            q["record_id"] or "",
            q["reason"],
        )
    console.print(table)
    console.print(f"{data['total']} quarantined")


@catalog_app.command("resubmit")
def resubmit_command(
    quarantine_id: int,
    file: Path | None = typer.Option(None, "--file", help="A corrected record to load instead."),
    encoding: str = typer.Option("auto", "--encoding"),
    as_json: bool = JsonOption,
) -> None:
    """Load a quarantined record again. / 重新提交隔离记录。"""
    migrate()
    try:
        data = service.resubmit(
            CLI, quarantine_id, file.read_bytes() if file else None, encoding=encoding
        )
    except DomainError as exc:
        fail(exc, as_json)
        return
    if as_json:
        emit_json(data)
    else:
        console.print("loaded / 已装载" if data["loaded"] else "still not readable / 仍无法读取")


@catalog_app.command("duplicates")
def duplicates_command(
    member: str | None = typer.Option(None, "--member"), as_json: bool = JsonOption
) -> None:
    """In-member duplicates: clusters with several records of one member. / 馆内重复。"""
    with unit_of_work(as_json) as session:
        data = service.duplicates_report(session, member)
    if as_json:
        emit_json(data)
        return
    for d in data:
        console.print(
            f"{d['member']} cluster {d['cluster']}: {', '.join(d['records'])} — {d['title']}"
        )


@catalog_app.command("export")
def export_command(
    member: str | None = typer.Option(None, "--member", help="Source record of this member."),
    record_id: str | None = typer.Option(None, "--id"),
    cluster: int | None = typer.Option(None, "--cluster", help="Merged record of a cluster."),
    fmt: str = typer.Option("marcxml", "--format", help="marcxml or iso2709 (source only)"),
) -> None:
    """Export a source record verbatim or a merged record. / 导出记录。"""
    with unit_of_work(False) as session:
        if cluster is not None:
            sys.stdout.write(merged_marcxml(service.get_cluster(session, cluster)))
            return
        if not (member and record_id):
            raise typer.BadParameter("give --cluster, or --member and --id")
        sr = service.source_record(session, member, record_id)
        if fmt == "iso2709":
            sys.stdout.buffer.write(sr.raw)
        else:
            sys.stdout.write(source_marcxml(sr.raw, sr.flavour, sr.encoding))


@catalog_app.command("holdings")
def holdings_command(
    file: Path = typer.Argument(..., help="CSV: member, record_id, barcode, call_number, ..."),
    member: str = typer.Option(..., "--member"),
    as_json: bool = JsonOption,
) -> None:
    """Load a holdings CSV for records already loaded. / 装载馆藏 CSV。"""
    with unit_of_work(as_json) as session:
        data = service.load_holdings(session, CLI, member, file.read_bytes(), filename=file.name)
    if as_json:
        emit_json(data)
    else:
        console.print(f"{data['member']}: {data['items']} items / {data['records']} records")


@catalog_app.command("holdings-mapping")
def holdings_mapping_command(
    member: str = typer.Option(..., "--member"),
    tag: str | None = typer.Option(None, "--tag", help="The member's own holdings tag, e.g. 949."),
    barcode: str = typer.Option("", "--barcode", help="Subfield code of the barcode."),
    call_number: str = typer.Option("", "--call-number", help="Subfield code of the call number."),
    location: str = typer.Option("", "--location", help="Subfield code of the location."),
    status: str = typer.Option("", "--status", help="Subfield code of the status."),
    clear: bool = typer.Option(False, "--clear", help="Back to 852/952/995. / 恢复标准字段。"),
    as_json: bool = JsonOption,
) -> None:
    """Show or set the member's holdings tag and subfields. / 馆藏字段映射。"""
    with unit_of_work(as_json) as session:
        if clear:
            data = service.clear_holdings_mapping(session, CLI, member)
        elif tag is not None:
            data = service.set_holdings_mapping(
                session,
                CLI,
                member,
                tag=tag,
                barcode=barcode,
                call_number=call_number,
                location=location,
                status=status,
            )
        else:
            data = service.holdings_mapping(session, CLI, member)
    if as_json:
        emit_json(data)
        return
    m = data["mapping"]
    if m is None:
        console.print(f"{member}: 852 / 952 / 995")
    else:
        parts = " ".join(f"{k}=${v}" for k, v in m.items() if k != "tag" and v)
        console.print(f"{member}: {m['tag']} {parts}")
