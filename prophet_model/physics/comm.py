"""The collectives of a step (seconds per step): the all-to-alls of expert parallelism (bytes of the
busiest rank, time on the interconnect and the socket link) and the all-reduce of tensor-parallel
attention.
"""

from __future__ import annotations

import numpy as np

from .memory import experts_on_fullest_gpu
from .routing import assignments_on_fullest_gpu
from .scenario import Array, Scenario, once


def alltoall_bytes(s: Scenario) -> Array:
    """Bytes of one all-to-all (dispatch or combine) in the busiest direction of the busiest rank:
    max(send, receive) with send = B*k*h*a*(1 - ceil(E/ep)/E) and receive = (A_max - B*k*ceil(E/ep)/E) h a,
    A_max the busiest rank's assignments (equal to B*k*h*a*(ep-1)/ep for a balanced rank when ep divides E).
    Divided by the reduction factor for Prophet. Zero when ep = 1 (data parallel)."""
    return once("alltoall_bytes", s, _alltoall_bytes)


def _alltoall_bytes(s: Scenario) -> Array:
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
