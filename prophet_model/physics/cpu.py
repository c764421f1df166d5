"""Experts computed on the CPU from host memory instead of copied to the GPU (`experts.offload_compute`), as
Fiddler (arXiv 2402.07033), kTransformers and llama.cpp's partial offload do.

Per MoE layer the busiest GPU misses M = D (1 - h) of its touched experts (D distinct touched, h the hit rate),
serving A (1 - h) of its A token-expert assignments (the misses' share of the assignments taken as their share
of the touched experts). The CPU of the GPU's socket reads each missing expert's b_e bytes from its memory once
and computes its tokens, while the tokens' activations cross the host link to it and back:

    t_layer = max(M b_e / (B_m / q), 2 A (1 - h) P_e / (F / q)) + 2 A (1 - h) hidden act / H

with B_m the socket's memory bandwidth (catalog datasheet value: an upper bound of what the CPU attains),
F its FLOP/s for the expert's GEMMs (catalog), q = max(1, n_gpus / cpu_sockets) the GPUs sharing a socket (each
gets its share of the socket), P_e = 3 hidden ffn the expert's parameters, act the activation bytes and
H = fetch_rate the host link's rate per GPU. A step takes Lmoe t_layer.

Modes (Scenario.offload_compute): 0 copy (the missing experts are copied, physics/fetch.py: today's model),
1 cpu (every missing expert is computed on the CPU: no copy from host or peer), 2 auto (per layer the faster of
the two; every MoE layer is alike in expectation, so the choice is made on the mean layer: the copy's exposed
time, after Prophet's prefetch where it runs, against t_layer). Not modelled: the CPU starting early on
Prophet's prediction (it needs the layer's hidden states, which exist only once the layer is reached: a
prediction can move weights ahead of time, not the computation), and the CPU's work overlapping the GPU's
computation of its resident experts (the CPU's time is added in full; the GPU's expert GEMMs are kept as they
are, so `cpu` is not flattered). Where the system names no host CPU (cpu_flops 0, a single GPU on its own host
link) the CPU is not available: `cpu` and `auto` copy.
"""

from __future__ import annotations

import numpy as np

from .fetch import fetch_rate
from .memory import expert_bytes
from .routing import assignments_on_fullest_gpu, distinct_experts_touched, resident_fraction
from .scenario import Array, Scenario

OFFLOAD_COMPUTE = ("copy", "cpu", "auto")  # Scenario.offload_compute codes 0, 1, 2


def cpu_available(s: Scenario) -> Array:
    """Whether the system names a host CPU that can compute experts: cpu_flops > 0 and a finite socket memory
    bandwidth (a single GPU on its own host link has neither)."""
    return (np.asarray(s.cpu_flops) > 0) & np.isfinite(s.host_memory_bandwidth)


def cpu_layer_time(s: Scenario) -> Array:
    """Seconds the CPU takes for one MoE layer's missing experts (module docstring): max(memory, FLOP) time of
    its socket share plus the activations' round trip over the host link; inf where no CPU is available."""
    h = resident_fraction(s)
    missing = distinct_experts_touched(s) * (1 - h)
    pairs = assignments_on_fullest_gpu(s) * (1 - h)
    share = np.maximum(1.0, s.n_gpus / s.cpu_sockets)
    ok = cpu_available(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        memory = missing * expert_bytes(s) * share / s.host_memory_bandwidth
        flops = 2 * pairs * 3 * s.hidden_size * s.expert_ffn_size * share / np.where(ok, s.cpu_flops, 1.0)
        link = 2 * pairs * s.hidden_size * s.activation_bytes / fetch_rate(s)
    t = np.maximum(memory, flops) + link
    return np.where(ok, np.where(missing > 0, t, 0.0), np.inf)


def offload(s: Scenario, t_f: Array, t_fx: Array) -> tuple[Array, Array, Array]:
    """(copy time, its exposed part, CPU time) of the step's missing experts under offload_compute: copy keeps
    (t_f, t_fx, 0); where the CPU computes them, (0, 0, Lmoe t_layer). auto takes the CPU where
    Lmoe t_layer < t_fx, so it is never slower than copy."""
    mode = np.asarray(s.offload_compute)
    if not np.any(mode > 0):  # copy everywhere: today's model, nothing to compute
        return t_f, t_fx, np.zeros(np.shape(t_fx))
    t_cpu = s.num_moe_layers * cpu_layer_time(s)
    on_cpu = ((mode == 1) | ((mode == 2) & (t_cpu < t_fx))) & cpu_available(s)
    if not np.any(on_cpu):
        return t_f, t_fx, np.zeros(np.shape(on_cpu))
    return np.where(on_cpu, 0.0, t_f), np.where(on_cpu, 0.0, t_fx), np.where(on_cpu, t_cpu, 0.0)
