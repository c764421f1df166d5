"""The paper's LaTeX, rendered from the results CSV with Jinja2 (`python -m prophet_model paper`).

Templates in templates/*.tex.j2 use LaTeX-safe delimiters (((( var ))), ((* block *)), ((= comment =)))
and the `tex` filter, which escapes & % $ # _ { } ~ ^ \\ and writes × as $\\times$. Every number comes
from all_systems_comparison.csv through formatting.py, so the paper, the summaries and the book read alike.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import pandas as pd

from prophet_model.errors import UserError
from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.files import PAPER_FILES
from prophet_model.outputs.latex import KEYED_METRICS, TEX_ESCAPES, tex, tex_path, tex_value  # noqa: F401 (re-exported)
from prophet_model.outputs.templating import TEMPLATES
from prophet_model.outputs.voice import model_error_pct
from prophet_model.paths import ROOT

if TYPE_CHECKING:
    from prophet_model.study.config import Study

FACTORS = ("speedup", "cost_reduction")  # shown with the digits that tell them from 1.00x (formatting.apart)
DIGITS = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]

# Per-system one-number commands (the aliases): (suffix, column); formatted as KEYED_METRICS says
MACRO_METRICS = (
    ("BaselineTput", "baseline_tokens_per_s"),
    ("ProphetTput", "prophet_tokens_per_s"),
    ("Speedup", "speedup"),
    ("BaselineCost", "baseline_usd_per_1m_tokens"),
    ("ProphetCost", "prophet_usd_per_1m_tokens"),
    ("CostReduction", "cost_reduction"),
    ("Savings", "annual_savings_usd"),
    ("BaselineComm", "baseline_comm_overhead_pct"),
    ("ProphetComm", "prophet_comm_overhead_pct"),
    ("CommReduction", "comm_reduction"),
    ("BaselineScaling", "baseline_scaling_pct"),
    ("ProphetScaling", "prophet_scaling_pct"),
)


def keyed_values(study: Study, comparison: pd.DataFrame, rows: pd.DataFrame) -> list[dict]:
    """[{key, metric, value}] for \\prophet{KEY}{METRIC}: KEY is a system id (its headline row: Prophet at
    its best configuration against the baseline at its best) or SYSTEM/STRATEGY (every evaluated strategy), or
    `study` for the study's inputs; METRIC is a column name (KEYED_METRICS) or system, strategy, split."""
    out = []

    def add(key: str, r: pd.Series) -> None:
        out.append({"key": key, "metric": "system", "value": tex_value(r.system)})
        out.append({"key": key, "metric": "strategy", "value": tex_value(r.strategy)})
        out.append({"key": key, "metric": "split", "value": tex_value(str(r.prophet_split).replace("x", "×"))})
        for text in ("baseline_strategy", "baseline_split"):  # the headline row's baseline configuration
            if isinstance(r.get(text), str):
                out.append({"key": key, "metric": text, "value": tex_value(r[text].replace("x", "×"))})
        for column, formatter in KEYED_METRICS:
            v = r.get(column, math.nan)
            if isinstance(v, (int, float)) and not math.isnan(v):
                text = fmt.apart(v, 1.0)[0] if column in FACTORS else formatter(v)  # 1.002x, never 1.00x
                out.append({"key": key, "metric": column, "value": tex_value(text)})

    for r in rows.itertuples(index=False):
        add(r.system_id, pd.Series(r._asdict()))
    for _, r in comparison.dropna(subset=["speedup"]).iterrows():
        add(f"{r.system_id}/{r.strategy}", r)
    p = study.config.prophet
    out.append(
        {"key": "study", "metric": "prediction_accuracy", "value": tex_value(fmt.pct(100 * p.prediction_accuracy))}
    )
    out.append(
        {
            "key": "study",
            "metric": "comm_reduction_factor",
            "value": tex_value(fmt.comm_cut_text(p.comm_reduction_factor)),
        }
    )
    return out


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
    env.filters.update(tex=tex, path=tex_path, tokens=fmt.tokens, pct=fmt.pct, usd=fmt.usd)
    env.filters["ratio"] = lambda x: fmt.apart(x, 1.0)[0]  # a factor with the digits that tell it from 1.00x
    env.filters["change"] = lambda a, b, kind="ratio": fmt.change(a, b, kind)  # a -> b, or unchanged
    env.filters["pair"] = lambda a, b, kind="tokens": fmt.pair_texts(a, b, kind)  # two values told apart
    return env


def _range(values: pd.Series, formatter) -> str:
    v = values.dropna()
    lo, hi = formatter(v.min()), formatter(v.max())
    return lo if lo == hi else f"{lo}–{hi}"


def _cut(rows: pd.DataFrame, configured: float | None) -> dict:
    """Where Prophet's placement cuts the all-to-all bytes (a cut that reads 1.00x is none): {cut: its range
    over those rows, with "(configured, not derived)" where set; cut_names: those systems, or [] for all}."""
    from prophet_model.outputs.finding import CUT_TOLERANCE

    c = rows.dropna(subset=["comm_reduction"])
    c = c[c.comm_reduction.astype(float) > 1 + CUT_TOLERANCE]
    return {
        "cut": (_range(c.comm_reduction, fmt.ratio) + fmt.comm_cut_suffix(configured)) if not c.empty else "",
        "cut_names": [] if len(c) == len(rows) else list(c.system),
    }


def context(study: Study, comparison: pd.DataFrame, headline: pd.DataFrame) -> dict:
    """Everything the templates need, computed once from the comparison and headline tables (a system's
    row: Prophet at its best configuration against the baseline at its best)."""
    cfg = study.config.study
    live = comparison.dropna(subset=["speedup"])
    if live.empty:
        why = "; ".join(dict.fromkeys(n for n in comparison.get("note", ()) if isinstance(n, str) and n))
        raise UserError(
            "all_systems_comparison.csv has no evaluated system"
            + (f" ({why})" if why else "")
            + "; run `python -m prophet_model run` with a configuration that fits"
        )
    rows = headline.dropna(subset=["speedup"])
    head = rows[rows.system_id == cfg.headline_system]
    if head.empty:
        mine = comparison[comparison.system_id.astype(str) == cfg.headline_system]
        why = "; ".join(dict.fromkeys(n for n in mine.get("note", ()) if isinstance(n, str) and n))
        state = f"has no numbers ({why})" if why else "has no results (run it)"
        raise UserError(
            f"study.headline_system {cfg.headline_system!r} {state}; allowed: a system with results, "
            f"{', '.join(dict.fromkeys(rows.system_id.astype(str)))}"
        )
    macros, seen = [], {}
    for r in rows.itertuples():
        formatters = dict(KEYED_METRICS)
        for suffix, column in MACRO_METRICS:
            value = getattr(r, column)
            if isinstance(value, float) and math.isnan(value):
                continue
            name = macro_name(suffix, r.system_id)
            if name in seen and seen[name] != r.system_id:
                raise UserError(
                    f"system ids {seen[name]!r} and {r.system_id!r} give the same LaTeX macro \\{name}; rename one"
                )
            seen[name] = r.system_id
            text = fmt.apart(value, 1.0)[0] if column in FACTORS else formatters[column](value)
            macros.append({"name": name, "value": tex(text), "system": r.system, "column": column})
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
            "value": tex(fmt.comm_cut_text(prophet.comm_reduction_factor)),
            "system": "study",
            "column": "comm_reduction_factor",
        }
    )
    h = head.iloc[0]
    comm = rows.comm_reduction.dropna()
    keyed = keyed_values(study, comparison, rows)
    return {
        "keyed": keyed,
        "example_key": cfg.headline_system,
        "rows": rows.to_dict("records"),
        "head": h,
        "head_macro": lambda suffix: "\\" + macro_name(suffix, h.system_id),
        "macro": lambda suffix, sid: "\\" + macro_name(suffix, sid) + "{}",
        "macros": macros,
        "baseline_scaling": _range(rows.baseline_scaling_pct, fmt.pct),
        "prophet_scaling": _range(rows.prophet_scaling_pct, fmt.pct),
        "comm_reduction": (
            (_range(comm, fmt.ratio) + fmt.comm_cut_suffix(prophet.comm_reduction_factor)) if not comm.empty else "n/a"
        ),
        **_cut(rows, prophet.comm_reduction_factor),
        "comm_configured": prophet.comm_reduction_factor is not None,
        "n_systems": len(rows),
        "config_hash": study.config_hash,
    }


def claim_sentences(claims: pd.DataFrame, system_id: str) -> list[str]:
    """Plain sentences for the draft analysis's claims about one system that the model does not reach: the
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
                needs.append(f"{x.lever} {fmt.sig(x.needed)} {x.unit}, beyond the physical limit".replace("  ", " "))
            else:
                needs.append(f"{x.lever} {fmt.sig(x.needed)} {x.unit}".strip())
        what = {
            "speedup": "speedup",
            "prophet_tokens_per_s": "Prophet throughput (tokens/s)",
            "baseline_tokens_per_s": "baseline throughput (tokens/s)",
        }.get(r.metric, r.metric)
        text = (
            f"the draft analysis claims a {what} of {fmt.value_in_unit(r.claimed, r.metric)}, the model gives "
            f"{fmt.value_in_unit(r.model, r.metric)}"
        )
        if needs:
            text += "; reaching it would need " + "; or ".join(needs)
        if never:
            text += "; no value of " + ", ".join(never) + " alone reaches it"
        out.append(text)
    return list(dict.fromkeys(out))  # two claims on one metric give one sentence


BADGES = ("Artifacts Available", "Artifacts Evaluated: Functional", "Results Reproduced")
EXACT = "identical (deterministic: every CSV and LaTeX file byte-identical with the same inputs and packages)"


def appendix_context(
    study: Study, headline: pd.DataFrame, checks: pd.DataFrame | None, claims: pd.DataFrame, results_dir: Path
) -> dict:
    """What the artifact appendix states, from the config, the catalogs, benchmarks/results.json and the
    validation (results/data/validation/validated.csv and facts.json: measured figures only; what was not
    measured says so)."""
    from prophet_model import __version__
    from prophet_model.outputs import timings
    from prophet_model.outputs.files import read_facts
    from prophet_model.outputs.validation_results import validated

    bench = timings.load()
    fig = {k: v["value"] for k, v in bench.get("figures", {}).items()}
    not_measured = "not measured yet (benchmarks/bench_prepare.py measures it)"
    if "disk, environment" in fig:
        disk = (
            f"about {fmt.sig(fig['disk, environment'], 2)} GB for the Python environment and "
            f"{fmt.sig(fig['disk, outputs'], 2)} MB of outputs"
        )
    else:
        disk = not_measured
    prepare = (
        f"{timings.phrase('prepare (fresh environment)')} to create the Python environment (measured)"
        if "prepare (fresh environment)" in fig
        else not_measured
    )
    cold = timings.phrase(timings.COLD)
    run_time = f"{cold} for make (measured, cold)" if cold is not None else not_measured
    if "make test" in fig:
        run_time += f", {timings.phrase('make test')} for make test"
    rows = headline.dropna(subset=["speedup"])
    claim_rows = []
    error = model_error_pct(results_dir)
    for r in rows.itertuples():
        base, mine = fmt.apart(r.baseline_tokens_per_s, r.prophet_tokens_per_s, fmt.tokens)
        speedup = fmt.apart(r.speedup, 1.0)[0] + (f", {fmt.WITHIN_ERROR}" if fmt.within_error(r.speedup, error) else "")
        claim_rows.append(
            {
                "text": (
                    f"{r.system} ({r.strategy} {r.prophet_split.replace('x', '×')}): "
                    + (
                        f"Prophet and the baseline both {base} tokens/s"
                        if base == mine
                        else f"Prophet {mine} tokens/s against {base} for the baseline"
                    )
                    + f" ({speedup}); cost per million tokens "
                    + fmt.change(r.baseline_usd_per_1m_tokens, r.prophet_usd_per_1m_tokens, "usd")
                ),
                "file": "results/data/headline.csv",
                "command": "python -m prophet_model run",
                "tolerance": EXACT,
            }
        )
    if not claims.empty:
        n = claims.claim.nunique()
        missed = claims[claims.lever.fillna("").astype(bool)].claim.nunique()
        claim_rows.append(
            {
                "text": (
                    f"{n} of the draft analysis's claims checked against the model and inverted over "
                    f"their levers; {missed} not reproduced by the model, each with the value its levers "
                    "would need"
                ),
                "file": "results/data/claims.csv",
                "command": "python -m prophet_model run",
                "tolerance": EXACT,
            }
        )
    claim_rows += [
        {
            "text": "the key figure: throughput and cost of every system",
            "file": "results/figures/cross_system_comparison.pdf",
            "command": "python -m prophet_model run",
            "tolerance": "the same bars and labels (the PDF's bytes may differ with the Matplotlib build)",
        },
        {
            "text": "90% intervals of every headline number (seeded Monte Carlo)",
            "file": "results/data/uncertainty.csv",
            "command": "python -m prophet_model run",
            "tolerance": "identical (fixed seed)",
        },
        {
            "text": "the validation against the committed measurements",
            "file": "book/_build/html/validation.html",
            "command": "make",
            "tolerance": (
                "identical from the committed measurements; new measurements on another "
                "GPU of the same kind should fall within the worst errors quoted below"
            ),
        },
    ]
    failed = ""
    if checks is not None and not checks.empty:
        exp = checks[checks.kind == "expectation"]
        failed = f"{int((exp.status == 'MISS').sum())} of {len(exp)} expected ranges missed"
    lock = ROOT / "requirements.lock"
    n_packages = sum(1 for ln in lock.read_text().splitlines() if ln.strip() and not ln.startswith("#"))
    return {
        "model_name": study.model.name + own_models(study),
        "n_models": len(study.models),
        "n_machines": read_facts(results_dir)["measured_machines"],  # measured only
        "n_strategies": len(study.config.strategies),
        "python": "3.11 or newer",
        "n_packages": n_packages,
        "bench_machine": bench.get("machine", "an unrecorded machine"),
        "disk": disk,
        "prepare_time": prepare,
        "run_time": run_time,
        "badges": BADGES,
        "version": __version__,
        "claims": claim_rows,
        "validated": [v.text() for v in validated(results_dir).values()],
        "failed": failed,
    }


def render(study: Study, results_dir: Path) -> dict[str, str]:
    """{file name: LaTeX text} for every paper file."""
    comp_path = results_dir / "data" / "all_systems_comparison.csv"
    if not comp_path.is_file():
        raise UserError(f"{comp_path}: not found; run `python -m prophet_model run` first")
    from prophet_model.outputs.tables import (
        read_table,  # a CSV changed by hand or cut short is named, with how to regenerate it
    )

    comparison = read_table(comp_path, results_dir)
    headline = read_table(results_dir / "data" / "headline.csv", results_dir)
    ctx = context(study, comparison.copy(), headline)
    claims_path = results_dir / "data" / "claims.csv"
    claims = (
        read_table(claims_path, results_dir)
        if claims_path.is_file()
        else pd.DataFrame(columns=["system_id", "claim", "lever"])
    )
    ctx["head_claims"] = claim_sentences(claims, ctx["head"].system_id)
    checks_path = results_dir / "data" / "sanity_checks.csv"
    checks = read_table(checks_path, results_dir) if checks_path.is_file() else None
    ctx |= appendix_context(study, headline, checks, claims, results_dir)
    from prophet_model.outputs.validation_results import claim_evidence

    rows = pd.DataFrame(ctx["rows"])
    ctx["evidence"] = claim_evidence(results_dir, rows).to_dict("records")
    from prophet_model.outputs.prose import prose_context

    ctx |= prose_context(study, results_dir, headline, claims, ctx["keyed"])
    env = environment()
    return {name: env.get_template(f"{name}.j2").render(**ctx) for name in PAPER_FILES}


def own_models(study) -> str:
    """' (DeepSeek-V3 on 32xH100)' for the systems that serve their own model (systems.<id>.model); '' if none."""
    own = [f"{study.model_of(s).name} on {s.id}" for s in study.systems if s.model is not None]
    return f" ({'; '.join(own)})" if own else ""
