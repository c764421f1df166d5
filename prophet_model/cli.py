"""Command line: `python -m prophet_model run [--config FILE] [--systems ...] [--results DIR]`.

User mistakes print one clear message and exit 2; an evaluation failure exits 1; no tracebacks
for either (use --log-level DEBUG to see the traceback of an internal error).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import load_study
from .errors import UserError
from .results import staged, write_csv
from .study import run_study

log = logging.getLogger("prophet_model")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m prophet_model", description="Prophet multi-GPU scalability model")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="evaluate the study and write the CSVs")
    run.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    run.add_argument("--systems", nargs="+", metavar="ID", help="system ids to evaluate (default: all)")
    run.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def cmd_run(args: argparse.Namespace) -> int:
    study = load_study(args.config)
    results_dir = Path(args.results or study.config.study.results_dir)
    if args.systems:
        for sid in args.systems:
            study.system(sid)  # raises UserError naming the allowed ids
    cal = None
    results, failures = run_study(study, args.systems)
    cal = results.calibration
    log.info(
        "calibration on %s: compute efficiency %.3f, host-link efficiency %.3f",
        cal.gpu,
        cal.compute_efficiency,
        cal.host_efficiency,
    )
    for flag in cal.flags:
        log.warning("calibration: %s", flag)
    with staged(results_dir) as stage:
        data = stage / "data"
        for sid in results.chosen.system_id.unique():
            write_csv(results.system_rows(sid), data / f"results_{sid}.csv")
        if not results.comparison.empty:
            write_csv(results.comparison, data / "all_systems_comparison.csv")
    for sid, err in failures.items():
        log.error("system %s failed: %s", sid, err)
    log.info("wrote %s", results_dir / "data")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        return {"run": cmd_run}[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(
            f"error: internal error: {type(exc).__name__}: {exc} (rerun with --log-level DEBUG for details)",
            file=sys.stderr,
        )
        return 1
