"""The model's fast paths give the numbers of its plain ones: many configurations evaluated a part at a
time, distinct rows found by sorting only the columns that vary, the LRU root by Newton's method after a
short bisection, and hit rates read off one popularity's curve where only the slots differ.
(Speed itself is a printed figure in benchmarks/bench_model.py, never asserted here.)"""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest

from prophet_model import physics as m
from prophet_model.physics import cache, step
from prophet_model.study import trace as study_trace

from .conftest import TOY


def _zipf_trace(experts: int = 128, layers: int = 8, seed: int = 1) -> dict[int, m.Trace]:
    """A Zipf-drawn trace under its id, as a Scenario carries it."""
    rng = np.random.default_rng(seed)
    w = np.arange(1, experts + 1.0) ** -1.2
    rows = []
    for _ in range(layers):
        c = rng.multinomial(100_000, w / w.sum()).astype(float)
        rows.append(tuple(sorted((c / c.sum()).tolist(), reverse=True)))
    return {study_trace.trace_id(tuple(rows)): tuple(rows)}


def _many(n: int, **extra) -> m.Scenario:
    """TOY over n configurations: batch, EP degree, accuracy and memory varied."""
    rng = np.random.default_rng(4)
    return replace(TOY, n_gpus=8.0, ep=rng.choice([1.0, 2.0, 4.0, 8.0], n),
                   batch_size_per_gpu=rng.integers(1, 200, n).astype(float), prediction_accuracy=rng.random(n),
                   memory_capacity=rng.uniform(2e9, 40e9, n), prophet=rng.integers(0, 2, n).astype(float),
                   **extra)  # fmt: skip


@pytest.mark.parametrize("routing", [{}, {"routing_skew": 1.1, "cache_policy": 1.0}])
def test_evaluating_in_parts_gives_every_number_of_one_call(monkeypatch, routing) -> None:
    s = _many(3 * step.CHUNK + 17, **routing)
    parts = m.evaluate(s)
    monkeypatch.setattr(step, "CHUNK", 10**9)
    whole = m.evaluate(s)
    for f in fields(parts):
        a, b = getattr(parts, f.name), getattr(whole, f.name)
        assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True), f.name


def test_a_term_is_computed_once_per_scenario_and_kept_in_its_own_memo() -> None:
    """The memo belongs to its Scenario: a second ask reads it, another Scenario (also one made by replace)
    starts empty, and an evaluation leaves the caller's Scenario's memo as it was."""
    s = TOY.arrays()
    calls = []
    for _ in range(2):
        assert m.once("term", s, lambda s: calls.append(1) or 2.0) == 2.0
    assert calls == [1]
    other = replace(s, batch_size_per_gpu=2.0)
    assert other.memo == {} and m.once("term", other, lambda s: 3.0) == 3.0 and s.memo["term"] == 2.0
    m.evaluate(s)
    assert list(s.memo) == ["term"]


def test_parts_keep_the_shape_of_broadcast_inputs(monkeypatch) -> None:
    monkeypatch.setattr(step, "CHUNK", 7)
    s = replace(TOY, batch_size_per_gpu=np.arange(1.0, 11.0)[:, None], prediction_accuracy=np.linspace(0, 1, 6))
    out = m.evaluate(s)
    assert out.step_s.shape == (10, 6)
    assert out.step_s[3, 2] == m.evaluate(replace(TOY, batch_size_per_gpu=4.0, prediction_accuracy=0.4)).step_s


def test_unique_rows_agrees_with_numpy() -> None:
    rng = np.random.default_rng(0)
    rows = np.column_stack([np.full(500, 3.0), rng.integers(0, 4, 500), rng.integers(0, 3, 500) * 0.5,
                            np.full(500, -1.0)]).astype(float)  # fmt: skip
    got, inverse = cache.unique_rows(rows)
    want, want_inverse = np.unique(rows, axis=0, return_inverse=True)
    assert np.array_equal(got, want) and np.array_equal(inverse, np.ravel(want_inverse))
    assert np.array_equal(got[inverse], rows)
    one, inv = cache.unique_rows(np.ones((5, 3)))
    assert one.shape == (1, 3) and not inv.any()


def _bisection(q: np.ndarray, c: float, rho: float) -> float:
    """The LRU characteristic time by plain bisection (200 halvings), as a reference (q as the model
    bounds it, below 1 - 1e-15)."""
    base = 1.0 if rho > 0 else 0.0
    qb = np.minimum(q, 1 - 1e-15)

    def filled(t: float) -> float:
        if rho > 0:
            return float(np.sum(1 - (1 - q) * (1 - np.minimum((1 - rho) * q, 1 - 1e-15)) ** (t - 1)))
        return float(np.sum(1 - (1 - qb) ** t))

    lo, hi = base, base + 1.0
    while filled(hi) < c:
        lo, hi = hi, base + 2 * (hi - base)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if filled(mid) < c else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.9])
def test_lru_root_by_newton_is_the_bisection_root(rho) -> None:
    rng = np.random.default_rng(2)
    p = cache.zipf(32, 1.3)
    for tokens in (1.0, 16.0, 400.0):
        q = cache.touch_probability(p, tokens, 2.0)
        total = q.sum()
        c = np.concatenate([rng.uniform(total if rho > 0 else 0.01, 31.9, 6), [31.999]])
        t = cache.lru_times(q, c, rho)
        for ti, ci in zip(t, c, strict=True):
            assert ti == pytest.approx(_bisection(q, ci, rho), rel=1e-10)


@pytest.mark.parametrize("policy", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("reuse", [0.0, 0.3])
def test_rows_that_differ_only_in_slots_read_the_curve_of_the_per_row_solve(monkeypatch, policy, reuse) -> None:
    """Static and predicted caches are piecewise linear in the slots (exact); LRU is read off a quintic
    Hermite curve, within 1e-11 of the per-row solve."""
    traces = _zipf_trace()
    (trace_id,) = traces
    rng = np.random.default_rng(3)
    for ep, tokens in ((1, 8.0), (4, 64.0), (8, 512.0)):
        n = -(-128 // ep)
        slots = np.concatenate([rng.uniform(0, 1.1 * n, 300), [0.0, 1e-3, n / 2, n - 1e-3, n, 2.0 * n]])
        curve = cache.rank_stats_array(policy, 0.0, trace_id, reuse, 128, ep, tokens, 2, slots, traces)
        monkeypatch.setattr(cache, "CURVE_ROWS", 10**9)
        rows = cache.rank_stats_array(policy, 0.0, trace_id, reuse, 128, ep, tokens, 2, slots, traces)
        monkeypatch.undo()
        tol = 1e-11 if policy == 1.0 else 1e-12
        for a, b in zip(curve, rows, strict=True):
            assert np.max(np.abs(a - b)) < tol
        hit = curve[3]
        assert np.all(np.diff(hit[np.argsort(slots)]) >= -1e-12)  # more slots never hit less
        assert hit[slots >= n].min() == 1.0 and hit[slots == 0.0].max() == 0.0 and hit.max() <= 1.0
