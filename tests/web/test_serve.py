"""``consortia serve --processes N``: N server processes, each with its own socket on the one
port, all answering; stopping the first (SIGTERM, or killed outright) stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port


def _listeners(port: int) -> dict[int, set[int]]:
    """pid -> inodes of the listening TCP sockets on ``port`` (from /proc)."""
    inodes: set[int] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], int(fields[9])
        if state == "0A" and int(local.split(":")[1], 16) == port:
            inodes.add(inode)
    out: dict[int, set[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inode = int(target[8:-1])
                    if inode in inodes:
                        out.setdefault(int(proc.name), set()).add(inode)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_serve_runs_several_processes_on_one_port(
    db_url: str, tmp_path: Path, stop: signal.Signals
) -> None:
    port = free_port()
    env = {**os.environ, "CONSORTIA_DATABASE_URL": db_url}
    command = [sys.executable, "-m", "consortia", "serve", "--no-jobs", "--processes", "2"]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            listening = _listeners(port)
            if len(listening) == 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, f"listening: {listening}"
            time.sleep(0.2)
        assert proc.pid in listening
        assert sum(len(v) for v in listening.values()) == 2  # a socket each
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(10):
                r = client.get("/api/v1/search", params={"q": ""})
                assert r.status_code == 200
                assert "help" in r.json()
    finally:
        proc.send_signal(stop)
        proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _listeners(port):  # the other process went with the first, however it ended
        assert time.monotonic() < deadline, _listeners(port)
        time.sleep(0.2)
