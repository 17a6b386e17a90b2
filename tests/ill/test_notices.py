"""E-mail notices: written with the change that causes them, in the reader's language (zh-CN
when not known), and sent to a real SMTP server (aiosmtpd on a free local port)."""

from __future__ import annotations

import datetime as dt
import email
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia import db as dbmod
from consortia.accounts.roles import Role
from consortia.ill import notices
from consortia.ill import service as ill
from consortia.ill.models import Notice
from consortia.ill.service import NewRequest
from consortia.members.models import Member
from consortia.settings import reset_settings
from tests.conftest import free_port
from tests.ill import world
from tests.ill.world import World

BOOKS = {"zh0": {"CN-GDZSL": ["available"]}}


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[Inbox]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("CONSORTIA_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CONSORTIA_SMTP_PORT", str(port))
    monkeypatch.setenv("CONSORTIA_MAIL_FROM", "ill@consortium.example.org")
    reset_settings()
    yield inbox
    controller.stop()


@pytest.fixture
def w(session: Session, tmp_path: Path) -> World:
    built = world.build(session, tmp_path, BOOKS, readers=("CN-GZUCM",))
    english = world.add_user(
        session, built, "gzucm-en", Role.reader, "CN-GZUCM", "en@reader.example.org"
    )
    built.readers["en"] = english
    from consortia.accounts.models import User

    user = session.get(User, english.user_id)
    assert user is not None
    user.language = "en"
    lender = session.get(Member, built.ids["CN-GDZSL"])
    assert lender is not None
    lender.contact_email = "ill@gdzsl.example.org"
    session.commit()
    return built


def body(msg: Message) -> str:
    payload = msg.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(msg.get_content_charset() or "utf-8")


def decoded_subject(msg: Message) -> str:
    return str(email.header.make_header(email.header.decode_header(msg["Subject"])))


def test_notices_in_each_readers_language_reach_the_smtp_server(
    session: Session, w: World, smtp: Inbox
) -> None:
    zh = ill.create_request(
        session, w.readers["CN-GZUCM"], NewRequest("Loan", cluster_id=w.clusters["zh0"])
    )
    notices.after(session, zh)
    en = ill.create_request(
        session, w.readers["en"], NewRequest("Copy", title="Nowhere held", article_title="Absence")
    )
    notices.after(session, en)
    session.commit()
    # Written, not yet sent; once only.
    assert notices.after(session, zh) == []
    pending = session.scalars(select(Notice).order_by(Notice.id)).all()
    assert [(n.kind, n.state) for n in pending] == [
        ("created", "pending"),
        ("new_lending", "pending"),
        ("created", "pending"),
        ("unfilled", "pending"),
    ]
    report = notices.send_pending(dbmod.session_factory())
    assert (report.sent, report.failed) == (4, 0)
    by_to: dict[str, list[Message]] = {}
    for msg in smtp.messages:
        by_to.setdefault(msg["To"], []).append(msg)
    zh_mail = by_to["gzucm@reader.example.org"][0]
    assert decoded_subject(zh_mail) == f"您的请求 {zh.request_id} 已收到"
    assert "正在请" in body(zh_mail) and "您好" in body(zh_mail)
    assert zh_mail["From"] == "ill@consortium.example.org"
    staff = by_to["ill@gdzsl.example.org"][0]
    assert f"请求号 {zh.request_id}" in body(staff) and "/queues/lending" in body(staff)
    en_mails = {decoded_subject(m): body(m) for m in by_to["en@reader.example.org"]}
    unfilled = en_mails[f"Your request {en.request_id} could not be filled"]
    assert "Reasons:" in unfilled and "No member library holds this item" in unfilled
    assert f"Your request {en.request_id} was received" in en_mails
    session.expire_all()
    assert {n.state for n in session.scalars(select(Notice))} == {"sent"}
    # Nothing left: a second run sends nothing again.
    assert notices.send_pending(dbmod.session_factory()).sent == 0
    assert len(smtp.messages) == 4


def test_loan_reminders_queued_by_the_timers_are_composed_and_sent(
    session: Session, w: World, smtp: Inbox
) -> None:
    start = dt.datetime(2024, 3, 5, 2, 0, tzinfo=dt.UTC)
    r = ill.create_request(
        session, w.readers["en"], NewRequest("Loan", cluster_id=w.clusters["zh0"]), at=start
    )
    lender = w.staff["CN-GDZSL"]
    ill.ship(session, lender, r.request_id, at=start + dt.timedelta(hours=2))
    session.commit()
    due = session.get(ill.IllRequest, r.request_id).loan_due_at  # type: ignore[union-attr]
    assert due is not None
    ill.loan_timers(dbmod.session_factory(), now=due - dt.timedelta(days=1))
    notice = session.scalar(select(Notice).where(Notice.kind == "loan_due_soon"))
    assert notice is not None and notice.subject == ""
    notices.send_pending(dbmod.session_factory())
    mail = [m for m in smtp.messages if "due on" in decoded_subject(m)]
    assert len(mail) == 1 and f"(request {r.request_id}) is due back on" in body(mail[0])


def test_without_a_server_notices_wait_and_failures_are_recorded(
    session: Session, w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = ill.create_request(
        session, w.readers["CN-GZUCM"], NewRequest("Loan", cluster_id=w.clusters["zh0"])
    )
    notices.after(session, r)
    session.commit()
    monkeypatch.delenv("CONSORTIA_SMTP_HOST", raising=False)
    reset_settings()
    assert notices.send_pending(dbmod.session_factory()).sent == 0
    monkeypatch.setenv("CONSORTIA_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CONSORTIA_SMTP_PORT", str(free_port()))  # nobody listens
    reset_settings()
    report = notices.send_pending(dbmod.session_factory())
    assert report.failed == 2 and report.sent == 0
    session.expire_all()
    rows = session.scalars(select(Notice)).all()
    assert all(n.state == "pending" and n.attempts == 1 and n.last_error for n in rows)


def test_notices_from_the_event_log_cover_every_caller(session: Session, w: World) -> None:
    """Changes made without the pages (the API, the timers) get their notices from the event
    log; reading it again writes nothing twice, and old history gets none."""
    start = dt.datetime.now(dt.UTC)
    made = ill.create_request(
        session, w.readers["CN-GZUCM"], NewRequest("Loan", cluster_id=w.clusters["zh0"]), at=start
    )
    old = ill.create_request(
        session,
        w.readers["en"],
        NewRequest("Copy", title="Old history"),
        at=start - dt.timedelta(days=30),
    )
    session.commit()
    assert session.scalar(select(Notice.id)) is None
    mark = notices.notify_from_events(session)
    session.commit()
    rows = session.scalars(select(Notice).order_by(Notice.id)).all()
    assert [(n.request_id, n.kind) for n in rows] == [
        (made.request_id, "created"),
        (made.request_id, "new_lending"),
    ]
    assert mark > 0 and all(n.request_id != old.request_id for n in rows)
    assert notices.notify_from_events(session, after_id=mark) == mark
    assert notices.notify_from_events(session) == mark
    session.commit()
    assert len(session.scalars(select(Notice)).all()) == 2
    # The lender ships it through the service alone: the next run finds it.
    ill.ship(session, w.staff["CN-GDZSL"], made.request_id, at=start + dt.timedelta(hours=1))
    session.commit()
    later = notices.notify_from_events(session, after_id=mark)
    session.commit()
    assert later > mark
    shipped = session.scalar(select(Notice).where(Notice.kind == "shipped"))
    assert shipped is not None and shipped.language == "zh-CN"
    lender = session.get(Member, w.ids["CN-GDZSL"])
    assert lender is not None and f"{lender.name_zh}已寄出" in shipped.body
