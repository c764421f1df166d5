"""The expert cache and routing (prophet_model/physics/cache.py): closed forms by hand, the simulation's
(tests/simulators.py) agreement with them and its reproducibility, and their effect on the model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from prophet_model import physics as m
from prophet_model.errors import UserError
from prophet_model.physics import cache
from prophet_model.study import trace
from prophet_model.study.config import load_study
from prophet_model.study.scenarios import scenario_dict, stack

from .conftest import ROOT
from .simulators import simulate, simulated_hit


def test_uniform_hit_rates_are_c_over_n() -> None:
    q = np.full(64, 0.1)
    assert cache.lru_uniform_hit(16, 64) == 0.25
    for policy in (0, 1, 2):
        assert cache.hits(policy, q, 16, 0.0)[0] == pytest.approx(0.25, abs=1e-9)
    assert cache.hits(2, q, 16.5, 0.0)[0] == pytest.approx(16.5 / 64)


def test_small_zipf_case_by_hand() -> None:
    """E = 4, s = 1: p = (1, 1/2, 1/3, 1/4) / (25/12) = (12, 6, 4, 3) / 25. One pick per step (q = p):
    a static cache of 2 slots hits (12 + 6) / 25 = 0.72; of 1.5 slots (12 + 3) / 25 = 0.6. LRU with one slot
    holds the last expert used: it hits sum p_e^2 / sum p_e = 205 / 625 = 0.328 (the simulation agrees), below
    the static cache's 12/25."""
    p = cache.zipf(4, 1.0)
    assert p == pytest.approx(np.array([12, 6, 4, 3]) / 25)
    assert cache.static_hits(p, 2)[0] == pytest.approx(0.72)
    assert cache.static_hits(p, 1.5)[0] == pytest.approx(0.6)
    assert cache.predicted_hits(p, 2, 0.0)[0] == pytest.approx(0.72)  # without reuse: the static cache
    assert simulated_hit("lru", p, 1, 0.0) == pytest.approx(0.328, abs=0.02)
    assert cache.lru_che_hit(1, p) < 12 / 25


@pytest.mark.parametrize("policy", [0, 1, 2])
def test_hit_rate_monotone_in_cache_size(policy: int) -> None:
    q = cache.touch_probability(cache.zipf(32, 1.1), 4, 2)
    for reuse in (0.0, 0.5):
        h = cache.hits(policy, np.tile(q, (9, 1)), np.array([0, 1, 2, 4.5, 8, 16, 24, 31, 32]), reuse)
        assert h[0] == 0 and h[-1] == pytest.approx(1)
        assert np.all(np.diff(h) >= -1e-12)


def test_closed_forms_agree_with_the_seeded_simulation() -> None:
    """LRU (Che in steps, with the reuse chain) and the predicted cache against the simulation of the same
    chain, over skew, batch, reuse and cache size: within 0.1 everywhere, 0.03 without reuse."""
    rng = np.random.default_rng(0)
    worst = {0.0: 0.0, 1.0: 0.0}
    for _ in range(24):
        n = int(rng.choice([16, 32]))
        q = cache.touch_probability(cache.zipf(4 * n, rng.uniform(0, 1.5))[::4], int(rng.choice([1, 4, 16, 64])), 2)
        rho, c = float(rng.choice([0.0, 0.3, 0.8])), int(rng.integers(1, n))
        for code, name in ((1, "lru"), (2, "predicted")):
            d = abs(cache.hits(code, q, c, rho)[0] - simulated_hit(name, q, c, rho))
            worst[float(rho > 0)] = max(worst[float(rho > 0)], d)
    assert worst[0.0] <= 0.03 and worst[1.0] <= 0.1, worst


def test_the_simulation_is_reproducible() -> None:
    q = cache.touch_probability(cache.zipf(32, 1.0), 4, 2)
    simulate.cache_clear()
    sim = simulated_hit("lru", q, 8, 0.3)
    simulate.cache_clear()
    assert simulated_hit("lru", q, 8, 0.3) == sim  # seeded: the same value, bit for bit
    assert simulated_hit("lru", q, 8, 0.3, seed=1) != sim


def test_temporal_reuse_helps_recency_not_a_static_cache() -> None:
    q = np.full(32, 0.1)  # uniform: without reuse every policy hits 8 / 32
    assert cache.hits(1, q, 8, 0.0)[0] == pytest.approx(0.25)
    assert cache.hits(1, q, 8, 0.6)[0] > 0.4 and cache.hits(2, q, 8, 0.6)[0] > 0.4
    assert cache.hits(0, q, 8, 0.6)[0] == pytest.approx(0.25)


def test_trace_file_errors_name_the_file(tmp_path) -> None:
    bad = tmp_path / "trace.csv"
    bad.write_text("layer,expert,count\n0,9,3\n")
    with pytest.raises(UserError, match=r"trace.csv line 2: allowed: layer >= 0, expert in 0..7"):
        trace.read_trace(bad, 8, "cfg")
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="header layer,expert,count"):
        trace.read_trace(bad, 8, "cfg")
    good = tmp_path / "good.csv"
    good.write_text("layer,expert,count\n0,0,3\n0,1,1\n1,2,2\n1,3,2\n")
    layers = trace.read_trace(good, 4, "cfg")
    assert layers == ((0.75, 0.25, 0.0, 0.0), (0.5, 0.5, 0.0, 0.0))


def _setup(**changes: float) -> m.Scenario:
    study = load_study(ROOT / "_config.yml")
    s = study.system("8xA100")
    return replace(stack([scenario_dict(study, s.gpu_key, s.count, 4, s.interconnect, True)]), **changes)


def test_skew_lowers_the_touched_experts_and_raises_the_hit_rate() -> None:
    uniform = m.evaluate(_setup())
    zipf = m.evaluate(_setup(routing_skew=np.array([1.0])))
    assert zipf.resident_fraction[0] > uniform.resident_fraction[0]
    assert zipf.fetch_s[0] < uniform.fetch_s[0]
    # an exponent of almost zero is uniform routing: the same step, up to the table's grid (C to 1/64 of an
    # expert, T to 0.5%)
    flat = m.evaluate(_setup(routing_skew=np.array([1e-12])))
    assert flat.step_s[0] == pytest.approx(uniform.step_s[0], rel=2e-3)


def test_overlap_override_bounds() -> None:
    base = m.evaluate(_setup())
    none = m.evaluate(_setup(overlap_override=np.array([0.0])))
    full = m.evaluate(_setup(overlap_override=np.array([1.0])))
    assert none.fetch_exposed_s[0] == pytest.approx(base.fetch_s[0])
    assert full.fetch_exposed_s[0] == 0
    assert full.step_s[0] <= base.step_s[0] <= none.step_s[0]


def test_monte_carlo_and_sweeps_take_the_cache_inputs(study_dir) -> None:
    """Skew, reuse and cache size as uncertain inputs: a seeded Monte Carlo gives the same numbers twice,
    and the sweeps cover them."""
    from prophet_model.study import sensitivity as se
    from prophet_model.study.runner import run_study

    from .conftest import dump_yaml, load_yaml

    cfg = load_yaml(study_dir / "_config.yml")
    cfg["routing"].update(distribution="zipf", zipf_exponent=1.0, temporal_reuse=0.2)
    cfg["expert_cache"]["memory_share"] = 0.6
    cfg["workload"]["weight_precision"] = "bf16"  # experts offloaded (FP8, searched by default, fits them all)
    cfg["systems"] = [s for s in cfg["systems"] if s["id"] == "8xA100"]
    cfg["expectations"] = [e for e in cfg["expectations"] if e["system"] == "8xA100"]
    cfg["uncertainty"]["inputs"] = {
        name: {"distribution": "uniform", "low": 0.5, "high": 1.5, "source": "test"}
        for name in ("routing.zipf_exponent", "routing.temporal_reuse", "expert_cache.memory_share")
    }
    dump_yaml(cfg, study_dir / "_config.yml")
    results, _ = run_study(load_study(study_dir / "_config.yml"))
    a = se.monte_carlo(results, samples=200, seed=3)
    b = se.monte_carlo(results, samples=200, seed=3)
    assert a.equals(b)
    speed = a[a.metric == "speedup"].iloc[0]
    assert speed.p5 < speed.point < speed.p95
    sweep = se.sweeps(next(iter(se.setups(results).values())))
    for name in ("routing.zipf_exponent", "routing.temporal_reuse", "expert_cache.memory_share"):
        assert np.isfinite(sweep[sweep.input == name].speedup).all(), name


def test_a_routing_trace_drives_the_study(study_dir) -> None:
    """distribution: trace reads per-layer counts from a CSV beside the config; a trace concentrated on few
    experts raises the hit rate over uniform routing, its file is part of the config hash, and a bad trace
    is refused at load naming the file and the allowed values."""
    from prophet_model.study.runner import run_study

    from .conftest import dump_yaml, load_yaml

    experts = load_study(study_dir / "_config.yml").model.num_experts
    lines = ["layer,expert,count"] + [
        f"{layer},{e},{1000 if e < 16 else 1}" for layer in (0, 1) for e in range(experts)
    ]
    (study_dir / "trace.csv").write_text("\n".join(lines) + "\n")
    cfg = load_yaml(study_dir / "_config.yml")
    cfg["systems"] = [s for s in cfg["systems"] if s["id"] == "8xA100"]
    cfg["expectations"] = [e for e in cfg["expectations"] if e["system"] == "8xA100"]
    # experts offloaded at the configured batch: BF16 weights and KV (FP8, searched by default, fits them all)
    cfg["workload"].update(weight_precision="bf16", kv_precision="bf16")
    dump_yaml(cfg, study_dir / "_config.yml")
    uniform = run_study(load_study(study_dir / "_config.yml"))[0].fixed  # at the configured batch
    cfg["routing"].update(distribution="trace", trace_file="trace.csv")
    dump_yaml(cfg, study_dir / "_config.yml")
    study = load_study(study_dir / "_config.yml")
    traced = run_study(study)[0].fixed
    h = traced.set_index("strategy")
    assert h.loc["Hybrid", "baseline_hit_rate"] > uniform.set_index("strategy").loc["Hybrid", "baseline_hit_rate"]
    (study_dir / "trace.csv").write_text("\n".join([*lines[:-1], "1,127,5"]) + "\n")
    assert load_study(study_dir / "_config.yml").config_hash != study.config_hash
    (study_dir / "trace.csv").write_text("layer,expert,count\n0,999,1\n")
    with pytest.raises(UserError, match=r"routing.trace_file.*trace.csv line 2: allowed: .*expert in 0\.\.127"):
        load_study(study_dir / "_config.yml")
    cfg["routing"].update(trace_file="")
    dump_yaml(cfg, study_dir / "_config.yml")
    with pytest.raises(UserError, match="distribution trace needs trace_file"):
        load_study(study_dir / "_config.yml")
