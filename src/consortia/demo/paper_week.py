"""The paper's week: Table 1 (2016-10-17 to 2016-10-23) replayed through the services.

Into an empty database: the demo consortium (members, accounts, union catalogue) and then, for
each of the ten libraries of Table 1, exactly its printed numbers of Chinese and foreign
requests, each filed by the library's staff for its reader and routed by the resource-sharing
service; exactly the printed number of each is supplied by its lender (a transfer), every other
one is declined by each lender of its rota in turn until it ends unfilled. Afterwards
``consortia report service --from 2016-10-17 --to 2016-10-23 --format csv`` prints Table 1.

The requests are copies (document delivery, the National Consortia of Library Reference
Service's work) of titles of the request's language that another member holds, spread over the
week (weekdays busier, 08:00-22:00 China time); each is answered within the week. Seeded: the
same run gives the same database.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consortia.accounts.models import User
from consortia.accounts.roles import Principal
from consortia.accounts.service import principal_for
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


def _people(session: Session, code: str) -> tuple[Principal, int]:
    short = code.lower().removeprefix("cn-")
    staff = session.scalar(select(User).where(User.username == f"{short}-staff"))
    reader = session.scalar(select(User).where(User.username == f"{short}-reader"))
    assert staff is not None and reader is not None, code
    return principal_for(staff, code), reader.id


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
    people = {code: _people(session, code) for code in ids}
    staff_of = {ids[code]: p[0] for code, p in people.items()}
    service.reset_caches()
    planned = plan(table1(), rnd)
    calls = filled = unfilled = 0
    for k, p in enumerate(planned):
        staff, reader = people[p.code]
        cluster = pools.pick(rnd, index[p.code], p.language, "Copy", everyone)
        assert cluster is not None, (p.code, p.language)
        result = service.create_request(
            session,
            staff,
            NewRequest(
                service_type="Copy",
                cluster_id=cluster,
                reader_id=reader,
                pages=f"{k + 1}-{k + 12}",  # each request a different chapter
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
    return {"requests": len(planned), "transfers": filled, "unfilled": unfilled}


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
        f"{out['requests']:,} requests, {out['transfers']:,} transfers, "
        f"{out['unfilled']:,} unfilled / 请求 {out['requests']:,}，传递 {out['transfers']:,}"
    )
    return out
