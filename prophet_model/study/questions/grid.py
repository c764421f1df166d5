"""The inputs of `sweep` and `solve`: which keys may vary and how their values are written (lists,
ranges `a:b:step`, `log:a:b:n`), read into the values of a grid (`parse_vary`).

Two kinds of key: the model's vectorized inputs (the registry, study/inputs.py: one model call for a whole
grid, around the operating point the study chose) and any other key of the configuration that `whatif
--set` accepts (the study re-run for each value, its operating point searched again)."""

from __future__ import annotations

import copy
import math

import numpy as np

from prophet_model.errors import UserError
from prophet_model.study import inputs

RANGE_HELP = "V1,V2,... or a range a:b:step (b included) or log:a:b:n (n values, evenly spaced in log)"
MAX_RANGE = 100_000  # values one range may expand to

# allowed values of each sweepable input (study/inputs.py): {key: (low, high, low inclusive, high inclusive,
# whole numbers)}, and the inputs that take names, in the order of their Scenario codes (cache.POLICIES)
BOUNDS: dict[str, tuple[float, float, bool, bool, bool]] = inputs.bounds_table()
CHOICES: dict[str, tuple[str, ...]] = inputs.choices()


def allowed(name: str) -> str:
    return inputs.get(name).allowed()


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


def check_config_key(key: str, raw: dict | None) -> None:
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
            for part in parts:
                if part not in CHOICES[key]:
                    raise UserError(f"--vary {key}: {part!r} is not allowed; allowed: {allowed(key)}")
            vector[key] = np.array([float(CHOICES[key].index(p)) for p in parts])  # the Scenario codes
            continue
        if key not in BOUNDS:
            check_config_key(key, raw)
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
                raise UserError(f"--vary {key}: {v:g} is not allowed; allowed: {allowed(key)}")
        vector[key] = np.array(numbers, dtype=float)
    if not vector and not config:
        raise UserError(f"this command needs at least one --vary KEY={RANGE_HELP}")
    return vector, config
