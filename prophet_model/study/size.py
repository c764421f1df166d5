"""How much one run of the study evaluates, counted before it runs: an upper bound on its configurations
(systems x strategies x splits x reference splits x variants x options x TP degrees x batches), the time that takes,
and the bound beyond which a command refuses (run_study checks it first)."""

from __future__ import annotations

from collections.abc import Sequence

from prophet_model.errors import UserError
from prophet_model.study.config import Study, System
from prophet_model.study.strategies import splits

VARIANTS = ("baseline", "prophet")
MAX_BATCH = 1_000_000  # the schema's bound on workload.batch_size_per_gpu


def tp_degrees(study: Study, ep: int) -> tuple[int, ...]:
    """The tensor-parallel attention degrees evaluated for a replica of `ep` GPUs: those of
    parallel.attention_tp (auto: 1, 2, 4, 8) that divide ep and the attention heads; () where none does."""
    t = study.config.parallel.attention_tp
    heads = study.model.num_attention_heads
    return tuple(d for d in ((1, 2, 4, 8) if t == "auto" else (t,)) if ep % d == 0 and heads % d == 0)


def reference_splits(strategy: str, ep: int, dp: int) -> list[tuple[int, int]]:
    """The configurations of the same strategy on fewer GPUs, smallest first: EP over n GPUs, n dividing
    ep; DP of n replicas, n dividing dp; hybrid: d replicas of the same ep-GPU group, d dividing dp."""
    divisors = lambda n: [d for d in range(1, n + 1) if n % d == 0]  # noqa: E731
    if strategy == "EP":
        return [(n, 1) for n in divisors(ep)]
    if strategy == "DP":
        return [(1, n) for n in divisors(dp)]
    return [(ep, d) for d in divisors(dp)]


MAX_CONFIGURATIONS = 1_000_000  # bound on the configurations of one run_study: about 20 s and 1 GB of rows
SECONDS_PER_CONFIGURATION = 2e-5  # of the bound below: the default study (bound about 4,000) takes about 0.08 s
LONG_S = 5.0  # an estimate above this is said before the run, with a progress bar on standard error


def configurations(study: Study, systems: Sequence[System]) -> int:
    """An upper bound on the configurations evaluate_system evaluates for `systems`, counted without the
    model: per split candidate, its reference splits, both variants at each of their searched options, every TP
    degree and the longest batch grid (1, 2, 4, ... MAX_BATCH with the configured batch, the memory limit and the
    knee)."""
    from prophet_model.study.scenarios import searched_sets  # both variants' evaluated options (precision, overlap)

    batches = MAX_BATCH.bit_length() + 3 if study.config.workload.batch_search else 1
    total = 0
    for system in systems:
        options = sum(len(searched_sets(study, v == "prophet", study.model_of(system))) for v in VARIANTS)
        for strategy in study.config.strategies:
            for ep, dp in splits(system, strategy).candidates:
                refs = len(reference_splits(strategy, ep, dp))
                total += options * (1 + refs) * max(1, len(tp_degrees(study, ep))) * batches
    return total


def duration(seconds: float) -> str:
    """An estimated time in words: "under a second", "40 s", "12 min", "3.5 h"."""
    if seconds < 1:
        return "under a second"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:,.0f} min" if seconds < 7200 else f"{seconds / 3600:,.1f} h"


def check_size(study: Study, systems: Sequence[System]) -> tuple[int, float]:
    """(the configurations to evaluate, the estimated seconds); a UserError beyond MAX_CONFIGURATIONS, saying
    how many and how to narrow the search."""
    n = configurations(study, systems)
    seconds = n * SECONDS_PER_CONFIGURATION
    if n > MAX_CONFIGURATIONS:
        raise UserError(
            f"{study.path}: {len(systems):,} system(s) x strategies x splits x batches is up to {n:,} "
            f"configurations (estimated time: {duration(seconds)}); allowed: at most {MAX_CONFIGURATIONS:,}: "
            "fewer systems (run --systems ID ...), fewer strategies, a fixed hybrid split instead of "
            "auto, parallel.attention_tp fixed, or workload.batch_search: false"
        )
    return n, seconds
