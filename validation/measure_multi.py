"""The two-GPU parts of the validation (issue 27), run by `measure.py --parts peer_copy host_concurrent
dp_peer_fetch ep2_step tp2_attention` with one process per GPU (planning in validation/multi_plan.py):

  peer_copy        expert-sized buffers (1 .. 256 MiB and the seed's expert, 62.9 MB) copied from the
                   other GPU's memory into this one: GPU 0 alone, GPU 1 alone (part = alone, direction
                   "1->0" / "0->1") and both at once (both directions). The other GPU's buffer is mapped
                   by PyTorch symmetric memory and read by a copy on this GPU's stream (what a pooled
                   expert fetch does); slowest rank; peer_copy.csv
  host_concurrent  pinned host -> device copies of 64 MiB .. 1 GiB and the seed's expert: GPU 0 alone and
                   both GPUs at once (the per-GPU rate when every GPU fetches); host_concurrent.csv
  dp_peer_fetch    two data-parallel replicas, each running validation/measure_offload's step over
                   DP_LAYERS MoE layers of the seed's expert shape at once, each holding the first
                   round(r E) experts of each layer and copying the rest on demand or prefetched
                   (accuracy 0.5 .. 1) from the peer GPU's memory (source = peer), from pinned host
                   (host), or split between them (pool: the share P / (P + H) from the peer, P and H
                   measured by the two parts above in this run); slowest rank; dp_peer_fetch.csv
  ep2_step         a whole EP=2 decode step (every layer) of catalog models that fit two GPUs: attention
                   on each GPU's own sequences, router, dispatch all-to-all, the GPU's half of the experts
                   as grouped GEMMs, combine all-to-all, shared experts; routing planned (uniform, or
                   75% of assignments local), so the all-to-all splits are static and the whole step,
                   NCCL included, is one CUDA graph (part = resident). Then EP_OFFLOAD_LAYERS layers of
                   one model with each GPU's experts in pinned host memory, half resident: on demand
                   (part = offload_baseline) and prefetched (offload_prefetch, accuracy 0.8 and 1), one
                   CUDA graph per layer, copies on a copy stream as in measure_offload; ep2_step.csv
  tp2_attention    (validation/measure_tp.py) the attention block of every layer (norm, QKV, KV-cache write, attention, output
                   projection): one GPU with B sequences (tp = 1) beside TP=2 (2B sequences, half the
                   heads per GPU, an all-reduce of the output per layer), and the all-reduces alone;
                   CUDA graphs; tp2_attention.csv

Every part writes its CSV as soon as it ends. Estimated time on 2xH200: peer_copy ~15 s,
host_concurrent ~15 s, dp_peer_fetch ~100 s (16 GB of pinned host and symmetric memory per GPU to fill,
3 batches x 2 residencies x 4 policies x 3 sources of 11 steps), ep2_step ~120 s (random weights of
Mixtral-8x7B and Qwen1.5-MoE, graph captures, 8 batches x 2 routings, then 16 offloaded runs),
tp2_attention ~40 s: about 5 minutes in all. `--device cpu` runs the same code with gloo (no graphs,
events, pinned or symmetric memory; plain tensors stand for the peer's memory).
"""

from __future__ import annotations

import contextlib
import math
import random
import time

from validation import multi_plan as plan
from validation.catalog_models import load_models
from validation.measure_tp import attention, attention_weights, bench_tp2_attention, small
from validation.timing import MIB, Timer, cuda_graph, log, reps_for, slowest, slowest_samples, summarize

COPY_FIELDS = ["machine", "benchmark", "part", "direction", "gpu", "n_gpus", "bytes", "reps", "median_s",
               "p10_s", "p90_s", "min_s", "max_s"]  # fmt: skip
EP_FIELDS = ["machine", "benchmark", "part", "gpu", "n_gpus", "model", "layers", "batch", "context", "ep",
             "local_fraction", "local_share", "resident_fraction", "accuracy", "steps", "expert_bytes",
             "copied_experts_per_step", "wrong_prefetches_per_step", "reps", "median_s", "p10_s", "p90_s",
             "min_s", "max_s"]  # fmt: skip
TP_FIELDS = ["machine", "benchmark", "part", "gpu", "n_gpus", "model", "layers", "batch", "context", "tp",
             "bytes", "reps", "median_s", "p10_s", "p90_s", "min_s", "max_s"]  # fmt: skip


def dp_fields() -> list[str]:
    from validation.measure_offload import OFFLOAD_FIELDS

    return [*OFFLOAD_FIELDS, "n_gpus", "source", "peer_fraction"]


class Ctx:
    """What every part needs: torch, the process group, this rank's device and the run's settings."""

    def __init__(self, torch, dist, device, rank: int, world: int, machine: str, gpu: str, quick: bool) -> None:
        self.torch, self.dist, self.device, self.rank, self.world = torch, dist, device, rank, world
        self.machine, self.gpu, self.quick = machine, gpu, quick
        self.cuda = device.type == "cuda"
        self.timer = Timer(device)
        self.graph = cuda_graph if self.cuda else (lambda fn: fn)
        self.rates: dict[str, float] = {}  # measured in this run: peer / host bytes/s per GPU, both at once

    def base(self, benchmark: str) -> dict:
        return {"machine": self.machine, "benchmark": benchmark, "gpu": self.gpu, "n_gpus": self.world}

    def samples(self, fn, inner: int, warm: int, reps: int) -> list[float]:
        return slowest_samples(self.torch, self.dist, self.timer, fn, inner, warm, reps, self.device)


def peer_buffer(c: Ctx, shape: tuple, dtype):
    """(this GPU's buffer, a view of the next rank's buffer of the same shape): symmetric memory on GPUs,
    one plain tensor for both on the CPU."""
    if not c.cuda:
        t = c.torch.zeros(*shape, dtype=dtype)
        return t, t
    import torch.distributed._symmetric_memory as symm_mem

    group = c.dist.group.WORLD
    if hasattr(symm_mem, "enable_symm_mem_for_group"):
        symm_mem.enable_symm_mem_for_group(group.group_name)
    own = symm_mem.empty(math.prod(shape), dtype=dtype, device=c.device)
    handle = symm_mem.rendezvous(own, group.group_name)
    peer = handle.get_buffer((c.rank + 1) % c.world, (math.prod(shape),), dtype)
    return own.view(*shape), peer.view(*shape)


def bench_peer_copy(c: Ctx) -> list[dict]:
    torch = c.torch
    sizes = plan.quick_points()["peer"] if c.quick else plan.PEER_COPY_BYTES
    own, peer = peer_buffer(c, (max(sizes),), torch.uint8)
    own.fill_(1)
    dst = torch.empty(max(sizes), dtype=torch.uint8, device=c.device)
    c.dist.barrier()
    rows = []
    for size in sizes:
        inner = 1 if c.quick else max(1, min(8, (256 * MIB) // size))

        def copies(size=size, inner=inner) -> None:
            for _ in range(inner):
                dst[:size].copy_(peer[:size], non_blocking=True)

        for part, active, direction in (("alone", 0, "1->0"), ("alone", 1, "0->1"), ("both", None, "both")):
            run = copies if active is None or active == c.rank else None
            s = summarize(c.samples(run, inner, *reps_for(size * inner)))
            if c.rank == 0:
                c_row = {**c.base("peer_copy"), "part": part, "direction": direction, "bytes": size, **s}
                rows.append(c_row)
                log(f"peer_copy {direction} {size / MIB:.1f} MiB: {size / s['median_s'] / 1e9:.1f} GB/s")
    both = [r for r in rows if r["part"] == "both" and r["bytes"] >= 16 * MIB]
    if both:
        c.rates["peer"] = sorted(r["bytes"] / r["median_s"] for r in both)[len(both) // 2]
    return rows


def bench_host_concurrent(c: Ctx) -> list[dict]:
    torch = c.torch
    rows = []
    for size in plan.quick_points()["host"] if c.quick else plan.HOST_COPY_BYTES:
        host = torch.empty(size, dtype=torch.uint8, pin_memory=c.cuda)
        dev = torch.empty(size, dtype=torch.uint8, device=c.device)
        for part in plan.COPY_MODES:
            run = (
                (lambda dev=dev, host=host: dev.copy_(host, non_blocking=True))
                if part == "both" or c.rank == 0
                else None
            )
            s = summarize(c.samples(run, 1, *reps_for(size)))
            if c.rank == 0:
                rows.append({**c.base("host_concurrent"), "part": part, "direction": "h2d", "bytes": size, **s})
                log(f"host_concurrent {part} {size / MIB:.0f} MiB: {size / s['median_s'] / 1e9:.1f} GB/s per GPU")
        del host, dev
    both = [r for r in rows if r["part"] == "both" and r["bytes"] >= 64 * MIB]
    if both:
        c.rates["host"] = sorted(r["bytes"] / r["median_s"] for r in both)[len(both) // 2]
    return rows


def bench_dp_peer_fetch(c: Ctx) -> list[dict]:
    from validation import measure_offload

    q = plan.quick_points()
    shape = {"hidden": 128, "ffn": 64, "experts": 16, "top_k": 2} if c.quick else measure_offload.SEED_SHAPE
    layers = 2 if c.quick else plan.DP_LAYERS
    points = {"layers": layers, "batches": q["dp_batches"] if c.quick else plan.DP_BATCHES,
              "resident": q["dp_resident"] if c.quick else plan.DP_RESIDENT,
              "acc": q["dp_acc"] if c.quick else plan.DP_ACCURACIES}  # fmt: skip
    own, peer = peer_buffer(c, (layers, shape["experts"], 3 * shape["hidden"] * shape["ffn"]), c.torch.bfloat16)
    own.normal_(0, 0.02)
    frac = plan.peer_fraction(c.rates.get("peer"), c.rates.get("host"))
    sources = [("host", 0.0), ("peer", 1.0), ("pool", round(frac, 3))]
    c.dist.barrier()

    def sync(t: float) -> float:
        c.dist.barrier()
        return slowest(c.torch, c.dist, t, c.device)

    quiet = log if c.rank == 0 else (lambda msg: None)
    rows = measure_offload.run(c.device, c.machine, c.gpu, c.quick, quiet, points=points, sources=sources,
                             peer_store=peer, sync=sync)  # fmt: skip
    return [{**r, "benchmark": "dp_peer_fetch", "n_gpus": c.world} for r in rows] if c.rank == 0 else []


def ep_model(c: Ctx, m: dict, layers: int, batch: int, context: int) -> dict:
    """This rank's weights of an EP step: attention (all heads), router, its E/ep experts, shared experts."""
    torch, dt = c.torch, c.torch.bfloat16
    h, f, n = m["hidden_size"], m["expert_ffn_size"], m["num_experts"] // c.world
    fs = m["num_shared_experts"] * m["shared_expert_ffn_size"]

    def w(*shape):
        return torch.randn(*shape, dtype=dt, device=c.device).mul_(1 / math.sqrt(shape[-1]))  # in place: no second copy

    return {"attn": attention_weights(c, m, layers, batch, context, 1), "n2": torch.ones(h, dtype=dt, device=c.device),
            "router": [w(m["num_experts"], h) for _ in range(layers)], "w13": w(layers, n, 2 * f, h),
            "w2": w(layers, n, h, f), "s13": [w(2 * fs, h) for _ in range(layers)] if fs else None,
            "s2": [w(h, fs) for _ in range(layers)] if fs else None, "fs": fs}  # fmt: skip


def ep_layer(c: Ctx, m: dict, wts: dict, i: int, x, pl: dict):
    """Layer i of the EP step on x (B, h) with the static exchange plan `pl` (tensors made by ep_plans)."""
    import torch.nn.functional as F

    torch, f, h = c.torch, m["expert_ffn_size"], m["hidden_size"]
    x = x + attention(c, wts["attn"][i], x, m["head_dim"])
    r = F.rms_norm(x, (h,), wts["n2"])
    torch.topk((r @ wts["router"][i].t()).float(), m["top_k"], dim=-1)  # the router's cost; routing is planned
    send = r[pl["send_tok"]]
    recv = torch.empty(sum(pl["out_splits"]), h, dtype=r.dtype, device=c.device)
    c.dist.all_to_all_single(recv, send, pl["out_splits"], pl["in_splits"])
    y = torch.zeros_like(recv)
    if recv.shape[0]:
        xs = recv[pl["by_expert"]]
        g = torch._grouped_mm(xs, wts["w13"][i].transpose(-2, -1), offs=pl["offs"])
        y[pl["by_expert"]] = torch._grouped_mm(
            F.silu(g[:, :f]) * g[:, f:], wts["w2"][i].transpose(-2, -1), offs=pl["offs"]
        )
    back = torch.empty_like(send)
    c.dist.all_to_all_single(back, y, pl["in_splits"], pl["out_splits"])
    out = torch.zeros_like(x).index_add_(0, pl["send_tok"], back / m["top_k"])
    if wts["fs"]:
        g = r @ wts["s13"][i].t()
        out = out + (F.silu(g[:, : wts["fs"]]) * g[:, wts["fs"] :]) @ wts["s2"][i].t()
    return x + out


def ep_plans(c: Ctx, m: dict, layers: int, batch: int, frac: float | None, seed: int) -> tuple[list[dict], float]:
    """Per layer this rank's exchange plan as tensors (and its needed local experts), and the local share."""
    torch, k, E = c.torch, m["top_k"], m["num_experts"]
    out, shares = [], []
    for i in range(layers):
        routes = [
            plan.route_ep(batch, E, k, c.world, r, frac, random.Random(seed + 101 * i + r)) for r in range(c.world)
        ]
        shares.append(plan.local_share(routes, E))
        p = plan.ep_exchange(routes, E, k)[c.rank]
        recv = torch.tensor(p["recv_expert"], dtype=torch.long)
        counts = torch.bincount(recv, minlength=E // c.world)
        out.append({"send_tok": torch.tensor(p["send"], dtype=torch.long, device=c.device) // k,
                    "in_splits": p["in_splits"], "out_splits": p["out_splits"], "needed": p["needed"],
                    "by_expert": torch.argsort(recv, stable=True).to(c.device),
                    "offs": torch.cumsum(counts, 0).to(torch.int32).to(c.device)})  # fmt: skip
    return out, sum(shares) / len(shares)


def bench_ep2_step(c: Ctx) -> list[dict]:
    torch, rows = c.torch, []
    batches = plan.quick_points()["ep_batches"] if c.quick else plan.EP_BATCHES
    context = 64 if c.quick else plan.EP_CONTEXT
    free = 0.9 * torch.cuda.mem_get_info(c.device)[0] if c.cuda else 64e9  # what is free now, less headroom
    for key in plan.EP_MODELS:
        m = small(load_models()[key]) if c.quick else load_models()[key]
        L, h = m["num_layers"], m["hidden_size"]
        kv_seq = 2 * L * context * m["num_kv_heads"] * m["head_dim"] * 2
        weights = (L * (m["num_experts"] // c.world) * 3 * h * m["expert_ffn_size"] + L * 4 * h * h) * 2
        fit = [b for b in batches if weights + b * kv_seq < free]
        if len(fit) < len(batches):
            log(f"ep2_step {key}: batches {sorted(set(batches) - set(fit))} do not fit, skipped")
        if not fit:
            continue
        wts = ep_model(c, m, L, max(fit), context)
        for batch in fit:
            x = torch.randn(batch, h, dtype=torch.bfloat16, device=c.device)
            for frac in plan.EP_LOCAL_FRACTIONS:
                pls, share = ep_plans(c, m, L, batch, frac, seed=7 * batch)

                def step(x=x, pls=pls, wts=wts) -> None:
                    y = x
                    for i in range(L):
                        y = ep_layer(c, m, wts, i, y, pls[i])

                c.dist.barrier()
                s = summarize(c.samples(c.graph(step), 1, 3, 5 if c.quick else 20))
                if c.rank == 0:
                    rows.append({**c.base("ep2_step"), "part": "resident", "model": key, "layers": L, "batch": batch,
                                 "context": context, "ep": c.world, "local_fraction": "uniform" if frac is None else frac,
                                 "local_share": share, "resident_fraction": 1.0, **s})  # fmt: skip
                    log(f"ep2_step {key} B={batch} local={frac}: {s['median_s'] * 1e3:.3f} ms")
        del wts
        if c.cuda:
            torch.cuda.empty_cache()
    return rows + bench_ep2_offload(c)


def bench_ep2_offload(c: Ctx) -> list[dict]:
    """EP_OFFLOAD_LAYERS layers of EP_OFFLOAD_MODEL with each GPU's experts in pinned host memory."""
    torch, rows = c.torch, []
    m = load_models()[plan.EP_OFFLOAD_MODEL]
    m = small(m) if c.quick else m
    L, h, f, n = plan.EP_OFFLOAD_LAYERS, m["hidden_size"], m["expert_ffn_size"], m["num_experts"] // c.world
    context, steps, warm = (64, 2, 1) if c.quick else (plan.EP_CONTEXT, 8, 3)
    batches = plan.quick_points()["ep_batches"] if c.quick else plan.EP_OFFLOAD_BATCHES
    wts = ep_model(c, m, L, max(batches), context)
    host = torch.empty(L, n, 3 * h * f, dtype=torch.bfloat16, pin_memory=c.cuda)
    host.fill_(0.01)  # the values do not matter to the copies
    expert_bytes = 3 * h * f * 2
    copy_stream = torch.cuda.Stream(c.device) if c.cuda else None
    compute = torch.cuda.current_stream(c.device) if c.cuda else None

    def copy_expert(i: int, e: int) -> None:
        wts["w13"][i, e].copy_(host[i, e, : 2 * h * f].view(2 * f, h), non_blocking=True)
        wts["w2"][i, e].copy_(host[i, e, 2 * h * f :].view(h, f), non_blocking=True)

    def copies(i: int, experts: list[int]) -> None:
        with torch.cuda.stream(copy_stream) if c.cuda else contextlib.nullcontext():
            for e in experts:
                copy_expert(i, e)

    for batch in batches:
        x = torch.randn(batch, h, dtype=torch.bfloat16, device=c.device)
        for frac in plan.EP_LOCAL_FRACTIONS:
            pls, share = ep_plans(c, m, L, batch, frac, seed=11 * batch)
            xs = [x] + [torch.empty_like(x) for _ in range(L)]

            def layer_fn(i: int, pls=pls, xs=xs):
                return lambda: xs[i + 1].copy_(ep_layer(c, m, wts, i, xs[i], pls[i]))

            graphs = [c.graph(layer_fn(i)) for i in range(L)]
            for acc in [None, *plan.EP_OFFLOAD_ACCURACIES]:
                todo = plan.plan_ep_offload([p["needed"] for p in pls], n, plan.EP_OFFLOAD_RESIDENT, acc,
                                            steps + warm, seed=13 * batch + c.rank)  # fmt: skip
                c.dist.barrier()
                c.timer.sync()
                order = [(s, i) for s in range(steps + warm) for i in range(L)]
                t0 = None
                for j, (s, i) in enumerate(order):
                    if (s, i) == (warm, 0):
                        c.dist.barrier()
                        c.timer.sync()
                        t0 = time.perf_counter()
                    if c.cuda:
                        reached = torch.cuda.Event()
                        reached.record(compute)
                        copy_stream.wait_event(reached)
                    copies(i, todo[s][i]["on_demand"])
                    if c.cuda:
                        fetched = torch.cuda.Event()
                        fetched.record(copy_stream)
                        compute.wait_event(fetched)
                    if j + 1 < len(order):
                        copies(order[j + 1][1], todo[order[j + 1][0]][order[j + 1][1]]["prefetch"])
                    graphs[i]()
                c.timer.sync()
                t = slowest(torch, c.dist, (time.perf_counter() - t0) / steps, c.device)
                timed = [lay for st in todo[warm:] for lay in st]
                if c.rank == 0:
                    rows.append({**c.base("ep2_step"), "part": "offload_baseline" if acc is None else "offload_prefetch",
                                 "model": plan.EP_OFFLOAD_MODEL, "layers": L, "batch": batch, "context": context,
                                 "ep": c.world, "local_fraction": "uniform" if frac is None else frac,
                                 "local_share": share, "resident_fraction": plan.EP_OFFLOAD_RESIDENT,
                                 "accuracy": "" if acc is None else acc, "steps": steps, "expert_bytes": expert_bytes,
                                 "copied_experts_per_step": sum(len(x["on_demand"]) + len(x["prefetch"]) for x in timed) / steps,
                                 "wrong_prefetches_per_step": sum(x["wrong"] for x in timed) / steps,
                                 "reps": 1, "median_s": t})  # fmt: skip
                    log(f"ep2_step offload B={batch} local={frac} acc={acc}: {t * 1e3:.2f} ms")
    return rows


PARTS = {  # part -> (function, CSV name, columns)
    "peer_copy": (bench_peer_copy, "peer_copy.csv", COPY_FIELDS),
    "host_concurrent": (bench_host_concurrent, "host_concurrent.csv", COPY_FIELDS),
    "dp_peer_fetch": (bench_dp_peer_fetch, "dp_peer_fetch.csv", None),
    "ep2_step": (bench_ep2_step, "ep2_step.csv", EP_FIELDS),
    "tp2_attention": (bench_tp2_attention, "tp2_attention.csv", TP_FIELDS),
}


def run(torch, dist, device, rank: int, world: int, args, out, write_rows) -> None:
    """Every requested two-GPU part in PARTS order; rank 0 writes each part's CSV as soon as it ends. A
    part that fails is logged and the next runs (its CSV is not written)."""
    c = Ctx(
        torch,
        dist,
        device,
        rank,
        world,
        args.machine,
        torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        args.quick,
    )
    for name, (fn, csv_name, fields) in PARTS.items():
        if name not in args.parts:
            continue
        dist.barrier()
        try:
            rows = fn(c)
        except Exception as exc:  # one part that cannot run must not cost the others
            log(f"rank {rank}: {name} failed: {type(exc).__name__}: {exc}")
            continue
        if rank == 0:
            path = write_rows(rows, out, csv_name, fields or dp_fields())
            log(f"{name}: wrote {len(rows)} rows to {path}")
