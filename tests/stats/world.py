"""A small consortium whose history the statistics tests write through the real services.

The demo members (Guangdong with its centre, and Jilin), a union catalogue loaded through the
catalogue's ingest (Chinese books as CNMARC with 995 items, Library of Congress records with 952
items, each held by the members a test names), and helpers that make, answer and close requests
through the resource-sharing service at given moments. The consortium office (the CLI) files
the requests for a member, with the language as staff would set it; each lender's staff answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pymarc
from pymarc import Field, Indicators, Record, Subfield
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI, SYSTEM, Principal, Role
from consortia.catalog import service as catalog
from consortia.catalog.models import SourceRecord
from consortia.demo.catalog import CHINESE_BOOKS, cnmarc_record
from consortia.demo.load import demo_rows
from consortia.members import service as members
from consortia.members.models import Member

if TYPE_CHECKING:
    from consortia.ill.service import Result

DATA = Path(__file__).parents[1] / "data"
CST = dt.timezone(dt.timedelta(hours=8))


def at(day: str, hour: int = 10, minute: int = 0) -> dt.datetime:
    """A moment in China's time (``day`` as YYYY-MM-DD)."""
    d = dt.date.fromisoformat(day)
    return dt.datetime(d.year, d.month, d.day, hour, minute, tzinfo=CST)


@dataclass
class World:
    ids: dict[str, int]
    clusters: dict[str, int] = field(default_factory=dict)
    n: int = 0

    def staff(self, member_id: int | None) -> Principal:
        assert member_id is not None
        code = next(c for c, i in self.ids.items() if i == member_id)
        return Principal(
            kind="user",
            label=f"user:{code.lower()}-staff",
            role=Role.library_staff,
            member_id=member_id,
            member_code=code,
        )

    def request(
        self,
        session: Session,
        borrower: str,
        book: str,
        when: dt.datetime,
        *,
        service: str = "Copy",
        language: str | None = None,
    ) -> Result:
        """A request of ``borrower`` for ``book`` (a key of ``clusters``), routed at once."""
        from consortia.ill import service as ill
        from consortia.ill.service import NewRequest

        self.n += 1
        result = ill.create_request(
            session,
            CLI,
            NewRequest(
                service_type=service,
                cluster_id=self.clusters[book],
                borrower=borrower,
                pages=f"{self.n}-{self.n + 9}",
                language=language or ("chinese" if book.startswith("zh") else "foreign"),
            ),
            at=when,
        )
        session.commit()
        return result

    def ship(self, session: Session, result: Result, when: dt.datetime) -> Result:
        from consortia.ill import service as ill

        out = ill.ship(session, self.staff(result.lender_id), result.request_id, at=when)
        session.commit()
        return out

    def decline(self, session: Session, result: Result, when: dt.datetime) -> Result:
        from consortia.ill import service as ill

        out = ill.unfilled(
            session, self.staff(result.lender_id), result.request_id, "not on shelf", at=when
        )
        session.commit()
        return out

    def unfill(self, session: Session, result: Result, when: dt.datetime) -> Result:
        """Every lender of the rota declines in turn: the request ends Unfilled."""
        while result.state == "Sent":
            result = self.decline(session, result, when)
        assert result.state == "Unfilled", result
        return result

    def cancel(self, session: Session, result: Result, when: dt.datetime) -> Result:
        from consortia.ill import service as ill

        out = ill.cancel(session, CLI, result.request_id, reason="no longer needed", at=when)
        session.commit()
        return out


def load_members(session: Session) -> dict[str, int]:
    for row in demo_rows("regions.csv"):
        members.ensure_region(session, SYSTEM, row["code"], row["name_zh"], row["name_en"])
    members.import_rows(session, SYSTEM, demo_rows("members.csv"))
    session.commit()
    return {m.code: m.id for m in session.scalars(select(Member))}


def _lc_record(index: int) -> Record:
    with (DATA / "ingest" / "loc-60.mrc").open("rb") as fh:
        for i, rec in enumerate(pymarc.MARCReader(fh)):
            if i == index and rec is not None:
                return rec
    raise LookupError(index)


def load_books(session: Session, world: World, tmp: Path, books: dict[str, list[str]]) -> None:
    """``books``: key -> the members holding it (one available item each). ``zh<n>`` is
    CHINESE_BOOKS[n] as CNMARC, ``en<n>`` record n of loc-60.mrc."""
    files: dict[str, list[bytes]] = {}
    for key, holders in books.items():
        n = int(key[2:])
        for code in holders:
            short = code[3:].lower()
            if key.startswith("zh"):
                rec = cnmarc_record(
                    CHINESE_BOOKS[n], f"{short}-zh{n}", f"R{n}", f"{short}Z{n}", "available", code
                )
            else:
                base = _lc_record(n)
                rec = Record(leader=base.leader, fields=list(base.fields))
                rec.remove_fields("001", "852", "952")
                rec.add_field(Field(tag="001", data=f"{short}-en{n}"))
                rec.add_field(
                    Field(
                        tag="952",
                        indicators=Indicators(" ", " "),
                        subfields=[
                            Subfield("a", code),
                            Subfield("p", f"{short}E{n}"),
                            Subfield("o", f"QA{n}"),
                            Subfield("7", "0"),
                        ],
                    )
                )
            files.setdefault(code, []).append(rec.as_marc())
    for code, recs in files.items():
        path = tmp / f"{code}.mrc"
        path.write_bytes(b"".join(recs))
        catalog.load_files(SYSTEM, code, [path], workers=1)
    session.expire_all()
    for key, holders in books.items():
        code = holders[0]
        cid = session.scalar(
            select(SourceRecord.cluster_id).where(
                SourceRecord.member_id == world.ids[code],
                SourceRecord.record_id == f"{code[3:].lower()}-{key}",
            )
        )
        assert cid is not None, key
        world.clusters[key] = int(cid)


def build(session: Session, tmp: Path, books: dict[str, list[str]]) -> World:
    world = World(ids=load_members(session))
    load_books(session, world, tmp, books)
    return world


def add_accounts(session: Session, world: World) -> None:
    """A staff and a reader account per member, named as the demo names them."""
    from consortia.accounts import service as accounts

    for code in sorted(world.ids):
        short = code.lower().removeprefix("cn-")
        for role, suffix in ((Role.library_staff, "staff"), (Role.reader, "reader")):
            accounts.create_user(
                session,
                SYSTEM,
                username=f"{short}-{suffix}",
                password="correct-horse-battery",
                role=role,
                member_code=code,
            )
    session.commit()
