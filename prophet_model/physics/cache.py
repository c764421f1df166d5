"""Routing and the expert cache: how many experts a layer touches on the busiest rank, and which share
of them is already on the GPU (the hit rate).

Routing, per MoE layer, as a per-pick popularity p_e over the E experts:
- `uniform`: p_e = 1/E;
- `zipf`: p_e proportional to rank^-s (s: routing.zipf_exponent), the same in every layer;
- `trace`: per layer, the counts of a routing trace (CSV: layer, expert, count) over their sum.
Placement: an expert group of ep ranks deals the experts out round-robin by popularity (rank r holds the
popularity ranks r, r + ep, ...); the busiest rank holds the most popular ones (rank 0), n = ceil(E/ep) of
them. A step's T tokens (of the group, top-k distinct experts each) touch expert e with
q_e = 1 - (1 - min(1, k p_e))^T; the rank touches sum q_e experts (variance sum q_e (1 - q_e)) and serves the share
sum p_e of the picks.
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
Every hit rate the model uses is one of these closed forms, vectorized over configurations (rows that
differ only in C read it off one curve: slot_curve_hits). A seeded simulation of the same chain and policies
(tests/simulators.py) checks them: tests/test_cache.py bounds the difference.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from .scenario import Trace

POLICIES = ("static", "lru", "predicted")  # Scenario.cache_policy codes 0, 1, 2


# --------------------------------------------------------------------------------------------
# Popularity


def zipf(experts: int, exponent: float) -> np.ndarray:
    """Per-pick popularity p_i = i^-s / sum_j j^-s for ranks i = 1..E (descending)."""
    w = np.arange(1, experts + 1, dtype=float) ** -float(exponent)
    return w / w.sum()


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
    t = _lru_root(q, c, rho)
    hit_t = np.where(rho2 > 0, 1 - (1 - a) * np.exp(lb * (t[:, None] - 1)), -np.expm1(lq * t[:, None]))
    total = q.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    hit = (q * hit_t).sum(axis=1) / safe
    short = (rho > 0) & (c < total)  # fewer slots than one step's experts
    hit = np.where(short, c / safe * (q * a).sum(axis=1) / safe, hit)
    full = c >= np.count_nonzero(q, axis=1)
    return np.where(total <= 0, 0.0, np.where(full, 1.0, np.where(c <= 0, 0.0, hit)))


def _lru_root(q: np.ndarray, c: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Per row, the time t at which the experts used within the last t steps fill the C slots:
    F(t) = sum_e P(e used within t) - C is increasing and concave in t, so after a bracket is found
    (doubling) and narrowed (BISECTIONS halvings), Newton's method from its lower end rises
    monotonically to the root without passing it (to rounding)."""
    rho2 = rho[:, None]
    lb = np.log1p(-np.minimum((1 - rho2) * q, 1 - 1e-15))
    lq = np.log1p(-np.minimum(q, 1 - 1e-15))
    base = np.where(rho > 0, 1.0, 0.0)  # the smallest t: 1 with reuse, 0 without
    lam = np.where(rho2 > 0, lb, lq)
    keep = np.where(rho2 > 0, 1 - q, 1.0)  # P(not used within t) = keep e^(lam (t - base))

    def filled(t: np.ndarray, rows: np.ndarray) -> np.ndarray:  # sum_e P(used within the last t steps)
        return q.shape[1] - (keep[rows] * np.exp(lam[rows] * (t[:, None] - base[rows, None]))).sum(axis=1)

    lo, hi = base.copy(), base + 1.0
    grow = np.flatnonzero(filled(hi, np.arange(len(c))) < c)
    for _ in range(64):  # double the bracket of the rows whose slots it does not yet fill
        if grow.size == 0:
            break
        lo[grow] = hi[grow]
        hi[grow] = base[grow] + 2 * (hi[grow] - base[grow])
        grow = grow[filled(hi[grow], grow) < c[grow]]
    every = np.arange(len(c))
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        low = filled(mid, every) < c
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    t, live = lo, np.ones(lo.shape, dtype=bool)
    for _ in range(NEWTON_STEPS):
        decay = keep[live] * np.exp(lam[live] * (t[live, None] - base[live, None]))
        gap = c[live] - (q.shape[1] - decay.sum(axis=1))  # C - sum P(used within t) >= 0 left of the root
        slope = -(decay * lam[live]).sum(axis=1)
        step = np.where((gap > 0) & (slope > 0), gap / np.where(slope > 0, slope, 1.0), 0.0)
        t[live] = np.minimum(t[live] + step, hi[live])
        live[live] = step > 4e-16 * t[live]
        if not live.any():
            break
    return t


BISECTIONS = 8  # halvings of the bracket before Newton's steps
NEWTON_STEPS = 60  # at most; each row stops once its step is below rounding


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
# The busiest rank, per layer (averaged over a trace's layers)


CURVE_ROWS = 64  # rows sharing every input but the slots, from which on their hit rates are read off one curve
CURVE_NODES = 513  # nodes of the LRU curve (quintic Hermite between them; tests bound its error)


def rank_stats_array(
    policy: ArrayLike,
    skew: ArrayLike,
    trace: ArrayLike,
    reuse: ArrayLike,
    experts: ArrayLike,
    ep: ArrayLike,
    tokens: ArrayLike,
    top_k: ArrayLike,
    slots: ArrayLike,
    traces: Mapping[int, Trace] | None = None,
) -> tuple[np.ndarray, ...]:
    """(touched mean, touched variance, share of the picks, hit rate) of the busiest rank per layer, over
    broadcast arrays (`trace`: an id in `traces`, 0 for none); a trace's layers are averaged, the hit rate weighted
    by each layer's touched experts.
    Each distinct input row is solved once and its result copied to its repeats (exact: a Monte Carlo
    whose sampled inputs leave routing and cache unchanged, or change them through a whole-number batch,
    has few distinct rows however many samples it draws). Rows that differ only in their slots (a
    sampled KV cache moves what memory leaves for experts), CURVE_ROWS or more of them, share one
    popularity: their hit rates are read off that popularity's hit-rate curve (slot_curve_hits)."""
    b = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (policy, skew, trace, reuse, experts, ep, tokens, top_k, slots))
    )
    shape = b[0].shape
    flat = np.stack([x.ravel() for x in b], axis=1)
    unique, inverse = unique_rows(flat)
    out = np.zeros((4, len(unique)))
    keys, key_of = unique_rows(unique[:, :8])
    per_key = np.bincount(key_of, minlength=len(keys))
    curve = per_key[key_of] >= CURVE_ROWS
    by_key, ends = np.argsort(key_of, kind="stable"), np.cumsum(per_key)
    for k in np.flatnonzero(per_key >= CURVE_ROWS):
        rows = by_key[ends[k] - per_key[k] : ends[k]]
        out[:, rows] = _curve_stats(keys[k], unique[rows, 8], _trace(traces, keys[k][2]))
    rest = np.flatnonzero(~curve)
    pol, sk, tr, rho, e, g, t, k, c = unique[rest].T
    groups = np.stack([e, g, tr], axis=1)
    for key in unique_rows(groups)[0]:  # not np.unique(axis=0): it imports numpy.ma (whatif stays light)
        rows = np.flatnonzero((groups == key).all(axis=1))
        experts_, ep_, trace_ = int(key[0]), int(key[1]), _trace(traces, key[2])
        for chunk in np.array_split(rows, max(1, rows.size // 4096)):
            out[:, rest[chunk]] = _group_stats(
                experts_, ep_, trace_, pol[chunk], sk[chunk], rho[chunk], t[chunk], k[chunk], c[chunk]
            )
    return tuple(o[inverse].reshape(shape) for o in out)


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct rows, each row's index among them), as np.unique(rows, axis=0, return_inverse=True)
    but sorting only the columns that vary (a lexicographic sort of those columns, faster than comparing
    whole rows as bytes)."""
    if len(rows) == 0:
        return rows[:0], np.zeros(0, dtype=np.intp)
    varies = np.flatnonzero((rows != rows[:1]).any(axis=0))
    if varies.size == 0:
        return rows[:1], np.zeros(len(rows), dtype=np.intp)
    order = np.lexsort(rows[:, varies[::-1]].T)
    ranked = rows[order][:, varies]
    new = np.concatenate([[True], (ranked[1:] != ranked[:-1]).any(axis=1)])
    inverse = np.empty(len(rows), dtype=np.intp)
    inverse[order] = np.cumsum(new) - 1
    return rows[order[new]], inverse


def _trace(traces: Mapping[int, Trace] | None, key: float) -> Trace | None:
    """The trace a routing_trace id names (None for 0: no trace)."""
    if not key:
        return None
    found = (traces or {}).get(int(key))
    if found is None:
        raise ValueError(f"routing_trace {int(key)} names none of the Scenario's traces {sorted(traces or {})}")
    return found


def _layers(experts: int, ep: int, trace: Trace | None, skew: np.ndarray, rows: int) -> list[np.ndarray]:
    """The rank's per-pick popularity in each layer, rows x experts of the rank."""
    if trace:
        ranks = [np.asarray(p)[:: max(1, ep)] for p in trace]
        return [np.broadcast_to(pr, (rows, pr.size)) for pr in ranks]
    w = np.arange(1, experts + 1, dtype=float)[None, :] ** -skew[:, None]
    return [(w / w.sum(axis=1, keepdims=True))[:, :: max(1, ep)]]


def _curve_stats(key: np.ndarray, slots: np.ndarray, trace: Trace | None) -> np.ndarray:
    """_group_stats for rows that share every input but the slots: routing from one row, the hit rate of
    every row from the layer's hit-rate curve."""
    policy, skew, _, reuse, experts, ep, tokens, top_k = key
    stats = []
    for pr in _layers(int(experts), int(ep), trace, np.array([skew]), 1):
        q = (1 - (1 - np.minimum(1.0, top_k * pr)) ** tokens)[0]
        stats.append((q.sum(), (q * (1 - q)).sum(), pr.sum(), slot_curve_hits(policy, q, slots, reuse)))
    return _combine(stats, slots.size)


def _combine(stats: list[tuple], rows: int) -> np.ndarray:
    """Average the layers' (touched mean, variance, share, hit rate); the hit rate weighted by touched."""
    mu = np.mean([np.broadcast_to(x[0], rows) for x in stats], axis=0)
    var = np.mean([np.broadcast_to(x[1], rows) for x in stats], axis=0)
    share = np.mean([np.broadcast_to(x[2], rows) for x in stats], axis=0)
    weight = np.sum([np.broadcast_to(x[0], rows) for x in stats], axis=0)
    hit = np.sum([x[0] * x[3] for x in stats], axis=0) / np.where(weight > 0, weight, 1.0)
    return np.stack([mu, var, share, hit])


def slot_curve_hits(policy: float, q: np.ndarray, slots: np.ndarray, reuse: float) -> np.ndarray:
    """The hit rate of one popularity row q at many slot counts C. `static` and `predicted` are piecewise
    linear in C (the slots take whole items, then part of the next), read off exactly; `lru` is smooth:
    Che's characteristic time t gives C(t) = sum P(used within t) and the hit rate H(t) in closed form,
    tabulated at CURVE_NODES times (evenly in log t - t_min) from the root for the fewest slots to that for
    the most, H read off
    by quintic Hermite interpolation in C (dH/dC = H' / C', d2H/dC2 = (H'' C' - H' C'') / C'^3)."""
    c = np.asarray(slots, dtype=float)
    total = q.sum()
    if total <= 0:
        return np.zeros(c.shape)
    if policy == 0:  # static: the top-C share of q
        cum = np.concatenate([[0.0], np.cumsum(-np.sort(-q))])
        return np.interp(c, np.arange(q.size + 1.0), cum / cum[-1])
    if policy == 2:
        score = np.concatenate([reuse + (1 - reuse) * q, (1 - reuse) * q])
        size = np.concatenate([q, 1 - q])
        value = np.concatenate([q * (reuse + (1 - reuse) * q), (1 - q) * (1 - reuse) * q])
        order = np.argsort(-score, kind="stable")
        x = np.concatenate([[0.0], np.cumsum(size[order])])
        y = np.concatenate([[0.0], np.cumsum(value[order])])
        return np.interp(c, x, y / y[-1])  # y[-1] = sum q (a + (1 - q)(1 - rho)) = sum q
    return _lru_curve(q, c, float(reuse))


def _lru_curve(q: np.ndarray, c: np.ndarray, rho: float) -> np.ndarray:
    """lru_hits for one popularity row at many slot counts (see slot_curve_hits)."""
    total, count = q.sum(), np.count_nonzero(q)
    a = rho + (1 - rho) * q
    lb = np.log1p(-np.minimum((1 - rho) * q, 1 - 1e-15))
    lq = np.log1p(-np.minimum(q, 1 - 1e-15))
    out = np.where(c >= count, 1.0, 0.0)
    short = (rho > 0) & (c < total) & (c > 0)
    out[short] = c[short] / total * (q * a).sum() / total
    solve = (c > 0) & (c < count) & ~short
    if not solve.any():
        return out
    base = 1.0 if rho > 0 else 0.0  # the smallest t
    ends = np.log(np.maximum(lru_times(q, np.array([c[solve].min(), c[solve].max()]), rho) - base, 1e-300))
    t = base + np.exp(np.linspace(ends[0], ends[1], CURVE_NODES) if ends[1] > ends[0] else ends[:1])
    t2 = t[:, None]
    lam, keep = (lb, 1 - q) if rho > 0 else (lq, np.ones_like(q))  # P(not used within t) = keep e^(lam (t - base))
    decay = keep * np.exp(lam * (t2 - base))
    stay = (1 - a) / np.where(keep > 0, keep, 1.0) if rho > 0 else np.ones_like(q)  # a needed expert missed
    c0, c1, c2 = (-(decay * lam**i).sum(axis=1) for i in range(3))  # C(t) - n and its t-derivatives
    h0, h1, h2 = (-(q * stay * decay * lam**i).sum(axis=1) / total for i in range(3))  # H(t) - 1, likewise
    with np.errstate(divide="ignore", invalid="ignore"):
        dh = np.where(c1 > 0, h1 / c1, 0.0)  # dH/dC
        d2h = np.where(c1 > 0, (h2 * c1 - h1 * c2) / c1**3, 0.0)
    out[solve] = np.clip(1 + _hermite5(q.size + c0, h0, dh, d2h, c[solve]), 0.0, 1.0)
    return out


def _hermite5(x: np.ndarray, y: np.ndarray, dy: np.ndarray, d2y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Quintic Hermite interpolation through (x, y) with first and second derivatives (x increasing)."""
    if x.size == 1:
        return np.full(at.shape, y[0])
    i = np.clip(np.searchsorted(x, at, side="right") - 1, 0, x.size - 2)
    h = x[i + 1] - x[i]
    s = np.where(h > 0, (at - x[i]) / np.where(h > 0, h, 1.0), 0.0)
    s2, s3 = s * s, s * s * s
    s4, s5 = s3 * s, s3 * s2
    return (
        (1 - 10 * s3 + 15 * s4 - 6 * s5) * y[i]
        + (10 * s3 - 15 * s4 + 6 * s5) * y[i + 1]
        + (s - 6 * s3 + 8 * s4 - 3 * s5) * h * dy[i]
        + (-4 * s3 + 7 * s4 - 3 * s5) * h * dy[i + 1]
        + (0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5) * h * h * d2y[i]
        + (0.5 * s3 - s4 + 0.5 * s5) * h * h * d2y[i + 1]
    )


def lru_times(q: np.ndarray, slots: np.ndarray, rho: float) -> np.ndarray:
    """Che's characteristic time t at which one popularity row's experts used within t fill each C
    (lru_hits' root, by the same bisection)."""
    return _lru_root(np.broadcast_to(q, (slots.size, q.size)), slots, np.full(slots.size, rho))


def _group_stats(
    experts: int,
    ep: int,
    trace: Trace | None,
    policy: np.ndarray,
    skew: np.ndarray,
    reuse: np.ndarray,
    tokens: np.ndarray,
    top_k: np.ndarray,
    slots: np.ndarray,
) -> np.ndarray:
    stats = []
    for pr in _layers(experts, ep, trace, skew, policy.size):
        q = 1 - (1 - np.minimum(1.0, top_k[:, None] * pr)) ** tokens[:, None]
        stats.append((q.sum(axis=1), (q * (1 - q)).sum(axis=1), pr.sum(axis=1), hits(policy, q, slots, reuse)))
    return _combine(stats, policy.size)
