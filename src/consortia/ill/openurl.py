"""OpenURL 1.0 (Z39.88-2004, KEV) at /openurl: how databases send readers to their library.

A link like ``/openurl?url_ver=Z39.88-2004&rft.atitle=...&rft.jtitle=...&rft.issn=...`` (or the
older 0.1 form, ``?genre=article&atitle=...&issn=...``) becomes a citation; the citation is
matched against the union catalogue (ISBN, then ISSN, then title and year) so that the form
shows who holds it; the reader lands on the request form filled in, checks it and sends it.
Not signed in: to the sign-in page first, and back here after.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams

from consortia.accounts.roles import Principal
from consortia.ill import service
from consortia.web.deps import get_db, public

router = APIRouter(include_in_schema=False)

# Z39.88-2004 KEV keys (journal, book and dissertation formats) and their 0.1 forms.
KEYS: dict[str, tuple[str, ...]] = {
    "article_title": ("rft.atitle", "atitle"),
    "title": ("rft.jtitle", "rft.btitle", "rft.title", "rft.stitle", "title", "stitle"),
    "volume": ("rft.volume", "volume"),
    "issue": ("rft.issue", "issue"),
    "year": ("rft.date", "date"),
    "issn": ("rft.issn", "rft.eissn", "issn", "eissn"),
    "isbn": ("rft.isbn", "isbn"),
    "publisher": ("rft.pub", "pub", "rft.publisher"),
    "edition": ("rft.edition", "edition"),
}
COPY_GENRES = frozenset({"article", "bookitem", "chapter", "proceeding", "conference", "preprint"})


@dataclass
class Citation:
    service_type: str = "Loan"
    title: str = ""
    article_title: str = ""
    author: str = ""
    volume: str = ""
    issue: str = ""
    pages: str = ""
    year: str = ""
    issn: str = ""
    isbn: str = ""
    doi: str = ""
    publisher: str = ""
    edition: str = ""


def _first(q: QueryParams, *names: str) -> str:
    for name in names:
        value = q.get(name, "").strip()
        if value:
            return value
    return ""


def parse(q: QueryParams) -> Citation:
    """The citation an OpenURL carries (1.0 KEV or 0.1), cut to the request's field limits."""
    c = Citation()
    for field_name, names in KEYS.items():
        setattr(c, field_name, _first(q, *names))
    author = _first(q, "rft.au", "au")
    if not author:
        last = _first(q, "rft.aulast", "aulast")
        first = _first(q, "rft.aufirst", "aufirst", "rft.auinit", "auinit")
        author = f"{last}, {first}" if last and first else last
    c.author = author
    pages = _first(q, "rft.pages", "pages")
    if not pages:
        start, end = _first(q, "rft.spage", "spage"), _first(q, "rft.epage", "epage")
        pages = f"{start}-{end}" if start and end else start
    c.pages = pages
    if c.year[:4].isdigit():
        c.year = c.year[:4]
    ids = q.getlist("rft_id") + q.getlist("id")
    for value in ids:
        for prefix in ("info:doi/", "doi:"):
            if value.startswith(prefix):
                c.doi = value[len(prefix) :].strip()
    genre = _first(q, "rft.genre", "genre").lower()
    if c.article_title or genre in COPY_GENRES:
        c.service_type = "Copy"
    for name, value in asdict(c).items():
        limit = service.LIMITS.get(name)
        if limit is not None and len(value) > limit:
            setattr(c, name, value[:limit])
    return c


@router.get("/openurl")
def openurl(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> Response:
    """From a database's link to the filled-in request form (sign in first if needed).

    ``Accept: application/json`` answers with the citation read and the record matched.
    """
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    citation = parse(request.query_params)
    cluster = service.match_citation(
        db,
        service.NewRequest(
            service_type=citation.service_type,
            title=citation.title,
            article_title=citation.article_title,
            year=citation.year,
            issn=citation.issn,
            isbn=citation.isbn,
        ),
    )
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"citation": asdict(citation), "cluster_id": cluster})
    if principal is None:
        return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)
    form = {k: v for k, v in asdict(citation).items() if v}
    if cluster is not None:
        form["cluster"] = str(cluster)
    return RedirectResponse(f"/requests/new?{urlencode(form)}", status_code=303)
