"""Sanity checks: the seed's expectations (PASS or MISS, never a failure) and the internal
consistency of the results (must hold exactly, up to floating-point rounding)."""

from __future__ import annotations

import math

import pandas as pd

from prophet_model.physics.cost import MONTHS_PER_YEAR, TOKENS_PER_MILLION
from prophet_model.study.config import Study

REL_TOL = 1e-9


def expectation_checks(study: Study, comparison: pd.DataFrame) -> pd.DataFrame:
    """One row per expectation: the computed value, the range, PASS / MISS (or NOT EVALUATED when
    the system, strategy or metric is absent from this run)."""
    rows = []
    for e in study.config.expectations:
        match = comparison[(comparison.system_id == e.system) & (comparison.strategy == e.strategy)]
        value = math.nan
        if not match.empty and e.metric in match.columns:
            value = float(match.iloc[0][e.metric])
        if math.isnan(value):
            status = "NOT EVALUATED"
        else:
            status = "PASS" if e.min <= value <= e.max else "MISS"
        rows.append(
            {
                "kind": "expectation",
                "system_id": e.system,
                "strategy": e.strategy,
                "check": e.metric,
                "value": value,
                "min": e.min,
                "max": e.max,
                "status": status,
                "source": e.source,
            }
        )
    return pd.DataFrame(rows)


def consistency_checks(study: Study, chosen: pd.DataFrame, comparison: pd.DataFrame) -> pd.DataFrame:
    """Identities that must hold: cost reduction = speedup (same hardware); annual savings =
    ($/1M baseline - $/1M Prophet) x yearly tokens / 1e6; throughput = N x batch per GPU / step."""
    yearly = study.config.cost.monthly_tokens * MONTHS_PER_YEAR / TOKENS_PER_MILLION
    rows = []

    def add(sid: str, strategy: str, check: str, got: float, want: float) -> None:
        ok = math.isclose(got, want, rel_tol=REL_TOL, abs_tol=1e-9)
        rows.append(
            {
                "kind": "consistency",
                "system_id": sid,
                "strategy": strategy,
                "check": check,
                "value": got,
                "min": want,
                "max": want,
                "status": "PASS" if ok else "FAIL",
                "source": "identity",
            }
        )

    for _, r in comparison.dropna(subset=["speedup"]).iterrows():
        add(r.system_id, r.strategy, "cost_reduction = speedup", r.cost_reduction, r.speedup)
        savings = (r.baseline_usd_per_1m_tokens - r.prophet_usd_per_1m_tokens) * yearly
        add(r.system_id, r.strategy, "annual_savings = cost difference x yearly tokens", r.annual_savings_usd, savings)
    for _, r in chosen.dropna(subset=["tokens_per_s"]).iterrows():
        add(
            r.system_id,
            r.strategy,
            f"throughput ({r.variant}) = N x batch per GPU / step",
            r.tokens_per_s,
            r.n_gpus * r.batch_size_per_gpu / (r.step_ms / 1e3),
        )
    return pd.DataFrame(rows)


def all_checks(study: Study, chosen: pd.DataFrame, comparison: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(
        [expectation_checks(study, comparison), consistency_checks(study, chosen, comparison)], ignore_index=True
    )


def input_warnings(study: Study, chosen: pd.DataFrame) -> list[str]:
    """Physically suspicious inputs or results worth a reader's attention (logged as warnings)."""
    out = []
    m = study.model
    for s in study.systems:
        net, gpu = s.interconnect, s.gpu
        if net.bandwidth_gbps_per_direction > gpu.memory_bandwidth_gbps:
            out.append(
                f"{s.id}: interconnect bandwidth {net.bandwidth_gbps_per_direction:g} GB/s exceeds the GPU's HBM"
                " bandwidth"
            )
        if gpu.host_link_bandwidth_gbps > 256 and gpu.host_link == "pcie":
            out.append(f"{s.id}: host link {gpu.host_link_bandwidth_gbps:g} GB/s is above any PCIe 6.0 x16 link")
    if study.config.routing.distribution == "trace":
        out += [
            f"{s.id}: serves {s.model_key}, not the model routing.trace_file records: its routing is uniform"
            for s in study.systems
            if s.model is not None and s.model is not study.model
        ]
    if study.config.prophet.prediction_accuracy == 1.0:
        out.append("prophet.prediction_accuracy is exactly 1: a perfect predictor is an idealisation")
    if not chosen.empty:
        models = {s.id: study.model_of(s) for s in study.systems}  # a system may serve its own model
        bad = chosen[~chosen.feasible.astype(bool) & (chosen.ep > 0)]
        for r in bad.itertuples():
            why = r.note if isinstance(r.note, str) and r.note else "they exceed the GPU's memory"
            out.append(
                f"{r.system_id} {r.strategy} {r.variant}: not evaluated: dense weights and KV cache of "
                f"{models.get(r.system_id, m).name} do not fit in GPU memory: {why}"
            )
        experts = chosen.system_id.map(lambda i: models.get(i, m).num_experts)
        uneven = chosen[(chosen.ep > 1) & (experts % chosen.ep.clip(lower=1) != 0)]
        for r in uneven.drop_duplicates(["system_id", "ep"]).itertuples():
            n = models.get(r.system_id, m).num_experts
            out.append(
                f"{r.system_id} {r.strategy}: {n} experts over {r.ep} GPUs split unevenly; the fullest GPU sets the"
                " pace"
            )
    return out
