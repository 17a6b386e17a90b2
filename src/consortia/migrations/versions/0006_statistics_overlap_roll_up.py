"""statistics: collection overlap roll-up

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 11:45:00

The union catalogue's titles by the members holding them (stats_overlap), when it was built
(stats_overlap_state), and the mark that the catalogue changed since (stats_catalogue_dirty),
set by triggers on source_records (rows added or removed; cluster, member, deletion or load
moment changed) and clusters (removed, merged record changed). SQLite has row triggers only: they
insert the one row id 1 (or nothing, when it is there). PostgreSQL's fire once per statement and
insert a new row, so that concurrent catalogue writers never wait on one another.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import consortia.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_MARK = "INSERT OR IGNORE INTO stats_catalogue_dirty (id) VALUES (1)"
SQLITE = [
    f"CREATE TRIGGER stats_sr_ai AFTER INSERT ON source_records BEGIN {_SQLITE_MARK}; END",
    f"CREATE TRIGGER stats_sr_ad AFTER DELETE ON source_records BEGIN {_SQLITE_MARK}; END",
    "CREATE TRIGGER stats_sr_au AFTER UPDATE OF cluster_id, deleted, member_id, loaded_at "
    f"ON source_records BEGIN {_SQLITE_MARK}; END",
    f"CREATE TRIGGER stats_cl_ad AFTER DELETE ON clusters BEGIN {_SQLITE_MARK}; END",
    f"CREATE TRIGGER stats_cl_au AFTER UPDATE OF merged ON clusters BEGIN {_SQLITE_MARK}; END",
]
SQLITE_NAMES = ["stats_sr_ai", "stats_sr_ad", "stats_sr_au", "stats_cl_ad", "stats_cl_au"]
POSTGRES = [
    "CREATE OR REPLACE FUNCTION stats_catalogue_changed() RETURNS trigger AS $$ "
    "BEGIN INSERT INTO stats_catalogue_dirty DEFAULT VALUES; RETURN NULL; END; "
    "$$ LANGUAGE plpgsql",
    "CREATE TRIGGER stats_source_records_changed AFTER INSERT OR DELETE OR UPDATE OF "
    "cluster_id, deleted, member_id, loaded_at ON source_records "
    "FOR EACH STATEMENT EXECUTE FUNCTION stats_catalogue_changed()",
    "CREATE TRIGGER stats_clusters_changed AFTER DELETE OR UPDATE OF merged ON clusters "
    "FOR EACH STATEMENT EXECUTE FUNCTION stats_catalogue_changed()",
]


def upgrade() -> None:
    op.create_table(
        "stats_overlap",
        sa.Column("holders", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("holders", "lang", "since", "until", name=op.f("pk_stats_overlap")),
    )
    op.create_table(
        "stats_overlap_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("built_at", consortia.db.UTCDateTime(), nullable=True),
        sa.Column("clusters", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_overlap_state")),
    )
    op.create_table(
        "stats_catalogue_dirty",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_catalogue_dirty")),
    )
    dialect = op.get_bind().dialect.name
    for stmt in SQLITE if dialect == "sqlite" else POSTGRES:
        op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS stats_source_records_changed ON source_records")
        op.execute("DROP TRIGGER IF EXISTS stats_clusters_changed ON clusters")
        op.execute("DROP FUNCTION IF EXISTS stats_catalogue_changed()")
    op.drop_table("stats_catalogue_dirty")
    op.drop_table("stats_overlap_state")
    op.drop_table("stats_overlap")
