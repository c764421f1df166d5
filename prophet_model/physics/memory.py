"""GPU memory: expert and dense weights, the KV cache, what is left for experts, and whether a
configuration fits (bytes).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .scenario import Array, Scenario, once


def expert_bytes(s: Scenario) -> Array:
    """Bytes of one routed expert in one layer: 3 * hidden * ffn * bytes_per_param (SwiGLU)."""
    return 3 * s.hidden_size * s.expert_ffn_size * s.bytes_per_param


def dense_params(s: Scenario) -> Array:
    """Parameters every GPU holds: attention (split over the tp GPUs of tensor-parallel attention), dense
    FFN layers, shared experts, routers, embedding and LM head:
    L*attn/tp + (L-Lmoe)*3*h*f_dense + Lmoe*(n_sh*3*h*f_sh + h*E) + 2*V*h."""
    return once("dense_params", s, _dense_params)


def _dense_params(s: Scenario) -> Array:
    h = s.hidden_size
    return (
        s.num_layers * s.attention_params_per_layer / s.attention_tp
        + (s.num_layers - s.num_moe_layers) * 3 * h * s.dense_ffn_size
        + s.num_moe_layers * (s.num_shared_experts * 3 * h * s.shared_expert_ffn_size + h * s.num_experts)
        + 2 * s.vocab_size * h
    )


def kv_replication(s: Scenario) -> Array:
    """How many times a GPU's share of the KV cache is held over: tp / min(tp, kv_heads). With
    tensor-parallel attention the tp GPUs of a replica serve tp*B sequences together, each GPU the KV
    heads it computes: 1 where the KV heads split evenly (kv_heads >= tp), tp for MLA's shared latent."""
    return s.attention_tp / np.minimum(s.attention_tp, s.num_kv_heads)


def kv_element_bytes(s: Scenario) -> Array:
    """Bytes of one KV-cache element: kv_bytes (the KV precision: 2 BF16, 1 FP8), or activation_bytes where NaN."""
    return np.where(np.isnan(s.kv_bytes), s.activation_bytes, s.kv_bytes)


def kv_cache_bytes(s: Scenario) -> Array:
    """KV cache of the GPU's sequences: B * context * layers * kv_elements * kv_element_bytes * kv_replication."""
    return s.batch_size_per_gpu * kv_bytes_per_sequence(s)


def experts_on_fullest_gpu(s: Scenario) -> Array:
    """Routed experts per layer on the fullest GPU of an expert group: ceil(E / ep)."""
    return once("experts_on_fullest_gpu", s, lambda s: np.ceil(s.num_experts / s.ep))


def memory_resident_fraction(s: Scenario) -> Array:
    """Fraction of the fullest GPU's expert bytes its expert cache holds, in [0, 1]:
    share x (capacity - reserved - dense weights - KV cache) / (ceil(E/ep) * Lmoe * expert_bytes)."""
    return once("memory_resident_fraction", s, _memory_resident_fraction)


def _memory_resident_fraction(s: Scenario) -> Array:
    free = s.cache_memory_share * (
        s.memory_capacity - s.reserved_memory - dense_params(s) * s.bytes_per_param - kv_cache_bytes(s)
    )
    need = experts_on_fullest_gpu(s) * s.num_moe_layers * expert_bytes(s)
    return np.clip(free / need, 0.0, 1.0)


def kv_bytes_per_sequence(s: Scenario) -> Array:
    """KV cache of one sequence on a GPU: context * layers * kv_elements * kv_element_bytes * kv_replication."""
    per_token = s.num_layers * s.kv_elements_per_token_per_layer * kv_element_bytes(s)
    return s.context_length * per_token * kv_replication(s)


def max_batch(s: Scenario) -> Array:
    """The most sequences per GPU whose KV cache fits beside the dense weights and the reserve (experts may
    be offloaded): floor((capacity - reserve - dense bytes) / KV bytes per sequence); 0 where none fits."""
    free = s.memory_capacity - s.reserved_memory - dense_params(s) * s.bytes_per_param
    return np.maximum(np.floor(free / kv_bytes_per_sequence(s)), 0.0)


def max_batch_all_resident(s: Scenario) -> Array:
    """The most sequences per GPU at which the fullest GPU's expert cache still holds all its experts:
    floor((capacity - reserve - dense bytes - ceil(E/ep) Lmoe S_e / cache share) / KV bytes per sequence);
    0 where none does (memory_resident_fraction is 1 up to this batch)."""
    need = experts_on_fullest_gpu(s) * s.num_moe_layers * expert_bytes(s) / s.cache_memory_share
    free = s.memory_capacity - s.reserved_memory - dense_params(s) * s.bytes_per_param - need
    return np.maximum(np.floor(free / kv_bytes_per_sequence(s)), 0.0)


def fits_in_memory(s: Scenario) -> NDArray[np.bool_]:
    """True where dense weights, KV cache and the reserve fit in GPU memory (experts may be offloaded)."""
    return s.memory_capacity - s.reserved_memory - dense_params(s) * s.bytes_per_param - kv_cache_bytes(s) >= 0


def memory_terms(s: Scenario) -> dict[str, Array]:
    """What every GPU must hold before any expert, in bytes, beside its capacity: KV cache
    (kv_cache_bytes), dense weights (dense_params x bytes_per_param) and the reserve. The configuration
    fits where kv + dense + reserve <= capacity (fits_in_memory)."""
    s = s.arrays()
    kv, dense = kv_cache_bytes(s), dense_params(s) * s.bytes_per_param
    shape = np.broadcast(kv, dense, s.reserved_memory, s.memory_capacity).shape
    return {
        k: np.broadcast_to(np.asarray(v, dtype=np.float64), shape)
        for k, v in (
            ("kv_cache", kv),
            ("dense_weights", dense),
            ("reserve", s.reserved_memory),
            ("capacity", s.memory_capacity),
        )
    }


def _gb(x: float) -> str:
    """Bytes as GB (1e9 bytes), three significant figures (more for large values)."""
    return f"{x / 1e9:,.3g} GB" if x < 1e12 else f"{x / 1e9:,.0f} GB"


def why_infeasible(kv_cache: float, dense_weights: float, reserve: float, capacity: float) -> str:
    """Why one configuration does not fit (memory_terms of it), or "" where it fits: e.g. "KV cache
    40.1 GB + dense weights 3.2 GB + reserve 2 GB exceed the 80 GB GPU by 5.3 GB (before any expert)"."""
    need = kv_cache + dense_weights + reserve
    if not need > capacity:  # also "" for NaN terms
        return ""
    return (
        f"KV cache {_gb(kv_cache)} + dense weights {_gb(dense_weights)} + reserve {_gb(reserve)} exceed the "
        f"{_gb(capacity)} GPU by {_gb(need - capacity)} (before any expert)"
    )


# --------------------------------------------------------------------------------------------
# Routing (per MoE layer, busiest rank)

# Acklam's rational approximation of the inverse standard normal CDF (relative error < 1.2e-9)
