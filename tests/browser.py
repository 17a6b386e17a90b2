"""Debian's chromium driven by Playwright, for the tests that look at pages in a real browser."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"
)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium (a Playwright Browser), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def watch_problems(page: Any) -> list[str]:
    """What went wrong on the page, collected as it happens: console errors, uncaught script
    errors, responses of 400 and up, and requests that failed. A request the browser gave up
    because the page moved on (a favicon still loading when a link was followed:
    net::ERR_ABORTED) is not a fault of the page; any other failure is."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error {e}"))

    def failed(request: Any) -> None:
        if request.failure != "net::ERR_ABORTED":
            problems.append(f"failed {request.url}: {request.failure}")

    page.on("requestfailed", failed)
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    return problems
