"""No configuration that fits is a result, not a crash: a row without numbers says which memory term
overflows and by how much; run, whatif, sweep, paper and analyze all cope with it, through the real CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from prophet_model.cli import main
from prophet_model.physics import memory_terms, why_infeasible

from .conftest import ROOT, dump_yaml, load_yaml, only_systems

WHY = "exceed the"  # model.why_infeasible: "KV cache .. + dense weights .. + reserve .. exceed the 80 GB GPU by .."


def _config(study_dir: Path, **workload) -> Path:
    """The default study with `workload` changed; a batch given here is held fixed (batch_search: false),
    since the search would find a smaller batch that fits. Only the systems that serve the study's model are
    kept (32xH100 serves DeepSeek-V3, whose latent KV cache fits where the study's model's does not), and the
    weights and KV cache stay in bf16 (FP8, which the default searches, halves what the limits are stated for)."""
    cfg = study_dir / "_config.yml"
    raw = load_yaml(cfg)
    raw["systems"] = [s for s in raw["systems"] if "model" not in s]
    raw["workload"].update({"weight_precision": "bf16", "kv_precision": "bf16", **workload})
    if "batch_size_per_gpu" in workload:
        raw["workload"]["batch_search"] = False
    dump_yaml(raw, cfg)
    return cfg


def _run(cfg: Path, results: Path, *extra: str) -> int:
    return main(["run", "--config", str(cfg), "--results", str(results), "--quiet", "--no-figures", *extra])


# ---------------------------------------------------------------------------------------------- the reason


def test_the_reason_adds_up_the_memory_terms() -> None:
    text = why_infeasible(kv_cache=40.1e9, dense_weights=3.2e9, reserve=2e9, capacity=40e9)
    assert text.startswith("KV cache 40.1 GB + dense weights 3.2 GB + reserve 2 GB exceed the 40 GB GPU by 5.3 GB")
    assert why_infeasible(kv_cache=1e9, dense_weights=1e9, reserve=1e9, capacity=80e9) == ""
    assert why_infeasible(kv_cache=math.nan, dense_weights=1e9, reserve=1e9, capacity=80e9) == ""


def test_the_reason_uses_the_terms_feasibility_uses() -> None:
    from prophet_model.physics import evaluate
    from prophet_model.study.config import load_study
    from prophet_model.study.scenarios import scenario_dict, stack

    study = load_study("_config.yml")
    rows = [scenario_dict(study, "a100_sxm4_80gb", 8, 4, None, False) for _ in range(3)]
    for r, b in zip(rows, (16, 64, 128), strict=True):
        r["batch_size_per_gpu"] = b
    s = stack(rows)
    t, feasible = memory_terms(s), evaluate(s).feasible
    for i in range(3):
        need = t["kv_cache"][i] + t["dense_weights"][i] + t["reserve"][i]
        assert bool(feasible[i]) == (need <= t["capacity"][i])
        assert bool(why_infeasible(**{k: float(v[i]) for k, v in t.items()})) == (not feasible[i])
    assert t["kv_cache"][2] == pytest.approx(2 * t["kv_cache"][1]) == pytest.approx(8 * t["kv_cache"][0])


# ---------------------------------------------------------------------------------------------- run


@pytest.mark.parametrize(
    "workload",
    [
        {"batch_size_per_gpu": 128},
        {"context_length_tokens": 100_000_000},
        {"reserved_memory_gb": 200},
    ],
    ids=["batch128", "context1e8", "reserve200GB"],
)
def test_nothing_fits_exits_2_naming_the_cause(study_dir, tmp_path, capsys, workload) -> None:
    cfg = _config(study_dir, **workload)
    assert _run(cfg, tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
    assert "no system and strategy can be evaluated" in err and WHY in err and "allowed:" in err
    assert err.count("error: no system") == 1  # said once, not again by the log's console handler


def test_a_model_of_4000_layers_is_refused_with_its_reason(study_dir, tmp_path, capsys) -> None:
    """One sequence's KV cache alone, 4000 layers x 2048 tokens x 8192 elements x 2 B = 134 GB, exceeds every
    GPU, whatever tensor-parallel attention splits (1000 layers fit 8 A100s with attention split 8 ways)."""
    models = study_dir / "catalog" / "models.yml"
    raw = load_yaml(models)
    raw["seed_128x2gb"]["num_layers"] = raw["seed_128x2gb"]["num_moe_layers"] = 4000
    dump_yaml(raw, models)
    assert _run(_config(study_dir), tmp_path / "r") == 2  # the systems that serve this model
    err = capsys.readouterr().err
    assert "internal error" not in err and WHY in err


def test_nothing_fits_leaves_earlier_results_alone(study_dir, tmp_path, capsys) -> None:
    cfg = study_dir / "_config.yml"
    out = tmp_path / "r"
    assert _run(cfg, out) == 0
    before = {p: p.read_bytes() for p in (out / "data").rglob("*") if p.is_file()}
    _config(study_dir, batch_size_per_gpu=128)
    assert _run(cfg, out) == 2
    assert {p: p.read_bytes() for p in (out / "data").rglob("*") if p.is_file()} == before
    last = sorted((out / "logs").iterdir())[-1].read_text(encoding="utf-8").splitlines()[-1]
    assert "ERROR" in last and WHY in last  # the log ends with the cause


@pytest.fixture(scope="module")
def partly(tmp_path_factory) -> tuple[Path, Path]:
    """batch 64: the 80 GB A100 fits, the 48 GB A6000 does not (the two systems the tests read); run with figures
    (once for the module: the tests read it, the last one adds the paper)."""
    where = tmp_path_factory.mktemp("partly")
    shutil.copy(ROOT / "_config.yml", where / "_config.yml")
    shutil.copytree(ROOT / "catalog", where / "catalog")
    cfg = _config(where, batch_size_per_gpu=64)
    dump_yaml(only_systems(load_yaml(cfg), ("8xA100", "10xA6000")), cfg)
    out = where / "r"
    assert main(["run", "--config", str(cfg), "--results", str(out), "--quiet"]) == 0
    return cfg, out


def test_some_systems_infeasible_is_a_result(partly, capsys) -> None:
    _, out = partly
    comp = pd.read_csv(out / "data" / "all_systems_comparison.csv")
    a6000 = comp[comp.system_id == "10xA6000"]
    assert len(a6000) == 3 and a6000.speedup.isna().all()
    assert all("48 GB GPU by" in n for n in a6000.note)
    assert comp[comp.system_id == "8xA100"].speedup.notna().all()
    rows = pd.read_csv(out / "data" / "results_10xA6000.csv")
    assert (~rows.feasible).all() and all(WHY in n for n in rows.note)
    log = sorted((out / "logs").iterdir())[-1].read_text(encoding="utf-8")
    assert log.rstrip().endswith("ANALYSIS COMPLETED SUCCESSFULLY") and "48 GB GPU by" in log


def test_the_summary_of_an_infeasible_system_says_why(partly) -> None:
    _, out = partly
    text = (out / "SUMMARY_10xA6000.md").read_text(encoding="utf-8")
    assert "48 GB GPU by" in text and "nan" not in text.lower().replace("nano", "")
    assert "No strategy of this system can be evaluated" in text
    assert "The fastest baseline of this system is ." not in text
    assert "No uncertain inputs are configured" not in text  # they are; this system just has no numbers


def test_every_output_is_written_for_an_infeasible_system(partly) -> None:
    _, out = partly
    for stem in ("throughput_comparison", "communication_overhead", "cost_efficiency"):
        assert (out / "figures" / f"{stem}_10xA6000.pdf").is_file()
    assert (out / "figures" / "cross_system_comparison.pdf").is_file()
    unc = pd.read_csv(out / "data" / "uncertainty.csv")
    assert "10xA6000" not in set(unc.system_id) and "8xA100" in set(unc.system_id)
    checks = pd.read_csv(out / "data" / "sanity_checks.csv")
    assert (checks[checks.system_id == "10xA6000"].status == "NOT EVALUATED").all()
    assert (checks[checks.kind == "consistency"].status == "PASS").all()


def test_paper_and_analyze_cope_with_rows_without_numbers(partly, capsys) -> None:
    cfg, out = partly
    capsys.readouterr()
    assert main(["paper", "--config", str(cfg), "--results", str(out)]) == 0
    assert "nan" not in (out / "paper" / "table.tex").read_text(encoding="utf-8").lower()
    assert main(["analyze", "--results", str(out)]) == 0
    text = capsys.readouterr().out
    assert "10×A6000 EP: not evaluated (KV cache" in text


def test_paper_names_why_the_headline_system_has_no_numbers(study_dir, tmp_path, capsys) -> None:
    cfg = _config(study_dir, batch_size_per_gpu=64)
    raw = load_yaml(cfg)
    raw["study"]["headline_system"] = "10xA6000"
    dump_yaml(raw, cfg)
    out = tmp_path / "r"
    assert _run(cfg, out) == 0
    capsys.readouterr()
    assert main(["paper", "--config", str(cfg), "--results", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'10xA6000' has no numbers" in err and "48 GB GPU by" in err and "8xA100" in err


def test_a_single_gpu_claim_that_does_not_fit_says_so(study_dir, tmp_path) -> None:
    cfg = _config(study_dir, batch_size_per_gpu=64)
    raw = load_yaml(cfg)
    raw["single_gpu_claim"]["gpu"] = "rtx_a6000"
    dump_yaml(raw, cfg)
    out = tmp_path / "r"
    assert _run(cfg, out) == 0
    claims = pd.read_csv(out / "data" / "claims.csv")
    single = claims[claims.system_id == "1xrtx_a6000"]
    assert len(single) == 3 and all(n.startswith("not evaluated: KV cache") for n in single.note)
    assert "the model gives nan" not in (out / "SUMMARY_8xA100.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------- whatif, sweep


# the limits below are stated for bf16 weights and KV cache (the default also searches fp8, which halves them)
BF16 = ("--set", "workload.weight_precision=bf16", "--set", "workload.kv_precision=bf16")


def test_whatif_prints_the_reason(capsys) -> None:
    assert main(["whatif", "--system", "8xA100", "--set", "workload.batch_size_per_gpu=128",
                 "--set", "workload.batch_search=false", *BF16]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "not evaluated ()" not in out
    assert "EP, DP, Hybrid: not evaluated: KV cache 137 GB" in out and "80 GB GPU by" in out


def test_whatif_json_and_csv_carry_the_reason(capsys) -> None:
    args = ["whatif", "--system", "8xA100", "--set", "workload.batch_size_per_gpu=128", "--set",
            "workload.batch_search=false", *BF16]  # fmt: skip
    assert main([*args, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    after = [r for r in rows if r["case"] == "what-if"]
    assert after and all(r["speedup"] is None and WHY in r["note"] for r in after)
    assert main([*args, "--format", "csv"]) == 0
    import io

    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert csv[csv.case == "configured"].speedup.notna().all()


def test_sweep_says_why_a_point_is_blank(capsys, tmp_path) -> None:
    out = tmp_path / "s.csv"
    argv = ["sweep", "--system", "8xA100", "--vary", "workload.batch_size_per_gpu=16,64,128,256", *BF16]
    argv += ["--out", str(out)]
    assert main(argv) == 0
    assert "2 of 4 points not evaluated" in capsys.readouterr().err
    df = pd.read_csv(out, keep_default_na=False)
    blank = df[df.speedup == ""]
    assert list(blank["workload.batch_size_per_gpu"]) == [128, 256]
    assert all("80 GB GPU by" in n for n in blank.note) and (df[df.speedup != ""].note == "").all()


def test_sweep_of_a_system_that_does_not_fit_finds_where_it_would(study_dir, capsys) -> None:
    cfg = _config(study_dir, batch_size_per_gpu=128)
    argv = ["sweep", "--config", str(cfg), "--system", "8xA100", "--vary", "workload.batch_size_per_gpu=16,128"]
    assert main(argv) == 0
    import io

    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert df.speedup.notna().tolist() == [True, False]
