"""The member registry's service: the only module that writes members and regions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal
from consortia.events import service as events
from consortia.members.models import Member, Region


def ensure_region(
    session: Session, actor: Principal, code: str, name_zh: str, name_en: str
) -> Region:
    region = session.scalar(select(Region).where(Region.code == code))
    if region is None:
        region = Region(code=code, name_zh=name_zh, name_en=name_en)
        session.add(region)
        session.flush()
        events.record(
            session,
            actor,
            "region.created",
            "region",
            code,
            {"name_zh": name_zh, "name_en": name_en},
        )
    return region


def import_rows(session: Session, actor: Principal, rows: list[dict[str, str]]) -> list[Member]:
    raise NotImplementedError("members import lands with the member registry")
