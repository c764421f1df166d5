"""What the two-GPU parts of the validation (`validation/measure_multi.py`, issue 27) measure, planned
without torch (tested on the CPU in CI): buffer sizes, the planned points, the routing of an
expert-parallel step (who sends which assignment where, and which local expert it reaches), the
experts each rank must copy per layer, and the share of a pooled fetch taken from the peer GPU.

The prediction side (prophet_model/measured/predict_multi.py) keeps its own copy of the planned
points; tests/test_measure_program.py checks that the two agree.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

MIB = 1 << 20
SEED_EXPERT_BYTES = 3 * 4096 * 2560 * 2  # one expert of the seed model, bf16 (62,914,560 bytes)
PEER_COPY_BYTES = sorted([1 * MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB, SEED_EXPERT_BYTES])
HOST_COPY_BYTES = sorted([64 * MIB, 256 * MIB, 1024 * MIB, SEED_EXPERT_BYTES])
COPY_MODES = ("alone", "both")  # one GPU copies while the other idles | both GPUs copy at once

# dp_peer_fetch: two data-parallel replicas, each holding part of the experts of DP_LAYERS MoE layers of
# the seed's expert shape; the rest from the peer GPU or from host, on demand or prefetched
DP_LAYERS = 2
DP_BATCHES = [1, 16, 64]
DP_RESIDENT = [0.5, 0.75]
DP_ACCURACIES = [0.5, 0.8, 1.0]
DP_SOURCES = ("host", "peer")

# ep2_step: whole EP=2 decode steps (every layer), experts resident
EP_MODELS = ("mixtral_8x7b", "qwen1_5_moe_a2_7b")
EP_BATCHES = [1, 16, 64, 256]
EP_CONTEXT = 2048
EP_LOCAL_FRACTIONS: list[float | None] = [None, 0.75]  # None = uniform routing
# ... and with the experts offloaded: EP_OFFLOAD_LAYERS layers of one model, experts in pinned host memory
EP_OFFLOAD_MODEL = "qwen1_5_moe_a2_7b"
EP_OFFLOAD_LAYERS = 4
EP_OFFLOAD_BATCHES = [16, 64]
EP_OFFLOAD_RESIDENT = 0.5
EP_OFFLOAD_ACCURACIES = [0.8, 1.0]

# tp2_attention: the attention block of every layer, one GPU (tp = 1, B sequences) beside TP=2 (2B
# sequences over both GPUs, half the heads each, an all-reduce of the output per layer)
TP_MODELS = ("mixtral_8x7b", "qwen1_5_moe_a2_7b")
TP_BATCHES = [1, 8, 32, 64]
TP_CONTEXT = 2048


def routing_counts(
    assignments: int, ep: int, rank: int, local_fraction: float | None, rng_uniform: Sequence[float]
) -> list[int]:
    """Destination rank of each of `assignments` token-expert pairs sent by `rank`, as counts per
    rank. Uniform routing (None): every rank equally likely (experts are split evenly). Otherwise a
    fraction `local_fraction` stays on `rank` and the rest is spread evenly over the other ranks.
    `rng_uniform` holds one U[0,1) draw per assignment."""
    counts = [0] * ep
    for u in rng_uniform[:assignments]:
        if local_fraction is None:
            dest = min(int(u * ep), ep - 1)
        elif ep == 1 or u < local_fraction:
            dest = rank
        else:
            v = (u - local_fraction) / (1 - local_fraction)
            dest = min(int(v * (ep - 1)), ep - 2)
            dest = dest + 1 if dest >= rank else dest
        counts[dest] += 1
    return counts


def route_ep(
    tokens: int, experts: int, top_k: int, ep: int, rank: int, local_fraction: float | None, rng: random.Random
) -> list[list[int]]:
    """Each of a rank's tokens' top_k distinct experts (global ids; rank q holds experts
    q*E/ep .. (q+1)*E/ep - 1). Uniform: top_k of all E. With a local fraction p, each choice is one of
    the rank's own experts with probability p (while any is left), else one of the others'."""
    n = experts // ep
    own = list(range(rank * n, (rank + 1) * n))
    others = [e for e in range(experts) if not rank * n <= e < (rank + 1) * n]
    out = []
    for _ in range(tokens):
        if local_fraction is None:
            out.append(rng.sample(range(experts), top_k))
            continue
        chosen: list[int] = []
        for _ in range(top_k):
            pool = own if rng.random() < local_fraction else others
            left = [e for e in pool if e not in chosen] or [e for e in own + others if e not in chosen]
            chosen.append(rng.choice(left))
        out.append(chosen)
    return out


def ep_exchange(routes: Sequence[list[list[int]]], experts: int, top_k: int) -> list[dict]:
    """Given every rank's routing (route_ep), each rank's static all-to-all plan: `send` (its flat
    assignment indices t * top_k + j in send order, grouped by destination rank), `in_splits` (rows
    sent to each rank), `out_splits` (rows received from each rank), `recv_expert` (the local expert of
    each received row, in arrival order: source rank by source rank, each in its send order) and
    `needed` (the distinct local experts it receives)."""
    ep = len(routes)
    n = experts // ep
    flat = [[e for tok in r for e in tok] for r in routes]
    plans = []
    for r in range(ep):
        send = sorted(range(len(flat[r])), key=lambda i: (flat[r][i] // n, i))
        in_splits = [sum(1 for e in flat[r] if e // n == q) for q in range(ep)]
        plans.append({"send": send, "in_splits": in_splits})
    for r in range(ep):
        recv = [flat[q][i] - r * n for q in range(ep) for i in plans[q]["send"] if flat[q][i] // n == r]
        plans[r] |= {"out_splits": [plans[q]["in_splits"][r] for q in range(ep)], "recv_expert": recv,
                     "needed": sorted(set(recv))}  # fmt: skip
    return plans


def local_share(routes: Sequence[list[list[int]]], experts: int) -> float:
    """Share of all assignments whose expert lives on the sending rank."""
    n = experts // len(routes)
    pairs = [(r, e) for r, route in enumerate(routes) for tok in route for e in tok]
    return sum(1 for r, e in pairs if e // n == r) / len(pairs) if pairs else float("nan")


def peer_fraction(peer_rate: float | None, host_rate: float | None) -> float:
    """Share of a pooled fetch taken from the peer when both sources stream at once on different links
    (NVLink beside PCIe): P / (P + H), which finishes both together (physics.fetch.fetch_time); 1.0 with
    no measured host rate, 0.0 with no measured peer rate."""
    if not peer_rate:
        return 0.0
    if not host_rate:
        return 1.0
    return peer_rate / (peer_rate + host_rate)


def split_sources(missing: Sequence[int], fraction: float) -> tuple[list[int], list[int]]:
    """(from peer, from host): the first round(fraction * len) of the missing experts from the peer."""
    cut = round(fraction * len(missing))
    return list(missing[:cut]), list(missing[cut:])


def quick_points() -> dict:
    """The reduced sizes of `--quick` (for testing the program, not for measurements)."""
    return {"peer": [MIB, 4 * MIB], "host": [MIB, 4 * MIB], "dp_batches": [1, 8], "dp_resident": [0.5],
            "dp_acc": [1.0], "ep_batches": [1, 8], "tp_batches": [1, 4]}  # fmt: skip


def plan_ep_offload(needed: Sequence[Sequence[int]], local_experts: int, resident: float, accuracy: float | None,
                    steps: int, seed: int) -> list[list[dict]]:  # fmt: skip
    """Per step and layer, for one rank of an offloaded EP step whose routing repeats every step
    (`needed`: the distinct local experts each layer receives, ep_exchange): the experts to copy on
    demand and those prefetched (None: the baseline, nothing prefetched). The first
    round(resident * local_experts) local experts stay on the GPU; predictions as measure_offload.predict."""
    from validation.measure_offload import predict

    guesses = random.Random(seed)
    on_gpu = set(range(round(resident * local_experts)))
    plan = []
    for _ in range(steps):
        step = []
        for need in needed:
            need_set = set(need)
            pre = set() if accuracy is None else predict(need_set, local_experts, accuracy, guesses) - on_gpu
            step.append({"on_demand": sorted(need_set - on_gpu - pre), "prefetch": sorted(pre),
                         "wrong": len(pre - need_set)})  # fmt: skip
        plan.append(step)
    return plan
