"""yaz-client (Debian package yaz) as the SRU client of the real app under uvicorn.

SOAP (yaz-client's default for http: targets), SRU 1.2 GET and SRU 2.0 GET: the hit counts are
the service's, the records it receives parse back with pymarc and equal the source records as
loaded, Chinese queries travel as UTF-8, scan lists index terms, and bad CQL comes back as the
SRU diagnostic with its position.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymarc
import pytest
from sqlalchemy.orm import Session

from consortia.accounts.roles import CLI
from consortia.catalog import service as catalog
from consortia.search import cql, service
from tests.conftest import add_region_and_member, app_server

DATA = Path(__file__).parent.parent / "data"
LOC = DATA / "ingest" / "loc-60.mrc"
CHI = DATA / "search" / "lc-chi-40.mrc"
YAZ = shutil.which("yaz-client")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(YAZ is None, reason="needs yaz-client (Debian package yaz)"),
]


@pytest.fixture
def server(db_url: str, session: Session) -> Iterator[str]:
    add_region_and_member(session, "CN-A", region="south")
    session.commit()
    catalog.load_files(CLI, "CN-A", [LOC, CHI], workers=1)
    with app_server() as base:
        yield base + "/sru"


def yaz(*commands: str) -> str:
    assert YAZ is not None
    script = "\n".join([*commands, "quit"]) + "\n"
    done = subprocess.run(
        [YAZ], input=script.encode(), capture_output=True, timeout=60, check=False
    )
    return done.stdout.decode("utf-8", "replace")


def sources() -> dict[str, pymarc.Record]:
    out = {}
    for path in (LOC, CHI):
        with path.open("rb") as fh:
            for r in pymarc.MARCReader(fh, to_unicode=True):
                out[r["001"].value()] = r
    return out


def dumped(path: Path) -> list[pymarc.Record]:
    """yaz-client's marcdump of XML records: the records one after the other."""
    text = path.read_text(encoding="utf-8")
    wrapped = f'<collection xmlns="http://www.loc.gov/MARC21/slim">{text}</collection>'
    path.write_text(wrapped, encoding="utf-8")
    return pymarc.parse_xml_to_array(str(path))


def hits(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"Number of hits: (\d+)", output)]


@pytest.mark.parametrize("method", ["soap", "get 1.2", "get 2.0", "post 1.2"])
def test_records_received_equal_the_source(
    server: str, session: Session, tmp_path: Path, method: str
) -> None:
    dump = tmp_path / "dump.xml"
    commands = [] if method == "soap" else [f"sru {method}"]
    out = yaz(
        *commands,
        f"open {server}",
        f"set_marcdump {dump}",
        "find dc.title = history",
        "show 1+5",
    )
    total = service.search(session, cql.parse("dc.title = history").tree).total
    assert total == 5
    assert hits(out)[0] == total, out
    received = dumped(dump)
    assert len(received) == 5
    src = sources()
    for rec in received:
        assert rec.as_dict() == src[rec["001"].value()].as_dict()
        assert "history" in rec.title.lower()


def test_chinese_query_and_record(server: str, session: Session, tmp_path: Path) -> None:
    dump = tmp_path / "dump.xml"
    out = yaz("sru get 1.2", f"open {server}", f"set_marcdump {dump}", "find 明代", "show 1")
    assert hits(out)[0] == service.search(session, cql.parse("明代").tree).total >= 1
    (rec,) = dumped(dump)
    assert rec.as_dict() == sources()[rec["001"].value()].as_dict()
    vernacular = " ".join(f.value() for f in rec.get_fields("880"))
    assert "明代" in vernacular


def test_dublin_core_scan_and_diagnostics(server: str) -> None:
    out = yaz(f"open {server}", "schema dc", "find dc.title = history", "show 1")
    assert "<dc:title>" in out and "history" in out.lower()
    out = yaz(f"open {server}", "scan dc.title=hist")
    assert re.search(r"^history: 5$", out, re.M), out
    out = yaz("sru get 2.0", f"open {server}", "find dc.title = (")
    assert "info:srw/diagnostic/1/10" in out and "Details: 12" in out
    out = yaz(f"open {server}", "find dc.colour = red")
    assert "info:srw/diagnostic/1/16" in out and "Details: dc.colour" in out
    out = yaz(f"open {server}", "schema mods", "find dc.title = history", "show 1")
    assert "info:srw/diagnostic/1/66" in out
