"""A researcher's questions through the real command line (issue 25): natural values, configs kept anywhere,
a general sweep, solve, models from their config.json, a coherent whatif, compare for people, and the
message a Python without the dependencies gives."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from .conftest import ROOT

HF = ROOT / "tests" / "data" / "hf"
FAMILIES = ("mixtral_8x7b", "qwen1_5_moe_a2_7b", "qwen3_30b_a3b", "deepseek_v2_lite", "deepseek_v3", "olmoe_1b_7b")


def cli(*args: str, cwd: Path = ROOT, python: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [*(python or [sys.executable]), "-m", "prophet_model", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def ok(*args: str, **kw) -> subprocess.CompletedProcess:
    r = cli(*args, **kw)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r


def refused(*args: str, says: tuple[str, ...]) -> str:
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    for s in says:
        assert s in r.stderr, (s, r.stderr)
    return r.stderr


# 1. every natural value accepted ------------------------------------------------------------------


def test_whatif_takes_a_perfect_predictor_batch_one_and_no_volume_reduction() -> None:
    r = ok("whatif", "--system", "8xA100", "--set", "prophet.prediction_accuracy=1", "--set",
           "workload.batch_size_per_gpu=1", "--set", "prophet.comm_reduction_factor=1", "--format", "json")  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["changes"] == ["prophet.prediction_accuracy=1", "workload.batch_size_per_gpu=1",
                              "prophet.comm_reduction_factor=1"]  # fmt: skip
    ok("whatif", "--system", "8xA100", "--gpu", "h100_sxm5_80gb", "--interconnect", "nvswitch_nvlink4", "--set",
       "prophet.prediction_accuracy=0.9")  # fmt: skip


def test_uncertainty_is_truncated_at_the_physical_bounds(study_dir) -> None:
    """Worked example: accuracy 1 x factor 1.125 = 1.125 is truncated to 1; 0.8 x 1.125 = 0.9 stays. With
    every value at its bound (accuracy 1, batch 1, volume reduction 1) each headline number stays inside its
    own 90% interval."""
    from prophet_model.study import sensitivity as se
    from prophet_model.study.config import study_from_raw
    from prophet_model.study.runner import run_study
    from prophet_model.study.yaml_io import read_yaml

    raw = read_yaml(study_dir / "_config.yml")
    raw["prophet"] |= {"prediction_accuracy": 1.0, "comm_reduction_factor": 1}
    raw["workload"] |= {"batch_size_per_gpu": 1, "batch_search": False}
    study = study_from_raw(raw, study_dir / "_config.yml")
    results, failures = run_study(study, ["2xA100"])
    assert not failures
    setup = se.setups(results)["2xA100"]
    f = {"prophet.prediction_accuracy": np.array([0.875, 1.0, 1.125]), "prophet.comm_reduction_factor": np.array(
        [0.5, 1.0, 1.5]), "workload.batch_size_per_gpu": np.array([0.5, 1.0, 2.0])}  # fmt: skip
    out = se._absolute(setup, f)
    assert out["prophet.prediction_accuracy"].tolist() == [0.875, 1.0, 1.0]
    assert out["prophet.comm_reduction_factor"].tolist() == [1.0, 1.0, 1.5]
    assert out["workload.batch_size_per_gpu"].tolist() == [1.0, 1.0, 2.0]
    mc = se.monte_carlo(results, samples=4000)
    assert len(mc) and se.outside_interval(mc) == []


def test_set_reaches_dotted_names() -> None:
    from prophet_model.study.questions.overrides import key_parts

    assert key_parts("uncertainty.inputs[prophet.prediction_accuracy].low") == [
        ("uncertainty", False), ("inputs", False), ("prophet.prediction_accuracy", True), ("low", False)]  # fmt: skip
    assert key_parts('a."b.c".d') == key_parts("a[b.c].d") == key_parts("a['b.c'].d")
    ok("whatif", "--system", "8xA100", "--set", "uncertainty.inputs[prophet.prediction_accuracy].low=0.9",
       "--set", 'uncertainty.inputs."prophet.prediction_accuracy".high=1.1')  # fmt: skip
    ok("whatif", "--system", "8xA100", "--set", "uncertainty.inputs.prophet.prediction_accuracy.mode=1")
    refused("whatif", "--system", "8xA100", "--set", "uncertainty.inputs[prophet.prediction_accuracy].low=0.5",
            says=("prophet.prediction_accuracy", "centred on 1"))  # fmt: skip
    refused("whatif", "--system", "8xA100", "--set", "uncertainty.inputs[nope.x.low=1", says=("closing ]",))


# 2. configs anywhere --------------------------------------------------------------------------------


def test_a_config_outside_the_checkout_runs(tmp_path) -> None:
    cfg = tmp_path / "elsewhere" / "my_study.yml"
    cfg.parent.mkdir()
    shutil.copy(ROOT / "_config.yml", cfg)  # no catalog/ beside it: the repository's is used
    r = ok("whatif", "--config", str(cfg), "--system", "8xA100", cwd=tmp_path)
    assert "8×A100" in r.stdout
    cfg.write_text(cfg.read_text().replace("gpus: catalog/gpus.yml", "gpus: mine/gpus.yml"))
    err = refused("whatif", "--config", str(cfg), "--system", "8xA100", says=("catalogs.gpus", "mine/gpus.yml"))
    assert str(cfg.parent / "mine" / "gpus.yml") in err and str(ROOT / "mine" / "gpus.yml") in err


# 8. a Python without the dependencies -----------------------------------------------------------------


def test_a_python_without_the_dependencies_names_the_command_to_use(tmp_path) -> None:
    r = cli("whatif", "--system", "8xA100", cwd=tmp_path, python=[sys.executable, "-S"])  # no site-packages
    assert r.returncode == 2 and "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert "lacks the artifact's dependencies" in r.stderr and "pandas" in r.stderr
    assert ".venv/bin/python -m prophet_model" in r.stderr and ".venv/bin/activate" in r.stderr


# 3. a general sweep -------------------------------------------------------------------------------------


def test_sweep_ranges_any_system_and_a_plot(tmp_path) -> None:
    plot = tmp_path / "speedup.png"
    r = ok("sweep", "--gpu", "h100_sxm5_80gb", "--count", "8", "--interconnect", "nvswitch_nvlink4", "--model",
           "mixtral_8x7b", "--strategy", "EP", "--set", "workload.context_length_tokens=1024",
           "--vary", "host_link_bandwidth_factor=log:0.25:4:3", "--vary", "prophet.prediction_accuracy=0:1:0.5",
           "--plot", str(plot))  # fmt: skip
    df = pd.read_csv(io.StringIO(r.stdout))
    assert df["host_link_bandwidth_factor"].tolist() == [0.25, 0.25, 0.25, 1, 1, 1, 4, 4, 4]
    assert df["prophet.prediction_accuracy"].tolist() == [0, 0.5, 1] * 3
    assert set(df.strategy) == {"EP"} and set(df.system_id) == {"custom"} and set(df.split) == {"8x1"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the baseline has no predictor: its throughput never moves with Prophet's accuracy
    assert df.groupby("host_link_bandwidth_factor").baseline_tokens_per_s.nunique().eq(1).all()
    refused("sweep", "--system", "8xA100", "--vary", "prophet.prediction_accuracy=0:1:0.5", "--plot", str(plot),
            says=("exists",))  # fmt: skip


def test_sweep_notes_where_a_key_stops_changing_the_result() -> None:
    # 8xA100 holds every expert on its GPUs at its operating point: the host link changes nothing
    r = ok("sweep", "--system", "8xA100", "--vary", "host_link_bandwidth_factor=1,4,8")
    assert "host_link_bandwidth_factor: the results are the same at every value swept" in r.stderr
    # 2xA100 fetches experts: a faster host link helps (speedup grows with it)
    r = ok("sweep", "--system", "2xA100", "--vary", "host_link_bandwidth_factor=1,2,4")
    assert pd.read_csv(io.StringIO(r.stdout)).speedup.is_monotonic_increasing


def test_sweep_varies_any_config_key_by_rerunning_the_study() -> None:
    r = ok("sweep", "--system", "2xA100", "--vary", "implementation.kernels_per_layer=0:20:10",
           "--vary", "prophet.prediction_accuracy=0.5,1")  # fmt: skip
    df = pd.read_csv(io.StringIO(r.stdout))
    assert df["implementation.kernels_per_layer"].tolist() == [0, 0, 10, 10, 20, 20]
    # more kernels per layer: more start-up time, never a faster baseline
    base = df.groupby("implementation.kernels_per_layer").baseline_step_ms.first()
    assert base.is_monotonic_increasing
    refused("sweep", "--system", "8xA100", "--vary", "nope=1", says=("not a sweepable input",))
    refused("sweep", "--system", "8xA100", "--vary", "prophet.prediction_accuracy=0:1:0", says=("step > 0",))


# 4. solve ------------------------------------------------------------------------------------------------


def test_solve_answers_what_accuracy_gives_2x_on_8xa100() -> None:
    r = ok("solve", "--system", "8xA100", "--metric", "speedup", "--target", "2", "--vary",
           "prophet.prediction_accuracy")  # fmt: skip
    assert r.stdout.startswith("unreachable: speedup is")  # the model's honest answer at its operating point
    r = ok("solve", "--system", "8xA100", "--metric", "speedup", "--target", "2", "--vary",
           "prophet.prediction_accuracy", "--rerun")  # fmt: skip
    assert r.stdout.startswith("unreachable: speedup is") and "the study re-run at each value" in r.stdout


# BF16 weights and KV cache: the experts of 2xA100 live partly on the host, where the accuracy pays
BF16 = ("--set", "workload.weight_precision=bf16", "--set", "workload.kv_precision=bf16")


def test_solve_finds_the_value_a_sweep_confirms() -> None:
    r = ok("solve", "--system", "2xA100", "--metric", "speedup", "--target", "1.01", "--vary",
           "prophet.prediction_accuracy", *BF16)  # fmt: skip
    value = float(r.stdout.split("=")[1].split()[0])
    assert 0 < value < 1
    check = ok("sweep", "--system", "2xA100", "--vary", f"prophet.prediction_accuracy={value!r}", *BF16)
    assert float(pd.read_csv(io.StringIO(check.stdout)).speedup[0]) == pytest.approx(1.01, rel=1e-5)
    r = ok("solve", "--system", "2xA100", "--metric", "speedup", "--target", "50", "--vary",
           "prophet.prediction_accuracy", *BF16)  # fmt: skip
    assert r.stdout.startswith("unreachable: speedup is at most") and "prophet.prediction_accuracy = 1" in r.stdout
    refused("solve", "--system", "2xA100", "--metric", "nope", "--target", "1", "--vary", "prophet.prediction_accuracy",
            says=("--metric 'nope'", "allowed: speedup"))  # fmt: skip


# 5. models from their config.json -------------------------------------------------------------------------


def test_add_model_reads_each_family_and_the_study_runs_with_it(tmp_path) -> None:
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "catalog", tmp_path / "catalog")
    entries = {}
    for fam in FAMILIES:
        out = tmp_path / f"{fam}.yml"
        ok("catalog", "add-model", "--from", str(HF / fam / "config.json"), "--name", f"hf_{fam}", "--out", str(out))
        entry = yaml.safe_load(out.read_text())[f"hf_{fam}"]
        assert all(s.startswith("derived from config.json: ") for s in entry["sources"].values())
        entries[fam] = entry
        with (tmp_path / "catalog" / "models.yml").open("a") as f:
            f.write("\n" + out.read_text())
    catalog = yaml.safe_load((ROOT / "catalog" / "models.yml").read_text())
    for fam, key in (("mixtral_8x7b", "mixtral_8x7b"), ("qwen1_5_moe_a2_7b", "qwen1_5_moe_a2_7b"),
                     ("deepseek_v3", "deepseek_v3")):  # fmt: skip
        mine = {k: v for k, v in entries[fam].items() if k not in ("name", "sources")}
        assert mine == {k: catalog[key][k] for k in mine}, fam  # the hand-written entries, value for value
    # worked examples: Qwen3-30B-A3B, 2 x 2048 x 128 x (32 + 4) = 18,874,368 attention weights, K and V of 4
    # KV heads of 128 = 1024 cached elements; DeepSeek-V2-Lite (no q_lora): 2048 x 16 x 192 + 2048 x 576 +
    # 512 x 16 x 256 + 16 x 128 x 2048 = 13,762,560, a 512 + 64 = 576-element latent, 26 of 27 layers MoE
    assert entries["qwen3_30b_a3b"]["attention_params_per_layer"] == 18_874_368
    assert entries["qwen3_30b_a3b"]["kv_elements_per_token_per_layer"] == 1024
    v2 = entries["deepseek_v2_lite"]
    assert (v2["attention_params_per_layer"], v2["kv_elements_per_token_per_layer"], v2["num_moe_layers"],
            v2["attention"]) == (13_762_560, 576, 26, "mla")  # fmt: skip
    assert entries["deepseek_v3"]["bytes_per_param"] == 1 and entries["olmoe_1b_7b"]["num_experts"] == 64
    for fam in FAMILIES:
        ok("whatif", "--config", str(tmp_path / "_config.yml"), "--system", "8xA100", "--model", f"hf_{fam}")


def test_add_model_refuses_an_unknown_architecture_and_an_existing_file(tmp_path) -> None:
    refused("catalog", "add-model", "--from", str(HF / "llama_dense" / "config.json"),
            says=("'llama'", "not an MoE architecture", "num_local_experts", "num_experts_per_tok"))  # fmt: skip
    out = tmp_path / "mine.yml"
    out.write_text("my own file\n")
    refused("catalog", "add-model", "--from", str(HF / "olmoe_1b_7b" / "config.json"), "--out", str(out),
            says=("exists",))  # fmt: skip
    assert out.read_text() == "my own file\n"
    template = yaml.safe_load(ok("catalog", "add-gpu", "--name", "my_gpu").stdout)["my_gpu"]
    from prophet_model.study.catalog import GPU

    assert set(template) == set(GPU.model_fields)


# 6. a coherent whatif ---------------------------------------------------------------------------------------


def test_whatif_keeps_the_topology_coherent_and_says_what_it_borrows() -> None:
    refused("whatif", "--system", "8xA100", "--gpu", "h100_sxm5_80gb",
            says=("nvswitch_nvlink3", "joins ampere GPUs", "--interconnect", "nvswitch_nvlink4"))  # fmt: skip
    r = ok("whatif", "--system", "8xA100", "--gpu", "l40s", "--interconnect", "pcie4_dual_socket", "--format", "json")
    doc = json.loads(r.stdout)
    assert any("borrowed" in n and "L40S" in n for n in doc["notes"])
    row = next(x for x in doc["rows"] if x["case"] == "what-if" and x["prophet_fits"])
    assert (row["gpu"], row["interconnect"], row["n_gpus"], row["model"]) == ("l40s", "pcie4_dual_socket", 8,
                                                                             "seed_128x2gb")  # fmt: skip
    for v in ("baseline", "prophet"):  # the step is the sum of its terms
        total = row[f"{v}_compute_ms"] + row[f"{v}_fetch_exposed_ms"] + row[f"{v}_comm_exposed_ms"]
        assert total == pytest.approx(row[f"{v}_step_ms"], rel=1e-9)
        assert row[f"{v}_fetch_exposed_ms"] <= row[f"{v}_fetch_ms"] + 1e-12


# 7. compare for people ----------------------------------------------------------------------------------------


def test_compare_names_the_input_difference_then_ranks_the_headline(study_dir, tmp_path) -> None:
    cfg = study_dir / "_config.yml"
    ok("run", "--config", str(cfg), "--results", str(tmp_path / "a"), "--quiet", "--no-figures")
    cfg.write_text(cfg.read_text().replace("prediction_accuracy: 0.8", "prediction_accuracy: 0.5"))
    ok("run", "--config", str(cfg), "--results", str(tmp_path / "b"), "--quiet", "--no-figures")
    r = cli("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[1] == "inputs that differ (1):" and lines[2] == "  prophet.prediction_accuracy: 0.8 -> 0.5"
    ranked = [abs(float(x.rsplit("(", 1)[1].rstrip("%)"))) for x in lines if x.startswith("  ") and x.endswith("%)")]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) <= 10
    assert "--all lists them" in r.stdout
    full = cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--all").stdout
    assert len(full.splitlines()) > len(lines)


# 8. getting started ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["README.md", "book/getting_started.md"])
def test_getting_started_says_how_to_call_the_cli_and_shows_each_command(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    assert ".venv/bin/python -m prophet_model" in text and "source .venv/bin/activate" in text
    for said in ("lacks the artifact's dependencies", "whatif", "uncertainty.inputs[prophet.prediction_accuracy]",
                 "sweep", "log:", "--plot", "solve", "unreachable:", "catalog add-model", "catalog add-gpu",
                 "compare", "inputs that differ"):  # fmt: skip
        assert said in text, (page, said)
    # the add-model output shown is what the command prints for the same file
    shown = ok("catalog", "add-model", "--from", "tests/data/hf/qwen3_30b_a3b/config.json").stdout
    assert shown in text


def test_an_example_session_shows_what_the_command_prints() -> None:
    """scripts/cli_examples.py --check on one cheap session (`catalog add-gpu`, README and book): the shown
    output is a real run's (`make examples` refreshes them all)."""
    r = subprocess.run([sys.executable, "scripts/cli_examples.py", "--check", "--only", "catalog add-gpu"],
                       cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
