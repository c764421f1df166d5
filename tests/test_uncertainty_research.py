"""The Monte Carlo re-searches each draw's operating point (study/mc_search.py): a draw that changes memory
gets the batch the study would choose for it, dropped draws are counted, the headline stays inside its own
interval, and the same seed gives the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from prophet_model.study import mc_search
from prophet_model.study import sensitivity as se
from prophet_model.study.config import study_from_raw
from prophet_model.study.runner import run_study
from prophet_model.study.yaml_io import read_yaml

from .conftest import ROOT, load_yaml

CONFIG = ROOT / "_config.yml"


def _study(**changes: dict):
    """The default study with some sections changed (each a dict merged into its section)."""
    raw = read_yaml(CONFIG)
    for section, values in changes.items():
        raw[section] = values if not isinstance(raw.get(section), dict) else {**raw[section], **values}
    return study_from_raw(raw, CONFIG)


@pytest.fixture(scope="module")
def default():
    results, failures = run_study(_study())
    assert not failures
    return results


@pytest.mark.parametrize("factor", [0.8, 1.05, 1.3, 2.0])
def test_a_longer_context_re_chooses_the_batch_as_the_study_would(default, factor) -> None:
    """A draw of the context length (more KV cache per sequence) gets, on each side, what run_study gives the
    study at that context: never slower than the re-searched point by more than rounding."""
    sid = "8xA100"
    context = round(default.study.config.workload.context_length_tokens * factor)
    again, _ = run_study(_study(workload={"context_length_tokens": context}))
    row = again.headline.set_index("system_id").loc[sid]
    draws = {"workload.context_length_tokens": np.array([float(context)])}
    at_point = {
        "workload.context_length_tokens": np.array([float(default.study.config.workload.context_length_tokens)])
    }
    for variant in ("baseline", "prophet"):
        side = mc_search.side(default, sid, variant)
        got = mc_search.best(side, draws, 1, at_point, se.scenario, None).tokens_per_s[0]
        assert got >= row[f"{variant}_tokens_per_s"] * (1 - 1e-9), (variant, factor)
        assert got <= row[f"{variant}_tokens_per_s"] * (1 + 1e-6), (variant, factor)  # no better than the study


def _uncertainty(**inputs: dict) -> dict:
    raw = load_yaml(CONFIG)["uncertainty"]
    return {**raw, "samples": 4000, "inputs": inputs}


def test_a_kv_cache_a_little_larger_does_not_collapse_the_interval() -> None:
    """The held batch overflowed the experts' memory at a KV cache 5% larger (5,725 -> 1,671 tokens/s on
    8xA100); re-searched, the interval stays within a few percent of the point."""
    kv = {"distribution": "uniform", "low": 0.95, "high": 1.05, "source": "test"}
    results, _ = run_study(_study(uncertainty=_uncertainty(kv_cache_factor=kv)))
    table = se.monte_carlo(results).set_index(["system_id", "metric"])
    for sid in ("8xA100", "4xH100", "10xA6000"):
        r = table.loc[(sid, "prophet_tokens_per_s")]
        assert 0.9 * r.point <= r.p5 <= r.point <= r.p95 <= 1.1 * r.point, sid
        assert r.dropped == 0 and r.draws == 4000


def test_dropped_draws_are_counted_with_their_reason() -> None:
    """A KV cache up to 64x the catalog's leaves no batch of one that fits on the small systems (weights and KV
    in BF16; FP8 halves both): those draws are dropped, counted (draws, dropped, dropped_no_fit) and left out of
    the interval."""
    kv = {"distribution": "loguniform", "low": 1 / 64, "high": 64.0, "source": "test"}
    bf16 = {"weight_precision": "bf16", "kv_precision": "bf16"}
    results, _ = run_study(_study(workload=bf16, uncertainty=_uncertainty(kv_cache_factor=kv)))
    table = se.monte_carlo(results)
    assert set(table.draws) == {4000}
    assert (table.dropped == table.dropped_no_fit + table.dropped_max_step).all()
    assert table.dropped.max() > 0
    speed = table[table.metric == "speedup"]
    assert (speed.samples == speed.draws - speed.dropped).all()


def test_a_step_bound_drops_the_draws_that_cannot_meet_it() -> None:
    """A bound 1% above the fastest step either side can take: draws with larger experts (slower steps at
    every batch) meet it nowhere and are dropped as such; the others meet it."""
    first, _ = run_study(_study(), system_ids=["4xH100"])
    rows = first.rows[(first.rows.role == "system") & first.rows.feasible]
    bound = 1.01 * float(rows.groupby("variant").step_ms.min().max())
    size = {"distribution": "uniform", "low": 0.9, "high": 1.1, "source": "test"}
    study = _study(workload={"max_step_ms": bound}, uncertainty=_uncertainty(expert_size_factor=size))
    results, _ = run_study(study, system_ids=["4xH100"])
    table = se.monte_carlo(results)
    assert len(table) and (table.dropped == table.dropped_max_step).all() and (table.dropped_no_fit == 0).all()
    assert 0 < table.dropped.iloc[0] < 4000


def _invariant(results) -> None:
    table = se.monte_carlo(results)
    assert len(table) and (table.draws > 0).all()
    assert se.outside_interval(table) == []


def test_the_headline_is_inside_its_interval_by_default(default) -> None:
    _invariant(default)


def _speedup(results, sid: str, name: str, factors: list[float]) -> np.ndarray:
    """The re-searched speedup with one input at factors of its configured value, the others configured."""
    setup, f = se.setups(results)[sid], np.array(factors)
    values, at_point = se._absolute(setup, {name: f}), se._absolute(setup, {name: np.ones(1)})
    b, p = (mc_search.best(mc_search.side(results, sid, v), values, f.size, at_point, se.scenario, None).tokens_per_s
            for v in ("baseline", "prophet"))  # fmt: skip
    return p / b


def test_the_headline_is_inside_its_interval_with_a_fixed_batch() -> None:
    """Every headline inside its interval, but one that is a spike: with a fixed batch of 16, 10xA6000's
    baseline sits just past the point where its experts stop fitting (Prophet hides the copies): a KV
    cache or a batch 10% either way moves both variants away from it, so its speedup is a local maximum
    that few draws reach. The invariant cannot hold there; the test asserts that it is such a spike."""
    results, _ = run_study(_study(workload={"batch_search": False}, uncertainty=_uncertainty(
        **load_yaml(CONFIG)["uncertainty"]["inputs"])))  # fmt: skip
    assert "workload.batch_size_per_gpu" in se.uncertain_inputs(results.study)
    table = se.monte_carlo(results)
    assert (table.draws > 0).all()
    for line in se.outside_interval(table):
        sid, _, metric = line.split(":")[0].split()
        assert metric == "speedup", line
        for name in ("kv_cache_factor", "workload.batch_size_per_gpu"):
            lo, point, hi = _speedup(results, sid, name, [0.9, 1.0, 1.1])
            assert point > max(lo, hi), (line, name)


def test_the_headline_is_inside_its_interval_for_deepseek_v3() -> None:
    results, _ = run_study(_study(model="deepseek_v3", uncertainty=_uncertainty(
        **load_yaml(CONFIG)["uncertainty"]["inputs"])))  # fmt: skip
    _invariant(results)


def test_the_headline_is_inside_its_interval_with_a_routing_trace(trace_study) -> None:
    from prophet_model.study.config import load_study

    results, _ = run_study(load_study(trace_study), system_ids=["8xA100"])
    _invariant(results)


def test_the_monte_carlo_gives_the_same_bytes_for_the_same_seed(default, tmp_path) -> None:
    a, b = (se.monte_carlo(default, samples=3000) for _ in range(2))
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert not se.monte_carlo(default, samples=3000, seed=1).equals(a)
