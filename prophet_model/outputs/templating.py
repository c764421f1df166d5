"""Jinja2 environment shared by every template (Markdown summaries now, LaTeX later)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import jinja2

from prophet_model.outputs import formatting as fmt

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    """One environment per process, so that each template is compiled once (compiling the summary's
    template takes longer than rendering it for every system)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        tokens=fmt.tokens,
        ratio=fmt.ratio,
        pct=fmt.pct,
        usd=fmt.usd,
        ms=fmt.ms,
        number=fmt.number,
        md=fmt.md,
        unit=lambda x, metric: fmt.value_in_unit(x, metric),
    )
    env.tests["nan"] = lambda x: isinstance(x, float) and math.isnan(x)
    return env
