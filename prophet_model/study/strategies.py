"""Parallel strategies: which (ep, dp) splits of a system's GPUs each strategy evaluates."""

from __future__ import annotations

from dataclasses import dataclass

from prophet_model.study.config import System
from prophet_model.study.schema import HybridSplit, StrategyName


@dataclass(frozen=True)
class Splits:
    """The candidate (ep, dp) splits of one strategy on one system; empty means not evaluated."""

    strategy: StrategyName
    candidates: tuple[tuple[int, int], ...]
    note: str = ""


def factorizations(n: int) -> tuple[tuple[int, int], ...]:
    """Every (ep, dp) with ep * dp = n and both > 1, ep ascending."""
    return tuple((ep, n // ep) for ep in range(2, n) if n % ep == 0 and n // ep > 1)


def splits(system: System, strategy: StrategyName) -> Splits:
    """EP: all GPUs in one expert group (n, 1). DP: a full replica per GPU (1, n).
    Hybrid: the configured split, every factorisation with ep, dp > 1 for `auto`
    (the best per variant is kept), or none when the config says it degenerates."""
    n = system.count
    if strategy == "EP":
        return Splits(strategy, ((n, 1),))
    if strategy == "DP":
        return Splits(strategy, ((1, n),))
    h = system.hybrid
    if isinstance(h, HybridSplit):
        return Splits(strategy, ((h.ep, h.dp),))
    if h == "auto":
        found = factorizations(n)
        if found:
            return Splits(strategy, found, "auto: best EP x DP split per variant")
        return Splits(strategy, (), f"hybrid degenerates: {n} GPUs have no EP x DP split with both > 1")
    return Splits(strategy, (), system.hybrid_note or "hybrid not evaluated")
