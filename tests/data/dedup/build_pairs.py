"""Build the labelled same/different record pairs for the union catalogue's matching.

Run by hand (it reads the shared MARC files, which tests must not):

    .venv/bin/python tests/data/dedup/build_pairs.py [--src /work/shared/data/marc]

Writes, next to this script:
  records.mrc.gz  the records (UTF-8 ISO 2709, trimmed to the fields matching can use)
  records.tsv     index, flavour, origin of each record (file and position, or how it was derived)
  pairs.jsonl     {"a", "b", "same", "category", "hard", "note"} per pair; a and b index records

Labels come from provenance, never from the matcher:
- real records of the Library of Congress file are distinct manifestations (LC keeps one record
  per manifestation), so two of them are "different" (a few same-ISBN pairs are LC's own
  duplicates, e.g. a CIP record and its full record: those are labelled by hand below);
- a derived copy of a record (typos, missing subfields, ISBD punctuation, case, diacritics,
  ISBN-10/13, 260→264, traditional↔simplified Chinese, full-width forms, the vernacular instead
  of the romanised title, a UNIMARC/CNMARC rendering) describes the same book: "same";
- a derived record that changes what the book is (another edition, volume, an e-book, a
  facsimile reprint, another book given the same ISBN) is "different".
Deterministic: one seeded random generator, inputs read in a fixed order.
"""

from __future__ import annotations

import argparse
import collections
import copy
import gzip
import json
import random
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

from opencc import OpenCC
from pymarc import Field, Indicators, Leader, Record, Subfield
from pypinyin import lazy_pinyin
from stdnum import ean
from stdnum import isbn as isbnlib

from consortia.catalog.marc import ReadResult, read_records
from consortia.catalog.normalize import normalize
from consortia.catalog.textfold import fold, fold_name, has_cjk, title_key

SEED = 20261127
OUT = Path(__file__).resolve().parent
LC_FILE = "loc-booksall/BooksAll.2016.part01.recs000001-040000.mrc"

# Fields matching and merging can use; the rest (notes, contents, local fields) is dropped to keep
# the set small.
KEEP = {
    "001", "003", "005", "007", "008", "010", "020", "022", "024", "035", "040", "041", "050",
    "082", "084", "100", "110", "111", "130", "240", "245", "246", "250", "260", "264", "300",
    "336", "337", "338", "490", "500", "533", "534", "600", "610", "650", "651", "700", "710",
    "711", "775", "776", "830", "856", "880",
}  # fmt: skip

_t2s = OpenCC("t2s")
_s2t = OpenCC("s2t")


# --------------------------------------------------------------------------- record helpers


def sub(f: Field, code: str) -> str:
    v = f.get_subfields(code)
    return v[0] if v else ""


def first(r: Record, *tags: str) -> Field | None:
    for t in tags:
        fs = r.get_fields(t)
        if fs:
            return fs[0]
    return None


def set_sub(f: Field, code: str, value: str | None) -> None:
    """Replace the first ``code`` subfield (remove it when value is None)."""
    for i, s in enumerate(f.subfields):
        if s.code == code:
            if value is None:
                del f.subfields[i]
            else:
                f.subfields[i] = Subfield(code, value)
            return
    if value is not None:
        f.subfields.append(Subfield(code, value))


def map_text(r: Record, fn: Callable[[str], str], tags: set[str] | None = None) -> None:
    for f in r.fields:
        if f.is_control_field() or (tags is not None and f.tag not in tags):
            continue
        f.subfields = [
            s if s.code in "0123456789" else Subfield(s.code, fn(s.value)) for s in f.subfields
        ]


def trim(r: Record) -> Record:
    out = copy.deepcopy(r)
    for f in list(out.fields):
        if f.tag not in KEEP:
            out.remove_field(f)
    subjects = [f for f in out.fields if f.tag in ("600", "610", "650", "651")]
    for f in subjects[4:]:
        out.remove_field(f)
    return out


def utf8(r: Record) -> Record:
    ldr = str(r.leader)
    r.leader = Leader(ldr[:9] + "a" + ldr[10:])
    return r


def isbn13s(r: Record) -> list[str]:
    out = []
    for f in r.get_fields("020"):
        for a in f.get_subfields("a"):
            m = re.match(r"[\dXx-]+", a.strip())
            if m:
                v = m.group(0).replace("-", "")
                if isbnlib.is_valid(v):
                    out.append(isbnlib.to_isbn13(v))
    return out


def title_a(r: Record) -> str:
    f = first(r, "245")
    return " ".join(f.get_subfields("a")) if f else ""


def author_key(r: Record) -> str:
    f = first(r, "100", "110", "111", "700", "710")
    if f is None:
        return ""
    name = fold_name(" ".join(f.get_subfields("a")))
    return name.split(" ")[0] if name else ""


def d008(r: Record) -> str:
    f = first(r, "008")
    return (f.data or "") if f is not None else ""


def set_008(r: Record, data: str) -> None:
    f = first(r, "008")
    if f is not None:
        f.data = data


def year_of(r: Record) -> str:
    f = first(r, "008")
    return f.data[7:11] if f is not None and f.data else ""


def edition_of(r: Record) -> str:
    f = first(r, "250")
    return fold(sub(f, "a")) if f else ""


def parts_of(r: Record) -> str:
    f = first(r, "245")
    return fold(" ".join(f.get_subfields("n", "p"))) if f else ""


def random_isbn(rng: random.Random, like: str | None = None) -> str:
    """A valid ISBN-13, near ``like`` (same publisher prefix) when given."""
    base = like[:-1] if like else "978" + "".join(rng.choice("0123456789") for _ in range(9))
    body = base[:-3] + f"{rng.randrange(1000):03d}"
    if body == base:
        body = base[:-1] + str((int(base[-1]) + 1) % 10)
    return body + ean.calc_check_digit(body)


# --------------------------------------------------------------------------- corruptions
# Each takes (record, rng), changes the record in place and returns a note, or None when it does
# not apply to this record.

Op = Callable[[Record, random.Random], str | None]


def op_case(r: Record, rng: random.Random) -> str | None:
    f = first(r, "245")
    if f is None:
        return None
    how = rng.choice(["upper", "lower", "title"])
    fn = {"upper": str.upper, "lower": str.lower, "title": str.title}[how]
    f.subfields = [Subfield(s.code, fn(s.value)) if s.code in "ab" else s for s in f.subfields]
    return f"case-{how}"


def _strip_marks(s: str) -> str:
    d = unicodedata.normalize("NFD", s)
    return unicodedata.normalize("NFC", "".join(ch for ch in d if not ("\u0300" <= ch <= "\u036f")))


def op_diacritics(r: Record, rng: random.Random) -> str | None:
    before = str(r)
    map_text(r, _strip_marks)
    return "diacritics-stripped" if str(r) != before else None


_ISBD_END = re.compile(r"\s*[/:;,=.]\s*$")


def op_isbd(r: Record, rng: random.Random) -> str | None:
    how = rng.choice(["strip", "spacing"])
    for f in r.fields:
        if f.is_control_field() or f.tag[0] not in "12":
            continue
        if how == "strip":
            f.subfields = [Subfield(s.code, _ISBD_END.sub("", s.value)) for s in f.subfields]
        else:
            f.subfields = [
                Subfield(s.code, re.sub(r"\s+([:;/=])$", r"\1", s.value)) for s in f.subfields
            ]
    return f"isbd-{how}"


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(["swap", "drop", "double", "replace"])
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    c = rng.choice("aeioulnrst")
    return word[:i] + c + word[i + 1 :]


def _typo_in(value: str, rng: random.Random) -> str | None:
    words = [(m.start(), m.group(0)) for m in re.finditer(r"[^\W\d_]{5,}", value)]
    if not words:
        return None
    pos, w = rng.choice(words)
    return value[:pos] + _typo(w, rng) + value[pos + len(w) :]


def op_typo_title(r: Record, rng: random.Random) -> str | None:
    f = first(r, "245")
    if f is None:
        return None
    v = sub(f, "a")
    t = _typo_in(v, rng)
    if t is None or has_cjk(v):
        return None
    set_sub(f, "a", t)
    return "typo-title"


def op_typo_author(r: Record, rng: random.Random) -> str | None:
    f = first(r, "100")
    if f is None:
        return None
    t = _typo_in(sub(f, "a"), rng)
    if t is None:
        return None
    set_sub(f, "a", t)
    return "typo-author"


def op_drop_remainder(r: Record, rng: random.Random) -> str | None:
    f = first(r, "245")
    if f is None or not f.get_subfields("b"):
        return None
    set_sub(f, "b", None)
    a = sub(f, "a")
    set_sub(f, "a", re.sub(r"\s*:\s*$", "", a) + (" /" if f.get_subfields("c") else "."))
    return "drop-245b"


def op_merge_remainder(r: Record, rng: random.Random) -> str | None:
    f = first(r, "245")
    if f is None or not f.get_subfields("b"):
        return None
    a, b = sub(f, "a"), sub(f, "b")
    set_sub(f, "b", None)
    set_sub(f, "a", f"{a} {b}")
    return "merge-245b-into-a"


def op_drop_responsibility(r: Record, rng: random.Random) -> str | None:
    f = first(r, "245")
    if f is None or not f.get_subfields("c"):
        return None
    set_sub(f, "c", None)
    return "drop-245c"


def op_drop_added_names(r: Record, rng: random.Random) -> str | None:
    fs = r.get_fields("700", "710", "711")
    if not fs:
        return None
    for f in fs:
        r.remove_field(f)
    return "drop-7xx"


def op_name_form(r: Record, rng: random.Random) -> str | None:
    f = first(r, "100")
    if f is None:
        return None
    set_sub(f, "d", None)
    set_sub(f, "q", None)
    a = sub(f, "a")
    m = re.match(r"([^,]+),\s*(.+?)[.,]?$", a)
    if not m:
        return None
    initials = " ".join(w[0] + "." for w in m.group(2).split() if w[:1].isalpha())
    set_sub(f, "a", f"{m.group(1)}, {initials}")
    return "name-initials"


def op_drop_place(r: Record, rng: random.Random) -> str | None:
    f = first(r, "260", "264")
    if f is None or not f.get_subfields("a"):
        return None
    set_sub(f, "a", None)
    return "drop-place"


def op_drop_extent(r: Record, rng: random.Random) -> str | None:
    fs = r.get_fields("300")
    if not fs:
        return None
    for f in fs:
        r.remove_field(f)
    return "drop-300"


def op_pages_count(r: Record, rng: random.Random) -> str | None:
    f = first(r, "300")
    if f is None:
        return None
    a = sub(f, "a")
    m = re.match(r"\s*(?:([ivxlc]+),\s*)?(\d+)\s*p\.?\s*[:;]?\s*$", a)
    if not m:
        return None
    n = int(m.group(2))
    roman = m.group(1)
    # Counting the preliminary pages in, or a different count of plates: a few pages more.
    extra = rng.randint(1, max(2, n // 40))
    set_sub(f, "a", f"{n + extra} p. :" if a.rstrip().endswith(":") else f"{n + extra} p.")
    return "pages-recount" + ("-roman" if roman else "")


def op_isbn_form(r: Record, rng: random.Random) -> str | None:
    fs = r.get_fields("020")
    changed = False
    for f in fs:
        a = sub(f, "a")
        m = re.match(r"([\dXx-]+)(.*)", a.strip())
        if not m or not isbnlib.is_valid(m.group(1)):
            continue
        v = m.group(1).replace("-", "")
        new = isbnlib.to_isbn13(v) if len(v) == 10 else (isbnlib.to_isbn10(v) or v)
        if rng.random() < 0.5:
            new = isbnlib.format(new)
        set_sub(f, "a", new + m.group(2))
        changed = True
    return "isbn-10-13" if changed else None


def op_isbn_qualifier(r: Record, rng: random.Random) -> str | None:
    f = first(r, "020")
    if f is None:
        return None
    a = sub(f, "a")
    m = re.match(r"([\dXx-]+)\s*(\(.*\))?", a.strip())
    if not m:
        return None
    if m.group(2):
        set_sub(f, "a", m.group(1))
        return "isbn-qualifier-dropped"
    set_sub(f, "a", m.group(1) + rng.choice([" (pbk.)", " (alk. paper)", " (hbk.)"]))
    return "isbn-qualifier-added"


def op_drop_isbn(r: Record, rng: random.Random) -> str | None:
    fs = r.get_fields("020")
    if not fs:
        return None
    for f in fs:
        r.remove_field(f)
    return "drop-isbn"


def op_rda(r: Record, rng: random.Random) -> str | None:
    f = first(r, "260")
    if f is None:
        return None
    new = Field(tag="264", indicators=Indicators(" ", "1"), subfields=list(f.subfields))
    c = sub(new, "c")
    if c:
        set_sub(new, "c", c.replace("c", "[") + "]" if c.startswith("c") else c)
    r.remove_field(f)
    r.add_ordered_field(new)
    for e in r.get_fields("300"):
        a = sub(e, "a")
        set_sub(e, "a", re.sub(r"\bp\.", "pages", a))
        b = sub(e, "b")
        if b:
            set_sub(e, "b", b.replace("ill.", "illustrations"))
    return "260-to-264"


def op_year_form(r: Record, rng: random.Random) -> str | None:
    f = first(r, "260", "264")
    if f is None:
        return None
    c = sub(f, "c")
    m = re.search(r"(1[5-9]\d\d|20\d\d)", c)
    if not m:
        return None
    y = m.group(1)
    set_sub(f, "c", rng.choice([f"{y}.", f"c{y}.", f"[{y}]", f"©{y}"]))
    return "year-form"


def op_publisher_form(r: Record, rng: random.Random) -> str | None:
    f = first(r, "260", "264")
    if f is None:
        return None
    b = sub(f, "b")
    if not b:
        return None
    short = re.sub(
        r",?\s*\b(Pub\.|Publishers|Publishing|Press|Inc\.|Co\.|Ltd\.|Company|Books)\b",
        "",
        b,
    ).strip(" ,")
    if not short or short == b.strip(" ,"):
        short = b.rstrip(" ,") + (" Inc.," if rng.random() < 0.5 else " Pub. Co.,")
    set_sub(f, "b", short)
    return "publisher-form"


def op_drop_subjects(r: Record, rng: random.Random) -> str | None:
    fs = r.get_fields("600", "610", "650", "651")
    if not fs:
        return None
    for f in fs:
        r.remove_field(f)
    return "drop-subjects"


def op_ampersand(r: Record, rng: random.Random) -> str | None:
    f = first(r, "245")
    if f is None:
        return None
    before = f.value()
    f.subfields = [
        Subfield(
            s.code,
            s.value.replace(" and ", " & ")
            if " and " in s.value
            else s.value.replace(" & ", " and "),
        )
        if s.code in "ab"
        else s
        for s in f.subfields
    ]
    return "and-ampersand" if f.value() != before else None


def op_shorten_remainder(r: Record, rng: random.Random) -> str | None:
    f = first(r, "245")
    if f is None:
        return None
    b = sub(f, "b")
    words = b.split()
    if len(words) < 5:
        return None
    set_sub(f, "b", " ".join(words[: len(words) // 2]) + (" /" if f.get_subfields("c") else ""))
    return "remainder-shortened"


def op_no_names(r: Record, rng: random.Random) -> str | None:
    fs = r.get_fields("100", "110", "111", "700", "710", "711")
    f = first(r, "245")
    if not fs or f is None:
        return None
    for x in fs:
        r.remove_field(x)
    set_sub(f, "c", None)
    return "no-names-at-all"


def op_year_shift(r: Record, rng: random.Random) -> str | None:
    # The copyright year against the year of printing: one year apart.
    y = _year(r)
    if y is None:
        return None
    _set_year(r, y + rng.choice([-1, 1]))
    return "year-off-by-one"


COSMETIC: list[Op] = [
    op_ampersand,
    op_case,
    op_diacritics,
    op_isbd,
    op_isbn_form,
    op_isbn_qualifier,
    op_rda,
    op_year_form,
    op_publisher_form,
    op_drop_subjects,
    op_name_form,
]
DAMAGING: list[Op] = [
    op_typo_title,
    op_typo_author,
    op_drop_remainder,
    op_merge_remainder,
    op_drop_responsibility,
    op_drop_added_names,
    op_drop_place,
    op_drop_extent,
    op_pages_count,
    op_drop_isbn,
    op_shorten_remainder,
    op_no_names,
    op_year_shift,
]


def new_ids(r: Record, rng: random.Random, keep_lccn: bool) -> None:
    """Another library's copy: its own 001/003, no LC control data (mostly)."""
    for tag in ("001", "003", "005", "035", "040"):
        for f in r.get_fields(tag):
            r.remove_field(f)
    if not keep_lccn:
        for f in r.get_fields("010"):
            r.remove_field(f)
    r.add_ordered_field(Field(tag="001", data=f"x{rng.randrange(10**9):09d}"))
    r.add_ordered_field(Field(tag="003", data=rng.choice(["CN-GZUCM", "CN-SYSU", "CN-SCUT"])))


def corrupt(r: Record, rng: random.Random) -> tuple[Record, list[str]]:
    out = copy.deepcopy(r)
    keep_lccn = rng.random() < 0.15
    new_ids(out, rng, keep_lccn)
    notes = ["keeps-lccn"] if keep_lccn and out.get_fields("010") else []
    ops = rng.sample(COSMETIC, rng.randint(0, 3)) + rng.sample(DAMAGING, rng.randint(1, 3))
    rng.shuffle(ops)
    for op in ops:
        note = op(out, rng)
        if note:
            notes.append(note)
    return out, notes


# --------------------------------------------------------------------------- derived "different"


def _set_year(r: Record, year: int) -> None:
    f = first(r, "008")
    if f is not None and f.data and len(f.data) > 14:
        f.data = f.data[:6] + "s" + str(year) + "    " + f.data[15:]
    g = first(r, "260", "264")
    if g is not None:
        c = sub(g, "c")
        set_sub(g, "c", re.sub(r"(1[5-9]\d\d|20\d\d)", str(year), c) if c else f"{year}.")


def _year(r: Record) -> int | None:
    y = year_of(r)
    return int(y) if y.isdigit() else None


def _replace_isbns(r: Record, rng: random.Random, qualifier: str = "") -> str | None:
    old = isbn13s(r)
    for f in r.get_fields("020"):
        r.remove_field(f)
    new = random_isbn(rng, old[0] if old else None)
    r.add_ordered_field(
        Field(
            tag="020", indicators=Indicators(" ", " "), subfields=[Subfield("a", new + qualifier)]
        )
    )
    return new


def make_other_edition(r: Record, rng: random.Random) -> tuple[Record, str] | None:
    y = _year(r)
    if y is None:
        return None
    out = copy.deepcopy(r)
    new_ids(out, rng, keep_lccn=False)
    e = first(out, "250")
    m = re.search(r"(\d+)", sub(e, "a")) if e is not None else None
    n = int(m.group(1)) + 1 if m else 2
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n if n < 20 else n % 10, "th")
    statement = f"{n}{suffix} ed."
    if e is not None:
        out.remove_field(e)
    out.add_ordered_field(
        Field(tag="250", indicators=Indicators(" ", " "), subfields=[Subfield("a", statement)])
    )
    _set_year(out, y + rng.randint(2, 6))
    note = "edition+year"
    if rng.random() < 0.3:
        note += "+same-isbn"  # the publisher kept the ISBN for the new edition
    else:
        _replace_isbns(out, rng)
        note += "+new-isbn"
    p = first(out, "300")
    if p is not None:
        a = sub(p, "a")
        mm = re.search(r"(\d+)\s*p", a)
        if mm:
            n2 = int(int(mm.group(1)) * rng.uniform(1.08, 1.3))
            set_sub(p, "a", a[: mm.start(1)] + str(n2) + a[mm.end(1) :])
    return out, note


def make_volume(r: Record, rng: random.Random, number: int) -> Record:
    out = copy.deepcopy(r)
    new_ids(out, rng, keep_lccn=False)
    f = first(out, "245")
    assert f is not None
    a = sub(f, "a").rstrip(" /:.")
    set_sub(f, "a", a + ".")
    # $n goes right after $a
    subs = [s for s in f.subfields if s.code != "n"]
    idx = next((i for i, s in enumerate(subs) if s.code == "a"), 0) + 1
    label = rng.choice([f"v. {number}", f"Vol. {number}", f"Part {number}", f"Bd. {number}"])
    subs.insert(idx, Subfield("n", label + (" :" if f.get_subfields("b") else " /")))
    f.subfields = subs
    _replace_isbns(out, rng, f" (v. {number})")
    return out


def is_print_book(r: Record) -> bool:
    n = normalize(r, "marc21")
    return n.material == "book" and not n.reproduction


def make_ebook(r: Record, rng: random.Random) -> tuple[Record, str]:
    out = copy.deepcopy(r)
    new_ids(out, rng, keep_lccn=False)
    d = d008(out)
    if len(d) > 23:
        set_008(out, d[:23] + "o" + d[24:])
    signals = rng.sample(["007", "338", "300", "245h"], rng.randint(1, 3))
    if "007" in signals:
        out.add_ordered_field(Field(tag="007", data="cr |||||||||||"))
    if "338" in signals:
        out.add_ordered_field(
            Field(
                tag="338",
                indicators=Indicators(" ", " "),
                subfields=[Subfield("a", "online resource"), Subfield("b", "cr")],
            )
        )
    if "300" in signals:
        for p in out.get_fields("300"):
            a = sub(p, "a")
            m = re.search(r"(\d+)\s*p", a)
            set_sub(p, "a", f"1 online resource ({m.group(1)} pages)" if m else "1 online resource")
    if "245h" in signals:
        t = first(out, "245")
        if t is not None:
            subs = list(t.subfields)
            i = next((k for k, s in enumerate(subs) if s.code == "a"), 0) + 1
            subs.insert(i, Subfield("h", "[electronic resource] :"))
            t.subfields = subs
    out.add_ordered_field(
        Field(
            tag="856",
            indicators=Indicators("4", "0"),
            subfields=[Subfield("u", f"https://ebooks.example.org/{rng.randrange(10**6)}")],
        )
    )
    print_isbns = isbn13s(r)
    how = rng.choice(["own-isbn", "own-isbn+print-in-z", "print-isbn-in-a"])
    if not print_isbns:
        how = "no-isbn"
    if how.startswith("own-isbn"):
        _replace_isbns(out, rng, " (electronic bk.)")
        if how.endswith("print-in-z"):
            out.add_ordered_field(
                Field(
                    tag="020",
                    indicators=Indicators(" ", " "),
                    subfields=[Subfield("z", print_isbns[0])],
                )
            )
    elif how == "print-isbn-in-a":
        # Vendor records often carry the print ISBN as if it were theirs: a shared ISBN.
        for f in out.get_fields("020"):
            a = sub(f, "a")
            set_sub(f, "a", re.sub(r"\s*\(.*\)\s*$", "", a) + " (print)")
        out.add_ordered_field(
            Field(
                tag="020",
                indicators=Indicators(" ", " "),
                subfields=[Subfield("a", random_isbn(rng, print_isbns[0]) + " (ebook)")],
            )
        )
    return out, f"ebook:{'+'.join(sorted(signals))}:{how}"


def make_reprint(r: Record, rng: random.Random) -> tuple[Record, str] | None:
    y = _year(r)
    if y is None:
        return None
    out = copy.deepcopy(r)
    new_ids(out, rng, keep_lccn=False)
    how = rng.choice(["533", "facsimile-008", "new-publisher"])
    ny = min(y + rng.randint(15, 80), 2015)
    if ny <= y + 1:
        ny = y + 5
    if how == "533":
        out.add_ordered_field(
            Field(
                tag="533",
                indicators=Indicators(" ", " "),
                subfields=[
                    Subfield("a", rng.choice(["Microfilm.", "Photocopy.", "Microfiche."])),
                    Subfield("b", "Ann Arbor, Mich. :"),
                    Subfield("c", "University Microfilms International,"),
                    Subfield("d", f"{ny}."),
                ],
            )
        )
        note = "533-reproduction"
    else:
        d = d008(out)
        if len(d) > 23:
            form = "r" if how == "facsimile-008" else d[23]
            set_008(out, d[:6] + "r" + str(ny) + str(y) + d[15:23] + form + d[24:])
        g = first(out, "260", "264")
        if g is not None:
            set_sub(g, "a", rng.choice(["New York :", "Mineola, N.Y. :", "London :"]))
            set_sub(
                g, "b", rng.choice(["Dover Publications,", "Kessinger Pub.,", "Elibron Classics,"])
            )
            set_sub(g, "c", f"{ny}.")
        out.add_ordered_field(
            Field(
                tag="534" if how == "facsimile-008" else "500",
                indicators=Indicators(" ", " "),
                subfields=[Subfield("a", f"Originally published: {y}.")],
            )
        )
        note = how
        if isbn13s(r) or rng.random() < 0.5:
            _replace_isbns(out, rng)
    return out, note


# --------------------------------------------------------------------------- CJK variants


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and c not in "/:;=" else c for c in s)


def _respace(s: str, rng: random.Random) -> str:
    if " " in s:
        return s.replace(" ", "")
    chars = list(s)
    for _ in range(min(2, len(chars) // 3)):
        i = rng.randrange(1, len(chars))
        chars.insert(i, " ")
    return "".join(chars)


def vernacular_pairs(r: Record) -> dict[str, Field]:
    """880 fields by the tag they belong to."""
    out: dict[str, Field] = {}
    for f in r.get_fields("880"):
        six = sub(f, "6")
        if len(six) >= 3 and six[:3] not in out:
            out[six[:3]] = f
    return out


def to_vernacular_marc21(r: Record, convert: Callable[[str], str]) -> Record | None:
    """The record as a Chinese library writes MARC21: the script form in 245/100/260, no 880."""
    v = vernacular_pairs(r)
    if "245" not in v:
        return None
    out = copy.deepcopy(r)
    for f in out.get_fields("880"):
        out.remove_field(f)
    for tag, src in v.items():
        for f in out.get_fields(tag):
            if sub(f, "6")[4:6] == sub(src, "6")[4:6]:
                f.subfields = [
                    Subfield(s.code, convert(s.value)) for s in src.subfields if s.code != "6"
                ]
                break
    for f in out.fields:
        if not f.is_control_field():
            f.subfields = [s for s in f.subfields if s.code != "6"]
    return out


def to_unimarc(r: Record, rng: random.Random, convert: Callable[[str], str] | None) -> Record:
    """A UNIMARC/CNMARC rendering of a MARC21 record (the vernacular forms when ``convert``)."""
    v = vernacular_pairs(r) if convert else {}

    def text(tag: str, f: Field | None, codes: str) -> dict[str, str]:
        if f is None:
            return {}
        src = v.get(tag) if convert else None
        use = src if src is not None else f
        conv = convert if (src is not None and convert) else (lambda s: s)
        return {c: conv(" ".join(use.get_subfields(c))) for c in codes if use.get_subfields(c)}

    u = Record(force_utf8=True)
    u.leader = Leader("00000nam0 2200000   450 ")
    u.add_field(Field(tag="001", data=f"cn{rng.randrange(10**9):09d}"))
    for isbn in r.get_fields("020"):
        a = sub(isbn, "a")
        m = re.match(r"([\dXx-]+)\s*(?:\((.*)\))?", a.strip())
        if m:
            subs = [Subfield("a", m.group(1))]
            if m.group(2):
                subs.append(Subfield("b", m.group(2)))
            subs.append(Subfield("d", "CNY" + str(rng.randint(10, 90)) + ".00"))
            u.add_field(Field(tag="010", indicators=Indicators(" ", " "), subfields=subs))
    y = year_of(r)
    lang = d008(r)[35:38] or "eng"
    date = (
        f"20160101d{y if y.isdigit() else '    '}    em y0{'chi' if convert else 'eng'}y50      ea"
    )
    u.add_field(Field(tag="100", indicators=Indicators(" ", " "), subfields=[Subfield("a", date)]))
    u.add_field(Field(tag="101", indicators=Indicators("0", " "), subfields=[Subfield("a", lang)]))
    t = text("245", first(r, "245"), "abcnp")
    subs = [Subfield("a", re.sub(r"\s*[/:;=.]\s*$", "", t.get("a", "")))]
    if "b" in t:
        subs.append(Subfield("e", re.sub(r"\s*[/:;=.]\s*$", "", t["b"])))
    if "c" in t:
        subs.append(Subfield("f", re.sub(r"\s*[/:;=.]\s*$", "", t["c"])))
    if "n" in t:
        subs.append(Subfield("h", re.sub(r"\s*[/:;=.,]\s*$", "", t["n"])))
    if "p" in t:
        subs.append(Subfield("i", re.sub(r"\s*[/:;=.,]\s*$", "", t["p"])))
    if convert and rng.random() < 0.5:
        subs.append(Subfield("A", " ".join(lazy_pinyin(subs[0].value))))
    u.add_field(Field(tag="200", indicators=Indicators("1", " "), subfields=subs))
    e = text("250", first(r, "250"), "a")
    if e:
        u.add_field(
            Field(tag="205", indicators=Indicators(" ", " "), subfields=[Subfield("a", e["a"])])
        )
    p = text("260", first(r, "260", "264"), "abc")
    if p:
        subs = []
        if "a" in p:
            subs.append(Subfield("a", p["a"].rstrip(" :;")))
        if "b" in p:
            subs.append(Subfield("c", p["b"].rstrip(" ,")))
        yy = re.search(r"(1[5-9]\d\d|20\d\d)", p.get("c", ""))
        if yy:
            subs.append(Subfield("d", yy.group(1)))
        u.add_field(Field(tag="210", indicators=Indicators(" ", " "), subfields=subs))
    if r.get_fields("533") or d008(r)[23:24] in ("a", "b", "c", "r"):
        u.add_field(
            Field(
                tag="325",
                indicators=Indicators(" ", " "),
                subfields=[Subfield("a", "Reproduction")],
            )
        )
    x = first(r, "300")
    if x is not None:
        u.add_field(
            Field(
                tag="215",
                indicators=Indicators(" ", " "),
                subfields=[Subfield("a", sub(x, "a").rstrip(" :;")), Subfield("d", "24cm")],
            )
        )
    for s in r.get_fields("650")[:3]:
        u.add_field(
            Field(
                tag="606", indicators=Indicators("0", " "), subfields=[Subfield("a", sub(s, "a"))]
            )
        )
    for tag, utag in (("100", "700"), ("700", "701")):
        for n in r.get_fields(tag)[:2]:
            src = v.get(tag) if convert and tag == "100" else None
            name = " ".join((src or n).get_subfields("a")).rstrip(" ,.")
            if src is not None and convert:
                name = convert(name)
                subs = [Subfield("a", name)]
            elif "," in name:
                sur, fore = name.split(",", 1)
                subs = [Subfield("a", sur.strip()), Subfield("b", fore.strip())]
            else:
                subs = [Subfield("a", name)]
            subs.append(Subfield("4", "070"))
            u.add_field(Field(tag=utag, indicators=Indicators(" ", "1"), subfields=subs))
    return u


# --------------------------------------------------------------------------- builder


class Builder:
    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.meta: list[tuple[str, str]] = []
        self.known: dict[str, int] = {}
        self.pairs: list[dict[str, object]] = []
        self.seen_pairs: set[tuple[int, int]] = set()

    def add(self, rec: Record, origin: str, flavour: str = "marc21") -> int:
        if origin in self.known:
            return self.known[origin]
        r = trim(rec) if flavour == "marc21" else rec
        if flavour == "marc21":
            utf8(r)
        data = r.as_marc()
        idx = len(self.records)
        self.records.append(data)
        self.meta.append((flavour, origin))
        self.known[origin] = idx
        return idx

    def pair(self, a: int, b: int, same: bool, category: str, hard: bool, note: str = "") -> None:
        key = (min(a, b), max(a, b))
        if a == b or key in self.seen_pairs:
            return
        self.seen_pairs.add(key)
        self.pairs.append(
            {"a": a, "b": b, "same": same, "category": category, "hard": hard, "note": note}
        )

    def write(self) -> None:
        with gzip.GzipFile(OUT / "records.mrc.gz", "wb", mtime=0) as fh:
            for data in self.records:
                fh.write(data)
        with open(OUT / "records.tsv", "w", encoding="utf-8") as fh:
            fh.write("index\tflavour\torigin\n")
            for i, (fl, origin) in enumerate(self.meta):
                fh.write(f"{i}\t{fl}\t{origin}\n")
        with open(OUT / "pairs.jsonl", "w", encoding="utf-8") as fh:
            for p in self.pairs:
                fh.write(json.dumps(p, ensure_ascii=False) + "\n")


def read_dir(src: Path) -> Iterator[tuple[str, int, Record]]:
    """Every readable bibliographic record of the shared files, LC first, in a fixed order."""
    paths = sorted(
        p for p in src.glob("*/*") if p.suffix in (".mrc", ".marc", ".xml", ".dat", ".usmarc")
    )
    for path in paths:
        rel = f"{path.parent.name}/{path.name}"
        if "auth" in path.name or "mfhd" in path.name:
            continue
        try:
            for i, res in enumerate(read_records(path)):
                if (
                    isinstance(res, ReadResult)
                    and res.flavour == "marc21"
                    and str(res.record.leader)[6:7] in "at"
                ):
                    yield rel, i, res.record
        except Exception as exc:  # a file the reader rejects outright is skipped
            print(f"skip {rel}: {exc}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=Path("/work/shared/data/marc"))
    args = ap.parse_args()
    rng = random.Random(SEED)
    b = Builder()

    lc: list[Record] = []
    others: list[tuple[str, int, Record]] = []
    for rel, i, rec in read_dir(args.src):
        if rel == LC_FILE:
            lc.append(rec)
        else:
            others.append((rel, i, rec))
    print(f"LC {len(lc)}, others {len(others)}", file=sys.stderr)

    def lc_add(i: int) -> int:
        return b.add(lc[i], f"{LC_FILE}#{i}")

    # 1. Real LC pairs with the same ISBN: LC's own duplicates (same) or a reused ISBN.
    by_isbn: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(lc):
        for v in set(isbn13s(r)):
            by_isbn[v].append(i)
    same_isbn_done: set[tuple[int, int]] = set()
    for v in sorted(by_isbn):
        idx = by_isbn[v]
        for x in range(len(idx)):
            for y in range(x + 1, min(len(idx), 4)):
                i, j = idx[x], idx[y]
                if (i, j) in same_isbn_done:
                    continue
                same_isbn_done.add((i, j))
                ri, rj = lc[i], lc[j]
                dup = (
                    title_key(title_a(ri).rstrip("-")) == title_key(title_a(rj).rstrip("-"))
                    and author_key(ri) == author_key(rj)
                    and edition_of(ri) == edition_of(rj)
                    and parts_of(ri) == parts_of(rj)
                )
                if dup:
                    b.pair(lc_add(i), lc_add(j), True, "lc-duplicate-record", True, f"isbn {v}")
                else:
                    cat = (
                        "volume-of-set"
                        if parts_of(ri) != parts_of(rj) and parts_of(ri) and parts_of(rj)
                        else "isbn-reused"
                    )
                    b.pair(lc_add(i), lc_add(j), False, cat, True, f"isbn {v}")

    # 2. Real LC pairs with the same title (and author): other editions, large print, reprints,
    # volumes of a set, other books of the same name.
    by_title: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(lc):
        k = title_key(title_a(r))
        if k:
            by_title[k].append(i)
    same_author: list[tuple[int, int]] = []
    other_author: list[tuple[int, int]] = []
    for k in sorted(by_title):
        idx = by_title[k][:6]
        if len(idx) < 2:
            continue
        for x in range(len(idx)):
            for y in range(x + 1, len(idx)):
                i, j = idx[x], idx[y]
                if set(isbn13s(lc[i])) & set(isbn13s(lc[j])):
                    continue  # taken above
                if author_key(lc[i]) and author_key(lc[i]) == author_key(lc[j]):
                    same_author.append((i, j))
                else:
                    other_author.append((i, j))
    rng.shuffle(other_author)
    hard_pairs: list[tuple[int, int, str]] = []
    for i, j in same_author:
        ri, rj = lc[i], lc[j]
        lp = d008(ri)[23:24] == "d" or d008(rj)[23:24] == "d"
        if parts_of(ri) != parts_of(rj):
            cat = "volume-of-set"
        elif ri.get_fields("533") or rj.get_fields("533"):
            cat = "reprint"
        elif lp:
            cat = "large-print"
        elif edition_of(ri) != edition_of(rj):
            cat = "other-edition"
        elif year_of(ri) != year_of(rj):
            cat = "other-year"
        else:
            cat = "same-title-same-author"
        hard_pairs.append((i, j, cat))
    for i, j in other_author[:420]:
        same_year = year_of(lc[i]) == year_of(lc[j])
        hard_pairs.append(
            (i, j, "same-title-other-book" if not same_year else "same-title-same-year")
        )
    for i, j, cat in hard_pairs:
        b.pair(lc_add(i), lc_add(j), False, cat, True)

    # 3. Corrupted copies of every LC record used so far, and of a random sample to reach ~1,000.
    used = sorted({int(o.split("#")[1]) for o in b.known if o.startswith(LC_FILE)})
    pool = [i for i in range(len(lc)) if i not in set(used)]
    extra = rng.sample(pool, max(0, 1000 - len(used)))
    copies: dict[int, int] = {}
    for i in used + sorted(extra):
        c, notes = corrupt(lc[i], rng)
        ci = b.add(c, f"copy({LC_FILE}#{i})")
        copies[i] = ci
        b.pair(
            lc_add(i),
            ci,
            True,
            "corrupted-copy",
            "drop-isbn" in notes or "typo-title" in notes,
            ",".join(notes),
        )
    # A noisy copy against the other record of a hard pair: still different.
    for i, j, cat in hard_pairs[: len(hard_pairs) // 2]:
        if i in copies:
            b.pair(copies[i], lc_add(j), False, cat, True, "noisy-copy")

    # 4. Derived different manifestations from LC records.
    sample = rng.sample(range(len(lc)), 900)
    # An e-book made from a record that is already an e-book or a reproduction proves nothing.
    printed = [i for i in sample[:200] if is_print_book(lc[i])]
    for i in printed[:160]:
        e, note = make_ebook(lc[i], rng)
        b.pair(
            lc_add(i),
            b.add(e, f"ebook({LC_FILE}#{i})"),
            False,
            "print-vs-ebook",
            "print-isbn-in-a" in note,
            note,
        )
    for i in sample[160:300]:
        made = make_other_edition(lc[i], rng)
        if made:
            e, note = made
            b.pair(
                lc_add(i),
                b.add(e, f"edition({LC_FILE}#{i})"),
                False,
                "other-edition-derived",
                "same-isbn" in note,
                note,
            )
    for i in sample[300:400]:
        made = make_reprint(lc[i], rng)
        if made:
            e, note = made
            b.pair(
                lc_add(i), b.add(e, f"reprint({LC_FILE}#{i})"), False, "reprint-derived", True, note
            )
    for i in sample[400:470]:
        v1 = make_volume(lc[i], rng, 1)
        v2 = make_volume(lc[i], rng, 2)
        a1 = b.add(v1, f"volume1({LC_FILE}#{i})")
        a2 = b.add(v2, f"volume2({LC_FILE}#{i})")
        b.pair(a1, a2, False, "volume-of-set-derived", True, "v.1 vs v.2")
        b.pair(lc_add(i), a2, False, "volume-of-set-derived", True, "whole vs v.2")
    for x in range(470, 590, 2):
        i, j = sample[x], sample[x + 1]
        isbns = isbn13s(lc[i])
        if not isbns:
            continue
        reused = copy.deepcopy(lc[j])
        for f in reused.get_fields("020"):
            reused.remove_field(f)
        reused.add_ordered_field(
            Field(tag="020", indicators=Indicators(" ", " "), subfields=[Subfield("a", isbns[0])])
        )
        b.pair(
            lc_add(i),
            b.add(reused, f"isbn-of({LC_FILE}#{i})->({LC_FILE}#{j})"),
            False,
            "isbn-reused-derived",
            True,
        )
    for x in range(590, 790, 2):
        i, j = sample[x], sample[x + 1]
        b.pair(lc_add(i), lc_add(j), False, "random-different", False)
    for i in sample[790:870]:
        u = to_unimarc(lc[i], rng, None)
        b.pair(
            lc_add(i), b.add(u, f"unimarc({LC_FILE}#{i})", "unimarc"), True, "cross-flavour", False
        )

    # 5. CJK: every record with Han script, and derived variants.
    cjk: list[tuple[str, Record]] = []
    cjk_seen: set[tuple[str, str]] = set()

    def add_cjk(origin: str, r: Record) -> None:
        # The same record shipped in several files (ISO 2709 and MARCXML) counts once.
        t = first(r, "245")
        key = (fold(t.value() if t is not None else ""), year_of(r))
        if key not in cjk_seen:
            cjk_seen.add(key)
            cjk.append((origin, r))

    for i, r in enumerate(lc):
        if any(has_cjk(f.value()) for f in r.get_fields("880")):
            add_cjk(f"{LC_FILE}#{i}", r)
    for rel, i, r in others:
        if d008(r)[35:38] in ("chi", "jpn", "kor") and any(
            has_cjk(f.value()) for f in r.get_fields("245", "880")
        ):
            add_cjk(f"{rel}#{i}", r)
    print(f"CJK records {len(cjk)}", file=sys.stderr)
    for origin, r in cjk:
        base = b.add(r, origin)
        vpairs = vernacular_pairs(r)
        f245 = first(r, "245")
        vern_245 = f245 is not None and has_cjk(f245.value())
        # traditional → simplified, or simplified → traditional when it was simplified already
        script_tags = {"245", "880", "100", "260", "250", "700"}
        ts = copy.deepcopy(r)
        new_ids(ts, rng, keep_lccn=False)
        map_text(ts, _t2s.convert, script_tags)
        how = "t2s"
        if str(ts) == str(r) or rng.random() < 0.2:
            ts = copy.deepcopy(r)
            new_ids(ts, rng, keep_lccn=False)
            map_text(ts, _s2t.convert, script_tags)
            how = "s2t"
        if str(ts) != str(r):
            b.pair(base, b.add(ts, f"{how}({origin})"), True, "cjk-trad-simp", True, how)
        # full-width letters/digits and CJK spacing in the script form
        fw = copy.deepcopy(r)
        new_ids(fw, rng, keep_lccn=False)
        target = {"880"} if vpairs else {"245"}
        map_text(fw, lambda s: _respace(_fullwidth(s), rng) if has_cjk(s) else s, target)
        if str(fw) != str(r):
            b.pair(base, b.add(fw, f"fullwidth({origin})"), True, "cjk-fullwidth", True)
        if "245" in vpairs:
            # the script form in 245 (how Chinese libraries write MARC21), simplified
            vm = to_vernacular_marc21(r, _t2s.convert)
            if vm is not None:
                new_ids(vm, rng, keep_lccn=False)
                iv = b.add(vm, f"vernacular-245({origin})")
                b.pair(base, iv, True, "romanised-vs-vernacular", True, "880 vs 245 script")
                # romanised only (no 880) against the script only: pinyin must carry it, so
                # only for Chinese (Japanese and Korean romanisation is not derivable from script)
                if d008(r)[35:38] == "chi":
                    ro = copy.deepcopy(r)
                    new_ids(ro, rng, keep_lccn=False)
                    for f in ro.get_fields("880"):
                        ro.remove_field(f)
                    if rng.random() < 0.5:
                        for f in ro.get_fields("020"):
                            ro.remove_field(f)
                    b.pair(
                        b.add(ro, f"romanised-only({origin})"),
                        iv,
                        True,
                        "romanised-vs-vernacular",
                        True,
                        "pinyin only",
                    )
                # another volume / edition of the vernacular record: different
                dv = copy.deepcopy(vm)
                t = first(dv, "245")
                if t is not None:
                    set_sub(
                        t,
                        "a",
                        sub(t, "a").rstrip(" /:.") + rng.choice(["（下册）", "。第二卷", " 续编"]),
                    )
                    _replace_isbns(dv, rng)
                    b.pair(
                        iv,
                        b.add(dv, f"vernacular-other-volume({origin})"),
                        False,
                        "cjk-different",
                        True,
                        "other volume",
                    )
                year = _year(r)
                if year is not None:
                    de = copy.deepcopy(vm)
                    for f in de.get_fields("250"):
                        de.remove_field(f)
                    de.add_ordered_field(
                        Field(
                            tag="250",
                            indicators=Indicators(" ", " "),
                            subfields=[Subfield("a", "第2版")],
                        )
                    )
                    _set_year(de, year + 3)
                    if rng.random() < 0.5:
                        _replace_isbns(de, rng)
                    b.pair(
                        iv,
                        b.add(de, f"vernacular-2nd-ed({origin})"),
                        False,
                        "cjk-different",
                        True,
                        "other edition",
                    )
            # CNMARC rendering with the script forms
            u = to_unimarc(r, rng, _t2s.convert)
            b.pair(
                base,
                b.add(u, f"cnmarc({origin})", "unimarc"),
                True,
                "romanised-vs-vernacular",
                True,
                "MARC21 880 vs CNMARC",
            )
        elif vern_245:
            u = to_unimarc(r, rng, None)
            map_text(u, _t2s.convert, {"200", "210", "700", "701"})
            b.pair(base, b.add(u, f"cnmarc({origin})", "unimarc"), True, "cjk-cross-flavour", True)
    # real CJK pairs: records by the same author or publisher are different books
    for x in range(len(cjk)):
        for y in range(x + 1, len(cjk)):
            rx, ry = cjk[x][1], cjk[y][1]
            px, py = first(rx, "260", "264"), first(ry, "260", "264")
            same_pub = (
                px is not None and py is not None and fold(sub(px, "b")) == fold(sub(py, "b"))
            )
            if (author_key(rx) and author_key(rx) == author_key(ry)) or same_pub:
                b.pair(
                    b.add(rx, cjk[x][0]),
                    b.add(ry, cjk[y][0]),
                    False,
                    "cjk-different",
                    True,
                    "same author or publisher",
                )

    # 6. Real pairs across sources: the same ISBN in two files of different origin.
    other_by_isbn: dict[str, list[tuple[str, int, Record]]] = collections.defaultdict(list)
    for rel, i, r in others:
        for v in set(isbn13s(r)):
            other_by_isbn[v].append((rel, i, r))
    for v in sorted(other_by_isbn):
        group = other_by_isbn[v]
        lc_idx = by_isbn.get(v, [])
        cands = [(f"{LC_FILE}#{i}", lc[i]) for i in lc_idx] + [
            (f"{rel}#{i}", r) for rel, i, r in group
        ]
        taken: set[bytes] = set()
        uniq: list[tuple[str, Record]] = []
        for origin, r in cands:
            key = trim(r).as_marc()
            if key in taken:
                continue  # byte-identical copies of one record in several test suites
            taken.add(key)
            uniq.append((origin, r))
        for x in range(len(uniq)):
            for y in range(x + 1, min(len(uniq), 3)):
                (oa, ra), (ob, rb) = uniq[x], uniq[y]
                if oa.split("#")[0].split("/")[0] == ob.split("#")[0].split("/")[0]:
                    continue
                same = title_key(title_a(ra)) == title_key(title_a(rb))
                b.pair(
                    b.add(ra, oa),
                    b.add(rb, ob),
                    same,
                    "same-isbn-two-sources" if same else "isbn-reused",
                    True,
                    f"isbn {v}",
                )

    # 7. Real pairs across sources by title and author (no shared ISBN): the same year is the
    # same book (checked by hand: Jazz, The Thelonious Monk reader, Qadaʼ al-usrah, the camel
    # books), another year another edition.
    by_ta: dict[tuple[str, str], list[tuple[str, Record]]] = collections.defaultdict(list)
    for i, r in enumerate(lc):
        by_ta[(title_key(title_a(r)), author_key(r))].append((f"{LC_FILE}#{i}", r))
    for rel, i, r in others:
        ta = (title_key(title_a(r)), author_key(r))
        if ta[0]:
            by_ta[ta].append((f"{rel}#{i}", r))
    for ta in sorted(by_ta):
        tgroup = by_ta[ta]
        if not ta[0] or len({o.split("/")[0] for o, _ in tgroup}) < 2:
            continue
        done: set[bytes] = set()
        uniq = []
        for o, r in tgroup:
            data = trim(r).as_marc()
            if data not in done:
                done.add(data)
                uniq.append((o, r))
        for x in range(len(uniq)):
            for y in range(x + 1, min(len(uniq), 4)):
                (oa, ra), (ob, rb) = uniq[x], uniq[y]
                if oa.split("/")[0] == ob.split("/")[0]:
                    continue
                if set(isbn13s(ra)) & set(isbn13s(rb)):
                    continue  # paired in step 6
                same = year_of(ra) == year_of(rb)
                b.pair(
                    b.add(ra, oa),
                    b.add(rb, ob),
                    same,
                    "cross-source-title" if same else "other-edition",
                    True,
                    "cross-source",
                )

    b.write()
    counts = collections.Counter((str(p["category"]), bool(p["same"])) for p in b.pairs)
    for (cat, same), n in sorted(counts.items()):
        print(f"{cat:28} {'same' if same else 'diff'} {n}", file=sys.stderr)
    print(f"records {len(b.records)}, pairs {len(b.pairs)}", file=sys.stderr)


if __name__ == "__main__":
    main()
