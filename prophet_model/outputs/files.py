"""The files a run and the paper write into a results folder, by name, and how a table is written
(deterministic CSV)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from prophet_model.study.config import System

FLOAT_FORMAT = "%.10g"
FACTS_FILE = "data/facts.json"
SYSTEM_FILES = (
    "data/results_{id}.csv",
    "figures/throughput_comparison_{id}.pdf",
    "figures/throughput_comparison_{id}.png",
    "figures/communication_overhead_{id}.pdf",
    "figures/communication_overhead_{id}.png",
    "figures/cost_efficiency_{id}.pdf",
    "figures/cost_efficiency_{id}.png",
    "SUMMARY_{id}.md",
)
STUDY_FILES = (
    "data/all_systems_comparison.csv",
    "data/sanity_checks.csv",
    "data/claims.csv",
    "data/headline.csv",
    "data/fixed_batch_comparison.csv",
    "data/regime_map.csv",
    "data/hardware_rates.csv",
    "data/worked_example.csv",
    FACTS_FILE,
    "figures/cross_system_comparison.pdf",
    "figures/cross_system_comparison.png",
    "figures/scaling.pdf",
    "figures/scaling.png",
    "figures/regime_map.pdf",
    "figures/regime_map.png",
)
UNCERTAINTY_FILE = "data/uncertainty.csv"
# The sensitivity page's data (workflow/writer_tables.py's sensitivity_tables computes it), floats at full precision
SENSITIVITY_DIR = "data/sensitivity"
SENSITIVITY_TABLES = {  # file stem: what it holds
    "sweeps": "per system, every input over its sweep range (the others as configured) and the headline metrics",
    "tornado": "per system, each input at the ends of its range, ranked by the spread of the speedup",
    "maps": "per system, the speedup over prediction accuracy x each map input (long form)",
}
SENSITIVITY_FILES = tuple(f"{SENSITIVITY_DIR}/{s}.csv" for s in SENSITIVITY_TABLES)
# What the measurements say, as `run` writes it (prophet_model.measured.tables computes it) for the validation
# page, the book and the paper to read: one CSV per table, the scalars in one JSON.
VALIDATION_DIR = "data/validation"
VALIDATION_TABLES = {  # file stem: what it holds
    "points": "every measured primitive beside the model's and the datasheet's prediction, with errors",
    "summary": "median and worst |error| per primitive, its verdict and, where off, why",
    "ceilings": "each machine's measured ceilings against the datasheet",
    "machines": "each machine of machines.yml: its catalog GPU, whether measured, the GPUs and software",
    "alltoall_rates": "the rate of each large CUDA-graph all-to-all beside the link's ceilings",
    "nccl_settings": "the large all-to-alls under other NCCL settings",
    "alltoall_split": "the all-to-all in full, its crossing share only and its kept share only",
    "link_blocks": "the probe's copies (GB/s per direction) per number of thread blocks",
    "decode": "every whole decode step beside its prediction",
    "batch_one": "the batch-1 decode steps' grouped GEMMs, measured and modelled",
    "offload": "every expert-offloading step beside its prediction, with Prophet's speedup",
    "calibrated_fits": "the separate calibrated variant: the fitted values",
    "calibrated_summary": "the separate calibrated variant: the errors that remain",
    "scaling": "the model's all-to-all at expert-parallel degrees 2, 4 and 8",
    "two_gpu": "every committed two-GPU point beside its prediction",
    "two_gpu_summary": "the two-GPU sets' errors per machine and set",
    "two_gpu_planned": "the model's predictions at the two-GPU sets' planned points",
    "validated": "the validated error per mechanism that each claim rests on",
    "claim_evidence": "per system and strategy: its mechanisms, their validated errors, its rates' basis, checks",
}
VALIDATION_FACTS = "facts.json"  # the verdicts' limit, the all-to-all's regimes, how NCCL drives the link
VALIDATION_FILES = (*(f"{VALIDATION_DIR}/{s}.csv" for s in VALIDATION_TABLES), f"{VALIDATION_DIR}/{VALIDATION_FACTS}")
PAPER_DIR = "paper"
PAPER_FILES = (
    "table.tex",
    "table_wide.tex",
    "abstract.tex",
    "caption.tex",
    "macros.tex",
    "section_multi_gpu.tex",
    "artifact_appendix.tex",
)


def read_facts(results_dir: Path) -> dict:
    """results/data/facts.json: the study's constants and lists the writers show (workflow/writer_tables.py)."""
    import json

    return json.loads((results_dir / FACTS_FILE).read_text(encoding="utf-8"))


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Deterministic CSV: fixed float format, no index, LF line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def write_exact_csv(df: pd.DataFrame, path: Path) -> None:
    """CSV with every float at full precision (repr: read back by pandas >= 3, the same numbers), no index,
    LF line endings: the same table gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n")


def write_validation(tables: dict[str, pd.DataFrame], facts: dict, out: Path) -> list[Path]:
    """The validation's tables and facts under out/VALIDATION_DIR, one file each (VALIDATION_FILES); returns
    the paths. Floats at full precision (repr: read back by pandas >= 3, the same numbers),
    the facts as JSON with sorted keys: the same inputs give the same bytes."""
    import json

    if list(tables) != list(VALIDATION_TABLES):
        raise ValueError(f"validation tables {list(tables)}; allowed: {list(VALIDATION_TABLES)} (outputs/files.py)")
    folder = out / VALIDATION_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, t in tables.items():
        written.append(folder / f"{stem}.csv")
        write_exact_csv(t, written[-1])
    written.append(folder / VALIDATION_FACTS)
    written[-1].write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return written


def expected_files(system_ids: Sequence[str], uncertainty: bool = False) -> list[str]:
    """Every file a full `run` writes for these systems (relative to the results folder)."""
    files = [
        *STUDY_FILES,
        *SENSITIVITY_FILES,
        *VALIDATION_FILES,
        *(f.format(id=s) for s in system_ids for f in SYSTEM_FILES),
    ]
    return [*files, UNCERTAINTY_FILE] if uncertainty else files


def system_of(rel: str) -> str | None:
    """The system id a per-system file belongs to, else None."""
    for pattern in SYSTEM_FILES:
        head, tail = pattern.split("{id}")
        if rel.startswith(head) and rel.endswith(tail) and len(rel) > len(head) + len(tail):
            return rel[len(head) : len(rel) - len(tail)]
    return None


def system_page(system: System) -> str:
    """A system's page in the book (book/systems/<page>.ipynb): its GPU count first, so that the table of
    contents lists systems by GPU count (2x, 4x, ..., 10x), not as text."""
    return f"{system.count:04d}-{system.id}"


def read_timings(path: Path) -> dict[str, float]:
    """The pipeline's seconds per notebook (`<book>/.pipeline-cache/timings.json`), a name -> number map;
    a missing or unreadable file, or an entry that is not a number, counts as not timed."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}
