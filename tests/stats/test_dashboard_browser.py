"""The dashboard in a real browser (uvicorn + Debian's chromium): the chart is served and drawn
under the pages' content security policy, the filters work, both languages. Leaves a screenshot
at /tmp/stats-service.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia import db as dbmod
from consortia.accounts import service as accounts
from consortia.accounts.models import User
from consortia.accounts.roles import Role
from consortia.web.deps import SESSION_COOKIE
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import app_server
from tests.stats.test_reports import BOOKS, make_history
from tests.stats.world import build

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]


@pytest.fixture
def server(db_url: str, session: Session, tmp_path: Path, users: dict[Role, str]) -> Iterator[str]:
    make_history(session, build(session, tmp_path, BOOKS))
    with app_server(run_migrations=False) as base:
        yield base


def _signed_in_as(username: str) -> str:
    with dbmod.session_scope() as s:
        user = s.scalar(select(User).where(User.username == username))
        assert user is not None
        return accounts.open_session(s, user).cookie_value


def test_dashboard_draws_its_chart_and_filters(server: str, users: dict[Role, str]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
            context.add_cookies(
                [
                    {
                        "name": SESSION_COOKIE,
                        "value": _signed_in_as(users[Role.library_staff]),
                        "url": server,
                    }
                ]
            )
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.goto(server + "/stats/service?from=2016-10-17&to=2016-10-23")
            page.wait_for_load_state("networkidle")
            assert page.locator("h1").inner_text() == "服务统计表"
            chart = page.locator("figure.chart img")
            drawn = chart.evaluate("img => img.complete && img.naturalWidth > 0")
            assert drawn, "the chart did not load"
            rows = page.locator("#table-service tbody tr")
            assert rows.count() == 2
            assert "广州中医药大学" in rows.nth(0).inner_text()
            assert "66.7" in rows.nth(0).inner_text()
            page.screenshot(path="/tmp/stats-service.png", full_page=True)

            # English, then one library chosen in the form.
            page.get_by_role("link", name="English").click()
            page.wait_for_load_state("networkidle")
            assert page.locator("h1").inner_text() == "Service table"
            page.select_option("#f-member", "CN-SZLIB")
            page.get_by_role("button", name="Show").click()
            page.wait_for_url("**member=CN-SZLIB**")
            page.wait_for_load_state("networkidle")
            rows = page.locator("#table-service tbody tr")
            assert rows.count() == 1 and "Shenzhen Library" in rows.nth(0).inner_text()
            assert page.locator("figure.chart img").evaluate("i => i.naturalWidth > 0")

            # A bad period is shown beside the form, in the page's language.
            page.fill("#f-to", "2016-10-01")
            page.get_by_role("button", name="Show").click()
            page.wait_for_load_state("networkidle")
            assert "is before from" in page.locator("#stats-error").inner_text()
            assert page.locator("#f-to").get_attribute("aria-invalid") == "true"
            # Nothing failed but that refused period (its 422 and the console's note of it).
            assert not [p for p in problems if "422" not in p], problems
        finally:
            browser.close()
