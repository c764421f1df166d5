"""`python -m prophet_model run`: evaluate the study and write its CSVs, figures, summaries and log into
the results folder, all at once or not at all (workflow/run_study.py)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from prophet_model.commands.shared import environment_errors, jobs, results_dir, results_label

NAME = "run"
LOGS = True


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="evaluate the study; write CSVs, figures, summaries and a log")
    run.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    run.add_argument("--systems", nargs="+", metavar="ID", help="system ids to evaluate (default: all)")
    run.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.add_argument("--quiet", action="store_true", help="no progress bar or result table")
    run.add_argument("--no-figures", action="store_true", help="CSVs, summaries and checks only (quick what-ifs)")
    run.add_argument("--jobs", type=jobs, default=0, help="processes for writing outputs (default: one per core)")
    run.add_argument(
        "--if-stale", action="store_true", help="do nothing when the manifest shows the results up to date"
    )


@environment_errors
def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.study.config import load_study
    from prophet_model.workflow.run_study import RunOptions, run

    study = load_study(args.config)
    options = RunOptions(args.systems, args.if_stale, args.no_figures, args.quiet, args.jobs, args.log_level)
    return run(study, results_dir(args, study), results_label(args, study), argv, options)
