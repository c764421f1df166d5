"""LaTeX text from the results: escaping (text that sets alike in text and math mode, paths that may break)
and the keyed metrics of \\prophet{KEY}{METRIC} with the format each reads in (formatting.py)."""

from __future__ import annotations

import re
from collections.abc import Callable

from prophet_model.outputs import formatting as fmt
from prophet_model.study.columns import keyed

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


# formatters a column may name (study/columns.py) beyond the functions of formatting.py
FORMATS: dict[str, Callable[[float], str]] = {
    "whole": lambda v: f"{v:.0f}",  # a batch, a TP degree
    "share_pct": lambda v: fmt.pct(100 * v),  # a share in [0, 1] read as a percentage
}


def formatter(name: str) -> Callable[[float], str]:
    """The formatting function a column names (its `format`)."""
    return FORMATS[name] if name in FORMATS else getattr(fmt, name)


# \prophet{KEY}{METRIC}: the metrics of every row (columns of all_systems_comparison.csv) and how they read
KEYED_METRICS: tuple[tuple[str, Callable[[float], str]], ...] = tuple((c, formatter(f)) for c, f in keyed())
