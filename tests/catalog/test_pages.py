"""The union catalogue's pages: the record page (merged record with provenance, holdings, source
records), the data-quality page (quarantine with download and re-submit, in-member duplicates,
totals) and the upload pages (background load with progress), with their roles and isolation.

Real records: LC's (tests/data/ingest/loc-60.mrc) loaded as two members, a real MARC-8/EACC
record with 880 script fields (marc-perl's cjk3) beside a CNMARC record of the same book, and the
CNMARC test records in GBK.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymarc
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from lxml import html as lhtml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts import service as accounts
from consortia.accounts.roles import CLI, Role
from consortia.catalog import service
from consortia.catalog.holdings import STATUSES
from consortia.catalog.marc import ENCODINGS, FORMATS
from consortia.catalog.models import LoadBatch, QuarantinedRecord, SourceRecord
from consortia.catalog.pages import reason_templates, reason_text, role_key
from consortia.i18n import catalogue
from consortia.members.models import MemberStatus, Region
from consortia.settings import reset_settings
from tests.catalog.test_ingest import LOC, loc_records, write
from tests.conftest import PASSWORD, add_region_and_member, login

DATA = Path(__file__).parent.parent / "data"
CJK3 = DATA / "marc" / "marc-perl_marc-charset__t__cjk3.marc"  # 鲁迅与浙东文化, MARC-8 with 880s
CNMARC_GBK = DATA / "unimarc" / "cnmarc-gbk.mrc"
ZH = {"Accept-Language": "zh-CN,zh;q=0.9", "Accept": "text/html"}
EN = {"Accept-Language": "en-GB,en;q=0.8", "Accept": "text/html"}
FIRST = "00000002"  # the first LC record of loc-60.mrc


def page(r: Response) -> Any:
    return lhtml.fromstring(r.text)


def text_of(el: Any) -> str:
    return " ".join(el.text_content().split())


def section(doc: Any, heading_id: str) -> Any:
    return doc.xpath(f"//section[@aria-labelledby='{heading_id}']")[0]


@pytest.fixture
def libraries(session: Session) -> dict[str, str]:
    """Three members in two regions (one suspended) and an account for each kind of user."""
    add_region_and_member(
        session,
        "CN-A",
        region="guangdong",
        name_zh="中山大学图书馆",
        name_en="Sun Yat-sen University Library",
    )
    add_region_and_member(
        session,
        "CN-B",
        region="jilin",
        name_zh="吉林省图书馆",
        name_en="Jilin Provincial Library",
    )
    add_region_and_member(
        session,
        "CN-C",
        region="guangdong",
        name_zh="深圳图书馆",
        name_en="Shenzhen Library",
        status=MemberStatus.suspended,
    )
    names = {"guangdong": ("广东", "Guangdong"), "jilin": ("吉林", "Jilin")}
    for region in session.query(Region):
        region.name_zh, region.name_en = names[region.code]
    users = {
        "office": (Role.consortium_admin, None),
        "a-staff": (Role.library_staff, "CN-A"),
        "a-admin": (Role.library_admin, "CN-A"),
        "b-staff": (Role.library_staff, "CN-B"),
        "reader": (Role.reader, "CN-A"),
    }
    for username, (role, code) in users.items():
        accounts.create_user(
            session, CLI, username=username, password=PASSWORD, role=role, member_code=code
        )
    session.commit()
    return {name: role.value for name, (role, _code) in users.items()}


def _with_852(records: list[pymarc.Record]) -> list[pymarc.Record]:
    records[0].add_ordered_field(
        pymarc.Field(
            tag="852",
            indicators=pymarc.Indicators(" ", " "),
            subfields=[
                pymarc.Subfield("b", "Main stacks"),
                pymarc.Subfield("h", "RS164"),
                pymarc.Subfield("i", ".S8 1900"),
                pymarc.Subfield("p", "A0001"),
            ],
        )
    )
    return records


def _with_952_on_loan(records: list[pymarc.Record]) -> list[pymarc.Record]:
    records[0].add_ordered_field(
        pymarc.Field(
            tag="952",
            indicators=pymarc.Indicators(" ", " "),
            subfields=[
                pymarc.Subfield("c", "Reading room 2"),
                pymarc.Subfield("o", "R 615.32 S"),
                pymarc.Subfield("p", "B0002"),
                pymarc.Subfield("q", "2026-12-01"),
            ],
        )
    )
    return records


@pytest.fixture
def loaded(libraries: dict[str, str], session: Session, tmp_path: Path) -> int:
    """loc-60 as CN-A (a copy of the first record on the shelf) and as CN-B (that copy on loan);
    the first record's cluster id."""
    service.load_files(
        CLI, "CN-A", [write(tmp_path / "a.mrc", _with_852(loc_records()))], workers=1
    )
    service.load_files(
        CLI, "CN-B", [write(tmp_path / "b.mrc", _with_952_on_loan(loc_records()))], workers=1
    )
    cid = service.cluster_of(session, "CN-B", [FIRST])[0]["cluster"]
    assert cid is not None
    return int(cid)


def cnmarc_lu_xun() -> pymarc.Record:
    """A CNMARC record of the book in marc-perl's cjk3 (鲁迅与浙东文化), as a Chinese library
    would catalogue it: vernacular title with pinyin, CLC number, a copy on loan in 995."""
    sf = pymarc.Subfield
    record = pymarc.Record(force_utf8=True)
    record.leader = pymarc.Leader("00000nam0 2200000   450 ")
    fields: list[tuple[str, list[tuple[str, str]]]] = [
        ("010", [("a", "7-5601-2313-9"), ("b", "平装"), ("d", "CNY18.00")]),
        ("100", [("a", "19990601d1999    km y0chiy50      ea")]),
        ("101", [("a", "chi")]),
        ("200", [("a", "鲁迅与浙东文化"), ("9", "lu xun yu zhe dong wen hua"), ("f", "陈方竞著")]),
        ("205", [("a", "第1版")]),
        ("210", [("a", "长春"), ("c", "吉林大学出版社"), ("d", "1999")]),
        ("215", [("a", "341页"), ("d", "21cm")]),
        ("225", [("a", "东北学人现代文学研究丛书")]),
        ("606", [("a", "鲁迅"), ("x", "人物研究")]),
        ("690", [("a", "I210.96"), ("v", "4")]),
        ("701", [("a", "陈方竞"), ("9", "chen fang jing"), ("4", "著")]),
        ("995", [("b", "中文书库"), ("f", "B0012345"), ("k", "I210.96/75"), ("n", "2026-12-01")]),
    ]
    record.add_field(pymarc.Field(tag="001", data="CNB-0001"))
    for tag, subs in fields:
        record.add_field(
            pymarc.Field(
                tag=tag,
                indicators=pymarc.Indicators(" ", " "),
                subfields=[sf(c, v) for c, v in subs],
            )
        )
    return record


def load_lu_xun(tmp_path: Path) -> None:
    """The MARC21/880 record as CN-A, the CNMARC one as CN-B: one cluster across scripts."""
    service.load_files(CLI, "CN-A", [CJK3], workers=1)
    path = tmp_path / "cnmarc-b.mrc"
    path.write_bytes(cnmarc_lu_xun().as_marc())
    service.load_files(CLI, "CN-B", [path], workers=1)


# ---------------------------------------------------------------------------- record page


def test_record_page_shows_the_merged_record_both_holders_and_both_sources(
    client: TestClient, loaded: int
) -> None:
    r = client.get(f"/records/{loaded}", headers=EN)
    assert r.status_code == 200, r.text[:400]
    doc = page(r)
    assert text_of(doc.xpath("//h1")[0]).startswith("Botanical materia medica and pharmacology")
    facts = {
        text_of(d): text_of(d.getnext()) for d in section(doc, "h-description").xpath(".//dl/dt")
    }
    assert facts["Title"].endswith("from CN-A")  # both complete alike: the first code wins
    assert facts["Language"] == "English from every record"
    assert "from every record" in facts["Subjects"]
    assert facts["Material"] == "Book from CN-A"
    assert "Held by 2 libraries" in text_of(doc.xpath("//header[@class='record-head']")[0])

    holders = section(doc, "h-holdings").xpath(".//li[contains(@class,'holder')]")
    assert [text_of(h.xpath(".//h3")[0]) for h in holders] == [
        "Sun Yat-sen University Library CN-A",
        "Jilin Provincial Library CN-B",
    ]
    a_rows = [[text_of(c) for c in tr.xpath("./td")] for tr in holders[0].xpath(".//tbody/tr")]
    b_rows = [[text_of(c) for c in tr.xpath("./td")] for tr in holders[1].xpath(".//tbody/tr")]
    assert a_rows == [["RS164 .S8 1900", "Main stacks", "Available"]]
    assert b_rows == [["R 615.32 S", "Reading room 2", "On loan"]]
    assert "Region: Guangdong" in text_of(holders[0]) and "Region: Jilin" in text_of(holders[1])
    # Barcodes are the libraries' business.
    assert "A0001" not in r.text and "B0002" not in r.text

    rows = section(doc, "h-sources").xpath(".//tbody/tr")
    cells = [[text_of(c) for c in tr.xpath("./th|./td")] for tr in rows]
    assert [c[:3] for c in cells] == [
        ["Sun Yat-sen University Library CN-A", FIRST, "MARC 21 UTF-8"],
        ["Jilin Provincial Library CN-B", FIRST, "MARC 21 UTF-8"],
    ]
    assert cells[0][3] == "First record of this cluster"
    # The second record says which rule put it here, with the score and the shared number.
    assert cells[1][3].startswith("Same OCLC number score 100%")
    assert "title 100" in cells[1][3] and "oclc=" in cells[1][3]
    # Source records as MARCXML / ISO 2709 are for staff: readers get no links.
    assert not doc.xpath("//a[contains(@href,'/api/v1/catalog/records/')]")
    export = doc.xpath("//a[@href=$u]", u=f"/api/v1/catalog/clusters/{loaded}/marcxml")
    assert export and text_of(export[0]) == "Merged record as MARCXML"
    xml = client.get(export[0].get("href"))
    assert xml.status_code == 200 and f"(CN-A){FIRST}" in xml.text and f"(CN-B){FIRST}" in xml.text


def test_record_page_in_chinese(client: TestClient, loaded: int) -> None:
    doc = page(client.get(f"/records/{loaded}", headers=ZH))
    assert doc.get("lang") == "zh-CN"
    holders = section(doc, "h-holdings")
    assert "中山大学图书馆" in text_of(holders) and "吉林省图书馆" in text_of(holders)
    assert "在架可借" in text_of(holders) and "已借出" in text_of(holders)
    assert "地区：广东" in text_of(holders)
    facts = {
        text_of(d): text_of(d.getnext()) for d in section(doc, "h-description").xpath(".//dl/dt")
    }
    assert facts["题名"].endswith("来自 CN-A") and facts["语言"] == "英文 各记录均有"
    sources = text_of(section(doc, "h-sources"))
    assert "本合并记录的第一条记录" in sources and "OCLC 号相同" in sources


def test_staff_get_the_source_records(client: TestClient, loaded: int) -> None:
    login(client, "b-staff")
    doc = page(client.get(f"/records/{loaded}", headers=EN))
    links = doc.xpath("//a[contains(@href,'/api/v1/catalog/records/CN-A/')]")
    assert [a.get("href") for a in links] == [
        f"/api/v1/catalog/records/CN-A/{FIRST}?format=marcxml",
        f"/api/v1/catalog/records/CN-A/{FIRST}?format=iso2709",
    ]
    marcxml = client.get(links[0].get("href"))
    assert marcxml.status_code == 200 and f">{FIRST}<" in marcxml.text.replace(" ", "")
    raw = client.get(links[1].get("href")).content
    assert raw[5:6] == b"c" or raw[:5].isdigit()
    assert next(pymarc.MARCReader(raw))["852"]["h"] == "RS164"  # CN-A's record, verbatim
    assert "A0001" in text_of(section(doc, "h-holdings"))  # staff see barcodes


def test_chinese_record_title_forms_names_and_per_field_provenance(
    client: TestClient, libraries: dict[str, str], session: Session, tmp_path: Path
) -> None:
    load_lu_xun(tmp_path)
    found = service.cluster_of(session, "CN-B", ["CNB-0001"])[0]
    assert {"member": "CN-A", "id": "DCLP02-B5315"} in found["records"]
    doc = page(client.get(f"/records/{found['cluster']}", headers=ZH))
    # The vernacular title leads (from the CNMARC record); the romanised one stands beside it.
    assert text_of(doc.xpath("//h1")[0]) == "鲁迅与浙东文化"
    facts = {
        text_of(d): text_of(d.getnext()) for d in section(doc, "h-description").xpath(".//dl/dt")
    }
    assert facts["题名"] == "鲁迅与浙东文化 来自 CN-B"
    assert facts["题名（罗马字）"] == "Lu Xun yu Zhe dong wen hua 来自 CN-A"
    assert facts["责任者"] == "陈 方竞 Chen, Fangjing 著者 各记录均有"
    assert facts["ISBN"] == "978-7-5601-2313-4 (平装) 各记录均有"
    assert "I210.96 中国图书馆分类法 来自 CN-B" in facts["分类号"]
    assert "PL2754.S5 Z58627 1999 美国国会图书馆分类法 来自 CN-A" in facts["分类号"]
    assert facts["出版发行"].startswith("长春 : 吉林大学出版社, 1999 来自")
    assert facts["版本"] == "第1版 来自 CN-B"
    rule = text_of(section(doc, "h-sources").xpath(".//tbody/tr[2]/td[3]")[0])
    assert rule.startswith("ISBN 与题名相同")
    cn_b = section(doc, "h-holdings").xpath(".//li[contains(@class,'holder')][2]//tbody/tr/td")
    assert [text_of(c) for c in cn_b] == ["I210.96/75", "中文书库", "已借出"]


def test_suspended_holder_is_marked(
    client: TestClient, libraries: dict[str, str], session: Session
) -> None:
    service.load_files(CLI, "CN-A", [LOC], workers=1)
    service.load_files(CLI, "CN-C", [LOC], workers=1)
    cid = service.cluster_of(session, "CN-C", [FIRST])[0]["cluster"]
    doc = page(client.get(f"/records/{cid}", headers=EN))
    holders = section(doc, "h-holdings").xpath(".//li[contains(@class,'holder')]")
    # Active libraries first: they can lend.
    assert [h.get("class") for h in holders] == ["holder is-active", "holder is-suspended"]
    assert "Suspended" in text_of(holders[1].xpath(".//h3")[0])
    assert "does not lend while its membership is not active" in text_of(holders[1])
    assert "Suspended" not in text_of(holders[0])
    assert "Holds this title; its copies were not loaded" in text_of(holders[0])


@pytest.mark.parametrize("cid", ["999999", "abc", "1" * 30])
def test_unknown_record_is_a_404_naming_the_id(
    client: TestClient, libraries: dict[str, str], cid: str
) -> None:
    r = client.get(f"/records/{cid}", headers=ZH)
    assert r.status_code == 404
    doc = page(r)
    assert text_of(doc.xpath("//h1")[0]) == "未找到"
    assert text_of(doc.xpath("//*[@role='alert']")[0]) == f"未知的合并记录：{cid}"
    r = client.get(f"/records/{cid}", headers=EN)
    assert text_of(page(r).xpath("//*[@role='alert']")[0]) == f"Unknown cluster: {cid}"


# ---------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/quality"),
        ("GET", "/catalog/upload"),
        ("GET", "/catalog/uploads/1"),
        ("POST", "/catalog/upload"),
        ("POST", "/quality/quarantine/1/resubmit"),
    ],
)
def test_staff_pages_refuse_readers_and_ask_strangers_to_sign_in(
    client: TestClient, libraries: dict[str, str], method: str, path: str
) -> None:
    r = client.request(method, path, headers=EN)
    assert r.status_code == 401
    assert text_of(page(r).xpath("//*[@role='alert']")[0]) == "Please sign in"
    csrf = login(client, "reader")
    r = client.request(method, path, headers=EN, data={"csrf_token": csrf})
    assert r.status_code == 403
    assert text_of(page(r).xpath("//*[@role='alert']")[0]) == "Your role may not do this"


def test_record_page_is_public(client: TestClient, loaded: int) -> None:
    assert client.get(f"/records/{loaded}", headers=EN).status_code == 200
    login(client, "reader")
    assert client.get(f"/records/{loaded}", headers=EN).status_code == 200


# ---------------------------------------------------------------------------- quality page


def _mixed_file(tmp_path: Path) -> tuple[Path, list[bytes], bytes]:
    """Five LC records, the third with a record length that is not a number."""
    raw = [r.as_marc() for r in loc_records()[:5]]
    broken = b"00x12" + raw[2][5:]
    path = tmp_path / "mixed.mrc"
    path.write_bytes(raw[0] + raw[1] + broken + raw[3] + raw[4])
    return path, raw, broken


def _quarantine_rows(doc: Any) -> list[dict[str, str]]:
    table = section(doc, "h-quarantine").xpath(".//table")
    if not table:
        return []
    heads = [text_of(th) for th in table[0].xpath("./thead//th")]
    return [
        dict(zip(heads, [text_of(c) for c in tr.xpath("./th|./td")], strict=True))
        for tr in table[0].xpath("./tbody/tr")
    ]


def test_quarantine_list_download_and_resubmit_corrected(
    client: TestClient, libraries: dict[str, str], session: Session, tmp_path: Path
) -> None:
    path, raw, broken = _mixed_file(tmp_path)
    service.load_files(CLI, "CN-A", [path], workers=1)
    csrf = login(client, "a-staff")
    r = client.get("/quality", headers=EN)
    assert r.status_code == 200
    doc = page(r)
    rows = _quarantine_rows(doc)
    assert len(rows) == 1
    row = rows[0]
    assert row["File"] == "mixed.mrc"
    assert row["Byte offset"] == f"{len(raw[0]) + len(raw[1]):,}"
    assert row["Record number"] == loc_records()[2]["001"].value().strip()
    assert row["Reason"] == "bad leader: record length '00x12' is not a number"
    assert "Library" not in row  # staff see their own library only: no column for it
    qid = int(row["Number"])
    link = doc.xpath(f"//a[@href='/api/v1/catalog/quarantine/{qid}/raw']")[0]
    assert client.get(link.get("href")).content == broken

    # The re-submit form: POST, multipart, the session's CSRF token, an encoding, a file.
    form = doc.xpath(f"//form[@action='/quality/quarantine/{qid}/resubmit']")[0]
    assert form.get("method") == "post" and form.get("enctype") == "multipart/form-data"
    assert form.xpath(".//input[@name='csrf_token']/@value") == [csrf]
    assert form.xpath(".//select[@name='encoding']/option/@value") == list(ENCODINGS)

    # As it was: the leader is still broken, so it stays and the new failure is listed too.
    r = client.post(
        form.get("action"),
        data={"csrf_token": csrf, "encoding": "auto"},
        files={"file": ("", b"", "application/octet-stream")},
        headers=EN,
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/quality?outcome=failed&item={qid}#quarantine"
    doc = page(client.get(r.headers["location"], headers=EN))
    assert f"Quarantined record {qid} still could not be read" in text_of(
        doc.xpath("//*[@role='alert']")[0]
    )
    assert len(_quarantine_rows(doc)) == 2

    # Corrected: it loads, the entry is resolved and the record is in the catalogue.
    r = client.post(
        form.get("action"),
        data={"csrf_token": csrf, "encoding": "auto"},
        files={"file": ("fixed.mrc", raw[2], "application/marc")},
        headers=EN,
    )
    assert r.status_code == 200
    assert (r.url.params["outcome"], r.url.params["item"]) == ("loaded", str(qid))
    doc = page(r)
    assert text_of(doc.xpath("//*[@role='status']")[0]) == (
        f"Quarantined record {qid} loaded; it is no longer in quarantine."
    )
    assert [row["Number"] for row in _quarantine_rows(doc)] == [str(qid + 1)]
    session.expire_all()
    assert session.get(QuarantinedRecord, qid).resolved_at is not None  # type: ignore[union-attr]
    assert service.stats(session)["records"] == 5
    # Resolved entries can be shown again, marked and without a form.
    doc = page(client.get("/quality?resolved=1", headers=EN))
    resolved = next(r for r in _quarantine_rows(doc) if r["Number"] == str(qid))
    assert "Resolved" in resolved["Actions"]
    assert not doc.xpath(f"//form[@action='/quality/quarantine/{qid}/resubmit']")


def test_resubmit_as_is_with_another_encoding(
    client: TestClient, libraries: dict[str, str], session: Session
) -> None:
    """GBK records loaded as if they were UTF-8 are quarantined; re-submitted as GBK they load."""
    service.load_files(CLI, "CN-A", [CNMARC_GBK], workers=1, encoding="utf-8")
    csrf = login(client, "a-admin")
    doc = page(client.get("/quality", headers=ZH))
    rows = _quarantine_rows(doc)
    assert len(rows) == 4
    # The reason in Chinese, with the English original kept for whoever reports it.
    first = rows[0]
    assert first["原因"].startswith("编码错误：第 338 字节处不是有效的 UTF-8（字段 010）")
    assert first["原因"].endswith("bad encoding: invalid UTF-8 at byte 338 (field 010)")
    qid = int(first["编号"])
    r = client.post(
        f"/quality/quarantine/{qid}/resubmit",
        data={"csrf_token": csrf, "encoding": "gbk"},
        headers=ZH,
    )
    assert r.status_code == 200
    assert "已装载，不再处于隔离状态" in text_of(page(r).xpath("//*[@role='status']")[0])
    assert len(_quarantine_rows(page(r))) == 3
    rec = session.scalar(select(SourceRecord).where(SourceRecord.record_id == "012004002367"))
    assert rec is not None and rec.encoding == "gb18030"
    assert rec.normalized["title"] == "计算机程序设计艺术"


def test_resubmit_refuses_a_bad_encoding_and_a_missing_csrf_token(
    client: TestClient, libraries: dict[str, str], session: Session, tmp_path: Path
) -> None:
    path, _raw, _broken = _mixed_file(tmp_path)
    service.load_files(CLI, "CN-A", [path], workers=1)
    qid = service.quarantine(session, "CN-A")["items"][0]["id"]
    csrf = login(client, "a-staff")
    before = service.quarantine(session, None, include_resolved=True)
    r = client.post(f"/quality/quarantine/{qid}/resubmit", data={"encoding": "gbk"}, headers=EN)
    assert r.status_code == 403
    r = client.post(
        f"/quality/quarantine/{qid}/resubmit",
        data={"csrf_token": csrf, "encoding": "latin-9"},
        headers=EN,
    )
    assert r.status_code == 422
    assert text_of(page(r).xpath("//*[@role='alert']")[0]) == (
        "encoding: one of auto, utf-8, marc8, gbk, gb18030"
    )
    assert service.quarantine(session, None, include_resolved=True) == before


def test_staff_see_and_touch_only_their_own_library(
    client: TestClient, libraries: dict[str, str], session: Session, tmp_path: Path
) -> None:
    path, raw, _broken = _mixed_file(tmp_path)
    service.load_files(CLI, "CN-A", [path], workers=1)
    service.load_files(CLI, "CN-B", [CNMARC_GBK], workers=1, encoding="utf-8")
    a_item = service.quarantine(session, "CN-A")["items"][0]["id"]
    csrf = login(client, "b-staff")
    doc = page(client.get("/quality", headers=EN))
    rows = _quarantine_rows(doc)
    assert len(rows) == 4 and all(r["File"] == "cnmarc-gbk.mrc" for r in rows)
    assert not doc.xpath("//select[@name='member']")  # no library filter for staff
    totals = [text_of(th) for th in section(doc, "h-totals").xpath(".//tbody/tr/th")]
    assert totals == ["CN-B"]
    r = client.get("/quality?member=CN-A", headers=EN)
    assert r.status_code == 403
    assert "only your own library" in text_of(page(r).xpath("//*[@role='alert']")[0])
    # Another library's record: not there for this user (404), and nothing changes.
    r = client.post(
        f"/quality/quarantine/{a_item}/resubmit",
        data={"csrf_token": csrf},
        files={"file": ("fixed.mrc", raw[2], "application/marc")},
        headers=EN,
    )
    assert r.status_code == 404
    assert text_of(page(r).xpath("//*[@role='alert']")[0]) == (
        f"Unknown quarantined record: {a_item}"
    )
    assert service.quarantine(session, "CN-A")["total"] == 1
    assert client.get(f"/api/v1/catalog/quarantine/{a_item}/raw").status_code == 404

    # The office sees every library, and can narrow to one.
    client.cookies.clear()
    login(client, "office")
    doc = page(client.get("/quality", headers=EN))
    rows = _quarantine_rows(doc)
    assert sorted({r["Library"] for r in rows}) == ["CN-A", "CN-B"] and len(rows) == 5
    assert doc.xpath("//select[@name='member']/option/@value") == ["", "CN-A", "CN-B", "CN-C"]
    doc = page(client.get("/quality?member=CN-A", headers=EN))
    assert [r["File"] for r in _quarantine_rows(doc)] == ["mixed.mrc"]
    r = client.get("/quality?member=CN-NOPE", headers=EN)
    assert r.status_code == 404 and "CN-NOPE" in r.text


def test_duplicates_report_and_totals(
    client: TestClient, libraries: dict[str, str], session: Session, tmp_path: Path
) -> None:
    records = loc_records()[:3]
    twin = pymarc.Record(leader=str(records[0].leader), fields=list(records[0].fields))
    twin.remove_fields("001")
    twin.add_ordered_field(pymarc.Field(tag="001", data="DUP-1"))
    service.load_files(CLI, "CN-A", [write(tmp_path / "d.mrc", [*records, twin])], workers=1)
    service.load_files(CLI, "CN-B", [write(tmp_path / "e.mrc", records)], workers=1)
    cid = service.cluster_of(session, "CN-A", ["DUP-1"])[0]["cluster"]
    login(client, "office")
    doc = page(client.get("/quality", headers=EN))
    dup = section(doc, "h-duplicates")
    rows = [[text_of(c) for c in tr.xpath("./th|./td")] for tr in dup.xpath(".//tbody/tr")]
    title = service.get_cluster(session, cid)["title"]
    assert rows == [["CN-A", title, f"2: {FIRST}, DUP-1"]]
    assert dup.xpath(".//tbody//a/@href") == [f"/records/{cid}"]
    totals = {
        text_of(d.xpath("./dt")[0]): text_of(d.xpath("./dd")[0])
        for d in section(doc, "h-totals").xpath(".//dl/div")
    }
    assert totals == {
        "Records": "7",
        "Catalogue entries": "3",
        "Copies": "0",
        "In quarantine": "0",
    }
    per_member = [
        [text_of(c) for c in tr.xpath("./th|./td")]
        for tr in section(doc, "h-totals").xpath(".//tbody/tr")
    ]
    assert per_member == [["CN-A", "4", "3", "0", "0"], ["CN-B", "3", "3", "0", "0"]]
    # CN-B's staff: CN-B has no duplicates.
    client.cookies.clear()
    login(client, "b-staff")
    doc = page(client.get("/quality", headers=ZH))
    assert "没有图书馆重复收录同一种书。" in text_of(section(doc, "h-duplicates"))


def test_quarantine_pages(
    client: TestClient, libraries: dict[str, str], session: Session, tmp_path: Path
) -> None:
    """More than a page of quarantined records: the pager moves through them."""
    good = loc_records()[0].as_marc()
    bad = b"00x12" + good[5:]
    (tmp_path / "bad.mrc").write_bytes(bad * 55)
    service.load_files(CLI, "CN-A", [tmp_path / "bad.mrc"], workers=1)
    login(client, "a-staff")
    doc = page(client.get("/quality", headers=EN))
    assert len(_quarantine_rows(doc)) == 50
    pager = doc.xpath("//nav[@class='pager']")[0]
    assert "Records 1 to 50 of 55" in text_of(pager)
    nxt = pager.xpath(".//a[@rel='next']/@href")[0]
    assert nxt == "/quality?offset=50#quarantine"
    doc = page(client.get(nxt, headers=EN))
    assert len(_quarantine_rows(doc)) == 5
    assert doc.xpath("//nav[@class='pager']//a[@rel='prev']/@href") == ["/quality#quarantine"]
    r = client.get("/quality?offset=-1", headers=EN)
    assert r.status_code == 422 and "offset" in r.text


# ---------------------------------------------------------------------------- uploads


@pytest.fixture
def immediate_huey() -> Iterator[None]:
    """Background jobs run at once in the calling thread (Huey's immediate mode)."""
    from consortia.tasks import huey

    huey.immediate = True
    try:
        yield
    finally:
        huey.immediate = False


def test_upload_page_form(client: TestClient, libraries: dict[str, str]) -> None:
    csrf = login(client, "a-staff")
    doc = page(client.get("/catalog/upload", headers=EN))
    form = doc.xpath("//form[@action='/catalog/upload']")[0]
    assert form.get("method") == "post" and form.get("enctype") == "multipart/form-data"
    assert form.xpath(".//input[@name='csrf_token']/@value") == [csrf]
    # Staff load for their own library: no choice to make.
    assert form.xpath(".//input[@name='member']/@value") == ["CN-A"]
    assert "Sun Yat-sen University Library" in text_of(form)
    assert form.xpath(".//select[@name='format']/option/@value") == list(FORMATS)
    assert form.xpath(".//select[@name='encoding']/option/@value") == list(ENCODINGS)
    replace = form.xpath(".//input[@name='replace']")[0]
    assert replace.get("type") == "checkbox" and replace.get("checked") is None
    warning = doc.xpath(f"//*[@id='{replace.get('aria-describedby')}']")[0]
    assert "will be deleted from the union catalogue" in text_of(warning)
    client.cookies.clear()
    login(client, "office")
    doc = page(client.get("/catalog/upload", headers=ZH))
    assert doc.xpath("//select[@name='member']/option/@value") == ["", "CN-A", "CN-B", "CN-C"]
    assert "本馆不在此文件中的所有记录及其馆藏都将从联合目录中删除" in doc.text_content()


def test_upload_creates_a_batch_that_loads_and_shows_its_progress(
    client: TestClient, libraries: dict[str, str], session: Session, immediate_huey: None
) -> None:
    csrf = login(client, "a-staff")
    r = client.post(
        "/catalog/upload",
        data={"csrf_token": csrf, "format": "auto", "encoding": "auto"},
        files={"file": ("loc-60.mrc", LOC.read_bytes(), "application/marc")},
        headers=EN,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]
    batch = session.scalar(select(LoadBatch))
    assert batch is not None and r.headers["location"] == f"/catalog/uploads/{batch.id}"
    assert batch.filename == "loc-60.mrc" and batch.actor == "user:a-staff"
    doc = page(client.get(r.headers["location"], headers=EN))
    status = doc.xpath("//*[@data-field='status']")[0]
    assert text_of(status) == "Finished" and status.get("role") == "status"
    counts = {
        text_of(d.xpath("./dt")[0]): text_of(d.xpath("./dd")[0])
        for d in doc.xpath("//dl[contains(@class,'counts')]/div")
    }
    assert counts["Records read"] == "60" and counts["Added"] == "60"
    assert counts["Quarantined"] == "0"
    bar = doc.xpath("//progress")[0]
    assert bar.get("value") == bar.get("max") == str(LOC.stat().st_size)
    assert not doc.xpath("//noscript")  # finished: nothing refreshes any more
    assert service.stats(session)["records"] == 60
    # The upload page lists it among the library's recent loads.
    doc = page(client.get("/catalog/upload", headers=ZH))
    recent = [[text_of(c) for c in tr.xpath("./th|./td")] for tr in doc.xpath("//tbody/tr")]
    assert recent[0][:5] == [f"装载批次 {batch.id}", "CN-A", "loc-60.mrc", "已完成", "60"]


def test_a_queued_load_refreshes_itself_and_offers_the_script(
    client: TestClient, libraries: dict[str, str], session: Session, tmp_path: Path
) -> None:
    """Nothing consumes the job here: the page shows the waiting load and how it follows it."""
    login(client, "office")
    batch = service.queue_upload(
        session, CLI, "CN-B", "x.mrc", LOC.read_bytes(), upload_dir=tmp_path / "uploads"
    )
    session.commit()
    r = client.get(f"/catalog/uploads/{batch.id}", headers=ZH)
    assert r.status_code == 200
    doc = page(r)
    assert text_of(doc.xpath("//*[@data-field='status']")[0]) == "等待开始"
    # Without scripts a meta refresh reloads the page; with them the script polls the API.
    noscript = doc.xpath("//noscript")[0]
    assert 'http-equiv="refresh"' in lhtml.tostring(noscript, encoding="unicode")
    box = doc.xpath("//*[@data-batch-url]")[0]
    assert box.get("data-batch-url") == f"/api/v1/catalog/uploads/{batch.id}"
    assert box.get("data-running") == "true"
    # (Every page also loads the header search box's script.)
    assert "/static/catalog-upload.js" in doc.xpath("//script/@src")
    js = client.get("/static/catalog-upload.js")
    assert js.status_code == 200 and "data-batch-url" in js.text
    assert client.get(box.get("data-batch-url")).json()["status"] == "queued"


def test_upload_form_errors_keep_the_choices(
    client: TestClient, libraries: dict[str, str], session: Session, immediate_huey: None
) -> None:
    csrf = login(client, "office")
    r = client.post(
        "/catalog/upload",
        data={"csrf_token": csrf, "member": "CN-B", "encoding": "gbk", "format": "iso2709"},
        headers=EN,
    )
    assert r.status_code == 422
    doc = page(r)
    assert text_of(doc.xpath("//*[@role='alert']")[0]) == "file: choose a file to upload"
    assert doc.xpath("//select[@name='member']/option[@selected]/@value") == ["CN-B"]
    assert doc.xpath("//select[@name='encoding']/option[@selected]/@value") == ["gbk"]
    r = client.post(
        "/catalog/upload",
        data={"csrf_token": csrf, "member": "CN-B"},
        files={"file": ("empty.mrc", b"", "application/marc")},
        headers=ZH,
    )
    assert r.status_code == 422
    assert "上传的文件为空" in text_of(page(r).xpath("//*[@role='alert']")[0])
    r = client.post(
        "/catalog/upload",
        data={"csrf_token": csrf},
        files={"file": ("a.mrc", LOC.read_bytes(), "application/marc")},
        headers=EN,
    )
    assert r.status_code == 422
    assert "member: choose the library" in text_of(page(r).xpath("//*[@role='alert']")[0])
    r = client.post(
        "/catalog/upload",
        data={"csrf_token": csrf, "member": "CN-B", "format": "pdf"},
        files={"file": ("a.mrc", LOC.read_bytes(), "application/marc")},
        headers=EN,
    )
    assert r.status_code == 422 and "format: one of" in r.text
    assert session.scalar(select(func.count()).select_from(LoadBatch)) == 0


def test_staff_cannot_upload_for_or_watch_another_library(
    client: TestClient, libraries: dict[str, str], session: Session, tmp_path: Path
) -> None:
    other = service.queue_upload(
        session, CLI, "CN-A", "a.mrc", LOC.read_bytes(), upload_dir=tmp_path / "uploads"
    )
    session.commit()
    csrf = login(client, "b-staff")
    r = client.get(f"/catalog/uploads/{other.id}", headers=EN)
    assert r.status_code == 404
    assert text_of(page(r).xpath("//*[@role='alert']")[0]) == f"Unknown load batch: {other.id}"
    doc = page(client.get("/catalog/upload", headers=EN))
    assert not doc.xpath("//tbody/tr")  # CN-A's load is not in CN-B's list
    r = client.post(
        "/catalog/upload",
        data={"csrf_token": csrf, "member": "CN-A"},
        files={"file": ("a.mrc", LOC.read_bytes(), "application/marc")},
        headers=EN,
    )
    assert r.status_code == 403
    assert session.scalar(select(func.count()).select_from(LoadBatch)) == 1


def test_a_real_worker_process_loads_an_upload(
    client: TestClient,
    libraries: dict[str, str],
    session: Session,
    tmp_path: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The page enqueues into Huey's SQLite file; `consortia worker` (a separate process, as in
    production) takes the job from there and loads the file into the test database."""
    from huey.storage import SqliteStorage

    from consortia.tasks import huey

    jobs = tmp_path / "jobs.db"
    uploads = tmp_path / "uploads"
    monkeypatch.setenv("CONSORTIA_HUEY_PATH", str(jobs))
    monkeypatch.setenv("CONSORTIA_UPLOAD_DIR", str(uploads))
    reset_settings()
    assert not huey.immediate
    monkeypatch.setattr(huey, "storage", SqliteStorage(name=huey.name, filename=str(jobs)))

    csrf = login(client, "a-staff")
    r = client.post(
        "/catalog/upload",
        data={"csrf_token": csrf},
        files={"file": ("loc-60.mrc", LOC.read_bytes(), "application/marc")},
        headers=EN,
        follow_redirects=False,
    )
    assert r.status_code == 303
    batch_id = int(r.headers["location"].rsplit("/", 1)[1])
    # waiting in the SQLite queue for a consumer
    assert [t.name for t in huey.pending()] == ["load_upload"]
    status = client.get(f"/api/v1/catalog/uploads/{batch_id}").json()["status"]
    assert status == "queued"

    env = {
        **os.environ,
        "CONSORTIA_DATABASE_URL": db_url,
        "CONSORTIA_HUEY_PATH": str(jobs),
        "CONSORTIA_UPLOAD_DIR": str(uploads),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "consortia", "worker", "--workers", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = client.get(f"/api/v1/catalog/uploads/{batch_id}").json()["status"]
            if status in ("done", "failed"):
                break
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert status == "done"
    doc = page(client.get(f"/catalog/uploads/{batch_id}", headers=EN))
    assert text_of(doc.xpath("//*[@data-field='status']")[0]) == "Finished"
    session.expire_all()
    assert service.stats(session)["records"] == 60
    # The load was taken off the queue. (Periodic tasks the consumer's scheduler enqueued when
    # a minute began while it ran may still wait there: they are not this job.)
    assert not [t for t in huey.pending() if t.name == "load_upload"]


# ---------------------------------------------------------------------------- labels, reasons


def test_every_catalogue_value_has_a_label() -> None:
    from consortia.web.templating import env

    labels = env.get_template("catalog/_labels.html").make_module({"_": lambda s, **kw: s})
    assert set(labels.HOLDING_STATUS) == set(STATUSES)  # type: ignore[attr-defined]
    assert set(labels.ENCODING) >= set(ENCODINGS)  # type: ignore[attr-defined]
    assert set(labels.FORMAT) == set(FORMATS)  # type: ignore[attr-defined]
    assert set(labels.BATCH_STATUS) == {"queued", "running", "done", "failed"}  # type: ignore[attr-defined]
    materials = {"book", "ebook", "serial", "score", "map", "sound", "video", "manuscript", "other"}
    assert set(labels.MATERIAL) == materials  # type: ignore[attr-defined]
    assert set(labels.SCHEME) == {"clc", "ddc", "lcc", "udc", "other"}  # type: ignore[attr-defined]
    assert role_key("aut.") == "author" and role_key(" 译 ") == "translator"
    assert role_key("Editor.") == "editor" and role_key("honoree") == "honoree"


def test_every_quarantine_reason_reads_in_chinese() -> None:
    templates = reason_templates()
    assert len(templates) > 20 and "missing 001 (record identifier)" in templates
    zh, en = catalogue("zh-CN"), catalogue("en")
    missing = [t for t in templates if not zh.get(t) or not en.get(t)]
    assert not missing, missing
    reason = "directory: entry 3 (tag 245) points past the end of the record"
    assert reason_text(reason, "zh-CN") == zh[
        "directory: entry {n} (tag {tag}) points past the end of the record"
    ].format(n="3", tag="245")
    assert reason_text(reason, "en") == reason
    # Something the reader never says is shown as it is.
    assert reason_text("the cat sat on the record", "zh-CN") == "the cat sat on the record"


@pytest.mark.parametrize(("lang", "headers"), [("zh-CN", ZH), ("en", EN)], ids=["zh", "en"])
def test_catalogue_pages_keep_the_accessibility_basics(
    client: TestClient,
    loaded: int,
    session: Session,
    tmp_path: Path,
    lang: str,
    headers: dict[str, str],
) -> None:
    path, _raw, _broken = _mixed_file(tmp_path)
    service.load_files(CLI, "CN-A", [path], workers=1)
    batch = service.queue_upload(
        session, CLI, "CN-A", "x.mrc", b"x" * 10, upload_dir=tmp_path / "uploads"
    )
    session.commit()
    login(client, "a-staff")
    for url in (
        f"/records/{loaded}",
        "/quality",
        "/quality?resolved=1",
        "/catalog/upload",
        f"/catalog/uploads/{batch.id}",
    ):
        r = client.get(url, headers=headers)
        assert r.status_code == 200, url
        doc = page(r)
        assert doc.get("lang") == lang
        focusable = doc.xpath(
            "//body//a[@href] | //body//button | //body//input[not(@type='hidden')]"
        )
        assert focusable[0].get("class") == "skip-link", url
        assert len(doc.xpath("//h1")) == 1, url
        for control in doc.xpath("//input[not(@type='hidden')] | //select | //textarea"):
            cid = control.get("id")
            assert cid and doc.xpath(f"//label[@for='{cid}']"), (url, lhtml.tostring(control))
        ids = doc.xpath("//@id")
        assert len(ids) == len(set(ids)), (url, sorted(i for i in ids if ids.count(i) > 1))
        for nav in doc.xpath("//nav"):
            assert nav.get("aria-label"), url
        for table in doc.xpath("//table"):
            assert table.xpath(".//th[@scope='col']"), url
        assert not doc.xpath("//script[not(@src)] | //*[@style]"), url
        for src in doc.xpath("//script/@src | //link/@href | //img/@src"):
            assert src.startswith("/"), src


def test_the_office_resubmits_for_any_library_and_keeps_its_filter(
    client: TestClient, libraries: dict[str, str], session: Session
) -> None:
    service.load_files(CLI, "CN-B", [CNMARC_GBK], workers=1, encoding="utf-8")
    csrf = login(client, "office")
    doc = page(client.get("/quality?member=CN-B", headers=EN))
    qid = int(_quarantine_rows(doc)[-1]["Number"])
    form = doc.xpath(f"//form[@action='/quality/quarantine/{qid}/resubmit']")[0]
    assert form.xpath(".//input[@name='member']/@value") == ["CN-B"]
    r = client.post(
        form.get("action"),
        data={"csrf_token": csrf, "encoding": "gbk", "member": "CN-B"},
        headers=EN,
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/quality?outcome=loaded&item={qid}&member=CN-B#quarantine"
    assert service.quarantine(session, "CN-B")["total"] == 3
    # The load is attributed to the person who re-submitted it.
    batch_id = session.scalar(
        select(SourceRecord.batch_id).where(SourceRecord.record_id == "012010000042")
    )
    assert session.get(LoadBatch, batch_id).actor == "user:office"  # type: ignore[union-attr]
