"""The study's results as records (lists of dicts, what the runner computes with) and as pandas
DataFrames, built on first use: a command that prints a few numbers (`whatif`) never imports pandas.

A DataFrame built here is the one the runner built with pandas before it computed with records, column for
column and dtype for dtype; `promoted` gives a record's values as such a DataFrame gives them back.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prophet_model.study.columns import comparison_columns, headline_columns

if TYPE_CHECKING:
    import pandas as pd

    from prophet_model.study.config import Study

Record = dict[str, Any]
# the columns of the comparison table (all_systems_comparison.csv), in order (study/columns.py); a row without
# numbers (a strategy not evaluated, or nothing fits in memory) has them empty and says why in `note`
COMPARISON_COLUMNS = comparison_columns()
_MISSING = object()


@functools.cache
def _kind(t: type) -> str:
    """'int' (a whole number, not a bool), 'float' (numpy's float64 too) or 'other'."""
    if issubclass(t, numbers.Integral) and not issubclass(t, bool) and t.__name__ != "bool":
        return "int"
    return "float" if issubclass(t, float) else "other"


def promoted(records: list[Record]) -> list[Record]:
    """The records as a DataFrame built from them gives them back row by row: a key a record lacks is NaN,
    and whole numbers in a column that also holds a NaN or a fraction are floats (pandas' int64 -> float64)."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    floats = set()
    for k in keys:
        present = [r[k] for r in records if k in r]
        kinds = {_kind(t) for t in set(map(type, present))}  # a column's value types, each checked once
        if "int" in kinds and "other" not in kinds and ("float" in kinds or len(present) < len(records)):
            floats.add(k)
    out = []
    for r in records:
        row = dict.fromkeys(keys, math.nan)  # the columns in order, NaN where the record has no value
        row.update(r)
        for k in floats.intersection(r):
            row[k] = float(row[k])
        out.append(row)
    return out


@dataclass
class SystemRows:
    """One system's rows: its identity (system_id, system, gpu, interconnect, n_gpus, placement) and one
    record per candidate (`n`: the GPUs evaluated, n_gpus_evaluated in the tables)."""

    identity: Record
    out: list[Record]
    _frame: Any = field(default=None, repr=False)

    def records(self) -> list[Record]:
        return [
            {**self.identity, **{("n_gpus_evaluated" if k == "n" else k): v for k, v in r.items()}} for r in self.out
        ]

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (built once)."""
        if self._frame is None:
            import pandas as pd

            df = pd.DataFrame(self.out).rename(columns={"n": "n_gpus_evaluated"})
            for i, (k, v) in enumerate(self.identity.items()):
                df.insert(i, k, v)
            self._frame = df
        return self._frame


@dataclass(frozen=True)
class Chosen:
    """The rows kept per system x strategy x variant: their positions among all rows (in order), the
    kept rows that fit but meet no latency bound (position among the kept, the note saying so), the kept
    records (with those changes and the scaling columns) and the scaling columns as computed."""

    index: list[int]
    slow: list[tuple[int, str]]
    records: list[Record]
    scaling: dict[str, list] = field(default_factory=dict)


def chosen_frame(rows: pd.DataFrame, chosen: Chosen) -> pd.DataFrame:
    """The chosen rows as a DataFrame: those of `rows`, the slow ones marked infeasible saying why."""
    import numpy as np

    best = rows.iloc[chosen.index].reset_index(drop=True)
    if chosen.slow:
        at = [i for i, _ in chosen.slow]
        best.loc[at, "note"] = [n for _, n in chosen.slow]
        best.loc[at, "feasible"] = False
        best.loc[at, "tokens_per_s"] = np.nan
    return best.assign(**chosen.scaling)


class StudyResults:
    """The study's results. Records (for printing without pandas): `comparison_records`, `fixed_records`,
    `headline_records`, `chosen_records`. DataFrames (built on first use):
    - `rows`: one row per system x strategy x variant x split x batch (the full step breakdown), and the
      reference configurations of the scaling ratio (`role` "reference");
    - `chosen`: the split and batch kept per system x strategy x variant (the fastest);
    - `comparison`: one row per system x strategy, baseline beside Prophet (all_systems_comparison.csv);
    - `fixed`: the same at the configured batch (fixed_batch_comparison.csv);
    - `headline`: per system, each variant at its best strategy, split and batch (headline.csv)."""

    def __init__(
        self,
        study: Study,
        parts: list[SystemRows],
        rows: list[Record] | None = None,
        chosen: Chosen | None = None,
        tables: dict[str, list[Record]] | None = None,
    ) -> None:
        self.study = study
        self._parts = parts
        self.row_records = rows or []
        self._chosen = chosen
        tables = tables or {}
        self.comparison_records = tables.get("comparison", [])
        self.fixed_records = tables.get("fixed", [])
        self.headline_records = tables.get("headline", [])
        self.chosen_records = chosen.records if chosen else []

    @functools.cached_property
    def rows(self) -> pd.DataFrame:
        import pandas as pd

        return pd.concat([p.frame() for p in self._parts], ignore_index=True) if self._parts else pd.DataFrame()

    @functools.cached_property
    def chosen(self) -> pd.DataFrame:
        return chosen_frame(self.rows, self._chosen) if self._chosen is not None else self.rows

    @functools.cached_property
    def comparison(self) -> pd.DataFrame:
        return self._table(self.comparison_records, list(COMPARISON_COLUMNS))

    @functools.cached_property
    def fixed(self) -> pd.DataFrame:
        return self._table(self.fixed_records, list(COMPARISON_COLUMNS))

    @functools.cached_property
    def headline(self) -> pd.DataFrame:
        return self._table(self.headline_records, list(headline_columns()), extra=False)

    def _table(self, records: list[Record], columns: list[str], extra: bool = True) -> pd.DataFrame:
        """The records as a DataFrame of `columns` (every one, also where no record has it), in that order,
        then (`extra`) the records' other keys."""
        import pandas as pd

        if not self._parts:
            return pd.DataFrame()
        df = pd.DataFrame(records)
        return df.reindex(columns=[*columns, *(c for c in df.columns if extra and c not in columns)])

    def system_rows(self, system_id: str) -> pd.DataFrame:
        return self.chosen[self.chosen.system_id == system_id].reset_index(drop=True)
