"""The build after `run`: `paper` (the LaTeX), `pipeline` (the executed notebooks), `book` (the generated
pages and the site) and `clean` (what the artifact made, nothing else)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from prophet_model.commands.shared import environment_errors
from prophet_model.commands.shared import results_dir as _results_dir
from prophet_model.commands.shared import results_label as _results_label
from prophet_model.errors import UserError

log = logging.getLogger("prophet_model")


@environment_errors
def cmd_paper(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.outputs.files import PAPER_DIR, PAPER_FILES
    from prophet_model.study.config import load_study
    from prophet_model.workflow.commit import recover, staged
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.results import LOCK, check_consistent, prepare, stale_reasons

    study = load_study(args.config)
    results_dir = prepare(_results_dir(args, study), _results_label(args, study))
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


def _read_results(args: argparse.Namespace, needed: Sequence[str], producers: Sequence[str]):
    """(study, results folder) of a command that reads the results: the folder's lock taken, and the folder
    checked complete and consistent with the study (workflow.results.check_consistent)."""
    from prophet_model.study.config import load_study
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.results import LOCK, check_consistent, owned

    study = load_study(args.config)
    results_dir = _results_dir(args, study)
    if owned(results_dir):
        hold_lock(results_dir, LOCK, "the results folder")
    check_consistent(results_dir, study, needed=needed, producers=producers)
    return study, results_dir


@environment_errors
def cmd_pipeline(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from tqdm import tqdm

    from prophet_model.outputs.files import STUDY_FILES
    from prophet_model.workflow.bookdir import CACHE, prepare_book
    from prophet_model.workflow.nbrun import remove_stale_kernel_dirs
    from prophet_model.workflow.pipeline import clear_cache, jobs, record_timings, run_pipeline

    study, results_dir = _read_results(args, STUDY_FILES[:2], ("run",))
    book = Path(args.book)
    folder = prepare_book(book)  # refuses a folder that may not be the artifact's, before anything is written
    cache = book / CACHE
    job_list = jobs(study, book, results_dir)
    outputs = [j.output.relative_to(book).as_posix() for j in job_list]
    partial = [o.removesuffix(".ipynb") + ".partial.ipynb" for o in outputs]
    # refuses before anything is written if a notebook there, or a partial one, is the user's; the partial
    # notebooks are listed before they are written, so the next pipeline or clean removes a killed one's
    folder.claim(outputs + partial)
    folder.recover()
    remove_stale_kernel_dirs()
    if args.force:
        clear_cache(job_list, cache)
    keep = set(outputs)
    for stale in sorted((book / "systems").glob("*.ipynb")):
        rel = stale.relative_to(book).as_posix()
        if rel not in keep and folder.owns(rel):  # a system removed from the config
            folder.remove(rel)
    failed, done = [], []
    bar = tqdm(total=len(job_list), desc="notebooks", unit="nb", disable=args.quiet, file=sys.stderr)
    for o in run_pipeline(job_list, cache, args.jobs):
        bar.update()
        done.append(o)
        if o.status == "failed":
            failed.append(o)
            bar.write(f"FAILED {o.job.name}: {o.error}", file=sys.stderr)
        elif not args.quiet:
            bar.write(f"{o.status:8s} {o.job.name}" + (f" ({o.seconds:.1f} s)" if o.seconds else ""), file=sys.stderr)
        if o.note:  # shown even with --quiet: something went wrong and was recovered
            bar.write(f"note: {o.job.name}: {o.note}", file=sys.stderr)
    bar.close()
    record_timings(done, cache)
    if failed:
        print(f"error: {len(failed)} notebook(s) failed: {', '.join(o.job.name for o in failed)}", file=sys.stderr)
        return 1
    return 0


@environment_errors
def cmd_book(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.outputs.book import write_pages
    from prophet_model.outputs.files import PAPER_DIR, STUDY_FILES
    from prophet_model.workflow.bookdir import prepare_book
    from prophet_model.workflow.site import build_site

    # the pages need a complete, consistent run of this configuration and the paper
    study, results_dir = _read_results(args, (*STUDY_FILES[:2], f"{PAPER_DIR}/macros.tex"), ("run", "paper"))
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


@environment_errors
def cmd_clean(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """The results folder's files the artifact wrote, then the book folder's (each under its lock)."""
    from prophet_model.workflow.bookdir import OWNED, BookFolder, is_repository_book
    from prophet_model.workflow.commit import clean

    results_dir = Path(args.results) if args.results else None
    label = "--results"
    if results_dir is None:
        try:
            from prophet_model.study.config import load_study

            study = load_study(args.config)
            results_dir, label = _results_dir(args, study), _results_label(args, study)
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
