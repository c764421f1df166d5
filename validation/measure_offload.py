"""Expert offloading on one GPU (`measure.py --parts offload`): a decode step over several MoE layers of
the seed's expert shape whose experts live in pinned host memory, one contiguous buffer each.

Per layer the compute stream runs the router, the routed experts as two grouped GEMMs
(`torch._grouped_mm`) and the weighted combine, captured once as a CUDA graph that reads the layer's
routing from a static buffer. A separate copy stream moves experts host -> GPU:
- baseline: a layer's needed experts that are not resident are copied once the GPU reaches the layer
  (the copy stream waits on an event recorded at the layer's start; the layer waits for the copies);
- Prophet at accuracy a: while layer l computes, the experts predicted for layer l+1 (a prediction set
  as large as the needed set, each needed expert in it with probability a, the rest drawn from experts
  the batch does not need) are copied on the same stream; the needed experts it missed are copied once
  layer l+1 is reached, behind those prefetches (one FIFO copy stream: wrong prefetches delay misses).
  The last layer of a step prefetches the next step's first layer, and steps run back to back;
- LRU: a cache of C experts per layer on the GPU, misses copied on demand and inserted, the least
  recently used leaving; uniform or Zipf-skewed routing.
Residency is static (the first round(r E) experts of each layer) except in the LRU runs. The GPU holds
a full-size weight array per layer; residency and the cache are bookkeeping over it, so a copy lands
in its expert's own slot (the times are those of a real cache of that size).

Timed: the mean step time over consecutive steps (CUDA events around the whole run, after warm-up
steps). Each row also records what the routing draw asked for (experts copied per step, wrong
prefetches per step, hits), which is data about the inputs, not a timing.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections import OrderedDict
from collections.abc import Sequence

SEED_SHAPE = {"hidden": 4096, "ffn": 2560, "experts": 128, "top_k": 2}
LAYERS = 4
BATCHES = [1, 16, 64, 256]
RESIDENT = [0.0, 0.5, 0.9, 0.97]
ACCURACIES = [0.0, 0.5, 0.8, 1.0]
LRU_BATCHES = [1, 16]
LRU_SLOTS = [32, 64, 96]
ZIPF_S = 1.0  # popularity exponent of the skewed routing (rank r has weight r^-s)
STEPS, WARM = 8, 3

OFFLOAD_FIELDS = [
    "machine", "benchmark", "gpu", "policy", "routing", "zipf_s", "hidden", "ffn", "experts", "top_k", "layers",
    "tokens", "resident_fraction", "cache_slots", "accuracy", "steps", "step_s", "copied_experts_per_step",
    "wrong_prefetches_per_step", "hit_rate", "expert_bytes", "copy_gbps_measured",
]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Routing, predictions and caches (pure Python: tested on the CPU in CI)


def zipf_weights(n: int, s: float, rng: random.Random) -> list[float]:
    """Popularity of n experts, rank r (1-based) having weight r^-s, ranks shuffled over experts."""
    w = [(r + 1) ** -s for r in range(n)]
    rng.shuffle(w)
    total = sum(w)
    return [x / total for x in w]


def route(
    tokens: int, experts: int, top_k: int, rng: random.Random, weights: Sequence[float] | None = None
) -> list[list[int]]:
    """Each token's top_k distinct experts: uniform, or drawn without replacement by `weights`."""
    out = []
    for _ in range(tokens):
        if weights is None:
            out.append(rng.sample(range(experts), top_k))
            continue
        chosen: list[int] = []
        w = list(weights)
        for _ in range(top_k):
            e = rng.choices(range(experts), weights=w)[0]
            chosen.append(e)
            w[e] = 0.0
        out.append(chosen)
    return out


def needed(routing: list[list[int]]) -> set[int]:
    return {e for tok in routing for e in tok}


def predict(need: set[int], experts: int, accuracy: float, rng: random.Random) -> set[int]:
    """A prediction set as large as `need`: each needed expert in it with probability `accuracy`, the
    other places filled with experts the batch does not need (uniformly)."""
    hits = {e for e in sorted(need) if rng.random() < accuracy}
    others = [e for e in range(experts) if e not in need]
    wrong = rng.sample(others, min(len(need) - len(hits), len(others)))
    return hits | set(wrong)


class LRU:
    """A cache of `slots` experts; `access(batch needs)` returns the misses and updates recency."""

    def __init__(self, slots: int, initial: Sequence[int] = ()) -> None:
        self.slots = slots
        self.items: OrderedDict[int, None] = OrderedDict((e, None) for e in list(initial)[:slots])

    def access(self, need: set[int]) -> set[int]:
        misses = {e for e in need if e not in self.items}
        for e in sorted(need):
            self.items[e] = None
            self.items.move_to_end(e)
        while len(self.items) > self.slots:
            self.items.popitem(last=False)
        return misses


def plan_static(tokens: int, resident: float, accuracy: float | None, steps: int, seed: int,
                shape: dict = SEED_SHAPE, layers: int = LAYERS) -> list[list[dict]]:  # fmt: skip
    """Per step and layer: routing, experts to copy on demand, experts to prefetch for it (None for
    the baseline). Prefetches for (step, layer) are issued during the layer before it."""
    rng, guesses = random.Random(seed), random.Random(seed + 1)  # the same routing for every policy
    e, k = shape["experts"], shape["top_k"]
    on_gpu = set(range(round(resident * e)))
    plan = []
    for _ in range(steps):
        step = []
        for _ in range(layers):
            r = route(tokens, e, k, rng)
            need = needed(r)
            if accuracy is None:
                pre: set[int] = set()
            else:
                pre = predict(need, e, accuracy, guesses) - on_gpu
            misses = need - on_gpu - pre
            step.append({"routing": r, "on_demand": sorted(misses), "prefetch": sorted(pre),
                         "wrong": len(pre - need)})  # fmt: skip
        plan.append(step)
    return plan


def plan_lru(tokens: int, slots: int, zipf: float | None, steps: int, seed: int,
             shape: dict = SEED_SHAPE, layers: int = LAYERS) -> tuple[list[list[dict]], float]:  # fmt: skip
    """Per step and layer: routing and the LRU misses to copy on demand; and the hit rate over all
    accesses (distinct needed experts). Caches start with the first `slots` experts."""
    rng = random.Random(seed)
    e, k = shape["experts"], shape["top_k"]
    weights = [zipf_weights(e, zipf, rng) for _ in range(layers)] if zipf else [None] * layers
    caches = [LRU(slots, range(slots)) for _ in range(layers)]
    plan, hits, total = [], 0, 0
    for _ in range(steps):
        step = []
        for layer in range(layers):
            r = route(tokens, e, k, rng, weights[layer])
            need = needed(r)
            misses = caches[layer].access(need)
            hits += len(need) - len(misses)
            total += len(need)
            step.append({"routing": r, "on_demand": sorted(misses), "prefetch": [], "wrong": 0})
        plan.append(step)
    return plan, hits / total if total else math.nan


# ----------------------------------------------------------------------------------------------
# The GPU part


class Clock:
    """Seconds between start() and stop(): CUDA events on a stream, else the host clock."""

    def __init__(self, torch, stream) -> None:
        self.torch, self.stream = torch, stream

    def start(self) -> None:
        if self.stream is not None:
            self.a = self.torch.cuda.Event(enable_timing=True)
            self.a.record(self.stream)
        else:
            self.t0 = time.perf_counter()

    def stop(self) -> float:
        if self.stream is not None:
            b = self.torch.cuda.Event(enable_timing=True)
            b.record(self.stream)
            b.synchronize()
            return self.a.elapsed_time(b) / 1e3
        return time.perf_counter() - self.t0


def run(device, machine: str, gpu: str, quick: bool, log, *, points: dict | None = None,
        sources: Sequence[tuple[str, float]] = (("host", 0.0),), peer_store=None, sync=None) -> list[dict]:  # fmt: skip
    """The offload part (module docstring). With `points` (layers, batches, resident, accuracies; no LRU
    runs), `sources` (name, share of each layer's copies taken from `peer_store`, a (layers, experts,
    3 h f) view of the other GPU's memory, on a second copy stream; the rest from pinned host memory) and `sync` (called
    with each run's step time, returns the time to record: measure_multi's barrier and slowest rank), it
    is the data-parallel replica of measure_multi's dp_peer_fetch."""
    import torch
    import torch.nn.functional as F

    shape = dict(SEED_SHAPE)
    layers, batches, residents, accs = LAYERS, BATCHES, RESIDENT, ACCURACIES
    steps, warm = STEPS, WARM
    if quick:
        shape = {"hidden": 128, "ffn": 64, "experts": 16, "top_k": 2}
        layers, batches, residents, accs, steps, warm = 2, [1, 8], [0.0, 0.5], [0.5], 2, 1
    if points:
        layers, batches, residents, accs = points["layers"], points["batches"], points["resident"], points["acc"]
    sync = sync or (lambda t: t)
    h, f, E, k = shape["hidden"], shape["ffn"], shape["experts"], shape["top_k"]
    dt = torch.bfloat16
    cuda = device.type == "cuda"
    per_expert = 3 * h * f  # elements: w13 (2f x h) then w2 (h x f), one contiguous buffer
    host = torch.empty(layers, E, per_expert, dtype=dt, pin_memory=cuda)
    peer = peer_store
    # stored (out, in) like nn.Linear weights; the grouped GEMMs read them transposed (column-major B)
    w13 = torch.empty(layers, E, 2 * f, h, dtype=dt, device=device)
    w2 = torch.empty(layers, E, h, f, dtype=dt, device=device)
    router = torch.randn(layers, h, E, dtype=dt, device=device) * 0.02
    for layer in range(layers):
        fill = torch.randn(E, per_expert, dtype=dt, device=device) * 0.02
        host[layer].copy_(fill)
        w13[layer].copy_(fill[:, : 2 * h * f].view(E, 2 * f, h))
        w2[layer].copy_(fill[:, 2 * h * f :].view(E, h, f))
        del fill
    expert_bytes = per_expert * 2
    log(f"offload: {layers} layers x {E} experts of {expert_bytes / 1e6:.1f} MB in pinned host memory")
    copy_stream = torch.cuda.Stream(device) if cuda else None
    peer_stream = torch.cuda.Stream(device) if cuda and peer is not None else copy_stream
    compute = torch.cuda.current_stream(device) if cuda else None

    def copy_expert(layer: int, e: int, store=host) -> None:
        src = store[layer, e]
        w13[layer, e].copy_(src[: 2 * h * f].view(2 * f, h), non_blocking=True)
        w2[layer, e].copy_(src[2 * h * f :].view(h, f), non_blocking=True)

    # measured copy rate of one expert, for the record (the model uses the separate copy benchmark)
    def copy_rate() -> float:
        if not cuda:
            return math.nan
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for e in range(min(E, 16)):
            copy_expert(0, e)
        b.record()
        b.synchronize()
        return min(E, 16) * expert_bytes / (a.elapsed_time(b) / 1e3) / 1e9

    rows: list[dict] = []
    for tokens in batches:
        x = torch.randn(tokens, h, dtype=dt, device=device)
        route_buf = torch.zeros(tokens, k, dtype=torch.long, device=device)
        ones = torch.ones(tokens * k, dtype=torch.int32, device=device)

        def layer_compute(layer: int, x=x, route_buf=route_buf, ones=ones) -> None:
            logits = x @ router[layer]
            weights = torch.softmax(logits.float().gather(1, route_buf), dim=-1).to(dt)
            flat = route_buf.reshape(-1)
            order = torch.argsort(flat, stable=True)
            tok = order // k
            counts = torch.zeros(E, dtype=torch.int32, device=device).scatter_add_(0, flat, ones)
            offs = torch.cumsum(counts, 0, dtype=torch.int32)
            xs = x[tok]
            hid = torch._grouped_mm(xs, w13[layer].transpose(-2, -1), offs=offs)
            act = F.silu(hid[:, :f]) * hid[:, f:]
            y = torch._grouped_mm(act, w2[layer].transpose(-2, -1), offs=offs)
            y = y * weights.reshape(-1)[order].unsqueeze(-1)
            x.add_(torch.zeros_like(x).index_add_(0, tok, y))

        graphs = []
        for layer in range(layers):
            if cuda:
                s = torch.cuda.Stream(device)
                s.wait_stream(compute)
                with torch.cuda.stream(s):
                    layer_compute(layer)
                compute.wait_stream(s)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    layer_compute(layer)
                graphs.append(g.replay)
            else:
                graphs.append(lambda layer=layer: layer_compute(layer))

        def copies(layer: int, experts: list[int], frac: float) -> None:
            """Copy `experts` of `layer`: the first share `frac` from the peer's copy on its own stream."""
            cut = round(frac * len(experts))  # as multi_plan.split_sources
            from_peer, from_host = experts[:cut], experts[cut:]
            for stream, store, chosen in ((peer_stream, peer, from_peer), (copy_stream, host, from_host)):
                with torch.cuda.stream(stream) if cuda else contextlib.nullcontext():
                    for e in chosen:
                        copy_expert(layer, e, store)

        def run_plan(plan: list[list[dict]], frac: float = 0.0, route_buf=route_buf, graphs=graphs) -> float:
            """Run the steps back to back; the mean step time of the steps after warm-up (s)."""
            routes = [[torch.tensor(lay["routing"], dtype=torch.long, device=device) for lay in st] for st in plan]
            order = [(s, layer) for s in range(len(plan)) for layer in range(layers)]
            streams = [copy_stream] + ([peer_stream] if peer_stream is not copy_stream else [])
            if cuda:
                torch.cuda.synchronize()
            clock = Clock(torch, compute if cuda else None)
            for i, (s, layer) in enumerate(order):
                if (s, layer) == (warm, 0):
                    clock.start()
                if cuda:  # the copy streams start this layer's copies once the GPU reaches the layer
                    reached = torch.cuda.Event()
                    reached.record(compute)
                    for st in streams:
                        st.wait_event(reached)
                copies(layer, plan[s][layer]["on_demand"], frac)
                if cuda:
                    for st in streams:
                        fetched = torch.cuda.Event()
                        fetched.record(st)
                        compute.wait_event(fetched)
                if i + 1 < len(order):  # the next layer's predictions, copied while this layer computes
                    ns, nl = order[i + 1]
                    copies(nl, plan[ns][nl]["prefetch"], frac)
                route_buf.copy_(routes[s][layer], non_blocking=True)
                graphs[layer]()
            return clock.stop() / (len(plan) - warm)

        base = {"machine": machine, "benchmark": "offload", "gpu": gpu, "hidden": h, "ffn": f, "experts": E,
                "top_k": k, "layers": layers, "tokens": tokens, "expert_bytes": expert_bytes}  # fmt: skip
        for resident, acc, (source, frac) in [(r, a, s) for r in residents for a in [None, *accs] for s in sources]:
            plan = plan_static(
                tokens,
                resident,
                acc,
                steps + warm,
                seed=1000 * tokens + int(100 * resident),
                shape=shape,
                layers=layers,
            )
            t = sync(run_plan(plan, frac))
            timed = [lay for st in plan[warm:] for lay in st]
            rows.append({**base, "source": source, "peer_fraction": frac,
                         "policy": "baseline" if acc is None else "prefetch", "routing": "uniform",
                         "resident_fraction": resident, "accuracy": "" if acc is None else acc, "steps": steps,
                         "step_s": t, "copied_experts_per_step": sum(len(x["on_demand"]) + len(x["prefetch"]) for x in timed) / steps,
                         "wrong_prefetches_per_step": sum(x["wrong"] for x in timed) / steps,
                         "copy_gbps_measured": copy_rate()})  # fmt: skip
            log(
                f"offload {source} T={tokens} resident={resident:.2f} {'baseline' if acc is None else f'acc={acc}'}: {t * 1e3:.2f} ms"
            )
        if not points and tokens in (LRU_BATCHES if not quick else batches):
            for zipf in (None, ZIPF_S):
                for slots in LRU_SLOTS if not quick else [E // 2]:
                    plan, hit = plan_lru(tokens, slots, zipf, steps + warm, seed=7 + tokens, shape=shape, layers=layers)
                    t = run_plan(plan)
                    timed = [lay for st in plan[warm:] for lay in st]
                    rows.append({**base, "policy": "lru", "routing": "zipf" if zipf else "uniform",
                                 "zipf_s": zipf or "", "cache_slots": slots, "resident_fraction": slots / E,
                                 "steps": steps, "step_s": t, "hit_rate": hit,
                                 "copied_experts_per_step": sum(len(x["on_demand"]) for x in timed) / steps})  # fmt: skip
                    log(
                        f"offload LRU T={tokens} {'zipf' if zipf else 'uniform'} C={slots}: {t * 1e3:.2f} ms, hit {hit:.2f}"
                    )
    return rows
