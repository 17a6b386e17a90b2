"""The SRU server at /sru: SRU 1.1/1.2 (GET, POST and SOAP, as yaz-client sends by default)
and SRU 2.0 (GET, POST) — explain (ZeeRex), searchRetrieve (CQL; marcxml and dc; startRecord,
maximumRecords, recordPacking or recordXMLEscaping; sortKeys in 1.x, CQL sortby in both) and
scan (title, author, subject and publisher terms from the index).

Every problem is an SRU diagnostic (info:srw/diagnostic/1/N) in an answer with HTTP status
200, as SRU wants: bad CQL (10, with the 1-based position as details), unsupported index (16),
relation (19), schema (66), record packing (71), version (5), parameter (6, 7, 8), sort (80-92),
first record out of range (61), scan position (120) and so on.

Version: ``version`` as sent; without it, 1.2 when the request names an ``operation`` (SRU 1.x
requires one) and 2.0 otherwise. The operation of a 2.0 request without one follows from its
parameters (query: searchRetrieve; scanClause: scan; neither: explain).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from lxml import etree
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal
from consortia.errors import DomainError
from consortia.i18n import gettext, negotiate
from consortia.ill.xmlsafe import parse_bytes
from consortia.protocols.sru import records
from consortia.search import cql, service
from consortia.search.backends import SortKey
from consortia.search.query import MAX_QUERY_CHARS, Phrase, QueryError, QueryTooLong, Term
from consortia.settings import get_settings
from consortia.web.deps import get_db, in_search_lane, public

router = APIRouter(tags=["sru"])

SRW_NS = "http://www.loc.gov/zing/srw/"
DIAG1_NS = "http://www.loc.gov/zing/srw/diagnostic/"
SRU2_NS = "http://docs.oasis-open.org/ns/search-ws/sruResponse"
DIAG2_NS = "http://docs.oasis-open.org/ns/search-ws/diagnostic"
SCAN2_NS = "http://docs.oasis-open.org/ns/search-ws/scan"
ZR_NS = "http://explain.z3950.org/dtd/2.0/"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
DIAG_SCHEMA = "info:srw/schema/1/diagnostics-v1.1"

DEFAULT_RECORDS = 10
MAX_RECORDS = 100
DEFAULT_TERMS = 20
MAX_TERMS = 100
MAX_BODY = 100_000
MAX_SORT_KEYS = 3
DATABASE = "sru"

_COMMON = {"operation", "version", "stylesheet", "extraRequestData"}
_ALLOWED: dict[tuple[int, str], set[str]] = {
    (1, "searchRetrieve"): _COMMON
    | {
        "query",
        "startRecord",
        "maximumRecords",
        "recordPacking",
        "recordSchema",
        "recordXPath",
        "resultSetTTL",
        "sortKeys",
    },
    (2, "searchRetrieve"): _COMMON
    | {
        "query",
        "queryType",
        "startRecord",
        "maximumRecords",
        "recordXMLEscaping",
        "recordPacking",
        "recordSchema",
        "resultSetTTL",
        "httpAccept",
        "responseType",
        "renderedBy",
    },
    (1, "scan"): _COMMON | {"scanClause", "responsePosition", "maximumTerms"},
    (2, "scan"): _COMMON | {"scanClause", "responsePosition", "maximumTerms", "httpAccept"},
    (1, "explain"): _COMMON | {"recordPacking"},
    (2, "explain"): _COMMON | {"recordXMLEscaping", "recordPacking", "httpAccept"},
}
_ACCEPTED_MEDIA = ("application/sru+xml", "application/xml", "text/xml", "*/*")

# Diagnostic messages (English msgids, in search.po); SRU's own wording where it has one.
DIAG_MESSAGES = {
    1: "General system error",
    4: "Unsupported operation",
    5: "Unsupported version",
    6: "Unsupported parameter value",
    7: "Mandatory parameter not supplied",
    8: "Unsupported parameter",
    10: "Query syntax error",
    12: "Too many characters in query",
    16: "Unsupported index",
    19: "Unsupported relation",
    61: "First record position out of range",
    66: "Unknown schema for retrieval",
    67: "Record not available in this schema",
    71: "Unsupported record packing",
    72: "XPath retrieval unsupported",
    84: "Too many sort keys to sort",
    88: "Unsupported path for sort",
    90: "Unsupported direction value",
    110: "Stylesheets not supported",
    120: "Response position out of range",
}


class Diagnostic(Exception):
    """An SRU diagnostic: ``number`` in info:srw/diagnostic/1/, ``details`` as SRU defines
    them for that number, ``message`` an English msgid (translated when answering)."""

    def __init__(
        self,
        number: int,
        details: str = "",
        message: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.number = number
        self.details = details
        self.message = message or DIAG_MESSAGES.get(number, "General system error")
        self.params = dict(params or {})
        super().__init__(f"{number}: {details}")

    @classmethod
    def of(cls, exc: QueryError) -> Diagnostic:
        if isinstance(exc, cql.CQLError):
            details = exc.details
        elif isinstance(exc, QueryTooLong):
            details = str(exc.limit)
        else:
            details = ""
        return cls(exc.diagnostic, details, exc.message, exc.params)

    def text(self, lang: str) -> str:
        msg = gettext(lang, self.message)
        try:
            return msg.format(**self.params)
        except (KeyError, IndexError, ValueError):
            return msg


@dataclass
class SRURequest:
    params: dict[str, str]
    version: str  # as answered: "1.1", "1.2" or "2.0"
    major: int
    operation: str
    soap: bool = False
    lang: str = "en"
    base: str = ""
    problems: list[Diagnostic] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        return self.params.get(name)


# --------------------------------------------------------------------------- routes


@router.get("/sru", response_model=None)
async def sru_get(
    request: Request, db: Session = Depends(get_db), principal: Principal | None = public()
) -> Response:
    """SRU 1.1, 1.2 and 2.0 over HTTP GET (explain, searchRetrieve, scan)."""
    params = _first_values(request.query_params.multi_items())
    return await _answer(request, db, params, soap=False)


@router.post("/sru", response_model=None)
async def sru_post(
    request: Request, db: Session = Depends(get_db), principal: Principal | None = public()
) -> Response:
    """SRU over HTTP POST (form parameters) and SRW 1.1/1.2 over SOAP."""
    body = await _read_body(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return await _answer(request, db, _first_values(pairs), soap=False)
    try:
        params = _soap_params(body)
    except Diagnostic as d:
        req = SRURequest({}, "1.2", 1, "explain", soap=True, lang=_lang(request))
        return _respond(req, _explain_response(req, [d], with_record=False))
    return await _answer(request, db, params, soap=True)


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            break  # the parameters of any real request fit well within the limit
        chunks.append(chunk)
    return b"".join(chunks)


def _first_values(pairs: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in pairs:
        out.setdefault(str(k), str(v))
    return out


def _lang(request: Request) -> str:
    # Protocol clients rarely say; English unless the request asks for Chinese.
    header = request.headers.get("accept-language")
    return negotiate(header) if header else "en"


def _soap_params(body: bytes) -> dict[str, str]:
    """The parameters of an SRW SOAP request (element names are the parameter names)."""
    try:
        root = parse_bytes(body, max_bytes=MAX_BODY)
    except DomainError:
        raise Diagnostic(10, "", "The SOAP request is not well-formed XML.") from None
    bodies = root.findall(f"{{{SOAP_NS}}}Body")
    container = bodies[0] if bodies else root
    requests = [c for c in container if isinstance(c.tag, str)]
    if not requests:
        raise Diagnostic(7, "operation")
    req = requests[0]
    name = etree.QName(req).localname
    ops = {
        "searchRetrieveRequest": "searchRetrieve",
        "scanRequest": "scan",
        "explainRequest": "explain",
    }
    params = {"operation": ops.get(name, name)}
    for child in req:
        if isinstance(child.tag, str):
            params.setdefault(etree.QName(child).localname, (child.text or "").strip())
    return params


async def _answer(request: Request, db: Session, params: dict[str, str], *, soap: bool) -> Response:
    req = _request(params, soap=soap, lang=_lang(request), base=str(request.base_url))
    body = await in_search_lane(_dispatch, db, req)
    return _respond(req, body)


def _request(params: dict[str, str], *, soap: bool, lang: str, base: str) -> SRURequest:
    version = params.get("version")
    operation = params.get("operation")
    problems: list[Diagnostic] = []
    if version is None:
        version = "1.2" if operation else "2.0"
    if version in ("1.1", "1.2"):
        major = 1
    elif version == "2.0":
        major = 2
    else:
        try:
            major = 1 if float(version) < 2 else 2
        except ValueError:
            major = 2
        problems.append(Diagnostic(5, "2.0"))
        version = "1.2" if major == 1 else "2.0"
    if operation is None:
        operation = (
            "searchRetrieve"
            if "query" in params
            else "scan"
            if "scanClause" in params
            else "explain"
        )
    return SRURequest(params, version, major, operation, soap, lang, base, problems)


def _respond(req: SRURequest, element: etree._Element) -> Response:
    if req.soap:
        envelope = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"SOAP-ENV": SOAP_NS})
        etree.SubElement(envelope, f"{{{SOAP_NS}}}Body").append(element)
        element = envelope
    data = etree.tostring(element, xml_declaration=True, encoding="UTF-8")
    media = "application/sru+xml" if req.major == 2 and not req.soap else "text/xml"
    return Response(data, media_type=f"{media}; charset=utf-8")


# --------------------------------------------------------------------------- dispatch


def _dispatch(db: Session, req: SRURequest) -> etree._Element:
    handlers: dict[str, Callable[[Session, SRURequest], etree._Element]] = {
        "searchRetrieve": _search_retrieve,
        "scan": _scan,
        "explain": _explain,
    }
    handler = handlers.get(req.operation)
    if handler is None:
        return _explain_response(req, [Diagnostic(4, req.operation)], with_record=False)
    try:
        if req.problems:
            raise req.problems[0]
        _check_parameters(req)
        return handler(db, req)
    except Diagnostic as d:
        if req.operation == "searchRetrieve":
            return _search_response(req, 0, [], [d])
        if req.operation == "scan":
            return _scan_response(req, [], [d])
        return _explain_response(req, [d], with_record=False)


def _check_parameters(req: SRURequest) -> None:
    allowed = _ALLOWED[(req.major, req.operation)]
    for name in req.params:
        if name not in allowed and not name.startswith("x-"):
            raise Diagnostic(8, name)
    if req.get("stylesheet"):
        raise Diagnostic(110, req.get("stylesheet") or "")
    accept = req.get("httpAccept")
    if accept is not None and accept.split(";")[0].strip() not in _ACCEPTED_MEDIA:
        raise Diagnostic(6, "httpAccept")


def _int(req: SRURequest, name: str, default: int, low: int) -> int:
    raw = req.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Diagnostic(6, name) from None
    if value < low:
        raise Diagnostic(6, name)
    return value


def _escaping(req: SRURequest) -> str:
    """xml or string: how records are put in recordData."""
    if req.major == 1:
        value = req.get("recordPacking") or "xml"
    else:
        value = req.get("recordXMLEscaping") or "xml"
        packing = req.get("recordPacking")
        if packing not in (None, "", "packed"):
            raise Diagnostic(6, "recordPacking")
    if value not in ("xml", "string"):
        raise Diagnostic(71, value)
    return value


_SORT_PATHS = {
    "title": "title",
    "creator": "author",
    "author": "author",
    "name": "author",
    "date": "year",
    "year": "year",
    "publisher": "publisher",
}


def _sort_keys(req: SRURequest) -> list[SortKey]:
    """SRU 1.x sortKeys: space-separated ``path,schema,ascending,caseSensitive,missingValue``."""
    raw = (req.get("sortKeys") or "").split()
    if len(raw) > MAX_SORT_KEYS:
        raise Diagnostic(84, str(MAX_SORT_KEYS))
    keys = []
    for spec in raw:
        parts = spec.split(",")
        path = parts[0].lower()
        for prefix in ("dc.", "bath.", "cql."):
            path = path.removeprefix(prefix)
        field_name = _SORT_PATHS.get(path)
        if field_name is None:
            raise Diagnostic(88, parts[0])
        direction = parts[2] if len(parts) > 2 else ""
        if direction not in ("", "0", "1"):
            raise Diagnostic(90, direction)
        keys.append(SortKey(field_name, direction != "0"))
    return keys


# --------------------------------------------------------------------------- searchRetrieve


def _search_retrieve(db: Session, req: SRURequest) -> etree._Element:
    query = req.get("query")
    if query is None:
        raise Diagnostic(7, "query")
    if req.major == 2 and req.get("queryType") not in (None, "", "cql"):
        raise Diagnostic(6, "queryType")
    start = _int(req, "startRecord", 1, 1)
    if start - 1 > service.MAX_OFFSET:  # deeper than any client pages; refuse, never shift
        raise Diagnostic(6, "startRecord")
    maximum = min(_int(req, "maximumRecords", DEFAULT_RECORDS, 0), MAX_RECORDS)
    escaping = _escaping(req)
    raw_schema = req.get("recordSchema") or records.DEFAULT_SCHEMA
    schema = records.SCHEMAS.get(raw_schema) or records.SCHEMAS.get(raw_schema.lower())
    if schema is None:
        raise Diagnostic(66, raw_schema)
    if req.get("recordXPath"):
        raise Diagnostic(72, "")
    sort = _sort_keys(req) if req.major == 1 else []
    try:
        parsed = cql.parse(query)
    except QueryError as exc:
        raise Diagnostic.of(exc) from None
    sort = sort or [SortKey(k.field, k.ascending) for k in parsed.sort]
    result = service.search(
        db,
        parsed.tree,
        offset=start - 1,
        limit=max(maximum, 1),
        sort=sort,
        facets=[],
    )
    total = result.total
    if maximum and total and start > total:
        return _search_response(req, total, [], [Diagnostic(61, str(start))])
    ids = [h["id"] for h in result.hits][:maximum]
    recs = service.cluster_records(db, ids)
    out: list[tuple[int, str, etree._Element | Diagnostic]] = []
    for pos, rec in enumerate(recs, start=start):
        element = records.render(rec, schema)
        item: etree._Element | Diagnostic = (
            element if element is not None else Diagnostic(67, raw_schema)
        )
        out.append((pos, schema, item))
    return _search_response(req, total, out, [], escaping=escaping, start=start)


def _ns(req: SRURequest) -> tuple[str, str]:
    return (SRW_NS, DIAG1_NS) if req.major == 1 else (SRU2_NS, DIAG2_NS)


def _prefix(req: SRURequest) -> str:
    return "zs" if req.major == 1 else "sruResponse"


# What XML 1.0 cannot carry; a query echoed back or named in a diagnostic may contain it.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        el.text = _NOT_XML.sub("\ufffd", text)
    return el


def _diagnostic(req: SRURequest, parent: etree._Element, d: Diagnostic) -> None:
    _, dns = _ns(req)
    el = etree.SubElement(parent, f"{{{dns}}}diagnostic", nsmap={"diag": dns})
    _sub(el, dns, "uri", f"info:srw/diagnostic/1/{d.number}")
    if d.details:
        _sub(el, dns, "details", d.details)
    _sub(el, dns, "message", d.text(req.lang))


def _diagnostics(req: SRURequest, root: etree._Element, diags: list[Diagnostic]) -> None:
    if diags:
        ns, _ = _ns(req)
        holder = _sub(root, ns, "diagnostics")
        for d in diags:
            _diagnostic(req, holder, d)


def _search_response(
    req: SRURequest,
    total: int,
    recs: list[tuple[int, str, etree._Element | Diagnostic]],
    diags: list[Diagnostic],
    *,
    escaping: str = "xml",
    start: int = 1,
) -> etree._Element:
    ns, _ = _ns(req)
    root = etree.Element(f"{{{ns}}}searchRetrieveResponse", nsmap={_prefix(req): ns})
    _sub(root, ns, "version", req.version)
    _sub(root, ns, "numberOfRecords", str(total))
    if req.major == 2 and not diags:
        _sub(root, ns, "resultCountPrecision", "info:srw/vocabulary/resultCountPrecision/1/exact")
    if recs:
        holder = _sub(root, ns, "records")
        for pos, schema, item in recs:
            rec = _sub(holder, ns, "record")
            if isinstance(item, Diagnostic):
                _sub(rec, ns, "recordSchema", DIAG_SCHEMA)
                _sub(rec, ns, "recordPacking" if req.major == 1 else "recordXMLEscaping", "xml")
                _diagnostic(req, _sub(rec, ns, "recordData"), item)
            else:
                _sub(rec, ns, "recordSchema", records.SCHEMA_URI[schema])
                _sub(rec, ns, "recordPacking" if req.major == 1 else "recordXMLEscaping", escaping)
                data = _sub(rec, ns, "recordData")
                if escaping == "xml":
                    data.append(item)
                else:
                    data.text = etree.tostring(item, encoding="unicode")
            _sub(rec, ns, "recordPosition", str(pos))
        last = recs[-1][0]
        if last < total:
            _sub(root, ns, "nextRecordPosition", str(last + 1))
    echo = _sub(root, ns, "echoedSearchRetrieveRequest")
    for name in ("version", "query", "startRecord", "maximumRecords", "recordSchema"):
        value = req.get(name) if name != "version" else req.version
        if value is not None:
            _sub(echo, ns, name, value[:MAX_QUERY_CHARS])
    _diagnostics(req, root, diags)
    return root


# --------------------------------------------------------------------------- scan


def _scan(db: Session, req: SRURequest) -> etree._Element:
    clause = req.get("scanClause")
    if clause is None:
        raise Diagnostic(7, "scanClause")
    position = _int(req, "responsePosition", 1, 0)
    maximum = _int(req, "maximumTerms", DEFAULT_TERMS, 1)
    maximum = min(maximum, MAX_TERMS)
    if position > maximum + 1:
        raise Diagnostic(120, str(position))
    field_name, start = _scan_clause(clause)
    before = max(position - 1, 0)
    terms = service.scan(db, field_name, start, before=before, after=maximum - before)
    return _scan_response(req, terms, [])


def _scan_clause(clause: str) -> tuple[str, str]:
    """The index and the start term of a scan clause (``dc.title = hist``)."""
    try:
        syntax = cql.parse_syntax(clause)
    except QueryError as exc:
        raise Diagnostic.of(exc) from None
    root = syntax.root
    if not isinstance(root, cql.SearchClause):
        raise Diagnostic(10, "1", "A scan clause is one index, a relation and a term.")
    if root.relation.lower() not in ("=", "cql.=", "==", "exact", "adj", "all", "any"):
        raise Diagnostic(19, root.relation)
    if not root.term.strip():
        # An empty term: the index from its beginning. Only the index needs checking.
        field_name = _scan_field(clause.replace('""', "a", 1), root.index)
        return field_name, ""
    return _scan_field(clause, root.index), root.term.replace("\\", "").strip('"*')


def _scan_field(clause: str, index: str | None) -> str:
    try:
        tree = cql.parse(clause).tree
    except QueryError as exc:
        raise Diagnostic.of(exc) from None
    node = tree
    field_name = node.field if isinstance(node, Term | Phrase) else None
    if field_name == "any":
        field_name = "title"  # cql.serverChoice scans the title index
    if field_name not in service.SCAN_FIELDS:
        raise Diagnostic(16, index or "cql.serverChoice")
    return field_name


def _scan_response(
    req: SRURequest, terms: list[tuple[str, int]], diags: list[Diagnostic]
) -> etree._Element:
    ns = SRW_NS if req.major == 1 else SCAN2_NS
    prefix = "zs" if req.major == 1 else "scan"
    root = etree.Element(f"{{{ns}}}scanResponse", nsmap={prefix: ns})
    _sub(root, ns, "version", req.version)
    if terms:
        holder = _sub(root, ns, "terms")
        for value, count in terms:
            term = _sub(holder, ns, "term")
            _sub(term, ns, "value", value)
            _sub(term, ns, "numberOfRecords", str(count))
    if diags:
        holder = _sub(root, ns, "diagnostics")
        for d in diags:
            _diagnostic(req, holder, d)
    return root


# --------------------------------------------------------------------------- explain

_INDEXES = (
    # (title, search, scan, sort, [(set, name), ...])
    ("title", True, True, True, [("dc", "title"), ("bath", "title"), ("", "title")]),
    ("author", True, True, True, [("dc", "creator"), ("bath", "name"), ("", "author")]),
    ("subject", True, True, False, [("dc", "subject"), ("bath", "subject"), ("", "subject")]),
    ("publisher", True, True, True, [("dc", "publisher"), ("bath", "publisher")]),
    ("year", True, False, True, [("dc", "date"), ("", "year")]),
    ("isbn", True, False, False, [("bath", "isbn"), ("dc", "identifier"), ("", "isbn")]),
    ("issn", True, False, False, [("bath", "issn"), ("", "issn")]),
    ("language", True, False, False, [("dc", "language"), ("", "language")]),
    ("classification", True, False, False, [("", "classification")]),
    ("member", True, False, False, [("", "member")]),
    ("any", True, True, False, [("cql", "serverChoice"), ("cql", "anywhere")]),
    ("all records", True, False, False, [("cql", "allRecords")]),
)


def _explain(db: Session, req: SRURequest) -> etree._Element:
    _escaping(req)  # a bad recordPacking / recordXMLEscaping is a diagnostic here too
    return _explain_response(req, [], with_record=True)


def _zeerex(req: SRURequest) -> etree._Element:
    settings = get_settings()
    z = etree.Element(f"{{{ZR_NS}}}explain", nsmap={"zr": ZR_NS})
    host, _, port = req.base.split("://", 1)[-1].rstrip("/").partition(":")
    server = etree.SubElement(
        z,
        f"{{{ZR_NS}}}serverInfo",
        protocol="SRU",
        version="1.2 2.0",
        transport=req.base.split("://", 1)[0] or "http",
    )
    _sub(server, ZR_NS, "host", host.split("/")[0])
    _sub(server, ZR_NS, "port", (port.split("/")[0] or "80"))
    _sub(server, ZR_NS, "database", DATABASE)
    info = _sub(z, ZR_NS, "databaseInfo")
    t = _sub(info, ZR_NS, "title", settings.consortium_name_en + " — union catalogue")
    t.set("lang", "en")
    t.set("primary", "true")
    _sub(info, ZR_NS, "title", settings.consortium_name_zh + " 联合目录").set("lang", "zh")
    _sub(
        info,
        ZR_NS,
        "description",
        "The union catalogue of the consortium's member libraries: one record per book "
        "(cluster), with every member's holdings.",
    ).set("lang", "en")
    idx = _sub(z, ZR_NS, "indexInfo")
    for name, uri in (
        ("cql", "info:srw/cql-context-set/1/cql-v1.2"),
        ("dc", "info:srw/cql-context-set/1/dc-v1.1"),
        ("bath", "http://zing.z3950.org/cql/bath/2.0/"),
    ):
        etree.SubElement(idx, f"{{{ZR_NS}}}set", name=name, identifier=uri)
    for title, search, scan, sort, names in _INDEXES:
        index = etree.SubElement(
            idx,
            f"{{{ZR_NS}}}index",
            search=str(search).lower(),
            scan=str(scan).lower(),
            sort=str(sort).lower(),
        )
        _sub(index, ZR_NS, "title", title)
        for set_name, index_name in names:
            mapping = _sub(index, ZR_NS, "map")
            name_el = _sub(mapping, ZR_NS, "name", index_name)
            if set_name:
                name_el.set("set", set_name)
    schemas = _sub(z, ZR_NS, "schemaInfo")
    for short, title in (("marcxml", "MARCXML (MARC 21 slim)"), ("dc", "Dublin Core")):
        s = etree.SubElement(
            schemas,
            f"{{{ZR_NS}}}schema",
            identifier=records.SCHEMA_URI[short],
            name=short,
            retrieve="true",
        )
        _sub(s, ZR_NS, "title", title)
    config = _sub(z, ZR_NS, "configInfo")
    for kind, tag, value in (
        ("numberOfRecords", "default", str(DEFAULT_RECORDS)),
        ("maximumRecords", "setting", str(MAX_RECORDS)),
        ("maximumTerms", "setting", str(MAX_TERMS)),
        ("retrieveSchema", "default", records.SCHEMA_URI[records.DEFAULT_SCHEMA]),
        ("contextSet", "default", "cql"),
        ("index", "default", "cql.serverChoice"),
        ("relation", "default", "="),
        ("sortSchema", "supports", ""),
    ):
        el = _sub(config, ZR_NS, tag, value)
        el.set("type", kind)
    for relation in ("=", "==", "exact", "adj", "all", "any", "<", ">", "<=", ">=", "within"):
        _sub(config, ZR_NS, "supports", relation).set("type", "relation")
    for op in ("and", "or", "not"):
        _sub(config, ZR_NS, "supports", op).set("type", "booleanModifier")
    _sub(config, ZR_NS, "supports", "*").set("type", "maskingCharacter")
    _sub(config, ZR_NS, "supports", "").set("type", "sortby")
    return z


def _explain_response(
    req: SRURequest, diags: list[Diagnostic], *, with_record: bool
) -> etree._Element:
    ns, _ = _ns(req)
    root = etree.Element(f"{{{ns}}}explainResponse", nsmap={_prefix(req): ns})
    _sub(root, ns, "version", req.version)
    if with_record:
        escaping = req.get("recordXMLEscaping" if req.major == 2 else "recordPacking") or "xml"
        rec = _sub(root, ns, "record")
        _sub(rec, ns, "recordSchema", ZR_NS)
        _sub(rec, ns, "recordPacking" if req.major == 1 else "recordXMLEscaping", escaping)
        data = _sub(rec, ns, "recordData")
        if escaping == "string":
            data.text = etree.tostring(_zeerex(req), encoding="unicode")
        else:
            data.append(_zeerex(req))
    _diagnostics(req, root, diags)
    return root


def explain_indexes() -> Mapping[str, list[tuple[str, str]]]:
    """The indexes the server announces (for tests and the API docs)."""
    return {title: names for title, *_rest, names in _INDEXES}
