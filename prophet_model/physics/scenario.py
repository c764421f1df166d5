"""The model's inputs: one `Scenario` of scalars or arrays (SI units) with the routing traces its rows
name, and the memo, owned by each Scenario, that lets one step evaluation compute a shared term once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
Trace = tuple[tuple[float, ...], ...]  # per MoE layer, the experts' per-pick popularity, sorted descending


@dataclass(frozen=True)
class Scenario:
    """Inputs of the model, each a scalar or an array (SI units: bytes, s, FLOP/s, bytes/s)."""

    # hardware (attainable rates)
    n_gpus: ArrayLike
    ep: ArrayLike  # expert-parallel degree (GPUs per expert group); dp = n_gpus / ep
    peak_flops: ArrayLike  # FLOP/s, attainable dense BF16
    hbm_bandwidth: ArrayLike  # bytes/s, attainable (copy) rate
    stream_dense: ArrayLike  # bytes/s of weights a few-row dense GEMM streams
    stream_grouped: ArrayLike  # bytes/s of weights a few-row grouped (MoE) GEMM streams
    memory_capacity: ArrayLike  # bytes
    host_bandwidth: ArrayLike  # bytes/s per direction, attainable on the GPU's own host link
    gpus_per_switch: ArrayLike  # GPUs sharing one PCIe switch uplink to the CPU
    switch_uplink_bandwidth: ArrayLike  # bytes/s per direction, attainable on that uplink
    host_memory_bandwidth: ArrayLike  # bytes/s of one socket's memory
    cpu_sockets: ArrayLike  # CPUs whose memory holds the offloaded experts (GPUs split evenly)
    remote_memory_share: ArrayLike  # share of offloaded expert bytes in the other socket's memory
    link_bandwidth: ArrayLike  # bytes/s per GPU per direction (line rate)
    link_efficiency: ArrayLike  # share of the line rate that carries data, in (0, 1]
    kernel_startup: ArrayLike  # s: fixed time of one GPU kernel (launch, first memory round trip, tail)
    link_latency: ArrayLike  # s per all-to-all
    sockets: ArrayLike  # 1 or 2
    cross_socket_bandwidth: ArrayLike  # bytes/s per direction
    # MoE model
    num_layers: ArrayLike
    num_moe_layers: ArrayLike
    hidden_size: ArrayLike
    expert_ffn_size: ArrayLike
    num_experts: ArrayLike
    top_k: ArrayLike
    num_shared_experts: ArrayLike
    shared_expert_ffn_size: ArrayLike
    dense_ffn_size: ArrayLike
    attention_params_per_layer: ArrayLike
    kv_elements_per_token_per_layer: ArrayLike
    num_attention_heads: ArrayLike
    head_dim: ArrayLike
    vocab_size: ArrayLike
    bytes_per_param: ArrayLike
    # implementation (kernel structure)
    fused: ArrayLike  # 1: routed experts as grouped GEMMs; 0: a kernel sequence per touched expert
    kernels_per_layer: ArrayLike  # kernels of a layer other than the routed experts
    kernels_per_moe_layer: ArrayLike  # fused: kernels of a layer's routed experts
    kernels_per_expert: ArrayLike  # per_expert: kernels of one touched expert
    kernels_per_shared_expert: ArrayLike  # kernels of one shared expert of an MoE layer
    kernels_head: ArrayLike  # final norm and LM head
    # workload
    batch_size_per_gpu: ArrayLike
    context_length: ArrayLike
    activation_bytes: ArrayLike  # bytes per activation (and per KV element where kv_bytes is NaN)
    reserved_memory: ArrayLike  # bytes
    # Prophet
    prophet: ArrayLike  # 0 = baseline, 1 = Prophet
    prediction_accuracy: ArrayLike  # in [0, 1]
    comm_reduction_factor: ArrayLike  # what-if: Prophet's all-to-all cut, >= 1 (NaN: derived, physics/comm.py)
    # what-if: a resident share of touched experts in [0, 1] instead of the one memory allows (NaN: none)
    resident_override: ArrayLike = np.nan
    # 1: the busiest rank's expected maximum sets the pace; 0: a rank of mean load (hand examples)
    load_imbalance: ArrayLike = 1.0
    # Prophet's prefetch: 1 window (misses first, prefetch what fits in a layer), 0 eager (all predicted)
    prefetch_window: ArrayLike = 0.0
    # expert cache and routing (physics/cache.py): policy 0 static, 1 lru, 2 predicted; zipf exponent (0: uniform);
    # the id of a routing trace in `traces` (0: none); temporal reuse between decode steps in [0, 1)
    cache_policy: ArrayLike = 0.0
    routing_skew: ArrayLike = 0.0
    routing_trace: ArrayLike = 0.0
    temporal_reuse: ArrayLike = 0.0
    # share of the GPU memory left after dense weights, KV cache and the reserve that holds experts
    cache_memory_share: ArrayLike = 1.0
    # what-if: the share of Prophet's expert copies hidden behind computation (NaN: the prefetch model's)
    overlap_override: ArrayLike = np.nan
    # deployment (physics/memory.py, comm.py): attention split over attention_tp GPUs of a replica (1: none);
    # the KV heads that can be split between them (inf: as many as needed; MLA's one shared latent: 1)
    attention_tp: ArrayLike = 1.0
    num_kv_heads: ArrayLike = np.inf
    # experts (physics/fetch.py): 0 replicate (a miss comes from host), 1 pool (from a GPU that holds it);
    # peer_bandwidth: bytes/s one GPU attains copying from another GPU's memory while every GPU does
    # peer_over_pcie: 1 where peer copies take the same PCIe links as host copies (their times add)
    pooled: ArrayLike = 0.0
    peer_bandwidth: ArrayLike = 0.0
    peer_over_pcie: ArrayLike = 0.0
    # missing experts (physics/cpu.py): 0 copied to the GPU, 1 computed on the CPU from host memory, 2 the faster
    # per layer; cpu_flops: FLOP/s of one socket's CPU on the experts' GEMMs (0: no host CPU described)
    offload_compute: ArrayLike = 0.0
    cpu_flops: ArrayLike = 0.0
    # all-to-all (physics/comm.py): 1 a token goes once to each GPU holding any of its experts (engines, as
    # DeepEP's dispatch); 0 once per (token, expert) pair (validation/measure_comm.py and measure_multi.py)
    dedup_dispatch: ArrayLike = 0.0
    # share of tokens whose next layer's experts all sit on the GPU of their current layer's under Prophet's
    # affinity-aware placement, in [0, 1] (NaN: the chance level of the placement, no cut)
    inter_layer_affinity: ArrayLike = np.nan
    # several nodes (physics/comm.py): GPUs per node joined by the interconnect (inf: one node), each GPU's RDMA NIC
    # (bytes/s per direction, line rate) and the share of it that carries data; latency of the all-to-all: s per
    # GPU peer reached over the node's interconnect and s per other node (0: link_latency alone)
    gpus_per_node: ArrayLike = np.inf
    nic_bandwidth: ArrayLike = 0.0
    nic_efficiency: ArrayLike = 1.0
    peer_latency: ArrayLike = 0.0
    nic_node_latency: ArrayLike = 0.0
    # precision (physics/memory.py, compute.py): bytes per KV-cache element (NaN: activation_bytes); the FLOP
    # rate of GEMMs against weights over peak_flops (FP8 tensor cores: their datasheet rate over BF16's; 1: BF16,
    # or weight-only FP8 dequantised to BF16 inside the GEMM, as FP8-Marlin on Ampere)
    kv_bytes: ArrayLike = np.nan
    weight_flops_ratio: ArrayLike = 1.0
    # two-batch overlap (physics/step.py): 0 none, 1 two half-batches, one's collectives behind the other's
    # computation, 2 (auto) the faster of the two per configuration
    two_batch_overlap: ArrayLike = 0.0
    # not numbers: the routing traces the rows' routing_trace ids name (id -> per-layer popularity,
    # physics/cache.py), and the memo of this Scenario's shared terms (empty in every new Scenario, also one
    # made by dataclasses.replace: the memo holds values of this very Scenario only)
    traces: Mapping[int, Trace] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def arrays(self) -> Scenario:
        """The same scenario with every numeric field as a float64 array."""
        return Scenario(**{k: np.asarray(getattr(self, k), dtype=np.float64) for k in NUMBERS}, traces=self.traces)


NUMBERS = tuple(f.name for f in fields(Scenario) if f.name not in ("traces", "memo"))  # the numeric fields


def scenario_from(values: Mapping[str, Any]) -> Scenario:
    """A Scenario of float64 arrays from a flat mapping of its fields (study.scenarios.scenario_dict's): the
    numeric ones, and the traces where the mapping has them."""
    return Scenario(**{k: np.asarray(values[k], dtype=np.float64) for k in NUMBERS}, traces=values.get("traces", {}))


def once(name: str, s: Scenario, compute: Callable[[Scenario], Any]) -> Any:
    """The value of `compute(s)`, computed once per Scenario and kept in its memo (one step evaluation asks
    for the routing counts several times; Scenarios are immutable)."""
    memo = s.memo
    if name not in memo:
        memo[name] = compute(s)
    return memo[name]


def select(cond: ArrayLike, if_true: Callable[[], Array], if_false: Callable[[], Array]) -> Array:
    """np.where(cond, if_true(), if_false()), where a branch that no element takes is not computed: the same
    values (a branch left out would only have been broadcast against `cond` and the other branch)."""
    cond = np.asarray(cond)
    if cond.all():
        a = if_true()
        return np.where(cond, a, a) if np.shape(a) != cond.shape and cond.ndim else a
    if not cond.any():
        b = if_false()
        return np.where(cond, b, b) if np.shape(b) != cond.shape and cond.ndim else b
    return np.where(cond, if_true(), if_false())


def remember(name: str, s: Scenario, value: object) -> None:
    """Hand `once` a value already computed for this Scenario (a term solved for many configurations at
    once, then sliced for each part evaluated)."""
    s.memo[name] = value
