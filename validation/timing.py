"""Timing shared by the benchmarks (measure.py, measure_decode.py, measure_offload.py, probe_p2p_path.py):
percentiles and summaries of samples, a timer (CUDA events on a GPU, the host clock on the CPU), CUDA-graph
capture, the slowest rank of a multi-GPU repetition, and a time-stamped log line. torch is imported
lazily, so the pure helpers need no torch (they are tested on the CPU in CI). Imports no other module of
validation/."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

MIB = 1 << 20


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of already sorted values."""
    if not sorted_values:
        raise ValueError("no samples")
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def reps_for(nbytes: float) -> tuple[int, int]:
    """(warm-ups, repetitions): more repetitions for short operations."""
    if nbytes <= 16 * MIB:
        return 5, 30
    if nbytes <= 256 * MIB:
        return 3, 15
    return 2, 7


def summarize(samples: Sequence[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "reps": len(s),
        "median_s": percentile(s, 50),
        "p10_s": percentile(s, 10),
        "p90_s": percentile(s, 90),
        "min_s": s[0],
        "max_s": s[-1],
    }


class Timer:
    """Times a callable with CUDA events on a GPU, perf_counter on the CPU (seconds)."""

    def __init__(self, device) -> None:
        import torch

        self.torch = torch
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def __call__(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            a = self.torch.cuda.Event(enable_timing=True)
            b = self.torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            return a.elapsed_time(b) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def samples(
        self, fn: Callable[[], object], warm: int, reps: int, before: Callable[[], object] | None = None
    ) -> list[float]:
        out = []
        for i in range(warm + reps):
            if before:
                before()
            self.sync()
            t = self(fn)
            if i >= warm:
                out.append(t)
        return out


def cuda_graph(fn: Callable[[], object]) -> Callable[[], object]:
    """Capture fn's kernels in a CUDA graph and return its replay: GPU time with no CPU launch gaps."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()  # warm-up outside the capture (cuBLAS workspaces, allocator)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def slowest(torch, dist, t: float, device, op: str = "MAX") -> float:
    """The slowest rank's time for one repetition (op="MIN": the fastest rank's)."""
    v = torch.tensor([t], dtype=torch.float64, device=device)
    dist.all_reduce(v, op=getattr(dist.ReduceOp, op))
    return float(v.item())


def slowest_samples(torch, dist, timer: Timer, fn, inner: int, warm: int, reps: int, device) -> list[float]:
    """Per repetition after `warm` warm-ups: a barrier, then fn timed on every rank (fn None: this
    rank stays idle and reports 0) and divided by `inner`; the slowest rank's value."""
    out = []
    for i in range(warm + reps):
        dist.barrier()
        timer.sync()
        t = slowest(torch, dist, timer(fn) / inner if fn else 0.0, device)
        if i >= warm:
            out.append(t)
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
