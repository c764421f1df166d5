"""Write study results atomically: everything goes to a staging folder first and replaces the
results folder's contents only when every file was written, so a failed or killed run leaves the
previous results intact."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

FLOAT_FORMAT = "%.10g"


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Deterministic CSV: fixed float format, no index, LF line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


@contextmanager
def staged(results_dir: Path) -> Iterator[Path]:
    """Yield a staging folder beside `results_dir`; on success move each top-level entry written
    there into `results_dir` (replacing the old one), on failure delete the staging folder."""
    results_dir = Path(results_dir)
    results_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{results_dir.name}.staging-", dir=results_dir.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    results_dir.mkdir(exist_ok=True)
    for entry in sorted(stage.iterdir()):
        target = results_dir / entry.name
        if target.is_dir() and entry.is_dir():
            _merge_dir(entry, target)
        else:
            os.replace(entry, target)
    shutil.rmtree(stage, ignore_errors=True)


def _merge_dir(src: Path, dst: Path) -> None:
    """Move src's files into dst, each by an atomic rename (files in dst not in src are kept)."""
    for item in sorted(src.rglob("*")):
        rel = item.relative_to(src)
        if item.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
        else:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(item, dst / rel)
