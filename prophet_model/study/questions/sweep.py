"""`sweep`: the comparison's metrics at any values of the model's inputs around the operating point the
study chose (`metrics`, `sweep`: one vectorized model call per variant for a whole grid), over every
combination of configuration keys as well (`sweep_grid`: the study re-run for each), with why a point has
no numbers (`sweep_notes`, `step_bound`) and where a varied key stops changing the result
(`saturation_notes`)."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from prophet_model.errors import UserError
from prophet_model.study import columns
from prophet_model.study.questions.grid import CHOICES, parse_vary
from prophet_model.study.questions.moves import MOVES, reason
from prophet_model.study.questions.point import Question, operating_point_why
from prophet_model.study.size import LONG_S, duration

if TYPE_CHECKING:
    from prophet_model.study.config import Study
    from prophet_model.study.sensitivity import Setup

MAX_SWEEP = 2_000_000  # points; a larger grid would need several GB of memory
SECONDS_PER_POINT = 7e-5  # a sweep's point: model, notes and CSV (100,000 points in about 7 s on one core)
MAX_STUDY_RUNS = 200  # combinations of configuration keys (each re-runs the study, about half a second)


def metrics(setup: Setup, overrides: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The comparison's metrics at any values of the model's inputs (one vectorized call per variant,
    the operating point held): throughputs, speedup, costs, step times, exposed all-to-all and fetch
    shares, hit rates, the all-to-all and cost reductions, and where Prophet's step time is saved."""
    from prophet_model import physics as m
    from prophet_model.study.sensitivity import evaluate, scenario

    overrides = overrides or {}
    out = dict(evaluate(setup, overrides))
    r = {
        v: m.evaluate(scenario(base, overrides))
        for v, base in (("baseline", setup.baseline), ("prophet", setup.prophet))
    }
    ok = np.asarray(r["baseline"].feasible) & np.asarray(r["prophet"].feasible)

    def live(x) -> np.ndarray:
        return np.where(ok, np.asarray(x, dtype=float), np.nan)

    for v, res in r.items():
        out[f"{v}_step_ms"] = live(1e3 * res.step_s)
        out[f"{v}_comm_overhead_pct"] = live(res.comm_overhead_pct)
        out[f"{v}_allreduce_overhead_pct"] = live(res.allreduce_overhead_pct)
        out[f"{v}_fetch_overhead_pct"] = live(res.fetch_overhead_pct)
        out[f"{v}_hit_rate"] = live(res.resident_fraction)
    b, p = r["baseline"], r["prophet"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["comm_reduction"] = live(np.where(p.comm_exposed_s > 0, b.comm_exposed_s / p.comm_exposed_s, np.nan))
        out["cost_reduction"] = live(out["baseline_usd_per_1m_tokens"] / out["prophet_usd_per_1m_tokens"])
        out["prophet_fetch_hidden_pct"] = live(
            np.where(p.fetch_s > 0, 100 * (1 - p.fetch_exposed_s / p.fetch_s), np.nan)
        )
    out["saved_by_cache_ms"] = live(1e3 * (b.fetch_exposed_s - p.fetch_s))
    out["saved_by_prefetch_ms"] = live(1e3 * (p.fetch_s - p.fetch_exposed_s))
    out["saved_by_comm_ms"] = live(1e3 * (b.comm_exposed_s - p.comm_exposed_s))
    return out


METRIC_NAMES = columns.grid_metrics()  # study/columns.py: the one list of sweep's metric columns


def check_metric(metric: str) -> None:
    if metric not in METRIC_NAMES:
        raise UserError(f"--metric {metric!r}: allowed: {', '.join(METRIC_NAMES)}")


def _numeric_values(table: pd.DataFrame, key: str) -> list:
    """The key's values in the order swept, [] where one is not a number."""
    values = list(dict.fromkeys(table[key].tolist()))
    return values if all(isinstance(v, (int, float, np.number)) for v in values) else []


def _first_flat(table: pd.DataFrame, key: str, keys: list[str], metric_columns: list[str]) -> int:
    """The index of the value of `key` from which every metric stays the same (relative 1e-9) up to the last,
    whatever the other keys (0: the same at every value)."""
    values = list(dict.fromkeys(table[key].tolist()))
    others = [k for k in keys if k != key]
    # metrics[group of the other keys' values, value of key, metric], one vectorized pass (a million points)
    group = table.groupby(others, sort=False).ngroup().to_numpy() if others else np.zeros(len(table), int)
    where = table[key].map({v: i for i, v in enumerate(values)}).to_numpy()
    cube = np.full((group.max() + 1, len(values), len(metric_columns)), np.nan)
    cube[group, where] = table[metric_columns].to_numpy(dtype=float)
    same = np.isclose(cube, cube[:, -1:], rtol=1e-9, atol=0, equal_nan=True).all(axis=2)  # like the last value
    trailing = np.cumprod(same[:, ::-1], axis=1).sum(axis=1)  # values from the last on that are all alike
    return int((len(values) - trailing).max())


def saturation_notes(table: pd.DataFrame, keys: list[str], metric_columns: list[str]) -> list[str]:
    """Where a varied key stops changing the result: for each numeric key with 3 or more values, the value
    from which every metric stays the same (relative 1e-9) up to the last, whatever the other keys; where it is
    the same at every value, why where the grid says it (moves.reason)."""
    notes = []
    for key in keys:
        values = _numeric_values(table, key)
        if len(values) < 3:
            continue
        first_flat = _first_flat(table, key, keys, metric_columns)
        if first_flat == 0:
            why = reason(key, _bounding_row(table))
            notes.append(
                f"{key}: the results are the same at every value swept ({values[0]:g} to {values[-1]:g})"
                + (f": {why}" if why else "")
            )
        elif first_flat < len(values) - 1:
            notes.append(
                f"{key}: the results stop changing from {values[first_flat]:g} on (up to {values[-1]:g}): "
                "something else limits them there"
            )
    return notes


def _bounding_row(table: pd.DataFrame) -> dict[str, float]:
    """The grid's least resident, most fetching, most all-to-all-bound point in one row (moves.reason's columns):
    a reason that holds there holds at every point."""
    cut = table.comm_reduction.to_numpy(dtype=float)
    far = float(np.nanmax(np.abs(cut - 1))) if np.isfinite(cut).any() else math.nan
    return {
        "baseline_hit_rate": float(table.baseline_hit_rate.min()),
        "baseline_fetch_overhead_pct": float(table.baseline_fetch_overhead_pct.max()),
        "baseline_comm_overhead_pct": float(table.baseline_comm_overhead_pct.max()),
        "comm_reduction": 1 + far,
    }


def speedup_notes(table: pd.DataFrame, keys: list[str], metric_columns: list[str]) -> list[str]:
    """For each numeric key with 2 or more values that changes some result but moves the speedup by less than
    moves.MOVES whatever the other keys: by how much at most, and why where the grid says it (moves.reason)."""
    notes = []
    for key in keys:
        values = _numeric_values(table, key)
        finite = table[np.isfinite(table.speedup.to_numpy(dtype=float))]
        if len(values) < 2 or finite[key].nunique() < 2 or _first_flat(table, key, keys, metric_columns) == 0:
            continue  # not numbers, a speedup at one value at most, or nothing changes (saturation_notes says so)
        others = [k for k in keys if k != key]
        by = table.groupby(others, sort=False).speedup if others else None
        spread = float((by.max() - by.min()).max() if by is not None else table.speedup.max() - table.speedup.min())
        if not np.isfinite(spread) or spread >= MOVES:
            continue
        why = reason(key, _bounding_row(table))
        said = "does not change" if spread == 0 else f"moves by at most {spread:.2g} (less than {MOVES:g})"
        notes.append(f"{key}: {said} the speedup, though it changes other results" + (f": {why}" if why else ""))
    return notes


def sweep(setup: Setup, grid: dict[str, np.ndarray], max_step_ms: float | None = None, why: str = "") -> pd.DataFrame:
    """The metrics of one system's headline configuration over the full grid (every combination, the
    first key varying slowest): one vectorized model call per variant. The operating point (each
    variant's strategy, split and batch per GPU, as the study chose them) is held fixed and shown;
    `workload.batch_size_per_gpu` among the varied keys moves both variants' batch. A point whose step
    exceeds the study's `max_step_ms` has no numbers, as in whatif: its note says so (`why`: whatif's
    sentence where the study found no batch within the bound, runner.pick)."""
    keys = list(grid)
    mesh = np.meshgrid(*(grid[k] for k in keys), indexing="ij") if keys else []
    flat = {k: m.ravel() for k, m in zip(keys, mesh, strict=True)}
    out = metrics(setup, flat)  # config paths replace the value, *_factor inputs multiply the catalog's
    n = len(next(iter(flat.values()))) if flat else 1  # no model input varied: the operating point itself
    shown = {k: [CHOICES[k][int(c)] for c in v] if k in CHOICES else v for k, v in flat.items()}
    df = pd.DataFrame(
        {
            "system_id": setup.system.id,
            "strategy": setup.strategy,
            "split": f"{setup.ep}x{setup.system.count // setup.ep}",
            "baseline_batch": setup.baseline["batch_size_per_gpu"],
            "prophet_batch": setup.prophet["batch_size_per_gpu"],
            **shown,
        },
        index=range(n),
    )
    if "workload.batch_size_per_gpu" in flat:  # the varied batch is both variants'
        df = df.drop(columns=["baseline_batch", "prophet_batch"])
    for metric in METRIC_NAMES:
        df[metric] = np.broadcast_to(np.asarray(out[metric], dtype=float), (n,))
    df["note"] = sweep_notes(setup, flat, df, n)
    return step_bound(df, max_step_ms, why)


def within_bound(out: dict[str, np.ndarray], max_step_ms: float | None, metric: str) -> np.ndarray:
    """`metric` of metrics() where both variants' steps are within `max_step_ms`, NaN beyond (as the study
    keeps no configuration beyond the bound: whatif and sweep show none there)."""
    y = np.asarray(out[metric], dtype=float)
    if max_step_ms is None:
        return y
    steps = [np.nan_to_num(np.asarray(out[f"{v}_step_ms"], dtype=float), nan=-np.inf) for v in ("baseline", "prophet")]
    return np.where((steps[0] > max_step_ms) | (steps[1] > max_step_ms), np.nan, y)


def step_bound(df: pd.DataFrame, max_step_ms: float | None, why: str = "") -> pd.DataFrame:
    """Points whose baseline or Prophet step exceeds `max_step_ms` lose their numbers (the study keeps no
    configuration beyond the bound), their note saying so: `why` where given, else the step at this point."""
    if max_step_ms is None:
        return df
    steps = df[["baseline_step_ms", "prophet_step_ms"]].to_numpy(dtype=float)
    over = (np.nan_to_num(steps, nan=-np.inf) > max_step_ms).any(axis=1) & (df.note == "").to_numpy()
    if not over.any():
        return df
    df = df.copy()
    slowest = np.nanmax(steps[over], axis=1)  # each row over the bound has a finite step
    df.loc[over, "note"] = [
        why or f"no batch meets max_step_ms {max_step_ms:g} (the step at this point's batch takes {t:.3g} ms)"
        for t in slowest
    ]
    df.loc[over, list(METRIC_NAMES)] = np.nan
    return df


def sweep_notes(setup: Setup, flat: dict[str, np.ndarray], df: pd.DataFrame, n: int) -> list[str]:
    """Per grid point: "" where both variants have numbers, else why not (model.why_infeasible of that
    point's memory terms: which term overflows and by how much)."""
    from prophet_model import physics as m
    from prophet_model.study.sensitivity import scenario

    bad = ~(
        np.isfinite(df.baseline_tokens_per_s.to_numpy(float)) & np.isfinite(df.prophet_tokens_per_s.to_numpy(float))
    )
    notes = [""] * n
    if not bad.any():
        return notes
    terms = {k: np.broadcast_to(v, (n,))[bad] for k, v in m.memory_terms(scenario(setup.baseline, flat)).items()}
    stacked = np.column_stack(list(terms.values()))
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)  # one sentence per distinct point
    said = [
        m.why_infeasible(**dict(zip(terms, map(float, u), strict=True))) or "the model gives no finite figure"
        for u in unique
    ]
    for i, j in zip(np.flatnonzero(bad), np.ravel(inverse), strict=True):
        notes[i] = said[j]
    return notes


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _yaml(value: object) -> str:
    return "true" if value is True else "false" if value is False else str(value)


@dataclass
class Sweep:
    """A sweep's table (one row per grid point, the varied keys in `keys`' order after the operating
    point's columns), and the last study run and its operating point (what a plot's title names)."""

    table: pd.DataFrame
    keys: list[str]
    setup: Setup
    study: Study


def sweep_grid(question: Question, items: list[str], raw: dict, say: Callable[[str], None] = _stderr) -> Sweep:
    """The metrics over every combination of the `--vary` items (KEY=VALUES): the model's inputs in one
    vectorized call per study run, each combination of configuration keys a run of the study. `raw`: the
    configuration as read (which keys it has); `say`: notes for people (estimates, adapted systems, points
    without numbers, keys that stop changing the result)."""
    vector, config = parse_vary(items, raw)
    size = math.prod(len(v) for v in [*vector.values(), *config.values()])
    if size > MAX_SWEEP:
        raise UserError(f"the grid has {size:,} points; allowed: at most {MAX_SWEEP:,} (fewer values)")
    combos = list(itertools.product(*config.values()))
    if len(combos) > MAX_STUDY_RUNS:
        raise UserError(
            f"{len(combos):,} combinations of configuration keys ({', '.join(config)}), each a run of the "
            f"study; allowed: at most {MAX_STUDY_RUNS} (fewer values, or the model's inputs: "
            "python -m prophet_model sweep --help)"
        )
    seconds = size * SECONDS_PER_POINT
    if seconds > LONG_S:  # one vectorized call per study run: said before, as runner says a long study
        say(f"note: {size:,} points, estimated time: {duration(seconds)} (fewer values: shorter)")
    frames, told, setup, study = [], set(), None, None
    for combo in _progress(combos, say):
        study, sid, notes = question.study([f"{k}={_yaml(v)}" for k, v in zip(config, combo, strict=True)])
        for note in notes:
            if note not in told:
                say(f"note: {note}")
                told.add(note)
        setup, why = operating_point_why(study, sid)
        limit = study.config.workload.max_step_ms
        table = sweep(setup, vector, limit, why if limit is not None and "max_step_ms" in why else "")
        for i, (k, v) in enumerate(zip(config, combo, strict=True)):
            table.insert(3 + i, k, v)
        frames.append(table)
    table = pd.concat(frames, ignore_index=True)
    keys = [item.partition("=")[0].strip() for item in items]
    values = {**{k: list(v) for k, v in vector.items()}, **config}
    order = np.lexsort([[values[k].index(v) if k in config else 0 for v in table[k]] for k in reversed(keys)])
    table = table.iloc[order].reset_index(drop=True) if config else table
    front = [
        c
        for c in table.columns
        if c not in keys and c in ("system_id", "strategy", "split", "baseline_batch", "prophet_batch")
    ]
    table = table[[*front, *keys, *(c for c in table.columns if c not in front and c not in keys)]]
    blank = int((table.note != "").sum())
    if blank:  # a result, not an error: the note column says why for each point
        say(
            f"{blank} of {len(table)} points not evaluated (their note column says why, e.g. "
            f"{table.note[table.note != ''].iloc[0]})"
        )
    for note in saturation_notes(table, keys, [c for c in METRIC_NAMES if c in table.columns]):
        say(f"note: {note}")
    for note in speedup_notes(table, keys, [c for c in METRIC_NAMES if c in table.columns]):
        say(f"note: {note}")
    return Sweep(table, keys, setup, study)


def _progress(combos: list[tuple], say: Callable[[str], None]) -> Iterator[tuple]:
    """The combinations, each a run of the study; after the first, where the rest would take longer than
    runner.LONG_S, the estimate is said and a progress bar drawn (standard error only)."""
    import time

    start = time.perf_counter()
    for i, combo in enumerate(combos):
        if i == 1:
            left = (time.perf_counter() - start) * (len(combos) - 1)
            if left > LONG_S or sys.stderr.isatty():
                if left > LONG_S:
                    say(
                        f"note: {len(combos):,} runs of the study, one per combination of "
                        f"configuration values: about {duration(left)} more"
                    )
                from tqdm import tqdm

                yield from tqdm(
                    combos[1:],
                    desc="study runs",
                    unit="run",
                    file=sys.stderr,
                    leave=False,
                    initial=1,
                    total=len(combos),
                )
                return
        yield combo
