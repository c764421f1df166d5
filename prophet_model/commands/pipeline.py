"""`python -m prophet_model pipeline`: execute the notebooks (one per system, and the cross-system ones) with
papermill into the book folder, each cached by what it reads."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from prophet_model.commands.shared import environment_errors, jobs, read_results

NAME = "pipeline"
LOGS = True


def register(commands: argparse._SubParsersAction) -> None:
    pl = commands.add_parser("pipeline", help="execute the notebooks (one per system) with papermill, cached")
    pl.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    pl.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    pl.add_argument("--book", default="book", help="where executed notebooks go (default: book)")
    pl.add_argument("--jobs", type=jobs, default=0, help="notebooks at once (default: one per core)")
    pl.add_argument("--force", action="store_true", help="ignore the cache")
    pl.add_argument("--quiet", action="store_true", help="no progress bar")


@environment_errors
def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from tqdm import tqdm

    from prophet_model.outputs.files import STUDY_FILES
    from prophet_model.workflow.bookdir import CACHE, prepare_book
    from prophet_model.workflow.nbrun import remove_stale_kernel_dirs
    from prophet_model.workflow.pipeline import clear_cache, jobs, record_timings, run_pipeline

    study, results_dir = read_results(args, STUDY_FILES[:2], ("run",))
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
