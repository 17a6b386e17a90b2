"""Members of the consortium, their regions, endpoints and lending policy."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, Date, Enum, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from consortia.db import Base, UTCDateTime, utcnow


class MemberType(enum.StrEnum):
    academic = "academic"
    public = "public"
    special = "special"
    school = "school"


class Sector(enum.StrEnum):
    education = "education"
    culture = "culture"
    other = "other"


class MemberStatus(enum.StrEnum):
    active = "active"
    suspended = "suspended"
    left = "left"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK, portable between SQLite and PostgreSQL.
    return Enum(cls, name=name, native_enum=False, length=20, validate_strings=True)


class Region(Base):
    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    name_zh: Mapped[str] = mapped_column(String(200), nullable=False)
    name_en: Mapped[str] = mapped_column(String(200), nullable=False)


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    name_zh: Mapped[str] = mapped_column(String(200), nullable=False)
    name_en: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[MemberType] = mapped_column(_enum(MemberType, "member_type"), nullable=False)
    sector: Mapped[Sector] = mapped_column(_enum(Sector, "member_sector"), nullable=False)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), nullable=False, index=True)
    is_centre: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    status: Mapped[MemberStatus] = mapped_column(
        _enum(MemberStatus, "member_status"), nullable=False, default=MemberStatus.active
    )
    joined_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    status_since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    left_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)

    contact_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    contact_email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    contact_phone: Mapped[str | None] = mapped_column(String(60), nullable=True)

    z3950_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    z3950_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    z3950_database: Mapped[str | None] = mapped_column(String(120), nullable=True)
    sru_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    oai_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    iso18626_url: Mapped[str | None] = mapped_column(String(500), nullable=True)

    lends_loans: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    lends_copies: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    max_open_lending: Mapped[int] = mapped_column(Integer, nullable=False, default=500)
    days_to_respond: Mapped[int] = mapped_column(Integer, nullable=False, default=2)
    loan_period_days: Mapped[int] = mapped_column(Integer, nullable=False, default=30)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )

    region: Mapped[Region] = relationship(lazy="joined")
    centre: Mapped[Member | None] = relationship(remote_side=[id], lazy="joined", join_depth=1)
