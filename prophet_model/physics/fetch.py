"""Expert copies (bytes, bytes/s, seconds per step): from host memory, or, with experts pooled across the
GPUs' memory, from a GPU that holds the expert; and the part of them left on the critical path after
Prophet's layer-by-layer prefetch (physics.prefetch).

Placement. `replicate` (pooled = 0): every replica (expert group) holds what its memory allows of its
shard; a miss comes from host. `pool` (pooled = 1): the dp GPUs that serve the same shard (the same rank
of each replica) place their C = m n expert slots per layer together (m: memory_resident_fraction, n =
ceil(E/ep)): every expert of the shard on at least one of them where dp C >= n, the rest of the slots
replicating the most used ones (a core of r = (dp C - n) / (dp - 1) experts on every GPU); where dp C < n
they hold dp C distinct experts. A GPU keeps its own C slots, so its hit rate is the cache's (exact
under uniform routing, where any C of the n experts hit C / n); of its n - C missing experts the
others hold min(n - C, (dp - 1)(C - r)): the share g = 1 where dp C >= n, else (dp - 1) C / (n - C).
Each GPU copies from peers at its measured peer rate (every GPU at the same time) and from host at
fetch_rate; over NVLink the two streams run at once on different links, so the fetcher takes from host
too the share that balances them (fetch_time); over PCIe they share the GPU's links.
"""

from __future__ import annotations

import numpy as np

from .memory import expert_bytes, experts_on_fullest_gpu, memory_resident_fraction
from .prefetch import prefetch_exposed, wrong_share
from .routing import distinct_experts_touched, resident_fraction
from .scenario import Array, Scenario, once


def fetch_bytes(s: Scenario) -> Array:
    """Host->GPU expert bytes per step: Lmoe * distinct_touched * (1 - resident) * expert_bytes."""
    return s.num_moe_layers * distinct_experts_touched(s) * (1 - resident_fraction(s)) * expert_bytes(s)


def fetch_rate(s: Scenario) -> Array:
    """Host->GPU bytes/s one GPU gets while every GPU fetches: the least of its own link, its share of
    its PCIe switch's uplink and of its socket's memory bandwidth."""
    return once("fetch_rate", s, _fetch_rate)


def _fetch_rate(s: Scenario) -> Array:
    on_switch = np.minimum(s.gpus_per_switch, s.n_gpus)
    per_socket = np.maximum(1.0, s.n_gpus / s.cpu_sockets)
    return np.minimum(
        np.minimum(s.host_bandwidth, s.switch_uplink_bandwidth / on_switch), s.host_memory_bandwidth / per_socket
    )


def peer_share(s: Scenario) -> Array:
    """Share g of a GPU's missing experts that another GPU holds (pool; 0 for replicate or one replica):
    1 where dp C >= n, else (dp - 1) C / (n - C), C = m n slots, dp = n_gpus / ep (module docstring)."""
    dp = s.n_gpus / s.ep
    n = experts_on_fullest_gpu(s)
    slots = memory_resident_fraction(s) * n
    missing = n - slots
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(dp * slots >= n, 1.0, (dp - 1) * slots / missing)
    return np.where((s.pooled > 0) & (dp > 1) & (missing > 0), np.clip(g, 0.0, 1.0), 0.0)


def fetch_time(s: Scenario) -> Array:
    """Time to move the step's missing experts F. Of the share g = peer_share that peers hold, the fetcher
    takes x from peers and the rest from host, x the better of 0 (host only, as `replicate`) and
    x* = g over PCIe (peer_over_pcie: the two share the GPU's links, t = t_peer + t_host), min(g, P / (P + H))
    over NVLink (the two streams run at once, t = max(t_peer, t_host), balanced at x = P / (P + H)); P the
    peer rate, H = fetch_rate. On a two-socket host the copies that cross the socket link also take at
    least (crossing bytes) / (this GPU's share of it): the host copies' remote_memory_share, and the peer
    copies' share of peers on the other socket, (dp/2) / (dp - 1) (each socket holds half of the GPUs
    that serve a shard). Pooling is therefore never slower than replicating."""
    b = fetch_bytes(s)
    g = peer_share(s)
    h, p = fetch_rate(s), s.peer_bandwidth
    dp = s.n_gpus / s.ep
    with np.errstate(divide="ignore", invalid="ignore"):
        # seconds per byte on the socket link: host copies from the other socket's memory, peer copies
        host_cross = np.where(
            s.remote_memory_share > 0,
            s.remote_memory_share * np.maximum(1.0, s.n_gpus / s.cpu_sockets) / s.cross_socket_bandwidth,
            0.0,
        )
        if not np.any(g > 0):  # no peer holds anything: host only (replicate, one replica, or all resident)
            return np.maximum(b / h, b * host_cross)
        peer_cross = np.where(
            (s.sockets > 1) & (dp > 1),
            (dp / 2) / (dp - 1) * np.maximum(1.0, s.n_gpus / s.sockets) / s.cross_socket_bandwidth,
            0.0,
        )
        balanced = np.where(p > 0, p / (p + h), 0.0)
        x = np.where(s.peer_over_pcie > 0, g, np.minimum(g, balanced))
        t_host, t_peer = (1 - x) * b / h, np.where(x > 0, x * b / p, 0.0)
    links = np.where(s.peer_over_pcie > 0, t_host + t_peer, np.maximum(t_host, t_peer))
    shared = np.maximum(links, b * ((1 - x) * host_cross + x * peer_cross))
    host_only = np.maximum(b / h, b * host_cross)
    return np.where(x > 0, np.minimum(host_only, shared), host_only)


def fetch_exposed(s: Scenario, hide: Array, t_f: Array | None = None) -> Array:
    """Fetch time left on the critical path, layer by layer: Prophet predicts layer l+1 while layer l
    computes, so each MoE layer's copies (mean f = t_f / Lmoe) can hide behind one layer's computation
    c = hide / L. The layer's missing experts X vary from layer to layer, X ~ Binomial(N, mu / N) over
    the N = n (1 - h) non-resident experts of the busiest rank, mu = D (1 - h); prefetch.prefetch_exposed
    takes the expectation over X. Baseline: on demand, t_f. Prophet, `window`: Lmoe E[X t_e - a min(X t_e,
    c)], never slower than the baseline; `eager`: Lmoe E[(1 - a) X t_e + max((a + w) X t_e, c) - c], w the
    wrong predictions per needed expert (bounded by the experts the batch does not touch). `accuracy` a:
    the share of needed experts that were predicted, with a prediction set as large as the needed set.
    What-if overlap o: (1 - o) t_f."""
    t_f = fetch_time(s) if t_f is None else t_f
    f, c = t_f / s.num_moe_layers, hide / s.num_layers
    d, n, h = distinct_experts_touched(s), experts_on_fullest_gpu(s), resident_fraction(s)
    if not np.any(s.prophet > 0):  # the baseline: on demand, t_f (in the shape of every input below)
        shapes = (
            f,
            c,
            d,
            n,
            h,
            s.prediction_accuracy,
            s.prefetch_window,
            s.overlap_override,
            s.prophet,
            s.num_moe_layers,
        )
        return np.array(np.broadcast_to(t_f, np.broadcast_shapes(*(np.shape(x) for x in shapes))), dtype=np.float64)
    w = wrong_share(s.prediction_accuracy, d, n)
    f, c, missing, nonresident, a, w, window, t_f, overlap, prophet, moe_layers = np.broadcast_arrays(
        f,
        c,
        d * (1 - h),
        n * (1 - h),
        s.prediction_accuracy,
        w,
        s.prefetch_window,
        t_f,
        s.overlap_override,
        s.prophet,
        s.num_moe_layers,
    )
    out = np.array(t_f, dtype=np.float64)  # baseline: on demand, t_f
    m = (prophet > 0) & ~np.isfinite(overlap)
    out[m] = moe_layers[m] * prefetch_exposed(f[m], c[m], missing[m], nonresident[m], a[m], w[m], window[m])
    given = (prophet > 0) & np.isfinite(overlap)
    out[given] = (1 - overlap[given]) * t_f[given]
    return out
