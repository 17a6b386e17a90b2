"""REST routes of service statistics (/api/v1/stats).

Who: the consortium office and every member library's staff and admins see every report for
every member (the figures are counts without personal data; members compare themselves, as the
paper's Table 1 does); member systems may fetch them with their token. Readers may not.

``GET /api/v1/stats/{report}?from=&to=&member=&region=&member_type=&service=&language=``
answers JSON, or a file with ``format=csv`` (one table: ``table=``) or ``format=xlsx`` (every
table); ``/chart.svg`` is the report's chart. ``change`` also takes ``compare_from`` and
``compare_to``; ``impact`` takes ``intervention`` and ``series``. A bad parameter is a 422 that
names it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal, Role
from consortia.errors import Invalid
from consortia.i18n import gettext
from consortia.stats import charts, export, rollup
from consortia.stats import service as stats
from consortia.web.deps import allow, get_db, request_language

router = APIRouter(prefix="/api/v1/stats", tags=["statistics"])

VIEW_ROLES = (Role.consortium_admin, Role.library_admin, Role.library_staff)
API_ROLES = (*VIEW_ROLES, Role.member_system)
MSG_FORMAT = "format: the output format, one of {choices}"

ReportPath = Annotated[str, Path(max_length=20, description="One of " + ", ".join(stats.REPORTS))]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown report"},
    422: {"description": "A parameter is invalid (an unknown member, an inverted period, ...)"},
}


class ReportQuery:
    """The query parameters every report shares, and the report-specific ones."""

    def __init__(
        self,
        start: Annotated[dt.date | None, Query(alias="from", description="First day")] = None,
        end: Annotated[dt.date | None, Query(alias="to", description="Last day")] = None,
        member: Annotated[str | None, Query(max_length=16, description="Member code")] = None,
        region: Annotated[str | None, Query(max_length=40)] = None,
        member_type: Annotated[str | None, Query(max_length=20)] = None,
        service: Annotated[str | None, Query(max_length=12, description="loan or copy")] = None,
        language: Annotated[
            str | None, Query(max_length=12, description="chinese or foreign")
        ] = None,
        compare_from: dt.date | None = None,
        compare_to: dt.date | None = None,
        intervention: dt.date | None = None,
        series: Annotated[str, Query(max_length=20)] = "requests",
    ) -> None:
        self.filters = stats.Filters(start, end, member, region, member_type, service, language)
        self.options = stats.Options(compare_from, compare_to, intervention, series)


def run_report(db: Session, name: str, q: ReportQuery) -> stats.Report:
    return stats.run(db, name, q.filters, q.options)


@router.get("", summary="The reports")
def list_reports(
    request: Request,
    principal: Principal = allow(*API_ROLES),
) -> dict[str, Any]:
    lang = request_language(request)
    return {
        "reports": [
            {"name": name, "title": gettext(lang, stats.TITLES[name])} for name in stats.REPORTS
        ]
    }


@router.get("/rollup", summary="How far the roll-ups have read the event log")
def rollup_state(
    db: Session = Depends(get_db), principal: Principal = allow(Role.consortium_admin)
) -> dict[str, Any]:
    s = rollup.state(db)
    return {
        "last_event_id": s.last_event_id,
        "newest_event_id": s.newest_event_id,
        "events_applied": s.events_applied,
        "gaps": s.gaps,
        "updated_at": s.updated_at,
        "rebuilt_at": s.rebuilt_at,
    }


@router.get("/{report}", responses=ERRORS, summary="A report as JSON, CSV or XLSX")
def get_report(
    report: ReportPath,
    request: Request,
    q: ReportQuery = Depends(),
    format: Annotated[str, Query(max_length=8)] = "json",
    table: Annotated[str | None, Query(max_length=20)] = None,
    db: Session = Depends(get_db),
    principal: Principal = allow(*API_ROLES),
) -> Response:
    if format not in ("json", "csv", "xlsx"):
        raise Invalid(MSG_FORMAT, field="format", choices="json, csv, xlsx")
    lang = request_language(request)
    result = run_report(db, report, q)
    if format == "csv":
        body = export.to_csv(result, table)
        return Response(
            body.encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{export.filename(result, "csv")}"'
            },
        )
    if format == "xlsx":
        return Response(
            export.to_xlsx(result, lang),
            media_type=export.XLSX_TYPE,
            headers={
                "Content-Disposition": f'attachment; filename="{export.filename(result, "xlsx")}"'
            },
        )
    return JSONResponse(export.to_json(result, lang))


@router.get("/{report}/chart.svg", responses=ERRORS, summary="The report's chart (SVG)")
def get_chart(
    report: ReportPath,
    request: Request,
    q: ReportQuery = Depends(),
    db: Session = Depends(get_db),
    principal: Principal = allow(*API_ROLES),
) -> Response:
    lang = request_language(request)
    result = run_report(db, report, q)
    return Response(
        charts.render(result, lang),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=60", "Vary": "Accept-Language, Cookie"},
    )
