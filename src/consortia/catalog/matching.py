"""Clustering of source records: blocking keys, an explainable match decision, the choice of a
cluster for a new record, the merged display record, and the duplicates report.

Pure functions on :class:`~consortia.catalog.record.NormalizedRecord`; the database side
(``ingest.py``) stores keys, looks up candidate clusters by key and keeps what these return.

The decision is rules first, scores second. Conflicts that make two records different
manifestations even when everything else agrees (another edition, another volume, print vs
e-book, a facsimile reprint) are checked before any evidence for a match. Evidence then comes in
three strengths: a shared OCLC number or LCCN; a shared ISBN confirmed by the title; or title,
author, year and publisher agreeing without a shared identifier. Every decision carries the rule
that made it, the scores it used and short reasons, so a librarian can see why a record sits in
its cluster.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from consortia.catalog.record import NormalizedRecord
from consortia.catalog.textfold import (
    cn_number,
    fold,
    fold_name,
    fold_publisher,
    has_cjk,
    has_han_only,
    lccn_key,
    oclc_key,
    part_key,
    parts_conflict,
    pinyin_key,
    title_key,
)

__all__ = [
    "HARD_REFUSALS",
    "RULE_LABELS",
    "MatchDecision",
    "choose_cluster",
    "choose_cluster_by_features",
    "completeness",
    "decide",
    "duplicates_within_member",
    "features_from_json",
    "features_json",
    "match_features",
    "match_keys",
    "merge",
    "merge_into",
]

K = TypeVar("K")

# Rules, as stored in source_records.match_rule; the labels are msgids (locale/*/matching.po).
RULE_LABELS: dict[str, str] = {
    "oclc": "Same OCLC number",
    "lccn": "Same LCCN",
    "isbn+title": "Same ISBN and title",
    "isbn+author": "Same ISBN, author and year",
    "issn+title": "Same ISSN and title",
    "title+author+year+publisher": "Same title, author, year and publisher",
    "different-edition": "Different edition",
    "different-volume": "Different volume of a set",
    "different-material": "Different material (print, e-book, ...)",
    "reprint": "Reprint or facsimile of another manifestation",
    "isbn-reused": "Same ISBN used for another book or edition",
    "different-isbn": "Different ISBNs",
    "different-title": "Different title",
    "different-author": "Different author",
    "different-year": "Different year",
    "different-language": "Different language",
    "different-publisher": "Different publisher",
    "insufficient": "Too little in common to decide",
    "new-cluster": "No matching cluster",
}
MATCH_RULES = frozenset(
    {"oclc", "lccn", "isbn+title", "isbn+author", "issn+title", "title+author+year+publisher"}
)
# Refusals that keep a record out of a cluster even when its representative would take it:
# they come from explicit, conflicting data, never from missing data.
HARD_REFUSALS = frozenset(
    {"different-edition", "different-volume", "different-material", "reprint", "different-language"}
)
# Rules strong enough to put a second record of the same member into a cluster.
_IDENTIFIER_RULES = frozenset({"oclc", "lccn", "isbn+title", "isbn+author", "issn+title"})


@dataclass(frozen=True)
class MatchDecision:
    same: bool
    rule: str
    score: float  # 0..1, confidence that the two describe one manifestation
    scores: dict[str, float] = field(default_factory=dict)  # 0..100 per compared element
    reasons: list[str] = field(default_factory=list)  # short, language-neutral facts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- features

# An ISBN given for the whole set or series is shared by every volume: it identifies nothing.
_COLLECTIVE_ISBN = re.compile(r"\bset\b|\bser\b|\bseries\b|套|丛书|叢書")
# A volume designation written into the title proper instead of $n/$p (or 200$h).
_TITLE_PART_CJK = re.compile(
    r"[\s.,:;。，：]*[（(]?\s*(第?\s*[0-9０-９一二三四五六七八九十百]+\s*[卷册冊辑輯集部分编編篇]"
    r"|[（(]\s*[上中下]\s*[卷册冊编編集]?\s*[)）]|[上中下]\s*[卷册冊编編集]|续编|續編|续集|續集)"
    r"\s*[)）]?\s*$"
)
_TITLE_PART_LATIN = re.compile(
    r"[\s.,:;]+((?:v|vol|volume|pt|part|bd|band|book|bk|tome|t)\.?\s*(?:\d+|[ivxlc]+))\s*$",
    re.IGNORECASE,
)
_VOLUMES = re.compile(r"^(\d+)\s*v\b")
_LANG_UNKNOWN = frozenset({"", "und", "mul", "zxx", "   ", "|||"})
# Words of an edition statement that only count editions ("3rd ed.", "第2版").
_EDITION_NOISE = re.compile(
    r"\b(?:\d+(?:st|nd|rd|th|d|e|er|re|eme|a|o)?|ed|edn|edition|editions|eds|first|second|third|"
    r"fourth|fifth|sixth|seventh|eighth|ninth|tenth|new|the)\b|第|版|次|[0-9一二三四五六七八九十]+"
)
# Romanised Chinese publisher words ("Ren min chu ban she"), pinyin without spaces.
_CN_NUMERALS = re.compile("[〇零一二两三四五六七八九十百千]+")
_PINYIN_PUBLISHER_NOISE = re.compile(
    "chubanfaxing|chubanshe|chuban|youxianzerengongsi|youxiangongsi|gongsi|shuju|shudian|jituan"
)


@dataclass(slots=True)
class MatchFeatures:
    """What decide() compares, folded once per record. Stored with each source record
    (:func:`features_json`) so a join need not decode and fold a cluster's records again."""

    main: str
    full: str
    vmain: str
    vfull: str
    cjk: bool
    chinese: bool
    has_remainder: bool
    isbns: frozenset[str]
    oclc: frozenset[str]
    lccn: str
    issns: frozenset[str]
    authors: tuple[str, ...]
    responsibility: str
    publisher: str
    year: int | None
    edition_number: int | None
    edition: str
    part: str
    series_volume: str
    pages: int | None
    volumes: int | None
    material: str
    reproduction: bool
    language: str


def _split_title_part(title: str) -> tuple[str, str]:
    """("Title", "v. 2") from "Title. v. 2" or ("题名", "下册") from "题名（下册）"."""
    if not title:
        return title, ""
    m = (_TITLE_PART_CJK if has_cjk(title) else _TITLE_PART_LATIN).search(title)
    if m and m.start() > 0:
        return title[: m.start()], m.group(1)
    return title, ""


def match_features(rec: NormalizedRecord) -> MatchFeatures:
    title, part = rec.title, rec.part
    if not part:
        title, part = _split_title_part(title)
    main = title_key(title, 200)
    full = title_key(f"{title} {rec.remainder}", 300) if rec.remainder else main
    vmain = vfull = ""
    if rec.title_vernacular:
        # 245 $a/$b are not split in the vernacular: the 880 holds them together.
        vt, vpart = _split_title_part(rec.title_vernacular)
        if not part:
            part = vpart
        vfull = title_key(vt, 300)
        vmain = vfull
    cjk = has_cjk(main) or bool(vmain and has_cjk(vmain))
    langs = rec.languages
    chinese = ("chi" in langs or "zho" in langs) or (
        not langs and (has_han_only(main) or has_han_only(vmain))
    )
    authors: list[str] = []
    for n in rec.names[:4]:
        if n.name:
            authors.append(fold_name(n.name))
        if n.vernacular:
            authors.append(fold_name(n.vernacular))
    extent = fold(rec.extent) if rec.extent else ""
    vm = _VOLUMES.match(extent)
    isbns = frozenset(
        i.isbn13
        for i in rec.isbns
        if i.valid and i.isbn13 and not _COLLECTIVE_ISBN.search(i.qualifier.lower())
    )
    return MatchFeatures(
        main=main,
        full=full,
        vmain=vmain,
        vfull=vfull,
        cjk=cjk,
        chinese=chinese,
        has_remainder=bool(rec.remainder.strip()),
        isbns=isbns,
        oclc=frozenset(k for k in (oclc_key(o) for o in rec.oclc) if k),
        lccn=lccn_key(rec.lccn) if rec.lccn else "",
        issns=frozenset(s.replace("-", "").upper() for s in rec.issns if s),
        authors=tuple(a for a in authors if a),
        responsibility=fold(rec.responsibility) if rec.responsibility else "",
        publisher=fold_publisher(rec.publisher) if rec.publisher else "",
        year=rec.years[0] if rec.years else None,
        edition_number=rec.edition_number,
        edition=fold(rec.edition) if rec.edition else "",
        part=part_key(part) if part else "",
        series_volume=part_key(rec.series_volume) if rec.series_volume else "",
        pages=rec.pages,
        volumes=int(vm.group(1)) if vm else None,
        material=rec.material or "book",
        reproduction=rec.reproduction,
        language=langs[0] if langs and langs[0] not in _LANG_UNKNOWN else "",
    )


# The form of the stored features (source_records.features). Bump it whenever what
# match_features() derives changes (it or the textfold functions it calls): a stored form of
# another version is ignored and the features are derived from the record again.
FEATURES_VERSION = 1
_FEATURE_FIELDS = tuple(MatchFeatures.__slots__)
_SET_FIELDS = frozenset({"isbns", "oclc", "issns"})


def features_json(f: MatchFeatures) -> list[Any]:
    """The stored form of a record's features: a JSON list, its version first."""
    out: list[Any] = [FEATURES_VERSION]
    for name in _FEATURE_FIELDS:
        value = getattr(f, name)
        if name in _SET_FIELDS:
            value = sorted(value)
        elif name == "authors":
            value = list(value)
        out.append(value)
    return out


def features_from_json(value: Any) -> MatchFeatures | None:
    """The features of a stored form; None for one of another version or shape (derive them
    from the record instead)."""
    if (
        not isinstance(value, list)
        or len(value) != len(_FEATURE_FIELDS) + 1
        or value[0] != FEATURES_VERSION
    ):
        return None
    kwargs: dict[str, Any] = {}
    for name, item in zip(_FEATURE_FIELDS, value[1:], strict=True):
        if name in _SET_FIELDS:
            item = frozenset(item)
        elif name == "authors":
            item = tuple(item)
        kwargs[name] = item
    return MatchFeatures(**kwargs)


# --------------------------------------------------------------------------- keys


def match_keys(rec: NormalizedRecord) -> list[str]:
    """Blocking keys: records sharing one key are compared by :func:`decide`.

    - ``isbn:<13 digits>``, ``issn:<8>``, ``lccn:<normalised>``, ``oclc:<digits>``;
    - ``title:<folded title>|<year>`` for the title proper, for the title with its subtitle and
      for the vernacular (880) form; also with the year before, so a copyright year and a
      printing year one apart still meet (``|`` alone when the year is unknown);
    - ``py:<toneless pinyin>|<year>`` for Chinese records, so romanised and vernacular titles
      meet;
    - ``ta:<author surname>|<initials of the title>`` so a typo in the title or the year does not
      keep two copies of one book apart when they have no identifier in common.

    Each key is at most 200 characters (``match_keys.key``).
    """
    keys: list[str] = []
    seen: set[str] = set()

    def add(key: str) -> None:
        if key not in seen:
            seen.add(key)
            keys.append(key)

    for i in rec.isbns:
        if i.valid and i.isbn13:
            add("isbn:" + i.isbn13)
    for s in rec.issns:
        if s:
            add("issn:" + s.replace("-", "").upper())
    if rec.lccn:
        k = lccn_key(rec.lccn)
        if k:
            add("lccn:" + k)
    for o in rec.oclc:
        k = oclc_key(o)
        if k:
            add("oclc:" + k)
    y = rec.years[0] if rec.years else None
    years = [str(y), str(y - 1)] if y is not None else [""]
    langs = rec.languages
    chinese_lang = "chi" in langs or "zho" in langs
    main = title_key(rec.title)
    forms = [main]
    if rec.remainder:
        forms.append(title_key(f"{rec.title} {rec.remainder}"))
    if rec.title_vernacular:
        forms.append(title_key(rec.title_vernacular))
    for k in forms:
        if not k:
            continue
        for yy in years:
            add(f"title:{k}|{yy}")
        if chinese_lang or (not langs and has_han_only(k)):
            p = pinyin_key(k)[:60]
            if p:
                add(f"py:{p}|{years[0]}")
    if main and rec.names:
        name = fold_name(rec.names[0].name)
        surname = name.split(" ", 1)[0] if name else ""
        if surname:
            # CJK titles have no words: their first two characters stand for the initials.
            initials = main[:2] if has_cjk(main) else "".join(w[0] for w in main.split()[:5])
            add(f"ta:{surname[:40]}|{initials}")
    return keys


# --------------------------------------------------------------------------- scores


def _ratio(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if a == b:
        return 100.0
    r = float(fuzz.ratio(a, b))
    if " " in a or " " in b:
        # Word order differs between catalogues ("Mark Twain" / "Twain, Mark").
        r = max(r, float(fuzz.token_sort_ratio(a, b)))
    return r


def _close(x: str, y: str) -> bool:
    """Two words that are the same word, give or take one typo: a letter dropped, added,
    changed, or two letters swapped (two typos in long words). Numbers must be equal."""
    if x == y:
        return True
    if x.isdigit() or y.isdigit() or min(len(x), len(y)) < 4:
        return False
    d = OSA.distance(x, y)
    return d <= 1 or (d == 2 and min(len(x), len(y)) >= 8)


def _unmatched(a: list[str], b: list[str]) -> list[str]:
    exact = set(b)
    rest = [v for v in b if len(v) >= 4 and not v.isdigit()]
    return [w for w in a if w not in exact and not any(_close(w, v) for v in rest)]


def _word_conflict(a: str, b: str) -> bool:
    """Each title has a word the other lacks ("Jewish festival tales" / "Christian festival
    tales", "Old Testament" / "New Testament"): another book, not a typo or a dropped word."""
    if a == b or not a or not b or has_cjk(a) or has_cjk(b):
        return False
    wa, wb = a.split(), b.split()
    return bool(_unmatched(wa, wb)) and bool(_unmatched(wb, wa))


def _typo_score(a: str, b: str) -> float:
    """Titles equal word by word but for one typo score 95, whatever their length."""
    wa, wb = a.split(), b.split()
    if len(wa) != len(wb) or not wa:
        return 0.0
    diffs = [(x, y) for x, y in zip(wa, wb, strict=True) if x != y]
    if len(diffs) == 1 and _close(*diffs[0]):
        return 95.0
    return 0.0


def _title_agreement(a: str, b: str) -> float:
    """max(_ratio, _typo_score): equal titles need neither (a copy of the same record is the
    common case), and a ratio of 95 or more is never beaten by the typo score."""
    if a == b:
        return 100.0 if a else 0.0
    r = _ratio(a, b)
    return r if r >= 95.0 else max(r, _typo_score(a, b))


def _title_forms(f: MatchFeatures) -> list[tuple[str, str, bool]]:
    forms = [(f.main, f.full, f.has_remainder)]
    if f.vmain:
        forms.append((f.vmain, f.vfull, False))
    return forms


def _title_score(fa: MatchFeatures, fb: MatchFeatures) -> tuple[float, str, bool]:
    """Best agreement between the title forms of two records, which forms agreed, and whether
    the best-agreeing forms have a word conflict."""
    best, how, conflict = 0.0, "", False
    for ma, fua, rema in _title_forms(fa):
        ca = has_cjk(ma)
        for mb, fub, remb in _title_forms(fb):
            if not ma or not mb or ca != has_cjk(mb):
                continue
            s = _title_agreement(fua, fub)
            c = _word_conflict(fua, fub)
            # Title proper alone counts unless both carry a subtitle (then it must agree too,
            # but one cut short, as length limits of some systems do, is no disagreement).
            if not (rema and remb) or fua.startswith(fub) or fub.startswith(fua):
                sm = _title_agreement(ma, mb)
                cm = _word_conflict(ma, mb)
                if sm > s or (sm == s and c and not cm):
                    s = sm
                c = c and cm
            if s > best or (s == best and conflict and not c):
                best, how, conflict = s, ("vernacular" if ca else "title"), c
    if best < 90 and (fa.chinese or fb.chinese) and fa.cjk != fb.cjk:
        # Romanised (pinyin) title against a vernacular one: compare as toneless pinyin.
        cjk_side, rom_side = (fa, fb) if fa.cjk else (fb, fa)
        cjk_title = cjk_side.vmain if cjk_side.vmain else cjk_side.main
        pa = pinyin_key(cjk_title)
        for rom in (rom_side.full, rom_side.main):
            s = _ratio(pa, rom.replace(" ", ""))
            if s > best:
                best, how, conflict = s, "pinyin", False
    return best, how, conflict


def _cross_script(a: str, b: str) -> float | None:
    """Chinese script against its romanisation, as toneless pinyin; None if not comparable."""
    ca, cb = has_cjk(a), has_cjk(b)
    if ca == cb:
        return None
    han, rom = (a, b) if ca else (b, a)
    if not has_han_only(han):
        return None
    return float(fuzz.ratio(pinyin_key(han), rom.replace(" ", "")))


def _name_pair(a: str, b: str, chinese: bool) -> float | None:
    if a == b:
        return 100.0
    ca, cb = has_cjk(a), has_cjk(b)
    if ca != cb:
        return _cross_script(a, b) if chinese else None
    if ca:
        return float(fuzz.ratio(a.replace(" ", ""), b.replace(" ", "")))
    ta, tb = a.split(), b.split()
    whole = _ratio(a, b)
    if not ta or not tb:
        return whole
    # "Hardy, G. H." against "Hardy, Godfrey Harold": the surname must agree and the initials
    # must not contradict.
    sur = float(fuzz.ratio(ta[0], tb[0]))
    ia = [w[0] for w in ta[1:]]
    ib = [w[0] for w in tb[1:]]
    if ia and ib:
        n = min(len(ia), len(ib))
        initials_ok = ia[:n] == ib[:n]
    else:
        initials_ok = True
    return max(whole, sur if initials_ok else sur * 0.6)


def _author_score(fa: MatchFeatures, fb: MatchFeatures) -> float | None:
    chinese = fa.chinese or fb.chinese
    if fa.authors and fb.authors:
        scores = [
            s
            for x in fa.authors[:4]
            for y in fb.authors[:4]
            if (s := _name_pair(x, y, chinese)) is not None
        ]
        return max(scores) if scores else None
    # One side has no name headings (copy cataloguing often drops 1XX/7XX): look for a
    # heading's surname in the other's statement of responsibility.
    named, other = (fa, fb) if fa.authors else (fb, fa)
    if named.authors and other.responsibility:
        for a in named.authors[:4]:
            sur = a.split()[0] if " " in a else a
            if len(sur) >= 2 and sur in other.responsibility:
                return 95.0
        return None
    return None


def _publisher_score(fa: MatchFeatures, fb: MatchFeatures) -> float | None:
    a, b = fa.publisher, fb.publisher
    if not a or not b:
        return None
    if a == b:
        return 100.0
    ca, cb = has_cjk(a), has_cjk(b)
    if ca != cb:
        if not (fa.chinese or fb.chinese):
            return None
        han, rom = (a, b) if ca else (b, a)
        if not has_han_only(han):
            return None
        rom = _PINYIN_PUBLISHER_NOISE.sub("", rom.replace(" ", ""))
        py = _PINYIN_PUBLISHER_NOISE.sub("", pinyin_key(han))
        # One side may name a co-publisher the other leaves out: the shorter one must be in it.
        return _contained(py, rom)
    if ca:
        return _contained(a.replace(" ", ""), b.replace(" ", ""))
    return float(fuzz.token_set_ratio(a, b))


def _contained(a: str, b: str) -> float:
    """Similarity of two unspaced strings where the shorter may be part of the longer."""
    if not a or not b:
        return 0.0
    r = float(fuzz.ratio(a, b))
    if min(len(a), len(b)) >= 4:
        r = max(r, float(fuzz.partial_ratio(a, b)))
    return r


def _year_score(fa: MatchFeatures, fb: MatchFeatures) -> float | None:
    if fa.year is None or fb.year is None:
        return None
    d = abs(fa.year - fb.year)
    return 100.0 if d == 0 else 50.0 if d == 1 else 0.0


def _pages_score(fa: MatchFeatures, fb: MatchFeatures) -> float | None:
    if not fa.pages or not fb.pages:
        return None
    d = abs(fa.pages - fb.pages)
    big = max(fa.pages, fb.pages)
    if d <= max(2, big * 0.03):
        return 100.0
    if d <= big * 0.10:
        return 60.0
    return 0.0


def _edition_conflict(fa: MatchFeatures, fb: MatchFeatures) -> bool:
    """Both state an edition and the statements name different ones ("8th ed." and "8th ed.,
    Brief ed."; "Rev. ed." and "Large print ed."), beyond the edition number.

    Words on both sides that the other lacks always conflict; words on one side only conflict
    when they are a short qualifier naming a version ("Brief", "Large print", "American"), not
    a longer description of the same edition ("with additional illustrations in photogravure").
    """
    a, b = fa.edition, fb.edition
    if not a or not b or a == b:
        return False
    if fa.chinese or fb.chinese:
        x = _cross_script(_arabic(a), _arabic(b))
        if x is not None:
            return x < 70
    if has_cjk(a) != has_cjk(b):
        return False
    wa = _EDITION_NOISE.sub(" ", a).split()
    wb = _EDITION_NOISE.sub(" ", b).split()
    if has_cjk(a):
        return "".join(wa) != "".join(wb)
    ua, ub = _unmatched(wa, wb), _unmatched(wb, wa)
    if ua and ub:
        return True
    extra = [w for w in (ua or ub) if w not in _EDITION_FILLER]
    return 0 < len(extra) <= 2


_EDITION_FILLER = frozenset(["with", "and", "in", "of", "by", "a", "an", "for", "the"])


def _one_year_off_ok(
    title: float, author: float | None, publisher: float | None, pages: float | None
) -> bool:
    """A copyright year against a printing year: one year apart is the same book only when
    everything else agrees exactly, page count included."""
    return (
        title >= 95
        and author is not None
        and author >= 90
        and publisher is not None
        and publisher >= 90
        and pages == 100.0
    )


def _arabic(text: str) -> str:
    """Chinese numerals as digits ("三版" → "3版"), so "3 ban" and "三版" compare."""
    if not has_cjk(text):
        return text
    return _CN_NUMERALS.sub(lambda m: str(cn_number(m.group(0)) or m.group(0)), text)


_WEIGHTS = {"title": 0.4, "author": 0.2, "year": 0.15, "publisher": 0.15, "pages": 0.1}


def _similarity(scores: dict[str, float]) -> float:
    num = sum(_WEIGHTS[k] * v for k, v in scores.items() if k in _WEIGHTS)
    den = sum(_WEIGHTS[k] for k in scores if k in _WEIGHTS)
    return round(num / den / 100.0, 4) if den else 0.0


# --------------------------------------------------------------------------- decision


def decide(a: NormalizedRecord, b: NormalizedRecord) -> MatchDecision:
    """Do ``a`` and ``b`` describe the same manifestation? With the rule and scores why."""
    return _decide(match_features(a), match_features(b))


def _decide(fa: MatchFeatures, fb: MatchFeatures) -> MatchDecision:
    reasons: list[str] = []
    scores: dict[str, float] = {}
    title, how, title_conflict = _title_score(fa, fb)
    scores["title"] = round(title, 1)
    if how and how != "title":
        reasons.append(f"title-form={how}")
    if title_conflict:
        reasons.append("title-words-differ")
    author = _author_score(fa, fb)
    if author is not None:
        scores["author"] = round(author, 1)
    publisher = _publisher_score(fa, fb)
    if publisher is not None:
        scores["publisher"] = round(publisher, 1)
    year = _year_score(fa, fb)
    if year is not None:
        scores["year"] = year
    pages = _pages_score(fa, fb)
    if pages is not None:
        scores["pages"] = pages
    sim = _similarity(scores)

    def refuse(rule: str, *why: str) -> MatchDecision:
        return MatchDecision(False, rule, sim, scores, reasons + list(why))

    shared_isbn = fa.isbns & fb.isbns
    shared_oclc = fa.oclc & fb.oclc
    same_lccn = bool(fa.lccn) and fa.lccn == fb.lccn
    if shared_isbn:
        reasons.append("isbn=" + ",".join(sorted(shared_isbn)))
    if shared_oclc:
        reasons.append("oclc=" + ",".join(sorted(shared_oclc)))
    if same_lccn:
        reasons.append("lccn=" + fa.lccn)

    # 1. Hard conflicts: explicit data that says these are two manifestations.
    if fa.material != fb.material:
        return refuse("different-material", f"material:{fa.material}≠{fb.material}")
    if fa.reproduction != fb.reproduction:
        return refuse("reprint", "reproduction:one-side")
    if parts_conflict(fa.part, fb.part):
        return refuse("different-volume", f"part:{fa.part}≠{fb.part}")
    if parts_conflict(fa.series_volume, fb.series_volume):
        return refuse("different-volume", f"series-volume:{fa.series_volume}≠{fb.series_volume}")
    ea, eb = fa.edition_number, fb.edition_number
    if ea is not None and eb is not None and ea != eb:
        return refuse("different-edition", f"edition:{ea}≠{eb}")
    if fa.language and fb.language and fa.language != fb.language:
        return refuse("different-language", f"language:{fa.language}≠{fb.language}")
    if fa.volumes is not None and fb.volumes is not None and fa.volumes != fb.volumes:
        return refuse("different-volume", f"volumes:{fa.volumes}≠{fb.volumes}")

    # Soft conflicts: one side says more than the other. Only an identifier outweighs them.
    soft: list[tuple[str, str]] = []
    if bool(fa.part) != bool(fb.part):
        soft.append(("different-volume", "part:one-side"))
    if (ea or 1) != (eb or 1) or (
        (ea is None and eb is None) and bool(fa.edition) != bool(fb.edition)
    ):
        soft.append(("different-edition", "edition:one-side"))
    if _edition_conflict(fa, fb):
        soft.append(("different-edition", "edition-statements-differ"))
    if (fa.volumes or 1) > 1 and fb.volumes is None and fb.pages:
        soft.append(("different-volume", "volumes:one-side"))
    if (fb.volumes or 1) > 1 and fa.volumes is None and fa.pages:
        soft.append(("different-volume", "volumes:one-side"))
    ydiff = abs(fa.year - fb.year) if fa.year is not None and fb.year is not None else None

    # 2. Identifiers.
    if shared_oclc or same_lccn:
        if title >= 60 and (ydiff is None or ydiff <= 1):
            rule = "oclc" if shared_oclc else "lccn"
            return MatchDecision(True, rule, max(sim, 0.97), scores, reasons)
        return refuse("different-title" if title < 60 else "different-year")
    if shared_isbn:
        if title < 60 and how != "pinyin":
            return refuse("isbn-reused", "title-differs")
        if title_conflict and title < 95:
            return refuse("isbn-reused", "title-differs")
        if ydiff is not None and ydiff > 1:
            return refuse("isbn-reused", f"year:{fa.year}≠{fb.year}")
        if pages == 0.0:
            return refuse("isbn-reused", "pages-differ")
        if author is not None and author < 50 and title < 95:
            return refuse("isbn-reused", "author-differs")
        if title >= 80:
            return MatchDecision(True, "isbn+title", max(sim, 0.9), scores, reasons)
        if title >= 70 and author is not None and author >= 90 and ydiff == 0:
            return MatchDecision(True, "isbn+author", max(sim, 0.85), scores, reasons)
        return refuse("isbn-reused", "title-differs")

    shared_issn = fa.issns & fb.issns
    if shared_issn:
        # A serial (or a monograph in a numbered series, told apart by its volume above).
        reasons.append("issn=" + ",".join(sorted(shared_issn)))
        if title >= 85 and not title_conflict and not soft:
            return MatchDecision(True, "issn+title", max(sim, 0.9), scores, reasons)

    # 3. No shared identifier: title, author, year and publisher together.
    if soft:
        rule, why = soft[0]
        return refuse(rule, why)
    if fa.isbns and fb.isbns:
        # Each has ISBNs and none is shared: another binding, edition or book.
        return refuse("different-isbn", "isbn-disjoint")
    if fa.issns and fb.issns and not (fa.issns & fb.issns):
        return refuse("different-isbn", "issn-differs")
    if title < 90 or title_conflict:
        return refuse("different-title")
    if ydiff is None:
        # Without both years a title match is too weak to cluster on.
        return refuse("insufficient", "year:missing")
    if ydiff > 1 or (ydiff == 1 and not _one_year_off_ok(title, author, publisher, pages)):
        # Same title and author, another year: an unstated new edition or a reprint.
        if publisher is not None and publisher < 60:
            return refuse("reprint", f"year:{fa.year}≠{fb.year}")
        return refuse("different-year", f"year:{fa.year}≠{fb.year}")
    if ydiff == 1:
        reasons.append(f"year:{fa.year}~{fb.year}")
    if author is None:
        if (fa.authors and fb.responsibility) or (fb.authors and fa.responsibility):
            # One side has a name the other's statement of responsibility does not mention.
            return refuse("insufficient", "author:one-side")
        if publisher is None or publisher < 85 or title < 95:
            return refuse("insufficient", "no-author")
    elif author < 85:
        return refuse("different-author")
    if publisher is not None and publisher < 60:
        return refuse("different-publisher")
    if pages is not None and pages == 0.0:
        return refuse("different-edition", "pages-differ")
    if (
        publisher is None
        and pages is None
        and not (title >= 98 and author is not None and author >= 95)
    ):
        # Nothing but a title, an author and a year: only an exact agreement will do.
        return refuse("insufficient", "publisher+pages:missing")
    return MatchDecision(True, "title+author+year+publisher", sim, scores, reasons)


# --------------------------------------------------------------------------- clusters


ClusterRecord = NormalizedRecord | tuple[str, NormalizedRecord]
# How many of a cluster's records besides its representative may veto a joining record.
CHECK_LIMIT = 20


def _unpack(item: ClusterRecord) -> tuple[str | None, NormalizedRecord]:
    if isinstance(item, tuple):
        return item[0], item[1]
    return None, item


def choose_cluster(
    rec: NormalizedRecord,
    candidates: Sequence[tuple[K, Sequence[ClusterRecord]]],
    *,
    member: str | None = None,
    check_limit: int = CHECK_LIMIT,
) -> tuple[K | None, MatchDecision | None]:
    """The cluster ``rec`` should join, with the decision that put it there; ``(None, None)``
    when none fits (a new cluster).

    Each candidate is ``(cluster_id, records)``; the FIRST record is the cluster's
    representative, and ``rec`` must match it. The other records (up to ``check_limit``) may
    veto with a hard refusal (another edition, volume, material, a reprint), so a cluster does
    not drift by chaining. Records may be given as ``(member_code, record)``; with ``member``
    set, a cluster already holding a record of that member is joined only on identifier
    evidence (ISBN/OCLC/LCCN), which makes it a real duplicate in that member's catalogue;
    every record given counts for that, not only the ones that may veto.
    """
    unpacked = [(cid, [_unpack(item) for item in items]) for cid, items in candidates]
    return _choose(
        match_features(rec),
        [(cid, items[: 1 + check_limit]) for cid, items in unpacked],
        match_features,
        member,
        check_limit,
        {cid: {m for m, _ in items if m is not None} for cid, items in unpacked}
        if member is not None
        else None,
    )


def choose_cluster_by_features(
    fr: MatchFeatures,
    candidates: Sequence[tuple[K, Sequence[tuple[str | None, MatchFeatures]]]],
    *,
    member: str | None = None,
    holders: Mapping[K, Collection[str]] | None = None,
    check_limit: int = CHECK_LIMIT,
) -> tuple[K | None, MatchDecision | None]:
    """:func:`choose_cluster` on features already derived (or stored): each candidate's
    records as ``(member_code or None, features)``, the representative first. Only the first
    ``1 + check_limit`` of a cluster's records are looked at, so a join costs the same however
    many members hold the book; ``holders`` gives every member holding each cluster (its
    merged record's ``members``) for the rule on ``member``'s own records."""
    return _choose(fr, candidates, lambda f: f, member, check_limit, holders)


T = TypeVar("T")


def _choose(
    fr: MatchFeatures,
    candidates: Sequence[tuple[K, Sequence[tuple[str | None, T]]]],
    features_of: Callable[[T], MatchFeatures],
    member: str | None,
    check_limit: int,
    holders: Mapping[K, Collection[str]] | None = None,
) -> tuple[K | None, MatchDecision | None]:
    # The decision is a function of the two records' features: records that agree in all of
    # them (copies of one record, as members' catalogues mostly hold) are decided once.
    decided: list[tuple[MatchFeatures, MatchDecision]] = []

    def decide_with(other: T) -> MatchDecision:
        fo = features_of(other)  # only for records compared: a refused representative ends it
        for f, d in decided:
            if f is fo or f == fo:
                return d
        d = _decide(fr, fo)
        decided.append((fo, d))
        return d

    best: tuple[float, int, K, MatchDecision] | None = None
    for order, (cid, items) in enumerate(candidates):
        if not items:
            continue
        rep = items[0][1]
        d = decide_with(rep)
        if not d.same:
            continue
        vetoed = False
        same_member = member is not None and (
            member in holders.get(cid, ())
            if holders is not None
            else any(m == member for m, _ in items[: 1 + check_limit])
        )
        for _, other in items[1 : 1 + check_limit]:
            od = decide_with(other)
            if not od.same and od.rule in HARD_REFUSALS:
                vetoed = True
                break
        if vetoed:
            continue
        if same_member and d.rule not in _IDENTIFIER_RULES:
            continue
        key = (d.score, -order)
        if best is None or key > (best[0], best[1]):
            best = (d.score, -order, cid, d)
    if best is None:
        return None, None
    return best[2], best[3]


# --------------------------------------------------------------------------- merge


_COMPLETENESS_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("title", 3),
    ("remainder", 1),
    ("title_vernacular", 2),
    ("responsibility", 1),
    ("names", 2),
    ("publisher", 2),
    ("place", 1),
    ("years", 2),
    ("edition", 1),
    ("pages", 1),
    ("extent", 1),
    ("isbns", 2),
    ("lccn", 1),
    ("oclc", 1),
    ("languages", 1),
    ("subjects", 2),
    ("classifications", 2),
    ("series", 1),
)


def completeness(rec: NormalizedRecord) -> int:
    """How much a record says: the weight of its filled fields (used to pick the representative
    and the source of each merged field)."""
    return sum(w for name, w in _COMPLETENESS_WEIGHTS if getattr(rec, name))


_SCALARS = (
    "title",
    "remainder",
    "part",
    "responsibility",
    "publisher",
    "place",
    "edition",
    "edition_number",
    "pages",
    "extent",
    "lccn",
    "material",
    "series",
    "series_volume",
)


_SCRIPT_FIELDS = frozenset(
    {"remainder", "part", "responsibility", "publisher", "place", "edition", "series"}
)


def _source(member: str, rec: NormalizedRecord) -> dict[str, str]:
    return {"member": member, "record_id": rec.record_id}


_UNIONS: tuple[
    tuple[str, Callable[[Any], Any], Callable[[Any], Any], Callable[[Any], dict[str, Any]]], ...
] = (
    # The unions of merge() (and merge_into): (merged field, an entry's key, an item's key, an
    # entry from an item). The script form names the person across romanised and vernacular
    # records.
    (
        "isbns",
        lambda e: (e["isbn13"], e["valid"]),
        lambda i: (i.isbn13, i.valid),
        lambda i: {"isbn13": i.isbn13, "qualifier": i.qualifier, "valid": i.valid},
    ),
    (
        "issns",
        lambda e: e["value"].replace("-", "").upper(),
        lambda s: s.replace("-", "").upper(),
        lambda s: {"value": s},
    ),
    ("oclc", lambda e: oclc_key(e["value"]), oclc_key, lambda o: {"value": o}),
    ("languages", lambda e: e["value"], lambda v: v, lambda v: {"value": v}),
    ("subjects", lambda e: fold(e["value"]), fold, lambda v: {"value": v}),
    (
        "classifications",
        lambda e: (e["scheme"], e["value"].replace(" ", "").lower()),
        lambda c: (c.scheme, c.value.replace(" ", "").lower()),
        lambda c: {"scheme": c.scheme, "value": c.value},
    ),
    (
        "names",
        lambda e: fold_name(e["vernacular"] or e["name"]),
        lambda n: fold_name(n.vernacular or n.name),
        lambda n: {"name": n.name, "role": n.role, "kind": n.kind, "vernacular": n.vernacular},
    ),
)
_MERGED_FIELDS = frozenset(
    {*_SCALARS, "year", "title_romanised", "representative", "sources", "members"}
    | {name for name, *_ in _UNIONS}
)


def merge(records: Sequence[tuple[str, NormalizedRecord]]) -> dict[str, Any]:
    """The merged display record of a cluster, JSON-ready, with provenance.

    Each single-valued field is ``{"value", "member", "record_id"}`` taken from the most complete
    record that has it; ISBNs, ISSNs, OCLC numbers, names, subjects and classifications are the
    union of all records, each with the list of ``sources`` that gave it. For a Chinese book the
    display ``title`` is the vernacular (CNMARC 200 or MARC21 880) form and ``title_romanised``
    keeps the romanised one.
    """
    live = [(m, r) for m, r in records if not r.deleted] or list(records)
    if not live:
        return {}
    weight = {id(r): completeness(r) for _, r in live}
    ordered = sorted(live, key=lambda mr: (-weight[id(mr[1])], mr[0], mr[1].record_id))
    # A book with a title in Chinese (Japanese, Korean) script anywhere: its readers want the
    # script forms, so they win over romanised ones even from a less complete record.
    script_book = any(has_cjk(r.title) or has_cjk(r.title_vernacular) for _, r in live)
    out: dict[str, Any] = {}
    for name in _SCALARS:
        chosen: tuple[Any, str, NormalizedRecord] | None = None
        for m, r in ordered:
            value = getattr(r, name)
            if value in ("", None):
                continue
            if chosen is None:
                chosen = (value, m, r)
            if not (script_book and name in _SCRIPT_FIELDS):
                break
            if isinstance(value, str) and has_cjk(value):
                chosen = (value, m, r)
                break
        if chosen is not None:
            out[name] = {"value": chosen[0], **_source(chosen[1], chosen[2])}
    for m, r in ordered:
        if r.years:
            out["year"] = {"value": r.years[0], **_source(m, r)}
            break

    # Titles: the script form for display (a CNMARC 200 or a MARC21 245 written in the script
    # before an 880), the romanised form kept beside it.
    if script_book:
        in_title = [(r.title, m, r) for m, r in ordered if has_cjk(r.title)]
        in_880 = [(r.title_vernacular, m, r) for m, r in ordered if has_cjk(r.title_vernacular)]
        t, m, r = (in_title or in_880)[0]
        out["title"] = {"value": t, **_source(m, r)}
        remainder = out.get("remainder")
        if not in_title and remainder is not None and not has_cjk(str(remainder["value"])):
            # The 880 holds the whole title; a romanised subtitle does not belong beside it.
            out.pop("remainder")
        roman = next(
            ((r2.title, m2, r2) for m2, r2 in ordered if r2.title and not has_cjk(r2.title)), None
        )
        if roman is not None:
            out["title_romanised"] = {"value": roman[0], **_source(roman[1], roman[2])}

    for name, _, item_key, make in _UNIONS:
        found: dict[Any, dict[str, Any]] = {}
        for m, r in ordered:
            for item in getattr(r, name) or ():
                k = item_key(item)
                if not k:
                    continue
                entry = found.get(k)
                if entry is None:
                    entry = found[k] = {**make(item), "sources": []}
                entry["sources"].append(_source(m, r))
        out[name] = list(found.values())
    rep_m, rep_r = ordered[0]
    out["representative"] = _source(rep_m, rep_r)
    out["sources"] = [
        {**_source(m, r), "flavour": r.flavour, "completeness": weight[id(r)]} for m, r in ordered
    ]
    out["members"] = sorted({m for m, _ in live})
    return out


def merge_into(
    merged: dict[str, Any],
    member: str,
    rec: NormalizedRecord,
    record_of: Callable[[str, str], NormalizedRecord | None],
) -> dict[str, Any] | None:
    """The merged record of a cluster that ``rec`` (live, of ``member``) joins, made from the
    cluster's stored merged record (as :func:`merge` made it, read back from JSON) instead of
    from all its records: equal to ``merge`` of the cluster's records and ``rec``, at a cost that
    does not grow with the number of records. ``record_of(member, record_id)`` gives one of the
    cluster's records (or None) when the answer depends on it: for a book in CJK script, which
    of its title forms the display shows. None when the answer cannot be told without all the
    records (merge them instead): the book's first title in CJK script arrives, a subtitle set
    aside may come back, or the stored record is not of the form this code makes."""
    if rec.deleted or not merged.keys() <= _MERGED_FIELDS:
        return None
    try:
        return _merge_into(merged, member, rec, record_of)
    except (KeyError, TypeError, AttributeError):  # not of the form merge() makes
        return None


def _merge_into(
    merged: dict[str, Any],
    member: str,
    rec: NormalizedRecord,
    record_of: Callable[[str, str], NormalizedRecord | None],
) -> dict[str, Any] | None:
    sources: list[dict[str, Any]] = merged["sources"]
    rid = rec.record_id
    weight = completeness(rec)
    order = [(-s["completeness"], s["member"], s["record_id"]) for s in sources]
    if not order or any(m == member and r == rid for _, m, r in order):
        return None
    # The new record's place in merge()'s order (most complete first), and every source's place
    # once it is in.
    p = bisect.bisect_left(order, (-weight, member, rid))
    place = {(m, r): i + (i >= p) for i, (_, m, r) in enumerate(order)}
    place[(member, rid)] = p

    def at(entry: dict[str, Any]) -> int:
        return place[(entry["member"], entry["record_id"])]

    here = _source(member, rec)
    script_book = "title" in merged and has_cjk(merged["title"]["value"])
    if not script_book and (has_cjk(rec.title) or has_cjk(rec.title_vernacular)):
        return None  # a book in CJK script now: its display forms are chosen anew
    title_entry: dict[str, Any] = merged.get("title") or {}
    in_title = False  # the script form shown comes from a title proper, not an 880
    if script_book:
        shown = record_of(title_entry["member"], title_entry["record_id"])
        if shown is None:
            return None
        in_title = has_cjk(shown.title)
        if not in_title and has_cjk(rec.title) and "remainder" not in merged:
            return None  # a romanised subtitle set aside (or none) may now be shown

    def pick(value: Any, cur: dict[str, Any] | None, script: bool) -> Any:
        """merge()'s choice for one field: the first record's value in the order, or for a
        field in script the first in CJK script."""
        if value in ("", None):
            return cur
        if cur is not None:
            if script and has_cjk(cur["value"]):
                return {"value": value, **here} if has_cjk(value) and p < at(cur) else cur
            if not (script and isinstance(value, str) and has_cjk(value)) and p > at(cur):
                return cur
        return {"value": value, **here}

    out: dict[str, Any] = {}
    for name in _SCALARS:
        script = script_book and name in _SCRIPT_FIELDS
        chosen = pick(getattr(rec, name), merged.get(name), script)
        if chosen is not None:
            out[name] = chosen
    if rec.years:
        out["year"] = pick(rec.years[0], merged.get("year"), False)
    elif "year" in merged:
        out["year"] = merged["year"]

    if script_book:
        title = title_entry
        if has_cjk(rec.title):
            if not in_title or p < at(title_entry):
                title = {"value": rec.title, **here}
        elif has_cjk(rec.title_vernacular) and not in_title and p < at(title_entry):
            title = {"value": rec.title_vernacular, **here}
        out["title"] = title
        remainder = out.get("remainder")
        if not (in_title or has_cjk(rec.title)) and remainder and not has_cjk(remainder["value"]):
            out.pop("remainder")
        roman = merged.get("title_romanised")
        if rec.title and not has_cjk(rec.title) and (roman is None or p < at(roman)):
            roman = {"value": rec.title, **here}
        if roman is not None:
            out["title_romanised"] = roman

    for name, entry_key, item_key, make in _UNIONS:
        out[name] = _union_into(
            merged[name], getattr(rec, name), entry_key, item_key, make, here, p, at
        )
    out["representative"] = here if p == 0 else merged["representative"]
    out["sources"] = [
        *sources[:p],
        {**here, "flavour": rec.flavour, "completeness": weight},
        *sources[p:],
    ]
    out["members"] = sorted({*merged["members"], member})
    return out


def _union_into(
    entries: list[dict[str, Any]],
    items: Sequence[Any],
    entry_key: Callable[[Any], Any],
    item_key: Callable[[Any], Any],
    make: Callable[[Any], dict[str, Any]],
    here: dict[str, str],
    p: int,
    at: Callable[[dict[str, Any]], int],
) -> list[dict[str, Any]]:
    """One of merge()'s unions with the new record's items added: each entry's sources stay in
    the records' order, an entry's value comes from its first source, and the entries stay in
    the order of their first sources (a record's own in the order of its items)."""
    out = [{**e, "sources": list(e["sources"])} for e in entries]
    index = {entry_key(e): i for i, e in enumerate(entries)}
    first_here: dict[int, int] = {}  # entry -> the item of the new record it now comes from
    for j, item in enumerate(items or ()):
        k = item_key(item)
        if not k:
            continue
        i = index.get(k)
        if i is None:
            index[k] = len(out)
            first_here[len(out)] = j
            out.append({**make(item), "sources": [dict(here)]})
            continue
        sources = out[i]["sources"]
        n = bisect.bisect_right(sources, p, key=at)  # after earlier records' (and its own)
        sources.insert(n, dict(here))
        if n == 0:
            out[i].update(make(item))
            first_here[i] = j
    if not first_here:
        return out
    ranks = [
        (p, first_here[i]) if i in first_here else (at(e["sources"][0]), i)
        for i, e in enumerate(out)
    ]
    return [e for _, e in sorted(zip(ranks, out, strict=True), key=lambda t: t[0])]


def duplicates_within_member(
    records: Sequence[tuple[str, NormalizedRecord]],
) -> list[dict[str, Any]]:
    """Data-quality report for one cluster: every member holding more than one record in it,
    with the records and how each extra one compares with that member's first (most complete)
    one. Empty when each member has one record."""
    by_member: dict[str, list[NormalizedRecord]] = {}
    for m, r in records:
        if not r.deleted:
            by_member.setdefault(m, []).append(r)
    report: list[dict[str, Any]] = []
    for m in sorted(by_member):
        recs = by_member[m]
        if len(recs) < 2:
            continue
        recs = sorted(recs, key=lambda r: (-completeness(r), r.record_id))
        first = match_features(recs[0])
        comparisons = []
        for r in recs[1:]:
            d = _decide(first, match_features(r))
            comparisons.append(
                {
                    "record_id": r.record_id,
                    "with": recs[0].record_id,
                    "same": d.same,
                    "rule": d.rule,
                    "score": d.score,
                    "reasons": d.reasons,
                }
            )
        report.append(
            {"member": m, "record_ids": [r.record_id for r in recs], "comparisons": comparisons}
        )
    return report
