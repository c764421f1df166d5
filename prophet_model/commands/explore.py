"""Commands that answer questions without writing the results folder: `whatif`, `sweep`, `solve`,
`compare`, `analyze`, and `catalog` (entries printed, or written to a new file)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from prophet_model.errors import UserError


def cmd_whatif(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.study.questions.overrides import changed_study, headline, report

    before, after, notes = changed_study(
        Path(args.config), args.system, args.sets, args.gpu, args.model, args.interconnect
    )
    s = after.system(args.system)
    changes = [
        *args.sets,
        *(f"{k}={v}" for k, v in (("gpu", args.gpu), ("model", args.model), ("interconnect", args.interconnect)) if v),
    ]
    b = headline(before, args.system)
    a = headline(after, args.system) if changes else b  # nothing changed: the same study, evaluated once
    if args.format != "text":
        from prophet_model.commands.scripting import csv_text, whatif_json, whatif_rows

        rows = whatif_rows(b, a, args.system)
        sys.stdout.write(csv_text(rows) if args.format == "csv" else whatif_json(changes, notes, rows))
        return 0
    print(f"What if: {'; '.join(changes) or 'nothing changed'}")
    for note in notes:
        print(f"note: {note}")
    print(
        f"{s.name}: {s.count} x {s.gpu.name}, {s.interconnect.name}; model {after.model.name}; experts "
        f"{dict(pool='pooled', replicate='replicated')[after.config.experts.placement]}, attention TP "
        f"{after.config.parallel.attention_tp}\n"
    )
    print(report(b.comparison_records, a.comparison_records))
    return 0


def cmd_sweep(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.study.questions.solve import run_sweep

    return run_sweep(args)


def cmd_solve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.study.questions.solve import run_solve

    return run_solve(args)


def cmd_catalog(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.catalog import run_catalog

    return run_catalog(args)


def cmd_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.scripting import compare_folders, csv_text

    if not (args.rtol >= 0):
        raise UserError(f"--rtol {args.rtol}: allowed: a number >= 0")
    table = compare_folders(Path(args.a), Path(args.b), args.rtol)
    if args.format == "csv":
        sys.stdout.write(csv_text(table))
    else:
        from prophet_model.commands.compare import people_text

        sys.stdout.write(people_text(table, Path(args.a), Path(args.b), args.all) + "\n")
    return 1 if len(table) else 0


def cmd_analyze(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.analyze import analyze

    text, code = analyze(Path(args.results))
    print(text)
    return code
