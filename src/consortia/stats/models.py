"""Roll-ups of resource sharing, kept from the event log (``stats/rollup.py`` writes them).

Every figure is attributed to the **day the request was made** (China's time): a period selects
the requests made in it, and their outcomes (transfer, unfilled, cancelled, the lender and the
turnaround) count for that period whenever they happen. So a fill rate is never above 100 % and
a past week's figures settle as its last requests are answered.

Each table holds the same facts at three grains — ``d`` (a day), ``m`` (a month, ``period`` its
first day) and ``y`` (a year, 1 January) — so that any period is read as whole years, whole
months and the days at its edges: a few hundred rows whatever its length. The primary keys start
with (grain, period): every report is one range scan per grain.

Member ids carry no foreign key: members are never deleted and the roll-up writer does not pay
for the checks. The tables are derived data: ``consortia stats rebuild`` recreates them from the
event log and gives the same figures.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from consortia.db import Base, UTCDateTime

BigCount = BigInteger().with_variant(Integer, "sqlite")


class RequestRollup(Base):
    """Requests by requesting member (the library whose reader asked), service and language."""

    __tablename__ = "stats_requests"

    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    period: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    borrower_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(12), primary_key=True)
    lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Filled: the document or the book was supplied (ill.request.shipped).
    transfers: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    unfilled: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class LendingRollup(Base):
    """Transfers by lender and borrower: who carries the load."""

    __tablename__ = "stats_lending"

    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    period: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    lender_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    borrower_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(12), primary_key=True)
    lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    transfers: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class TurnaroundRollup(Base):
    """How many transfers took ``hours`` (whole hours, rounded up) from request to supply."""

    __tablename__ = "stats_turnaround"

    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    period: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    lender_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(12), primary_key=True)
    lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    hours: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class RollupState(Base):
    """How far the roll-ups have read the event log (one row, id 1).

    ``last_event_id``: every event up to it was applied, except the ids in ``gaps`` — ids
    above an earlier mark that had not committed when it was read (PostgreSQL hands out ids
    before commit); each is looked for again until it appears or is older than the gap wait.
    """

    __tablename__ = "stats_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigCount, nullable=False, default=0)
    gaps: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    events_applied: Mapped[int] = mapped_column(BigCount, nullable=False, default=0)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rebuilt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OverlapRollup(Base):
    """The union catalogue's titles (clusters) by the members holding them (``stats/overlap.py``).

    ``holders``: the member ids, ascending, comma-separated; ``lang``: the title's language
    (chinese, foreign); ``n`` titles had exactly these holders from the China day ``since``
    until the day before ``until`` (9999-12-31: still). A member holds a title from the day its
    first live record of it was loaded. Rebuilt when the catalogue changed (``dirty``).
    """

    __tablename__ = "stats_overlap"

    holders: Mapped[str] = mapped_column(Text, primary_key=True)
    lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    since: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    until: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class OverlapState(Base):
    """When the overlap roll-up was last built (one row, id 1; none: never)."""

    __tablename__ = "stats_overlap_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    built_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clusters: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class CatalogueDirty(Base):
    """A row here says the catalogue changed since the overlap roll-up was built: database
    triggers on ``source_records`` and ``clusters`` (migration 0006) add one; a build removes
    those it saw."""

    __tablename__ = "stats_catalogue_dirty"

    id: Mapped[int] = mapped_column(BigCount, primary_key=True, autoincrement=True)
