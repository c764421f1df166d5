"""Each configuration at its operating point: the batch search, the like-with-like headline, and the
per-GPU scaling ratio. Worked examples by hand and properties of the search."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prophet_model import physics as m
from prophet_model.study.config import load_study
from prophet_model.study.operating_point import Point, exact_batches
from prophet_model.study.runner import choose, reference_splits, run_study

from .conftest import ROOT, dump_yaml, edited_config, load_yaml, toy


def test_max_batch_by_hand() -> None:
    """The toy: dense = 2 x 4e6 (attention) + 2 x 1000 x 4 (routers) + 2 x 1000 x 1000 (embedding, head)
    = 10,008,000 params = 20,016,000 bytes; KV per sequence = 100 x 2 x 2000 x 2 = 800,000 bytes;
    free = 45,616,000 - 20,016,000 = 25,600,000 -> 32 sequences. All experts resident needs
    ceil(4/ep) x 2 layers x 6e6 bytes: ep 1: 48e6 > free (0 sequences); ep 4: 12e6 -> 13.6e6 / 0.8e6 = 17."""
    assert float(m.max_batch(toy().arrays())) == 32
    assert float(m.max_batch_all_resident(toy().arrays())) == 0
    assert float(m.max_batch_all_resident(toy(ep=4).arrays())) == 17
    at = toy(batch_size_per_gpu=32).arrays()
    assert bool(m.fits_in_memory(at)) and not bool(m.fits_in_memory(toy(batch_size_per_gpu=33).arrays()))
    assert float(m.memory_resident_fraction(toy(ep=4, batch_size_per_gpu=17).arrays())) == 1.0
    assert float(m.memory_resident_fraction(toy(ep=4, batch_size_per_gpu=18).arrays())) < 1.0


def _two_candidates() -> pd.DataFrame:
    """One system, one strategy and variant, two batches: B 2 gives 100 tokens/s in 20 ms steps (2 GPUs
    x 2 / 0.04 s... here set directly), B 4 gives 150 tokens/s in 40 ms steps."""
    base = {"system_id": "s", "system": "S", "gpu": "g", "interconnect": "i", "n_gpus": 2, "strategy": "EP",
            "variant": "baseline", "ep": 2, "dp": 1, "note": "", "role": "system", "n_gpus_evaluated": 2,
            "feasible": True, "holds_all_experts": True}  # fmt: skip
    return pd.DataFrame([
        base | {"batch_size_per_gpu": 2, "configured_batch": True, "tokens_per_s": 100.0, "tokens_per_s_per_gpu": 50.0,
                "step_ms": 20.0},
        base | {"batch_size_per_gpu": 4, "configured_batch": False, "tokens_per_s": 150.0,
                "tokens_per_s_per_gpu": 75.0, "step_ms": 40.0},
    ])  # fmt: skip


def test_the_search_picks_the_faster_batch_within_the_latency_bound() -> None:
    rows = _two_candidates()
    assert choose(rows).batch_size_per_gpu.tolist() == [4]  # 150 > 100 tokens/s
    assert choose(rows, max_step_ms=30.0).batch_size_per_gpu.tolist() == [2]  # 40 ms is over the bound
    assert choose(rows, fixed=True).batch_size_per_gpu.tolist() == [2]  # the configured batch
    slow = choose(rows, max_step_ms=10.0)
    assert not slow.feasible.iloc[0] and "no batch meets max_step_ms 10" in slow.note.iloc[0]
    assert math.isnan(slow.tokens_per_s.iloc[0])


def test_reference_splits_are_the_same_strategy_on_fewer_gpus() -> None:
    assert reference_splits("EP", 8, 1) == [(1, 1), (2, 1), (4, 1), (8, 1)]
    assert reference_splits("DP", 1, 4) == [(1, 1), (1, 2), (1, 4)]
    assert reference_splits("Hybrid", 4, 2) == [(4, 1), (4, 2)]  # one replica of the same ep-GPU group


@pytest.fixture(scope="module")
def default():
    return run_study(load_study(ROOT / "_config.yml"))[0]


def test_the_chosen_point_is_never_slower_than_any_evaluated_one(default) -> None:
    rows = default.rows[(default.rows.role == "system") & default.rows.feasible]
    for c in default.chosen[default.chosen.feasible.astype(bool)].itertuples():
        mine = rows[(rows.system_id == c.system_id) & (rows.strategy == c.strategy) & (rows.variant == c.variant)]
        assert c.tokens_per_s >= mine.tokens_per_s.max() * (1 - 1e-12)


def test_the_headline_is_each_variants_best_and_never_below_a_strategy_row(default) -> None:
    for h in default.headline.dropna(subset=["speedup"]).itertuples():
        mine = default.comparison[default.comparison.system_id == h.system_id]
        assert h.baseline_tokens_per_s == pytest.approx(mine.baseline_tokens_per_s.max())
        assert h.prophet_tokens_per_s == pytest.approx(mine.prophet_tokens_per_s.max())
        fixed = default.fixed[default.fixed.system_id == h.system_id]
        assert h.baseline_tokens_per_s >= fixed.baseline_tokens_per_s.max() * (1 - 1e-12)
        assert h.prophet_tokens_per_s >= fixed.prophet_tokens_per_s.max() * (1 - 1e-12)


def test_every_csv_row_names_its_batch_and_step(default) -> None:
    live = default.comparison.dropna(subset=["speedup"])
    assert live[["baseline_batch", "prophet_batch", "baseline_step_ms", "prophet_step_ms"]].notna().all().all()
    assert (default.chosen.batch_size_per_gpu >= 1).all()


def test_the_communication_cut_is_per_token_and_the_volume_reduction_at_one_point(default) -> None:
    """comm_reduction = (baseline all-to-all bytes / batch) / (Prophet's / batch), each at its own point;
    where both sides chose the same split and batch it is exactly Prophet's cut at that point: the what-if
    override where set, else the derived one, 1 under the default's uniform routing and chance affinity."""
    cfg = default.study.config
    assert cfg.routing.distribution == "uniform" and cfg.routing.inter_layer_affinity is None
    factor = cfg.prophet.comm_reduction_factor or 1.0
    rows = default.fixed.dropna(subset=["comm_reduction"])
    assert not rows.empty
    for r in default.comparison.dropna(subset=["comm_reduction"]).itertuples():
        if r.baseline_split == r.prophet_split and r.baseline_batch == r.prophet_batch:
            assert r.comm_reduction == pytest.approx(factor, rel=1e-12)
    for r in rows.itertuples():  # a fixed batch: the same batch on both sides
        assert r.baseline_batch == r.prophet_batch and r.comm_reduction == pytest.approx(factor, rel=1e-12)


def _study(tmp_path: Path, change) -> Path:
    return edited_config(tmp_path / "c.yml", change)


def test_without_the_search_the_table_is_the_fixed_batch_one(tmp_path) -> None:
    cfg = _study(tmp_path, lambda d: d["workload"].update(batch_search=False))
    res = run_study(load_study(cfg))[0]
    pd.testing.assert_frame_equal(res.comparison, res.fixed)
    assert set(res.chosen.batch_size_per_gpu) == {16}


def test_a_latency_bound_holds_every_chosen_step(tmp_path) -> None:
    cfg = _study(tmp_path, lambda d: d["workload"].update(max_step_ms=30))
    res = run_study(load_study(cfg))[0]
    live = res.chosen[res.chosen.feasible.astype(bool)]
    assert not live.empty and (live.step_ms <= 30).all()


def test_more_gpu_memory_is_never_slower(tmp_path) -> None:
    import shutil

    shutil.copytree(ROOT / "catalog", tmp_path / "catalog")
    gpus = load_yaml(tmp_path / "catalog" / "gpus.yml")
    gpus["a100_sxm4_80gb"]["memory_capacity_gb"] = 120
    dump_yaml(gpus, tmp_path / "catalog" / "gpus.yml")
    data = load_yaml(ROOT / "_config.yml")
    dump_yaml(data, tmp_path / "_config.yml")
    more = run_study(load_study(tmp_path / "_config.yml"))[0].headline.set_index("system_id")
    less = run_study(load_study(ROOT / "_config.yml"))[0].headline.set_index("system_id")
    for sid in ("2xA100", "8xA100"):
        for col in ("baseline_tokens_per_s", "prophet_tokens_per_s"):
            assert more.loc[sid, col] >= less.loc[sid, col] * (1 - 1e-12), (sid, col)


def test_prophet_inputs_never_move_a_baseline_number(tmp_path) -> None:
    base = run_study(load_study(ROOT / "_config.yml"))[0]

    def change(d: dict) -> None:
        d["prophet"].update(prediction_accuracy=0.3, comm_reduction_factor=2.5)
        d["routing"].update(inter_layer_affinity=0.6)

    cfg = _study(tmp_path, change)
    other = run_study(load_study(cfg))[0]
    for table in ("comparison", "fixed", "headline"):
        a, b = getattr(base, table), getattr(other, table)
        cols = [c for c in a.columns if c.startswith("baseline_")]
        pd.testing.assert_frame_equal(a[cols], b[cols], obj=table)


def test_nothing_called_efficiency_exceeds_100_percent(default, tmp_path) -> None:
    for table in (default.comparison, default.fixed, default.headline, default.chosen):
        assert not [c for c in table.columns if "efficiency" in c]
    ratio = default.comparison[["baseline_scaling_pct", "prophet_scaling_pct"]].to_numpy(float)
    over = default.comparison[(np.nan_to_num(ratio) > 100.0 + 1e-9).any(axis=1)]
    assert over.scaling_note.str.startswith("super-linear").all()  # a ratio above 100% says why


def test_a_larger_kv_cache_is_never_faster_and_is_sampled(default) -> None:
    """kv_cache_factor scales the KV elements per token (KV heads x head size x precision): at a held
    operating point more KV bytes never speed a step up; the default Monte Carlo samples it."""
    from prophet_model.study import sensitivity as se

    setup = se.setups(default)["8xA100"]
    factors = np.geomspace(0.125, 4.0, 11)
    tps = se.evaluate(setup, {"kv_cache_factor": factors})["baseline_tokens_per_s"]
    finite = tps[np.isfinite(tps)]
    assert len(finite) >= 6 and np.all(np.diff(finite) <= 1e-9 * finite[:-1])
    assert "kv_cache_factor" in se.uncertain_inputs(default.study)
    assert "workload.batch_size_per_gpu" not in se.uncertain_inputs(default.study)  # searched, not uncertain


def _points(step, tps, top: int, batches) -> dict[int, Point]:
    return {b: Point(step(b), tps(b), b <= top) for b in batches}


def _grid(top: int) -> list[int]:
    return sorted({*(1 << i for i in range(top.bit_length()) if 1 << i <= top), top})


@pytest.mark.parametrize("bound", [None, 50.0, 37.5, 0.5])
@pytest.mark.parametrize("peak", [1, 23, 37, 64, 70])
def test_the_exact_search_equals_brute_force_on_a_hand_made_curve(bound, peak) -> None:
    """Step b ms (it grows with the batch), tokens/s with one peak at `peak`, batches up to 70 fit. By hand:
    without a bound the batch is the peak; with one, the best batch whose step meets it (37.5 ms: batch 37;
    0.5 ms: none)."""
    step, tps = float, lambda b: 1000.0 - (b - peak) ** 2
    probe = lambda pairs: [_points(step, tps, 70, [b])[b] for _, b in pairs]  # noqa: E731
    known = _points(step, tps, 70, _grid(70))
    extra = exact_batches([known], probe, bound)[0]
    every = {b for b in range(1, 71) if bound is None or b <= bound}
    best = max(every, key=lambda b: (tps(b), -b)) if every else None
    found = set(known) | extra
    ok = [b for b in found if b <= 70 and (bound is None or step(b) <= bound)]
    assert (max(ok, key=lambda b: (tps(b), -b)) if ok else None) == best
    if bound is not None and every:
        assert max(every) in found  # the largest batch that meets the bound is evaluated
    if bound == 37.5:
        assert best == min(peak, 37)


def test_the_exact_search_asks_for_few_batches() -> None:
    """Bisection and ternary search: a top of 100,000 costs tens of evaluations, not thousands."""
    asked = []

    def probe(pairs):
        asked.extend(pairs)
        return [Point(float(b), b / (1 + b / 5000), b <= 100_000) for _, b in pairs]

    known = {b: probe([(0, b)])[0] for b in _grid(100_000)}
    asked.clear()
    extra = exact_batches([known], probe, 60_000.0)[0]
    assert 60_000 in extra and len(asked) < 120


@pytest.mark.parametrize("bound", [None, 400.0, 60.0])
def test_every_configuration_reaches_its_brute_force_best_integer_batch(tmp_path, bound) -> None:
    """4xH100 and 10xA6000: for each evaluated configuration (strategy, variant, split, TP degree, at the side's
    searched options: the cache policy and the overlap chosen per batch), the best tokens/s among its rows equals
    the best over every integer batch that fits (and meets the bound), evaluated one by one."""
    from prophet_model.physics import evaluate
    from prophet_model.physics.cache import POLICIES
    from prophet_model.study.scenarios import option_values, scenario_dict, searched_sets
    from prophet_model.study.system_rows import best_policy

    cfg = _study(tmp_path, lambda d: d["workload"].update(max_step_ms=bound))
    study = load_study(cfg)
    res = run_study(study, ["4xH100", "10xA6000"])[0]
    rows = res.rows[(res.rows.role == "system") & (res.rows.ep > 0)]
    checked = 0
    for key, g in rows.groupby(["system_id", "strategy", "variant", "ep", "dp", "attention_tp"]):
        system_id, _, variant, ep, _, tp = key
        system = study.system(system_id)
        prophet = variant == "prophet"
        options = searched_sets(study, prophet)[0]
        assert set(g.weight_precision) == {options["weight_precision"]}, key
        policies = tuple(float(POLICIES.index(p)) for p in option_values(study, prophet)["cache_policy"])
        args = (study, system.gpu_key, system.count, int(ep), system.interconnect, prophet)
        base = scenario_dict(*args, attention_tp=int(tp), options=options) | {"policies": policies}
        top = int(g.batch_size_per_gpu.max())  # the grid's largest batch: the most that fits memory
        r = evaluate(best_policy([{**base, "batch_size_per_gpu": float(b)} for b in range(1, max(top, 256) + 1)]))
        ok = np.asarray(r.feasible) & ((1e3 * r.step_s <= bound) if bound else True)
        live = g[g.feasible.astype(bool) & ((g.step_ms <= bound) if bound else True)]
        if not ok.any():
            assert live.empty
            continue
        brute = int(np.argmax(np.where(ok, r.tokens_per_s, -np.inf))) + 1
        assert live.tokens_per_s.max() == pytest.approx(float(r.tokens_per_s[brute - 1]), rel=1e-12), key
        assert brute in set(live.batch_size_per_gpu.astype(int)), key
        if bound:  # the largest batch that meets the bound is among the rows
            assert int(np.flatnonzero(ok).max()) + 1 in set(live.batch_size_per_gpu.astype(int)), key
        checked += 1
    assert checked >= 8
