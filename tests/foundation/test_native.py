"""The compiled hot modules (consortia.native): used only while they match their source, and
computing exactly what the Python source computes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from consortia import native

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("native_probe.py")


def _run_probe(**env: str) -> list[str]:
    run = subprocess.run(
        [sys.executable, str(PROBE)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.splitlines()


def _manifest(where: Path, sha: dict[str, str], suffix: str | None = None) -> dict[str, object]:
    manifest = {
        "suffix": suffix or sysconfig.get_config_var("EXT_SUFFIX"),
        "modules": {m: {"file": f"{m}.so", "sha256": s} for m, s in sha.items()},
        "shared": {"abc__mypyc": "abc__mypyc.so"},
    }
    (where / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    return manifest


def test_a_compiled_module_is_used_only_while_its_source_is_unchanged(tmp_path: Path) -> None:
    textfold, normalize = "consortia.catalog.textfold", "consortia.catalog.normalize"
    current = hashlib.sha256(native.source_of(textfold).read_bytes()).hexdigest()
    manifest = _manifest(tmp_path, {textfold: current, normalize: "0" * 64})
    finder = native._Finder(tmp_path, manifest)
    spec = finder.find_spec(textfold)
    assert spec is not None and spec.origin == str(tmp_path / f"{textfold}.so")
    # normalize.py is not what was compiled: it is imported from its source.
    assert finder.find_spec(normalize) is None
    assert finder.find_spec("consortia.catalog.ingest") is None
    assert finder.find_spec("abc__mypyc") is not None  # the shared library of the modules
    # Nothing current: not even the shared library is offered.
    stale = native._Finder(tmp_path, _manifest(tmp_path, {textfold: "1" * 64}))
    assert stale.files == {}


def test_a_build_for_another_python_is_ignored(tmp_path: Path) -> None:
    _manifest(tmp_path, {}, suffix=".cpython-27-x86_64-linux-gnu.so")
    assert native.read_manifest(tmp_path) is None
    (tmp_path / "manifest.json").write_text("not json", "utf-8")
    assert native.read_manifest(tmp_path) is None
    assert native.read_manifest(tmp_path / "missing") is None


def test_native_0_turns_them_off() -> None:
    lines = _run_probe(CONSORTIA_NATIVE="0")
    assert json.loads(lines[0]) == {"compiled": []}


def test_compiled_and_pure_modules_compute_the_same() -> None:
    """Reading, normalising, keys, items, merging, documents, tokens and decisions over every
    real record the tests hold (MARC21, UNIMARC, MARC-8, CJK, malformed files, the 4,496
    records of the labelled set), both ways."""
    if native.read_manifest(native.directory()) is None:
        pytest.skip("no compiled build in this environment (make builds one)")
    compiled = _run_probe()
    pure = _run_probe(CONSORTIA_NATIVE="0")
    assert json.loads(compiled[0]) == {"compiled": list(native.MODULES)}, (
        "a build exists but its modules are not used: run `make native` after changing them"
    )
    assert len(compiled) == len(pure) > 10_000
    for n, (a, b) in enumerate(zip(compiled[1:], pure[1:], strict=True)):
        assert a == b, f"line {n + 1} differs:\ncompiled {a[:500]}\npure     {b[:500]}"
