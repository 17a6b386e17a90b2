"""The MARC reader against real files (copied into tests/data/marc from ../shared/data/marc,
see tests/data/marc/SOURCES.md) and CNMARC records built from the format's field definitions.

Peers nobody here wrote: pymarc's own MARCReader (UTF-8 records) and yaz-marcdump (MARC-8, GBK).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tracemalloc
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pymarc
import pytest
from lxml import etree

from consortia.catalog.marc import ReadFailure, ReadResult, read_records
from consortia.catalog.normalize import normalize

DATA = Path(__file__).parents[1] / "data"
MARC = DATA / "marc"
BAD = MARC / "bad"
UNIMARC = DATA / "unimarc"
LOC = MARC / "loc-200.mrc"
YAZ = shutil.which("yaz-marcdump")
needs_yaz = pytest.mark.skipif(
    YAZ is None, reason="yaz-marcdump (Debian package yaz) not installed"
)


def results(path: Path | bytes, **kw: Any) -> list[ReadResult | ReadFailure]:
    if isinstance(path, bytes):
        return list(read_records(io.BytesIO(path), **kw))
    return list(read_records(path, **kw))


def fields_of(record: pymarc.Record) -> list[tuple[Any, ...]]:
    """A record's fields as plain tuples, text in NFC (yaz leaves MARC-8 marks decomposed)."""
    out: list[tuple[Any, ...]] = []
    for f in record.fields:
        if f.control_field:
            out.append((f.tag, unicodedata.normalize("NFC", f.data or "")))
        else:
            subs = tuple((c, unicodedata.normalize("NFC", v)) for c, v in f.subfields)
            out.append((f.tag, f.indicator1, f.indicator2, subs))
    return out


def record(tag_values: list[tuple[str, str]], leader: str = "     nam a22     7a 4500") -> bytes:
    """A small UTF-8 ISO 2709 record from (tag, body) pairs; bodies of data fields include the
    indicators and subfield delimiters ("$" is written as 0x1F)."""
    data = b""
    directory = b""
    for tag, body in tag_values:
        raw = body.replace("$", "\x1f").encode("utf-8") + b"\x1e"
        directory += tag.encode() + b"%04d%05d" % (len(raw), len(data))
        data += raw
    directory += b"\x1e"
    base = 24 + len(directory)
    total = base + len(data) + 1
    lead = f"{total:05d}{leader[5:12]}{base:05d}{leader[17:]}"
    return lead.encode() + directory + data + b"\x1d"


GOOD = record([("001", "rec-1"), ("245", "10$aA title /$cSomeone.")])
GOOD2 = record([("001", "rec-2"), ("245", "10$aAnother title.")])


# ---------------------------------------------------------------------------------------------
# LC Books All: 200 UTF-8 records, against pymarc's own reader


def test_loc_records_match_pymarc_field_for_field() -> None:
    ours = results(LOC)
    with LOC.open("rb") as fh:
        theirs = [r for r in pymarc.MARCReader(fh) if r is not None]
    assert len(theirs) == 200
    assert all(isinstance(r, ReadResult) for r in ours)
    assert len(ours) == 200
    for mine, peer in zip(ours, theirs, strict=True):
        assert isinstance(mine, ReadResult)
        assert mine.flavour == "marc21"
        assert mine.encoding == "utf-8"
        assert mine.warnings == []
        assert str(mine.record.leader) == str(peer.leader)
        assert fields_of(mine.record) == fields_of(peer)
        assert mine.record_id == peer["001"].data.strip()


def test_raw_bytes_are_verbatim_with_offsets() -> None:
    data = LOC.read_bytes()
    pos = 0
    for r in results(LOC):
        assert r.offset == pos
        assert data[r.offset : r.offset + len(r.raw)] == r.raw
        pos += len(r.raw)
    assert pos == len(data)


def test_reads_from_a_stream_that_cannot_seek() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._src = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            chunk = self._src.read(min(len(b), 777))  # short reads, like a pipe
            b[: len(chunk)] = chunk
            return len(chunk)

    ids = [r.record_id for r in read_records(io.BufferedReader(Pipe(LOC.read_bytes())))]
    assert ids == [r.record_id for r in results(LOC)]


# ---------------------------------------------------------------------------------------------
# MARC-8, EACC and the others, against yaz


CJK_TITLES = {
    # 880 paired with 245 $a, as yaz-marcdump -f MARC-8 -t UTF-8 prints it
    "marc-perl_marc-charset__t__cjk1.marc": "金田一 京助 と アイヌ語 /",
    "marc-perl_marc-charset__t__cjk3.marc": "鲁  迅  与  浙东  文化 /",
}


@pytest.mark.parametrize("name", sorted(CJK_TITLES))
def test_eacc_decodes_to_the_right_characters(name: str) -> None:
    (r,) = results(MARC / name)
    assert isinstance(r, ReadResult)
    assert r.encoding == "marc8"
    vernacular_245 = [f for f in r.record.get_fields("880") if f["6"].startswith("245")]
    assert vernacular_245[0]["a"] == CJK_TITLES[name]


def yaz_records(path: Path, *args: str) -> list[list[tuple[Any, ...]]]:
    """Records as yaz-marcdump converts them, read back from its MARCXML output."""
    assert YAZ is not None
    out = subprocess.run(
        [YAZ, *args, "-o", "marcxml", str(path)], capture_output=True, check=True
    ).stdout
    root = etree.fromstring(out, etree.XMLParser(resolve_entities=False, no_network=True))
    ns = "{http://www.loc.gov/MARC21/slim}"
    recs = []
    for rec in root.iter(f"{ns}record"):
        flds: list[tuple[Any, ...]] = []
        for el in rec:
            if el.tag == f"{ns}controlfield":
                flds.append((el.get("tag"), unicodedata.normalize("NFC", el.text or "")))
            elif el.tag == f"{ns}datafield":
                subs = tuple(
                    (s.get("code"), unicodedata.normalize("NFC", s.text or "")) for s in el
                )
                flds.append((el.get("tag"), el.get("ind1"), el.get("ind2"), subs))
        recs.append(flds)
    return recs


MARC8_FILES = [
    "marc-perl_marc-charset__t__cjk1.marc",
    "marc-perl_marc-charset__t__cjk2.marc",
    "marc-perl_marc-charset__t__cjk3.marc",
    "marc-perl_marc-charset__t__cjk4.marc",
    "marc-perl_marc-charset__t__cyrillic.marc",
    "evergreen_Open-ILS__tests__datasets__hebrew.marc",
    "pymarc_test__marc8.dat",
    "yaz_test__marc-files__marc7.marc",
    "yaz_test__marc-files__marc9.marc",
]


@needs_yaz
@pytest.mark.parametrize("name", MARC8_FILES)
def test_marc8_text_equals_yaz_conversion(name: str) -> None:
    ours = [r for r in results(MARC / name) if isinstance(r, ReadResult)]
    theirs = yaz_records(MARC / name, "-f", "MARC-8", "-t", "UTF-8")
    assert ours, name
    assert all(r.encoding == "marc8" for r in ours)
    # hebrew.marc holds 20 records; yaz converts them all, one has a DEL byte we drop
    assert len(ours) == len(theirs)
    for mine, peer in zip(ours, theirs, strict=True):
        assert as_yaz(fields_of(mine.record)) == [
            tuple(x.replace("\x7f", "") if isinstance(x, str) else x for x in f) for f in peer
        ]


# yaz maps MARC-8 ligature and double-tilde halves (EB/EC, FA/FB) to the double-width marks
# U+0361 / U+0360; pymarc's LC table keeps the half marks U+FE20-FE23. Both are LC mappings.
YAZ_HALVES = str.maketrans({"\ufe20": "\u0361", "\ufe21": None, "\ufe22": "\u0360", "\ufe23": None})


def as_yaz(flds: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    def fix(x: Any) -> Any:
        if isinstance(x, str):
            return x.translate(YAZ_HALVES)
        if isinstance(x, tuple):
            return tuple(fix(y) for y in x)
        return x

    return [fix(f) for f in flds]


@pytest.mark.parametrize("n", [6, 7, 8, 9])
def test_yaz_iso_and_marcxml_pairs_read_the_same(n: int) -> None:
    """yaz ships each test record as MARC-8 ISO 2709 and as the UTF-8 MARCXML it converts to.

    (marc5 is left out: its 250 has no subfield delimiter, which yaz's XML guesses at.)
    """
    (iso,) = results(MARC / f"yaz_test__marc-files__marc{n}.marc")
    (xml,) = results(MARC / f"yaz_test__marc-files__marc{n}.xml")
    assert isinstance(iso, ReadResult) and isinstance(xml, ReadResult)
    assert as_yaz(fields_of(iso.record)) == fields_of(xml.record)
    assert iso.record_id == xml.record_id


def test_utf8_without_the_leader_flag_is_detected() -> None:
    (flagged,) = results(MARC / "pymarc_test__utf8_with_leader_flag.dat")
    (unflagged,) = results(MARC / "pymarc_test__utf8_without_leader_flag.dat")
    assert isinstance(flagged, ReadResult) and isinstance(unflagged, ReadResult)
    assert flagged.encoding == unflagged.encoding == "utf-8"
    assert flagged.warnings == []
    assert unflagged.warnings == ["leader/09 says MARC-8 but the data is UTF-8; read as UTF-8"]
    assert fields_of(flagged.record) == fields_of(unflagged.record)


def test_encoding_override_reads_a_mislabelled_file() -> None:
    path = BAD / "ruby-marc_test__marc8_accented_chars.marc"
    (auto,) = results(path)
    assert isinstance(auto, ReadFailure)
    assert auto.reason.startswith("bad encoding: invalid UTF-8 at byte ")
    (forced,) = results(path, encoding="marc8")
    assert isinstance(forced, ReadResult)
    assert forced.encoding == "marc8"
    assert "é" in forced.record["245"]["a"] or "è" in str(forced.record)


# ---------------------------------------------------------------------------------------------
# malformed files: every file under ../shared/data/marc with a record that fails, small ones
# copied into tests/data/marc/bad. Counts verified with yaz-marcdump and by inspection:
# "missing 001" counts equal the records yaz shows without a 001 (or with an empty one).

NO_001 = "missing 001 (record identifier)"
OL = "openlibrary_openlibrary__catalog__marc__tests__test_data__"
OL_ADD = "openlibrary_openlibrary__catalog__add_book__tests__test_data__"
EG = "evergreen_Open-ILS__tests__datasets__"


BAD_FILES: dict[str, tuple[int, dict[str, int]]] = {
    # name: (records read, {reason before the first colon: failures})
    EG + "lul_fre_100.mrc": (99, {NO_001: 1}),
    # yaz: 42 records, 28 with 001; one of those has a leader whose base address is not a number
    EG + "oss.marc": (27, {NO_001: 14, "bad leader": 1}),
    # 7 root records (yaz stops after the first: "junk after document element"); 3 have 001
    EG + "serials_marc21.xml": (3, {NO_001: 4}),
    "evergreen_concerto_bibs_booking.xml": (0, {NO_001: 2}),
    "evergreen_concerto_bibs_ebook_api.xml": (0, {NO_001: 4}),
    "marc-perl_marc-charset__t__farsi.marc": (0, {"truncated": 1}),
    "marc-perl_marc-record__t__baddir.usmarc": (0, {"directory": 1}),
    "marc-perl_marc-record__t__badind.usmarc": (0, {NO_001: 1}),
    # 6 records (yaz: 6, one with an empty 001), a stray 0x1D between two, one byte after the end
    "marc-perl_marc-record__t__badldr.usmarc": (0, {NO_001: 6, "truncated": 1}),
    "marc-perl_marc-record__t__sample1.usmarc": (0, {NO_001: 1}),
    "marc-perl_marc-record__t__sample1eof.usmarc": (0, {NO_001: 1}),
    "marc-perl_marc-xml__t__empty-record-2.xml": (0, {"not a MARC record": 1}),
    "marc-perl_marc-xml__t__empty-record.xml": (0, {"not a MARC record": 1}),
    "marc-perl_marc-xml__t__end-of-stream.xml": (0, {NO_001: 1}),
    "marc-perl_marc-xml__t__namespace.xml": (0, {NO_001: 1}),
    "marc-perl_marc-xml__t__record.dat": (0, {NO_001: 1}),
    "marc-perl_marc-xml__t__subfield0.xml": (0, {NO_001: 1}),
    OL_ADD + "flatlandromanceo00abbouoft_meta.mrc": (0, {NO_001: 1}),
    OL_ADD + "treatiseonhistor00dixo_meta.mrc": (0, {NO_001: 1}),
    OL + "bin_input__collingswood_520aa.mrc": (0, {NO_001: 1}),
    OL + "bin_input__collingswood_bad_008.mrc": (0, {NO_001: 1}),
    OL + "bin_input__flatlandromanceo00abbouoft_meta.mrc": (0, {NO_001: 1}),
    OL + "bin_input__henrywardbeecher00robauoft_meta.mrc": (0, {NO_001: 1}),
    OL + "bin_input__mytwocountries1954asto_meta.mrc": (0, {NO_001: 1}),
    OL + "bin_input__new_poganucpeoplethe00stowuoft_meta.mrc": (0, {NO_001: 1}),
    OL + "bin_input__poganucpeoplethe00stowuoft_meta.mrc": (0, {NO_001: 1}),
    OL + "bin_input__uoft_4351105_1626.mrc": (0, {NO_001: 1}),
    OL + "bin_input__upei_short_008.mrc": (0, {"directory": 1}),
    OL + "xml_input__flatlandromanceo00abbouoft_marc.xml": (0, {NO_001: 1}),
    OL + "xml_input__mytwocountries1954asto_marc.xml": (0, {NO_001: 1}),
    # Windows-1251 in records that say MARC-8
    "pymarc_test__1251.dat": (0, {"bad encoding": 6}),
    "pymarc_test__bad_eacc_encoding.dat": (0, {"bad encoding": 1}),
    "pymarc_test__bad_indicator.dat": (0, {"directory": 1}),
    "pymarc_test__bad_marc8_escape.dat": (0, {"bad encoding": 1}),
    # yaz: 8 records; 2 are sound but have no 001, 6 are broken in leader or directory
    "pymarc_test__bad_records.mrc": (0, {NO_001: 2, "bad leader": 3, "directory": 3}),
    "pymarc_test__bad_tag.xml": (0, {"bad leader": 1}),
    "ruby-marc_test__bad_eacc_encoding.marc8.marc": (0, {"bad encoding": 1}),
    # CP866 text re-encoded without fixing the directory lengths
    "ruby-marc_test__cp866_multirecord.marc": (0, {"directory": 2}),
    "ruby-marc_test__cp866_unimarc.marc": (0, {"directory": 1}),
    "ruby-marc_test__marc8_accented_chars.marc": (0, {"bad encoding": 1}),
    "ruby-marc_test__marc_with_bad_utf8.utf8.marc": (0, {"bad encoding": 1}),
    "ruby-marc_test__no-leading-zero.xml": (0, {NO_001: 1}),
    # the second of three records has a control character in an attribute
    "ruby-marc_test__three-records-second-bad.xml": (2, {"XML not well-formed": 1}),
    "ruby-marc_test__utf8_with_bad_bytes.marc": (0, {"bad encoding": 1}),
    "traject_test__test_support__bad_utf_byte.utf8.marc": (0, {"bad encoding": 1}),
    "traject_test__test_support__namespace-test.xml": (0, {"not a MARC record": 1}),
    "yaz_test__marc-files__marc0.marc": (0, {NO_001: 1}),
    "yaz_test__marc-files__marc0.xml": (0, {NO_001: 1}),
    # danMARC2: 001 is a data field with subfields
    "yaz_test__marc-files__marc1.xml": (0, {NO_001: 1}),
    # ANSEL 0xAF is not assigned; yaz guesses, we quarantine
    "yaz_test__marc-files__marc10.marc": (0, {"bad encoding": 1}),
    "yaz_test__marc-files__marc11.marc": (0, {"bad encoding": 1}),
    # an EACC triple with bytes outside 21-7E
    "yaz_test__marc-files__marc12.marc": (0, {"bad encoding": 1}),
    "yaz_test__marc-files__marc2.xml": (0, {NO_001: 1}),
    "yaz_test__marc-files__marc3.xml": (0, {NO_001: 1}),
    # five stray digits before the leader (yaz skips them one by one)
    "yaz_test__marc-files__marc4.marc": (1, {"garbage": 1}),
    "yaz_test__marc-files__marc4.xml": (0, {NO_001: 1}),
}  # fmt: skip


def test_every_bad_file_is_listed() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(BAD_FILES)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_quarantine_the_bad_and_load_the_good(name: str) -> None:
    path = BAD / name
    data = path.read_bytes()
    got = results(path)  # must not raise
    read = [r for r in got if isinstance(r, ReadResult)]
    failed = [r for r in got if isinstance(r, ReadFailure)]
    expected_read, expected_failed = BAD_FILES[name]
    assert len(read) == expected_read
    assert Counter(f.reason.split(":")[0] for f in failed) == expected_failed
    last = -1
    for r in got:
        assert r.offset > last  # file order
        last = r.offset
        assert data[r.offset : r.offset + len(r.raw)] == r.raw  # verbatim
    for f in failed:
        assert f.reason == f.msgid.format(**f.params)


def test_reasons_name_what_is_wrong() -> None:
    got = results(BAD / "pymarc_test__bad_records.mrc")
    reasons = [r.reason for r in got if isinstance(r, ReadFailure)]
    assert "bad leader: base address of data 'f0037' is not a number" in reasons
    assert "directory: its length 13 is not a multiple of 12" in reasons
    assert "bad leader: base address of data 99937 lies outside the record (127 bytes)" in reasons


# ---------------------------------------------------------------------------------------------
# synthetic damage: resynchronisation and the reasons


def test_garbage_between_records_is_one_failure_and_reading_goes_on() -> None:
    got = results(GOOD + b"this is not MARC\x1d" + GOOD2)
    assert [type(r).__name__ for r in got] == ["ReadResult", "ReadFailure", "ReadResult"]
    assert got[1].raw == b"this is not MARC\x1d"
    assert got[1].offset == len(GOOD)
    assert got[2].offset == len(GOOD) + 17
    assert isinstance(got[2], ReadResult) and got[2].record_id == "rec-2"


def test_garbage_glued_to_a_record_is_split_off() -> None:
    got = results(GOOD + b"xx\r\n garbage" + GOOD2)
    assert isinstance(got[1], ReadFailure)
    assert got[1].reason == "garbage: 12 bytes that are not a record"
    assert isinstance(got[2], ReadResult) and got[2].offset == len(GOOD) + 12


def test_non_numeric_record_length() -> None:
    bad = b"00x12" + GOOD2[5:]
    got = results(GOOD + bad + GOOD)
    assert isinstance(got[1], ReadFailure)
    assert got[1].reason == "bad leader: record length '00x12' is not a number"
    assert got[1].record_id == "rec-2"
    assert [type(r) for r in got] == [ReadResult, ReadFailure, ReadResult]


def test_directory_entry_past_the_end() -> None:
    broken = bytearray(GOOD2)
    # the second entry's start (bytes 24+12+7 .. +12) pushed beyond the data
    broken[24 + 12 + 7 : 24 + 12 + 12] = b"00900"
    (r,) = results(bytes(broken))
    assert isinstance(r, ReadFailure)
    assert r.reason == "directory: entry 2 (tag 245) points past the end of the record"


def test_invalid_utf8_names_the_byte_and_field() -> None:
    rec = bytearray(GOOD)
    at = rec.index(b"A title")
    rec[at] = 0xFF
    (r,) = results(bytes(rec))
    assert isinstance(r, ReadFailure)
    assert r.reason == f"bad encoding: invalid UTF-8 at byte {at} (field 245)"


def test_missing_001_and_empty_001() -> None:
    got = results(record([("245", "10$aNo id")]) + record([("001", "  "), ("245", "10$aBlank")]))
    assert [r.reason for r in got if isinstance(r, ReadFailure)] == [
        "missing 001 (record identifier)"
    ] * 2


def test_truncated_last_record() -> None:
    got = results(GOOD + GOOD2[:-10])
    assert isinstance(got[0], ReadResult)
    assert isinstance(got[1], ReadFailure)
    assert got[1].reason.startswith("truncated: no record terminator")


def test_deleted_flag_and_unknown_options() -> None:
    deleted = record([("001", "gone"), ("245", "10$aOld")], leader="     dam a22     7a 4500")
    (r,) = results(deleted)
    assert isinstance(r, ReadResult) and r.deleted
    with pytest.raises(ValueError, match="unknown encoding"):
        results(GOOD, encoding="latin-9")


# ---------------------------------------------------------------------------------------------
# MARCXML and MARC-in-JSON


def test_marcxml_is_parsed_without_entities_or_network() -> None:
    xml = b"""<?xml version="1.0"?>
<!DOCTYPE collection [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<collection xmlns="http://www.loc.gov/MARC21/slim"><record>
<leader>00000nam a2200000 a 4500</leader><controlfield tag="001">x1</controlfield>
<datafield tag="245" ind1="1" ind2="0"><subfield code="a">&x;</subfield></datafield>
</record></collection>"""
    (r,) = results(xml)
    if isinstance(r, ReadResult):
        assert "root:" not in r.record["245"]["a"]
    else:
        assert "root:" not in r.reason


def test_marcxml_with_prefixes_and_utf8() -> None:
    got = results(MARC / "traject_test__test_support__test_data.utf8.marc.xml")
    assert len(got) == 30 and all(isinstance(r, ReadResult) for r in got)
    got880 = results(MARC / "evergreen_concerto_bibs_graphic_880.xml")
    assert all(isinstance(r, ReadResult) for r in got880) and len(got880) == 7


def test_marc_in_json_array_and_lines_equal_iso() -> None:
    iso = [r for r in results(LOC) if isinstance(r, ReadResult)][:50]
    docs = [json.loads(r.record.as_json()) for r in iso]
    array = json.dumps(docs, ensure_ascii=False).encode()
    lines = "\n".join(json.dumps(d, ensure_ascii=False) for d in docs).encode()
    for blob in (array, lines):
        got = results(blob)
        assert [type(r) for r in got] == [ReadResult] * 50
        for mine, ref in zip(got, iso, strict=True):
            assert isinstance(mine, ReadResult)
            assert fields_of(mine.record) == fields_of(ref.record)
            assert json.loads(mine.raw) == json.loads(ref.record.as_json())
            assert lines[mine.offset : mine.offset + len(mine.raw)] == mine.raw or blob is array


def test_json_lines_with_a_broken_line_goes_on() -> None:
    good = json.dumps({"leader": "00000nam a2200000 a 4500", "fields": [{"001": "j1"}]})
    blob = f"{good}\n{{not json\n{good.replace('j1', 'j2')}\n".encode()
    got = results(blob)
    assert [type(r) for r in got] == [ReadResult, ReadFailure, ReadResult]
    assert got[1].reason.startswith("JSON not well-formed")


# ---------------------------------------------------------------------------------------------
# UNIMARC and CNMARC


def test_cnmarc_files_are_what_the_builder_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("cnmarc_build", UNIMARC / "build.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, content in mod.build().items():
        assert (UNIMARC / name).read_bytes() == content, name


@pytest.mark.parametrize(
    ("name", "encoding"),
    [("cnmarc-utf8.mrc", "utf-8"), ("cnmarc-gbk.mrc", "gb18030"), ("cnmarc-utf8.xml", "utf-8")],
)
def test_cnmarc_flavour_and_encoding_detected(name: str, encoding: str) -> None:
    got = results(UNIMARC / name)
    assert [type(r) for r in got] == [ReadResult] * 4
    assert {(r.flavour, r.encoding) for r in got if isinstance(r, ReadResult)} == {
        ("unimarc", encoding)
    }
    assert [r.deleted for r in got if isinstance(r, ReadResult)] == [False, False, True, False]


def test_gbk_and_utf8_cnmarc_read_to_the_same_text() -> None:
    utf8 = [r for r in results(UNIMARC / "cnmarc-utf8.mrc") if isinstance(r, ReadResult)]
    gbk = [r for r in results(UNIMARC / "cnmarc-gbk.mrc") if isinstance(r, ReadResult)]
    for a, b in zip(utf8, gbk, strict=True):
        fa = [f for f in fields_of(a.record) if f[0] != "100"]
        fb = [f for f in fields_of(b.record) if f[0] != "100"]
        assert fa == fb
    assert utf8[0].record["200"]["a"] == "计算机程序设计艺术"


@needs_yaz
def test_gbk_cnmarc_equals_yaz_conversion() -> None:
    ours = [
        fields_of(r.record)
        for r in results(UNIMARC / "cnmarc-gbk.mrc")
        if isinstance(r, ReadResult)
    ]
    assert ours == yaz_records(UNIMARC / "cnmarc-gbk.mrc", "-f", "GBK", "-t", "UTF-8")


def test_gb18030_four_byte_character_and_override() -> None:
    (r,) = results(UNIMARC / "cnmarc-gb18030.mrc")
    assert isinstance(r, ReadResult) and r.encoding == "gb18030"
    assert r.record["200"]["a"] == "\U00020000字考"
    (forced,) = results(UNIMARC / "cnmarc-gbk.mrc", encoding="gbk")[:1]
    assert isinstance(forced, ReadResult) and forced.encoding == "gb18030"
    wrong = results(UNIMARC / "cnmarc-gbk.mrc", encoding="utf-8")
    assert all(isinstance(x, ReadFailure) and x.reason.startswith("bad encoding") for x in wrong)


def test_italian_unimarc_iso_and_slim_xml() -> None:
    iso = results(MARC / "unimarcxml_test__data.mrc")  # records separated by newlines
    slim = results(MARC / "unimarcxml_documentation__unimarctest.xml")  # rec/lab/cf/df/sf
    assert [type(r) for r in iso] == [ReadResult] * 5
    assert [type(r) for r in slim] == [ReadResult] * 5
    assert {r.flavour for r in iso + slim if isinstance(r, ReadResult)} == {"unimarc"}
    assert [r.record_id for r in iso] == [r.record_id for r in slim]  # type: ignore[union-attr]
    (one,) = results(MARC / "pymarc_test__testunimarc.dat")
    assert isinstance(one, ReadResult) and one.flavour == "unimarc" and one.encoding == "utf-8"


def test_flavour_override() -> None:
    (r,) = results(GOOD, flavour="unimarc")
    assert isinstance(r, ReadResult) and r.flavour == "unimarc"


# ---------------------------------------------------------------------------------------------
# memory stays flat: not timed


def test_memory_stays_flat_on_a_large_file(tmp_path: Path) -> None:
    """~50 MB of LC records and near-maximum (90 KB) records: the peak stays far below the size."""
    loc = LOC.read_bytes()
    big_records = b"".join(
        record(
            [("001", f"big-{i}"), ("245", "10$aBig")] + [("520", "  $a" + "long note " * 900)] * 10
        )
        for i in range(20)
    )
    block = loc + big_records
    big = tmp_path / "big.mrc"
    repeats = 50_000_000 // len(block) + 1
    with big.open("wb") as fh:
        for _ in range(repeats):
            fh.write(block)
    tracemalloc.start()
    try:
        n = 0
        for r in read_records(big):
            assert isinstance(r, ReadResult)
            normalize(r.record, r.flavour, r.record_id)
            n += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 220 * repeats
    assert big.stat().st_size > 50_000_000
    assert peak < 30_000_000, f"peak {peak / 1e6:.1f} MB"


def test_quarantine_reasons_exist_in_chinese_and_english() -> None:
    from consortia.i18n import catalogue

    msgids = {
        f.msgid for p in sorted(BAD.iterdir()) for f in results(p) if isinstance(f, ReadFailure)
    }
    msgids |= {
        f.msgid
        for blob in (GOOD + b"junk\x1d", b"00x12" + GOOD2[5:], GOOD[:-3], b'[{"fields": 3}]')
        for f in results(blob)
        if isinstance(f, ReadFailure)
    }
    assert len(msgids) >= 12
    for lang in ("zh-CN", "en"):
        missing = msgids - set(catalogue(lang))
        assert not missing, (lang, missing)
    assert catalogue("zh-CN")["missing 001 (record identifier)"] == "缺少 001（记录标识号）"
