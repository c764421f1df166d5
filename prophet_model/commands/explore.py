"""Commands that answer questions without writing the results folder: `whatif`, `sweep`, `compare` and
`analyze`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from prophet_model.errors import UserError

log = logging.getLogger("prophet_model")


def cmd_whatif(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.whatif import changed_study, headline, report

    before, after, notes = changed_study(
        Path(args.config), args.system, args.sets, args.gpu, args.model, args.interconnect
    )
    s = after.system(args.system)
    changes = [
        *args.sets,
        *(f"{k}={v}" for k, v in (("gpu", args.gpu), ("model", args.model), ("interconnect", args.interconnect)) if v),
    ]
    b, a = headline(before, args.system), headline(after, args.system)
    if args.format != "text":
        from prophet_model.commands.scripting import csv_text, whatif_json, whatif_rows

        rows = whatif_rows(b, a, args.system)
        sys.stdout.write(csv_text(rows) if args.format == "csv" else whatif_json(changes, notes, rows))
        return 0
    print(f"What if: {'; '.join(changes) or 'nothing changed'}")
    for note in notes:
        print(f"note: {note}")
    print(f"{s.name}: {s.count} x {s.gpu.name}, {s.interconnect.name}; model {after.model.name}\n")
    print(report(b.comparison, a.comparison))
    return 0


MAX_SWEEP = 2_000_000  # points; a larger grid would need several GB of memory


def cmd_sweep(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.scripting import csv_text, grid_size, parse_vary, sweep, write_new
    from prophet_model.study.config import load_study
    from prophet_model.study.runner import run_study
    from prophet_model.study.sensitivity import setups

    study = load_study(args.config)
    study.system(args.system)
    grid = parse_vary(args.vary)
    if grid_size(grid) > MAX_SWEEP:
        raise UserError(f"the grid has {grid_size(grid):,} points; allowed: at most {MAX_SWEEP:,} (fewer values)")
    results, failures = run_study(study, [args.system])
    if failures:
        raise UserError(f"{args.system}: the model failed: {failures[args.system]}")
    setup = setups(results, evaluated_only=False).get(args.system)  # a system that does not fit: its notes say why
    if setup is None:
        why = "; ".join(dict.fromkeys(f"{r.strategy}: {r.note}" for r in results.comparison.itertuples()))
        raise UserError(f"{args.system}: no strategy of this system can be evaluated ({why}); nothing to sweep")
    table = sweep(setup, grid)
    blank = int((table.note != "").sum())
    if blank:  # a result, not an error: the note column says why for each point
        print(f"{blank} of {len(table)} points not evaluated (their note column says why, e.g. "
              f"{table.note[table.note != ''].iloc[0]})", file=sys.stderr)  # fmt: skip
    text = csv_text(table)
    if args.out:
        write_new(Path(args.out), text, args.force)
        print(f"wrote {grid_size(grid)} rows to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.scripting import compare_folders, compare_text, csv_text

    if not (args.rtol >= 0):
        raise UserError(f"--rtol {args.rtol}: allowed: a number >= 0")
    table = compare_folders(Path(args.a), Path(args.b), args.rtol)
    sys.stdout.write(
        csv_text(table) if args.format == "csv" else compare_text(table, Path(args.a), Path(args.b)) + "\n"
    )
    return 1 if len(table) else 0


def cmd_analyze(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.analyze import analyze

    text, code = analyze(Path(args.results))
    print(text)
    return code
