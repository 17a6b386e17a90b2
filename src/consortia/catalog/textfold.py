"""Text folding for match keys and match decisions.

Two records of one book differ in case, diacritics, ISBD punctuation, leading articles,
full-width vs half-width forms, traditional vs simplified Chinese and spacing in CJK text.
These helpers fold all of that away so that blocking keys and fuzzy scores compare what the
cataloguers meant, not how they typed it. They run on every ingested record, so ASCII text
takes a short path and the costly steps (OpenCC, pinyin) are cached and used only on CJK text.

The search index has its own CJK helpers (``search/cjk.py``); these are for matching only.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

__all__ = [
    "cn_number",
    "fold",
    "fold_name",
    "fold_publisher",
    "has_cjk",
    "has_han_only",
    "lccn_key",
    "oclc_key",
    "part_key",
    "parts_conflict",
    "pinyin_key",
    "t2s",
    "title_key",
]

# Han (incl. extension A and compatibility ideographs), kana, Hangul, CJK punctuation block.
_CJK = re.compile(
    "[\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]"
)
_KANA_HANGUL = re.compile("[\u3040-\u30ff\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")
_ASCII_PUNCT = str.maketrans(
    {c: " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\t\n\r\x0b\x0c\x1e\x1f"}
)

# Latin letters that NFKD does not decompose; romanisation marks (ayn, alif, soft sign) vanish.
_SPECIAL = {
    "ø": "o",
    "Ø": "o",
    "æ": "ae",
    "Æ": "ae",
    "œ": "oe",
    "Œ": "oe",
    "đ": "d",
    "Đ": "d",
    "ð": "d",
    "Ð": "d",
    "ł": "l",
    "Ł": "l",
    "ı": "i",
    "þ": "th",
    "Þ": "th",
    "ß": "ss",
    "ʻ": "",
    "ʼ": "",
    "ʹ": "",
    "ʺ": "",
    "ʾ": "",
    "ʿ": "",
    "\u02bd": "",
    "\u200b": "",
    "\u200c": "",
    "\u200d": "",
    "\ufeff": "",
}


def _fold_cp(cp: int) -> str | None:
    """What one code point folds to: punctuation, symbols, separators and controls become
    spaces; Latin, Hebrew and Arabic combining marks vanish (they are diacritics, not letters);
    the rest stays."""
    special = _SPECIAL.get(chr(cp))
    if special is not None:
        return special
    cat = unicodedata.category(chr(cp))
    if cat[0] in "PSZ" or cat in ("Cc", "Cf"):
        return " "
    if cat == "Mn" and (
        0x0300 <= cp <= 0x036F
        or 0x1AB0 <= cp <= 0x1AFF
        or 0x1DC0 <= cp <= 0x1DFF
        or 0x20D0 <= cp <= 0x20FF
        or 0xFE20 <= cp <= 0xFE2F
        or 0x0591 <= cp <= 0x05C7
        or 0x064B <= cp <= 0x065F
        or cp == 0x0670
    ):
        return None
    return chr(cp)


class _FoldTable(dict[int, str | None]):
    """The translate table, filled as code points are met (str.translate looks each character
    up; a miss computes and keeps it). Building it for all 1.1 million code points up front
    cost every process 1-2 s of CPU."""

    def __missing__(self, cp: int) -> str | None:
        value = self[cp] = _fold_cp(cp)
        return value


_TABLE = _FoldTable()


def _table() -> dict[int, str | None]:
    return _TABLE


@lru_cache(maxsize=1)
def _opencc() -> Any:
    from opencc import OpenCC

    return OpenCC("t2s")


@lru_cache(maxsize=65536)
def t2s(text: str) -> str:
    """Traditional → simplified Chinese (OpenCC), cached; text without Han is returned as is."""
    if not _CJK.search(text):
        return text
    return str(_opencc().convert(text))


def has_cjk(text: str) -> bool:
    return not text.isascii() and _CJK.search(text) is not None


def has_han_only(text: str) -> bool:
    """CJK text that is Chinese rather than Japanese or Korean (no kana, no Hangul)."""
    return has_cjk(text) and _KANA_HANGUL.search(text) is None


@lru_cache(maxsize=131072)
def fold(text: str) -> str:
    """Case, diacritics, punctuation, width and 繁/简 folded; words separated by one space.

    Text holding CJK characters loses every space, since CJK titles are written without spaces
    and cataloguers space them (or the Latin words inside them) inconsistently.
    """
    if not text:
        return ""
    if text.isascii():
        return " ".join(text.translate(_ASCII_PUNCT).lower().split())
    # NFKD: full-width → half-width, ligatures split, diacritics separated from their letters.
    s = unicodedata.normalize("NFKD", text).translate(_table())
    s = unicodedata.normalize("NFC", s).casefold()
    if _CJK.search(s):
        return t2s("".join(s.split()))
    return " ".join(s.split())


# Leading articles dropped from title keys (MARC non-filing characters are often not set).
_ARTICLES_WORDS = (
    "the a an le la les l der die das den dem des ein eine el los las lo gli un une uno "
    "una het de een il"
)
_ARTICLES = frozenset(_ARTICLES_WORDS.split())
# "de" and "het"/"een" (Dutch) are articles only there; "de" is kept unless more words follow.


def title_key(title: str, limit: int = 80) -> str:
    """Folded title without a leading article and without "and" ("&" in other copies), cut to
    ``limit`` characters."""
    s = fold(title)
    if not s:
        return ""
    head, sep, rest = s.partition(" ")
    if sep and rest and head in _ARTICLES and head != "de":
        s = rest
    if " and " in s:
        s = s.replace(" and ", " ")
    if s.endswith(" and"):
        s = s[:-4]
    return s[:limit].rstrip()


@lru_cache(maxsize=32768)
def pinyin_key(text: str) -> str:
    """Toneless pinyin without spaces, so romanised and vernacular Chinese titles compare.

    "中國歷史" and "Zhongguo li shi" both give "zhongguolishi".
    """
    s = fold(text)
    if not s:
        return ""
    if not _CJK.search(s):
        return s.replace(" ", "")
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(s)).replace(" ", "")


# Names: dates, fuller forms in parentheses and relator words do not distinguish people.
_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
# "b. 1938", "d. 1890", "fl. 1200", "ca. 1550": the word goes with its date, not initials.
_NAME_DATES = re.compile(r"\b(?:b|d|fl|ca|approximately|active|born|died)\.?\s*(?=\d)", re.I)
_DIGITS_RUN = re.compile(r"\d+")


@lru_cache(maxsize=65536)
def fold_name(name: str) -> str:
    s = _NAME_DATES.sub(" ", _PARENS.sub(" ", name))
    s = fold(s)
    if not s or has_cjk(s):
        return s
    return " ".join(_DIGITS_RUN.sub(" ", s).split())


_PUBLISHER_NOISE_WORDS = (
    "press publishing publishers publisher publ pub pubs co company inc incorporated ltd "
    "limited llc corp corporation verlag editions edition editorial editora editrice "
    "edizioni books book house the and et und y e group gmbh ag sa plc pty pvt private "
    "printed printing for by published distributed sons son"
)
_PUBLISHER_NOISE = frozenset(_PUBLISHER_NOISE_WORDS.split())
_CN_PUBLISHER_NOISE = re.compile("出版发行|出版社|出版|有限责任公司|有限公司|公司|书局|书店|集团")


@lru_cache(maxsize=65536)
def fold_publisher(name: str) -> str:
    """Publisher without corporate and trade words: "J. Wiley & Sons, Inc." → "j wiley"."""
    s = fold(name)
    if not s:
        return ""
    if has_cjk(s):
        return _CN_PUBLISHER_NOISE.sub("", s)
    return " ".join(w for w in s.split() if w not in _PUBLISHER_NOISE)


_CN_DIGITS = {
    "〇": 0,
    "零": 0,
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
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}


def cn_number(text: str) -> int | None:
    """Value of a Chinese numeral such as 二, 十二, 二十三, 一百零五; None if it is not one."""
    if not text:
        return None
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            total += (current or 1) * _CN_UNITS[ch]
            current = 0
        else:
            return None
    return total + current


_ROMAN = re.compile(r"^(?=[mdclxvi]+$)m{0,4}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")
_ROMAN_VALUES = {"m": 1000, "d": 500, "c": 100, "l": 50, "x": 10, "v": 5, "i": 1}
_WORD_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
}
# 上/中/下 volumes: 上 is the first and 下 the last; 中 sits between.
_CN_POSITION = {"上": "1", "中": "2", "下": "9", "前": "1", "后": "9", "後": "9"}
_CN_NUM_RUN = re.compile("[〇零一二两三四五六七八九十百千]+")


def _roman(word: str) -> int | None:
    if not word or not _ROMAN.match(word):
        return None
    total = 0
    prev = 0
    for ch in reversed(word):
        v = _ROMAN_VALUES[ch]
        total = total - v if v < prev else total + v
        prev = max(prev, v)
    return total


# Words that only say "this is a volume": they carry no identity of their own.
_PART_WORDS_TEXT = (
    "v vol vols volume volumes pt part parts no nr number bd band t tome tomo book bk sect "
    "section sec teil heft fasc fascicle livre ser series and"
)
_PART_WORDS = frozenset(_PART_WORDS_TEXT.split())
_CN_PART_MARKS = re.compile("[第卷册冊辑輯集部分编編篇次期号號]")


@lru_cache(maxsize=16384)
def part_key(part: str) -> str:
    """A volume designation as "<numbers>|<words>": "v. 2", "Vol. II", "Part two", "第二卷",
    "第2册" all give "2"; "上" gives "1", "下" gives "9"; "Volume 5, Herbs" gives "5|herbs";
    "Mexico, 1960-1963" gives "1960.1963|mexico"."""
    s = fold(part)
    if not s:
        return ""
    nums: list[str] = []
    if has_cjk(s):
        for m in _CN_NUM_RUN.finditer(s):
            n = cn_number(m.group(0))
            if n is not None:
                nums.append(str(n))
        nums.extend(str(int(d)) for d in _DIGITS.findall(s))
        rest = _CN_PART_MARKS.sub("", _DIGITS.sub("", _CN_NUM_RUN.sub("", s)))
        if not nums:
            nums = [_CN_POSITION[ch] for ch in rest if ch in _CN_POSITION]
            rest = "".join(ch for ch in rest if ch not in _CN_POSITION)
        rest = rest.replace("册", "").strip()
        return ".".join(nums) + ("|" + rest if rest else "")
    words: list[str] = []
    prev_designation = False
    for word in s.split():
        if word.isdigit():
            nums.append(str(int(word)))
        elif word in _WORD_NUMBERS:
            nums.append(str(_WORD_NUMBERS[word]))
        elif word in _PART_WORDS:
            prev_designation = True
            continue
        else:
            digits = _DIGITS.findall(word)
            r = _roman(word) if (len(word) > 1 or prev_designation) else None
            if digits:
                nums.extend(str(int(d)) for d in digits)
            elif r is not None:
                nums.append(str(r))
            elif word not in _ARTICLES:
                words.append(word)
        prev_designation = False
    return ".".join(nums) + ("|" + " ".join(words) if words else "")


def parts_conflict(a: str, b: str) -> bool:
    """Do two part keys name different volumes? Numbers are compared when both have them, and
    words when both have them. "2" and "2|herbs" agree; "1" and "|herbs" cannot be compared
    (no conflict); "1960|mexico" and "1960|soviet union" differ."""
    if a == b or not a or not b:
        return False
    na, _, wa = a.partition("|")
    nb, _, wb = b.partition("|")
    return bool((na and nb and na != nb) or (wa and wb and wa != wb))


_LCCN_SUFFIX = re.compile(r"/.*$")


def lccn_key(lccn: str) -> str:
    """LCCN normalised as the LC rules say: no blanks, no revision suffix, serial after the
    hyphen padded to six digits ("n 78-890351" → "n78890351", "85-2" → "85000002")."""
    s = _LCCN_SUFFIX.sub("", lccn.strip()).replace(" ", "").lower()
    if "-" in s:
        head, _, tail = s.partition("-")
        s = head + (tail.zfill(6) if tail.isdigit() else tail)
    return s


def oclc_key(value: str) -> str:
    """OCLC number digits without prefix (ocm/ocn/on) or leading zeros."""
    digits = "".join(ch for ch in value if ch.isdigit())
    return digits.lstrip("0")
