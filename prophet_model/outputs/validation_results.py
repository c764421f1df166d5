"""Read what `run` wrote of the measurements (results/data/validation/, outputs/files.py names the files):
the validation page, the book and the paper read these, never the measurements or the model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prophet_model.errors import UserError
from prophet_model.outputs.files import VALIDATION_DIR, VALIDATION_FACTS, VALIDATION_TABLES

AGAIN = "run `python -m prophet_model run` (or `make`) to write it"


def _path(results: str | Path, name: str) -> Path:
    path = Path(results) / VALIDATION_DIR / name
    if not path.is_file():
        raise UserError(f"{path}: not found (the validation's results); {AGAIN}")
    return path


def read(results: str | Path, stem: str) -> pd.DataFrame:
    """The table `stem` (one of VALIDATION_TABLES) as written, every float as it was (round trip); a table
    written empty is an empty DataFrame."""
    if stem not in VALIDATION_TABLES:
        raise ValueError(f"validation table {stem!r}; allowed: {', '.join(VALIDATION_TABLES)}")
    path = _path(results, f"{stem}.csv")
    try:
        return pd.read_csv(path)  # pandas 3 parses floats exactly (round trip)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def facts(results: str | Path) -> dict:
    """The validation's scalars (facts.json): verdict_limit_pct, alltoall_regimes, alltoall_per_token_bytes,
    alltoall_gpus, nccl_path."""
    path = _path(results, VALIDATION_FACTS)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not the JSON `run` writes ({str(exc)[:200]}); {AGAIN}") from None


@dataclass(frozen=True)
class Validated:
    """The model's validated error for one mechanism (measured.evidence.Validated, as written)."""

    mechanism: str
    what: str  # what was measured and predicted
    points: int
    median_pct: float  # median |error|, %
    worst_pct: float  # largest |error|, %
    sentence: str  # the mechanism, what, median, worst and points in words

    def text(self) -> str:
        return self.sentence


def validated(results: str | Path) -> dict[str, Validated]:
    """{mechanism: its validated error} (validated.csv)."""
    t = read(results, "validated")
    return {
        r.mechanism: Validated(r.mechanism, r.what, int(r.points), float(r.median_pct), float(r.worst_pct), r.text)
        for r in t.itertuples()
    }


def claim_evidence(results: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of claim_evidence.csv (system_id, strategy, mechanisms, validated, rates, failed_checks: `run`
    writes them for the headline rows) of the system and strategy of each row of `rows` that has a speedup,
    in their order."""
    ev = read(results, "claim_evidence")
    live = rows.dropna(subset=["speedup"]) if "speedup" in rows else rows
    if ev.empty or live.empty:
        return pd.DataFrame(columns=["system_id", "strategy", "mechanisms", "validated", "rates", "failed_checks"])
    keys = live[["system_id", "strategy"]].astype(str)
    return keys.merge(ev.astype({"system_id": str, "strategy": str}), on=["system_id", "strategy"], how="inner")
