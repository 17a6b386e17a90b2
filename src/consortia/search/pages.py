"""The reader's search pages: results with facets, holdings, sorts and paging; search tips for an
empty box; an advanced form; and the suggestions behind every page's search box.

The HTML face of the same service calls as ``search/api.py`` (``searchbox.parse`` →
``service.search``); pages parse, call the service and render. Nothing a reader types is a
server error: an empty box is the tips page, a query over the limits is a 400 page naming the
limit, a bad facet or sort is a 4xx naming the parameter.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal
from consortia.errors import Invalid
from consortia.i18n import gettext
from consortia.members.models import Member, Region
from consortia.search import cjk, searchbox, service
from consortia.search.query import (
    MAX_QUERY_CHARS,
    MAX_TERMS,
    Node,
    Phrase,
    QueryError,
    Term,
    check_length,
    is_empty,
)
from consortia.search.service import SearchResult
from consortia.web.deps import get_db, in_search_lane, public, request_language
from consortia.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
MAX_PAGE = service.MAX_OFFSET // PAGE_SIZE + 1
# The sorts the page offers (any sort the API takes also works in the URL).
SORTS = ("relevance", "-year", "year", "title", "author")
FACET_ORDER = (
    "language_group",
    "language",
    "year",
    "material",
    "member",
    "region",
    "classification",
)
FACET_SHOWN = 8  # values listed before "more"; the rest open in a <details>
HOLDERS_SHOWN = 4  # holding libraries named under a hit before "and N more"
PAGER_SPAN = 2  # page links either side of the current one

SUGGESTIONS = 8
SUGGEST_TITLES = 5  # titles first, then authors, then titles again up to SUGGESTIONS
SUGGEST_CHARS = 100  # a longer prefix is a query, not something to complete
SUGGEST_FIELDS = ("any", "title", "author")

# Query words with a meaning of their own: a suggested title holding one goes in quotes.
_SYNTAX_CHARS = re.compile(r'["()《》「」“”|*:：]')
_SYNTAX_WORDS = frozenset({"OR", "AND", "NOT"})

# ISO 639-2 codes of records → BCP 47 tags for lang="" (screen readers and CJK fonts).
_HTML_LANG = {
    "chi": "zh",
    "eng": "en",
    "jpn": "ja",
    "kor": "ko",
    "rus": "ru",
    "fre": "fr",
    "ger": "de",
    "spa": "es",
    "ita": "it",
    "por": "pt",
    "lat": "la",
    "ara": "ar",
    "heb": "he",
}

# The advanced form's fields and the search-box prefix each becomes.
ADVANCED_FIELDS = ("title", "author", "subject", "publisher", "isbn")
ADVANCED_LANGUAGES = ("chi", "eng", "jpn", "rus", "ger", "fre")
ADVANCED_MATERIALS = ("book", "ebook", "serial", "score", "map", "sound", "video", "manuscript")
ADVANCED_CHARS = 300  # per field: the whole query still meets MAX_QUERY_CHARS


# ---------------------------------------------------------------------------- links


def search_url(q: str = "", facets: Sequence[str] = (), sort: str = "", page: int = 1) -> str:
    """/search with these parameters (the defaults left out, so links stay short)."""
    params: list[tuple[str, str]] = []
    if q:
        params.append(("q", q))
    params += [("facet", f) for f in facets]
    if sort and sort != "relevance":
        params.append(("sort", sort))
    if page > 1:
        params.append(("page", str(page)))
    return "/search?" + urlencode(params) if params else "/search"


def _sort_name(keys: Sequence[service.SortKey]) -> str:
    return ",".join(("" if k.ascending else "-") + k.field for k in keys) or "relevance"


def _same_filter(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return a[0] == b[0] and cjk.fold(a[1]).strip() == cjk.fold(b[1]).strip()


# ---------------------------------------------------------------------------- views


def _names(db: Session, lang: str, facets: dict[str, list[dict[str, Any]]], filters: Any) -> Any:
    """Member and region names in the page's language for the codes on the page."""
    codes = {v["value"] for v in facets.get("member", [])} | {
        v for f, v in filters if f == "member"
    }
    regions = {v["value"] for v in facets.get("region", [])} | {
        v for f, v in filters if f == "region"
    }
    out: dict[str, dict[str, str]] = {"member": {}, "region": {}}

    def local(zh: str | None, en: str | None) -> str:
        return (zh if lang == "zh-CN" else en) or en or zh or ""

    if codes:
        folded = {cjk.keyword("member", c) for c in codes}
        for code, zh, en in db.execute(
            select(Member.code, Member.name_zh, Member.name_en).where(Member.code.in_(folded))
        ):
            out["member"][code] = local(zh, en)
    if regions:
        for code, zh, en in db.execute(
            select(Region.code, Region.name_zh, Region.name_en).where(Region.code.in_(regions))
        ):
            out["region"][code] = local(zh, en)
    return out


def _facet_views(
    result: SearchResult,
    filters: list[tuple[str, str]],
    raw_filters: list[str],
    q: str,
    sort: str,
) -> list[dict[str, Any]]:
    """Each facet with its values: count, whether it is a filter now, and the link that adds or
    removes it (back to the first page: the result set changes)."""
    views = []
    for facet in FACET_ORDER:
        values: list[dict[str, Any]] = []
        for entry in result.facets.get(facet, []):
            pair = (facet, str(entry["value"]))
            chosen = [i for i, f in enumerate(filters) if _same_filter(f, pair)]
            if chosen:
                kept = [r for i, r in enumerate(raw_filters) if i not in chosen]
            else:
                kept = [*raw_filters, f"{facet}:{entry['value']}"]
            values.append(
                {
                    "value": pair[1],
                    "count": entry["count"],
                    "selected": bool(chosen),
                    "href": search_url(q, kept, sort),
                }
            )
        # A filter whose value is not among the counted ones still shows, to be removed.
        for i, (f, v) in enumerate(filters):
            if f == facet and not any(_same_filter((f, v), (facet, x["value"])) for x in values):
                kept = [r for j, r in enumerate(raw_filters) if j != i]
                values.append(
                    {"value": v, "count": None, "selected": True, "href": search_url(q, kept, sort)}
                )
        if values:
            # Chosen values first, so that they never hide behind "more".
            values.sort(key=lambda x: not x["selected"])
            views.append(
                {
                    "name": facet,
                    "values": values,
                    "shown": values[:FACET_SHOWN],
                    "more": values[FACET_SHOWN:],
                }
            )
    return views


def _holders(hit: dict[str, Any], lang: str) -> dict[str, Any]:
    """Who holds a hit, in the page's language: libraries with a copy on the shelf first."""
    holders = []
    for h in hit.get("holdings", []):
        name = (h["name_zh"] if lang == "zh-CN" else h["name_en"]) or h["name_en"] or h["member"]
        if h["available"]:
            state = "available"
        elif h["items"]:
            state = "out"
        else:
            state = "unknown"
        holders.append(
            {
                "code": h["member"],
                "name": name,
                "state": state,
                "active": h["member_status"] == "active",
                "status": h["member_status"],
                "call_number": (h["call_numbers"] or [""])[0],
            }
        )
    order = {"available": 0, "unknown": 1, "out": 2}
    holders.sort(key=lambda x: (not x["active"], order[x["state"]], x["code"]))
    return {
        "list": holders,
        "shown": holders[:HOLDERS_SHOWN],
        "more": max(0, len(holders) - HOLDERS_SHOWN),
        "on_shelf": sum(1 for x in holders if x["state"] == "available" and x["active"]),
        "out": sum(1 for x in holders if x["state"] == "out" or not x["active"]),
        "count": len(holders),
    }


def _hit_view(hit: dict[str, Any], lang: str) -> dict[str, Any]:
    languages = hit.get("languages") or []
    html_lang = next((_HTML_LANG[c] for c in languages if c in _HTML_LANG), "")
    names = [a.get("vernacular") or a.get("name") for a in hit.get("authors", [])]
    return {
        **hit,
        "html_lang": html_lang,
        "romanised_lang": f"{html_lang}-Latn" if html_lang in ("zh", "ja", "ko", "ru") else "",
        "names": [n for n in names if n][:3],
        "holders": _holders(hit, lang),
    }


def _pager(q: str, facets: list[str], sort: str, page: int, pages: int) -> dict[str, Any]:
    low, high = max(1, page - PAGER_SPAN), min(pages, page + PAGER_SPAN)
    numbers: list[int | None] = []
    if low > 1:
        numbers += [1] + ([None] if low > 2 else [])
    numbers += list(range(low, high + 1))
    if high < pages:
        numbers += ([None] if high < pages - 1 else []) + [pages]
    return {
        "page": page,
        "pages": pages,
        "prev": search_url(q, facets, sort, page - 1) if page > 1 else None,
        "next": search_url(q, facets, sort, page + 1) if page < pages else None,
        "links": [
            {"number": n, "href": search_url(q, facets, sort, n) if n else None} for n in numbers
        ],
    }


# ---------------------------------------------------------------------------- pages


@router.get("/search")
async def search_page(
    request: Request,
    q: Annotated[str | None, Query()] = None,
    facet: Annotated[list[str] | None, Query()] = None,
    sort: Annotated[str | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> Response:
    """Results for what the reader typed; the search tips when the box is empty."""
    return await in_search_lane(_search_page, request, q, facet, sort, page, db, principal)


def _search_page(
    request: Request,
    q: str | None,
    facet: list[str] | None,
    sort: str | None,
    page: int,
    db: Session,
    principal: Principal | None,
) -> Response:
    lang = request_language(request)
    text = q or ""
    raw_filters = [f for f in (facet or []) if f.strip()]
    base: dict[str, Any] = {
        "nav": "search",
        "search_query": text[:MAX_QUERY_CHARS],
        "limits": {"characters": MAX_QUERY_CHARS, "terms": MAX_TERMS},
    }
    try:
        tree = searchbox.parse(text)
    except QueryError as exc:
        return render(
            request,
            "search/results.html",
            {
                **base,
                "error": exc.render(lambda m: gettext(lang, m)),
                "error_code": exc.code,
                "tips_url": "/search",
            },
            status=exc.status,
        )
    filters = service.parse_filters(raw_filters)
    sort_keys = service.parse_sort(sort)
    if is_empty(tree) and not filters:
        return render(request, "search/tips.html", {**base, **_advanced_context()})
    result = service.search(
        db,
        tree,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
        sort=sort_keys,
        filters=filters,
    )
    sort_name = _sort_name(sort_keys)
    pages = max(1, min(MAX_PAGE, math.ceil(result.total / PAGE_SIZE)))
    hits = [_hit_view(h, lang) for h in result.hits]
    active = [
        {
            "facet": f,
            "value": v,
            "href": search_url(text, [r for j, r in enumerate(raw_filters) if j != i], sort_name),
        }
        for i, (f, v) in enumerate(filters)
    ]
    return render(
        request,
        "search/results.html",
        {
            **base,
            "q": text,
            "result": result,
            "hits": hits,
            "first": result.offset + 1,
            "last": result.offset + len(hits),
            "facets": _facet_views(result, filters, raw_filters, text, sort_name),
            "names": _names(db, lang, result.facets, filters),
            "active_filters": active,
            "clear_filters": search_url(text, [], sort_name) if filters else None,
            "sort": sort_name,
            "sorts": [
                {"name": s, "href": search_url(text, raw_filters, s), "current": s == sort_name}
                for s in SORTS
            ],
            "pager": _pager(text, raw_filters, sort_name, page, pages),
        },
    )


def _advanced_context() -> dict[str, Any]:
    return {
        "advanced_fields": ADVANCED_FIELDS,
        "advanced_languages": ADVANCED_LANGUAGES,
        "advanced_materials": ADVANCED_MATERIALS,
        "advanced_chars": ADVANCED_CHARS,
    }


def _group(text: str) -> str:
    """A form field's words as a search-box group: characters that would end the group or
    start a phrase are spaces, so what the reader typed stays words of that field."""
    cleaned = re.sub(r'[()"《》“”「」]', " ", unicodedata.normalize("NFKC", text))
    words = [w for w in cleaned.split() if w not in _SYNTAX_WORDS and w.strip("-+")]
    return " ".join(w.lstrip("-+") for w in words)


@router.get("/search/advanced")
def advanced_search(
    request: Request,
    principal: Principal | None = public(),
) -> Response:
    """The advanced form's answer: the fields written as one search-box query (so readers see
    the syntax that does the same), then the results page. Nothing filled in: the tips page."""
    params = request.query_params
    joiner = " OR " if params.get("match") == "any" else " "
    parts: list[str] = []
    for name in ("all", *ADVANCED_FIELDS):
        value = params.get(name, "")
        if len(value) > ADVANCED_CHARS:
            raise Invalid("{name}: at most {n} characters", field=name, name=name, n=ADVANCED_CHARS)
        words = _group(value)
        if not words:
            continue
        if name == "all":
            parts.append(f"({words})" if joiner != " " and " " in words else words)
        else:
            parts.append(f"{name}:({words})" if " " in words else f"{name}:{words}")
    years = [params.get("year_from", "").strip(), params.get("year_to", "").strip()]
    for value, name in zip(years, ("year_from", "year_to"), strict=True):
        if value and not (value.isdigit() and len(value) <= 4):
            raise Invalid("{name}: a year of up to four digits", field=name, name=name)
    query = joiner.join(parts)
    if any(years):
        year = f"year:{years[0]}-{years[1]}" if years[0] != years[1] else f"year:{years[0]}"
        query = f"({query}) {year}" if joiner != " " and len(parts) > 1 else f"{query} {year}"
    facets: list[str] = []
    language = params.get("language", "")
    if language in ADVANCED_LANGUAGES:
        facets.append(f"language:{language}")
    material = params.get("material", "")
    if material in ADVANCED_MATERIALS:
        facets.append(f"material:{material}")
    return RedirectResponse(search_url(query.strip(), facets), status_code=303)


# ---------------------------------------------------------------------------- suggestions


def _box_value(title: str) -> str:
    """What a chosen title puts in the search box: the title itself, quoted when one of its
    characters or words means something to the search box."""
    title = " ".join(title.split())
    words = title.split()
    if _SYNTAX_CHARS.search(title) or any(w in _SYNTAX_WORDS or w[0] in "-+" for w in words):
        return '"' + re.sub(r'["“”]', " ", title).strip() + '"'
    return title


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _prefix_of(text: str) -> tuple[str, str] | None:
    """The field and words to complete, when the box holds plain words (optionally with a
    title or author prefix); None for anything else (years, ISBNs, OR, exclusions ...)."""
    tree: Node = searchbox.parse(text)
    if isinstance(tree, Term | Phrase) and tree.field in SUGGEST_FIELDS:
        return tree.field, tree.text
    return None


def suggestions(session: Session, text: str, lang: str) -> list[dict[str, Any]]:
    """Up to ``SUGGESTIONS`` titles and authors that complete what the reader is typing."""
    text = text.strip()
    if not text or len(text) > SUGGEST_CHARS:
        return []
    found = _prefix_of(text)
    if found is None:
        return []
    field, words = found
    titles: list[dict[str, Any]] = []
    authors: list[dict[str, Any]] = []
    seen: set[str] = set()
    if field in ("any", "title"):
        # The words as typed first (this also reads them as pinyin: "zhong yi" finds
        # 中医药学概论, and pinyin is matched by whole syllables only), then the last word as
        # a prefix ("hist" finds history).
        for node in (Term("title", words), Term("title", words, truncation=True)):
            if len(titles) >= SUGGESTIONS:
                break
            hits = service.search(session, node, limit=SUGGESTIONS, facets=[]).hits
            for hit in hits:
                label = " ".join(hit["title"].split())
                # Exact text, not folded: 中医药学概论 and 中醫藥學概論 are two books.
                if label and label not in seen and len(titles) < SUGGESTIONS:
                    seen.add(label)
                    detail = hit["title_romanised"] or hit["remainder"] or hit["responsibility"]
                    titles.append(
                        {
                            "kind": "title",
                            "label": label,
                            "detail": _short(detail),
                            "value": _box_value(label),
                        }
                    )
    if field in ("any", "author"):
        want = cjk.fold(words.split()[0]) if words.split() else ""
        prefix = "作者" if lang == "zh-CN" else "author"
        hits = service.search(
            session, Term("author", words, truncation=True), limit=SUGGESTIONS, facets=[]
        ).hits
        for hit in hits:
            for a in hit["authors"]:
                for name in (a.get("vernacular"), a.get("name")):
                    if not name or want not in cjk.fold(name):
                        continue
                    key = "author:" + cjk.fold(name)
                    if key not in seen:
                        seen.add(key)
                        clean = re.sub(r'["“”]', " ", name).strip()
                        authors.append(
                            {
                                "kind": "author",
                                "label": name,
                                "detail": "",
                                "value": f'{prefix}:"{clean}"',
                            }
                        )
    head = titles[:SUGGEST_TITLES]
    out = head + authors[: SUGGESTIONS - len(head)]
    out += titles[len(head) : len(head) + SUGGESTIONS - len(out)]
    kinds = {"title": gettext(lang, "Title"), "author": gettext(lang, "Author")}
    for s in out:
        s["kind_label"] = kinds[s["kind"]]
    return out


@router.get("/search/suggest")
def suggest(
    request: Request,
    q: Annotated[str | None, Query()] = None,
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> JSONResponse:
    """Titles and authors completing ``q``, for the search box's list (JSON)."""
    lang = request_language(request)
    text = q or ""
    try:
        check_length(text)
        found = suggestions(db, text, lang)
    except QueryError as exc:
        body: dict[str, Any] = {
            "error": exc.code,
            "detail": exc.render(lambda m: gettext(lang, m)),
            "field": "q",
        }
        limit = getattr(exc, "limit", None)
        if limit is not None:
            body["limit"] = limit
        return JSONResponse(body, status_code=exc.status)
    response = JSONResponse({"query": text, "suggestions": found})
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Cache-Control"] = "no-cache"
    return response
