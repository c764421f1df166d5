"""GPU time of a decode step (seconds, busiest GPU): GEMMs and attention at attainable rates, the
kernel structure and the kernels' start-up.
"""

from __future__ import annotations

import numpy as np

from .memory import kv_element_bytes, kv_replication
from .routing import assignments_on_fullest_gpu, distinct_experts_touched
from .scenario import Array, Scenario, once, select


def roofline(flops: Array, bytes_moved: Array, s: Scenario) -> Array:
    """max(FLOP / attainable FLOP/s, bytes / attainable HBM rate)."""
    return np.maximum(flops / s.peak_flops, bytes_moved / s.hbm_bandwidth)


def weight_flops(s: Scenario) -> Array:
    """FLOP/s of a GEMM against weights at the weight precision: peak_flops * weight_flops_ratio (FP8 tensor
    cores: the datasheet FP8 rate over BF16's, about 2 on Hopper and Ada; 1 for BF16 and for weight-only FP8
    dequantised to BF16 in the GEMM). Attention against the KV cache stays at peak_flops."""
    return s.peak_flops * s.weight_flops_ratio


def gemm_time(rows: Array, params: Array, s: Scenario, stream: Array) -> Array:
    """A GEMM of `rows` tokens against a weight of `params`: max(2 rows params / weight_flops,
    params bytes_per_param / weight-streaming rate). Zero where params is zero."""
    return np.maximum(2 * rows * params / weight_flops(s), params * s.bytes_per_param / stream)


def attention_time(s: Scenario) -> Array:
    """Decode attention of one layer: each query head against the cache, 4 B ctx nq hd FLOP, reading the
    cache once: B ctx kv_elements kv_element_bytes kv_replication bytes (tensor-parallel: tp B sequences,
    nq / tp heads)."""
    flops = 4 * s.batch_size_per_gpu * s.context_length * s.num_attention_heads * s.head_dim
    reads = s.batch_size_per_gpu * s.context_length * s.kv_elements_per_token_per_layer * kv_element_bytes(s)
    return roofline(flops, reads * kv_replication(s), s)


def kernel_count(s: Scenario) -> Array:
    """Kernels per step: L * per-layer kernels + the head's, plus per MoE layer the routed experts' kernels
    (kernels_per_moe_layer fused, or distinct_touched * kernels_per_expert per_expert) and
    n_shared * kernels_per_shared_expert."""
    experts = np.where(s.fused > 0, s.kernels_per_moe_layer, distinct_experts_touched(s) * s.kernels_per_expert)
    shared = s.num_shared_experts * s.kernels_per_shared_expert
    return s.num_layers * s.kernels_per_layer + s.kernels_head + s.num_moe_layers * (experts + shared)


def startup_time(s: Scenario) -> Array:
    """The kernel start-ups of a step: kernel_count * kernel_startup."""
    return kernel_count(s) * s.kernel_startup


def dense_time(s: Scenario) -> Array:
    """Everything but the routed experts, without start-ups, for the GPU's B tokens: per layer the
    attention projections (a GEMM over attention_params; tensor-parallel: tp B rows over attn / tp) and
    the attention itself; per MoE layer the router (h x E) and the shared experts; the dense FFN layers;
    the LM head (V x h)."""
    b, h, tp = s.batch_size_per_gpu, s.hidden_size, s.attention_tp
    per_layer = gemm_time(tp * b, s.attention_params_per_layer / tp, s, s.stream_dense) + attention_time(s)
    shared = s.num_shared_experts * 3 * h * s.shared_expert_ffn_size
    per_moe = gemm_time(b, h * s.num_experts, s, s.stream_dense) + select(
        shared > 0, lambda: gemm_time(b, shared, s, s.stream_dense), lambda: 0.0
    )
    dense_ffn = select(
        s.dense_ffn_size > 0, lambda: gemm_time(b, 3 * h * s.dense_ffn_size, s, s.stream_dense), lambda: 0.0
    )
    return (
        s.num_layers * per_layer
        + s.num_moe_layers * per_moe
        + (s.num_layers - s.num_moe_layers) * dense_ffn
        + gemm_time(b, s.vocab_size * h, s, s.stream_dense)
    )


KERNELS_PER_EXPERT = 5  # SwiGLU as a naive loop runs it: gate GEMM, up GEMM, SiLU, product, down GEMM


def swiglu_kernels(tokens: Array, h: Array, f: Array, w_bytes: Array, a_bytes: Array) -> list[tuple[Array, Array]]:
    """(FLOP, bytes) of each of the five kernels of one SwiGLU expert on `tokens` tokens:
    gate and up GEMMs: 2*T*h*f FLOP, reading x (T*h) and a weight (h*f), writing T*f;
    SiLU: reads and writes T*f; product: reads 2*T*f, writes T*f; down GEMM: 2*T*f*h FLOP,
    reading T*f and a weight (f*h), writing T*h. Weights take w_bytes, activations a_bytes each."""
    gemm_up = (2 * tokens * h * f, h * f * w_bytes + (tokens * h + tokens * f) * a_bytes)
    silu = (0 * tokens, 2 * tokens * f * a_bytes)
    product = (0 * tokens, 3 * tokens * f * a_bytes)
    gemm_down = (2 * tokens * f * h, f * h * w_bytes + (tokens * f + tokens * h) * a_bytes)
    return [gemm_up, gemm_up, silu, product, gemm_down]


def expert_ffn_time(tokens: Array, s: Scenario) -> Array:
    """One expert on `tokens` tokens as five kernels: the sum of their start-ups and rooflines (FLOP at
    weight_flops)."""
    kernels = swiglu_kernels(tokens, s.hidden_size, s.expert_ffn_size, s.bytes_per_param, s.activation_bytes)
    rate = weight_flops(s)
    return sum(s.kernel_startup + np.maximum(fl / rate, by / s.hbm_bandwidth) for fl, by in kernels)


def expert_time(s: Scenario) -> Array:
    """Routed experts on the busiest rank, without start-ups.
    fused: Lmoe * max(2 A 3hf / weight_flops, D 3hf bytes / grouped streaming rate) with A assignments and D
    distinct touched experts (each touched expert's weights are read once);
    per_expert: Lmoe * D * roofline of the five kernels at A / D tokens each."""
    distinct = distinct_experts_touched(s)
    assign = assignments_on_fullest_gpu(s)
    params = 3 * s.hidden_size * s.expert_ffn_size
    rate = weight_flops(s)

    def fused() -> Array:
        return np.maximum(2 * assign * params / rate, distinct * params * s.bytes_per_param / s.stream_grouped)

    def loop() -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            tokens = np.where(distinct > 0, assign / distinct, 0.0)
        return distinct * (expert_ffn_time(tokens, s) - KERNELS_PER_EXPERT * s.kernel_startup)

    return s.num_moe_layers * select(s.fused > 0, fused, loop)


def compute_time(s: Scenario) -> Array:
    """GPU time of a step: dense_time + expert_time + kernel start-ups."""
    return roofline_time(s) + startup_time(s)


def roofline_time(s: Scenario) -> Array:
    """A lower bound on a step: the kernels' own work at attainable rates, no start-up, fetch or comm."""
    return once("work", s, lambda s: dense_time(s) + expert_time(s))
