"""The system, cross-system and sensitivity pages read what `run` wrote (outputs/study_results.py) and run
nothing of the study: the files read back to the numbers the study computes, a missing file is named with
how to make it, and no notebook imports a computing module."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from prophet_model.cli import main
from prophet_model.errors import UserError
from prophet_model.outputs import study_results as sr
from prophet_model.outputs import views
from prophet_model.outputs.files import SENSITIVITY_FILES, expected_files
from prophet_model.study import sensitivity as sens
from prophet_model.study.config import load_study
from prophet_model.study.runner import run_study

from .conftest import ROOT


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, object]:
    """A run of the default study without figures, and the study's results computed in this process."""
    out = tmp_path_factory.mktemp("results")
    assert main(["run", "--config", str(ROOT / "_config.yml"), "--results", str(out), "--quiet", "--no-figures"]) == 0
    results, failures = run_study(load_study(ROOT / "_config.yml"))
    assert not failures
    return out, results


def test_run_writes_the_sensitivity_tables(made) -> None:
    out, _ = made
    assert set(SENSITIVITY_FILES) <= set(expected_files(["x"]))
    for rel in SENSITIVITY_FILES:
        assert (out / rel).is_file(), rel


def test_the_sensitivity_tables_read_back_to_what_the_study_computes(made) -> None:
    """Sweeps, tornado rankings and maps exactly as study/sensitivity.py computes them (floats at full precision),
    one entry per system at its headline point."""
    out, results = made
    setups = sens.setups(results)
    names, tables, labels = views.sensitivity_inputs(out)
    assert list(names) == list(setups) and len(setups) > 0
    tornado = sr.sensitivity(out, "tornado")
    maps = sr.sensitivity(out, "maps")
    for sid, setup in setups.items():
        assert names[sid] == setup.system.name
        want = sens.sweeps(setup)
        got = tables[sid][list(want.columns)]
        pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False)
        assert all(labels[k] == sens.LABELS[k] for k in want.input)
        want_t = sens.tornado(setup, "speedup")
        got_t = tornado[tornado.system_id == sid].reset_index(drop=True)[list(want_t.columns)]
        pd.testing.assert_frame_equal(got_t, want_t, check_exact=True, check_dtype=False)
        for against in sens.MAPS:
            rows = maps[(maps.system_id == sid) & (maps.against == against)]
            for a, b in zip(views.speedup_map(rows), sens.speedup_map(setup, against), strict=True):
                np.testing.assert_array_equal(a, b)
            assert bool(rows.log_scale.iloc[0]) == sens.MAPS[against][1]


def test_the_system_page_shows_the_studys_single_gpu_claims_and_rates(made) -> None:
    out, results = made
    from prophet_model.study.claims import single_gpu_claims, table
    from prophet_model.study.rates import hardware_rows

    want = table(single_gpu_claims(results.study))
    got = views.claims_table(out)
    assert list(got.claim) == list(want.claim) and list(got.lever) == list(want.lever)
    system = results.study.systems[0]
    row = next(r for r in hardware_rows(results.study) if r["gpu"] == system.gpu.name)
    shown = dict(zip(*views.hardware_table(out, system).to_dict("list").values(), strict=True))
    assert shown == {k: v if isinstance(v, str) else views.fmt.number(v) for k, v in row.items() if k != "gpu"}


def test_the_pages_tables_are_the_studys(made) -> None:
    """The comparison, the step-time breakdown and the checks as the study computed them (to the figures shown)."""
    out, results = made
    sid = results.study.systems[0].id
    html = views.fmt.table_html
    assert html(views.comparison(out, sid)) == html(
        views.fmt.comparison_view(results.comparison[results.comparison.system_id == sid])
    )
    rows = views.system_rows(out, sid)
    assert len(rows) == len(results.system_rows(sid))
    live = results.system_rows(sid)
    assert list(views.breakdown(out, sid)["step (ms)"]) == list(live[live.tokens_per_s.notna()].step_ms.round(2))


def test_a_missing_file_is_named_with_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"data/all_systems_comparison\.csv: not found.*prophet_model run"):
        views.comparison(tmp_path)
    with pytest.raises(UserError, match=r"data/sensitivity/tornado\.csv: not found.*prophet_model run"):
        views.sensitivity_digest(tmp_path)
    with pytest.raises(ValueError, match="allowed: sweeps"):
        sr.sensitivity(tmp_path, "nonsense")
    assert "no uncertain inputs" in views.uncertainty_table(tmp_path).note.iloc[0]


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_notebooks_read_results_and_run_nothing_of_the_study(path: Path) -> None:
    """Every notebook imports the writers only (prophet_model.outputs), never the study, the measurements or
    the physics; and calls no function that evaluates the study."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prophet_model"):
                assert node.module == "prophet_model.outputs", cell.source
            if isinstance(node, ast.Import):
                assert not [a.name for a in node.names if a.name.startswith("prophet_model")], cell.source
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("evaluate", "run_study", "monte_carlo"), cell.source
