"""a page of hits read from the index: display fields in the document, a covering index

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 21:40:00

* ``search_documents.display``: what a result list shows of a cluster (JSON, no provenance).
  A page of 20 hits decoded 20 merged records with the provenance of every value (~3 KB and
  ~200 objects each, ~17 µs apiece); documents written before this have it empty, and a page
  falls back to the merged record for them until they are next indexed.
* ``ix_source_records_cluster`` also holds ``deleted`` and ``member_id``: the holdings of a page
  find a cluster's live records and their members in the index alone (in the table these
  columns come after the raw record and its JSON, in overflow pages).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): a copied table would lose its triggers.
    op.add_column(
        "search_documents", sa.Column("display", sa.Text(), nullable=False, server_default="")
    )
    op.drop_index("ix_source_records_cluster", table_name="source_records")
    op.create_index(
        "ix_source_records_cluster", "source_records", ["cluster_id", "deleted", "member_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_source_records_cluster", table_name="source_records")
    op.create_index("ix_source_records_cluster", "source_records", ["cluster_id"])
    op.drop_column("search_documents", "display")
