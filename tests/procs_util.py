"""Helpers for tests that kill commands: start a command whose whole process tree carries a marker
in its environment (Jupyter kernels included, whatever session they start), and find what is left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

MARK = "PROPHET_TEST_MARK"


def marked(token: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment carries the token."""
    needle = f"{MARK}={token}".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie holds no resources; its parent reaps it
                out.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except OSError:
            continue
    return out


def start(cmd: list[str], cwd: Path, **env: str) -> tuple[subprocess.Popen, str]:
    """Start `cmd` (its own session, output discarded) with a fresh marker; returns (process, token)."""
    token = uuid.uuid4().hex
    proc = subprocess.Popen(
        cmd, cwd=cwd, env={**os.environ, **env, MARK: token}, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    return proc, token


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kernels(token: str) -> list[tuple[int, str]]:
    return [p for p in marked(token) if "ipykernel" in p[1]]


def leftovers(token: str, timeout: float = 20) -> list[tuple[int, str]]:
    """The processes still alive after `timeout` seconds (none, if everything ends with its parent)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and marked(token):
        time.sleep(0.1)
    left = marked(token)
    for pid, _ in left:  # do not let a failing test leave them behind either
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    return left


PY = sys.executable
