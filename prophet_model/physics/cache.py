"""Routing and the expert cache: how many experts a layer touches on the busiest rank, and which share
of them is already on the GPU (the hit rate).

Routing, per MoE layer, as a per-pick popularity p_e over the E experts:
- `uniform`: p_e = 1/E;
- `zipf`: p_e proportional to rank^-s (s: routing.zipf_exponent), the same in every layer;
- `trace`: per layer, the counts of a routing trace (CSV: layer, expert, count) over their sum.
Placement: an expert group of ep ranks deals the experts out round-robin by popularity (rank r holds the
popularity ranks r, r + ep, ...); the busiest rank holds the most popular ones (rank 0), n = ceil(E/ep) of
them. A step's T tokens (of the group, top-k distinct experts each) touch expert e with
q_e = 1 - (1 - min(1, k p_e))^T; the rank touches sum q_e experts (variance sum q_e (1 - q_e)) and serves the share sum p_e of the picks.
Temporal reuse rho (routing.temporal_reuse): whether an expert is touched is a two-state chain over decode
steps: with probability rho it keeps the previous step's state, otherwise it is drawn afresh with q_e;
the marginal stays q_e, the lag-1 correlation is rho.

The cache holds C experts of the rank per layer (what memory leaves, see model.memory_resident_fraction).
The hit rate h is the share of the needed experts found in it, sum q_e [e cached] / sum q_e:
- `static`: the C most popular experts stay: the top-C share of q (closed form; reuse does not move it);
- `lru`: Che's approximation in decode steps, extended to the reuse chain (closed form up to one root;
  C/n under uniform routing without reuse);
- `predicted` (Prophet): predicted experts enter, the least likely to be needed next leave: the cache keeps
  the C experts with the highest rho x_e + (1 - rho) q_e (x_e: used this step), in expectation (closed
  form; without reuse, the static cache). The per-layer prefetch of the next layer's predictions
  (physics/prefetch.py) comes on top of it.
Every hit rate the model uses is one of these closed forms, vectorized over configurations. A seeded
simulation of the same chain and policies (200 warm-up and 4,000 measured steps, kept per (policy, q, C,
rho)) checks them: tests/test_cache.py bounds the difference.
"""

from __future__ import annotations

import functools
import math
import zlib

import numpy as np
from numpy.typing import ArrayLike

POLICIES = ("static", "lru", "predicted")  # Scenario.cache_policy codes 0, 1, 2
WARMUP_STEPS = 200
MEASURED_STEPS = 4000
SEED = 20261126

# routing trace id (crc32 of its popularity table) -> per-layer popularity vectors, each sorted descending
_TRACES: dict[int, tuple[tuple[float, ...], ...]] = {}


# --------------------------------------------------------------------------------------------
# Popularity


def zipf(experts: int, exponent: float) -> np.ndarray:
    """Per-pick popularity p_i = i^-s / sum_j j^-s for ranks i = 1..E (descending)."""
    w = np.arange(1, experts + 1, dtype=float) ** -float(exponent)
    return w / w.sum()


def register_trace(layers: tuple[tuple[float, ...], ...]) -> int:
    """A stable numeric id for a trace (a Scenario field is a number): crc32 of its values, >= 1."""
    key = zlib.crc32(np.asarray([v for layer in layers for v in layer], dtype=np.float64).tobytes()) or 1
    _TRACES[key] = layers
    return key


def touch_probability(popularity: np.ndarray, tokens: float, top_k: float) -> np.ndarray:
    """Per expert, the probability that a step's T tokens touch it: 1 - (1 - min(1, k p_e))^T (a token's
    k distinct choices include e with k p_e; uniform: 1 - (1 - k/E)^T)."""
    return 1 - (1 - np.minimum(1.0, top_k * np.asarray(popularity, dtype=float))) ** tokens


# --------------------------------------------------------------------------------------------
# Hit rates: closed forms over a batch of rows (q: rows x experts of the rank; slots, reuse: per row)


def _rows(q: ArrayLike, *per_row: ArrayLike) -> tuple[np.ndarray, ...]:
    q = np.atleast_2d(np.asarray(q, dtype=float))
    return (q, *(np.broadcast_to(np.asarray(x, dtype=float), q.shape[:1]) for x in per_row))


def static_hits(q: ArrayLike, slots: ArrayLike) -> np.ndarray:
    """The C experts with the highest q cached: (the top floor(C) q + frac(C) the next q) / sum q."""
    q, c = _rows(q, slots)
    qs = -np.sort(-q, axis=1)
    cum = np.concatenate([np.zeros((len(q), 1)), np.cumsum(qs, axis=1)], axis=1)
    c = np.clip(c, 0.0, q.shape[1])
    whole = np.floor(c).astype(int)
    nxt = np.take_along_axis(np.concatenate([qs, np.zeros((len(q), 1))], axis=1), whole[:, None], axis=1)[:, 0]
    part = cum[np.arange(len(q)), whole] + (c - whole) * nxt
    total = cum[:, -1]
    return np.where(total > 0, part / np.where(total > 0, total, 1.0), 0.0)


def lru_hits(q: ArrayLike, slots: ArrayLike, reuse: ArrayLike) -> np.ndarray:
    """LRU by Che's approximation in decode steps, with the reuse chain: an expert's use switches on with
    b = (1 - rho) q and stays on with a = rho + (1 - rho) q, so it was last used within t steps with
    1 - (1 - q)(1 - b)^(t - 1) (without reuse 1 - (1 - q)^t, for any t > 0). The characteristic time t_c
    fills the C slots; a needed expert hits with 1 - (1 - a)(1 - b)^(t_c - 1), weighted by q. Where C is
    less than one step's experts (t_c < 1 with reuse), the cache holds a C / sum q share of them."""
    q, c, rho = _rows(q, slots, reuse)
    rho2 = rho[:, None]
    a = rho2 + (1 - rho2) * q
    lb = np.log1p(-np.minimum((1 - rho2) * q, 1 - 1e-15))
    lq = np.log1p(-np.minimum(q, 1 - 1e-15))
    base = np.where(rho > 0, 1.0, 0.0)  # the smallest t: 1 with reuse, 0 without

    def within(t: np.ndarray) -> np.ndarray:  # P(used within the last t steps), rows x experts
        t2 = t[:, None]
        return np.where(rho2 > 0, 1 - (1 - q) * np.exp(lb * (t2 - 1)), -np.expm1(lq * t2))

    lo, hi = base.copy(), base + 1.0
    for _ in range(64):
        grow = within(hi).sum(axis=1) < c
        if not grow.any():
            break
        hi = np.where(grow, base + 2 * (hi - base), hi)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        low = within(mid).sum(axis=1) < c
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    t = 0.5 * (lo + hi)
    hit_t = np.where(rho2 > 0, 1 - (1 - a) * np.exp(lb * (t[:, None] - 1)), -np.expm1(lq * t[:, None]))
    total = q.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    hit = (q * hit_t).sum(axis=1) / safe
    short = (rho > 0) & (c < total)  # fewer slots than one step's experts
    hit = np.where(short, c / safe * (q * a).sum(axis=1) / safe, hit)
    full = c >= np.count_nonzero(q, axis=1)
    return np.where(total <= 0, 0.0, np.where(full, 1.0, np.where(c <= 0, 0.0, hit)))


def predicted_hits(q: ArrayLike, slots: ArrayLike, reuse: ArrayLike) -> np.ndarray:
    """The cache keeps the C experts most likely needed next, rho x_e + (1 - rho) q_e (x_e: used this
    step), in expectation: each expert is two items, used (q_e of a slot, likelihood rho + (1 - rho) q_e,
    needed next with a_e) and unused (1 - q_e, likelihood (1 - rho) q_e, needed next with (1 - rho) q_e);
    the slots take the likeliest items first, the last one in part. Without reuse: the static cache."""
    q, c, rho = _rows(q, slots, reuse)
    rho2 = rho[:, None]
    score = np.concatenate([rho2 + (1 - rho2) * q, (1 - rho2) * q], axis=1)
    size = np.concatenate([q, 1 - q], axis=1)
    value = np.concatenate([q * (rho2 + (1 - rho2) * q), (1 - q) * (1 - rho2) * q], axis=1)
    order = np.argsort(-score, axis=1, kind="stable")
    size, value = np.take_along_axis(size, order, axis=1), np.take_along_axis(value, order, axis=1)
    before = np.cumsum(size, axis=1) - size
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(size > 0, np.clip((c[:, None] - before) / size, 0.0, 1.0), 0.0)
    total = q.sum(axis=1)
    return np.where(total > 0, (frac * value).sum(axis=1) / np.where(total > 0, total, 1.0), 0.0)


def hits(policy: ArrayLike, q: ArrayLike, slots: ArrayLike, reuse: ArrayLike) -> np.ndarray:
    """The hit rate of each row's policy (0 static, 1 lru, 2 predicted)."""
    q, pol, c, rho = _rows(q, policy, slots, reuse)
    out = static_hits(q, c)
    for code, fn in ((1, lru_hits), (2, predicted_hits)):
        m = pol == code
        if m.any():
            out[m] = fn(q[m], c[m], rho[m])
    return out


def lru_uniform_hit(slots: float, experts: float) -> float:
    """LRU hit rate under uniform routing: C / n."""
    return float(min(1.0, max(0.0, slots / experts)))


def lru_che_hit(slots: float, q: np.ndarray) -> float:
    """LRU hit rate of one row without reuse (Che's approximation, see lru_hits)."""
    return float(lru_hits(q, slots, 0.0)[0])


# --------------------------------------------------------------------------------------------
# The seeded simulation that checks the closed forms (tests; the model page reports the agreement)


@functools.lru_cache(maxsize=4096)
def _simulate(policy: str, q: tuple[float, ...], slots: int, reuse: float, seed: int) -> float:
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
    h_lo = _simulate(policy, key, lo, float(reuse), seed)
    if slots == lo:
        return h_lo
    return h_lo + (slots - lo) * (_simulate(policy, key, lo + 1, float(reuse), seed) - h_lo)


# --------------------------------------------------------------------------------------------
# The busiest rank, per layer (averaged over a trace's layers)


def rank_stats_array(policy: ArrayLike, skew: ArrayLike, trace: ArrayLike, reuse: ArrayLike, experts: ArrayLike,
                     ep: ArrayLike, tokens: ArrayLike, top_k: ArrayLike, slots: ArrayLike) -> tuple[np.ndarray, ...]:  # fmt: skip
    """(touched mean, touched variance, share of the picks, hit rate) of the busiest rank per layer, over
    broadcast arrays; a trace's layers are averaged, the hit rate weighted by each layer's touched experts.
    Each distinct input row is solved once and its result copied to its repeats (exact: a Monte Carlo
    whose sampled inputs leave routing and cache unchanged, or change them through a whole-number batch,
    has few distinct rows however many samples it draws)."""
    b = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (policy, skew, trace, reuse, experts, ep, tokens,
                                                                   top_k, slots)))  # fmt: skip
    shape = b[0].shape
    flat = np.stack([x.ravel() for x in b], axis=1)
    unique, inverse = np.unique(flat, axis=0, return_inverse=True)
    pol, sk, tr, rho, e, g, t, k, c = unique.T
    out = np.zeros((4, len(unique)))
    groups = np.stack([e, g, tr], axis=1)
    for key in np.unique(groups, axis=0):
        rows = np.flatnonzero((groups == key).all(axis=1))
        experts_, ep_, trace_ = int(key[0]), int(key[1]), int(key[2])
        for chunk in np.array_split(rows, max(1, rows.size // 4096)):
            out[:, chunk] = _group_stats(experts_, ep_, trace_, pol[chunk], sk[chunk], rho[chunk], t[chunk],
                                         k[chunk], c[chunk])  # fmt: skip
    return tuple(o[np.ravel(inverse)].reshape(shape) for o in out)


def _group_stats(experts: int, ep: int, trace: int, policy: np.ndarray, skew: np.ndarray, reuse: np.ndarray,
                 tokens: np.ndarray, top_k: np.ndarray, slots: np.ndarray) -> np.ndarray:  # fmt: skip
    if trace:
        ranks = [np.asarray(p)[:: max(1, ep)] for p in _TRACES[trace]]
        layers = [np.broadcast_to(pr, (policy.size, pr.size)) for pr in ranks]
    else:
        w = np.arange(1, experts + 1, dtype=float)[None, :] ** -skew[:, None]
        layers = [(w / w.sum(axis=1, keepdims=True))[:, :: max(1, ep)]]
    stats = []
    for pr in layers:
        q = 1 - (1 - np.minimum(1.0, top_k[:, None] * pr)) ** tokens[:, None]
        stats.append((q.sum(axis=1), (q * (1 - q)).sum(axis=1), pr.sum(axis=1), hits(policy, q, slots, reuse)))
    mu = np.mean([x[0] for x in stats], axis=0)
    var = np.mean([x[1] for x in stats], axis=0)
    share = np.mean([x[2] for x in stats], axis=0)
    weight = np.sum([x[0] for x in stats], axis=0)
    hit = np.sum([x[0] * x[3] for x in stats], axis=0) / np.where(weight > 0, weight, 1.0)
    return np.stack([mu, var, share, hit])
