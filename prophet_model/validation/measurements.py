"""The committed measurements (validation/measurements/<machine>/, validation/machines.yml) as read
for the validation: the primitives' rows with a label, each machine's catalog hardware and ceilings,
the CUDA-graph all-to-all rows, the ceilings table and the profiled kernel counts of the decode steps.
The machines.yml reader and the ceilings themselves live in prophet_model.study.rates (the physics reads
them too)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from prophet_model.study.catalog import GPU, Interconnect
from prophet_model.study.config import Study
from prophet_model.study.rates import MACHINES, MEASUREMENTS, Ceilings, ceilings, machine_specs

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


def machine_ceilings(study: Study, machine: str, machines_file: Path = MACHINES) -> Ceilings:
    """A machine's own ceilings; where it did not run the weight-streaming microbenchmark, the streaming
    shares measured on its GPU kind (prophet_model.study.rates.attainable) times its own HBM ceiling."""
    spec = machine_specs(machines_file)[machine]
    c = ceilings(spec["ceilings"])
    if c.stream_dense and c.stream_grouped:
        return c
    from prophet_model.study.rates import attainable

    a = attainable(spec["gpu"], study.gpus)
    return replace(
        c, stream_dense=c.hbm_bandwidth * a.stream_dense_share, stream_grouped=c.hbm_bandwidth * a.stream_grouped_share
    )


LARGE_A2A_BYTES = 16 << 20  # "large" all-to-all messages: at least 16 MiB per rank


def graph_alltoalls(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of all-to-alls timed in CUDA graphs."""
    return df[(df.benchmark == "alltoall") & (df.part == "graph")]


def large_alltoalls(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of CUDA-graph all-to-alls with at least LARGE_A2A_BYTES per rank."""
    g = graph_alltoalls(df)
    return g[g.bytes >= LARGE_A2A_BYTES]


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


def decode_kernels(machine: str, model: str, batch: int, root: Path = MEASUREMENTS) -> int:
    """Kernels per step of the benchmark's own implementation, from the profiler's count of one eager step
    (decode_kernels.csv) at the profiled batch nearest `batch`: the structure, not a timing."""
    k = pd.read_csv(root / machine / "decode_kernels.csv")
    k = k[k.model == model]
    nearest = min(k.batch.unique(), key=lambda b: abs(np.log(b / batch)))
    return int(k[k.batch == nearest]["count"].sum())
