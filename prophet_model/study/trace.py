"""A routing trace: per layer, how many tokens each expert received (a CSV `layer,expert,count`), read and
checked into per-layer popularities for physics.cache."""

from __future__ import annotations

import csv
import io
import re
import zlib
from pathlib import Path

import numpy as np

from prophet_model.errors import UserError
from prophet_model.study.yaml_io import read_regular

MAX_TRACE_BYTES = 16 << 20  # protective: a per-layer, per-expert table (61 layers x 256 experts) is under 1 MB
MAX_TRACE_COUNT = 2.0**53  # protective: the largest whole count a float64 holds exactly; a layer's sum stays finite
TRACE_FILE = f"a routing trace CSV (columns layer,expert,count; UTF-8) under {MAX_TRACE_BYTES:,} bytes"
MAX_TRACE_DIGITS = 9  # protective: a layer or expert index of more digits is out of any model's range
_WHOLE = re.compile(r"^[0-9]+$")


def _shown(cell: str) -> str:
    """A cell as a message quotes it: at most 40 characters (a number of 4,300 digits is not echoed)."""
    return cell if len(cell) <= 40 else f"{cell[:20]}... ({len(cell):,} characters)"


def read_trace(
    path: Path, experts: int, where: str, layers: int | None = None, moe_layers: int | None = None
) -> tuple[tuple[float, ...], ...]:
    """Per-layer popularity from a routing trace CSV file (see parse_trace). Refuses a missing file, a
    folder, a FIFO or device, a dangling symbolic link and a file over MAX_TRACE_BYTES, naming the file."""
    return parse_trace(trace_bytes(path, where), path, experts, where, layers, moe_layers)


def trace_bytes(path: Path, where: str) -> bytes:
    """The bytes of a routing trace file (a regular file under MAX_TRACE_BYTES); UserError naming it."""
    try:
        return read_regular(path, MAX_TRACE_BYTES, TRACE_FILE)
    except UserError as exc:
        raise UserError(f"{where}: routing trace {exc}") from None


def parse_trace(
    data: bytes, path: Path, experts: int, where: str, layers: int | None = None, moe_layers: int | None = None
) -> tuple[tuple[float, ...], ...]:
    """Per-layer popularity from a routing trace's bytes: CSV with the header layer,expert,count (any order;
    a UTF-8 BOM and CRLF line ends allowed), one row per layer and expert, layers 0..layers-1 (0-based, the
    model's layers), experts 0..experts-1, counts (tokens routed) in [0, 2^53]; missing rows count 0; at
    most `moe_layers` distinct layers. Raises UserError naming the file, the line and what is allowed."""
    bad = f"{where}: routing trace {path}"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{bad}: not a UTF-8 text file; allowed: {TRACE_FILE}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    layer_rule = f"layer in 0..{layers - 1} (0-based: the model's {layers} layers)" if layers else "layer >= 0"
    allowed = (
        f"allowed: {layer_rule}, expert in 0..{experts - 1} (the model's experts), "
        f"count a number in [0, {MAX_TRACE_COUNT:.0f}] (2^53)"
    )
    table: dict[int, np.ndarray] = {}
    seen: dict[tuple[int, int], int] = {}
    try:
        for row in reader:
            i = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if header is None:
                header = cells
                if sorted(header) != ["count", "expert", "layer"]:
                    break
                continue
            if len(cells) != 3:
                raise UserError(f"{bad} line {i}: {len(cells)} values; allowed: 3 (layer,expert,count)")
            rec = dict(zip(header, cells, strict=True))
            got = "got " + ", ".join(f"{k} {_shown(rec[k])}" for k in ("layer", "expert", "count"))
            if not (_WHOLE.match(rec["layer"]) and _WHOLE.match(rec["expert"])) or _count(rec["count"]) is None:
                raise UserError(
                    f"{bad} line {i}: layer and expert must be whole numbers >= 0, count a number; {allowed}; {got}"
                )
            layer, expert, count = _index(rec["layer"]), _index(rec["expert"]), float(rec["count"])
            if (layers and layer >= layers) or expert >= experts or not 0 <= count <= MAX_TRACE_COUNT:
                raise UserError(f"{bad} line {i}: {allowed}; {got}")
            if (layer, expert) in seen:
                raise UserError(
                    f"{bad} line {i}: layer {layer} expert {expert} is also on line {seen[layer, expert]}; "
                    "allowed: one row per layer and expert"
                )
            seen[layer, expert] = i
            table.setdefault(layer, np.zeros(experts))[expert] = count
    except csv.Error as exc:
        raise UserError(f"{bad} line {reader.line_num}: not CSV ({exc}); allowed: {TRACE_FILE}") from None
    if header is None or sorted(header) != ["count", "expert", "layer"] or not table:
        raise UserError(f"{bad} needs the header layer,expert,count and at least one row")
    if moe_layers and len(table) > moe_layers:
        raise UserError(f"{bad}: {len(table)} layers; allowed: at most the model's {moe_layers} MoE layers")
    out = []
    for layer in sorted(table):
        total = table[layer].sum()
        if total <= 0:
            raise UserError(f"{bad}: layer {layer} has no routed tokens (all counts 0)")
        out.append(tuple(np.sort(table[layer] / total)[::-1].tolist()))
    return tuple(out)


def _index(cell: str) -> int:
    """A layer or expert index (whole digits): its value, or past any model's range when it has more than
    MAX_TRACE_DIGITS digits (Python refuses to convert a number of 4,300 digits or more)."""
    digits = cell.lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_TRACE_DIGITS else 10**MAX_TRACE_DIGITS


def _count(cell: str) -> float | None:
    """A count as a number (NaN and infinity included: the range check refuses them), None for text."""
    try:
        return float(cell)
    except ValueError:
        return None


def trace_id(layers: tuple[tuple[float, ...], ...]) -> int:
    """A stable numeric id for a trace (Scenario.routing_trace is a number; Scenario.traces maps it to the
    trace): crc32 of its values, >= 1."""
    return zlib.crc32(np.asarray([v for layer in layers for v in layer], dtype=np.float64).tobytes()) or 1
