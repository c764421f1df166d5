"""Model vs measured: the validation measurements (validation/measurements/<machine>/) predicted by
the model's own time terms (validation/machines.yml names the GPU and interconnect of each machine).

Two predictions per point, neither fitted to the validated points:
- `datasheet`: datasheet peaks and line rates, no kernel start-up, every efficiency 1;
- `model` (the model as it stands): each kernel's start-up time and the attainable FLOP/s and HBM
  bandwidth come from independent microbenchmarks (`ceilings`: copies, square GEMMs and, with
  several GPUs, kernel writes into the peer, never the FFN, all-to-all or MoE layer); a link
  carries data at its measured ceiling where one exists, else at the catalog's payload
  efficiency (sourced from NCCL); the all-to-all latency is the catalog's.
`summary.calibrated` is a third, clearly separate variant that fits one efficiency per primitive to show
what calibration changes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from prophet_model import physics as m
from prophet_model.errors import UserError
from prophet_model.measured.measurements import BF16, hardware, large_alltoalls, machine_ceilings
from prophet_model.study.catalog import GPU, Interconnect, MoEModel
from prophet_model.study.config import Study
from prophet_model.study.measured_csv import MeasurementError
from prophet_model.study.rates import MACHINES, Ceilings, ceilings, machine_specs


def base_scenario(gpu: GPU, net: Interconnect | None, ceil: Ceilings | None = None) -> m.Scenario:
    """A one-layer, everything-resident scenario. Without `ceil`: datasheet values, no start-up,
    line rates. With it: the model's physics (start-up, attainable ceilings and weight-streaming
    rates, and links at their measured ceiling where one was measured, else at the catalog's payload
    efficiency)."""
    if ceil is None or net is None:
        link_efficiency = 1.0
    elif ceil.link_bandwidth is not None:
        link_efficiency = ceil.link_bandwidth / (net.bandwidth_gbps_per_direction * 1e9)
    else:
        link_efficiency = net.payload_efficiency
    hbm = ceil.hbm_bandwidth if ceil else gpu.memory_bandwidth_gbps * 1e9
    return m.Scenario(
        n_gpus=1,
        ep=1,
        peak_flops=ceil.gemm_flops if ceil else gpu.bf16_dense_tflops * 1e12,
        hbm_bandwidth=hbm,
        stream_dense=(ceil.stream_dense or hbm) if ceil else hbm,
        stream_grouped=(ceil.stream_grouped or hbm) if ceil else hbm,
        memory_capacity=1e15,
        host_bandwidth=gpu.host_link_bandwidth_gbps * 1e9,
        gpus_per_switch=1,
        switch_uplink_bandwidth=gpu.host_link_bandwidth_gbps * 1e9,
        host_memory_bandwidth=np.inf,
        cpu_sockets=1,
        remote_memory_share=0.0,
        link_bandwidth=(net.bandwidth_gbps_per_direction if net else 1.0) * 1e9,
        link_efficiency=link_efficiency,
        kernel_startup=ceil.kernel_startup_s if ceil else 0.0,
        link_latency=(net.latency_us if net else 0.0) * 1e-6,
        sockets=net.sockets if net else 1,
        cross_socket_bandwidth=(net.cross_socket_bandwidth_gbps if net else 0.0) * 1e9,
        num_layers=1,
        num_moe_layers=1,
        hidden_size=1,
        expert_ffn_size=1,
        num_experts=1,
        top_k=1,
        num_shared_experts=0,
        shared_expert_ffn_size=0,
        dense_ffn_size=0,
        attention_params_per_layer=1,
        kv_elements_per_token_per_layer=1,
        num_attention_heads=1,
        head_dim=1,
        vocab_size=1,
        bytes_per_param=BF16,
        fused=0,
        kernels_per_layer=0,
        kernels_per_moe_layer=0,
        kernels_per_expert=m.KERNELS_PER_EXPERT,
        kernels_head=0,
        kernels_per_shared_expert=0,
        batch_size_per_gpu=1,
        context_length=1,
        activation_bytes=BF16,
        reserved_memory=0,
        prophet=0,
        prediction_accuracy=1.0,
        comm_reduction_factor=1.0,
        load_imbalance=0,  # the benchmarks route exactly balanced loads (bench.routing_counts)
    )


def scalar(x) -> float:
    """The first element of a scalar or array, as a float."""
    return float(np.asarray(x).ravel()[0])


def predict_copy(gpu: GPU, nbytes: float) -> float:
    """Host-link transfer, as the model's fetch term (model.fetch_time): bytes / host-link bandwidth."""
    return nbytes / (gpu.host_link_bandwidth_gbps * 1e9)


def predict_ffn(gpu: GPU, hidden: int, ffn: int, tokens: int, ceil: Ceilings | None = None) -> float:
    """One expert on T tokens: the model's expert_ffn_time (five kernels, each start-up + roofline)."""
    s = replace(base_scenario(gpu, None, ceil), hidden_size=hidden, expert_ffn_size=ffn).arrays()
    return scalar(m.expert_ffn_time(np.float64(tokens), s))


def _a2a_scenario(gpu: GPU, net: Interconnect, per_rank_bytes: float, ep: int, ceil: Ceilings | None) -> m.Scenario:
    """An all-to-all whose per-rank buffer is `per_rank_bytes`, split evenly over ep ranks."""
    return replace(
        base_scenario(gpu, net, ceil),
        n_gpus=ep,
        ep=ep,
        num_experts=ep,
        top_k=1,
        hidden_size=1,
        activation_bytes=1,
        batch_size_per_gpu=per_rank_bytes,
    )


def predict_alltoall(
    gpu: GPU, net: Interconnect, per_rank_bytes: float, ep: int, ceil: Ceilings | None = None
) -> float:
    """An all-to-all of `per_rank_bytes` per rank over ep GPUs: the model's alltoall_time."""
    return scalar(m.alltoall_time(_a2a_scenario(gpu, net, per_rank_bytes, ep, ceil).arrays()))


def predict_moe(
    gpu: GPU,
    net: Interconnect,
    model: MoEModel,
    tokens: int,
    ep: int,
    local: float | None,
    ceil: Ceilings | None = None,
) -> tuple[float, float]:
    """(layer, all-to-alls) of one MoE layer of `model` over ep GPUs, `tokens` per GPU: expert_time +
    2 all-to-alls, and the 2 all-to-alls. A local fraction p keeps that share of assignments on
    their own GPU, i.e. a volume reduction ((ep-1)/ep) / (1-p) over uniform routing."""
    s = replace(
        base_scenario(gpu, net, ceil),
        n_gpus=ep,
        ep=ep,
        hidden_size=model.hidden_size,
        expert_ffn_size=model.expert_ffn_size,
        num_experts=model.num_experts,
        top_k=model.top_k,
        batch_size_per_gpu=tokens,
    )
    if local is not None:
        s = replace(s, prophet=1, comm_reduction_factor=((ep - 1) / ep) / (1 - local))
    a = s.arrays()
    comm = scalar(m.comm_time(a))
    return scalar(m.expert_time(a) + m.startup_time(a)) + comm, comm


def _predict(r, gpu: GPU, net: Interconnect | None, study: Study, ceil: Ceilings | None) -> float:
    if r.benchmark in ("copy_h2d", "copy_d2h"):
        return predict_copy(gpu, r.bytes)
    if r.benchmark == "expert_ffn":
        return predict_ffn(gpu, int(r.hidden), int(r.ffn), int(r.tokens_per_rank), ceil)
    if r.benchmark == "alltoall":
        return predict_alltoall(gpu, net, r.bytes, int(r.ep), ceil)
    local = None if r.local_fraction == "uniform" else float(r.local_fraction)
    layer, comm = predict_moe(gpu, net, study.models[r.model], int(r.tokens_per_rank), int(r.ep), local, ceil)
    return layer if r.part == "layer" else comm


def with_predictions(df: pd.DataFrame, study: Study, machines_file: Path = MACHINES) -> pd.DataFrame:
    """Add, to every row, predicted_s and error_pct = 100 (predicted - measured) / measured for the
    model (start-up and ceilings from the machine's `ceilings` folder in machines.yml; links at
    their measured ceiling, else the catalog's payload efficiency), and predicted_datasheet_s /
    error_datasheet_pct at datasheet values."""
    machines = machine_specs(machines_file)
    for name in sorted({str(k) for k in df.machine}):
        if name not in machines:
            raise UserError(
                f"validation/measurements: rows of machine {name[:40]!r}, not in {machines_file}; "
                f"allowed: {', '.join(machines)}"
            )
        if not machines[name].get("ceilings"):
            raise MeasurementError(
                f"{machines_file}: {name} names no 'ceilings' folder; run validation/measure.py --parts "
                "ceilings on that machine and add ceilings: <folder under validation/measurements>"
            )
    unknown = sorted({str(k) for k in df[df.benchmark == "moe_layer"].model} - set(study.models))
    if unknown:
        raise UserError(
            f"validation/measurements: moe_layer rows of model {', '.join(unknown)[:200]}, not in the "
            f"catalog; allowed: {', '.join(sorted(study.models))}"
        )
    ceil = {name: machine_ceilings(study, name, machines_file) for name in set(df.machine)}
    model, datasheet = [], []
    for r in df.itertuples():
        gpu, net = hardware(study, machines[r.machine])
        datasheet.append(_predict(r, gpu, net, study, None))
        model.append(_predict(r, gpu, net, study, ceil[r.machine]))
    out = df.copy()
    out["predicted_s"] = model
    out["error_pct"] = 100 * (out.predicted_s - out.median_s) / out.median_s
    out["predicted_datasheet_s"] = datasheet
    out["error_datasheet_pct"] = 100 * (out.predicted_datasheet_s - out.median_s) / out.median_s
    return out


def scaling_predictions(
    study: Study,
    machine: str = "nvidia-h200-x8",
    eps: tuple[int, ...] = (2, 4, 8),
    sizes: tuple[int, ...] = tuple(4096 * 4**i for i in range(9)),
    machines_file: Path = MACHINES,
) -> pd.DataFrame:
    """Model all-to-all times at several expert-parallel degrees on `machine` (for the runs to come)."""
    spec = machine_specs(machines_file)[machine]
    gpu, net = hardware(study, spec)
    ceil = ceilings(spec["ceilings"])
    return pd.DataFrame(
        [
            {"machine": machine, "ep": ep, "bytes": b, "predicted_s": predict_alltoall(gpu, net, b, ep, ceil)}
            for ep in eps
            for b in sizes
        ]
    )


def large_alltoall_error(
    df: pd.DataFrame,
    study: Study,
    link_bandwidth: float,
    machine: str = "nvidia-h200-x2",
    machines_file: Path = MACHINES,
) -> float:
    """Median |error| (%) of the model for the large CUDA-graph all-to-alls on `machine`, had its
    link ceiling been `link_bandwidth` (bytes/s) instead of the measured one: a what-if, never a
    prediction the page's verdicts use."""
    spec = machine_specs(machines_file)[machine]
    gpu, net = hardware(study, spec)
    ceil = replace(ceilings(spec["ceilings"]), link_bandwidth=link_bandwidth)
    g = large_alltoalls(df[df.machine == machine])
    predicted = np.array([predict_alltoall(gpu, net, b, int(ep), ceil) for b, ep in zip(g.bytes, g.ep, strict=True)])
    return float(np.median(np.abs(100 * (predicted - g.median_s) / g.median_s)))
