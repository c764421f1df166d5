"""The layer-by-layer offloading model (prophet_model/offload.py): hand-derived cases, and its check
against the committed H200 offloading runs."""

from __future__ import annotations

import numpy as np
import pytest

from prophet_model.measured import predict_steps
from prophet_model.physics import prefetch as ob
from prophet_model.study.config import load_study

from .conftest import ROOT

MS = 1e-3


def _layer(missing: float, compute: float, accuracy: float, wrong: float, window: bool) -> float:
    """Seconds of one layer with exactly two missing experts (mean 2 of 2: X = 2 always)."""
    exposed = ob.prefetch_exposed(np.float64(missing), np.float64(compute), np.float64(2), np.float64(2),
                                  np.float64(accuracy), np.float64(wrong), np.float64(window))  # fmt: skip
    return compute + float(exposed)


def test_layer_time_by_hand() -> None:
    """2 ms of missing copies per layer (two experts, none resident, 1 ms each), 0.2 ms of compute.
    baseline: 2 + 0.2 = 2.2 ms (window at a = 0 is on-demand fetching);
    eager at a = 1: 0 + max(2, 0.2) = 2 ms (copies bound);
    eager at a = 0.5 (wrong 0.5): 1 + max(2, 0.2) = 3 ms (wrong prefetches cost the link);
    window at a = 0.5: 0.2 + 2 - 0.5 * 0.2 = 2.1 ms (never above the baseline);
    compute-bound (5 ms) at a = 1: eager max(2, 5) = 5 ms, window 5 + 2 - 2 = 5 ms, baseline 7 ms."""
    two, c = 2 * MS, 0.2 * MS
    assert _layer(two, c, 0.0, 1.0, True) == pytest.approx(2.2 * MS)
    assert _layer(two, c, 1.0, 0.0, False) == pytest.approx(2.0 * MS)
    assert _layer(two, c, 0.5, 0.5, False) == pytest.approx(3.0 * MS)
    assert _layer(two, c, 0.5, 0.5, True) == pytest.approx(2.1 * MS)
    assert _layer(two, 5 * MS, 1.0, 0.0, False) == pytest.approx(5.0 * MS)
    assert _layer(two, 5 * MS, 1.0, 0.0, True) == pytest.approx(5.0 * MS)
    assert _layer(two, 5 * MS, 0.0, 1.0, True) == pytest.approx(7.0 * MS)
    # wrong predictions are bounded by the experts the batch does not touch: D = 127 of 128
    assert ob.wrong_share(0.0, 127, 128) == pytest.approx(1 / 127)
    assert ob.wrong_share(0.8, 2, 128) == pytest.approx(0.2)


def test_offload_runs_are_predicted_from_the_copy_rate_and_ceilings() -> None:
    """Out of sample: Prophet's speedup over on-demand fetching in the committed H200 runs, median |error|
    <= 10% and every point within 25%, from the copy rate, the ceilings and the model's own routing math."""
    t = predict_steps.offload_table(load_study(ROOT / "_config.yml"))
    sp = t.dropna(subset=["speedup_error_pct"])
    assert len(sp) >= 64
    assert sp.speedup_error_pct.abs().median() <= 10 and sp.speedup_error_pct.abs().max() <= 25
    assert t[t.tokens >= 16].error_pct.abs().median() <= 10


def test_the_distribution_of_missing_experts_matters() -> None:
    """Four non-resident experts each touched with probability 1/64, 1 ms a copy, 0.1 ms of compute, eager
    at a = 1: by the distribution E[max(X, 0.1 ms)] - 0.1 ms = P(0) 0.1 + sum_x P(x) x ms - 0.1 ms; by the
    mean max(1/16, 0.1) - 0.1 = 0 ms."""
    p = 1 / 64
    pmf = [(1 - p) ** 4, 4 * p * (1 - p) ** 3, 6 * p**2 * (1 - p) ** 2, 4 * p**3 * (1 - p), p**4]
    expect = pmf[0] * 0.1e-3 + sum(x * 1e-3 * pmf[x] for x in range(1, 5)) - 0.1e-3
    f = np.float64(4 * p * 1e-3)
    got = ob.prefetch_exposed(f, np.float64(0.1e-3), np.float64(4 * p), np.float64(4), np.float64(1.0),
                              np.float64(0.0), np.float64(0))  # fmt: skip
    assert float(got) == pytest.approx(expect, rel=1e-12)
    assert expect > max(float(f), 0.1e-3) - 0.1e-3


def _pmf(n: int, p: float) -> list[float]:
    from math import comb

    return [comb(n, x) * p**x * (1 - p) ** (n - x) for x in range(n + 1)]


@pytest.mark.parametrize(("n", "p", "r"), [(4, 0.1, 0.5), (4, 0.1, 2.5), (10, 0.7, 3.2), (40, 0.3, 11.0),
                                          (128, 0.9, 100.4), (7, 0.5, 7.0), (3, 0.2, 0.0)])  # fmt: skip
def test_expected_min_is_the_binomial_sum(n: int, p: float, r: float) -> None:
    """E[min(X, r)] = sum_x P(x) min(x, r) exactly (sd < 4), on both sides of p = 1/2."""
    expect = sum(q * min(x, r) for x, q in enumerate(_pmf(n, p)))
    assert float(ob.expected_min(n * p, n, r)) == pytest.approx(expect, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("n", "p", "r"), [(128, 0.3, 40.0), (256, 0.5, 120.5), (200, 0.15, 10.0), (256, 0.8, 250.0)])
def test_wide_binomials_use_the_normal_approximation_within_half_a_percent(n: int, p: float, r: float) -> None:
    expect = sum(q * min(x, r) for x, q in enumerate(_pmf(n, p)))
    assert float(ob.expected_min(n * p, n, r)) == pytest.approx(expect, abs=0.005 * n * p)


def test_window_never_slower_and_perfect_prediction_limit() -> None:
    """window: never above the on-demand copies; at a = 1 with every needed expert predictable it equals a
    perfect prefetcher, E[max(X t_e, c)] - c (what the eager policy gives at a = 1, w = 0)."""
    rng = np.random.default_rng(7)
    n = rng.integers(1, 129, 2000).astype(float)
    mean = n * rng.random(2000)
    t_e = rng.uniform(1e-4, 3e-3, 2000)
    c = rng.uniform(1e-5, 5e-3, 2000)
    a = rng.random(2000)
    w = ob.wrong_share(a, mean, n + mean)
    f = mean * t_e
    window = ob.prefetch_exposed(f, c, mean, n, a, w, np.ones(2000))
    assert np.all(window <= f * (1 + 1e-12)) and np.all(window >= -1e-15)
    perfect = ob.prefetch_exposed(f, c, mean, n, np.ones(2000), np.zeros(2000), np.ones(2000))
    eager = ob.prefetch_exposed(f, c, mean, n, np.ones(2000), np.zeros(2000), np.zeros(2000))
    assert np.allclose(perfect, eager, rtol=1e-9, atol=1e-15)
