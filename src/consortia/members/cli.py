"""``consortia members list|show|add|import|suspend``: the member registry from the shell."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from consortia.accounts.roles import CLI
from consortia.cliutil import JsonOption, cli_language, console, emit_json, unit_of_work
from consortia.errors import Invalid, NotFound
from consortia.i18n import gettext
from consortia.members import service
from consortia.members.models import Member, MemberStatus, MemberType, Sector
from consortia.members.schemas import ImportRefused, MemberOut, MemberPage

members_app = typer.Typer(help="The member registry. / 成员馆名录。", no_args_is_help=True)

STATUS_LABEL = {
    MemberStatus.active: "[green]active 正常[/green]",
    MemberStatus.suspended: "[bold red]SUSPENDED 已暂停[/bold red]",
    MemberStatus.left: "[dim]left 已退出[/dim]",
}


def _out(member: Member) -> dict[str, Any]:
    return MemberOut.of(member).model_dump(mode="json")


def _show(member: Member) -> None:
    data = _out(member)
    table = Table(title=f"{member.code} {member.name_zh} / {member.name_en}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in data.items():
        if name == "status":
            shown = STATUS_LABEL[member.status]
        else:
            shown = "—" if value is None else str(value)
        table.add_row(name, shown)
    console.print(table)


@members_app.command("list")
def list_cmd(
    region: str | None = typer.Option(None, "--region", help="Region code, e.g. guangdong."),
    type: MemberType | None = typer.Option(None, "--type"),
    sector: Sector | None = typer.Option(None, "--sector"),
    status: MemberStatus | None = typer.Option(None, "--status"),
    is_centre: bool | None = typer.Option(
        None, "--centres/--not-centres", help="Only regional centres, or only the others."
    ),
    centre: str | None = typer.Option(None, "--centre", help="Members of this centre."),
    q: str | None = typer.Option(None, "--q", "-q", help="Text in code or names."),
    offset: int = typer.Option(0, "--offset"),
    limit: int = typer.Option(service.MAX_PAGE, "--limit"),
    as_json: bool = JsonOption,
) -> None:
    """List members; suspended ones are marked. / 列出成员馆（暂停的会标明）。"""
    with unit_of_work(as_json) as session:
        items, total = service.list_members(
            session,
            region=region,
            type=type,
            sector=sector,
            status=status,
            is_centre=is_centre,
            centre=centre,
            q=q,
            offset=offset,
            limit=limit,
        )
        page = MemberPage(
            items=[MemberOut.of(m) for m in items], total=total, offset=offset, limit=limit
        )
    if as_json:
        emit_json(page.model_dump(mode="json"))
        return
    table = Table(title=f"members / 成员馆: {len(page.items)} of {total}")
    for col in ("code", "name_zh", "name_en", "type", "region", "centre", "status"):
        # Codes and status must stay readable on a narrow terminal; names may wrap.
        table.add_column(col, no_wrap=col in ("code", "status"))
    for m in page.items:
        centre_text = "[bold]centre 中心馆[/bold]" if m.is_centre else (m.centre or "—")
        table.add_row(
            m.code,
            m.name_zh,
            m.name_en,
            m.type.value,
            m.region,
            centre_text,
            STATUS_LABEL[m.status],
        )
    console.print(table)


@members_app.command("show")
def show_cmd(code: str, as_json: bool = JsonOption) -> None:
    """Show one member. / 显示一个成员馆。"""
    with unit_of_work(as_json) as session:
        member = service.get_member(session, code)
        data = _out(member)
        if not as_json:
            _show(member)
    if as_json:
        emit_json(data)


@members_app.command("add")
def add_cmd(
    code: str = typer.Argument(..., help="ISIL-style code, e.g. CN-GZUCM."),
    name_zh: str = typer.Option(..., "--name-zh", help="Chinese name."),
    name_en: str = typer.Option(..., "--name-en", help="English name."),
    type: str = typer.Option(..., "--type", help="academic, public, special or school."),
    region: str = typer.Option(..., "--region", help="Region code; a new one is created."),
    sector: str | None = typer.Option(
        None, "--sector", help="education, culture or other (default from --type)."
    ),
    centre: str | None = typer.Option(None, "--centre", help="Code of its regional centre."),
    is_centre: bool = typer.Option(False, "--is-centre", help="It is a regional centre."),
    joined_on: str | None = typer.Option(None, "--joined-on", help="YYYY-MM-DD"),
    contact_name: str | None = typer.Option(None, "--contact-name"),
    contact_email: str | None = typer.Option(None, "--contact-email"),
    contact_phone: str | None = typer.Option(None, "--contact-phone"),
    z3950_host: str | None = typer.Option(None, "--z3950-host"),
    z3950_port: int | None = typer.Option(None, "--z3950-port"),
    z3950_database: str | None = typer.Option(None, "--z3950-database"),
    sru_url: str | None = typer.Option(None, "--sru-url"),
    oai_url: str | None = typer.Option(None, "--oai-url"),
    iso18626_url: str | None = typer.Option(None, "--iso18626-url"),
    lends_loans: bool | None = typer.Option(None, "--lends-loans/--no-lends-loans"),
    lends_copies: bool | None = typer.Option(None, "--lends-copies/--no-lends-copies"),
    max_open_lending: int | None = typer.Option(None, "--max-open-lending"),
    days_to_respond: int | None = typer.Option(None, "--days-to-respond"),
    loan_period_days: int | None = typer.Option(None, "--loan-period-days"),
    as_json: bool = JsonOption,
) -> None:
    """Admit a member. / 新增成员馆。"""
    given = {k: v for k, v in locals().items() if k in service.FIELDS and v is not None}
    with unit_of_work(as_json) as session:
        member = service.create_member(session, CLI, given)
        data = _out(member)
    if as_json:
        emit_json(data)
    else:
        console.print(f"member {data['code']} added / 已新增: {data['name_zh']} {data['name_en']}")


def read_csv(path: Path) -> tuple[list[dict[str, str]], list[int]]:
    """Rows of a UTF-8 CSV file (a spreadsheet's BOM is fine) and the line each starts on."""
    if not path.is_file():
        raise NotFound("File not found: {path}", field="file", path=str(path))
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            last = 1
            for row in reader:
                rows.append(row)
                lines.append(last + 1)  # a quoted cell may span lines: count from the previous end
                last = reader.line_num
    except UnicodeDecodeError:
        raise Invalid("File is not UTF-8 text: {path}", field="file", path=str(path)) from None
    except csv.Error as exc:
        raise Invalid(
            "Not a readable CSV file: {path}: {reason}", field="file", path=str(path), reason=exc
        ) from None
    return rows, lines


@members_app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="CSV file; columns are the API's field names."),
    as_json: bool = JsonOption,
) -> None:
    """Import members from CSV, all or nothing. / 从 CSV 导入成员馆（全部成功或全部不变）。"""
    lang = cli_language()
    with unit_of_work(as_json) as session:
        rows, lines = read_csv(file)
        try:
            created = service.import_rows(session, CLI, rows, lines)
        except ImportRefused as exc:
            exc.localize(lambda m: gettext(lang, m))
            raise
        codes = [m.code for m in created]
    if as_json:
        emit_json({"imported": len(codes), "codes": codes})
    else:
        console.print(f"{len(codes)} members imported / 已导入 {len(codes)} 个成员馆")


@members_app.command("suspend")
def suspend_cmd(
    code: str,
    reinstate: bool = typer.Option(False, "--reinstate", help="End the suspension instead."),
    reason: str = typer.Option("", "--reason", help="Why, for the event log."),
    as_json: bool = JsonOption,
) -> None:
    """Suspend a member (or reinstate it). / 暂停成员馆（或恢复）。"""
    with unit_of_work(as_json) as session:
        if reinstate:
            member = service.reinstate_member(session, CLI, code, reason)
        else:
            member = service.suspend_member(session, CLI, code, reason)
        data = _out(member)
    if as_json:
        emit_json(data)
    elif reinstate:
        console.print(f"member {data['code']} reinstated / 已恢复")
    else:
        console.print(f"member {data['code']} suspended / 已暂停")
