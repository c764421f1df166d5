"""`python -m prophet_model clean`: remove what the artifact wrote in the results folder and the book folder,
nothing else."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from prophet_model.commands import shared
from prophet_model.commands.shared import environment_errors
from prophet_model.errors import UserError

NAME = "clean"
LOGS = True


def register(commands: argparse._SubParsersAction) -> None:
    cl = commands.add_parser("clean", help="remove what the artifact wrote in the results folder (nothing else)")
    cl.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    cl.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    cl.add_argument("--book", default="book", help="book folder: its generated files go too (default: book)")


@environment_errors
def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """The results folder's files the artifact wrote, then the book folder's (each under its lock)."""
    from prophet_model.workflow.bookdir import OWNED, BookFolder, is_repository_book
    from prophet_model.workflow.commit import clean

    results_dir = Path(args.results) if args.results else None
    label = "--results"
    if results_dir is None:
        try:
            from prophet_model.study.config import load_study

            study = load_study(args.config)
            results_dir, label = shared.results_dir(args, study), shared.results_label(args, study)
        except UserError:
            results_dir = Path("results")  # a broken config must not stop a clean
    if not results_dir.exists() and not results_dir.is_symlink():
        print(f"{results_dir}: nothing to remove")
    else:
        kept = clean(results_dir, label)
        if kept:
            print(f"{results_dir}: removed the artifact's files; kept {len(kept)} of yours: {', '.join(kept[:5])}")
        else:
            print(f"{results_dir}: removed")
    book = Path(getattr(args, "book", None) or "book")
    if book.is_dir() and not book.is_symlink() and ((book / OWNED).is_file() or is_repository_book(book)):
        kept = BookFolder(book).clean()
        print(
            f"{book}: removed the artifact's files"
            + (f"; kept {len(kept)} of yours: {', '.join(kept[:5])}" if kept else "")
        )
    return 0
