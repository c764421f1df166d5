"""What the hardware attains, from the committed microbenchmarks (validation/measurements/<folder>/):
never from the study's targets and never from the points the validation predicts.

Per GPU kind (`attainable`):
- HBM bandwidth, BF16 GEMM rate and kernel start-up from `ceilings.csv` (measure.py --parts ceilings:
  device copies, square GEMMs, a kernel chain): t = t0 + 2 bytes / B through the copies of 1-256 MiB
  gives the start-up t0 and the HBM rate B; the fastest square GEMM gives the FLOP rate;
- the weight-streaming rate of GEMMs with few rows (`ceiling_stream`: a dense GEMM and a grouped GEMM
  over generic 8192^2 / 16 x 4096^2 weights with 1-64 rows each), as a share of that HBM rate;
- the host link's attainable share from pinned host->device copies of >= 256 MiB (measurements.csv), all over
  PCIe; a GPU whose host link is NVLink-C2C (Grace Hopper) takes the catalog's host_link_attainable_share, the
  share a published microbenchmark of C2C host->device copies reached (never the PCIe share);
- the peer-copy share of a GPU-GPU link (`peer_link_share`): copy-engine copies from the other GPU's memory
  (peer_copy.csv, both GPUs at once) over the line rate of the measured machine's interconnect; until a machine
  has measured them, the catalog's published copy-engine rate (interconnects.yml peer_copy_gbps_per_direction).
A GPU kind measured in several folders takes the median of each share. A kind never measured takes
the shares measured on a GPU of its generation, else those of the measured generation, and says so
in `source`. Every share is checked to be at most 1 (a larger one is a measurement or catalog error).
"""

from __future__ import annotations

import copy
import functools
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prophet_model.errors import UserError
from prophet_model.paths import MEASUREMENTS, VALIDATION
from prophet_model.study.catalog import GPU
from prophet_model.study.measured_csv import BENCH, PEER_COPY, Layout, check_csv, present
from prophet_model.study.yaml_io import read_yaml

MACHINES = VALIDATION / "machines.yml"
CEILING_COPY_RANGE = (1 << 20, 256 << 20)  # bytes: past the start-up, up to the largest expert matrix
STREAM_ROWS_DECODE = 64  # rows per weight up to which a GEMM streams its weights (decode batches)
HOST_COPY_MIN_BYTES = 256 << 20  # pinned copies this large run at the link's sustained rate


FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a machine's folder under validation/measurements
MACHINE_ALLOWED = (
    "allowed: a mapping of machine -> {gpu: <catalog GPU key>, interconnect: <catalog interconnect key or null>,"
    " ceilings: <machine folder> (optional)}, machine and folder names of letters, digits, '.', '_' and '-' (not"
    " starting with '.' or '-')"
)


def machine_specs(machines_file: Path = MACHINES) -> dict[str, dict]:
    """machines.yml: for each measured machine, its catalog GPU, interconnect and ceilings folder (read
    once per version of the file; each caller gets its own copy)."""
    try:
        stat = os.stat(machines_file)
        key = (stat.st_mtime_ns, stat.st_size)
    except OSError:  # missing, a dangling link...: read_yaml names the problem
        key = (0, -1)
    return copy.deepcopy(_read_specs(machines_file, *key))


def _machine_ok(name: object, spec: object) -> bool:
    """Whether a machines.yml entry is as MACHINE_ALLOWED says (names that are safe folder names)."""
    if not (isinstance(name, str) and FOLDER_NAME.match(name) and isinstance(spec, dict)):
        return False
    folder, net = spec.get("ceilings"), spec.get("interconnect")
    return (
        isinstance(spec.get("gpu"), str)
        and set(spec) <= {"gpu", "interconnect", "ceilings"}
        and (net is None or isinstance(net, str))
        and (folder is None or (isinstance(folder, str) and FOLDER_NAME.match(folder) is not None))
    )


@functools.cache
def _read_specs(path: Path, mtime_ns: int, size: int) -> dict[str, dict]:
    specs = read_yaml(path)  # a regular file under 1 MiB, YAML 1.2 numbers, no duplicate keys
    if not isinstance(specs, dict) or not specs:
        raise UserError(f"{path}: not a mapping of machines; {MACHINE_ALLOWED}")
    for name, spec in specs.items():
        if not _machine_ok(name, spec):
            raise UserError(f"{path}: machine {str(name)[:100]!r}: {str(spec)[:200]}; {MACHINE_ALLOWED}")
    return specs


@dataclass(frozen=True)
class Ceilings:
    """Attainable ceilings of one machine from microbenchmarks that are not validated primitives."""

    kernel_startup_s: float  # intercept of copy time vs bytes (launch, first round trip, tail)
    hbm_bandwidth: float  # bytes/s of HBM traffic (read + write), from the slope of the same line
    gemm_flops: float  # FLOP/s, the fastest square bf16 GEMM
    kernel_chain_s: float  # time per 1-element kernel in a chain (launch-to-launch), for reference
    link_bandwidth: float | None = None  # bytes/s per direction, kernel writes to the peer (both ways)
    stream_dense: float | None = None  # bytes/s of weights, dense GEMMs with <= 64 rows (median)
    stream_grouped: float | None = None  # bytes/s of weights, grouped GEMMs with <= 64 rows per group


def _line(nbytes: np.ndarray, seconds: np.ndarray) -> tuple[float, float]:
    """(t0, rate) of the least-squares line seconds = t0 + nbytes / rate, residuals relative."""
    design = np.c_[np.ones(len(nbytes)), nbytes] / seconds[:, None]
    (t0, inverse_rate), *_ = np.linalg.lstsq(design, np.ones(len(nbytes)), rcond=None)
    return float(t0), float(1 / inverse_rate)


Columns = dict[str, np.ndarray]


def read_columns(path: Path, layout: Layout = BENCH) -> Columns:
    """A measurements CSV as {column: array}: float64 where every non-empty cell is a number (an empty
    cell is NaN), else str. (The bench's files are small; pandas is not needed to read them.) The file is
    checked first (measured_csv.check_csv): a UserError names the file, line and column of any problem."""
    checked = check_csv(path, layout)
    header, body = checked.header, checked.rows
    out: Columns = {}
    for j, name in enumerate(header):
        cells = [r[j] if j < len(r) else "" for r in body]
        try:
            out[name] = np.array([float(c) if c.strip() else np.nan for c in cells], dtype=float)
        except ValueError:
            out[name] = np.array(cells, dtype=object)
    return out


def _where(c: Columns, keep: np.ndarray) -> Columns:
    return {k: v[keep] for k, v in c.items()}


@functools.cache
def ceilings(machine: str, root: Path = MEASUREMENTS) -> Ceilings:
    """Read <machine>/ceilings.csv (measure.py --parts ceilings)."""
    path = root / machine / "ceilings.csv"
    if not present(path, BENCH):
        raise UserError(
            f"{path}: no ceilings measured (file not found); allowed: the ceilings.csv that "
            "validation/measure.py --parts ceilings writes"
        )
    c = read_columns(path)
    lo, hi = CEILING_COPY_RANGE
    bench = c["benchmark"].astype(str)
    for column in ("bytes", "hidden"):
        if column not in c or c[column].dtype != float:
            raise UserError(
                f"{path}: no column {column} of numbers; allowed: the ceilings.csv that validation/measure.py "
                "--parts ceilings writes"
            )
    with np.errstate(invalid="ignore"):
        sized = (c["bytes"] >= lo) & (c["bytes"] <= hi)
    cp = _where(c, (bench == "ceiling_copy") & sized)
    with np.errstate(invalid="ignore"):
        g = _where(c, (bench == "ceiling_gemm") & (c["hidden"] >= 1))
    if len(cp["bytes"]) < 2 or not len(g["hidden"]) or not (bench == "ceiling_kernel").any():
        raise UserError(
            f"{path}: {len(cp['bytes'])} ceiling_copy rows of 1-256 MiB, {len(g['hidden'])} ceiling_gemm "
            f"rows, {int((bench == 'ceiling_kernel').sum())} ceiling_kernel rows; allowed: at least 2, 1 "
            "and 1 (validation/measure.py --parts ceilings)"
        )
    t0, hbm = _line(2 * cp["bytes"], cp["median_s"])
    if not (math.isfinite(t0) and math.isfinite(hbm) and hbm > 0):
        raise UserError(
            f"{path}: the ceiling_copy times give no HBM rate (start-up {t0:.3g} s, rate {hbm:.3g} B/s); "
            "allowed: copy times that grow with the bytes copied"
        )
    link = _where(c, (bench == "ceiling_link") & (c["part"].astype(str) == "bidirectional") & sized)

    def stream(part: str) -> float | None:
        if "tokens_per_rank" not in c:
            return None
        with np.errstate(invalid="ignore"):
            s = _where(
                c, (bench == "ceiling_stream") & (c["part"] == part) & (c["tokens_per_rank"] <= STREAM_ROWS_DECODE)
            )
        return _median(s["bytes"] / s["median_s"]) if len(s["bytes"]) else None

    return Ceilings(
        kernel_startup_s=t0,
        hbm_bandwidth=hbm,
        gemm_flops=float((2 * g["hidden"] ** 3 / g["median_s"]).max()),
        kernel_chain_s=float(c["median_s"][bench == "ceiling_kernel"][0]),
        link_bandwidth=_line(link["bytes"], link["median_s"])[1] if len(link["bytes"]) >= 2 else None,
        stream_dense=stream("dense"),
        stream_grouped=stream("grouped"),
    )


def _middle(values: Iterable[float]) -> float:
    """The median: the middle value, or the mean of the two middle ones (statistics.median's and np.median's
    value, without importing what they import: statistics imports random; np.median, numpy.ma)."""
    v = sorted(values)
    if not v:
        raise ValueError("no values: the median is undefined")
    i = len(v) // 2
    return v[i] if len(v) % 2 else (v[i - 1] + v[i]) / 2


def _median(values: np.ndarray) -> float:
    """np.median of a float array (NaN if any value is NaN)."""
    v = values.tolist()
    return math.nan if any(x != x for x in v) else float(_middle(v))


@functools.cache
def host_copy_rate(machine: str, root: Path = MEASUREMENTS) -> float | None:
    """Median bytes/s of the pinned host->device copies of >= 256 MiB in <machine>/measurements.csv."""
    path = root / machine / "measurements.csv"
    if not present(path, BENCH):
        return None
    d = read_columns(path)
    if "bytes" not in d or d["bytes"].dtype != float:
        raise UserError(f"{path}: no column bytes of numbers; allowed: {BENCH.allowed}")
    with np.errstate(invalid="ignore"):
        d = _where(d, (d["benchmark"] == "copy_h2d") & (d["bytes"] >= HOST_COPY_MIN_BYTES))
    return _median(d["bytes"] / d["median_s"]) if len(d["bytes"]) else None


@dataclass(frozen=True)
class Attainable:
    """What one GPU kind attains: shares of its datasheet rates, and its kernel start-up."""

    hbm_share: float  # attainable HBM bandwidth / datasheet
    gemm_share: float  # attainable dense BF16 FLOP/s / datasheet
    stream_dense_share: float  # weight-streaming rate of a few-row dense GEMM / attainable HBM (copy) rate
    stream_grouped_share: float  # the same for a grouped (MoE) GEMM
    host_share: float  # attainable host->device copy rate / datasheet host link
    kernel_startup_s: float
    source: str  # which folders, and on which GPU they were measured


def _median_share(values: list[tuple[str, float]], what: str) -> float:
    for folder, v in values:
        if not 0 < v <= 1:
            raise UserError(
                f"validation/measurements/{folder}: {what} comes out at {v:.3f} of its reference; allowed: a share "
                "in (0, 1] (a larger one means the catalog's datasheet value or the measurement is wrong)"
            )
    return float(_middle(v for _, v in values))


@functools.cache
def _by_gpu(machines_file: Path = MACHINES, root: Path = MEASUREMENTS) -> dict[str, list[str]]:
    """Measured folders (with a ceilings.csv) per catalog GPU key, from machines.yml."""
    out: dict[str, list[str]] = {}
    for spec in machine_specs(machines_file).values():
        folder = spec.get("ceilings")
        if folder and present(root / folder / "ceilings.csv", BENCH) and folder not in out.get(spec["gpu"], []):
            out.setdefault(spec["gpu"], []).append(folder)
    return out


_CACHE: dict[tuple, Attainable] = {}


def attainable(gpu_key: str, gpus: dict[str, GPU]) -> Attainable:
    """The attainable shares of `gpu_key`: its own measurements, else its generation's, else the
    measured generation's (named in `source`). Cached on the catalog values it depends on."""
    key = (
        gpu_key,
        MACHINES,
        MEASUREMENTS,
        tuple(
            sorted(
                (
                    k,
                    g.name,
                    g.generation,
                    g.memory_bandwidth_gbps,
                    g.bf16_dense_tflops,
                    g.host_link_bandwidth_gbps,
                    g.host_link_attainable_share,
                )
                for k, g in gpus.items()
            )
        ),
    )
    if key not in _CACHE:
        _CACHE[key] = _attainable(gpu_key, gpus)
    return _CACHE[key]


def _attainable(gpu_key: str, gpus: dict[str, GPU]) -> Attainable:
    measured = {k: v for k, v in _by_gpu(MACHINES, MEASUREMENTS).items() if k in gpus}  # as they are now (tests)
    if not measured:
        raise UserError(
            f"{MACHINES}: no GPU of catalog/gpus.yml has ceilings measured; run validation/measure.py --parts ceilings"
        )
    gpu = gpus[gpu_key]
    if gpu_key in measured:
        kinds, how = [gpu_key], "measured on this GPU"
    else:
        same = [k for k in measured if gpus[k].generation == gpu.generation]
        kinds = same or list(measured)
        names = ", ".join(gpus[k].name for k in kinds)
        how = (
            f"not measured: the shares measured on {names} (same generation, {gpu.generation})"
            if same
            else (
                f"not measured, and no {gpu.generation} GPU measured: the shares measured on {names} "
                f"({gpus[kinds[0]].generation}) are assumed"
            )
        )
    folders = [(k, f) for k in kinds for f in measured[k]]
    ceil = [(f, ceilings(f, MEASUREMENTS), gpus[k]) for k, f in folders]
    hbm = _median_share([(f, c.hbm_bandwidth / (g.memory_bandwidth_gbps * 1e9)) for f, c, g in ceil], "the HBM rate")
    gemm = _median_share([(f, c.gemm_flops / (g.bf16_dense_tflops * 1e12)) for f, c, g in ceil], "the GEMM rate")
    startup = float(_middle(c.kernel_startup_s for _, c, _ in ceil))
    # streaming and host-copy shares: where this kind measured them, else wherever they were measured
    all_ceil = [(f, ceilings(f, MEASUREMENTS), gpus[k]) for k, fs in measured.items() for f in fs]

    def pick(rows):
        mine = [r for r in rows if r[0] in {f for _, f in folders}]
        return mine or rows

    # a streaming GEMM only reads, so it may beat the copy (read + write) rate a little; against the
    # datasheet it must not
    for f, c, g in all_ceil:
        for rate in (c.stream_dense, c.stream_grouped):
            if rate:
                _median_share([(f, rate / (g.memory_bandwidth_gbps * 1e9))], "a weight-streaming rate")
    dense = pick([(f, c.stream_dense / c.hbm_bandwidth) for f, c, _ in all_ceil if c.stream_dense])
    grouped = pick([(f, c.stream_grouped / c.hbm_bandwidth) for f, c, _ in all_ceil if c.stream_grouped])
    host = pick(
        [(f, r / (g.host_link_bandwidth_gbps * 1e9)) for f, _, g in all_ceil if (r := host_copy_rate(f, MEASUREMENTS))]
    )
    if not (dense and grouped and host):
        raise UserError(
            f"{MEASUREMENTS}: no committed streaming-GEMM ceilings or host copies; run validation/measure.py --parts "
            "ceilings single on a GPU and add it to validation/machines.yml"
        )
    host_share = _median_share(host, "the host-link copy rate")
    host_source = f"host copies from {', '.join(sorted({f for f, _ in host}))}"
    if gpu.host_link == "nvlink_c2c" and gpu.host_link_attainable_share is not None:  # not a PCIe link
        host_share = gpu.host_link_attainable_share
        host_source = "NVLink-C2C host copies: catalog host_link_attainable_share (a published measurement)"
    return Attainable(
        hbm_share=hbm,
        gemm_share=gemm,
        stream_dense_share=float(_middle(v for _, v in dense)),
        stream_grouped_share=float(_middle(v for _, v in grouped)),
        host_share=host_share,
        kernel_startup_s=startup,
        source=(
            f"{gpu.name}: {how}; ceilings from {', '.join(sorted({f for _, f in folders}))}; streaming GEMMs from "
            f"{', '.join(sorted({f for f, _ in dense}))}; {host_source}"
        ),
    )


PEER_COPY_MIN_BYTES = 16 << 20  # peer copies this large run at the link's sustained rate


@functools.cache
def _link_shares(
    interconnects: tuple[tuple[str, float], ...], machines_file: Path = MACHINES, root: Path = MEASUREMENTS
) -> tuple[tuple[str, float], ...]:
    """(file, measured peer-copy rate / line rate) of every measured machine with an interconnect whose peer
    copies were measured (peer_copy.csv, both GPUs at once, >= 16 MiB: measure.py --parts peer_copy). The link
    ceiling of ceilings.csv (kernels writing into the peer, an SM rate) is never used: a pooled expert is
    copied by the copy engines."""
    rate = dict(interconnects)
    copies = []
    for machine, spec in machine_specs(machines_file).items():
        net = spec.get("interconnect")
        if net not in rate:
            continue
        path = root / machine / "peer_copy.csv"
        if present(path, PEER_COPY):
            d = read_columns(path, PEER_COPY)
            with np.errstate(invalid="ignore"):
                d = _where(d, (d["part"] == "both") & (d["bytes"] >= PEER_COPY_MIN_BYTES))
            if len(d["bytes"]):
                copies.append((f"{machine}/peer_copy.csv", _median(d["bytes"] / d["median_s"]) / rate[net]))
    return tuple(copies)


def peer_link_share(interconnects: dict) -> tuple[float, str]:
    """(share, source): the attainable share of a GPU-GPU link's line rate when a GPU's copy engines copy from
    another GPU's memory (cudaMemcpyPeerAsync), every GPU at once: the median over measured machines of that
    rate (validation/measure.py --parts peer_copy) / the catalog line rate of their interconnect; where no
    machine has measured it, the median over the catalog's published copy-engine rates
    (peer_copy_gbps_per_direction) / their line rates. Used for every NVLink and NVSwitch interconnect
    (another generation's links borrow it). No SM fetcher is modelled: the copies take no SMs from the
    computation."""
    rates = tuple(sorted((k, n.bandwidth_gbps_per_direction * 1e9) for k, n in interconnects.items()))
    measured = _link_shares(rates, MACHINES, MEASUREMENTS)
    shares = measured or tuple(
        (f"catalog/interconnects.yml {k}: peer_copy_gbps_per_direction (published)", p / n.bandwidth_gbps_per_direction)
        for k, n in sorted(interconnects.items())
        if (p := getattr(n, "peer_copy_gbps_per_direction", None))
    )
    if not shares:
        raise UserError(
            f"{MACHINES}: no machine with an interconnect has its peer copies measured (peer_copy.csv), and no "
            "interconnect of catalog/interconnects.yml gives peer_copy_gbps_per_direction; allowed: run "
            "validation/measure.py --parts peer_copy on two GPUs, or give a published copy-engine rate with its source"
        )
    share = _median_share(list(shares), "the peer-copy rate")
    where = ", ".join(f for f, _ in shares)
    return share, f"validation/measurements/{where}" if measured else where


def hardware_rows(study) -> list[dict]:
    """Per GPU kind the study uses: its attainable rates and where they come from."""
    keys = list(dict.fromkeys([s.gpu_key for s in study.systems] + [study.config.single_gpu_claim.gpu]))
    rows = []
    for key in keys:
        g, a = study.gpus[key], attainable(key, study.gpus)
        rows.append(
            {
                "gpu": g.name,
                "HBM (GB/s)": g.memory_bandwidth_gbps * a.hbm_share,
                "BF16 GEMM (TFLOP/s)": g.bf16_dense_tflops * a.gemm_share,
                "dense weight streaming (GB/s)": g.memory_bandwidth_gbps * a.hbm_share * a.stream_dense_share,
                "grouped weight streaming (GB/s)": g.memory_bandwidth_gbps * a.hbm_share * a.stream_grouped_share,
                "host link (GB/s)": g.host_link_bandwidth_gbps * a.host_share,
                "kernel start-up (us)": 1e6 * a.kernel_startup_s,
                "source": a.source,
            }
        )
    return rows


def hardware_lines(study) -> list[str]:
    """The hardware rows as log lines (and the check that every share is at most 1), and the peer-copy share
    of the GPU-GPU links where experts are pooled."""
    peer = []
    if study.config.experts.placement == "pool":
        share, source = peer_link_share(study.interconnects)
        peer = [
            f"peer copies (pooled experts, copy engines): {share:.3g} of an NVLink/NVSwitch line rate ({source}); "
            "over PCIe the host-copy share"
        ]
    return peer + [
        f"{r['gpu']}: HBM {r['HBM (GB/s)']:,.0f} GB/s, GEMM {r['BF16 GEMM (TFLOP/s)']:,.0f} TFLOP/s, weight streaming"
        f" {r['dense weight streaming (GB/s)']:,.0f} (dense) / {r['grouped weight streaming (GB/s)']:,.0f} (grouped)"
        f" GB/s, host link {r['host link (GB/s)']:,.1f} GB/s, kernel start-up {r['kernel start-up (us)']:.2f} us"
        f" ({r['source']})"
        for r in hardware_rows(study)
    ]
