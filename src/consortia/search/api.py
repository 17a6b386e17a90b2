"""GET /api/v1/search: the union catalogue as JSON.

``q`` is what a reader types in the search box (``consortia.search.searchbox``), ``cql`` a CQL
query instead; ``facet=language:chi`` (repeatable) narrows to a facet value (values of one
facet are OR'ed, facets AND'ed); ``facets`` names the facets to count (``none`` for none);
``sort`` is ``relevance`` (default), ``title``, ``author``, ``year``, ``publisher``, each with
``-`` for descending, comma-separated. An empty query answers with help, not an error; a query
that is too long or cannot be parsed is a 400 naming the limit or the position.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams

from consortia.accounts.roles import Principal
from consortia.errors import Invalid
from consortia.i18n import gettext
from consortia.search import cql, searchbox, service
from consortia.search.cql import CQLError
from consortia.search.index import FACETS
from consortia.search.query import MAX_QUERY_CHARS, MAX_TERMS, QueryError, is_empty, to_text
from consortia.web.deps import get_db, in_search_lane, public, request_language

router = APIRouter(prefix="/api/v1", tags=["search"])

# Help for an empty search, in the reader's language (msgids in search.po).
HELP_LINES = (
    "Type words from the title, author, subject or publisher; all of them must be found.",
    'Put a phrase in quotes: "united states", or a title in 《》.',
    "Search one field: title:, author:, subject:, publisher:, isbn:, issn:, year:, lang:, "
    "class:, member: (also 题名: 作者: 主题: 出版社:).",
    "Years: year:1990, year:1990-1999, year:>=2000. Truncate with *: comput*.",
    "Combine with OR, exclude with -word. Pinyin finds Chinese titles: zhong yi.",
)


def _query_error(request: Request, exc: QueryError, param: str) -> JSONResponse:
    lang = request_language(request)
    body: dict[str, Any] = {
        "error": exc.code,
        "detail": exc.render(lambda m: gettext(lang, m)),
        "field": param,
        "diagnostic": exc.uri,
    }
    if isinstance(exc, CQLError) and exc.position is not None:
        body["position"] = exc.position
    limit = getattr(exc, "limit", None)
    if limit is not None:
        body["limit"] = limit
    return JSONResponse(body, status_code=exc.status)


# The query parameters, read by hand from the query string (``_args``) and declared here for
# the OpenAPI description: FastAPI's per-request parameter machinery cost about a third of
# this route's time outside the search (0.3 ms a request, measured in process).
_QUERY_PARAMETERS: list[dict[str, Any]] = [
    {"name": name, "in": "query", "required": False, "description": text, "schema": schema}
    for name, text, schema in (
        ("q", "What a reader types in the search box.", {"type": "string"}),
        ("cql", "A CQL query instead.", {"type": "string"}),
        (
            "facet",
            "facet:value filters, e.g. language:chi (repeatable).",
            {"type": "array", "items": {"type": "string"}},
        ),
        ("facets", "Facets to count, comma-separated; none for none.", {"type": "string"}),
        ("sort", "relevance, title, -year, …", {"type": "string"}),
        (
            "offset",
            "Clusters to skip.",
            {"type": "integer", "minimum": 0, "maximum": service.MAX_OFFSET, "default": 0},
        ),
        (
            "limit",
            "Clusters on the page.",
            {"type": "integer", "minimum": 1, "maximum": service.MAX_LIMIT, "default": 20},
        ),
    )
]


_RANGE_MESSAGES = {
    "offset": "offset: between 0 and {limit}",
    "limit": "limit: between 1 and {limit}",
}


def _whole_number(args: QueryParams, name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1  # not a number: refused with the range
    if not low <= value <= high:
        raise Invalid(_RANGE_MESSAGES[name], field=name, limit=high)
    return value


@router.get("/search", response_model=None, openapi_extra={"parameters": _QUERY_PARAMETERS})
async def search(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> Response:
    """Clusters matching the query, with their holdings, the total and the facet counts."""
    return await in_search_lane(_search, request, db)


def _search(request: Request, db: Session) -> Response:
    args = request.query_params
    q, cql_query, facets, sort = (args.get(k) for k in ("q", "cql", "facets", "sort"))
    facet = args.getlist("facet")
    offset = _whole_number(args, "offset", 0, 0, service.MAX_OFFSET)
    limit = _whole_number(args, "limit", 20, 1, service.MAX_LIMIT)
    if q is not None and cql_query is not None and q.strip() and cql_query.strip():
        raise Invalid("Give q or cql, not both.", field="q")
    filters = service.parse_filters(facet or [])
    wanted = _facet_names(facets)
    sort_keys = service.parse_sort(sort)
    try:
        if cql_query is not None and cql_query.strip():
            parsed = cql.parse(cql_query)
            tree = parsed.tree
            if not sort_keys:
                sort_keys = [service.SortKey(k.field, k.ascending) for k in parsed.sort]
        else:
            tree = searchbox.parse(q or "")
    except QueryError as exc:
        return _query_error(request, exc, "cql" if cql_query and cql_query.strip() else "q")
    if is_empty(tree) and not filters:
        lang = request_language(request)
        return _json(
            {
                "query": "",
                "total": 0,
                "hits": [],
                "facets": {},
                "help": [gettext(lang, line) for line in HELP_LINES],
                "limits": {"characters": MAX_QUERY_CHARS, "terms": MAX_TERMS},
            }
        )
    result = service.search(
        db, tree, offset=offset, limit=limit, sort=sort_keys, facets=wanted, filters=filters
    )
    return _json({"query": to_text(tree), **result.as_dict()})


def _json(body: dict[str, Any]) -> Response:
    # The answer is plain JSON data already: orjson writes it in microseconds, where FastAPI's
    # generic encoder walks every hit and holding (milliseconds a page).
    return Response(orjson.dumps(body), media_type="application/json")


def _facet_names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    if names in ([], ["none"]):
        return []
    for n in names:
        if n not in FACETS:
            raise Invalid(
                "facets: each one of {choices}", field="facets", choices=", ".join(FACETS)
            )
    return names
