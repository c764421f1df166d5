"""Malformed inputs: each exits non-zero with a message naming the key path and the allowed values,
prints no traceback, and leaves the results folder untouched."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from prophet_model.cli import main

from .conftest import ROOT, dump_yaml, load_yaml


def _set(path: str, value) -> Callable[[dict], None]:
    def mutate(cfg: dict) -> None:
        *head, last = path.split(".")
        node = cfg
        for key in head:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[int(last) if isinstance(node, list) else last]
        else:
            node[int(last) if isinstance(node, list) else last] = value

    return mutate


_DELETE = object()

# (id, file to change, mutation, substrings the message must contain)
CASES = [
    ("missing-section", "_config.yml", _set("workload", _DELETE), ["workload", "required key is missing"]),
    ("missing-gpu", "_config.yml", _set("systems.0.gpu", _DELETE), ["systems.2xA100.gpu", "required key is missing"]),
    (
        "missing-accuracy",
        "_config.yml",
        _set("prophet.prediction_accuracy", _DELETE),
        ["prophet.prediction_accuracy", "missing"],
    ),
    (
        "batch-not-int",
        "_config.yml",
        _set("workload.batch_size_per_gpu", "sixteen"),
        ["workload.batch_size_per_gpu", "whole number"],
    ),
    (
        "batch-zero",
        "_config.yml",
        _set("workload.batch_size_per_gpu", 0),
        ["workload.batch_size_per_gpu", "greater than or equal to 1"],
    ),
    (
        "batch-negative",
        "_config.yml",
        _set("workload.batch_size_per_gpu", -4),
        ["workload.batch_size_per_gpu", "greater than or equal to 1"],
    ),
    (
        "accuracy-above-1",
        "_config.yml",
        _set("prophet.prediction_accuracy", 1.5),
        ["prophet.prediction_accuracy", "less than or equal to 1"],
    ),
    (
        "accuracy-negative",
        "_config.yml",
        _set("prophet.prediction_accuracy", -0.1),
        ["prophet.prediction_accuracy", "greater than or equal to 0"],
    ),
    (
        "reduction-below-1",
        "_config.yml",
        _set("prophet.comm_reduction_factor", 0.5),
        ["prophet.comm_reduction_factor", "greater than or equal to 1"],
    ),
    (
        "unknown-gpu",
        "_config.yml",
        _set("systems.0.gpu", "b200"),
        ["systems.2xA100.gpu", "unknown GPU 'b200'", "allowed:", "a100_sxm4_80gb"],
    ),
    (
        "unknown-model",
        "_config.yml",
        _set("model", "gpt-moe"),
        ["model", "unknown MoE model 'gpt-moe'", "allowed:", "mixtral_8x7b"],
    ),
    (
        "unknown-interconnect",
        "_config.yml",
        _set("systems.1.interconnect", "infiniband"),
        ["systems.4xH100.interconnect", "allowed:", "nvswitch_nvlink4"],
    ),
    (
        "hybrid-product",
        "_config.yml",
        _set("systems.2.hybrid", {"ep": 3, "dp": 2}),
        ["systems.8xA100", "3x2 = 6 GPUs", "count is 8", "ep x dp = count"],
    ),
    (
        "hybrid-word",
        "_config.yml",
        _set("systems.2.hybrid", "sometimes"),
        ["systems.8xA100.hybrid", "'auto'", "'none'"],
    ),
    (
        "hybrid-zero",
        "_config.yml",
        _set("systems.2.hybrid", {"ep": 0, "dp": 8}),
        ["systems.8xA100.hybrid", "ep", "greater than 0"],
    ),
    ("hybrid-none-no-note", "_config.yml", _set("systems.0.hybrid_note", ""), ["systems.2xA100", "hybrid_note"]),
    ("unknown-strategy", "_config.yml", _set("strategies", ["EP", "TP"]), ["strategies.1", "'EP', 'DP' or 'Hybrid'"]),
    ("duplicate-strategy", "_config.yml", _set("strategies", ["EP", "EP"]), ["strategies", "once"]),
    (
        "bad-precision",
        "_config.yml",
        _set("workload.precision", "int3"),
        ["workload.precision", "'fp32', 'bf16', 'fp16' or 'fp8'"],
    ),
    ("duplicate-id", "_config.yml", _set("systems.1.id", "2xA100"), ["duplicate id", "2xA100"]),
    ("unsafe-id", "_config.yml", _set("systems.0.id", "2x/A100"), ["systems.2x/A100.id", "letters, digits"]),
    ("count-zero", "_config.yml", _set("systems.0.count", 0), ["systems.2xA100.count", "greater than 0"]),
    (
        "odd-count-two-sockets",
        "_config.yml",
        lambda c: (_set("systems.3.count", 9)(c), _set("systems.3.hybrid", "auto")(c)),
        ["systems.10xA6000.count", "2 sockets", "even count"],
    ),
    (
        "unknown-headline",
        "_config.yml",
        _set("study.headline_system", "3xV100"),
        ["study.headline_system", "allowed:", "8xA100"],
    ),
    (
        "expectation-min-max",
        "_config.yml",
        _set("expectations.0.min", 900),
        ["expectations.0", "min (900.0) is greater than max"],
    ),
    ("expectation-system", "_config.yml", _set("expectations.0.system", "1xT4"), ["expectations.0.system", "allowed:"]),
    (
        "claim-gpu",
        "_config.yml",
        _set("single_gpu_claim.gpu", "v100"),
        ["single_gpu_claim.gpu", "unknown GPU 'v100'", "allowed:"],
    ),
    (
        "claim-zero",
        "_config.yml",
        _set("single_gpu_claim.baseline_tokens_per_s", 0),
        ["single_gpu_claim.baseline_tokens_per_s", "greater than 0"],
    ),
    ("monthly-negative", "_config.yml", _set("cost.monthly_tokens", -1), ["cost.monthly_tokens", "greater than 0"]),
    ("misspelt-key", "_config.yml", _set("sytems", []), ["sytems", "unknown key"]),
    (
        "missing-source",
        "_config.yml",
        _set("workload.sources", {"precision": "x"}),
        ["workload", "sources is missing an entry for", "batch_size_per_gpu"],
    ),
    (
        "gpu-negative-bandwidth",
        "catalog/gpus.yml",
        _set("a100_sxm4_80gb.memory_bandwidth_gbps", -1),
        ["gpus.yml [a100_sxm4_80gb]", "memory_bandwidth_gbps", "greater than 0"],
    ),
    (
        "link-zero-bandwidth",
        "catalog/interconnects.yml",
        _set("nvswitch_nvlink3.bandwidth_gbps_per_direction", 0),
        ["interconnects.yml [nvswitch_nvlink3]", "bandwidth_gbps_per_direction", "greater than 0"],
    ),
    (
        "link-payload-above-one",
        "catalog/interconnects.yml",
        _set("nvswitch_nvlink4.payload_efficiency", 1.3),
        ["interconnects.yml [nvswitch_nvlink4]", "payload_efficiency", "less than or equal to 1"],
    ),
    (
        "link-bad-kind",
        "catalog/interconnects.yml",
        _set("nvswitch_nvlink3.kind", "ethernet"),
        ["kind", "'nvswitch', 'nvlink' or 'pcie'"],
    ),
    (
        "catalog-missing-source",
        "catalog/gpus.yml",
        _set("h100_sxm5_80gb.sources", {"memory_capacity_gb": "x"}),
        ["gpus.yml [h100_sxm5_80gb]", "sources is missing an entry for", "price_usd_per_gpu_hour"],
    ),
    (
        "model-topk",
        "catalog/models.yml",
        _set("seed_128x2gb.top_k", 500),
        ["models.yml [seed_128x2gb]", "top_k (500) exceeds num_experts (128)"],
    ),
    ("catalog-path", "_config.yml", _set("catalogs.gpus", "catalog/nope.yml"), ["nope.yml", "file not found"]),
]


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    d = tmp_path / "previous_results"
    (d / "data").mkdir(parents=True)
    (d / "data" / "results_old.csv").write_text("old,results\n1,2\n")
    return d


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _run(config: Path, results_dir: Path, capsys) -> tuple[int, str]:
    rc = main(["run", "--config", str(config), "--results", str(results_dir)])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(("name", "file", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_config(study_dir, results_dir, capsys, name, file, mutate, expected) -> None:
    target = study_dir / file
    data = load_yaml(target)
    mutate(data)
    dump_yaml(data, target)
    before = _snapshot(results_dir)
    rc, err = _run(study_dir / "_config.yml", results_dir, capsys)
    assert rc == 2, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"
    assert _snapshot(results_dir) == before
    assert not list(results_dir.parent.glob(".*staging*"))


def test_yaml_syntax_error(study_dir, results_dir, capsys) -> None:
    cfg = study_dir / "_config.yml"
    cfg.write_text(cfg.read_text() + "\nworkload: [unclosed\n")
    rc, err = _run(cfg, results_dir, capsys)
    assert rc == 2 and "YAML error (line" in err and "_config.yml" in err


def test_missing_config_file(tmp_path, results_dir, capsys) -> None:
    rc, err = _run(tmp_path / "nope.yml", results_dir, capsys)
    assert rc == 2 and "nope.yml: file not found" in err


def test_config_not_a_mapping(study_dir, results_dir, capsys) -> None:
    cfg = study_dir / "_config.yml"
    cfg.write_text("- just\n- a list\n")
    rc, err = _run(cfg, results_dir, capsys)
    assert rc == 2 and "must be a YAML mapping" in err


def test_unknown_system_on_command_line(study_dir, results_dir, capsys) -> None:
    rc = main(["run", "--config", str(study_dir / "_config.yml"), "--results", str(results_dir), "--systems", "3xT4"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown system '3xT4'" in err and "allowed: 2xA100" in err


def test_real_process_prints_no_traceback(study_dir, tmp_path) -> None:
    """The same through a real interpreter: exit code 2, one message, no traceback."""
    cfg = study_dir / "_config.yml"
    data = load_yaml(cfg)
    data["prophet"]["prediction_accuracy"] = 7
    dump_yaml(data, cfg)
    proc = subprocess.run(
        [sys.executable, "-m", "prophet_model", "run", "--config", str(cfg), "--results", str(tmp_path / "r")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "prophet.prediction_accuracy" in proc.stderr
    assert not (tmp_path / "r").exists()
