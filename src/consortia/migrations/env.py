"""Alembic environment: the engine comes from consortia.db (CONSORTIA_DATABASE_URL)."""

from alembic import context

import consortia.all_models  # noqa: F401  (registers every table on Base.metadata)
from consortia.db import Base, get_engine

config = context.config
engine = config.attributes.get("engine") or get_engine()

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
