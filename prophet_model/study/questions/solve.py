"""`solve`: the value of one input that gives a target metric, or how close it gets. A model input is
searched at the held operating point (one vectorized call per refinement); any other key of the
configuration with the study re-run at each value (its operating point searched again)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from prophet_model.errors import UserError
from prophet_model.study import inputs
from prophet_model.study.inversion import solve_range
from prophet_model.study.questions.grid import BOUNDS, CHOICES, allowed, check_config_key
from prophet_model.study.questions.moves import reason
from prophet_model.study.questions.point import Question, current, describe, operating_point, operating_point_why
from prophet_model.study.questions.sweep import check_metric, metrics, within_bound


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def search_range(key: str, text: str | None) -> tuple[float, float]:
    if text:
        parts = text.split(":")
        try:
            lo, hi = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
        except ValueError:
            lo = hi = math.nan
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise UserError(f"--range {text!r}: allowed: LOW:HIGH with LOW < HIGH, e.g. 0:1")
        return lo, hi
    default = inputs.solve_range(key)
    if default is not None:
        return default
    raise UserError(f"--vary {key}: a key of the configuration has no default range; allowed: --range LOW:HIGH")


def solve(
    question: Question,
    metric: str,
    target: float,
    vary: str,
    span: str | None = None,
    rerun: bool = False,
    say: Callable[[str], None] = _stderr,
) -> str:
    """The answer, in one line: `vary`'s value where `metric` reaches `target` (the smallest, the others
    named), else why it is unreachable (the most or least the metric gets, or that it does not move).
    `span`: LOW:HIGH to search (default: the input's allowed values); `rerun`: the study re-run at each value
    even for a model input; `say`: notes for people (systems adapted to the question)."""
    from prophet_model.study.yaml_io import read_yaml

    check_metric(metric)
    key = vary.strip()
    if "=" in key:
        raise UserError(
            f"--vary {key!r}: solve takes the key alone (it finds the value); allowed: e.g. --vary "
            "prophet.prediction_accuracy [--range 0:1]"
        )
    if key in CHOICES:
        raise UserError(f"--vary {key}: takes names ({', '.join(CHOICES[key])}), not numbers; allowed: sweep it")
    if not math.isfinite(target):
        raise UserError(f"--target {target}: allowed: a finite number")
    lo, hi = search_range(key, span)
    study, sid, notes = question.study()
    for note in notes:
        say(f"note: {note}")
    setup, why = operating_point_why(study, sid)
    limit = study.config.workload.max_step_ms
    if key in BOUNDS and not rerun:
        whole = BOUNDS[key][4]
        blo, bhi, lo_in, hi_in, _ = BOUNDS[key]
        if lo < blo or hi > bhi or (lo == blo and not lo_in) or (hi == bhi and not hi_in):
            raise UserError(f"--range {lo:g}:{hi:g} leaves the allowed values of {key}; allowed: {allowed(key)}")

        def f(x: np.ndarray) -> np.ndarray:
            return within_bound(metrics(setup, {key: x}), limit, metric) * np.ones_like(x)

        value, others, x, y = solve_range(f, lo, hi, target, whole, 4001, 6, 64)
        how = f"operating point held: {describe(setup)}"
    else:
        try:
            check_config_key(key, read_yaml(Path(question.config)))  # a key of the configuration, else a clear error
        except UserError:
            if key not in BOUNDS:
                raise
            raise UserError(
                f"--rerun {key}: a factor on a catalog value, not a key of the configuration: it is "
                "evaluated at the held operating point only; allowed: without --rerun"
            ) from None
        whole = isinstance(current(study, key), int)

        def f(x: np.ndarray) -> np.ndarray:  # the study re-run at each value (its operating point searched again)
            out = []
            for v in x:
                s, _, _ = question.study([f"{key}={int(v) if whole else float(v)!r}"])
                out.append(float(within_bound(metrics(operating_point(s, sid)), s.config.workload.max_step_ms, metric)))
            return np.array(out)

        value, others, x, y = solve_range(f, lo, hi, target, whole, 11, 24, 2)
        how = f"the study re-run at each value; at the configured value: {describe(setup)}"
    shown = f"{value:.0f}" if whole and value is not None else f"{value:.6g}" if value is not None else ""
    if value is not None:
        also = f" (also at {', '.join(f'{v:.6g}' for v in others)})" if others else ""
        return f"{key} = {shown} gives {metric} {target:g}{also}; {how}"
    ok = np.isfinite(y)
    if not ok.any():
        return f"unreachable: the model gives no {metric} for {key} in {lo:g} to {hi:g} ({how}" + (
            f"; {why})" if why else ")"
        )
    i_max, i_min = int(np.nanargmax(np.where(ok, y, -np.inf))), int(np.nanargmin(np.where(ok, y, np.inf)))
    if np.isclose(y[i_max], y[i_min], rtol=1e-9, atol=0):
        why = reason(key, {k: float(np.ravel(v)[0]) for k, v in metrics(setup).items()})
        return (
            f"unreachable: {metric} is {y[i_max]:.6g} whatever {key} in {lo:g} to {hi:g} (it does not move "
            f"this metric here{': ' + why if why else ''}; {how})"
        )
    if target > y[i_max]:
        return (
            f"unreachable: {metric} is at most {y[i_max]:.6g} at {key} = {x[i_max]:.6g} (searched {lo:g} to "
            f"{hi:g}; {how})"
        )
    return (
        f"unreachable: {metric} is at least {y[i_min]:.6g} at {key} = {x[i_min]:.6g} (searched {lo:g} to {hi:g}; {how})"
    )
