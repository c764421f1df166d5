"""Reading the committed measurement files (validation/measurements/<machine>/: the benchmarks' CSVs and
NCCL's logs): regular files of bounded size and UTF-8 text, each CSV checked against the columns its
reader uses. Every refusal names the file (and the line and column where it applies) and what is
allowed; a measurement that is a folder, FIFO, device or dangling link is refused, never skipped."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from prophet_model.errors import UserError
from prophet_model.study.yaml_io import read_text, regular_present

MAX_MEASUREMENT_BYTES = 16 << 20  # protective: the largest committed CSV (a kernel profile) is under 40 kB
MAX_LOG_BYTES = 16 << 20  # protective: NCCL's INFO log of the probe is under 100 kB
MAX_ENV_BYTES = 1 << 20  # protective: a machine's env.json (software versions, GPU names) is under 2 kB
ENV_FILE = f"the env.json that validation/measure.py writes (a JSON object, UTF-8, under {MAX_ENV_BYTES:,} bytes)"


class MeasurementError(UserError, ValueError):
    """A committed measurement that the validation cannot use: a UserError (one line, exit 2), and a
    ValueError as the validation's readers raised before."""


@dataclass(frozen=True)
class Layout:
    """The columns a reader of one kind of measurement CSV relies on."""

    what: str  # which program writes the file, for the message
    required: tuple[str, ...] = ()  # columns that must be there, every cell filled
    numbers: tuple[str, ...] = ()  # where there: every filled cell a finite number
    whole: tuple[str, ...] = ()  # where there: every filled cell a whole number >= 1
    times: tuple[str, ...] = ()  # seconds, where there: every filled cell a finite number > 0

    @property
    def allowed(self) -> str:
        out = f"{self.what}, UTF-8, under {MAX_MEASUREMENT_BYTES:,} bytes: a header with the columns "
        out += ",".join(self.required) + ", then at least one row"
        if self.times:
            out += f"; times ({', '.join(self.times)}) in seconds > 0"
        return out


_SPREAD = ("p10_s", "p90_s", "min_s", "max_s")
BENCH = Layout(
    "a CSV that validation/measure.py writes",
    required=("benchmark", "part", "median_s"),
    numbers=("n_gpus", "hidden", "ffn", "experts", "top_k", "bytes", "tokens_per_rank", "ep", "reps"),
    times=("median_s", *_SPREAD),
)
DECODE = Layout(
    "decode.csv (validation/measure.py --parts decode)",
    required=("model", "batch", "context", "median_s"),
    numbers=("layers", "weight_bytes", "kv_bytes", "reps"),
    whole=("batch", "context"),
    times=("median_s", *_SPREAD),
)
KERNELS = Layout(
    "decode_kernels.csv (validation/measure.py --parts decode)",
    required=("model", "batch", "kernel", "count", "gpu_s"),
    whole=("batch", "count"),
    times=("gpu_s",),
)
OFFLOAD = Layout(
    "offload.csv (validation/measure.py --parts offload)",
    required=tuple(
        "policy routing experts top_k hidden ffn layers tokens resident_fraction expert_bytes step_s".split()
    ),
    numbers=("zipf_s", "resident_fraction", "cache_slots", "accuracy", "hit_rate", "steps"),
    whole=("experts", "top_k", "hidden", "ffn", "layers", "tokens", "expert_bytes"),
    times=("step_s",),
)
PROBE_CSV = Layout(
    "probe.csv (validation/probe_p2p_path.py)",
    required=("part", "grid", "warps", "block", "bytes", "median_s"),
    numbers=("grid", "warps", "block"),  # 0 on the rows of NCCL's own all-to-all
    whole=("bytes",),
    times=("median_s", *_SPREAD),
)
PEER_COPY = Layout(
    "peer_copy.csv (validation/measure.py --parts peer_copy)",
    required=("part", "bytes", "median_s"),
    whole=("bytes",),
    times=("median_s", *_SPREAD),
)
MULTI = Layout(  # validation/measure_multi.py's sets: which columns a set has depends on the set
    "a CSV that validation/measure_multi.py writes",
    numbers=tuple("bytes experts top_k hidden ffn layers tokens batch context accuracy resident_fraction".split()),
    times=("median_s", "step_s", *_SPREAD),
)


def present(path: Path, layout: Layout | None = None) -> bool:
    """Whether an optional measurement file is there: False when nothing is at `path`, True for a regular
    file; a UserError naming it for a folder, FIFO, device or dangling link there (never skipped)."""
    return regular_present(path, layout.allowed if layout else "a measurement file")


def _shown(cell: str) -> str:
    return repr(cell) if len(cell) <= 40 else f"{cell[:20]!r}... ({len(cell):,} characters)"


@dataclass(frozen=True)
class Checked:
    """A checked measurement CSV: its text, header, data rows (blank lines dropped) and their line numbers."""

    text: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]


def _cell_problem(cell: str, column: str, layout: Layout) -> str | None:
    """What is wrong with a filled cell of `column`, or None."""
    if column not in layout.numbers + layout.whole + layout.times:
        return None
    try:
        value = float(cell)
    except ValueError:
        return f"{_shown(cell)} is not a number"
    if not math.isfinite(value):
        return f"{_shown(cell)} is not a finite number"
    if column in layout.whole and not (value >= 1 and value.is_integer()):
        return f"{_shown(cell)} is not a whole number >= 1"
    if column in layout.times and value <= 0:
        return f"{_shown(cell)} seconds; allowed: a time > 0"
    return None


def check_csv(path: Path, layout: Layout) -> Checked:
    """Read and check a measurement CSV: a regular UTF-8 file under MAX_MEASUREMENT_BYTES with a header,
    the layout's required columns, at least one row, no row longer than the header, and numbers and times
    as the layout says. UserError naming the file, the line and the column otherwise."""
    text = read_text(path, MAX_MEASUREMENT_BYTES, layout.allowed)
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows, lines = [], []
    try:
        for row in reader:
            if not row:
                continue  # a blank line (pandas skips it too)
            if header is None:
                header = [c.strip() for c in row]
                missing = [c for c in layout.required if c not in header]
                if missing:
                    raise UserError(
                        f"{path} line {reader.line_num}: no column {', '.join(missing)}; allowed: {layout.allowed}"
                    )
                continue
            if len(row) > len(header):
                raise UserError(
                    f"{path} line {reader.line_num}: {len(row)} values for {len(header)} columns; "
                    f"allowed: {layout.allowed}"
                )
            for j, column in enumerate(header):
                cell = row[j].strip() if j < len(row) else ""  # a short row: the rest empty (as pandas reads it)
                problem = (
                    f"empty; allowed: {layout.allowed}"
                    if not cell and column in layout.required
                    else _cell_problem(cell, column, layout)
                    if cell
                    else None
                )
                if problem:
                    if "allowed:" not in problem:
                        problem += f"; allowed: {layout.allowed}"
                    raise UserError(f"{path} line {reader.line_num}, column {column}: {problem}")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise UserError(f"{path} line {reader.line_num}: not CSV ({exc}); allowed: {layout.allowed}") from None
    if header is None:
        raise UserError(f"{path}: empty; allowed: {layout.allowed}")
    if not rows:
        raise UserError(f"{path}: a header and no rows; allowed: {layout.allowed}")
    return Checked(text, header, rows, lines)


def read_log(path: Path, what: str) -> str:
    """The text of a log file (a regular UTF-8 file under MAX_LOG_BYTES); UserError naming it otherwise."""
    return read_text(path, MAX_LOG_BYTES, f"{what}, UTF-8 text under {MAX_LOG_BYTES:,} bytes")


def read_env(path: Path) -> dict | None:
    """A machine's env.json (None when there is none); a UserError naming it for a folder, FIFO, device or
    dangling link, a file over MAX_ENV_BYTES, bytes that are not UTF-8, or text that is not a JSON object."""
    if not regular_present(path, ENV_FILE):
        return None
    text = read_text(path, MAX_ENV_BYTES, ENV_FILE)
    try:
        env = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path}: not JSON ({str(exc)[:200]}); allowed: {ENV_FILE}") from None
    if not isinstance(env, dict):
        raise UserError(f"{path}: a JSON {type(env).__name__}, not an object; allowed: {ENV_FILE}")
    return env
