"""The columns of the validation's tables (results/data/validation/<stem>.csv, computed by measured/tables.py),
each declared once as study/columns.py declares the study's: a table's tuple gives its columns in the order the
CSV has them, and measured/tables.py puts every table in that order (columns.arrange), so a column added in the
code and not here, or declared here and not computed, stops `run` with both named. columns.FILES holds these
tables as validation/<stem>.csv."""

from __future__ import annotations

from prophet_model.study.column_type import Column, text

MACHINE = text("machine", "the machine (a folder of validation/measurements, validation/machines.yml)")
MODEL = text("model", "the model (catalog key)")
POINTS = Column("points", "points", "measured points", "count")
MEASURED_MS = Column("measured_ms", "ms", "measured time (median of the repetitions)", "ms")
PREDICTED_MS = Column("predicted_ms", "ms", "the model's prediction", "ms")
ERROR_PCT = Column("error_pct", "%", "the model's prediction over the measurement, less 1", "pct")
PRIMITIVE = text("primitive", "what was timed (benchmark and part, in words)")
MEDIAN_ABS = Column("median |error| %", "%", "median |error| of the model", "pct")
SIGNED = Column("median error % (signed)", "%", "median error of the model, with its sign", "pct")
WORST_ABS = Column("worst |error| %", "%", "largest |error| of the model", "pct")
WORST_AT = text("worst at", "the point of the largest |error|")
SET = text("set", "the two-GPU set (validation/measure_multi.py)")


def _seconds(name: str, label: str) -> Column:
    return Column(name, "s", label, "number")


def _ms(name: str, label: str) -> Column:
    return Column(name, "ms", label, "ms")


def _pct(name: str, label: str) -> Column:
    return Column(name, "%", label, "pct")


def _gbps(name: str, label: str) -> Column:
    return Column(name, "GB/s", label, "number")


def _us(name: str, label: str) -> Column:
    return Column(name, "µs", label, "number")


# points.csv: every row of the machines' measurements.csv (validation/measure.py's columns) with its prediction
POINTS_TABLE: tuple[Column, ...] = (
    MACHINE,
    text("benchmark", "the benchmark (validation/measure.py)"),
    text("part", "the benchmark's part"),
    text("gpu", "the GPU as the driver names it"),
    Column("n_gpus", "GPUs", "GPUs the benchmark ran on", "count"),
    MODEL,
    Column("hidden", "elements", "hidden size", "count"),
    Column("ffn", "elements", "expert FFN size", "count"),
    Column("experts", "experts", "experts per layer", "count"),
    Column("top_k", "experts", "experts per token", "count"),
    Column("bytes", "bytes", "bytes per rank (a copy's or an all-to-all's buffer)", "number"),
    Column("tokens_per_rank", "tokens", "tokens per GPU", "count"),
    text("local_fraction", "share of a token's experts on its own GPU (uniform: as routing falls)"),
    Column("ep", "GPUs", "expert-parallel degree", "count"),
    Column("reps", "repetitions", "timed repetitions", "count"),
    _seconds("median_s", "measured time, median of the repetitions"),
    *(_seconds(f"p{q}_s", f"measured time, {q}th percentile") for q in (10, 90)),
    _seconds("min_s", "measured time, fastest repetition"),
    _seconds("max_s", "measured time, slowest repetition"),
    PRIMITIVE,
    _seconds("predicted_s", "the model's prediction (the machine's measured ceilings)"),
    ERROR_PCT,
    _seconds("predicted_datasheet_s", "the prediction at datasheet rates"),
    _pct("error_datasheet_pct", "the datasheet prediction over the measurement, less 1"),
)
# calibrated_summary.csv: the errors per primitive that remain once the separate calibrated variant is fitted
CALIBRATED_SUMMARY: tuple[Column, ...] = (PRIMITIVE, POINTS, MEDIAN_ABS, SIGNED, WORST_ABS, WORST_AT)
# summary.csv: the errors per primitive, with the datasheet's, the verdict and, where off, why
SUMMARY: tuple[Column, ...] = (
    *CALIBRATED_SUMMARY,
    _pct("datasheet only: median |error| %", "median |error| at datasheet rates"),
    text("verdict", "within the verdicts' limit or off by more"),
    text("why", "why the model is off (empty where within)"),
)
CALIBRATED_FITS: tuple[Column, ...] = (PRIMITIVE, text("fitted", "the fitted efficiency, or latency and bandwidth"))
# ceilings.csv: each measured machine's ceilings, HBM and GEMM as "attainable of datasheet"
CEILINGS: tuple[Column, ...] = (
    text("measured on", "the machine whose ceilings these are"),
    _us("start-up (µs)", "one kernel's start-up"),
    _us("1-element kernel (µs)", "a 1-element kernel in a chain"),
    text("HBM (GB/s)", "attainable HBM bandwidth of the datasheet's"),
    text("BF16 GEMM (TFLOP/s)", "attainable dense BF16 rate of the datasheet's"),
    text("link (GB/s each way)", "attainable link bandwidth per direction, or not measured"),
)
MACHINES: tuple[Column, ...] = (
    MACHINE,
    text("gpu_key", "the catalog GPU machines.yml names"),
    text("gpu_name", "that GPU's name in the catalog"),
    Column("measured", "", "whether the machine's folder holds measurements (an env.json)"),
    text("GPUs", "the GPUs env.json names, or not measured yet"),
    text("software", "PyTorch, CUDA and NCCL versions of env.json"),
)
ALLTOALL_RATES: tuple[Column, ...] = (
    MACHINE,
    Column("per-rank buffer (MiB)", "MiB", "the all-to-all's buffer per rank", "number"),
    _gbps("NCCL all-to-all (GB/s)", "bytes crossing per direction over the time above the latency floor"),
    _gbps("link ceiling (GB/s)", "the link's measured ceiling (kernel writes, no NCCL)"),
    _gbps("payload rate (GB/s)", "the catalog's payload rate per direction"),
    _gbps("line rate (GB/s)", "the catalog's line rate per direction"),
)
NCCL_SETTINGS: tuple[Column, ...] = (
    text("run", "the committed run, or the NCCL setting changed"),
    Column("* MiB (µs)", "µs", "median all-to-all time at this buffer per rank", "number", pattern=True),
)
ALLTOALL_SPLIT: tuple[Column, ...] = (
    text("per-rank buffer", "the all-to-all's buffer per rank"),
    _us("full (µs)", "the whole all-to-all"),
    _us("crossing share only (µs)", "only the bytes that cross the link"),
    _us("kept share only (µs)", "only the share a rank keeps"),
)
LINK_BLOCKS: tuple[Column, ...] = (
    Column("thread blocks", "blocks", "thread blocks of the copy kernel", "count"),
    *(
        Column(
            f"{kind}: * threads × * B",
            "GB/s",
            f"{kind} copy per direction at this shape (threads per block, bytes a thread moves per step)",
            "number",
            pattern=True,
        )
        for kind in ("remote", "local")
    ),
)
DECODE: tuple[Column, ...] = (
    MACHINE,
    MODEL,
    Column("batch", "sequences", "decode batch", "count"),
    Column("context", "tokens", "context length", "count"),
    MEASURED_MS,
    PREDICTED_MS,
    _ms("datasheet_ms", "the prediction at datasheet rates"),
    ERROR_PCT,
    _pct("datasheet_error_pct", "the datasheet prediction over the measurement, less 1"),
    _pct("copy_rate_only_error_pct", "the error with weights read at the HBM copy rate (no streaming shares)"),
)
BATCH_ONE: tuple[Column, ...] = (
    MACHINE,
    MODEL,
    _ms("grouped_gemm_measured_ms", "the profiled grouped GEMMs of one batch-1 step"),
    _ms("grouped_gemm_model_ms", "the model's expert computation of that step"),
    _gbps("stream_one_row_gbps", "the microbenchmark's grouped weight rate at one row"),
    _gbps("stream_model_gbps", "the model's grouped weight rate"),
    _ms("step_measured_ms", "the profiled kernels of the step in all"),
)
OFFLOAD: tuple[Column, ...] = (
    MACHINE,
    text("policy", "baseline (on-demand), prefetch or lru"),
    text("routing", "uniform or zipf"),
    Column("tokens", "tokens", "tokens per step", "count"),
    Column("resident_fraction", "share", "share of the experts kept on the GPU", "number"),
    Column("cache_slots", "experts", "the LRU cache's experts per layer", "count"),
    Column("accuracy", "share", "the prefetch's prediction accuracy", "number"),
    MEASURED_MS,
    PREDICTED_MS,
    ERROR_PCT,
    Column("hit_rate_measured", "share", "measured share of touched experts already on the GPU", "number"),
    Column("hit_rate_predicted", "share", "the model's share of touched experts on the GPU (lru)", "number"),
    Column("speedup_measured", "×", "the on-demand baseline's measured step over the prefetch's", "ratio"),
    Column("speedup_predicted", "×", "the model's prefetch speedup", "ratio"),
    _pct("speedup_error_pct", "the predicted speedup over the measured, less 1"),
)
SCALING: tuple[Column, ...] = (
    MACHINE,
    Column("ep", "GPUs", "expert-parallel degree", "count"),
    Column("bytes", "bytes", "the all-to-all's buffer per rank", "number"),
    _seconds("predicted_s", "the model's all-to-all"),
)
TWO_GPU: tuple[Column, ...] = (MACHINE, SET, text("point", "the set's point"), MEASURED_MS, PREDICTED_MS, ERROR_PCT)
TWO_GPU_SUMMARY: tuple[Column, ...] = (MACHINE, SET, POINTS, MEDIAN_ABS, WORST_ABS, WORST_AT)
VALIDATED: tuple[Column, ...] = (
    text("mechanism", "the mechanism a claim rests on"),
    text("what", "what was measured and predicted"),
    POINTS,
    _pct("median_pct", "median |error|"),
    _pct("worst_pct", "largest |error|"),
    text("text", "the validated error in words"),
)
# claim_evidence.csv: system_id and strategy are the comparison's columns (tests/test_registries.py checks it)
CLAIM_EVIDENCE: tuple[Column, ...] = (
    text("system_id", "system id"),
    text("strategy", "strategy"),
    text("mechanisms", "the mechanisms the row's speedup rests on"),
    text("validated", "their validated errors in words"),
    text("rates", "where the system's rates come from (measured or extrapolated)"),
    text("failed_checks", "the checks the row misses, or why none apply"),
)
# the validation's tables by file stem (outputs/files.py VALIDATION_TABLES names the same stems in the same order)
TABLES: dict[str, tuple[Column, ...]] = {
    "points": POINTS_TABLE,
    "summary": SUMMARY,
    "ceilings": CEILINGS,
    "machines": MACHINES,
    "alltoall_rates": ALLTOALL_RATES,
    "nccl_settings": NCCL_SETTINGS,
    "alltoall_split": ALLTOALL_SPLIT,
    "link_blocks": LINK_BLOCKS,
    "decode": DECODE,
    "batch_one": BATCH_ONE,
    "offload": OFFLOAD,
    "calibrated_fits": CALIBRATED_FITS,
    "calibrated_summary": CALIBRATED_SUMMARY,
    "scaling": SCALING,
    "two_gpu": TWO_GPU,
    "two_gpu_summary": TWO_GPU_SUMMARY,
    "two_gpu_planned": TWO_GPU,
    "validated": VALIDATED,
    "claim_evidence": CLAIM_EVIDENCE,
}
VALIDATION_FILES: dict[str, tuple[Column, ...]] = {f"validation/{stem}.csv": cols for stem, cols in TABLES.items()}
