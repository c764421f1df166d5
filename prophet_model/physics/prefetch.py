"""Expert offloading, layer by layer: which experts a step must copy from host memory, and how much of
that copying a one-layer-ahead prefetcher hides.

Per MoE layer, D experts are touched (uniform top-k routing: D = E (1 - (1 - k/E)^T)); a share h of
them is on the GPU (a hit; cache.py gives h for each cache policy and routing). The X needed experts a
layer must copy vary from layer to layer: X ~ Binomial(N, mu/N) over the N non-resident experts (mean
mu = D (1 - h)); an expert takes t_e = expert bytes / host copy rate.

Policies (one FIFO copy stream, as validation/measure_offload.py runs them), per layer given its X missing
experts, with c the layer's computation:
- baseline (on demand): the missing experts are copied once the layer is reached, then it computes:
  tau = X t_e + c;
- eager prefetch at accuracy a: while layer l computes, the experts predicted for layer l+1 (a set as
  large as the needed one, each needed expert in it with probability a, w wrong ones per needed expert)
  are copied, the misses behind them: tau = (1 - a) X t_e + max((a + w) X t_e, c);
- window prefetch: the misses first, then only what fits in the window: tau = c + X t_e - a min(X t_e, c),
  never slower than the baseline (equal to it at a = 0).
prefetch_exposed gives the expectation over X of tau - c, the copy time left exposed.
`accuracy` is the share of needed experts that were predicted, with a prediction set as large as the
needed set.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def distinct(tokens: ArrayLike, experts: ArrayLike, top_k: ArrayLike) -> Array:
    """Expected distinct experts touched per layer: E (1 - (1 - k/E)^T)."""
    e = np.asarray(experts, dtype=float)
    return e * (1 - (1 - np.asarray(top_k, dtype=float) / e) ** np.asarray(tokens, dtype=float))


def wrong_share(accuracy: ArrayLike, distinct: ArrayLike, experts: ArrayLike) -> Array:
    """Wrong predictions per needed expert: 1 - a, bounded by the experts the batch does not touch:
    min(1 - a, (E - D) / D)."""
    d = np.asarray(distinct, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(d > 0, (np.asarray(experts, dtype=float) - d) / d, 0.0)
    return np.minimum(1 - np.asarray(accuracy, dtype=float), room)


def expected_min(mean: ArrayLike, count: ArrayLike, r: ArrayLike) -> Array:
    """E[min(X, r)] for X ~ Binomial(N, mean / N), N = max(round(count), ceil(mean)), r >= 0:
    sum_{j=1}^{ceil r} P(X >= j) min(1, r - j + 1), exact (the pmf recursion, over the terms where
    P(X >= j) > 0 in double precision: j <= mu + 12 sigma + 2) where sigma < NORMAL_SD, by the normal
    approximation where wider. Where mean / N > 1/2 it works on Y = N - X instead:
    E[min(X, r)] = r - E[Y] + E[min(Y, N - r)] for r <= N; E[X] for r >= N."""
    mu, cnt, r = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (mean, count, r)))
    n = np.maximum(np.round(cnt), np.ceil(mu - 1e-9))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, np.clip(mu / n, 0.0, 1.0), 0.0)
    r = np.maximum(r, 0.0)
    flip = p > 0.5
    pz = np.where(flip, 1 - p, p)
    uz = np.where(flip, n - np.minimum(r, n), r)  # the threshold for the variable summed over
    sd = np.sqrt(n * pz * (1 - pz))
    wide = sd >= NORMAL_SD
    sz = np.empty(n.shape)
    sz[~wide] = _expected_min_small(n[~wide], pz[~wide], uz[~wide])
    sz[wide] = _expected_min_normal(n[wide] * pz[wide], sd[wide], uz[wide])
    out = np.where(flip, np.minimum(r, n) - n * pz + sz, sz)
    return np.where(r >= n, mu, out)


NORMAL_SD = 4.0  # a binomial this wide is summed by its normal approximation (error < 0.5% of the mean)


def _expected_min_normal(mu: Array, sd: Array, u: Array) -> Array:
    """E[min(Y, u)] for Y ~ Normal(mu, sd^2): mu - [(mu - u) Phi(d) + sd phi(d)], d = (mu - u) / sd."""
    d = (mu - u) / sd
    phi = np.exp(-0.5 * d * d) / np.sqrt(2 * np.pi)
    return mu - ((mu - u) * 0.5 * (1 + _erf(d / np.sqrt(2))) + sd * phi)


def _erf(x: Array) -> Array:
    """erf by Abramowitz and Stegun 7.1.26 (|error| <= 1.5e-7)."""
    t = 1 / (1 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1 - poly * np.exp(-x * x))


def _expected_min_small(n: Array, p: Array, u: Array) -> Array:
    """sum_{j=1}^{ceil u} P(Z >= j) min(1, u - j + 1) for Z ~ Binomial(n, p), p <= 1/2. The elements are
    sorted by their number of terms, so that term j works only on those that still need it."""
    sd = np.sqrt(n * p * (1 - p))
    last = np.minimum(np.minimum(np.ceil(u), n), np.ceil(n * p + 12 * sd + 2)).ravel()
    out = np.zeros(n.size)
    order = np.argsort(_descending_key(last), kind="stable")  # most terms first
    order = order[last[order] >= 1]
    if order.size == 0:
        return out.reshape(n.shape)
    nl, pl, ul, jl = (x.ravel()[order] for x in (n, p, u, last))
    ratio = np.where(pl < 1, pl / np.where(pl < 1, 1 - pl, 1.0), 0.0)
    pmf = (1 - pl) ** nl  # P(Z = 0)
    cdf = pmf.copy()
    acc = np.zeros(order.size)
    tail, step = np.empty(order.size), np.empty(order.size)  # scratch, reused by every term
    live = np.searchsorted(-jl, -np.arange(1, int(jl[0]) + 1), side="right")  # how many need term j
    for j, k in enumerate(live, start=1):
        # j <= last <= min(n, ceil u) for the k elements that still need term j, so n - (j - 1) >= 1 and
        # u - (j - 1) > 0: the weight is min(1, u - j + 1), the pmf factor (n - j + 1) / j p / (1 - p)
        t, w = tail[:k], step[:k]
        np.subtract(1.0, cdf[:k], out=t)
        np.maximum(t, 0.0, out=t)
        np.subtract(ul[:k], j - 1, out=w)
        np.minimum(w, 1.0, out=w)
        t *= w
        acc[:k] += t
        np.subtract(nl[:k], j - 1, out=w)
        w /= j
        w *= ratio[:k]
        pmf[:k] *= w  # P(Z = j)
        cdf[:k] += pmf[:k]
    out[order] = acc
    return out.reshape(n.shape)


def _descending_key(last: Array) -> NDArray[np.integer]:
    """A sort key that orders whole numbers >= 0 from the largest, as small an integer type as holds them
    (a stable sort of 8- or 16-bit integers is numpy's radix sort, several times faster)."""
    top = float(last.max(initial=0.0))
    kind = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.int64
    return (top - last).astype(kind)


def prefetch_exposed(
    f: Array, c: Array, mean: Array, count: Array, accuracy: Array, wrong: Array, window: Array
) -> Array:
    """Expected copy time a layer leaves exposed with Prophet, its X needed non-resident experts
    distributed as expected_min assumes (mean `mean`, out of `count`), f = E[X] t_e the mean copy time,
    c the layer's computation, t_e = f / mean:
    window: E[X t_e - a min(X t_e, c)] = f - a t_e E[min(X, c / t_e)];
    eager: E[(1 - a) X t_e + max(b X t_e, c)] - c = (1 - a) f + b f - b t_e E[min(X, c / (b t_e))],
    b = a + wrong (b = 0: f)."""
    f, c, mean, count, a, wrong, window = np.broadcast_arrays(f, c, mean, count, accuracy, wrong, window)
    out = np.zeros(f.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_e = np.where(mean > 0, f / mean, 0.0)
        r = np.where(t_e > 0, c / t_e, np.inf)
        w = (window > 0) & (mean > 0)
        if w.all():  # every element in the window mode: the same values, without masking
            return f - a * t_e * expected_min(mean, count, r)
        out[w] = f[w] - a[w] * t_e[w] * expected_min(mean[w], count[w], r[w])
        b = a + wrong
        e = (window <= 0) & (mean > 0) & (b > 0)
        with np.errstate(over="ignore"):  # inf where the window dwarfs a copy: min(X, inf) = X
            rb = r[e] / b[e]
        out[e] = (1 - a[e]) * f[e] + b[e] * f[e] - b[e] * t_e[e] * expected_min(mean[e], count[e], rb)
        z = (window <= 0) & (mean > 0) & (b <= 0)
        out[z] = f[z]
    return out
