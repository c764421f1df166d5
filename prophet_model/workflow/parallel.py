"""Independent writer tasks in parallel processes, one per core: each dies with its parent and leaves
signals to it; the outputs do not depend on the scheduling."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from prophet_model.workflow.procs import die_with_parent

log = logging.getLogger("prophet_model")

Task = tuple[Callable[..., list[Path]], tuple, str]


def run_parallel(tasks: list[Task], jobs: int = 0) -> Iterator[tuple[str, list[Path], str | None]]:
    """Run independent writer tasks, one process per core (or `jobs`), yielding
    (name, written paths, error or None) as each finishes. Each task's output is the same
    whichever process runs it, so the files do not depend on the scheduling."""
    jobs = jobs or min(len(tasks), os.cpu_count() or 1)
    if jobs <= 1:
        for fn, args, name in tasks:
            yield _guarded(fn, args, name)
        return
    global _TASKS
    _TASKS = tasks  # the forked workers inherit the tasks: their arguments are not pickled (a study's are MBs)
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("fork"), initializer=_worker_init
    )
    try:
        futures = [pool.submit(_inherited, i) for i in range(len(tasks))]
        for fut in as_completed(futures):
            yield fut.result()
    except BaseException:  # a signal or an error: the workers go at once, not when their task ends
        for proc in list((pool._processes or {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        _TASKS = []
    pool.shutdown()


_TASKS: list[Task] = []  # run_parallel's tasks while its pool runs, as its forked workers see them


def _inherited(i: int) -> tuple[str, list[Path], str | None]:
    """Task `i` of the run_parallel call that forked this worker."""
    fn, args, name = _TASKS[i]
    return _guarded(fn, args, name)


def _worker_init() -> None:
    """A worker dies with its parent (even a SIGKILLed one) and leaves signals to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    die_with_parent(signal.SIGKILL)


def _guarded(fn: Callable[..., list[Path]], args: tuple, name: str) -> tuple[str, list[Path], str | None]:
    try:
        return name, fn(*args), None
    except Exception as exc:
        log.debug("%s failed", name, exc_info=True)
        return name, [], f"{type(exc).__name__}: {exc}"


def serial(jobs: int) -> bool:
    """Whether `jobs` (0: one per core) leaves a single process: Background then runs in the caller's."""
    return jobs == 1 or (jobs == 0 and (os.cpu_count() or 1) == 1)


class Background:
    """`fn(*args)` in a forked process of its own while the caller goes on (as `run_parallel`'s workers: it dies
    with its parent, and leaves signals to it); with `jobs` 1 or one core it runs at `outcome()` instead. `bar`:
    tqdm's arguments for a progress bar that `fn` advances by calling its `tick` keyword argument (shown by this
    process while it waits). Use it as a context manager: on leaving (or at `close()`), a process still running is
    killed."""

    def __init__(self, fn: Callable, args: tuple, jobs: int = 0, bar: dict | None = None) -> None:
        self._fn, self._args, self._bar = fn, args, bar
        self._proc = None
        if not serial(jobs):
            context = multiprocessing.get_context("fork")
            self._count = context.Value("i", 0) if bar else None
            self._recv, send = context.Pipe(duplex=False)
            self._proc = context.Process(target=_child, args=(fn, args, send, self._count), daemon=True)
            self._proc.start()
            send.close()

    def outcome(self) -> tuple[object, Exception | None]:
        """(fn's value, None), or (None, the exception it raised)."""
        from tqdm import tqdm

        bar = tqdm(**self._bar) if self._bar else None
        try:
            if self._proc is None:
                try:
                    return self._fn(*self._args, **({"tick": bar.update} if bar else {})), None
                except Exception as exc:
                    return None, exc
            while not self._recv.poll(0.05):
                if bar is not None:
                    bar.update(self._count.value - bar.n)
                if not self._proc.is_alive() and not self._recv.poll():
                    return None, RuntimeError(f"a background process ended with status {self._proc.exitcode}")
            value, exc = self._recv.recv()
            if bar is not None:
                bar.update(self._count.value - bar.n)
            self._proc.join()
            return value, exc
        finally:
            if bar is not None:
                bar.close()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the process if it still runs (its value is not waited for)."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


def _child(fn: Callable, args: tuple, send, count) -> None:
    """Background's process: fn's (value, None) or (None, its exception) through the pipe; `count`, where
    given, is what fn's `tick` advances."""
    _worker_init()

    def tick(n: int = 1) -> None:
        with count.get_lock():
            count.value += n

    try:
        send.send((fn(*args, **({"tick": tick} if count is not None else {})), None))
    except Exception as exc:
        try:
            send.send((None, exc))
        except Exception:  # an exception that does not pickle: its text
            send.send((None, RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        send.close()
