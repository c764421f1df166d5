"""Run the study: every system x strategy x {baseline, Prophet} through the model, as tidy tables.

Each configuration is evaluated at its operating point: with `workload.batch_search` the integer per-GPU
batch with the most tokens/s within `workload.max_step_ms` where set (the grid 1, 2, 4, ..., the largest that
fits GPU memory and the configured one in one vectorized model call per system, then the exact integer
search of study/operating_point.py); the configured batch stays as the fixed-batch comparison. `run_study` returns a
`StudyResults` with
- `rows`: one row per system x strategy x variant x split x batch (the full step breakdown), and the
  reference configurations of the scaling ratio (`role` "reference");
- `chosen`: the split and batch kept per system x strategy x variant (the fastest);
- `comparison`: one row per system x strategy, baseline beside Prophet (all_systems_comparison.csv);
- `fixed`: the same at the configured batch (fixed_batch_comparison.csv);
- `headline`: per system, Prophet at its best strategy, split and batch against the baseline at its
  best, both searched the same way (headline.csv): the like-with-like comparison.

The runner computes with records (lists of dicts); the tables are pandas DataFrames built on first use
(study/frames.py), so a command that prints a few numbers (`whatif`) never imports pandas.

Each system's rows come from study/system_rows.py (every configuration through the model); this module
picks, pairs and tables them.

Scaling: per-GPU throughput relative to the same strategy (same expert-group size for hybrid) at the
smallest GPU count whose GPUs hold every expert without host fetch, each at its own operating point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from prophet_model.physics.cost import annual_savings_usd
from prophet_model.study.columns import in_order
from prophet_model.study.config import Study, System
from prophet_model.study.frames import Chosen, Record, StudyResults, chosen_frame, promoted
from prophet_model.study.scenarios import OPTIONS
from prophet_model.study.size import LONG_S, VARIANTS, check_size, duration, reference_splits
from prophet_model.study.system_rows import evaluate_system

if TYPE_CHECKING:
    import pandas as pd

# the columns a row with numbers has and a row without lacks (NaN there once any row of the study has them)
MEASURED = (
    "attention_tp",
    *OPTIONS,
    "compute_ms",
    "fetch_ms",
    "fetch_exposed_ms",
    "comm_exposed_ms",
    "step_ms",
    "tokens_per_s",
    "tokens_per_s_per_gpu",
    "holds_all_experts",
    "comm_overhead_pct",
    "fetch_overhead_pct",
    "resident_expert_fraction",
    "alltoall_mb",
    "roofline_tokens_per_s",
    "roofline_fraction_pct",
    "usd_per_1m_tokens",
)


def choose(rows: pd.DataFrame, max_step_ms: float | None = None, fixed: bool = False) -> pd.DataFrame:
    """`pick` over a DataFrame of rows: the chosen rows as a DataFrame."""
    records = promoted(rows.to_dict("records"))
    return chosen_frame(rows, pick(records, max_step_ms, fixed))


def pick(rows: list[Record], max_step_ms: float | None = None, fixed: bool = False) -> Chosen:
    """Keep one split and batch per system x strategy x variant: the most tokens/s among the feasible
    ones within max_step_ms (ties: the first, smallest ep, then smallest batch). `fixed`: only the
    configured batch. Where none qualifies, the configured-batch row, saying why."""
    best: dict[tuple, tuple[tuple, int]] = {}
    fastest: dict[tuple, float] = {}  # the shortest step of each key, for the note of one that meets no bound
    for i, r in enumerate(rows):
        if r["role"] != "system" or (fixed and not bool(r["configured_batch"])):
            continue
        key = (r["system_id"], r["strategy"], r["variant"])
        step, tps = r["step_ms"], r["tokens_per_s"]
        ok = bool(r["feasible"]) and (max_step_ms is None or step <= max_step_ms)
        tps = tps if ok else -math.inf
        rank = (ok, tps == tps, tps if tps == tps else 0.0, bool(r["configured_batch"]))  # NaN ranks last
        if key not in best or rank > best[key][0]:
            best[key] = (rank, i)
        if step == step and not step >= fastest.get(key, math.inf):
            fastest[key] = step
    index = sorted(i for _, i in best.values())
    records, slow = [], []
    for i in index:
        r = rows[i]
        key = (r["system_id"], r["strategy"], r["variant"])
        if not best[key][0][0] and bool(r["feasible"]):  # fits, but no batch meets the latency bound
            note = (
                f"no batch meets max_step_ms {max_step_ms:g} (the fastest step takes "
                f"{fastest.get(key, math.nan):.3g} ms)"
            )
            r = {**r, "note": note, "feasible": False, "tokens_per_s": math.nan}
            slow.append((len(records), note))
        records.append(r)
    return _with_scaling(Chosen(index, slow, records), rows, max_step_ms, fixed)


def _with_scaling(chosen: Chosen, rows: list[Record], max_step_ms: float | None, fixed: bool) -> Chosen:
    """Per chosen row: per-GPU throughput relative to the same strategy at the smallest GPU count that holds
    every expert without host fetch (reference_splits), each at its own best batch (the same search)."""
    ratio, ref_gpus, notes = [], [], []
    holds: set[tuple] = set()
    best: dict[tuple, tuple[float, float]] = {}
    for r in rows:
        if not bool(r["holds_all_experts"]):  # a row without numbers has NaN here, which counts as holding
            continue
        k = (r["system_id"], r["strategy"], r["variant"], r["ep"], r["dp"], r["n_gpus_evaluated"])
        holds.add(k)
        usable = bool(r["feasible"]) and (not fixed or bool(r["configured_batch"]))
        if usable and max_step_ms is not None:
            usable = r["step_ms"] <= max_step_ms
        v = r["tokens_per_s_per_gpu"]
        if usable and v == v and (k not in best or v > best[k][0]):
            best[k] = (v, r["batch_size_per_gpu"])
    for r in chosen.records:
        if not r["feasible"] or not r["ep"]:
            ratio.append(np.nan), ref_gpus.append(np.nan), notes.append("")
            continue
        found = None
        for ep, dp in reference_splits(r["strategy"], int(r["ep"]), int(r["dp"])):
            k = (r["system_id"], r["strategy"], r["variant"], ep, dp, ep * dp)
            if k in holds:
                found = (ep * dp, *best.get(k, (np.nan, np.nan)))
                break
        if found is None:
            ratio.append(np.nan), ref_gpus.append(np.nan)
            notes.append(
                f"no count of {r['strategy']} GPUs up to {r['n_gpus']} holds every expert: each fetches from host"
            )
            continue
        n_ref, per_gpu, ref_batch = found
        ratio.append(100 * r["tokens_per_s_per_gpu"] / per_gpu if per_gpu > 0 else np.nan)
        ref_gpus.append(n_ref)
        if n_ref == r["n_gpus"] and len(reference_splits(r["strategy"], int(r["ep"]), int(r["dp"]))) > 1:
            notes.append(f"super-linear: {r['n_gpus']} GPUs hold what fewer cannot")
        elif ratio[-1] > 100:
            notes.append(
                f"super-linear: {r['n_gpus']} GPUs leave room for a larger batch than {n_ref} "
                f"({r['batch_size_per_gpu']:.0f} vs {ref_batch:.0f} sequences per GPU)"
            )
        else:
            notes.append("")
    scaling = {"scaling_pct": ratio, "scaling_reference_gpus": ref_gpus, "scaling_note": notes}
    records = promoted([{**r, **{k: v[j] for k, v in scaling.items()}} for j, r in enumerate(chosen.records)])
    return Chosen(chosen.index, chosen.slow, records, scaling)


def pair(b: Record, p: Record, monthly_tokens: float) -> Record:
    """Baseline row `b` beside Prophet row `p` (chosen rows of one system): the comparison's columns."""
    row = {
        "system_id": b["system_id"],
        "system": b["system"],
        "gpu": b["gpu"],
        "interconnect": b["interconnect"],
        "n_gpus": b["n_gpus"],
        "strategy": p["strategy"],
        "baseline_split": f"{b['ep']}x{b['dp']}" if b["ep"] else "",
        "prophet_split": f"{p['ep']}x{p['dp']}" if p["ep"] else "",
        "baseline_batch": b["batch_size_per_gpu"] if b["ep"] else np.nan,
        "prophet_batch": p["batch_size_per_gpu"] if p["ep"] else np.nan,
        "baseline_attention_tp": b.get("attention_tp", np.nan) if b["ep"] else np.nan,
        "prophet_attention_tp": p.get("attention_tp", np.nan) if p["ep"] else np.nan,
        **{
            f"{v}_{k}": r.get(k, np.nan) if r["ep"] else np.nan
            for k in (*OPTIONS, "offload_compute")  # the options each side runs at, and where its misses go
            for v, r in (("baseline", b), ("prophet", p))
        },
        "placement": b["placement"],
        "note": b["note"],
    }
    if not (b["feasible"] and p["feasible"]):  # no numbers: the note says why (the split, or memory)
        row["note"] = b["note"] if not b["feasible"] else p["note"]
        return in_order(row)  # the registered columns, in their order (study/columns.py)
    cb, cp = b["usd_per_1m_tokens"], p["usd_per_1m_tokens"]
    # cross-GPU all-to-all bytes per generated token, each side at its own operating point (a larger batch
    # moves more bytes per step, not per token; the all-reduce of TP attention is not Prophet's to cut)
    comm_b, comm_p = (r["alltoall_mb"] / r["batch_size_per_gpu"] for r in (b, p))
    out = row | {
        "baseline_tokens_per_s": b["tokens_per_s"],
        "prophet_tokens_per_s": p["tokens_per_s"],
        "speedup": p["tokens_per_s"] / b["tokens_per_s"],
        "baseline_step_ms": b["step_ms"],
        "prophet_step_ms": p["step_ms"],
        "baseline_comm_overhead_pct": b["comm_overhead_pct"],
        "prophet_comm_overhead_pct": p["comm_overhead_pct"],
        "baseline_allreduce_overhead_pct": b["allreduce_overhead_pct"],
        "prophet_allreduce_overhead_pct": p["allreduce_overhead_pct"],
        "comm_reduction": comm_b / comm_p if comm_p > 0 else np.nan,
        "baseline_fetch_overhead_pct": b["fetch_overhead_pct"],
        "baseline_hit_rate": b["resident_expert_fraction"],
        "prophet_hit_rate": p["resident_expert_fraction"],
        "prophet_fetch_hidden_pct": 100 * (1 - p["fetch_exposed_ms"] / p["fetch_ms"]) if p["fetch_ms"] > 0 else np.nan,
        # where Prophet's gain comes from (ms per step): copies its cache avoids (hit rate), copies its
        # prefetch hides (overlap), all-to-all volume, and the rest (a different split or batch)
        "saved_by_cache_ms": b["fetch_exposed_ms"] - p["fetch_ms"],
        "saved_by_prefetch_ms": p["fetch_ms"] - p["fetch_exposed_ms"],
        "saved_by_comm_ms": b["comm_exposed_ms"] - p["comm_exposed_ms"],
        "saved_by_other_ms": (
            (b["step_ms"] - p["step_ms"])
            - (b["fetch_exposed_ms"] - p["fetch_exposed_ms"])
            - (b["comm_exposed_ms"] - p["comm_exposed_ms"])
        ),
        "prophet_fetch_overhead_pct": p["fetch_overhead_pct"],
        "baseline_scaling_pct": b["scaling_pct"],
        "prophet_scaling_pct": p["scaling_pct"],
        "baseline_scaling_reference_gpus": b["scaling_reference_gpus"],
        "prophet_scaling_reference_gpus": p["scaling_reference_gpus"],
        "scaling_note": "; ".join(dict.fromkeys(x for x in (b["scaling_note"], p["scaling_note"]) if x)),
        "baseline_usd_per_1m_tokens": cb,
        "prophet_usd_per_1m_tokens": cp,
        "cost_reduction": cb / cp,
        "annual_savings_usd": float(annual_savings_usd(cb, cp, monthly_tokens)),
    }
    return in_order(out)


def _first_max(rows: list[Record]) -> Record:
    """The row with the most tokens/s: the first of equals, never a NaN (pandas' idxmax)."""
    best = None
    for r in rows:
        v = r["tokens_per_s"]
        if v == v and (best is None or v > best["tokens_per_s"]):
            best = r
    return best if best is not None else rows[0]


def _by_system(rows: list[Record], *keys: str) -> dict[tuple, list[Record]]:
    """Rows grouped by `keys`, groups in the order they first appear."""
    groups: dict[tuple, list[Record]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def compare(chosen: list[Record], study: Study) -> list[Record]:
    """Baseline beside Prophet, one row per system x strategy, systems by GPU count."""
    out = []
    live = [r for r in chosen if r["variant"] == "baseline" and bool(r["feasible"])]
    best = {sid: _first_max(g) for (sid,), g in _by_system(live, "system_id").items()}
    for (sid, _), g in _by_system(chosen, "system_id", "strategy").items():
        b = next(r for r in g if r["variant"] == "baseline")
        p = next(r for r in g if r["variant"] == "prophet")
        row = pair(b, p, study.config.cost.monthly_tokens)
        if sid in best and b["feasible"] and p["feasible"]:  # the fastest baseline of this system, any strategy
            bb = best[sid]
            row |= {
                "best_baseline_strategy": bb["strategy"],
                "best_baseline_split": f"{bb['ep']}x{bb['dp']}",
                "best_baseline_tokens_per_s": bb["tokens_per_s"],
                "speedup_vs_best_baseline": p["tokens_per_s"] / bb["tokens_per_s"],
            }
        out.append(row)
    return _by_gpu_count(out)


def _by_gpu_count(rows: list[Record]) -> list[Record]:
    """Systems by GPU count (2x before 10x), the configured order among equals."""
    return sorted(rows, key=lambda r: r["n_gpus"])


def headline(chosen: list[Record], study: Study) -> list[Record]:
    """Per system, like with like: Prophet at its fastest strategy, split and batch against the baseline at
    its fastest, each searched the same way (headline.csv: the comparison's columns, `strategy` Prophet's,
    and both strategies). A system where neither variant has numbers keeps a row saying why."""
    out = []
    for _, g in _by_system(chosen, "system_id").items():
        live = {v: [r for r in g if r["variant"] == v and bool(r["feasible"])] for v in VARIANTS}
        if not live["baseline"] or not live["prophet"]:
            first = g[0]
            why = "; ".join(dict.fromkeys(str(n) for n in (r["note"] for r in g) if isinstance(n, str) and n))
            out.append(
                {k: first[k] for k in ("system_id", "system", "gpu", "interconnect", "n_gpus")}
                | {"note": why or "nothing fits"}
            )
            continue
        b, p = _first_max(live["baseline"]), _first_max(live["prophet"])
        out.append(
            pair(b, p, study.config.cost.monthly_tokens)
            | {
                "baseline_strategy": b["strategy"],
                "prophet_strategy": p["strategy"],
            }
        )
    return _by_gpu_count(out)


def run_study(
    study: Study,
    system_ids: Sequence[str] | None = None,
    on_system: Callable[[System, pd.DataFrame | None, Exception | None], None] | None = None,
) -> tuple[StudyResults, dict[str, str]]:
    """Evaluate the chosen systems (all by default). A failure in one system is recorded in the
    returned {system_id: error} map and the other systems still run. `on_system` is given each system's
    rows as a DataFrame (pandas is imported only then, or when a table of the results is read)."""
    systems = [study.system(i) for i in system_ids] if system_ids else list(study.systems)
    n, seconds = check_size(study, systems)
    each: Sequence[System] = systems
    if seconds > LONG_S:  # said before the run, then a bar per system (standard error only, never a CSV)
        import sys

        from tqdm import tqdm

        print(
            f"note: evaluating up to {n:,} configurations of {len(systems):,} system(s), estimated time:"
            f" {duration(seconds)}",
            file=sys.stderr,
        )
        each = tqdm(systems, desc="systems", unit="system", file=sys.stderr, leave=False)
    parts, failures = [], {}
    for system in each:
        try:
            part = evaluate_system(study, system)
        except Exception as exc:
            failures[system.id] = f"{type(exc).__name__}: {exc}"
            if on_system:
                on_system(system, None, exc)
            continue
        parts.append(part)
        if on_system:
            on_system(system, part.frame(), None)
    if not parts:
        return StudyResults(study, parts), failures
    rows = promoted([r for part in parts for r in part.records()])
    if rows and "step_ms" not in rows[0]:  # no row of any system has numbers (no split, no TP degree fits)
        rows = [dict.fromkeys(MEASURED, math.nan) | r for r in rows]
    limit = study.config.workload.max_step_ms
    chosen, fixed = pick(rows, limit), pick(rows, limit, fixed=True)
    tables = {
        "comparison": compare(chosen.records, study),
        "fixed": compare(fixed.records, study),
        "headline": headline(chosen.records, study),
    }
    return StudyResults(study, parts, rows, chosen, tables), failures
