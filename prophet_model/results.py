"""Write study results atomically. Everything is written into a staging folder beside the results
folder; only when every file is written does the staging folder replace the results folder (two
renames), so a failed or killed run leaves the previous results intact. Folders named in `keep`
(the run logs) are carried over from the old results folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

FLOAT_FORMAT = "%.10g"


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Deterministic CSV: fixed float format, no index, LF line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(parent: Path, name: str) -> None:
    """Delete staging / old folders left by runs that were killed (their process is gone)."""
    for d in parent.glob(f".{name}.*-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if d.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


@contextmanager
def staged(results_dir: Path, keep: Sequence[str] = ("logs",)) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes `results_dir`."""
    results_dir = Path(results_dir)
    parent, name, pid = results_dir.parent, results_dir.name, os.getpid()
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent, name)
    stage = parent / f".{name}.staging-{pid}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = parent / f".{name}.old-{pid}"
    if results_dir.exists():
        for k in keep:
            if (results_dir / k).exists() and not (stage / k).exists():
                os.replace(results_dir / k, stage / k)
        os.replace(results_dir, old)
    os.replace(stage, results_dir)
    shutil.rmtree(old, ignore_errors=True)
