"""statistics roll-ups

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-27 07:58:55.329362

The statistics roll-ups (stats_requests, stats_lending, stats_turnaround) and how far they have
read the event log (stats_rollup_state). Derived data: `consortia stats rebuild` refills them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import consortia.db

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stats_lending",
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("lender_id", sa.Integer(), nullable=False),
        sa.Column("borrower_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=12), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "grain",
            "period",
            "lender_id",
            "borrower_id",
            "service",
            "lang",
            name=op.f("pk_stats_lending"),
        ),
    )
    op.create_table(
        "stats_requests",
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("borrower_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=12), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("unfilled", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "grain", "period", "borrower_id", "service", "lang", name=op.f("pk_stats_requests")
        ),
    )
    op.create_table(
        "stats_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "last_event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("gaps", sa.JSON(), nullable=False),
        sa.Column(
            "events_applied", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("updated_at", consortia.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rebuilt_at", consortia.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_rollup_state")),
    )
    op.create_table(
        "stats_turnaround",
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("lender_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=12), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "grain",
            "period",
            "lender_id",
            "service",
            "lang",
            "hours",
            name=op.f("pk_stats_turnaround"),
        ),
    )


def downgrade() -> None:
    op.drop_table("stats_turnaround")
    op.drop_table("stats_rollup_state")
    op.drop_table("stats_requests")
    op.drop_table("stats_lending")
