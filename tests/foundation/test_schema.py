"""Migrating an empty database gives exactly the models' schema; the event log is append-only."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.db import Base
from consortia.events import service as events


def _modelled(name: str | None, type_: str, _parent: object) -> bool:
    # The search index's full-text tables (FTS5 and its shadow tables, the PostgreSQL tsvector
    # table) are dialect DDL of migration 0003, named search_fts*, not models.
    return not (type_ == "table" and (name or "").startswith("search_fts"))


def test_migrations_give_exactly_the_models_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": _modelled}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    tables = {t for t in inspect(engine).get_table_names() if _modelled(t, "table", None)} - {
        "alembic_version"
    }
    assert tables == set(Base.metadata.tables)


def test_sqlite_runs_in_wal_with_foreign_keys(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_event_log_refuses_update_and_delete(session: Session) -> None:
    ev = events.record(session, CLI, "test.happened", "thing", 1, {"n": 1})
    session.commit()
    for stmt in (
        "UPDATE events SET action = 'x' WHERE id = :id",
        "DELETE FROM events WHERE id = :id",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            session.execute(text(stmt), {"id": ev.id})
        session.rollback()
    assert [e.action for e in events.history(session, "thing", 1)] == ["test.happened"]
    assert events.history(session, "thing", 1)[0].payload == {"n": 1}
