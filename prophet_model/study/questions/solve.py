"""`sweep` and `solve`: a researcher's question about any system (a configured one, changed by --gpu,
--count, --interconnect, or one given by those alone), any catalog model, one strategy or the best, and
fixed --set overrides, over ranges of inputs (sweep) or for the value that reaches a target (solve)."""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from prophet_model.errors import UserError
from prophet_model.study.config import Study
from prophet_model.study.questions import grid as g
from prophet_model.study.sensitivity import Setup
from prophet_model.study.size import LONG_S, duration

MAX_SWEEP = 2_000_000  # points; a larger grid would need several GB of memory
SECONDS_PER_POINT = 7e-5  # a sweep's point: model, notes and CSV (100,000 points in about 7 s on one core)
MAX_STUDY_RUNS = 200  # combinations of configuration keys (each re-runs the study, about half a second)


def question_study(args: argparse.Namespace, extra: list[str] | None = None) -> tuple[Study, str, list[str]]:
    """(the study with the question's changes, the system's id, notes on what was adapted)."""
    from prophet_model.study.questions.overrides import CUSTOM_ID, changed_study

    if args.count is not None and args.count < 1:
        raise UserError(f"--count {args.count}: allowed: a whole number >= 1")
    sets = [*args.sets, *(extra or [])]
    _, after, notes = changed_study(
        Path(args.config), args.system, sets, args.gpu, args.model, args.interconnect, args.count, args.strategy
    )
    return after, args.system or CUSTOM_ID, notes


def operating_point(study: Study, system_id: str) -> Setup:
    """The system's headline configuration as the study chooses it (its strategy, split and batch)."""
    return operating_point_why(study, system_id)[0]


def operating_point_why(study: Study, system_id: str) -> tuple[Setup, str]:
    """(operating_point, why its strategy has no numbers: whatif's note, e.g. that no batch meets
    workload.max_step_ms; "" where it has numbers)."""
    from prophet_model.study.runner import run_study
    from prophet_model.study.sensitivity import setups

    results, failures = run_study(study, [system_id])
    if failures:
        raise UserError(f"{system_id}: the model failed: {failures[system_id]}")
    setup = setups(results, evaluated_only=False).get(system_id)  # a system that does not fit: its notes say why
    if setup is None:
        why = "; ".join(dict.fromkeys(f"{r.strategy}: {r.note}" for r in results.comparison.itertuples()))
        raise UserError(f"{system_id}: no strategy of this system can be evaluated ({why})")
    comp = results.comparison
    row = comp[(comp.system_id == system_id) & (comp.strategy == setup.strategy)]
    note = row.note.iloc[0] if len(row) and row.speedup.isna().iloc[0] else ""
    return setup, note if isinstance(note, str) else ""


def _yaml(value: object) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _point(setup: Setup) -> str:
    b, p = setup.baseline["batch_size_per_gpu"], setup.prophet["batch_size_per_gpu"]
    return (
        f"{setup.system.name}, {setup.strategy} {setup.ep}×{setup.system.count // setup.ep}, batch per GPU "
        f"{b:.0f} (baseline) / {p:.0f} (Prophet)"
    )


def run_sweep(args: argparse.Namespace) -> int:
    from prophet_model.commands.scripting import check_new, csv_text, write_new
    from prophet_model.study.questions.grid import sweep
    from prophet_model.study.yaml_io import read_yaml

    if args.plot:  # every option that says where to write, checked before anything is computed or written
        g.check_metric(args.metric)
        plot_format(Path(args.plot))
        check_new(Path(args.plot), args.force, "--plot")
    if args.out:
        check_new(Path(args.out), args.force, "--out")
        if args.plot and Path(args.out).resolve() == Path(args.plot).resolve():
            raise UserError(f"--out and --plot are the same file ({args.out}); allowed: two different files")
    vector, config = g.parse_vary(args.vary, read_yaml(Path(args.config)))
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
        print(f"note: {size:,} points, estimated time: {duration(seconds)} (fewer values: shorter)", file=sys.stderr)
    frames, told, setup, study = [], set(), None, None
    for combo in _progress(combos):
        study, sid, notes = question_study(args, [f"{k}={_yaml(v)}" for k, v in zip(config, combo, strict=True)])
        for note in notes:
            if note not in told:
                print(f"note: {note}", file=sys.stderr)
                told.add(note)
        setup, why = operating_point_why(study, sid)
        limit = study.config.workload.max_step_ms
        table = sweep(setup, vector, limit, why if limit is not None and "max_step_ms" in why else "")
        for i, (k, v) in enumerate(zip(config, combo, strict=True)):
            table.insert(3 + i, k, v)
        frames.append(table)
    table = pd.concat(frames, ignore_index=True)
    keys = [item.partition("=")[0].strip() for item in args.vary]
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
        print(
            f"{blank} of {len(table)} points not evaluated (their note column says why, e.g. "
            f"{table.note[table.note != ''].iloc[0]})",
            file=sys.stderr,
        )
    for note in g.saturation_notes(table, keys, [c for c in g.METRIC_NAMES if c in table.columns]):
        print(f"note: {note}", file=sys.stderr)
    text = csv_text(table)
    if args.out:
        write_new(Path(args.out), text, args.force)
        print(f"wrote {len(table)} rows to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.plot and not table[args.metric].notna().any():
        print(
            f"note: {args.plot} not written: no point of the grid has a {args.metric} (the note column says why)",
            file=sys.stderr,
        )
    elif args.plot:
        title = f"{_point(setup)}; model {study.model.name}"
        save_figure(g.plot(table, keys, args.metric, title), Path(args.plot), args.force)
        print(f"wrote {args.plot} ({args.metric} against {keys[0]})", file=sys.stderr)
    return 0


def _progress(combos: list[tuple]) -> Iterator[tuple]:
    """The combinations, each a run of the study; after the first, where the rest would take longer than
    runner.LONG_S, the estimate is said and a progress bar drawn (standard error only)."""
    import time

    start = time.perf_counter()
    for i, combo in enumerate(combos):
        if i == 1:
            left = (time.perf_counter() - start) * (len(combos) - 1)
            if left > LONG_S or sys.stderr.isatty():
                if left > LONG_S:
                    print(
                        f"note: {len(combos):,} runs of the study, one per combination of "
                        f"configuration values: about {duration(left)} more",
                        file=sys.stderr,
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


# the range `solve` searches when --range is not given, where the allowed values are unbounded or open
SOLVE_RANGES = {
    "prophet.comm_reduction_factor": (1.0, 1e3),
    "workload.batch_size_per_gpu": (1.0, 4096.0),
    "workload.context_length_tokens": (1.0, 1e6),
    "model.num_experts": (1.0, 4096.0),
    "expert_cache.memory_share": (1e-3, 1.0),
    "routing.temporal_reuse": (0.0, 0.999),
}
FACTOR_RANGE = (1e-2, 1e2)


def _range(key: str, text: str | None) -> tuple[float, float]:
    from prophet_model.study.questions.grid import BOUNDS

    if text:
        parts = text.split(":")
        try:
            lo, hi = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
        except ValueError:
            lo = hi = math.nan
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise UserError(f"--range {text!r}: allowed: LOW:HIGH with LOW < HIGH, e.g. 0:1")
        return lo, hi
    if key in SOLVE_RANGES:
        return SOLVE_RANGES[key]
    if key.endswith("_factor"):
        return FACTOR_RANGE
    if key in BOUNDS:
        return BOUNDS[key][0], BOUNDS[key][1]
    raise UserError(f"--vary {key}: a key of the configuration has no default range; allowed: --range LOW:HIGH")


def _crossings(x: np.ndarray, y: np.ndarray) -> list[int]:
    """Indices i where y - 0 changes sign between x[i] and x[i+1] (or y[i] == 0), finite points only."""
    ok = np.isfinite(y)
    out = [i for i in range(len(x) - 1) if ok[i] and ok[i + 1] and (y[i] == 0 or np.sign(y[i]) != np.sign(y[i + 1]))]
    return out + ([len(x) - 1] if ok[-1] and y[-1] == 0 else [])


def _solve(
    f: Callable[[np.ndarray], np.ndarray],
    lo: float,
    hi: float,
    target: float,
    whole: bool,
    points: int,
    rounds: int,
    per_round: int,
) -> tuple[float | None, list[float], np.ndarray, np.ndarray]:
    """(the smallest value where f reaches target, the other crossings, the search grid, f on it)."""
    log = lo > 0 and hi / lo >= 100
    x = np.geomspace(lo, hi, points) if log else np.linspace(lo, hi, points)
    if whole:
        x = np.unique(np.round(x))
    y = f(x) - target
    found = _crossings(x, y)
    answers = []
    for i in found:
        a, b = x[i], x[min(i + 1, len(x) - 1)]
        if y[i] == 0 or a == b:
            answers.append(float(a))
            continue
        for _ in range(rounds):  # refine the bracket per_round-fold per round
            if whole and b - a <= 1:
                break
            fine = np.unique(np.round(np.linspace(a, b, per_round + 1))) if whole else np.linspace(a, b, per_round + 1)
            yf = f(fine) - target
            j = next((k for k in range(len(fine) - 1) if yf[k] == 0 or np.sign(yf[k]) != np.sign(yf[k + 1])), 0)
            a, b = fine[j], fine[j + 1]
            if yf[j] == 0:
                b = a
                break
        answers.append(float(b if whole else 0.5 * (a + b)))
    return (answers[0] if answers else None), answers[1:], x, y + target


def run_solve(args: argparse.Namespace) -> int:
    from prophet_model.study.questions.grid import BOUNDS, CHOICES
    from prophet_model.study.yaml_io import read_yaml

    g.check_metric(args.metric)
    key = args.vary.strip()
    if "=" in key:
        raise UserError(
            f"--vary {key!r}: solve takes the key alone (it finds the value); allowed: e.g. --vary "
            "prophet.prediction_accuracy [--range 0:1]"
        )
    if key in CHOICES:
        raise UserError(f"--vary {key}: takes names ({', '.join(CHOICES[key])}), not numbers; allowed: sweep it")
    if not math.isfinite(args.target):
        raise UserError(f"--target {args.target}: allowed: a finite number")
    lo, hi = _range(key, args.range)
    study, sid, notes = question_study(args)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    setup, why = operating_point_why(study, sid)
    limit = study.config.workload.max_step_ms
    if key in BOUNDS and not args.rerun:
        whole = BOUNDS[key][4]
        blo, bhi, lo_in, hi_in, _ = BOUNDS[key]
        if lo < blo or hi > bhi or (lo == blo and not lo_in) or (hi == bhi and not hi_in):
            raise UserError(f"--range {lo:g}:{hi:g} leaves the allowed values of {key}; allowed: {g._allowed(key)}")

        def f(x: np.ndarray) -> np.ndarray:
            return g.within_bound(g.metrics(setup, {key: x}), limit, args.metric) * np.ones_like(x)

        value, others, x, y = _solve(f, lo, hi, args.target, whole, 4001, 6, 64)
        how = f"operating point held: {_point(setup)}"
    else:
        try:
            g._check_config_key(key, read_yaml(Path(args.config)))  # a key of the configuration, else a clear error
        except UserError:
            if key not in BOUNDS:
                raise
            raise UserError(
                f"--rerun {key}: a factor on a catalog value, not a key of the configuration: it is "
                "evaluated at the held operating point only; allowed: without --rerun"
            ) from None
        whole = isinstance(_current(study, key), int)

        def f(x: np.ndarray) -> np.ndarray:  # the study re-run at each value (its operating point searched again)
            out = []
            for v in x:
                s, _, _ = question_study(args, [f"{key}={int(v) if whole else float(v)!r}"])
                out.append(
                    float(
                        g.within_bound(g.metrics(operating_point(s, sid)), s.config.workload.max_step_ms, args.metric)
                    )
                )
            return np.array(out)

        value, others, x, y = _solve(f, lo, hi, args.target, whole, 11, 24, 2)
        how = f"the study re-run at each value; at the configured value: {_point(setup)}"
    shown = f"{value:.0f}" if whole and value is not None else f"{value:.6g}" if value is not None else ""
    if value is not None:
        also = f" (also at {', '.join(f'{v:.6g}' for v in others)})" if others else ""
        print(f"{key} = {shown} gives {args.metric} {args.target:g}{also}; {how}")
        return 0
    ok = np.isfinite(y)
    if not ok.any():
        print(
            f"unreachable: the model gives no {args.metric} for {key} in {lo:g} to {hi:g} ({how}"
            + (f"; {why})" if why else ")")
        )
        return 0
    i_max, i_min = int(np.nanargmax(np.where(ok, y, -np.inf))), int(np.nanargmin(np.where(ok, y, np.inf)))
    if np.isclose(y[i_max], y[i_min], rtol=1e-9, atol=0):
        print(
            f"unreachable: {args.metric} is {y[i_max]:.6g} whatever {key} in {lo:g} to {hi:g} (it does not move "
            f"this metric here; {how})"
        )
        return 0
    if args.target > y[i_max]:
        print(
            f"unreachable: {args.metric} is at most {y[i_max]:.6g} at {key} = {x[i_max]:.6g} (searched {lo:g} to "
            f"{hi:g}; {how})"
        )
    else:
        print(
            f"unreachable: {args.metric} is at least {y[i_min]:.6g} at {key} = {x[i_min]:.6g} (searched {lo:g} "
            f"to {hi:g}; {how})"
        )
    return 0


def _current(study: Study, key: str) -> object:
    """The configured value of a dotted configuration key (None where it cannot be read simply)."""
    node: object = study.config.model_dump()
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def save_figure(fig, path, force: bool) -> None:
    """Write the figure to `path` (.png or .pdf) as scripting.write_new writes a file: never over an
    existing one without --force."""
    import io

    from prophet_model.commands.scripting import write_new

    suffix = plot_format(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=suffix, metadata={"CreationDate": None} if suffix == "pdf" else None)
    write_new(path, buf.getvalue(), force, "--plot")


def plot_format(path: Path) -> str:
    """The figure format of a --plot file name (png or pdf), else a UserError."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf"):
        raise UserError(f"--plot {path}: allowed: a file name ending in .png or .pdf")
    return suffix
