"""Housekeeping: the environment script refuses an old Python and rebuilds a venv from another one;
benchmarks write their own folder; whatif adapts a changed system and names systems by id; uncertainty
intervals stay around their point after any input changes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prophet_model.cli import main
from prophet_model.study import sensitivity as se
from prophet_model.study.config import load_study
from prophet_model.study.runner import run_study

from .conftest import ROOT, dump_yaml, load_yaml


def _venv_sandbox(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    (work / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "venv.sh", work / "scripts" / "venv.sh")
    for name in ("requirements.lock", "pyproject.toml"):
        shutil.copy(ROOT / name, work / name)
    return work


def _fake_python(tmp_path: Path, body: str) -> Path:
    exe = tmp_path / "fakepython"
    exe.write_text("#!/bin/bash\n" + body)
    exe.chmod(0o755)
    return exe


def test_an_old_python_is_refused_before_a_venv_is_made(tmp_path) -> None:
    work = _venv_sandbox(tmp_path)
    old = _fake_python(tmp_path, 'case "$*" in *version_info*) exit 1;; *python_version*) echo 3.9.18;; esac\nexit 0\n')
    proc = subprocess.run(["bash", "scripts/venv.sh", str(old)], cwd=work, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "Python 3.9.18" in proc.stderr and "allowed: Python >= 3.11" in proc.stderr
    assert not (work / ".venv").exists()


def test_a_venv_from_another_python_is_rebuilt(tmp_path) -> None:
    work = _venv_sandbox(tmp_path)
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / ".venv" / "pyvenv.cfg").write_text("home = /opt/python3.9/bin\n")
    (work / ".venv" / ".prophet-venv").write_text("/opt/python3.9/bin/python3.9 3.9.18\n")
    (work / ".venv" / "old-file").write_text("from the old venv\n")
    # a Python that makes a stub venv (no real installs) and otherwise is this interpreter
    new = _fake_python(
        tmp_path,
        'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; echo "home = x" > "$3/pyvenv.cfg";\n'
        '  printf \'#!/bin/sh\\nexit 0\\n\' > "$3/bin/python"; chmod +x "$3/bin/python"; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n',
    )
    proc = subprocess.run(["bash", "scripts/venv.sh", str(new)], cwd=work, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "rebuilding .venv" in proc.stdout
    assert not (work / ".venv" / "old-file").exists()
    assert (work / ".venv" / ".installed").is_file()
    assert "3.9.18" not in (work / ".venv" / ".prophet-venv").read_text()


def test_a_folder_named_venv_that_is_not_one_is_left_alone(tmp_path) -> None:
    work = _venv_sandbox(tmp_path)
    (work / ".venv").mkdir()
    (work / ".venv" / "precious.txt").write_text("mine\n")
    proc = subprocess.run(["bash", "scripts/venv.sh", sys.executable], cwd=work, capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert proc.returncode == 2 and "not a virtual environment" in proc.stderr
    assert (work / ".venv" / "precious.txt").read_text() == "mine\n"


def test_benchmark_figures_go_to_their_own_folder(tmp_path, monkeypatch) -> None:
    tracked = ROOT / "benchmarks" / "results.json"
    before = tracked.read_bytes()
    monkeypatch.setenv("PROPHET_BENCH_OUT", str(tmp_path / "bench"))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_model import record
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    record({"a test figure": (1.0, "s", "< 2 s")})
    assert tracked.read_bytes() == before
    assert "a test figure" in json.loads((tmp_path / "bench" / "results.json").read_text())["figures"]


def test_bench_make_runs_in_a_private_copy() -> None:
    text = (ROOT / "benchmarks" / "bench_make.py").read_text()
    assert "copy_checkout(" in text and "cwd=ROOT" not in text and "rmtree(ROOT" not in text


def test_whatif_adapts_the_split_and_relabels(capsys) -> None:
    rc = main(["whatif", "--system", "8xA100", "--set", "systems.8xA100.count=4", "--gpu", "l40s", "--interconnect",
               "pcie4_dual_socket"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "every EP x DP split is searched" in out
    assert "4×L40S 48GB (what-if)" in out and "8×A100:" not in out


def test_whatif_errors_name_the_system_by_id(capsys) -> None:
    rc = main(["whatif", "--system", "8xA100", "--set", "systems.8xA100.count=true"])
    err = capsys.readouterr().err
    assert rc == 2 and "systems.8xA100.count" in err and "systems.2" not in err


CHANGES = {
    "prophet.prediction_accuracy": lambda c, cat: c["prophet"].update(prediction_accuracy=0.55),
    "prophet.comm_reduction_factor": lambda c, cat: c["prophet"].update(comm_reduction_factor=2.5),
    "workload.batch_size_per_gpu": lambda c, cat: c["workload"].update(batch_size_per_gpu=64),
    "interconnect_bandwidth_factor": lambda c, cat: cat["interconnects.yml"]["nvswitch_nvlink3"].update(
        bandwidth_gbps_per_direction=75
    ),
    "host_link_bandwidth_factor": lambda c, cat: cat["gpus.yml"]["a100_sxm4_80gb"].update(host_link_bandwidth_gbps=8),
}


@pytest.mark.parametrize("changed", list(CHANGES))
def test_points_stay_inside_their_intervals_after_a_change(study_dir, changed) -> None:
    """The intervals are factors on the configured value, so they move with it (31 of 36 points fell
    outside when they were absolute and the batch changed)."""
    cfg = load_yaml(study_dir / "_config.yml")
    cats = {n: load_yaml(study_dir / "catalog" / n) for n in ("gpus.yml", "interconnects.yml")}
    CHANGES[changed](cfg, cats)
    dump_yaml(cfg, study_dir / "_config.yml")
    for n, data in cats.items():
        dump_yaml(data, study_dir / "catalog" / n)
    results, failures = run_study(load_study(study_dir / "_config.yml"))
    assert not failures
    table = se.monte_carlo(results, samples=20_000)
    assert se.outside_interval(table) == []
    assert len(table) >= 18  # 6 metrics x the systems whose headline configuration fits
