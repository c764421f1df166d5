"""The Monte Carlo's operating points: every draw re-chooses each side's strategy, split, attention TP degree
and batch, as the study does (runner.pick: the most tokens/s among the feasible candidates within
workload.max_step_ms), vectorized over the draws.

Each side is held at its chosen options (weight and KV precision, cache policy, two-batch overlap: those of its
headline row, study/scenarios.py OPTIONS): the draws search again its strategy, split, degree and batch, not its
options (the study's option search is done once, in the runner).

A side's candidates are the study's own: every configuration it evaluated (strategy, split, TP degree) at
every batch it evaluated (the grid and the exact integer operating points of study/operating_point.py) and,
with batch_search, each configuration's two batches where the physics changes regime, computed per draw
(the largest batch that fits, physics.max_batch, and the largest that keeps every expert resident,
physics.max_batch_all_resident): a KV cache 5% larger moves those batches, and the draw follows them.
Without batch_search the batch is the configured one (or the draw's, where it is an uncertain input).

Evaluating every candidate at every draw would cost tens of model evaluations per draw, so the search is
screened: every candidate is evaluated at an even subsample of the draws and at the configured point; those
that are best in none of them are dropped; the rest are evaluated at every draw in one model call. A draw
where none of the kept candidates qualifies is searched again over every candidate (so that a draw is
dropped only when no candidate of the study fits in memory or meets max_step_ms)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from prophet_model import physics as m
from prophet_model.study.runner import StudyResults
from prophet_model.study.scenarios import concatenated, row_options, scenario_dict, searched_sets
from prophet_model.study.size import MAX_BATCH

SCREEN = 512  # draws of the screening subsample
# batch rules computed per draw: the largest batch that fits, the all-resident knee and the batches just past
# it (where the experts the cache leaves out are few, and more sequences still pay)
TOP, KNEE = -1, -2
PAST_KNEE = (-3, -4)
RULES = (TOP, KNEE, *PAST_KNEE)


@dataclass(frozen=True)
class Side:
    """One variant's candidates: configuration Scenario dicts, and (configuration, batch or rule) pairs."""

    bases: list[dict[str, float]]
    cases: list[tuple[int, int]]
    search: bool  # batch_search: the batch is the candidate's; else the configured (or drawn) one


@dataclass
class Best:
    """Per draw: the best qualifying candidate's tokens/s (NaN: none) and why none qualifies."""

    tokens_per_s: np.ndarray
    no_fit: np.ndarray  # no candidate fits in GPU memory
    too_slow: np.ndarray  # some fit, none meets max_step_ms


def chosen_options(results: StudyResults, system_id: str, variant: str) -> dict[str, str]:
    """The options a system's side runs at: its headline row's (the first searched set where it has none)."""
    head = results.headline
    rows = head[head.system_id == system_id] if head is not None and not head.empty else head
    if rows is not None and not rows.empty:
        options = row_options(rows.iloc[0], f"{variant}_")
        if "nan" not in options.values():
            return options
    study = results.study
    return searched_sets(study, variant == "prophet", study.model_of(study.system(system_id)))[0]


def side(results: StudyResults, system_id: str, variant: str) -> Side:
    """The candidates of one system's variant, at its chosen options: the configurations and batches of the
    study's rows."""
    study = results.study
    system = study.system(system_id)
    search = study.config.workload.batch_search
    rows = results.rows
    rows = rows[(rows.role == "system") & (rows.system_id == system_id) & (rows.variant == variant) & (rows.ep > 0)]
    rows = rows[rows.attention_tp == rows.attention_tp]  # a split no TP degree divides has no numbers
    options = chosen_options(results, system_id, variant)
    bases: list[dict[str, float]] = []
    index: dict[tuple, int] = {}
    batches: dict[int, list[int]] = {}
    for r in rows.itertuples():
        key = (int(r.ep), int(r.attention_tp))  # the scenario depends on the expert group and the degree
        if key not in index:
            index[key] = len(bases)
            bases.append(
                scenario_dict(
                    study,
                    system.gpu_key,
                    system.count,
                    key[0],
                    system.interconnect,
                    variant == "prophet",
                    study.model_of(system),
                    attention_tp=key[1],
                    options=options,
                )
            )
            batches[index[key]] = list(RULES) if search else []
        if search and int(r.batch_size_per_gpu) not in batches[index[key]]:
            batches[index[key]].append(int(r.batch_size_per_gpu))
    if not search:
        batches = {c: [study.config.workload.batch_size_per_gpu] for c in batches}
    return Side(bases, [(c, b) for c in range(len(bases)) for b in batches[c]], search)


Scenarios = Callable[[dict[str, float], dict[str, np.ndarray]], m.Scenario]


def stack_cases(side_: Side, cases: list[int], draws: dict[str, np.ndarray], k: int, scenario: Scenarios) -> m.Scenario:
    """The cases (indices into side_.cases) at the `k` draws, one after another, as one Scenario."""
    per = _cases(side_, cases, draws, scenario)
    return concatenated(per, [k] * len(per))  # one study's cases: one set of traces


def _cases(side_: Side, cases: list[int], draws: dict[str, np.ndarray], scenario: Scenarios) -> list[m.Scenario]:
    """The cases (indices into side_.cases) at the draws, each a Scenario (a configuration's scenario and rule
    batches made once for all its cases)."""
    configs: dict[int, tuple[m.Scenario, dict[int, np.ndarray]]] = {}
    return [_case(side_, i, draws, scenario, configs) for i in cases]


def _case(
    side_: Side,
    i: int,
    draws: dict[str, np.ndarray],
    scenario: Scenarios,
    configs: dict[int, tuple[m.Scenario, dict[int, np.ndarray]]] | None = None,
) -> m.Scenario:
    """Case `i` of the side at the draws: its configuration with its batch (a rule's computed per draw);
    `configs` keeps each configuration's scenario and rule batches for the next case of the same one."""
    c, b = side_.cases[i]
    configs = {} if configs is None else configs
    if c not in configs:
        configs[c] = (scenario(side_.bases[c], draws), {})
    s, rules = configs[c]
    if not side_.search:
        return s
    if b in RULES:
        if not rules:  # the largest batch that fits and the all-resident knee, once per configuration
            top = np.minimum(m.max_batch(s), MAX_BATCH)
            knee = m.max_batch_all_resident(s)
            rules.update({r: np.maximum(1.0, top if r == TOP else np.minimum(knee + (KNEE - r), top)) for r in RULES})
        return replace(s, batch_size_per_gpu=rules[b])
    return replace(s, batch_size_per_gpu=np.asarray(b, dtype=float))


def _evaluate(
    side_: Side, cases: list[int], draws: dict[str, np.ndarray], k: int, scenario: Scenarios, max_step_ms: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(tokens/s of each case at each draw, -inf where it does not qualify; whether it fits), each cases x k.
    Few draws, or skewed routing: the cases stacked into one model call (the cache's hit rates are solved once for
    all of them: physics/step.evaluate); many draws (a chunk of the model's or more) under uniform routing: one call
    per case, each already as long as a call needs to be (the same numbers, without copying the draws once per
    case, and each case's own inputs stay scalars)."""
    keep = ("tokens_per_s", "feasible", "step_s")
    per = _cases(side_, cases, draws, scenario)
    if k >= m.CHUNK and not any(np.any(m.skewed_routing(s)) for s in per):
        parts = [m.evaluate(s, keep=keep) for s in per]
        tps, fits, step = (np.stack([np.broadcast_to(getattr(r, f), (k,)) for r in parts]) for f in keep)
    else:
        res = m.evaluate(concatenated(per, [k] * len(per)), keep=keep)  # one study's cases: one set of traces
        tps, fits, step = (np.broadcast_to(getattr(res, f), (len(cases) * k,)).reshape(len(cases), k) for f in keep)
    ok = fits & np.isfinite(tps)
    if max_step_ms is not None:
        ok &= 1e3 * step <= max_step_ms
    return np.where(ok, tps, -np.inf), fits


def _take(d: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.broadcast_to(v, (idx.size,)) if np.ndim(v) == 0 else v[idx] for k, v in d.items()}


def best(
    side_: Side,
    draws: dict[str, np.ndarray],
    n: int,
    point: dict[str, np.ndarray],
    scenario: Scenarios,
    max_step_ms: float | None,
) -> Best:
    """Per draw, the side's best qualifying candidate: every candidate is evaluated at SCREEN draws and the
    configured `point`; those best at one of them are evaluated at every draw (one model call); every
    candidate again at the draws where none of those qualifies but something fits."""
    everything = list(range(len(side_.cases)))
    if not everything:
        return Best(np.full(n, np.nan), np.ones(n, bool), np.zeros(n, bool))
    screen = np.unique(np.linspace(0, n - 1, min(n, SCREEN)).astype(int))
    sample = {
        k: np.concatenate([np.broadcast_to(v, (n,))[screen], np.broadcast_to(point[k], (1,))]) for k, v in draws.items()
    }
    tps, _ = _evaluate(side_, everything, sample, screen.size + 1, scenario, max_step_ms)
    kept = _cover(tps)
    top = _evaluate(side_, kept, draws, n, scenario, max_step_ms)[0].max(axis=0)
    fit = _fits(side_, draws, n, scenario)
    again = np.flatnonzero(~np.isfinite(top) & fit)
    if again.size:  # something fits, but no kept candidate qualifies: every candidate at those draws
        top[again] = _evaluate(side_, everything, _take(draws, again), again.size, scenario, max_step_ms)[0].max(axis=0)
    found = np.isfinite(top)
    return Best(np.where(found, top, np.nan), ~fit, ~found & fit)


def _cover(tps: np.ndarray) -> list[int]:
    """The fewest cases (greedily) that give every screened draw its best tokens/s (ties: any of those that
    reach it; the first case where nothing qualifies)."""
    live = np.isfinite(tps).any(axis=0)
    reach = tps[:, live] >= tps[:, live].max(axis=0)  # cases x draws: gives that draw its best
    kept: list[int] = []
    while reach.shape[1]:
        c = int(np.argmax(reach.sum(axis=1)))  # the first of those that cover the most
        kept.append(c)
        reach = reach[:, ~reach[c]]
    return sorted(kept) or [0]


def _fits(side_: Side, draws: dict[str, np.ndarray], n: int, scenario: Scenarios) -> np.ndarray:
    """Per draw, whether some candidate fits in GPU memory (memory alone: no model evaluation): a batch of
    one with batch_search (every grid starts there), else the configured or drawn batch."""
    out = np.zeros(n, bool)
    for base in side_.bases:
        s = scenario(base, draws)
        out |= np.broadcast_to(m.max_batch(s) >= (1.0 if side_.search else s.batch_size_per_gpu), (n,))
    return out
