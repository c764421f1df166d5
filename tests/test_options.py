"""The operator's options each side searches (issue 37): weight and KV precision, the cache policy and two-batch
overlap. Hand examples on the toy scenario (conftest.TOY) and properties of the search."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from prophet_model import physics as m
from prophet_model.study.config import load_study
from prophet_model.study.runner import run_study
from prophet_model.study.scenarios import OPTIONS, option_sets

from .conftest import ROOT, dump_yaml, load_yaml, toy


def test_an_fp8_expert_holds_half_the_bytes_and_its_gemm_runs_at_the_fp8_rate() -> None:
    """Toy expert: h = f = 1000, 3 h f = 3e6 parameters. FP8: 3e6 bytes (BF16: 6e6). A 1000-row GEMM against it
    with FP8 tensor cores at twice the 1e12 FLOP/s: max(2 * 1000 * 3e6 / 2e12, 3e6 / 1e11) = max(3 ms, 30 us) =
    3 ms; at 1 row it streams: max(3 us, 30 us) = 30 us, half the BF16 weight's 60 us."""
    bf16, fp8 = toy(), toy(bytes_per_param=1, weight_flops_ratio=2.0)
    assert float(m.expert_bytes(bf16.arrays())) == 6e6
    assert float(m.expert_bytes(fp8.arrays())) == 3e6
    s = fp8.arrays()
    assert float(m.gemm_time(np.float64(1000), np.float64(3e6), s, s.stream_dense)) == pytest.approx(3e-3)
    assert float(m.gemm_time(np.float64(1), np.float64(3e6), s, s.stream_dense)) == pytest.approx(30e-6)
    b = bf16.arrays()
    assert float(m.gemm_time(np.float64(1), np.float64(3e6), b, b.stream_dense)) == pytest.approx(60e-6)
    # weight-only FP8 (Ampere, ratio 1): the bytes halve, the FLOP rate stays BF16's
    w8a16 = toy(bytes_per_param=1).arrays()
    assert float(m.gemm_time(np.float64(1000), np.float64(3e6), w8a16, w8a16.stream_dense)) == pytest.approx(6e-3)


def test_fp8_kv_halves_the_cache_and_the_attention_reads() -> None:
    """Toy: 100 tokens x 2 layers x 2000 elements = 4e5 elements per sequence: 8e5 bytes in BF16, 4e5 in FP8;
    attention of one layer reads B ctx 2000 bytes-per-element: 2 x 100 x 2000 x 1 = 4e5 bytes at 1e11 B/s = 4 us
    (its FLOP, 4 x 2 x 100 x 1 x 1000 = 8e5 at 1e12, take 0.8 us)."""
    assert float(m.kv_bytes_per_sequence(toy().arrays())) == 8e5
    s = toy(kv_bytes=1.0).arrays()
    assert float(m.kv_bytes_per_sequence(s)) == 4e5
    assert float(m.attention_time(s)) == pytest.approx(4e-6)


def test_two_batch_overlap_of_a_two_layer_example() -> None:
    """The critical path of two half-batches over L = 2 layers, c and a per layer and half: compute-bound
    (c = 3, a = 1): 2 L c + a = 12 + 1 = 13 = 2 max(C, A) + min(C, A) / L with C = 6, A = 2; comm-bound (c = 1,
    a = 3): c + 2 L a = 1 + 12 = 13."""
    assert float(m.overlapped(np.float64(6), np.float64(2), np.float64(2))) == 13
    assert float(m.overlapped(np.float64(2), np.float64(6), np.float64(2))) == 13
    # through evaluate: two GPUs with an all-to-all, batch 4, no expert copies (every expert resident)
    s = toy(n_gpus=2, ep=2, batch_size_per_gpu=4, resident_override=1.0)
    plain, two = m.evaluate(s), m.evaluate(replace(s, two_batch_overlap=1.0))
    half = replace(s, batch_size_per_gpu=2).arrays()
    c, a = float(m.compute_time(half)), float(m.evaluate(half).comm_exposed_s)
    assert float(two.step_s) == pytest.approx(2 * max(c, a) + min(c, a) / 2)
    assert float(two.compute_s) == pytest.approx(2 * c)
    assert float(two.step_s) == pytest.approx(float(two.compute_s + two.comm_exposed_s + two.fetch_exposed_s))
    assert float(plain.step_s) != float(two.step_s)
    # batch 1 cannot split: the option changes nothing
    one = replace(s, batch_size_per_gpu=1)
    assert float(m.evaluate(replace(one, two_batch_overlap=1.0)).step_s) == float(m.evaluate(one).step_s)


def test_fp8_kv_never_reduces_the_batch_that_fits() -> None:
    rng = np.random.default_rng(7)
    n = 200
    s = toy(
        memory_capacity=rng.uniform(4e7, 4e8, n),
        context_length=rng.integers(10, 4000, n).astype(float),
        kv_elements_per_token_per_layer=rng.integers(100, 5000, n).astype(float),
    )
    bf16, fp8 = m.max_batch(s.arrays()), m.max_batch(replace(s, kv_bytes=1.0).arrays())
    assert np.all(fp8 >= bf16) and np.any(fp8 > bf16)


def _study(tmp_path: Path, change) -> Path:
    data = load_yaml(ROOT / "_config.yml")
    change(data)
    data["catalogs"] = {k: str(ROOT / v) for k, v in data["catalogs"].items()}
    dump_yaml(data, tmp_path / "c.yml")
    return tmp_path / "c.yml"


def _fixed(d: dict) -> None:
    """Every option at one value (the searches' first: BF16 weights and KV, lru / predicted, no overlap)."""
    d["workload"].update(weight_precision="bf16", kv_precision="bf16")
    d["expert_cache"].update(baseline_policy="lru", prophet_policy="predicted")
    d["parallel"]["overlap"] = "none"


SYSTEMS = ["4xH100", "10xA6000"]


def test_adding_an_option_never_makes_a_side_slower(tmp_path) -> None:
    """Searching the options (auto) keeps the fixed point among the candidates: each side's best is at least
    as fast, system by system and strategy by strategy; every row names its options."""
    fixed = run_study(load_study(_study(tmp_path, _fixed)), SYSTEMS)[0]
    auto = run_study(load_study(_study(tmp_path, lambda d: None)), SYSTEMS)[0]
    a, f = auto.comparison.set_index(["system_id", "strategy"]), fixed.comparison.set_index(["system_id", "strategy"])
    for v in ("baseline", "prophet"):
        live = f[f"{v}_tokens_per_s"].notna()
        assert (a[f"{v}_tokens_per_s"][live] >= f[f"{v}_tokens_per_s"][live] * (1 - 1e-12)).all(), v
        for k in OPTIONS:
            assert a[f"{v}_{k}"][live].notna().all()
    assert set(auto.rows.dropna(subset=["step_ms"]).weight_precision) == {"bf16", "fp8"}


def test_prophet_inputs_never_move_a_baseline_number(tmp_path) -> None:
    """Prophet's accuracy and its cache policy choose among Prophet's candidates only: the baseline's columns
    are the same."""
    one = run_study(load_study(_study(tmp_path, lambda d: None)), SYSTEMS)[0].comparison

    def change(d: dict) -> None:
        d["prophet"]["prediction_accuracy"] = 0.3
        d["expert_cache"]["prophet_policy"] = "static"

    two = run_study(load_study(_study(tmp_path, change)), SYSTEMS)[0].comparison
    cols = [c for c in one.columns if c.startswith("baseline_")]
    assert cols
    np.testing.assert_array_equal(one[cols].astype(str).to_numpy(), two[cols].astype(str).to_numpy())


def test_a_model_shipped_in_fp8_keeps_it_and_a_fixed_option_is_the_only_one(tmp_path) -> None:
    study = load_study(_study(tmp_path, lambda d: d.update(model="deepseek_v3")))
    assert {o["weight_precision"] for o in option_sets(study, False)} == {"fp8"}
    study = load_study(_study(tmp_path, _fixed))
    assert len(option_sets(study, False)) == len(option_sets(study, True)) == 1
    auto = load_study(_study(tmp_path, lambda d: None))
    assert len(option_sets(auto, False)) == 2 * 2 * 2 * 2 and len(option_sets(auto, True)) == 2 * 2 * 3 * 2
