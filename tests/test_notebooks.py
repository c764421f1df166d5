"""Notebooks are stored clean and thin; the pipeline caches per notebook and reports failures."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import nbformat
import pytest

from prophet_model.study.config import load_study
from prophet_model.workflow.pipeline import jobs, run_pipeline

from .conftest import ROOT, dump_yaml, load_yaml

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
    """A copy of the notebooks, with a notebook that fails for one system."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    return root, study_dir / "_config.yml"


def _run(root: Path, config: Path, book: Path) -> dict[str, str]:
    """Status per job; a failed job's status carries its error, so an assertion shows why."""
    study = load_study(config)
    outcomes = run_pipeline(jobs(study, book, book / "results", root), book / ".cache")
    return {o.job.name: f"{o.status}: {o.error}" if o.status == "failed" else o.status for o in outcomes}


def test_cache_reexecutes_only_what_changed(pipeline_root, tmp_path) -> None:
    root, config = pipeline_root
    book = tmp_path / "book"
    first = _run(root, config, book)
    assert set(first.values()) == {"executed"} and len(first) == 7
    assert (book / "systems" / "0008-8xA100.ipynb").is_file() and (book / "cross_system.ipynb").is_file()
    executed = nbformat.read(book / "systems" / "0008-8xA100.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    assert set(_run(root, config, book).values()) == {"cached"}
    cfg = load_yaml(config)
    cfg["systems"][1]["interconnect"] = "nvswitch_nvlink3"  # one system's assumption
    dump_yaml(cfg, config)
    third = _run(root, config, book)
    assert third == {"system 2xA100": "cached", "system 4xH100": "executed", "system 8xA100": "cached",
                     "system 10xA6000": "cached", "cross-system": "executed", "validation": "cached", "sensitivity": "executed"}  # fmt: skip


def test_a_failing_notebook_is_reported_and_the_others_finish(pipeline_root, tmp_path) -> None:
    root, config = pipeline_root
    path = root / "notebooks" / "system_analysis.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell('if system == "4xH100":\n    raise ValueError("injected failure")'))
    nbformat.write(nb, path)
    book = tmp_path / "book"
    outcomes = {o.job.name: o for o in run_pipeline(jobs(load_study(config), book, book / "r", root), book / ".cache")}
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
