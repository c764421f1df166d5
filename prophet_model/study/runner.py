"""Run the study: every system x strategy x {baseline, Prophet} through the model, as tidy tables.

`run_study` returns a `StudyResults` with
- `rows`: one row per system x strategy x variant x candidate split (the full step breakdown);
- `chosen`: the split kept per system x strategy x variant (the configured one, or the best for auto);
- `comparison`: one row per system x strategy, baseline beside Prophet (all_systems_comparison.csv).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prophet_model.physics import evaluate, memory_terms, why_infeasible
from prophet_model.physics.cost import annual_savings_usd, usd_per_million_tokens
from prophet_model.study.config import Study, System
from prophet_model.study.scenarios import scenario_dict, stack
from prophet_model.study.strategies import splits

VARIANTS = ("baseline", "prophet")
# the columns of the comparison table (all_systems_comparison.csv), in order; a row without numbers
# (a strategy not evaluated, or nothing fits in memory) has them empty and says why in `note`
COMPARISON_COLUMNS = (
    "system_id", "system", "gpu", "interconnect", "n_gpus", "strategy", "baseline_split", "prophet_split", "note",
    "baseline_tokens_per_s", "prophet_tokens_per_s", "speedup", "baseline_step_ms", "prophet_step_ms",
    "baseline_comm_overhead_pct", "prophet_comm_overhead_pct", "comm_reduction", "baseline_fetch_overhead_pct",
    "baseline_hit_rate", "prophet_hit_rate", "prophet_fetch_hidden_pct", "saved_by_cache_ms",
    "saved_by_prefetch_ms", "saved_by_comm_ms", "saved_by_other_ms", "prophet_fetch_overhead_pct",
    "baseline_scaling_efficiency_pct", "prophet_scaling_efficiency_pct", "baseline_usd_per_1m_tokens",
    "prophet_usd_per_1m_tokens", "cost_reduction", "annual_savings_usd", "best_baseline_strategy",
    "best_baseline_split", "best_baseline_tokens_per_s", "speedup_vs_best_baseline",
)  # fmt: skip


@dataclass(frozen=True)
class StudyResults:
    study: Study
    rows: pd.DataFrame
    chosen: pd.DataFrame
    comparison: pd.DataFrame

    def system_rows(self, system_id: str) -> pd.DataFrame:
        return self.chosen[self.chosen.system_id == system_id].reset_index(drop=True)


def _row_specs(study: Study, system: System) -> list[dict]:
    specs = []
    for strategy in study.config.strategies:
        sp = splits(system, strategy)
        if not sp.candidates:
            for variant in VARIANTS:
                specs.append({"strategy": strategy, "variant": variant, "ep": 0, "dp": 0, "note": sp.note})
        for ep, dp in sp.candidates:
            for variant in VARIANTS:
                specs.append({"strategy": strategy, "variant": variant, "ep": ep, "dp": dp, "note": sp.note})
    return specs


def evaluate_system(study: Study, system: System) -> pd.DataFrame:
    """All rows of one system (candidate splits included), with the single-GPU reference."""
    specs = _row_specs(study, system)
    live = [s for s in specs if s["ep"] > 0]
    configs = [
        scenario_dict(study, system.gpu_key, system.count, s["ep"], system.interconnect, s["variant"] == "prophet")
        for s in live
    ]
    single = [scenario_dict(study, system.gpu_key, 1, 1, None, v == "prophet") for v in VARIANTS]
    scenario = stack(configs + single)
    res = evaluate(scenario)
    n = len(configs)
    single_tps = dict(zip(VARIANTS, res.tokens_per_s[n:], strict=True))
    memory = memory_terms(scenario)
    out = []
    for i, s in enumerate(live):
        tps = float(res.tokens_per_s[i])
        why = "" if res.feasible[i] else why_infeasible(**{k: float(v[i]) for k, v in memory.items()})
        out.append(
            {
                **s,
                "note": "; ".join(x for x in (why, s["note"]) if x),  # an infeasible row says why
                "compute_ms": 1e3 * res.compute_s[i],
                "fetch_ms": 1e3 * res.fetch_s[i],
                "fetch_exposed_ms": 1e3 * res.fetch_exposed_s[i],
                "comm_exposed_ms": 1e3 * res.comm_exposed_s[i],
                "step_ms": 1e3 * res.step_s[i],
                "tokens_per_s": tps,
                "tokens_per_s_per_gpu": float(res.tokens_per_s_per_gpu[i]),
                "single_gpu_tokens_per_s": float(single_tps[s["variant"]]),
                "scaling_efficiency_pct": 100 * tps / (system.count * single_tps[s["variant"]]),
                "comm_overhead_pct": float(res.comm_overhead_pct[i]),
                "fetch_overhead_pct": float(res.fetch_overhead_pct[i]),
                "resident_expert_fraction": float(res.resident_fraction[i]),
                "alltoall_mb": float(res.alltoall_bytes[i]) / 1e6,
                "roofline_tokens_per_s": float(res.roofline_tokens_per_s[i]),
                "roofline_fraction_pct": 100 * float(res.roofline_fraction[i]),
                "usd_per_1m_tokens": float(
                    usd_per_million_tokens(system.count, system.gpu.price_usd_per_gpu_hour, tps)
                ),
                "feasible": bool(res.feasible[i]),
            }
        )
    out += [{**s, "feasible": False} for s in specs if s["ep"] == 0]
    df = pd.DataFrame(out)
    df.insert(0, "system_id", system.id)
    df.insert(1, "system", system.name)
    df.insert(2, "gpu", system.gpu.name)
    df.insert(3, "interconnect", system.interconnect.name)
    df.insert(4, "n_gpus", system.count)
    return df


def choose(rows: pd.DataFrame) -> pd.DataFrame:
    """Keep one split per system x strategy x variant: the fastest (ties: the first, smallest ep)."""
    key = ["system_id", "strategy", "variant"]
    ranked = rows.assign(_order=np.arange(len(rows)), _tps=rows["tokens_per_s"].fillna(-np.inf))
    ranked = ranked.sort_values([*key, "_tps", "_order"], ascending=[True, True, True, False, True], kind="stable")
    best = ranked.drop_duplicates(key, keep="first").sort_values("_order").drop(columns=["_order", "_tps"])
    return best.reset_index(drop=True)


def compare(chosen: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Baseline beside Prophet, one row per system x strategy."""
    monthly = study.config.cost.monthly_tokens
    out = []
    live = chosen[(chosen.variant == "baseline") & chosen.feasible.astype(bool)]
    best = {sid: g.loc[g.tokens_per_s.idxmax()] for sid, g in live.groupby("system_id", sort=False)}
    for (sid, strategy), g in chosen.groupby(["system_id", "strategy"], sort=False):
        b = g[g.variant == "baseline"].iloc[0]
        p = g[g.variant == "prophet"].iloc[0]
        row = {
            "system_id": sid,
            "system": b["system"],
            "gpu": b["gpu"],
            "interconnect": b["interconnect"],
            "n_gpus": b["n_gpus"],
            "strategy": strategy,
            "baseline_split": f"{b['ep']}x{b['dp']}" if b["ep"] else "",
            "prophet_split": f"{p['ep']}x{p['dp']}" if p["ep"] else "",
            "note": b["note"],
        }
        if not (b["feasible"] and p["feasible"]):  # no numbers: the note says why (the split, or memory)
            row["note"] = b["note"] if not b["feasible"] else p["note"]
            out.append(row)
            continue
        cb, cp = b["usd_per_1m_tokens"], p["usd_per_1m_tokens"]
        comm_b, comm_p = b["comm_exposed_ms"], p["comm_exposed_ms"]
        row |= {
            "baseline_tokens_per_s": b["tokens_per_s"],
            "prophet_tokens_per_s": p["tokens_per_s"],
            "speedup": p["tokens_per_s"] / b["tokens_per_s"],
            "baseline_step_ms": b["step_ms"],
            "prophet_step_ms": p["step_ms"],
            "baseline_comm_overhead_pct": b["comm_overhead_pct"],
            "prophet_comm_overhead_pct": p["comm_overhead_pct"],
            "comm_reduction": comm_b / comm_p if comm_p > 0 else np.nan,
            "baseline_fetch_overhead_pct": b["fetch_overhead_pct"],
            "baseline_hit_rate": b["resident_expert_fraction"],
            "prophet_hit_rate": p["resident_expert_fraction"],
            "prophet_fetch_hidden_pct": 100 * (1 - p["fetch_exposed_ms"] / p["fetch_ms"])
            if p["fetch_ms"] > 0
            else np.nan,
            # where Prophet's gain comes from (ms per step): copies its cache avoids (hit rate), copies its
            # prefetch hides (overlap), all-to-all volume, and the rest (a different split)
            "saved_by_cache_ms": b["fetch_exposed_ms"] - p["fetch_ms"],
            "saved_by_prefetch_ms": p["fetch_ms"] - p["fetch_exposed_ms"],
            "saved_by_comm_ms": b["comm_exposed_ms"] - p["comm_exposed_ms"],
            "saved_by_other_ms": (b["step_ms"] - p["step_ms"])
            - (b["fetch_exposed_ms"] - p["fetch_exposed_ms"])
            - (b["comm_exposed_ms"] - p["comm_exposed_ms"]),
            "prophet_fetch_overhead_pct": p["fetch_overhead_pct"],
            "baseline_scaling_efficiency_pct": b["scaling_efficiency_pct"],
            "prophet_scaling_efficiency_pct": p["scaling_efficiency_pct"],
            "baseline_usd_per_1m_tokens": cb,
            "prophet_usd_per_1m_tokens": cp,
            "cost_reduction": cb / cp,
            "annual_savings_usd": float(annual_savings_usd(cb, cp, monthly)),
        }
        if sid in best:  # the fastest baseline of this system, whatever its strategy and split
            bb = best[sid]
            row |= {
                "best_baseline_strategy": bb["strategy"],
                "best_baseline_split": f"{bb['ep']}x{bb['dp']}",
                "best_baseline_tokens_per_s": bb["tokens_per_s"],
                "speedup_vs_best_baseline": p["tokens_per_s"] / bb["tokens_per_s"],
            }
        out.append(row)
    df = pd.DataFrame(out)
    # every column, also where no row has numbers (an infeasible study), in the order a full row has them
    return df.reindex(columns=[*COMPARISON_COLUMNS, *(c for c in df.columns if c not in COMPARISON_COLUMNS)])


def run_study(
    study: Study,
    system_ids: Sequence[str] | None = None,
    on_system: Callable[[System, pd.DataFrame | None, Exception | None], None] | None = None,
) -> tuple[StudyResults, dict[str, str]]:
    """Evaluate the chosen systems (all by default). A failure in one system is recorded in the
    returned {system_id: error} map and the other systems still run."""
    systems = [study.system(i) for i in system_ids] if system_ids else list(study.systems)
    frames, failures = [], {}
    for system in systems:
        try:
            df = evaluate_system(study, system)
        except Exception as exc:
            failures[system.id] = f"{type(exc).__name__}: {exc}"
            if on_system:
                on_system(system, None, exc)
            continue
        frames.append(df)
        if on_system:
            on_system(system, df, None)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    chosen = choose(rows) if frames else rows
    comparison = compare(chosen, study) if frames else pd.DataFrame()
    if not comparison.empty:  # systems by GPU count (2x before 10x), the configured order among equals
        comparison = comparison.sort_values("n_gpus", kind="stable").reset_index(drop=True)
    return StudyResults(study, rows, chosen, comparison), failures


def key_rows(comparison: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """Per system the row of `strategy`, or, where that strategy was not evaluated, the row with the
    highest Prophet throughput (its strategy is then named in the figure)."""
    out = []
    for _, g in comparison.groupby("system_id", sort=False):
        g = g.dropna(subset=["speedup"])
        if g.empty:
            continue
        hit = g[g.strategy == strategy]
        out.append(hit.iloc[0] if not hit.empty else g.loc[g.prophet_tokens_per_s.idxmax()])
    return pd.DataFrame(out)
