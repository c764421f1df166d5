"""Sensitivity and uncertainty of the headline numbers: one-at-a-time sweeps, tornado rankings,
accuracy x interconnect-bandwidth maps with the break-even contour, and a seeded Monte Carlo giving
a central value and a 90% interval. The sweeps are one vectorized model call per system and variant; the
Monte Carlo re-searches every draw's operating point in a few (study/mc_search.py).

The headline configuration of a system is its paper row (the configured headline strategy, else its
best), with the hardware's attainable rates as measured: the sweeps ask how the model's outputs move
with each input. (`whatif` re-runs the whole study instead.)"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prophet_model import physics as m
from prophet_model.physics.cost import annual_savings_usd, usd_per_million_tokens
from prophet_model.study import columns, inputs
from prophet_model.study.config import Study, System
from prophet_model.study.runner import StudyResults
from prophet_model.study.scenarios import concatenated, row_options, scenario_dict
from prophet_model.study.schema import Distribution

if TYPE_CHECKING:  # pandas is imported where a table is built: whatif's tornado (tornado_records) needs none
    import pandas as pd

# The inputs, their Scenario fields, the sweeps' grids and labels: study/inputs.py (each input declared once).
# input name -> (Scenario fields, "value" replaces them, "factor" multiplies them)
INPUTS: dict[str, tuple[tuple[str, ...], str]] = {i.key: (i.fields, i.mode) for i in inputs.REGISTRY}
# inputs that describe Prophet alone: the baseline keeps its own value (and the reverse)
PROPHET_ONLY_INPUTS = tuple(i.key for i in inputs.REGISTRY if i.side == "prophet")
BASELINE_ONLY_INPUTS = tuple(i.key for i in inputs.REGISTRY if i.side == "baseline")
SWEEPS: dict[str, np.ndarray] = inputs.sweeps()
LABELS = inputs.labels()
METRICS = (
    "speedup",
    "prophet_tokens_per_s",
    "baseline_tokens_per_s",
    "prophet_usd_per_1m_tokens",
    "baseline_usd_per_1m_tokens",
    "annual_savings_usd",
)
HEADLINE_METRICS = ("speedup", "prophet_tokens_per_s", "prophet_usd_per_1m_tokens")


@dataclass(frozen=True)
class Setup:
    """One system's headline configuration, baseline and Prophet, as Scenario-field dicts."""

    system: System
    strategy: str
    ep: int
    baseline: dict[str, float]
    prophet: dict[str, float]
    monthly_tokens: float


def setups(results: StudyResults, evaluated_only: bool = True) -> dict[str, Setup]:
    """Each system's headline configuration (results.headline: Prophet at its best strategy, split and
    batch, the baseline at its), held fixed: the sweeps move inputs around this operating point without
    searching it again (the Monte Carlo's point value; its draws search again). `evaluated_only=False` also gives a
    system none of whose
    strategies has numbers (it does not fit in memory) its headline strategy's split at the configured
    batch, so that a sweep can ask which inputs would make it fit."""
    import pandas as pd

    study = results.study
    rows = results.headline.dropna(subset=["speedup"]) if results.headline is not None else pd.DataFrame()
    batch = study.config.workload.batch_size_per_gpu
    points = {
        r.system_id: (
            r.strategy,
            r.prophet_split,
            r.prophet_batch,
            r.baseline_split,
            r.baseline_batch,
            r.prophet_attention_tp,
            r.baseline_attention_tp,
            (row_options(r, "prophet_"), row_options(r, "baseline_")),
        )
        for r in rows.itertuples()
    }
    if not evaluated_only:
        comp = results.comparison
        split = comp.prophet_split.fillna("").astype(str) != "" if not comp.empty else []
        for sid, g in comp[split].groupby("system_id", sort=False) if not comp.empty else ():
            if sid not in points:
                r = g.iloc[0]  # the first configured strategy with a split
                points[sid] = (r.strategy, r.prophet_split, batch, r.baseline_split, batch, 1, 1)
    return {sid: _setup(study, sid, *point) for sid, point in points.items()}


def headline_setup(results: StudyResults, sid: str) -> Setup | None:
    """`setups(results).get(sid)` without pandas (from results.headline_records), for `whatif`."""
    nan = float("nan")
    for r in results.headline_records:
        speedup = r.get("speedup")
        if r.get("system_id") != sid or speedup is None or speedup != speedup:
            continue
        get = {k: r.get(k, nan) for k in ("prophet_attention_tp", "baseline_attention_tp")}
        tp = {k: nan if v is None else v for k, v in get.items()}
        options = (row_options(r, "prophet_"), row_options(r, "baseline_"))
        return _setup(
            results.study,
            sid,
            str(r["strategy"]),
            str(r["prophet_split"]),
            r["prophet_batch"],
            str(r["baseline_split"]),
            r["baseline_batch"],
            tp["prophet_attention_tp"],
            tp["baseline_attention_tp"],
            options,
        )
    return None


def _setup(
    study: Study,
    sid: str,
    strategy: str,
    p_split: str,
    p_batch: float,
    b_split: str,
    b_batch: float,
    p_tp: float,
    b_tp: float,
    options: tuple[dict[str, str] | None, dict[str, str] | None] = (None, None),
) -> Setup:
    system = study.system(sid)
    ep, b_ep = int(p_split.split("x")[0]), int(b_split.split("x")[0])
    args = (study, system.gpu_key, system.count)
    tp = {v: int(x) if x == x else 1 for v, x in (("b", b_tp), ("p", p_tp))}  # NaN (no degree fits): 1
    model = study.model_of(system)
    base = scenario_dict(*args, b_ep, system.interconnect, False, model, attention_tp=tp["b"], options=options[1]) | {
        "batch_size_per_gpu": float(b_batch)
    }
    prophet = scenario_dict(*args, ep, system.interconnect, True, model, attention_tp=tp["p"], options=options[0]) | {
        "batch_size_per_gpu": float(p_batch)
    }
    return Setup(system, strategy, ep, base, prophet, study.config.cost.monthly_tokens)


def strategy_setup(results: StudyResults, sid: str, strategy: str) -> Setup | None:
    """One system's configuration of one strategy as the comparison evaluated it (each side at its own
    split, batch and attention degree), or None where it has no numbers."""
    comp = results.comparison
    rows = comp[(comp.system_id == sid) & (comp.strategy == strategy)].dropna(subset=["speedup"])
    if rows.empty:
        return None
    r = rows.iloc[0]
    return _setup(
        results.study,
        sid,
        strategy,
        r.prophet_split,
        r.prophet_batch,
        r.baseline_split,
        r.baseline_batch,
        r.prophet_attention_tp,
        r.baseline_attention_tp,
        (row_options(r, "prophet_"), row_options(r, "baseline_")),
    )


def scenario(base: dict[str, float], overrides: dict[str, np.ndarray]) -> m.Scenario:
    """The model's inputs of one variant (`base`, a Setup's baseline or prophet) with `overrides`: a
    config path replaces the value, a *_factor input multiplies it (INPUTS)."""
    values = {k: np.asarray(base[k], dtype=float) for k in m.NUMBERS}
    for name, arr in overrides.items():
        if (name in PROPHET_ONLY_INPUTS and not base["prophet"]) or (name in BASELINE_ONLY_INPUTS and base["prophet"]):
            continue
        targets, mode = INPUTS[name]
        for field in targets:
            values[field] = values[field] * arr if mode == "factor" else np.asarray(arr, dtype=float)
    return m.Scenario(**values, traces=base.get("traces", {}))


def tokens_per_s(setup: Setup, variant: str, overrides: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One variant's ("baseline" or "prophet") system throughput for arrays of input values."""
    return m.evaluate(scenario(getattr(setup, variant), overrides or {})).tokens_per_s


def alltoall_per_token(setup: Setup, variant: str, overrides: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Bytes of one all-to-all per sequence of the batch (physics/comm.py), one variant."""
    s = scenario(getattr(setup, variant), overrides or {})
    return m.evaluate(s).alltoall_bytes / s.batch_size_per_gpu


def evaluate(setup: Setup, overrides: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Headline metrics for arrays of input values (broadcast together)."""
    overrides = overrides or {}
    tps = {v: m.evaluate(scenario(getattr(setup, v), overrides)).tokens_per_s for v in ("baseline", "prophet")}
    return metrics(setup, tps["baseline"], tps["prophet"])


def metrics(setup: Setup, baseline: np.ndarray, prophet: np.ndarray) -> dict[str, np.ndarray]:
    """The headline metrics of both variants' system throughputs (tokens/s)."""
    n, price = setup.system.count, setup.system.gpu.price_usd_per_gpu_hour
    cost = {v: usd_per_million_tokens(n, price, t) for v, t in (("baseline", baseline), ("prophet", prophet))}
    return {
        "baseline_tokens_per_s": baseline,
        "prophet_tokens_per_s": prophet,
        "speedup": prophet / baseline,
        "baseline_usd_per_1m_tokens": cost["baseline"],
        "prophet_usd_per_1m_tokens": cost["prophet"],
        "annual_savings_usd": annual_savings_usd(cost["baseline"], cost["prophet"], setup.monthly_tokens),
    }


def sweep_arrays(setup: Setup) -> dict[str, np.ndarray]:
    """One-at-a-time sweeps of every input over its range, as arrays of one length (input, value, metrics);
    every input's sweep in one model call per variant."""
    grids = {name: np.round(v) if inputs.get(name).whole else v for name, v in SWEEPS.items()}
    lengths = [v.size for v in grids.values()]
    tps = {
        v: m.evaluate(concatenated([scenario(getattr(setup, v), {k: g}) for k, g in grids.items()], lengths))
        for v in ("baseline", "prophet")
    }
    total = sum(lengths)
    out = metrics(setup, *(np.broadcast_to(tps[v].tokens_per_s, (total,)) for v in ("baseline", "prophet")))
    return {
        "input": np.repeat(list(grids), lengths),
        "value": np.concatenate(list(grids.values())),
        **{k: np.broadcast_to(v, (total,)) for k, v in out.items()},
    }


def sweeps(setup: Setup) -> pd.DataFrame:
    """sweep_arrays as a tidy table (input, value, metrics)."""
    import pandas as pd

    return pd.DataFrame(sweep_arrays(setup))


def tornado_records(
    setup: Setup, metric: str, table: Mapping[str, np.ndarray] | pd.DataFrame | None = None
) -> list[dict[str, object]]:
    """Each input at the ends of its sweep range (the feasible part: a batch whose KV cache does not fit is left
    out), the others at the study's values, in SWEEPS' order: spread = |metric at the high end - at the low end|.
    `table`: the setup's sweeps (sweep_arrays or sweeps) when already computed. numpy only."""
    point = float(evaluate(setup)[metric])
    table = sweep_arrays(setup) if table is None else table
    names, values, y = (np.asarray(table[k]) for k in ("input", "value", metric))
    rows = []
    for name in SWEEPS:
        at = np.flatnonzero((names == name) & np.isfinite(y))
        lo, hi = at[0], at[-1]
        rows.append(
            {
                "input": name,
                "label": LABELS[name],
                "low_value": values[lo],
                "high_value": values[hi],
                "at_low": y[lo],
                "at_high": y[hi],
                "point": point,
                "spread": abs(y[hi] - y[lo]),
            }
        )
    return rows


def tornado(setup: Setup, metric: str, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """tornado_records as a table, ranked by the spread of `metric` (largest first)."""
    import pandas as pd

    rows = tornado_records(setup, metric, table)
    return pd.DataFrame(rows).sort_values("spread", ascending=False, kind="stable").reset_index(drop=True)


# the second axis of each accuracy map: (sensitivity input, grid, log scale)
MAPS: dict[str, tuple[np.ndarray, bool]] = inputs.maps()


def speedup_map(
    setup: Setup, against: str = "interconnect_bandwidth_factor", n: int = 41
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(accuracy grid, grid of `against`, speedup) over accuracy 0-1 x one of MAPS."""
    acc = np.linspace(0, 1, n)
    A, W = np.meshgrid(acc, MAPS[against][0])
    s = evaluate(setup, {"prophet.prediction_accuracy": A, against: W})["speedup"]
    return A, W, np.asarray(s)


def sample(dist: Distribution, rng: np.random.Generator, n: int) -> np.ndarray:
    if dist.distribution == "uniform":
        return rng.uniform(dist.low, dist.high, n)
    if dist.distribution == "triangular":
        return rng.triangular(dist.low, dist.mode, dist.high, n) if dist.high > dist.low else np.full(n, dist.low)
    return np.exp(rng.uniform(np.log(dist.low), np.log(dist.high), n))


def draws(study: Study, samples: int | None = None, seed: int | None = None) -> dict[str, np.ndarray]:
    """The Monte Carlo draws of every uncertain input, as factors on the configured (or catalog)
    value (one array each, centred on 1), reproducible from the seed."""
    u = study.config.uncertainty
    if u is None:
        return {}
    n = samples or u.samples
    rng = np.random.default_rng(u.seed if seed is None else seed)
    return {name: sample(u.inputs[name], rng, n) for name in uncertain_inputs(study)}


def uncertain_inputs(study: Study) -> list[str]:
    """The inputs the Monte Carlo samples, sorted: those of `uncertainty.inputs`, less the batch per GPU
    when the study searches it (an operator's choice at its optimum, not an uncertainty: any draw
    around it could only lower throughput, so the point would sit above its own interval)."""
    u = study.config.uncertainty
    names = sorted(u.inputs) if u else []
    if study.config.workload.batch_search:
        names = [n for n in names if n != "workload.batch_size_per_gpu"]
    return names


def _absolute(setup: Setup, factors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Factors on config values -> the values themselves (whole numbers where the input is a count),
    truncated at the value's allowed range (inputs.clip_bounds: an accuracy in [0, 1], a volume
    reduction and a batch >= 1, shares in [0, 1]): a draw past a bound takes the bound's value, so a
    configured value at its bound (accuracy 1, batch 1, no volume reduction) is the end of its own
    interval; factors on catalog values stay factors (the model multiplies them)."""
    out = {}
    for name, f in factors.items():
        targets, mode = INPUTS[name]
        if mode == "value":
            value = np.clip(setup.baseline[targets[0]] * f, *inputs.clip_bounds(name))
            out[name] = np.maximum(1, np.round(value)) if inputs.get(name).whole else value
        else:
            out[name] = f
    return out


MC_COLUMNS = list(columns.names(columns.UNCERTAINTY))  # uncertainty.csv's columns, in order


def monte_carlo(
    results: StudyResults,
    samples: int | None = None,
    seed: int | None = None,
    progress: bool = False,
    tick: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """Point value (the study's headline), median and 90% interval (5th-95th percentile) of every metric,
    per system. Every draw re-chooses each side's operating point (strategy, split, TP degree, batch:
    study/mc_search.py); a draw where a side has none (nothing fits, or nothing meets max_step_ms) is
    dropped and counted (`draws`, `dropped` and its two reasons). `progress`: a bar on stderr; `tick`: called
    after each system instead (a caller's own bar)."""
    import sys

    import pandas as pd
    from tqdm import tqdm

    from prophet_model.study import mc_search

    d = draws(results.study, samples, seed)
    n = len(next(iter(d.values()))) if d else 0
    limit = results.study.config.workload.max_step_ms
    rows = []
    chosen = setups(results)
    for sid, setup in tqdm(
        chosen.items(),
        total=len(chosen),
        desc="uncertainty",
        unit="system",
        disable=not (progress and d) or tick is not None,
        file=sys.stderr,
    ):
        point = evaluate(setup)
        mc, counts = point, {"draws": 0, "dropped": 0, "dropped_no_fit": 0, "dropped_max_step": 0}
        if d:
            values, at_point = _absolute(setup, d), _absolute(setup, {k: np.ones(1) for k in d})
            b, p = (
                mc_search.best(mc_search.side(results, sid, v), values, n, at_point, scenario, limit)
                for v in ("baseline", "prophet")
            )
            mc = metrics(setup, b.tokens_per_s, p.tokens_per_s)
            dropped = ~(np.isfinite(b.tokens_per_s) & np.isfinite(p.tokens_per_s))
            no_fit = dropped & (b.no_fit | p.no_fit)
            counts = {
                "draws": n,
                "dropped": int(dropped.sum()),
                "dropped_no_fit": int(no_fit.sum()),
                "dropped_max_step": int((dropped & ~no_fit).sum()),
            }
        for metric in METRICS:
            v = np.atleast_1d(np.asarray(mc[metric], dtype=float))
            v = v[np.isfinite(v)]
            if not v.size:  # every draw dropped: no interval
                v = np.array([np.nan])
            rows.append(
                {
                    "system_id": sid,
                    "system": setup.system.name,
                    "strategy": setup.strategy,
                    "metric": metric,
                    "point": float(point[metric]),
                    "median": float(np.median(v)),
                    "p5": float(np.percentile(v, 5)),
                    "p95": float(np.percentile(v, 95)),
                    "samples": int(np.isfinite(v).sum()),
                    **counts,
                }
            )
        if tick is not None:
            tick()
    return pd.DataFrame(rows, columns=MC_COLUMNS)


def outside_interval(table: pd.DataFrame, rel_tol: float = 1e-9) -> list[str]:
    """A line for every headline number that lies outside its own 90% interval (none should)."""
    out = []
    for r in table.itertuples():
        tol = rel_tol * max(abs(r.p5), abs(r.p95), 1e-300)
        if not (r.p5 - tol <= r.point <= r.p95 + tol):
            out.append(
                f"{r.system_id} {r.strategy} {r.metric}: {r.point:.6g} outside its 90% interval {r.p5:.6g}-{r.p95:.6g}"
            )
    return out
