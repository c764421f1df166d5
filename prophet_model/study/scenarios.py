"""Build model Scenarios from the validated Study (catalog units -> SI units, datasheet -> attainable)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prophet_model.physics import NUMBERS, OFFLOAD_COMPUTE, Scenario
from prophet_model.physics.step import OVERLAP
from prophet_model.study.catalog import GPU, Interconnect, MoEModel
from prophet_model.study.config import Study
from prophet_model.study.rates import attainable, peer_link_share
from prophet_model.study.schema import PRECISION_BYTES, Implementation

GB = 1e9
TFLOP = 1e12
US = 1e-6


def hardware_fields(
    gpu_key: str,
    gpus: dict[str, GPU],
    interconnect: Interconnect | None,
    interconnects: dict[str, Interconnect] | None = None,
) -> dict[str, float]:
    """The GPU's attainable rates (datasheet x measured share), its start-up, and the system's links.
    `interconnect=None` means a single GPU on its own host link. The peer-copy rate (pooled experts):
    NVLink and NVSwitch: line rate x the copy-engine peer-copy share (rates.peer_link_share, from the
    catalog `interconnects`; 0 without it); PCIe: the least of the GPU's link and its share of its
    switch's uplink, each x the measured host-copy share (a DMA copy over the same PCIe links)."""
    gpu = gpus[gpu_key]
    a = attainable(gpu_key, gpus)
    hbm = gpu.memory_bandwidth_gbps * GB * a.hbm_share
    host = gpu.host_link_bandwidth_gbps * GB * a.host_share
    out = {
        "peak_flops": gpu.bf16_dense_tflops * TFLOP * a.gemm_share,
        "hbm_bandwidth": hbm,
        "stream_dense": hbm * a.stream_dense_share,
        "stream_grouped": hbm * a.stream_grouped_share,
        "memory_capacity": gpu.memory_capacity_gb * GB,
        "host_bandwidth": host,
        "kernel_startup": a.kernel_startup_s,
    }
    if interconnect is None:
        return out | {
            "gpus_per_switch": 1,
            "switch_uplink_bandwidth": host,
            "host_memory_bandwidth": np.inf,
            "cpu_sockets": 1,
            "remote_memory_share": 0.0,
            "link_bandwidth": 1.0,
            "link_efficiency": 1.0,
            "link_latency": 0.0,
            "sockets": 1,
            "cross_socket_bandwidth": 0.0,
            "peer_bandwidth": 0.0,
            "peer_over_pcie": 0.0,
            "peer_latency": 0.0,
            **ONE_NODE,
            "cpu_flops": 0.0,
        }
    n = interconnect
    if n.kind == "pcie":
        peer = (
            min(n.bandwidth_gbps_per_direction, n.pcie_switch_uplink_gbps / n.gpus_per_pcie_switch) * GB * a.host_share
        )
    else:
        peer = n.bandwidth_gbps_per_direction * GB * peer_link_share(interconnects)[0] if interconnects else 0.0
    return out | {
        "peer_bandwidth": peer,
        "peer_over_pcie": 1.0 if n.kind == "pcie" else 0.0,
        "gpus_per_switch": n.gpus_per_pcie_switch,
        "switch_uplink_bandwidth": n.pcie_switch_uplink_gbps * GB * a.host_share,
        "host_memory_bandwidth": n.host_memory_bandwidth_gbps_per_socket * GB,
        "cpu_sockets": n.cpu_sockets,
        "remote_memory_share": n.remote_memory_share,
        "link_bandwidth": n.bandwidth_gbps_per_direction * GB,
        "link_efficiency": n.payload_efficiency,
        "link_latency": n.latency_us * US,
        "sockets": n.sockets,
        "cross_socket_bandwidth": n.cross_socket_bandwidth_gbps * GB,
        "peer_latency": n.latency_per_peer_us * US,
        **(
            {
                "gpus_per_node": n.gpus_per_node,
                "nic_bandwidth": n.nic_bandwidth_gbps_per_direction * GB,
                "nic_efficiency": n.nic_payload_efficiency,
                "nic_node_latency": n.nic_latency_per_node_us * US,
            }
            if n.gpus_per_node
            else ONE_NODE
        ),
        "cpu_flops": (n.cpu_expert_tflops_per_socket or 0.0) * TFLOP,
    }


# the Scenario's multi-node fields on one node: no NIC, no latency per other node (physics/comm.py)
ONE_NODE = {"gpus_per_node": np.inf, "nic_bandwidth": 0.0, "nic_efficiency": 1.0, "nic_node_latency": 0.0}


def node_fields(hardware: dict[str, float], n_gpus: int) -> dict[str, float]:
    """The host side of n_gpus GPUs over several nodes (the catalog's cpu_sockets is per node): the nodes'
    sockets together, and peer copies (pooled experts) at the NIC's attainable rate where the GPUs span nodes
    (the GPUs that serve a shard then sit in different nodes). Unchanged on one node."""
    per_node = hardware.get("gpus_per_node", np.inf)
    if not np.isfinite(per_node) or n_gpus <= per_node:
        return {}
    nodes = -(-n_gpus // int(per_node))
    nic = hardware["nic_bandwidth"] * hardware["nic_efficiency"]
    return {"cpu_sockets": hardware["cpu_sockets"] * nodes, "peer_bandwidth": min(hardware["peer_bandwidth"], nic)}


def model_fields(m: MoEModel) -> dict[str, float]:
    return {
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
        "num_attention_heads": m.num_attention_heads,
        "head_dim": m.head_dim,
        "num_kv_heads": 1 if m.attention == "mla" else m.num_kv_heads,  # MLA: one latent, held whole by each GPU
        "vocab_size": m.vocab_size,
        "bytes_per_param": m.bytes_per_param,
    }


def implementation_fields(impl: Implementation) -> dict[str, float]:
    return {
        "fused": 1.0 if impl.kernel_structure == "fused" else 0.0,
        "kernels_per_layer": impl.kernels_per_layer,
        "kernels_per_moe_layer": impl.kernels_per_moe_layer,
        "kernels_per_expert": impl.kernels_per_expert,
        "kernels_per_shared_expert": impl.kernels_per_shared_expert,
        "kernels_head": impl.kernels_head,
    }


# The operator's options each side searches where the configuration says `auto`, in the order ties go (the first
# of equals is kept: the model's own weight precision, the configured activation precision's KV, the most adaptive
# cache policy, no overlap). A row names its side's choice of each (study/columns.py).
OPTIONS = ("weight_precision", "kv_precision", "cache_policy", "overlap")
PRECISIONS = {"bf16": 2.0, "fp8": 1.0}  # bytes per weight or KV element
BASELINE_POLICIES = ("lru", "static")
PROPHET_POLICIES = ("predicted", "lru", "static")
OVERLAPS = ("none", "two_batch")


def native_weight_precision(model: MoEModel) -> str:
    """The precision a model ships in: fp8 at 1 byte per parameter, bf16 at 2, else its bytes ("4 bytes")."""
    names = {v: k for k, v in PRECISIONS.items()}
    return names.get(float(model.bytes_per_param), f"{model.bytes_per_param:g} bytes")


def option_values(study: Study, prophet: bool, model: MoEModel | None = None) -> dict[str, tuple[str, ...]]:
    """{option: the values the side searches}: the configured value, or for `auto` every value it allows
    (weights: the model's own precision first, fp8 added to a bf16 model; a model shipped in FP8 keeps fp8; KV:
    the activations' precision first, then fp8)."""
    c = study.config
    native = native_weight_precision(model or study.model)
    w, kv = c.workload.weight_precision, c.workload.kv_precision
    policy = c.expert_cache.prophet_policy if prophet else c.expert_cache.baseline_policy
    return {
        "weight_precision": (w,) if w != "auto" else (native, "fp8") if native == "bf16" else (native,),
        "kv_precision": (kv,) if kv != "auto" else tuple(dict.fromkeys((c.workload.precision, "fp8"))),
        "cache_policy": (policy,) if policy != "auto" else PROPHET_POLICIES if prophet else BASELINE_POLICIES,
        "overlap": (c.parallel.overlap,) if c.parallel.overlap != "auto" else OVERLAPS,
    }


def option_sets(study: Study, prophet: bool, model: MoEModel | None = None) -> list[dict[str, str]]:
    """Every combination of the side's searched options (option_values), the first of each option first: the
    full search (the runner evaluates searched_sets, which leaves out what these dominate)."""
    from itertools import product

    values = option_values(study, prophet, model)
    return [dict(zip(OPTIONS, combo, strict=True)) for combo in product(*values.values())]


# Values the model gives no cost, by construction: FP8 weights (half the bytes everywhere they are held, streamed
# or copied; a GEMM rate at least BF16's) and an FP8 KV cache (half its bytes and the attention's reads) are never
# slower at a batch and never fit fewer sequences (tests/test_options.py checks both as properties). Where such a
# value is searched, the other is dominated and never evaluated; its batch grid's points are kept (batch_grid).
DOMINANT = {"weight_precision": "fp8", "kv_precision": "fp8"}


def searched_sets(study: Study, prophet: bool, model: MoEModel | None = None) -> list[dict[str, str]]:
    """The option sets the runner evaluates: option_sets without the dominated precisions (DOMINANT), the cache
    policy at its first value (each configuration then takes the policy of the highest hit rate among
    option_values' policies: the policy moves the hit rate alone, and no step rises with it;
    system_rows.best_policy), and a searched overlap as `auto` (the physics takes the faster of none and
    two_batch per configuration, physics/step.py). One set where every option is searched."""
    from itertools import product

    values = option_values(study, prophet, model)
    kept = {k: (DOMINANT[k],) if DOMINANT.get(k) in v else v for k, v in values.items()}
    kept["cache_policy"] = values["cache_policy"][:1]
    if len(values["overlap"]) > 1:
        kept["overlap"] = ("auto",)
    return [dict(zip(OPTIONS, combo, strict=True)) for combo in product(*kept.values())]


def memory_sets(study: Study, prophet: bool, model: MoEModel | None = None) -> list[dict[str, str]]:
    """The distinct weight and KV precisions of the full search (what sets the memory, and so the batch grid)."""
    seen = {(o["weight_precision"], o["kv_precision"]): o for o in option_sets(study, prophet, model)}
    return list(seen.values())


def option_fields(study: Study, gpu_key: str, options: dict[str, str], model: MoEModel | None = None) -> dict:
    """The Scenario fields of a side's options: weight bytes (bytes_per_param) and the GEMM rate over BF16's
    (fp8 on a GPU with FP8 tensor cores: fp8_dense_tflops / bf16_dense_tflops; else 1, weight-only FP8
    dequantised to BF16), KV bytes per element, the cache policy's code and two-batch overlap."""
    from prophet_model.physics.cache import POLICIES

    gpu, m = study.gpus[gpu_key], model or study.model
    weights = options["weight_precision"]
    fp8_cores = weights == "fp8" and gpu.fp8_dense_tflops is not None
    return {
        "bytes_per_param": PRECISIONS.get(weights, m.bytes_per_param),
        "weight_flops_ratio": gpu.fp8_dense_tflops / gpu.bf16_dense_tflops if fp8_cores else 1.0,
        "kv_bytes": float(PRECISION_BYTES[options["kv_precision"]]),
        "cache_policy": float(POLICIES.index(options["cache_policy"])),
        "two_batch_overlap": float(OVERLAP.index(options["overlap"])),  # auto: the faster per configuration
    }


def row_options(row: Any, prefix: str = "") -> dict[str, str]:
    """The options a result row names (a record or a pandas row; `prefix`: "baseline_" or "prophet_" of a
    comparison row)."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {k: str(get(prefix + k)) for k in OPTIONS}


def scenario_dict(
    study: Study,
    gpu_key: str,
    n_gpus: int,
    ep: int,
    interconnect: Interconnect | None,
    prophet: bool,
    model: MoEModel | None = None,
    attention_tp: int = 1,
    options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One configuration as a flat dict of Scenario fields: numbers (SI units), and the routing traces
    (physics.scenario_from makes a Scenario of it). `interconnect=None` means a single GPU (no peers).
    `options`: the side's precision, cache policy and overlap (None: the first of those it searches)."""
    w = study.config.workload
    options = options or option_sets(study, prophet, model)[0]
    p = study.config.prophet
    hardware = hardware_fields(gpu_key, study.gpus, interconnect, study.interconnects)
    return {
        "n_gpus": n_gpus,
        "ep": ep,
        "attention_tp": float(attention_tp),
        "pooled": 1.0 if study.config.experts.placement == "pool" else 0.0,
        **hardware,
        **node_fields(hardware, n_gpus),
        "offload_compute": float(OFFLOAD_COMPUTE.index(study.config.experts.offload_compute)),
        **model_fields(model or study.model),
        **implementation_fields(study.config.implementation),
        "batch_size_per_gpu": w.batch_size_per_gpu,
        "context_length": w.context_length_tokens,
        "activation_bytes": study.activation_bytes,
        "reserved_memory": w.reserved_memory_gb * GB,
        "prophet": 1.0 if prophet else 0.0,
        "prediction_accuracy": p.prediction_accuracy,
        "comm_reduction_factor": np.nan if p.comm_reduction_factor is None else p.comm_reduction_factor,
        "resident_override": np.nan,
        "load_imbalance": 1.0,
        "prefetch_window": 1.0 if p.prefetch_policy == "window" else 0.0,
        **cache_fields(study, prophet),
        # a routing trace records the study's model: a system serving its own model routes uniformly (checks.py)
        **({"routing_trace": 0.0} if model is not None and model is not study.model else {}),
        **option_fields(study, gpu_key, options, model),
    }


def cache_fields(study: Study, prophet: bool) -> dict[str, Any]:
    """The expert cache's memory share and the routing, as Scenario fields (numbers, and the routing traces the
    routing_trace id names); the cache policy is a side's option (option_fields)."""
    c, r = study.config.expert_cache, study.config.routing
    return {
        "routing_skew": r.zipf_exponent if r.distribution == "zipf" else 0.0,
        "routing_trace": float(study.routing_trace),
        "traces": study.traces,
        "temporal_reuse": r.temporal_reuse,
        "inter_layer_affinity": np.nan if r.inter_layer_affinity is None else r.inter_layer_affinity,
        "dedup_dispatch": 1.0,
        "cache_memory_share": c.memory_share,
        "overlap_override": np.nan,
    }


def stack(rows: Sequence[dict[str, Any]]) -> Scenario:
    """Many configurations as one vectorized Scenario (one array per numeric field; the first row's traces)."""
    return Scenario(
        **{k: np.array([r[k] for r in rows], dtype=np.float64) for k in NUMBERS}, traces=rows[0].get("traces", {})
    )


def concatenated(parts: Sequence[Scenario], lengths: Sequence[int]) -> Scenario:
    """Scenarios of one study (the same traces), the i-th broadcast to lengths[i] values, one after another as one
    Scenario: one model call evaluates them all (the model is elementwise). A field that is the same scalar in
    every part stays a scalar; per-part scalars are repeated."""
    out = {}
    for name in NUMBERS:
        values = [np.asarray(getattr(s, name), dtype=np.float64) for s in parts]
        if all(v.ndim == 0 for v in values):
            scalars = np.array(values)
            out[name] = scalars[0] if (scalars == scalars[0]).all() else np.repeat(scalars, lengths)
        else:
            out[name] = np.concatenate([np.broadcast_to(v, (k,)) for v, k in zip(values, lengths, strict=True)])
    return Scenario(**out, traces=parts[0].traces)
