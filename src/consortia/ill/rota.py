"""Lender routing: which members to ask for a request, in which order, and why.

Pure functions over plain data; ``ill/service.py`` gathers the data (the cluster's holdings, the
members, their recent lending figures) and stores the result as the request's rota, one row per
candidate with its score and reason.

Candidates are the members holding the item, minus

- the borrower itself (it would not ask itself),
- members that are not active (suspended, left),
- members whose policy does not lend this service type (``lends_loans`` / ``lends_copies``),
- members whose open lending queue is full (``max_open_lending``),
- members with no usable item: for a loan an item on the shelf (``available``); for a copy also
  a reference copy (``not_for_loan``), which may be copied but not lent. A member whose record
  carries no item data at all is kept (its item status is unknown) with a small penalty.

and ordered by an explainable score (higher first; ties by member code), in points:

==========================  =============================================================
same region as the borrower  +30
the region's centre          +10 more (a centre library backs the others in its region)
load balance                 -10 .. +10: a member that borrows more than it lends is asked
                             first (ReShare's lending/borrowing ratio), 10 × (borrowed −
                             lent) / (borrowed + lent + 10) over the recent window
open queue                   -15 × open / max_open_lending (a busy lender waits)
recent fill rate             +20 × filled / answered; 90 % is assumed below 10 answers
turnaround                   −1 per day from sending to shipping (mean), at most −10
no item data                 −5
==========================  =============================================================
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SAME_REGION = 30.0
CENTRE = 10.0
BALANCE = 10.0
QUEUE = 15.0
FILL = 20.0
TURNAROUND_PER_DAY = 1.0
TURNAROUND_CAP = 10.0
NO_ITEM_DATA = 5.0
MIN_ANSWERS = 10  # below this, the fill rate is assumed
ASSUMED_FILL_RATE = 0.9

LOAN_STATUSES = frozenset({"available"})
COPY_STATUSES = frozenset({"available", "not_for_loan"})


class Exclusion(enum.StrEnum):
    """Why a holder is not a candidate (English msgids, translated on pages)."""

    BORROWER = "the requesting library itself"
    NOT_ACTIVE = "not an active member"
    NO_LOANS = "does not lend books"
    NO_COPIES = "does not supply copies"
    QUEUE_FULL = "its lending queue is full"
    NOT_AVAILABLE = "no copy available"


@dataclass(frozen=True)
class MemberInfo:
    """What routing needs to know about a member."""

    id: int
    code: str
    region_id: int
    is_centre: bool
    status: str
    lends_loans: bool
    lends_copies: bool
    max_open_lending: int
    days_to_respond: int
    loan_period_days: int
    iso18626_url: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass
class Load:
    """A member's recent lending figures (the routing window, plus changes seen since)."""

    lent: int = 0  # requests it supplied
    borrowed: int = 0  # its readers' requests that were supplied
    open: int = 0  # requests waiting in its lending queue now
    answered: int = 0  # requests it supplied or declined (expiries included)
    filled: int = 0
    turnaround_days: float | None = None  # mean, sending to shipping


@dataclass(frozen=True)
class Candidate:
    member_id: int
    code: str
    score: float
    reason: str
    factors: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Excluded:
    member_id: int
    code: str
    why: Exclusion


@dataclass(frozen=True)
class Rota:
    candidates: list[Candidate]
    excluded: list[Excluded]


def score(borrower: MemberInfo, member: MemberInfo, load: Load, *, has_items: bool) -> Candidate:
    """One eligible member's score, with the reason in words and the factors as data."""
    parts: list[str] = []
    factors: dict[str, Any] = {}
    total = 0.0
    if member.region_id == borrower.region_id:
        total += SAME_REGION
        parts.append(f"same region {SAME_REGION:+.1f}")
        factors["same_region"] = SAME_REGION
        if member.is_centre:
            total += CENTRE
            parts.append(f"regional centre {CENTRE:+.1f}")
            factors["centre"] = CENTRE
    lent, borrowed = load.lent, load.borrowed
    balance = BALANCE * (borrowed - lent) / (borrowed + lent + 10)
    total += balance
    parts.append(f"lent {lent}, borrowed {borrowed} {balance:+.1f}")
    factors["balance"] = {"lent": lent, "borrowed": borrowed, "points": balance}
    capacity = max(member.max_open_lending, 1)
    queue = -QUEUE * min(load.open / capacity, 1.0)
    total += queue
    parts.append(f"queue {load.open}/{capacity} {queue:+.1f}")
    factors["queue"] = {"open": load.open, "max": capacity, "points": queue}
    if load.answered >= MIN_ANSWERS:
        rate = load.filled / load.answered
        fill = FILL * rate
        parts.append(f"fill rate {rate:.0%} {fill:+.1f}")
    else:
        rate = ASSUMED_FILL_RATE
        fill = FILL * rate
        parts.append(f"fill rate {rate:.0%} assumed {fill:+.1f}")
    total += fill
    factors["fill_rate"] = {"rate": rate, "answered": load.answered, "points": fill}
    if load.turnaround_days is not None:
        slow = -min(TURNAROUND_PER_DAY * load.turnaround_days, TURNAROUND_CAP)
        total += slow
        parts.append(f"turnaround {load.turnaround_days:.1f} d {slow:+.1f}")
        factors["turnaround"] = {"days": load.turnaround_days, "points": slow}
    if not has_items:
        total -= NO_ITEM_DATA
        parts.append(f"no item data {-NO_ITEM_DATA:+.1f}")
        factors["no_item_data"] = -NO_ITEM_DATA
    return Candidate(member.id, member.code, round(total, 3), "; ".join(parts), factors)


def build(
    borrower: MemberInfo,
    service_type: str,
    holdings: Mapping[int, Iterable[str | None]],
    members: Mapping[int, MemberInfo],
    loads: Mapping[int, Load],
) -> Rota:
    """The ordered candidates and the excluded holders with the reason for each.

    ``holdings`` maps each holding member to its items' statuses (``None``: a record without
    item data). ``service_type`` is ``Loan`` or ``Copy``.
    """
    usable = LOAN_STATUSES if service_type == "Loan" else COPY_STATUSES
    candidates: list[Candidate] = []
    excluded: list[Excluded] = []
    for member_id in sorted(holdings, key=lambda m: members[m].code if m in members else ""):
        member = members.get(member_id)
        if member is None:
            continue
        statuses = list(holdings[member_id])
        why: Exclusion | None = None
        load = loads.get(member_id) or Load()
        if member_id == borrower.id:
            why = Exclusion.BORROWER
        elif not member.active:
            why = Exclusion.NOT_ACTIVE
        elif service_type == "Loan" and not member.lends_loans:
            why = Exclusion.NO_LOANS
        elif service_type != "Loan" and not member.lends_copies:
            why = Exclusion.NO_COPIES
        elif load.open >= member.max_open_lending:
            why = Exclusion.QUEUE_FULL
        has_items = any(s is not None for s in statuses)
        if why is None and has_items and not any(s in usable for s in statuses):
            why = Exclusion.NOT_AVAILABLE
        if why is not None:
            excluded.append(Excluded(member_id, member.code, why))
            continue
        candidates.append(score(borrower, member, load, has_items=has_items))
    candidates.sort(key=lambda c: (-c.score, c.code))
    return Rota(candidates, excluded)


def eligible_now(member: MemberInfo, service_type: str, load: Load | None = None) -> bool:
    """Re-checked when the rota reaches a candidate later: is it still one?"""
    if not member.active:
        return False
    if service_type == "Loan" and not member.lends_loans:
        return False
    if service_type != "Loan" and not member.lends_copies:
        return False
    return load is None or load.open < member.max_open_lending
