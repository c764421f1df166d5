"""Serving cost: dollars per million tokens and annual savings."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

SECONDS_PER_HOUR = 3600.0
MONTHS_PER_YEAR = 12
TOKENS_PER_MILLION = 1e6


def usd_per_million_tokens(n_gpus: ArrayLike, price_usd_per_gpu_hour: ArrayLike, tokens_per_s: ArrayLike) -> NDArray:
    """$ per 1M tokens = n_gpus * price ($/GPU-h) / (tokens/s * 3600 s/h) * 1e6."""
    n, p, t = (np.asarray(x, dtype=float) for x in (n_gpus, price_usd_per_gpu_hour, tokens_per_s))
    return n * p / (t * SECONDS_PER_HOUR) * TOKENS_PER_MILLION


def annual_savings_usd(baseline_usd_per_1m: ArrayLike, prophet_usd_per_1m: ArrayLike, monthly_tokens: float) -> NDArray:
    """($/1M baseline - $/1M Prophet) * monthly tokens * 12 / 1e6."""
    diff = np.asarray(baseline_usd_per_1m, dtype=float) - np.asarray(prophet_usd_per_1m, dtype=float)
    return diff * monthly_tokens * MONTHS_PER_YEAR / TOKENS_PER_MILLION
