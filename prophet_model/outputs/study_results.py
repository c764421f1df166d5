"""Read what `run` wrote of the study (results/data/, outputs/files.py names the files): the system,
cross-system and sensitivity pages read these, never the study's computing modules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prophet_model.errors import UserError
from prophet_model.outputs.files import SENSITIVITY_DIR, SENSITIVITY_TABLES, STUDY_FILES, SYSTEM_FILES, read_facts

AGAIN = "run `python -m prophet_model run` (or `make`) to write it"
# the study-wide tables a page may read by stem (data/<stem>.csv)
TABLES = tuple(Path(f).stem for f in STUDY_FILES if f.startswith("data/") and f.endswith(".csv"))


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{path}: not found (the study's results); {AGAIN}")
    try:
        return pd.read_csv(path)  # pandas 3 parses floats exactly (round trip)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def read(results: str | Path, stem: str) -> pd.DataFrame:
    """The study-wide table data/<stem>.csv (one of TABLES) as written."""
    if stem not in TABLES:
        raise ValueError(f"study table {stem!r}; allowed: {', '.join(TABLES)}")
    return _read(Path(results) / "data" / f"{stem}.csv")


def system_rows(results: str | Path, system_id: str) -> pd.DataFrame:
    """One system's rows (results_<id>.csv): every strategy, split, batch and variant the study evaluated."""
    return _read(Path(results) / SYSTEM_FILES[0].format(id=system_id))


def sensitivity(results: str | Path, stem: str) -> pd.DataFrame:
    """The sensitivity table data/sensitivity/<stem>.csv (one of SENSITIVITY_TABLES), every float as it was."""
    if stem not in SENSITIVITY_TABLES:
        raise ValueError(f"sensitivity table {stem!r}; allowed: {', '.join(SENSITIVITY_TABLES)}")
    return _read(Path(results) / SENSITIVITY_DIR / f"{stem}.csv")


def uncertainty(results: str | Path) -> pd.DataFrame | None:
    """The Monte Carlo's intervals (uncertainty.csv); None where the study configures no `uncertainty`
    (`run` then writes none)."""
    path = Path(results) / "data" / "uncertainty.csv"
    return _read(path) if path.is_file() else None


def facts(results: str | Path) -> dict:
    """The study's constants and lists the writers show (data/facts.json)."""
    path = Path(results)
    if not (path / "data" / "facts.json").is_file():
        raise UserError(f"{path / 'data' / 'facts.json'}: not found (the study's results); {AGAIN}")
    return read_facts(path)
