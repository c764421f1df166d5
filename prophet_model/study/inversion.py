"""The one inversion of the model: the value of an input X at which a metric reaches a target T. The claims' "what
it would take" (study/claims.py) and `solve` both ask it.

The metric f(x) - T on a grid of x (one vectorized model call); a crossing is a grid point where it is exactly 0
or a pair of neighbours with finite values of opposite sign. Each crossing's bracket is refined `per_round`-fold
per round (one vectorized call each) until it is `rtol` wide (relative), one whole number wide, or `rounds` are
done; a grid point where f - T is exactly 0 is a root as it stands. The root: the bracket's midpoint (a whole-
number input: its upper end)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Metric = Callable[[np.ndarray], np.ndarray]
RTOL = 1e-12  # a bracket this narrow (relative) is not refined further


@dataclass(frozen=True)
class Solution:
    """`roots`: the refined roots, in grid order (only the one nearest `near` where it was given); `x`, `y`: the
    grid and f on it (for saying how close an unreachable target gets)."""

    roots: list[float]
    x: np.ndarray
    y: np.ndarray


def grid(low: float, high: float, points: int, whole: bool = False) -> np.ndarray:
    """`points` values from low to high, evenly spaced in log where low > 0 and high / low >= 100, else linearly;
    a whole-number input: rounded, each once."""
    x = np.geomspace(low, high, points) if low > 0 and high / low >= 100 else np.linspace(low, high, points)
    return np.unique(np.round(x)) if whole else x


def crossings(y: np.ndarray) -> list[int]:
    """Indices i where y (f - T on the grid) is exactly 0, or changes sign from i to i + 1 (both finite, y[i + 1]
    not 0: a zero is a crossing of its own)."""
    ok = np.isfinite(y)
    zero = ok & (y == 0)
    turn = np.zeros(len(y), dtype=bool)
    turn[:-1] = ok[:-1] & ok[1:] & (np.sign(y[:-1]) != np.sign(y[1:])) & (y[1:] != 0)  # a zero is its own
    return np.flatnonzero(zero | turn).tolist()


def refine(
    f: Metric,
    a: float,
    b: float,
    target: float,
    rounds: int = 6,
    per_round: int = 64,
    whole: bool = False,
    rtol: float = RTOL,
) -> float:
    """The root of f - target in the bracket [a, b], refined `per_round`-fold per round, one call of f each."""
    for _ in range(rounds):
        if (whole and b - a <= 1) or abs(b - a) <= rtol * max(abs(b), 1e-12):
            break
        fine = np.linspace(a, b, per_round + 1)
        fine = np.unique(np.round(fine)) if whole else fine
        yf = np.asarray(f(fine), dtype=float) - target
        zero = np.flatnonzero(yf == 0)
        if zero.size:  # a point of the fine grid is a root as it stands
            return float(fine[zero[0]])
        turn = np.flatnonzero(np.sign(yf[:-1]) != np.sign(yf[1:]))
        j = int(turn[0]) if turn.size else 0
        a, b = fine[j], fine[j + 1]
    return float(b if whole else 0.5 * (a + b))


def solve(
    f: Metric,
    x: np.ndarray,
    target: float,
    rounds: int = 6,
    per_round: int = 64,
    whole: bool = False,
    near: float | None = None,
) -> Solution:
    """Where f reaches `target` over the grid x: every crossing refined (or only the one nearest `near`, by ratio)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(f(x), dtype=float) * np.ones_like(x)
    found = crossings(y - target)
    if near is not None and found:
        found = [min(found, key=lambda i: abs(np.log(max(x[i], 1e-12) / max(near, 1e-12))))]
    roots = []
    for i in found:
        a, b = x[i], x[min(i + 1, len(x) - 1)]
        exact = y[i] - target == 0 or a == b
        roots.append(float(a) if exact else refine(f, a, b, target, rounds, per_round, whole))
    return Solution(roots, x, y)


def solve_range(
    f: Metric,
    low: float,
    high: float,
    target: float,
    whole: bool,
    points: int,
    rounds: int,
    per_round: int,
) -> tuple[float | None, list[float], np.ndarray, np.ndarray]:
    """`solve`'s question over [low, high] on a grid of `points`: (the smallest root or None, the other roots,
    the grid, f on it)."""
    s = solve(f, grid(low, high, points, whole), target, rounds, per_round, whole)
    return (s.roots[0] if s.roots else None), s.roots[1:], s.x, s.y
