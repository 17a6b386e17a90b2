"""A small consortium for resource-sharing tests, built through the real services.

The demo members (two regions, Sun Yat-sen Library of Guangdong Province as Guangdong's centre),
a reader and a staff account per library used here, and a union catalogue loaded through the
catalogue's ingest: Chinese books as CNMARC records (995 items) and Library of Congress records
(852 items), each with the holders and item statuses a test names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymarc
from pymarc import Field, Indicators, Record, Subfield
from sqlalchemy import select
from sqlalchemy.orm import Session

from consortia.accounts import service as accounts
from consortia.accounts.models import User
from consortia.accounts.roles import SYSTEM, Principal, Role
from consortia.accounts.service import principal_for
from consortia.catalog import service as catalog
from consortia.catalog.models import SourceRecord
from consortia.demo.catalog import CHINESE_BOOKS, cnmarc_record
from consortia.demo.load import demo_rows
from consortia.members import service as members
from consortia.members.models import Member

DATA = Path(__file__).parents[1] / "data"
PASSWORD = "correct-horse-battery"
# A Tuesday, 10:00 in Guangzhou: two working days later is Thursday 10:00.
TUESDAY = dt.datetime(2024, 3, 5, 2, 0, tzinfo=dt.UTC)


@dataclass
class World:
    ids: dict[str, int]  # member code -> id
    readers: dict[str, Principal] = field(default_factory=dict)  # member code -> reader
    staff: dict[str, Principal] = field(default_factory=dict)  # member code -> staff
    clusters: dict[str, int] = field(default_factory=dict)  # book key -> cluster id
    users: dict[str, int] = field(default_factory=dict)  # username -> id

    def code(self, member_id: int | None) -> str | None:
        for code, mid in self.ids.items():
            if mid == member_id:
                return code
        return None


def load_members(session: Session) -> dict[str, int]:
    for row in demo_rows("regions.csv"):
        members.ensure_region(session, SYSTEM, row["code"], row["name_zh"], row["name_en"])
    members.import_rows(session, SYSTEM, demo_rows("members.csv"))
    session.commit()
    return {m.code: m.id for m in session.scalars(select(Member))}


def add_user(
    session: Session, world: World, username: str, role: Role, member: str, email: str = ""
) -> Principal:
    user = accounts.create_user(
        session,
        SYSTEM,
        username=username,
        password=PASSWORD,
        role=role,
        member_code=member,
        email=email or None,
    )
    session.commit()
    world.users[username] = user.id
    return principal_for(user, member)


def _lc_record(index: int) -> Record:
    with (DATA / "ingest" / "loc-60.mrc").open("rb") as fh:
        for i, rec in enumerate(pymarc.MARCReader(fh)):
            if i == index and rec is not None:
                return rec
    raise LookupError(index)


def load_books(
    session: Session, world: World, tmp: Path, books: dict[str, dict[str, list[str]]]
) -> None:
    """``books``: key -> {member code: [item statuses]}. Keys ``zh<n>`` are Chinese books
    (CHINESE_BOOKS[n], CNMARC), ``en<n>`` Library of Congress records (loc-60.mrc, record n);
    an empty status list gives a record without item data."""
    files: dict[str, list[bytes]] = {}
    for key, holders in books.items():
        n = int(key[2:])
        for code, statuses in holders.items():
            short = code[3:].lower()
            if key.startswith("zh"):
                rec = cnmarc_record(
                    CHINESE_BOOKS[n], f"{short}-zh{n}", f"R{n}", f"{short}Z{n}", "available", code
                )
                rec.remove_fields("995")
                for i, status in enumerate(statuses):
                    subs = [Subfield("b", code), Subfield("f", f"{short}Z{n}-{i}")]
                    subs.append(Subfield("k", f"R{n}/{i}"))
                    if status == "on_loan":
                        subs.append(Subfield("n", "2099-01-01"))
                    if status == "not_for_loan":
                        subs.append(Subfield("o", "1"))
                    rec.add_field(Field(tag="995", indicators=Indicators(" ", " "), subfields=subs))
            else:
                base = _lc_record(n)
                rec = Record(leader=base.leader, fields=list(base.fields))
                rec.remove_fields("001", "852", "952")
                rec.add_field(Field(tag="001", data=f"{short}-en{n}"))
                for i, status in enumerate(statuses):
                    koha = {"available": "0", "on_loan": "", "not_for_loan": "1"}[status]
                    subs = [Subfield("a", code), Subfield("p", f"{short}E{n}-{i}")]
                    subs.append(Subfield("o", f"QA{n}.{i}"))
                    if status == "on_loan":
                        subs.append(Subfield("q", "2099-01-01"))
                    else:
                        subs.append(Subfield("7", koha))
                    rec.add_field(Field(tag="952", indicators=Indicators(" ", " "), subfields=subs))
            files.setdefault(code, []).append(rec.as_marc())
    for code, recs in files.items():
        path = tmp / f"{code}.mrc"
        path.write_bytes(b"".join(recs))
        catalog.load_files(SYSTEM, code, [path], workers=1)
    session.expire_all()
    for key, holders in books.items():
        code = next(iter(holders))
        short = code[3:].lower()
        cid = session.scalar(
            select(SourceRecord.cluster_id).where(
                SourceRecord.member_id == world.ids[code],
                SourceRecord.record_id == f"{short}-{key}",
            )
        )
        assert cid is not None, key
        world.clusters[key] = int(cid)


def build(
    session: Session,
    tmp: Path,
    books: dict[str, dict[str, list[str]]] | None = None,
    readers: tuple[str, ...] = ("CN-GZUCM",),
    staff: tuple[str, ...] = (),
) -> World:
    world = World(ids=load_members(session))
    for code in readers:
        short = code[3:].lower()
        world.readers[code] = add_user(
            session, world, f"{short}-reader", Role.reader, code, f"{short}@reader.example.org"
        )
    for code, member_id in world.ids.items():
        # Staff of every member as principals (what a signed-in staff member acts as); real
        # accounts only where a test signs in through the web.
        if code in staff:
            world.staff[code] = add_user(
                session, world, f"{code[3:].lower()}-staff", Role.library_staff, code
            )
        else:
            world.staff[code] = Principal(
                kind="user",
                label=f"user:{code[3:].lower()}-staff",
                role=Role.library_staff,
                member_id=member_id,
                member_code=code,
            )
    if books:
        load_books(session, world, tmp, books)
    return world


def user(session: Session, username: str) -> Any:
    return session.scalar(select(User).where(User.username == username))
