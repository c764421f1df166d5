"""A researcher's question (`sweep`, `solve`): any system (a configured one, changed by --gpu, --count,
--interconnect, or one given by those alone), any catalog model or a HuggingFace config.json's, one strategy or
the best, and fixed --set changes; the study it makes and that study's operating point (strategy, split and
batch per GPU)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prophet_model.errors import UserError

if TYPE_CHECKING:
    from prophet_model.study.config import Study
    from prophet_model.study.sensitivity import Setup


@dataclass(frozen=True)
class Question:
    """Which study, system, model and strategy a sweep or solve is about (the command line's options)."""

    config: Path
    system: str | None
    sets: tuple[str, ...] = ()
    gpu: str | None = None
    count: int | None = None
    interconnect: str | None = None
    model: str | None = None
    strategy: str | None = None
    model_file: Path | None = None  # a HuggingFace config.json: its model instead of the configured one

    def study(self, extra: list[str] | None = None) -> tuple[Study, str, list[str]]:
        """(the study with the question's changes and `extra` KEY=VALUE ones, the system's id, notes on what
        was adapted)."""
        from prophet_model.study.questions.overrides import CUSTOM_ID, changed_study

        if self.count is not None and self.count < 1:
            raise UserError(f"--count {self.count}: allowed: a whole number >= 1")
        sets = [*self.sets, *(extra or [])]
        after, notes = changed_study(
            self.config,
            self.system,
            sets,
            self.gpu,
            self.model,
            self.interconnect,
            self.count,
            self.strategy,
            self.model_file,
        )
        return after, self.system or CUSTOM_ID, notes


def operating_point(study: Study, system_id: str) -> Setup:
    """The system's headline configuration as the study chooses it (its strategy, split and batch)."""
    return operating_point_why(study, system_id)[0]


def operating_point_why(study: Study, system_id: str) -> tuple[Setup, str]:
    """(operating_point, why its strategy has no numbers: whatif's note, e.g. that no batch meets
    workload.max_step_ms; "" where it has numbers)."""
    from prophet_model.study.runner import run_study
    from prophet_model.study.sensitivity import setups

    results, failures = run_study(study, [system_id])
    if failures:
        raise UserError(f"{system_id}: the model failed: {failures[system_id]}")
    setup = setups(results, evaluated_only=False).get(system_id)  # a system that does not fit: its notes say why
    if setup is None:
        why = "; ".join(dict.fromkeys(f"{r.strategy}: {r.note}" for r in results.comparison.itertuples()))
        raise UserError(f"{system_id}: no strategy of this system can be evaluated ({why})")
    comp = results.comparison
    row = comp[(comp.system_id == system_id) & (comp.strategy == setup.strategy)]
    note = row.note.iloc[0] if len(row) and row.speedup.isna().iloc[0] else ""
    return setup, note if isinstance(note, str) else ""


def describe(setup: Setup) -> str:
    """The operating point in words: system, strategy and split, each variant's batch per GPU."""
    b, p = setup.baseline["batch_size_per_gpu"], setup.prophet["batch_size_per_gpu"]
    return (
        f"{setup.system.name}, {setup.strategy} {setup.ep}×{setup.system.count // setup.ep}, batch per GPU "
        f"{b:.0f} (baseline) / {p:.0f} (Prophet)"
    )


def current(study: Study, key: str) -> object:
    """The configured value of a dotted configuration key (None where it cannot be read simply)."""
    node: object = study.config.model_dump()
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def moves_at(results, system_id: str) -> str:
    """What moves the system's speedup at its best operating point (results.headline's row) and what does not,
    in one sentence (study/questions/moves.py), from a tornado of the speedup around that point
    (study.sensitivity.tornado_records, numpy only: each input over its range, the others as configured); ""
    without numbers."""
    from prophet_model.study.questions.moves import moves, speedup_sentence
    from prophet_model.study.sensitivity import headline_setup, tornado_records

    setup = headline_setup(results, system_id)
    rows = [r for r in results.headline_records if r.get("system_id") == system_id]
    row = next((r for r in rows if r.get("speedup") is not None and r["speedup"] == r["speedup"]), None)
    if setup is None or row is None:
        return ""
    spreads = tornado_records(setup, "speedup")
    return speedup_sentence(
        str(row["system"]), moves(spreads, row), row, results.study.config.prophet.comm_reduction_factor
    )
