"""Writers: per-system CSV and Markdown summary; the comparison CSV, the sanity-check CSV and the other
cross-system tables; the figures as one task each (figure_tasks, outputs/figure_cache.py). Everything is written
under one folder (the staging folder)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.files import SENSITIVITY_DIR, SENSITIVITY_TABLES, write_csv, write_exact_csv
from prophet_model.outputs.templating import environment

if TYPE_CHECKING:
    from prophet_model.outputs.figure_cache import FigureJob
    from prophet_model.study.config import System
    from prophet_model.study.runner import StudyResults

log = logging.getLogger("prophet_model")

# the tables of workflow/writer_tables.py written as results/data/<name>.csv, in this order
WRITER_TABLES = ("regime_map", "hardware_rates", "worked_example")


def best_strategy(comparison: pd.DataFrame) -> pd.Series | None:
    """The strategy with the highest Prophet throughput (ties: the first configured)."""
    live = comparison.dropna(subset=["speedup"])
    return None if live.empty else live.loc[live.prophet_tokens_per_s.idxmax()]


def write_system(
    results: StudyResults,
    checks: pd.DataFrame,
    system: System,
    out: Path,
    uncertainty: pd.DataFrame | None = None,
    tables: dict[str, Any] | None = None,
) -> list[Path]:
    """results_<id>.csv and SUMMARY_<id>.md (`tables`: workflow/writer_tables.py's, the hardware rates and the
    claims' sentences among them); the system's figures are figure_tasks'."""
    facts = tables["facts"]
    study = results.study
    rows = results.system_rows(system.id)
    written = [out / "data" / f"results_{system.id}.csv"]
    write_csv(rows, written[0])
    comp = results.comparison[results.comparison.system_id == system.id]
    mine = checks[checks.system_id == system.id]
    cons = mine[mine.kind == "consistency"]
    text = (
        environment()
        .get_template("summary.md.j2")
        .render(
            system=system,
            model=study.model_of(system),  # the system's own model where it names one
            workload=study.config.workload,
            prophet=study.config.prophet,
            hardware=next(r for r in tables["hardware_rates"].to_dict("records") if r["gpu"] == system.gpu.name),
            implementation=study.config.implementation,
            claims=[text for sid, text in facts["claim_sentences"] if sid in (system.id, facts["single_gpu_id"])],
            config_path=study.path.name,
            config_hash=study.config_hash,
            rows=comp.to_dict("records"),
            best=best_strategy(comp),
            breakdown=rows[rows.tokens_per_s.notna()].to_dict("records"),
            expectations=mine[mine.kind == "expectation"].to_dict("records"),
            consistency_total=len(cons),
            consistency_pass=int((cons.status == "PASS").sum()),
            consistency_failed=list(cons[cons.status != "PASS"].check),
            uncertainty=[]
            if uncertainty is None
            else [
                {**r, "dropped_note": fmt.dropped(r["draws"], r["dropped"], r["dropped_no_fit"], r["dropped_max_step"])}
                for r in uncertainty[uncertainty.system_id == system.id].to_dict("records")
            ],
            uncertain_inputs=facts["uncertain_inputs"],
        )
    )
    summary = out / f"SUMMARY_{system.id}.md"
    summary.write_text(text, encoding="utf-8")
    return [*written, summary]


def write_cross_system(
    results: StudyResults,
    checks: pd.DataFrame,
    out: Path,
    uncertainty: pd.DataFrame | None = None,
    tables: dict[str, Any] | None = None,
) -> list[Path]:
    """all_systems_comparison.csv, headline.csv, fixed_batch_comparison.csv, sanity_checks.csv, claims.csv,
    uncertainty.csv, regime_map.csv, the writers' tables (workflow/writer_tables.py: hardware_rates.csv,
    worked_example.csv, facts.json, the sensitivity page's sensitivity/*.csv); the cross-system figures:
    figure_tasks."""
    written = [
        out / "data" / "all_systems_comparison.csv",
        out / "data" / "sanity_checks.csv",
        out / "data" / "claims.csv",
        out / "data" / "headline.csv",
        out / "data" / "fixed_batch_comparison.csv",
    ]
    write_csv(results.comparison, written[0])
    write_csv(checks, written[1])
    write_csv(tables["claims"], written[2])
    write_csv(results.headline, written[3])
    write_csv(results.fixed, written[4])
    for name in WRITER_TABLES:
        written.append(out / "data" / f"{name}.csv")
        write_csv(tables[name], written[-1])
    written.append(out / "data" / "facts.json")
    written[-1].write_text(json.dumps(tables["facts"], indent=1, sort_keys=True) + "\n", encoding="utf-8")
    for stem in SENSITIVITY_TABLES:
        written.append(out / SENSITIVITY_DIR / f"{stem}.csv")
        write_exact_csv(tables["sensitivity"][stem], written[-1])
    if uncertainty is not None:
        written.append(out / "data" / "uncertainty.csv")
        write_csv(uncertainty, written[-1])
    return written


def figure_jobs(
    rows: dict[str, pd.DataFrame],
    names: dict[str, str],
    headline: pd.DataFrame,
    comparison: pd.DataFrame,
    regimes: pd.DataFrame | None,
    facts: dict | None,
    whole: bool = True,
) -> list[FigureJob]:
    """One job per figure `run` writes: the three of each system of `rows` (its results_<id>.csv) and, for a whole
    run (`whole`) where some system has numbers, the cross-system figures, those first (the slowest to draw)."""
    from prophet_model.outputs.figure_cache import SYSTEM_KINDS, FigureJob

    jobs = []
    live = comparison.dropna(subset=["speedup"])
    if whole and not live.empty:
        jobs = [
            FigureJob(
                "regime_map",
                "regime_map",
                {"regime_map": regimes},
                {"names": names, "reference": facts["reference_system"], "levels": list(facts["regime_levels"])},
            ),
            FigureJob("cross_system_comparison", "cross_system_comparison", {"headline": headline}),
            FigureJob("scaling", "scaling", {"live": live}),
        ]
    return jobs + [
        FigureJob(f"{kind}_{sid}", kind, {"rows": r}, {"system": names[sid]})
        for kind in SYSTEM_KINDS
        for sid, r in rows.items()
    ]


def figure_tasks(
    results: StudyResults,
    tables: dict[str, Any],
    systems: list[System],
    whole: bool,
    stage: Path,
    previous: Path,
    entries: dict[str, dict[str, str]],
) -> list[tuple]:
    """The writer tasks (workflow/parallel.py) of figure_jobs, each drawing one figure into `stage` or copying it
    from `previous` (the results folder, `entries` its manifest's files) where nothing it shows changed
    (outputs/figure_cache.py)."""
    from prophet_model.outputs.figure_cache import write_figure

    names = {s.id: s.name for s in results.study.systems}
    rows = {s.id: results.system_rows(s.id) for s in systems}
    regimes, facts = (tables.get("regime_map"), tables.get("facts")) if whole else (None, None)
    jobs = figure_jobs(rows, names, results.headline, results.comparison, regimes, facts, whole)
    cfg = results.study.config.figures
    return [(write_figure, (job, cfg, stage, previous, entries), f"figure {job.stem}") for job in jobs]
