"""The web shell in a real browser: the real app under uvicorn, Debian's chromium via Playwright.

Loads the home page in Chinese, switches to English and back, signs in and out with the keyboard
alone, and checks the layout holds on a phone-sized screen. Leaves a screenshot at /tmp/home.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from consortia.accounts.roles import Role
from consortia.members.models import MemberStatus, MemberType, Region, Sector
from tests.browser import CHROMIUM, watch_problems
from tests.conftest import PASSWORD, add_region_and_member, app_server

SCREENSHOT = Path("/tmp/home.png")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]


@pytest.fixture
def demo_members(session: Session, users: dict[Role, str]) -> None:
    centre = add_region_and_member(
        session,
        "CN-GDZSL",
        region="guangdong",
        name_zh="广东省立中山图书馆",
        name_en="Sun Yat-sen Library of Guangdong Province",
        type=MemberType.public,
        sector=Sector.culture,
        is_centre=True,
    )
    for code, zh, en, extra in [
        ("CN-GZUCM", "广州中医药大学图书馆", "Guangzhou Univ. of Chinese Medicine Library", {}),
        ("CN-SYSU", "中山大学图书馆", "Sun Yat-sen University Library", {}),
        ("CN-SZLIB", "深圳图书馆", "Shenzhen Library", {"status": MemberStatus.suspended}),
    ]:
        add_region_and_member(
            session, code, region="guangdong", name_zh=zh, name_en=en, centre_id=centre.id, **extra
        )
    add_region_and_member(
        session,
        "CN-JLPL",
        region="jilin",
        name_zh="吉林省图书馆",
        name_en="Jilin Provincial Library",
    )
    names = {"guangdong": ("广东", "Guangdong"), "jilin": ("吉林", "Jilin")}
    for region in session.query(Region):
        if region.code in names:
            region.name_zh, region.name_en = names[region.code]
    session.commit()


@pytest.fixture
def server(db_url: str, demo_members: None) -> Iterator[str]:
    """The real app under uvicorn on a free port, against the test database."""
    with app_server() as base:
        yield base


def _active(page: Any) -> dict[str, str]:
    result: dict[str, str] = page.evaluate(
        """() => {
          const el = document.activeElement;
          const style = getComputedStyle(el);
          return {tag: el.tagName.toLowerCase(), id: el.id || '', cls: el.className || '',
                  text: (el.innerText || el.value || '').trim(), type: el.type || '',
                  outline: style.outlineStyle, top: String(el.getBoundingClientRect().top)};
        }"""
    )
    return result


def _tab_to(page: Any, want: dict[str, str], limit: int = 40) -> dict[str, str]:
    """Press Tab until the focused element matches every key of ``want``."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        active = _active(page)
        seen.append(f"{active['tag']}#{active['id']}:{active['text'][:20]}")
        if all(active.get(k) == v for k, v in want.items()):
            return active
    raise AssertionError(f"Tab never reached {want}; focus went {seen}")


def test_shell_language_switch_and_keyboard_sign_in(server: str, browser: Any) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watch_problems(page)

    # Chinese by the browser's Accept-Language.
    page.goto(server + "/")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "广东省图书馆联盟"
    centre = page.locator("li", has_text="广东省立中山图书馆")
    assert "中心馆" in centre.inner_text()
    assert "已暂停" in page.locator("li", has_text="深圳图书馆").inner_text()
    nav = page.locator("nav.site-nav").inner_text()
    assert "首页" in nav and "成员馆" in nav
    # The stylesheet really applied: the header is the brand colour, the CJK face is first.
    assert page.evaluate(
        "getComputedStyle(document.querySelector('.site-header')).backgroundColor"
    ) == ("rgb(11, 93, 122)")
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith(
        '"Noto Sans CJK SC"'
    )
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # zh -> en -> zh with the language switch; the choice sticks (cookie) on the next page.
    page.get_by_role("link", name="English").click()
    page.wait_for_url("**/?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Guangdong Library Consortium"
    assert "Regional centre" in page.locator("li", has_text="Sun Yat-sen Library").inner_text()
    page.get_by_role("link", name="Members", exact=True).click()
    page.wait_for_url("**/members")
    assert page.locator("h1").inner_text() == "Member libraries"
    page.get_by_role("link", name="中文").click()
    page.wait_for_url("**/members?lang=zh-CN")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "成员馆"

    # Keyboard only from here: the first Tab reaches the skip link, which becomes visible.
    page.goto(server + "/")
    page.keyboard.press("Tab")
    skip = _active(page)
    assert skip["cls"] == "skip-link" and skip["text"] == "跳到正文"
    assert float(skip["top"]) >= 0, "the focused skip link is off screen"
    page.keyboard.press("Enter")
    assert _active(page)["id"] == "main"

    page.goto(server + "/")
    link = _tab_to(page, {"tag": "a", "text": "登录"})
    assert link["outline"] != "none", "no visible focus on the sign-in link"
    page.keyboard.press("Enter")
    page.wait_for_url("**/login?next=/")
    _tab_to(page, {"id": "username"})
    page.keyboard.type("staff")
    page.keyboard.press("Tab")
    assert _active(page)["id"] == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(server + "/")
    who = page.locator("header .who").inner_text()
    assert "staff" in who and "馆员" in who

    _tab_to(page, {"tag": "button", "text": "退出登录"})
    # Sign-out posts and redirects back to "/": wait for that navigation, not for the URL
    # (the page is already at "/", so a URL wait could return before signing out).
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert page.locator("header .who").count() == 0
    assert page.get_by_role("link", name="登录").is_visible()

    assert not problems, problems
    context.close()


def test_shell_fits_a_phone_screen(server: str, browser: Any) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 360, "height": 740})
    page = context.new_page()
    for path in ("/", "/members", "/members/CN-GDZSL", "/login"):
        page.goto(server + path)
        # No sideways scrolling of the page; the wide members table scrolls in its own box.
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
    context.close()
