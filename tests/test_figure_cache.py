"""`run`'s figures are drawn once (outputs/figure_cache.py): a figure whose tables, arguments and style are
unchanged is copied from the previous results instead of drawn, byte for byte; a change to one system's data
redraws that system's figures only; a figure changed by hand, or a new style, is drawn again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from prophet_model.cli import main
from prophet_model.outputs import figure_cache
from prophet_model.outputs import study_results as sr
from prophet_model.outputs.figure_cache import KEYS_DIR, job_key, render, style_digest
from prophet_model.outputs.report import figure_jobs
from prophet_model.study.config import load_study

from .conftest import ROOT, copy_built

SYSTEMS = ("2xA100", "8xA100")


@pytest.fixture(scope="module")
def study():
    return load_study(ROOT / "_config.yml")


def system_jobs(results: Path, study, change: str | None = None) -> list:
    """The per-system figure jobs of SYSTEMS from a results folder's tables; `change`: a system whose
    throughputs are doubled."""
    rows = {sid: sr.system_rows(results, sid) for sid in SYSTEMS}
    if change:
        rows[change] = rows[change].assign(tokens_per_s=2 * rows[change].tokens_per_s)
    names = {s.id: s.name for s in study.systems}
    return figure_jobs(
        rows,
        names,
        *(sr.read(results, t) for t in ("headline", "all_systems_comparison")),
        sr.read(results, "regime_map"),
        sr.facts(results),
        whole=False,
    )


def render_all(jobs, study, stage: Path, previous: Path | None) -> list[str]:
    """Render every job into `stage`; the stems drawn (not copied)."""
    return [job.stem for job in jobs if render(job, study.config.figures, stage, previous)[1]]


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first(plain_results, study, tmp_path_factory) -> Path:
    """A folder holding the SYSTEMS' figures as a first run draws them (every one drawn)."""
    out = tmp_path_factory.mktemp("first")
    jobs = system_jobs(plain_results, study)
    assert sorted(render_all(jobs, study, out, None)) == sorted(j.stem for j in jobs)
    return out


def test_same_inputs_draw_nothing_and_give_the_same_bytes(first, plain_results, study, tmp_path) -> None:
    drawn = render_all(system_jobs(plain_results, study), study, tmp_path, first)
    assert drawn == []
    assert files(tmp_path) == files(first)
    assert len(files(first)) == 3 * 3 * len(SYSTEMS)  # PDF, PNG and key record of each figure


def test_drawing_again_gives_the_same_bytes(first, plain_results, study, tmp_path) -> None:
    """The copy stands for a drawing: the same job drawn afresh gives the same PDF and PNG."""
    job = system_jobs(plain_results, study)[0]
    assert render(job, study.config.figures, tmp_path, None)[1]
    again = files(tmp_path)
    assert again == {k: v for k, v in files(first).items() if job.stem in k}


def test_a_changed_system_redraws_its_figures_only(first, plain_results, study, tmp_path) -> None:
    drawn = render_all(system_jobs(plain_results, study, change="8xA100"), study, tmp_path, first)
    assert sorted(drawn) == [
        f"{k}_8xA100" for k in ("communication_overhead", "cost_efficiency", "throughput_comparison")
    ]
    assert files(tmp_path)["figures/cost_efficiency_2xA100.png"] == files(first)["figures/cost_efficiency_2xA100.png"]


def test_a_figure_changed_by_hand_or_a_broken_record_is_drawn_again(first, plain_results, study, tmp_path) -> None:
    previous = tmp_path / "previous"
    shutil.copytree(first, previous)
    (previous / "figures" / "cost_efficiency_2xA100.png").write_bytes(b"not a figure")
    (previous / KEYS_DIR / "scaling.json").write_text("{")  # no such job here: ignored
    (previous / KEYS_DIR / "throughput_comparison_8xA100.json").write_text("[]")
    drawn = render_all(system_jobs(plain_results, study), study, tmp_path / "stage", previous)
    assert sorted(drawn) == ["cost_efficiency_2xA100", "throughput_comparison_8xA100"]


def test_the_key_holds_the_style_the_config_and_the_data(plain_results, study) -> None:
    job = system_jobs(plain_results, study)[0]
    data = {name: figure_cache.csv_bytes(df) for name, df in job.tables.items()}
    cfg, style = study.config.figures, style_digest()
    key = job_key(job, data, cfg, style)
    assert key == job_key(job, dict(data), cfg, style)
    assert key != job_key(job, data, cfg, style + b"another matplotlib")
    assert key != job_key(job, data, type(cfg).model_validate({**cfg.model_dump(), "font_size_pt": 8}), style)
    assert key != job_key(job, {"rows": data["rows"] + b"\n"}, cfg, style)


def test_run_copies_what_it_drew_before(plain_results, tmp_path, monkeypatch) -> None:
    """`run` itself: a one-system run with figures draws its three figures and lists their key records in the
    manifest; the same run again draws none and leaves every file as it was."""
    results = copy_built(plain_results, tmp_path / "results")
    drawn = []
    real = figure_cache._draw
    monkeypatch.setattr(figure_cache, "_draw", lambda job, *a: drawn.append(job.stem) or real(job, *a))
    argv = [
        "run",
        "--config",
        str(ROOT / "_config.yml"),
        "--results",
        str(results),
        "--quiet",
        "--systems",
        "8xA100",
        "--jobs",
        "1",
    ]
    assert main(argv) == 0
    assert sorted(drawn) == [
        f"{k}_8xA100" for k in ("communication_overhead", "cost_efficiency", "throughput_comparison")
    ]
    manifest = json.loads((results / "manifest.json").read_text())["files"]
    assert f"{KEYS_DIR}/cost_efficiency_8xA100.json" in manifest
    before = files(results / "figures")
    drawn.clear()
    assert main(argv) == 0
    assert drawn == []
    assert files(results / "figures") == before
