"""Process hygiene: no worker, notebook kernel or staging folder outlives the command that made it.

- `die_with_parent()`: the kernel sends this process SIGTERM when its parent dies (Linux
  PR_SET_PDEATHSIG), so a `make` or a `run` killed with SIGKILL takes its children with it.
- `terminate_as_interrupt()`: SIGTERM and SIGHUP raise `Terminated` (a KeyboardInterrupt), so
  `finally` blocks remove staging folders and partial files as on Ctrl-C.
- `kill_descendants()`: SIGKILL every process below this one (read from /proc), e.g. Jupyter kernels
  that run in a session of their own.
- `roomy_heap()`: the C heap keeps freed memory (glibc's mmap and trim thresholds raised), so the model's large
  numpy temporaries reuse memory instead of faulting fresh pages in at every allocation.
- `Guardian`: a forked helper that removes given paths if this process dies before disarming it:
  the only way to clean up after a SIGKILL of the process itself.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import signal
import stat
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from prophet_model.errors import UserError

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


# glibc mallopt parameters and the values roomy_heap sets (glibc's defaults: a dynamic mmap threshold from 128 KiB,
# a trim threshold of twice it). By default every freed block of the model's temporaries is handed back to the
# kernel and the next one faulted in again: `run` spent about 0.8 s of its 4.5 s in the kernel (2-core x86_64,
# 2026-12-08); a fixed mmap threshold of 32 MiB and a trim threshold of 256 MiB keep them in the heap (about
# 0.2 s), and the skewed-routing Monte Carlo, whose stacked arrays are tens of MB, runs faster too (20,000 draws
# with a sampled Zipf exponent: 17.8 s -> 14.5 s), at the same peak memory. (M_TOP_PAD, tried first, slowed it.)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_TRIM_THRESHOLD = 256 << 20  # bytes
HEAP_MMAP_THRESHOLD = 32 << 20  # bytes: glibc's largest


def roomy_heap() -> None:
    """Let the C heap keep freed memory for the next allocation (glibc mallopt M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD; a no-op without glibc): a speed setting of this process and the processes it forks; no number
    depends on it."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD)
    except (OSError, AttributeError):
        return


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


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, which a container's init may never reap, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


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


class EnvironmentProblem(UserError):
    """The machine, not the input: a folder that cannot be written, a full disk. Printed as one line, exit 1
    (commands/shared.py: environment_errors)."""

    exit_code = 1


_HELD: dict[Path, int] = {}  # open lock files (descriptors), held until the command ends
WRITERS = ("run", "paper", "pipeline", "book", "clean", "uptodate")


def lock_wait_s() -> float:
    """How long a command waits for a folder another command holds (PROPHET_LOCK_WAIT seconds, default 120)."""
    try:
        return max(0.0, float(os.environ.get("PROPHET_LOCK_WAIT", "120")))
    except ValueError:
        return 120.0


def _this_command() -> str:
    return next((a for a in sys.argv[1:] if a in WRITERS), Path(sys.argv[0]).name or "python")


def _holder(fd: int) -> tuple[str, int]:
    """(command, pid) the lock file names (written by the command that holds it); ('?', 0) if unreadable."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return str(data["command"])[:40], int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "?", 0


def _open_lock(path: Path, folder: Path) -> int:
    """The lock file's descriptor: a plain file, never followed through a link. UserError (a folder, a link,
    anything but a file stands there) or EnvironmentProblem (it cannot be opened)."""
    how = f"allowed: a plain file that the artifact makes there; move {path.name} away and run again"
    if path.is_symlink():
        raise UserError(f"{path}: a symbolic link, not the artifact's lock file; {how}")
    try:
        if path.parent != Path(folder):  # the book folder's lock lives in its cache folder
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not the artifact's lock file; {how}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path}: a symbolic link, not the artifact's lock file; {how}") from None
        raise EnvironmentProblem(
            f"{path}: cannot open the lock file ({exc.strerror or exc}); allowed: a folder this user can read and write"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{path}: not a plain file, not the artifact's lock file; {how}")
    return fd


def _same_file(path: Path, fd: int) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino)


def _close(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def hold_lock(folder: Path, lock_name: str, what: str) -> None:
    """Take `folder/lock_name` for the rest of this command. Every command that changes the results folder or
    the book folder (run, paper, pipeline, book, clean) takes it, so they take turns: while another command
    holds it this one waits (PROPHET_LOCK_WAIT seconds, default 120, saying so), then refuses naming the
    holder's command and pid. A lock whose holder died is free (the kernel drops it with its process)."""
    path = Path(folder) / lock_name
    key = path.absolute()
    if key in _HELD:
        return
    wait = lock_wait_s()
    end = time.monotonic() + wait
    said = False
    fd = _open_lock(path, Path(folder))
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                command, pid = _holder(fd)
                who = f"`{command}` (pid {pid})" if pid else "another prophet_model command"
                if time.monotonic() >= end:
                    raise UserError(
                        f"{folder}: in use by {who}; allowed: wait for it to finish (this command waited "
                        f"{wait:g} s; PROPHET_LOCK_WAIT=SECONDS waits longer)"
                    ) from None
                if not said:
                    print(
                        f"waiting: another prophet_model command, {who}, is using {what} {folder} (up to {wait:g} s)",
                        file=sys.stderr,
                    )
                    said = True
                time.sleep(0.1)
                continue
            if _same_file(path, fd):
                break
            os.close(fd)  # the holder removed the file (clean): lock the one that stands there now
            fd = -1
            if not Path(folder).is_dir():
                raise UserError(
                    f"{folder}: removed by another command while this one waited; allowed: run the command again"
                )
            fd = _open_lock(path, Path(folder))
        me = json.dumps({"command": _this_command(), "pid": os.getpid()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, me + b"\n", 0)
    except OSError as exc:
        _close(fd)
        raise EnvironmentProblem(
            f"{path}: cannot take the lock ({exc.strerror or exc}); allowed: a writable folder "
            "on a local disk with free space"
        ) from None
    except BaseException:
        _close(fd)
        raise
    _HELD[key] = fd


def release_locks() -> None:
    """Let go of every lock `hold_lock` took (a command's end, also when it runs inside another process)."""
    for fd in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()
