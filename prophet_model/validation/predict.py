"""Model vs measured: the validation measurements (validation/measurements/<machine>/) predicted by
the model's own time terms (validation/machines.yml names the GPU and interconnect of each machine).

Two predictions per point, neither fitted to the validated points:
- `datasheet`: datasheet peaks and line rates, no kernel start-up, every efficiency 1;
- `model` (the model as it stands): each kernel's start-up time and the attainable FLOP/s and HBM
  bandwidth come from independent microbenchmarks (`ceilings`: copies, square GEMMs and, with
  several GPUs, kernel writes into the peer, never the FFN, all-to-all or MoE layer); a link
  carries data at its measured ceiling where one exists, else at the catalog's payload
  efficiency (sourced from NCCL); the all-to-all latency is the catalog's.
`calibrated` is a third, clearly separate variant that fits one efficiency per primitive to show
what calibration changes."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import model as m
from ..catalog import GPU, Interconnect, MoEModel
from ..config import Study
from ..measured import (  # noqa: F401 (CEILING_COPY_RANGE and _line re-exported for the tests)
    CEILING_COPY_RANGE,
    MACHINES,
    MEASUREMENTS,
    Ceilings,
    _line,
    ceilings,
    machine_specs,
)
from ..scenarios import model_fields

ROOT = Path(__file__).resolve().parents[2]

BF16 = 2
PRIMITIVES = {
    ("copy_h2d", "copy"): "host→device copy",
    ("copy_d2h", "copy"): "device→host copy",
    ("expert_ffn", "ffn"): "expert FFN (GPU time)",
    ("expert_ffn", "ffn_eager"): "expert FFN (one eager launch)",
    ("alltoall", "graph"): "all-to-all (CUDA graph)",
    ("alltoall", "eager"): "all-to-all (eager call)",
    ("moe_layer", "layer"): "MoE layer",
    ("moe_layer", "comm"): "MoE layer: all-to-alls",
}


def hardware(study: Study, spec: dict) -> tuple[GPU, Interconnect | None]:
    """The catalog GPU and interconnect (None on a one-GPU machine) that a machines.yml entry names."""
    return study.gpus[spec["gpu"]], study.interconnects[spec["interconnect"]] if spec.get("interconnect") else None


def load(root: Path = MEASUREMENTS, machines_file: Path = MACHINES) -> pd.DataFrame:
    """Every measurement of the machines listed in machines.yml, with a `primitive` label."""
    machines = machine_specs(machines_file)
    # one run per machine (<machine>/measurements.csv) or one per world size (<machine>/ranksN/, bench.py --subdir)
    files = [root / name / "measurements.csv" for name in machines]
    files += [f for name in machines for f in sorted((root / name).glob("ranks*/measurements.csv"))]
    frames = [pd.read_csv(f) for f in files if f.is_file()]
    df = pd.concat(frames, ignore_index=True)
    df["primitive"] = [PRIMITIVES[(b, p)] for b, p in zip(df.benchmark, df.part, strict=True)]
    return df


def _base(gpu: GPU, net: Interconnect | None, ceil: Ceilings | None = None) -> m.Scenario:
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
        n_gpus=1, ep=1, peak_flops=ceil.gemm_flops if ceil else gpu.bf16_dense_tflops * 1e12, hbm_bandwidth=hbm,
        stream_dense=(ceil.stream_dense or hbm) if ceil else hbm, stream_grouped=(ceil.stream_grouped or hbm) if ceil else hbm,
        memory_capacity=1e15, host_bandwidth=gpu.host_link_bandwidth_gbps * 1e9, gpus_per_switch=1,
        switch_uplink_bandwidth=gpu.host_link_bandwidth_gbps * 1e9, host_memory_bandwidth=np.inf, cpu_sockets=1,
        remote_memory_share=0.0, link_bandwidth=(net.bandwidth_gbps_per_direction if net else 1.0) * 1e9,
        link_efficiency=link_efficiency, kernel_startup=ceil.kernel_startup_s if ceil else 0.0,
        link_latency=(net.latency_us if net else 0.0) * 1e-6, sockets=net.sockets if net else 1,
        cross_socket_bandwidth=(net.cross_socket_bandwidth_gbps if net else 0.0) * 1e9,
        num_layers=1, num_moe_layers=1, hidden_size=1, expert_ffn_size=1, num_experts=1, top_k=1,
        num_shared_experts=0, shared_expert_ffn_size=0, dense_ffn_size=0, attention_params_per_layer=1,
        kv_elements_per_token_per_layer=1, num_attention_heads=1, head_dim=1, vocab_size=1, bytes_per_param=BF16,
        fused=0, kernels_per_layer=0, kernels_per_moe_layer=0, kernels_per_expert=m.KERNELS_PER_EXPERT, kernels_head=0,
        kernels_per_shared_expert=0,
        batch_size_per_gpu=1, context_length=1, activation_bytes=BF16, reserved_memory=0,
        prophet=0, prediction_accuracy=1.0, comm_reduction_factor=1.0,
        load_imbalance=0,  # the benchmarks route exactly balanced loads (bench.routing_counts)
    )  # fmt: skip


def machine_ceilings(study: Study, machine: str, machines_file: Path = MACHINES) -> Ceilings:
    """A machine's own ceilings; where it did not run the weight-streaming microbenchmark, the streaming
    shares measured on its GPU kind (prophet_model.measured.attainable) times its own HBM ceiling."""
    spec = machine_specs(machines_file)[machine]
    c = ceilings(spec["ceilings"])
    if c.stream_dense and c.stream_grouped:
        return c
    from ..measured import attainable

    a = attainable(spec["gpu"], study.gpus)
    return replace(
        c, stream_dense=c.hbm_bandwidth * a.stream_dense_share, stream_grouped=c.hbm_bandwidth * a.stream_grouped_share
    )


def _one(x) -> float:
    return float(np.asarray(x).ravel()[0])


def predict_copy(gpu: GPU, nbytes: float) -> float:
    """Host-link transfer, as the model's fetch term (model.fetch_time): bytes / host-link bandwidth."""
    return nbytes / (gpu.host_link_bandwidth_gbps * 1e9)


def predict_ffn(gpu: GPU, hidden: int, ffn: int, tokens: int, ceil: Ceilings | None = None) -> float:
    """One expert on T tokens: the model's expert_ffn_time (five kernels, each start-up + roofline)."""
    s = replace(_base(gpu, None, ceil), hidden_size=hidden, expert_ffn_size=ffn).arrays()
    return _one(m.expert_ffn_time(np.float64(tokens), s))


def _a2a_scenario(gpu: GPU, net: Interconnect, per_rank_bytes: float, ep: int, ceil: Ceilings | None) -> m.Scenario:
    """An all-to-all whose per-rank buffer is `per_rank_bytes`, split evenly over ep ranks."""
    return replace(_base(gpu, net, ceil), n_gpus=ep, ep=ep, num_experts=ep, top_k=1, hidden_size=1,
                   activation_bytes=1, batch_size_per_gpu=per_rank_bytes)  # fmt: skip


def predict_alltoall(
    gpu: GPU, net: Interconnect, per_rank_bytes: float, ep: int, ceil: Ceilings | None = None
) -> float:
    return _one(m.alltoall_time(_a2a_scenario(gpu, net, per_rank_bytes, ep, ceil).arrays()))


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
    s = replace(_base(gpu, net, ceil), n_gpus=ep, ep=ep, hidden_size=model.hidden_size, expert_ffn_size=model.expert_ffn_size,
                num_experts=model.num_experts, top_k=model.top_k, batch_size_per_gpu=tokens)  # fmt: skip
    if local is not None:
        s = replace(s, prophet=1, comm_reduction_factor=((ep - 1) / ep) / (1 - local))
    a = s.arrays()
    comm = _one(m.comm_time(a))
    return _one(m.expert_time(a) + m.startup_time(a)) + comm, comm


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
    for name in sorted(set(df.machine)):
        if not machines[name].get("ceilings"):
            raise ValueError(
                f"{machines_file}: {name} names no 'ceilings' folder; run validation/bench.py --parts "
                "ceilings on that machine and add ceilings: <folder under validation/measurements>"
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


LARGE_A2A_BYTES = 16 << 20  # "large" all-to-all messages: at least 16 MiB per rank


def graph_alltoalls(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of all-to-alls timed in CUDA graphs."""
    return df[(df.benchmark == "alltoall") & (df.part == "graph")]


def large_alltoalls(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of CUDA-graph all-to-alls with at least LARGE_A2A_BYTES per rank."""
    g = graph_alltoalls(df)
    return g[g.bytes >= LARGE_A2A_BYTES]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Median and worst |error| per primitive (and for large all-to-all messages alone)."""
    groups = [(p, g) for p, g in df.groupby("primitive", sort=False)]
    big = large_alltoalls(df)
    groups.append(("all-to-all (CUDA graph), ≥ 16 MiB per rank", big))
    rows = []
    for name, g in groups:
        err = g.error_pct.abs()
        worst = g.loc[err.idxmax()]
        row = {"primitive": name, "points": len(g), "median |error| %": round(float(err.median()), 1),
               "median error % (signed)": round(float(g.error_pct.median()), 1),
               "worst |error| %": round(float(err.max()), 1), "worst at": _where(worst)}  # fmt: skip
        if "error_datasheet_pct" in g:
            row["datasheet only: median |error| %"] = round(float(g.error_datasheet_pct.abs().median()), 1)
        rows.append(row)
    return pd.DataFrame(rows)


def _where(r: pd.Series) -> str:
    if r.benchmark in ("copy_h2d", "copy_d2h", "alltoall"):
        return f"{r.machine}, {r.bytes / 2**20:g} MiB"
    if r.benchmark == "expert_ffn":
        return f"{r.machine}, {r.model}, {int(r.tokens_per_rank)} tokens"
    return f"{r.machine}, {int(r.tokens_per_rank)} tokens/GPU, local {r.local_fraction}"


def alltoall_regimes(df: pd.DataFrame, hidden: int, top_k: int) -> dict[str, float]:
    """Where the measured (CUDA-graph) all-to-all stops being latency-bound: the floor, the largest
    buffer within 1.5x of it, the smallest at 2x, the bandwidth reached by the largest, and those
    buffers as decode tokens per GPU (buffer = tokens * top_k * hidden * 2 bytes)."""
    g = graph_alltoalls(df).sort_values("bytes")
    floor = float(g.median_s.min())
    latency_bound = g[g.median_s <= 1.5 * floor]
    bandwidth_bound = g[g.median_s >= 2 * floor]
    per_token = top_k * hidden * BF16
    largest = g.iloc[-1]
    ep = int(largest.ep)
    return {
        "floor_us": 1e6 * floor,
        "latency_bound_up_to_bytes": float(latency_bound.bytes.max()),
        "bandwidth_bound_from_bytes": float(bandwidth_bound.bytes.min()) if not bandwidth_bound.empty else float("nan"),
        "latency_bound_up_to_tokens": float(latency_bound.bytes.max()) / per_token,
        "bandwidth_bound_from_tokens": (float(bandwidth_bound.bytes.min()) / per_token)
        if not bandwidth_bound.empty
        else float("nan"),
        "largest_bytes": float(largest.bytes),
        "largest_gbps": float(largest.bytes) * (ep - 1) / ep / (float(largest.median_s) - floor) / 1e9,
    }


def calibrated(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The separate, fitted variant: one efficiency per primitive (median of predicted/measured over
    the bandwidth- or compute-dominated points), and for the all-to-all a latency and an efficiency
    from a least-squares line through the CUDA-graph points, starting from the datasheet predictions.
    Returns (fitted values, errors after)."""
    out = df.drop(columns=["predicted_s", "error_pct", "error_datasheet_pct"]).rename(
        columns={"predicted_datasheet_s": "predicted_s"}
    )
    fits = []
    for prim, sel in (("host→device copy", out.primitive == "host→device copy"),
                      ("device→host copy", out.primitive == "device→host copy"),
                      ("expert FFN (GPU time)", out.primitive == "expert FFN (GPU time)")):  # fmt: skip
        g = out[sel]
        eff = float(np.median(g.predicted_s / g.median_s))
        out.loc[sel, "predicted_s"] = g.predicted_s / eff
        fits.append({"primitive": prim, "fitted": f"efficiency {eff:.3f} of the datasheet"})
    sel = out.primitive == "all-to-all (CUDA graph)"
    g = out[sel]
    moved = g.bytes * (g.ep - 1) / g.ep
    slope, intercept = np.polyfit(moved, g.median_s, 1)
    out.loc[sel, "predicted_s"] = intercept + slope * moved
    fits.append(
        {
            "primitive": "all-to-all (CUDA graph)",
            "fitted": f"latency {1e6 * intercept:.1f} µs, bandwidth {1e-9 / slope:.0f} GB/s per direction",
        }
    )
    out["error_pct"] = 100 * (out.predicted_s - out.median_s) / out.median_s
    keep = out.primitive.isin([f["primitive"] for f in fits])
    return pd.DataFrame(fits), summary(out[keep])


REASONS = {
    "host→device copy": "A pinned copy reaches about 85% of the PCIe 5.0 x16 datasheet rate (protocol overhead), and small copies add a fixed DMA set-up time the model lacks.",
    "device→host copy": "As host→device: about 85% of the datasheet rate, plus a fixed set-up time for small copies.",
    "expert FFN (GPU time)": "Small GEMMs stream their weights more slowly than the large copies that set the attainable HBM rate, and the start-up of a GEMM kernel exceeds that of a copy.",
    "expert FFN (one eager launch)": "Adds eager PyTorch's CPU launch latency (tens of microseconds per FFN) to the GPU time: a cost of the framework, not of the GPU.",
    "MoE layer": "The measured layer is a plain eager PyTorch implementation: host synchronisations (split sizes), a Python loop over the local experts and index kernels dominate; the model counts only the experts' kernels and two all-to-alls.",
    "MoE layer: all-to-alls": "Three eager collectives (split sizes, dispatch, combine) with host synchronisation between them: each costs the eager floor of the all-to-all rows, not the NCCL latency the model assumes.",
    "all-to-all (eager call)": "One all-to-all called from Python pays tens of microseconds of CPU and launch overhead before NCCL starts; the model's latency is NCCL's own.",
    "all-to-all (CUDA graph)": "Large buffers move data more slowly than the NVLink payload rate (see below); small ones sit on NCCL's latency floor, which the model's assumed latency matches.",
    "all-to-all (CUDA graph), ≥ 16 MiB per rank": "The link is not the limit: kernels writing straight into the peer's memory from every SM (no NCCL) move data at about the payload rate the model uses, and NCCL's own performance model expects about the same. NCCL's all-to-all moves the same bytes more slowly; its chunk, buffer and channel settings do not change that, and leaving out the share a GPU keeps for itself changes nothing either. The benchmark's buffers are not registered with NCCL, so every byte bound for the other GPU also lands in an NCCL staging buffer there and is copied again into the output, a copy the model does not count. NCCL drives the link with one thread block per channel, and a plain copy with that many blocks reaches less than the link ceiling, by an amount that depends on the copy code (tables below). The gap is a property of NCCL's code path; the model, one latency and one rate for the hardware, does not describe it. A zero-copy all-to-all, which would tell the staging copy from the block count as the cause, is not yet measured.",
}


def verdicts(summary_df: pd.DataFrame, limit_pct: float = 25.0) -> pd.DataFrame:
    """The summary with a verdict per primitive and, where the median error exceeds the limit, why."""
    out = summary_df.copy()
    ok = out["median |error| %"] <= limit_pct
    out["verdict"] = ["within ±25%" if k else "off by more than 25%" for k in ok]
    out["why"] = [REASONS.get(p, "") if not k else "" for p, k in zip(out.primitive, ok, strict=True)]
    return out


def scaling_predictions(study: Study, machine: str = "nvidia-h200-x8", eps: tuple[int, ...] = (2, 4, 8),
                        sizes: tuple[int, ...] = tuple(4096 * 4**i for i in range(9)), machines_file: Path = MACHINES) -> pd.DataFrame:  # fmt: skip
    """Model all-to-all times at several expert-parallel degrees on `machine` (for the runs to come)."""
    spec = machine_specs(machines_file)[machine]
    gpu, net = hardware(study, spec)
    ceil = ceilings(spec["ceilings"])
    return pd.DataFrame([{"machine": machine, "ep": ep, "bytes": b, "predicted_s": predict_alltoall(gpu, net, b, ep, ceil)}
                         for ep in eps for b in sizes])  # fmt: skip


def ceilings_table(study: Study, machines_file: Path = MACHINES) -> pd.DataFrame:
    """The measured ceilings of each machine, HBM and GEMM as 'attainable of datasheet'."""
    rows, seen = [], set()
    for spec in machine_specs(machines_file).values():
        if spec["ceilings"] in seen or not (MEASUREMENTS / spec["ceilings"] / "ceilings.csv").is_file():
            continue
        seen.add(spec["ceilings"])
        c, gpu = ceilings(spec["ceilings"]), study.gpus[spec["gpu"]]
        rows.append({
            "measured on": spec["ceilings"],
            "start-up (µs)": round(1e6 * c.kernel_startup_s, 2),
            "1-element kernel (µs)": round(1e6 * c.kernel_chain_s, 2),
            "HBM (GB/s)": f"{c.hbm_bandwidth / 1e9:,.0f} of {gpu.memory_bandwidth_gbps:,.0f}",
            "BF16 GEMM (TFLOP/s)": f"{c.gemm_flops / 1e12:,.0f} of {gpu.bf16_dense_tflops:,.0f}",
            "link (GB/s each way)": f"{c.link_bandwidth / 1e9:,.0f}" if c.link_bandwidth else "not measured",
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("measured on")


def alltoall_rates(df: pd.DataFrame, study: Study, machines_file: Path = MACHINES) -> pd.DataFrame:
    """For each large CUDA-graph all-to-all: the rate the data moved at (bytes crossing per direction
    over time above the floor) beside the link's measured ceiling (kernel writes, no NCCL), the
    catalog's payload rate and the line rate."""
    machines = machine_specs(machines_file)
    rows = []
    for machine, gm in graph_alltoalls(df).groupby("machine", sort=True):
        net = study.interconnects[machines[machine]["interconnect"]]
        link = ceilings(machines[machine]["ceilings"]).link_bandwidth
        floor = float(gm.median_s.min())
        for r in gm[gm.bytes >= LARGE_A2A_BYTES].sort_values("bytes").itertuples():
            moved = r.bytes * (r.ep - 1) / r.ep
            rows.append({"machine": machine, "per-rank buffer (MiB)": r.bytes / 2**20,
                         "NCCL all-to-all (GB/s)": round(moved / (r.median_s - floor) / 1e9),
                         "link ceiling (GB/s)": round(link / 1e9) if link else "",
                         "payload rate (GB/s)": round(net.bandwidth_gbps_per_direction * net.payload_efficiency),
                         "line rate (GB/s)": round(net.bandwidth_gbps_per_direction)})  # fmt: skip
    return pd.DataFrame(rows)


NCCL_SETTINGS = {  # folder under <machine>/nccl-settings/: the setting, short enough for a table cell
    "default": "NCCL defaults, a second run",
    "chunk2m": "NCCL_P2P_NVL_CHUNKSIZE = 2 MiB",
    "ch32-chunk2m": "the same + NCCL_MIN/MAX_P2P_NCHANNELS = 32",
    "buff16m-chunk2m": "NCCL_BUFFSIZE = 16 MiB + NCCL_P2P_NVL_CHUNKSIZE = 2 MiB",
}


def nccl_settings(machine: str = "nvidia-h200-x2", root: Path = MEASUREMENTS) -> pd.DataFrame:
    """The large CUDA-graph all-to-alls again under other NCCL settings (<machine>/nccl-settings/),
    beside the committed run: whether NCCL's configuration, not the link, sets their rate."""
    runs = {"committed run": root / machine / "measurements.csv"}
    found = {d.name: d for d in (root / machine / "nccl-settings").glob("*")}
    order = [k for k in NCCL_SETTINGS if k in found] + sorted(set(found) - set(NCCL_SETTINGS))
    runs |= {NCCL_SETTINGS.get(k, k): found[k] / "measurements.csv" for k in order}
    rows = []
    for name, path in runs.items():
        if not path.is_file():
            continue
        d = pd.read_csv(path)
        d = large_alltoalls(d)
        rows.append(
            {"run": name}
            | {f"{b / 2**20:g} MiB (µs)": round(1e6 * t, 1) for b, t in zip(d.bytes, d.median_s, strict=True)}
        )
    return pd.DataFrame(rows)


def alltoall_split(machine: str = "nvidia-h200-x2", root: Path = MEASUREMENTS) -> pd.DataFrame:
    """<machine>/alltoall_split.csv (bench.py --parts alltoall_split): each buffer's all-to-all in
    full, without the share a rank keeps (only bytes that cross the link) and with only that share."""
    d = pd.read_csv(root / machine / "alltoall_split.csv")
    t = d.pivot(index="bytes", columns="part", values="median_s").sort_index()
    names = {"full": "full (µs)", "remote_only": "crossing share only (µs)", "self_only": "kept share only (µs)"}
    out = (1e6 * t[list(names)]).round(1).rename(columns=names)
    out.index = [f"{b / 2**20:g} MiB" for b in out.index]
    out.index.name = "per-rank buffer"
    out.columns.name = None
    return out


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


PROBE = "probe"  # <machine>/probe/: validation/probe_p2p_path.py's output and NCCL's INFO log of that run
PROBE_WORD = 2  # bytes per element of the probe's bf16 buffers
PROBE_BYTES = 64 << 20  # bytes of each probe copy


def link_write_rate(machine: str, nbytes: int, root: Path = MEASUREMENTS) -> float:
    """Bytes/s of the link-ceiling microbenchmark (ceiling_link, both GPUs writing) at one size:
    `nbytes` over its median time, fixed costs included, as the probe's rates are."""
    d = pd.read_csv(root / machine / "ceilings.csv")
    row = d[(d.benchmark == "ceiling_link") & (d.part == "bidirectional") & (d.bytes == nbytes)]
    if len(row) != 1:
        raise ValueError(f"{root / machine / 'ceilings.csv'}: no bidirectional ceiling_link row of {nbytes} bytes")
    return nbytes / float(row.median_s.iloc[0])


def link_blocks(machine: str = "nvidia-h200-x2", root: Path = MEASUREMENTS) -> pd.DataFrame:
    """<machine>/probe/probe.csv as GB/s per direction: a copy kernel run with a fixed number of
    thread blocks (rows) writes into the other GPU's memory (remote, both GPUs at once) or within
    its own (local); one column per kind and shape (threads per block, bytes each thread moves per
    iteration)."""
    path = root / machine / PROBE / "probe.csv"
    d = pd.read_csv(path)
    d = d[d.part != "nccl_alltoall"]
    if (d.bytes != PROBE_BYTES).any():
        raise ValueError(f"{path}: every copy should move {PROBE_BYTES} bytes (PROBE_BYTES)")
    threads = 32 * d.warps
    d = d.assign(
        kind=[f"{p}: {t} threads × {b * PROBE_WORD // t} B" for p, t, b in zip(d.part, threads, d.block, strict=True)],
        rate=(d.bytes / d.median_s / 1e9).round().astype(int),
    )
    t = d.pivot(index="grid", columns="kind", values="rate")
    t = t[list(dict.fromkeys(d.kind))]  # the probe's order: remote first
    t.index.name = "thread blocks"
    t.columns.name = None
    return t


NCCL_INFO = {  # what to read from NCCL's INFO log, and how
    "version": r"NCCL version (\S+)",
    "transport": r"via (P2P/\S+)",
    "p2p_chunk_bytes": r"P2P Chunksize set to (\d+)",
    "coll_channels": r"(\d+) coll channels",
    "p2p_channels_per_peer": r"(\d+) p2p channels per peer",
}


def nccl_configuration(machine: str = "nvidia-h200-x2", root: Path = MEASUREMENTS) -> dict[str, str | float]:
    """What NCCL reported about itself during the probe (NCCL_DEBUG=INFO, rank 0's log): version,
    transport, p2p chunk size, channels, and its own performance model for a ring broadcast with
    the Simple protocol (latency in µs, bus bandwidth in GB/s): the rate NCCL expects of this link."""
    path = root / machine / PROBE / "nccl-info-rank0.log"
    text = path.read_text()
    out: dict[str, str | float] = {}
    for key, pattern in NCCL_INFO.items():
        found = re.search(pattern, text)
        if not found:
            raise ValueError(f"{path}: no line matches {pattern!r} ({key})")
        out[key] = found.group(1)
    # The tuning table: "Broadcast | lat/bw | ..." in the order Tree LL, LL128, Simple, Ring LL, LL128, Simple.
    row = re.search(r"Broadcast \|(.*)", text)
    if not row:
        raise ValueError(f"{path}: no tuning-table row for Broadcast")
    latency, busbw = row.group(1).split("|")[5].split("/")
    out["ring_simple_latency_us"], out["ring_simple_busbw_gbps"] = float(latency), float(busbw)
    return out


def nccl_staging(machine: str = "nvidia-h200-x2", root: Path = MEASUREMENTS) -> dict[str, dict[int, int]]:
    """NCCL's connections to the other GPU and the staging buffers behind them, from rank 0's INFO
    log of the probe: connections per connection index ("Channel c/i : ... via P2P/...": index 0
    for the rings, 1 for point-to-point), and the count of shareable buffers per size in bytes that
    NCCL allocated on this GPU and imported (mapped) from the other."""
    path = root / machine / PROBE / "nccl-info-rank0.log"
    text = path.read_text()
    found = {
        "connections": Counter(int(i) for i in re.findall(r"Channel \d+/(\d+) : .* via P2P", text)),
        "allocated": Counter(int(b) for b in re.findall(r"Allocated shareable buffer \S+ size (\d+)", text)),
        "imported": Counter(int(b) for b in re.findall(r"Imported shareable buffer .* size (\d+)", text)),
    }
    for key, counts in found.items():
        if not counts:
            raise ValueError(f"{path}: no {key} lines (NCCL_DEBUG=INFO with NCCL_DEBUG_SUBSYS including INIT and P2P)")
    return {key: dict(sorted(counts.items())) for key, counts in found.items()}


# --------------------------------------------------------------------------------------------
# The whole decode step (bench.py --parts decode)


def decode_kernels(machine: str, model: str, batch: int, root: Path = MEASUREMENTS) -> int:
    """Kernels per step of the benchmark's own implementation, from the profiler's count of one eager step
    (decode_kernels.csv) at the profiled batch nearest `batch`: the structure, not a timing."""
    k = pd.read_csv(root / machine / "decode_kernels.csv")
    k = k[k.model == model]
    nearest = min(k.batch.unique(), key=lambda b: abs(np.log(b / batch)))
    return int(k[k.batch == nearest]["count"].sum())


def predict_decode(
    study: Study, gpu: GPU, model_key: str, batch: int, context: int, ceil: Ceilings | None, kernels: int = 0
) -> float:
    """One decode step of `model_key` on one GPU, everything resident: the model's compute_time with the
    machine's ceilings (attainable HBM, GEMM and weight-streaming rates, start-up) and the benchmark's
    `kernels` per step; without `ceil`, datasheet rates and no start-up."""
    mdl = study.models[model_key]
    s = replace(_base(gpu, None, ceil), **model_fields(mdl), fused=1, kernels_per_layer=kernels / mdl.num_layers,
                kernels_head=0, batch_size_per_gpu=batch, context_length=context)  # fmt: skip
    return _one(m.compute_time(s.arrays()))


def decode_table(study: Study, root: Path = MEASUREMENTS) -> pd.DataFrame:
    """Every measured whole decode step beside the model's prediction (the machine's own ceilings) and the
    datasheet-only prediction, with errors in %."""
    rows = []
    for machine in machine_specs():
        path = root / machine / "decode.csv"
        if not path.is_file():
            continue
        ceil = machine_ceilings(study, machine)
        gpu = study.gpus[machine_specs()[machine]["gpu"]]
        for r in pd.read_csv(path).itertuples():
            shape = (r.model, int(r.batch), int(r.context))
            kernels = decode_kernels(machine, r.model, int(r.batch), root)
            model = predict_decode(study, gpu, *shape, ceil, kernels)
            sheet = predict_decode(study, gpu, *shape, None)
            copy_rate = replace(ceil, stream_dense=ceil.hbm_bandwidth, stream_grouped=ceil.hbm_bandwidth)
            copy_only = predict_decode(study, gpu, *shape, copy_rate, kernels)
            rows.append({"machine": machine, "model": r.model, "batch": int(r.batch), "context": int(r.context),
                         "measured_ms": 1e3 * r.median_s, "predicted_ms": 1e3 * model, "datasheet_ms": 1e3 * sheet,
                         "error_pct": 100 * (model / r.median_s - 1),
                         "datasheet_error_pct": 100 * (sheet / r.median_s - 1),
                         "copy_rate_only_error_pct": 100 * (copy_only / r.median_s - 1)})  # fmt: skip
    return pd.DataFrame(rows)


def batch_one_gap(study: Study, root: Path = MEASUREMENTS) -> pd.DataFrame:
    """Where the batch-1 decode steps lose time, from the profiled kernels: the grouped-GEMM (routed
    experts) GPU time at batch 1 against the model's expert term at the machine's grouped streaming
    rate (the median over 1..64 rows per weight), and the microbenchmark's own grouped rate at one row."""
    rows = []
    for machine, spec in machine_specs().items():
        path = root / machine / "decode_kernels.csv"
        if not path.is_file():
            continue
        k = pd.read_csv(path)
        k = k[k.batch == 1]
        if k.empty:
            continue
        c = pd.read_csv(root / spec["ceilings"] / "ceilings.csv")
        one = c[(c.benchmark == "ceiling_stream") & (c.part == "grouped") & (c.tokens_per_rank == 1)]
        ceil = machine_ceilings(study, machine)
        for model_key, g in k.groupby("model"):
            mdl = study.models[model_key]
            grouped = g[g.kernel.str.contains("GroupProblem")].gpu_s.sum()
            s = replace(_base(study.gpus[spec["gpu"]], None, ceil), **model_fields(mdl), fused=1, batch_size_per_gpu=1)
            rows.append({"machine": machine, "model": model_key, "grouped_gemm_measured_ms": 1e3 * grouped,
                         "grouped_gemm_model_ms": 1e3 * _one(m.expert_time(s.arrays())),
                         "stream_one_row_gbps": float((one.bytes / one.median_s).iloc[0]) / 1e9 if len(one) else np.nan,
                         "stream_model_gbps": ceil.stream_grouped / 1e9,
                         "step_measured_ms": 1e3 * g.gpu_s.sum()})  # fmt: skip
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Expert offloading (bench.py --parts offload)

OFFLOAD_KERNELS_PER_LAYER = 22  # one per op of offload_bench.layer_compute (radix sort and scan as two each)


def offload_table(study: Study, root: Path = MEASUREMENTS) -> pd.DataFrame:
    """Every measured offloading step beside the model's prediction (prophet_model.offload): the copy time
    of an expert from the machine's measured host->device copy rate (>= 256 MiB), the layer's compute from
    its ceilings; the routing statistics from the model's own expectations (prophet_model.cache: LRU by
    Che's approximation, C / E under uniform routing), not from the run's draws."""
    from .. import cache, offload
    from ..measured import host_copy_rate

    rows = []
    for machine, spec in machine_specs().items():
        path = root / machine / "offload.csv"
        if not path.is_file():
            continue
        ceil = machine_ceilings(study, machine)
        rate = host_copy_rate(machine, root)
        gpu = study.gpus[spec["gpu"]]
        for r in pd.read_csv(path).itertuples():
            e, k, h, f, tokens = int(r.experts), int(r.top_k), int(r.hidden), int(r.ffn), int(r.tokens)
            d = float(offload.distinct(tokens, e, k))
            if r.policy == "lru" and r.routing == "zipf":
                q = cache.touch_probability(cache.zipf(e, float(r.zipf_s)), tokens, k)
                hit, d = cache.lru_che_hit(r.cache_slots, q), float(q.sum())
            elif r.policy == "lru":
                hit = cache.lru_uniform_hit(r.cache_slots, e)
            else:
                hit = float(r.resident_fraction)
            s = replace(_base(gpu, None, ceil), fused=1, kernels_per_moe_layer=OFFLOAD_KERNELS_PER_LAYER,
                        hidden_size=h, expert_ffn_size=f, num_experts=e, top_k=k, batch_size_per_gpu=tokens)  # fmt: skip
            a = s.arrays()
            grouped = max(2 * tokens * k * 3 * h * f / ceil.gemm_flops, d * 3 * h * f * BF16 / ceil.stream_grouped)
            compute = grouped + _one(
                m.startup_time(a) + m.gemm_time(np.float64(tokens), np.float64(h * e), a, a.stream_dense)
            )
            t_e = r.expert_bytes / rate
            nonresident = e - round(hit * e)  # static residency: the first round(r E) experts
            mean = nonresident * (1 - (1 - k / e) ** tokens)
            if r.policy == "lru":  # on demand: linear in the misses, their mean suffices
                layer = d * (1 - hit) * t_e + compute
            elif r.policy == "baseline":
                layer = mean * t_e + compute
            else:  # eager prefetch, over the binomial number of misses
                acc = float(r.accuracy)
                wrong = _one(offload.wrong_share(acc, d, e))
                layer = compute + _one(offload.prefetch_exposed(np.float64(mean * t_e), np.float64(compute),
                                                                np.float64(mean), np.float64(nonresident),
                                                                np.float64(acc), np.float64(wrong), np.float64(0)))  # fmt: skip
            step = int(r.layers) * layer
            rows.append({"machine": machine, "policy": r.policy, "routing": r.routing, "tokens": tokens,
                         "resident_fraction": r.resident_fraction, "cache_slots": r.cache_slots, "accuracy": r.accuracy,
                         "measured_ms": 1e3 * r.step_s, "predicted_ms": 1e3 * step,
                         "error_pct": 100 * (step / r.step_s - 1), "hit_rate_measured": r.hit_rate,
                         "hit_rate_predicted": hit if r.policy == "lru" else np.nan})  # fmt: skip
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    # Prophet's speedup over the on-demand baseline of the same machine, batch and residency
    key = ["machine", "tokens", "resident_fraction"]
    base = t[t.policy == "baseline"][[*key, "measured_ms", "predicted_ms"]].rename(
        columns={"measured_ms": "measured_ms_baseline", "predicted_ms": "predicted_ms_baseline"}
    )
    pre = t[t.policy == "prefetch"].merge(base, on=key, how="left")
    pre = pre.assign(speedup_measured=pre.measured_ms_baseline / pre.measured_ms,
                     speedup_predicted=pre.predicted_ms_baseline / pre.predicted_ms)  # fmt: skip
    pre["speedup_error_pct"] = 100 * (pre.speedup_predicted / pre.speedup_measured - 1)
    return t.merge(pre[[*key, "accuracy", "speedup_measured", "speedup_predicted", "speedup_error_pct"]],
                   on=[*key, "accuracy"], how="left")  # fmt: skip
