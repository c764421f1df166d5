"""The inputs of `sweep` and `solve`: which keys may vary and how their values are written (lists,
ranges `a:b:step`, `log:a:b:n`), the model's metrics at any values of them, and what a grid shows
(where a varied key stops changing the result; a plot of a metric against the first varied key).

Two kinds of key: the model's vectorized inputs (BOUNDS and CHOICES: one model call for a whole
grid, around the operating point the study chose) and any other key of the configuration that `whatif
--set` accepts (the study re-run for each value, its operating point searched again)."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from prophet_model.errors import UserError

if TYPE_CHECKING:
    from prophet_model.study.sensitivity import Setup

RANGE_HELP = "V1,V2,... or a range a:b:step (b included) or log:a:b:n (n values, evenly spaced in log)"
MAX_RANGE = 100_000  # values one range may expand to

# allowed values of each sweepable input: (low, high, low inclusive, high inclusive, whole numbers)
BOUNDS: dict[str, tuple[float, float, bool, bool, bool]] = {
    "prophet.prediction_accuracy": (0.0, 1.0, True, True, False),
    "prophet.comm_reduction_factor": (1.0, math.inf, True, False, False),
    "workload.batch_size_per_gpu": (1.0, 1e6, True, True, True),
    "workload.context_length_tokens": (1.0, 1e8, True, True, True),
    "interconnect_bandwidth_factor": (0.0, math.inf, False, False, False),
    "host_link_bandwidth_factor": (0.0, math.inf, False, False, False),
    "expert_size_factor": (0.0, math.inf, False, False, False),
    "kv_cache_factor": (0.0, math.inf, False, False, False),
    "model.num_experts": (1.0, 1e5, True, True, True),
    "resident_share": (0.0, 1.0, True, True, False),
    "prophet_hit_rate": (0.0, 1.0, True, True, False),
    "prophet_overlap": (0.0, 1.0, True, True, False),
    "routing.zipf_exponent": (0.0, 4.0, True, True, False),
    "routing.temporal_reuse": (0.0, 1.0, True, False, False),
    "routing.inter_layer_affinity": (0.0, 1.0, True, True, False),
    "expert_cache.memory_share": (0.0, 1.0, False, True, False),
}
# inputs that take names: their allowed values, in the order of their Scenario codes (cache.POLICIES)
CHOICES: dict[str, tuple[str, ...]] = {
    "expert_cache.prophet_policy": ("static", "lru", "predicted"),
    "expert_cache.baseline_policy": ("static", "lru"),
}


def _allowed(name: str) -> str:
    if name in CHOICES:
        return ", ".join(CHOICES[name])
    lo, hi, lo_in, hi_in, whole = BOUNDS[name]
    span = f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"
    return ("whole numbers in " if whole else "numbers in ") + span


def _number(text: str, key: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UserError(f"--vary {key}: {what} {text.strip()!r} is not a number; allowed: {RANGE_HELP}") from None
    if not math.isfinite(v):
        raise UserError(f"--vary {key}: {what} {text.strip()!r} is not finite; allowed: finite numbers")
    return v


def expand(key: str, part: str) -> list[float]:
    """One comma-separated part: a number, a:b:step (from a to b inclusive) or log:a:b:n."""
    fields = [f.strip() for f in part.split(":")]
    if len(fields) == 1:
        return [_number(fields[0], key, "the value")]
    if fields[0] == "log":
        if len(fields) != 4:
            raise UserError(f"--vary {key}: {part!r}: allowed: log:a:b:n, e.g. log:0.25:4:5")
        a, b = _number(fields[1], key, "the start"), _number(fields[2], key, "the end")
        n = _number(fields[3], key, "the count")
        if a <= 0 or b <= 0 or n != round(n) or not 2 <= n <= MAX_RANGE:
            raise UserError(
                f"--vary {key}: {part!r}: allowed: log:a:b:n with a, b > 0 and n a whole number in 2..{MAX_RANGE}"
            )
        return [float(f"{v:.12g}") for v in np.geomspace(a, b, int(n))]
    if len(fields) != 3:
        raise UserError(f"--vary {key}: {part!r}: allowed: {RANGE_HELP}")
    a, b, step = (_number(f, key, w) for f, w in zip(fields, ("the start", "the end", "the step"), strict=True))
    if step <= 0 or b < a:
        raise UserError(f"--vary {key}: {part!r}: allowed: a:b:step with a <= b and step > 0")
    n = math.floor((b - a) / step * (1 + 1e-12) + 1e-9) + 1
    if n > MAX_RANGE:
        raise UserError(f"--vary {key}: {part!r} gives {n:,} values; allowed: at most {MAX_RANGE:,} (a larger step)")
    return [float(f"{a + i * step:.12g}") for i in range(n)]


def _check_config_key(key: str, raw: dict | None) -> None:
    """A key of the configuration that `whatif --set` reaches, else a UserError naming the allowed ones."""
    from prophet_model.study.questions.overrides import apply_set

    inputs = ", ".join([*BOUNDS, *CHOICES])
    if raw is None:
        raise UserError(f"--vary {key!r} is not a sweepable input; allowed: {inputs}")
    try:
        apply_set(copy.deepcopy(raw), f"{key}=0")
    except UserError as exc:
        raise UserError(
            f"--vary {key!r} is not a sweepable input; allowed: the model's inputs {inputs}, or a "
            f"key of the configuration ({str(exc).removeprefix(f'--set {key}: ')})"
        ) from None


def parse_vary(items: list[str], raw: dict | None = None) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """['KEY=VALUES', ...] -> ({model input: values}, {config key: values}), in the order given. VALUES:
    RANGE_HELP, or names for the cache policies; a clear UserError for an unknown key or a bad value."""
    vector: dict[str, np.ndarray] = {}
    config: dict[str, list] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not text.strip():
            raise UserError(f"--vary {item!r}: allowed: KEY={RANGE_HELP} (e.g. prophet.prediction_accuracy=0:1:0.1)")
        if key in vector or key in config:
            raise UserError(f"--vary {key!r} given twice; allowed: each input once")
        parts = [p.strip() for p in text.split(",")]
        if key in CHOICES:
            from prophet_model.physics.cache import POLICIES

            for part in parts:
                if part not in CHOICES[key]:
                    raise UserError(f"--vary {key}: {part!r} is not allowed; allowed: {_allowed(key)}")
            vector[key] = np.array([float(POLICIES.index(p)) for p in parts])
            continue
        if key not in BOUNDS:
            _check_config_key(key, raw)
            from prophet_model.study.yaml_io import parse_yaml

            values: list = []
            for part in parts:  # numbers and ranges; anything else as YAML (a name, true/false)
                try:
                    values += [int(v) if v == round(v) and "." not in part else v for v in expand(key, part)]
                except UserError:
                    if ":" in part:
                        raise
                    values.append(parse_yaml(part, f"--vary {key}: the value {part!r}"))
            config[key] = values
            continue
        numbers = [v for part in parts for v in expand(key, part)]
        lo, hi, lo_in, hi_in, whole = BOUNDS[key]
        for v in numbers:
            ok = (v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)
            if not ok or (whole and v != round(v)):
                raise UserError(f"--vary {key}: {v:g} is not allowed; allowed: {_allowed(key)}")
        vector[key] = np.array(numbers, dtype=float)
    if not vector and not config:
        raise UserError(f"this command needs at least one --vary KEY={RANGE_HELP}")
    return vector, config


def metrics(setup: Setup, overrides: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The comparison's metrics at any values of the model's inputs (one vectorized call per variant,
    the operating point held): throughputs, speedup, costs, step times, exposed all-to-all and fetch
    shares, hit rates, the all-to-all and cost reductions, and where Prophet's step time is saved."""
    from prophet_model import physics as m
    from prophet_model.study.sensitivity import _scenario, evaluate

    overrides = overrides or {}
    out = dict(evaluate(setup, overrides))
    r = {
        v: m.evaluate(_scenario(base, overrides))
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


METRIC_NAMES = (
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


def check_metric(metric: str) -> None:
    if metric not in METRIC_NAMES:
        raise UserError(f"--metric {metric!r}: allowed: {', '.join(METRIC_NAMES)}")


def saturation_notes(table: pd.DataFrame, keys: list[str], metric_columns: list[str]) -> list[str]:
    """Where a varied key stops changing the result: for each numeric key with 3 or more values, the value
    from which every metric stays the same (relative 1e-9) up to the last, whatever the other keys."""
    notes = []
    for key in keys:
        values = list(dict.fromkeys(table[key].tolist()))
        if len(values) < 3 or not all(isinstance(v, (int, float, np.number)) for v in values):
            continue
        others = [k for k in keys if k != key]
        # metrics[group of the other keys' values, value of key, metric], one vectorized pass (a million points)
        group = table.groupby(others, sort=False).ngroup().to_numpy() if others else np.zeros(len(table), int)
        where = table[key].map({v: i for i, v in enumerate(values)}).to_numpy()
        cube = np.full((group.max() + 1, len(values), len(metric_columns)), np.nan)
        cube[group, where] = table[metric_columns].to_numpy(dtype=float)
        same = np.isclose(cube, cube[:, -1:], rtol=1e-9, atol=0, equal_nan=True).all(axis=2)  # like the last value
        trailing = np.cumprod(same[:, ::-1], axis=1).sum(axis=1)  # values from the last on that are all alike
        first_flat = int((len(values) - trailing).max())
        if first_flat == 0:
            notes.append(f"{key}: the results are the same at every value swept ({values[0]:g} to {values[-1]:g})")
        elif first_flat < len(values) - 1:
            notes.append(
                f"{key}: the results stop changing from {values[first_flat]:g} on (up to {values[-1]:g}): "
                "something else limits them there"
            )
    return notes


def plot(table: pd.DataFrame, keys: list[str], metric: str, title: str):
    """`metric` against the first varied key, one line per value of the second (further keys at their
    first value): a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = keys[0]
    rest = {k: table[k].iloc[0] for k in keys[2:]}
    sub = table
    for k, v in rest.items():
        sub = sub[sub[k] == v]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=150)
    groups = sub.groupby(keys[1], sort=False) if len(keys) > 1 else [(None, sub)]
    for value, g in groups:
        ax.plot(g[x], g[metric], marker="o", ms=3, label=None if value is None else f"{keys[1]} = {_label(value)}")
    xs = pd.to_numeric(sub[x], errors="coerce")
    if xs.notna().all() and (xs > 0).all() and xs.max() / xs.min() >= 20:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ticks = sorted(set(xs.tolist()))
        if len(ticks) <= 12:  # the values swept, written as numbers
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    import textwrap

    ax.set_title(textwrap.fill(title + "".join(f"; {k} = {_label(v)}" for k, v in rest.items()), 80), fontsize=7)
    if len(keys) > 1:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _label(value: object) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)


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
    from prophet_model.physics.cache import POLICIES

    shown = {k: [POLICIES[int(c)] for c in v] if k in CHOICES else v for k, v in flat.items()}
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
    from prophet_model.study.sensitivity import _scenario

    bad = ~(
        np.isfinite(df.baseline_tokens_per_s.to_numpy(float)) & np.isfinite(df.prophet_tokens_per_s.to_numpy(float))
    )
    notes = [""] * n
    if not bad.any():
        return notes
    terms = {k: np.broadcast_to(v, (n,))[bad] for k, v in m.memory_terms(_scenario(setup.baseline, flat)).items()}
    stacked = np.column_stack(list(terms.values()))
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)  # one sentence per distinct point
    said = [
        m.why_infeasible(**dict(zip(terms, map(float, u), strict=True))) or "the model gives no finite figure"
        for u in unique
    ]
    for i, j in zip(np.flatnonzero(bad), np.ravel(inverse), strict=True):
        notes[i] = said[j]
    return notes
