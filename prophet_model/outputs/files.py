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
    "data/evidence.csv",
    "data/validated.csv",
    FACTS_FILE,
    "figures/cross_system_comparison.pdf",
    "figures/cross_system_comparison.png",
    "figures/scaling.pdf",
    "figures/scaling.png",
    "figures/regime_map.pdf",
    "figures/regime_map.png",
)
UNCERTAINTY_FILE = "data/uncertainty.csv"
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


def expected_files(system_ids: Sequence[str], uncertainty: bool = False) -> list[str]:
    """Every file a full `run` writes for these systems (relative to the results folder)."""
    files = [*STUDY_FILES, *(f.format(id=s) for s in system_ids for f in SYSTEM_FILES)]
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
