"""Resource sharing's pages: my requests, the request form, the lending and borrowing queues
with bulk actions, pull slips, the document upload; each role sees only what it may.

The consortium is the demo's (tests/ill/world.py) with a small catalogue loaded through ingest.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import html as lhtml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts.roles import Role
from consortia.catalog.models import Holding, SourceRecord
from consortia.ill import service as ill
from consortia.ill.models import IllRequest, Notice
from consortia.ill.pages import shelving_key
from consortia.ill.service import NewRequest
from tests.conftest import login
from tests.ill import world
from tests.ill.world import World

BOOKS = {
    "zh0": {"CN-GDZSL": ["available"], "CN-SYSU": ["available"]},
    "zh2": {"CN-GDZSL": ["available"]},
    "zh3": {"CN-GDZSL": ["available"]},
    "en1": {"CN-GDZSL": ["available"]},
}
ZH = {"Accept-Language": "zh-CN", "Accept": "text/html"}
EN = {"Accept-Language": "en", "Accept": "text/html"}


@pytest.fixture
def w(session: Session, tmp_path: Path) -> World:
    built = world.build(
        session, tmp_path, BOOKS, readers=("CN-GZUCM", "CN-SYSU"), staff=("CN-GDZSL", "CN-GZUCM")
    )
    world.add_user(session, built, "gzucm-reader2", Role.reader, "CN-GZUCM", "r2@example.org")
    return built


def doc(text: str) -> Any:
    return lhtml.fromstring(text)


def words(el: Any) -> str:
    return " ".join(el.text_content().split())


def csrf(client: TestClient, user: str) -> str:
    client.cookies.clear()
    return login(client, user)


def test_reader_requests_from_a_record_and_sees_it_in_my_requests(
    client: TestClient, session: Session, w: World
) -> None:
    record = client.get(f"/records/{w.clusters['zh0']}", headers=EN)
    assert f"/requests/new?cluster={w.clusters['zh0']}" in record.text
    token = csrf(client, "gzucm-reader")
    form = client.get(f"/requests/new?cluster={w.clusters['zh0']}", headers=EN)
    assert form.status_code == 200 and "From the catalogue" in form.text
    r = client.post(
        "/requests/new",
        data={"csrf_token": token, "cluster": str(w.clusters["zh0"]), "service_type": "Loan"},
        headers=EN,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    rid = session.scalar(
        select(IllRequest.id).where(IllRequest.reader_id == w.users["gzucm-reader"])
    )
    assert r.headers["location"].startswith(f"/requests/mine?created={rid}")
    mine = client.get("/requests/mine", headers=EN)
    item = doc(mine.text).get_element_by_id(f"request-{rid}")
    text = words(item)
    assert "Asked a library" in text and "Asked library 1 of 2" in text
    assert "Request received" in text and "Sent to a library" in text
    # The same again: refused, naming the open request, with a link to it.
    again = client.post(
        "/requests/new",
        data={"csrf_token": token, "cluster": str(w.clusters["zh0"]), "service_type": "Loan"},
        headers=EN,
    )
    assert again.status_code == 409
    assert f"request {rid} (Sent)" in again.text and f"/requests/mine#request-{rid}" in again.text
    zh = client.get("/requests/mine", headers=ZH)
    assert "我的请求" in zh.text and "已发往图书馆" in zh.text
    # The reader was told (a notice written, waiting to be sent).
    kinds = session.scalars(select(Notice.kind).where(Notice.request_id == rid)).all()
    assert "created" in kinds and "new_lending" in kinds


def test_a_citation_request_and_bad_input(client: TestClient, session: Session, w: World) -> None:
    token = csrf(client, "gzucm-reader")
    bad = client.post(
        "/requests/new",
        data={"csrf_token": token, "service_type": "Copy", "needed_by": "next week"},
        headers=EN,
    )
    assert bad.status_code == 422 and "needed_by: not a date" in bad.text
    none = client.post("/requests/new", data={"csrf_token": token, "service_type": "x"}, headers=EN)
    assert none.status_code == 422 and "choose a loan or a copy" in none.text
    assert session.scalar(select(IllRequest.id)) is None
    ok = client.post(
        "/requests/new",
        data={
            "csrf_token": token,
            "service_type": "Copy",
            "title": "Journal of Nothing Held",
            "article_title": "On absence",
            "pages": "1-5",
            "issn": "0000-0000",
        },
        headers=EN,
        follow_redirects=False,
    )
    assert ok.status_code == 303
    req = session.scalar(select(IllRequest))
    assert req is not None and req.state == "Unfilled" and req.article_title == "On absence"
    mine = client.get("/requests/mine", headers=EN).text
    assert "No member library holds this item" in mine


def test_readers_see_only_their_own(client: TestClient, session: Session, w: World) -> None:
    other = ill.create_request(
        session, w.readers["CN-SYSU"], NewRequest("Loan", cluster_id=w.clusters["zh2"])
    )
    session.commit()
    token = csrf(client, "gzucm-reader")
    mine = client.get("/requests/mine", headers=EN)
    assert f"request-{other.request_id}" not in mine.text
    r = client.post(
        f"/requests/{other.request_id}/act",
        data={"csrf_token": token, "action": "cancel"},
        headers=EN,
    )
    assert r.status_code == 404
    assert session.get(IllRequest, other.request_id).state == "Sent"  # type: ignore[union-attr]
    # Readers have no queues.
    assert client.get("/queues/lending", headers=EN).status_code == 403


def test_staff_see_only_their_library_and_bulk_actions_report_each(
    client: TestClient, session: Session, w: World
) -> None:
    reader = w.readers["CN-GZUCM"]
    ids = [
        ill.create_request(session, reader, NewRequest("Loan", cluster_id=w.clusters[k])).request_id
        for k in ("zh2", "zh3")
    ]
    elsewhere = ill.create_request(
        session, w.readers["CN-SYSU"], NewRequest("Loan", cluster_id=w.clusters["en1"])
    ).request_id
    session.commit()
    token = csrf(client, "gdzsl-staff")
    page = client.get("/queues/lending", headers=EN)
    assert page.status_code == 200
    for rid in [*ids, elsewhere]:
        assert f'id="request-{rid}"' in page.text
    # Not the borrowing side's actions, not another library's queue.
    assert client.get("/queues/lending?member=CN-SYSU", headers=EN).status_code == 403
    ship_first = client.post(
        "/queues/lending/act", data={"csrf_token": token, "one": f"{ids[0]}:will-supply"}
    )
    assert ship_first.status_code == 200
    # Bulk: "ship" for a shippable one, a number that is not a request, and one of another
    # library's borrowing (illegal: it is this library's to lend, so shipping works) -- then
    # "received" is refused for all (the lender may not confirm receipt).
    bulk = client.post(
        "/queues/lending/act",
        data={"csrf_token": token, "action": "ship", "ids": [str(ids[0]), "abc", "999999"]},
        headers=EN,
    )
    results = {
        li.get("data-request"): words(li)
        for li in doc(bulk.text).find_class("ill-results")[0].iter("li")
    }
    assert "Shipped: done; the request is now: Supplied" in results[str(ids[0])]
    assert "Not a request number: abc" in results["abc"]
    assert "Unknown request: 999999" in results["999999"]
    session.expire_all()
    assert session.get(IllRequest, ids[0]).state == "Shipped"  # type: ignore[union-attr]
    refused = client.post(
        "/queues/lending/act",
        data={
            "csrf_token": token,
            "action": "unfilled",
            "ids": [str(ids[1]), str(ids[0])],
            "text": "lost",
        },
        headers=EN,
    )
    rs = {
        li.get("data-request"): li
        for li in doc(refused.text).find_class("ill-results")[0].iter("li")
    }
    assert rs[str(ids[1])].get("class") == "ill-ok"
    assert rs[str(ids[0])].get("class") == "ill-refused" and "is Loaned" in words(rs[str(ids[0])])
    session.expire_all()
    assert session.get(IllRequest, ids[0]).state == "Shipped"  # type: ignore[union-attr]
    # The borrowing library's staff: received, then returned.
    token = csrf(client, "gzucm-staff")
    borrowing = client.get("/queues/borrowing", headers=EN)
    assert (
        f'id="request-{ids[0]}"' in borrowing.text
        and f'id="request-{elsewhere}"' not in borrowing.text
    )
    r = client.post(
        "/queues/borrowing/act",
        data={"csrf_token": token, "action": "received", "ids": [str(ids[0]), str(elsewhere)]},
        headers=EN,
    )
    rs = {li.get("data-request"): li for li in doc(r.text).find_class("ill-results")[0].iter("li")}
    assert rs[str(ids[0])].get("class") == "ill-ok"
    assert rs[str(elsewhere)].get("class") == "ill-refused"
    assert "another library" in words(rs[str(elsewhere)])
    # A form without CSRF token is refused and changes nothing.
    assert (
        client.post(
            "/queues/borrowing/act", data={"action": "return", "ids": [str(ids[0])]}
        ).status_code
        == 403
    )


def test_the_office_picks_a_member(client: TestClient, session: Session, w: World) -> None:
    from consortia.accounts import service as accounts
    from consortia.accounts.roles import SYSTEM

    accounts.create_user(
        session, SYSTEM, username="office", password=world.PASSWORD, role=Role.consortium_admin
    )
    rid = ill.create_request(
        session, w.readers["CN-GZUCM"], NewRequest("Loan", cluster_id=w.clusters["zh2"])
    ).request_id
    session.commit()
    csrf(client, "office")
    empty = client.get("/queues/lending", headers=EN)
    assert "Choose a library to see its queue." in empty.text
    chosen = client.get("/queues/lending?member=CN-GDZSL", headers=EN)
    assert f'id="request-{rid}"' in chosen.text
    assert client.get("/queues/lending?member=CN-NOPE", headers=EN).status_code == 404


def test_shelving_order() -> None:
    given = ["QA76.9 .D3", "QA76.73 .P98", "QA9 .A1", "R2/10", "R2/9", "B1", "QA76.73 .P3"]
    assert sorted(given, key=shelving_key) == [
        "B1",
        "QA9 .A1",
        "QA76.73 .P3",
        "QA76.73 .P98",
        "QA76.9 .D3",
        "R2/9",
        "R2/10",
    ]


def test_pull_slips_are_in_shelving_order(client: TestClient, session: Session, w: World) -> None:
    reader = w.readers["CN-GZUCM"]
    made = {}
    for key, call in (("zh2", "R9/2"), ("zh3", "R10/1"), ("en1", "QA76.73 .P98")):
        holdings = session.scalars(
            select(Holding)
            .join(SourceRecord, SourceRecord.id == Holding.source_record_id)
            .where(
                SourceRecord.cluster_id == w.clusters[key], Holding.member_id == w.ids["CN-GDZSL"]
            )
        ).all()
        for h in holdings:
            h.call_number, h.location = call, f"stack {key}"
        session.commit()
        made[key] = ill.create_request(
            session, reader, NewRequest("Loan", cluster_id=w.clusters[key])
        ).request_id
    cite = ill.create_request(session, reader, NewRequest("Copy", title="Not held anywhere"))
    session.commit()
    csrf(client, "gdzsl-staff")
    r = client.get("/queues/lending/slips", headers=EN)
    assert r.status_code == 200
    slips = doc(r.text).find_class("ill-slip")
    order = [int(s.get("data-request")) for s in slips]
    assert order == [made["en1"], made["zh2"], made["zh3"]]
    assert cite.request_id not in order  # unfilled at once: nothing to pull
    first = words(slips[0])
    assert "QA76.73 .P98" in first and "stack en1" in first
    assert "Guangzhou University of Chinese Medicine" in first
    assert "@media print" in client.get("/static/site.css").text
    csrf(client, "gzucm-reader")
    assert client.get("/queues/lending/slips").status_code == 403


def _pdf() -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(100, 700, "Chapter three")
    c.showPage()
    c.save()
    return buf.getvalue()


def test_upload_a_document_and_the_reader_downloads_it(
    client: TestClient, session: Session, w: World
) -> None:
    rid = ill.create_request(
        session,
        w.readers["CN-GZUCM"],
        NewRequest("Copy", cluster_id=w.clusters["zh2"], article_title="第三章", pages="1-1"),
    ).request_id
    session.commit()
    token = csrf(client, "gdzsl-staff")
    assert f"/queues/lending/{rid}/document" in client.get("/queues/lending").text
    bad = client.post(
        f"/queues/lending/{rid}/document",
        data={"csrf_token": token},
        files={"file": ("x.pdf", b"not a pdf", "application/pdf")},
        headers=EN,
    )
    assert bad.status_code == 422 and "not a PDF" in bad.text
    ok = client.post(
        f"/queues/lending/{rid}/document",
        data={"csrf_token": token, "source_pages": "1-1"},
        files={"file": ("scan.pdf", _pdf(), "application/pdf")},
        follow_redirects=False,
    )
    assert ok.status_code == 303, ok.text
    session.expire_all()
    assert session.get(IllRequest, rid).state == "Shipped"  # type: ignore[union-attr]
    token = csrf(client, "gzucm-reader")
    mine = client.get("/requests/mine", headers=EN).text
    assert f"/requests/{rid}/download" in mine
    got = client.post(f"/requests/{rid}/download", data={"csrf_token": token})
    assert got.status_code == 200 and got.content.startswith(b"%PDF")
    kinds = session.scalars(select(Notice.kind).where(Notice.request_id == rid)).all()
    assert "delivered" in kinds


def test_staff_request_for_their_own_readers_only(
    client: TestClient, session: Session, w: World
) -> None:
    token = csrf(client, "gzucm-staff")
    form = client.get("/requests/new", headers=EN)
    assert 'name="reader"' in form.text
    data = {"csrf_token": token, "cluster": str(w.clusters["zh2"]), "service_type": "Loan"}
    missing = client.post("/requests/new", data=data, headers=EN)
    assert missing.status_code == 422 and "give the reader" in missing.text
    unknown = client.post("/requests/new", data={**data, "reader": "nobody"}, headers=EN)
    assert unknown.status_code == 404 and "Unknown reader: nobody" in unknown.text
    ok = client.post(
        "/requests/new", data={**data, "reader": "gzucm-reader2"}, follow_redirects=False
    )
    assert ok.status_code == 303 and ok.headers["location"].startswith("/queues/borrowing")
    req = session.scalar(select(IllRequest))
    assert req is not None and req.reader_id == w.users["gzucm-reader2"] and req.via == "staff"
    # The lending library's staff may not request for another library's reader.
    token = csrf(client, "gdzsl-staff")
    other = client.post(
        "/requests/new",
        data={
            **data,
            "csrf_token": token,
            "cluster": str(w.clusters["zh3"]),
            "reader": "gzucm-reader",
        },
        headers=EN,
    )
    assert other.status_code == 403 and "another library" in other.text
    assert session.scalar(select(func.count()).select_from(IllRequest)) == 1


def test_reader_cancels_from_my_requests(client: TestClient, session: Session, w: World) -> None:
    rid = ill.create_request(
        session, w.readers["CN-GZUCM"], NewRequest("Loan", cluster_id=w.clusters["zh2"])
    ).request_id
    session.commit()
    token = csrf(client, "gzucm-reader")
    mine = doc(client.get("/requests/mine", headers=EN).text)
    forms = mine.get_element_by_id(f"request-{rid}").xpath(".//form[@action]")
    assert [f.get("action") for f in forms] == [f"/requests/{rid}/act"]
    bad = client.post(f"/requests/{rid}/act", data={"csrf_token": token, "action": "ship"})
    assert bad.status_code == 422
    r = client.post(
        f"/requests/{rid}/act",
        data={"csrf_token": token, "action": "cancel"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/requests/mine#request-{rid}"
    session.expire_all()
    assert session.get(IllRequest, rid).state == "Cancelled"  # type: ignore[union-attr]
    text = words(
        doc(client.get("/requests/mine", headers=EN).text).get_element_by_id(f"request-{rid}")
    )
    assert "Cancelled" in text and "Cancel" not in text.replace("Cancelled", "")
    kinds = session.scalars(select(Notice.kind).where(Notice.request_id == rid)).all()
    assert "cancelled" in kinds


def test_an_openurl_citation_fills_the_form(client: TestClient, w: World) -> None:
    csrf(client, "gzucm-reader")
    r = client.get(
        "/requests/new?url_ver=Z39.88-2004&rft_val_fmt=info:ofi/fmt:kev:mtx:journal"
        "&rft.genre=article&rft.atitle=On+absence&rft.jtitle=Journal+of+Nothing&rft.aulast=Li"
        "&rft.aufirst=Wei&rft.volume=7&rft.issue=2&rft.spage=45&rft.epage=60&rft.date=2019-05"
        "&rft.issn=1234-5679&rft_id=info:doi/10.1000/xyz",
        headers=EN,
    )
    form = doc(r.text)

    def value(name: str) -> str:
        return str(form.xpath(f"//input[@name='{name}']")[0].get("value"))

    assert value("article_title") == "On absence" and value("title") == "Journal of Nothing"
    assert (value("author"), value("volume"), value("issue")) == ("Li, Wei", "7", "2")
    assert (value("pages"), value("year"), value("issn")) == ("45-60", "2019", "1234-5679")
    assert value("doi") == "10.1000/xyz"
    assert form.xpath("//input[@name='service_type'][@checked]")[0].get("value") == "Copy"
    assert form.xpath("//input[@name='via']")[0].get("value") == "openurl"


def test_the_hubs_openurl_lands_on_the_filled_form_and_the_request_says_so(
    client: TestClient, session: Session, w: World
) -> None:
    token = csrf(client, "gzucm-reader")
    r = client.get(
        "/openurl?url_ver=Z39.88-2004&rft.genre=article&rft.atitle=On+absence"
        "&rft.jtitle=Journal+of+Nothing&rft.spage=3&rft.epage=9&rft.date=2020",
        headers=EN,
    )
    assert r.status_code == 200 and str(r.url.path) == "/requests/new"
    form = doc(r.text)
    values = {
        i.get("name"): i.get("value") for i in form.xpath("//form[@action='/requests/new']//input")
    }
    assert values["article_title"] == "On absence" and values["title"] == "Journal of Nothing"
    assert values["pages"] == "3-9"
    checked = form.xpath("//input[@name='service_type'][@checked]")[0].get("value")
    assert checked == "Copy"
    # The form as shown, sent: the request is the citation.
    sent = {k: v for k, v in values.items() if k != "service_type" and v is not None}
    sent.update(csrf_token=token, service_type=checked)
    done = client.post("/requests/new", data=sent, follow_redirects=False)
    assert done.status_code == 303
    req = session.scalar(select(IllRequest))
    assert req is not None and (req.article_title, req.pages) == ("On absence", "3-9")
    assert req.service_type == "Copy" and req.via == values.get("via", "reader")


def _act(client: TestClient, token: str, queue: str, rid: int, action: str, text: str = "") -> str:
    r = client.post(
        f"/queues/{queue}/act",
        data={"csrf_token": token, "one": f"{rid}:{action}", "text": text},
        headers=EN,
    )
    assert r.status_code == 200, r.text
    li = doc(r.text).find_class("ill-results")[0].xpath(".//li")[0]
    assert li.get("class") == "ill-ok", words(li)
    return words(li)


def test_a_loan_through_both_queues(client: TestClient, session: Session, w: World) -> None:
    rid = ill.create_request(
        session, w.readers["CN-GZUCM"], NewRequest("Loan", cluster_id=w.clusters["zh2"])
    ).request_id
    session.commit()
    lender = csrf(client, "gdzsl-staff")
    _act(client, lender, "lending", rid, "conditional", "library use only")
    # Shipping waits for the borrower's answer to the condition.
    r = client.post(
        "/queues/lending/act", data={"csrf_token": lender, "one": f"{rid}:ship"}, headers=EN
    )
    assert "ill-refused" in r.text
    borrower = csrf(client, "gzucm-staff")
    page = client.get("/queues/borrowing", headers=EN).text
    assert "condition: library use only" in page and f'value="{rid}:conditions-yes"' in page
    _act(client, borrower, "borrowing", rid, "conditions-yes")
    lender = csrf(client, "gdzsl-staff")
    assert "Supplied" in _act(client, lender, "lending", rid, "ship")
    borrower = csrf(client, "gzucm-staff")
    assert "Received" in _act(client, borrower, "borrowing", rid, "received")
    _act(client, borrower, "borrowing", rid, "renew")
    lender = csrf(client, "gdzsl-staff")
    page = client.get("/queues/lending?state=Received", headers=EN).text
    assert "renewal asked" in page
    before = session.get(IllRequest, rid).loan_due_at  # type: ignore[union-attr]
    _act(client, lender, "lending", rid, "renewal-yes")
    session.expire_all()
    after = session.get(IllRequest, rid).loan_due_at  # type: ignore[union-attr]
    assert before is not None and after is not None and after > before
    borrower = csrf(client, "gzucm-staff")
    assert "Returned" in _act(client, borrower, "borrowing", rid, "return")
    lender = csrf(client, "gdzsl-staff")
    assert "Completed" in _act(client, lender, "lending", rid, "checked-in")
    # The reader's page tells the whole story.
    csrf(client, "gzucm-reader")
    item = words(
        doc(client.get("/requests/mine", headers=EN).text).get_element_by_id(f"request-{rid}")
    )
    for step in ("Renewal asked", "Renewed", "Returned", "Completed", "Supplied by"):
        assert step in item
