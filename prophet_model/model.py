"""The analytical decode-step model: one short function per time term, all numpy-vectorized.

Every argument may be a scalar or a numpy array; arrays broadcast, so one call evaluates any number
of configurations. Units: bytes, seconds, FLOP, FLOP/s, bytes/s. "Per step" means one decode step,
in which every sequence in flight produces one token. All times are for the slowest GPU of the
system, which sets the pace.

Assumptions (also listed on the book's model page):
- routing is uniform: each token picks top_k distinct experts uniformly at random;
- experts are split over an expert-parallel group as evenly as possible (ceil(E/ep) on the fullest GPU);
- experts that do not fit in GPU memory live in host memory; a touched expert that is not resident is
  fetched over the host link (hit probability = resident fraction);
- compute and memory time follow a roofline per component (max of FLOP time and bytes time), scaled by
  one compute efficiency; host-link time is scaled by one host-link efficiency (both calibrated);
- a routed expert is a SwiGLU FFN run as five kernels (gate and up GEMMs, SiLU, product, down GEMM);
  each kernel costs a fixed start-up time plus its own roofline, whose bytes are the weights and the
  activations it reads and writes;
- all-to-all time = latency + bytes / (line rate * payload efficiency), with bytes bounded by the
  busiest direction of the fullest GPU, and, on a two-socket PCIe host, by the traffic crossing the
  socket link. The payload efficiency is the share of a link's line rate that carries data (packet
  headers take the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Scenario:
    """Inputs of the model, each a scalar or an array (SI units: bytes, s, FLOP/s, bytes/s)."""

    # hardware
    n_gpus: ArrayLike
    ep: ArrayLike  # expert-parallel degree (GPUs per expert group); dp = n_gpus / ep
    peak_flops: ArrayLike  # FLOP/s, dense BF16
    hbm_bandwidth: ArrayLike  # bytes/s
    memory_capacity: ArrayLike  # bytes
    host_bandwidth: ArrayLike  # bytes/s per direction
    link_bandwidth: ArrayLike  # bytes/s per GPU per direction (line rate)
    link_efficiency: ArrayLike  # share of the line rate that carries data, in (0, 1]
    kernel_startup: ArrayLike  # s: fixed time of one GPU kernel (launch, first memory round trip, tail)
    link_latency: ArrayLike  # s per all-to-all
    sockets: ArrayLike  # 1 or 2 (two-socket PCIe host)
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
    vocab_size: ArrayLike
    bytes_per_param: ArrayLike
    # workload
    batch_size_per_gpu: ArrayLike
    context_length: ArrayLike
    activation_bytes: ArrayLike  # bytes per activation / KV element
    reserved_memory: ArrayLike  # bytes
    # efficiencies (calibrated) and Prophet
    compute_efficiency: ArrayLike  # fraction of the roofline reached
    host_efficiency: ArrayLike  # fraction of host-link bandwidth reached
    prophet: ArrayLike  # 0 = baseline, 1 = Prophet
    prediction_accuracy: ArrayLike  # in [0, 1]
    comm_reduction_factor: ArrayLike  # >= 1

    def arrays(self) -> Scenario:
        """The same scenario with every field as a float64 array."""
        return Scenario(**{f.name: np.asarray(getattr(self, f.name), dtype=np.float64) for f in fields(self)})


# --------------------------------------------------------------------------------------------
# Sizes


def expert_bytes(s: Scenario) -> Array:
    """Bytes of one routed expert in one layer: 3 * hidden * ffn * bytes_per_param (SwiGLU)."""
    return 3 * s.hidden_size * s.expert_ffn_size * s.bytes_per_param


def dense_params(s: Scenario) -> Array:
    """Parameters every GPU holds: attention, dense FFN layers, shared experts, routers, embedding
    and LM head: L*attn + (L-Lmoe)*3*h*f_dense + Lmoe*(n_sh*3*h*f_sh + h*E) + 2*V*h."""
    h = s.hidden_size
    return (
        s.num_layers * s.attention_params_per_layer
        + (s.num_layers - s.num_moe_layers) * 3 * h * s.dense_ffn_size
        + s.num_moe_layers * (s.num_shared_experts * 3 * h * s.shared_expert_ffn_size + h * s.num_experts)
        + 2 * s.vocab_size * h
    )


def kv_cache_bytes(s: Scenario) -> Array:
    """KV cache of the GPU's sequences: B * context * layers * kv_elements * activation_bytes."""
    return (
        s.batch_size_per_gpu * s.context_length * s.num_layers * s.kv_elements_per_token_per_layer * s.activation_bytes
    )


def experts_on_fullest_gpu(s: Scenario) -> Array:
    """Routed experts per layer on the fullest GPU of an expert group: ceil(E / ep)."""
    return np.ceil(s.num_experts / s.ep)


def resident_fraction(s: Scenario) -> Array:
    """Fraction of the fullest GPU's expert bytes that fit in its memory, in [0, 1]:
    (capacity - reserved - dense weights - KV cache) / (ceil(E/ep) * Lmoe * expert_bytes)."""
    free = s.memory_capacity - s.reserved_memory - dense_params(s) * s.bytes_per_param - kv_cache_bytes(s)
    need = experts_on_fullest_gpu(s) * s.num_moe_layers * expert_bytes(s)
    return np.clip(free / need, 0.0, 1.0)


def fits_in_memory(s: Scenario) -> NDArray[np.bool_]:
    """True where dense weights, KV cache and the reserve fit in GPU memory (experts may be offloaded)."""
    return s.memory_capacity - s.reserved_memory - dense_params(s) * s.bytes_per_param - kv_cache_bytes(s) >= 0


# --------------------------------------------------------------------------------------------
# Routing (per MoE layer, fullest GPU)


def tokens_per_group(s: Scenario) -> Array:
    """Tokens routed within one expert group per MoE layer: T = ep * B."""
    return s.ep * s.batch_size_per_gpu


def assignments_on_fullest_gpu(s: Scenario) -> Array:
    """Token-expert assignments served by the fullest GPU per layer: T * k * ceil(E/ep) / E."""
    return tokens_per_group(s) * s.top_k * experts_on_fullest_gpu(s) / s.num_experts


def distinct_experts_touched(s: Scenario) -> Array:
    """Expected distinct experts activated on the fullest GPU per layer under uniform top-k routing:
    ceil(E/ep) * (1 - (1 - k/E)^T). Not one expert per token: tokens share experts."""
    return experts_on_fullest_gpu(s) * (1 - (1 - s.top_k / s.num_experts) ** tokens_per_group(s))


# --------------------------------------------------------------------------------------------
# Time terms (seconds per decode step, fullest GPU)


def roofline(flops: Array, bytes_moved: Array, s: Scenario, efficiency: ArrayLike) -> Array:
    """max(FLOP / (peak * eff), bytes / (HBM bandwidth * eff))."""
    return np.maximum(flops / (s.peak_flops * efficiency), bytes_moved / (s.hbm_bandwidth * efficiency))


def dense_time(s: Scenario, efficiency: ArrayLike) -> Array:
    """Attention, dense layers, shared experts and LM head for the GPU's B tokens.
    FLOP = 2 * (dense_params - V*h) * B + 4 * B * context * h * L (attention scores and values);
    bytes = (dense_params - V*h) * bytes_per_param + KV cache (read once per step)."""
    active = dense_params(s) - s.vocab_size * s.hidden_size  # the embedding is a row lookup
    flops = (
        2 * active * s.batch_size_per_gpu + 4 * s.batch_size_per_gpu * s.context_length * s.hidden_size * s.num_layers
    )
    bytes_moved = active * s.bytes_per_param + kv_cache_bytes(s)
    return roofline(flops, bytes_moved, s, efficiency)


KERNELS_PER_EXPERT = 5  # SwiGLU: gate GEMM, up GEMM, SiLU, product, down GEMM


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


def expert_ffn_time(tokens: Array, s: Scenario, efficiency: ArrayLike) -> Array:
    """One expert on `tokens` tokens: sum over its five kernels of start-up + roofline."""
    kernels = swiglu_kernels(tokens, s.hidden_size, s.expert_ffn_size, s.bytes_per_param, s.activation_bytes)
    return sum(s.kernel_startup + roofline(fl, by, s, efficiency) for fl, by in kernels)


def expert_time(s: Scenario, efficiency: ArrayLike) -> Array:
    """Routed experts on the fullest GPU: Lmoe * distinct_touched * expert_ffn_time(tokens per touched
    expert), each touched expert running its assignments (assignments / distinct_touched tokens) once,
    so its weights are read once per layer."""
    distinct = distinct_experts_touched(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        tokens = np.where(distinct > 0, assignments_on_fullest_gpu(s) / distinct, 0.0)
    return s.num_moe_layers * distinct * expert_ffn_time(tokens, s, efficiency)


def startup_time(s: Scenario) -> Array:
    """The kernel start-ups inside expert_time (not scaled by any efficiency):
    Lmoe * distinct_touched * 5 * kernel_startup."""
    return s.num_moe_layers * distinct_experts_touched(s) * KERNELS_PER_EXPERT * s.kernel_startup


def compute_time(s: Scenario) -> Array:
    """Compute and memory time at the calibrated efficiency: dense_time + expert_time."""
    return dense_time(s, s.compute_efficiency) + expert_time(s, s.compute_efficiency)


def roofline_time(s: Scenario) -> Array:
    """The lower bound on a step: compute at datasheet peaks (efficiency 1), with no kernel start-up,
    no fetch and no comm."""
    return dense_time(s, 1.0) + expert_time(s, 1.0) - startup_time(s)


def fetch_bytes(s: Scenario) -> Array:
    """Host->GPU expert bytes per step: Lmoe * distinct_touched * (1 - resident) * expert_bytes."""
    return s.num_moe_layers * distinct_experts_touched(s) * (1 - resident_fraction(s)) * expert_bytes(s)


def fetch_time(s: Scenario) -> Array:
    """Host-link time to move the step's missing experts: fetch_bytes / (host_bandwidth * eff)."""
    return fetch_bytes(s) / (s.host_bandwidth * s.host_efficiency)


def fetch_exposed(s: Scenario, hide: Array) -> Array:
    """Fetch time left on the critical path.
    Baseline: fetched on demand, fully exposed: t_f.
    Prophet: the predicted experts (as many as needed; a fraction `accuracy` of them right) are
    prefetched behind `hide` seconds of computation, and the mispredicted ones are fetched on
    demand: max(0, t_f - hide) + (1 - accuracy) * t_f."""
    t_f = fetch_time(s)
    prophet_exposed = np.maximum(0.0, t_f - hide) + (1 - s.prediction_accuracy) * t_f
    return np.where(s.prophet > 0, prophet_exposed, t_f)


def alltoall_bytes(s: Scenario) -> Array:
    """Bytes of one all-to-all (dispatch or combine) in the busiest direction of the fullest GPU:
    max(send, receive) with send = B*k*h*a*(1 - ceil(E/ep)/E), receive = B*k*h*a*(ceil(E/ep)/E)*(ep-1);
    both equal B*k*h*a*(ep-1)/ep when ep divides E. Divided by the reduction factor for Prophet.
    Zero when ep = 1 (data parallel)."""
    per_token = s.batch_size_per_gpu * s.top_k * s.hidden_size * s.activation_bytes
    local_share = experts_on_fullest_gpu(s) / s.num_experts
    volume = np.maximum(per_token * (1 - local_share), per_token * local_share * (s.ep - 1))
    reduction = np.where(s.prophet > 0, s.comm_reduction_factor, 1.0)
    return np.where(s.ep > 1, volume / reduction, 0.0)


def cross_socket_bytes(s: Scenario) -> Array:
    """Bytes per direction crossing the socket link per all-to-all, on a two-socket host whose GPUs
    are split evenly and whose expert groups are packed in GPU order. The group that straddles the
    socket boundary has a = (N/2 mod ep) GPUs on one side and ep - a on the other; traffic one way is
    a * (ep - a) / ep * B*k*h*a_bytes. Zero on one socket or when no group straddles."""
    per_gpu = s.batch_size_per_gpu * s.top_k * s.hidden_size * s.activation_bytes
    side_a = np.mod(s.n_gpus / 2, s.ep)
    crossing = side_a * (s.ep - side_a) / s.ep * per_gpu
    reduction = np.where(s.prophet > 0, s.comm_reduction_factor, 1.0)
    return np.where((s.sockets > 1) & (s.ep > 1), crossing / reduction, 0.0)


def alltoall_time(s: Scenario) -> Array:
    """One all-to-all: latency + max(bytes / (link bandwidth * payload efficiency), cross-socket
    bytes / socket bandwidth). Prophet cuts the volume, never the latency floor. Zero when ep = 1."""
    link = alltoall_bytes(s) / (s.link_bandwidth * s.link_efficiency)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where(s.sockets > 1, cross_socket_bytes(s) / s.cross_socket_bandwidth, 0.0)
    return np.where(s.ep > 1, s.link_latency + np.maximum(link, cross), 0.0)


def comm_time(s: Scenario) -> Array:
    """All-to-all per step: 2 (dispatch + combine) * Lmoe * one all-to-all. Exposed: the experts
    need the dispatched tokens and the next layer needs the combined ones, so nothing hides it."""
    return 2 * s.num_moe_layers * alltoall_time(s)


# --------------------------------------------------------------------------------------------
# The step


@dataclass(frozen=True)
class StepResult:
    """Per-step terms (s), throughputs (tokens/s) and the roofline bound, as arrays."""

    compute_s: Array
    fetch_s: Array  # host-link time of the step's missing experts, before any hiding
    fetch_exposed_s: Array
    comm_exposed_s: Array
    step_s: Array
    tokens_per_s: Array  # whole system
    tokens_per_s_per_gpu: Array
    roofline_tokens_per_s: Array
    resident_fraction: Array
    alltoall_bytes: Array  # per all-to-all, busiest direction of the fullest GPU
    feasible: NDArray[np.bool_]

    @property
    def comm_overhead_pct(self) -> Array:
        """Exposed all-to-all share of the step, %."""
        return 100 * self.comm_exposed_s / self.step_s

    @property
    def fetch_overhead_pct(self) -> Array:
        """Exposed expert-fetch share of the step, %."""
        return 100 * self.fetch_exposed_s / self.step_s

    @property
    def roofline_fraction(self) -> Array:
        return self.tokens_per_s / self.roofline_tokens_per_s


def evaluate(scenario: Scenario) -> StepResult:
    """Evaluate the decode step: step = compute + fetch_exposed + comm_exposed (per fullest GPU);
    throughput = n_gpus * B / step. Infeasible configurations (dense weights + KV cache do not fit)
    get NaN throughput and feasible = False."""
    s = scenario.arrays()
    t_c = compute_time(s)
    t_f = fetch_time(s)
    t_fx = fetch_exposed(s, hide=t_c)
    t_a = comm_time(s)
    step = t_c + t_fx + t_a
    ok = fits_in_memory(s)
    nan = np.full(np.broadcast(step, ok).shape, np.nan)
    per_gpu = np.where(ok, s.batch_size_per_gpu / step, nan)
    bound = np.where(ok, s.n_gpus * s.batch_size_per_gpu / roofline_time(s), nan)
    return StepResult(
        compute_s=t_c,
        fetch_s=t_f,
        fetch_exposed_s=t_fx,
        comm_exposed_s=t_a,
        step_s=step,
        tokens_per_s=per_gpu * s.n_gpus,
        tokens_per_s_per_gpu=per_gpu,
        roofline_tokens_per_s=bound,
        resident_fraction=resident_fraction(s),
        alltoall_bytes=alltoall_bytes(s),
        feasible=ok,
    )
