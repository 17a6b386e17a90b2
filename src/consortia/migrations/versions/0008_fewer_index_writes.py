"""fewer index pages written per event and per rota row

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 18:05:00

Every write to the event log and to the ILL rota updated indexes that no query reads:

* ``events``: ``ix_events_action_at`` (action, at) and ``ix_events_member_id`` were read by no
  statement (the event log is read by entity — ``ix_events_entity`` — and by id ranges: the
  statistics roll-ups and the notices scan forward from the last id they applied). Each event
  appended at the end of its action's and its member's range in the middle of those two
  B-trees (half-full pages, frequent splits): about 2.6 of the 7-9 pages an ILL transition
  wrote, and 7 of the 22 of a new request.
* ``ill_lender_attempts``: ``ix_ill_lender_attempts_lender_sent`` (lender, sent_at) now holds
  only the candidates that were asked (``status IS NOT NULL``; every asked candidate has its
  ``sent_at``): the queries that use it (routing's recent figures, the member systems' requests
  to synchronise) read asked candidates only, and a new request's rota no longer writes an
  entry for each candidate not yet asked.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
# The rota table (0004) must exist before its index is replaced.
depends_on: str | Sequence[str] | None = "0004"

_ASKED = sa.text("status IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_events_action_at", table_name="events")
    op.drop_index("ix_events_member_id", table_name="events")
    op.drop_index("ix_ill_lender_attempts_lender_sent", table_name="ill_lender_attempts")
    op.create_index(
        "ix_ill_lender_attempts_lender_sent",
        "ill_lender_attempts",
        ["lender_id", "sent_at"],
        unique=False,
        sqlite_where=_ASKED,
        postgresql_where=_ASKED,
    )


def downgrade() -> None:
    op.drop_index("ix_ill_lender_attempts_lender_sent", table_name="ill_lender_attempts")
    op.create_index(
        "ix_ill_lender_attempts_lender_sent",
        "ill_lender_attempts",
        ["lender_id", "sent_at"],
        unique=False,
    )
    op.create_index("ix_events_member_id", "events", ["member_id"], unique=False)
    op.create_index("ix_events_action_at", "events", ["action", "at"], unique=False)
