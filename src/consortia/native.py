"""Compiled copies of the hot pure-Python modules, used only while they match their source.

Reading, normalising, matching and building index documents are Python work on every record of
every load. mypyc compiles those modules, unchanged, to C extensions (``scripts/build-native.py``,
run by ``make``), which does the same work in less CPU time. The Python source stays the
reference and the fallback:

* a compiled module is loaded only if the SHA-256 of the ``.py`` beside it equals the one it was
  built from (the build's ``manifest.json``), so an edited module is never shadowed by an older
  build: it simply runs as Python until the next build;
* a build for another Python (extension suffix) is ignored;
* ``CONSORTIA_NATIVE=0`` turns them off (the test script runs its second pass that way, so both
  forms pass the whole suite).

The compiled files live in the virtual environment (``<prefix>/lib/consortia-native``), never
in the source tree.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

# Modules on the per-record paths of a load and of the index. Each must compile with mypyc and
# behave the same compiled (tests/foundation/test_native.py compares their results).
MODULES = (
    "consortia.catalog.textfold",
    "consortia.catalog.normalize",
    "consortia.catalog.matching",
    "consortia.catalog.marc",
    "consortia.catalog.holdings",
    "consortia.search.cjk",
)

SRC = Path(__file__).resolve().parent.parent  # the directory holding the package


def directory() -> Path:
    """Where the build puts the compiled modules: in the environment, not the source tree."""
    return Path(
        os.environ.get("CONSORTIA_NATIVE_DIR") or Path(sys.prefix) / "lib" / "consortia-native"
    )


def enabled() -> bool:
    return os.environ.get("CONSORTIA_NATIVE", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def source_of(module: str) -> Path:
    return SRC.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(where: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((where / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("suffix") != sysconfig.get_config_var(
        "EXT_SUFFIX"
    ):
        return None
    return manifest


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the compiled module for a listed name whose source is unchanged since the build."""

    def __init__(self, where: Path, manifest: dict[str, Any]) -> None:
        self.where = where
        self.files: dict[str, str] = {}
        for name, entry in manifest.get("modules", {}).items():
            source = source_of(name)
            # Checked once, when the package is imported: a module edited while a process runs
            # is not re-imported by it anyway.
            if source.is_file() and digest(source) == entry.get("sha256"):
                self.files[name] = entry["file"]
        if self.files:
            for name, file in manifest.get("shared", {}).items():
                self.files[name] = file

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        return importlib.util.spec_from_file_location(fullname, self.where / file)


def compiled() -> list[str]:
    """The listed modules now loaded from their compiled form."""
    out = []
    for name in MODULES:
        module = sys.modules.get(name)
        if module is not None and not str(getattr(module, "__file__", "")).endswith(".py"):
            out.append(name)
    return out


def install() -> None:
    """Put the finder first on the import path, if compiled modules match their sources."""
    if not enabled() or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    where = directory()
    manifest = read_manifest(where)
    if manifest is None:
        return
    finder = _Finder(where, manifest)
    if finder.files:
        sys.meta_path.insert(0, finder)


def describe() -> str:
    """One line for logs: which form of the hot modules this process runs."""
    if not enabled():
        return "pure Python modules (CONSORTIA_NATIVE=0)"
    install()
    finder = next((f for f in sys.meta_path if isinstance(f, _Finder)), None)
    n = len([m for m in MODULES if finder is not None and m in finder.files])
    return f"{n} of {len(MODULES)} hot modules compiled" if n else "pure Python modules"
