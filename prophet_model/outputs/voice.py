"""The paper's own voice (issue 38): what the abstract and the section say as the authors' evaluation, beyond
the finding's sentences: which model each system serves, the headline pair with the digits that tell its two
sides apart (or "unchanged"), which gains are within the model's validated error, and which studied systems lie
where the regime map says Prophet pays. Every number is added to the keyed values of macros.tex."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.finding import PAYS, RESIDENT
from prophet_model.outputs.latex import KEYED_METRICS, tex_value

if TYPE_CHECKING:
    from prophet_model.study.config import Study

ERROR_MECHANISM = fmt.ERROR_MECHANISM  # the validated error a gain is measured against (formatting.py says why)
FEW_HIDDEN_PCT = 50  # below it Prophet hides only a few of its copies (finding.py's wording)


def _add(keyed: list[dict], key: str, metric: str, value: str) -> None:
    if not any(k["key"] == key and k["metric"] == metric for k in keyed):
        keyed.append({"key": key, "metric": metric, "value": tex_value(value)})


def cmd(key: str, metric: str) -> str:
    """The keyed command \\prophet{KEY}{METRIC}."""
    return f"\\prophet{{{key}}}{{{metric}}}"


def model_error_pct(results_dir: Path) -> float | None:
    """The validated median |error| of the whole decode step (%), or None where it was not validated."""
    from prophet_model.outputs.validation_results import validated

    v = validated(results_dir).get(ERROR_MECHANISM)
    return None if v is None else v.median_pct


def pair(keyed: list[dict], row: pd.Series, a_col: str, b_col: str) -> dict:
    """Two columns of one row as keyed commands that show their difference: the columns' own values where
    their format tells them apart, else values with the digits that do (metric `<column>_apart`);
    {same: True} when they agree to six figures (the text then says "unchanged at" or "the same")."""
    show = dict(KEYED_METRICS)
    sa, sb = fmt.apart(row[a_col], row[b_col], show[a_col])
    out = []
    for col, text in ((a_col, sa), (b_col, sb)):
        if text == show[col](row[col]):
            out.append(cmd(row.system_id, col))
        else:
            _add(keyed, row.system_id, f"{col}_apart", text)
            out.append(cmd(row.system_id, f"{col}_apart"))
    return {"same": sa == sb, "a": out[0], "b": out[1]}


def _span(rows: pd.DataFrame, column: str) -> tuple[str, str]:
    """A column's range over rows as its format prints it: (lowest, highest)."""
    show = dict(KEYED_METRICS)[column]
    return show(rows[column].min()), show(rows[column].max())


def in_region(regimes: pd.DataFrame | None) -> list[str]:
    """The studied systems whose host link and expert ratio (the regime map's panel a marks) are at least the
    least at which some point of the map reaches PAYS (finding.regime_sentence's necessary conditions)."""
    if regimes is None or "kind" not in regimes:
        return []
    grid = regimes[(regimes.kind == "grid") & (regimes.panel == "a")]
    pays = grid[grid.speedup >= PAYS]
    if pays.empty:
        return []
    marks = regimes[(regimes.kind == "system") & (regimes.panel == "a")]
    return list(marks[(marks.x >= pays.x.min()) & (marks.y >= pays.y.min())].system_id.astype(str))


def voice_context(
    study: Study,
    results_dir: Path,
    rows: pd.DataFrame,
    keyed: list[dict],
    regimes: pd.DataFrame | None,
    range_tex: Callable[..., str],
) -> dict:
    """What the abstract and the section say in the authors' voice (see the module's docstring)."""
    by_model: dict[str, list[str]] = {}
    for s in study.systems:
        if s.id in set(rows.system_id):
            name = study.model_of(s).name
            _add(keyed, s.id, "model", name)
            by_model.setdefault(name, []).append(s.id)
    head = rows[rows.system_id == study.config.study.headline_system].iloc[0]
    error = model_error_pct(results_dir)
    within = [r.system_id for r in rows.itertuples() if fmt.within_error(r.speedup, error)]
    no_gain = [r.system_id for r in rows.itertuples() if len(set(fmt.apart(r.speedup, 1.0))) == 1]
    resident = rows[(rows.baseline_hit_rate >= RESIDENT) & (rows.baseline_fetch_overhead_pct <= 0)]
    offload = rows[~rows.system_id.isin(resident.system_id)]
    hidden = offload.prophet_fetch_hidden_pct
    scaling = rows.dropna(subset=["baseline_scaling_pct", "prophet_scaling_pct"])
    same_scaling = not scaling.empty and _span(scaling, "baseline_scaling_pct") == _span(scaling, "prophet_scaling_pct")
    region = [sid for sid in in_region(regimes) if sid in set(rows.system_id)]
    routing = study.config.routing
    _add(keyed, "study", "n_few_hidden", str(int((hidden < FEW_HIDDEN_PCT).sum())))
    _add(keyed, "study", "context_tokens", fmt.count(study.config.workload.context_length_tokens))
    return {
        "model_groups": [{"key": v[0], "ids": v} for v in by_model.values()],
        "head_tokens": pair(keyed, head, "baseline_tokens_per_s", "prophet_tokens_per_s"),
        "head_cost": pair(keyed, head, "baseline_usd_per_1m_tokens", "prophet_usd_per_1m_tokens"),
        "head_within": head.system_id in within,
        "error_known": error is not None,
        "within_ids": within,
        "no_gain_ids": no_gain,
        "few_hidden_ids": list(offload[hidden < FEW_HIDDEN_PCT].system_id),
        "region_ids": region,
        "best_id": str(rows.loc[rows.speedup.idxmax()].system_id),
        "scaling_same": same_scaling,
        "routing_assumed": routing.distribution != "trace",
        "routing_uniform": routing.distribution == "uniform",
        "affinity_measured": routing.inter_layer_affinity is not None,
    }
