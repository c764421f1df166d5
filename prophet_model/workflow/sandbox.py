"""A private copy of the checkout, for commands that must not touch this one (the make benchmark and
the make-sequence tests): every tracked and untracked-but-not-ignored file is copied, and the
environment (.venv) is linked, not copied."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from prophet_model.paths import ROOT


def checkout_files(root: Path = ROOT) -> list[str]:
    """The checkout's files as git sees them (tracked, and untracked ones that are not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return sorted({f for f in out.decode().split("\0") if f and (root / f).is_file()})


def copy_checkout(dest: Path, root: Path = ROOT) -> Path:
    """Copy the checkout into `dest` (created) and link its .venv; returns `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in checkout_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    if (root / ".venv").is_dir():
        (dest / ".venv").symlink_to(root / ".venv", target_is_directory=True)
    return dest
