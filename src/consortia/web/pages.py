"""Web pages of the shell: home (the consortium and its members by region), members, a member.

Pages only read members (reads outside a service are fine); changes go through the members API.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from consortia.accounts.roles import STAFF_ROLES, Principal, Role
from consortia.errors import Invalid, NotFound
from consortia.members.models import Member, MemberStatus, MemberType, Region
from consortia.web.deps import get_db, public
from consortia.web.templating import render

router = APIRouter(include_in_schema=False)

# Who may see a member's contact person: staff of the consortium and member systems.
CONTACT_ROLES = frozenset({*STAFF_ROLES, Role.member_system})


def _members(db: Session, *where: ColumnElement[bool]) -> list[Member]:
    # By region, the centre first within it, then by code: the order librarians expect.
    stmt = (
        select(Member)
        .join(Region, Region.id == Member.region_id)
        .where(*where)
        .order_by(Region.code, Member.is_centre.desc(), Member.code)
    )
    return list(db.scalars(stmt))


@router.get("/")
def home(
    request: Request, db: Session = Depends(get_db), principal: Principal | None = public()
) -> Response:
    regions = list(db.scalars(select(Region).order_by(Region.code)))
    members = _members(db)
    by_region = [(r, [m for m in members if m.region_id == r.id]) for r in regions]
    suspended = sum(1 for m in members if m.status is MemberStatus.suspended)
    return render(
        request,
        "home.html",
        {
            "by_region": by_region,
            "member_count": len(members),
            "region_count": len(regions),
            "suspended_count": suspended,
        },
    )


def _filter_value(request: Request, name: str) -> str:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise Invalid("Give {name} only once", field=name, name=name)
    value = values[0].strip() if values else ""
    if len(value) > 40:
        raise Invalid("{name}: at most {n} characters", field=name, name=name, n=40)
    return value


@router.get("/members")
def members_page(
    request: Request, db: Session = Depends(get_db), principal: Principal | None = public()
) -> Response:
    """All members as a table; ``?region=&type=&status=`` filter it (empty means all)."""
    region_code = _filter_value(request, "region")
    type_value = _filter_value(request, "type")
    status_value = _filter_value(request, "status")
    regions = list(db.scalars(select(Region).order_by(Region.code)))
    where: list[ColumnElement[bool]] = []
    if region_code:
        region = next((r for r in regions if r.code == region_code), None)
        if region is None:
            raise Invalid("Unknown region: {value}", field="region", value=region_code)
        where.append(Member.region_id == region.id)
    if type_value:
        if type_value not in MemberType.__members__:
            raise Invalid("Unknown member type: {value}", field="type", value=type_value)
        where.append(Member.type == MemberType(type_value))
    if status_value:
        if status_value not in MemberStatus.__members__:
            raise Invalid("Unknown member status: {value}", field="status", value=status_value)
        where.append(Member.status == MemberStatus(status_value))
    members = _members(db, *where)
    total = int(db.scalar(select(func.count()).select_from(Member)) or 0)
    return render(
        request,
        "members.html",
        {
            "members": members,
            "total": total,
            "regions": regions,
            "filters": {"region": region_code, "type": type_value, "status": status_value},
        },
    )


def _endpoints(member: Member) -> list[tuple[str, str]]:
    """A member's network services, labelled by protocol name (the same in both languages)."""
    out: list[tuple[str, str]] = []
    if member.z3950_host:
        port = member.z3950_port or 210
        database = f"/{member.z3950_database}" if member.z3950_database else ""
        out.append(("Z39.50", f"{member.z3950_host}:{port}{database}"))
    if member.sru_url:
        out.append(("SRU", member.sru_url))
    if member.oai_url:
        out.append(("OAI-PMH", member.oai_url))
    if member.iso18626_url:
        out.append(("ISO 18626", member.iso18626_url))
    return out


@router.get("/members/{code:path}")
def member_page(
    code: str,
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> Response:
    member = db.scalar(select(Member).where(Member.code == code))
    if member is None and len(code) <= 16:
        # Codes are ISIL-like and upper-case; send a typed lower-case code to the real page.
        canonical = db.scalar(select(Member.code).where(Member.code == code.upper()))
        if canonical is not None:
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"/members/{canonical}{query}", status_code=308)
    if member is None:
        raise NotFound("Unknown member code: {code}", field="code", code=code[:40])
    backed = list(
        db.scalars(select(Member).where(Member.centre_id == member.id).order_by(Member.code))
    )
    show_contact = principal is not None and principal.role in CONTACT_ROLES
    return render(
        request,
        "member.html",
        {
            "member": member,
            "endpoints": _endpoints(member),
            "backed": backed,
            "show_contact": show_contact,
        },
    )
