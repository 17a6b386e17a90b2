"""Tables of resource sharing: requests, the rota of lenders, delivered documents and their
download links, the ISO 18626 outbox and inbox, the copyright policy, notices and the calendar.

Only ``ill/service.py`` (and the modules it drives: delivery, the ISO 18626 endpoint's handler)
writes them. Every state change also appends to the event log; statistics come from the events.

The hot paths read one request row (joined to its current attempt) and write it back, so:

- ``ill_requests`` keeps the hub's state (``states.RequestState``), the current lender and
  ``due_at``, the one next deadline of the request whatever its state (the lender's answer while
  Sent, the loan's due date while a loan is out, the automatic completion of a delivered copy);
  the lending queues and the timers are range scans on (lender, state, due_at), the borrowing
  queues on (borrower, created_at). A transition rewrites one index entry of the request (the
  lender's), which is what lets a year of requests replay in minutes.
- ``ill_lender_attempts`` is the rota: one row per candidate lender, in order (``position``),
  with its score and the reason, and its ISO 18626 status once it was asked.
- ``version`` counts the request's transitions; every write checks it, so that two workers can
  never both advance one request (PostgreSQL also locks the row first).

Enumerated values are plain strings (the values of ``states``' enums); the service checks them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from consortia.db import Base, UTCDateTime, utcnow

# Big tables get 64-bit keys on PostgreSQL (SQLite's INTEGER PRIMARY KEY is already 64-bit).
BigId = BigInteger().with_variant(Integer, "sqlite")


class IllRequest(Base):
    """A reader's request for a loan (returnable) or a copy (non-returnable)."""

    __tablename__ = "ill_requests"
    __table_args__ = (
        # A lender's queue, and the timers (which walk it member by member): every request
        # with a lender is Sent, Shipped, Received or Returned to it, or closed.
        Index("ix_ill_requests_lender_state_due", "lender_id", "state", "due_at"),
        # A borrowing library's requests, newest first. Deliberately without the state: a
        # transition then leaves this index alone (one index less to write per transition).
        Index("ix_ill_requests_borrower_created", "borrower_id", "created_at"),
        # A reader's own requests, and the duplicate check.
        Index("ix_ill_requests_reader_key", "reader_id", "dedupe_key"),
        # A reader's copies of one book in the last days (the copyright share per week).
        Index("ix_ill_requests_reader_cluster_created", "reader_id", "cluster_id", "created_at"),
        # A borrowing library's own request id (ISO 18626 requestingAgencyRequestId) is unique.
        UniqueConstraint("borrower_id", "requester_ref", name="uq_ill_requests_borrower_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The reader (a user with role reader); NULL once anonymised or for a library's own request.
    reader_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # The requesting member (the reader's home library) and where the reader collects it.
    borrower_id: Mapped[int] = mapped_column(ForeignKey("members.id"), nullable=False)
    pickup_id: Mapped[int] = mapped_column(ForeignKey("members.id"), nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # How it came: reader, staff, openurl, api (a member system), iso18626, import.
    via: Mapped[str] = mapped_column(String(12), nullable=False)
    service_type: Mapped[str] = mapped_column(String(12), nullable=False)  # Loan, Copy
    language: Mapped[str] = mapped_column(String(8), nullable=False)  # chinese, foreign

    # What is wanted: a catalogue cluster and/or a citation.
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="SET NULL"), nullable=True
    )
    title: Mapped[str] = mapped_column(Text, nullable=False, default="")  # book or journal
    article_title: Mapped[str] = mapped_column(Text, nullable=False, default="")  # or chapter
    author: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    volume: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    issue: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    pages: Mapped[str] = mapped_column(String(60), nullable=False, default="")
    year: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    issn: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    isbn: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    doi: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    publisher: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    edition: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    needed_by: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")

    state: Mapped[str] = mapped_column(String(12), nullable=False)  # states.RequestState
    # The rota position of the lender that has it now (-1: none asked yet) and that lender.
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=-1)
    lender_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    loan_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Why it ended Unfilled or Cancelled (English msgid; the rota rows hold each lender's).
    outcome: Mapped[str] = mapped_column(Text, nullable=False, default="")

    # The borrowing system's own id for it and its patron (requests from member systems).
    requester_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    patron_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Same reader + same document + same service: an open one refuses a second (sha1 hex).
    dedupe_key: Mapped[str] = mapped_column(String(40), nullable=False)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    shipped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    anonymised_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LenderAttempt(Base):
    """One candidate lender of a request's rota: its place, score and reason, and how it went."""

    __tablename__ = "ill_lender_attempts"
    __table_args__ = (
        UniqueConstraint("request_id", "position", name="uq_ill_lender_attempts_request_pos"),
        # A lender's history (fill rate, turnaround) for routing and statistics: the
        # candidates that were asked only (a new rota writes one entry, not one per candidate).
        Index(
            "ix_ill_lender_attempts_lender_sent",
            "lender_id",
            "sent_at",
            sqlite_where=text("status IS NOT NULL"),
            postgresql_where=text("status IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("ill_requests.id", ondelete="CASCADE"), nullable=False
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    lender_id: Mapped[int] = mapped_column(ForeignKey("members.id"), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    # The score explained, in English (``factors`` holds the parts for translated pages).
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    factors: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # ISO 18626 status of this lender's transaction; NULL while not asked.
    status: Mapped[str | None] = mapped_column(String(30), nullable=True)
    # Why its turn ended without supplying: unfilled, expired, skipped, conditions_rejected,
    # cancelled.
    closed: Mapped[str | None] = mapped_column(String(30), nullable=True)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")  # lender's reason/notes
    # A conditional answer (library use only, a fee, ...) and the requester's decision.
    condition: Mapped[str | None] = mapped_column(Text, nullable=True)
    condition_state: Mapped[str | None] = mapped_column(String(12), nullable=True)
    # The lending system's own id (ISO 18626 supplyingAgencyRequestId).
    supplier_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    renewals: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    renew_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # answer by
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    shipped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeliveredDocument(Base):
    """A file a lender delivered for a copy request (the scan), and its stamped form."""

    __tablename__ = "ill_documents"
    __table_args__ = (Index("ix_ill_documents_request", "request_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("ill_requests.id", ondelete="CASCADE"), nullable=False
    )
    attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("ill_lender_attempts.id", ondelete="SET NULL"), nullable=True
    )
    file_path: Mapped[str] = mapped_column(String(500), nullable=False)
    stamped_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    pages: Mapped[int] = mapped_column(Integer, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The pages of the source it reproduces, as given ("12-30"), for the copyright limits.
    source_pages: Mapped[str] = mapped_column(String(60), nullable=False, default="")
    uploaded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    # The files are removed once every link expired; the row stays for the statistics.
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DownloadLink(Base):
    """An expiring, count-limited link to a delivered document, given to the reader."""

    __tablename__ = "ill_download_links"
    __table_args__ = (
        Index("ix_ill_download_links_document", "document_id"),
        Index("ix_ill_download_links_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("ill_documents.id", ondelete="CASCADE"), nullable=False
    )
    request_id: Mapped[int] = mapped_column(
        ForeignKey("ill_requests.id", ondelete="CASCADE"), nullable=False
    )
    reader_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # sha256 of the token: a stolen database does not yield working links.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    max_downloads: Mapped[int] = mapped_column(Integer, nullable=False)
    downloads: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set by the link-expiry timer once it handled the expiry (idempotence).
    expired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DownloadLog(Base):
    """Every use of a download link, allowed or refused."""

    __tablename__ = "ill_download_log"
    __table_args__ = (Index("ix_ill_download_log_link_at", "link_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    link_id: Mapped[int] = mapped_column(
        ForeignKey("ill_download_links.id", ondelete="CASCADE"), nullable=False
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    address: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    # ok, expired, exhausted, revoked, forbidden
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)


class OutboxRow(Base):
    """An outgoing ISO 18626 message (``outbox.OutboxMessage``), written in the transaction of
    the state change that caused it and kept until the peer confirmed it."""

    __tablename__ = "ill_outbox"
    __table_args__ = (
        Index("ix_ill_outbox_state_next", "state", "next_attempt_at"),
        Index("ix_ill_outbox_request", "request_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("ill_requests.id", ondelete="SET NULL"), nullable=True
    )
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    url: Mapped[str] = mapped_column(String(500), nullable=False)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)  # iso18626.MessageKind
    message_key: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    state: Mapped[str] = mapped_column(String(12), nullable=False)  # outbox.OutboxState
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ReceivedMessage(Base):
    """An ISO 18626 message already handled (by ``iso18626.message_key``): a retry of it gets
    the same answer again and changes nothing."""

    __tablename__ = "ill_received_messages"

    message_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    sender: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("ill_requests.id", ondelete="SET NULL"), nullable=True
    )
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    answer: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class CopyrightPolicy(Base):
    """The consortium's copy limits from a date on; the newest row in force applies.

    A table rather than settings: the consortium office changes it without a restart and the
    history says which rule a past delivery was checked against. No row: ``DEFAULT_POLICY``.
    """

    __tablename__ = "ill_copyright_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    effective_from: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    max_pages_per_request: Mapped[int] = mapped_column(Integer, nullable=False)
    # Of one book, the share (percent of its pages) one reader may receive in seven days.
    max_book_share_percent: Mapped[int] = mapped_column(Integer, nullable=False)
    link_valid_days: Mapped[int] = mapped_column(Integer, nullable=False)
    max_downloads: Mapped[int] = mapped_column(Integer, nullable=False)
    set_by: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class Notice(Base):
    """An e-mail to a reader or a library about a request (written first, sent by a job)."""

    __tablename__ = "ill_notices"
    __table_args__ = (
        Index("ix_ill_notices_state_created", "state", "created_at"),
        Index("ix_ill_notices_request", "request_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("ill_requests.id", ondelete="SET NULL"), nullable=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    email: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    kind: Mapped[str] = mapped_column(String(40), nullable=False)  # e.g. loan_due, delivered
    language: Mapped[str] = mapped_column(String(10), nullable=False, default="zh-CN")
    # The same notice is never written twice (e.g. "loan_due:17:2025-03-01").
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    subject: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class CalendarDay(Base):
    """An exception to Monday-Friday working days: a holiday, or a weekend day worked (调休)."""

    __tablename__ = "ill_calendar"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    working: Mapped[bool] = mapped_column(Boolean, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
