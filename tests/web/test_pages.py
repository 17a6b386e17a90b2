"""The web shell's pages: home by region, members table with filters, member page, language,
sign-in and sign-out, error pages, and the accessibility basics every page keeps."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from httpx import Response
from lxml import html as lhtml
from sqlalchemy.orm import Session

from consortia.accounts.roles import Role
from consortia.members.models import MemberStatus, MemberType, Sector
from tests.conftest import PASSWORD, add_region_and_member, login

ZH = {"Accept-Language": "zh-CN,zh;q=0.9", "Accept": "text/html"}
EN = {"Accept-Language": "en-GB,en;q=0.8", "Accept": "text/html"}


def page(r: Response) -> Any:
    return lhtml.fromstring(r.text)


def text_of(el: Any) -> str:
    return " ".join(el.text_content().split())


@pytest.fixture
def consortium(session: Session) -> dict[str, Any]:
    """Two regions; a centre, a backed library, a suspended one; a second region's public one."""
    centre = add_region_and_member(
        session,
        "CN-GDZSL",
        region="guangdong",
        name_zh="广东省立中山图书馆",
        name_en="Sun Yat-sen Library of Guangdong Province",
        type=MemberType.public,
        sector=Sector.culture,
        is_centre=True,
        z3950_host="opac.zslib.example.org",
        z3950_port=2100,
        z3950_database="books",
        sru_url="https://opac.zslib.example.org/sru",
        contact_name="王老师",
        contact_email="ill@zslib.example.org",
        loan_period_days=45,
        days_to_respond=3,
        lends_copies=False,
    )
    sysu = add_region_and_member(
        session,
        "CN-SYSU",
        region="guangdong",
        name_zh="中山大学图书馆",
        name_en="Sun Yat-sen University Library",
        centre_id=centre.id,
    )
    add_region_and_member(
        session,
        "CN-GZUCM",
        region="guangdong",
        name_zh="广州中医药大学图书馆",
        name_en="Guangzhou University of Chinese Medicine Library",
        centre_id=centre.id,
        status=MemberStatus.suspended,
        status_since=dt.date(2024, 3, 1),
    )
    add_region_and_member(
        session,
        "CN-JLPL",
        region="jilin",
        name_zh="吉林省图书馆",
        name_en="Jilin Provincial Library",
        type=MemberType.public,
        sector=Sector.culture,
    )
    # Regions were created with their code as name by the helper; give them real names.
    from consortia.members.models import Region

    for region in session.query(Region):
        region.name_zh, region.name_en = {
            "guangdong": ("广东", "Guangdong"),
            "jilin": ("吉林", "Jilin"),
        }[region.code]
    session.commit()
    return {"centre": centre, "sysu": sysu}


def _region_items(doc: Any, heading: str) -> list[str]:
    section = doc.xpath(f"//section[h2[starts-with(normalize-space(.), '{heading}')]]")[0]
    return [text_of(li) for li in section.xpath(".//li")]


def test_home_lists_members_by_region_centre_first_and_marks_suspended(
    client: TestClient, consortium: dict[str, Any]
) -> None:
    r = client.get("/", headers=ZH)
    assert r.status_code == 200
    doc = page(r)
    assert doc.get("lang") == "zh-CN"
    gd = _region_items(doc, "广东")
    assert gd[0].startswith("广东省立中山图书馆") and "中心馆" in gd[0]
    suspended = next(item for item in gd if "CN-GZUCM" in item)
    assert "已暂停" in suspended
    assert all("已暂停" not in item for item in gd if "CN-GZUCM" not in item)
    assert _region_items(doc, "吉林") == ["吉林省图书馆 CN-JLPL"]
    assert "成员馆：4 个" in text_of(doc) and "已暂停：1 个" in text_of(doc)

    doc = page(client.get("/?lang=en", headers=ZH))
    assert doc.get("lang") == "en"
    gd = _region_items(doc, "Guangdong")
    assert "Regional centre" in gd[0] and "Sun Yat-sen Library of Guangdong Province" in gd[0]
    assert "Suspended" in next(item for item in gd if "CN-GZUCM" in item)


def test_language_query_cookie_and_accept_language(
    client: TestClient, consortium: dict[str, Any]
) -> None:
    r = client.get("/", headers=EN)
    assert page(r).get("lang") == "en" and r.headers["content-language"] == "en"
    assert "Accept-Language" in r.headers["vary"]
    # A language we do not serve falls back to Chinese, the consortium's own.
    assert page(client.get("/", headers={"Accept-Language": "fr-FR"})).get("lang") == "zh-CN"
    # ?lang= sets a cookie that outranks Accept-Language from then on.
    r = client.get("/members?lang=en", headers=ZH)
    assert r.cookies.get("consortia_lang") == "en"
    doc = page(client.get("/members", headers=ZH))
    assert doc.get("lang") == "en" and doc.xpath("//h1")[0].text == "Member libraries"
    doc = page(client.get("/members?lang=zh-CN", headers=EN))
    assert doc.get("lang") == "zh-CN" and doc.xpath("//h1")[0].text == "成员馆"


def test_language_switch_keeps_the_page_and_its_filters(
    client: TestClient, consortium: dict[str, Any]
) -> None:
    doc = page(client.get("/members?type=public&status=active", headers=ZH))
    switch = doc.xpath("//nav[@class='lang-switch']//a")
    assert [a.text for a in switch] == ["English"]
    assert switch[0].get("href") == "/members?type=public&status=active&lang=en"
    assert switch[0].get("lang") == "en" and switch[0].get("hreflang") == "en"
    current = doc.xpath("//nav[@class='lang-switch']//*[@aria-current='true']")
    assert [c.text for c in current] == ["中文"]


def _table_codes(r: Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [text_of(td) for td in page(r).xpath("//table//tbody/tr/td[1]")]


def test_members_table_and_its_filters(client: TestClient, consortium: dict[str, Any]) -> None:
    r = client.get("/members", headers=EN)
    assert _table_codes(r) == ["CN-GDZSL", "CN-GZUCM", "CN-SYSU", "CN-JLPL"]
    doc = page(r)
    headers = [text_of(th) for th in doc.xpath("//table/thead//th")]
    assert headers == [
        "Code",
        "Name",
        "Type",
        "Region",
        "Centre library",
        "Status",
        "Lending policy",
    ]
    row = doc.xpath("//tbody/tr[td[1][normalize-space(.)='CN-GDZSL']]")[0]
    cells = [text_of(c) for c in row.xpath("./td|./th")]
    assert cells[1] == "Sun Yat-sen Library of Guangdong Province 广东省立中山图书馆"
    assert cells[2:6] == ["Public library", "Guangdong", "Regional centre", "Active"]
    assert cells[6].startswith("Loans only") and "loans for 45 days" in cells[6]
    sysu = doc.xpath("//tbody/tr[td[1][normalize-space(.)='CN-SYSU']]/td[4]//a")[0]
    assert sysu.get("href") == "/members/CN-GDZSL"

    assert _table_codes(client.get("/members?region=jilin", headers=EN)) == ["CN-JLPL"]
    assert _table_codes(client.get("/members?type=public", headers=EN)) == [
        "CN-GDZSL",
        "CN-JLPL",
    ]
    assert _table_codes(client.get("/members?status=suspended", headers=EN)) == ["CN-GZUCM"]
    both = client.get("/members?region=guangdong&type=academic&status=active", headers=EN)
    assert _table_codes(both) == ["CN-SYSU"]
    # Empty values (a form submitted with "all") mean no filter.
    assert len(_table_codes(client.get("/members?region=&type=&status=", headers=EN))) == 4
    r = client.get("/members?status=left", headers=EN)
    assert _table_codes(r) == []
    assert "No member library matches these filters." in r.text
    # The form shows the filters in force.
    doc = page(client.get("/members?type=public", headers=EN))
    assert doc.xpath("//select[@name='type']/option[@selected]/@value") == ["public"]


@pytest.mark.parametrize(
    ("query", "en", "zh"),
    [
        ("type=museum", "Unknown member type: museum", "未知的成员馆类型：museum"),
        ("status=closed", "Unknown member status: closed", "未知的成员馆状态：closed"),
        ("region=tibet", "Unknown region: tibet", "未知的地区：tibet"),
        ("type=public&type=academic", "Give type only once", "type 只能给出一次"),
    ],
)
def test_bad_filters_are_refused_naming_the_value(
    client: TestClient, consortium: dict[str, Any], query: str, en: str, zh: str
) -> None:
    r = client.get(f"/members?{query}", headers=EN)
    assert r.status_code == 422
    assert text_of(page(r).xpath("//*[@role='alert']")[0]) == en
    r = client.get(f"/members?{query}", headers=ZH)
    assert r.status_code == 422 and zh in r.text
    r = client.get(f"/members?{query}", headers={"Accept": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid"


def test_member_page_details_policy_endpoints(
    client: TestClient, consortium: dict[str, Any]
) -> None:
    r = client.get("/members/CN-GDZSL", headers=EN)
    assert r.status_code == 200
    doc = page(r)
    assert doc.xpath("//h1")[0].text == "Sun Yat-sen Library of Guangdong Province"
    facts = {
        text_of(dt_): text_of(dt_.getnext())
        for dt_ in doc.xpath("//dl[@class='facts']/dt")
        if dt_.getnext() is not None
    }
    assert facts["Type"] == "Public library"
    assert facts["Sector"] == "Culture"
    assert facts["Region"] == "Guangdong"
    assert facts["Centre library"] == "This library is the regional centre"
    assert facts["Lends books (loans)"] == "Yes"
    assert facts["Supplies copies (document delivery)"] == "No"
    assert facts["Answers requests within"] == "3 days"
    assert facts["Loan period"] == "45 days"
    assert facts["Z39.50"] == "opac.zslib.example.org:2100/books"
    assert facts["SRU"] == "https://opac.zslib.example.org/sru"
    backed = [text_of(li) for li in doc.xpath("//section[@aria-labelledby='h-backed']//li")]
    assert backed[0].startswith("Guangzhou University") and "Suspended" in backed[0]
    assert backed[1] == "Sun Yat-sen University Library CN-SYSU"

    doc = page(client.get("/members/CN-GZUCM", headers=ZH))
    facts = {text_of(d): text_of(d.getnext()) for d in doc.xpath("//dl[@class='facts']/dt")}
    assert facts["状态"] == "已暂停 (自 2024-03-01 起)"
    assert facts["中心馆"] == "广东省立中山图书馆"
    assert "本馆系统尚未通过网络接入。" in text_of(doc)


def test_member_page_404_names_the_code(client: TestClient, consortium: dict[str, Any]) -> None:
    r = client.get("/members/CN-NOPE", headers=ZH)
    assert r.status_code == 404
    doc = page(r)
    assert doc.get("lang") == "zh-CN"
    assert text_of(doc.xpath("//*[@role='alert']")[0]) == "未知的成员馆代码：CN-NOPE"
    assert text_of(doc.xpath("//h1")[0]) == "未找到"
    r = client.get("/members/CN-NOPE", headers={"Accept-Language": "en"})
    assert r.status_code == 404
    assert r.json() == {
        "error": "not_found",
        "detail": "Unknown member code: CN-NOPE",
        "field": "code",
    }


def test_member_codes_lower_case_and_with_slash(
    client: TestClient, session: Session, consortium: dict[str, Any]
) -> None:
    r = client.get("/members/cn-sysu?lang=en", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/members/CN-SYSU?lang=en"
    add_region_and_member(session, "CN-GZ/SL", name_en="Slash Library")
    session.commit()
    doc = page(client.get("/members", headers=EN))
    link = doc.xpath("//a[normalize-space(.)='Slash Library']")[0]
    assert link.get("href") == "/members/CN-GZ/SL"
    r = client.get(link.get("href"), headers=EN)
    assert r.status_code == 200 and page(r).xpath("//h1")[0].text == "Slash Library"


def test_contact_person_is_shown_to_staff_only(
    client: TestClient, users: dict[Role, str], consortium: dict[str, Any]
) -> None:
    assert "王老师" not in client.get("/members/CN-GDZSL", headers=EN).text
    login(client, "reader")
    assert "王老师" not in client.get("/members/CN-GDZSL", headers=EN).text
    client.cookies.clear()
    login(client, "staff")
    r = client.get("/members/CN-GDZSL", headers=EN)
    assert "王老师" in r.text and "mailto:ill@zslib.example.org" in r.text


def test_sign_in_and_out_through_the_pages(
    client: TestClient, users: dict[Role, str], consortium: dict[str, Any]
) -> None:
    doc = page(client.get("/members", headers=ZH))
    sign_in = doc.xpath("//header//a[normalize-space(.)='登录']")[0]
    assert sign_in.get("href") == "/login?next=/members"
    form_page = client.get(sign_in.get("href"), headers=ZH)
    doc = page(form_page)
    form = doc.xpath("//form[@action='/login']")[0]
    assert form.xpath(".//input[@name='next']/@value") == ["/members"]
    csrf = form.xpath(".//input[@name='csrf_token']/@value")[0]
    assert csrf == client.cookies["consortia_csrf"]

    # A wrong password: the form again, the error in Chinese, the name kept, nothing signed in.
    r = client.post(
        "/login",
        data={"username": "staff", "password": "not-the-password", "csrf_token": csrf},
        headers=ZH,
    )
    assert r.status_code == 401
    doc = page(r)
    assert text_of(doc.xpath("//*[@role='alert']")[0]) == "用户名或密码错误"
    assert doc.xpath("//input[@name='username']/@value") == ["staff"]
    assert "consortia_session" not in client.cookies

    r = client.post(
        "/login",
        data={"username": "staff", "password": PASSWORD, "csrf_token": csrf, "next": "/members"},
        headers=ZH,
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/members"
    doc = page(client.get("/members", headers=ZH))
    who = text_of(doc.xpath("//header//*[@class='who']")[0])
    assert "staff" in who and "馆员" in who and "CN-TEST" in who
    logout = doc.xpath("//form[@action='/logout']")[0]
    token = logout.xpath(".//input[@name='csrf_token']/@value")[0]
    assert token != csrf  # the session's own token, not the pre-login cookie

    # Sign-out without the token is refused and changes nothing.
    r = client.post("/logout", data={"csrf_token": "forged"}, headers=ZH)
    assert r.status_code == 403
    assert client.get("/api/v1/me").status_code == 200
    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert client.get("/api/v1/me").status_code == 401
    doc = page(client.get("/", headers=EN))
    assert doc.xpath("//header//a[normalize-space(.)='Sign in']")
    assert not doc.xpath("//form[@action='/logout']")


def test_unknown_page_is_a_translated_404_that_still_knows_who_is_signed_in(
    client: TestClient, users: dict[Role, str]
) -> None:
    login(client, "office")
    r = client.get("/no/such/page", headers=ZH)
    assert r.status_code == 404
    doc = page(r)
    assert text_of(doc.xpath("//*[@role='alert']")[0]) == "未找到该页面"
    assert "office" in text_of(doc.xpath("//header//*[@class='who']")[0])
    r = client.get("/no/such/page", headers=EN)
    assert text_of(page(r).xpath("//*[@role='alert']")[0]) == "Not Found"


@pytest.mark.parametrize("path", ["/", "/members", "/members/CN-GDZSL", "/login", "/nowhere"])
@pytest.mark.parametrize("headers", [ZH, EN], ids=["zh", "en"])
def test_every_page_keeps_the_accessibility_basics(
    client: TestClient, consortium: dict[str, Any], path: str, headers: dict[str, str]
) -> None:
    r = client.get(path, headers=headers)
    doc = page(r)
    assert doc.get("lang") in ("zh-CN", "en")
    assert r.headers["content-language"] == doc.get("lang")
    # The skip link is the first thing a keyboard reaches, and its target exists.
    focusable = doc.xpath("//body//a[@href] | //body//button | //body//input[not(@type='hidden')]")
    assert focusable[0].get("class") == "skip-link" and focusable[0].get("href") == "#main"
    assert doc.xpath("//main[@id='main']")
    assert len(doc.xpath("//h1")) == 1
    assert doc.xpath("//title")[0].text.strip()
    # Every form control has a label bound to it.
    for control in doc.xpath("//input[not(@type='hidden')] | //select | //textarea"):
        cid = control.get("id")
        assert cid and doc.xpath(f"//label[@for='{cid}']"), lhtml.tostring(control)
    for nav in doc.xpath("//nav"):
        assert nav.get("aria-label"), lhtml.tostring(nav)[:80]
    # Nothing from other hosts: the network may be closed and readers' privacy matters.
    for url in doc.xpath("//link/@href | //script/@src | //img/@src | //iframe/@src"):
        assert url.startswith("/"), url
    assert not doc.xpath("//script[not(@src)] | //*[@style]")  # the CSP forbids inline code
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_stylesheet_has_focus_styles_and_a_cjk_font_stack(client: TestClient) -> None:
    css = client.get("/static/site.css").text
    assert ":focus-visible" in css and ".skip-link:focus" in css
    assert "Noto Sans CJK SC" in css and "Microsoft YaHei" in css and "PingFang SC" in css
    assert "@media (max-width" in css
    assert "http://" not in css and "https://" not in css and "@import" not in css


def test_a_page_that_needs_sign_in_shows_the_form_and_returns_after(
    monkeypatch: pytest.MonkeyPatch, db_url: str, users: dict[Role, str]
) -> None:
    """An HTML page for staff only: nobody gets the sign-in form (401) that leads back to it."""
    import consortia.web.pages as pages
    from consortia.web.app import create_app
    from consortia.web.deps import allow

    staff_pages = APIRouter()
    staff_pages.include_router(pages.router)

    @staff_pages.get("/queue")
    def queue(request: Request, principal: Any = allow(Role.library_staff)) -> HTMLResponse:
        return HTMLResponse(f"<p>queue of {principal.member_code}</p>")

    monkeypatch.setattr(pages, "router", staff_pages)
    with TestClient(create_app(run_migrations=False)) as client:
        r = client.get("/queue?state=new", headers=ZH)
        assert r.status_code == 401
        doc = page(r)
        assert text_of(doc.xpath("//*[@role='alert']")[0]) == "请先登录"
        assert doc.xpath("//input[@name='next']/@value") == ["/queue?state=new"]
        r = client.post(
            "/login",
            data={
                "username": "staff",
                "password": PASSWORD,
                "csrf_token": client.cookies["consortia_csrf"],
                "next": "/queue?state=new",
            },
        )
        assert r.status_code == 200 and r.text == "<p>queue of CN-TEST</p>", (r.url, r.text[:300])
        # Signed in with a role the page does not declare: refused, in the reader's language.
        client.cookies.clear()
        login(client, "reader")
        r = client.get("/queue", headers=EN)
        assert r.status_code == 403
        assert text_of(page(r).xpath("//*[@role='alert']")[0]) == "Your role may not do this"


def test_every_stored_value_has_a_label() -> None:
    """A new member type, sector, status or role needs its label (and so its translations)."""
    from consortia.members.models import MemberStatus as Status
    from consortia.web.templating import env

    labels = env.get_template("_labels.html").make_module({"_": lambda s, **kw: s})
    for name, enum in [
        ("MEMBER_TYPE", MemberType),
        ("SECTOR", Sector),
        ("STATUS", Status),
        ("ROLE", Role),
    ]:
        table = getattr(labels, name)
        assert set(table) == {e.value for e in enum}, name
        assert all(table.values()), name
