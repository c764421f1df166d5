"""Notebooks are stored clean and thin; the pipeline caches per notebook and reports failures."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from prophet_model.study.config import load_study
from prophet_model.workflow.pipeline import jobs, run_pipeline

from .conftest import ROOT, dump_yaml, load_yaml, only_systems

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs stored"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one parameters cell"
    assert "_config.yml" in tagged[0].source  # the config path, nothing that duplicates it


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_thin(path: Path) -> None:
    """No logic of their own: no function or class definitions, no loops, short cells."""
    nb = nbformat.read(path, as_version=4)
    logic = (ast.FunctionDef, ast.ClassDef, ast.For, ast.While, ast.ListComp, ast.DictComp, ast.GeneratorExp)
    for cell in nb.cells:
        if cell.cell_type == "code":
            nodes = list(ast.walk(ast.parse(cell.source)))
            assert not [n for n in nodes if isinstance(n, logic)], f"{path.name}: logic belongs in prophet_model"
            assert len(cell.source.splitlines()) <= 10


@pytest.fixture
def pipeline_root(tmp_path: Path, study_dir: Path) -> tuple[Path, Path]:
    """A copy of the notebooks, and a study of two of the default systems (the rules tested hold for any
    number; fewer notebooks to execute)."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    config = study_dir / "_config.yml"
    dump_yaml(only_systems(load_yaml(config), ("4xH100", "8xA100")), config)
    return root, config


def _run(root: Path, config: Path, book: Path) -> dict[str, str]:
    """Status per job; a failed job's status carries its error, so an assertion shows why."""
    study = load_study(config)
    outcomes = run_pipeline(jobs(study, book, book / "results", root), book / ".cache")
    return {o.job.name: f"{o.status}: {o.error}" if o.status == "failed" else o.status for o in outcomes}


def test_cache_reexecutes_only_what_changed(pipeline_root, tmp_path) -> None:
    from prophet_model.cli import main

    root, config = pipeline_root
    book = tmp_path / "book"
    # the validation page reads what `run` wrote (results/data/validation/)
    assert main(["run", "--config", str(config), "--results", str(book / "results"), "--quiet", "--no-figures"]) == 0
    first = _run(root, config, book)
    assert set(first.values()) == {"executed"} and len(first) == 3 + len(load_yaml(config)["systems"])
    assert (book / "systems" / "0008-8xA100.ipynb").is_file() and (book / "cross_system.ipynb").is_file()
    executed = nbformat.read(book / "systems" / "0008-8xA100.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    assert set(_run(root, config, book).values()) == {"cached"}
    cfg = load_yaml(config)
    changed = "4xH100"
    next(s for s in cfg["systems"] if s["id"] == changed)["interconnect"] = "nvswitch_nvlink3"  # one assumption
    dump_yaml(cfg, config)
    # the pages read what `run` wrote: the system's own page and the study-wide pages whose files now differ rerun
    # (nothing under results/data/validation/, which the validation page reads, changes with this assumption)
    assert main(["run", "--config", str(config), "--results", str(book / "results"), "--quiet", "--no-figures"]) == 0
    third = _run(root, config, book)
    expected = {f"system {s['id']}": "executed" if s["id"] == changed else "cached" for s in cfg["systems"]}
    assert third == expected | {"cross-system": "executed", "validation": "cached", "sensitivity": "executed"}


def test_a_failing_notebook_is_reported_and_the_others_finish(pipeline_root, tmp_path) -> None:
    root, config = pipeline_root
    path = root / "notebooks" / "system_analysis.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell('if system == "4xH100":\n    raise ValueError("injected failure")'))
    nbformat.write(nb, path)
    book = tmp_path / "book"
    from prophet_model.cli import main

    assert main(["run", "--config", str(config), "--results", str(book / "r"), "--quiet", "--no-figures"]) == 0
    system_jobs = [j for j in jobs(load_study(config), book, book / "r", root) if j.name.startswith("system ")]
    outcomes = {o.job.name: o for o in run_pipeline(system_jobs, book / ".cache")}  # the failing one and another
    bad = outcomes["system 4xH100"]
    assert bad.status == "failed"
    assert "ValueError: injected failure" in bad.error and 'if system == "4xH100"' in bad.error
    assert all(o.status == "executed" for name, o in outcomes.items() if name != "system 4xH100")
    assert not (book / "systems" / "0004-4xH100.ipynb").exists()


def test_parameters_name_no_machine_folders() -> None:
    """Paths inside the repository reach papermill relative to its root (the book shows them);
    paths elsewhere, and other values, pass unchanged."""
    from prophet_model.workflow.pipeline import ROOT, _portable

    assert _portable(str(ROOT / "_config.yml")) == "_config.yml"
    assert _portable(str(ROOT / "results")) == "results"
    assert _portable("/elsewhere/_config.yml") == "/elsewhere/_config.yml"
    assert _portable("8xA100") == "8xA100"


def _nbrun(tmp_path: Path, source: str, patch: str = "") -> tuple[subprocess.CompletedProcess, Path]:
    """Run the notebook runner on a one-cell notebook; `patch` is Python run before it (to fake papermill)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    out = tmp_path / "out.ipynb"
    spec = json.dumps({"input": str(tmp_path / "in.ipynb"), "output": str(out), "cwd": str(tmp_path),
                       "timeout_s": 60, "parameters": {}})  # fmt: skip
    code = f"{patch}\nimport sys\nfrom prophet_model.workflow.nbrun import main\nsys.exit(main(sys.argv[1]))"
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the runner's socket folder lands here
    proc = subprocess.run([sys.executable, "-c", code, spec], cwd=ROOT, env=env, capture_output=True, text=True)
    return proc, out


def test_kernels_talk_over_private_unix_sockets(tmp_path) -> None:
    """No TCP port is chosen (two kernels starting at once could pick the same one), and the runner's
    socket folder is gone afterwards."""
    proc, out = _nbrun(tmp_path, "from ipykernel import get_connection_info\nprint(get_connection_info())")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(nbformat.read(out, as_version=4).cells[0].outputs[0]["text"])
    assert info["transport"] == "ipc"
    assert Path(info["ip"]).parent.parent == tmp_path and Path(info["ip"]).parent.name.startswith("prophet-kernel-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ipynb", "out.ipynb"]


FAKE = """
import papermill
calls = []
def fake(*args, **kw):
    calls.append(1)
    if len(calls) <= {fails}:
        raise {error}
    open(args[1], "w").write("{{}}")
papermill.execute_notebook = fake
import atexit
atexit.register(lambda: print("calls", len(calls)))
"""


@pytest.mark.parametrize(
    ("fails", "error", "rc", "calls"),
    [
        (1, 'RuntimeError("Kernel died before replying to kernel_info")', 0, 2),
        (1, 'RuntimeError("Kernel didn\'t respond in 60 seconds")', 0, 2),
        (2, 'RuntimeError("Kernel died before replying to kernel_info")', 1, 2),
        (1, 'RuntimeError("something else")', 1, 1),
        (1, 'papermill.PapermillExecutionError(0, 1, "x", "ValueError", "bad", [])', 1, 1),
    ],
)
def test_only_a_kernel_that_did_not_start_is_started_again(tmp_path, fails, error, rc, calls) -> None:
    """A start-up failure is retried once and said on stderr; an error in a cell, or any other, is not."""
    proc, _ = _nbrun(tmp_path, "x = 1", FAKE.format(fails=fails, error=error))
    assert proc.returncode == rc
    assert f"calls {calls}" in proc.stdout
    assert ("retried: the kernel did not start" in proc.stderr) == (calls == 2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("prophet-kernel-")) == []


def _job(name: str, **params: str):
    from prophet_model.workflow.pipeline import Job

    return Job(name, Path("nb.ipynb"), Path(f"{name}.ipynb"), params, "key")


def test_notebooks_start_longest_first(tmp_path) -> None:
    """Never timed: study-wide ones first, the later listed first; then by the last recorded seconds."""
    from prophet_model.workflow.pipeline import longest_first

    todo = [_job("system a", system="a"), _job("system b", system="b"), _job("cross-system"), _job("validation"),
            _job("sensitivity")]  # fmt: skip
    names = lambda jobs: [j.name for j in jobs]  # noqa: E731
    assert names(longest_first(todo, tmp_path)) == ["sensitivity", "validation", "cross-system", "system a", "system b"]
    (tmp_path / "timings.json").write_text(json.dumps({"system a": 10, "cross-system": 1.5, "validation": 3}))
    assert names(longest_first(todo, tmp_path)) == ["sensitivity", "system b", "system a", "validation", "cross-system"]


@pytest.mark.parametrize("text", ['{"system a": ', "[1, 2]", '{"system a": "fast", "validation": true}', ""])
def test_an_unreadable_timings_file_counts_as_none_and_is_replaced(tmp_path, text) -> None:
    from prophet_model.outputs.files import read_timings
    from prophet_model.workflow.pipeline import Outcome, longest_first, record_timings

    path = tmp_path / "timings.json"
    path.write_text(text)
    assert read_timings(path) == {}
    todo = [_job("system a", system="a"), _job("validation")]
    assert [j.name for j in longest_first(todo, tmp_path)] == ["validation", "system a"]
    record_timings([Outcome(todo[0], "executed", seconds=2.345)], tmp_path)
    assert json.loads(path.read_text()) == {"system a": 2.35}
