"""Read MARC records from a member's file: ISO 2709, MARCXML and MARC-in-JSON, MARC21 and UNIMARC.

``read_records`` is a generator that streams: it holds at most one buffer of about a megabyte
plus the record being read, whatever the size of the file. Every record comes out either as a
``ReadResult`` (a ``pymarc.Record`` decoded to Unicode, with the verbatim bytes it was read from)
or as a ``ReadFailure`` (the verbatim bytes, where they were, and why they could not be read).
The reader never raises on bad data; the caller quarantines failures and goes on.

Detection, per record unless the caller overrides it for the whole load:

* flavour: MARC21 has 245 (or 008 without 200); UNIMARC has 200 and no 245 (100 holds a date);
* encoding of ISO 2709: leader/09 ``a`` means UTF-8 (verified); blank means MARC-8 (including
  EACC for Chinese, Japanese and Korean) unless the bytes are valid UTF-8 with non-ASCII text, or
  look like GBK (double-byte pairs in the GB 2312 range; Chinese systems write GBK/GB 18030 with a
  blank leader/09), or MARC-8 fails and GB 18030 succeeds. For UNIMARC, 100$a/26-27 ``50`` says
  UTF-8. MARCXML and MARC-in-JSON are Unicode by definition.

A failure's ``reason`` is plain English; ``msgid`` and ``params`` carry the same message as a
translatable template (``reason == msgid.format(**params)``), for the staff pages in Chinese.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from lxml import etree
from pymarc import Field, Indicators, Record, Subfield
from pymarc import marc8_mapping as _m8
from pymarc.leader import Leader

__all__ = ["FORMATS", "ReadFailure", "ReadResult", "read_records"]

FORMATS = ("auto", "iso2709", "marcxml", "json")
ENCODINGS = ("auto", "utf-8", "marc8", "gbk", "gb18030")
FLAVOURS = ("auto", "marc21", "unimarc")

RT = 0x1D  # record terminator
FT = 0x1E  # field terminator
SF = 0x1F  # subfield delimiter
MAX_RECORD = 99_999  # ISO 2709 record length has five digits
CHUNK = 1 << 20
# Between records some systems write newlines, blanks, NULs or a DOS end-of-file byte.
FILLER = b" \t\r\n\x00\x1a"
SKIP = FILLER + b"\x1d"  # a stray terminator between records carries nothing either
MAX_XML_RECORD = 8 << 20


@dataclass
class ReadResult:
    """One record read.

    ``offset`` is the byte offset of the record's first byte in the file (ISO 2709 and MARCXML)
    or the byte offset of the JSON object; ``raw`` the verbatim bytes from there.
    ``encoding`` is what the bytes were decoded from: utf-8, marc8, gb18030 or ascii.
    """

    record: Record
    raw: bytes
    offset: int
    flavour: str
    encoding: str
    record_id: str
    deleted: bool
    warnings: list[str] = field(default_factory=list)


@dataclass
class ReadFailure:
    """Bytes that could not be read as a record, with where they were and why."""

    raw: bytes
    offset: int
    reason: str
    record_id: str | None = None
    msgid: str = ""
    params: dict[str, Any] = field(default_factory=dict)


class _Bad(Exception):
    """A record cannot be read; carries a translatable template and its parameters."""

    def __init__(self, msgid: str, **params: Any) -> None:
        self.msgid = msgid
        self.params = params
        super().__init__(msgid.format(**params))


def _failure(raw: bytes, offset: int, bad: _Bad, record_id: str | None = None) -> ReadFailure:
    return ReadFailure(
        raw=raw,
        offset=offset,
        reason=str(bad),
        record_id=record_id,
        msgid=bad.msgid,
        params=bad.params,
    )


# --------------------------------------------------------------------------------------------
# entry point


def read_records(
    source: BinaryIO | IO[bytes] | Path | str,
    *,
    format: str = "auto",
    encoding: str = "auto",
    flavour: str = "auto",
    filename: str = "",
) -> Iterator[ReadResult | ReadFailure]:
    """Yield every record of ``source`` as a ``ReadResult`` or a ``ReadFailure``, in file order.

    ``source`` is a binary file object or a path (opened and closed here).
    ``format``: "auto" (sniffed from the first bytes), "iso2709", "marcxml" or "json"
    (MARC-in-JSON: one JSON array of records, or one record per line).
    ``encoding``: "auto", "utf-8", "marc8", "gbk" or "gb18030" (ISO 2709 only; gbk is read as
    GB 18030, its superset). ``flavour``: "auto", "marc21" or "unimarc".
    ``filename`` is only used in messages. Raises ``ValueError`` for an unknown option, never for
    bad data.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; use one of {', '.join(FLAVOURS)}")
    enc = "gb18030" if encoding == "gbk" else encoding
    if isinstance(source, str | Path):
        with open(source, "rb") as fh:
            yield from _read(cast(IO[bytes], fh), format, enc, flavour)
    else:
        yield from _read(cast(IO[bytes], source), format, enc, flavour)


def _read(
    fh: IO[bytes], format: str, encoding: str, flavour: str
) -> Iterator[ReadResult | ReadFailure]:
    head = fh.read(CHUNK)
    if format == "auto":
        format = _sniff(head)
    if format == "marcxml":
        yield from _read_xml(fh, head, flavour)
    elif format == "json":
        yield from _read_json(fh, head, flavour)
    else:
        yield from _read_iso(fh, head, encoding, flavour)


def _sniff(head: bytes) -> str:
    start = head.lstrip(b"\xef\xbb\xbf" + FILLER)[:1]
    if start == b"<":
        return "marcxml"
    if start in (b"[", b"{"):
        return "json"
    return "iso2709"


# --------------------------------------------------------------------------------------------
# ISO 2709


_LEADER_AT = re.compile(rb"\d{5}[a-z ][a-z ]")


def _read_iso(
    fh: IO[bytes], head: bytes, encoding: str, flavour: str
) -> Iterator[ReadResult | ReadFailure]:
    buf = head
    base = 0  # file offset of buf[0]
    pos = 0
    eof = len(head) < CHUNK
    while True:
        if not eof and len(buf) - pos < MAX_RECORD + 1:
            more = fh.read(CHUNK)
            eof = len(more) < CHUNK
            buf = buf[pos:] + more
            base += pos
            pos = 0
        # skip filler between records
        n = len(buf)
        while pos < n and buf[pos] in SKIP:
            pos += 1
        if pos >= n:
            if eof:
                return
            continue
        length_txt = buf[pos : pos + 5]
        end = -1
        if length_txt.isdigit():
            length = int(length_txt)
            if length >= 24 and pos + length <= n and buf[pos + length - 1] == RT:
                end = pos + length
        if end < 0:
            t = buf.find(b"\x1d", pos, pos + MAX_RECORD + 1)
            if t < 0:
                if not eof and n - pos <= MAX_RECORD:
                    continue
                # no terminator within the longest possible record: give up these bytes
                stop = min(n, pos + MAX_RECORD)
                chunk = buf[pos:stop]
                yield from _split_garbage(chunk, base + pos, encoding, flavour, terminated=False)
                pos = stop
                continue
            end = t + 1
        chunk = buf[pos:end]
        if not length_txt.isdigit() or int(length_txt) != len(chunk):
            yield from _split_garbage(chunk, base + pos, encoding, flavour, terminated=True)
        else:
            yield _parse_iso(chunk, base + pos, encoding, flavour)
        pos = end


def _split_garbage(
    chunk: bytes, offset: int, encoding: str, flavour: str, *, terminated: bool
) -> Iterator[ReadResult | ReadFailure]:
    """A chunk whose leader length does not fit: look for a record inside it that does.

    Bytes before such a record are garbage (a failure of their own); with none found the chunk
    is parsed as it is, so that a record whose leader length alone is wrong still loads.
    """
    if terminated:
        for m in _LEADER_AT.finditer(chunk, 1):
            i = m.start()
            if int(chunk[i : i + 5]) == len(chunk) - i and chunk[i + 20 : i + 22].isdigit():
                junk = chunk[:i]
                if junk.strip(FILLER):
                    yield _failure(
                        junk,
                        offset,
                        _Bad(
                            "garbage: {count} bytes that are not a record",
                            count=len(junk),
                        ),
                    )
                yield _parse_iso(chunk[i:], offset + i, encoding, flavour)
                return
        yield _parse_iso(chunk, offset, encoding, flavour)
        return
    yield _failure(
        chunk,
        offset,
        _Bad(
            "truncated: no record terminator (0x1D) in the {count} bytes from here",
            count=len(chunk),
        ),
    )


_DIR_RE: dict[tuple[int, int], re.Pattern[bytes]] = {}


def _dir_re(lenlen: int, startlen: int) -> re.Pattern[bytes]:
    key = (lenlen, startlen)
    rx = _DIR_RE.get(key)
    if rx is None:
        rx = re.compile(rb"([0-9A-Za-z]{3})(\d{%d})(\d{%d})" % (lenlen, startlen))
        _DIR_RE[key] = rx
    return rx


def _parse_iso(chunk: bytes, offset: int, encoding: str, flavour: str) -> ReadResult | ReadFailure:
    try:
        return _decode_iso(chunk, offset, encoding, flavour)
    except _Bad as bad:
        return _failure(chunk, offset, bad, _raw_001(chunk))
    except Exception as exc:  # the reader must never stop a load; keep the reason
        return _failure(
            chunk, offset, _Bad("unreadable: {error}", error=f"{type(exc).__name__}: {exc}")
        )


def _raw_001(chunk: bytes) -> str | None:
    """Best effort at the 001 of a record that failed, for the quarantine list."""
    try:
        base = int(chunk[12:17])
        d = chunk[24 : base - 1]
        for i in range(0, len(d) - 11, 12):
            if d[i : i + 3] == b"001":
                ln, st = int(d[i + 3 : i + 7]), int(d[i + 7 : i + 12])
                v = chunk[base + st : base + st + ln].rstrip(b"\x1e\x1d").strip()
                return v.decode("utf-8", "replace")[:80] or None
    except (ValueError, IndexError):
        return None
    return None


def _decode_iso(chunk: bytes, offset: int, encoding: str, flavour: str) -> ReadResult:
    warnings: list[str] = []
    size = len(chunk)
    if size < 25:
        raise _Bad(
            "bad leader: the record is only {size} bytes long, shorter than a leader",
            size=size,
        )
    try:
        leader = chunk[:24].decode("ascii")
    except UnicodeDecodeError:
        raise _Bad("bad leader: it contains bytes that are not ASCII") from None
    if not leader[:5].isdigit():
        raise _Bad("bad leader: record length '{value}' is not a number", value=leader[:5])
    if int(leader[:5]) != size:
        warnings.append(
            f"leader record length {leader[:5]} differs from the {size} bytes up to the "
            "record terminator"
        )
    if not leader[12:17].isdigit():
        raise _Bad(
            "bad leader: base address of data '{value}' is not a number", value=leader[12:17]
        )
    base = int(leader[12:17])
    if base < 25 or base >= size:
        raise _Bad(
            "bad leader: base address of data {base} lies outside the record ({size} bytes)",
            base=base,
            size=size,
        )
    if chunk[base - 1] != FT:
        raise _Bad(
            "directory: the base address {base} does not follow the end of the directory",
            base=base,
        )
    lenlen, startlen = 4, 5
    if leader[20:22] != "45":
        if leader[20:22].isdigit() and leader[20] != "0" and leader[21] != "0":
            lenlen, startlen = int(leader[20]), int(leader[21])
        else:
            warnings.append(f"leader entry map '{leader[20:24]}' is not valid; read as 4500")
    entry = 3 + lenlen + startlen
    directory = chunk[24 : base - 1]
    if len(directory) % entry:
        raise _Bad(
            "directory: its length {length} is not a multiple of {entry}",
            length=len(directory),
            entry=entry,
        )
    entries = _dir_re(lenlen, startlen).findall(directory)
    if len(entries) * entry != len(directory):
        # find the first entry that does not match, to say which
        for i in range(len(directory) // entry):
            bad_entry = directory[i * entry : (i + 1) * entry]
            if not _dir_re(lenlen, startlen).fullmatch(bad_entry):
                raise _Bad(
                    "directory: entry {n} '{entry}' is not a tag, a length and a start",
                    n=i + 1,
                    entry=bad_entry.decode("latin-1"),
                )
    if not entries:
        raise _Bad("directory: the record has no fields")
    data_end = size - 1  # the record terminator
    spans: list[tuple[str, int, int]] = []
    tags: set[str] = set()
    for n, (tag_b, len_b, start_b) in enumerate(entries, 1):
        s = base + int(start_b)
        e = s + int(len_b)
        tag = tag_b.decode("ascii")
        if e > data_end:
            raise _Bad(
                "directory: entry {n} (tag {tag}) points past the end of the record",
                n=n,
                tag=tag,
            )
        if e > s and chunk[e - 1] == FT:
            e -= 1
        elif e > s:
            warnings.append(f"field {tag} does not end with a field terminator")
        spans.append((tag, s, e))
        tags.add(tag)

    flav = flavour if flavour != "auto" else _detect_flavour(tags, leader, chunk, spans)
    enc = encoding
    body = chunk[base:data_end]
    if enc == "auto":
        enc = _detect_encoding(leader, body, flav, chunk, spans, warnings)
    fields, enc = _decode_fields(chunk, spans, enc, warnings, auto=encoding == "auto")
    record = Record()
    record.leader = Leader(leader)
    record.fields = fields
    record_id = ""
    for f in fields:
        if f.tag == "001":
            record_id = (f.data or "").strip()
            break
    if not record_id:
        raise _Bad("missing 001 (record identifier)")
    return ReadResult(
        record=record,
        raw=chunk,
        offset=offset,
        flavour=flav,
        encoding=enc,
        record_id=record_id,
        deleted=leader[5] == "d",
        warnings=warnings,
    )


_DATE8 = re.compile(rb"\x1fa\d{8}")


def _detect_flavour(
    tags: set[str], leader: str, chunk: bytes, spans: list[tuple[str, int, int]]
) -> str:
    if "245" in tags:
        return "marc21"
    if "200" in tags:
        return "unimarc"
    if "008" in tags:
        return "marc21"
    for tag, s, e in spans:
        if tag == "100" and _DATE8.match(chunk, s + 2, e):
            return "unimarc"
    # UNIMARC leader/08 is the hierarchical level (blank, 0, 1, 2); MARC21 has blank or a
    if leader[8] in "012":
        return "unimarc"
    return "marc21"


def _looks_gbk(body: bytes) -> bool:
    """Double-byte text whose pairs sit in the GB 2312 block (A1-FE A1-FE) and decodes as GB 18030.

    MARC-8 diacritics (E0-FE) precede an ASCII letter, so they fail the trail-byte test.
    """
    if b"\x1b" in body:
        return False
    pairs = good = 0
    i = 0
    n = len(body)
    while True:
        m = _HIGH.search(body, i)
        if m is None:
            break
        i = m.start()
        if i + 1 >= n:
            break
        pairs += 1
        if 0xA1 <= body[i] <= 0xFE and 0xA1 <= body[i + 1] <= 0xFE:
            good += 1
        i += 2
        if pairs >= 400:
            break
    if not pairs or good < 0.9 * pairs:
        return False
    try:
        body.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return True


_HIGH = re.compile(rb"[\x80-\xff]")


def _detect_encoding(
    leader: str,
    body: bytes,
    flavour: str,
    chunk: bytes,
    spans: list[tuple[str, int, int]],
    warnings: list[str],
) -> str:
    if body.isascii():
        if b"\x1b" in body:
            return "marc8"
        return "utf-8" if leader[9] == "a" or flavour == "unimarc" else "marc8"
    if leader[9] == "a":
        return "utf-8"  # verified while decoding; GB 18030 is tried there if UTF-8 fails
    if b"\x1b" in body:
        # escape sequences are MARC-8's; UTF-8 and GBK text never carries them
        return "auto-marc8"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if flavour == "marc21":
            warnings.append("leader/09 says MARC-8 but the data is UTF-8; read as UTF-8")
        return "utf-8"
    if _looks_gbk(body):
        return "gb18030"
    if flavour == "unimarc":
        raise _Bad(
            "bad encoding: UNIMARC character set '{charset}' (100$a/26-29) is not one this "
            "reader knows; load with an explicit encoding",
            charset=_unimarc_charset(chunk, spans),
        )
    return "auto-marc8"


def _unimarc_charset(chunk: bytes, spans: list[tuple[str, int, int]]) -> str:
    for tag, s, e in spans:
        if tag == "100":
            v = chunk[s:e]
            i = v.find(b"\x1fa")
            if i >= 0:
                return v[i + 2 + 26 : i + 2 + 30].decode("latin-1")
    return ""


_new_field = Field.__new__
_new_tuple = tuple.__new__
_BLANK_IND = Indicators(" ", " ")
_IND_CACHE: dict[str, Indicators] = {}


def _indicators(text: str, tag: str, warnings: list[str]) -> Indicators:
    ind = _IND_CACHE.get(text)
    if ind is None:
        if len(text) != 2:
            warnings.append(f"field {tag} has {len(text)} indicators instead of 2")
            t = (text + "  ")[:2]
            return Indicators(t[0], t[1])
        ind = Indicators(text[0], text[1])
        if len(_IND_CACHE) < 2000:
            _IND_CACHE[text] = ind
    return ind


def _make_field(tag: str, text: str, warnings: list[str]) -> Field:
    """A pymarc Field built without its constructor's checks, which cost more than the parse."""
    f = _new_field(Field)
    f.tag = tag
    if tag < "010" and tag.isdigit():
        f.data = text
        f.control_field = True
        f._indicators = None
        f.subfields = []
        return f
    parts = text.split("\x1f")
    f._indicators = _indicators(parts[0], tag, warnings)
    f.subfields = [_new_tuple(Subfield, (p[0], p[1:])) for p in parts[1:] if p]
    f.data = None
    f.control_field = False
    return f


def _decode_fields(
    chunk: bytes,
    spans: list[tuple[str, int, int]],
    enc: str,
    warnings: list[str],
    *,
    auto: bool = False,
) -> tuple[list[Field], str]:
    """Decode every field; returns the fields and the encoding actually used.

    "auto-marc8" is MARC-8 that may fall back to GB 18030 when a character has no MARC-8 mapping.
    """
    if enc in ("utf-8", "gb18030", "ascii"):
        codec = enc
        try:
            fields = [_make_field(tag, chunk[s:e].decode(codec), warnings) for tag, s, e in spans]
            return fields, enc
        except UnicodeDecodeError as exc:
            where = _locate(chunk, spans, exc)
            body = chunk[spans[0][1] : len(chunk) - 1] if spans else b""
            if auto and codec == "utf-8" and _looks_gbk(body):
                warnings.append("leader/09 says UTF-8 but the data is GBK; read as GB 18030")
                return _decode_fields(chunk, spans, "gb18030", warnings)
            raise _Bad(
                "bad encoding: invalid {encoding} at byte {byte} (field {tag})",
                encoding="UTF-8" if codec == "utf-8" else codec.upper(),
                byte=where[0],
                tag=where[1],
            ) from None
    # MARC-8
    out: list[Field] = []
    for tag, s, e in spans:
        raw = chunk[s:e]
        try:
            if tag < "010" and tag.isdigit():
                out.append(_make_field(tag, _marc8(raw), warnings))
                continue
            parts = raw.split(b"\x1f")
            f = _make_field(tag, parts[0].decode("ascii", "replace"), warnings)
            f.subfields = [_new_tuple(Subfield, (chr(p[0]), _marc8(p[1:]))) for p in parts[1:] if p]
            out.append(f)
        except _Marc8Error as err:
            if enc == "auto-marc8":
                body = chunk[spans[0][1] : len(chunk) - 1]
                other = ""
                if not body.isascii():
                    try:
                        body.decode("utf-8")
                        other = "utf-8"
                    except UnicodeDecodeError:
                        other = "gb18030" if _looks_gbk(body) else ""
                if other:
                    warnings.append(f"MARC-8 failed ({err.detail}) but the data reads as {other}")
                    return _decode_fields(chunk, spans, other, warnings)
            raise _Bad(
                "bad encoding: MARC-8 {detail} in field {tag}", detail=err.detail, tag=tag
            ) from None
    return out, "marc8"


def _locate(
    chunk: bytes, spans: list[tuple[str, int, int]], exc: UnicodeDecodeError
) -> tuple[int, str]:
    # the failing field is the first that does not decode
    for tag, s, e in spans:
        try:
            chunk[s:e].decode(exc.encoding)
        except UnicodeDecodeError as inner:
            return s + inner.start, tag
    return 0, "?"


# --------------------------------------------------------------------------------------------
# MARC-8 (ANSEL, Greek, Cyrillic, Hebrew, Arabic, EACC...): pymarc's tables, strict decoding


class _Marc8Error(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


_CODESETS: dict[int, dict[int, tuple[int, int]]] = _m8.CODESETS
_ODD: dict[int, int] = _m8.ODD_MAP
_BASIC_LATIN = 0x42
_ANSEL = 0x45
_EACC = 0x31


def _marc8(data: bytes) -> str:
    """MARC-8 bytes to Unicode (NFC). Raises _Marc8Error on a character that maps to nothing.

    G0 and G1 start as ASCII and ANSEL in each subfield; combining marks, which MARC-8 puts
    before their base letter, are moved after it as Unicode wants.
    """
    if not data:
        return ""
    if data.isascii() and 27 not in data:
        return data.decode("ascii")
    g0, g1 = _BASIC_LATIN, _ANSEL
    out: list[str] = []
    comb: list[str] = []
    pos = 0
    n = len(data)
    while pos < n:
        b = data[pos]
        if b == 0x1B:
            nxt = data[pos + 1] if pos + 1 < n else -1
            if nxt in (0x28, 0x2C, 0x24):  # ( , $ : designate G0
                if nxt == 0x24 and pos + 2 < n and data[pos + 2] == 0x2C:
                    pos += 1
                if pos + 2 >= n:
                    raise _Marc8Error(f"escape sequence cut short at byte {pos}")
                if nxt == 0x24 and data[pos + 2] in (0x29, 0x2D):  # ESC $ ) F : G1 multibyte
                    g1 = data[pos + 3] if pos + 3 < n else g1
                    pos += 4
                    continue
                g0 = data[pos + 2]
                pos += 3
                continue
            if nxt in (0x29, 0x2D):  # ) - : designate G1
                if pos + 2 >= n:
                    raise _Marc8Error(f"escape sequence cut short at byte {pos}")
                g1 = data[pos + 2]
                pos += 3
                continue
            if nxt in (0x67, 0x62, 0x70):  # Greek symbols, subscripts, superscripts
                g0 = nxt
                pos += 2
                continue
            if nxt == 0x73:  # back to ASCII
                g0 = _BASIC_LATIN
                pos += 2
                continue
            raise _Marc8Error(f"unknown escape sequence at byte {pos}")
        if g0 == _EACC and 0x20 < b < 0x7F:
            if pos + 3 > n:
                raise _Marc8Error(f"EACC character cut short at byte {pos}")
            cp = (b << 16) | (data[pos + 1] << 8) | data[pos + 2]
            pos += 3
            hit = _CODESETS[_EACC].get(cp)
            if hit is None:
                odd = _ODD.get(cp)
                if odd is None:
                    raise _Marc8Error(f"EACC character 0x{cp:06X} has no mapping")
                out.append(chr(odd))
                continue
            uni, cflag = hit
        else:
            pos += 1
            if b < 0x20 or b == 0x7F:
                continue  # control characters (and DEL) carry no text
            if b == 0x20 and g0 != _EACC:
                uni, cflag = 0x20, False
            else:
                table = _CODESETS.get(g1 if b >= 0x80 else g0)
                if table is None:
                    raise _Marc8Error(f"unknown character set 0x{(g1 if b >= 0x80 else g0):02X}")
                # a 94-character set works as G0 (21-7E) or as G1 (A1-FE); the tables hold one
                hit = table.get(b)
                if hit is None:
                    hit = table.get(b ^ 0x80)
                if hit is None:
                    odd = _ODD.get(b)
                    if odd is None:
                        raise _Marc8Error(f"byte 0x{b:02X} at {pos - 1} has no mapping")
                    out.append(chr(odd))
                    continue
                uni, cflag = hit
        if cflag:
            comb.append(chr(uni))
        else:
            out.append(chr(uni))
            if comb:
                out.extend(comb)
                comb = []
    if comb:
        out.extend(comb)
    return unicodedata.normalize("NFC", "".join(out))


# --------------------------------------------------------------------------------------------
# MARCXML (and the UNIMARC "slim" variant rec/lab/cf/df/sf) — one record element at a time


_MARCXML_NS = "http://www.loc.gov/MARC21/slim"
_REC_START = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?(record|rec)(?=[\s/>])")
_XMLNS = re.compile(rb"""\sxmlns(?::([A-Za-z_][\w.-]*))?\s*=\s*("[^"]*"|'[^']*')""")
_XML_ENC = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_LOCAL = {
    "leader": "leader",
    "lab": "leader",
    "controlfield": "controlfield",
    "cf": "controlfield",
    "datafield": "datafield",
    "df": "datafield",
}


def _xml_parser(encoding: str | None) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        encoding=encoding,
    )


def _read_xml(fh: IO[bytes], head: bytes, flavour: str) -> Iterator[ReadResult | ReadFailure]:
    """Split the byte stream into record elements and parse each with a hardened parser.

    Each record is parsed alone, so one that is not well-formed is quarantined and the next is
    read; files with several root records (not well-formed as a whole) read too. Namespace
    declarations seen outside the records are carried into each record's parse.
    """
    m = _XML_ENC.match(head.lstrip(b"\xef\xbb\xbf"))
    xml_encoding = m.group(1).decode("ascii") if m else None
    parser = _xml_parser(xml_encoding)
    decls: dict[bytes, bytes] = {}
    buf = head
    base = 0
    pos = 0
    eof = len(head) < CHUNK
    index = 0
    while True:
        m2 = _REC_START.search(buf, pos)
        if m2 is None:
            if eof:
                _collect_ns(buf[pos:], decls)
                return
            _collect_ns(buf[pos:], decls)
            keep = max(pos, len(buf) - 256)  # a start tag may straddle the chunk boundary
            more = fh.read(CHUNK)
            eof = len(more) < CHUNK
            buf = buf[keep:] + more
            base += keep
            pos = 0
            continue
        _collect_ns(buf[pos : m2.start()], decls)
        qname = m2.group(0)[1:]
        start = m2.start()
        # find the end of this element; an inner record start means this one is a wrapper
        gt = buf.find(b">", m2.end())
        while gt < 0 and not eof:
            more = fh.read(CHUNK)
            eof = len(more) < CHUNK
            buf += more
            gt = buf.find(b">", m2.end())
        if gt < 0:
            yield _xml_fail(buf[start:], base + start, "truncated: the file ends inside a record")
            return
        _collect_ns(buf[start : gt + 1], decls)
        if buf[gt - 1] == 0x2F:  # <record/>
            end = gt + 1
        else:
            close = b"</" + qname
            end = -1
            while True:
                c = buf.find(close, gt)
                inner = _REC_START.search(buf, gt, c if c >= 0 else len(buf))
                if inner is not None:
                    break
                if c >= 0:
                    e2 = buf.find(b">", c)
                    if e2 >= 0:
                        end = e2 + 1
                        break
                if eof or len(buf) - start > MAX_XML_RECORD:
                    break
                more = fh.read(CHUNK)
                eof = len(more) < CHUNK
                buf += more
            if inner is not None:
                pos = inner.start()
                continue
            if end < 0:
                yield _xml_fail(
                    buf[start:],
                    base + start,
                    "truncated: the record element is never closed",
                )
                return
        chunk = buf[start:end]
        if not _is_wrapper(chunk):
            yield _parse_xml_record(chunk, base + start, decls, parser, flavour)
            index += 1
        pos = end
        if pos > CHUNK and not eof:
            buf = buf[pos:]
            base += pos
            pos = 0


def _is_wrapper(chunk: bytes) -> bool:
    # an OAI-PMH <record> that holds Dublin Core or only a header is not a MARC record
    return b"<header" in chunk[:400] and b"leader" not in chunk and b"<lab" not in chunk


def _collect_ns(text: bytes, decls: dict[bytes, bytes]) -> None:
    if b"xmlns" in text:
        for m in _XMLNS.finditer(text):
            decls[m.group(1) or b""] = m.group(2)


def _xml_fail(raw: bytes, offset: int, msgid: str, **params: Any) -> ReadFailure:
    return _failure(raw, offset, _Bad(msgid, **params))


def _parse_xml_record(
    chunk: bytes,
    offset: int,
    decls: dict[bytes, bytes],
    parser: etree.XMLParser,
    flavour: str,
) -> ReadResult | ReadFailure:
    attrs = b"".join(b" xmlns" + (b":" + p if p else b"") + b"=" + v for p, v in decls.items())
    try:
        root = etree.fromstring(b"<w" + attrs + b">" + chunk + b"</w>", parser)
    except etree.XMLSyntaxError as exc:
        msg = str(exc.msg if hasattr(exc, "msg") else exc)
        return _xml_fail(chunk, offset, "XML not well-formed: {error}", error=msg)
    try:
        return _record_from_xml(root[0], chunk, offset, flavour)
    except _Bad as bad:
        return _failure(chunk, offset, bad)


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _record_from_xml(elem: Any, raw: bytes, offset: int, flavour: str) -> ReadResult:
    warnings: list[str] = []
    leader = ""
    fields: list[Field] = []
    for child in elem:
        kind = _LOCAL.get(_local(child.tag))
        if kind is None:
            continue
        if kind == "leader":
            leader = child.text or ""
        elif kind == "controlfield":
            tag = child.get("tag") or child.get("t") or ""
            fields.append(_make_field(_tag(tag), child.text or "", warnings))
        else:
            tag = _tag(child.get("tag") or child.get("t") or "")
            ind = (child.get("ind1") or child.get("i1") or " ")[:1] + (
                child.get("ind2") or child.get("i2") or " "
            )[:1]
            f = _new_field(Field)
            f.tag = tag
            f.data = None
            f.control_field = False
            f._indicators = _indicators(ind, tag, warnings)
            subs = []
            for sf in child:
                if _local(sf.tag) not in ("subfield", "sf"):
                    continue
                code = sf.get("code") or sf.get("c") or ""
                if len(code) != 1:
                    warnings.append(f"field {tag} has a subfield with code '{code}'")
                    code = (code or " ")[:1]
                subs.append(_new_tuple(Subfield, (code, sf.text or "")))
            f.subfields = subs
            fields.append(f)
    if not leader and not fields:
        raise _Bad("not a MARC record: the record element has no leader and no fields")
    if len(leader) != 24:
        raise _Bad(
            "bad leader: {length} characters instead of 24: '{value}'",
            length=len(leader),
            value=leader,
        )
    tags = {f.tag for f in fields}
    if flavour == "auto":
        flavour = _detect_flavour(tags, leader, b"", [])
        if flavour == "marc21" and "100" in tags and "245" not in tags and "008" not in tags:
            for f in fields:
                if f.tag == "100" and re.match(r"\d{8}", f.get("a") or ""):
                    flavour = "unimarc"
    record = Record()
    record.leader = Leader(leader)
    record.fields = fields
    record_id = ""
    for f in fields:
        if f.tag == "001":
            record_id = (f.data or "").strip()
            break
    if not record_id:
        raise _Bad("missing 001 (record identifier)")
    return ReadResult(
        record=record,
        raw=raw,
        offset=offset,
        flavour=flavour,
        encoding="utf-8",
        record_id=record_id,
        deleted=leader[5] == "d",
        warnings=warnings,
    )


def _tag(tag: str) -> str:
    # some exports drop leading zeros ("42" for 042)
    if tag.isdigit() and len(tag) < 3:
        return tag.zfill(3)
    return tag


# --------------------------------------------------------------------------------------------
# MARC-in-JSON: an array of records or one record per line, read incrementally


def _read_json(fh: IO[bytes], head: bytes, flavour: str) -> Iterator[ReadResult | ReadFailure]:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(
        head.lstrip(b"\xef\xbb\xbf") if head.startswith(b"\xef\xbb\xbf") else head
    )
    skipped = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    eof = len(head) < CHUNK
    jd = json.JSONDecoder()
    pos = 0
    byte_pos = skipped  # byte offset of text[pos]
    in_array = False
    while True:
        # skip separators
        n = len(text)
        start = pos
        while pos < n and text[pos] in " \t\r\n,[]":
            if text[pos] == "[":
                in_array = True
            pos += 1
        byte_pos += len(text[start:pos].encode("utf-8"))
        if pos >= n:
            if eof:
                return
            more = fh.read(CHUNK)
            eof = len(more) < CHUNK
            text = text[pos:] + decoder.decode(more, final=eof)
            pos = 0
            continue
        try:
            obj, end = jd.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            if not eof:
                more = fh.read(CHUNK)
                eof = len(more) < CHUNK
                text = text[pos:] + decoder.decode(more, final=eof)
                pos = 0
                if len(text) < 16 * CHUNK:
                    continue
            # skip to the next line (JSON lines) or give up on the array
            nl = text.find("\n", pos)
            bad_end = n if nl < 0 or in_array else nl
            raw = text[pos:bad_end].encode("utf-8")
            yield _failure(raw, byte_pos, _Bad("JSON not well-formed: {error}", error=exc.msg))
            if in_array:
                return
            byte_pos += len(raw)
            pos = bad_end
            continue
        raw = text[pos:end].encode("utf-8")
        try:
            yield _record_from_json(obj, raw, byte_pos, flavour)
        except _Bad as bad:
            yield _failure(raw, byte_pos, bad)
        byte_pos += len(raw)
        pos = end
        if pos > CHUNK:
            text = text[pos:]
            pos = 0


def _record_from_json(obj: Any, raw: bytes, offset: int, flavour: str) -> ReadResult:
    if not isinstance(obj, dict) or not isinstance(obj.get("fields"), list):
        raise _Bad('not a MARC-in-JSON record: no "fields" list')
    leader = obj.get("leader")
    if not isinstance(leader, str) or len(leader) != 24:
        raise _Bad(
            "bad leader: {length} characters instead of 24: '{value}'",
            length=len(leader) if isinstance(leader, str) else 0,
            value=leader if isinstance(leader, str) else "",
        )
    warnings: list[str] = []
    fields: list[Field] = []
    for item in obj["fields"]:
        if not isinstance(item, dict) or len(item) != 1:
            raise _Bad("not a MARC-in-JSON record: a field is not a one-key object")
        ((tag, value),) = item.items()
        tag = _tag(str(tag))
        if isinstance(value, str):
            fields.append(_make_field(tag, value, warnings))
        elif isinstance(value, dict):
            f = _new_field(Field)
            f.tag = tag
            f.data = None
            f.control_field = False
            ind = (str(value.get("ind1") or " ") + " ")[:1] + (str(value.get("ind2") or " ") + " ")[
                :1
            ]
            f._indicators = _indicators(ind, tag, warnings)
            subs = []
            for sub in value.get("subfields") or []:
                if isinstance(sub, dict) and len(sub) == 1:
                    ((code, text),) = sub.items()
                    subs.append(_new_tuple(Subfield, (str(code)[:1], str(text))))
            f.subfields = subs
            fields.append(f)
        else:
            raise _Bad(
                "not a MARC-in-JSON record: field {tag} is neither text nor an object", tag=tag
            )
    if flavour == "auto":
        flavour = _detect_flavour({f.tag for f in fields}, leader, b"", [])
    record = Record()
    record.leader = Leader(leader)
    record.fields = fields
    record_id = next(((f.data or "").strip() for f in fields if f.tag == "001"), "")
    if not record_id:
        raise _Bad("missing 001 (record identifier)")
    return ReadResult(
        record=record,
        raw=raw,
        offset=offset,
        flavour=flavour,
        encoding="utf-8",
        record_id=record_id,
        deleted=leader[5] == "d",
        warnings=warnings,
    )


def read_bytes(data: bytes, **options: Any) -> list[ReadResult | ReadFailure]:
    """Every record of ``data`` (for tests and small inputs; files should stream)."""
    return list(read_records(io.BytesIO(data), **options))
