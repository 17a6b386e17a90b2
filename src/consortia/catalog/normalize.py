"""Normalise a MARC21 or UNIMARC/CNMARC record into the one ``NormalizedRecord`` shape.

``normalize(record, flavour, record_id)`` reads a ``pymarc.Record`` (as ``marc.read_records``
gives it) and never raises on odd data: what cannot be understood is left empty. The verbatim
record is kept by the caller (``ReadResult.raw``); this module only extracts.

MARC21: 245 title (880 script forms via $6), 250 edition, 260/264 imprint, 008 and 260/264$c
years, 300 extent, 020 ISBN (qualifiers from $q or parentheses; $z kept as invalid), 022 ISSN,
010 LCCN (LC normalisation), 035 OCLC and other system numbers, 008/35-37 and 041 languages,
leader/06-07, 007, 008, 337/338, 533, 775/776 material, 600-651 and 653 subjects, 050/090 LCC,
082 DDC, 084 (with $2) CLC and others, 490/830 series.

UNIMARC/CNMARC: 010 ISBN ($b qualifier such as 精装/平装), 011 ISSN, 100 dates, 101 languages,
200 title ($a, $e, $f/$g, $h/$i; pinyin $9/$A kept apart), 205 edition, 210/214 imprint,
215 extent, 225 series, 600-610 subjects, 690 CLC, 686 other, 675 UDC, 676 DDC, 680 LCC,
700-702 persons and 710-712 corporate bodies with relator codes ($4).
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from pymarc import Field, Record
from stdnum import issn as _stdissn

from consortia.catalog.record import Classification, Isbn, Name, NormalizedRecord

__all__ = ["clean", "edition_number", "normalize", "normalize_isbn", "normalize_lccn", "pages"]

_HAS_PINYIN = "title_pinyin" in NormalizedRecord.__dataclass_fields__


# --------------------------------------------------------------------------------------------
# text cleaning

# ISBD punctuation that ends an element, half- and full-width
_TRAIL = " /:;,=\u3000：／；＝，、"
# non-sort markers (NSB/NSE as C1 controls, used in UNIMARC and some MARC21 exports)
_NONSORT = dict.fromkeys(map(ord, "\x88\x89\x98\x9c"), None)
_END = _TRAIL + ".。]"
_LEAD = _TRAIL + "["
_SPACES = re.compile(r"\s+")


def clean(text: str | None) -> str:
    """Strip ISBD punctuation, non-sort marks and stray brackets from one element.

    A final full stop goes after a word of three letters or more (not after an initial or an
    abbreviation such as "ed." or "Jr."), after a bracket, or after CJK text.
    """
    if not text:
        return ""
    t = text.strip()
    if not t:
        return ""
    # the common case costs a few C-level checks: nothing to strip
    if (
        t[-1] not in _END
        and t[0] not in _LEAD
        and "  " not in t
        and ("\x88" not in t and "\x98" not in t and "\x89" not in t and "\x9c" not in t)
        and "\n" not in t
        and "\t" not in t
    ):
        return t
    if "\x88" in t or "\x98" in t or "\x89" in t or "\x9c" in t:
        t = t.translate(_NONSORT).strip()
    t = t.rstrip(_TRAIL).lstrip(_TRAIL)
    if t.endswith("。"):
        t = t[:-1].rstrip(_TRAIL)
    elif t.endswith("."):
        before = t[-4:-1]
        if (
            (len(before) == 3 and before.isalpha())
            or t[-2:-1] in ("]", ")")
            or "\u3000" <= t[-2:-1] <= "\uffef"
        ):
            t = t[:-1].rstrip(_TRAIL)
    if t.startswith("[") and "]" not in t:
        t = t[1:]
    elif t.endswith("]") and "[" not in t:
        t = t[:-1]
    elif t.startswith("[") and t.endswith("]") and t.count("[") == 1:
        t = t[1:-1]
    if "  " in t or "\n" in t or "\t" in t:
        t = _SPACES.sub(" ", t)
    return t.strip().rstrip(_TRAIL)


def _subs(f: Field, codes: str) -> list[str]:
    return [v for c, v in f.subfields if c in codes]


def _first(f: Field, code: str) -> str:
    for c, v in f.subfields:
        if c == code:
            return v
    return ""


def _join(parts: Iterable[str], sep: str) -> str:
    return sep.join(p for p in (clean(x) for x in parts) if p)


# --------------------------------------------------------------------------------------------
# numbers: ISBN, ISSN, LCCN, OCLC, years, pages, editions

_ISBN_RX = re.compile(r"(?<![0-9])(97[89][0-9 -]{10,14}|[0-9][0-9 -]{8,11}[0-9Xx])(?![0-9])")
_PARENS = re.compile(r"\(([^)]*)\)")


def normalize_isbn(text: str) -> tuple[str, bool] | None:
    """(ISBN-13 digits, valid) for the first ISBN-looking number in ``text``; None if there is none.

    A valid ISBN-10 is converted to ISBN-13; an invalid one is returned as given (digits).
    """
    hit = _parse_isbn(text)
    return (hit[0], hit[1]) if hit else None


def _parse_isbn(text: str) -> tuple[str, bool, str] | None:
    """(digits, valid, the text after the number) for the first ISBN in ``text``."""
    t = text if text.isascii() else unicodedata.normalize("NFKC", text)
    m = _ISBN_RX.search(t)
    if m is None:
        return None
    digits = m.group(1).replace("-", "").replace(" ", "").upper()
    if len(digits) not in (10, 13):
        return None
    rest = t[m.end() :]
    if _isbn_ok(digits):
        return (_to13(digits) if len(digits) == 10 else digits), True, rest
    return digits, False, rest


def _isbn_ok(digits: str) -> bool:
    """The check digit arithmetic of ``stdnum.isbn.is_valid``, without its general clean-up.

    ``digits`` is 10 or 13 characters; the tests hold this equal to stdnum on many numbers.
    """
    if len(digits) == 10:
        if not digits[:9].isdigit() or not (digits[9].isdigit() or digits[9] == "X"):
            return False
        d = [int(c) for c in digits[:9]]
        total = sum(map(operator.mul, d, _W10)) + (10 if digits[9] == "X" else int(digits[9]))
        return total % 11 == 0
    if not digits.isdigit() or digits[:3] not in ("978", "979"):
        return False
    return sum(map(operator.mul, map(int, digits), _W13)) % 10 == 0


_W10 = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_W13 = (1, 3) * 6 + (1,)


def _to13(isbn10: str) -> str:
    core = "978" + isbn10[:9]
    return core + str(-sum(map(operator.mul, map(int, core), _W13)) % 10)


_QUALIFIERS = (
    (
        re.compile(
            r"\b(?:pbk|paperback|paper ?back|softcover|soft cover|softbound|pb)\b|平装|平裝|简装"
        ),
        "pbk",
    ),
    (
        re.compile(r"\b(?:hbk|hardcover|hard cover|hardback|hardbound|cloth|hc|bound)\b|精装|精裝"),
        "hbk",
    ),
    (re.compile(r"\b(?:e-?book|ebk|electronic|online|pdf|epub|e-isbn|kindle)\b|电子"), "ebook"),
)
_VOLUME = re.compile(
    r"\b(?:v|vol|volume|t|tome|bd|band)\.?\s*([0-9]+[a-z]?|[ivxlc]+)\b|第\s*([0-9一二三四五六七八九十]+)\s*[册冊卷]|([上中下])[册冊卷]",
    re.I,
)
_SET = re.compile(r"\b(?:set|全套)\b|全\s*[0-9一二三四五六七八九十]+\s*[册冊]")


@lru_cache(maxsize=4096)
def qualifier(text: str) -> str:
    """A short normalised qualifier: "pbk", "hbk", "ebook", "vol. 2", "set", combined with "; "."""
    t = clean(text.strip().strip("()（）")).lower()
    if not t:
        return ""
    out: list[str] = []
    m = _VOLUME.search(t)
    if m:
        out.append("vol. " + (m.group(1) or _cn_number_text(m.group(2)) or m.group(3) or ""))
    elif _SET.search(t):
        out.append("set")
    for rx, name in _QUALIFIERS:
        if rx.search(t):
            out.append(name)
    return "; ".join(out) if out else t


def _cn_number_text(s: str | None) -> str:
    if not s:
        return ""
    n = _cn_number(s)
    return str(n) if n is not None else s


def _isbns(values: list[tuple[str, str, bool]]) -> list[Isbn]:
    """(text, qualifier, cancelled) triples to Isbn objects, without duplicates."""
    out: list[Isbn] = []
    seen: set[tuple[str, str]] = set()
    for text, q, cancelled in values:
        hit = _parse_isbn(text)
        if hit is None:
            continue
        digits, valid, rest = hit
        quals = [q] if q else []
        if rest.strip(" :;.,"):
            quals.extend(_PARENS.findall(rest) or [rest])
        qual = "; ".join(x for x in (qualifier(x) for x in quals) if x)
        key = (digits, qual)
        if key in seen:
            continue
        seen.add(key)
        out.append(Isbn(isbn13=digits, qualifier=qual, valid=valid and not cancelled))
    return out


def _issn(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).strip()
    m = re.search(r"[0-9]{4}-?[0-9]{3}[0-9Xx]", t)
    if not m:
        return ""
    v = m.group(0).replace("-", "").upper()
    return _stdissn.format(v) if _stdissn.is_valid(v) else v[:4] + "-" + v[4:]


def normalize_lccn(text: str) -> str:
    """LC's LCCN normalisation: no blanks, nothing from "/" on, hyphen removed with the serial
    part left-padded with zeros to six digits ("85-2" -> "85000002")."""
    t = "".join(text.split())
    t = t.split("/", 1)[0]
    if "-" in t:
        head, _, tail = t.partition("-")
        t = head + (tail.zfill(6) if tail.isdigit() and len(tail) <= 6 else tail)
    return t.lower() if t[:3].isalpha() else t


_OCLC = re.compile(r"^\(OCoLC\)\s*(?:ocm|ocn|on)?\s*0*([0-9]+)", re.I)


_YEAR_RX = re.compile(r"(?<![0-9])(1[0-9]{3}|20[0-9]{2})(?![0-9])")


def _years_from(text: str) -> list[int]:
    """Years in an imprint date: "c1998", "[2003?]", "1995-1997", "2003年" -> [1998], ..."""
    if not text:
        return []
    t = unicodedata.normalize("NFKC", text) if not text.isascii() else text
    return [int(y) for y in _YEAR_RX.findall(t)]


def _valid_year(s: str) -> int | None:
    if len(s) == 4 and s.isdigit():
        y = int(s)
        if 1000 <= y <= 2100 and y != 9999:
            return y
    return None


_PAGES_RX = re.compile(
    r"[0-9]\]?\s*(?:p\b|pp\b|pages?\b|页|頁|s\b|S\.|leaves\b|l\.|f\.|с\.|стр)", re.I
)
_BRACKETED = re.compile(r"\[[^\]]*\]")
_NUM = re.compile(r"[0-9]+")


def pages(extent: str) -> int | None:
    """Number of pages in an extent statement: "xii, 345 p." -> 345; "345页" -> 345."""
    if not extent:
        return None
    t = unicodedata.normalize("NFKC", extent) if not extent.isascii() else extent
    if not _PAGES_RX.search(t):
        return None
    t = _BRACKETED.sub(" ", t)  # unnumbered pages in brackets do not count
    numbers = _NUM.findall(t)
    if not numbers:  # only unnumbered pages, "[8] p."
        return None
    best = max(int(n) for n in numbers)
    return best if 0 < best < 100000 else None


_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}


def _cn_number(s: str) -> int | None:
    if s.isdigit():
        return int(s)
    if not s:
        return None
    if "十" in s:
        head, _, tail = s.partition("十")
        tens = _CN_DIGITS.get(head) if head else 1
        ones = _CN_DIGITS.get(tail) if tail else 0
        if tens is None or ones is None:
            return None
        return tens * 10 + ones
    if len(s) == 1:
        return _CN_DIGITS.get(s)
    return None


_ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20,
    # French, German, Spanish, Italian
    "premier": 1, "première": 1, "deuxième": 2, "seconde": 2, "troisième": 3, "quatrième": 4,
    "cinquième": 5, "erste": 1, "zweite": 2, "dritte": 3, "vierte": 4, "fünfte": 5,
    "primera": 1, "segunda": 2, "tercera": 3, "cuarta": 4, "prima": 1, "seconda": 2, "terza": 3,
}  # fmt: skip
_EDITION_CN = re.compile(
    r"第\s*([0-9一二三四五六七八九十两〇零]+)\s*[版次]|([0-9]+)\s*版"
    r"|\b(?:di|dai|je)\s*([0-9]+)\s*-?\s*(?:ban|han|pan|pʻan)\b"  # romanised 第N版 / 제N판
    # 二版, 三版 without 第 (not the tail of 第十三版, which the first branch takes)
    r"|(?<![第0-9一二三四五六七八九十两〇零])([一二三四五六七八九十两]+)\s*版"
    r"|(初)\s*版",  # 初版: the first edition
    re.I,
)
_EDITION_NUM = re.compile(
    r"(?<![0-9])([0-9]{1,3})\s*(?:st|nd|rd|th|d|e|er|re|ème|eme|è|a|o|ª|º|\.|-?я|-?е)?\s*"
    r"(?:[a-z]+\.?\s+)?(?:ed\b|éd\b|edn\b|edition|édition|edición|edizione|aufl|auflage|ausg|"
    r"izd|изд|wyd|uppl|udg|druk|print|impr)",
    re.I,
)
_EDITION_WORD = re.compile(
    r"\b([a-zà-ÿ]+)\s+(?:[a-z]+\s+)?(?:ed\b|edition|édition|edición|edizione|auflage|aufl)", re.I
)


def edition_number(statement: str) -> int | None:
    """The edition's number: "2nd ed." -> 2, "Second edition" -> 2, "第二版", "二版", "第2版"
    -> 2, "初版" -> 1, "2. Aufl." -> 2, "3e éd." -> 3.

    "Rev. ed.", "修订版" and other unnumbered statements -> None: a revised edition has no
    number, and the statement itself (kept in ``edition``) is what tells it from the edition it
    revises when records are compared. "修订第2版" -> 2."""
    if not statement:
        return None
    t = unicodedata.normalize("NFKC", statement) if not statement.isascii() else statement
    m = _EDITION_CN.search(t)
    if m:
        if m.group(5):
            return 1
        n = _cn_number(m.group(1) or m.group(2) or m.group(3) or m.group(4))
        return n if n is not None and 0 < n < 200 else None
    m2 = _EDITION_NUM.search(t)
    if m2:
        n = int(m2.group(1))
        return n if 0 < n < 200 else None
    m3 = _EDITION_WORD.search(t)
    if m3:
        return _ORDINAL_WORDS.get(m3.group(1).lower())
    return None


# --------------------------------------------------------------------------------------------
# roles

_RELATORS = {
    # MARC relator codes
    "aut": "author", "cre": "author", "edt": "editor", "trl": "translator", "ill": "illustrator",
    "com": "compiler", "ctb": "contributor", "aui": "author", "pht": "photographer",
    "cmp": "composer", "prf": "performer", "nrt": "narrator", "drt": "director", "pbl": "publisher",
    "ann": "annotator", "adp": "adapter", "aft": "author", "win": "author", "wpr": "author",
    "ths": "supervisor", "dgs": "supervisor", "dgg": "degree granting institution",
    "isb": "publisher", "spn": "sponsor", "orm": "organizer", "pro": "producer", "art": "artist",
    "lyr": "lyricist", "arr": "arranger", "cnd": "conductor", "voc": "singer", "cwt": "commentator",
    "pre": "presenter", "rev": "reviewer", "red": "redactor",
    # UNIMARC relator codes (Appendix C)
    "070": "author", "010": "adapter", "020": "annotator", "100": "author", "205": "contributor",
    "220": "compiler", "230": "composer", "340": "editor", "360": "publisher", "440": "illustrator",
    "557": "organizer", "600": "photographer", "651": "editor", "673": "director",
    "727": "supervisor",
    "730": "translator", "080": "author", "072": "author", "075": "author", "212": "commentator",
    "250": "conductor", "590": "performer", "721": "singer", "480": "lyricist", "040": "artist",
    "595": "editor", "570": "other",
}  # fmt: skip
_RELATOR_TERMS = (
    # longest first: 编译 before 编, 主编 before 编, 译著 is a translator
    ("编译", "translator"), ("编著", "author"), ("主编", "editor"), ("编纂", "compiler"),
    ("编选", "compiler"), ("译注", "translator"), ("译著", "translator"), ("选编", "compiler"),
    ("改编", "adapter"), ("主办", "sponsor"), ("校注", "annotator"), ("校点", "editor"),
    ("注释", "annotator"),
    ("绘图", "illustrator"), ("摄影", "photographer"), ("口述", "author"), ("撰文", "author"),
    ("著", "author"), ("撰", "author"), ("编", "editor"), ("译", "translator"),
    ("绘", "illustrator"),
    ("辑", "compiler"), ("注", "annotator"), ("校", "editor"), ("作", "author"), ("曲", "composer"),
    ("author", "author"), ("writer", "author"), ("editor", "editor"), ("ed.", "editor"),
    ("translator", "translator"), ("tr.", "translator"), ("trans", "translator"),
    ("illustrator", "illustrator"), ("ill.", "illustrator"), ("compiler", "compiler"),
    ("comp.", "compiler"), ("contributor", "contributor"), ("photographer", "photographer"),
    ("composer", "composer"), ("performer", "performer"), ("narrator", "narrator"),
    ("director", "director"), ("publisher", "publisher"), ("artist", "artist"),
)  # fmt: skip


@lru_cache(maxsize=4096)
def role(term: str) -> str:
    """Canonical English role for a relator code ("edt", "340") or term ("editor.", "主编")."""
    t = clean(term).lower()
    if not t:
        return ""
    hit = _RELATORS.get(t)
    if hit:
        return hit
    for key, name in _RELATOR_TERMS:
        if key in t:
            return name
    return t


# --------------------------------------------------------------------------------------------
# entry point


def normalize(record: Record, flavour: str, record_id: str | None = None) -> NormalizedRecord:
    """One ``NormalizedRecord`` from a MARC21 or UNIMARC (CNMARC) record.

    ``flavour`` is "marc21" or "unimarc" (as ``marc.read_records`` detected it); ``record_id``
    defaults to the 001.
    """
    by_tag: dict[str, list[Field]] = {}
    for f in record.fields:
        lst = by_tag.get(f.tag)
        if lst is None:
            by_tag[f.tag] = [f]
        else:
            lst.append(f)
    leader = str(record.leader)
    if record_id is None:
        f001 = by_tag.get("001")
        record_id = (f001[0].data or "").strip() if f001 else ""
    if flavour == "unimarc":
        return _unimarc(by_tag, leader, record_id)
    return _marc21(by_tag, leader, record_id)


# --------------------------------------------------------------------------------------------
# MARC21


def _linked_880(by_tag: dict[str, list[Field]]) -> dict[tuple[str, str], Field]:
    """880 fields by (tag they pair with, occurrence number) from their $6 "245-01/$1"."""
    out: dict[tuple[str, str], Field] = {}
    for f in by_tag.get("880", ()):
        six = _first(f, "6")
        if len(six) >= 6 and six[3] == "-":
            out.setdefault((six[:3], six[4:6]), f)
    return out


def _vernacular(f: Field, linked: dict[tuple[str, str], Field], codes: str) -> str:
    if not linked:
        return ""
    six = _first(f, "6")
    if len(six) < 6 or six[3] != "-":
        return ""
    other = linked.get((f.tag, six[4:6]))
    if other is None:
        return ""
    return _join(_subs(other, codes), " ")


_SUBJECT_HEAD = {
    "600": "abcdq", "610": "abcdn", "611": "acdenq", "630": "adfklmnoprst",
    "648": "a", "650": "abcd", "651": "a",
}  # fmt: skip
_NO_PLACE = {
    "s.l",
    "s. l",
    "sine loco",
    "出版地不详",
    "出版地不詳",
    "n.p",
    "place of publication not identified",
}
_NO_PUBLISHER = {"s.n", "sine nomine", "出版者不详", "出版者不詳", "publisher not identified"}


def _marc21(by_tag: dict[str, list[Field]], leader: str, record_id: str) -> NormalizedRecord:
    rec = NormalizedRecord(record_id=record_id, flavour="marc21", deleted=leader[5:6] == "d")
    linked = _linked_880(by_tag) if "880" in by_tag else {}
    f008 = by_tag.get("008")
    d008 = (f008[0].data or "") if f008 else ""

    # title
    t245 = by_tag.get("245")
    if t245:
        f = t245[0]
        rec.title = _join(_subs(f, "a"), " ")
        if not rec.title:  # a 245 with only $k (form) or $n/$p
            rec.title = _join(_subs(f, "k"), " ")
        rec.remainder = _join(_subs(f, "b"), " ")
        rec.part = _join(_subs(f, "np"), ". ")
        rec.responsibility = _join(_subs(f, "c"), " ")
        rec.title_vernacular = _vernacular(f, linked, "a")

    # names
    names: list[Name] = []
    for tag, kind, main in (
        ("100", "person", True),
        ("110", "corporate", True),
        ("111", "meeting", True),
        ("700", "person", False),
        ("710", "corporate", False),
        ("711", "meeting", False),
        ("720", "person", False),
    ):
        for f in by_tag.get(tag, ()):
            nm = _marc21_name(f, kind)
            if not nm:
                continue
            roles = [
                r for r in (role(x) for x in _subs(f, "e4j" if kind != "meeting" else "j4")) if r
            ]
            names.append(
                Name(
                    name=nm,
                    role=roles[0] if roles else ("author" if main else ""),
                    kind=kind,
                    vernacular=_vernacular(f, linked, "abcq" if kind == "person" else "ab"),
                )
            )
    rec.names = names

    # imprint: 264 publication (ind2 1) first, then 260, then any 264
    imprint: Field | None = None
    for f in by_tag.get("264", ()):
        if f.indicator2 == "1":
            imprint = f
            break
    if imprint is None:
        found = by_tag.get("260") or by_tag.get("264")
        imprint = found[0] if found else None
    years: list[int] = []
    if imprint is not None:
        place = clean(_first(imprint, "a"))
        rec.place = "" if place.lower().strip(" .[]") in _NO_PLACE else place
        pub = clean(_first(imprint, "b"))
        rec.publisher = "" if pub.lower().strip(" .[]") in _NO_PUBLISHER else pub
        if linked and not _has_cjk(rec.publisher):
            vern = _vernacular(imprint, linked, "b")
            if vern and not rec.publisher:
                rec.publisher = vern
    # years: 008/07-14 first, then the imprint's $c
    if len(d008) >= 15:
        y1 = _valid_year(d008[7:11])
        if y1:
            years.append(y1)
            if d008[6] in "mrtiqk":
                y2 = _valid_year(d008[11:15])
                if y2 and y2 != y1:
                    years.append(y2)
    if imprint is not None:
        for c in _subs(imprint, "c"):
            for y in _years_from(c):
                if y not in years:
                    years.append(y)
    if not years:
        for f in by_tag.get("264", ()):
            for y in _years_from(_first(f, "c")):
                if y not in years:
                    years.append(y)
    rec.years = years

    # edition
    e250 = by_tag.get("250")
    if e250:
        rec.edition = _join(_subs(e250[0], "ab"), " ")
        rec.edition_number = edition_number(rec.edition)
        if rec.edition_number is None:
            vern = _vernacular(e250[0], linked, "a")
            if vern:
                rec.edition_number = edition_number(vern)

    # extent
    x300 = by_tag.get("300")
    if x300:
        a = _first(x300[0], "a")
        rec.extent = clean(a)
        rec.pages = pages(a)

    # identifiers
    isbn_values: list[tuple[str, str, bool]] = []
    ebook_q = False
    for f in by_tag.get("020", ()):
        q = " ".join(_subs(f, "q"))
        if q and _QUALIFIERS[2][0].search(q.lower()):
            ebook_q = True
        for c, v in f.subfields:
            if c == "a":
                isbn_values.append((v, q, False))
            elif c == "z":
                isbn_values.append((v, q, True))
    rec.isbns = _isbns(isbn_values)
    if not ebook_q:
        ebook_q = any(
            i.qualifier.startswith("ebook") or "; ebook" in i.qualifier for i in rec.isbns
        )
    rec.issns = _uniq(
        x for x in (_issn(v) for f in by_tag.get("022", ()) for v in _subs(f, "a")) if x
    )
    l010 = by_tag.get("010")
    if l010:
        a = _first(l010[0], "a")
        rec.lccn = normalize_lccn(a) if a.strip() else ""
    oclc: list[str] = []
    system: list[str] = []
    for f in by_tag.get("035", ()):
        for v in _subs(f, "a"):
            m = _OCLC.match(v.strip())
            if m:
                if m.group(1) not in oclc:
                    oclc.append(m.group(1))
            elif v.strip() and v.strip() not in system:
                system.append(v.strip())
    f003 = by_tag.get("003")
    if f003 and (f003[0].data or "").strip() == "OCoLC":
        n = record_id.lstrip("ocmnp").lstrip("0")
        if n.isdigit() and n not in oclc:
            oclc.append(n)
    rec.oclc = oclc
    rec.system_numbers = system

    # languages
    langs: list[str] = []
    if len(d008) >= 38:
        code = d008[35:38].lower()
        if code.isalpha() and code not in ("zxx", "und", "mul", "   "):
            langs.append(code)
    for f in by_tag.get("041", ()):
        if f.indicator2 == "7":  # another code list than MARC's
            continue
        for v in _subs(f, "ad"):
            v = v.strip().lower()
            for i in range(0, len(v) - 2, 3):  # codes may come packed: "engfre"
                code = v[i : i + 3]
                if code.isalpha() and code not in langs:
                    langs.append(code)
    rec.languages = langs

    # material type and reproduction
    rec.material, rec.reproduction = _marc21_material(by_tag, leader, d008, ebook_q)

    # subjects
    subjects: list[str] = []
    for tag in ("600", "610", "611", "630", "648", "650", "651"):
        for f in by_tag.get(tag, ()):
            head_codes = _SUBJECT_HEAD[tag]
            head = _join((v for c, v in f.subfields if c in head_codes), " ")
            if not head:
                continue
            subdiv = [clean(v) for c, v in f.subfields if c in "vxyz"]
            s = "--".join([head, *[x for x in subdiv if x]])
            if s not in subjects:
                subjects.append(s)
    for f in by_tag.get("653", ()):
        for v in _subs(f, "a"):
            s = clean(v)
            if s and s not in subjects:
                subjects.append(s)
    rec.subjects = subjects

    # classification
    classes: list[Classification] = []
    for tag, scheme in (("050", "lcc"), ("090", "lcc"), ("082", "ddc"), ("080", "udc")):
        for f in by_tag.get(tag, ()):
            numbers = _subs(f, "a")
            if not numbers:
                continue
            if scheme == "ddc":
                for v in numbers:
                    _add_class(classes, scheme, v.replace("/", "").replace("'", ""))
            else:
                value = numbers[0]
                b = _first(f, "b")
                _add_class(classes, scheme, f"{value} {b}" if b and scheme == "lcc" else value)
    for f in by_tag.get("084", ()):
        src = _first(f, "2").strip().lower()
        scheme = (
            "clc"
            if src.startswith("clc") or "中图" in src
            else ("udc" if src.startswith("udc") else "other")
        )
        for v in _subs(f, "a"):
            _add_class(classes, scheme, v)
    rec.classifications = classes

    # series: the controlled 830 (or 440) first, else the transcribed 490
    for tag in ("830", "440", "490"):
        ser = by_tag.get(tag)
        if ser:
            f = ser[0]
            rec.series = _join(_subs(f, "anp"), ". ")
            rec.series_volume = _volume(_first(f, "v"))
            break
    if rec.series and not rec.series_volume:
        for f in by_tag.get("490", ()):
            v = _volume(_first(f, "v"))
            if v:
                rec.series_volume = v
                break
    return rec


def _volume(text: str) -> str:
    # a volume ends in a number; its final full stop is punctuation ("585." -> "585")
    v = clean(text)
    return v[:-1] if v.endswith(".") and v[-2:-1].isdigit() else v


def _marc21_name(f: Field, kind: str) -> str:
    if kind == "person":
        return _join(_subs(f, "abcq"), " ")
    if kind == "corporate":
        return _join(_subs(f, "ab"), ". ")
    return _join(_subs(f, "a"), " ")


def _marc21_material(
    by_tag: dict[str, list[Field]], leader: str, d008: str, ebook_hint: bool
) -> tuple[str, bool]:
    rtype = leader[6:7]
    level = leader[7:8]
    form_pos = 29 if rtype in ("e", "f", "g", "k", "o", "r") else 23
    form = d008[form_pos] if len(d008) > form_pos else ""
    reproduction = form in ("a", "b", "c", "r") or "533" in by_tag
    if not reproduction:
        for tag in ("775", "776"):
            for f in by_tag.get(tag, ()):
                label = " ".join(_subs(f, "i")).lower()
                if (
                    "facsimile" in label
                    or "reproduction" in label
                    or "reprint" in label
                    or "影印" in label
                ):
                    reproduction = True
    if rtype in ("a", "t"):
        if level in ("b", "i", "s"):
            return "serial", reproduction
        if rtype == "t":
            return "manuscript", reproduction
        return ("ebook" if _electronic(by_tag, form, ebook_hint) else "book"), reproduction
    return _TYPE_MATERIAL.get(rtype, "other"), reproduction


def _electronic(by_tag: dict[str, list[Field]], form: str, ebook_hint: bool) -> bool:
    """Whether a language-material record describes an electronic book, as a cataloguer reads it.

    008/23 (form of item) says so first: o, q, s electronic; blank, r, d and the other print
    forms say print. A 007 for a computer file (c...) or an electronic 006 is not enough alone:
    LC and others add "cr" 007s to print records for a digitised copy they also hold. It counts
    when the RDA carrier or media type agree (338 "online resource"/cr, 337 "computer"/c).
    Only a record without a usable 008/23 falls back on e-book ISBN qualifiers."""
    if form in ("o", "q", "s"):
        return True
    electronic_field = any((f.data or "")[:1] == "c" for f in by_tag.get("007", ())) or any(
        (d := f.data or "")[:1] == "m" or (d[:1] in ("a", "t") and d[6:7] in ("o", "q", "s"))
        for f in by_tag.get("006", ())
    )
    if electronic_field:
        for f in by_tag.get("338", ()):
            if "online resource" in " ".join(_subs(f, "a")).lower() or _first(f, "b") == "cr":
                return True
        for f in by_tag.get("337", ()):
            if "computer" in " ".join(_subs(f, "a")).lower() or _first(f, "b") == "c":
                return True
    return ebook_hint and form in ("", "|")


_TYPE_MATERIAL = {
    "c": "score", "d": "score", "e": "map", "f": "map", "g": "video", "i": "sound", "j": "sound",
}  # fmt: skip


def _add_class(classes: list[Classification], scheme: str, value: str) -> None:
    v = clean(value)
    if v and not any(c.scheme == scheme and c.value == v for c in classes):
        classes.append(Classification(scheme=scheme, value=v))


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def _uniq(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


# --------------------------------------------------------------------------------------------
# UNIMARC / CNMARC


_UNI_SUBJECTS = ("600", "601", "602", "604", "605", "606", "607", "608", "610")
_UNI_CLASSES = (
    ("690", "clc"), ("692", "other"), ("686", "other"),
    ("675", "udc"), ("676", "ddc"), ("680", "lcc"),
)  # fmt: skip


def _unimarc(by_tag: dict[str, list[Field]], leader: str, record_id: str) -> NormalizedRecord:
    rec = NormalizedRecord(record_id=record_id, flavour="unimarc", deleted=leader[5:6] == "d")

    t200 = by_tag.get("200")
    pinyin = ""
    if t200:
        f = t200[0]
        rec.title = _join(_subs(f, "a"), " ; ")
        rec.remainder = _join(_subs(f, "e"), " : ")
        rec.part = _join(_subs(f, "hi"), ". ")
        rec.responsibility = _join(_subs(f, "fg"), " ; ")
        pinyin = _join(_subs(f, "9A"), " ")
        if not rec.title:
            rec.title = rec.part
    if _HAS_PINYIN:
        rec.title_pinyin = pinyin

    # names
    names: list[Name] = []
    for tag, kind, main in (
        ("700", "person", True),
        ("701", "person", True),
        ("702", "person", False),
        ("710", "corporate", True),
        ("711", "corporate", True),
        ("712", "corporate", False),
        ("720", "person", True),
        ("721", "person", True),
        ("722", "person", False),
    ):
        for f in by_tag.get(tag, ()):
            if tag[:2] == "71":
                nm = _join(_subs(f, "ab"), ". ")
                k = "meeting" if f.indicator1 == "1" else "corporate"
            else:
                a = clean(_first(f, "a"))
                b = clean(_first(f, "b"))
                # a Chinese name split into $a surname and $b given name is written as one word
                sep = "" if _has_cjk(a[-1:]) and _has_cjk(b[:1]) else ", "
                nm = f"{a}{sep}{b}" if a and b else (a or b)
                k = kind
            if not nm:
                continue
            roles = [r for r in (role(x) for x in _subs(f, "4")) if r]
            names.append(
                Name(name=nm, role=roles[0] if roles else ("author" if main else ""), kind=k)
            )
    rec.names = names

    # imprint: 210 (or 214 in newer records)
    found = by_tag.get("214") or by_tag.get("210")
    imprint: Field | None = found[0] if found else None
    for f in by_tag.get("214", ()):
        if f.indicator2 == "0":  # publication statement
            imprint = f
            break
    years: list[int] = []
    if imprint is not None:
        place = clean(_first(imprint, "a"))
        rec.place = "" if place.lower().strip(" .[]") in _NO_PLACE else place
        pub = clean(_first(imprint, "c"))
        rec.publisher = "" if pub.lower().strip(" .[]") in _NO_PUBLISHER else pub
    f100 = by_tag.get("100")
    if f100:
        a = _first(f100[0], "a")
        if len(a) >= 17:
            y1 = _valid_year(a[9:13])
            if y1:
                years.append(y1)
                if a[8] in "eghbfk":
                    y2 = _valid_year(a[13:17])
                    if y2 and y2 != y1:
                        years.append(y2)
    if imprint is not None:
        for d in _subs(imprint, "dh"):
            for y in _years_from(d):
                if y not in years:
                    years.append(y)
    rec.years = years

    e205 = by_tag.get("205")
    if e205:
        rec.edition = _join(_subs(e205[0], "ab"), " ")
        rec.edition_number = edition_number(rec.edition)

    x215 = by_tag.get("215")
    if x215:
        a = _first(x215[0], "a")
        rec.extent = clean(a)
        rec.pages = pages(a)

    isbn_values: list[tuple[str, str, bool]] = []
    for f in by_tag.get("010", ()):
        q = " ".join(_subs(f, "b"))
        for c, v in f.subfields:
            if c == "a":
                isbn_values.append((v, q, False))
            elif c == "z":
                isbn_values.append((v, q, True))
    rec.isbns = _isbns(isbn_values)
    rec.issns = _uniq(
        x for x in (_issn(v) for f in by_tag.get("011", ()) for v in _subs(f, "a")) if x
    )
    for f in by_tag.get("020", ()):  # national bibliography number; US = LCCN
        if _first(f, "a").strip().upper() == "US" and _first(f, "b").strip():
            rec.lccn = normalize_lccn(_first(f, "b"))
    oclc: list[str] = []
    system: list[str] = []
    for f in by_tag.get("035", ()):
        for v in _subs(f, "a"):
            m = _OCLC.match(v.strip())
            if m:
                if m.group(1) not in oclc:
                    oclc.append(m.group(1))
            elif v.strip() and v.strip() not in system:
                system.append(v.strip())
    rec.oclc = oclc
    rec.system_numbers = system

    langs: list[str] = []
    for f in by_tag.get("101", ()):
        for v in _subs(f, "a"):
            code = v.strip().lower()
            if len(code) == 3 and code.isalpha() and code not in langs:
                langs.append(code)
    rec.languages = langs

    rtype = leader[6:7]
    level = leader[7:8]
    if rtype in ("a", "l") and level in ("s", "i"):
        rec.material = "serial"
    elif rtype == "a":
        rec.material = "book"
    elif rtype == "l":
        rec.material = "ebook"
    elif rtype == "b":
        rec.material = "manuscript"
    else:
        rec.material = _TYPE_MATERIAL.get(rtype, "other")
    if rec.material == "book" and any(i.qualifier.endswith("ebook") for i in rec.isbns):
        rec.material = "ebook"
    date_type = _first(f100[0], "a")[8:9] if f100 else ""
    rec.reproduction = date_type == "e" or "325" in by_tag or "324" in by_tag

    subjects: list[str] = []
    for tag in _UNI_SUBJECTS:
        for f in by_tag.get(tag, ()):
            if tag == "610":
                parts = [clean(v) for v in _subs(f, "a")]
                for p in parts:
                    if p and p not in subjects:
                        subjects.append(p)
                continue
            head = _join(_subs(f, "abcdf" if tag in ("600", "601", "602") else "a"), " ")
            if not head:
                continue
            subdiv = [clean(v) for c, v in f.subfields if c in "jxyz"]
            s = "--".join([head, *[x for x in subdiv if x]])
            if s not in subjects:
                subjects.append(s)
    rec.subjects = subjects

    classes: list[Classification] = []
    for tag, scheme in _UNI_CLASSES:
        for f in by_tag.get(tag, ()):
            for v in _subs(f, "a"):
                if scheme == "other" and tag == "686":
                    src = _first(f, "2").strip().lower()
                    if src.startswith("clc") or "中图" in src:
                        _add_class(classes, "clc", v)
                        continue
                _add_class(classes, scheme, v.replace("/", "") if scheme == "ddc" else v)
    rec.classifications = classes

    s225 = by_tag.get("225")
    if s225:
        f = s225[0]
        rec.series = _join(_subs(f, "ahi"), ". ")
        rec.series_volume = _volume(_first(f, "v"))
    else:
        s410 = by_tag.get("410")
        if s410:
            rec.series = _join(_subs(s410[0], "at")[:1], " ")
            rec.series_volume = _volume(_first(s410[0], "v"))
    return rec
