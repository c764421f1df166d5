"""The committed measurements (validation/measurements/<machine>/, validation/machines.yml) as read
for the validation: the primitives' rows with a label, each machine's catalog hardware and ceilings,
the CUDA-graph all-to-all rows, the ceilings table and the profiled kernel counts of the decode steps.
The machines.yml reader and the ceilings themselves live in prophet_model.study.rates (the physics reads
them too)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from prophet_model.errors import UserError
from prophet_model.study.catalog import GPU, Interconnect
from prophet_model.study.config import Study
from prophet_model.study.measured_csv import BENCH, KERNELS, Layout, check_csv, present
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


class Lines(tuple):
    """Line numbers of a table's rows (DataFrame.attrs): immutable, so a deep copy is the same object (pandas
    deep-copies attrs at every operation on the frame)."""

    def __deepcopy__(self, memo: dict) -> Lines:
        return self


def read_table(path: Path, layout: Layout, **read_csv: object) -> pd.DataFrame:
    """A measurement CSV as a DataFrame, checked first (measured_csv.check_csv: a regular UTF-8 file of
    bounded size, the layout's columns, numbers and times); the text checked is the text parsed."""
    checked = check_csv(path, layout)
    df = pd.read_csv(io.StringIO(checked.text), **read_csv)  # type: ignore[call-overload]
    df.attrs["lines"] = Lines(checked.lines)  # the file's line of each row, for messages
    return df


def gpu_of(study: Study, spec: dict, machines_file: Path = MACHINES) -> GPU:
    """The catalog GPU a machines.yml entry names; UserError naming the file when the catalog has none."""
    if spec["gpu"] not in study.gpus:
        raise UserError(
            f"{machines_file}: gpu {spec['gpu']!r} is not in the catalog; allowed: {', '.join(sorted(study.gpus))}"
        )
    return study.gpus[spec["gpu"]]


def hardware(study: Study, spec: dict, machines_file: Path = MACHINES) -> tuple[GPU, Interconnect | None]:
    """The catalog GPU and interconnect (None on a one-GPU machine) that a machines.yml entry names."""
    net = spec.get("interconnect")
    if net and net not in study.interconnects:
        raise UserError(
            f"{machines_file}: interconnect {net!r} is not in the catalog; allowed: "
            f"{', '.join(sorted(study.interconnects))} or null"
        )
    return gpu_of(study, spec, machines_file), study.interconnects[net] if net else None


def load(root: Path = MEASUREMENTS, machines_file: Path = MACHINES) -> pd.DataFrame:
    """Every measurement of the machines listed in machines.yml, with a `primitive` label. A measurements.csv
    that is not a regular file (a folder, FIFO, device, dangling link) is refused, never skipped."""
    machines = machine_specs(machines_file)
    # one run per machine (<machine>/measurements.csv) or one per world size (<machine>/ranksN/, measure.py --subdir)
    files = [root / name / "measurements.csv" for name in machines]
    files += [f for name in machines for f in sorted((root / name).glob("ranks*/measurements.csv"))]
    frames = []
    for f in files:
        if not present(f, BENCH):
            continue
        frames.append(_checked_rows(read_table(f, BENCH), f))
    if not frames:
        raise UserError(
            f"{root}: no measurements.csv of the machines in {machines_file}; allowed: "
            "<machine>/measurements.csv as validation/measure.py writes it"
        )
    df = pd.concat(frames, ignore_index=True)
    df["primitive"] = [PRIMITIVES[(b, p)] for b, p in zip(df.benchmark, df.part, strict=True)]
    return df


NEEDS = {  # per benchmark, the columns its prediction reads (prophet_model.measured.predict)
    "copy_h2d": ("bytes",),
    "copy_d2h": ("bytes",),
    "expert_ffn": ("hidden", "ffn", "tokens_per_rank"),
    "alltoall": ("bytes", "ep"),
    "moe_layer": ("model", "tokens_per_rank", "ep", "local_fraction"),
}


def _checked_rows(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The rows of a measurements.csv, each of a known primitive and with the values its prediction reads;
    UserError naming the file and line otherwise."""
    for i, r in zip(df.attrs["lines"], df.itertuples(), strict=True):
        bad = None
        if (r.benchmark, r.part) not in PRIMITIVES:
            bad = f"benchmark {str(r.benchmark)[:40]!r}, part {str(r.part)[:40]!r}; allowed: " + ", ".join(
                f"{b}/{p}" for b, p in PRIMITIVES
            )
        else:
            empty = [c for c in NEEDS[r.benchmark] if pd.isna(getattr(r, c, None))]
            lf = str(getattr(r, "local_fraction", "uniform"))
            if empty:
                bad = (
                    f"no value in column {', '.join(empty)}; allowed: {r.benchmark} rows with"
                    f" {', '.join(NEEDS[r.benchmark])}"
                )
            elif (
                r.benchmark == "moe_layer" and lf != "uniform" and not (_number(lf) is not None and 0 <= float(lf) < 1)
            ):
                bad = f"local_fraction {lf[:40]!r}; allowed: uniform or a number in [0, 1)"
        if bad:
            raise UserError(f"{path} line {i}: {bad}")
    return df


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def known_models(df: pd.DataFrame, path: Path, study: Study) -> pd.DataFrame:
    """`df` (read by read_table), each row's model in the catalog; UserError naming the file and line otherwise."""
    for i, model in zip(df.attrs.get("lines", range(2, len(df) + 2)), df.model, strict=True):
        if model not in study.models:
            raise UserError(
                f"{path} line {i}: model {str(model)[:40]!r} is not in the catalog; allowed: "
                f"{', '.join(sorted(study.models))}"
            )
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
        if spec["ceilings"] in seen or not present(MEASUREMENTS / spec["ceilings"] / "ceilings.csv", BENCH):
            continue
        seen.add(spec["ceilings"])
        c, gpu = ceilings(spec["ceilings"]), gpu_of(study, spec, machines_file)
        rows.append(
            {
                "measured on": spec["ceilings"],
                "start-up (µs)": round(1e6 * c.kernel_startup_s, 2),
                "1-element kernel (µs)": round(1e6 * c.kernel_chain_s, 2),
                "HBM (GB/s)": f"{c.hbm_bandwidth / 1e9:,.0f} of {gpu.memory_bandwidth_gbps:,.0f}",
                "BF16 GEMM (TFLOP/s)": f"{c.gemm_flops / 1e12:,.0f} of {gpu.bf16_dense_tflops:,.0f}",
                "link (GB/s each way)": f"{c.link_bandwidth / 1e9:,.0f}" if c.link_bandwidth else "not measured",
            }
        )
    return pd.DataFrame(rows).set_index("measured on")


def decode_kernels(machine: str, model: str, batch: int, root: Path = MEASUREMENTS) -> int:
    """Kernels per step of the benchmark's own implementation, from the profiler's count of one eager step
    (decode_kernels.csv) at the profiled batch nearest `batch`: the structure, not a timing."""
    path = root / machine / "decode_kernels.csv"
    k = read_table(path, KERNELS)
    k = k[k.model == model]
    if k.empty:
        raise UserError(
            f"{path}: no kernels of model {model!r}; allowed: the models of decode.csv, profiled "
            "(validation/measure.py --parts decode)"
        )
    nearest = min(k.batch.unique(), key=lambda b: abs(np.log(b / batch)))
    return int(k[k.batch == nearest]["count"].sum())
