"""Read once: inside `reading_once()`, a digest of files or a parsed manifest is computed once and then reused.

The no-op `make` (workflow/fastpath.py) asks four steps in one process whether they are up to date, and each
reads the same things: the results manifest, the sha256 of every listed file, the package's source digest. Outside
the block (every other command) nothing is remembered. Inside it, a file's value is keyed by its path, size,
modification and change times and inode (os.stat), so a file rewritten in between is read again; a digest over a
folder's files (`source_digest`) is keyed by the folder only, for the block's lifetime (a fraction of a second).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_memo: dict[tuple, object] | None = None  # None: not inside reading_once()


@contextlib.contextmanager
def reading_once() -> Iterator[None]:
    """Remember what `remembered` computes until the block ends (blocks nest; each starts empty)."""
    global _memo
    saved, _memo = _memo, {}
    try:
        yield
    finally:
        _memo = saved


def remembered(key: tuple, compute: Callable[[], T], path: os.PathLike | str | None = None) -> T:
    """compute(), or its value remembered under `key` (and `path`'s stat, when given) inside reading_once()."""
    if _memo is None:
        return compute()
    if path is not None:
        st = os.stat(path)
        key = (*key, os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key not in _memo:
        _memo[key] = compute()
    return _memo[key]  # type: ignore[return-value]
