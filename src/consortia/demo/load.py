"""The demo consortium: the ten libraries of the paper's Table 1 in Guangdong (Sun Yat-sen
Library of Guangdong Province as regional centre) and a second region, Jilin, so that routing by
region can be shown; an admin, a staff and a reader account per library.

Loaded through the domains' services, like any real consortium. Idempotent: a second run changes
nothing and shows no passwords again.
"""

from __future__ import annotations

import csv
import secrets
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from consortia.accounts import service as accounts
from consortia.accounts.models import User
from consortia.accounts.roles import SYSTEM, Role
from consortia.db import session_scope
from consortia.members import service as members

DATA = Path(__file__).parent / "data"
ROLE_SUFFIX = {Role.library_admin: "admin", Role.library_staff: "staff", Role.reader: "reader"}


def demo_rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def load_demo(console: Console | None = None) -> dict[str, Any]:
    """Load members and accounts; returns {"loaded": bool, "accounts": [(user, role, pw)]}."""
    console = console or Console()
    created: list[tuple[str, str, str, str]] = []
    with session_scope() as session:
        if session.scalar(select(User.id).where(User.username == "office")) is not None:
            console.print("demo consortium already loaded / 演示联盟已载入")
            return {"loaded": False, "accounts": []}
        for row in demo_rows("regions.csv"):
            members.ensure_region(session, SYSTEM, row["code"], row["name_zh"], row["name_en"])
        rows = demo_rows("members.csv")
        members.import_rows(session, SYSTEM, rows)
        password = secrets.token_urlsafe(9)
        accounts.create_user(
            session,
            SYSTEM,
            username="office",
            password=password,
            role=Role.consortium_admin,
            display_name="联盟中心 Consortium office",
        )
        created.append(("office", Role.consortium_admin.value, "—", password))
        for row in rows:
            for role, suffix in ROLE_SUFFIX.items():
                username = f"{row['code'].lower().removeprefix('cn-')}-{suffix}"
                password = secrets.token_urlsafe(9)
                accounts.create_user(
                    session,
                    SYSTEM,
                    username=username,
                    password=password,
                    role=role,
                    member_code=row["code"],
                )
                created.append((username, role.value, row["code"], password))
    from consortia.demo.catalog import load_demo_catalogue

    console.print("loading the demo union catalogue / 正在装载演示联合目录 …")
    records = load_demo_catalogue(SYSTEM, [row["code"] for row in rows])
    console.print(f"{records} records loaded / 已装载 {records} 条记录")
    table = Table(title="Demo accounts — passwords shown once / 演示账户（密码仅显示一次）")
    for col in ("username", "role", "member", "password"):
        table.add_column(col)
    for entry in created:
        table.add_row(*entry)
    console.print(table)
    return {"loaded": True, "accounts": created}
