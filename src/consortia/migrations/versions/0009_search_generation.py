"""search index: a generation number that every document change advances

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 21:15:00

``search_state.generation`` tells a reader whether an in-memory copy of the index (a segment,
``consortia.search.segment``) is still exact: the segment records the generation it was built
at, and is used only while the number is unchanged. On SQLite, triggers on
``search_documents`` advance it, so every write path counts — also a cluster's deletion, which
reaches the documents by cascade. A document's facet rows are written with it and derived from
the same values, so they need no trigger of their own.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
# The triggers are on search_documents (0003).
depends_on: str | Sequence[str] | None = "0003"

_BUMP = "UPDATE search_state SET generation = generation + 1 WHERE id = 1"
TRIGGERS = {
    "search_generation_ai": f"AFTER INSERT ON search_documents BEGIN {_BUMP}; END",
    "search_generation_ad": f"AFTER DELETE ON search_documents BEGIN {_BUMP}; END",
    "search_generation_au": f"AFTER UPDATE ON search_documents BEGIN {_BUMP}; END",
}


def upgrade() -> None:
    op.create_table(
        "search_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_state")),
    )
    op.execute("INSERT INTO search_state (id, generation) VALUES (1, 0)")
    if op.get_bind().dialect.name == "sqlite":
        for name, body in TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("search_state")
