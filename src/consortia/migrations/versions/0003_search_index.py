"""search index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 07:50:00

One document per cluster (``search_documents``) and its facet values (``search_facets``), plus
the full-text part per dialect, every name starting with ``search_fts`` (not in the models'
metadata; tests/foundation/test_schema.py leaves them out of the comparison):

* SQLite: the FTS5 external-content table ``search_fts`` (tokenizer ``ascii``), triggers that
  keep it in step with ``search_documents``, and ``search_fts_vocab`` (fts5vocab) for scan.
* PostgreSQL: ``search_fts`` (cluster_id, tsv tsvector) with a GIN index, and the vocabulary
  cache ``search_fts_terms`` for scan on big catalogues.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLS = "title, author, subject, publisher, rest, keys"
_NEW = "new.title, new.author, new.subject, new.publisher, new.rest, new.keys"
_OLD = "old.title, old.author, old.subject, old.publisher, old.rest, old.keys"
SQLITE_DDL = (
    "CREATE VIRTUAL TABLE search_fts USING fts5("
    "title, author, subject, publisher, rest, keys, "
    "content='search_documents', content_rowid='cluster_id', tokenize='ascii')",
    "CREATE VIRTUAL TABLE search_fts_vocab USING fts5vocab(search_fts, 'col')",
    "CREATE TRIGGER search_fts_ai AFTER INSERT ON search_documents BEGIN "
    f"INSERT INTO search_fts(rowid, {_COLS}) VALUES (new.cluster_id, {_NEW}); END",
    "CREATE TRIGGER search_fts_ad AFTER DELETE ON search_documents BEGIN "
    f"INSERT INTO search_fts(search_fts, rowid, {_COLS}) "
    f"VALUES ('delete', old.cluster_id, {_OLD}); END",
    "CREATE TRIGGER search_fts_au AFTER UPDATE ON search_documents BEGIN "
    f"INSERT INTO search_fts(search_fts, rowid, {_COLS}) "
    f"VALUES ('delete', old.cluster_id, {_OLD}); "
    f"INSERT INTO search_fts(rowid, {_COLS}) VALUES (new.cluster_id, {_NEW}); END",
)
POSTGRES_DDL = (
    "CREATE TABLE search_fts ("
    "cluster_id integer PRIMARY KEY "
    "REFERENCES search_documents (cluster_id) ON DELETE CASCADE, "
    "tsv tsvector NOT NULL)",
    "CREATE INDEX search_fts_tsv ON search_fts USING gin (tsv)",
    "CREATE TABLE search_fts_terms ("
    'col varchar(20) NOT NULL, term text COLLATE "C" NOT NULL, doc integer NOT NULL, '
    "PRIMARY KEY (col, term))",
)


def upgrade() -> None:
    op.create_table(
        "search_documents",
        sa.Column("cluster_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("publisher", sa.Text(), nullable=False),
        sa.Column("rest", sa.Text(), nullable=False),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("sort_title", sa.String(length=200), nullable=False),
        sa.Column("sort_author", sa.String(length=200), nullable=False),
        sa.Column("sort_publisher", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_search_documents_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cluster_id", name=op.f("pk_search_documents")),
    )
    op.create_table(
        "search_facets",
        sa.Column("cluster_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("facet", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["search_documents.cluster_id"],
            name=op.f("fk_search_facets_cluster_id_search_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cluster_id", "facet", "value", name=op.f("pk_search_facets")),
        sqlite_with_rowid=False,
    )
    dialect = op.get_bind().dialect.name
    for ddl in (
        SQLITE_DDL if dialect == "sqlite" else POSTGRES_DDL if dialect == "postgresql" else ()
    ):
        op.execute(ddl)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("search_fts_ai", "search_fts_ad", "search_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts_vocab")
        op.execute("DROP TABLE IF EXISTS search_fts")
    elif dialect == "postgresql":
        op.execute("DROP TABLE IF EXISTS search_fts_terms")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_facets")
    op.drop_table("search_documents")
