"""The analytical decode-step model: one short function per time term, all numpy-vectorized.

Every argument may be a scalar or a numpy array; arrays broadcast, so one call evaluates any number
of configurations. Units: bytes, seconds, FLOP, FLOP/s, bytes/s. "Per step" means one decode step,
in which every sequence in flight produces one token. All times are for the slowest GPU of the
system (the busiest rank of an expert group), which sets the pace.

Every rate is an attainable one, measured by separate microbenchmarks (prophet_model.study.rates): the
HBM copy rate, the square-GEMM FLOP rate, the weight-streaming rate of few-row dense and grouped
GEMMs, the kernel start-up, and the pinned host->device copy rate; nothing is solved from the study's
targets. Assumptions (also on the book's model page):
- routing: uniform by default (each token picks top_k distinct experts uniformly at random), or skewed
  (Zipf, a routing trace) with temporal reuse, placed round-robin by popularity (cache.py); the busiest
  rank of an expert group touches the expected maximum over ranks of the distinct experts and
  assignments (normal approximation to the binomial counts, Blom's expected maximum of ep draws);
- an expert cache of what memory leaves holds the experts its policy (static, lru, predicted) keeps;
  the hit rate follows from the policy and the routing (cache.py);
- experts are split over an expert-parallel group as evenly as possible (ceil(E/ep) on the fullest GPU);
- experts that do not fit in GPU memory live in host memory; a touched expert that is not resident is
  copied over the host link, whose rate is the least of the GPU's own link, its share of the PCIe
  switch uplink and of its socket's memory bandwidth (every GPU fetches at once), and, for the share
  of experts in the other socket's memory, its share of the socket link;
- a GEMM takes max(FLOP / attainable FLOP/s, weight bytes / weight-streaming rate); attention takes
  max(FLOP / FLOP/s, KV-cache bytes / HBM rate); every kernel adds a fixed start-up;
- kernel structure: `fused` (a layer's routed experts in one grouped GEMM pair plus a few routing
  kernels, as vLLM, SGLang and TensorRT-LLM run them) or `per_expert` (five kernels per touched expert);
- all-to-all time = latency + bytes / (line rate x payload efficiency), with bytes those of the busiest
  rank, bounded on a two-socket PCIe host by the traffic crossing the socket link.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


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
    activation_bytes: ArrayLike  # bytes per activation / KV element
    reserved_memory: ArrayLike  # bytes
    # Prophet
    prophet: ArrayLike  # 0 = baseline, 1 = Prophet
    prediction_accuracy: ArrayLike  # in [0, 1]
    comm_reduction_factor: ArrayLike  # >= 1
    # what-if: a resident share of touched experts in [0, 1] instead of the one memory allows (NaN: none)
    resident_override: ArrayLike = np.nan
    # 1: the busiest rank's expected maximum sets the pace; 0: a rank of mean load (hand examples)
    load_imbalance: ArrayLike = 1.0
    # Prophet's prefetch: 1 window (misses first, prefetch what fits in a layer), 0 eager (all predicted)
    prefetch_window: ArrayLike = 0.0
    # expert cache and routing (cache.py): policy 0 static, 1 lru, 2 predicted; zipf exponent (0: uniform);
    # a registered routing trace id (0: none); temporal reuse between decode steps in [0, 1)
    cache_policy: ArrayLike = 0.0
    routing_skew: ArrayLike = 0.0
    routing_trace: ArrayLike = 0.0
    temporal_reuse: ArrayLike = 0.0
    # share of the GPU memory left after dense weights, KV cache and the reserve that holds experts
    cache_memory_share: ArrayLike = 1.0
    # what-if: the share of Prophet's expert copies hidden behind computation (NaN: the prefetch model's)
    overlap_override: ArrayLike = np.nan

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


def memory_resident_fraction(s: Scenario) -> Array:
    """Fraction of the fullest GPU's expert bytes its expert cache holds, in [0, 1]:
    share x (capacity - reserved - dense weights - KV cache) / (ceil(E/ep) * Lmoe * expert_bytes)."""
    free = s.cache_memory_share * (
        s.memory_capacity - s.reserved_memory - dense_params(s) * s.bytes_per_param - kv_cache_bytes(s)
    )
    need = experts_on_fullest_gpu(s) * s.num_moe_layers * expert_bytes(s)
    return np.clip(free / need, 0.0, 1.0)


def resident_fraction(s: Scenario) -> Array:
    """The hit rate: the share of touched experts already on the GPU (cache.py: the policy's under the
    routing; C / n under uniform routing), or the what-if override."""
    return np.where(np.isfinite(s.resident_override), s.resident_override, routing(s)[3])


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
    return {k: np.broadcast_to(np.asarray(v, dtype=np.float64), shape)
            for k, v in (("kv_cache", kv), ("dense_weights", dense), ("reserve", s.reserved_memory),
                         ("capacity", s.memory_capacity))}  # fmt: skip


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
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
      -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
      -1.328068155288572e01)  # fmt: skip
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
      4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def normal_quantile(p: ArrayLike) -> Array:
    """Inverse of the standard normal CDF for p in (0, 1) (Acklam's approximation)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.minimum(p, 1 - p)
    t = np.sqrt(-2 * np.log(np.where(q > 0, q, 1e-300)))
    tail = (((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]) / (
        (((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1
    )
    tail = np.where(p < 0.5, tail, -tail)
    r = (p - 0.5) ** 2
    central = (
        (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5])
        * (p - 0.5)
        / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1)
    )
    return np.where(np.abs(p - 0.5) <= 0.5 - 0.02425, central, tail)


def expected_max_z(n: ArrayLike) -> Array:
    """Expected maximum of n standard normal draws, Blom's approximation Phi^-1((n - 0.375)/(n + 0.25));
    exactly 0 for n = 1."""
    n = np.asarray(n, dtype=np.float64)
    return np.where(n > 1, normal_quantile((n - 0.375) / (n + 0.25)), 0.0)


def tokens_per_group(s: Scenario) -> Array:
    """Tokens routed within one expert group per MoE layer: T = ep * B."""
    return s.ep * s.batch_size_per_gpu


def busiest(mean: Array, var: Array, cap: Array, s: Scenario) -> Array:
    """The expected largest of ep per-rank counts with this mean and variance: min(cap, mean + sd z(ep))."""
    z = _once("z", s, lambda s: expected_max_z(s.ep))
    return np.minimum(cap, mean + s.load_imbalance * np.sqrt(np.maximum(var, 0.0)) * z)


_LAST: dict[str, tuple[object, Array]] = {}


def _once(name: str, s: Scenario, compute) -> Array:
    """The value of `compute(s)` for this very Scenario object, computed once (one step evaluation
    asks for the routing counts several times; Scenarios are immutable)."""
    hit = _LAST.get(name)
    if hit is not None and hit[0] is s:
        return hit[1]
    value = compute(s)
    _LAST[name] = (s, value)
    return value


def routing(s: Scenario) -> tuple[Array, Array, Array, Array]:
    """Per MoE layer on the busiest rank: (mean and variance of the experts touched, its share of the
    picks, the cache's hit rate). Uniform routing (closed form): each of the rank's n = ceil(E/ep) experts
    is touched with p = 1 - (1 - k/E)^T: mean n p, variance n p (1 - p), share n / E, hit C / n (any
    policy without temporal reuse). Otherwise cache.rank_stats_array (round-robin placement by popularity)."""

    def compute(s: Scenario) -> tuple[Array, Array, Array, Array]:
        n = experts_on_fullest_gpu(s)
        p = 1 - (1 - s.top_k / s.num_experts) ** tokens_per_group(s)
        share = memory_resident_fraction(s)
        out = [n * p, n * p * (1 - p), n / s.num_experts, share]
        skewed = (s.routing_skew > 0) | (s.routing_trace > 0) | ((s.temporal_reuse > 0) & (s.cache_policy > 0))
        if np.any(skewed):
            args = np.broadcast_arrays(s.cache_policy, s.routing_skew, s.routing_trace, s.temporal_reuse,
                                       s.num_experts, s.ep, tokens_per_group(s), s.top_k, share * n, skewed)  # fmt: skip
            pick = args[-1]
            from prophet_model.physics.cache import rank_stats_array

            stats = rank_stats_array(*(a[pick] for a in args[:-1]))
            out = [np.array(np.broadcast_to(o, pick.shape)) for o in out]
            for o, v in zip(out, stats, strict=True):
                o[pick] = v
        return tuple(np.asarray(o, dtype=np.float64) for o in out)  # type: ignore[return-value]

    return _once("routing", s, compute)


def distinct_experts_touched(s: Scenario) -> Array:
    """Distinct experts activated on the busiest rank per layer: the touched count's expected maximum
    over the ep ranks, min(n, mean + sd z(ep)) (routing() gives mean and variance). Not one expert per
    token: tokens share experts."""

    def compute(s: Scenario) -> Array:
        mean, var, _, _ = routing(s)
        return busiest(mean, var, experts_on_fullest_gpu(s), s)

    return _once("distinct", s, compute)


def assignments_on_fullest_gpu(s: Scenario) -> Array:
    """Token-expert assignments served by the busiest rank per layer: of the T k assignments each lands
    on the rank with q (ceil(E/ep)/E under uniform routing, its popularity share otherwise), so
    Binomial(T k, q), its maximum over ranks as above."""

    def compute(s: Scenario) -> Array:
        tk = tokens_per_group(s) * s.top_k
        q = routing(s)[2]
        return busiest(tk * q, tk * q * (1 - q), tk, s)

    return _once("assignments", s, compute)


def mean_assignments(s: Scenario) -> Array:
    """Assignments a rank serves on average: T k ceil(E/ep) / E."""
    return tokens_per_group(s) * s.top_k * experts_on_fullest_gpu(s) / s.num_experts


# --------------------------------------------------------------------------------------------
# Time terms (seconds per decode step, busiest GPU)


def roofline(flops: Array, bytes_moved: Array, s: Scenario) -> Array:
    """max(FLOP / attainable FLOP/s, bytes / attainable HBM rate)."""
    return np.maximum(flops / s.peak_flops, bytes_moved / s.hbm_bandwidth)


def gemm_time(rows: Array, params: Array, s: Scenario, stream: Array) -> Array:
    """A GEMM of `rows` tokens against a weight of `params`: max(2 rows params / FLOP/s,
    params bytes / weight-streaming rate). Zero where params is zero."""
    return np.maximum(2 * rows * params / s.peak_flops, params * s.bytes_per_param / stream)


def attention_time(s: Scenario) -> Array:
    """Decode attention of one layer: each query head against the cache, 4 B ctx nq hd FLOP, reading the
    cache once: B ctx kv_elements a bytes."""
    flops = 4 * s.batch_size_per_gpu * s.context_length * s.num_attention_heads * s.head_dim
    reads = s.batch_size_per_gpu * s.context_length * s.kv_elements_per_token_per_layer * s.activation_bytes
    return roofline(flops, reads, s)


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
    attention projections (a GEMM over attention_params) and the attention itself; per MoE layer the
    router (h x E) and the shared experts; the dense FFN layers; the LM head (V x h)."""
    b, h = s.batch_size_per_gpu, s.hidden_size
    per_layer = gemm_time(b, s.attention_params_per_layer, s, s.stream_dense) + attention_time(s)
    shared = s.num_shared_experts * 3 * h * s.shared_expert_ffn_size
    per_moe = gemm_time(b, h * s.num_experts, s, s.stream_dense) + np.where(
        shared > 0, gemm_time(b, shared, s, s.stream_dense), 0.0
    )
    dense_ffn = np.where(s.dense_ffn_size > 0, gemm_time(b, 3 * h * s.dense_ffn_size, s, s.stream_dense), 0.0)
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
    """One expert on `tokens` tokens as five kernels: the sum of their start-ups and rooflines."""
    kernels = swiglu_kernels(tokens, s.hidden_size, s.expert_ffn_size, s.bytes_per_param, s.activation_bytes)
    return sum(s.kernel_startup + roofline(fl, by, s) for fl, by in kernels)


def expert_time(s: Scenario) -> Array:
    """Routed experts on the busiest rank, without start-ups.
    fused: Lmoe * max(2 A 3hf / FLOP/s, D 3hf bytes / grouped streaming rate) with A assignments and D
    distinct touched experts (each touched expert's weights are read once);
    per_expert: Lmoe * D * roofline of the five kernels at A / D tokens each."""
    distinct = distinct_experts_touched(s)
    assign = assignments_on_fullest_gpu(s)
    params = 3 * s.hidden_size * s.expert_ffn_size
    fused = np.maximum(2 * assign * params / s.peak_flops, distinct * params * s.bytes_per_param / s.stream_grouped)
    with np.errstate(divide="ignore", invalid="ignore"):
        tokens = np.where(distinct > 0, assign / distinct, 0.0)
    loop = distinct * (expert_ffn_time(tokens, s) - KERNELS_PER_EXPERT * s.kernel_startup)
    return s.num_moe_layers * np.where(s.fused > 0, fused, loop)


def compute_time(s: Scenario) -> Array:
    """GPU time of a step: dense_time + expert_time + kernel start-ups."""
    return roofline_time(s) + startup_time(s)


def roofline_time(s: Scenario) -> Array:
    """A lower bound on a step: the kernels' own work at attainable rates, no start-up, fetch or comm."""
    return _once("work", s, lambda s: dense_time(s) + expert_time(s))


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
    the N = n (1 - h) non-resident experts of the busiest rank, mu = D (1 - h); offload.prefetch_exposed
    takes the expectation over X. Baseline: on demand, t_f. Prophet, `window`: Lmoe E[X t_e - a min(X t_e,
    c)], never slower than the baseline; `eager`: Lmoe E[(1 - a) X t_e + max((a + w) X t_e, c) - c], w the
    wrong predictions per needed expert (bounded by the experts the batch does not touch). `accuracy` a:
    the share of needed experts that were predicted, with a prediction set as large as the needed set.
    What-if overlap o: (1 - o) t_f."""
    from prophet_model.physics.prefetch import prefetch_exposed, wrong_share

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


def alltoall_bytes(s: Scenario) -> Array:
    """Bytes of one all-to-all (dispatch or combine) in the busiest direction of the busiest rank:
    max(send, receive) with send = B*k*h*a*(1 - ceil(E/ep)/E) and receive = (A_max - B*k*ceil(E/ep)/E) h a,
    A_max the busiest rank's assignments (equal to B*k*h*a*(ep-1)/ep for a balanced rank when ep divides E).
    Divided by the reduction factor for Prophet. Zero when ep = 1 (data parallel)."""
    per_token = s.batch_size_per_gpu * s.top_k * s.hidden_size * s.activation_bytes
    local_share = experts_on_fullest_gpu(s) / s.num_experts
    kept = per_token * local_share
    received = assignments_on_fullest_gpu(s) * s.hidden_size * s.activation_bytes - kept
    volume = np.maximum(per_token * (1 - local_share), received)
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
    alltoall_bytes: Array  # per all-to-all, busiest direction of the busiest rank
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
    """Evaluate the decode step: step = compute + fetch_exposed + comm_exposed (busiest GPU);
    throughput = n_gpus * B / step. Infeasible configurations (dense weights + KV cache do not fit)
    get NaN throughput and feasible = False."""
    s = scenario.arrays()
    t_c = compute_time(s)
    t_f = fetch_time(s)
    t_fx = fetch_exposed(s, hide=t_c, t_f=t_f)
    t_a = comm_time(s)
    step = t_c + t_fx + t_a
    ok = fits_in_memory(s)
    nan = np.full(np.broadcast(step, ok).shape, np.nan)
    per_gpu = np.where(ok, s.batch_size_per_gpu / step, nan)
    bound = np.where(ok, s.n_gpus * s.batch_size_per_gpu / roofline_time(s), nan)
    result = StepResult(
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
    _LAST.clear()  # hold no arrays of this scenario past its evaluation
    return result
