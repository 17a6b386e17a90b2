"""Hardened XML parsing for everything that reads XML from outside.

ISO 18626 messages, SRU and OAI-PMH responses and MARCXML uploads all come from peers we do not
control, so they are parsed here and nowhere else with a bare ``lxml.etree.fromstring``.

Interface::

    from consortia.ill.xmlsafe import parse_bytes, safe_parser, XmlRejected, MAX_BYTES

    root = parse_bytes(data)                  # lxml element of the document, or XmlRejected
    root = parse_bytes(data, max_bytes=50_000_000)   # a bigger limit for e.g. a MARCXML file
    parser = safe_parser()                    # for etree.XMLSchema / iterparse-like use

What is refused (``XmlRejected``, an ``Invalid`` with an English msgid and ``reason`` naming
which rule fired: ``too_large``, ``empty``, ``not_bytes``, ``doctype``, ``syntax``):

- anything larger than ``max_bytes`` (1 MB by default), *before* any parsing;
- any document with a DOCTYPE (internal subset or external DTD). That one rule removes entity
  expansion ("billion laughs", quadratic blow-up) and external entities (``file:///etc/passwd``,
  ``http://...``) at once; no protocol we speak needs a DTD;
- documents that are not well-formed XML.

The parser itself never resolves entities, never loads a DTD, never touches the network, keeps
libxml2's limits on depth and text size (``huge_tree=False``), and drops comments and processing
instructions so that nothing downstream has to skip them.

Parser objects are kept per thread: lxml parsers must not be shared by concurrent threads.
"""

from __future__ import annotations

import threading
from typing import Any

from lxml import etree

from consortia.errors import Invalid

MAX_BYTES = 1_000_000

MSG_TOO_LARGE = "The XML document is larger than {limit} bytes"
MSG_EMPTY = "The XML document is empty"
MSG_NOT_BYTES = "The XML document must be given as bytes"
MSG_DOCTYPE = "XML documents with a DOCTYPE or entity declarations are refused"
MSG_SYNTAX = "The document is not well-formed XML: {detail}"


class XmlRejected(Invalid):
    """The document was refused before or while parsing; ``reason`` says by which rule."""

    def __init__(self, message: str, *, reason: str, **params: Any) -> None:
        self.reason = reason
        super().__init__(message, **params)


_local = threading.local()


def safe_parser() -> etree.XMLParser:
    """This thread's hardened parser (see the module docstring for what it refuses)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
            attribute_defaults=False,
        )
        _local.parser = parser
    return parser


def parse_bytes(data: bytes, *, max_bytes: int = MAX_BYTES) -> etree._Element:
    """Parse one untrusted XML document and return its root element.

    Raises ``XmlRejected`` for every document it will not read; nothing else escapes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise XmlRejected(MSG_NOT_BYTES, reason="not_bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise XmlRejected(MSG_TOO_LARGE, reason="too_large", limit=max_bytes)
    if not data.strip():
        raise XmlRejected(MSG_EMPTY, reason="empty")
    # Cheap early refusal for the common (ASCII-compatible) case; the docinfo check below also
    # covers UTF-16 and other encodings where these bytes would not appear literally.
    head = data[:4096]
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise XmlRejected(MSG_DOCTYPE, reason="doctype")
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(MSG_SYNTAX, reason="syntax", detail=_syntax_detail(exc)) from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding in the declaration
        raise XmlRejected(MSG_SYNTAX, reason="syntax", detail=str(exc)[:200]) from None
    if root is None:
        raise XmlRejected(MSG_EMPTY, reason="empty")
    docinfo: Any = root.getroottree().docinfo  # lxml-stubs lack DocInfo.doctype
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XmlRejected(MSG_DOCTYPE, reason="doctype")
    return root


def _syntax_detail(exc: etree.XMLSyntaxError) -> str:
    msg = (exc.msg or str(exc) or "syntax error").strip()
    line = getattr(exc, "lineno", None)
    return f"{msg} (line {line})" if line and "line" not in msg else msg[:200]
