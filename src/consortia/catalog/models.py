"""Tables of the union catalogue: source records, clusters, match keys, holdings, quarantine,
and the load batches that put them there."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from consortia.db import Base, UTCDateTime, utcnow


class LoadBatch(Base):
    """One load of one or more files for a member (CLI, upload, harvest)."""

    __tablename__ = "load_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), nullable=False, index=True)
    filename: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    format: Mapped[str] = mapped_column(String(20), nullable=False, default="auto")
    encoding: Mapped[str] = mapped_column(String(20), nullable=False, default="auto")
    replace: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # queued, running, done, failed
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="queued")
    actor: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    counts: Mapped[dict[str, int]] = mapped_column(JSON, nullable=False, default=dict)
    bytes_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    bytes_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Cluster(Base):
    """Source records judged to describe the same manifestation, with one merged record."""

    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text, nullable=False, default="")
    year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The normalised record new arrivals are compared with (its first, most complete record).
    representative_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    merged: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    record_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    member_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class SourceRecord(Base):
    """One member's bibliographic record as loaded, kept verbatim with its provenance."""

    __tablename__ = "source_records"
    __table_args__ = (
        UniqueConstraint("member_id", "record_id", name="uq_source_records_member_record"),
        # Covering for a cluster's live records and their members (a page of hits): the table
        # row puts these columns after the raw record and its JSON, in overflow pages.
        Index("ix_source_records_cluster", "cluster_id", "deleted", "member_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), nullable=False)
    record_id: Mapped[str] = mapped_column(String(80), nullable=False)
    flavour: Mapped[str] = mapped_column(String(10), nullable=False)
    encoding: Mapped[str] = mapped_column(String(20), nullable=False)
    raw: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # sha1 of the raw bytes: a record loaded again unchanged is recognised without parsing.
    fingerprint: Mapped[str] = mapped_column(String(40), nullable=False)
    normalized: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # matching.features_json of the record: what a joining record is compared with, without
    # decoding and folding this one again (None, or another version: derived from normalized).
    features: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="SET NULL"), nullable=True
    )
    match_rule: Mapped[str] = mapped_column(String(60), nullable=False, default="")
    match_score: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    match_detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("load_batches.id"), nullable=True)
    filename: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    file_offset: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class MatchKey(Base):
    """Blocking keys (isbn:, issn:, lccn:, oclc:, title:) of live source records."""

    __tablename__ = "match_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_record_id: Mapped[int] = mapped_column(
        ForeignKey("source_records.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # The record's cluster, kept with its keys (they are written and removed together): finding
    # a key's clusters reads this table alone, not a row of source_records per record holding it
    # (on SQLite that row's cluster_id lies after the raw record, in overflow pages).
    cluster_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Holding(Base):
    """A member's copy of a record: barcode, call number, location, status."""

    __tablename__ = "holdings"
    __table_args__ = (Index("ix_holdings_source_record", "source_record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), nullable=False, index=True)
    source_record_id: Mapped[int] = mapped_column(
        ForeignKey("source_records.id", ondelete="CASCADE"), nullable=False
    )
    barcode: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    call_number: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    location: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    # available, on_loan, in_transit, missing, lost, not_for_loan, on_order
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="available")
    origin: Mapped[str] = mapped_column(String(20), nullable=False, default="")  # 852, 952, csv


class SearchPending(Base):
    """A cluster whose search document is behind its merged record.

    A big load records the clusters each batch touched here, in the batch's own transaction,
    instead of indexing them batch by batch (a cluster four members join would be indexed four
    times); ``consortia.search.index.index_pending`` brings their documents up to date at the
    end of the load, at the next load, or in the background task. No foreign key: a cluster
    gone since is pending too (its document goes)."""

    __tablename__ = "search_pending"

    cluster_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # time.time_ns() of the last mark: a drain removes the row only if it is unchanged since
    # the drain read it (a later mark means a later change it may not have seen).
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)


class QuarantinedRecord(Base):
    """A record that could not be read, kept with the reason and its raw bytes."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), nullable=False, index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("load_batches.id"), nullable=True)
    filename: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    file_offset: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    record_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    raw: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    # set when staff re-submitted it and it loaded
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class HoldingsMapping(Base):
    """A member's own holdings tag and subfields, when it uses neither 852, 952 nor 995."""

    __tablename__ = "holdings_mappings"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(3), nullable=False)
    barcode: Mapped[str] = mapped_column(String(1), nullable=False, default="")
    call_number: Mapped[str] = mapped_column(String(1), nullable=False, default="")
    location: Mapped[str] = mapped_column(String(1), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(1), nullable=False, default="")
