"""The operator's options each side searches (issue 37): weight and KV precision, the cache policy and two-batch
overlap. Hand examples on the toy scenario (conftest.TOY) and properties of the search."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from prophet_model import physics as m
from prophet_model.physics.cache import POLICIES
from prophet_model.study import runner
from prophet_model.study.config import load_study
from prophet_model.study.runner import run_study
from prophet_model.study.scenarios import OPTIONS, option_sets, scenario_dict, searched_sets, stack
from prophet_model.study.strategies import splits
from prophet_model.study.system_rows import best_policy, evaluate_system

from .conftest import ROOT, edited_config, fixed_options, toy


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
    return edited_config(tmp_path / "c.yml", change)


SYSTEMS = ["4xH100", "10xA6000"]


def test_adding_an_option_never_makes_a_side_slower(tmp_path) -> None:
    """Searching the options (auto) keeps the fixed point among the candidates: each side's best is at least
    as fast, system by system and strategy by strategy; every row names its options."""
    fixed = run_study(load_study(_study(tmp_path, fixed_options)), SYSTEMS)[0]
    auto = run_study(load_study(_study(tmp_path, lambda d: None)), SYSTEMS)[0]
    a, f = auto.comparison.set_index(["system_id", "strategy"]), fixed.comparison.set_index(["system_id", "strategy"])
    for v in ("baseline", "prophet"):
        live = f[f"{v}_tokens_per_s"].notna()
        assert (a[f"{v}_tokens_per_s"][live] >= f[f"{v}_tokens_per_s"][live] * (1 - 1e-12)).all(), v
        for k in OPTIONS:
            assert a[f"{v}_{k}"][live].notna().all()
    evaluated = auto.rows.dropna(subset=["step_ms"])
    assert set(evaluated.weight_precision) == set(evaluated.kv_precision) == {"fp8"}  # BF16's are dominated
    assert set(evaluated.overlap) <= {"none", "two_batch"} and "auto" not in set(evaluated.cache_policy)


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
    study = load_study(_study(tmp_path, fixed_options))
    assert len(option_sets(study, False)) == len(option_sets(study, True)) == 1
    auto = load_study(_study(tmp_path, lambda d: None))
    assert len(option_sets(auto, False)) == 2 * 2 * 2 * 2 and len(option_sets(auto, True)) == 2 * 2 * 3 * 2
    # the runner evaluates one set per side: FP8 weights and KV (the others dominated), overlap auto, the policy
    # chosen per configuration
    for prophet in (False, True):
        assert searched_sets(auto, prophet) == [
            {
                "weight_precision": "fp8",
                "kv_precision": "fp8",
                "cache_policy": option_sets(auto, prophet)[0]["cache_policy"],
                "overlap": "auto",
            }
        ]


def _skewed(d: dict) -> None:
    """Zipf routing with temporal reuse: the cache policies hit differently (under uniform routing all hit C / n)."""
    d["routing"].update(distribution="zipf", zipf_exponent=1.2, temporal_reuse=0.5)


@pytest.mark.parametrize("change", [lambda d: None, _skewed], ids=["uniform", "zipf-reuse"])
def test_the_pruned_search_is_as_fast_as_the_full_one(tmp_path, monkeypatch, change) -> None:
    """The runner's search (dominated precisions left out, the policy and the overlap chosen per configuration)
    against every option set evaluated as one (evaluate_system(full=True)): each side's best, system by system
    and strategy by strategy, is at least the full search's (and within 1e-6 of it: nothing else is gained)."""
    study = load_study(_study(tmp_path, change))
    pruned = run_study(study, SYSTEMS)[0].comparison.set_index(["system_id", "strategy"])
    monkeypatch.setattr(runner, "evaluate_system", lambda st, sy: evaluate_system(st, sy, full=True))
    full = run_study(study, SYSTEMS)[0].comparison.set_index(["system_id", "strategy"])
    for v in ("baseline", "prophet"):
        p, f = pruned[f"{v}_tokens_per_s"], full[f"{v}_tokens_per_s"]
        assert (p.isna() == f.isna()).all(), v
        live = f.notna()
        assert (p[live] >= f[live] * (1 - 1e-9)).all(), v
        assert (p[live] <= f[live] * (1 + 1e-6)).all(), v


def _study_scenarios(n: int, seed: int) -> m.Scenario:
    """n configurations of the default study's systems (every split, both sides), their batch, context, memory,
    routing, cache policy, accuracy, offload and overlap drawn at random."""
    study = load_study(ROOT / "_config.yml")
    rows = [
        scenario_dict(study, sy.gpu_key, sy.count, ep, sy.interconnect, prophet, study.model_of(sy))
        for sy in study.systems
        for strategy in study.config.strategies
        for ep, _ in splits(sy, strategy).candidates
        for prophet in (False, True)
    ]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(rows), n)
    s = stack([rows[i] for i in pick])
    skew = rng.choice([0.0, 0.0, 0.8, 1.2], n)
    return replace(
        s,
        batch_size_per_gpu=rng.integers(1, 600, n).astype(float),
        context_length=rng.choice([256.0, 2048.0, 8192.0, 32768.0], n),
        memory_capacity=s.memory_capacity * rng.uniform(0.3, 1.5, n),
        routing_skew=skew,
        temporal_reuse=np.where(rng.random(n) < 0.5, rng.uniform(0, 0.9, n), 0.0),
        cache_policy=np.where(s.prophet > 0, rng.integers(0, 3, n), rng.integers(0, 2, n)).astype(float),
        prediction_accuracy=rng.uniform(0, 1, n),
        offload_compute=rng.integers(0, 3, n).astype(float),
        two_batch_overlap=rng.integers(0, 3, n).astype(float),
    )


def test_fp8_weights_and_kv_never_slow_a_step_nor_fit_fewer_sequences() -> None:
    """Why the runner never evaluates BF16 where FP8 is searched (scenarios.DOMINANT): at the same batch, FP8
    weights (half the bytes, the GEMM rate BF16's or an FP8 tensor core's) and an FP8 KV cache never make a step
    slower, never make a configuration that fits not fit, and never lower the largest batch that fits."""
    s = _study_scenarios(3000, 11)
    n = np.size(s.batch_size_per_gpu)
    cases = {
        "weights": (
            replace(s, bytes_per_param=np.full(n, 2.0), weight_flops_ratio=np.ones(n)),
            replace(s, bytes_per_param=np.ones(n), weight_flops_ratio=np.where(np.arange(n) % 2, 1.0, 2.0)),
        ),
        "kv": (replace(s, kv_bytes=np.full(n, 2.0)), replace(s, kv_bytes=np.ones(n))),
    }
    for what, (bf16, fp8) in cases.items():
        a, b = m.evaluate(bf16), m.evaluate(fp8)
        assert np.all(b.feasible[a.feasible]), what
        ok = a.feasible
        assert np.all(b.step_s[ok] <= a.step_s[ok] * (1 + 1e-12)), what
        assert np.all(m.max_batch(fp8.arrays()) >= m.max_batch(bf16.arrays())), what
        assert np.any(b.step_s[ok] < a.step_s[ok]), what  # not a test that cannot fail


def test_the_policy_of_the_highest_hit_rate_gives_the_shortest_step() -> None:
    """best_policy picks by hit rate alone: at its choice the step is the shortest of the side's policies (the
    policy moves nothing but the hit rate, and no step rises with it)."""
    s = _study_scenarios(2000, 5)
    n = np.size(s.batch_size_per_gpu)
    sides = np.asarray(s.prophet) > 0
    codes = {False: (1.0, 0.0), True: (2.0, 1.0, 0.0)}  # lru, static; predicted, lru, static
    rows = [
        {**{k: float(np.broadcast_to(getattr(s, k), (n,))[i]) for k in m.NUMBERS}, "traces": s.traces}
        | {"policies": codes[bool(sides[i])]}
        for i in range(n)
    ]
    chosen = best_policy(rows)
    step = m.evaluate(chosen).step_s
    each = {c: m.evaluate(replace(chosen, cache_policy=np.full(n, c))).step_s for c in (0.0, 1.0, 2.0)}
    for i in range(n):
        steps = [each[c][i] for c in codes[bool(sides[i])]]
        if np.isfinite(steps).all():
            assert step[i] <= min(steps) * (1 + 1e-9), (i, POLICIES[int(chosen.cache_policy[i])], steps)
    assert len(set(np.asarray(chosen.cache_policy)[~sides])) == 2  # both of the baseline's policies are chosen


def test_overlap_auto_takes_the_faster_of_one_batch_and_two_halves() -> None:
    """two_batch_overlap 2 (auto): per configuration the step of 0 or of 1, whichever is shorter (a tie: 0), and
    StepResult.two_batch says which."""
    s = _study_scenarios(1500, 3)
    n = np.size(s.batch_size_per_gpu)
    none, two = (m.evaluate(replace(s, two_batch_overlap=np.full(n, c))) for c in (0.0, 1.0))
    auto = m.evaluate(replace(s, two_batch_overlap=np.full(n, 2.0)))
    ok = none.feasible
    assert np.allclose(auto.step_s[ok], np.minimum(none.step_s, two.step_s)[ok], rtol=1e-12)
    assert np.array_equal(auto.two_batch[ok], (two.step_s < none.step_s)[ok])
    assert auto.two_batch.any() and not auto.two_batch.all()
    assert not none.two_batch.any() and two.two_batch[s.batch_size_per_gpu >= 2].all()
