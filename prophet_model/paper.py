"""The paper's LaTeX, rendered from the results CSV with Jinja2 (`python -m prophet_model paper`).

Templates in templates/*.tex.j2 use LaTeX-safe delimiters (((( var ))), ((* block *)), ((= comment =)))
and the `tex` filter, which escapes & % $ # _ { } ~ ^ \\ and writes × as $\\times$. Every number comes
from all_systems_comparison.csv through formatting.py, so the paper, the summaries and the book read alike.
"""

from __future__ import annotations

import math
from pathlib import Path

import jinja2
import pandas as pd

from . import formatting as fmt
from .config import Study
from .errors import UserError
from .figures import key_rows
from .results import PAPER_FILES
from .templating import TEMPLATES

TEX_ESCAPES = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "×": r"$\times$",
    "–": "--",
    "→": r"$\rightarrow$",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
DIGITS = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]

# Per-system macros: (suffix, column, formatter)
MACRO_METRICS = (
    ("BaselineTput", "baseline_tokens_per_s", fmt.tokens),
    ("ProphetTput", "prophet_tokens_per_s", fmt.tokens),
    ("Speedup", "speedup", fmt.ratio),
    ("BaselineCost", "baseline_usd_per_1m_tokens", fmt.usd),
    ("ProphetCost", "prophet_usd_per_1m_tokens", fmt.usd),
    ("CostReduction", "cost_reduction", fmt.ratio),
    ("Savings", "annual_savings_usd", fmt.usd),
    ("BaselineComm", "baseline_comm_overhead_pct", fmt.pct),
    ("ProphetComm", "prophet_comm_overhead_pct", fmt.pct),
    ("CommReduction", "comm_reduction", fmt.ratio),
    ("BaselineScaling", "baseline_scaling_efficiency_pct", fmt.pct),
    ("ProphetScaling", "prophet_scaling_efficiency_pct", fmt.pct),
)


def tex(value: object) -> str:
    """Escape text for LaTeX (text mode)."""
    return "".join(TEX_ESCAPES.get(ch, ch) for ch in str(value))


def macro_name(*parts: str) -> str:
    """A LaTeX command name (letters only): digits become words, everything else is dropped."""
    out = []
    for part in parts:
        for ch in part:
            if ch.isdigit():
                out.append(DIGITS[int(ch)])
            elif ch.isascii() and ch.isalpha():
                out.append(ch)
    return "prophet" + "".join(out)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        block_start_string="((*",
        block_end_string="*))",
        variable_start_string="(((",
        variable_end_string=")))",
        comment_start_string="((=",
        comment_end_string="=))",
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(tex=tex, tokens=fmt.tokens, ratio=fmt.ratio, pct=fmt.pct, usd=fmt.usd)
    return env


def _range(values: pd.Series, formatter) -> str:
    v = values.dropna()
    lo, hi = formatter(v.min()), formatter(v.max())
    return lo if lo == hi else f"{lo}–{hi}"


def context(study: Study, comparison: pd.DataFrame) -> dict:
    """Everything the templates need, computed once from the comparison table."""
    cfg = study.config.study
    live = comparison.dropna(subset=["speedup"])
    if live.empty:
        raise UserError("all_systems_comparison.csv has no evaluated system; run `python -m prophet_model run` first")
    rows = key_rows(live, cfg.headline_strategy)
    head = rows[rows.system_id == cfg.headline_system]
    if head.empty:
        raise UserError(f"study.headline_system {cfg.headline_system!r} has no results; run it or choose another")
    macros, seen = [], {}
    for r in rows.itertuples():
        for suffix, column, formatter in MACRO_METRICS:
            value = getattr(r, column)
            if isinstance(value, float) and math.isnan(value):
                continue
            name = macro_name(suffix, r.system_id)
            if name in seen and seen[name] != r.system_id:
                raise UserError(
                    f"system ids {seen[name]!r} and {r.system_id!r} give the same LaTeX macro \\{name}; rename one"
                )
            seen[name] = r.system_id
            macros.append({"name": name, "value": tex(formatter(value)), "system": r.system, "column": column})
        macros.append(
            {
                "name": macro_name("Strategy", r.system_id),
                "value": tex(f"{r.strategy} {r.prophet_split.replace('x', '×')}"),
                "system": r.system,
                "column": "strategy",
            }
        )
        macros.append(
            {"name": macro_name("System", r.system_id), "value": tex(r.system), "system": r.system, "column": "system"}
        )
    prophet = study.config.prophet
    macros.append(
        {
            "name": "prophetAccuracy",
            "value": tex(fmt.pct(100 * prophet.prediction_accuracy)),
            "system": "study",
            "column": "prediction_accuracy",
        }
    )
    macros.append(
        {
            "name": "prophetVolumeReduction",
            "value": tex(fmt.ratio(prophet.comm_reduction_factor)),
            "system": "study",
            "column": "comm_reduction_factor",
        }
    )
    h = head.iloc[0]
    comm = rows.comm_reduction.dropna()
    return {
        "rows": rows.to_dict("records"),
        "head": h,
        "head_macro": lambda suffix: "\\" + macro_name(suffix, h.system_id),
        "macro": lambda suffix, sid: "\\" + macro_name(suffix, sid) + "{}",
        "macros": macros,
        "strategy": cfg.headline_strategy,
        "baseline_scaling": _range(rows.baseline_scaling_efficiency_pct, fmt.pct),
        "prophet_scaling": _range(rows.prophet_scaling_efficiency_pct, fmt.pct),
        "comm_reduction": _range(comm, fmt.ratio) if not comm.empty else "n/a",
        "n_systems": len(rows),
        "best_baseline_speedup": _range(rows.speedup_vs_best_baseline, fmt.ratio)
        if "speedup_vs_best_baseline" in rows
        else "n/a",
        "config_hash": study.config_hash,
    }


def claim_sentences(claims: pd.DataFrame, system_id: str) -> list[str]:
    """Plain sentences for the seed's claims about one system that the model does not reach: the
    artifact's figure and what each lever would need (claims.csv)."""
    out = []
    for _, g in claims[claims.system_id == system_id].groupby("claim", sort=False):
        r = g.iloc[0]
        if not g.lever.fillna("").astype(bool).any():
            continue
        needs, never = [], []
        for x in g.itertuples():
            if "does not move" in str(x.note):
                continue
            if pd.isna(x.needed):
                never.append(x.lever)
            elif "unreachable" in str(x.note):
                needs.append(f"{x.lever} {x.needed:.3g} {x.unit}, beyond the physical limit".replace("  ", " "))
            else:
                needs.append(f"{x.lever} {x.needed:.3g} {x.unit}".strip())
        what = {"speedup": "speedup", "prophet_tokens_per_s": "Prophet throughput (tokens/s)",
                "baseline_tokens_per_s": "baseline throughput (tokens/s)"}.get(r.metric, r.metric)  # fmt: skip
        text = f"the model gives a {what} of {r.model:.3g}, short of the seed's claim"
        if needs:
            text += "; reaching it would need " + "; or ".join(needs)
        if never:
            text += "; no value of " + ", ".join(never) + " alone reaches it"
        out.append(text)
    return list(dict.fromkeys(out))  # two claims on one metric give one sentence


def render(study: Study, results_dir: Path) -> dict[str, str]:
    """{file name: LaTeX text} for every paper file."""
    comp_path = results_dir / "data" / "all_systems_comparison.csv"
    if not comp_path.is_file():
        raise UserError(f"{comp_path}: not found; run `python -m prophet_model run` first")
    ctx = context(study, pd.read_csv(comp_path))
    claims_path = results_dir / "data" / "claims.csv"
    claims = (
        pd.read_csv(claims_path) if claims_path.is_file() else pd.DataFrame(columns=["system_id", "claim", "lever"])
    )
    ctx["head_claims"] = claim_sentences(claims, ctx["head"].system_id)
    env = environment()
    return {name: env.get_template(f"{name}.j2").render(**ctx) for name in PAPER_FILES}
