"""Expert copies from host memory (bytes, bytes/s, seconds per step) and the part of them left on the
critical path after Prophet's layer-by-layer prefetch (physics.prefetch).
"""

from __future__ import annotations

import numpy as np

from .memory import expert_bytes, experts_on_fullest_gpu
from .prefetch import prefetch_exposed, wrong_share
from .routing import distinct_experts_touched, resident_fraction
from .scenario import Array, Scenario


def fetch_bytes(s: Scenario) -> Array:
    """Host->GPU expert bytes per step: Lmoe * distinct_touched * (1 - resident) * expert_bytes."""
    return s.num_moe_layers * distinct_experts_touched(s) * (1 - resident_fraction(s)) * expert_bytes(s)


def fetch_rate(s: Scenario) -> Array:
    """Host->GPU bytes/s one GPU gets while every GPU fetches: the least of its own link, its share of
    its PCIe switch's uplink and of its socket's memory bandwidth."""
    on_switch = np.minimum(s.gpus_per_switch, s.n_gpus)
    per_socket = np.maximum(1.0, s.n_gpus / s.cpu_sockets)
    return np.minimum(
        np.minimum(s.host_bandwidth, s.switch_uplink_bandwidth / on_switch), s.host_memory_bandwidth / per_socket
    )


def fetch_time(s: Scenario) -> Array:
    """Time to move the step's missing experts: max(bytes / fetch_rate, the share in the other socket's
    memory / this GPU's share of the socket link)."""
    b = fetch_bytes(s)
    per_socket = np.maximum(1.0, s.n_gpus / s.cpu_sockets)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(
            s.remote_memory_share > 0, s.remote_memory_share * b / (s.cross_socket_bandwidth / per_socket), 0.0
        )
    return np.maximum(b / fetch_rate(s), crossing)


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
    w = wrong_share(s.prediction_accuracy, d, n)
    f, c, missing, nonresident, a, w, window, t_f, overlap, prophet, moe_layers = np.broadcast_arrays(
        f, c, d * (1 - h), n * (1 - h), s.prediction_accuracy, w, s.prefetch_window, t_f, s.overlap_override,
        s.prophet, s.num_moe_layers)  # fmt: skip
    out = np.array(t_f, dtype=np.float64)  # baseline: on demand, t_f
    m = (prophet > 0) & ~np.isfinite(overlap)
    out[m] = moe_layers[m] * prefetch_exposed(f[m], c[m], missing[m], nonresident[m], a[m], w[m], window[m])
    given = (prophet > 0) & np.isfinite(overlap)
    out[given] = (1 - overlap[given]) * t_f[given]
    return out
