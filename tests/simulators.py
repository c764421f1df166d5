"""The seeded simulation of the expert cache that checks the closed forms of prophet_model/physics/cache.py
(tests/test_cache.py bounds the difference; the model never calls it): per step, each expert's use follows
the two-state reuse chain (kept with probability rho, else drawn afresh with q_e), and the cache's policy
(`lru`, or `predicted`: the likeliest to be needed next among those on the GPU) picks what stays.
Each result is kept per (policy, q, C, rho, seed)."""

from __future__ import annotations

import functools
import math

import numpy as np

WARMUP_STEPS = 200
MEASURED_STEPS = 4000
SEED = 20261126


@functools.lru_cache(maxsize=4096)
def simulate(policy: str, q: tuple[float, ...], slots: int, reuse: float, seed: int) -> float:
    """Hit rate of `slots` cache entries under the two-state reuse chain, measured over MEASURED_STEPS
    steps after WARMUP_STEPS (seeded, so reproducible)."""
    qa = np.asarray(q, dtype=float)
    n = len(qa)
    if slots >= n:
        return 1.0
    if slots <= 0:
        return 0.0
    rng = np.random.default_rng(seed)
    steps = WARMUP_STEPS + MEASURED_STEPS
    fresh = rng.random((steps, n)) < qa
    keep = rng.random((steps, n)) < reuse
    used = fresh[0].copy()
    cached = np.zeros(n, dtype=bool)
    cached[np.argsort(-qa, kind="stable")[:slots]] = True
    last = np.where(cached, 0.0, -1.0)
    tiebreak = rng.random(n) * 1e-6
    hit_count = needed = 0.0
    for t in range(1, steps):
        used = np.where(keep[t], used, fresh[t])
        if t >= WARMUP_STEPS:
            hit_count += float(np.count_nonzero(used & cached))
            needed += float(np.count_nonzero(used))
        if policy == "lru":
            last = np.where(used, float(t), last)
            order = np.argsort(-(last + tiebreak), kind="stable")
        else:  # predicted: the most likely to be needed next among those on the GPU
            score = np.where(cached | used, reuse * used + (1 - reuse) * qa + tiebreak, -1.0)
            order = np.argsort(-score, kind="stable")
        cached = np.zeros(n, dtype=bool)
        cached[order[:slots]] = True
    return hit_count / needed if needed else 0.0


def simulated_hit(policy: str, q: np.ndarray, slots: float, reuse: float, seed: int = SEED) -> float:
    """The simulation at fractional C: linear between floor(C) and ceil(C) slots."""
    key = tuple(np.round(np.asarray(q, dtype=float), 12).tolist())
    lo = math.floor(slots)
    h_lo = simulate(policy, key, lo, float(reuse), seed)
    if slots == lo:
        return h_lo
    return h_lo + (slots - lo) * (simulate(policy, key, lo + 1, float(reuse), seed) - h_lo)
