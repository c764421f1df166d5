"""Answers for scripts: `whatif --format csv|json`, new files for --out (`write_new`) and `compare` (the
numbers that differ between two results folders). The sweep's grid is in grid.py."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from prophet_model.errors import UserError
from prophet_model.outputs.files import FLOAT_FORMAT

if TYPE_CHECKING:
    from prophet_model.study.runner import StudyResults

# headline columns of a what-if, per strategy
WHATIF_COLUMNS = (
    "baseline_split",
    "prophet_split",
    "baseline_batch",
    "prophet_batch",
    "baseline_attention_tp",
    "prophet_attention_tp",
    "placement",
    "baseline_step_ms",
    "prophet_step_ms",
    "baseline_tokens_per_s",
    "prophet_tokens_per_s",
    "speedup",
    "baseline_usd_per_1m_tokens",
    "prophet_usd_per_1m_tokens",
    "annual_savings_usd",
    "note",
)  # (note: why a strategy has no numbers, e.g. the memory that overflows)


def _value(v: object) -> object:
    """A CSV/JSON cell: floats as floats (NaN -> None), numpy scalars unwrapped."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


STEP_TERMS = (
    "compute_ms",
    "fetch_ms",
    "fetch_exposed_ms",
    "comm_exposed_ms",
    "alltoall_exposed_ms",
    "allreduce_ms",
    "step_ms",
)  # the step's breakdown


def whatif_rows(before: StudyResults, after: StudyResults, system_id: str) -> pd.DataFrame:
    """One tidy row per strategy and case ('configured', 'what-if'): the system (id, name, GPU,
    interconnect, count), the model, the headline columns, each variant's step-time breakdown (compute,
    expert fetch before and after hiding, exposed all-to-all, ms) and whether it fits in memory
    (`*_fits`: weights, KV cache and reserve fit; `*_holds_all_experts`: every expert stays on the GPUs)."""
    rows = []
    for case, res in (("configured", before), ("what-if", after)):
        system = res.study.system(system_id)
        chosen = res.chosen[res.chosen.system_id == system_id]
        for _, r in res.comparison[res.comparison.system_id == system_id].iterrows():
            row = {
                "system_id": system_id,
                "system": system.name,
                "gpu": system.gpu_key,
                "interconnect": system.interconnect_key,
                "n_gpus": system.count,
                "model": res.study.model_key,
                "strategy": r.strategy,
                "case": case,
                **{c: r.get(c, np.nan) for c in WHATIF_COLUMNS},
            }
            for variant in ("baseline", "prophet"):
                v = chosen[(chosen.strategy == r.strategy) & (chosen.variant == variant)]
                v = v.iloc[0] if len(v) else pd.Series(dtype=object)
                for term in STEP_TERMS[:-1]:
                    row[f"{variant}_{term}"] = v.get(term, np.nan)
                row[f"{variant}_fits"] = bool(v.get("feasible", False))
                held = v.get("holds_all_experts", np.nan)
                row[f"{variant}_holds_all_experts"] = held if pd.isna(held) else bool(held)
            rows.append(row)
    return pd.DataFrame(rows)


def csv_text(rows: pd.DataFrame) -> str:
    """Deterministic CSV text (the results' float format, no index, LF line endings)."""
    buf = io.StringIO()
    rows.to_csv(buf, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    return buf.getvalue()


def whatif_json(changes: list[str], notes: list[str], rows: pd.DataFrame) -> str:
    out = {
        "changes": changes,
        "notes": notes,
        "rows": [{k: _value(v) for k, v in r.items()} for r in rows.to_dict("records")],
    }
    return json.dumps(out, indent=1, sort_keys=False, allow_nan=False) + "\n"


def check_new(path: Path, force: bool, option: str = "--out") -> None:
    """What write_new refuses, said before anything is computed or written: an existing file without
    --force, a folder or other non-file, a folder that does not exist."""
    if path.is_dir():
        raise UserError(
            f"{path} is a folder (never replaced, not even with --force); allowed: a file path for "
            f"{option}, e.g. {path / ('sweep.png' if option == '--plot' else 'sweep.csv')}"
        )
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a regular file (never replaced); allowed: a file path for {option}")
    if path.exists() and not force:
        raise UserError(f"{path} exists; allowed: another {option}, or --force to replace it")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder; allowed: {option} in an existing folder")


def write_new(path: Path, text: str | bytes, force: bool, option: str = "--out") -> None:
    """Write `text` to `path` through a temporary file; an existing file is replaced only with --force,
    a folder (or anything else that is not a file) never; a folder that cannot be written is named."""
    check_new(path, force, option)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(text, bytes):
            tmp.write_bytes(text)
        else:
            tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(
            f"{option} {path}: cannot write there ({exc.strerror or exc}); allowed: a file in a folder you can write to"
        ) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a folder where nothing could be made has nothing to remove
            pass


# --------------------------------------------------------------------------------------------
# compare

# rows are matched on these columns (other CSVs: on their text columns)
KEYS = {
    "all_systems_comparison.csv": ["system_id", "strategy"],
    "fixed_batch_comparison.csv": ["system_id", "strategy"],
    "headline.csv": ["system_id"],
    "sanity_checks.csv": ["kind", "system_id", "strategy", "check"],
    "claims.csv": ["claim", "lever"],
    "uncertainty.csv": ["system_id", "metric"],
}


def _keys(name: str, a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    if name in KEYS:
        return [k for k in KEYS[name] if k in a.columns and k in b.columns]
    if name.startswith("results_"):
        return [k for k in ("system_id", "strategy", "variant", "ep", "dp") if k in a.columns and k in b.columns]
    return [c for c in a.columns if c in b.columns and a[c].dtype == object and b[c].dtype == object]


def _label(row: pd.Series, keys: list[str]) -> str:
    return " / ".join(str(row[k]) for k in keys)


ALWAYS_ROWS = ("all_systems_comparison.csv", "fixed_batch_comparison.csv", "headline.csv")  # one row per system
# (and results_<id>.csv); another table may be written with its header alone (no claim, no check failed)


def _table(path: Path) -> pd.DataFrame:
    """A CSV of a results folder, read for `compare`: one that is empty, cut short or not a table (or one
    that always has rows but has none) is a UserError naming it, never an internal error."""
    from prophet_model.outputs.tables import problem

    folder = path.parent.parent
    hint = f"allowed: a results folder as `python -m prophet_model run --results {folder}` writes it"
    why = problem(path)
    if why is not None:
        raise UserError(f"{path}: {why}; {hint}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise UserError(
            f"{path}: cannot be read as a table ({str(exc).splitlines()[0] if str(exc) else exc!r}); {hint}"
        ) from None
    if df.empty and (path.name in ALWAYS_ROWS or path.name.startswith("results_")):
        raise UserError(f"{path}: has a header but no rows (every results folder has one per system); {hint}")
    return df


def compare_folders(a: Path, b: Path, rtol: float = 0.0) -> pd.DataFrame:
    """Every value that differs between the CSVs of two results folders (data/*.csv): file, row key,
    column, the two values, and the difference (absolute and relative) for numbers; files or rows
    present on one side only are listed too. `rtol`: relative differences up to it are ignored."""
    for d in (a, b):
        if not (d / "data").is_dir():
            raise UserError(f"{d}: no data/ folder; allowed: a results folder written by `python -m prophet_model run`")
    names = sorted({p.name for p in (a / "data").glob("*.csv")} | {p.name for p in (b / "data").glob("*.csv")})
    rows: list[dict] = []
    for name in names:
        pa, pb = a / "data" / name, b / "data" / name
        if not pa.is_file() or not pb.is_file():
            rows.append(
                {
                    "file": name,
                    "row": "",
                    "column": "",
                    "a": "present" if pa.is_file() else "absent",
                    "b": "present" if pb.is_file() else "absent",
                    "difference": np.nan,
                    "relative": np.nan,
                }
            )
            continue
        da, db = _table(pa), _table(pb)
        keys = _keys(name, da, db)
        if not keys:
            da, db, keys = da.reset_index(), db.reset_index(), ["index"]
        ia = {_label(r, keys): r for _, r in da.iterrows()}
        ib = {_label(r, keys): r for _, r in db.iterrows()}
        for key in list(dict.fromkeys([*ia, *ib])):
            if key not in ia or key not in ib:
                rows.append(
                    {
                        "file": name,
                        "row": key,
                        "column": "",
                        "a": "present" if key in ia else "absent",
                        "b": "present" if key in ib else "absent",
                        "difference": np.nan,
                        "relative": np.nan,
                    }
                )
                continue
            ra, rb = ia[key], ib[key]
            for col in [c for c in da.columns if c not in keys] + [c for c in db.columns if c not in da.columns]:
                if col not in da.columns or col not in db.columns:
                    rows.append(
                        {
                            "file": name,
                            "row": key,
                            "column": col,
                            "a": ra[col] if col in da.columns else "column absent",
                            "b": rb[col] if col in db.columns else "column absent",
                            "difference": np.nan,
                            "relative": np.nan,
                        }
                    )
                    continue
                va, vb = ra[col], rb[col]
                if isinstance(va, (int, float, np.number)) and isinstance(vb, (int, float, np.number)):
                    fa, fb = float(va), float(vb)
                    if (math.isnan(fa) and math.isnan(fb)) or fa == fb:
                        continue
                    diff = fb - fa
                    rel = diff / abs(fa) if fa not in (0.0,) and not math.isnan(fa) else np.nan
                    if not math.isnan(rel) and abs(rel) <= rtol:
                        continue
                    rows.append(
                        {"file": name, "row": key, "column": col, "a": fa, "b": fb, "difference": diff, "relative": rel}
                    )
                elif not (pd.isna(va) and pd.isna(vb)) and str(va) != str(vb):
                    rows.append(
                        {
                            "file": name,
                            "row": key,
                            "column": col,
                            "a": va,
                            "b": vb,
                            "difference": np.nan,
                            "relative": np.nan,
                        }
                    )
    return pd.DataFrame(rows, columns=["file", "row", "column", "a", "b", "difference", "relative"])


def grid_size(grid: dict[str, np.ndarray]) -> int:
    return math.prod(len(v) for v in grid.values())
