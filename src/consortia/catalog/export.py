"""Record export: a source record verbatim (ISO 2709) or as MARCXML, and a cluster's merged
record as MARC21 with the provenance of each field (883, and 035 per source record)."""

from __future__ import annotations

import io
from typing import Any

import pymarc
from pymarc import Field, Indicators, Record, Subfield

from consortia.catalog.marc import ReadResult, read_records
from consortia.catalog.record import record_from_dict


def _xml(record: Record) -> str:
    body = pymarc.record_to_xml(record, namespace=True).decode("utf-8")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def source_marcxml(raw: bytes, flavour: str, encoding: str) -> str:
    """The source record as MARCXML (decoded with the encoding it was loaded with)."""
    for res in read_records(
        io.BytesIO(raw),
        format="auto",
        encoding=encoding if encoding in ("utf-8", "marc8", "gbk", "gb18030") else "auto",
        flavour=flavour,
    ):
        if isinstance(res, ReadResult):
            return _xml(res.record)
    raise ValueError("stored record no longer readable")


def _sf(pairs: list[tuple[str, str]]) -> list[Subfield]:
    return [Subfield(code, value) for code, value in pairs if value]


def merged_record(cluster: dict[str, Any]) -> Record:
    """Build MARC21 from the cluster's sources: the representative's description, the union of
    identifiers, 035 for every source record, and 883 naming where each field came from."""
    sources = cluster["sources"]
    if not sources:
        raise ValueError("cluster has no live records")
    recs = [(s["member"], s["id"], record_from_dict(s["normalized"])) for s in sources]
    member0, id0, rep = recs[0]
    # Prefer the most complete description as the base, as the merged display does.
    member0, id0, rep = max(
        recs,
        key=lambda t: (bool(t[2].title), len(t[2].names), bool(t[2].publisher), bool(t[2].year)),
    )
    record = Record(force_utf8=True)
    record.leader = pymarc.Leader("     nam a22     7a 4500")
    record.add_field(Field(tag="001", data=f"cluster-{cluster['id']}"))
    record.add_field(Field(tag="003", data="Consortia"))
    prov: list[tuple[str, str, str]] = []  # (tag, member, id)
    seen_isbn: set[str] = set()
    for member, rid, r in recs:
        for isbn in r.isbns:
            if isbn.isbn13 in seen_isbn or not isbn.valid:
                continue
            seen_isbn.add(isbn.isbn13)
            record.add_field(
                Field(
                    tag="020",
                    indicators=Indicators(" ", " "),
                    subfields=_sf([("a", isbn.isbn13), ("q", isbn.qualifier)]),
                )
            )
            prov.append(("020", member, rid))
    for issn in dict.fromkeys(i for _, _, r in recs for i in r.issns):
        record.add_field(
            Field(tag="022", indicators=Indicators(" ", " "), subfields=_sf([("a", issn)]))
        )
    for member, rid, _r in recs:
        record.add_field(
            Field(
                tag="035",
                indicators=Indicators(" ", " "),
                subfields=_sf([("a", f"({member}){rid}")]),
            )
        )
    if rep.languages:
        record.add_field(
            Field(
                tag="041",
                indicators=Indicators("0", " "),
                subfields=_sf([("a", lang) for lang in rep.languages]),
            )
        )
    for c in rep.classifications:
        tag = {"lcc": "050", "ddc": "082"}.get(c.scheme, "084")
        sub = [("a", c.value)] + ([("2", c.scheme)] if tag == "084" else [])
        record.add_field(Field(tag=tag, indicators=Indicators(" ", " "), subfields=_sf(sub)))
    people = [n for n in rep.names if n.kind == "person"]
    if people:
        record.add_field(
            Field(
                tag="100",
                indicators=Indicators("1", " "),
                subfields=_sf([("a", people[0].name), ("e", people[0].role)]),
            )
        )
    record.add_field(
        Field(
            tag="245",
            indicators=Indicators("1" if people else "0", "0"),
            subfields=_sf(
                [("a", rep.title), ("b", rep.remainder), ("n", rep.part), ("c", rep.responsibility)]
            ),
        )
    )
    prov.append(("245", member0, id0))
    if rep.title_vernacular:
        record.add_field(
            Field(
                tag="246",
                indicators=Indicators("1", " "),
                subfields=_sf([("a", rep.title_vernacular)]),
            )
        )
    if rep.edition:
        record.add_field(
            Field(tag="250", indicators=Indicators(" ", " "), subfields=_sf([("a", rep.edition)]))
        )
    if rep.publisher or rep.place or rep.year:
        record.add_field(
            Field(
                tag="264",
                indicators=Indicators(" ", "1"),
                subfields=_sf(
                    [
                        ("a", rep.place),
                        ("b", rep.publisher),
                        ("c", str(rep.year) if rep.year else ""),
                    ]
                ),
            )
        )
        prov.append(("264", member0, id0))
    if rep.extent:
        record.add_field(
            Field(tag="300", indicators=Indicators(" ", " "), subfields=_sf([("a", rep.extent)]))
        )
    if rep.series:
        record.add_field(
            Field(
                tag="490",
                indicators=Indicators("0", " "),
                subfields=_sf([("a", rep.series), ("v", rep.series_volume)]),
            )
        )
    for subject in dict.fromkeys(s for _, _, r in recs for s in r.subjects):
        record.add_field(
            Field(tag="653", indicators=Indicators(" ", " "), subfields=_sf([("a", subject)]))
        )
    for n in people[1:] + [n for n in rep.names if n.kind != "person"]:
        tag = "700" if n.kind == "person" else "710"
        record.add_field(
            Field(
                tag=tag,
                indicators=Indicators("1" if tag == "700" else "2", " "),
                subfields=_sf([("a", n.name), ("e", n.role)]),
            )
        )
    for tag, member, rid in prov:
        record.add_field(
            Field(
                tag="883",
                indicators=Indicators("1", " "),
                subfields=_sf(
                    [
                        ("a", "union catalogue merge"),
                        ("q", member),
                        ("w", f"({member}){rid}"),
                        ("8", tag),
                    ]
                ),
            )
        )
    return record


def merged_marcxml(cluster: dict[str, Any]) -> str:
    return _xml(merged_record(cluster))
