"""What the abstract and the paper's section say beyond the headline rows: the finding, the fixed-batch
comparison, the Monte Carlo intervals, the validated errors and which GPUs were measured; every number is
added to the keyed values of macros.tex so that the prose uses keyed commands only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.files import read_facts
from prophet_model.outputs.finding import CUT_TOLERANCE
from prophet_model.outputs.latex import KEYED_METRICS, tex_value

if TYPE_CHECKING:
    from prophet_model.study.config import Study


def _add(keyed: list[dict], key: str, metric: str, value: str) -> None:
    """A keyed value for macros.tex, unless the key already has that metric."""
    if not any(k["key"] == key and k["metric"] == metric for k in keyed):
        keyed.append({"key": key, "metric": metric, "value": tex_value(value)})


def measured_gpus(study: Study, rows: pd.DataFrame, results_dir: Path) -> tuple[list[str], list[str]]:
    """(the GPUs whose rates were measured, the GPUs of these rows whose rates are extrapolated from them),
    by catalog name: a machine counts as measured when its folder holds measurements (facts.json's list,
    written by `run`)."""
    done = read_facts(results_dir)["measured_gpus"]
    measured = list(dict.fromkeys(study.gpus[k].name for k in done if k in study.gpus))
    used = dict.fromkeys(s.gpu.name for s in study.systems if s.id in set(rows.system_id))
    return measured, [g for g in used if g not in measured]


def prose_context(
    study: Study, results_dir: Path, headline: pd.DataFrame, claims: pd.DataFrame, keyed: list[dict]
) -> dict:
    """What the abstract and the section say beyond the headline rows, each number added to `keyed` so
    that the prose uses keyed commands only: the finding, the fixed-batch comparison, the Monte Carlo
    intervals and the validated errors."""
    from prophet_model.outputs.finding import as_tex, draft_sentences, draft_speedup, finding, values
    from prophet_model.outputs.tables import read_table
    from prophet_model.outputs.validation_results import validated

    facts = read_facts(results_dir)
    regimes = results_dir / "data" / "regime_map.csv"
    regime_table = read_table(regimes, results_dir) if regimes.is_file() else None
    sentences = finding(headline, claims, regime_table, facts["need_prefix"])
    own = finding(headline, claims, regime_table, facts["need_prefix"], draft=False)  # the paper's own voice
    checks = draft_sentences(headline, claims, facts["need_prefix"])  # the draft's estimate: appendix only
    for v in values(sentences + own + checks):
        _add(keyed, v.key, v.metric, v.text)
    rows = headline.dropna(subset=["speedup"])
    if any(v.key == "regime" for v in values(sentences)):
        _add(keyed, "regime", "contours", ", ".join(fmt.ratio(lv) for lv in facts["regime_levels"]))
    _add(keyed, "study", "n_systems", str(len(rows)))
    _add(keyed, "study", "model", study.model.name)
    _add(keyed, "study", "configured_batch", fmt.count(study.config.workload.batch_size_per_gpu))
    claimed = draft_speedup(claims, facts["need_prefix"])
    if claimed is not None:
        _add(keyed, "study", "draft_speedup", fmt.ratio(claimed))
    resident = rows[(rows.baseline_hit_rate >= 0.999) & (rows.baseline_fetch_overhead_pct <= 0)]
    fixed = None
    path = results_dir / "data" / "fixed_batch_comparison.csv"
    if path.is_file():
        f = read_table(path, results_dir).dropna(subset=["speedup"])
        if not f.empty:
            r = f.loc[f.speedup.idxmax()]
            fixed = {"key": f"{r.system_id}/{r.strategy}/fixed"}
            for metric in ("speedup", "baseline_fetch_overhead_pct", "baseline_tokens_per_s", "prophet_tokens_per_s"):
                _add(keyed, fixed["key"], metric, dict(KEYED_METRICS)[metric](r[metric]))
            for text in ("system", "strategy"):
                _add(keyed, fixed["key"], text, str(r[text]))
    interval, interval_same = None, {}
    path = results_dir / "data" / "uncertainty.csv"
    if path.is_file():
        u = read_table(path, results_dir)
        u = u[(u.metric == "speedup") & u.system_id.isin(rows.system_id)]
        if not u.empty:
            interval = []
            for r in u.itertuples():
                p5, p95 = fmt.apart(r.p5, r.p95)  # the interval's ends with the digits that tell them apart
                _add(keyed, r.system_id, "speedup_p5", p5)
                _add(keyed, r.system_id, "speedup_p95", p95)
                interval_same[r.system_id] = p5 == p95
                _add(keyed, r.system_id, "mc_draws", fmt.count(r.draws))
                _add(keyed, r.system_id, "mc_dropped", fmt.count(r.dropped))
                _add(
                    keyed,
                    r.system_id,
                    "mc_dropped_note",
                    fmt.dropped(r.draws, r.dropped, r.dropped_no_fit, r.dropped_max_step),
                )
                interval.append(r.system_id)
    checked = []
    for name, v in validated(results_dir).items():
        slug = {"decode step": "decode", "expert offloading and prefetch": "offload", "all-to-all": "alltoall"}[name]
        _add(keyed, "validation", f"{slug}_median_pct", fmt.pct(v.median_pct))
        _add(keyed, "validation", f"{slug}_worst_pct", fmt.pct(v.worst_pct))
        _add(keyed, "validation", f"{slug}_points", fmt.count(v.points))
        _add(keyed, "validation", f"{slug}_what", v.what)
        checked.append(slug)
    _add(keyed, "study", "n_resident", str(len(resident)))

    def range_tex(column: str, among: list[str] | None = None) -> str:
        """\\prophet{LO}{column}--\\prophet{HI}{column} over the headline rows (one command when they read alike)."""
        r = rows if among is None else rows[rows.system_id.isin(among)]
        lo, hi = r.loc[r[column].idxmin()], r.loc[r[column].idxmax()]
        formatter = dict(KEYED_METRICS)[column]
        one = f"\\prophet{{{lo.system_id}}}{{{column}}}"
        if formatter(lo[column]) == formatter(hi[column]):
            return one
        return f"{one}--\\prophet{{{hi.system_id}}}{{{column}}}"

    measured, extrapolated = measured_gpus(study, rows, results_dir)
    _add(keyed, "study", "measured_gpus", _and(measured))
    _add(keyed, "study", "extrapolated_gpus", _and(extrapolated))
    _add(keyed, "study", "interval", "90%")  # the Monte Carlo's interval: p5 to p95 (uncertainty.csv)
    derived = rows.dropna(subset=["comm_reduction"])
    comm = derived[derived.comm_reduction.astype(float) > 1 + CUT_TOLERANCE]  # a cut that reads 1.00x is none
    scaling = rows.dropna(subset=["baseline_scaling_pct", "prophet_scaling_pct"])
    from prophet_model.outputs.voice import voice_context

    voice = voice_context(study, results_dir, rows, keyed, regime_table, range_tex)
    return voice | {
        "comm_span": range_tex("comm_reduction", list(comm.system_id)) if not comm.empty else "",
        "comm_ids": list(comm.system_id),
        "cut_id": "" if derived.empty else str(derived.system_id.iloc[0]),
        "scaling_ids": list(scaling.system_id),
        "measured": measured,
        "extrapolated": extrapolated,
        "finding": as_tex(sentences),
        "summary": as_tex([x for x in own if not _is_regime(x)]),
        "where_pays": as_tex([x for x in own if _is_regime(x)]),
        "draft_checks": as_tex(checks),
        "range_tex": range_tex,
        "resident_ids": list(resident.system_id),
        "offload_ids": [s for s in rows.system_id if s not in set(resident.system_id)],
        "fixed": fixed,
        "interval_ids": interval,
        "interval_same": interval_same,
        "checked": checked,
        "draft": claimed is not None,
        "regime_keys": {v.metric for v in values(sentences) if v.key == "regime"},
        "options_text": options_text(rows),
        "placement_text": {
            "pool": "experts pooled across the GPUs' memory, a missing expert copied from a GPU that holds it",
            "replicate": "experts replicated in every replica, a missing expert copied from host memory",
        }[study.config.experts.placement],
    }


def _is_regime(sentence: list) -> bool:
    """Whether a finding sentence is the regime map's (where Prophet pays): its numbers are keyed `regime`."""
    return any(getattr(p, "key", None) == "regime" for p in sentence)


def _and(items: list[str]) -> str:
    """a, b and c."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


# each side's searched options (study/system_rows.py) as the section names them: the headline rows' columns
# <side>_<option>, their values in words
OPTIONS = (
    ("weight_precision", "weights"),
    ("kv_precision", "KV cache"),
    ("cache_policy", "expert cache"),
    ("overlap", "all-to-all overlap"),
    ("offload_compute", "a missing expert"),
)
OPTION_WORDS = {
    "fp8": "FP8",
    "bf16": "BF16",
    "lru": "LRU",
    "static": "static popularity",
    "predicted": "Prophet's predictions",
    "none": "none",
    "two_batch": "two micro-batches",
    "copy": "copied to the GPU",
    "cpu": "computed on the CPU",
}


def options_text(rows: pd.DataFrame) -> str:
    """What each side chose at its best operating point, one clause per option: "weights FP8 on every system;
    ...; all-to-all overlap two micro-batches on \\prophet{32xH100}{system}, none on the others" (baseline /
    Prophet where the two differ); "" where the rows name no option."""
    from prophet_model.outputs.voice import cmd

    clauses = []
    for option, label in OPTIONS:
        cols = (f"baseline_{option}", f"prophet_{option}")
        if not set(cols) <= set(rows.columns):
            continue
        groups: dict[str, list[str]] = {}
        for r in rows.to_dict("records"):
            b, p = (OPTION_WORDS.get(str(r[c]), str(r[c])) for c in cols)
            groups.setdefault(b if b == p else f"{b} (baseline) / {p} (Prophet)", []).append(str(r["system_id"]))
        if len(groups) == 1:
            clauses.append(f"{label} {next(iter(groups))} on every system")
            continue
        parts = sorted(groups.items(), key=lambda g: len(g[1]))
        named = [f"{v} on {_and([cmd(i, 'system') for i in ids])}" for v, ids in parts[:-1]]
        clauses.append(f"{label} " + ", ".join([*named, f"{parts[-1][0]} on the others"]))
    return "; ".join(clauses)
