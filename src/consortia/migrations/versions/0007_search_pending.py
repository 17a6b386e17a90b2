"""search index: clusters whose documents are behind

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 14:45:00

A big load does not index every batch's clusters as it goes (a cluster joined by four members
would be indexed four times): the writer records their ids here in the batch's own transaction,
and the index is brought up to date from this table at the end of the load, by the next load,
or by the background task (``consortia.search.index.index_pending``). ``version`` is the
moment (ns) of the last change: a drain removes a row only if it is unchanged since it read it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_pending",
        sa.Column("cluster_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cluster_id", name=op.f("pk_search_pending")),
    )


def downgrade() -> None:
    op.drop_table("search_pending")
