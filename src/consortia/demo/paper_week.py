"""The paper's week: Table 1 (2016-10-17 to 2016-10-23) replayed through the services.

Into an empty database: the demo consortium (members, accounts, union catalogue) and then, for
each of the ten libraries of Table 1, exactly its printed numbers of Chinese and foreign
requests, each filed by the library's staff for one of its readers and routed by the
resource-sharing service; exactly the printed number of each is supplied by its lender (a
transfer), every other one is declined by each lender of its rota in turn until it ends
unfilled. Afterwards
``consortia report service --from 2016-10-17 --to 2016-10-23 --format csv`` prints Table 1.

The requests are copies (document delivery, the National Consortia of Library Reference
Service's work) of five pages of titles of the request's language that another member holds,
spread over the week (weekdays busier, 08:00-22:00 China time), each answered within hours.
Every request keeps to the copyright policy (a reader receives at most its share of a book in
seven days): a library's requests go to the demo's reader and, once that reader has asked for
all a book allows, to more readers of the library. Seeded: the same run gives the same
database.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts.models import User
from consortia.accounts.roles import SYSTEM, Principal, Role
from consortia.accounts.service import principal_for
from consortia.catalog.models import Cluster, SourceRecord
from consortia.db import session_factory
from consortia.demo.load import DATA, demo_rows
from consortia.demo.simulator import MemberPlan, Pools
from consortia.errors import Conflict
from consortia.ill.models import IllRequest
from consortia.members.models import Member

WEEK_START = dt.date(2016, 10, 17)
WEEK_END = dt.date(2016, 10, 23)
CST = dt.timezone(dt.timedelta(hours=8))
TABLE1 = DATA / "table1_service_2016-10-17_2016-10-23.csv"
MSG_NOT_EMPTY = "The database already holds {n} requests; the paper's week loads into an empty one"
SEED = 20161017
PAGES_PER_REQUEST = 5  # a short chapter or an article


@dataclass(frozen=True)
class Row:
    rank: int
    code: str
    chinese_requests: int
    chinese_transfers: int
    foreign_requests: int
    foreign_transfers: int


def table1() -> list[Row]:
    codes = {r["name_en"]: r["code"] for r in demo_rows("members.csv")}
    with TABLE1.open(encoding="utf-8", newline="") as fh:
        return [
            Row(
                int(r["rank"]),
                codes[r["library_en"]],
                int(r["chinese_requests"]),
                int(r["chinese_transfers"]),
                int(r["foreign_requests"]),
                int(r["foreign_transfers"]),
            )
            for r in csv.DictReader(fh)
        ]


@dataclass(frozen=True)
class Planned:
    at: dt.datetime
    code: str
    language: str
    filled: bool


def plan(rows: list[Row], rnd: random.Random) -> list[Planned]:
    """Every request of the week with its moment and fate, in time order."""
    days = [WEEK_START + dt.timedelta(days=i) for i in range(7)]
    weights = [1.0 if d.weekday() < 5 else 0.45 for d in days]
    out: list[Planned] = []
    for row in rows:
        for language, n, filled in (
            ("chinese", row.chinese_requests, row.chinese_transfers),
            ("foreign", row.foreign_requests, row.foreign_transfers),
        ):
            fates = [True] * filled + [False] * (n - filled)
            rnd.shuffle(fates)
            for fate in fates:
                day = rnd.choices(days, weights)[0]
                # Early enough that every answer falls inside the week.
                hour = 8 + rnd.random() * (14 if day < WEEK_END else 3)
                moment = dt.datetime.combine(day, dt.time(), CST) + dt.timedelta(hours=hour)
                out.append(Planned(moment, row.code, language, fate))
    out.sort(key=lambda p: (p.at, p.code))
    return out


def _staff(session: Session, code: str) -> Principal:
    short = code.lower().removeprefix("cn-")
    staff = session.scalar(select(User).where(User.username == f"{short}-staff"))
    assert staff is not None, code
    return principal_for(staff, code)


def book_pages(session: Session, cluster_id: int) -> int | None:
    """A book's page count as the resource-sharing service reads it for the copyright limit:
    the merged record's, else its largest source record's."""
    merged = session.scalar(select(Cluster.merged).where(Cluster.id == cluster_id)) or {}
    value = (merged.get("pages") or {}).get("value") if isinstance(merged, dict) else None
    if isinstance(value, int) and value > 0:
        return value
    found: int | None = None
    for normalized in session.scalars(
        select(SourceRecord.normalized).where(
            SourceRecord.cluster_id == cluster_id, SourceRecord.deleted.is_(False)
        )
    ):
        n = (normalized or {}).get("pages")
        if isinstance(n, int) and n > 0 and (found is None or n > found):
            found = n
    return found


class Readers:
    """Who asks for which pages of which book: each request within the copyright policy's
    weekly share of a book per reader (``ill/delivery.py``), so that the service accepts every
    one. A library has the demo's reader and, when they have asked for all they may, more."""

    def __init__(self, session: Session, rnd: random.Random, share_percent: int) -> None:
        self.session = session
        self.rnd = rnd
        self.share = share_percent
        self.readers: dict[str, list[int]] = {}
        self.used: dict[tuple[int, int], int] = {}
        self.pages: dict[int, int | None] = {}

    def _allowed(self, cluster: int) -> int | None:
        if cluster not in self.pages:
            self.pages[cluster] = book_pages(self.session, cluster)
        total = self.pages[cluster]
        return None if total is None else total * self.share // 100

    def _add_reader(self, code: str) -> int:
        from consortia.accounts import service as accounts

        short = code.lower().removeprefix("cn-")
        known = self.readers.setdefault(code, [])
        name = f"{short}-reader" if not known else f"{short}-reader-{len(known) + 1}"
        user = self.session.scalar(select(User).where(User.username == name))
        if user is None:
            user = accounts.create_user(
                self.session,
                SYSTEM,
                username=name,
                password=secrets.token_urlsafe(12),
                role=Role.reader,
                member_code=code,
            )
        known.append(user.id)
        return user.id

    def choose(self, code: str, pool: list[int]) -> tuple[int, int, str]:
        """(reader, book, pages) for the next request of ``code`` from the books in ``pool``."""
        if code not in self.readers:
            self._add_reader(code)
        for _ in range(60):
            cluster = pool[self.rnd.randrange(len(pool))]
            allowed = self._allowed(cluster)
            if allowed is not None and allowed < PAGES_PER_REQUEST:
                continue
            for reader in self.readers[code]:
                used = self.used.get((reader, cluster), 0)
                if allowed is None or used + PAGES_PER_REQUEST <= allowed:
                    return self._take(reader, cluster, used)
        reader = self._add_reader(code)
        while True:
            cluster = pool[self.rnd.randrange(len(pool))]
            allowed = self._allowed(cluster)
            if allowed is None or allowed >= PAGES_PER_REQUEST:
                return self._take(reader, cluster, 0)

    def _take(self, reader: int, cluster: int, used: int) -> tuple[int, int, str]:
        self.used[(reader, cluster)] = used + PAGES_PER_REQUEST
        # The next chapter along: the reader never asks for the same pages twice.
        return reader, cluster, f"{used + 1}-{used + PAGES_PER_REQUEST}"

    def count(self) -> int:
        return sum(len(v) for v in self.readers.values())


def replay(
    factory: Callable[[], Session] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 500,
) -> dict[str, int]:
    """File, answer and close the week's requests (members, accounts and catalogue loaded)."""
    factory = factory or session_factory()
    with factory() as session:
        return _replay(session, progress, batch)


def _replay(
    session: Session, progress: Callable[[int, int], None] | None, batch: int
) -> dict[str, int]:
    from consortia.ill import service
    from consortia.ill.service import NewRequest
    from consortia.stats import rollup

    rnd = random.Random(SEED)
    n = int(session.scalar(select(func.count()).select_from(IllRequest)) or 0)
    if n:
        raise Conflict(MSG_NOT_EMPTY, n=n)
    ids = {m.code: m.id for m in session.scalars(select(Member))}
    members = [MemberPlan(i, c, WEEK_START, 1.0, 1.0, 1.0) for c, i in sorted(ids.items())]
    index = {p.code: k for k, p in enumerate(members)}
    pools = Pools(session, members)
    everyone = frozenset(ids.values())
    staff = {code: _staff(session, code) for code in ids}
    staff_of = {ids[code]: principal for code, principal in staff.items()}
    service.reset_caches()
    policy = service.current_policy(session, dt.datetime.combine(WEEK_START, dt.time(), CST))
    readers = Readers(session, rnd, policy.max_book_share_percent)
    planned = plan(table1(), rnd)
    calls = filled = unfilled = 0
    for k, p in enumerate(planned):
        pool = pools.pool(index[p.code], p.language, "Copy", everyone)
        assert pool, (p.code, p.language)
        reader, cluster, pages = readers.choose(p.code, pool)
        result = service.create_request(
            session,
            staff[p.code],
            NewRequest(
                service_type="Copy",
                cluster_id=cluster,
                reader_id=reader,
                pages=pages,
                language=p.language,
                via="staff",
            ),
            at=p.at.astimezone(dt.UTC),
        )
        calls += 1
        when = p.at
        while result.state == "Sent":
            when += dt.timedelta(minutes=15 + rnd.random() * 60)
            lender = staff_of[int(result.lender_id or 0)]
            if p.filled:
                result = service.ship(session, lender, result.request_id, at=when)
            else:
                result = service.unfilled(
                    session, lender, result.request_id, "not on the shelf", at=when
                )
            calls += 1
        if p.filled:
            assert result.state == "Shipped", result
            filled += 1
        else:
            assert result.state == "Unfilled", result
            unfilled += 1
        if calls >= batch:
            session.commit()
            calls = 0
        if progress is not None:
            progress(k + 1, len(planned))
    session.commit()
    rollup.catch_up(session)
    session.commit()
    return {
        "requests": len(planned),
        "transfers": filled,
        "unfilled": unfilled,
        "readers": readers.count(),
    }


def load_paper_week(console: Console | None = None) -> dict[str, int]:
    """The demo consortium, then the week (refused when the database holds requests)."""
    from consortia.demo.load import load_demo

    console = console or Console()
    with session_factory()() as session:
        n = int(session.scalar(select(func.count()).select_from(IllRequest)) or 0)
    if n:
        raise Conflict(MSG_NOT_EMPTY, n=n)
    load_demo(console)
    console.print("replaying the paper's week 2016-10-17 – 2016-10-23 / 正在重放论文中的一周 …")
    out = replay()
    console.print(
        f"{out['requests']:,} requests by {out['readers']:,} readers, {out['transfers']:,} "
        f"transfers, {out['unfilled']:,} unfilled / 请求 {out['requests']:,}，"
        f"传递 {out['transfers']:,}"
    )
    return out
