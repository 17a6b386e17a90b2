"""The search pages in a real browser (the real app under uvicorn, Debian's chromium), with the
keyboard alone: 中医 typed in the header box of the home page, the suggestion list opened,
walked and closed, Enter, the results, a record opened; then "zhong yi" in pinyin finds the same
record; a suggestion chosen with the arrows; the language switched on the results page keeps the
query. Also: the box works with scripts off, and the pages fit a phone. Leaves a screenshot of
the results at /tmp/search.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser import CHROMIUM, watch_problems
from tests.conftest import app_server
from tests.e2e.test_shell import _active, _tab_to

# A fixture, imported by name so that pytest finds it here.
from tests.search.test_pages import SIMPLIFIED, TRADITIONAL
from tests.search.test_pages import catalogue as catalogue

SCREENSHOT = Path("/tmp/search.png")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]


@pytest.fixture
def server(db_url: str, catalogue: dict[str, int]) -> Iterator[str]:
    with app_server() as base:
        yield base


def _hit_ids(page: Any) -> list[int]:
    hrefs = page.locator("ol.hits > li h2 a").evaluate_all("els => els.map(a => a.pathname)")
    return [int(h.rsplit("/", 1)[1]) for h in hrefs]


def _query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_search_in_chinese_and_pinyin_and_open_a_record_with_the_keyboard_alone(
    server: str, browser: Any, catalogue: dict[str, int]
) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watch_problems(page)
    page.goto(server + "/")
    box = page.locator("#site-q")
    listbox = page.get_by_role("listbox")

    # Tab to the header box; it is a combobox once the script has run.
    _tab_to(page, {"id": "site-q"})
    assert box.get_attribute("role") == "combobox"
    assert box.get_attribute("aria-expanded") == "false"
    page.keyboard.type("中医")
    listbox.wait_for(state="visible")
    assert box.get_attribute("aria-expanded") == "true"
    options = page.get_by_role("option")
    labels = options.evaluate_all(
        "els => els.map(o => o.querySelector('.suggestion-label').textContent)"
    )
    assert SIMPLIFIED in labels and TRADITIONAL in labels
    # Down and Up move the highlight while the focus stays in the box.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    second = options.nth(1)
    assert box.get_attribute("aria-activedescendant") == second.get_attribute("id")
    assert second.get_attribute("aria-selected") == "true"
    page.keyboard.press("ArrowUp")
    assert box.get_attribute("aria-activedescendant") == options.nth(0).get_attribute("id")
    assert _active(page)["id"] == "site-q"
    # Escape closes the list and keeps what was typed; Enter then searches for it.
    page.keyboard.press("Escape")
    listbox.wait_for(state="hidden")
    assert box.get_attribute("aria-expanded") == "false" and box.input_value() == "中医"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _query_of(page.url)["q"] == ["中医"]
    assert page.locator("h1").inner_text() == "“中医”的检索结果"
    ids = _hit_ids(page)
    assert catalogue[SIMPLIFIED] in ids and catalogue[TRADITIONAL] in ids
    summary = page.locator(f"ol.hits > li:has(a[href='/records/{catalogue[SIMPLIFIED]}'])")
    assert "1 个馆在架可借" in summary.inner_text() and "吉林省图书馆" in summary.inner_text()
    assert page.locator("aside#facets h3").first.inner_text() == "中外文"
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Open the record: Tab to its link, Enter.
    link = _tab_to(page, {"tag": "a", "text": SIMPLIFIED}, limit=80)
    assert link["outline"] != "none", "no visible focus on the result link"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/records/{catalogue[SIMPLIFIED]}")
    assert page.locator("h1").inner_text() == SIMPLIFIED

    # Pinyin from the record page's header box finds the same record.
    _tab_to(page, {"id": "site-q"})
    page.keyboard.type("zhong yi")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _query_of(page.url)["q"] == ["zhong yi"]
    assert catalogue[SIMPLIFIED] in _hit_ids(page) and catalogue[TRADITIONAL] in _hit_ids(page)

    # A suggestion chosen with the arrows and Enter searches for it.
    _tab_to(page, {"id": "site-q"})
    page.keyboard.press("Control+A")
    page.keyboard.type("zhong yi yao")
    listbox.wait_for(state="visible")
    options = page.get_by_role("option")
    labels = options.evaluate_all(
        "els => els.map(o => o.querySelector('.suggestion-label').textContent)"
    )
    assert TRADITIONAL in labels, labels
    for _ in range(labels.index(TRADITIONAL) + 1):
        page.keyboard.press("ArrowDown")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _query_of(page.url)["q"] == [TRADITIONAL]
    assert catalogue[TRADITIONAL] in _hit_ids(page)

    # The language switch keeps the query.
    page.goto(server + "/search?q=zhong+yi&facet=member:CN-B")
    before = _hit_ids(page)
    _tab_to(page, {"tag": "a", "text": "English"})
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("html").get_attribute("lang") == "en"
    query = _query_of(page.url)
    assert query["q"] == ["zhong yi"] and query["facet"] == ["member:CN-B"]
    assert page.locator("h1").inner_text() == "Results for zhong yi"
    assert page.locator("#site-q").input_value() == "zhong yi"
    assert _hit_ids(page) == before
    assert "Jilin Provincial Library" in page.locator("section.active-filters").inner_text()

    # A facet and the pager with the keyboard: the filter chip removes the filter again.
    _tab_to(page, {"tag": "a", "cls": "chip"}, limit=40)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "facet" not in _query_of(page.url)
    assert not problems, problems
    context.close()


def test_the_search_box_works_without_scripts(server: str, browser: Any) -> None:
    context = browser.new_context(
        locale="en-GB", java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.goto(server + "/members")
    _tab_to(page, {"id": "site-q"})
    assert page.locator("#site-q").get_attribute("role") is None  # no script: a plain box
    page.keyboard.type("中醫")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("h1").inner_text() == "Results for 中醫"
    titles = page.locator("ol.hits > li h2").all_inner_texts()
    assert SIMPLIFIED in titles and TRADITIONAL in titles
    context.close()


def test_the_search_pages_fit_a_phone(server: str, browser: Any) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 360, "height": 740})
    page = context.new_page()
    for path in ("/search", "/search?q=中医", "/search?q=year:1000-2100&page=2", "/"):
        page.goto(server + path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
        box = page.locator("#site-q").bounding_box()
        assert box is not None and box["width"] >= 200, path
    # On a phone the filters follow the results, and the link at the top jumps to them.
    page.goto(server + "/search?q=中医")
    page.get_by_role("link", name="筛选结果").click()
    assert page.locator("aside#facets").is_visible()
    context.close()
