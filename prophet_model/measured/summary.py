"""What the predicted points say: the error summary per primitive and its verdicts (with the reasons
for every primitive off by more than VERDICT_LIMIT_PCT), the separate calibrated variant, and where the measured
all-to-all is latency- or bandwidth-bound and at what rate its large buffers move."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prophet_model.errors import UserError
from prophet_model.measured.measurements import BF16, LARGE_A2A_BYTES, graph_alltoalls, large_alltoalls
from prophet_model.study.config import Study
from prophet_model.study.rates import MACHINES, ceilings, machine_specs


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Median and worst |error| per primitive (and for large all-to-all messages alone)."""
    groups = [(p, g) for p, g in df.groupby("primitive", sort=False)]
    big = large_alltoalls(df)
    groups.append(("all-to-all (CUDA graph), ≥ 16 MiB per rank", big))
    rows = []
    for name, g in groups:
        err = g.error_pct.abs()
        worst = g.loc[err.idxmax()]
        row = {
            "primitive": name,
            "points": len(g),
            "median |error| %": round(float(err.median()), 1),
            "median error % (signed)": round(float(g.error_pct.median()), 1),
            "worst |error| %": round(float(err.max()), 1),
            "worst at": _where(worst),
        }
        if "error_datasheet_pct" in g:
            row["datasheet only: median |error| %"] = round(float(g.error_datasheet_pct.abs().median()), 1)
        rows.append(row)
    return pd.DataFrame(rows)


def _where(r: pd.Series) -> str:
    if r.benchmark in ("copy_h2d", "copy_d2h", "alltoall"):
        size = (
            f"{r.bytes / 2**20:g} MiB" if r.bytes >= 2**20 else f"{r.bytes / 2**10:g} KiB"
        )  # 16 KiB, not 0.015625 MiB
        return f"{r.machine}, {size}"
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
        "bandwidth_bound_from_tokens": (
            (float(bandwidth_bound.bytes.min()) / per_token) if not bandwidth_bound.empty else float("nan")
        ),
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
    for prim, sel in (
        ("host→device copy", out.primitive == "host→device copy"),
        ("device→host copy", out.primitive == "device→host copy"),
        ("expert FFN (GPU time)", out.primitive == "expert FFN (GPU time)"),
    ):
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


_D2H = "As host→device: about 85% of the datasheet rate, plus a fixed set-up time for small copies."

REASONS = {
    "host→device copy": (
        "A pinned copy reaches about 85% of the PCIe 5.0 x16 datasheet rate (protocol overhead), and small copies add a"
        " fixed DMA set-up time the model lacks."
    ),
    "device→host copy": _D2H,
    "expert FFN (GPU time)": (
        "Small GEMMs stream their weights more slowly than the large copies that set the attainable HBM rate, and the"
        " start-up of a GEMM kernel exceeds that of a copy."
    ),
    "expert FFN (one eager launch)": (
        "Adds eager PyTorch's CPU launch latency (tens of microseconds per FFN) to the GPU time: a cost of the"
        " framework, not of the GPU."
    ),
    "MoE layer": (
        "The measured layer is a plain eager PyTorch implementation: host synchronisations (split sizes), a Python loop"
        " over the local experts and index kernels dominate; the model counts only the experts' kernels and two"
        " all-to-alls."
    ),
    "MoE layer: all-to-alls": (
        "Three eager collectives (split sizes, dispatch, combine) with host synchronisation between them: each costs"
        " the eager floor of the all-to-all rows, not the NCCL latency the model assumes."
    ),
    "all-to-all (eager call)": (
        "One all-to-all called from Python pays tens of microseconds of CPU and launch overhead before NCCL starts; the"
        " model's latency is NCCL's own."
    ),
    "all-to-all (CUDA graph)": (
        "Large buffers move data more slowly than the NVLink payload rate (see below); small ones sit on NCCL's latency"
        " floor, which the model's assumed latency matches."
    ),
    "all-to-all (CUDA graph), ≥ 16 MiB per rank": (
        "The link is not the limit: kernels writing straight into the peer's memory from every SM (no NCCL) move data"
        " at about the payload rate the model uses, and NCCL's own performance model expects about the same. NCCL's"
        " all-to-all moves the same bytes more slowly; its chunk, buffer and channel settings do not change that, and"
        " leaving out the share a GPU keeps for itself changes nothing either. The benchmark's buffers are not"
        " registered with NCCL, so every byte bound for the other GPU also lands in an NCCL staging buffer there and is"
        " copied again into the output, a copy the model does not count. NCCL drives the link with one thread block per"
        " channel, and a plain copy with that many blocks reaches less than the link ceiling, by an amount that depends"
        " on the copy code (tables below). The gap is a property of NCCL's code path; the model, one latency and one"
        " rate for the hardware, does not describe it. A zero-copy all-to-all, which would tell the staging copy from"
        " the block count as the cause, is not yet measured."
    ),
}


VERDICT_LIMIT_PCT = 25.0  # %: a primitive whose median |error| is at most this is "within" (every verdict, band)


def verdicts(summary_df: pd.DataFrame, limit_pct: float = VERDICT_LIMIT_PCT) -> pd.DataFrame:
    """The summary with a verdict per primitive and, where the median error exceeds the limit, why."""
    out = summary_df.copy()
    ok = out["median |error| %"] <= limit_pct
    out["verdict"] = [f"within ±{limit_pct:g}%" if k else f"off by more than {limit_pct:g}%" for k in ok]
    out["why"] = [REASONS.get(p, "") if not k else "" for p, k in zip(out.primitive, ok, strict=True)]
    return out


def alltoall_rates(df: pd.DataFrame, study: Study, machines_file: Path = MACHINES) -> pd.DataFrame:
    """For each large CUDA-graph all-to-all: the rate the data moved at (bytes crossing per direction
    over time above the floor) beside the link's measured ceiling (kernel writes, no NCCL), the
    catalog's payload rate and the line rate."""
    machines = machine_specs(machines_file)
    rows = []
    for machine, gm in graph_alltoalls(df).groupby("machine", sort=True):
        key = machines[machine].get("interconnect")
        if key not in study.interconnects:
            raise UserError(
                f"{machines_file}: {machine}: interconnect {key!r} is not in the catalog; allowed: one of "
                f"{', '.join(sorted(study.interconnects))}"
            )
        net = study.interconnects[key]
        link = ceilings(machines[machine]["ceilings"]).link_bandwidth
        floor = float(gm.median_s.min())
        for r in gm[gm.bytes >= LARGE_A2A_BYTES].sort_values("bytes").itertuples():
            moved = r.bytes * (r.ep - 1) / r.ep
            rows.append(
                {
                    "machine": machine,
                    "per-rank buffer (MiB)": r.bytes / 2**20,
                    "NCCL all-to-all (GB/s)": round(moved / (r.median_s - floor) / 1e9),
                    "link ceiling (GB/s)": round(link / 1e9) if link else "",
                    "payload rate (GB/s)": round(net.bandwidth_gbps_per_direction * net.payload_efficiency),
                    "line rate (GB/s)": round(net.bandwidth_gbps_per_direction),
                }
            )
    return pd.DataFrame(rows)
