"""Exact operating points: the per-GPU batch of a configuration as an integer, not a grid point.

The batch grid (system_rows.batch_grid: powers of two, the configured batch, the largest batch that fits and the
largest that keeps every expert resident) brackets the answer; this module finds it exactly:
- under `workload.max_step_ms`, the largest integer batch whose step meets the bound and fits (bisection
  over the integers between the last grid batch that meets it and the first that does not: the step time
  never falls as the batch grows, and fitting in memory is a bound on the batch);
- then the integer batch with the most tokens/s among those that qualify: the best grid batch's brackets
  (to the qualifying grid batches on either side) are searched by integer ternary search, which is exact
  where tokens/s has one peak inside a bracket (the grid holds every batch where the physics changes regime:
  the fit limit and the all-resident knee).

Every configuration of a system advances through its search together: each round is one vectorized model
call for all of them (`Probe`)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from prophet_model.physics import evaluate
from prophet_model.study.scenarios import stack


@dataclass(frozen=True)
class Point:
    """One evaluated batch: step time (ms), tokens/s, whether it fits in memory."""

    step_ms: float
    tokens_per_s: float
    fits: bool


# (configuration index, batch) pairs -> their points, in one model call
Probe = Callable[[Sequence[tuple[int, int]]], Sequence[Point]]
Search = Generator[list[int], list[Point], set[int]]


def _qualifies(p: Point, max_step_ms: float | None) -> bool:
    return p.fits and p.tokens_per_s == p.tokens_per_s and (max_step_ms is None or p.step_ms <= max_step_ms)


def _search(known: dict[int, Point], max_step_ms: float | None) -> Search:
    """One configuration's search; yields the batches it needs evaluated, receives their points, and returns
    the batches to add to its grid (the bound's edge and the best batch; empty when the grid holds them)."""
    grid = set(known)

    def ok(b: int) -> bool:
        return _qualifies(known[b], max_step_ms)

    def ask(batches: list[int]) -> Search:
        batches = [b for b in dict.fromkeys(batches) if b not in known]
        if batches:
            points = yield batches
            known.update(zip(batches, points, strict=True))
        return set()

    if max_step_ms is not None:  # the edge: the largest qualifying integer
        passing = [b for b in known if ok(b)]
        if passing:
            lo = max(passing)
            above = [b for b in known if b > lo]
            hi = min(above) if above else lo
            while hi - lo > 1:
                mid = (lo + hi) // 2
                yield from ask([mid])
                lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    passing = sorted(b for b in known if ok(b))
    if not passing:
        return set()
    best = max(passing, key=lambda b: (known[b].tokens_per_s, -b))
    i = passing.index(best)
    brackets = []
    if i > 0:
        brackets.append((passing[i - 1], best))
    if i + 1 < len(passing):
        brackets.append((best, passing[i + 1]))
    for lo, hi in brackets:  # integer ternary search for the peak inside the bracket
        while hi - lo > 2:
            m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
            yield from ask([m1, m2])
            if known[m1].tokens_per_s < known[m2].tokens_per_s:
                lo = m1 + 1
            else:
                hi = m2 - 1
        yield from ask(list(range(lo, hi + 1)))
    passing = sorted(b for b in known if ok(b))
    best = max(passing, key=lambda b: (known[b].tokens_per_s, -b))
    edge = max(passing)
    return {b for b in (best, edge) if b not in grid}


def exact_batches(grids: Sequence[dict[int, Point]], probe: Probe, max_step_ms: float | None) -> list[set[int]]:
    """The batches to add to each configuration's grid (`grids[i]`: its evaluated batches and their points)
    so that it holds the exact operating point; the searches of all configurations share each model call."""
    searches = {i: _search(dict(g), max_step_ms) for i, g in enumerate(grids)}
    extra: list[set[int]] = [set() for _ in grids]
    wanted: dict[int, list[int]] = {}
    for i, s in list(searches.items()):
        try:
            wanted[i] = next(s)
        except StopIteration as done:
            extra[i] = done.value
            del searches[i]
    while searches:
        pairs = [(i, b) for i in searches for b in wanted[i]]
        points = list(probe(pairs))
        at = 0
        for i in list(searches):
            n = len(wanted[i])
            try:
                wanted[i] = searches[i].send(points[at : at + n])
            except StopIteration as done:
                extra[i] = done.value
                del searches[i]
            at += n
    return extra


def _point(res: Any, i: int) -> Point:
    return Point(1e3 * float(res.step_s[i]), float(res.tokens_per_s[i]), bool(res.feasible[i]))


def exact_cases(
    bases: Sequence[dict],
    cases: Sequence[tuple[int, int]],
    res: Any,
    max_step_ms: float | None,
    model: Callable[[list[dict]], Any] | None = None,
) -> list[tuple[int, int]]:
    """The (configuration, batch) cases to add to a grid's so that each configuration (`bases[c]`, a scenario
    dict without its batch) holds its exact operating point; `res` is the model's result for `cases`; `model`
    evaluates scenario dicts (None: physics.evaluate of their stack)."""
    model = model or (lambda rows: evaluate(stack(rows)))
    known: list[dict[int, Point]] = [{} for _ in bases]
    for i, (c, b) in enumerate(cases):
        known[c][b] = _point(res, i)

    def probe(pairs: Sequence[tuple[int, int]]) -> list[Point]:
        r = model([{**bases[c], "batch_size_per_gpu": float(b)} for c, b in pairs])
        return [_point(r, i) for i in range(len(pairs))]

    extra = exact_batches(known, probe, max_step_ms)
    return [(c, b) for c in range(len(bases)) for b in sorted(extra[c])]
