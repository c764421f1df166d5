"""LaTeX text from the results: escaping (text that sets alike in text and math mode, paths that may break)
and the keyed metrics of \\prophet{KEY}{METRIC} with the format each reads in (formatting.py)."""

from __future__ import annotations

import re
from collections.abc import Callable

from prophet_model.outputs import formatting as fmt

TEX_ESCAPES = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "×": r"$\times$",
    "–": "--",
    "→": r"$\rightarrow$",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def tex(value: object) -> str:
    """Escape text for LaTeX (text mode)."""
    return "".join(TEX_ESCAPES.get(ch, ch) for ch in str(value))


def tex_path(value: object) -> str:
    """A file path for \\texttt, escaped, with a break allowed after each / and _ (no overflowing line)."""
    return tex(value).replace("/", "/\\allowbreak{}").replace(r"\_", r"\_\allowbreak{}")


def tex_value(value: object) -> str:
    """Escape a formatted value so that it sets alike in text and in math mode: symbols in \\ensuremath,
    thousands separators as {,} (no space after them in math)."""
    out = tex(value).replace(r"$\times$", r"\ensuremath{\times}").replace(r"$\rightarrow$", r"\ensuremath{\rightarrow}")
    return re.sub(r"(?<=\d),(?=\d)", "{,}", out)


# \prophet{KEY}{METRIC}: the metrics of every row (columns of all_systems_comparison.csv) and how they read
KEYED_METRICS: tuple[tuple[str, Callable[[float], str]], ...] = (
    ("baseline_tokens_per_s", fmt.tokens),
    ("prophet_tokens_per_s", fmt.tokens),
    ("speedup", fmt.ratio),
    ("baseline_step_ms", fmt.ms),
    ("prophet_step_ms", fmt.ms),
    ("baseline_batch", lambda v: f"{v:.0f}"),
    ("prophet_batch", lambda v: f"{v:.0f}"),
    ("baseline_attention_tp", lambda v: f"{v:.0f}"),
    ("prophet_attention_tp", lambda v: f"{v:.0f}"),
    ("baseline_comm_overhead_pct", fmt.pct),
    ("prophet_comm_overhead_pct", fmt.pct),
    ("baseline_allreduce_overhead_pct", fmt.pct),
    ("prophet_allreduce_overhead_pct", fmt.pct),
    ("comm_reduction", fmt.ratio),
    ("baseline_fetch_overhead_pct", fmt.pct),
    ("prophet_fetch_overhead_pct", fmt.pct),
    ("baseline_hit_rate", lambda v: fmt.pct(100 * v)),
    ("prophet_hit_rate", lambda v: fmt.pct(100 * v)),
    ("prophet_fetch_hidden_pct", fmt.pct),
    ("saved_by_cache_ms", fmt.ms),
    ("saved_by_prefetch_ms", fmt.ms),
    ("saved_by_comm_ms", fmt.ms),
    ("baseline_scaling_pct", fmt.pct),
    ("prophet_scaling_pct", fmt.pct),
    ("baseline_usd_per_1m_tokens", fmt.usd),
    ("prophet_usd_per_1m_tokens", fmt.usd),
    ("cost_reduction", fmt.ratio),
    ("annual_savings_usd", fmt.usd),
    ("best_baseline_tokens_per_s", fmt.tokens),
    ("speedup_vs_best_baseline", fmt.ratio),
)
