"""The member registry's service: the only module that writes members and regions.

Every write appends an event (``member.created``, ``member.updated``, ``member.suspended``,
``member.reinstated``, ``region.created``) attributed to the actor. Member codes are matched
without regard to case, as ISIL codes are (ISO 15511), so ``cn-gzucm`` cannot sit beside
``CN-GZUCM``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from consortia.accounts.roles import Principal, Role
from consortia.errors import Conflict, Forbidden, NotFound
from consortia.events import service as events
from consortia.members.models import Member, MemberStatus, MemberType, Region, Sector
from consortia.members.schemas import (
    DEFAULT_SECTOR,
    R_UNKNOWN_FIELD,
    SELF_SERVICE_FIELDS,
    FieldInvalid,
    ImportRefused,
    MemberCreate,
    MemberUpdate,
    Problem,
    explain,
    parse,
)

FIELDS: tuple[str, ...] = tuple(MemberCreate.model_fields)
REQUIRED_COLUMNS = ("code", "name_zh", "name_en", "type", "region")
Z3950_DEFAULT_PORT = 210  # the port IANA assigned to Z39.50
MAX_PAGE = 500

# msgids of the registry's own rules (beyond a single field's format).
R_OWN_CENTRE = "a member cannot be its own centre"
R_NO_CENTRE = "is not a member: {code}"
R_NOT_A_CENTRE = "{code} is not a regional centre"
R_HAS_DEPENDANTS = "members still belong to this centre: {codes}"
R_NEEDS_HOST = "is required when a Z39.50 port or database is given"
R_LEFT_BEFORE_JOINED = "must not be before joined_on"
R_LEFT_ONLY = "must be empty unless status is left"
R_IN_REGISTRY = "is already in the registry: {code}"
R_TWICE = "appears twice in this file (also on line {line})"
R_COLUMN_MISSING = "is a required column"
R_EXTRA_CELLS = "has more cells than the header"
R_PAGE_OFFSET = "must be 0 or more"
R_PAGE_LIMIT = "must be between 1 and {max}"


def today() -> dt.date:
    return dt.date.today()


def _json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def snapshot(m: Member) -> dict[str, Any]:
    """A member's fields under their API names (region and centre as codes), JSON-safe."""
    out: dict[str, Any] = {}
    for name in FIELDS:
        if name == "region":
            out[name] = m.region.code
        elif name == "centre":
            out[name] = m.centre.code if m.centre is not None else None
        else:
            out[name] = _json(getattr(m, name))
    return out


# --- look-ups -------------------------------------------------------------------------------


def _find(session: Session, code: str) -> Member | None:
    return session.scalar(select(Member).where(func.upper(Member.code) == code.strip().upper()))


def get_member(session: Session, code: str) -> Member:
    member = _find(session, code)
    if member is None:
        raise NotFound("Unknown member code: {code}", field="code", code=code)
    return member


def find_region(session: Session, code: str) -> Region | None:
    return session.scalar(select(Region).where(func.lower(Region.code) == code.strip().lower()))


def ensure_region(
    session: Session, actor: Principal, code: str, name_zh: str, name_en: str
) -> Region:
    region = find_region(session, code)
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


def _region(session: Session, actor: Principal, code: str) -> Region:
    # A consortium office adds a region by naming it; its names start as its code.
    return ensure_region(session, actor, code, code, code)


def list_members(
    session: Session,
    *,
    region: str | None = None,
    type: MemberType | None = None,
    sector: Sector | None = None,
    status: MemberStatus | None = None,
    is_centre: bool | None = None,
    centre: str | None = None,
    q: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Member], int]:
    """One page of members ordered by code, and how many match in all."""
    if offset < 0:
        raise FieldInvalid("offset", R_PAGE_OFFSET)
    if not 1 <= limit <= MAX_PAGE:
        raise FieldInvalid("limit", R_PAGE_LIMIT, max=MAX_PAGE)
    where: list[ColumnElement[bool]] = []
    if region:
        ids = select(Region.id).where(func.lower(Region.code) == region.strip().lower())
        where.append(Member.region_id.in_(ids))
    if type is not None:
        where.append(Member.type == type)
    if sector is not None:
        where.append(Member.sector == sector)
    if status is not None:
        where.append(Member.status == status)
    if is_centre is not None:
        where.append(Member.is_centre == is_centre)
    if centre:
        c = aliased(Member)
        where.append(
            Member.centre_id.in_(select(c.id).where(func.upper(c.code) == centre.strip().upper()))
        )
    if q and q.strip():
        text = q.strip()
        where.append(
            or_(
                Member.code.icontains(text, autoescape=True),
                Member.name_zh.icontains(text, autoescape=True),
                Member.name_en.icontains(text, autoescape=True),
            )
        )
    total = session.scalar(select(func.count(Member.id)).where(*where)) or 0
    page = session.scalars(
        select(Member).where(*where).order_by(Member.code).offset(offset).limit(limit)
    )
    return list(page), total


# --- rules that span fields -----------------------------------------------------------------


def _centre_problem(
    code: str, centre: str | None, lookup: Callable[[str], bool | None]
) -> Problem | None:
    """``lookup(code)`` says True (a centre), False (a member, not a centre) or None (unknown)."""
    if centre is None:
        return None
    if centre.upper() == code.upper():
        return Problem("centre", R_OWN_CENTRE)
    found = lookup(centre)
    if found is None:
        return Problem("centre", R_NO_CENTRE, {"code": centre})
    if not found:
        return Problem("centre", R_NOT_A_CENTRE, {"code": centre})
    return None


def _rule_problems(values: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    if not values.get("z3950_host") and (
        values.get("z3950_port") is not None or values.get("z3950_database")
    ):
        out.append(Problem("z3950_host", R_NEEDS_HOST))
    left_on, joined_on = values.get("left_on"), values.get("joined_on")
    if left_on is not None and values.get("status") != MemberStatus.left:
        out.append(Problem("left_on", R_LEFT_ONLY))
    elif left_on is not None and joined_on is not None and left_on < joined_on:
        out.append(Problem("left_on", R_LEFT_BEFORE_JOINED))
    return out


def _fill_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """Values a new member takes when the input leaves them out."""
    if values.get("sector") is None:
        values["sector"] = DEFAULT_SECTOR[MemberType(values["type"])]
    if values.get("z3950_host") and values.get("z3950_port") is None:
        values["z3950_port"] = Z3950_DEFAULT_PORT
    status = MemberStatus(values["status"])
    if values.get("status_since") is None:
        joined = values.get("joined_on")
        values["status_since"] = joined if status is MemberStatus.active and joined else today()
    if status is MemberStatus.left and values.get("left_on") is None:
        values["left_on"] = values["status_since"]
    return values


def _centre_lookup(session: Session) -> Callable[[str], bool | None]:
    def lookup(code: str) -> bool | None:
        found = _find(session, code)
        return None if found is None else found.is_centre

    return lookup


def _first(problems: list[Problem]) -> None:
    if problems:
        p = problems[0]
        raise FieldInvalid(p.field, p.reason, **p.params)


# --- writes ---------------------------------------------------------------------------------


def _build(session: Session, region: Region, values: Mapping[str, Any]) -> Member:
    """A new Member from checked values; its centre is set by the caller."""
    columns = {k: v for k, v in values.items() if k not in ("region", "centre")}
    member = Member(**columns, region=region)
    session.add(member)
    return member


def create_member(
    session: Session, actor: Principal, data: MemberCreate | Mapping[str, Any]
) -> Member:
    """Add one member. 409 when the code exists; 422 naming the field for bad input."""
    _require_admin(actor)
    new = data if isinstance(data, MemberCreate) else parse(MemberCreate, data)
    if _find(session, new.code) is not None:
        raise Conflict("Member code already exists: {code}", field="code", code=new.code)
    values = _fill_defaults(new.model_dump())
    problem = _centre_problem(new.code, new.centre, _centre_lookup(session))
    _first(([problem] if problem else []) + _rule_problems(values))
    centre = _find(session, new.centre) if new.centre else None
    try:
        with session.begin_nested():  # a concurrent insert of the same code loses cleanly
            member = _build(session, _region(session, actor, values["region"]), values)
            member.centre = centre
            session.flush()
    except IntegrityError:
        raise Conflict("Member code already exists: {code}", field="code", code=new.code) from None
    events.record(
        session, actor, "member.created", "member", member.code, snapshot(member), member.id
    )
    return member


def _require_admin(actor: Principal) -> None:
    if not actor.is_consortium_admin:
        raise Forbidden("Only the consortium office may do this")


def _check_update_rights(actor: Principal, member: Member, fields: Iterable[str]) -> None:
    if actor.is_consortium_admin:
        return
    if actor.role is not Role.library_admin or actor.member_id != member.id:
        raise Forbidden("You may change only your own library's record", field="code")
    for name in sorted(fields):
        if name not in SELF_SERVICE_FIELDS:
            raise Forbidden("Your role may not change {name}", field=name, name=name)


def update_member(
    session: Session,
    actor: Principal,
    code: str,
    changes: MemberUpdate | Mapping[str, Any],
) -> Member:
    """PATCH a member: only the given fields change. A library admin may change only its own
    library's contacts, endpoints and lending policy."""
    patch = changes if isinstance(changes, MemberUpdate) else parse(MemberUpdate, changes)
    given = patch.model_dump(exclude_unset=True)
    member = get_member(session, code)
    _check_update_rights(actor, member, given)
    before = snapshot(member)
    merged: dict[str, Any] = {
        k: (getattr(member, k) if k not in ("region", "centre") else before[k]) for k in FIELDS
    }
    merged.update(given)
    if "status" in given and given["status"] != member.status:
        merged["status_since"] = given.get("status_since") or today()
        if given["status"] is MemberStatus.left:
            merged["left_on"] = given.get("left_on") or merged["status_since"]
        elif "left_on" not in given:
            merged["left_on"] = None  # rejoining: the old leaving date no longer holds
    if merged.get("z3950_host") and merged.get("z3950_port") is None:
        merged["z3950_port"] = Z3950_DEFAULT_PORT
    problems: list[Problem] = []
    if "centre" in given:
        problem = _centre_problem(member.code, merged["centre"], _centre_lookup(session))
        problems += [problem] if problem else []
    if given.get("is_centre") is False and member.is_centre:
        dependants = session.scalars(
            select(Member.code).where(Member.centre_id == member.id).order_by(Member.code)
        ).all()
        if dependants:
            problems.append(
                Problem("is_centre", R_HAS_DEPENDANTS, {"codes": ", ".join(dependants)})
            )
    problems += _rule_problems(merged)
    _first(problems)

    for name, value in merged.items():
        if name == "region":
            if value != before["region"]:
                member.region = _region(session, actor, value)
        elif name == "centre":
            if value != before["centre"]:
                member.centre = _find(session, value) if value else None
        elif name != "code":
            setattr(member, name, value)
    session.flush()
    after = snapshot(member)
    diff = {k: [before[k], after[k]] for k in FIELDS if before[k] != after[k]}
    if diff:
        events.record(
            session, actor, "member.updated", "member", member.code, {"changes": diff}, member.id
        )
    if "region" in diff:
        # Search facets carry the holding members' regions: redo this member's clusters in the
        # same transaction, so the region facet never disagrees with the registry.
        from consortia.search.index import reindex_member

        reindex_member(session.connection(), member.code)
    return member


def suspend_member(session: Session, actor: Principal, code: str, reason: str = "") -> Member:
    """Suspend a member: it stays listed, marked suspended, from today."""
    _require_admin(actor)
    member = get_member(session, code)
    if member.status is MemberStatus.suspended:
        raise Conflict("Member {code} is already suspended", field="status", code=member.code)
    if member.status is MemberStatus.left:
        raise Conflict("Member {code} has left the consortium", field="status", code=member.code)
    return _set_status(session, actor, member, MemberStatus.suspended, "member.suspended", reason)


def reinstate_member(session: Session, actor: Principal, code: str, reason: str = "") -> Member:
    """End a suspension: the member is active again from today."""
    _require_admin(actor)
    member = get_member(session, code)
    if member.status is not MemberStatus.suspended:
        raise Conflict("Member {code} is not suspended", field="status", code=member.code)
    return _set_status(session, actor, member, MemberStatus.active, "member.reinstated", reason)


def _set_status(
    session: Session,
    actor: Principal,
    member: Member,
    status: MemberStatus,
    action: str,
    reason: str,
) -> Member:
    previous = member.status
    member.status = status
    member.status_since = today()
    session.flush()
    payload = {
        "from": previous.value,
        "to": status.value,
        "since": member.status_since.isoformat(),
        "reason": reason.strip(),
    }
    events.record(session, actor, action, "member", member.code, payload, member.id)
    return member


# --- import ---------------------------------------------------------------------------------


def import_rows(
    session: Session,
    actor: Principal,
    rows: list[dict[str, str]],
    lines: list[int] | None = None,
) -> list[Member]:
    """Add every row as a new member, or none: all bad rows are reported at once.

    ``rows`` are CSV rows keyed by the API's field names (``csv.DictReader``); an empty cell
    means "not given". ``lines`` are the rows' line numbers in the file (default: header on
    line 1, one line per row). A row may name as its centre a member defined later in the file.
    """
    _require_admin(actor)
    if lines is None:
        lines = [i + 2 for i in range(len(rows))]
    header = _header_problems(rows)
    if header:
        raise ImportRefused(header)

    problems: list[Problem] = []
    parsed: list[tuple[int, MemberCreate]] = []
    for line, row in zip(lines, rows, strict=True):
        if row.get(None):  # type: ignore[call-overload]  # DictReader keys surplus cells None
            problems.append(Problem("row", R_EXTRA_CELLS, line=line))
            continue
        cells = {k: v.strip() for k, v in row.items() if k and v is not None and v.strip()}
        try:
            parsed.append((line, MemberCreate.model_validate(cells)))
        except ValidationError as exc:
            problems += explain(exc, line)

    first_line: dict[str, int] = {}
    for line, new in parsed:
        key = new.code.upper()
        if key in first_line:
            problems.append(Problem("code", R_TWICE, {"line": first_line[key]}, line))
        else:
            first_line[key] = line
    existing = {
        c.upper(): c
        for c in session.scalars(
            select(Member.code).where(func.upper(Member.code).in_(list(first_line)))
        )
    }
    in_file = {new.code.upper(): new.is_centre for _, new in parsed}
    wanted = {new.centre.upper() for _, new in parsed if new.centre} - set(in_file)
    in_registry = {
        code.upper(): is_centre
        for code, is_centre in session.execute(
            select(Member.code, Member.is_centre).where(func.upper(Member.code).in_(list(wanted)))
        )
    }

    def lookup(code: str) -> bool | None:
        key = code.upper()
        return in_file[key] if key in in_file else in_registry.get(key)

    prepared: list[tuple[MemberCreate, dict[str, Any]]] = []
    for line, new in parsed:
        if new.code.upper() in existing:
            problems.append(
                Problem("code", R_IN_REGISTRY, {"code": existing[new.code.upper()]}, line)
            )
        values = _fill_defaults(new.model_dump())
        row_problems = _rule_problems(values)
        centre_problem = _centre_problem(new.code, new.centre, lookup)
        if centre_problem:
            row_problems.insert(0, centre_problem)
        problems += [Problem(p.field, p.reason, p.params, line) for p in row_problems]
        prepared.append((new, values))
    if problems:
        problems.sort(
            key=lambda p: (p.line or 0, FIELDS.index(p.field) if p.field in FIELDS else -1)
        )
        raise ImportRefused(problems)

    regions: dict[str, Region] = {}
    for _, values in prepared:
        key = values["region"].lower()
        if key not in regions:
            regions[key] = _region(session, actor, values["region"])
    created = {
        new.code.upper(): _build(session, regions[values["region"].lower()], values)
        for new, values in prepared
    }
    session.flush()
    for new, _ in prepared:
        if new.centre:
            key = new.centre.upper()
            created[new.code.upper()].centre = created.get(key) or _find(session, new.centre)
    session.flush()
    for member in created.values():
        events.record(
            session, actor, "member.created", "member", member.code, snapshot(member), member.id
        )
    return list(created.values())


def _header_problems(rows: list[dict[str, str]]) -> list[Problem]:
    if not rows:
        return []
    columns = [k for k in rows[0] if k is not None]
    out = [Problem(c, R_COLUMN_MISSING, line=1) for c in REQUIRED_COLUMNS if c not in columns]
    out += [
        Problem(c, R_UNKNOWN_FIELD, line=1) for c in columns if c not in FIELDS and c.strip() != ""
    ]
    return out
