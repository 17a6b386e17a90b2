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

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from rapidfuzz import fuzz

from consortia.catalog.record import NormalizedRecord
from consortia.catalog.textfold import (
    fold,
    fold_name,
    fold_publisher,
    has_cjk,
    has_han_only,
    lccn_key,
    oclc_key,
    part_key,
    pinyin_key,
    title_key,
)

__all__ = [
    "HARD_REFUSALS",
    "RULE_LABELS",
    "MatchDecision",
    "choose_cluster",
    "completeness",
    "decide",
    "duplicates_within_member",
    "match_keys",
    "merge",
]

K = TypeVar("K")

# Rules, as stored in source_records.match_rule; the labels are msgids (locale/*/matching.po).
RULE_LABELS: dict[str, str] = {
    "oclc": "Same OCLC number",
    "lccn": "Same LCCN",
    "isbn+title": "Same ISBN and title",
    "isbn+author": "Same ISBN, author and year",
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
    "different-publisher": "Different publisher",
    "insufficient": "Too little in common to decide",
    "new-cluster": "No matching cluster",
}
MATCH_RULES = frozenset(
    {"oclc", "lccn", "isbn+title", "isbn+author", "title+author+year+publisher"}
)
# Refusals that keep a record out of a cluster even when its representative would take it:
# they come from explicit, conflicting data, never from missing data.
HARD_REFUSALS = frozenset(
    {"different-edition", "different-volume", "different-material", "reprint"}
)
# Rules strong enough to put a second record of the same member into a cluster.
_IDENTIFIER_RULES = frozenset({"oclc", "lccn", "isbn+title", "isbn+author"})


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


@dataclass(slots=True)
class _Features:
    """What decide() compares, folded once per record."""

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
    material: str
    reproduction: bool


def _features(rec: NormalizedRecord) -> _Features:
    main = title_key(rec.title, 200)
    full = title_key(f"{rec.title} {rec.remainder}", 300) if rec.remainder else main
    vmain = vfull = ""
    if rec.title_vernacular:
        # 245 $a/$b are not split in the vernacular: the 880 holds them together.
        vfull = title_key(rec.title_vernacular, 300)
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
    return _Features(
        main=main,
        full=full,
        vmain=vmain,
        vfull=vfull,
        cjk=cjk,
        chinese=chinese,
        has_remainder=bool(rec.remainder.strip()),
        isbns=frozenset(i.isbn13 for i in rec.isbns if i.valid and i.isbn13),
        oclc=frozenset(k for k in (oclc_key(o) for o in rec.oclc) if k),
        lccn=lccn_key(rec.lccn) if rec.lccn else "",
        issns=frozenset(s.replace("-", "").upper() for s in rec.issns if s),
        authors=tuple(a for a in authors if a),
        responsibility=fold(rec.responsibility) if rec.responsibility else "",
        publisher=fold_publisher(rec.publisher) if rec.publisher else "",
        year=rec.years[0] if rec.years else None,
        edition_number=rec.edition_number,
        edition=fold(rec.edition) if rec.edition else "",
        part=part_key(rec.part) if rec.part else "",
        series_volume=part_key(rec.series_volume) if rec.series_volume else "",
        pages=rec.pages,
        material=rec.material or "book",
        reproduction=rec.reproduction,
    )


# --------------------------------------------------------------------------- keys


def match_keys(rec: NormalizedRecord) -> list[str]:
    """Blocking keys: records sharing one key are compared by :func:`decide`.

    ``isbn:<13 digits>``, ``issn:<8>``, ``lccn:<normalised>``, ``oclc:<digits>``,
    ``title:<folded title>|<year or ''>`` for the title and for its vernacular (880) form, and
    for Chinese records ``py:<toneless pinyin>|<year>`` so romanised and vernacular titles meet.
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
    year = str(rec.years[0]) if rec.years else ""
    titles = [rec.title]
    if rec.title_vernacular:
        titles.append(rec.title_vernacular)
    langs = rec.languages
    chinese_lang = "chi" in langs or "zho" in langs
    for t in titles:
        k = title_key(t)
        if not k:
            continue
        add(f"title:{k}|{year}")
        if chinese_lang or (not langs and has_han_only(k)):
            p = pinyin_key(k)[:80]
            if p:
                add(f"py:{p}|{year}")
    return keys


# --------------------------------------------------------------------------- scores


def _ratio(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if a == b:
        return 100.0
    if " " in a or " " in b:
        return float(fuzz.token_sort_ratio(a, b))
    return float(fuzz.ratio(a, b))


def _title_score(fa: _Features, fb: _Features) -> tuple[float, str]:
    """Best agreement between the title forms of two records, and which forms agreed."""
    forms_a = [(fa.main, fa.full, fa.has_remainder)]
    forms_b = [(fb.main, fb.full, fb.has_remainder)]
    if fa.vmain:
        forms_a.append((fa.vmain, fa.vfull, False))
    if fb.vmain:
        forms_b.append((fb.vmain, fb.vfull, False))
    best, how = 0.0, ""
    for ma, fua, rema in forms_a:
        ca = has_cjk(ma)
        for mb, fub, remb in forms_b:
            if not ma or not mb or ca != has_cjk(mb):
                continue
            s = _ratio(fua, fub)
            # Title proper alone counts unless both carry a subtitle (then it must agree too).
            if not (rema and remb):
                s = max(s, _ratio(ma, mb))
            if s > best:
                best, how = s, ("vernacular" if ca else "title")
    if best < 90 and (fa.chinese or fb.chinese) and fa.cjk != fb.cjk:
        # Romanised (pinyin) title against a vernacular one: compare as toneless pinyin.
        cjk_side, rom_side = (fa, fb) if fa.cjk else (fb, fa)
        cjk_title = cjk_side.vmain if cjk_side.vmain else cjk_side.main
        pa = pinyin_key(cjk_title)
        for rom in (rom_side.full, rom_side.main):
            s = _ratio(pa, rom.replace(" ", ""))
            if s > best:
                best, how = s, "pinyin"
    return best, how


def _name_pair(a: str, b: str) -> float:
    if a == b:
        return 100.0
    if has_cjk(a) or has_cjk(b):
        return float(fuzz.ratio(a.replace(" ", ""), b.replace(" ", "")))
    ta, tb = a.split(), b.split()
    whole = float(fuzz.token_sort_ratio(a, b))
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


def _author_score(fa: _Features, fb: _Features) -> float | None:
    if fa.authors and fb.authors:
        return max(_name_pair(x, y) for x in fa.authors[:4] for y in fb.authors[:4])
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


def _publisher_score(fa: _Features, fb: _Features) -> float | None:
    if not fa.publisher or not fb.publisher:
        return None
    if fa.publisher == fb.publisher:
        return 100.0
    if has_cjk(fa.publisher) or has_cjk(fb.publisher):
        return float(fuzz.partial_ratio(fa.publisher, fb.publisher))
    return float(fuzz.token_set_ratio(fa.publisher, fb.publisher))


def _year_score(fa: _Features, fb: _Features) -> float | None:
    if fa.year is None or fb.year is None:
        return None
    d = abs(fa.year - fb.year)
    return 100.0 if d == 0 else 50.0 if d == 1 else 0.0


def _pages_score(fa: _Features, fb: _Features) -> float | None:
    if not fa.pages or not fb.pages:
        return None
    d = abs(fa.pages - fb.pages)
    big = max(fa.pages, fb.pages)
    if d <= max(2, big * 0.03):
        return 100.0
    if d <= big * 0.10:
        return 60.0
    return 0.0


_WEIGHTS = {"title": 0.4, "author": 0.2, "year": 0.15, "publisher": 0.15, "pages": 0.1}


def _similarity(scores: dict[str, float]) -> float:
    num = sum(_WEIGHTS[k] * v for k, v in scores.items() if k in _WEIGHTS)
    den = sum(_WEIGHTS[k] for k in scores if k in _WEIGHTS)
    return round(num / den / 100.0, 4) if den else 0.0


# --------------------------------------------------------------------------- decision


def decide(a: NormalizedRecord, b: NormalizedRecord) -> MatchDecision:
    """Do ``a`` and ``b`` describe the same manifestation? With the rule and scores why."""
    return _decide(_features(a), _features(b))


def _decide(fa: _Features, fb: _Features) -> MatchDecision:
    reasons: list[str] = []
    scores: dict[str, float] = {}
    title, how = _title_score(fa, fb)
    scores["title"] = round(title, 1)
    if how and how != "title":
        reasons.append(f"title-form={how}")
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
    if fa.part and fb.part and fa.part != fb.part:
        return refuse("different-volume", f"part:{fa.part}≠{fb.part}")
    if fa.series_volume and fb.series_volume and fa.series_volume != fb.series_volume:
        return refuse("different-volume", f"series-volume:{fa.series_volume}≠{fb.series_volume}")
    ea, eb = fa.edition_number, fb.edition_number
    if ea is not None and eb is not None and ea != eb:
        return refuse("different-edition", f"edition:{ea}≠{eb}")
    if (
        ea is None
        and eb is None
        and fa.edition
        and fb.edition
        and _ratio(fa.edition, fb.edition) < 60
    ):
        return refuse("different-edition", "edition-statements-differ")

    # Soft conflicts: one side says more than the other. Only an identifier outweighs them.
    soft: list[tuple[str, str]] = []
    if bool(fa.part) != bool(fb.part):
        soft.append(("different-volume", "part:one-side"))
    if (ea or 1) != (eb or 1) or (
        (ea is None and eb is None) and bool(fa.edition) != bool(fb.edition)
    ):
        soft.append(("different-edition", "edition:one-side"))
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
        if ydiff is not None and ydiff > 1:
            return refuse("isbn-reused", f"year:{fa.year}≠{fb.year}")
        if pages == 0.0:
            return refuse("isbn-reused", "pages-differ")
        if author is not None and author < 50 and title < 95:
            return refuse("isbn-reused", "author-differs")
        if title >= 80:
            return MatchDecision(True, "isbn+title", max(sim, 0.9), scores, reasons)
        if author is not None and author >= 90 and ydiff == 0:
            return MatchDecision(True, "isbn+author", max(sim, 0.85), scores, reasons)
        return refuse("isbn-reused", "title-differs")

    # 3. No shared identifier: title, author, year and publisher together.
    if soft:
        rule, why = soft[0]
        return refuse(rule, why)
    if fa.issns and fb.issns and not (fa.issns & fb.issns):
        return refuse("different-isbn", "issn-differs")
    isbn_conflict = bool(fa.isbns and fb.isbns)
    if title < 90:
        return refuse("different-title")
    if ydiff is None:
        # Without both years a title match is too weak to cluster on.
        return refuse("insufficient", "year:missing")
    if ydiff > 0:
        # Same title and author, another year: an unstated new edition or a reprint.
        if publisher is not None and publisher < 60:
            return refuse("reprint", f"year:{fa.year}≠{fb.year}")
        return refuse("different-year", f"year:{fa.year}≠{fb.year}")
    if author is None:
        if fa.authors or fb.authors:
            # One side has a name the other does not mention at all: not enough to go on.
            return refuse("insufficient", "author:one-side")
        if publisher is None or publisher < 85 or title < 95:
            return refuse("insufficient", "no-author")
    elif author < 85:
        return refuse("different-author")
    if publisher is not None and publisher < 60:
        return refuse("different-publisher")
    if pages is not None and pages == 0.0:
        return refuse("different-edition", "pages-differ")
    if isbn_conflict:
        # Disjoint ISBNs: at most a binding variant. Cluster only on near-identical description.
        strong = (
            title >= 95
            and (author or 0) >= 90
            and (publisher or 0) >= 80
            and pages is not None
            and pages == 100.0
        )
        if not strong:
            return refuse("different-isbn", "isbn-disjoint")
        reasons.append("isbn-disjoint")
    if publisher is None and pages is None:
        return refuse("insufficient", "publisher+pages:missing")
    return MatchDecision(True, "title+author+year+publisher", sim, scores, reasons)


# --------------------------------------------------------------------------- clusters


ClusterRecord = NormalizedRecord | tuple[str, NormalizedRecord]


def _unpack(item: ClusterRecord) -> tuple[str | None, NormalizedRecord]:
    if isinstance(item, tuple):
        return item[0], item[1]
    return None, item


def choose_cluster(
    rec: NormalizedRecord,
    candidates: Sequence[tuple[K, Sequence[ClusterRecord]]],
    *,
    member: str | None = None,
    check_limit: int = 20,
) -> tuple[K | None, MatchDecision | None]:
    """The cluster ``rec`` should join, with the decision that put it there; ``(None, None)``
    when none fits (a new cluster).

    Each candidate is ``(cluster_id, records)``; the FIRST record is the cluster's
    representative, and ``rec`` must match it. The other records (up to ``check_limit``) may
    veto with a hard refusal (another edition, volume, material, a reprint), so a cluster does
    not drift by chaining. Records may be given as ``(member_code, record)``; with ``member``
    set, a cluster already holding a record of that member is joined only on identifier
    evidence (ISBN/OCLC/LCCN), which makes it a real duplicate in that member's catalogue.
    """
    fr = _features(rec)
    best: tuple[float, int, K, MatchDecision] | None = None
    for order, (cid, items) in enumerate(candidates):
        if not items:
            continue
        rep_member, rep = _unpack(items[0])
        d = _decide(fr, _features(rep))
        if not d.same:
            continue
        vetoed = False
        same_member = member is not None and rep_member == member
        for item in items[1 : 1 + check_limit]:
            m, other = _unpack(item)
            if member is not None and m == member:
                same_member = True
            od = _decide(fr, _features(other))
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


def _source(member: str, rec: NormalizedRecord) -> dict[str, str]:
    return {"member": member, "record_id": rec.record_id}


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
    ordered = sorted(live, key=lambda mr: (-completeness(mr[1]), mr[0], mr[1].record_id))
    out: dict[str, Any] = {}
    for name in _SCALARS:
        for m, r in ordered:
            value = getattr(r, name)
            if value not in ("", None):
                out[name] = {"value": value, **_source(m, r)}
                break
    for m, r in ordered:
        if r.years:
            out["year"] = {"value": r.years[0], **_source(m, r)}
            break

    # Titles: vernacular for display when any record has it, romanised kept beside it.
    vern: tuple[str, str, NormalizedRecord] | None = None
    roman: tuple[str, str, NormalizedRecord] | None = None
    for m, r in ordered:
        for t in (r.title, r.title_vernacular):
            if not t:
                continue
            if has_cjk(t):
                if vern is None:
                    vern = (t, m, r)
            elif roman is None and (r.title_vernacular or any(has_cjk(x.title) for _, x in live)):
                roman = (t, m, r)
    if vern is not None:
        t, m, r = vern
        out["title"] = {"value": t, **_source(m, r)}
        if r.title_vernacular == t and r.remainder:
            # The 880 holds the whole title; the romanised subtitle does not belong beside it.
            out.pop("remainder", None)
        if roman is not None:
            t2, m2, r2 = roman
            out["title_romanised"] = {"value": t2, **_source(m2, r2)}

    def union(getter: Any, key: Any) -> list[dict[str, Any]]:
        found: dict[Any, dict[str, Any]] = {}
        for m, r in ordered:
            for item in getter(r):
                k = key(item)
                if not k:
                    continue
                entry = found.get(k)
                if entry is None:
                    entry = found[k] = {"value": item, "sources": []}
                entry["sources"].append(_source(m, r))
        return list(found.values())

    out["isbns"] = [
        {
            "isbn13": e["value"].isbn13,
            "qualifier": e["value"].qualifier,
            "valid": e["value"].valid,
            "sources": e["sources"],
        }
        for e in union(lambda r: r.isbns, lambda i: (i.isbn13, i.valid))
    ]
    out["issns"] = union(lambda r: r.issns, lambda s: s.replace("-", "").upper())
    out["oclc"] = union(lambda r: r.oclc, oclc_key)
    out["languages"] = union(lambda r: r.languages, lambda s: s)
    out["subjects"] = union(lambda r: r.subjects, fold)
    out["classifications"] = [
        {"scheme": e["value"].scheme, "value": e["value"].value, "sources": e["sources"]}
        for e in union(
            lambda r: r.classifications, lambda c: (c.scheme, c.value.replace(" ", "").lower())
        )
    ]
    out["names"] = [
        {
            "name": e["value"].name,
            "role": e["value"].role,
            "kind": e["value"].kind,
            "vernacular": e["value"].vernacular,
            "sources": e["sources"],
        }
        for e in union(lambda r: r.names, lambda n: fold_name(n.name))
    ]
    rep_m, rep_r = ordered[0]
    out["representative"] = _source(rep_m, rep_r)
    out["sources"] = [
        {**_source(m, r), "flavour": r.flavour, "completeness": completeness(r)} for m, r in ordered
    ]
    out["members"] = sorted({m for m, _ in live})
    return out


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
        first = _features(recs[0])
        comparisons = []
        for r in recs[1:]:
            d = _decide(first, _features(r))
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
