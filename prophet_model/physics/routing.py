"""Routing per MoE layer on the busiest rank: experts touched, token-expert assignments, and the hit
rate of the expert cache under the routing (physics.cache for skewed routing).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .cache import rank_stats_array
from .memory import experts_on_fullest_gpu, memory_resident_fraction
from .scenario import Array, Scenario, once

# Acklam's rational approximation of the inverse standard normal CDF (relative error < 1.2e-9)
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def normal_quantile(p: ArrayLike) -> Array:
    """Inverse of the standard normal CDF for p in (0, 1) (Acklam's approximation)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.minimum(p, 1 - p)
    t = np.sqrt(-2 * np.log(np.where(q > 0, q, 1e-300)))
    tail = (((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]) / (
        (((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1
    )
    tail = np.where(p < 0.5, tail, -tail)
    r = (p - 0.5) ** 2
    central = (
        (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5])
        * (p - 0.5)
        / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1)
    )
    return np.where(np.abs(p - 0.5) <= 0.5 - 0.02425, central, tail)


def expected_max_z(n: ArrayLike) -> Array:
    """Expected maximum of n standard normal draws, Blom's approximation Phi^-1((n - 0.375)/(n + 0.25));
    exactly 0 for n = 1."""
    n = np.asarray(n, dtype=np.float64)
    if n.size > len(_MAX_Z):  # many GPU counts: the same values, looked up where they are whole numbers
        with np.errstate(invalid="ignore"):  # NaN or inf: no lookup (the comparison below fails)
            whole = n.astype(np.int64)
        if whole.min() >= 0 and whole.max() < len(_MAX_Z) and np.array_equal(whole, n):
            return _MAX_Z[whole]
    return np.where(n > 1, normal_quantile((n - 0.375) / (n + 0.25)), 0.0)


_MAX_Z = np.where(np.arange(1025) > 1, normal_quantile((np.arange(1025) - 0.375) / (np.arange(1025) + 0.25)), 0.0)


def tokens_per_group(s: Scenario) -> Array:
    """Tokens routed within one expert group per MoE layer: T = ep * B."""
    return s.ep * s.batch_size_per_gpu


def busiest(mean: Array, var: Array, cap: Array, s: Scenario) -> Array:
    """The expected largest of ep per-rank counts with this mean and variance: min(cap, mean + sd z(ep))."""
    z = once("z", s, lambda s: expected_max_z(s.ep))
    return np.minimum(cap, mean + s.load_imbalance * np.sqrt(np.maximum(var, 0.0)) * z)


def routing(s: Scenario) -> tuple[Array, Array, Array, Array]:
    """Per MoE layer on the busiest rank: (mean and variance of the experts touched, its share of the
    picks, the cache's hit rate). Uniform routing (closed form): each of the rank's n = ceil(E/ep) experts
    is touched with p = 1 - (1 - k/E)^T: mean n p, variance n p (1 - p), share n / E, hit C / n (any
    policy without temporal reuse). Otherwise cache.rank_stats_array (round-robin placement by popularity)."""

    def compute(s: Scenario) -> tuple[Array, Array, Array, Array]:
        n = experts_on_fullest_gpu(s)
        p = 1 - (1 - s.top_k / s.num_experts) ** tokens_per_group(s)
        share = memory_resident_fraction(s)
        out = [n * p, n * p * (1 - p), n / s.num_experts, share]
        skewed = skewed_routing(s)
        if np.any(skewed):
            args = np.broadcast_arrays(
                s.cache_policy,
                s.routing_skew,
                s.routing_trace,
                s.temporal_reuse,
                s.num_experts,
                s.ep,
                tokens_per_group(s),
                s.top_k,
                share * n,
                skewed,
            )
            pick = args[-1]
            stats = rank_stats_array(*(a[pick] for a in args[:-1]), traces=s.traces)
            out = [np.array(np.broadcast_to(o, pick.shape)) for o in out]
            for o, v in zip(out, stats, strict=True):
                o[pick] = v
        return tuple(np.asarray(o, dtype=np.float64) for o in out)  # type: ignore[return-value]

    return once("routing", s, compute)


def skewed_routing(s: Scenario) -> Array:
    """Where routing or the cache needs cache.rank_stats_array: skewed routing, a trace, or temporal reuse
    with a cache policy that uses it."""
    return (s.routing_skew > 0) | (s.routing_trace > 0) | ((s.temporal_reuse > 0) & (s.cache_policy > 0))


def distinct_experts_touched(s: Scenario) -> Array:
    """Distinct experts activated on the busiest rank per layer: the touched count's expected maximum
    over the ep ranks, min(n, mean + sd z(ep)) (routing() gives mean and variance). Not one expert per
    token: tokens share experts."""

    def compute(s: Scenario) -> Array:
        mean, var, _, _ = routing(s)
        return busiest(mean, var, experts_on_fullest_gpu(s), s)

    return once("distinct", s, compute)


def assignments_on_fullest_gpu(s: Scenario) -> Array:
    """Token-expert assignments served by the busiest rank per layer: of the T k assignments each lands
    on the rank with q (ceil(E/ep)/E under uniform routing, its popularity share otherwise), so
    Binomial(T k, q), its maximum over ranks as above."""

    def compute(s: Scenario) -> Array:
        tk = tokens_per_group(s) * s.top_k
        q = routing(s)[2]
        return busiest(tk * q, tk * q * (1 - q), tk, s)

    return once("assignments", s, compute)


def mean_assignments(s: Scenario) -> Array:
    """Assignments a rank serves on average: T k ceil(E/ep) / E."""
    return tokens_per_group(s) * s.top_k * experts_on_fullest_gpu(s) / s.num_experts


# --------------------------------------------------------------------------------------------
# Time terms (seconds per decode step, busiest GPU)


def resident_fraction(s: Scenario) -> Array:
    """The hit rate: the share of touched experts already on the GPU (physics/cache.py: the policy's under the
    routing; C / n under uniform routing), or the what-if override."""
    return np.where(np.isfinite(s.resident_override), s.resident_override, routing(s)[3])
