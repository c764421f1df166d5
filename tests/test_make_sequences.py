"""`make` under sequences of edits and hand-run commands, in a private copy of the checkout: after each
`make`, the CSVs, the paper's LaTeX, the executed notebooks and the built book agree with the config
(same configuration hash everywhere, the configured systems and only those), a killed `make` leaves no
process or partial file, and `make clean` keeps a file of the user's. This is the suite's one full
end-to-end sequence; its first step (a fresh copy of the checkout, then `make`) is the session's
`built_checkout` (conftest.py), which the other slow tests copy too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from prophet_model.outputs.files import PAPER_FILES, expected_files
from prophet_model.study.config import load_study, macro_key

from .conftest import ROOT, copy_built, dump_yaml, load_yaml, only_systems
from .procs_util import PY, kernels, leftovers, start, wait_for

pytestmark = pytest.mark.skipif(not (ROOT / ".venv").is_dir(), reason="needs the .venv that make creates")


def make(work: Path, *args: str) -> None:
    proc = subprocess.run(["make", "-s", *args], cwd=work, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def prophet(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "prophet_model", *args], cwd=work, capture_output=True, text=True, check=False)


def edit(work: Path, change) -> None:
    cfg = work / "_config.yml"
    data = load_yaml(cfg)
    change(data)
    dump_yaml(data, cfg)


def assert_consistent(work: Path) -> None:
    """Every output agrees with the configuration as it stands."""
    study = load_study(work / "_config.yml")
    ids = [s.id for s in study.systems]
    r = work / "results"
    files = json.loads((r / "manifest.json").read_text())["files"]
    present = {k: v for k, v in files.items() if (r / k).is_file()}
    want = set(expected_files(ids, bool(study.config.uncertainty))) | {f"paper/{n}" for n in PAPER_FILES}
    assert set(present) == want
    assert {v["config_hash"] for v in present.values()} == {study.config_hash}
    on_disk = {p.relative_to(r).as_posix() for p in r.rglob("*") if p.is_file()} - {
        ".prophet-results",
        "manifest.json",
        ".lock",
    }
    assert {f for f in on_disk if not f.startswith("logs/") and f != "notes.txt"} == want
    comp = pd.read_csv(r / "data" / "all_systems_comparison.csv")
    by_count = [s.id for s in sorted(study.systems, key=lambda s: s.count)]  # GPU count, then config order
    assert list(dict.fromkeys(comp.system_id)) == by_count
    macros = (r / "paper" / "macros.tex").read_text()
    for s in study.systems:
        assert f"\\prophetSpeedup{macro_key(s.id)}" in macros
    assert f"prophet@v@study@n_systems\\endcsname{{{len(ids)}}}" in macros  # the section's count of systems
    assert "\\prophet{study}{n_systems} systems" in (r / "paper" / "section_multi_gpu.tex").read_text()
    assert sorted(p.stem.split("-", 1)[1] for p in (work / "book" / "systems").glob("*.ipynb")) == sorted(ids)
    html = work / "book" / "_build" / "html"
    assert sorted(p.stem.split("-", 1)[1] for p in (html / "systems").glob("*.html")) == sorted(ids)
    intro = (html / "intro.html").read_text()
    for s in study.systems:
        assert s.name in intro
    assert not list(work.rglob("*.partial.ipynb")) and not list(r.glob(".staging-*"))


def venv_sh_answers(work: Path) -> None:
    """make's `all` in an up-to-date checkout: `scripts/venv.sh PYTHON --uptodate` prints the steps' lines and exits
    0 when the .venv, the system packages and every step are up to date; it exits 3, printing nothing of the
    check, when the system packages' script is newer than their stamp (make installs them) or a step is not (a
    config value edited; the config is restored after)."""

    def answer() -> subprocess.CompletedProcess:
        return subprocess.run(["./scripts/venv.sh", "python3", "--uptodate"], cwd=work, capture_output=True,
                              text=True, check=False)  # fmt: skip

    done = answer()
    assert done.returncode == 0, done.stderr
    assert "results up to date" in done.stderr and "up to date" in done.stdout
    script = work / "scripts" / "install-system-deps.sh"
    was = script.stat()
    later = (work / ".venv" / ".system-deps").stat().st_mtime + 10
    os.utime(script, (later, later))
    done = answer()
    assert done.returncode == 3 and "up to date" not in done.stdout + done.stderr
    os.utime(script, ns=(was.st_atime_ns, was.st_mtime_ns))
    assert answer().returncode == 0
    config = (work / "_config.yml").read_bytes()
    edit(work, lambda c: c["workload"].update(batch_size_per_gpu=c["workload"]["batch_size_per_gpu"] + 1))
    done = answer()
    assert done.returncode == 3 and "up to date" not in done.stdout + done.stderr
    (work / "_config.yml").write_bytes(config)


def test_make_after_any_sequence(built_checkout, tmp_path) -> None:
    assert_consistent(built_checkout)  # a fresh copy after `make` (the fixture)
    work = copy_built(built_checkout, tmp_path / "checkout")
    make(work)  # nothing changed: the copy is up to date and stays consistent
    assert_consistent(work)
    venv_sh_answers(work)

    # systems leave the config (all but two: the rule does not depend on their number, and the rebuild below
    # is then shorter) and another joins, then hand-run partial commands after an edit: the folder is then mixed
    # (built again below, in parallel: the leaving systems' CSVs, figures, notebooks and pages go, the joining
    # one's notebooks run before the book is built)
    new = {"id": "2xH100", "name": "2×H100", "gpu": "h100_sxm5_80gb", "count": 2, "interconnect": "nvswitch_nvlink4",
           "hybrid": "none", "hybrid_note": "with 2 GPUs hybrid degenerates"}  # fmt: skip
    edit(work, lambda c: only_systems(c, ("4xH100", "8xA100"))["systems"].append(new))
    edit(work, lambda c: c["workload"].update(batch_size_per_gpu=32))
    assert prophet(work, "run", "--systems", "8xA100", "--quiet").returncode == 0
    refused = prophet(work, "paper")
    assert refused.returncode == 2 and "different configurations" in refused.stderr
    assert prophet(work, "run", "--no-figures", "--quiet").returncode == 0
    assert (work / "results" / "figures" / "cross_system_comparison.pdf").is_file()  # kept, now stale
    assert "INCONSISTENT" in prophet(work, "analyze").stdout

    # then make, killed while the notebooks run: nothing is left running, no partial file; the next make, in
    # parallel, repairs the mixed folder, recovers and replaces the system that left by the one that joined (one
    # build for the three, to keep CI within its time)
    edit(work, lambda c: c["prophet"].update(prediction_accuracy=0.7))
    proc, token = start(["make", "-s"], work)
    wait_for(lambda: kernels(token), 180, "a notebook kernel under make")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert leftovers(token) == []
    assert not list(work.rglob("*.partial.ipynb"))
    make(work, "-j4")
    assert_consistent(work)
    assert not (work / "results" / "data" / "results_2xA100.csv").exists()

    # make clean removes only what the artifact made (building everything from nothing is the first step's
    # make; not repeated here, to keep CI within its time)
    (work / "results" / "notes.txt").write_text("mine\n")
    make(work, "clean")
    assert sorted(p.name for p in (work / "results").rglob("*") if p.is_file()) == [".prophet-results", "notes.txt"]
    assert (work / "results" / "notes.txt").read_text() == "mine\n"
