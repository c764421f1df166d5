"""Build model Scenarios from the validated Study (catalog units -> SI units)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import numpy as np

from .catalog import GPU, Interconnect, MoEModel
from .config import Study
from .model import Scenario

GB = 1e9
TFLOP = 1e12
US = 1e-6

SINGLE_GPU_LINK = {
    "link_bandwidth": 1.0,
    "link_efficiency": 1.0,
    "link_latency": 0.0,
    "sockets": 1,
    "cross_socket_bandwidth": 0.0,
}


def scenario_dict(
    study: Study,
    gpu: GPU,
    n_gpus: int,
    ep: int,
    interconnect: Interconnect | None,
    prophet: bool,
    compute_efficiency: float,
    host_efficiency: float,
    model: MoEModel | None = None,
) -> dict[str, float]:
    """One configuration as a flat dict of Scenario fields (SI units). `interconnect=None`
    means a single GPU (no peers)."""
    m = model or study.model
    w = study.config.workload
    p = study.config.prophet
    link = (
        SINGLE_GPU_LINK
        if interconnect is None
        else {
            "link_bandwidth": interconnect.bandwidth_gbps_per_direction * GB,
            "link_efficiency": interconnect.payload_efficiency,
            "link_latency": interconnect.latency_us * US,
            "sockets": interconnect.sockets,
            "cross_socket_bandwidth": interconnect.cross_socket_bandwidth_gbps * GB,
        }
    )
    return {
        "n_gpus": n_gpus,
        "ep": ep,
        "peak_flops": gpu.bf16_dense_tflops * TFLOP,
        "hbm_bandwidth": gpu.memory_bandwidth_gbps * GB,
        "memory_capacity": gpu.memory_capacity_gb * GB,
        "host_bandwidth": gpu.host_link_bandwidth_gbps * GB,
        "kernel_startup": gpu.kernel_startup_us * US,
        **link,
        "num_layers": m.num_layers,
        "num_moe_layers": m.num_moe_layers,
        "hidden_size": m.hidden_size,
        "expert_ffn_size": m.expert_ffn_size,
        "num_experts": m.num_experts,
        "top_k": m.top_k,
        "num_shared_experts": m.num_shared_experts,
        "shared_expert_ffn_size": m.shared_expert_ffn_size,
        "dense_ffn_size": m.dense_ffn_size,
        "attention_params_per_layer": m.attention_params_per_layer,
        "kv_elements_per_token_per_layer": m.kv_elements_per_token_per_layer,
        "vocab_size": m.vocab_size,
        "bytes_per_param": m.bytes_per_param,
        "batch_size_per_gpu": w.batch_size_per_gpu,
        "context_length": w.context_length_tokens,
        "activation_bytes": study.activation_bytes,
        "reserved_memory": w.reserved_memory_gb * GB,
        "compute_efficiency": compute_efficiency,
        "host_efficiency": host_efficiency,
        "prophet": 1.0 if prophet else 0.0,
        "prediction_accuracy": p.prediction_accuracy,
        "comm_reduction_factor": p.comm_reduction_factor,
    }


def stack(rows: Sequence[dict[str, float]]) -> Scenario:
    """Many configurations as one vectorized Scenario (one array per field)."""
    return Scenario(**{f.name: np.array([r[f.name] for r in rows], dtype=np.float64) for f in fields(Scenario)})
