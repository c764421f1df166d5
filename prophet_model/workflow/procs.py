"""Process hygiene: no worker, notebook kernel or staging folder outlives the command that made it.

- `die_with_parent()`: the kernel sends this process SIGTERM when its parent dies (Linux
  PR_SET_PDEATHSIG), so a `make` or a `run` killed with SIGKILL takes its children with it.
- `terminate_as_interrupt()`: SIGTERM and SIGHUP raise `Terminated` (a KeyboardInterrupt), so
  `finally` blocks remove staging folders and partial files as on Ctrl-C.
- `kill_descendants()`: SIGKILL every process below this one (read from /proc), e.g. Jupyter kernels
  that run in a session of their own.
- `Guardian`: a forked helper that removes given paths if this process dies before disarming it:
  the only way to clean up after a SIGKILL of the process itself.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import sys
from collections.abc import Iterable
from pathlib import Path

PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread is, so cleanup runs."""


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent exits (Linux; no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(f"signal {signal.Signals(signum).name}")


def terminate_as_interrupt() -> None:
    """SIGTERM and SIGHUP raise Terminated in the main thread."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_terminated)


def descendants(pid: int | None = None) -> list[int]:
    """Every process below `pid` (default: this one), children first, read from /proc."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_descendants(sig: int = signal.SIGKILL) -> None:
    for pid in descendants():
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Guardian:
    """Remove `paths` if this process dies (any signal, SIGKILL included) before `disarm()`.

    A forked child blocks reading a pipe whose only writer is this process (and children forked
    later, which die with it through die_with_parent). End of file without the disarm byte means the
    process died: the child removes the paths. Use it as a context manager."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self._w: int | None = None
        self._pid: int | None = None

    def __enter__(self) -> Guardian:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the guardian
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):  # hold no caller's pipe open (a test reading our output would wait)
                    os.dup2(devnull, fd)
                os.closerange(3, r)
                os.closerange(r + 1, 1 << 16)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                os.setsid()  # out of the terminal's process group: Ctrl-C is for the parent
                data = os.read(r, 1)
                if data != b"d":
                    for p in self.paths:
                        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            finally:
                os._exit(0)
        os.close(r)
        self._w, self._pid = w, pid
        return self

    def disarm(self) -> None:
        if self._w is not None:
            os.write(self._w, b"d")
            os.close(self._w)
            self._w = None
        if self._pid is not None:
            os.waitpid(self._pid, 0)
            self._pid = None

    def __exit__(self, *exc) -> None:
        self.disarm()


_HELD: dict[Path, object] = {}  # open lock files, held until the process exits


def hold_lock(folder: Path, lock_name: str, what: str) -> None:
    """Take `folder/lock_name` for the rest of this process, waiting (with a message) while another
    command holds it: two `make`s in one checkout take turns instead of writing the same files."""
    path = (Path(folder) / lock_name).resolve()
    if path in _HELD:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"waiting: another prophet_model command is using {what} {folder}", file=sys.stderr)
        fcntl.flock(f, fcntl.LOCK_EX)
    _HELD[path] = f


def release_locks() -> None:
    """Let go of every lock `hold_lock` took (a command's end, also when it runs inside another process)."""
    for f in _HELD.values():
        f.close()
    _HELD.clear()
