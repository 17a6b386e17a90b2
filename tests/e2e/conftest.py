"""Fixtures of the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import chromium


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b
