"""Compile consortia.native.MODULES with mypyc into the environment (see consortia/native.py).

Run by ``make`` after installing: ``.venv/bin/python scripts/build-native.py``. The package is
copied to a scratch directory and compiled there, so the source tree gets no build files; the
result replaces the previous build in one rename. Exits non-zero (and the caller runs on the
pure Python modules) if mypyc or a C compiler is missing or the build fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from consortia import native  # noqa: E402


def main() -> int:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    target = native.directory()
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="consortia-native-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(
            ROOT / "src" / "consortia", src / "consortia", ignore=shutil.ignore_patterns("*.so")
        )
        files = [str(Path(*m.split(".")).with_suffix(".py")) for m in native.MODULES]
        digests = {m: native.digest(src / f) for m, f in zip(native.MODULES, files, strict=True)}
        mypyc = [sys.executable, "-m", "mypyc", "--ignore-missing-imports", *files]
        run = subprocess.run(mypyc, cwd=src, capture_output=True, text=True)
        if run.returncode != 0:
            sys.stderr.write(run.stdout[-4000:] + run.stderr[-4000:])
            print("native build failed: Consortia runs on its pure Python modules", file=sys.stderr)
            return 1
        out = Path(tmp) / "out"
        out.mkdir()
        manifest: dict[str, object] = {"suffix": suffix, "python": sys.version.split()[0]}
        modules = {}
        for module, file in zip(native.MODULES, files, strict=True):
            built = src / Path(file).with_suffix(suffix)
            shutil.copy2(built, out / f"{module}{suffix}")
            modules[module] = {"file": f"{module}{suffix}", "sha256": digests[module]}
        # mypyc puts the modules' shared code in one library, imported by a hashed name.
        shared = {}
        for lib in src.glob(f"*__mypyc{suffix}"):
            shutil.copy2(lib, out / lib.name)
            shared[lib.name[: -len(suffix)]] = lib.name
        manifest["modules"] = modules
        manifest["shared"] = shared
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1), "utf-8")
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.rename(target, old)
        shutil.move(str(out), target)
        shutil.rmtree(old, ignore_errors=True)
    print(
        f"compiled {len(native.MODULES)} modules with mypyc into {target} "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
