"""One copy request in a real browser (the real app under uvicorn, Debian's chromium): a reader
asks for a chapter from a record page, the lending library's staff (a second browser context)
answer "will supply" and upload a small PDF, and the reader downloads the stamped document
from "my requests"; pypdf checks that every page carries the stamp."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.ill.models import IllRequest
from tests.browser import CHROMIUM
from tests.conftest import PASSWORD, app_server
from tests.ill import world
from tests.ill.world import World

SCREENSHOTS = Path("/tmp")  # ill-queue.png and ill-mine.png, to look at

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]


@pytest.fixture
def w(session: Session, tmp_path: Path) -> World:
    return world.build(
        session,
        tmp_path,
        {"zh0": {"CN-GDZSL": ["available"]}},
        readers=("CN-GZUCM",),
        staff=("CN-GDZSL",),
    )


@pytest.fixture
def server(db_url: str, w: World) -> Iterator[str]:
    with app_server() as base:
        yield base


def _pdf(pages: int = 2) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for n in range(pages):
        c.drawString(100, 700, f"Chapter three, page {n + 1}")
        c.showPage()
    c.save()
    return buf.getvalue()


def _sign_in(page: Any, server: str, username: str, then: str) -> None:
    page.goto(f"{server}/login?next={then}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url(server + then)


def test_a_copy_from_request_to_the_stamped_pdf(
    server: str, browser: Any, session: Session, w: World, tmp_path: Path
) -> None:
    cluster = w.clusters["zh0"]
    reader_ctx = browser.new_context(locale="en-GB", accept_downloads=True)
    reader = reader_ctx.new_page()
    _sign_in(reader, server, "gzucm-reader", f"/records/{cluster}")
    reader.get_by_role("link", name="Request this").click()
    reader.wait_for_url(f"{server}/requests/new?cluster={cluster}")
    reader.get_by_label("A copy of some pages").check()
    reader.get_by_label("Article or chapter title").fill("Chapter three")
    reader.get_by_label("Pages (copies)").fill("45-46")
    reader.get_by_role("button", name="Send the request").click()
    reader.wait_for_url(f"{server}/requests/mine?created=*")
    rid = session.scalar(
        select(IllRequest.id).where(IllRequest.reader_id == w.users["gzucm-reader"])
    )
    assert rid is not None
    item = reader.locator(f"#request-{rid}")
    assert "Asked a library" in item.inner_text()

    staff_ctx = browser.new_context(locale="zh-CN")
    staff = staff_ctx.new_page()
    _sign_in(staff, server, "gdzsl-staff", "/queues/lending")
    row = staff.locator(f"#request-{rid}")
    row.get_by_role("button", name="将提供").click()
    staff.wait_for_selector(".ill-results .ill-ok")
    staff.screenshot(path=str(SCREENSHOTS / "ill-queue.png"), full_page=True)
    assert "将提供：已完成" in staff.locator(".ill-results").inner_text()
    staff.locator(f"#request-{rid}").get_by_role("link", name="上传文献").click()
    staff.wait_for_url(f"{server}/queues/lending/{rid}/document")
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(_pdf())
    staff.set_input_files("#doc-file", str(pdf))
    staff.get_by_role("button", name="上传并传递").click()
    staff.wait_for_url(f"{server}/queues/lending?done={rid}*")

    reader.goto(f"{server}/requests/mine")
    item = reader.locator(f"#request-{rid}")
    assert "Supplied" in item.inner_text()
    reader.screenshot(path=str(SCREENSHOTS / "ill-mine.png"), full_page=True)
    with reader.expect_download() as info:
        item.get_by_role("button", name="Download the document").click()
    target = tmp_path / "got.pdf"
    info.value.save_as(str(target))
    doc = PdfReader(str(target))
    assert len(doc.pages) == 2
    for page in doc.pages:
        text = page.extract_text()
        assert f"ILL request {rid}" in text and "Card gzucm-reader" in text
    reader_ctx.close()
    staff_ctx.close()
