"""Measured run times and disk, from one source: benchmarks/results.json (written by `make bench` and
benchmarks/bench_prepare.py). The README, the getting-started page and the artifact appendix quote the
same figures through these functions."""

from __future__ import annotations

import json
from pathlib import Path

from prophet_model.outputs import formatting as fmt
from prophet_model.paths import BENCHMARKS

BENCH = BENCHMARKS / "results.json"
COLD = "make, cold"  # the one cold-make figure every page quotes
WARM = "make, nothing changed"


def load(path: Path = BENCH) -> dict:
    """{"figures": {name: {value, unit, target}}, "machine": ..., "date": ...}; no figures if the file is missing."""
    return json.loads(path.read_text()) if path.is_file() else {"figures": {}}


def seconds(name: str, path: Path = BENCH) -> float | None:
    """A measured figure in seconds (None when it was not measured)."""
    entry = load(path)["figures"].get(name)
    return None if entry is None else float(entry["value"])


def duration(s: float) -> str:
    """A run time as a person reads it: seconds to two figures below 90 s, else minutes (54 s, 8 min)."""
    return f"{fmt.sig(s, 2)} s" if s < 90 else f"{s / 60:.0f} min"


def phrase(name: str, path: Path = BENCH) -> str | None:
    """'about 54 s' for a measured figure, None when it was not measured."""
    s = seconds(name, path)
    return None if s is None else f"about {duration(s)}"


def met(value: float, target: str) -> str:
    """Whether a measured figure meets its target ("< 2 s", "<= 0.4 s", ">= 1,000,000", "< 20 min (CI)"): "met",
    "MISSED" or "" where no target is given (a target in minutes is compared in seconds)."""
    import re

    m = re.match(r"\s*(<=|>=|<|>)\s*([\d,.]+)\s*(min)?", target or "")
    if m is None:
        return ""
    bound = float(m[2].replace(",", "")) * (60 if m[3] else 1)
    ok = {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound}[m[1]]
    return "met" if ok else "MISSED"
