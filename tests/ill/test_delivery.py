"""Electronic delivery: the lender's upload (checked, stamped, shipped), the reader's expiring,
count-limited link, every download logged, and the copyright limits checked before routing.

Real PDFs are drawn with reportlab; stamps are read back with pypdf. The consortium is the demo's
(tests/ill/world.py): a reader at CN-GZUCM asks for copies of a book only CN-SYSU holds.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI, Principal
from consortia.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from consortia.events.models import Event
from consortia.ill import delivery
from consortia.ill import service as ill
from consortia.ill.models import DeliveredDocument, DownloadLink, DownloadLog, IllRequest
from consortia.ill.service import NewRequest
from consortia.ill.workdays import CHINA
from consortia.settings import reset_settings
from tests.conftest import login
from tests.ill import world
from tests.ill.world import World

BOOKS = {
    "zh0": {"CN-SYSU": ["available"]},  # 中医药学概论, 412 pages
    "zh1": {"CN-SYSU": ["available"]},
}
READER = "gzucm-reader"
LENDER_STAFF = "sysu-staff"


@pytest.fixture
def w(session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    # Temporary upload files go here, so that a test can see none is left behind.
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    return world.build(
        session,
        tmp_path,
        BOOKS,
        readers=("CN-GZUCM", "CN-SYSU"),
        staff=("CN-SYSU", "CN-GZUCM"),
    )


def make_pdf(pages: int, *, label: str = "Chapter", size: tuple[float, float] = A4) -> bytes:
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=size)
    for n in range(1, pages + 1):
        canvas.setFont("Helvetica", 14)
        canvas.drawString(72, size[1] - 100, f"{label} page {n} of {pages}")
        canvas.drawString(72, size[1] - 130, "Zang-fu theory and the five phases.")
        canvas.showPage()
    canvas.save()
    return buf.getvalue()


def encrypted_pdf() -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(2))))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def copy_request(
    session: Session, w: World, pages: str = "45-49", key: str = "zh0", **kw: Any
) -> int:
    at = kw.pop("at", None)
    new = NewRequest(
        service_type="Copy",
        cluster_id=w.clusters[key],
        article_title=kw.pop("article_title", "第三章 脏腑"),
        pages=pages,
        **kw,
    )
    result = delivery.create_request(session, w.readers["CN-GZUCM"], new, at=at)
    session.commit()
    assert result.lender_id == w.ids["CN-SYSU"]
    return result.request_id


def lender(w: World) -> Principal:
    return w.staff["CN-SYSU"]


def reader(w: World) -> Principal:
    return w.readers["CN-GZUCM"]


def actions(session: Session, request_id: int) -> list[str]:
    session.expire_all()
    return [
        e.action
        for e in session.scalars(
            select(Event)
            .where(Event.entity_type == "ill_request", Event.entity_id == str(request_id))
            .order_by(Event.id)
        )
    ]


def state(session: Session, request_id: int) -> str:
    session.expire_all()
    row = session.get(IllRequest, request_id)
    assert row is not None
    return row.state


def stored_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "uploads" / "documents"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def upload_http(client: TestClient, csrf: str, request_id: int, body: bytes, name: str = "a.pdf"):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/requests/{request_id}/document",
        files={"file": (name, body, "application/pdf")},
        data={"source_pages": "45-49"},
        headers={"X-CSRF-Token": csrf},
    )


def signed_in(app: Any, username: str) -> tuple[TestClient, str]:
    c = TestClient(app, headers={"accept-language": "en"})
    c.__enter__()
    return c, login(c, username)


# ----------------------------------------------------------------------------- the whole path


def test_lender_uploads_reader_downloads_stamped_pages_k_times_then_410(
    session: Session, w: World, app: Any, tmp_path: Path
) -> None:
    ill.set_policy(session, CLI, max_downloads=2, link_valid_days=3)
    session.commit()
    rid = copy_request(session, w)
    pdf = make_pdf(5)

    staff, csrf = signed_in(app, LENDER_STAFF)
    r = upload_http(staff, csrf, rid, pdf)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["pages"] == 5 and body["size_bytes"] == len(pdf) and body["state"] == "Shipped"
    assert state(session, rid) == "Shipped"
    doc = session.scalar(select(DeliveredDocument).where(DeliveredDocument.request_id == rid))
    assert doc is not None and doc.pages == 5 and doc.source_pages == "45-49"
    assert Path(doc.file_path).read_bytes() == pdf  # the original is kept as delivered
    assert len(stored_files(tmp_path)) == 2
    assert "ill.document.uploaded" in actions(session, rid)
    # The lender cannot fetch the reader's link.
    assert staff.get(f"/api/v1/requests/{rid}/document/link").status_code == 403

    rd, _ = signed_in(app, READER)
    r = rd.get(f"/api/v1/requests/{rid}/document/link")
    assert r.status_code == 200, r.text
    link = r.json()
    assert link["state"] == "active" and link["max_downloads"] == 2 and link["downloads_left"] == 2
    url = link["url"]
    assert url and "/download/" in url
    token = url.rsplit("/", 1)[1]
    # Shown once: the token is stored hashed and a second look shows the status only.
    again = rd.get(f"/api/v1/requests/{rid}/document/link").json()
    assert again["url"] is None and again["state"] == "active"
    session.expire_all()
    stored = session.scalar(select(DownloadLink).where(DownloadLink.request_id == rid))
    assert stored is not None and token not in stored.token_hash and len(stored.token_hash) == 64

    today = dt.datetime.now(CHINA).date().isoformat()
    for n in (1, 2):
        r = rd.get(f"/download/{token}")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf"
        stamped = PdfReader(io.BytesIO(r.content))
        assert len(stamped.pages) == 5
        for i, page in enumerate(stamped.pages, 1):
            text = page.extract_text()
            assert f"Chapter page {i} of 5" in text  # the scan is still there
            assert f"Card {READER}" in text
            assert f"ILL request {rid}" in text
            assert today in text
        if n == 1:
            # The reader's first download confirms the copy: the request is complete.
            assert state(session, rid) == "Completed"
    r = rd.get(f"/download/{token}")
    assert r.status_code == 410
    assert r.json()["detail"] == "The download link was used 2 times, the most allowed"
    assert rd.get(f"/api/v1/requests/{rid}/document/link").json()["state"] == "exhausted"

    session.expire_all()
    log = session.scalars(select(DownloadLog).order_by(DownloadLog.id)).all()
    assert [x.outcome for x in log] == ["ok", "ok", "exhausted"]
    assert {x.user_id for x in log} == {w.users[READER]}
    assert all(x.address == "testclient" for x in log)
    acts = actions(session, rid)
    assert acts.count("ill.document.downloaded") == 2
    assert acts.count("ill.document.download_refused") == 1
    assert acts.count("ill.link.created") == 1
    assert "ill.request.received" in acts
    staff.__exit__(None, None, None)
    rd.__exit__(None, None, None)


def test_download_needs_the_reader_signed_in_and_logs_every_refusal(
    session: Session, w: World, app: Any
) -> None:
    rid = copy_request(session, w)
    delivery.upload(session, lender(w), rid, make_pdf(3))
    session.commit()
    status = delivery.link_for(session, reader(w), rid)
    session.commit()
    assert status.token is not None

    anon = TestClient(app)
    r = anon.get(f"/download/{status.token}")
    assert r.status_code == 401
    other, _ = signed_in(app, "sysu-reader")
    r = other.get(f"/download/{status.token}")
    assert r.status_code == 403
    assert r.json()["detail"] == "This download link is for another reader"
    # The other reader does not even see the request.
    assert other.get(f"/api/v1/requests/{rid}/document/link").status_code == 404
    assert anon.get("/download/not-a-token").status_code == 404
    # The borrowing library's staff may fetch it for the reader (e.g. to print it).
    desk, _ = signed_in(app, "gzucm-staff")
    assert desk.get(f"/download/{status.token}").status_code == 200

    session.expire_all()
    log = session.scalars(select(DownloadLog).order_by(DownloadLog.id)).all()
    assert [(x.outcome, x.user_id) for x in log] == [
        ("unauthenticated", None),
        ("forbidden", w.users["sysu-reader"]),
        ("ok", w.users["gzucm-staff"]),
    ]
    session.expire_all()
    link = session.scalar(select(DownloadLink))
    assert link is not None and link.downloads == 1  # refusals do not count
    # Staff downloading does not confirm receipt on the reader's behalf.
    assert state(session, rid) == "Shipped"
    for c in (other, desk):
        c.__exit__(None, None, None)


def test_link_expires_n_days_after_the_upload(session: Session, w: World) -> None:
    ill.set_policy(session, CLI, link_valid_days=3, max_downloads=10)
    session.commit()
    rid = copy_request(session, w)
    t0 = dt.datetime.now(dt.UTC)
    delivery.upload(session, lender(w), rid, make_pdf(2), at=t0)
    session.commit()
    # The reader asks for the link two days later: the clock started at the upload.
    status = delivery.link_for(session, reader(w), rid, at=t0 + dt.timedelta(days=2))
    session.commit()
    assert status.expires_at == t0 + dt.timedelta(days=3)
    assert status.token is not None
    before = t0 + dt.timedelta(days=3) - dt.timedelta(seconds=1)
    ok = delivery.download(session, reader(w), status.token, at=before)
    session.commit()
    assert ok.outcome == "ok" and ok.path is not None and ok.path.exists()
    late = delivery.download(session, reader(w), status.token, at=t0 + dt.timedelta(days=3))
    session.commit()
    assert late.outcome == "expired"
    assert late.error is not None and late.error.status == 410
    day = (t0 + dt.timedelta(days=3)).astimezone(CHINA).date().isoformat()
    assert late.error.render() == f"The download link expired on {day}"
    shown = delivery.link_for(session, reader(w), rid, at=t0 + dt.timedelta(days=4))
    assert shown.state == "expired" and shown.token is None  # no new link past the expiry
    # The service's expiry timer marks it too; the link stays expired.
    assert (
        ill.expire_links(
            lambda: type(session)(bind=session.get_bind()), now=t0 + dt.timedelta(days=4)
        )
        == 1
    )
    session.expire_all()
    again = delivery.download(session, reader(w), status.token, at=before)
    assert again.outcome == "expired"


def test_reissued_link_keeps_expiry_and_count_and_the_old_one_stops(
    session: Session, w: World
) -> None:
    ill.set_policy(session, CLI, link_valid_days=5, max_downloads=3)
    session.commit()
    rid = copy_request(session, w)
    delivery.upload(session, lender(w), rid, make_pdf(2))
    first = delivery.link_for(session, reader(w), rid)
    assert first.token is not None
    assert delivery.download(session, reader(w), first.token).outcome == "ok"
    session.commit()
    second = delivery.reissue_link(session, reader(w), rid)
    session.commit()
    assert second.token is not None and second.token != first.token
    assert second.expires_at == first.expires_at and second.downloads == 1
    old = delivery.download(session, reader(w), first.token)
    assert old.outcome == "revoked" and old.error is not None and old.error.status == 410
    assert delivery.download(session, reader(w), second.token).outcome == "ok"
    assert delivery.download(session, reader(w), second.token).outcome == "ok"
    assert delivery.download(session, reader(w), second.token).outcome == "exhausted"
    session.commit()
    with pytest.raises(Conflict):
        delivery.reissue_link(session, reader(w), rid)


# ----------------------------------------------------------------------------- bad uploads


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "file: the file is empty"),
        (b"Hello, this is a Word document, honestly.\n" * 10, "file: not a PDF"),
        (b"%PDF-1.7\n this is not really a PDF\n%%EOF\n", "file: the PDF cannot be read"),
        ("encrypted", "file: the PDF is encrypted; upload it without a password"),
        ("big", "file: larger than the limit of 0.02 MB"),
        ("sixty", "file: 60 pages, over the limit of 50 pages per request"),
    ],
)
def test_bad_uploads_are_refused_with_the_reason_and_nothing_is_stored(
    session: Session,
    w: World,
    app: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: Any,
    detail: str,
) -> None:
    rid = copy_request(session, w)
    if body == "encrypted":
        body = encrypted_pdf()
    elif body == "big":
        monkeypatch.setenv("CONSORTIA_MAX_UPLOAD_BYTES", str(20 * 1024))
        reset_settings()
        body = make_pdf(40, label="A long chapter with many words on every page " * 2)
        assert len(body) > 20 * 1024
    elif body == "sixty":
        body = make_pdf(60)
    before = actions(session, rid)
    staff, csrf = signed_in(app, LENDER_STAFF)
    r = upload_http(staff, csrf, rid, body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(detail)
    assert r.json()["field"] == "file"
    # Nothing changed: no document, no file, the request still waits at the lender.
    assert session.scalar(select(func.count()).select_from(DeliveredDocument)) == 0
    assert stored_files(tmp_path) == []
    assert list((tmp_path / "spool").glob("consortia-upload-*")) == []
    assert state(session, rid) == "Sent"
    assert actions(session, rid) == before
    # In Chinese too.
    r = staff.post(
        f"/api/v1/requests/{rid}/document?lang=zh-CN",
        files={"file": ("a.pdf", body, "application/pdf")},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422 and "file：" in r.json()["detail"]
    staff.__exit__(None, None, None)


def test_only_the_current_lender_uploads_and_only_for_a_copy(
    session: Session, w: World, app: Any
) -> None:
    rid = copy_request(session, w)
    with pytest.raises(Forbidden):
        delivery.upload(session, w.staff["CN-GZUCM"], rid, make_pdf(1))
    with pytest.raises(NotFound):  # a reader cannot see another's request at all
        delivery.upload(session, w.readers["CN-SYSU"], rid, make_pdf(1))
    loan = ill.create_request(
        session, reader(w), NewRequest(service_type="Loan", cluster_id=w.clusters["zh1"])
    )
    session.commit()
    with pytest.raises(Conflict) as refused:
        delivery.upload(session, lender(w), loan.request_id, make_pdf(1))
    assert refused.value.render() == (
        f"Request {loan.request_id} is a loan; only copies are delivered as documents"
    )
    session.rollback()
    # Before a delivery there is no link; after one, a second upload is refused by the state.
    with pytest.raises(NotFound):
        delivery.link_for(session, reader(w), rid)
    delivery.upload(session, lender(w), rid, make_pdf(2))
    session.commit()
    with pytest.raises(Conflict):
        delivery.upload(session, lender(w), rid, make_pdf(2))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(DeliveredDocument)) == 1
    staff, csrf = signed_in(app, "gzucm-staff")
    assert upload_http(staff, csrf, rid, make_pdf(1)).status_code == 403
    staff.__exit__(None, None, None)


def test_pages_of_every_size_and_rotation_are_stamped(session: Session, w: World) -> None:
    buf = io.BytesIO()
    canvas = Canvas(buf)
    for size in (A4, landscape(A4), (300.0, 400.0)):
        canvas.setPageSize(size)
        canvas.setFont("Helvetica", 12)
        canvas.drawString(20, 40, "page text")
        canvas.showPage()
    canvas.save()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(buf.getvalue())))
    writer.pages[2].rotate(90)
    out = io.BytesIO()
    writer.write(out)
    rid = copy_request(session, w)
    delivery.upload(session, lender(w), rid, out.getvalue())
    session.commit()
    doc = session.scalar(select(DeliveredDocument))
    assert doc is not None and doc.stamped_path is not None
    stamped = PdfReader(doc.stamped_path)
    assert [round(float(p.mediabox.width)) for p in stamped.pages[:2]] == [595, 842]
    for page in stamped.pages:
        assert f"ILL request {rid}" in page.extract_text()


# ----------------------------------------------------------------------------- copyright limits


def test_a_copy_over_the_pages_per_request_is_refused_before_routing(
    session: Session, w: World
) -> None:
    with pytest.raises(Invalid) as refused:
        copy_request(session, w, pages="1-60")
    assert refused.value.field == "pages"
    assert refused.value.render() == "pages: 60 pages, over the limit of 50 pages per request"
    session.rollback()
    assert session.scalar(select(func.count()).select_from(IllRequest)) == 0
    # The office raises the limit: the same request is routed.
    ill.set_policy(session, CLI, max_pages_per_request=60)
    session.commit()
    rid = copy_request(session, w, pages="1-60")
    assert state(session, rid) == "Sent"


def test_the_share_of_one_book_per_reader_per_week_is_enforced(session: Session, w: World) -> None:
    t0 = dt.datetime(2024, 3, 5, 2, 0, tzinfo=dt.UTC)
    # 中医药学概论 has 412 pages: 20% is 82.4 pages a week.
    assert delivery.book_pages(session, w.clusters["zh0"]) == 412
    copy_request(session, w, pages="1-45", at=t0)
    with pytest.raises(Invalid) as refused:
        copy_request(
            session, w, pages="100-140", article_title="第五章", at=t0 + dt.timedelta(days=2)
        )
    assert refused.value.render() == (
        "pages: 86 of the 412 pages of this book in seven days (20.9%), over the limit of 20% "
        "of a book per reader per week"
    )
    session.rollback()
    # Another book is not counted, nor is another reader.
    copy_request(session, w, pages="100-140", key="zh1", at=t0 + dt.timedelta(days=2))
    other = delivery.check_limits(session, w.users["sysu-reader"], 41, w.clusters["zh0"], t0)
    assert other.max_book_share_percent == 20
    # Within the share: 37 more pages make 82 of 412 (19.9%).
    copy_request(session, w, pages="100-136", article_title="第五章", at=t0 + dt.timedelta(days=2))
    # A week after the first, its pages no longer count (but the second's 37 still do).
    copy_request(session, w, pages="200-244", article_title="第八章", at=t0 + dt.timedelta(days=7))


def test_delivered_pages_count_against_the_share_and_cancelled_requests_do_not(
    session: Session, w: World
) -> None:
    # The citation said 5 pages; the lender delivered 40 (the whole chapter).
    rid = copy_request(session, w, pages="45-49")
    delivery.upload(session, lender(w), rid, make_pdf(40))
    session.commit()
    assert (
        delivery.pages_received(
            session, w.users[READER], w.clusters["zh0"], dt.datetime.now(dt.UTC)
        )
        == 40
    )
    with pytest.raises(Invalid):
        copy_request(session, w, pages="300-355", article_title="第九章")  # 56 > 50 per request
    session.rollback()
    with pytest.raises(Invalid) as refused:
        copy_request(session, w, pages="300-344", article_title="第九章")  # 40 + 45 = 85
    assert "85 of the 412 pages" in refused.value.render()
    session.rollback()
    cancelled = copy_request(session, w, pages="1-40", key="zh1")
    ill.cancel(session, reader(w), cancelled, reason="no longer needed")
    session.commit()
    assert (
        delivery.pages_received(
            session, w.users[READER], w.clusters["zh1"], dt.datetime.now(dt.UTC)
        )
        == 0
    )


def test_count_pages() -> None:
    assert delivery.count_pages("45-60") == 16
    assert delivery.count_pages("3, 7-9") == 4
    assert delivery.count_pages("pp. 12–14") == 3
    assert delivery.count_pages("12") == 1
    assert delivery.count_pages("") is None
    assert delivery.count_pages("xii-xv") is None
    assert delivery.count_pages("60-45") is None


def test_sign_in_is_asked_of_a_browser_opening_the_link(
    session: Session, w: World, app: Any
) -> None:
    rid = copy_request(session, w)
    delivery.upload(session, lender(w), rid, make_pdf(1))
    status = delivery.link_for(session, reader(w), rid)
    session.commit()
    r = TestClient(app).get(f"/download/{status.token}", headers={"accept": "text/html"})
    assert r.status_code == 401 and "text/html" in r.headers["content-type"]
    refused = delivery.download(session, None, status.token or "")
    assert isinstance(refused.error, Unauthorized) and refused.path is None


def test_limits_are_checked_on_a_workers_connection_too(session: Session, w: World) -> None:
    # The service's create_request also runs on a bare connection (replays, member systems).
    t0 = dt.datetime(2024, 3, 5, 2, 0, tzinfo=dt.UTC)
    copy_request(session, w, pages="1-45", at=t0)
    with session.get_bind().connect() as conn:  # type: ignore[union-attr]
        assert delivery.pages_received(conn, w.users[READER], w.clusters["zh0"], t0) == 45
        with pytest.raises(Invalid) as refused:
            delivery.check_limits(conn, w.users[READER], 41, w.clusters["zh0"], t0)
        assert "86 of the 412 pages" in refused.value.render()
        policy = delivery.check_limits(conn, w.users[READER], 37, w.clusters["zh0"], t0)
        assert policy.max_book_share_percent == 20


def test_files_are_removed_once_no_link_can_be_used(
    session: Session, w: World, tmp_path: Path
) -> None:
    ill.set_policy(session, CLI, link_valid_days=3, max_downloads=1)
    session.commit()
    t0 = dt.datetime.now(dt.UTC)
    used = copy_request(session, w)
    delivery.upload(session, lender(w), used, make_pdf(2), at=t0)
    idle = copy_request(session, w, key="zh1")
    delivery.upload(session, lender(w), idle, make_pdf(3), at=t0)
    session.commit()
    token = delivery.link_for(session, reader(w), used, at=t0).token
    assert token is not None
    assert delivery.download(session, reader(w), token, at=t0).outcome == "ok"
    session.commit()
    assert len(stored_files(tmp_path)) == 4
    # Day 1: the used-up link's files go; the other reader's copy is still waiting.
    assert delivery.remove_expired_files(session, CLI, now=t0 + dt.timedelta(days=1)) == 1
    session.commit()
    assert len(stored_files(tmp_path)) == 2
    assert "ill.document.removed" in actions(session, used)
    # Day 3: the link time of the idle one is over; nothing is left, the rows stay.
    assert delivery.remove_expired_files(session, CLI, now=t0 + dt.timedelta(days=3)) == 1
    session.commit()
    assert stored_files(tmp_path) == []
    assert delivery.remove_expired_files(session, CLI, now=t0 + dt.timedelta(days=9)) == 0
    docs = session.scalars(select(DeliveredDocument)).all()
    assert len(docs) == 2 and all(d.removed_at is not None for d in docs)
    # Asking for the link only now: refused as expired, and no link is made.
    with pytest.raises(delivery.Gone) as gone:
        delivery.link_for(session, reader(w), idle, at=t0 + dt.timedelta(days=4))
    day = (t0 + dt.timedelta(days=3)).astimezone(CHINA).date().isoformat()
    assert gone.value.render() == f"The download link expired on {day}"
    assert session.scalar(select(func.count()).select_from(DownloadLink)) == 1


def test_the_hourly_task_removes_files_no_link_can_use_through_the_service(
    session: Session, w: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huey.api import PeriodicTask

    from consortia.ill import tasks

    assert isinstance(tasks.ill_remove_expired_files.task_class(), PeriodicTask)
    # Small pages and batches: the used-up link sits behind more live documents than one
    # page holds, and the removals take more than one batch.
    monkeypatch.setattr(delivery, "FILES_PAGE", 2)
    monkeypatch.setattr(tasks, "FILE_BATCH", 1)
    now = dt.datetime.now(dt.UTC)
    ill.set_policy(
        session, CLI, effective_from=now - dt.timedelta(days=60), link_valid_days=3, max_downloads=1
    )
    session.commit()
    live = []
    for n in range(3):
        rid = copy_request(session, w, pages=f"{10 + n * 5}-{12 + n * 5}")
        delivery.upload(session, lender(w), rid, make_pdf(2), at=now)
        live.append(rid)
    used = copy_request(session, w, pages="60-61")
    delivery.upload(session, lender(w), used, make_pdf(2), at=now)
    old = copy_request(session, w, pages="70-71", at=now - dt.timedelta(days=20))
    delivery.upload(session, lender(w), old, make_pdf(2), at=now - dt.timedelta(days=19))
    session.commit()
    token = delivery.link_for(session, reader(w), used, at=now).token
    assert token is not None
    assert delivery.download(session, reader(w), token, at=now).outcome == "ok"
    session.commit()
    assert len(stored_files(tmp_path)) == 2 * 5
    # The task runs the service now: the used-up and the old document lose their files.
    assert tasks.ill_remove_expired_files.call_local() == {"removed": 2}
    assert len(stored_files(tmp_path)) == 2 * 3
    session.expire_all()
    removed = {
        d.request_id
        for d in session.scalars(
            select(DeliveredDocument).where(DeliveredDocument.removed_at.is_not(None))
        )
    }
    assert removed == {used, old}
    for rid in (used, old):
        assert actions(session, rid).count("ill.document.removed") == 1
    assert all("ill.document.removed" not in actions(session, rid) for rid in live)
    # Again: nothing left to do, nothing recorded twice.
    assert tasks.ill_remove_expired_files.call_local() == {"removed": 0}
    assert actions(session, used).count("ill.document.removed") == 1


def test_damaged_pdfs_are_refused_as_unreadable_never_a_crash(
    session: Session, w: World, tmp_path: Path
) -> None:
    good = make_pdf(3)
    damaged = [good[:n] for n in (len(good) // 10, len(good) // 2, len(good) - 40)]
    for start in range(200, len(good) - 200, len(good) // 7):
        damaged.append(
            good[:start] + bytes(b ^ 0x5A for b in good[start : start + 64]) + good[start + 64 :]
        )
    damaged.append(
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF"
    )
    rid = copy_request(session, w)
    outcomes = []
    for body in damaged:
        try:
            delivery.upload(session, lender(w), rid, body)
        except Invalid as exc:
            assert exc.field == "file"
            assert exc.message in (delivery.MSG_BROKEN_PDF, delivery.MSG_NO_PAGES)
            outcomes.append("refused")
        else:
            outcomes.append("delivered")  # pypdf repaired it; the stamp went on every page
            doc = session.scalar(select(DeliveredDocument))
            assert doc is not None and doc.stamped_path is not None
            for page in PdfReader(doc.stamped_path).pages:
                assert f"ILL request {rid}" in page.extract_text()
        session.rollback()
        assert state(session, rid) == "Sent"
        # Files of a rolled-back upload are the caller's to discard; the spool is always clean.
        assert list((tmp_path / "spool").glob("consortia-upload-*")) == []
    assert "refused" in outcomes, outcomes


def test_two_downloads_at_once_cannot_both_take_the_last_one(session: Session, w: World) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from consortia import db as dbmod

    ill.set_policy(session, CLI, max_downloads=1)
    session.commit()
    rid = copy_request(session, w)
    delivery.upload(session, lender(w), rid, make_pdf(1))
    token = delivery.link_for(session, reader(w), rid).token
    session.commit()
    assert token is not None
    start = Barrier(4)
    desk = w.staff["CN-GZUCM"]  # staff: no receipt confirmation, just the count

    def fetch() -> str:
        start.wait()
        with dbmod.session_factory()() as s:
            got = delivery.download(s, desk, token)
            s.commit()
            return got.outcome

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(lambda _: fetch(), range(4)))
    assert outcomes == ["exhausted", "exhausted", "exhausted", "ok"]
    session.expire_all()
    link = session.scalar(select(DownloadLink))
    assert link is not None and link.downloads == 1
    log = session.scalars(select(DownloadLog.outcome)).all()
    assert sorted(log) == outcomes


def test_a_delivery_over_the_share_is_refused_naming_the_limit(
    session: Session, w: World, tmp_path: Path
) -> None:
    first = copy_request(session, w, pages="1-45")
    delivery.upload(session, lender(w), first, make_pdf(45))
    session.commit()
    # Cited 31 pages (45 + 31 = 76 of 412, within 20%); the lender sends 40.
    second = copy_request(session, w, pages="100-130", article_title="第五章")
    with pytest.raises(Invalid) as refused:
        delivery.upload(session, lender(w), second, make_pdf(40))
    assert refused.value.field == "file"
    assert refused.value.render() == (
        "file: 85 of the 412 pages of this book in seven days (20.6%), over the limit of 20% "
        "of a book per reader per week"
    )
    session.rollback()
    assert state(session, second) == "Sent"
    assert len(stored_files(tmp_path)) == 2  # the first delivery's only
    delivery.upload(session, lender(w), second, make_pdf(31))
    session.commit()
    assert state(session, second) == "Shipped"


def test_the_service_refuses_a_copy_over_the_page_limit_before_routing(
    session: Session, w: World
) -> None:
    # Every path that creates requests (forms, API, OpenURL, ISO 18626) goes through
    # service.create_request, so the limit is enforced there, not only by delivery's wrapper.
    from consortia.ill import service as ill_service
    from consortia.ill.models import IllRequest

    before = session.query(IllRequest).count()
    new = NewRequest(
        service_type="Copy", cluster_id=w.clusters["zh0"], article_title="第三章", pages="1-60"
    )
    with pytest.raises(Invalid) as refused:
        ill_service.create_request(session, reader(w), new)
    assert "over the limit of 50 pages per request" in refused.value.render()
    session.rollback()
    assert session.query(IllRequest).count() == before
