"""The search lane (web.deps.in_search_lane): a web process runs at most
``CONSORTIA_SEARCH_THREADS`` searches at once, the others wait their turn in arrival order; and
the search API, SRU and the results page answer correctly when many requests arrive together."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.catalog import service as catalog
from consortia.settings import reset_settings
from consortia.web.deps import in_search_lane
from tests.conftest import add_region_and_member

LOC = Path(__file__).parent.parent / "data" / "ingest" / "loc-60.mrc"


def _run_together(n: int) -> tuple[int, list[int]]:
    """Start n searches (each holding its thread 80 ms) one after another on one event loop:
    the most that ran at once, and the order they started in."""
    lock = threading.Lock()
    running = 0
    most = 0
    started: list[int] = []

    def work(k: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            started.append(k)
        time.sleep(0.08)
        with lock:
            running -= 1
        return k

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for k in range(n):
                tg.start_soon(in_search_lane, work, k)
                await anyio.sleep(0.002)  # arrive in this order

    anyio.run(main)
    return most, started


@pytest.mark.parametrize("threads", [1, 3])
def test_searches_run_at_most_the_lane_width_at_once_in_arrival_order(
    monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    monkeypatch.setenv("CONSORTIA_SEARCH_THREADS", str(threads))
    reset_settings()
    try:
        most, started = _run_together(8)
    finally:
        monkeypatch.delenv("CONSORTIA_SEARCH_THREADS")
        reset_settings()
    assert most == threads
    assert sorted(started) == list(range(8))
    # The lane admits in arrival order. Searches admitted together (up to the lane's width) may
    # reach their thread in either order, so a search may start at most width - 1 places from
    # its arrival; a lane that let later arrivals overtake waiting ones would move one further.
    assert all(abs(started.index(k) - k) < threads for k in range(8)), started


def test_the_lane_width_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from consortia.settings import get_settings

    monkeypatch.setenv("CONSORTIA_SEARCH_THREADS", "0")
    reset_settings()
    try:
        with pytest.raises(ValidationError, match="search_threads"):
            get_settings()
    finally:
        monkeypatch.delenv("CONSORTIA_SEARCH_THREADS")
        reset_settings()


def test_requests_arriving_together_each_get_their_own_answer(app: Any, session: Session) -> None:
    add_region_and_member(session, "CN-A", region="south")
    session.commit()
    catalog.load_files(CLI, "CN-A", [LOC], workers=1)
    paths = [
        "/api/v1/search?q=history&facets=none",
        "/api/v1/search?q=united",
        "/api/v1/search?cql=dc.title%3Dlaw",
        "/sru?version=1.2&operation=searchRetrieve&query=dc.title%3Dhistory&maximumRecords=2",
        "/search?q=history",
    ]

    async def fetch_all(rounds: int) -> list[tuple[int, bytes]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            out: list[tuple[int, bytes]] = [(0, b"")] * (len(paths) * rounds)

            async def one(k: int) -> None:
                r = await client.get(paths[k % len(paths)])
                out[k] = (r.status_code, r.content)

            async with anyio.create_task_group() as tg:
                for k in range(len(out)):
                    tg.start_soon(one, k)
            return out

    alone = anyio.run(fetch_all, 1)
    together = anyio.run(fetch_all, 4)
    assert [status for status, _ in alone] == [200] * len(paths)
    # Each of the 20 concurrent answers is the one its path gets alone (pages differ only by
    # their per-request CSRF token, so compare the JSON and SRU answers byte for byte).
    for k, (status, body) in enumerate(together):
        assert status == 200
        if not paths[k % len(paths)].startswith("/search"):
            assert body == alone[k % len(paths)][1]
        else:
            assert b"history" in body.lower()
