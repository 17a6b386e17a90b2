"""Text folding and tokens for the search index: CJK, pinyin, 繁简, Latin, numbers.

The same functions run at index time and at query time, so whatever folding they do, both
sides agree. Backends (SQLite FTS5, PostgreSQL) consume this module; they never fold text
themselves.

Interface for backends
----------------------
* ``index_tokens(text)`` — the tokens to store for a text field (title, author, subject,
  publisher, and the all-fields ``any`` column). The list starts with the *primary* stream, in
  text order, one token per word (Latin words, hyphen-joined numbers, CJK bigrams; a CJK run of
  one character gives that character), so that phrase queries can use token adjacency. Then
  come *secondary* tokens, which are only ever matched alone: the parts of hyphenated numbers,
  the single characters of CJK runs (so a one-character query finds 中医药学), CJK bigrams
  across punctuation, and pinyin tokens. Every token matches ``[^\\W_]+`` (letters and digits
  only), so a backend may join them with spaces and hand them to a word tokenizer
  (FTS5 ``unicode61``, PostgreSQL ``array_to_tsvector``) without them being split again.
* ``alternatives(field, text, truncation=..., phrase=...)`` — how a query ``Term``/``Phrase``
  (``consortia.search.query``) matches: a tuple of ``Alternative``; the term matches a record
  when *any* alternative matches, and an alternative matches when *all* its tokens occur in the
  field (``adjacent``: in that order, next to each other; ``prefix``: the last token is a
  prefix). An empty tuple means the text has nothing searchable.
* ``keyword(field, value)`` — the normalised whole value for the keyword fields (isbn, issn,
  language, classification, member); index and query both use it.
* ``PINYIN_MARK``: pinyin tokens are pairs of toneless syllables, each preceded by this mark
  (``0zhong0yi`` for 中医), so they stay letters and digits and never meet a real word (a word
  would have to be written "0zhong0yi"). Pinyin is searched by syllable pairs: a query must
  read as at least two syllables (see ``pinyin_query_tokens``).
* Speed (one core, CPU time, 2026-11): about 17,000 Latin-script records a second (LoC titles,
  names, subjects, 185 characters) and 8,000 Chinese records a second with pinyin (35
  characters, cold caches), 60,000 without; pinyin readings and pinyin splits of words are
  cached.

Why character-level 繁→简: OpenCC's phrase tables convert a string according to its context,
so a query substring could convert differently from the same characters inside a longer
indexed title. Folding one character at a time (OpenCC's own character tables, variants
first) guarantees ``fold(part)`` is a part of ``fold(whole)``, which bigram matching needs.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import NamedTuple

from stdnum import isbn as _isbn
from stdnum import issn as _issn

__all__ = [
    "PINYIN_MARK",
    "Alternative",
    "alternatives",
    "fold",
    "index_tokens",
    "is_cjk",
    "is_han",
    "isbn_key",
    "isbn_variants",
    "issn_key",
    "keyword",
    "pinyin_query_tokens",
    "pinyin_syllables",
    "pinyin_tokens",
    "query_tokens",
    "segment_pinyin",
]

PINYIN_MARK = "0"

# --- character classes -------------------------------------------------------------------

_HAN_RANGES = (
    "\u3005\u3007"  # 々 iteration mark, 〇 ideographic zero (二〇一〇)
    "\u3400-\u4dbf"  # extension A
    "\u4e00-\u9fff"  # unified ideographs
    "\uf900-\ufaff"  # compatibility ideographs (NFKC maps most of them)
    "\U00020000-\U0003134f"  # extensions B-G and the compatibility supplement
)
_OTHER_CJK_RANGES = (
    "\u1100-\u11ff"  # hangul jamo
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3100-\u312f"  # bopomofo
    "\u3130-\u318f"  # hangul compatibility jamo
    "\u31f0-\u31ff"  # katakana phonetic extensions
    "\uac00-\ud7af"  # hangul syllables
)
_CJK = _HAN_RANGES + _OTHER_CJK_RANGES
_HAN_RE = re.compile(f"[{_HAN_RANGES}]")
_CJK_RE = re.compile(f"[{_CJK}]")

_DASHES = "\\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
# One pass over folded text: CJK runs, hyphenated numbers, other words. Underscore and CJK are
# excluded from words (they are \w but not letters of a Latin-style word).
_TOKEN_RE = re.compile(
    rf"(?P<cjk>[{_CJK}]+)"
    rf"|(?P<num>(?<![^\W_{_CJK}])\d+(?:[{_DASHES}]\d+)+(?:[{_DASHES}]x)?(?![^\W_]))"
    rf"|(?P<word>[^\W_{_CJK}]+)"
)
# Plain ASCII text (most Latin-script records) takes a simpler, faster pattern.
_ASCII_TOKEN_RE = re.compile(
    r"(?P<num>(?<![a-z0-9])\d+(?:-\d+)+(?:-x)?(?![a-z0-9]))|(?P<word>[a-z0-9]+)"
)
_NON_TOKEN_CHARS_RE = re.compile(r"[\W_]+")


def is_han(ch: str) -> bool:
    """A Chinese character (汉字), the only script that gets pinyin."""
    return bool(_HAN_RE.fullmatch(ch))


def is_cjk(ch: str) -> bool:
    """Han, kana, hangul or bopomofo: scripts written without spaces, indexed as bigrams."""
    return bool(_CJK_RE.fullmatch(ch))


# --- folding -----------------------------------------------------------------------------

# Combining marks that are diacritics of Latin, Greek and Cyrillic letters. Kana voicing marks
# (U+3099/309A) are not here on purpose: が must not become か.
_DIACRITICS_RE = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Letters that carry their mark inside (no decomposition), folded by hand.
_LATIN_EXTRA = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i", "ħ": "h"}
)
_OPENCC_DIR = files("opencc") / "dictionary"


def _read_opencc(name: str) -> dict[str, str]:
    table: dict[str, str] = {}
    with (_OPENCC_DIR / name).open("r", encoding="utf-8") as fh:
        for line in fh:
            key, _, values = line.rstrip("\n").partition("\t")
            if len(key) == 1 and values:
                table[key] = values.split(" ")[0]
    return table


@lru_cache(maxsize=1)
def _t2s_table() -> dict[int, str]:
    """Traditional, Taiwan and Hong Kong variant characters → simplified, one char each."""
    ts = _read_opencc("TSCharacters.txt")
    variants = {**_read_opencc("HKVariantsRev.txt"), **_read_opencc("TWVariantsRev.txt")}

    def step(c: str) -> str:
        v = variants.get(c, c)
        return ts.get(v, v)

    table: dict[int, str] = {}
    for ch in set(ts) | set(variants):
        out = ch
        # Follow the chain to a fixed point so that folding is idempotent.
        for _ in range(8):
            nxt = step(out)
            if nxt == out or len(nxt) != 1:
                break
            out = nxt
        if out != ch:
            table[ord(ch)] = out
    return table


def to_simplified(text: str) -> str:
    """繁→简, character by character (see the module note for why not phrases)."""
    return text.translate(_t2s_table())


def fold(text: str) -> str:
    """The form every text and query is compared in.

    NFKC (full-width → half-width, compatibility forms), case folding, Latin diacritics
    removed (ā → a, ö → o, ü → u), 繁→简. ASCII text takes a fast path.
    """
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFD", text)
        stripped = _DIACRITICS_RE.sub("", decomposed)
        if stripped != decomposed:
            text = unicodedata.normalize("NFC", stripped)
        if not text.isascii():  # both tables map only non-ASCII characters
            text = text.translate(_LATIN_EXTRA).translate(_t2s_table())
    return text


# --- pinyin ------------------------------------------------------------------------------

# Every syllable of Standard Mandarin in toneless pinyin, ü written u (lü → lu, nüe → nue,
# as pypinyin's "v" is folded too), plus the rare biang/fiao/din/... that dictionaries list.
# Interjections written without a vowel (m, n, ng, hm, hng) are left out: they would let almost
# any consonant cluster pass as pinyin.
_SYLLABLE_TABLE = """
    a ai an ang ao
    ba bai ban bang bao bei ben beng bi bian biang biao bie bin bing bo bong bu
    ca cai can cang cao ce cei cen ceng cha chai chan chang chao che chen cheng chi chong chou
    chu chua chuai chuan chuang chui chun chuo ci cong cou cu cuan cui cun cuo
    da dai dan dang dao de dei den deng di dia dian diao die din ding diu dong dou du duan dui
    dun duo
    e ei en eng er
    fa fan fang fei fen feng fiao fo fou fu
    ga gai gan gang gao ge gei gen geng gong gou gu gua guai guan guang gui gun guo
    ha hai han hang hao he hei hen heng hong hou hu hua huai huan huang hui hun huo
    ji jia jian jiang jiao jie jin jing jiong jiu ju juan jue jun
    ka kai kan kang kao ke kei ken keng kong kou ku kua kuai kuan kuang kui kun kuo
    la lai lan lang lao le lei len leng li lia lian liang liao lie lin ling liu lo long lou lu
    luan lue lun luo
    ma mai man mang mao me mei men meng mi mian miao mie min ming miu mo mou mu
    na nai nan nang nao ne nei nen neng ni nia nian niang niao nie nin ning niu nong nou nu
    nuan nue nun nuo
    o ou
    pa pai pan pang pao pei pen peng pi pian piao pie pin ping po pou pu
    qi qia qian qiang qiao qie qin qing qiong qiu qu quan que qun
    ran rang rao re ren reng ri rong rou ru rua ruan rui run ruo
    sa sai san sang sao se sen seng sha shai shan shang shao she shei shen sheng shi shou shu
    shua shuai shuan shuang shui shun shuo si song sou su suan sui sun suo
    ta tai tan tang tao te tei teng ti tian tiao tie ting tong tou tu tuan tui tun tuo
    wa wai wan wang wei wen weng wo wong wu
    xi xia xian xiang xiao xie xin xing xiong xiu xu xuan xue xun
    ya yan yang yao ye yi yin ying yo yong you yu yuan yue yun
    za zai zan zang zao ze zei zen zeng zha zhai zhan zhang zhao zhe zhei zhen zheng zhi zhong
    zhou zhu zhua zhuai zhuan zhuang zhui zhun zhuo zi zong zou zu zuan zui zun zuo
"""
_SYLLABLES = frozenset(_SYLLABLE_TABLE.split())
_MAX_SYLLABLE = max(len(s) for s in _SYLLABLES)
# A pinyin word as typed after folding: letters with optional tone digits (zhong1yi1), and
# apostrophes between syllables (xi'an).
# Letter runs joined by a tone digit and/or an apostrophe. Written so that each run can only
# be matched one way: the nested form (?:[a-z]+[0-5]?)(?:'?[a-z]+[0-5]?)* backtracked
# exponentially on a long word that fails at its end (30 letters and a "!": minutes).
_PINYIN_WORD_RE = re.compile(r"[a-z]+(?:(?:[0-5]'?|')[a-z]+)*[0-5]?")
_PINYIN_SPLIT_RE = re.compile(r"[0-5']+")


def pinyin_syllables() -> frozenset[str]:
    return _SYLLABLES


@lru_cache(maxsize=65536)
def segment_pinyin(letters: str) -> tuple[str, ...] | None:
    """Split unspaced toneless pinyin into syllables, or None if it cannot be split.

    Greedy-longest with backtracking: at each position the longest syllable is taken whose
    remainder can still be split (``fangan`` → fang an, ``xian`` → xian, ``xianggang`` →
    xiang gang). Computed right to left so it is linear, not exponential, in the length.
    """
    n = len(letters)
    if n == 0:
        return None
    choice = [0] * (n + 1)  # choice[i]: length of the syllable taken at i; 0: no split from i
    splittable = [False] * (n + 1)
    splittable[n] = True
    for i in range(n - 1, -1, -1):
        for length in range(min(_MAX_SYLLABLE, n - i), 0, -1):
            if splittable[i + length] and letters[i : i + length] in _SYLLABLES:
                choice[i] = length
                splittable[i] = True
                break
    if not splittable[0]:
        return None
    out: list[str] = []
    i = 0
    while i < n:
        out.append(letters[i : i + choice[i]])
        i += choice[i]
    return tuple(out)


@lru_cache(maxsize=262144)  # words of a language repeat: "the", "history", "china" …
def _word_syllables(word: str) -> tuple[str, ...] | None:
    """Syllables of one folded word typed in pinyin (tone digits and ' split it), or None."""
    if not _PINYIN_WORD_RE.fullmatch(word):
        return None
    out: list[str] = []
    for chunk in _PINYIN_SPLIT_RE.split(word.replace("v", "u")):
        if chunk:
            syl = segment_pinyin(chunk)
            if syl is None:
                return None
            out.extend(syl)
    return tuple(out) or None


def _han_run_pinyin(run: str) -> tuple[str | None, ...]:
    """Toneless syllables of a run of Han characters (None for a character with no reading).

    The run is cut into words with pypinyin's own segmenter and each word is read as a whole,
    so phrases get their reading (银行 → yin hang, 重庆 → chong qing). This is what
    ``lazy_pinyin`` does, with the words cached: they repeat far more than whole runs do.
    """
    from pypinyin.seg.mmseg import seg  # imported late: loading the dictionaries takes a while

    out: list[str | None] = []
    for word in seg.cut(run):
        out.extend(_han_word_pinyin(word))
    return tuple(out) if len(out) == len(run) else _han_word_pinyin(run)


@lru_cache(maxsize=262144)
def _han_word_pinyin(word: str) -> tuple[str | None, ...]:
    from pypinyin import lazy_pinyin

    read = lazy_pinyin(word)
    if len(read) != len(word):
        # A character without a reading comes back glued to its neighbours: read one by one.
        read = [lazy_pinyin(ch)[0] for ch in word]
    out: list[str | None] = []
    for syl in read:
        s = fold(syl).replace("v", "u")  # ü is written v by pypinyin; ê folds to e
        out.append(s if s in _SYLLABLES else None)
    return tuple(out)


def _pinyin_bigrams(chain: list[str | None]) -> list[str]:
    out = []
    for a, b in itertools.pairwise(chain):
        if a and b:
            out.append(f"{PINYIN_MARK}{a}{PINYIN_MARK}{b}")
    return out


# --- tokens ------------------------------------------------------------------------------


class _Piece(NamedTuple):  # a tuple: built for every word of every record, so it must be cheap
    kind: str  # "cjk", "num", "word"
    text: str
    start: int
    end: int


def _pieces(folded: str) -> list[_Piece]:
    if folded.isascii():
        return [
            _Piece(m.lastgroup or "word", m.group(), *m.span())
            for m in _ASCII_TOKEN_RE.finditer(folded)
        ]
    return _pieces_general(folded)


def _pieces_general(folded: str) -> list[_Piece]:
    out: list[_Piece] = []
    for m in _TOKEN_RE.finditer(folded):
        text = m.group()
        if m.lastgroup == "cjk" and not text.isalnum():
            # Code points of the CJK blocks that this Python's Unicode tables do not know yet
            # are not letters: leave them out, so every token stays letters and digits.
            for sub in re.finditer(r"[^\W_]+", text):
                out.append(
                    _Piece("cjk", sub.group(), m.start() + sub.start(), m.start() + sub.end())
                )
            continue
        out.append(_Piece(m.lastgroup or "word", text, m.start(), m.end()))
    return out


def _bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _joined(num: str) -> str:
    return _NON_TOKEN_CHARS_RE.sub("", num)


def _num_parts(num: str) -> list[str]:
    return [p for p in re.split(f"[{_DASHES}]", num) if p]


def _merge_spaced_cjk(folded: str, pieces: list[_Piece]) -> list[_Piece]:
    """CJK runs apart only by spaces are one run: "中医 基础" is bigrammed as 中医基础, so a
    phrase matches however the spaces fall."""
    out: list[_Piece] = []
    for p in pieces:
        if out and p.kind == "cjk" and out[-1].kind == "cjk":
            last = out[-1]
            if folded[last.end : p.start].isspace():
                out[-1] = _Piece("cjk", last.text + p.text, last.start, p.end)
                continue
        out.append(p)
    return out


def _separated(folded: str, prev: _Piece, cur: _Piece) -> bool:
    """Only spaces and punctuation between two pieces. Everything between pieces is that,
    except the underscore (a word character that no piece takes)."""
    return "_" not in folded[prev.end : cur.start]


def _chains(folded: str, pieces: list[_Piece]) -> list[list[_Piece]]:
    """Groups of consecutive pieces with only spaces or punctuation between them."""
    groups: list[list[_Piece]] = []
    for p in pieces:
        if groups:
            prev = groups[-1][-1]
            if _separated(folded, prev, p):
                groups[-1].append(p)
                continue
        groups.append([p])
    return groups


def index_tokens(text: str, *, pinyin: bool = True) -> list[str]:
    """The tokens stored for a text: the primary stream, then the secondary tokens."""
    if not text:
        return []
    folded = fold(text)
    pieces = _pieces(folded)
    primary: list[str] = []
    secondary: list[str] = []
    prev: _Piece | None = None
    for p in _merge_spaced_cjk(folded, pieces):
        if p.kind == "cjk":
            if prev is not None and prev.kind == "cjk" and _separated(folded, prev, p):
                # Across punctuation only as a secondary token: 中医基础 finds 中医：基础.
                secondary.append(prev.text[-1] + p.text[0])
            if len(p.text) == 1:
                primary.append(p.text)
            else:
                primary.extend(_bigrams(p.text))
                secondary.extend(p.text)
        elif p.kind == "num":
            primary.append(_joined(p.text))
            secondary.extend(_num_parts(p.text))
        else:
            primary.append(p.text)
        prev = p
    if pinyin:
        secondary.extend(_pinyin_from_pieces(folded, pieces))
    return primary + secondary


def pinyin_tokens(text: str) -> list[str]:
    """Pinyin tokens of a text: bigrams of toneless syllables (``0zhong0yi``).

    Han characters are read with pypinyin; Latin words that are pinyin (romanised records:
    "Zhongguo li shi") are split into syllables too, so both scripts give the same tokens.
    Chains run across spaces and punctuation but not across other words or numbers.
    """
    folded = fold(text)
    return _pinyin_from_pieces(folded, _pieces(folded))


def _pinyin_from_pieces(folded: str, pieces: list[_Piece]) -> list[str]:
    out: list[str] = []
    for group in _chains(folded, pieces):
        chain: list[str | None] = []
        for p in group:
            if p.kind == "cjk":
                if _HAN_RE.search(p.text):
                    chain.extend(_cjk_run_syllables(p.text))
                else:
                    out.extend(_pinyin_bigrams(chain))
                    chain = []
            elif p.kind == "word":
                syl = _word_syllables(p.text)
                if syl is None:
                    out.extend(_pinyin_bigrams(chain))
                    chain = []
                else:
                    chain.extend(syl)
            else:
                out.extend(_pinyin_bigrams(chain))
                chain = []
        out.extend(_pinyin_bigrams(chain))
    return out


def _cjk_run_syllables(run: str) -> list[str | None]:
    """Syllables for a CJK run, None for kana/hangul and for Han characters without reading."""
    out: list[str | None] = []
    start = 0
    for m in _HAN_RE.finditer(run):
        out.extend([None] * (m.start() - start))
        start = m.end()
    out.extend([None] * (len(run) - start))
    # Read maximal Han sub-runs together so pypinyin can use its phrase readings.
    for m in re.finditer(f"[{_HAN_RANGES}]+", run):
        out[m.start() : m.end()] = _han_run_pinyin(m.group())
    return out


def query_tokens(text: str, *, phrase: bool = False) -> list[str]:
    """Tokens a query text must find (all of them): words, joined numbers, CJK bigrams.

    A CJK run of one character gives that character, which the index holds as a secondary
    token of every run. For a phrase, CJK runs apart only by spaces are read as one run, as
    ``index_tokens`` does. No pinyin here: see ``pinyin_query_tokens``.
    """
    if not text:
        return []
    folded = fold(text)
    pieces = _pieces(folded)
    out: list[str] = []
    for p in _merge_spaced_cjk(folded, pieces) if phrase else pieces:
        if p.kind == "cjk":
            out.extend([p.text] if len(p.text) == 1 else _bigrams(p.text))
        elif p.kind == "num":
            out.append(_joined(p.text))
        else:
            out.append(p.text)
    return out


def pinyin_query_tokens(text: str) -> list[str]:
    """The text read as pinyin: tokens that must all be present, or [] if it is not pinyin.

    "zhong yi", "zhongyi", "Zhōng yī", "zhong1 yi1" and "zhong1yi1" all give ``0zhong0yi``.
    Runs of pinyin words give syllable bigrams; the other words and numbers of the text stay
    as they are. Only a run of at least two syllables counts as pinyin: a single syllable
    ("long", "men") is far more often an English word, and as pinyin it would match thousands
    of homophones. [] when nothing in the text reads as pinyin of two syllables or more.
    """
    folded = fold(text)
    pieces = _pieces(folded)
    out: list[str] = []
    found = False
    for group in _chains(folded, pieces):
        run: list[str] = []
        run_words: list[str] = []

        def flush(run: list[str], run_words: list[str]) -> bool:
            if len(run) >= 2:
                out.extend(_pinyin_bigrams(list(run)))
                return True
            out.extend(run_words)
            return False

        for p in group:
            syl = _word_syllables(p.text) if p.kind == "word" else None
            if syl is not None:
                run.extend(syl)
                run_words.append(p.text)
                continue
            found = flush(run, run_words) or found
            run, run_words = [], []
            if p.kind == "cjk":
                out.extend([p.text] if len(p.text) == 1 else _bigrams(p.text))
            elif p.kind == "num":
                out.append(_joined(p.text))
            else:
                out.append(p.text)
        found = flush(run, run_words) or found
    return out if found else []


# --- standard numbers --------------------------------------------------------------------


def _digits(value: str) -> str:
    return re.sub(r"[^0-9xX]", "", unicodedata.normalize("NFKC", value)).upper()


def isbn_key(value: str) -> str:
    """The canonical form of an ISBN for index and query: ISBN-13 digits when the number is a
    valid ISBN-10 or ISBN-13 (hyphens, spaces and the check digit's case do not matter),
    otherwise just its digits (and X), so a cancelled or mistyped number still finds itself."""
    digits = _digits(value)
    if len(digits) in (10, 13) and _isbn.is_valid(digits):
        return _isbn.to_isbn13(digits)
    return digits


def isbn_variants(value: str) -> list[str]:
    """Every digit form of an ISBN: ISBN-13 first, then the ISBN-10 when there is one (978
    prefix). For querying systems that index only one form (Z39.50 targets)."""
    digits = _digits(value)
    if not (len(digits) in (10, 13) and _isbn.is_valid(digits)):
        return [digits] if digits else []
    out = [_isbn.to_isbn13(digits)]
    if out[0].startswith("978"):
        out.append(_isbn.to_isbn10(out[0]))
    return out


def issn_key(value: str) -> str:
    """ISSN digits without the hyphen, check digit X upper-case."""
    return _digits(value)


def looks_like_isbn(value: str) -> bool:
    digits = _digits(value)
    return len(digits) in (10, 13) and _isbn.is_valid(digits)


def looks_like_issn(value: str) -> bool:
    digits = _digits(value)
    return len(digits) == 8 and _issn.is_valid(digits)


# --- languages ---------------------------------------------------------------------------

# What readers type for a language → the ISO 639-2/B code the records carry.
_LANGUAGES = {
    "chi": ("zh", "zho", "chi", "chinese", "中文", "汉语", "中", "汉", "华文"),
    "eng": ("en", "eng", "english", "英文", "英语", "英"),
    "jpn": ("ja", "jpn", "japanese", "日文", "日语", "日"),
    "kor": ("ko", "kor", "korean", "韩文", "朝鲜文", "韩语"),
    "fre": ("fr", "fra", "fre", "french", "法文", "法语"),
    "ger": ("de", "deu", "ger", "german", "德文", "德语"),
    "rus": ("ru", "rus", "russian", "俄文", "俄语"),
    "spa": ("es", "spa", "spanish", "西班牙文", "西班牙语"),
    "lat": ("la", "lat", "latin", "拉丁文"),
}
_LANGUAGE_ALIASES = {alias: code for code, aliases in _LANGUAGES.items() for alias in aliases}


def language_code(value: str) -> str:
    v = fold(value).strip()
    return _LANGUAGE_ALIASES.get(v, v)


# --- per-field matching ------------------------------------------------------------------

TEXT_FIELDS = frozenset({"any", "title", "author", "subject", "publisher"})
KEYWORD_FIELDS = frozenset({"isbn", "issn", "language", "classification", "member"})


def keyword(field: str, value: str) -> str:
    """The normalised whole value of a keyword field, the same at index and query time."""
    if field == "isbn":
        return isbn_key(value)
    if field == "issn":
        return issn_key(value)
    if field == "language":
        return language_code(value)
    if field == "member":
        return unicodedata.normalize("NFKC", value).strip().upper()
    # classification: CLC/DDC/LCC numbers compare without spaces, letters upper-case.
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", value)).upper()


@dataclass(frozen=True, slots=True)
class Alternative:
    """One way a query term can match: every token present in the field.

    ``adjacent``: in this order and next to each other (phrases). ``prefix``: the last token
    is a prefix (right truncation). ``pinyin``: this alternative reads the text as pinyin.
    """

    tokens: tuple[str, ...]
    adjacent: bool = False
    prefix: bool = False
    pinyin: bool = False


def alternatives(
    field: str, text: str, *, truncation: bool = False, phrase: bool = False
) -> tuple[Alternative, ...]:
    """How a ``Term``/``Phrase`` of the query tree matches; see the module docstring."""
    if field in KEYWORD_FIELDS:
        value = keyword(field, text)
        return (Alternative((value,), prefix=truncation),) if value else ()
    tokens = tuple(query_tokens(text, phrase=phrase))
    if not tokens:
        return ()
    # Truncation applies to a Latin or number last token; a CJK bigram is already whole.
    prefix = truncation and not is_cjk(tokens[-1][-1])
    out = [Alternative(tokens, adjacent=phrase and len(tokens) > 1, prefix=prefix)]
    if not truncation:
        py = tuple(pinyin_query_tokens(text))
        if py and py != tokens:
            out.append(Alternative(py, pinyin=True))
    return tuple(out)
