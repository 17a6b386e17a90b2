"""The catalogue pages in a real browser (the real app under uvicorn, Debian's chromium):

a record page in Chinese and in English (screenshot at /tmp/record.png); the quality page's
re-submit done with the keyboard alone; a load's progress page followed by its script, and by
its meta refresh when scripts are off; the pages on a phone-sized screen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.catalog import service
from tests.browser import CHROMIUM, watch_problems
from tests.catalog.test_pages import CNMARC_GBK, load_lu_xun

# A fixture, imported by name so that pytest finds it here.
from tests.catalog.test_pages import libraries as libraries
from tests.conftest import PASSWORD, app_server
from tests.e2e.test_shell import _active, _tab_to

SCREENSHOT = Path("/tmp/record.png")  # also /tmp/quality.png and /tmp/upload-status.png

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]


@pytest.fixture
def catalogue(
    libraries: dict[str, str],
    session: Session,
    tmp_path: Path,
) -> dict[str, Any]:
    """鲁迅与浙东文化 held by CN-A (MARC 21 with 880s) and CN-B (CNMARC, a copy on loan); four
    GBK records of CN-A quarantined because they were loaded as UTF-8."""
    load_lu_xun(tmp_path)
    service.load_files(CLI, "CN-A", [CNMARC_GBK], workers=1, encoding="utf-8")
    cluster = service.cluster_of(session, "CN-B", ["CNB-0001"])[0]["cluster"]
    quarantined = [q["id"] for q in service.quarantine(session, "CN-A")["items"]]
    return {"cluster": cluster, "quarantined": quarantined}


@pytest.fixture
def server(db_url: str, catalogue: dict[str, Any]) -> Iterator[str]:
    with app_server() as base:
        yield base


def _sign_in_by_keyboard(page: Any, server: str, username: str, then: str) -> None:
    page.goto(f"{server}/login?next={then}")
    _tab_to(page, {"id": "username"})
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(server + then)


def test_record_page_in_chinese_and_english(
    server: str,
    browser: Any,
    catalogue: dict[str, Any],
) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watch_problems(page)
    page.goto(f"{server}/records/{catalogue['cluster']}")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "鲁迅与浙东文化"
    description = page.locator("section.record-description")
    assert "题名（罗马字）" in description.inner_text()
    assert "Lu Xun yu Zhe dong wen hua" in description.inner_text()
    holders = page.locator("li.holder")
    assert holders.count() == 2
    assert "吉林省图书馆" in holders.nth(1).inner_text() and "已借出" in holders.nth(1).inner_text()
    # Provenance is there but quiet: smaller and greyer than the value it belongs to.
    sizes = page.evaluate(
        """() => {
          const p = document.querySelector('.record-description .prov');
          const dd = p.closest('dd');
          const size = (el) => parseFloat(getComputedStyle(el).fontSize);
          return [size(p), size(dd)];
        }"""
    )
    assert sizes[0] < sizes[1]
    assert page.locator(".prov").first.inner_text().startswith("来自 ")
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.get_by_role("link", name="English").click()
    page.wait_for_url(f"**/records/{catalogue['cluster']}?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "鲁迅与浙东文化"
    assert page.get_by_role("heading", name="Holdings").is_visible()
    assert "Title (romanised)" in page.locator("section.record-description").inner_text()
    assert "On loan" in page.locator("li.holder").nth(1).inner_text()
    sources = page.locator("section.record-sources").inner_text()
    assert "First record of this cluster" in sources and "Same ISBN and title" in sources
    assert not problems, problems
    context.close()


def test_resubmit_from_the_quality_page_with_the_keyboard_alone(
    server: str,
    browser: Any,
    catalogue: dict[str, Any],
    session: Session,
) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watch_problems(page)
    _sign_in_by_keyboard(page, server, "a-staff", "/quality")
    qid = catalogue["quarantined"][0]
    assert page.locator(f"#q-{qid}").is_visible()

    # The first re-submit control is the first quarantined record's; its name says which.
    summary = _tab_to(page, {"tag": "summary"}, limit=60)
    assert summary["text"].split() == ["重新提交", "记录", str(qid)]
    assert summary["outline"] != "none", "no visible focus on the re-submit control"
    page.keyboard.press("Enter")  # opens the form
    assert page.locator(f"#q-{qid} details").get_attribute("open") is not None
    page.keyboard.press("Tab")
    assert _active(page)["id"] == f"enc-{qid}"
    page.keyboard.type("GBK")  # type-ahead picks the option
    assert page.locator(f"#enc-{qid}").input_value() == "gbk"
    page.keyboard.press("Tab")
    assert _active(page)["id"] == f"file-{qid}"  # no file: re-submitted as it was
    page.screenshot(path="/tmp/quality.png", full_page=True)
    page.keyboard.press("Tab")
    button = _active(page)
    assert button["tag"] == "button" and button["text"] == f"重新提交记录 {qid}", button
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/quality?outcome=loaded&item={qid}#quarantine")
    assert page.locator("[role=status]").inner_text() == (
        f"隔离记录 {qid} 已装载，不再处于隔离状态。"
    )
    assert page.locator(f"#q-{qid}").count() == 0
    assert page.locator(".quarantine-table tbody tr").count() == 3
    session.expire_all()
    assert service.quarantine(session, "CN-A")["total"] == 3
    assert not problems, problems
    context.close()


@pytest.mark.parametrize("scripts", [True, False], ids=["script", "no-script"])
def test_load_progress_page_follows_the_load(
    server: str,
    browser: Any,
    session: Session,
    tmp_path: Path,
    scripts: bool,
) -> None:
    """A queued load; the page is open; the load runs: the page shows it finished by itself —
    by polling the API with the script, by its meta refresh without."""
    from tests.catalog.test_ingest import LOC

    uploads = tmp_path / "uploads"
    batch = service.queue_upload(
        session, CLI, "CN-A", "loc-60.mrc", LOC.read_bytes(), upload_dir=uploads
    )
    session.commit()
    context = browser.new_context(
        locale="en-GB", viewport={"width": 1280, "height": 900}, java_script_enabled=scripts
    )
    page = context.new_page()
    problems = watch_problems(page)
    _sign_in_by_keyboard(page, server, "a-staff", f"/catalog/uploads/{batch.id}")
    status = page.locator("[data-field=status]")
    assert status.inner_text() == "Waiting to start"
    polls: list[str] = []
    loads: list[str] = []
    page.on(
        "request", lambda r: polls.append(r.url) if "/api/v1/catalog/uploads/" in r.url else None
    )
    page.on("load", lambda p: loads.append(p.url))
    # The page keeps waiting while nothing happens (a refresh or two), then the load runs.
    page.wait_for_timeout(2500)
    assert status.inner_text() == "Waiting to start"
    service.run_batch(batch.id, uploads)
    page.wait_for_function(
        "() => document.querySelector('[data-field=status]').textContent.trim() === 'Finished'",
        timeout=15000,
    )
    assert page.locator("[data-count=read]").inner_text() == "60"
    assert page.locator("[data-count=added]").inner_text() == "60"
    assert page.evaluate("document.querySelector('progress').value") == LOC.stat().st_size
    if scripts:
        # The script asked the API, and reloaded the page once, when the load had finished.
        assert polls and all(u.endswith(f"/api/v1/catalog/uploads/{batch.id}") for u in polls)
        assert len(loads) == 1
        page.screenshot(path="/tmp/upload-status.png", full_page=True)
    else:
        # No script ran: the meta refresh reloaded the page while it waited.
        assert not polls and len(loads) >= 2
    assert not problems, problems
    context.close()


def test_catalogue_pages_fit_a_phone_screen(
    server: str,
    browser: Any,
    catalogue: dict[str, Any],
) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 360, "height": 740})
    page = context.new_page()
    _sign_in_by_keyboard(page, server, "a-staff", "/quality")
    for path in (f"/records/{catalogue['cluster']}", "/quality", "/catalog/upload"):
        page.goto(server + path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
    context.close()
