"""The multi-GPU parts of `measure.py` (one process per GPU): the NCCL all-to-all (eager and in CUDA
graphs), where its time goes (`alltoall_split`), the link ceiling (kernels writing into the peer's
memory, `ceilings`) and one expert-parallel MoE layer (`moe`); and the SwiGLU expert they share with
the single-GPU parts. Imports no torch at module level."""

from __future__ import annotations

import time
from collections.abc import Sequence

from validation.catalog_models import load_models
from validation.multi_plan import routing_counts
from validation.timing import MIB, Timer, cuda_graph, log, percentile, reps_for, slowest, slowest_samples, summarize

A2A_BYTES = [4096 * 4**i for i in range(9)]  # 4 KiB .. 256 MiB
MOE_TOKENS = [1, 4, 16, 64, 256, 1024, 4096]
LOCAL_FRACTIONS: list[float | None] = [None, 0.75, 0.875]  # None = uniform routing
A2A_INNER = 10  # all-to-alls per CUDA-graph replay
LINK_BYTES = [MIB * 4**i for i in range(5)]  # 1 MiB .. 256 MiB written to the peer per rank


def swiglu(x, w1, w3, w2):
    import torch.nn.functional as F

    return (F.silu(x @ w1) * (x @ w3)) @ w2


def bench_alltoall_split(torch, dist, device, rank: int, world: int, machine: str, gpu: str, quick: bool) -> list[dict]:
    """Where an all-to-all's time goes: the same per-rank buffer exchanged in full (part = full), with
    the share a rank keeps for itself left out (remote_only: only bytes that cross the link), and
    with only that share (self_only: NCCL's local copy alone). Same bytes per peer as the full
    all-to-all; CUDA graphs of A2A_INNER calls; slowest rank."""
    timer = Timer(device)
    rows = []
    for size in A2A_BYTES[-5:-3] if quick else A2A_BYTES[-5:]:  # 1 MiB .. 256 MiB
        chunk = size // 2 // world  # bf16 elements per peer
        splits = {
            "full": [chunk] * world,
            "remote_only": [0 if r == rank else chunk for r in range(world)],
            "self_only": [chunk if r == rank else 0 for r in range(world)],
        }
        for part, split in splits.items():
            inp = torch.ones(sum(split), dtype=torch.bfloat16, device=device)
            out = torch.empty_like(inp)
            inner = 1 if quick else A2A_INNER

            def many(out=out, inp=inp, split=split, inner=inner) -> None:
                for _ in range(inner):
                    dist.all_to_all_single(out, inp, split, split)

            dist.barrier()
            replay = cuda_graph(many) if device.type == "cuda" else many
            samples = slowest_samples(torch, dist, timer, replay, inner, *reps_for(size), device)
            if rank == 0:
                sm = summarize(samples)
                rows.append({"machine": machine, "benchmark": "alltoall_split", "part": part, "gpu": gpu,
                             "n_gpus": world, "bytes": chunk * world * 2, "ep": world, **sm})  # fmt: skip
                log(f"alltoall_split {part} {chunk * world * 2 / MIB:.0f} MiB/rank: {sm['median_s'] * 1e6:.1f} us")
    return rows


def bench_link_ceiling(torch, dist, device, rank: int, world: int, machine: str, gpu: str, quick: bool) -> list[dict]:
    """The GPU link's attainable rate for kernel-driven traffic, without NCCL: an elementwise kernel
    on each rank writes `bytes` into the next rank's memory (mapped by symmetric memory), all ranks
    at once (part = bidirectional, as in an all-to-all) or rank 0 alone (unidirectional); slowest
    rank per repetition, each in a CUDA graph."""
    import torch.distributed._symmetric_memory as symm_mem

    timer = Timer(device)
    rows: list[dict] = []
    sizes = LINK_BYTES[:2] if quick else LINK_BYTES
    elems = sizes[-1] // 2
    group = dist.group.WORLD
    if hasattr(symm_mem, "enable_symm_mem_for_group"):
        symm_mem.enable_symm_mem_for_group(group.group_name)
    buf = symm_mem.empty(elems, dtype=torch.bfloat16, device=device)
    handle = symm_mem.rendezvous(buf, group.group_name)
    remote_all = handle.get_buffer((rank + 1) % world, (elems,), torch.bfloat16)
    src_all = torch.ones(elems, dtype=torch.bfloat16, device=device)
    for size in sizes:
        src, remote = src_all[: size // 2], remote_all[: size // 2]
        inner = max(2, min(20, (256 * MIB) // size))
        for part in ("bidirectional", "unidirectional"):
            active = part == "bidirectional" or rank == 0

            def writes() -> None:
                for _ in range(inner):
                    torch.mul(src, 1, out=remote)

            replay = cuda_graph(writes) if active else None
            samples = slowest_samples(torch, dist, timer, replay, inner, 3, 10, device)
            if rank == 0:
                s = summarize(samples)
                rows.append({"machine": machine, "benchmark": "ceiling_link", "part": part, "gpu": gpu,
                             "n_gpus": world, "bytes": size, "ep": world, **s})  # fmt: skip
                log(
                    f"ceiling_link {part} {size / MIB:.0f} MiB: {s['median_s'] * 1e6:.1f} us, {size / s['median_s'] / 1e9:.0f} GB/s per direction"
                )
    dist.barrier()
    return rows


def bench_alltoall(torch, dist, device, rank: int, world: int, machine: str, gpu: str, quick: bool) -> list[dict]:
    timer = Timer(device)
    rows = []
    for size in A2A_BYTES[:3] if quick else A2A_BYTES:
        elems = size // 2 // world * world  # bf16 elements, divisible by the world size
        inp = torch.ones(elems, dtype=torch.bfloat16, device=device)
        out = torch.empty_like(inp)
        warm, reps = reps_for(size)
        samples = slowest_samples(torch, dist, timer, lambda: dist.all_to_all_single(out, inp), 1, warm, reps, device)
        graph_samples = []
        if device.type == "cuda" and not quick:
            inner = A2A_INNER

            def many() -> None:
                for _ in range(inner):
                    dist.all_to_all_single(out, inp)

            dist.barrier()
            graph_samples = slowest_samples(torch, dist, timer, cuda_graph(many), inner, warm, reps, device)
        if rank == 0:
            base = {
                "machine": machine,
                "benchmark": "alltoall",
                "gpu": gpu,
                "n_gpus": world,
                "bytes": elems * 2,
                "ep": world,
            }
            s = summarize(samples)
            rows.append({**base, "part": "eager", **s})
            msg = f"alltoall {elems * 2 / 1024:.0f} KiB/rank x{world}: {s['median_s'] * 1e6:.1f} us eager"
            if graph_samples:
                g = summarize(graph_samples)
                rows.append({**base, "part": "graph", **g})
                msg += f", {g['median_s'] * 1e6:.1f} us in a CUDA graph"
            log(msg)
    return rows


def bench_moe_layer(
    torch, dist, device, rank: int, world: int, machine: str, gpu: str, quick: bool, model_key: str
) -> list[dict]:
    """One expert-parallel MoE layer of `model_key` over all ranks (ep = world)."""
    import random

    m = load_models()[model_key]
    h, f, experts, k = int(m["hidden_size"]), int(m["expert_ffn_size"]), int(m["num_experts"]), int(m["top_k"])
    if quick:
        h, f, experts = 64, 64, 8
    local = experts // world
    dtype = torch.bfloat16
    w = [
        tuple(torch.randn(*s, device=device, dtype=dtype) * 0.02 for s in ((h, f), (h, f), (f, h)))
        for _ in range(local)
    ]
    router = torch.randn(h, experts, device=device, dtype=dtype) * 0.02
    timer = Timer(device)
    rows = []
    rng = random.Random(1234 + rank)
    for tokens in MOE_TOKENS[:3] if quick else MOE_TOKENS:
        x = torch.randn(tokens, h, device=device, dtype=dtype)
        for frac in LOCAL_FRACTIONS:
            assignments = tokens * k
            counts = routing_counts(assignments, world, rank, frac, [rng.random() for _ in range(assignments)])
            dest = torch.repeat_interleave(torch.arange(world, device=device), torch.tensor(counts, device=device))
            dest = dest[torch.randperm(assignments, device=device)]
            local_expert = torch.randint(0, local, (assignments,), device=device)
            gate = torch.full((tokens, k), 1.0 / k, device=device, dtype=dtype)
            comm = {"t": 0.0}

            def a2a(out, inp, out_splits=None, in_splits=None) -> None:
                comm["t"] += timer(lambda: dist.all_to_all_single(out, inp, out_splits, in_splits))

            def layer() -> None:
                logits = x @ router  # the router's cost; the placement below is the routing
                torch.topk(logits, k, dim=-1)
                order = torch.argsort(dest, stable=True)
                token_of = order // k
                send = torch.cat([x[token_of], local_expert[order].to(dtype).unsqueeze(1)], dim=1)
                send_counts = torch.bincount(dest, minlength=world)
                recv_counts = torch.empty_like(send_counts)
                a2a(recv_counts, send_counts)
                in_s, out_s = send_counts.tolist(), recv_counts.tolist()
                recv = torch.empty(sum(out_s), h + 1, device=device, dtype=dtype)
                a2a(recv, send, out_s, in_s)
                ids = recv[:, h].to(torch.int64)
                y = torch.empty(recv.shape[0], h, device=device, dtype=dtype)
                by_expert = torch.argsort(ids, stable=True)
                per_expert = torch.bincount(ids, minlength=local).tolist()
                start = 0
                for e, n in enumerate(per_expert):
                    if n:
                        idx = by_expert[start : start + n]
                        y[idx] = swiglu(recv[idx, :h], *w[e])
                        start += n
                back = torch.empty(sum(in_s), h, device=device, dtype=dtype)
                a2a(back, y, in_s, out_s)
                out = torch.zeros(tokens * k, h, device=device, dtype=dtype)
                out[order] = back
                (out.view(tokens, k, h) * gate.unsqueeze(-1)).sum(dim=1)

            total, comm_only = [], []
            warm, reps = (3, 20) if tokens <= 256 else (2, 10)
            for i in range(warm + reps):
                dist.barrier()
                timer.sync()
                comm["t"] = 0.0
                t0 = time.perf_counter()
                layer()
                timer.sync()
                t = time.perf_counter() - t0
                # layer: the slowest rank. comm: the rank that waited least inside the all-to-alls (a
                # rank that arrives early also counts its wait for the others' compute as comm).
                t, c = slowest(torch, dist, t, device), slowest(torch, dist, comm["t"], device, "MIN")
                if i >= warm:
                    total.append(t)
                    comm_only.append(c)
            if rank == 0:
                base = {"machine": machine, "benchmark": "moe_layer", "gpu": gpu, "n_gpus": world, "model": model_key,
                        "hidden": h, "ffn": f, "experts": experts, "top_k": k, "tokens_per_rank": tokens, "ep": world,
                        "local_fraction": "uniform" if frac is None else frac}  # fmt: skip
                rows.append({**base, "part": "layer", **summarize(total)})
                rows.append({**base, "part": "comm", **summarize(comm_only)})
                log(
                    f"moe_layer T={tokens} local={base['local_fraction']}: layer {statistics_median(total) * 1e6:.0f} us, comm {statistics_median(comm_only) * 1e6:.0f} us"
                )
    return rows


def statistics_median(v: Sequence[float]) -> float:
    return percentile(sorted(v), 50)
