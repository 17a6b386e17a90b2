"""Search benchmark: a 1,000,000-record union catalogue, a fixed mix of queries, measured at the
service level and over HTTP (1 and 20 concurrent clients), against Zebra on the same records and
the same queries in the same run. Prints a table with medians, p95 and the ratios.

    .venv/bin/python bench/search.py --dir /tmp/search-bench [--total 1000000] [--repeat 5]
        [--skip-load] [--skip-zebra] [--skip-http] [--ingest-cost 20000]

Records: the 250,000-record LC file (BooksAll.2016.part01.utf8 in the pymarc 5.4.0 sdist:
``pip download --no-deps --no-binary :all: pymarc==5.4.0``) loaded as several members (four full
copies and a partial fifth up to ``--total``), each copy with realistic variation (bench/ingest.py's
member_copy), plus the CJK records of the real MARC files (``--cjk``) as one more member. The
catalogue is built once in ``--dir`` and reused (``--skip-load``); the search index is built
with ``consortia search reindex`` (timed here) when it is empty.

Zebra (Debian idzebra-2.0) gets the same files, one database per member, configured as
/work/shared/anchors/zebra/README.md says (ICU words, bib-1 attributes) plus a rule indexing
the 880 fields (vernacular script: the Chinese of the CJK records), and the same queries
in PQF through yaz-client; its latency is what yaz-client reports ("Elapsed") for the search
plus the present of the first page, as ours is the search plus the first page (with facets).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymarc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

LC_FILE = Path("/tmp/pymarc-sdist/pymarc-5.4.0/BooksAll.2016.part01.utf8")
CJK_DIR = Path("/work/shared/data/marc")
ZEBRA_ANCHORS = Path("/work/shared/anchors/zebra")
ZEBRA_MODULES = Path("/usr/lib/x86_64-linux-gnu/idzebra-2.0/modules")
PAGE = 20


# --------------------------------------------------------------------------- the catalogue


def _bench_ingest() -> Any:
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _is_cjk_record(rec: pymarc.Record) -> bool:
    text = " ".join(f.value() for f in rec.get_fields("245", "880", "100", "260", "264"))
    return any("\u3400" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pymarc reports every odd character of old files on stdout/stderr; keep the table clean."""
    with open(os.devnull, "w") as null, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = os.dup(1), os.dup(2)
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(old[0], 1)
            os.dup2(old[1], 2)


def cjk_file(src_dir: Path, out: Path) -> int:
    """Every record with Han, kana or hangul text in the real MARC files, as UTF-8 ISO 2709."""
    n = 0
    seen: set[bytes] = set()
    with out.open("wb") as dst, _quiet():
        for path in sorted(src_dir.rglob("*")):
            if path.suffix.lower() not in (".mrc", ".marc", ".dat", ".xml", ".utf8"):
                continue
            if path.stat().st_size > 50_000_000:
                continue
            try:
                if path.suffix.lower() == ".xml":
                    records = pymarc.parse_xml_to_array(str(path))
                else:
                    with path.open("rb") as fh:
                        records = list(pymarc.MARCReader(fh, to_unicode=True, permissive=True))
            except Exception:
                continue
            for rec in records:
                if rec is None or rec.leader is None or not _is_cjk_record(rec):
                    continue
                try:
                    rec.leader = pymarc.Leader(str(rec.leader)[:9] + "a" + str(rec.leader)[10:])
                    data = rec.as_marc()
                except Exception:
                    continue
                if data not in seen:
                    seen.add(data)
                    dst.write(data)
                    n += 1
    return n


def _count_records(path: Path) -> int:
    return path.read_bytes().count(b"\x1d")


def member_files(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(member code, file): four LC copies, the CJK records, and a partial LC copy topping the
    total up to --total."""
    d: Path = args.dir
    d.mkdir(parents=True, exist_ok=True)
    bi = _bench_ingest()
    files: list[tuple[str, Path]] = []
    for k in range(4):
        out = d / f"member{k}.mrc"
        if not out.exists():
            bi.member_copy(LC_FILE, out.with_suffix(".part"), k, args.copy_records, seed=2016)
            out.with_suffix(".part").rename(out)
        files.append((f"CN-B{k}", out))
    cjk = d / "cjk.mrc"
    if not cjk.exists():
        cjk_file(args.cjk, cjk.with_suffix(".part"))
        cjk.with_suffix(".part").rename(cjk)
    files.append(("CN-B4", cjk))
    have = sum(_count_records(p) for _, p in files)
    top_up = d / "member5.mrc"
    if have < args.total and not top_up.exists():
        bi.member_copy(LC_FILE, top_up.with_suffix(".part"), 5, args.total - have, seed=2016)
        top_up.with_suffix(".part").rename(top_up)
    if top_up.exists():
        files.append(("CN-B5", top_up))
    return files


def build(args: argparse.Namespace, files: list[tuple[str, Path]]) -> dict[str, float]:
    from sqlalchemy import func, select

    from consortia.accounts.roles import CLI
    from consortia.catalog import service
    from consortia.catalog.models import LoadBatch
    from consortia.db import get_engine, migrate, session_scope
    from consortia.members import service as members
    from consortia.members.models import Member
    from consortia.search import index

    out: dict[str, float] = {}
    migrate()
    with session_scope() as s:
        for code, zh, en in (("south", "华南", "South"), ("north", "华北", "North")):
            members.ensure_region(s, CLI, code, zh, en)
        for k, (code, _) in enumerate(files):
            if members._find(s, code) is None:
                members.import_rows(
                    s,
                    CLI,
                    [
                        {
                            "code": code,
                            "name_zh": f"馆{k}",
                            "name_en": f"Library {k}",
                            "type": "academic",
                            "sector": "education",
                            "region": "south" if k % 2 == 0 else "north",
                        }
                    ],
                )
    for code, path in files:
        with session_scope() as s:
            done = s.scalar(
                select(func.count())
                .select_from(LoadBatch)
                .join(Member, Member.id == LoadBatch.member_id)
                .where(Member.code == code, LoadBatch.status == "done")
            )
        if done:
            continue
        t0 = time.perf_counter()
        summary = service.load_files(CLI, code, [path], workers=2)
        secs = time.perf_counter() - t0
        print(f"loaded {code}: {summary.read} records in {secs:.0f} s", flush=True)
    with get_engine().connect() as conn:
        from consortia.search.backends import backend_for

        backend = backend_for(conn.dialect.name)
        if backend.all_count(conn) == 0:
            t0, c0 = time.perf_counter(), time.process_time()
            n = index.reindex_all(conn, part_size=5000)
            out["reindex_docs"] = n
            out["reindex_secs"] = time.perf_counter() - t0
            out["reindex_cpu"] = time.process_time() - c0
        elif args.optimize:
            # The index the ingest writer kept current has the segments of every batch
            # (FTS5 merges them only in part as it goes): searches read each term's postings
            # from all of them. Merged into one, as `consortia search reindex` leaves it.
            t0 = time.perf_counter()
            backend.finish_rebuild(conn)
            conn.commit()
            out["optimize_secs"] = time.perf_counter() - t0
    return out


def _head(path: Path, n: int) -> bytes:
    data = path.read_bytes()
    cut = 0
    for _ in range(n):
        cut = data.index(b"\x1d", cut) + 1
    return data[:cut]


def ingest_cost(n: int, args: argparse.Namespace) -> dict[str, float]:
    """What keeping the index current costs a load, per record: ``n`` LC records loaded into an
    empty SQLite catalogue as a first member (every record a new cluster) and then as a second
    member (every record joins and changes a cluster). Each load runs with the index deferred
    (the writer only marks the clusters it touched in ``search_pending``), then the index step
    — ``catalog.service.index_pending`` with two worker processes, what a big load does at its
    end — is timed on its own (wall, and CPU of this process: the writer)."""
    import tempfile

    from consortia.accounts.roles import CLI
    from consortia.catalog import service
    from consortia.db import migrate, reset_engine, session_scope
    from consortia.members import service as members
    from consortia.settings import reset_settings

    parts = [_head(args.dir / "member0.mrc", n), _head(args.dir / "member1.mrc", n)]
    results: dict[str, float] = {"records": n}
    saved = os.environ.get("CONSORTIA_DATABASE_URL")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["CONSORTIA_DATABASE_URL"] = f"sqlite:///{tmp}/cost.db"
            reset_settings()
            reset_engine()
            migrate()
            with session_scope() as s:
                members.ensure_region(s, CLI, "south", "华南", "South")
                members.import_rows(
                    s,
                    CLI,
                    [
                        {
                            "code": code,
                            "name_zh": "馆",
                            "name_en": "Library",
                            "type": "academic",
                            "sector": "education",
                            "region": "south",
                        }
                        for code in ("CN-X", "CN-Y")
                    ],
                )
            for k, code in enumerate(("CN-X", "CN-Y")):
                path = Path(tmp) / f"{code}.mrc"
                path.write_bytes(parts[k])
                t0 = time.perf_counter()
                service.load_files(CLI, code, [path], workers=2, defer_index=True)
                results[f"load_without_{k}"] = time.perf_counter() - t0
                t0, c0 = time.perf_counter(), time.process_time()
                results[f"indexed_{k}"] = service.index_pending(workers=2)
                results[f"index_wall_{k}"] = time.perf_counter() - t0
                results[f"index_cpu_{k}"] = time.process_time() - c0
                results[f"load_with_{k}"] = (
                    results[f"load_without_{k}"] + results[f"index_wall_{k}"]
                )
    finally:
        if saved is None:
            os.environ.pop("CONSORTIA_DATABASE_URL", None)
        else:
            os.environ["CONSORTIA_DATABASE_URL"] = saved
        reset_settings()
        reset_engine()
    return results


def upkeep_cost(n: int, args: argparse.Namespace) -> dict[str, float]:
    """CPU a cluster of ``index.reindex_clusters`` alone, in batches of 1,000 as the ingest
    writer calls it: ``n`` merged records of the catalogue copied into a scratch SQLite
    database, indexed as new documents, again unchanged, again with one more holding member
    (every document changes), and once more reading the merged records back itself."""
    import gc
    import sqlite3
    import tempfile

    import orjson

    from consortia.db import get_engine, migrate, reset_engine
    from consortia.search import index
    from consortia.settings import reset_settings

    src = sqlite3.connect(f"file:{args.dir / 'bench.db'}?mode=ro", uri=True)
    rows = src.execute("SELECT id, merged FROM clusters ORDER BY id LIMIT ?", (n,)).fetchall()
    merged = {int(cid): orjson.loads(m) for cid, m in rows}
    out: dict[str, float] = {"clusters": len(rows)}
    saved = os.environ["CONSORTIA_DATABASE_URL"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["CONSORTIA_DATABASE_URL"] = f"sqlite:///{tmp}/upkeep.db"
            reset_settings()
            reset_engine()
            migrate()
            eng = get_engine()
            with eng.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO clusters (id, title, merged, record_count, member_count, "
                    "updated_at) VALUES (?, '', ?, 1, 1, '2026-01-01')",
                    [(cid, m) for cid, m in rows],
                )
            ids = list(merged)
            # The ingest writer raises the cyclic GC's thresholds during a load; without that,
            # collections walking the 10,000 decoded records here would be most of the figure.
            gc_was = gc.get_threshold()
            gc.set_threshold(50_000, 50, 50)
            for label in ("new", "unchanged", "changed", "read back"):
                if label == "changed":
                    for m in merged.values():
                        m["members"] = [*m.get("members", []), "CN-X"]
                with eng.connect() as conn:
                    c0 = time.process_time()
                    for i in range(0, len(ids), 1000):
                        part = ids[i : i + 1000]
                        given = None if label == "read back" else {c: merged[c] for c in part}
                        index.reindex_clusters(conn, part, given)
                    conn.commit()
                    out[label] = (time.process_time() - c0) / len(ids)
            gc.set_threshold(*gc_was)
    finally:
        os.environ["CONSORTIA_DATABASE_URL"] = saved
        reset_settings()
        reset_engine()
    return out


# --------------------------------------------------------------------------- the queries


@dataclass(frozen=True)
class Q:
    kind: str
    ours: str  # search-box text, or CQL when cql
    pqf: str  # the same for Zebra
    cql: bool = False
    filters: tuple[tuple[str, str], ...] = ()
    zebra_bases: tuple[str, ...] = ()  # () = every member's database


TITLE_WORDS = ["history", "poems", "report", "law", "introduction", "science", "music", "church"]
PHRASES = ["united states", "civil war", "new york", "world war", "public health", "middle ages"]
AUTHORS = ["smith", "jones", "brown", "johnson", "williams", "miller", "davis", "wilson"]
CJK_WORDS = ["中国", "历史", "文学", "研究", "台湾", "社会", "经济", "政治"]
PINYIN = [
    ("zhong guo", "zhongguo"),
    ("li shi", "li shi"),
    ("wen xue", "wen xue"),
    ("zheng zhi", "zheng zhi"),
    ("jing ji", "jing ji"),
    ("she hui", "she hui"),
]
BOOLEAN = [
    (
        'dc.title = history and dc.subject = "united states" not dc.title = war',
        '@not @and @attr 1=4 history @attr 1=21 @attr 4=1 "united states" @attr 1=4 war',
    ),
    (
        "(dc.title = poems or dc.title = verse) and dc.creator = smith",
        "@and @or @attr 1=4 poems @attr 1=4 verse @attr 1=1003 smith",
    ),
    (
        "dc.subject = education and (dc.title = report or dc.title = survey)",
        "@and @attr 1=21 education @or @attr 1=4 report @attr 1=4 survey",
    ),
    ("dc.title = music not dc.subject = history", "@not @attr 1=4 music @attr 1=21 history"),
]


def _pqf_words(attr: str, text: str) -> str:
    words = text.split()
    out = f"{attr} {words[-1]}"
    for w in reversed(words[:-1]):
        out = f"@and {attr} {w} {out}"
    return out


def query_mix(isbns: list[str]) -> list[Q]:
    qs: list[Q] = []
    qs += [Q("title word", f"title:{w}", f"@attr 1=4 {w}") for w in TITLE_WORDS]
    qs += [Q("phrase", f'"{p}"', f'@attr 1=1016 @attr 4=1 "{p}"') for p in PHRASES]
    qs += [Q("author", f"author:{a}", f"@attr 1=1003 {a}") for a in AUTHORS]
    qs += [Q("ISBN", i, f"@attr 1=7 {i}") for i in isbns]
    qs += [Q("CJK word", w, f"@attr 1=1016 {w}") for w in CJK_WORDS]
    qs += [Q("pinyin", ours, _pqf_words("@attr 1=1016", z)) for ours, z in PINYIN]
    qs += [
        Q(
            "3 facets",
            w,
            f"@and @and @attr 1=1016 {w} @attr 1=54 eng @attr 1=31 @attr 5=1 199",
            filters=(("language", "eng"), ("year", "1990-1999"), ("member", "CN-B1")),
            zebra_bases=("CN-B1",),
        )
        for w in ("history", "science", "education", "economic")
    ]
    qs += [Q("boolean CQL", c, p, cql=True) for c, p in BOOLEAN]
    return qs


def sample_isbns(n: int) -> list[str]:
    """ISBNs as the records give them (020 $a), spread over the catalogue."""
    from sqlalchemy import text

    from consortia.db import get_engine

    with get_engine().connect() as conn:
        top = int(conn.scalar(text("SELECT max(id) FROM clusters")) or 0)
        out: list[str] = []
        for k in range(n * 4):
            cid = 1 + (top * k) // (n * 4)
            row = conn.execute(
                text(
                    "SELECT CAST(merged AS TEXT) FROM clusters WHERE id >= :c "
                    "AND CAST(merged AS TEXT) LIKE '%isbn13%' ORDER BY id LIMIT 1"
                ),
                {"c": cid},
            ).first()
            if row is None:
                continue
            import json

            merged = row[0] if isinstance(row[0], dict) else json.loads(row[0])
            isbns = [i["isbn13"] for i in merged.get("isbns", []) if i.get("valid")]
            if isbns and isbns[0] not in out:
                out.append(isbns[0])
            if len(out) >= n:
                break
    return out


def _isbn10(isbn13: str) -> str:
    from stdnum import isbn

    return str(isbn.to_isbn10(isbn13)) if isbn13.startswith("978") else isbn13


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


# --------------------------------------------------------------------------- our side


def build_segment() -> dict[str, Any]:
    from consortia.db import get_engine
    from consortia.search import segment

    with get_engine().connect() as conn:
        return segment.build(conn).as_dict()


def run_service(
    qs: list[Q], repeat: int, totals: dict[str, int] | None = None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU time of each query in this process (the service does all its work
    here: on a machine shared with other jobs the CPU time is what an idle core would take)."""
    from consortia.db import session_scope
    from consortia.search import cql, searchbox, service
    from consortia.settings import reset_settings

    reset_settings()  # CONSORTIA_SEARCH_SEGMENTS as set now
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    with session_scope() as s:
        for rnd in range(repeat + 1):
            for q in qs:
                t0, c0 = time.perf_counter(), time.process_time()
                tree = cql.parse(q.ours).tree if q.cql else searchbox.parse(q.ours)
                r = service.search(s, tree, limit=PAGE, filters=list(q.filters))
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                if rnd:  # the first round warms the caches
                    wall.setdefault(q.kind, []).append(dt)
                    cpu.setdefault(q.kind, []).append(dc)
                elif totals is not None:
                    totals[q.kind] = totals.get(q.kind, 0) + r.total
    return wall, cpu


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# One server process per core, all on one port (SO_REUSEPORT), each made here rather than with
# uvicorn --workers: uvicorn's worker processes get the listening socket with proto 0, so asyncio
# does not set TCP_NODELAY on their connections and every keep-alive answer waits ~40 ms for a
# delayed ACK (measured: 47 ms for a static file with --workers 2, 2.3 ms with one process).
_SERVE = """
import socket, sys, uvicorn
from consortia.web.app import create_app
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(2048)
uvicorn.Server(uvicorn.Config(create_app(), log_level="warning")).run(sockets=[s])
"""


@contextlib.contextmanager
def http_server(workers: int) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "CONSORTIA_SECRET_KEY": "bench"}
    python = str(ROOT / ".venv/bin/python")
    procs = [subprocess.Popen([python, "-c", _SERVE, str(port)], env=env) for _ in range(workers)]
    base = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(base + "/api/v1/search?q=warmup", timeout=30)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                for p in procs:
                    p.terminate()
                raise
            time.sleep(0.5)
    time.sleep(5)  # every process up, not only the first
    try:
        yield base
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def _params(q: Q) -> dict[str, Any]:
    p: dict[str, Any] = {"limit": PAGE}
    p["cql" if q.cql else "q"] = q.ours
    if q.filters:
        p["facet"] = [f"{f}:{v}" for f, v in q.filters]
    return p


def run_http(base: str, qs: list[Q], repeat: int, clients: int) -> dict[str, list[float]]:
    import httpx

    out: dict[str, list[float]] = {}
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as c:
            order = qs[k % len(qs) :] + qs[: k % len(qs)]  # clients start at different queries
            for rnd in range(repeat + 1):
                for q in order:
                    t0 = time.perf_counter()
                    r = c.get("/api/v1/search", params=_params(q))
                    dt = time.perf_counter() - t0
                    assert r.status_code == 200, r.text
                    if rnd:
                        with lock:
                            out.setdefault(q.kind, []).append(dt)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return out


# --------------------------------------------------------------------------- Zebra


def zebra_setup(
    d: Path, files: list[tuple[str, Path]], limit: int | None = None
) -> tuple[Path, list[str], float]:
    """Zebra's configuration, the members (databases) indexed — the first ``limit`` files —
    and the seconds their indexing took. Each file is indexed once (a stamp per file)."""
    z = d / "zebra"
    for sub in ("reg", "lock", "tmp"):
        (z / sub).mkdir(parents=True, exist_ok=True)
    # The anchor's MARC21 rules plus one for 880 (vernacular script of a linked field) as title,
    # author and subject words: without it Zebra indexes none of the Chinese script of LC's
    # CJK records (checked: 中国 finds 0 of the 7 that have it; 2 with the rule, 中國 4), and
    # a CJK query is then a search of nothing. The folder comes first in profilePath, so this
    # copy is read instead of the anchor's.
    abs_rules = (ZEBRA_ANCHORS / "anchor-marc21.abs").read_text()
    (z / "anchor-marc21.abs").write_text(
        abs_rules.rstrip("\n") + "\nmelm 880\t\ttitle,author,subject-heading\n"
    )
    cfg = z / "zebra.cfg"
    cfg.write_text(
        f"profilePath: {z}:{ZEBRA_ANCHORS}:/usr/share/idzebra-2.0/tab\n"
        f"modulePath: {ZEBRA_MODULES}\n"
        "attset: bib1.att\nattset: explain.att\n"
        "recordType: grs.marcxml.anchor-marc21\n"
        "index: anchor.idx\nencoding: UTF-8\n"
        f"register: {z}/reg:40G\nlockDir: {z}/lock\n"
        f"keyTmpDir: {z}/tmp\nsetTmpDir: {z}/tmp\n"
        "isam: b\nmemMax: 256\n"
    )
    everything = (z / "indexed").exists()  # an older run indexed every file
    if not everything and not (z / "initialised").exists():
        subprocess.run(["zebraidx", "-c", str(cfg), "init"], check=True, capture_output=True)
        (z / "initialised").write_text("")
    done: list[str] = []
    secs = 0.0
    for code, path in files[:limit]:
        stamp = z / f"indexed-{code}"
        if not everything and not stamp.exists():
            t0 = time.perf_counter()
            log = ["-l", str(z / "zebraidx.log")]
            subprocess.run(
                ["zebraidx", "-c", str(cfg), "-d", code, *log, "update", str(path)], check=True
            )
            subprocess.run(["zebraidx", "-c", str(cfg), *log, "commit"], check=False)
            stamp.write_text(f"{time.perf_counter() - t0:.1f}\n")
        if stamp.exists():
            secs += float(stamp.read_text().strip() or 0)
        done.append(code)
    return cfg, done, secs


@contextlib.contextmanager
def zebra_server(cfg: Path) -> Iterator[str]:
    port = _free_port()
    gfs = cfg.parent / "yazgfs.xml"
    gfs.write_text(
        "<yazgfs>\n"
        f'  <listen id="l1">tcp:127.0.0.1:{port}</listen>\n'
        '  <server id="s1" listenref="l1">\n'
        f"    <config>{cfg}</config>\n"
        f"    <cql2rpn>{ZEBRA_ANCHORS / 'anchor-pqf.properties'}</cql2rpn>\n"
        "  </server>\n</yazgfs>\n"
    )
    proc = subprocess.Popen(
        ["zebrasrv", "-f", str(gfs), "-l", str(cfg.parent / "zebrasrv.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError("zebrasrv did not start")
        time.sleep(0.2)
    try:
        yield f"tcp:127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_zebra(
    target: str, qs: list[Q], repeat: int, bases: list[str]
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Each query: find + show 1+20 in one yaz-client session; the two Elapsed summed (a query
    without hits: the find alone). yaz-client prompts "Z> " before every command it reads, so
    its output splits into one block per command."""
    commands = [f"open {target}", "format usmarc", "elements F"]
    plan: list[tuple[int, Q, int]] = []  # (round, query, index of its find command)
    for rnd in range(repeat + 1):
        for q in qs:
            commands.append(f"base {' '.join(q.zebra_bases or tuple(bases))}")
            plan.append((rnd, q, len(commands)))
            commands.append(f"find {q.pqf}")
            commands.append(f"show 1+{PAGE}")
    commands.append("quit")
    done = subprocess.run(
        ["yaz-client"], input="\n".join(commands).encode(), capture_output=True, timeout=3600
    )
    blocks = done.stdout.decode("utf-8", "replace").split("Z> ")[1:]
    out: dict[str, list[float]] = {}
    counts: dict[str, int] = {}

    def elapsed(block: str) -> float:
        m = re.search(r"Elapsed: ([0-9.]+)", block)
        return float(m.group(1)) if m else 0.0

    for rnd, q, i in plan:
        find, show = blocks[i], blocks[i + 1]
        if "Elapsed" not in find:
            raise RuntimeError(f"yaz-client: no answer to find {q.pqf}: {find[:300]}")
        if rnd:
            out.setdefault(q.kind, []).append(elapsed(find) + elapsed(show))
        else:
            m = re.search(r"Number of hits: (\d+)", find)
            counts[q.kind] = counts.get(q.kind, 0) + (int(m.group(1)) if m else 0)
    return out, counts


# --------------------------------------------------------------------------- report


def table(results: dict[str, dict[str, list[float]]], kinds: list[str]) -> None:
    cols = list(results)
    width = {c: max(12, len(c) + 6) for c in cols}
    head = f"{'query':14}" + "".join(
        f"{c + ' p50':>{width[c]}}{c + ' p95':>{width[c]}}" for c in cols
    )
    if "zebra" in results:
        head += f"{'svc/zebra':>11}{'cpu/zebra':>11}{'http1/zebra':>12}"
    print(head)
    for kind in kinds:
        row = f"{kind:14}"
        for c in cols:
            vals = results[c].get(kind, [])
            w = width[c]
            row += f"{percentile(vals, 50) * 1000:{w}.1f}{percentile(vals, 95) * 1000:{w}.1f}"
        if "zebra" in results:
            z = percentile(results["zebra"].get(kind, []), 50)
            # Ours with the segment when both modes ran.
            on = " seg on" if "service seg on" in results else ""
            s = percentile(results.get(f"service{on}", {}).get(kind, []), 50)
            c = percentile(results.get(f"svc cpu{on}", {}).get(kind, []), 50)
            h = percentile(results.get(f"http1{on}", {}).get(kind, []), 50)
            row += f"{s / z:11.2f}{c / z:11.2f}{h / z:12.2f}"
        print(row)
    row = f"{'all':14}"
    for c in cols:
        vals = [v for k in kinds for v in results[c].get(k, [])]
        w = width[c]
        row += f"{percentile(vals, 50) * 1000:{w}.1f}{percentile(vals, 95) * 1000:{w}.1f}"
    print(row)
    print("(milliseconds)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=Path("/tmp/search-bench"))
    ap.add_argument("--total", type=int, default=1_000_000)
    ap.add_argument("--cjk", type=Path, default=CJK_DIR)
    ap.add_argument("--database", default=None, help="default: DIR/bench.db (SQLite)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-zebra", action="store_true")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--http-workers", type=int, default=2)
    ap.add_argument(
        "--search-threads",
        default="1",
        help="searches a server process runs at once (CONSORTIA_SEARCH_THREADS); several, "
        "comma-separated, compare them (e.g. 1,40: 40 was the thread pool's width before the lane)",
    )
    ap.add_argument("--lane-rounds", type=int, default=2, help="alternations when comparing")
    ap.add_argument(
        "--segments",
        default="on",
        help="answer from the index's in-memory segment (on, built first) or the SQL (off); "
        "on,off compares them, alternated round by round",
    )
    ap.add_argument("--ingest-cost", type=int, default=0, help="records for the cost test")
    ap.add_argument(
        "--copy-records", type=int, default=None, help="records of the LC file per member copy"
    )
    ap.add_argument("--upkeep", type=int, default=0, help="clusters for the index upkeep cost test")
    ap.add_argument(
        "--zebra-members", type=int, default=None, help="index only the first N member files"
    )
    ap.add_argument(
        "--optimize",
        action="store_true",
        help="merge the index the loads kept current into one (SQLite: FTS5 optimize)",
    )
    args = ap.parse_args()
    url = args.database or f"sqlite:///{args.dir / 'bench.db'}"
    os.environ["CONSORTIA_DATABASE_URL"] = url

    files = member_files(args)
    built = build(args, files)
    from sqlalchemy import text

    from consortia.db import get_engine

    with get_engine().connect() as conn:
        records = conn.scalar(text("SELECT count(*) FROM source_records WHERE NOT deleted"))
        clusters = conn.scalar(text("SELECT count(*) FROM clusters"))
    print(f"catalogue: {records} records, {clusters} clusters, database {url.split(':')[0]}")
    if "optimize_secs" in built:
        print(f"index merged (optimize) in {built['optimize_secs']:.0f} s")
    if "reindex_docs" in built:
        print(
            f"index rebuilt: {built['reindex_docs']:.0f} documents in {built['reindex_secs']:.0f} s"
            f" ({built['reindex_secs'] / built['reindex_docs'] * 1e6:.0f} µs a cluster)"
        )
    if args.ingest_cost:
        cost = ingest_cost(args.ingest_cost, args)
        n = cost["records"]
        for k, what in enumerate(("first member (new clusters)", "second member (joins them)")):
            print(
                f"ingest, {what}, {n:.0f} records: {cost[f'load_without_{k}']:.1f} s with the "
                f"index deferred, {cost[f'load_with_{k}']:.1f} s with the index step after it "
                f"({cost[f'indexed_{k}']:.0f} clusters: "
                f"{cost[f'index_wall_{k}'] / n * 1e6:.0f} µs a record wall, "
                f"{cost[f'index_cpu_{k}'] / n * 1e6:.0f} µs CPU of the writer)"
            )

    if args.upkeep:
        up = upkeep_cost(args.upkeep, args)
        print(
            f"index upkeep (reindex_clusters, {up['clusters']:.0f} clusters, batches of 1000), "
            "CPU a cluster: "
            + ", ".join(f"{k} {up[k] * 1e6:.0f} µs" for k in ("new", "unchanged", "changed"))
            + f", reading the merged records back {up['read back'] * 1e6:.0f} µs"
        )

    isbns = sample_isbns(8)
    qs = query_mix([_isbn10(i) for i in isbns])
    kinds = list(dict.fromkeys(q.kind for q in qs))
    results: dict[str, dict[str, list[float]]] = {}
    ours: dict[str, int] = {}
    zebra_hits: dict[str, int] = {}
    # With both segment modes the service and HTTP runs alternate between them, round by
    # round, in the same invocation (the segment is built first, timed).
    modes = [m.strip() for m in args.segments.split(",")]
    if "on" in modes:
        seg = build_segment()
        print(
            f"segment: {seg['documents']} documents, {seg['terms']} terms, "
            f"{seg['bytes'] / 1e6:.0f} MB, built in {seg['seconds']:.1f} s"
            + ("" if seg["fresh"] else " (already built)")
        )
    rounds = args.lane_rounds if len(modes) > 1 else 1
    for rnd in range(rounds):
        for k, mode in enumerate(modes):
            os.environ["CONSORTIA_SEARCH_SEGMENTS"] = "true" if mode == "on" else "false"
            tag = "" if len(modes) == 1 else f" seg {mode}"
            # Hits are counted once (every run finds the same; summing would multiply them).
            first = rnd == 0 and k == 0
            wall, cpu = run_service(qs, args.repeat, ours if first else None)
            for name, got in ((f"service{tag}", wall), (f"svc cpu{tag}", cpu)):
                col = results.setdefault(name, {})
                for kind, vals in got.items():
                    col.setdefault(kind, []).extend(vals)
    if not args.skip_http:
        # Each lane width (searches a server process runs at once) and segment mode gets its
        # own servers; with several, their runs alternate, round by round, and the columns are
        # named by width and mode.
        widths = [int(w) for w in args.search_threads.split(",")]
        configs = [(w, m) for w in widths for m in modes]
        for rnd in range(args.lane_rounds if len(configs) > 1 else 1):
            for w, mode in configs:
                os.environ["CONSORTIA_SEARCH_THREADS"] = str(w)
                os.environ["CONSORTIA_SEARCH_SEGMENTS"] = "true" if mode == "on" else "false"
                tag = ("" if len(widths) == 1 else f" t{w}") + (
                    "" if len(modes) == 1 else f" seg {mode}"
                )
                with http_server(args.http_workers) as base:
                    for clients, name in ((1, "http1"), (20, "http20")):
                        n = args.repeat if clients == 1 else max(1, args.repeat // 2)
                        got = run_http(base, qs, n, clients)
                        col = results.setdefault(name + tag, {})
                        for kind, vals in got.items():
                            col.setdefault(kind, []).extend(vals)
                print(
                    f"HTTP with {w} search thread(s) a process, segment {mode}, round {rnd + 1}: "
                    "load average "
                    f"{os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    zebra_members: list[str] = []
    if not args.skip_zebra:
        cfg, zebra_members, idx_secs = zebra_setup(args.dir, files, args.zebra_members)
        zebra_records = sum(_count_records(p) for c, p in files if c in zebra_members)
        print(
            f"zebra: {zebra_records} records of {len(zebra_members)} members "
            f"({', '.join(zebra_members)}), indexed in {idx_secs:.0f} s"
        )
        zqs = [q for q in qs if set(q.zebra_bases) <= set(zebra_members)]
        with zebra_server(cfg) as target:
            results["zebra"], zebra_hits = run_zebra(target, zqs, args.repeat, zebra_members)
    print(
        f"query mix: {len(qs)} queries, {args.repeat} rounds after one warm-up; "
        f"page of {PAGE} with all facets"
    )
    table(results, kinds)
    print("hits found, summed over the queries of each type (ours: clusters; Zebra: records,")
    print("one per member copy, as its MARC21 rules and ICU words find them):")
    for kind in kinds:
        print(f"  {kind:14} ours {ours.get(kind, 0):>9}   zebra {zebra_hits.get(kind, 0):>9}")
    print(f"load average during the run (1, 5, 15 min): {os.getloadavg()}")
    print(f"finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
