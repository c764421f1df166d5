"""Uncertainty with a routing trace: each distinct routing/cache input is solved once and copied to its
repeats, which must give exactly the per-sample solve; the run shows its progress unless --quiet.
(Speed is a printed figure in benchmarks/bench_model.py, never asserted here.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from prophet_model import physics as m
from prophet_model.cli import main
from prophet_model.physics import cache
from prophet_model.study import trace

from .conftest import zipf_trace


@pytest.fixture
def traces(tmp_path) -> dict[int, m.Trace]:
    """The Zipf trace under its id, as a Scenario carries it."""
    layers = trace.read_trace(zipf_trace(tmp_path / "t.csv"), 128, "test")
    return {trace.trace_id(layers): layers}


def test_the_trace_has_every_layer(tmp_path) -> None:
    layers = trace.read_trace(zipf_trace(tmp_path / "t.csv"), 128, "test")
    assert len(layers) == 32 and all(len(p) == 128 and abs(sum(p) - 1) < 1e-12 for p in layers)


@pytest.mark.parametrize("policy", [0.0, 1.0, 2.0])
def test_repeated_rows_give_exactly_the_per_sample_solve(traces, policy) -> None:
    (trace_id,) = traces
    rng = np.random.default_rng(0)
    batch = rng.integers(8, 33, 200).astype(float)  # a whole-number batch: few distinct rows
    tokens, slots = 4 * batch, 32 * (1 - batch / 64)
    reuse = np.where(rng.random(200) < 0.5, 0.0, 0.3)
    together = cache.rank_stats_array(policy, 0.0, trace_id, reuse, 128, 4, tokens, 2, slots, traces)
    for i in rng.choice(200, 6, replace=False):
        alone = cache.rank_stats_array(policy, 0.0, trace_id, reuse[i], 128, 4, tokens[i], 2, slots[i], traces)
        for t, a in zip(together, alone, strict=True):
            assert t[i] == pytest.approx(float(a), rel=1e-12, abs=1e-15)


def test_zipf_rows_are_all_distinct_and_still_exact() -> None:
    skew = np.linspace(0.5, 1.5, 50)
    together = cache.rank_stats_array(1.0, skew, 0.0, 0.0, 128, 4, 64.0, 2, 20.0)
    for i in (0, 17, 49):
        alone = cache.rank_stats_array(1.0, skew[i], 0.0, 0.0, 128, 4, 64.0, 2, 20.0)
        assert [t[i] for t in together] == pytest.approx([float(a) for a in alone], rel=1e-12)


def test_trace_uncertainty_matches_the_sample_by_sample_model(trace_study) -> None:
    from prophet_model.study import sensitivity as se
    from prophet_model.study.config import load_study
    from prophet_model.study.runner import run_study

    results, _ = run_study(load_study(trace_study))
    setup = se.setups(results)["8xA100"]
    factors = se._absolute(setup, se.draws(results.study, 2000))
    many = se.evaluate(setup, factors)["speedup"]
    for i in (0, 511, 1999):  # each sample on its own: no other row to share a solve with
        one = {k: v[i : i + 1] for k, v in factors.items()}
        # a sample whose KV cache no longer fits is NaN both ways
        assert float(se.evaluate(setup, one)["speedup"][0]) == pytest.approx(float(many[i]), rel=1e-12, nan_ok=True)


def test_a_trace_study_evaluates_alike_in_a_process_that_inherits_nothing(trace_study) -> None:
    """The trace travels in the Study and its Scenarios (no module state filled at load): a spawned process,
    which inherits no memory of this one, evaluates a trace-routed Scenario to the same numbers."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from prophet_model.study.config import load_study
    from prophet_model.study.scenarios import scenario_dict, stack

    study = load_study(trace_study)
    system = study.system("8xA100")
    rows = [scenario_dict(study, system.gpu_key, system.count, ep, system.interconnect, True) for ep in (1, 2, 8)]
    s = stack(rows)
    assert study.routing_trace and np.all(s.routing_trace == study.routing_trace)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(m.evaluate, s).result()
    here = m.evaluate(s)
    assert np.array_equal(there.step_s, here.step_s) and np.array_equal(there.resident_fraction, here.resident_fraction)
    with pytest.raises(ValueError, match="routing_trace"):  # a Scenario without its traces is refused
        m.evaluate(replace(s, traces={}))


def test_a_trace_run_shows_uncertainty_progress_unless_quiet(trace_study, tmp_path, capsys) -> None:
    argv = ["run", "--config", str(trace_study), "--no-figures", "--systems", "8xA100"]
    assert main([*argv, "--results", str(tmp_path / "a")]) == 0
    assert "uncertainty: 100%" in capsys.readouterr().err  # tqdm on stderr
    assert main([*argv, "--results", str(tmp_path / "b"), "--quiet"]) == 0
    assert "uncertainty: 100%" not in capsys.readouterr().err
