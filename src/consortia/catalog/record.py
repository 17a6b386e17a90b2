"""The one record shape that MARC21 and UNIMARC/CNMARC records are normalised into.

Produced by ``normalize.py``, consumed by ``matching.py``, ``ingest.py`` and the search index.
Plain data: picklable, so worker processes can hand it to the single writer.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Name:
    name: str
    role: str = ""  # relator term or code, e.g. "author", "editor", "aut"
    kind: str = "person"  # person, corporate, meeting
    vernacular: str = ""  # the 880 (MARC21) / $7 script form when the main one is romanised


@dataclass(frozen=True)
class Isbn:
    isbn13: str  # normalised to ISBN-13, digits only
    qualifier: str = ""  # pbk, hbk, vol. 2, ebook, ... as given in $q or in parentheses
    valid: bool = True  # False: kept as given (cancelled/invalid $z, bad check digit)


@dataclass(frozen=True)
class Classification:
    scheme: str  # "clc", "ddc", "lcc", "udc", "other"
    value: str


@dataclass
class NormalizedRecord:
    record_id: str  # the member's record id (001)
    flavour: str  # "marc21" or "unimarc"
    deleted: bool = False  # leader/05 == "d"
    title: str = ""  # title proper
    remainder: str = ""  # other title information / subtitle
    part: str = ""  # number and name of part / volume designation of a set
    title_vernacular: str = ""  # 880 pair of 245 when 245 is romanised
    title_pinyin: str = ""  # CNMARC 200 $9 / $A: the title proper in pinyin
    responsibility: str = ""
    names: list[Name] = field(default_factory=list)
    publisher: str = ""
    place: str = ""
    years: list[int] = field(default_factory=list)  # first is the publication year
    edition: str = ""  # edition statement as given
    edition_number: int | None = None  # 2 for "2nd ed.", "第2版", "Second edition"
    pages: int | None = None
    extent: str = ""
    isbns: list[Isbn] = field(default_factory=list)
    issns: list[str] = field(default_factory=list)
    lccn: str = ""
    oclc: list[str] = field(default_factory=list)
    system_numbers: list[str] = field(default_factory=list)  # other 035 values, as given
    languages: list[str] = field(default_factory=list)  # ISO 639-2/B codes, e.g. "chi", "eng"
    material: str = "book"  # book, ebook, serial, score, map, sound, video, manuscript, other
    reproduction: bool = False  # facsimile / reprint / microform of another manifestation
    subjects: list[str] = field(default_factory=list)
    classifications: list[Classification] = field(default_factory=list)
    series: str = ""
    series_volume: str = ""

    @property
    def year(self) -> int | None:
        return self.years[0] if self.years else None

    def to_dict(self) -> dict[str, Any]:
        # dataclasses.asdict deep-copies recursively and dominated load profiles; the fields
        # are flat lists of strings and small frozen dataclasses, so a shallow build is enough.
        out = dict(self.__dict__)
        out["names"] = [n.__dict__.copy() for n in self.names]
        out["isbns"] = [i.__dict__.copy() for i in self.isbns]
        out["classifications"] = [c.__dict__.copy() for c in self.classifications]
        for key in ("years", "issns", "oclc", "system_numbers", "languages", "subjects"):
            out[key] = list(out[key])
        return out


_FIELDS = frozenset(NormalizedRecord.__dataclass_fields__)
_REQUIRED = frozenset({"record_id", "flavour"})
_LISTS = tuple(
    name for name, f in NormalizedRecord.__dataclass_fields__.items() if f.default_factory is list
)
_SCALAR_DEFAULTS = {
    name: f.default
    for name, f in NormalizedRecord.__dataclass_fields__.items()
    if f.default_factory is not list and name not in _REQUIRED
}


def _part_maker(cls: type[Any]) -> Any:
    """A maker of a frozen part (Name, Isbn, Classification) from its stored dict, filled in
    directly: a frozen dataclass's __init__ sets each field through object.__setattr__, which
    made it most of the cost of decoding a record. The constructor decides anything unusual."""
    fields = cls.__dataclass_fields__
    known = frozenset(fields)
    required = frozenset(k for k, f in fields.items() if f.default is MISSING)
    defaults = {k: f.default for k, f in fields.items() if f.default is not MISSING}
    new = object.__new__

    def make(data: dict[str, Any]) -> Any:
        if len(data) == len(known) and data.keys() == known:
            obj = new(cls)
            obj.__dict__.update(data)
            return obj
        if required <= data.keys() <= known:
            obj = new(cls)
            obj.__dict__.update(defaults)
            obj.__dict__.update(data)
            return obj
        return cls(**data)

    return make


_name = _part_maker(Name)
_isbn = _part_maker(Isbn)
_classification = _part_maker(Classification)


def record_from_dict(data: dict[str, Any]) -> NormalizedRecord:
    """Rebuild a record stored as JSON (``to_dict``); keys unknown to this version are ignored."""
    if not (_REQUIRED <= data.keys() <= _FIELDS):
        values = {k: v for k, v in data.items() if k in _FIELDS}
        values["names"] = [Name(**n) for n in data.get("names", [])]
        values["isbns"] = [Isbn(**i) for i in data.get("isbns", [])]
        values["classifications"] = [Classification(**c) for c in data.get("classifications", [])]
        return NormalizedRecord(**values)
    # The usual case, as NormalizedRecord(**values) would make it, without its __init__.
    rec = object.__new__(NormalizedRecord)
    values = dict(_SCALAR_DEFAULTS)
    values.update(data)
    for name in _LISTS:
        value = values.get(name)
        if type(value) is not list:
            values[name] = list(value) if value is not None else []
    values["names"] = [_name(n) for n in values["names"]]
    values["isbns"] = [_isbn(i) for i in values["isbns"]]
    values["classifications"] = [_classification(c) for c in values["classifications"]]
    rec.__dict__.update(values)
    return rec
