"""What each claim rests on: the mechanisms a number depends on, the model's validated error for each
(from the committed measurements, as the validation page computes them), and the checks it fails.

A row's number depends on the decode step's computation always, on expert offloading and prefetch where
its step copies experts from host memory, and on the all-to-all where its expert-parallel degree is above
one. The validated errors are out of sample (prophet_model.measured): the whole decode step (batch >= 8), Prophet's
speedup over on-demand expert fetching, and the NCCL all-to-all under CUDA graphs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from prophet_model.study.config import Study

MECHANISMS = ("decode step", "expert offloading and prefetch", "all-to-all")


@dataclass(frozen=True)
class Validated:
    mechanism: str
    what: str  # what was measured and predicted
    points: int
    median_pct: float  # median |error|, %
    worst_pct: float  # largest |error|, %

    def text(self) -> str:
        return (
            f"{self.mechanism}: {self.what}, median |error| {self.median_pct:.3g}%, worst {self.worst_pct:.3g}% "
            f"({self.points} points)"
        )


_VALIDATED: dict[str, tuple[Validated, ...]] = {}  # config hash -> the validated errors


def _validated(study: Study) -> tuple[Validated, ...]:
    from prophet_model.measured.measurements import load
    from prophet_model.measured.predict import with_predictions
    from prophet_model.measured.predict_steps import decode_table, offload_table

    out = []
    d = decode_table(study)
    if not d.empty:
        d = d[d.batch >= 8]
        out.append(
            Validated(
                "decode step",
                "whole decode steps on H200 (batch 8-64)",
                len(d),
                float(d.error_pct.abs().median()),
                float(d.error_pct.abs().max()),
            )
        )
    o = offload_table(study)
    if not o.empty:
        sp = o.dropna(subset=["speedup_error_pct"])
        out.append(
            Validated(
                "expert offloading and prefetch",
                "Prophet's speedup over on-demand fetching on H200",
                len(sp),
                float(sp.speedup_error_pct.abs().median()),
                float(sp.speedup_error_pct.abs().max()),
            )
        )
    df = with_predictions(load(), study)
    g = df[df.primitive == "all-to-all (CUDA graph)"]
    if not g.empty:
        err = g.error_pct.abs()
        out.append(
            Validated(
                "all-to-all",
                "NCCL all-to-all under CUDA graphs on two H200",
                len(g),
                float(err.median()),
                float(err.max()),
            )
        )
    return tuple(out)


def validated(study: Study) -> dict[str, Validated]:
    """{mechanism: its validated error} (computed once per configuration and process)."""
    if study.config_hash not in _VALIDATED:
        _VALIDATED[study.config_hash] = _validated(study)
    return {v.mechanism: v for v in _VALIDATED[study.config_hash]}


def mechanisms(row: pd.Series) -> list[str]:
    """The mechanisms a comparison row's numbers depend on."""
    out = ["decode step"]
    if row.get("baseline_fetch_overhead_pct", 0) > 0 or row.get("prophet_fetch_overhead_pct", 0) > 0:
        out.append("expert offloading and prefetch")
    if any(str(row.get(c, "1x")).split("x")[0] not in ("1", "", "nan") for c in ("baseline_split", "prophet_split")):
        out.append("all-to-all")
    return out


def rates_basis(study: Study, system_id: str) -> str:
    """Where a system's GPU rates come from: measured on that GPU, or extrapolated from the shares of the
    datasheet figures that measured GPUs attain (which ones, and of which generation)."""
    from prophet_model.study.rates import attainable

    system = study.system(system_id)
    how = attainable(system.gpu_key, study.gpus).source.split("; ")[0]
    how = how.removeprefix(f"{system.gpu.name}: ")
    if how.startswith("measured"):
        return f"{system.gpu.name} rates measured on that GPU"
    return f"{system.gpu.name} never measured: its rates are extrapolated ({how.removeprefix('not measured, and ')})"


def _missed(rows: pd.DataFrame) -> list[str]:
    return [
        f"{x.check} {x.value:.3g} outside {x.min:g}-{x.max:g}"
        if x.min != x.max
        else f"{x.check} {x.value:.3g} against {x.min:g}"
        for x in rows[rows.status == "MISS"].itertuples()
    ]


def expected_text(system: pd.DataFrame, strategy: str) -> str:
    """The expected ranges of one system (its sanity_checks.csv expectation rows) that the model misses, in words:
    those of `strategy`, else those the draft analysis gave for the system's other strategies, each named
    ("none given for EP; for Hybrid, 3 of 3 missed: ..."); "" where the draft analysis gave none for the system."""
    if system.empty:
        return ""
    mine = system[system.strategy == strategy]
    if not mine.empty:
        missed = _missed(mine)
        return "; ".join(missed) if missed else f"none ({len(mine)} of {len(mine)} met)"
    parts = [f"none given for {strategy}"]
    for other, g in system.groupby("strategy", sort=False):
        missed = _missed(g)
        parts.append(f"for {other}, {len(missed)} of {len(g)} missed" + (": " + "; ".join(missed) if missed else ""))
    return "; ".join(parts)


def claim_evidence(
    study: Study, comparison: pd.DataFrame, checks: pd.DataFrame | None, known: dict[str, Validated] | None = None
) -> pd.DataFrame:
    """One row per system x strategy of the comparison: the mechanisms, their validated errors (median and
    worst, and the GPU they were measured on), where the system's rates come from (measured or extrapolated),
    and the expected ranges it misses (or that none was given). `known`: the validated errors when already
    computed (validated(study) otherwise)."""
    v = validated(study) if known is None else known
    rows = []
    for _, r in comparison.dropna(subset=["speedup"]).iterrows():
        mech = mechanisms(r)
        said = "none given for this system"
        if checks is not None and not checks.empty:
            system = checks[
                (checks.system_id == r.system_id) & (checks.kind == "expectation" if "kind" in checks else True)
            ]
            said = expected_text(system, r.strategy) or said
        rows.append(
            {
                "system_id": r.system_id,
                "strategy": r.strategy,
                "mechanisms": "; ".join(mech),
                "validated": "; ".join(v[m].text() if m in v else f"{m}: not validated" for m in mech),
                "rates": rates_basis(study, r.system_id),
                "failed_checks": said,
            }
        )
    return pd.DataFrame(rows)
