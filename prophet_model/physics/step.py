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
  (Zipf, a routing trace) with temporal reuse, placed round-robin by popularity (physics/cache.py); the busiest
  rank of an expert group touches the expected maximum over ranks of the distinct experts and
  assignments (normal approximation to the binomial counts, Blom's expected maximum of ep draws);
- an expert cache of what memory leaves holds the experts its policy (static, lru, predicted) keeps;
  the hit rate follows from the policy and the routing (physics/cache.py);
- experts are split over an expert-parallel group as evenly as possible (ceil(E/ep) on the fullest GPU);
- expert placement (physics/fetch.py): `replicate`, every replica holds what fits and a miss comes from
  host; `pool`, the replicas' GPUs place their experts together and a miss comes from a GPU that holds it
  (peer copies at the measured peer-copy rate), or from host;
- tensor-parallel attention over tp GPUs of a replica: attention weights / tp per GPU, KV heads split
  (MLA's latent held whole), and an all-reduce of the attention output per layer (physics/comm.py);
- experts that do not fit in GPU memory live in host memory; a touched expert that is not resident is
  copied over the host link, whose rate is the least of the GPU's own link, its share of the PCIe
  switch uplink and of its socket's memory bandwidth (every GPU fetches at once), and, for the share
  of experts in the other socket's memory, its share of the socket link;
- with experts.offload_compute `cpu` (or `auto`, where faster), a missing expert is computed by the host CPU
  from its memory instead of copied (physics/cpu.py);
- a GEMM takes max(FLOP / attainable FLOP/s, weight bytes / weight-streaming rate); attention takes
  max(FLOP / FLOP/s, KV-cache bytes / HBM rate); every kernel adds a fixed start-up;
- kernel structure: `fused` (a layer's routed experts in one grouped GEMM pair plus a few routing
  kernels, as vLLM, SGLang and TensorRT-LLM run them) or `per_expert` (five kernels per touched expert);
- all-to-all time = latency + bytes / (line rate x payload efficiency), with bytes those of the busiest
  rank, bounded on a two-socket PCIe host by the traffic crossing the socket link;
- precision: weights at bytes_per_param (BF16 2, FP8 1), their GEMMs at weight_flops (FP8 tensor cores on
  Hopper and Ada; weight-only FP8 computes in BF16); the KV cache at kv_bytes per element;
- two-batch overlap (two_batch_overlap = 1, B >= 2): the batch runs as two half-batches whose collectives
  overlap the other's computation (see overlapped()); 2 (auto): per configuration the faster of one batch and
  two half-batches (StepResult.two_batch says which ran).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields, replace
from math import prod

import numpy as np
from numpy.typing import NDArray

from .comm import allreduce_step_time, alltoall_bytes, alltoall_step_time
from .compute import compute_time, roofline_time
from .cpu import offload
from .fetch import fetch_exposed, fetch_time
from .memory import fits_in_memory
from .routing import resident_fraction, routing, skewed_routing
from .scenario import NUMBERS, Array, Scenario, remember


@dataclass(frozen=True)
class StepResult:
    """Per-step terms (s), throughputs (tokens/s) and the roofline bound, as arrays."""

    compute_s: Array
    fetch_s: Array  # host-link time of the step's missing experts, before any hiding
    fetch_exposed_s: Array
    cpu_experts_s: Array  # CPU time of the missing experts the CPU computes (physics/cpu.py; 0 where copied)
    comm_exposed_s: Array  # every collective: the all-to-alls and the all-reduces of TP attention
    alltoall_s: Array  # the step's all-to-alls (dispatch + combine), exposed
    allreduce_s: Array  # the step's all-reduces of tensor-parallel attention, exposed (zero when tp = 1)
    step_s: Array
    tokens_per_s: Array  # whole system
    tokens_per_s_per_gpu: Array
    roofline_tokens_per_s: Array
    resident_fraction: Array
    alltoall_bytes: Array  # per all-to-all, busiest direction of the busiest rank (two half-batches: both)
    feasible: NDArray[np.bool_]
    two_batch: NDArray[np.bool_]  # the step ran as two overlapped half-batches (two_batch_overlap 1, or 2 where faster)

    @property
    def comm_overhead_pct(self) -> Array:
        """Exposed all-to-all share of the step, % (the all-to-all only: the TP all-reduce has its own)."""
        return 100 * self.alltoall_s / self.step_s

    @property
    def allreduce_overhead_pct(self) -> Array:
        """Exposed share of the step spent in the all-reduces of tensor-parallel attention, %."""
        return 100 * self.allreduce_s / self.step_s

    @property
    def fetch_overhead_pct(self) -> Array:
        """Exposed expert-fetch share of the step, %."""
        return 100 * self.fetch_exposed_s / self.step_s

    @property
    def roofline_fraction(self) -> Array:
        return self.tokens_per_s / self.roofline_tokens_per_s


CHUNK = 1 << 15  # configurations evaluated together: the temporaries of a term stay in the CPU's caches


def evaluate(scenario: Scenario, keep: Collection[str] | None = None) -> StepResult:
    """Evaluate the decode step: step = compute + fetch_exposed + cpu_experts + comm_exposed (busiest GPU);
    throughput = n_gpus * B / step. Infeasible configurations (dense weights + KV cache do not fit)
    get NaN throughput and feasible = False. Many configurations are evaluated CHUNK at a time (the
    same numbers, element by element; only faster); `keep`: the StepResult fields a caller reads of so many
    (the others come back None instead of being assembled from the chunks). The shared terms of one
    evaluation live in the memo of a Scenario made here (Scenario.arrays), so none outlives the call."""
    s = scenario.arrays()
    shape = np.broadcast_shapes(*(np.shape(getattr(s, k)) for k in NUMBERS))
    size = prod(shape)
    if size <= CHUNK:
        return _evaluate(s)
    flat = {k: getattr(s, k) for k in NUMBERS}
    flat = {k: v.reshape(()) if v.size == 1 else np.broadcast_to(v, shape).reshape(-1) for k, v in flat.items()}
    whole = Scenario(**flat, traces=s.traces)
    # skewed routing: the cache's hit rates are solved once over all configurations (repeated and
    # slot-only rows share their solves across the parts), then each part reads its slice
    stats = routing(whole) if np.any(skewed_routing(whole)) else None
    del whole  # its memo's other terms, each the size of every configuration
    parts = []
    for start in range(0, size, CHUNK):
        values = {k: v if v.ndim == 0 else v[start : start + CHUNK] for k, v in flat.items()}
        part = Scenario(**values, traces=s.traces)
        if stats is not None:
            remember("routing", part, tuple(x if x.ndim == 0 else x[start : start + CHUNK] for x in stats))
        parts.append(_evaluate(part))
    out = {}
    for f in fields(StepResult):
        if keep is not None and f.name not in keep:
            out[f.name] = None
            continue
        pieces = [np.broadcast_to(getattr(r, f.name), (min(CHUNK, size - i * CHUNK),)) for i, r in enumerate(parts)]
        out[f.name] = np.concatenate(pieces).reshape(shape)
    return StepResult(**out)


def _full(term: Array, like: Array) -> Array:
    """`term` with the shape of `like` (a term that is zero everywhere may come back as one scalar)."""
    return term if np.shape(term) == np.shape(like) else np.broadcast_to(term, np.shape(like)).copy()


def overlapped(compute_half: Array, comm_half: Array, layers: Array) -> Array:
    """Two-batch overlap's step without expert copies (s): two half-batches, each running per layer its
    computation c then its collectives a, the GPU's compute and the links each serving one half at a time.
    With C = L c and A = L a a half-batch's step totals (its GEMMs at B/2 rows, its kernel start-ups and
    all-to-all latencies each paid again), the critical path of the two halves over L layers is
    2 L max(c, a) + min(c, a) = 2 max(C, A) + min(C, A) / L: the busier resource never idles after the
    first half's first operation, and the last operation of the other resource follows it."""
    return 2 * np.maximum(compute_half, comm_half) + np.minimum(compute_half, comm_half) / np.maximum(layers, 1)


OVERLAP = ("none", "two_batch", "auto")  # Scenario.two_batch_overlap codes 0, 1, 2


def _evaluate(s: Scenario) -> StepResult:
    """evaluate() for one scenario of float64 arrays: _step with two-batch overlap where it is asked for
    (two_batch_overlap 1) and, where it is searched (2), the faster of _step without and with it (a tie: without;
    the two calls share the Scenario's memo: every term that does not depend on the overlap is computed once)."""
    mode, can = np.asarray(s.two_batch_overlap), s.batch_size_per_gpu >= 2
    fixed, auto = (mode == 1) & can, (mode == 2) & can
    if not np.any(auto):
        return _step(s, fixed)
    one = _step(s, fixed)
    if np.all(auto):
        two = _step(s, fixed | auto)
        take = two.step_s < one.step_s  # NaN (does not fit) compares False: without
        return StepResult(**{f.name: np.where(take, getattr(two, f.name), getattr(one, f.name)) for f in fields(one)})
    shape = np.broadcast_shapes(*(np.shape(getattr(s, k)) for k in NUMBERS))  # only the auto rows again
    rows = np.flatnonzero(np.broadcast_to(auto, shape))
    flat = {k: getattr(s, k) for k in NUMBERS}
    sub = {k: v if np.ndim(v) == 0 else np.broadcast_to(v, shape).reshape(-1)[rows] for k, v in flat.items()}
    two = _step(Scenario(**sub, traces=s.traces), np.ones(rows.size, dtype=bool))
    out = {f.name: np.broadcast_to(getattr(one, f.name), shape).reshape(-1).copy() for f in fields(one)}
    take = two.step_s < out["step_s"][rows]  # NaN (does not fit) compares False: without
    for name, v in out.items():
        v[rows[take]] = np.broadcast_to(getattr(two, name), rows.shape)[take]
    return StepResult(**{k: v.reshape(shape) for k, v in out.items()})


def _step(s: Scenario, two: NDArray[np.bool_]) -> StepResult:
    """The step of every configuration, as two overlapped half-batches where `two`. There its computation is
    the two halves' (2 C), its exposed collectives overlapped(C, A) - 2 C, split between all-to-all and
    all-reduce as their half-batch times; the expert copies (the whole batch's) hide behind the 2 C. The
    computation and collectives are evaluated once per row, at B / 2 where it overlaps and at B elsewhere, and
    its all-to-all bytes are the two halves'."""
    split = bool(np.any(two))
    run = replace(s, batch_size_per_gpu=np.where(two, s.batch_size_per_gpu / 2, s.batch_size_per_gpu)) if split else s
    t_c = compute_time(run)
    t_a2a, t_ar = alltoall_step_time(run), allreduce_step_time(run)
    t_a = t_a2a + t_ar
    if split:
        exposed = overlapped(t_c, t_a, s.num_moe_layers) - 2 * t_c
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(t_a > 0, t_a2a / t_a, 0.0)
        t_a2a, t_ar = np.where(two, exposed * share, t_a2a), np.where(two, exposed * (1 - share), t_ar)
        t_c, t_a = np.where(two, 2 * t_c, t_c), t_a2a + t_ar
    t_f = fetch_time(s)
    t_fx = fetch_exposed(s, hide=t_c, t_f=t_f)
    t_f, t_fx, t_cpu = offload(s, t_f, t_fx)  # missing experts computed on the CPU instead (offload_compute)
    step = t_c + t_fx + t_cpu + t_a
    ok = fits_in_memory(s)
    nan = np.full(np.broadcast(step, ok).shape, np.nan)
    per_gpu = np.where(ok, s.batch_size_per_gpu / step, nan)
    bound = np.where(ok, s.n_gpus * s.batch_size_per_gpu / roofline_time(s), nan)
    return StepResult(
        compute_s=t_c,
        fetch_s=t_f,
        fetch_exposed_s=t_fx,
        cpu_experts_s=_full(t_cpu, step),
        comm_exposed_s=t_a,
        alltoall_s=_full(t_a2a, step),
        allreduce_s=_full(t_ar, step),
        step_s=step,
        tokens_per_s=per_gpu * s.n_gpus,
        tokens_per_s_per_gpu=per_gpu,
        roofline_tokens_per_s=bound,
        resident_fraction=resident_fraction(s),
        alltoall_bytes=np.where(two, 2.0, 1.0) * alltoall_bytes(run),
        feasible=ok,
        two_batch=np.broadcast_to(two, np.shape(step)).copy(),
    )
