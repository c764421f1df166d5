"""The result columns, each declared once: name, unit, label, and the formatter the paper and the pages read it
with. A file's tuple gives its columns in the order the CSV has them; every other list of columns derives from
here: the runner's comparison row (runner.pair), the comparison tables (frames.COMPARISON_COLUMNS), the metrics
an expectation may check (schema.COMPARISON_METRICS), the paper's keyed values (latex.KEYED_METRICS), the text
columns of a comparison CSV (tables.TEXT_COMPARISON), the CSV checks of `paper` and `analyze` (tables.SCHEMAS),
the Monte Carlo's table (sensitivity.MC_COLUMNS), `sweep`'s metric columns (grid_metrics) and the order of the
validation's tables (measured/tables.py, declared in study/columns_measured.py)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from prophet_model.study.column_type import Column
from prophet_model.study.column_type import text as _text
from prophet_model.study.columns_measured import VALIDATION_FILES


def _pair(name: str, unit: str, label: str, fmt: str, expectation: bool = False) -> tuple[Column, Column]:
    """The baseline's and Prophet's column of one quantity (baseline_NAME, prophet_NAME)."""
    return tuple(  # type: ignore[return-value]
        Column(f"{v}_{name}", unit, f"{v.capitalize()}: {label}", fmt, expectation=expectation)
        for v in ("baseline", "prophet")
    )


SIDES = ("baseline", "prophet")
# each side's searched options (study/scenarios.py OPTIONS): the value its row was evaluated at
OPTION_LABELS = {
    "weight_precision": "weight precision (bf16 or fp8)",
    "kv_precision": "KV-cache precision",
    "cache_policy": "expert-cache policy",
    "overlap": "all-to-all overlap (none or two_batch)",
}
SYSTEM = (
    _text("system_id", "system id"),
    _text("system", "system"),
    _text("gpu", "GPU (catalog key)"),
    _text("interconnect", "interconnect (catalog key)"),
    Column("n_gpus", "GPUs", "GPUs in the system", "count"),
)
# all_systems_comparison.csv and fixed_batch_comparison.csv: one row per system x strategy; a row without numbers
# (a strategy not evaluated, or nothing fits in memory) has them empty and says why in `note`
COMPARISON: tuple[Column, ...] = (
    *SYSTEM,
    _text("strategy", "strategy"),
    *(_text(f"{v}_split", f"{v}'s EP x DP split") for v in ("baseline", "prophet")),
    *_pair("batch", "sequences per GPU", "batch per GPU", "whole"),
    *_pair("attention_tp", "GPUs", "tensor-parallel attention degree", "whole"),
    *(_text(f"{v}_{name}", f"{v}'s {label}") for name, label in OPTION_LABELS.items() for v in ("baseline", "prophet")),
    *(
        _text(f"{v}_offload_compute", f"{v}'s missing experts: copied (copy) or computed on the CPU (cpu)")
        for v in SIDES
    ),
    _text("placement", "expert placement (replicate or pool)"),
    _text("note", "why the row has no numbers"),
    *_pair("tokens_per_s", "tokens/s", "system throughput", "tokens", expectation=True),
    Column("speedup", "×", "Prophet's tokens/s over the baseline's", "ratio", expectation=True),
    *_pair("step_ms", "ms", "decode step", "ms", expectation=True),
    *_pair("comm_overhead_pct", "% of step", "exposed all-to-all", "pct", expectation=True),
    *_pair("allreduce_overhead_pct", "% of step", "attention all-reduce", "pct", expectation=True),
    Column("comm_reduction", "×", "all-to-all bytes per token, baseline over Prophet", "ratio", expectation=True),
    Column("baseline_fetch_overhead_pct", "% of step", "Baseline: exposed expert copies", "pct", expectation=True),
    *_pair("hit_rate", "share of touched experts", "experts already on the GPU", "share_pct"),
    Column("prophet_fetch_hidden_pct", "% of copy time", "Prophet's copy time hidden by prefetch", "pct"),
    Column("saved_by_cache_ms", "ms per step", "saved: copies Prophet's cache avoids", "ms"),
    Column("saved_by_prefetch_ms", "ms per step", "saved: copies Prophet's prefetch hides", "ms"),
    Column("saved_by_comm_ms", "ms per step", "saved: exposed all-to-all", "ms"),
    Column("saved_by_other_ms", "ms per step", "saved: the rest (another split or batch)", "ms"),
    Column("prophet_fetch_overhead_pct", "% of step", "Prophet: exposed expert copies", "pct", expectation=True),
    *_pair("scaling_pct", "% of linear", "scaling efficiency", "pct", expectation=True),
    *_pair("scaling_reference_gpus", "GPUs", "GPUs of the scaling reference", "count"),
    _text("scaling_note", "how the scaling reference was chosen"),
    *_pair("usd_per_1m_tokens", "USD per 1M tokens", "cost", "usd", expectation=True),
    Column("cost_reduction", "×", "cost per token, baseline over Prophet", "ratio", expectation=True),
    Column("annual_savings_usd", "USD per year", "savings at the configured monthly tokens", "usd", expectation=True),
    _text("best_baseline_strategy", "the baseline's best strategy on this system"),
    _text("best_baseline_split", "the baseline's best split on this system"),
    Column("best_baseline_tokens_per_s", "tokens/s", "the baseline at its best strategy", "tokens", expectation=True),
    Column("speedup_vs_best_baseline", "×", "Prophet over the baseline's best strategy", "ratio", expectation=True),
)
_BY_NAME = {c.name: c for c in COMPARISON}
# headline.csv: the comparison's columns up to the best baseline's, then each variant's strategy
HEADLINE: tuple[Column, ...] = (
    *COMPARISON[: [c.name for c in COMPARISON].index("best_baseline_strategy")],
    *(_text(f"{v}_strategy", f"{v}'s best strategy") for v in ("baseline", "prophet")),
)
# the paper's \prophet{KEY}{METRIC} values of a row, in the order paper.keyed_values writes them
KEYED_ORDER = (
    "baseline_tokens_per_s",
    "prophet_tokens_per_s",
    "speedup",
    "baseline_step_ms",
    "prophet_step_ms",
    "baseline_batch",
    "prophet_batch",
    "baseline_attention_tp",
    "prophet_attention_tp",
    "baseline_comm_overhead_pct",
    "prophet_comm_overhead_pct",
    "baseline_allreduce_overhead_pct",
    "prophet_allreduce_overhead_pct",
    "comm_reduction",
    "baseline_fetch_overhead_pct",
    "prophet_fetch_overhead_pct",
    "baseline_hit_rate",
    "prophet_hit_rate",
    "prophet_fetch_hidden_pct",
    "saved_by_cache_ms",
    "saved_by_prefetch_ms",
    "saved_by_comm_ms",
    "baseline_scaling_pct",
    "prophet_scaling_pct",
    "baseline_usd_per_1m_tokens",
    "prophet_usd_per_1m_tokens",
    "cost_reduction",
    "annual_savings_usd",
    "best_baseline_tokens_per_s",
    "speedup_vs_best_baseline",
)
# `sweep`'s metric columns (the metrics at any values of the model's inputs), in the order its CSV has them
GRID_ORDER = (
    "speedup",
    "baseline_tokens_per_s",
    "prophet_tokens_per_s",
    "baseline_usd_per_1m_tokens",
    "prophet_usd_per_1m_tokens",
    "annual_savings_usd",
    "cost_reduction",
    "baseline_step_ms",
    "prophet_step_ms",
    "baseline_comm_overhead_pct",
    "prophet_comm_overhead_pct",
    "baseline_allreduce_overhead_pct",
    "prophet_allreduce_overhead_pct",
    "comm_reduction",
    "baseline_fetch_overhead_pct",
    "prophet_fetch_overhead_pct",
    "baseline_hit_rate",
    "prophet_hit_rate",
    "prophet_fetch_hidden_pct",
    "saved_by_cache_ms",
    "saved_by_prefetch_ms",
    "saved_by_comm_ms",
)

# results_<system id>.csv: one row per system x strategy x variant x split x batch (the step's breakdown)
ROWS: tuple[Column, ...] = (
    *SYSTEM,
    _BY_NAME["placement"],
    _BY_NAME["strategy"],
    _text("variant", "baseline or prophet"),
    Column("ep", "GPUs", "expert-parallel degree", "count"),
    Column("dp", "replicas", "data-parallel degree", "count"),
    _BY_NAME["note"],
    Column("n_gpus_evaluated", "GPUs", "GPUs evaluated", "count"),
    _text("role", "the row's role (a reference configuration of the scaling ratio)"),
    Column("attention_tp", "GPUs", "tensor-parallel attention degree", "whole"),
    *(_text(name, label) for name, label in OPTION_LABELS.items()),
    Column("batch_size_per_gpu", "sequences per GPU", "batch per GPU", "whole"),
    Column("configured_batch", "", "whether the batch is the configured one"),
    Column("compute_ms", "ms", "computation per step", "ms"),
    Column("fetch_ms", "ms", "expert copies per step", "ms"),
    Column("fetch_exposed_ms", "ms", "expert copies not hidden", "ms"),
    _text("offload_compute", "missing experts copied (copy) or computed on the CPU (cpu)"),
    Column("cpu_experts_ms", "ms", "CPU time of the missing experts it computes", "ms"),
    Column("comm_exposed_ms", "ms", "communication not hidden", "ms"),
    Column("alltoall_exposed_ms", "ms", "all-to-all not hidden", "ms"),
    Column("allreduce_ms", "ms", "attention all-reduce", "ms"),
    Column("step_ms", "ms", "decode step", "ms"),
    Column("tokens_per_s", "tokens/s", "system throughput", "tokens"),
    Column("tokens_per_s_per_gpu", "tokens/s", "throughput per GPU", "tokens"),
    Column("holds_all_experts", "", "whether the GPUs hold every expert"),
    Column("comm_overhead_pct", "% of step", "exposed all-to-all", "pct"),
    Column("allreduce_overhead_pct", "% of step", "attention all-reduce", "pct"),
    Column("fetch_overhead_pct", "% of step", "exposed expert copies", "pct"),
    Column("resident_expert_fraction", "share of touched experts", "experts already on the GPU", "share_pct"),
    Column("alltoall_mb", "MB per step", "all-to-all bytes", "number"),
    Column("roofline_tokens_per_s", "tokens/s", "the roofline's throughput", "tokens"),
    Column("roofline_fraction_pct", "% of roofline", "throughput over the roofline's", "pct"),
    Column("usd_per_1m_tokens", "USD per 1M tokens", "cost", "usd"),
    Column("feasible", "", "whether the configuration fits and has numbers"),
    Column("scaling_pct", "% of linear", "scaling efficiency", "pct"),
    Column("scaling_reference_gpus", "GPUs", "GPUs of the scaling reference", "count"),
    _BY_NAME["scaling_note"],
)
_METRIC = _text("metric", "a column of the comparison")
# claims.csv: one row per claim and lever (study/claims.py)
CLAIMS: tuple[Column, ...] = (
    _text("claim", "the claim"),
    _BY_NAME["system_id"],
    _BY_NAME["strategy"],
    _METRIC,
    Column("claimed", "the metric's", "the claimed figure", "number"),
    Column("model", "the metric's", "the model's figure", "number"),
    Column("gap_pct", "%", "the model over the claim, less 1", "pct"),
    _text("lever", "the input solved for"),
    Column("configured", "the lever's", "the lever as configured", "number"),
    Column("needed", "the lever's", "the lever's value that gives the claimed figure", "number"),
    _text("unit", "the lever's unit"),
    _text("note", "why unreachable, or how the value compares"),
)
# uncertainty.csv: the Monte Carlo's point value, median and 90% interval per system and metric
UNCERTAINTY: tuple[Column, ...] = (
    *SYSTEM[:2],
    _BY_NAME["strategy"],
    _METRIC,
    *(Column(n, "the metric's", label, "number") for n, label in (("point", "headline value"), ("median", "median"))),
    *(Column(n, "the metric's", f"{n[1:]}th percentile", "number") for n in ("p5", "p95")),
    Column("samples", "draws", "draws with a finite value", "count"),
    Column("draws", "draws", "draws made", "count"),
    Column("dropped", "draws", "draws where a variant had no operating point", "count"),
    Column("dropped_no_fit", "draws", "dropped: nothing fits in memory", "count"),
    Column("dropped_max_step", "draws", "dropped: no batch meets max_step_ms", "count"),
)
# sanity_checks.csv: every check and expectation with its range and result
CHECKS: tuple[Column, ...] = (
    _text("kind", "check or expectation"),
    _BY_NAME["system_id"],
    _BY_NAME["strategy"],
    _text("check", "what is checked (a metric or a rule)"),
    *(Column(n, "the check's", label, "number") for n, label in (("value", "value"), ("min", "low"), ("max", "high"))),
    _text("status", "PASS, MISS or another state"),
    _text("source", "where the range comes from"),
)
# regime_map.csv (study/regime.py): a panel's point, each variant's operating point there, and (named by their
# keys, study/inputs.py) the inputs the point moves
REGIME: tuple[Column, ...] = (
    _text("panel", "the map's panel"),
    _text("kind", "grid point or a studied system"),
    _BY_NAME["system_id"],
    Column("x", "the panel's x unit", "x", "number"),
    Column("y", "the panel's y unit", "y", "number"),
    *(_BY_NAME[n] for n in ("speedup", "baseline_tokens_per_s", "prophet_tokens_per_s")),
    *(
        c
        for v in ("baseline", "prophet")
        for c in (
            _text(f"{v}_strategy", f"{v}'s best strategy"),
            _BY_NAME[f"{v}_split"],
            _BY_NAME[f"{v}_attention_tp"],
            _BY_NAME[f"{v}_batch"],
        )
    ),
)
# hardware_rates.csv: each GPU kind's attainable rates and their source (study/rates.py hardware_rows)
HARDWARE: tuple[Column, ...] = (
    _text("gpu", "the GPU"),
    Column("HBM (GB/s)", "GB/s", "attainable HBM bandwidth", "number"),
    Column("BF16 GEMM (TFLOP/s)", "TFLOP/s", "attainable dense BF16 rate", "number"),
    Column("dense weight streaming (GB/s)", "GB/s", "a few-row dense GEMM's weight rate", "number"),
    Column("grouped weight streaming (GB/s)", "GB/s", "a few-row grouped GEMM's weight rate", "number"),
    Column("host link (GB/s)", "GB/s", "attainable host-to-GPU copy rate", "number"),
    Column("kernel start-up (us)", "us", "one kernel's start-up", "number"),
    _text("source", "the measurements the rates come from"),
)
# worked_example.csv: every intermediate term of the headline system's step (study/worked_example.py), SI units
WORKED: tuple[Column, ...] = (
    _text("variant", "baseline or prophet"),
    _BY_NAME["system_id"],
    Column("ep", "GPUs", "expert-parallel degree", "count"),
    Column("expert_bytes", "bytes", "one expert's weights", "number"),
    Column("dense_params", "parameters", "the dense (non-expert) parameters", "number"),
    Column("kv_cache_bytes", "bytes", "the KV cache of one GPU", "number"),
    Column("experts_on_fullest_gpu", "experts", "experts per layer on the fullest GPU", "number"),
    Column("hit_rate", "share", "share of touched experts already on the GPU", "number"),
    Column("tokens_per_group", "tokens", "tokens routed within one EP group", "number"),
    Column("distinct_experts_touched", "experts", "distinct experts a rank touches per layer", "number"),
    Column("assignments_on_fullest_gpu", "token-expert pairs", "pairs the busiest rank serves", "number"),
    Column("dense_time_s", "s", "dense computation per step", "number"),
    Column("expert_time_s", "s", "expert computation per step", "number"),
    Column("startup_time_s", "s", "kernel start-ups per step", "number"),
    Column("fetch_bytes", "bytes", "expert bytes copied per step", "number"),
    Column("peer_share", "share", "share of copies served by a peer GPU", "number"),
    Column("fetch_s", "s", "expert copies per step", "number"),
    Column("fetch_exposed_s", "s", "expert copies not hidden", "number"),
    Column("alltoall_bytes", "bytes", "one all-to-all's bytes on the busiest rank", "number"),
    Column("alltoall_time_s", "s", "one all-to-all", "number"),
    Column("comm_exposed_s", "s", "communication not hidden per step", "number"),
    Column("step_s", "s", "decode step", "number"),
    Column("tokens_per_s", "tokens/s", "system throughput", "number"),
)
_WHO = tuple(_BY_NAME[n] for n in ("system_id", "system", "strategy"))
_INPUT = (_text("input", "the input varied (study/inputs.py)"), _text("label", "the input in words"))
# sensitivity/*.csv: what the sensitivity page shows (workflow/writer_tables.py)
SWEEPS: tuple[Column, ...] = (
    *_WHO,
    *_INPUT,
    Column("value", "the input's unit", "the input's value", "number"),
    *(
        _BY_NAME[n]
        for n in (
            "speedup",
            "prophet_tokens_per_s",
            "baseline_tokens_per_s",
            "prophet_usd_per_1m_tokens",
            "baseline_usd_per_1m_tokens",
            "annual_savings_usd",
        )
    ),
)
TORNADO: tuple[Column, ...] = (
    *_WHO,
    _text("metric", "the metric ranked"),
    *_INPUT,
    Column("low_value", "the input's unit", "the input's low value", "number"),
    Column("high_value", "the input's unit", "the input's high value", "number"),
    Column("at_low", "the metric's unit", "the metric at the low value", "number"),
    Column("at_high", "the metric's unit", "the metric at the high value", "number"),
    Column("point", "the metric's unit", "the metric at the configured value", "number"),
    Column("spread", "the metric's unit", "|at_high - at_low|", "number"),
)
MAPS: tuple[Column, ...] = (
    *_WHO,
    _text("against", "the input on the map's y axis"),
    Column("log_scale", "", "whether that axis is logarithmic", "number"),
    Column("accuracy", "share", "Prophet's prediction accuracy (x axis)", "number"),
    Column("value", "the input's unit", "the y input's value", "number"),
    _BY_NAME["speedup"],
)
FILES: dict[str, tuple[Column, ...]] = {
    "all_systems_comparison.csv": COMPARISON,
    "fixed_batch_comparison.csv": COMPARISON,
    "headline.csv": HEADLINE,
    "results_*.csv": ROWS,
    "claims.csv": CLAIMS,
    "uncertainty.csv": UNCERTAINTY,
    "sanity_checks.csv": CHECKS,
    "regime_map.csv": REGIME,
    "hardware_rates.csv": HARDWARE,
    "worked_example.csv": WORKED,
    "sensitivity/sweeps.csv": SWEEPS,
    "sensitivity/tornado.csv": TORNADO,
    "sensitivity/maps.csv": MAPS,
    **VALIDATION_FILES,  # validation/<stem>.csv: study/columns_measured.py
}


def names(columns: tuple[Column, ...]) -> tuple[str, ...]:
    return tuple(c.name for c in columns)


def registered(name: str, columns: tuple[Column, ...]) -> bool:
    """Whether `name` is one of `columns` (a pattern column matching it counts)."""
    return any(fnmatch.fnmatchcase(name, c.name) if c.pattern else c.name == name for c in columns)


def arrange(found: Iterable[str], columns: tuple[Column, ...], what: str) -> list[str]:
    """A table's columns `found` in the registry's order: each column in its place, a pattern column standing
    for every column of `found` it matches, in their order there. ValueError naming `what` for a column of
    `found` the registry lacks or a (not pattern) column of the registry that `found` lacks."""
    found = [str(c) for c in found]
    order: list[str] = []
    for c in columns:
        if c.pattern:
            order += [f for f in found if f not in order and fnmatch.fnmatchcase(f, c.name)]
        elif c.name in found:
            order.append(c.name)
    unknown = [f for f in found if f not in order]
    missing = [c.name for c in columns if not c.pattern and c.name not in found]
    if unknown or missing:
        raise ValueError(
            f"{what}: unregistered column(s) {', '.join(unknown) or '(none)'}, registered column(s) missing "
            f"{', '.join(missing) or '(none)'}; allowed: {', '.join(names(columns))} (study/columns.py FILES)"
        )
    return order


def get(name: str) -> Column:
    """A column of the comparison tables (KeyError: none of that name)."""
    return _BY_NAME[name]


def comparison_columns() -> tuple[str, ...]:
    """all_systems_comparison.csv's columns, in order."""
    return names(COMPARISON)


def headline_columns() -> tuple[str, ...]:
    return names(HEADLINE)


def text_columns(columns: tuple[Column, ...] = COMPARISON) -> tuple[str, ...]:
    """The columns that hold words, in order (the rest must hold numbers)."""
    return tuple(c.name for c in columns if c.text)


def numeric_columns(columns: tuple[Column, ...]) -> tuple[str, ...]:
    return tuple(c.name for c in columns if not c.text)


def expectation_metrics() -> tuple[str, ...]:
    """The comparison's metrics an expectation may check, in column order."""
    return tuple(c.name for c in COMPARISON if c.expectation)


def keyed() -> tuple[tuple[str, str], ...]:
    """(column, formatter name) of the paper's keyed values, in KEYED_ORDER."""
    return tuple((n, _BY_NAME[n].format) for n in KEYED_ORDER)


def grid_metrics() -> tuple[str, ...]:
    """`sweep`'s and `solve`'s metrics (the columns of a sweep's CSV after its inputs), in GRID_ORDER."""
    return GRID_ORDER


def in_order(row: dict, columns: tuple[Column, ...] = COMPARISON) -> dict:
    """A row's values in the columns' order; a KeyError for a key that is not one of the columns."""
    known = names(columns)
    unknown = [k for k in row if k not in known]
    if unknown:
        raise KeyError(f"unregistered result column(s) {', '.join(unknown)} (study/columns.py)")
    return {k: row[k] for k in known if k in row}
