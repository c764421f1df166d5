"""Sensitivity sweeps follow the physics; the Monte Carlo is reproducible; whatif is safe."""

from __future__ import annotations

import numpy as np
import pytest

from prophet_model.cli import main
from prophet_model.study import sensitivity as se
from prophet_model.study.config import load_study
from prophet_model.study.runner import run_study

from .conftest import ROOT, dump_yaml, load_yaml


@pytest.fixture(scope="module")
def results():
    res, failures = run_study(load_study(ROOT / "_config.yml"))
    assert not failures
    return res


@pytest.fixture(scope="module")
def tables(results):
    return {sid: se.sweeps(s) for sid, s in se.setups(results).items()}


def _nondecreasing(x: np.ndarray) -> bool:
    x = x[np.isfinite(x)]
    return bool(np.all(np.diff(x) >= -1e-9 * np.abs(x[:-1])))


@pytest.mark.parametrize(
    ("name", "metric", "direction"),
    [
        ("prophet.prediction_accuracy", "prophet_tokens_per_s", +1),  # better prediction, never slower
        ("prophet.prediction_accuracy", "prophet_usd_per_1m_tokens", -1),
        ("prophet.comm_reduction_factor", "prophet_tokens_per_s", +1),  # less volume, never slower
        ("interconnect_bandwidth_factor", "prophet_tokens_per_s", +1),  # faster links, never slower
        ("interconnect_bandwidth_factor", "baseline_tokens_per_s", +1),
        ("host_link_bandwidth_factor", "prophet_tokens_per_s", +1),
        ("host_link_bandwidth_factor", "baseline_tokens_per_s", +1),
        ("host_link_bandwidth_factor", "baseline_usd_per_1m_tokens", -1),
    ],
)
def test_sweeps_are_monotone_where_the_physics_says(tables, name, metric, direction) -> None:
    for sid, t in tables.items():
        g = t[t.input == name].sort_values("value")
        assert _nondecreasing(direction * g[metric].to_numpy()), (sid, name, metric)


def test_accuracy_does_not_change_the_baseline(tables) -> None:
    for t in tables.values():
        g = t[t.input == "prophet.prediction_accuracy"]
        assert np.allclose(g.baseline_tokens_per_s, g.baseline_tokens_per_s.iloc[0])


def test_sweep_at_the_study_value_reproduces_the_study(results) -> None:
    """The vectorized headline evaluation agrees with the study's own comparison table."""
    for sid, s in se.setups(results).items():
        row = results.comparison[
            (results.comparison.system_id == sid) & (results.comparison.strategy == s.strategy)
        ].iloc[0]
        out = se.evaluate(s)
        assert float(out["speedup"]) == pytest.approx(row.speedup, rel=1e-12)
        assert float(out["prophet_usd_per_1m_tokens"]) == pytest.approx(row.prophet_usd_per_1m_tokens, rel=1e-12)


def test_monte_carlo_is_reproducible_with_the_seed(results) -> None:
    a = se.monte_carlo(results, samples=5000)
    b = se.monte_carlo(results, samples=5000)
    c = se.monte_carlo(results, samples=5000, seed=1)
    assert a.equals(b)
    assert not a.equals(c)
    assert (a.p5 <= a["median"]).all() and (a["median"] <= a.p95).all()


def test_tornado_ranks_by_spread(results) -> None:
    t = se.tornado(se.setups(results)["8xA100"], "speedup")
    assert list(t.spread) == sorted(t.spread, reverse=True)
    assert set(t.input) == set(se.SWEEPS)


def test_speedup_map_is_one_at_zero_accuracy_without_offload_or_comm_gain(results) -> None:
    acc, bw, sp = se.speedup_map(se.setups(results)["8xA100"], n=11)
    assert sp.shape == acc.shape == bw.shape
    assert np.all(np.diff(sp, axis=1) >= -1e-12)  # more accuracy never lowers the speedup


def test_summary_and_csv_carry_intervals(tmp_path) -> None:
    results = tmp_path / "r"
    assert main(["run", "--results", str(results), "--quiet", "--no-figures"]) == 0
    assert "90% interval" in (results / "SUMMARY_8xA100.md").read_text()
    systems = len(load_study(ROOT / "_config.yml").systems)
    assert (results / "data" / "uncertainty.csv").read_text().count("speedup") == systems  # one row each


def test_uncertainty_config_is_validated(study_dir, capsys) -> None:
    cfg = load_yaml(study_dir / "_config.yml")
    cfg["uncertainty"]["inputs"]["gpu_magic"] = {"distribution": "uniform", "low": 0.5, "high": 1.5, "source": "x"}
    dump_yaml(cfg, study_dir / "_config.yml")
    assert main(["run", "--config", str(study_dir / "_config.yml"), "--results", str(study_dir / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown uncertain input(s) gpu_magic" in err and "allowed: prophet.prediction_accuracy" in err


GPUS = ["a100_sxm4_80gb", "h100_sxm5_80gb", "h200_sxm_141gb", "rtx_a6000", "l40s"]
MODELS = ["seed_128x2gb", "mixtral_8x7b", "deepseek_v3", "qwen1_5_moe_a2_7b"]


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("model", MODELS)
def test_whatif_works_for_every_catalog_gpu_and_model(gpu, model, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written
    # a GPU of another generation than the A100 board's NVSwitch needs an interconnect that joins it (issue 25)
    net = {"a100_sxm4_80gb": [], "rtx_a6000": ["--interconnect", "pcie4_dual_socket"], "l40s": ["--interconnect",
           "pcie4_dual_socket"]}.get(gpu, ["--interconnect", "nvswitch_nvlink4"])  # fmt: skip
    rc = main(["whatif", "--config", str(ROOT / "_config.yml"), "--system", "8xA100", "--gpu", gpu, "--model", model,
               *net])  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "Hybrid" in out.out and "EP" in out.out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "prophet.accuracy=0.6"],
            "unknown key 'prophet.accuracy'; allowed: comm_reduction_factor, prediction_accuracy",
        ),
        (
            ["--set", "prophet.prediction_accuracy=1.6"],
            "prophet.prediction_accuracy: Input should be less than or equal to 1",
        ),
        (
            ["--set", "workload.batch_size_per_gpu=-3"],
            "workload.batch_size_per_gpu: Input should be greater than or equal to 1",
        ),
        (["--set", "systems.9xB200.count=9"], "no entry 'systems.9xB200'; allowed: 2xA100, 4xH100, 8xA100, 10xA6000"),
        (["--set", "prophet.prediction_accuracy"], "expected KEY=VALUE"),
        (["--gpu", "b200"], "unknown GPU 'b200'; allowed: a100_sxm4_80gb"),
        (["--model", "gpt"], "unknown MoE model 'gpt'; allowed: deepseek_v3"),
    ],
)
def test_whatif_rejects_bad_input_clearly(args, message, capsys) -> None:
    rc = main(["whatif", "--config", str(ROOT / "_config.yml"), "--system", "8xA100", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_whatif_changes_the_numbers(capsys) -> None:
    main(
        [
            "whatif",
            "--config",
            str(ROOT / "_config.yml"),
            "--system",
            "8xA100",
            "--set",
            "systems.8xA100.count=4",
            "--set",
            "systems.8xA100.hybrid={ep: 2, dp: 2}",
        ]
    )
    out = capsys.readouterr().out
    assert "4 x A100" in out and "2×2" in out
