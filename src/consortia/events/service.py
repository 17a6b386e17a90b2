"""Appending to the event log. Domains call ``record`` inside their own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal
from consortia.events.models import Event


def record(
    session: Session,
    actor: Principal,
    action: str,
    entity_type: str,
    entity_id: str | int,
    payload: dict[str, Any] | None = None,
    member_id: int | None = None,
) -> Event:
    """Append one event; it commits (or rolls back) with the caller's transaction."""
    ev = Event(
        actor=actor.label,
        actor_user_id=actor.user_id,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        member_id=member_id,
        payload=payload or {},
    )
    session.add(ev)
    return ev


def history(session: Session, entity_type: str, entity_id: str | int) -> list[Event]:
    stmt = (
        select(Event)
        .where(Event.entity_type == entity_type, Event.entity_id == str(entity_id))
        .order_by(Event.id)
    )
    return list(session.scalars(stmt))
