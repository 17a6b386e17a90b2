"""Web pages of the shell: home (the consortium and its members by region), members, language."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal
from consortia.members.models import Member, Region
from consortia.web.deps import get_db, public
from consortia.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(
    request: Request, db: Session = Depends(get_db), principal: Principal | None = public()
) -> Response:
    regions = list(db.scalars(select(Region).order_by(Region.code)))
    members = list(db.scalars(select(Member).order_by(Member.code)))
    by_region = [(r, [m for m in members if m.region_id == r.id]) for r in regions]
    return render(request, "home.html", {"by_region": by_region, "member_count": len(members)})
