"""Number formatting in one place, so a number reads the same in every summary, table and page."""

from __future__ import annotations

import math


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def tokens(x: float | None) -> str:
    """Throughput, tokens/s: thousands separators, no decimals (1,234)."""
    return "n/a" if _missing(x) else f"{x:,.0f}"


def ratio(x: float | None) -> str:
    """A speedup or reduction factor: two decimals and a times sign (1.49×)."""
    return "n/a" if _missing(x) else f"{x:.2f}×"


def pct(x: float | None) -> str:
    """A percentage with one decimal (12.3%)."""
    return "n/a" if _missing(x) else f"{x:.1f}%"


def usd(x: float | None) -> str:
    """Dollars: cents below $100, whole dollars with separators above ($4.06, $12,699)."""
    if _missing(x):
        return "n/a"
    return f"${x:,.2f}" if abs(x) < 100 else f"${x:,.0f}"


def ms(x: float | None) -> str:
    """Milliseconds with two decimals (61.99 ms)."""
    return "n/a" if _missing(x) else f"{x:.2f} ms"


def number(x: float | None, digits: int = 3) -> str:
    """A general value with `digits` significant digits (0.592, 21.5, 1.41e+03)."""
    return "n/a" if _missing(x) else f"{x:.{digits}g}"


def value_in_unit(x: float, metric: str) -> str:
    """Format a value by the unit its metric name carries."""
    if metric.endswith("_pct"):
        return pct(x)
    if metric.endswith("_usd") or "usd_per" in metric:
        return usd(x)
    if metric.endswith("tokens_per_s"):
        return tokens(x)
    if metric in ("speedup", "cost_reduction", "comm_reduction"):
        return ratio(x)
    return number(x)
