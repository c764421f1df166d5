"""The layer-by-layer offloading model (prophet_model/offload.py): hand-derived cases, and its check
against the committed H200 offloading runs."""

from __future__ import annotations

import numpy as np
import pytest

from prophet_model import offload as ob
from prophet_model import validation as v
from prophet_model.config import load_study

from .conftest import ROOT

MS = 1e-3


def test_layer_time_by_hand() -> None:
    """2 ms of missing copies per layer (two experts, none resident, 1 ms each), 0.2 ms of compute.
    baseline: 2 + 0.2 = 2.2 ms; eager at a = 1: 0 + max(2, 0.2) = 2 ms (copies bound);
    eager at a = 0.5 (wrong 0.5): 1 + max(2, 0.2) = 3 ms (wrong prefetches cost the link);
    window at a = 0.5: 0.2 + 2 - 0.5 * 0.2 = 2.1 ms (never above the baseline);
    compute-bound (5 ms) at a = 1: eager max(2, 5) = 5 ms, window 5 + 2 - 2 = 5 ms, baseline 7 ms."""
    two, c = 2 * MS, 0.2 * MS
    assert ob.layer_time(two, c, None) == pytest.approx(2.2 * MS)
    assert ob.layer_time(two, c, 1.0, 0.0) == pytest.approx(2.0 * MS)
    assert ob.layer_time(two, c, 0.5, 0.5) == pytest.approx(3.0 * MS)
    assert ob.layer_time(two, c, 0.5, 0.5, window=True) == pytest.approx(2.1 * MS)
    assert ob.layer_time(two, 5 * MS, 1.0, 0.0) == pytest.approx(5.0 * MS)
    assert ob.layer_time(two, 5 * MS, 1.0, 0.0, window=True) == pytest.approx(5.0 * MS)
    assert ob.layer_time(two, 5 * MS, None) == pytest.approx(7.0 * MS)
    # wrong predictions are bounded by the experts the batch does not touch: D = 127 of 128
    assert ob.wrong_share(0.0, 127, 128) == pytest.approx(1 / 127)
    assert ob.wrong_share(0.8, 2, 128) == pytest.approx(0.2)


def test_hit_rates() -> None:
    assert ob.lru_uniform_hit(32, 128) == 0.25
    flat = np.full(128, 1 / 128)
    assert ob.lru_che_hit(64, flat, 16) == pytest.approx(0.5, abs=1e-6)  # uniform popularity: C / E
    skew = np.array([(i + 1) ** -1.0 for i in range(128)])
    skew /= skew.sum()
    assert ob.lru_che_hit(64, skew, 16) > 0.5  # popular experts stay
    hits = [ob.lru_che_hit(c, skew, 16) for c in (8, 32, 64, 96)]
    assert hits == sorted(hits)  # monotone in cache size
    assert ob.touch_probability(flat, 16).sum() == pytest.approx(float(ob.distinct(8, 128, 2)), rel=0.01)


def test_offload_runs_are_predicted_from_the_copy_rate_and_ceilings() -> None:
    """Out of sample: Prophet's speedup over on-demand fetching in the committed H200 runs, median |error|
    <= 10% and every point within 25%, from the copy rate, the ceilings and the model's own routing math."""
    t = v.offload_table(load_study(ROOT / "_config.yml"))
    sp = t.dropna(subset=["speedup_error_pct"])
    assert len(sp) >= 64
    assert sp.speedup_error_pct.abs().median() <= 10 and sp.speedup_error_pct.abs().max() <= 25
    assert t[t.tokens >= 16].error_pct.abs().median() <= 10


def test_the_distribution_of_missing_experts_matters() -> None:
    """Four non-resident experts each touched with probability 1/64, 1 ms a copy, 0.1 ms of compute, eager
    at a = 1: by the distribution E[max(X, 0.1 ms)] = P(0) 0.1 + sum_x P(x) x ms; by the mean max(1/16, 0.1) ms."""
    p = 1 / 64
    pmf = [(1 - p) ** 4, 4 * p * (1 - p) ** 3, 6 * p**2 * (1 - p) ** 2, 4 * p**3 * (1 - p), p**4]
    expect = pmf[0] * 0.1e-3 + sum(x * 1e-3 * pmf[x] for x in range(1, 5))
    assert ob.expected_layer_time(4, p, 1e-3, 0.1e-3, 1.0, 0.0) == pytest.approx(expect, rel=1e-12)
    assert expect > max(4 * p * 1e-3, 0.1e-3)
    assert ob.expected_layer_time(4, p, 1e-3, 0.1e-3, None) == pytest.approx(4 * p * 1e-3 + 0.1e-3)  # linear: the mean
