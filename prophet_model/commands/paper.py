"""`python -m prophet_model paper`: render the paper's LaTeX from the results into RESULTS/paper (all files
at once, or none)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prophet_model.commands import shared
from prophet_model.commands.shared import environment_errors

NAME = "paper"
LOGS = True


def register(commands: argparse._SubParsersAction) -> None:
    pa = commands.add_parser("paper", help="render the paper's LaTeX from the results into RESULTS/paper")
    pa.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    pa.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    pa.add_argument("--if-stale", action="store_true", help="do nothing when the paper files are up to date")


@environment_errors
def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.outputs.files import PAPER_DIR, PAPER_FILES
    from prophet_model.study.config import load_study
    from prophet_model.workflow.commit import recover, staged
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.results import LOCK, check_consistent, prepare, stale_reasons

    study = load_study(args.config)
    results_dir = prepare(shared.results_dir(args, study), shared.results_label(args, study))
    hold_lock(results_dir, LOCK, "the results folder")
    recover(results_dir)  # what a killed command left
    check_consistent(results_dir, study, needed=("data/all_systems_comparison.csv",), producers=("run",))
    if args.if_stale and not stale_reasons(results_dir, study, "paper"):
        print(f"{results_dir / PAPER_DIR}: up to date", file=sys.stderr)
        return 0
    from prophet_model.outputs.paper import render

    texts = render(study, results_dir)  # everything rendered before anything is written
    paper_files = {f"{PAPER_DIR}/{n}" for n in PAPER_FILES}
    with staged(results_dir, study, "paper", lambda rel, e: rel in paper_files) as stage:
        for name, text in texts.items():
            path = stage / PAPER_DIR / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(texts)} to {results_dir / PAPER_DIR}")
    return 0
