"""Roles and the principal that every request, CLI command and job acts as."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    consortium_admin = "consortium_admin"
    library_admin = "library_admin"
    library_staff = "library_staff"
    reader = "reader"
    # A member library's own system calling the API with a token (Koha, Aleph, FOLIO, ...).
    member_system = "member_system"


STAFF_ROLES = frozenset({Role.consortium_admin, Role.library_admin, Role.library_staff})
ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Principal:
    """Who is acting: a signed-in user, a member system's token, the CLI or the system."""

    kind: str  # "user", "token", "cli", "system"
    label: str  # shown in the event log, e.g. "user:alice", "token:3", "cli"
    role: Role | None = None
    user_id: int | None = None
    member_id: int | None = None
    member_code: str | None = None

    @property
    def is_consortium_admin(self) -> bool:
        return self.kind in ("cli", "system") or self.role is Role.consortium_admin

    def may_act_for(self, member_id: int | None) -> bool:
        """Staff and systems act only for their own library; consortium admins for all."""
        if self.is_consortium_admin:
            return True
        return member_id is not None and self.member_id == member_id


CLI = Principal(kind="cli", label="cli")
SYSTEM = Principal(kind="system", label="system")
