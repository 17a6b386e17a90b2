"""The ``consortia`` command: init, serve, demo, and one sub-command per domain."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import typer

from consortia.accounts.cli import tokens_app, users_app
from consortia.catalog.cli import catalog_app, ingest_command
from consortia.cliutil import console
from consortia.db import migrate
from consortia.search.cli import search_command
from consortia.stats.cli import report_command, stats_app

app = typer.Typer(
    help="Consortia: union catalogue, resource sharing and statistics for a library consortium.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(tokens_app, name="tokens")
app.add_typer(catalog_app, name="catalog")
app.command("ingest")(ingest_command)
app.command("report")(report_command)
app.add_typer(stats_app, name="stats")
app.command("search")(search_command)

app.add_typer(users_app, name="users")

try:  # domains add their commands as they land
    from consortia.members.cli import members_app

    app.add_typer(members_app, name="members")
except ImportError:  # pragma: no cover
    pass


@app.command()
def init() -> None:
    """Create or migrate the database (CONSORTIA_DATABASE_URL). / 创建或升级数据库。"""
    migrate()
    console.print("database ready / 数据库已就绪")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Web port."),
    jobs: bool = typer.Option(
        True, "--jobs/--no-jobs", help="Run background jobs in this process (embedded mode)."
    ),
    processes: int = typer.Option(
        1,
        "--processes",
        min=1,
        max=64,
        help="Web server processes sharing the port: one per core. "
        "/ 共用端口的服务进程数（每核一个）。",
    ),
) -> None:
    """Serve the web UI and API. / 启动网页与接口服务。"""
    import multiprocessing

    from huey.consumer import Consumer

    from consortia.tasks import huey

    migrate()
    # Searching is CPU work under one interpreter lock (see settings.search_threads): a process
    # per core, each with its own socket on the one port (SO_REUSEPORT), the kernel spreading
    # the connections among them. The others are started fresh (spawn), not forked from this one.
    spawn = multiprocessing.get_context("spawn")
    others = [
        spawn.Process(target=_serve_process, args=(host, port), daemon=True)
        for _ in range(processes - 1)
    ]
    sock = _listen(host, port) if processes > 1 else None
    # uvicorn, stopped by SIGTERM, hands the signal back to the default handler once it has
    # shut down, which would end this process before it stops the others: end it by SystemExit.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    for proc in others:
        proc.start()
    # Embedded mode is one process: uploads and timers run on a consumer thread beside the web
    # server. Scaled out, start `consortia serve --no-jobs` and `consortia worker` separately.
    consumer = Consumer(huey, workers=1, worker_type="thread") if jobs else None
    if consumer is not None:
        consumer.start()
    try:
        _run_server(host, port, sock, log_level="info")
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)
        for proc in others:
            proc.terminate()
        for proc in others:
            proc.join(timeout=30)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol given explicitly: asyncio turns TCP_NODELAY on only for sockets that say
    # IPPROTO_TCP (uvicorn's --workers hand theirs on with protocol 0, and every keep-alive
    # answer then waits ~40 ms for a delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _run_server(host: str, port: int, sock: socket.socket | None, log_level: str) -> None:
    import uvicorn

    from consortia.web.app import create_app

    app = create_app(run_migrations=False)  # serve() migrated before any process started
    if sock is None:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    else:
        uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _serve_process(host: str, port: int) -> None:
    # Stop, as SIGTERM would, when the first process is gone (killed before it could stop us).
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
    _run_server(host, port, _listen(host, port), log_level="warning")


@app.command()
def worker(
    workers: int = typer.Option(2, "--workers", min=1, max=32, help="Worker threads."),
) -> None:
    """Run background jobs (loads, timers). / 运行后台任务。"""
    from huey.consumer import Consumer

    from consortia.tasks import huey

    migrate()
    Consumer(huey, workers=workers, worker_type="thread").run()


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Web port."),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Serve after loading."),
    scale: str = typer.Option(
        "small",
        "--scale",
        help="Demo traffic 2010-2016: none, small (under a minute), full (about ten million "
        "events) or a share such as 0.05.",
    ),
    paper_week: bool = typer.Option(
        False,
        "--paper-week",
        help="Load exactly the paper's week (Table 1, 2016-10-17 to 2016-10-23) into an empty "
        "database, and no other traffic.",
    ),
) -> None:
    """Init + the demo consortium + serve. / 初始化、载入演示联盟并启动服务。"""
    from consortia.cliutil import fail
    from consortia.demo.load import load_demo
    from consortia.demo.simulator import load_traffic, parse_scale
    from consortia.errors import DomainError

    migrate()
    try:
        if paper_week:
            from consortia.demo.paper_week import load_paper_week

            load_paper_week(console)
        else:
            share = parse_scale(scale)
            load_demo(console)
            load_traffic(console, share)
    except DomainError as exc:
        fail(exc, False)
    if serve_after:
        serve(host=host, port=port, jobs=True)


def main() -> None:
    app()
