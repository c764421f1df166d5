"""`python -m prophet_model compare A B`: the numbers that differ between two results folders (exit 1 if
any). For people (text): what differs in the inputs of the two folders (the configuration and the catalog
entries each run read, from its log), then the headline metrics that changed most, ranked by relative
change, then the rest on request (--all); --format csv: every difference, as a table."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prophet_model.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

NAME = "compare"


def register(commands: argparse._SubParsersAction) -> None:
    cp = commands.add_parser("compare", help="the numbers that differ between two results folders (exit 1 if any)")
    cp.add_argument("a", help="a results folder")
    cp.add_argument("b", help="another results folder")
    cp.add_argument("--rtol", type=float, default=0.0, help="ignore relative differences up to this (default 0)")
    cp.add_argument(
        "--format",
        default="text",
        choices=["text", "csv"],
        help=(
            "text: the inputs that differ, then the headline metrics that changed most; csv: every "
            "difference (default: text)"
        ),
    )
    cp.add_argument("--all", action="store_true", help="text: list every difference after the ranked headline ones")


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.shared import csv_text

    if not (args.rtol >= 0):
        raise UserError(f"--rtol {args.rtol}: allowed: a number >= 0")
    table = compare_folders(Path(args.a), Path(args.b), args.rtol)
    if args.format == "csv":
        sys.stdout.write(csv_text(table))
    else:
        sys.stdout.write(people_text(table, Path(args.a), Path(args.b), args.all) + "\n")
    return 1 if len(table) else 0


HEADLINE_FILES = ("headline.csv", "all_systems_comparison.csv")
HEADLINE_COLUMNS = (
    "speedup",
    "prophet_tokens_per_s",
    "baseline_tokens_per_s",
    "prophet_usd_per_1m_tokens",
    "baseline_usd_per_1m_tokens",
    "annual_savings_usd",
    "prophet_step_ms",
    "baseline_step_ms",
    "comm_reduction",
    "prophet_batch",
    "baseline_batch",
    "prophet_split",
    "baseline_split",
)
TOP = 10


def read_inputs(results: Path) -> dict | None:
    """The inputs of the newest log in results/logs that records them (None for a folder written before)."""
    import json

    from prophet_model.workflow.run_study import INPUTS_PREFIX

    logs = sorted((results / "logs").glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for log in logs:
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            at = line.find(INPUTS_PREFIX)
            if at >= 0:
                try:
                    return json.loads(line[at + len(INPUTS_PREFIX) :])
                except json.JSONDecodeError:
                    break
    return None


def _flat(node: object, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for k, v in node.items():
            out |= _flat(v, f"{prefix}{k}." if not isinstance(v, dict) or v else f"{prefix}{k}")
        return out or {prefix.rstrip("."): {}}
    if isinstance(node, list) and node and all(isinstance(e, dict) and "id" in e for e in node):
        return {k: v for e in node for k, v in _flat(e, f"{prefix}{e['id']}.").items()}
    return {prefix.rstrip("."): node}


def input_lines(a: Path, b: Path) -> list[str]:
    ia, ib = read_inputs(a), read_inputs(b)
    if ia is None or ib is None:
        which = " and ".join(str(p) for p, i in ((a, ia), (b, ib)) if i is None)
        return [f"inputs: not recorded in {which} (written before `run` logged them); rerun to see the difference"]
    fa, fb = _flat(ia), _flat(ib)
    keys = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k, "(absent)") != fb.get(k, "(absent)")]
    keys = [k for k in keys if not k.startswith("config.") or ".sources." not in k]  # the sources' wording
    if not keys:
        return ["inputs: the same configuration and catalog entries"]
    lines = [f"inputs that differ ({len(keys)}):"]
    for k in keys:
        lines.append(f"  {k.removeprefix('config.')}: {fa.get(k, '(absent)')} -> {fb.get(k, '(absent)')}")
    return lines


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The headline rows of a compare table, largest relative change first (changed text: first of all)."""
    head = table[table.file.isin(HEADLINE_FILES) & table.column.isin(HEADLINE_COLUMNS)].copy()
    size = head.relative.abs().fillna(math.inf)
    return head.assign(_size=size).sort_values("_size", ascending=False, kind="stable").drop(columns="_size")


def _line(r) -> str:
    where = " ".join(x for x in (r.row, r.column) if x)
    if isinstance(r.a, float) and isinstance(r.b, float) and not math.isnan(r.difference):
        rel = "" if math.isnan(r.relative) else f" ({100 * r.relative:+.3g}%)"
        return f"{where}: {r.a:.6g} -> {r.b:.6g}{rel}"
    return f"{where}: {r.a} -> {r.b}"


def people_text(table: pd.DataFrame, a: Path, b: Path, show_all: bool) -> str:
    """The inputs that differ, the headline metrics that changed most (ranked), then the rest or a count."""
    lines = [f"{a} (a) -> {b} (b)", *input_lines(a, b), ""]
    if table.empty:
        return "\n".join([*lines, "every number in data/*.csv is the same"])
    top = ranked(table)
    shown = top.head(TOP)
    if len(shown):
        lines.append(f"headline metrics that changed most ({len(shown)} of {len(top)}, largest relative change first):")
        lines += [f"  {r.file.removesuffix('.csv')}: {_line(r)}" for r in shown.itertuples()]
    else:
        lines.append("no headline metric changed")
    rest = table.drop(index=shown.index)
    if not show_all:
        if len(rest):
            lines.append(f"\n{len(rest)} more difference(s) in data/*.csv: --all lists them (--format csv: a table)")
        return "\n".join(lines)
    lines.append(f"\nevery other difference ({len(rest)}):")
    for file, g in rest.groupby("file", sort=False):
        lines += [f"  {file}", *(f"    {_line(r)}" for r in g.itertuples())]
    return "\n".join(lines)


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
    import pandas as pd

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
    import numpy as np
    import pandas as pd

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
