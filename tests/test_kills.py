"""SIGINT, SIGTERM and SIGKILL of `run` and `pipeline`: no process is left (worker pools and Jupyter
kernels end with their parent), no staging folder or partial notebook stays in the tree, and the
previous results are untouched. (A killed step repaired by the next is in test_kill_repair.py, `make`
killed mid-pipeline in test_make_sequences.py.)"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from .conftest import ROOT, copy_built
from .procs_util import PY, kernels, leftovers, start, wait_for

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]


def _snapshot(d: Path) -> dict[str, bytes]:
    """The folder's files (logs aside, and the lock, which names its last holder)."""
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and p.relative_to(d).parts[0] != "logs" and p.name != ".lock"}  # fmt: skip


@pytest.fixture
def good_results(plain_results, tmp_path) -> Path:
    """Previous results (a copy of the session's `run --no-figures`) for the killed commands to leave alone."""
    return copy_built(plain_results, tmp_path / "good")


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_killing_run_leaves_nothing(good_results, tmp_path, sig) -> None:
    results = tmp_path / "results"
    shutil.copytree(good_results, results)
    before = _snapshot(results)
    proc, token = start([PY, "-m", "prophet_model", "run", "--results", str(results), "--quiet", "--jobs", "2"], ROOT)
    wait_for(lambda: list(results.glob(".staging-*/*")), 60, "the run to write into its staging folder")
    time.sleep(0.3)  # the workers are drawing figures now
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert leftovers(token) == []
    assert not list(results.glob(".staging-*")) and not list(tmp_path.glob(".*"))
    assert _snapshot(results) == before


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_killing_pipeline_leaves_nothing(good_results, tmp_path, sig) -> None:
    book = tmp_path / "book"
    book.mkdir()
    cmd = [PY, "-m", "prophet_model", "pipeline", "--results", str(good_results), "--book", str(book), "--force",
           "--quiet", "--jobs", "2"]  # fmt: skip
    proc, token = start(cmd, ROOT)
    wait_for(lambda: kernels(token), 120, "a notebook kernel to start")
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert leftovers(token) == []
    assert not list(book.rglob("*.partial.ipynb"))
