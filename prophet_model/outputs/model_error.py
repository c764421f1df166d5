"""The model's validated error that a gain is held against, read from a results folder without pandas (`whatif`
stays light: tests/test_records.py), and the one sentence that says what "within the model's error" means."""

from __future__ import annotations

import csv
from pathlib import Path

from prophet_model.outputs import formatting as fmt


def speedup_error(results_dir: Path) -> float | None:
    """formatting.speedup_error_pct of the results folder's validation/validated.csv; None where the folder has
    none, it is not a regular file (a FIFO or a device is never opened) or it cannot be read."""
    path = results_dir / "data" / "validation" / "validated.csv"
    if not path.is_file():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return fmt.speedup_error_pct(list(csv.DictReader(f)))
    except (ValueError, KeyError, OSError, csv.Error):  # unreadable: no error to compare with, said nowhere
        return None


def within_note(error: float | None) -> str:
    """What "within the model's error" means, in one line."""
    return (
        f"within the model's error: a gain below the {fmt.pct(error)} median |error| of the whole decode step's "
        "validated prediction (results/data/validation/validated.csv)"
    )
