"""Number formatting in one place, so a number reads the same in every summary, table and page."""

from __future__ import annotations

import math

MD_SPECIALS = set("\\`*_[]<>|$~&{}#!")


def md(text: object) -> str:
    """Text shown literally in Markdown (MyST and GitHub): HTML, emphasis, links, math, roles and
    table pipes are backslash-escaped, so a name like `<script>` is displayed, never run."""
    return "".join("\\" + ch if ch in MD_SPECIALS else ch for ch in str(text)).replace("\n", " ")


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


def comparison_view(comparison, columns: tuple[str, ...] | None = None):
    """Baseline beside Prophet, one formatted row per evaluated system x strategy (a DataFrame).
    `columns` picks and orders the columns; by default all of them."""
    import pandas as pd

    c = comparison.dropna(subset=["speedup"])

    def pair(f, a: str, b: str) -> list[str]:
        return [f"{f(x)} → {f(y)}" for x, y in zip(c[a], c[b], strict=True)]

    view = pd.DataFrame(
        {
            "system": c.system,
            "strategy": c.strategy,
            "split": c.prophet_split.str.replace("x", "×"),
            "baseline tok/s": c.baseline_tokens_per_s.map(tokens),
            "Prophet tok/s": c.prophet_tokens_per_s.map(tokens),
            "speedup": c.speedup.map(ratio),
            "comm overhead": pair(pct, "baseline_comm_overhead_pct", "prophet_comm_overhead_pct"),
            "per-GPU scaling": pair(pct, "baseline_scaling_pct", "prophet_scaling_pct"),
            "$/1M tokens": pair(usd, "baseline_usd_per_1m_tokens", "prophet_usd_per_1m_tokens"),
            "savings/yr": c.annual_savings_usd.map(usd),
        }
    ).reset_index(drop=True)
    return view[list(columns)] if columns else view


def checks_view(checks):
    """Sanity checks (sanity_checks.csv rows) with values and ranges in their units (a DataFrame)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "status": checks.status,
            "system": checks.system_id,
            "strategy": checks.strategy,
            "check": checks.check,
            "value": [value_in_unit(v, m) for v, m in zip(checks.value, checks.check, strict=True)],
            "expected": [
                f"{value_in_unit(a, m)} – {value_in_unit(b, m)}"
                for a, b, m in zip(checks["min"], checks["max"], checks.check, strict=True)
            ],
            "source": checks.source,
        }
    ).reset_index(drop=True)


def operating_point(strategy: str, split: str, batch: float) -> str:
    """EP 8×1, B 36: a strategy, its EP × DP split and the batch per GPU (sequences)."""
    return f"{strategy} {str(split).replace('x', '×')}, B {batch:.0f}"
