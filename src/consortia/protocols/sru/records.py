"""Records served over SRU (and later Z39.50): MARCXML and Dublin Core of a cluster.

``marcxml`` is the cluster's representative source record — the most complete record of the
cluster, as the member loaded it, decoded from its stored bytes (MARC-8 and GB encodings
become Unicode) — so a client gets a real catalogue record that parses back to exactly what
the member sent. The union catalogue's own view of the cluster (the merged record with the
union of identifiers and every member's holdings) is in the JSON API and in ``dc``.

``dc`` is Dublin Core (SRU's ``info:srw/schema/1/dc-v1.1``) built from the merged record.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pymarc
from lxml import etree

from consortia.catalog.marc import ReadResult, read_records
from consortia.ill.xmlsafe import safe_parser
from consortia.search.service import ClusterRecord

MARC_NS = "http://www.loc.gov/MARC21/slim"
DC_NS = "http://purl.org/dc/elements/1.1/"
SRW_DC_NS = "info:srw/schema/1/dc-schema"

# Every name a client may use for a schema → our short name.
SCHEMAS = {
    "marcxml": "marcxml",
    "marc21": "marcxml",
    "info:srw/schema/1/marcxml-v1.1": "marcxml",
    "info:srw/schema/1/marcxml-v1.1-light": "marcxml",
    MARC_NS: "marcxml",
    "dc": "dc",
    "info:srw/schema/1/dc-v1.1": "dc",
    "info:srw/schema/1/dc-schema": "dc",
    DC_NS: "dc",
}
SCHEMA_URI = {"marcxml": "info:srw/schema/1/marcxml-v1.1", "dc": "info:srw/schema/1/dc-v1.1"}
DEFAULT_SCHEMA = "marcxml"
_XML_INVALID = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def source_record(rec: ClusterRecord) -> pymarc.Record | None:
    """The representative source record as pymarc reads it (None if it no longer reads)."""
    encoding = rec.encoding if rec.encoding in ("utf-8", "marc8", "gbk", "gb18030") else "auto"
    for res in read_records(
        io.BytesIO(rec.raw), format="auto", encoding=encoding, flavour=rec.flavour
    ):
        if isinstance(res, ReadResult):
            record: pymarc.Record = res.record
            return record
    return None


def marcxml(rec: ClusterRecord) -> etree._Element | None:
    record = source_record(rec)
    if record is None:
        return None
    # pymarc writes a MARC21-slim <record>; parsed back it is embedded as an element. Control
    # characters that XML 1.0 cannot carry (stray escapes in old records) are left out.
    data = _XML_INVALID.sub(b"", pymarc.record_to_xml(record, namespace=True))
    try:
        return etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError:
        return None


def _value(merged: dict[str, Any], name: str) -> str:
    entry = merged.get(name)
    value = entry.get("value") if isinstance(entry, dict) else None
    return "" if value is None else str(value)


def dublin_core(rec: ClusterRecord) -> etree._Element:
    m = rec.merged
    root = etree.Element(f"{{{SRW_DC_NS}}}dc", nsmap={"srw_dc": SRW_DC_NS, "dc": DC_NS})

    def add(name: str, value: str) -> None:
        if value:
            etree.SubElement(root, f"{{{DC_NS}}}{name}").text = value

    title = _value(m, "title")
    remainder = _value(m, "remainder")
    add("title", f"{title} : {remainder}" if title and remainder else title or remainder)
    add("title", _value(m, "title_romanised"))
    for n in m.get("names", []):
        add("creator", str(n.get("name", "")))
        add("creator", str(n.get("vernacular", "")))
    for s in m.get("subjects", []):
        add("subject", str(s.get("value", "")))
    for c in m.get("classifications", []):
        add("subject", f"{c.get('scheme', '')}: {c.get('value', '')}")
    add("publisher", _value(m, "publisher"))
    add("date", _value(m, "year"))
    add("type", _value(m, "material"))
    add("format", _value(m, "extent"))
    for i in m.get("isbns", []):
        if i.get("valid"):
            add("identifier", f"URN:ISBN:{i['isbn13']}")
    for i in m.get("issns", []):
        add("identifier", f"URN:ISSN:{i.get('value', '')}")
    for lang in m.get("languages", []):
        add("language", str(lang.get("value", "")))
    add("coverage", _value(m, "place"))
    add("relation", _value(m, "series"))
    add("source", f"cluster {rec.cluster_id}; {', '.join(m.get('members', []))}")
    return root


def render(rec: ClusterRecord, schema: str) -> etree._Element | None:
    """The record in a schema (a value of ``SCHEMAS``); None when it cannot be made."""
    return marcxml(rec) if schema == "marcxml" else dublin_core(rec)
