"""Test harness: every test gets an empty, migrated database.

SQLite (default): the schema is migrated once into a template file, copied per test.
PostgreSQL: set CONSORTIA_TEST_DATABASE_URL (``make test`` does, with a fresh database per run);
the schema is migrated once and every table is truncated before each test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import consortia.all_models  # noqa: F401
from consortia import db as dbmod
from consortia.accounts import service as accounts
from consortia.accounts.roles import CLI, Role
from consortia.db import Base, make_engine, migrate
from consortia.settings import reset_settings

PG_URL = os.environ.get("CONSORTIA_TEST_DATABASE_URL")
PASSWORD = "correct-horse-battery"


def pytest_report_header(config: pytest.Config) -> str:
    return f"consortia database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite'}"


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> str:
    if PG_URL:
        engine = make_engine(PG_URL)
        migrate(engine)
        engine.dispose()
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return str(path)


def _truncate_all(url: str) -> None:
    engine = make_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def db_url(_template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if PG_URL:
        _truncate_all(PG_URL)
        url = PG_URL
    else:
        target = tmp_path / "consortia.db"
        shutil.copyfile(_template, target)
        url = f"sqlite:///{target}"
    monkeypatch.setenv("CONSORTIA_DATABASE_URL", url)
    monkeypatch.setenv("CONSORTIA_SECRET_KEY", "test-secret-key-not-for-production")
    monkeypatch.chdir(tmp_path)
    reset_settings()
    dbmod.reset_engine()
    yield url
    dbmod.reset_engine()
    reset_settings()


@pytest.fixture
def engine(db_url: str) -> Engine:
    return dbmod.get_engine()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    s = dbmod.session_factory()()
    try:
        yield s
    finally:
        s.rollback()
        s.close()


@pytest.fixture
def app(db_url: str) -> Any:
    from consortia.web.app import create_app

    return create_app(run_migrations=False)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for servers the tests start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def app_server(*, run_migrations: bool = True) -> Iterator[str]:
    """The real app under uvicorn, in a thread, on a free port, against the test database: its
    base URL."""
    import uvicorn

    from consortia.web.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(run_migrations=run_migrations), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def add_region_and_member(
    session: Session, code: str = "CN-TEST", region: str = "guangdong", **fields: Any
) -> Any:
    """A member written straight to the tables, for tests of other domains."""
    from consortia.members.models import Member, MemberType, Region, Sector

    reg = session.query(Region).filter_by(code=region).one_or_none()
    if reg is None:
        reg = Region(code=region, name_zh=region, name_en=region)
        session.add(reg)
        session.flush()
    values: dict[str, Any] = {
        "code": code,
        "name_zh": "测试馆",
        "name_en": "Test Library",
        "type": MemberType.academic,
        "sector": Sector.education,
        "region_id": reg.id,
    }
    values.update(fields)
    member = Member(**values)
    session.add(member)
    session.flush()
    return member


@pytest.fixture
def member(session: Session) -> Any:
    m = add_region_and_member(session)
    session.commit()
    return m


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the real form; returns the session's CSRF token for later writes."""
    client.get("/login")
    csrf = client.cookies.get("consortia_csrf")
    r = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf or ""},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    from consortia.accounts.service import resolve_session

    with dbmod.session_scope() as s:
        resolved = resolve_session(s, client.cookies["consortia_session"])
        assert resolved is not None
        return resolved.csrf_token


@pytest.fixture
def users(session: Session, member: Any) -> dict[Role, str]:
    """One account per role (readers and staff at CN-TEST); returns usernames by role."""
    names = {
        Role.consortium_admin: "office",
        Role.library_admin: "libadmin",
        Role.library_staff: "staff",
        Role.reader: "reader",
    }
    for role, name in names.items():
        accounts.create_user(
            session,
            CLI,
            username=name,
            password=PASSWORD,
            role=role,
            member_code=None if role is Role.consortium_admin else member.code,
        )
    session.commit()
    return names
