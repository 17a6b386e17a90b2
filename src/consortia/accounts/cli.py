"""``consortia tokens`` and ``consortia users``."""

from __future__ import annotations

import typer

from consortia.accounts import service
from consortia.accounts.roles import CLI, Role
from consortia.cliutil import JsonOption, console, emit_json, unit_of_work

tokens_app = typer.Typer(
    help="API tokens for member systems. / 成员馆系统的接口令牌。", no_args_is_help=True
)
users_app = typer.Typer(help="Accounts. / 账户。", no_args_is_help=True)


@tokens_app.command("create")
def tokens_create(
    member: str = typer.Option(..., "--member", help="Member code, e.g. CN-GZUCM."),
    name: str = typer.Option("", "--name", help="What the token is for."),
    as_json: bool = JsonOption,
) -> None:
    """Create a token; the secret is shown this once. / 创建令牌（密钥仅显示一次）。"""
    with unit_of_work(as_json) as session:
        new = service.create_token(session, CLI, member, name)
    if as_json:
        emit_json({"id": new.id, "member": new.member, "token": new.token})
    else:
        console.print(f"token {new.id} for {new.member}: [bold]{new.token}[/bold]")
        console.print("store it now: it is not shown again / 请立即保存，不会再次显示")


@tokens_app.command("revoke")
def tokens_revoke(token_id: int, as_json: bool = JsonOption) -> None:
    """Revoke a token. / 吊销令牌。"""
    with unit_of_work(as_json) as session:
        service.revoke_token(session, CLI, token_id)
    if as_json:
        emit_json({"id": token_id, "revoked": True})
    else:
        console.print(f"token {token_id} revoked / 已吊销")


@users_app.command("add")
def users_add(
    username: str,
    role: Role = typer.Option(..., "--role"),
    member: str | None = typer.Option(None, "--member", help="Member code (not for admins)."),
    password: str = typer.Option(
        ..., "--password", prompt=True, hide_input=True, confirmation_prompt=True
    ),
    display_name: str = typer.Option("", "--name"),
    as_json: bool = JsonOption,
) -> None:
    """Add an account. / 新增账户。"""
    with unit_of_work(as_json) as session:
        user = service.create_user(
            session,
            CLI,
            username=username,
            password=password,
            role=role,
            member_code=member,
            display_name=display_name,
        )
        out = {"id": user.id, "username": user.username, "role": user.role.value, "member": member}
    if as_json:
        emit_json(out)
    else:
        console.print(f"user {username} ({role.value}) added / 已新增")
