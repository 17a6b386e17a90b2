"""``consortia search QUERY [--cql] [--json] [--limit N]`` and ``consortia search reindex``."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.table import Table

from consortia.cliutil import JsonOption, cli_language, console, emit_json, fail
from consortia.db import get_engine, migrate, session_scope
from consortia.errors import DomainError
from consortia.i18n import gettext
from consortia.search import cql, searchbox, segment, service
from consortia.search import index as search_index
from consortia.search.api import HELP_LINES
from consortia.search.query import is_empty, to_text


def search_command(
    query: list[str] = typer.Argument(
        None,
        help="What to search for (search-box syntax, or CQL with --cql); "
        "`reindex` rebuilds the index, `segment` builds its in-memory segment. "
        "/ 检索词；reindex 重建索引，segment 生成索引的内存段。",
    ),
    use_cql: bool = typer.Option(False, "--cql", help="The query is CQL. / 检索式为 CQL。"),
    limit: int = typer.Option(10, "--limit", min=1, max=service.MAX_LIMIT, help="Hits to show."),
    offset: int = typer.Option(0, "--offset", min=0, max=service.MAX_OFFSET, help="Skip hits."),
    sort: str = typer.Option("", "--sort", help="relevance, title, author, year, publisher; -desc"),
    facet: list[str] = typer.Option(
        [], "--facet", help="Filter facet:value, e.g. language:chi (repeatable)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Search the union catalogue. / 检索联合目录。"""
    words = [w for w in (query or []) if w]
    if words == ["reindex"]:
        _segment(as_json, {"reindexed": _reindex(as_json)})
        return
    if words == ["segment"]:
        _segment(as_json)
        return
    text = " ".join(words)
    migrate()
    lang = cli_language()
    try:
        sort_keys = service.parse_sort(sort)
        filters = service.parse_filters(facet)
        if use_cql:
            parsed = cql.parse(text)
            tree = parsed.tree
            sort_keys = sort_keys or [service.SortKey(k.field, k.ascending) for k in parsed.sort]
        else:
            tree = searchbox.parse(text)
        if is_empty(tree) and not filters:
            help_lines = [gettext(lang, line) for line in HELP_LINES]
            if as_json:
                emit_json({"query": "", "total": 0, "hits": [], "help": help_lines})
            else:
                for line in help_lines:
                    console.print(line)
            return
        with session_scope() as session:
            result = service.search(
                session,
                tree,
                offset=offset,
                limit=limit,
                sort=sort_keys,
                facets=None if as_json else [],
                filters=filters,
            )
    except DomainError as exc:
        fail(exc, as_json)
        return
    if as_json:
        emit_json({"query": to_text(tree), **result.as_dict()})
        return
    _print(result, lang)


def _holdings(hit: dict[str, Any]) -> str:
    parts = []
    for h in hit["holdings"]:
        calls = ", ".join(h["call_numbers"][:2])
        avail = f"{h['available']}/{h['items']}" if h["items"] else "-"
        parts.append(f"{h['member']} {calls} ({avail})".replace("  ", " "))
    return "; ".join(parts)


def _print(result: service.SearchResult, lang: str) -> None:
    shown = f"{result.offset + 1}-{result.offset + len(result.hits)}" if result.hits else "0"
    console.print(
        gettext(lang, "{total} found, showing {shown}").format(total=result.total, shown=shown)
    )
    if not result.hits:
        return
    table = Table(show_lines=False)
    for col in ("#", "Title", "Author", "Year", "Holdings"):
        table.add_column(gettext(lang, col))
    for i, hit in enumerate(result.hits, start=result.offset + 1):
        title = hit["title"] + (f" : {hit['remainder']}" if hit["remainder"] else "")
        author = hit["authors"][0]["name"] if hit["authors"] else ""
        table.add_row(str(i), title, author, str(hit["year"] or ""), _holdings(hit))
    console.print(table)


def _reindex(as_json: bool) -> int:
    migrate()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]reindex"),
        BarColumn(),
        TextColumn("{task.fields[done]} clusters"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json or not sys.stderr.isatty(),
    )
    with progress, get_engine().connect() as conn:
        task = progress.add_task("reindex", total=None, done=0)

        def on_progress(last: int, total: int, done: int) -> None:
            progress.update(task, completed=last, total=total, done=done)

        n = search_index.reindex_all(conn, progress=on_progress)
    if not as_json:
        console.print(gettext(cli_language(), "{count} clusters indexed").format(count=n))
    return n


def _segment(as_json: bool, also: dict[str, Any] | None = None) -> None:
    """Build the index's in-memory segment (SQLite; PostgreSQL has none). ``also``: more to
    say in the JSON answer."""
    migrate()
    lang = cli_language()
    with get_engine().connect() as conn:
        if segment.directory(conn) is None:
            if as_json:
                emit_json({**(also or {}), "segment": None})
            else:
                console.print(gettext(lang, "Only a SQLite database in a file has a segment"))
            return
        built = segment.build(conn)
    if as_json:
        emit_json({**(also or {}), "segment": built.as_dict()})
    elif built.fresh:
        console.print(
            gettext(
                lang,
                "Segment of generation {generation} built: {documents} clusters, {terms} terms, "
                "{megabytes} MB in {seconds} s",
            ).format(
                generation=built.generation,
                documents=built.documents,
                terms=built.terms,
                megabytes=round(built.bytes / 1e6, 1),
                seconds=round(built.seconds, 1),
            )
        )
    else:
        console.print(
            gettext(lang, "The segment of generation {generation} is current").format(
                generation=built.generation
            )
        )
