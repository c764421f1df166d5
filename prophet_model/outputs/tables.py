"""Read back the CSVs `run` writes (for `paper` and `analyze`), refusing one that is not what `run`
wrote: truncated, replaced by hand, or of another layout. The refusal names the file, what is wrong
with it and how to make it again; no consumer then trips over a missing column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prophet_model.errors import UserError
from prophet_model.study import columns

# file name -> (columns it must have, of which those that must hold numbers): study/columns.py
SCHEMAS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (columns.names(cols), columns.numeric_columns(cols))
    for name, cols in columns.FILES.items()
    if name in ("sanity_checks.csv", "claims.csv", "uncertainty.csv")
}
TEXT_COMPARISON = columns.text_columns()


def _schema(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if name == "all_systems_comparison.csv":
        return columns.comparison_columns(), columns.numeric_columns(columns.COMPARISON)
    return SCHEMAS.get(name, ((), ()))


def regenerate_hint(results_dir: Path) -> str:
    """How to write a results folder's CSVs again."""
    where = "" if Path(results_dir) == Path("results") else f" --results {results_dir}"
    return f"regenerate it with `python -m prophet_model run{where}` (or `make` for the default folder)"


def problem(path: Path) -> str | None:
    """What is wrong with a CSV that `run` wrote (None: nothing found): unreadable, truncated (every
    file `run` writes ends with a line feed), a required column missing, or text in a number column."""
    name = path.name
    columns, numeric = _schema(name)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not raw.strip():
        return "is empty"
    if not raw.endswith(b"\n"):
        return "is truncated (its last line is cut off)"
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        return f"is not a CSV table ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    missing = [c for c in columns if c not in df.columns]
    if missing:
        return f"lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing[:5])}" + (
            f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        )
    for c in numeric:
        if not pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any():
            return f"has text in its number column {c}"
    return None


def read_table(path: Path, results_dir: Path) -> pd.DataFrame:
    """The CSV at `path`, checked (problem); a UserError naming the file, its problem and how to
    regenerate it otherwise."""
    why = problem(path)
    if why is not None:
        raise UserError(
            f"{path} {why}: it is not the file `python -m prophet_model run` wrote; {regenerate_hint(results_dir)}"
        )
    return pd.read_csv(path)
