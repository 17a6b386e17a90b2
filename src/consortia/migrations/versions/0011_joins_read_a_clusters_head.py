"""joins that read a cluster's head only: stored match features, keys that name their cluster

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 06:10:00

* ``source_records.features``: ``matching.features_json`` of the record (a JSON list, the form's
  version first). A record joining a cluster is compared with the representative and up to 20
  more of the cluster's records; with their features stored they need not be decoded and
  folded again at every join. Records stored before this have none and are derived from
  ``normalized`` when compared, as are records whose features are of another version.
* ``match_keys.cluster_id``: the record's cluster, written and removed with its keys. The
  clusters of a key were found through a row of ``source_records`` per record holding it (on
  SQLite its ``cluster_id`` lies after the raw record, in overflow pages): a book held by 64
  members cost 64 such reads a key. Filled here from ``source_records``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): a copied table would lose its triggers.
    op.add_column("source_records", sa.Column("features", sa.JSON(), nullable=True))
    op.add_column("match_keys", sa.Column("cluster_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE match_keys SET cluster_id = (SELECT source_records.cluster_id FROM source_records "
        "WHERE source_records.id = match_keys.source_record_id)"
    )


def downgrade() -> None:
    op.drop_column("match_keys", "cluster_id")
    op.drop_column("source_records", "features")
