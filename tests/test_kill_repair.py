"""A SIGKILL of the whole process group of `run`, `paper`, `pipeline` or `book --build` at seeded random
moments is repaired by the next run of the step: it succeeds, its outputs match a clean build and nothing
the kill left stays. (Signals to `run` and `pipeline` are in test_kills.py; a file of its own so that
pytest-xdist runs the two on different workers.)"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from prophet_model.workflow.results import pid_alive

from .conftest import ROOT, dump_yaml, load_yaml
from .procs_util import PY, leftovers, start

# ---------------------------------------------------------------------------------------------------------
# SIGKILL of the whole process group at seeded random moments, then the step again: it succeeds and its
# outputs are those of a clean build (the results manifest's sha256s); nothing a kill left stays.

SEEDS = (11, 12)


def _digests(results: Path) -> dict[str, str]:
    return {rel: e["sha256"] for rel, e in json.loads((results / "manifest.json").read_text())["files"].items()}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "prophet_model", *args], cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def small_build(tmp_path_factory) -> dict[str, Path]:
    """A one-system study built from nothing by the four steps (the clean build the killed ones must match)."""
    base = tmp_path_factory.mktemp("small-build")
    shutil.copytree(ROOT / "catalog", base / "study" / "catalog")
    data = load_yaml(ROOT / "_config.yml")
    data["systems"] = [s for s in data["systems"] if s["id"] == "8xA100"]
    data["expectations"] = [e for e in data.get("expectations") or [] if e.get("system") == "8xA100"]
    dump_yaml(data, base / "study" / "_config.yml")
    shutil.copytree(ROOT / "book", base / "book", ignore=shutil.ignore_patterns(
        "_build", "_generated", ".pipeline-cache", "systems", "*.ipynb", "__pycache__"))  # fmt: skip
    d = {"config": base / "study" / "_config.yml", "results": base / "results", "book": base / "book"}
    common = ("--config", str(d["config"]), "--results", str(d["results"]))
    for step in (["run", "--quiet"], ["paper"], ["pipeline", "--quiet", "--book", str(d["book"])],
                 ["book", "--build", "--book", str(d["book"])]):  # fmt: skip
        done = _cli(step[0], *common, *step[1:])
        assert done.returncode == 0, done.stderr[-2000:]
    return d


def _kill_at(cmd: list[str], delay: float) -> tuple[str, bool]:
    """Start `cmd`, SIGKILL its process group after `delay` seconds; returns its token and whether it was
    killed (not when it had ended by then)."""
    proc, token = start(cmd, ROOT)
    try:
        proc.wait(timeout=delay)
        return token, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return token, True


def _no_leftovers(results: Path) -> None:
    names = {p.name for p in results.iterdir()}
    assert not [n for n in names if n.startswith(".staging-") or n.endswith(".tmp") or n.startswith(".commit-")
                or n.endswith(".pending")], names  # fmt: skip


@pytest.mark.parametrize("step,longest", [("run", 4.0), ("paper", 1.5)])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_killed_results_step_is_repaired_by_the_next(small_build, tmp_path, step, longest, seed) -> None:
    results = Path(shutil.copytree(small_build["results"], tmp_path / "results"))
    common = ["--config", str(small_build["config"]), "--results", str(results)]
    extra = ["--quiet"] if step == "run" else []
    token, _ = _kill_at([PY, "-m", "prophet_model", step, *common, *extra], random.Random(seed).uniform(0.2, longest))
    leftovers(token, timeout=10)  # the guardian (a session of its own) removes the staging folder meanwhile
    again = _cli(step, *common, *extra)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _digests(results) == _digests(small_build["results"])
    _no_leftovers(results)


@pytest.mark.parametrize("step", ["pipeline", "book"])
def test_a_killed_book_step_is_repaired_by_the_next(small_build, step) -> None:
    """In the module's own build folder (a copied site would be rebuilt from scratch: too slow for CI), each
    seed changing one source so that the step has work to do."""
    book, results = small_build["book"], small_build["results"]
    before = _digests(results)
    common = ["--config", str(small_build["config"]), "--results", str(results), "--book", str(book)]
    killed_any = False
    for seed in SEEDS:
        if step == "pipeline":
            again = ["pipeline", *common, "--quiet", "--jobs", "2"]
            killed = [*again, "--force"]  # every notebook runs again
        else:
            with (book / "glossary.md").open("a", encoding="utf-8") as f:
                f.write(f"\n<!-- {seed} -->\n")
            again = killed = ["book", "--build", *common]
        delay = random.Random(seed).uniform(*((2, 12) if step == "pipeline" else (0.5, 3)))
        token, killed_now = _kill_at([PY, "-m", "prophet_model", *killed], delay)
        killed_any |= killed_now
        assert leftovers(token) == []
        done = _cli(*again)
        assert done.returncode == 0, done.stderr[-2000:]
        assert not list(book.rglob("*.partial.ipynb"))
        assert _digests(results) == before
        assert not [d for d in Path(tempfile.gettempdir()).glob("prophet-kernel-*") if (d / "runner.pid").is_file()
                    and not pid_alive(int((d / "runner.pid").read_text()))]  # fmt: skip
    assert (book / "_build" / "html" / "index.html").is_file()
    assert killed_any, "every kill came after the step had ended: the delays are too long for this machine"
    owned = set(json.loads((book / ".pipeline-cache" / "owned.json").read_text())["files"])
    assert {"cross_system.ipynb", "systems/0008-8xA100.ipynb", "_build"} <= owned
    assert all((book / rel).exists() for rel in owned if not rel.endswith(".partial.ipynb"))
