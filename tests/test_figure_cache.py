"""`run`'s figures are drawn once (outputs/figure_cache.py): a figure whose tables, arguments and style are
unchanged is copied from the previous results instead of drawn, byte for byte; a change to one system's data
redraws that system's figures only; a figure changed by hand, or a new style, is drawn again. Here a staging
folder stands for the results folder it is committed to, its manifest entries as workflow/commit.py writes them
(the sha256 of each file and the key the stage's EXTRAS give it)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from prophet_model.cli import main
from prophet_model.outputs import figure_cache
from prophet_model.outputs import study_results as sr
from prophet_model.outputs.figure_cache import EXTRAS, KEY_FIELD, job_key, render, style_digest
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


def entries_of(stage: Path) -> dict[str, dict[str, str]]:
    """The manifest entries a commit of `stage` writes for its figures: sha256 and key."""
    keys = {}
    for path in (stage / EXTRAS).glob("*.json"):
        keys |= {rel: e[KEY_FIELD] for rel, e in json.loads(path.read_text()).items()}
    figures = sorted(p for p in (stage / "figures").rglob("*") if p.is_file())
    return {
        (rel := p.relative_to(stage).as_posix()): {
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            KEY_FIELD: keys[rel],
        }
        for p in figures
    }


def render_all(jobs, study, stage: Path, previous: Path | None, entries: dict | None = None) -> list[str]:
    """Render every job into `stage` (`previous`: a stage rendered before, as if committed; `entries`: its
    manifest's, by default as its files are now); the stems drawn."""
    entries = entries or (entries_of(previous) if previous else None)
    return [job.stem for job in jobs if render(job, study.config.figures, stage, previous, entries)[1]]


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
    assert len(entries_of(first)) == 2 * 3 * len(SYSTEMS)  # the PDF and PNG of each figure


def test_drawing_again_gives_the_same_bytes(first, plain_results, study, tmp_path) -> None:
    """The copy stands for a drawing: the same job drawn afresh gives the same PDF and PNG."""
    job = system_jobs(plain_results, study)[0]
    assert render(job, study.config.figures, tmp_path, None)[1]
    assert files(tmp_path / "figures") == {k: v for k, v in files(first / "figures").items() if job.stem in k}


def test_a_changed_system_redraws_its_figures_only(first, plain_results, study, tmp_path) -> None:
    drawn = render_all(system_jobs(plain_results, study, change="8xA100"), study, tmp_path, first)
    assert sorted(drawn) == [
        f"{k}_8xA100" for k in ("communication_overhead", "cost_efficiency", "throughput_comparison")
    ]
    assert files(tmp_path)["figures/cost_efficiency_2xA100.png"] == files(first)["figures/cost_efficiency_2xA100.png"]


def test_a_figure_changed_by_hand_or_drawn_with_another_key_is_drawn_again(first, plain_results, study, tmp_path):
    previous = tmp_path / "previous"
    shutil.copytree(first, previous)
    entries = entries_of(previous)  # as committed: then the PNG is changed by hand
    (previous / "figures" / "cost_efficiency_2xA100.png").write_bytes(b"not a figure")
    entries["figures/throughput_comparison_8xA100.pdf"][KEY_FIELD] = "another key"
    drawn = render_all(system_jobs(plain_results, study), study, tmp_path / "stage", previous, entries)
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
    """`run` itself: a one-system run with figures draws its three figures, their keys in their manifest entries;
    the same run again draws none and leaves every file as it was."""
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
    assert len(manifest["figures/cost_efficiency_8xA100.pdf"][KEY_FIELD]) == 64
    assert not [rel for rel in manifest if EXTRAS in rel]
    before = files(results / "figures")
    drawn.clear()
    assert main(argv) == 0
    assert drawn == []
    assert files(results / "figures") == before
