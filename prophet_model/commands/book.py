"""`python -m prophet_model book`: write the book's generated pages (book/_generated) from the results, and
with --build the site (jupyter-book; skipped when nothing changed)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from prophet_model.commands.shared import environment_errors, read_results

NAME = "book"
LOGS = True


def register(commands: argparse._SubParsersAction) -> None:
    bk = commands.add_parser("book", help="write the book's generated pages (book/_generated) from the results")
    bk.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    bk.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    bk.add_argument("--book", default="book", help="the book's folder (default: book)")
    bk.add_argument(
        "--build", action="store_true", help="then build the site with jupyter-book (skipped when nothing changed)"
    )


@environment_errors
def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.outputs.book import write_pages
    from prophet_model.outputs.files import PAPER_DIR, STUDY_FILES
    from prophet_model.workflow.bookdir import prepare_book
    from prophet_model.workflow.site import build_site

    # the pages need a complete, consistent run of this configuration and the paper
    study, results_dir = read_results(args, (*STUDY_FILES[:2], f"{PAPER_DIR}/macros.tex"), ("run", "paper"))
    folder = prepare_book(Path(args.book))  # refuses a folder that may not be the artifact's, before any write
    if args.build:
        from prophet_model.workflow.fastpath import PAGES_STAMP

        folder.claim(["_build"])  # a site folder of the user's is refused before any page is written
        if folder.owns("_build"):  # the fast path's stamp goes until this build has succeeded
            (folder.dir / PAGES_STAMP).unlink(missing_ok=True)
    pages = write_pages(study, results_dir, folder)
    print(f"wrote {len(pages)} generated pages to {Path(args.book) / '_generated'}")
    if args.build:
        from prophet_model.workflow.fastpath import book_inputs, write_pages_stamp
        from prophet_model.workflow.pipeline import raw_study

        inputs = book_inputs(raw_study(study), results_dir, folder.dir)  # what the pages were made from
        print(build_site(folder))
        write_pages_stamp(folder.dir, inputs, len(pages))
    return 0
