"""Shared CLI plumbing: JSON or Rich output, domain errors as clean messages, the database."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from consortia.db import migrate, session_scope
from consortia.errors import DomainError, RowErrors
from consortia.i18n import gettext, normalize_language

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

JsonOption = typer.Option(False, "--json", help="Machine-readable JSON output. / 输出 JSON。")


def cli_language() -> str:
    return normalize_language(os.environ.get("CONSORTIA_LANG") or os.environ.get("LANG", "en"))


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def fail(exc: DomainError, as_json: bool) -> None:
    lang = cli_language()
    message = exc.render(lambda m: gettext(lang, m))
    if as_json:
        body: dict[str, Any] = {"error": exc.code, "detail": message}
        if exc.field:
            body["field"] = exc.field
        if isinstance(exc, RowErrors):
            body["problems"] = exc.problems
        emit_json(body)
    else:
        err_console.print(f"[red]{message}[/red]")
        if isinstance(exc, RowErrors):
            for p in exc.problems:
                err_console.print(f"  line {p.get('line')}: {p.get('field')}: {p.get('message')}")
    raise typer.Exit(code=2)


@contextmanager
def unit_of_work(as_json: bool = False) -> Iterator[Session]:
    """A migrated database and one transaction; domain errors end the command cleanly."""
    migrate()
    try:
        with session_scope() as session:
            yield session
    except DomainError as exc:
        fail(exc, as_json)
