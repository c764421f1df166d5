"""The collectives of a step (seconds per step): the all-to-alls of expert parallelism (bytes of the
busiest rank, time on the interconnect and the socket link) and the all-reduce of tensor-parallel
attention.

Bytes per destination GPU, not per (token, expert): a token's hidden state goes once to each GPU that
holds any of its top-k experts and comes back once (DeepSeek-V3's dispatch, arXiv 2412.19437, and DeepEP
de-duplicate; `dedup_dispatch` 0 keeps one copy per pair, as the validation benchmarks send). A GPU holding
n of the E experts receives a token (top-k without replacement, uniform routing) with probability
p(n) = 1 - C(E - n, k) / C(E, k); the busiest rank holds n = ceil(E/ep) (its popularity share q E under
skewed routing) and the other ep - 1 GPUs (E - n) / (ep - 1) each, so a token of it has
(ep - 1) p((E - n)/(ep - 1)) remote destinations.

Prophet's cut (an outcome, not an input): its placement puts experts used in consecutive layers on one
GPU and, as ExFlow (arXiv 2401.08383), keeps a token on the GPU that holds its experts. A share a
(`inter_layer_affinity`) of tokens find all k experts of the next layer on that GPU and cross no link
(neither dispatch nor combine); every other token is sent as the baseline sends it. The engines'
contiguous placement gives the chance level a0 = C(n, k) / C(E, k), so the baseline's traffic already
excludes a0 of the tokens and Prophet keeps (1 - max(a, a0)) / (1 - a0) of it: a cut of
(1 - a0) / (1 - max(a, a0)), exactly 1 at chance (uniform routing, the default: no affinity to exploit).
A finite `comm_reduction_factor` is a what-if override that replaces the derived cut.

Several nodes (`gpus_per_node` finite): an expert group of ep GPUs, packed in GPU order, spans
N = ceil(ep / gpus_per_node) nodes of G = ep / N of its GPUs each, the nodes joined by one RDMA NIC per GPU.
The dispatch is forwarded, as DeepEP's normal (high-throughput) kernels and DeepSeek-V3 (arXiv 2412.19437,
section 3.2.2) send it: a token crosses the NICs once to each other node that holds any of its experts (to
the GPU of the same local index there), which forwards it over NVLink to that node's GPUs that need it; the
combine returns the same way. Per all-to-all the busiest rank's NIC carries B (N - 1) p(E / N) h a
(B k (N - 1) / N h a without de-duplication; the node-level probability at the mean load), and its NVLink
the tokens for the G - 1 other GPUs of its node, its own and those it forwards: N (G - 1) / (ep - 1) of the
single-node volume `alltoall_bytes`. (DeepEP's low-latency decode kernels send directly over RDMA instead, a
copy per remote destination GPU: (ep - G) p(E / ep) / ((N - 1) p(E / N)) times the NIC bytes; not modelled.)

Latency grows with the peers and the tier (NCCL's latency model, src/graph/tuning.cc: a ring of n ranks over
N nodes pays n - N intra-node and N - 1 inter-node steps): link_latency + peer_latency (ep - N) +
nic_node_latency (N - 1). The per-peer terms are 0 for interconnects that give none (the draft's four systems
keep their fixed latency).
"""

from __future__ import annotations

import numpy as np

from .memory import experts_on_fullest_gpu
from .routing import assignments_on_fullest_gpu, busiest, routing
from .scenario import Array, Scenario, once, select


def none_of_k(n: Array, s: Scenario) -> Array:
    """C(E - n, k) / C(E, k) = prod_{i<k} (E - n - i) / (E - i): the chance that none of a token's k experts
    (drawn without replacement from E) is among n given ones; n may be fractional (a popularity share)."""
    if np.ndim(s.num_experts) == 0 and np.ndim(s.top_k) == 0:  # one model: the product without masks
        return _none_of_k(n, float(s.num_experts), float(s.top_k))
    e, k = np.broadcast_arrays(np.asarray(s.num_experts, dtype=np.float64), np.asarray(s.top_k, dtype=np.float64))
    out = np.ones(np.broadcast_shapes(np.shape(n), e.shape))
    finite = k[np.isfinite(k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(int(finite.max()) if finite.size else 0):
            term = np.where(e - i > 0, np.clip((e - n - i) / (e - i), 0.0, 1.0), 0.0)
            out = np.where(i < k, out * term, out)
    return out


def _none_of_k(n: Array, e: float, k: float) -> Array:
    """none_of_k for one E and k (the same products, term by term)."""
    out = np.ones(np.shape(n))
    if not np.isfinite(k):
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(int(k)):
            if e - i <= 0:
                out *= 0.0
                continue
            term = np.array(np.subtract(e, n), dtype=np.float64)  # (E - n - i) / (E - i), clipped to [0, 1], in place
            term -= i
            term /= e - i
            np.maximum(term, 0.0, out=term)
            np.minimum(term, 1.0, out=term)
            out *= term
    return out


def destination_probability(n: Array, s: Scenario) -> Array:
    """Copies of one token a GPU holding n experts receives: p(n) = 1 - C(E - n, k) / C(E, k) when the
    dispatch de-duplicates, else k n / E (one per token-expert pair)."""
    return select(s.dedup_dispatch > 0, lambda: 1 - none_of_k(n, s), lambda: s.top_k * n / s.num_experts)


def remote_destinations(s: Scenario) -> Array:
    """Expected remote GPUs one token of the busiest rank goes to: (ep - 1) p((E - ceil(E/ep)) / (ep - 1))
    (k (1 - ceil(E/ep)/E) copies without de-duplication). Zero when ep = 1."""
    n = experts_on_fullest_gpu(s)

    def remote() -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            other = (s.num_experts - n) / (s.ep - 1)
            return (s.ep - 1) * destination_probability(other, s)

    return select(s.ep > 1, remote, lambda: 0.0)


def chance_locality(s: Scenario) -> Array:
    """a0 = C(n, k) / C(E, k): the chance that all k experts of a token's next layer are among the n of
    its GPU under the engines' contiguous placement (n = ceil(E/ep), or q E under skewed routing)."""
    n = routing(s)[2] * s.num_experts
    return none_of_k(s.num_experts - n, s)


def comm_cut(s: Scenario) -> Array:
    """Prophet's all-to-all cut, the baseline's bytes over Prophet's at the same point: the what-if override
    comm_reduction_factor where set, else (1 - a0) / (1 - max(a, a0)) (the module's docstring; inf when
    every token stays local); 1 for the baseline."""

    def compute(s: Scenario) -> Array:
        a0 = chance_locality(s)
        a = np.where(np.isfinite(s.inter_layer_affinity), np.maximum(s.inter_layer_affinity, a0), a0)
        with np.errstate(divide="ignore", invalid="ignore"):
            derived = np.where(a0 < 1, (1 - a0) / (1 - a), 1.0)
        cut = np.where(np.isfinite(s.comm_reduction_factor), s.comm_reduction_factor, derived)
        return np.where(s.prophet > 0, cut, 1.0)

    return once("comm_cut", s, compute)


def alltoall_bytes(s: Scenario) -> Array:
    """Bytes of one all-to-all (dispatch or combine) in the busiest direction of the busiest rank:
    max(send, receive) with send = B * remote_destinations * h * a and receive the copies the busiest rank
    gets from the (ep - 1) B tokens of the others, each with p(q E) (their expected maximum over ranks,
    routing.busiest). Without de-duplication, receive = (A_max - B*k*q) h a, A_max the busiest rank's
    assignments. Divided by comm_cut for Prophet. Zero when ep = 1 (data parallel)."""
    return once("alltoall_bytes", s, _alltoall_bytes)


def _alltoall_bytes(s: Scenario) -> Array:
    row = s.hidden_size * s.activation_bytes

    def pairs() -> Array:
        # one copy per pair: B*k*h*a*(1 - ceil(E/ep)/E) sent; the busiest rank's assignments less its own received
        per_token = s.batch_size_per_gpu * s.top_k * s.hidden_size * s.activation_bytes
        local_share = experts_on_fullest_gpu(s) / s.num_experts
        kept = per_token * local_share
        received = assignments_on_fullest_gpu(s) * s.hidden_size * s.activation_bytes - kept
        return np.maximum(per_token * (1 - local_share), received)

    def dedup() -> Array:
        # de-duplicated: the tokens of the other ranks that need the busiest rank, each once
        others = (s.ep - 1) * s.batch_size_per_gpu
        p = destination_probability(routing(s)[2] * s.num_experts, s)
        needing = busiest(others * p, others * p * (1 - p), others, s) * row
        return np.maximum(s.batch_size_per_gpu * remote_destinations(s) * row, needing)

    return select(s.ep > 1, lambda: select(s.dedup_dispatch > 0, dedup, pairs) / comm_cut(s), lambda: 0.0)


def cross_socket_bytes(s: Scenario) -> Array:
    """Bytes per direction crossing the socket link per all-to-all, on a two-socket host whose GPUs
    are split evenly and whose expert groups are packed in GPU order. The group that straddles the
    socket boundary has a = (N/2 mod ep) GPUs on one side and ep - a on the other; traffic one way is
    a * (ep - a) * B * p(E/ep) * h * a_bytes (a * (ep - a) / ep * B*k*h*a_bytes without de-duplication),
    divided by comm_cut for Prophet. Zero on one socket or when no group straddles."""
    row = s.batch_size_per_gpu * s.hidden_size * s.activation_bytes
    side_a = np.mod(s.n_gpus / 2, s.ep)

    def crossing() -> Array:
        return select(
            s.dedup_dispatch > 0,
            lambda: side_a * (s.ep - side_a) * destination_probability(s.num_experts / s.ep, s) * row,
            lambda: (
                side_a * (s.ep - side_a) / s.ep * (s.batch_size_per_gpu * s.top_k * s.hidden_size * s.activation_bytes)
            ),
        )

    return select((s.sockets > 1) & (s.ep > 1), lambda: crossing() / comm_cut(s), lambda: 0.0)


def group_nodes(s: Scenario) -> Array:
    """N = ceil(ep / gpus_per_node): the nodes an expert group of ep GPUs spans (1 on one node)."""
    return np.where(np.isfinite(s.gpus_per_node), np.ceil(s.ep / s.gpus_per_node), 1.0)


def intra_node_bytes(s: Scenario) -> Array:
    """Bytes of one all-to-all on the busiest rank's node interconnect (NVLink): `alltoall_bytes` on one node;
    over N > 1 nodes, with forwarding, N (G - 1) / (ep - 1) of it, G = ep / N (module docstring)."""
    n = group_nodes(s)

    def forwarded() -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            return alltoall_bytes(s) * n * (s.ep / n - 1) / (s.ep - 1)

    return select(n > 1, forwarded, lambda: alltoall_bytes(s))


def nic_bytes(s: Scenario) -> Array:
    """Bytes of one all-to-all on the busiest rank's NIC (forwarded dispatch, module docstring):
    B (N - 1) p(E / N) h a, or B k (N - 1) / N h a without de-duplication, divided by comm_cut for Prophet;
    zero on one node."""
    n = group_nodes(s)
    row = s.batch_size_per_gpu * s.hidden_size * s.activation_bytes

    def volume() -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            return select(
                s.dedup_dispatch > 0,
                lambda: (n - 1) * destination_probability(s.num_experts / n, s) * row,
                lambda: s.top_k * (n - 1) / n * row,
            )

    return select((n > 1) & (s.ep > 1), lambda: volume() / comm_cut(s), lambda: 0.0)


def alltoall_latency(s: Scenario) -> Array:
    """Fixed time of one all-to-all, growing with the peers and the tier they sit on: link_latency +
    peer_latency (ep - N) + nic_node_latency (N - 1) (NCCL's ring steps; module docstring)."""
    n = group_nodes(s)
    return s.link_latency + s.peer_latency * (s.ep - n) + s.nic_node_latency * (n - 1)


def alltoall_time(s: Scenario) -> Array:
    """One all-to-all: latency + max(node bytes / (link bandwidth * payload efficiency), NIC bytes /
    (NIC bandwidth * its payload efficiency), cross-socket bytes / socket bandwidth). Prophet cuts the volume,
    never the latency floor. Zero when ep = 1."""

    def time() -> Array:
        link = intra_node_bytes(s) / (s.link_bandwidth * s.link_efficiency)
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = select(s.sockets > 1, lambda: cross_socket_bytes(s) / s.cross_socket_bandwidth, lambda: 0.0)
            nic = select(group_nodes(s) > 1, lambda: nic_bytes(s) / (s.nic_bandwidth * s.nic_efficiency), lambda: 0.0)
        return alltoall_latency(s) + np.maximum(np.maximum(link, cross), nic)

    return select(s.ep > 1, time, lambda: 0.0)


def allreduce_time(s: Scenario) -> Array:
    """The all-reduce of one layer's attention output among the tp GPUs of tensor-parallel attention:
    latency + 2 (tp - 1) / tp * bytes / (link bandwidth * payload efficiency), bytes = tp B h a (the tp
    GPUs hold tp B sequences; a ring all-reduce sends and receives 2 (tp - 1) / tp of them per GPU). The
    latency is the interconnect's fixed cost of one collective. Zero when tp = 1."""
    tp = s.attention_tp
    if not np.any(tp > 1):
        return np.zeros(np.shape(tp))
    volume = tp * s.batch_size_per_gpu * s.hidden_size * s.activation_bytes
    with np.errstate(divide="ignore", invalid="ignore"):
        wire = 2 * (tp - 1) / tp * volume / (s.link_bandwidth * s.link_efficiency)
    return np.where(tp > 1, s.link_latency + wire, 0.0)


def alltoall_step_time(s: Scenario) -> Array:
    """The all-to-alls of one step: 2 (dispatch + combine) * Lmoe * one all-to-all."""
    return 2 * s.num_moe_layers * alltoall_time(s)


def allreduce_step_time(s: Scenario) -> Array:
    """The all-reduces of tensor-parallel attention in one step: L * one all-reduce (zero when tp = 1)."""
    return s.num_layers * allreduce_time(s)


def comm_time(s: Scenario) -> Array:
    """Collectives per step: 2 (dispatch + combine) * Lmoe * one all-to-all + L * one attention all-reduce.
    Exposed: the experts need the dispatched tokens, the next layer the combined ones, and the layer's
    output the reduced attention, so nothing hides them."""
    return alltoall_step_time(s) + allreduce_step_time(s)
