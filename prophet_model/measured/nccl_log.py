"""How NCCL drives the link, from the committed runs beside the validation points: the large all-to-alls
under other NCCL settings, the all-to-all split into the shares that cross the link and that stay, the
probe's copies with a fixed number of thread blocks (validation/probe_p2p_path.py), the link
microbenchmark's rate at one size, and what NCCL's INFO log says about itself."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from prophet_model.measured.measurements import large_alltoalls, read_table
from prophet_model.study.measured_csv import BENCH, PROBE_CSV, MeasurementError, present, read_log
from prophet_model.study.rates import MEASUREMENTS

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
    found = {d.name: d for d in (root / machine / "nccl-settings").glob("*") if d.is_dir()}  # one folder a setting
    order = [k for k in NCCL_SETTINGS if k in found] + sorted(set(found) - set(NCCL_SETTINGS))
    runs |= {NCCL_SETTINGS.get(k, k): found[k] / "measurements.csv" for k in order}
    rows = []
    for name, path in runs.items():
        if not present(path, BENCH):
            continue
        d = large_alltoalls(read_table(path, BENCH))
        rows.append(
            {"run": name}
            | {f"{b / 2**20:g} MiB (µs)": round(1e6 * t, 1) for b, t in zip(d.bytes, d.median_s, strict=True)}
        )
    return pd.DataFrame(rows)


def alltoall_split(machine: str = "nvidia-h200-x2", root: Path = MEASUREMENTS) -> pd.DataFrame:
    """<machine>/alltoall_split.csv (measure.py --parts alltoall_split): each buffer's all-to-all in
    full, without the share a rank keeps (only bytes that cross the link) and with only that share."""
    path = root / machine / "alltoall_split.csv"
    d = read_table(path, BENCH)
    names = {"full": "full (µs)", "remote_only": "crossing share only (µs)", "self_only": "kept share only (µs)"}
    if d.duplicated(["bytes", "part"]).any() or not set(names) <= set(d.part) or d.bytes.isna().any():
        raise MeasurementError(
            f"{path}: a part missing, repeated or without bytes; allowed: one row per buffer size "
            f"(bytes) and part, the parts {', '.join(names)} (measure.py --parts alltoall_split)"
        )
    t = d.pivot(index="bytes", columns="part", values="median_s").sort_index()
    out = (1e6 * t[list(names)]).round(1).rename(columns=names)
    out.index = [f"{b / 2**20:g} MiB" for b in out.index]
    out.index.name = "per-rank buffer"
    out.columns.name = None
    return out


PROBE = "probe"  # <machine>/probe/: validation/probe_p2p_path.py's output and NCCL's INFO log of that run
PROBE_WORD = 2  # bytes per element of the probe's bf16 buffers
PROBE_BYTES = 64 << 20  # bytes of each probe copy


def link_write_rate(machine: str, nbytes: int, root: Path = MEASUREMENTS) -> float:
    """Bytes/s of the link-ceiling microbenchmark (ceiling_link, both GPUs writing) at one size:
    `nbytes` over its median time, fixed costs included, as the probe's rates are."""
    d = read_table(root / machine / "ceilings.csv", BENCH)
    row = d[(d.benchmark == "ceiling_link") & (d.part == "bidirectional") & (d.bytes == nbytes)]
    if len(row) != 1:
        raise MeasurementError(
            f"{root / machine / 'ceilings.csv'}: no bidirectional ceiling_link row of {nbytes} "
            f"bytes ({len(row)} found); allowed: one (measure.py --parts ceilings on two GPUs)"
        )
    return nbytes / float(row.median_s.iloc[0])


def link_blocks(machine: str = "nvidia-h200-x2", root: Path = MEASUREMENTS) -> pd.DataFrame:
    """<machine>/probe/probe.csv as GB/s per direction: a copy kernel run with a fixed number of
    thread blocks (rows) writes into the other GPU's memory (remote, both GPUs at once) or within
    its own (local); one column per kind and shape (threads per block, bytes each thread moves per
    iteration)."""
    path = root / machine / PROBE / "probe.csv"
    d = read_table(path, PROBE_CSV)
    d = d[d.part != "nccl_alltoall"]
    shape = ["grid", "warps", "block"]
    if (d.bytes != PROBE_BYTES).any() or d.duplicated(["part", *shape]).any() or (d[shape] < 1).any().any():
        raise MeasurementError(
            f"{path}: a copy of another size, a repeated row or a shape below 1; allowed: copies of "
            f"{PROBE_BYTES} bytes each (PROBE_BYTES), one row per part, grid, warps and block, "
            "each >= 1 (validation/probe_p2p_path.py)"
        )
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


NCCL_LOG = "NCCL's INFO log of the probe (NCCL_DEBUG=INFO with NCCL_DEBUG_SUBSYS including INIT and P2P)"
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
    text = read_log(path, NCCL_LOG)
    out: dict[str, str | float] = {}
    for key, pattern in NCCL_INFO.items():
        found = re.search(pattern, text)
        if not found:
            raise MeasurementError(f"{path}: no line matches {pattern!r} ({key}); allowed: {NCCL_LOG}")
        out[key] = found.group(1)
    # The tuning table: "Broadcast | lat/bw | ..." in the order Tree LL, LL128, Simple, Ring LL, LL128, Simple.
    row = re.search(r"Broadcast \|(.*)", text)
    cells = row.group(1).split("|") if row else []
    pair = cells[5].split("/") if len(cells) > 5 else []
    try:
        latency, busbw = (float(v) for v in pair) if len(pair) == 2 else (math.nan, math.nan)
    except ValueError:
        latency = busbw = math.nan
    if not (math.isfinite(latency) and math.isfinite(busbw) and latency >= 0 and busbw > 0):
        raise MeasurementError(
            f"{path}: no tuning-table row for Broadcast with a Ring/Simple latency/bandwidth pair; allowed: {NCCL_LOG}"
        )
    out["ring_simple_latency_us"], out["ring_simple_busbw_gbps"] = latency, busbw
    return out


def nccl_staging(machine: str = "nvidia-h200-x2", root: Path = MEASUREMENTS) -> dict[str, dict[int, int]]:
    """NCCL's connections to the other GPU and the staging buffers behind them, from rank 0's INFO
    log of the probe: connections per connection index ("Channel c/i : ... via P2P/...": index 0
    for the rings, 1 for point-to-point), and the count of shareable buffers per size in bytes that
    NCCL allocated on this GPU and imported (mapped) from the other."""
    path = root / machine / PROBE / "nccl-info-rank0.log"
    text = read_log(path, NCCL_LOG)
    found = {
        "connections": Counter(int(i) for i in re.findall(r"Channel \d+/(\d+) : .* via P2P", text)),
        "allocated": Counter(int(b) for b in re.findall(r"Allocated shareable buffer \S+ size (\d+)", text)),
        "imported": Counter(int(b) for b in re.findall(r"Imported shareable buffer .* size (\d+)", text)),
    }
    for key, counts in found.items():
        if not counts:
            raise MeasurementError(f"{path}: no {key} lines; allowed: {NCCL_LOG}")
    return {key: dict(sorted(counts.items())) for key, counts in found.items()}
