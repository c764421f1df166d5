"""`compare` for people: what differs in the inputs of two results folders (the configuration and the
catalog entries each run read, from its log), then the headline metrics that changed most, ranked by
relative change, then the rest on request (--all). `compare --format csv` stays the full table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

INPUTS_PREFIX = "inputs as read: "  # the line `run` writes into its log (commands/run.py)
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


def inputs_json(study) -> str:
    """One line of JSON: the validated configuration, the model's and every system's catalog entries."""
    entries = {
        "config": study.config.model_dump(mode="json"),
        "catalog": {
            "models": {study.model_key: study.model.model_dump(mode="json", exclude={"sources"})},
            "gpus": {s.gpu_key: s.gpu.model_dump(mode="json", exclude={"sources"}) for s in study.systems},
            "interconnects": {
                s.interconnect_key: s.interconnect.model_dump(mode="json", exclude={"sources"}) for s in study.systems
            },
        },
    }
    return json.dumps(entries, sort_keys=True, ensure_ascii=False)


def read_inputs(results: Path) -> dict | None:
    """The inputs of the newest log in results/logs that records them (None for a folder written before)."""
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
