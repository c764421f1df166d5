"""The run's outputs: layout, determinism, fonts, log, summaries, analyze, and fault handling."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from prophet_model.cli import main
from prophet_model.commands.analyze import analyze
from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.files import expected_files
from prophet_model.study import runner as study_mod
from prophet_model.workflow.runlog import SUCCESS

from .conftest import ROOT, copy_built

IDS = ["2xA100", "4xH100", "8xA100", "10xA6000"]


def run_cli(results: Path, *extra: str) -> int:
    return main(["run", "--config", str(ROOT / "_config.yml"), "--results", str(results), "--quiet", *extra])


@pytest.fixture(scope="module")
def two_runs(built_checkout, tmp_path_factory) -> tuple[Path, Path]:
    """Two runs of the default study: the one `make` did in the session's built checkout, and a plain `run`."""
    a = copy_built(built_checkout / "results", tmp_path_factory.mktemp("run_a") / "results")
    b = tmp_path_factory.mktemp("run_b") / "results"
    assert run_cli(b) == 0
    return a, b


def test_every_file_of_the_layout_exists(two_runs) -> None:
    a, _ = two_runs
    missing = [f for f in expected_files(IDS) if not (a / f).is_file()]
    assert not missing
    assert len(list((a / "logs").glob("multi_gpu_analysis_*.log"))) == 1


def test_reruns_are_byte_identical(two_runs) -> None:
    a, b = two_runs
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.suffix in {".csv", ".md", ".pdf", ".png"})
    assert len(files) >= 38
    differ = [str(f) for f in files if (a / f).read_bytes() != (b / f).read_bytes()]
    assert not differ


def test_pdfs_embed_no_type3_fonts(two_runs) -> None:
    a, _ = two_runs
    pdfs = sorted((a / "figures").glob("*.pdf"))
    assert pdfs
    for pdf in pdfs:
        out = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
        rows = out.splitlines()[2:]
        assert rows, f"{pdf.name}: no fonts listed"
        assert not [r for r in rows if "Type 3" in r], f"{pdf.name}:\n{out}"
        assert all("TrueType" in r or "CID" in r for r in rows), out
        assert b"CreationDate" not in pdf.read_bytes()


def test_pngs_are_at_least_200_dpi(two_runs) -> None:
    from PIL import Image

    a, _ = two_runs
    for png in (a / "figures").glob("*.png"):
        dpi = Image.open(png).info.get("dpi", (0, 0))[0]
        assert dpi >= 199.5, png.name


def test_log_header_and_closing_line(two_runs) -> None:
    a, _ = two_runs
    text = next((a / "logs").glob("*.log")).read_text()
    assert text.splitlines()[-1].endswith(SUCCESS)
    for needle in (
        "config:",
        "sha256",
        "packages:",
        "numpy",
        "hardware: A100 SXM4 80GB: HBM",
        "8xA100 Hybrid prophet ep=4 dp=2",
    ):
        assert needle in text


def test_summary_shows_strategies_and_checks(two_runs) -> None:
    a, _ = two_runs
    text = (a / "SUMMARY_8xA100.md").read_text()
    comp = pd.read_csv(a / "data" / "all_systems_comparison.csv")
    row = comp[(comp.system_id == "8xA100") & (comp.strategy == "Hybrid")].iloc[0]
    assert fmt.tokens(row.prophet_tokens_per_s) in text and fmt.ratio(row.speedup) in text
    assert "| speedup | Hybrid |" in text and ("MISS" in text or "PASS" in text)
    assert "Best strategy" in text
    assert "hybrid degenerates" in (a / "SUMMARY_2xA100.md").read_text()


def test_consistency_checks_all_pass(two_runs) -> None:
    a, _ = two_runs
    checks = pd.read_csv(a / "data" / "sanity_checks.csv")
    cons = checks[checks.kind == "consistency"]
    assert len(cons) > 0 and (cons.status == "PASS").all()
    exp = checks[checks.kind == "expectation"]
    assert set(exp.status) <= {"PASS", "MISS", "NOT EVALUATED"}


def test_analyze_reports_everything(two_runs) -> None:
    a, _ = two_runs
    text, code = analyze(a)
    assert code == 0
    # every file `run` wrote (its manifest's entries; analyze does not count the optional uncertainty.csv)
    wrote = [k for k, e in json.loads((a / "manifest.json").read_text())["files"].items() if e["producer"] == "run"]
    n = len([k for k in wrote if k != "data/uncertainty.csv"])
    needles = [
        f"Generated files: {n} of {n} present",
        "Cost-efficiency ranking",
        "Highest speedup",
        "Most cost-efficient",
    ]
    needles += ["Interconnect matters most", "Sanity checks", "Consistency checks", "Last 20 lines", SUCCESS]
    for needle in needles:
        assert needle in text


def test_analyze_empty_and_foreign_folders(tmp_path, capsys) -> None:
    assert main(["analyze", "--results", str(tmp_path / "nothing")]) == 1
    out = capsys.readouterr()
    assert "MISSING" in out.out and "Traceback" not in out.err
    foreign = tmp_path / "foreign"
    (foreign / "data").mkdir(parents=True)
    (foreign / "data" / "all_systems_comparison.csv").write_text("a,b\n1,2\n")
    assert main(["analyze", "--results", str(foreign)]) == 1
    assert "UNREADABLE" in capsys.readouterr().out


def test_analyze_flags_missing_files_and_failed_runs(two_runs, tmp_path) -> None:
    import shutil

    a, _ = two_runs
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    (copy / "figures" / "cost_efficiency_4xH100.pdf").unlink()
    log = next((copy / "logs").glob("*.log"))
    log.write_text(log.read_text() + "2026-01-01 00:00:00 ERROR   ERROR something broke\n")
    text, code = analyze(copy)
    assert code == 1
    assert "MISSING figures/cost_efficiency_4xH100.pdf" in text
    assert "did not complete successfully" in text


def test_one_failing_system_does_not_stop_the_others_but_commits_nothing(tmp_path, monkeypatch) -> None:
    """Every system is still evaluated (the log reports each), but a run with a failure replaces nothing."""
    real = study_mod.evaluate_system

    def flaky(study, system):
        if system.id == "4xH100":
            raise RuntimeError("injected failure")
        return real(study, system)

    monkeypatch.setattr(study_mod, "evaluate_system", flaky)
    results = tmp_path / "results"
    assert run_cli(results) == 1
    assert not (results / "data").exists()
    log = next((results / "logs").glob("*.log")).read_text()
    assert "8xA100 Hybrid prophet ep=4 dp=2" in log  # the other systems were evaluated
    last = log.splitlines()[-1]
    assert "ERROR" in last and "4xH100" in last and "injected failure" in last and "nothing was written" in last
