"""The statistics dashboard: one page per report, with its filters, chart, tables and exports.

For the consortium office and the member libraries' staff and admins (every member's figures:
they are counts without personal data, and members compare themselves). Missing dates default
to the data: the latest year with requests for most reports, the whole history for the yearly
series and before/after (with the latest member to join as the intervention), the year before
for the compared period; collection overlap looks at the catalogue as it is today.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal
from consortia.errors import DomainError, Invalid
from consortia.i18n import gettext
from consortia.members.models import Region
from consortia.stats import export
from consortia.stats import service as stats
from consortia.stats.api import VIEW_ROLES
from consortia.web.deps import allow, get_db, request_language
from consortia.web.templating import render

router = APIRouter(include_in_schema=False)

FILTER_NAMES = ("from", "to", "member", "region", "member_type", "service", "language")
OPTION_NAMES = ("compare_from", "compare_to", "intervention", "series")
MSG_DATE = "{name}: give a date (YYYY-MM-DD)"


def _text(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    return value.strip()[:40]


def _defaults(db: Session, name: str, given: dict[str, str], today: dt.date) -> dict[str, str]:
    """Fill in missing dates from the data."""
    out = dict(given)
    found = stats.data_range(db)
    first, last = found if found is not None else (today - dt.timedelta(days=364), today)
    if name == "overlap":
        first, last = min(first, today), today
    year_start = max(first, dt.date(last.year, 1, 1))
    if name in ("yearly", "impact", "overlap"):
        out.setdefault("from", first.isoformat())
        out.setdefault("to", last.isoformat())
    else:
        out.setdefault("from", year_start.isoformat())
        out.setdefault("to", last.isoformat())
    start = _date_of(out, "from") or first
    end = _date_of(out, "to") or last
    if name == "change":
        out.setdefault("compare_from", stats.year_earlier(start).isoformat())
        out.setdefault("compare_to", stats.year_earlier(end).isoformat())
    if name == "impact" and "intervention" not in out:
        joins = stats.joins_within(db, start, end)
        middle = start + (end - start) / 2
        out["intervention"] = (joins[-1][0] if joins else middle.replace(day=1)).isoformat()
    return out


@router.get("/stats")
def dashboard(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(*VIEW_ROLES),
) -> Response:
    found = stats.data_range(db)
    return render(
        request,
        "stats/index.html",
        {
            "nav": "stats",
            "reports": [(name, stats.TITLES[name]) for name in stats.REPORTS],
            "first": found[0] if found else None,
            "last": found[1] if found else None,
        },
    )


@router.get("/stats/{report}")
def report_page(
    report: str,
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(*VIEW_ROLES),
) -> Response:
    if report not in stats.REPORTS:
        stats.run(db, report[:40], stats.Filters())  # raises NotFound naming the report
    lang = request_language(request)
    given = {n: _text(request, n) for n in (*FILTER_NAMES, *OPTION_NAMES) if _text(request, n)}
    error: str | None = None
    error_field: str | None = None
    result: stats.Report | None = None
    status = 200
    try:
        params = _defaults(db, report, given, dt.date.today())
        filters = stats.Filters(
            _date_of(params, "from"),
            _date_of(params, "to"),
            params.get("member"),
            params.get("region"),
            params.get("member_type"),
            params.get("service"),
            params.get("language"),
        )
        options = stats.Options(
            _date_of(params, "compare_from"),
            _date_of(params, "compare_to"),
            _date_of(params, "intervention"),
            params.get("series", "requests"),
        )
        result = stats.run(db, report, filters, options)
    except DomainError as exc:
        params = given
        error = exc.render(lambda m: gettext(lang, m))
        error_field = exc.field
        status = exc.status if exc.status != 404 else 422
    query = urlencode({k: v for k, v in params.items() if v})
    members = sorted(stats.all_members(db).values(), key=lambda m: m.code)
    regions = list(db.scalars(select(Region).order_by(Region.code)))
    return render(
        request,
        "stats/report.html",
        {
            "nav": "stats",
            "name": report,
            "title": stats.TITLES[report],
            "params": params,
            "query": query,
            "report": result,
            "error": error,
            "error_field": error_field,
            "members": members,
            "regions": regions,
            "member_types": stats.MEMBER_TYPES,
            "services": stats.SERVICES,
            "languages_": stats.LANGUAGES,
            "series_names": stats.SERIES,
            "series_labels": stats.SERIES_LABELS,
            "phases": stats.PHASES,
            "visible_columns": export.visible_columns,
            "cell": export.cell_text,
            "reports": [(n, stats.TITLES[n]) for n in stats.REPORTS],
        },
        status=status,
    )


def _date_of(params: dict[str, Any], name: str) -> dt.date | None:
    value = params.get(name)
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise Invalid(MSG_DATE, field=name, name=name) from None
