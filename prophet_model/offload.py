"""Expert offloading, layer by layer: which experts a step must copy from host memory, and how much of
that copying a one-layer-ahead prefetcher hides.

Per MoE layer, D experts are touched (uniform top-k routing: D = E (1 - (1 - k/E)^T)); a share h of
them is on the GPU (a hit): static residency h = resident share; an LRU cache of C experts under
uniform routing h = C / E (by symmetry every expert is equally likely to be cached); a Zipf-skewed
routing under LRU by Che's approximation. An expert takes t_e = expert bytes / host copy rate.

Policies (one FIFO copy stream, as validation/offload_bench.py runs them):
- baseline (on demand): a layer's missing experts are copied once the layer is reached, then it
  computes: per layer  tau = M0 t_e + c,  M0 = D (1 - h);
- prefetch at accuracy a (eager): while layer l computes, the experts predicted for layer l+1 (a set as
  large as the needed one, each needed expert in it with probability a) are copied; the needed ones
  it missed are copied when layer l+1 is reached, behind them. With P = D (1 - h) non-resident
  predicted experts (right or wrong) and M = (1 - a) D (1 - h) misses, the copy stream is the
  bottleneck when P t_e > c:  tau = M t_e + max(P t_e, c).
`accuracy` is the share of needed experts that were predicted, with a prediction set as large as the
needed set.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def distinct(tokens: ArrayLike, experts: ArrayLike, top_k: ArrayLike) -> Array:
    """Expected distinct experts touched per layer: E (1 - (1 - k/E)^T)."""
    e = np.asarray(experts, dtype=float)
    return e * (1 - (1 - np.asarray(top_k, dtype=float) / e) ** np.asarray(tokens, dtype=float))


def lru_uniform_hit(slots: ArrayLike, experts: ArrayLike) -> Array:
    """LRU hit rate under uniform routing: C / E."""
    return np.minimum(1.0, np.asarray(slots, dtype=float) / np.asarray(experts, dtype=float))


def touch_probability(popularity: np.ndarray, draws_per_step: float) -> np.ndarray:
    """Per expert, the probability that a step's draws touch it: 1 - (1 - p_e)^draws (draws = T k);
    their sum is the expected distinct experts under skewed routing."""
    return 1 - (1 - np.asarray(popularity, dtype=float)) ** draws_per_step


def lru_che_hit(slots: float, popularity: np.ndarray, draws_per_step: float) -> float:
    """LRU hit rate (per distinct needed expert) by Che's approximation: the characteristic time t_c
    (in steps) solves sum_e (1 - exp(-q_e t_c)) = C, with q_e the probability that expert e is touched
    in a step; a needed expert hits with probability 1 - exp(-q_e t_c); weighted by q_e."""
    q = touch_probability(popularity, draws_per_step)
    if slots >= len(q):
        return 1.0
    lo, hi = 0.0, 1.0
    while np.sum(1 - np.exp(-q * hi)) < slots:
        hi *= 2
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.sum(1 - np.exp(-q * mid)) < slots:
            lo = mid
        else:
            hi = mid
    t = 0.5 * (lo + hi)
    return float(np.sum(q * (1 - np.exp(-q * t))) / np.sum(q))


def wrong_share(accuracy: ArrayLike, distinct: ArrayLike, experts: ArrayLike) -> Array:
    """Wrong predictions per needed expert: 1 - a, bounded by the experts the batch does not touch:
    min(1 - a, (E - D) / D)."""
    d = np.asarray(distinct, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(d > 0, (np.asarray(experts, dtype=float) - d) / d, 0.0)
    return np.minimum(1 - np.asarray(accuracy, dtype=float), room)


def layer_time(missing: Array, compute: Array, accuracy: Array | None, wrong: Array | None = None,
               window: Array | bool = False) -> Array:  # fmt: skip
    """Seconds per MoE layer in steady state, with `missing` the copy time of the layer's needed,
    non-resident experts and `compute` its computation.
    baseline (accuracy None): missing + compute;
    eager prefetch: (1 - a) missing + max((a + wrong) missing, compute): every predicted expert is
    copied while the previous layer computes, the misses behind them;
    window prefetch: the misses first, then only what fits in the window: compute + missing - a
    min(missing, compute); never slower than the baseline."""
    if accuracy is None:
        return missing + compute
    eager = (1 - accuracy) * missing + np.maximum((accuracy + wrong) * missing, compute)
    windowed = compute + missing - accuracy * np.minimum(missing, compute)
    return np.where(np.asarray(window) > 0, windowed, eager)


def expected_layer_time(nonresident: int, touch: float, t_e: float, compute: float, accuracy: float | None,
                        wrong: float | None = None, window: bool = False) -> float:  # fmt: skip
    """The mean layer time over the layer's missing experts X ~ Binomial(nonresident, touch), each copied
    in t_e: sum_x P(X = x) layer_time(x t_e, ...). Where a layer misses a fraction of an expert on average,
    the mean of max(copies, compute) is not the max of the means: the distribution sets what a one-layer
    window hides."""
    n = nonresident
    total = 0.0
    for x in range(n + 1):
        p = math.comb(n, x) * touch**x * (1 - touch) ** (n - x)
        if p > 0:
            total += p * float(layer_time(np.float64(x * t_e), np.float64(compute), accuracy, wrong, window))
    return total
