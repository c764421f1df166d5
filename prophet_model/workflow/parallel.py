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
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("fork"), initializer=_worker_init
    )
    try:
        futures = [pool.submit(_guarded, fn, args, name) for fn, args, name in tasks]
        for fut in as_completed(futures):
            yield fut.result()
    except BaseException:  # a signal or an error: the workers go at once, not when their task ends
        for proc in list((pool._processes or {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


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
