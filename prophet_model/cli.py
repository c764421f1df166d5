"""Command line.

    python -m prophet_model run     [--config FILE] [--systems ID ...] [--results DIR] [--log-level L]
    python -m prophet_model analyze [--results DIR]
    python -m prophet_model whatif  --system ID [--set KEY=VALUE ...] [--format text|csv|json]
    python -m prophet_model sweep   --system ID --vary KEY=V1,V2,... [--vary ...] [--out FILE [--force]]
    python -m prophet_model compare DIR_A DIR_B [--rtol R] [--format text|csv]   (exit 1 when they differ)
    python -m prophet_model --version

User mistakes print one clear message and exit 2; a failed evaluation exits 1; neither prints a
traceback (--log-level DEBUG writes the traceback of an internal error to the log).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from prophet_model.errors import UserError

log = logging.getLogger("prophet_model")


def _jobs(text: str) -> int:
    """--jobs N: a whole number >= 1 (0 is the default: one per core)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; allowed: 1, 2, ... (processes)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not allowed; allowed: a whole number >= 1 (processes)")
    return n


def _parser() -> argparse.ArgumentParser:
    from prophet_model import __version__

    p = argparse.ArgumentParser(prog="python -m prophet_model", description="Prophet multi-GPU scalability model")
    p.add_argument("--version", action="version", version=f"prophet-artifact {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="evaluate the study; write CSVs, figures, summaries and a log")
    run.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    run.add_argument("--systems", nargs="+", metavar="ID", help="system ids to evaluate (default: all)")
    run.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.add_argument("--quiet", action="store_true", help="no progress bar or result table")
    run.add_argument("--no-figures", action="store_true", help="CSVs, summaries and checks only (quick what-ifs)")
    run.add_argument("--jobs", type=_jobs, default=0, help="processes for writing outputs (default: one per core)")
    run.add_argument(
        "--if-stale", action="store_true", help="do nothing when the manifest shows the results up to date"
    )
    pa = sub.add_parser("paper", help="render the paper's LaTeX from the results into RESULTS/paper")
    pa.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    pa.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    pa.add_argument("--if-stale", action="store_true", help="do nothing when the paper files are up to date")
    pl = sub.add_parser("pipeline", help="execute the notebooks (one per system) with papermill, cached")
    pl.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    pl.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    pl.add_argument("--book", default="book", help="where executed notebooks go (default: book)")
    pl.add_argument("--jobs", type=_jobs, default=0, help="notebooks at once (default: one per core)")
    pl.add_argument("--force", action="store_true", help="ignore the cache")
    pl.add_argument("--quiet", action="store_true", help="no progress bar")
    bk = sub.add_parser("book", help="write the book's generated pages (book/_generated) from the results")
    bk.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    bk.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    bk.add_argument("--book", default="book", help="the book's folder (default: book)")
    bk.add_argument(
        "--build", action="store_true", help="then build the site with jupyter-book (skipped when nothing changed)"
    )
    wi = sub.add_parser("whatif", help="headline metrics of one system under changed assumptions (no files written)")
    wi.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    wi.add_argument("--system", required=True, help="system id, e.g. 8xA100")
    wi.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one value, e.g. prophet.prediction_accuracy=0.6 or systems.8xA100.count=16 (repeatable)",
    )
    wi.add_argument("--gpu", help="a catalog GPU for the system (catalog/gpus.yml key)")
    wi.add_argument("--model", help="a catalog MoE model (catalog/models.yml key)")
    wi.add_argument("--interconnect", help="a catalog interconnect for the system")
    wi.add_argument("--format", default="text", choices=["text", "csv", "json"], help="output format (default: text)")
    sw = sub.add_parser("sweep", help="a tidy CSV of one system's headline metrics over a grid of inputs")
    sw.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    sw.add_argument("--system", required=True, help="system id, e.g. 8xA100 (its headline strategy and split)")
    sw.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                    help="an input and its values (repeatable: every combination is evaluated)")  # fmt: skip
    sw.add_argument("--out", help="write the CSV here (default: standard output)")
    sw.add_argument("--force", action="store_true", help="replace an existing --out file")
    cp = sub.add_parser("compare", help="the numbers that differ between two results folders (exit 1 if any)")
    cp.add_argument("a", help="a results folder")
    cp.add_argument("b", help="another results folder")
    cp.add_argument("--rtol", type=float, default=0.0, help="ignore relative differences up to this (default 0)")
    cp.add_argument("--format", default="text", choices=["text", "csv"], help="output format (default: text)")
    cl = sub.add_parser("clean", help="remove what the artifact wrote in the results folder (nothing else)")
    cl.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    cl.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    an = sub.add_parser("analyze", help="summarise an existing results folder")
    an.add_argument("--results", default="results", help="results folder (default: results)")
    return p


def _console(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
    handler.addFilter(lambda record: not getattr(record, "log_file_only", False))
    log.addHandler(handler)
    log.propagate = False


def _result_table(comparison) -> str:
    from prophet_model.commands.analyze import _table
    from prophet_model.outputs.formatting import comparison_view

    return _table(
        comparison_view(comparison, ("system", "strategy", "baseline tok/s", "Prophet tok/s", "speedup", "$/1M tokens"))
    )


def _results_dir(args: argparse.Namespace, study) -> Path:
    """--results, else study.results_dir relative to the config file's folder (as the catalogs are)."""
    if args.results:
        return Path(args.results)
    return study.path.parent / Path(study.config.study.results_dir).expanduser()


def _results_label(args: argparse.Namespace, study) -> str:
    """How errors name the results folder: the option or the config key it came from."""
    return "--results" if args.results else f"{study.path}: study.results_dir"


class _NotCommitted(Exception):
    """A part of the run failed after staging began: nothing is moved into the results folder."""

    def __init__(self, failures: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in failures.items()))
        self.failures = failures


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.study.config import load_study
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.results import LOCK, SYSTEM_FILES, owned, prepare, staged, stale_reasons, system_of

    study = load_study(args.config)
    for sid in args.systems or ():
        study.system(sid)  # raises UserError naming the allowed ids
    if args.if_stale and (args.systems or args.no_figures):
        raise UserError("--if-stale checks a whole run; allowed: --if-stale without --systems and --no-figures")
    results_dir = _results_dir(args, study)
    if owned(results_dir):
        hold_lock(results_dir, LOCK, "the results folder")  # another make in this checkout goes first
    if args.if_stale and owned(results_dir):
        reasons = stale_reasons(results_dir, study, "run")
        if not reasons:
            print(f"{results_dir}: results up to date (config {study.config_hash})", file=sys.stderr)
            return 0
        print(f"{results_dir}: rerunning: {reasons[0]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""),
              file=sys.stderr)  # fmt: skip
    from tqdm import tqdm

    from prophet_model.outputs.report import run_parallel, write_cross_system, write_system
    from prophet_model.study.checks import all_checks, input_warnings
    from prophet_model.study.claims import sentence, single_gpu_claims
    from prophet_model.study.rates import hardware_lines
    from prophet_model.study.runner import run_study
    from prophet_model.workflow.runlog import SUCCESS, close_log, open_log, write_header

    hardware = hardware_lines(study)  # a measurement that gives an efficiency above 1 stops here, before any write
    results_dir = prepare(results_dir, _results_label(args, study))  # refuses folders that are not the artifact's
    hold_lock(results_dir, LOCK, "the results folder")
    log_path = open_log(results_dir / "logs", args.log_level)
    try:
        write_header(study, list(argv))

        def on_system(system, df, exc) -> None:
            if exc is not None:
                log.error("system %s: evaluation failed: %s", system.id, exc)
                return
            for r in df.itertuples():
                if r.ep and r.feasible:
                    log.info(
                        "%s %s %s ep=%d dp=%d: %.1f tok/s, step %.3f ms (compute %.3f, fetch %.3f, comm %.3f)",
                        system.id, r.strategy, r.variant, r.ep, r.dp, r.tokens_per_s, r.step_ms,
                        r.compute_ms, r.fetch_exposed_ms, r.comm_exposed_ms,
                    )  # fmt: skip
                else:
                    log.info("%s %s %s: not evaluated (%s)", system.id, r.strategy, r.variant, r.note)

        results, failures = run_study(study, args.systems, on_system)
        if not failures:
            nothing_fits(results.comparison)  # exit 2 naming the cause, before anything is written
        for line in hardware:
            log.info("hardware: %s", line)
        single = single_gpu_claims(study)
        for c in single:
            log.warning("claim: %s", sentence(c))
        for w in input_warnings(study, results.chosen):
            log.warning("%s", w)
        checks = all_checks(study, results.chosen, results.comparison)
        for c in checks.itertuples():
            level = logging.INFO if c.status == "PASS" else logging.WARNING
            log.log(
                level,
                "check %s %s %s %s: %s (expected %g-%g)",
                c.status,
                c.system_id,
                c.strategy,
                c.check,
                f"{c.value:.6g}",
                c.min,
                c.max,
            )

        from prophet_model.study.claims import expectation_claims, need_claims
        from prophet_model.study.sensitivity import setups

        if results.comparison.empty:
            claims = single
        else:
            chosen_setups = setups(results)
            missed = expectation_claims(study, chosen_setups, checks)
            for c in missed:
                log.warning("claim: %s", sentence(c))
            needs = need_claims(study, chosen_setups)
            for c in needs:
                log.info("what Prophet needs: %s", sentence(c))
            claims = single + missed + needs

        uncertainty = None
        if study.config.uncertainty and not results.comparison.empty:
            from prophet_model.study.sensitivity import monte_carlo, outside_interval

            uncertainty = monte_carlo(results, progress=not args.quiet)
            u = study.config.uncertainty
            log.info("Monte Carlo: %d samples, seed %d, inputs %s", u.samples, u.seed, ", ".join(u.inputs))
            for line in outside_interval(uncertainty):
                log.warning("uncertainty: %s", line)
        if failures:
            log.error("ERROR %d system(s) failed: %s; nothing was written, the previous results are left as they "
                      "were", len(failures), "; ".join(f"{k}: {v}" for k, v in failures.items()))  # fmt: skip
            return 1
        done = [s for s in study.systems if s.id in set(results.chosen.get("system_id", []))]
        figs = not args.no_figures
        partial = bool(args.systems)
        mine = {s.id for s in done} if partial else None

        def scope(rel: str, entry: dict) -> bool:
            """The files this run replaces: a partial run touches only its own outputs."""
            if not figs and rel.startswith("figures/"):
                return False
            if partial:
                return system_of(rel) in mine
            return True

        with staged(results_dir, study, "run", scope) as stage:
            tasks = [
                (write_system, (results, checks, system, stage, figs, uncertainty, claims), system.id)
                for system in done
            ]
            if not partial:  # the cross-system files need every system
                tasks.append((write_cross_system, (results, checks, stage, figs, uncertainty, claims), "cross-system"))
            bar = tqdm(total=len(tasks), desc="outputs", unit="part", disable=args.quiet, file=sys.stderr)
            for name, paths, exc in run_parallel(tasks, args.jobs):
                bar.update()
                if exc is not None:
                    failures[name] = f"writing outputs failed: {exc}"
                    log.error("%s: %s", name, failures[name])
                else:
                    log.info("%s: wrote %d files", name, len(paths))
            bar.close()
            if failures:  # nothing is committed: the staging folder goes, the previous results stay
                raise _NotCommitted(failures)
            if partial:
                log.info("partial run (--systems): wrote only %s; the cross-system files are left as they were",
                         ", ".join(p.format(id=i) for i in sorted(mine) for p in SYSTEM_FILES[:1]))  # fmt: skip
        log.info("results in %s", results_dir.resolve())
        if not args.quiet and not results.comparison.empty:
            print(_result_table(results.comparison))
        log.info(SUCCESS)
        print(f"log: {log_path}", file=sys.stderr)
        return 0
    except _NotCommitted as exc:
        log.error("ERROR %d part(s) failed: %s; nothing was replaced, the previous results are left as they were",
                  len(exc.failures), "; ".join(f"{k}: {v}" for k, v in exc.failures.items()))  # fmt: skip
        return 1
    except BaseException as exc:
        log.debug("traceback", exc_info=True)
        # a UserError is printed once by main; the log still ends with it
        log.error("ERROR %s: %s", type(exc).__name__, exc, extra={"log_file_only": isinstance(exc, UserError)})
        raise
    finally:
        close_log()


def nothing_fits(comparison) -> None:
    """A UserError naming why, when no system and strategy of the comparison has numbers; a study in
    which some do is a result (the others say why in their note)."""
    if comparison.empty or comparison.speedup.notna().any():
        return
    why = {}
    for r in comparison.itertuples():
        why.setdefault(str(r.note) if isinstance(r.note, str) and r.note else "not evaluated", []).append(
            f"{r.system_id} {r.strategy}"
        )
    lines = "; ".join(f"{', '.join(where)}: {reason}" for reason, where in why.items())
    memory = any("(before any expert)" in reason for reason in why)  # model.why_infeasible's wording
    hint = (
        "a smaller workload.batch_size_per_gpu, workload.context_length_tokens or workload.reserved_memory_gb, "
        "a smaller model, or GPUs with more memory"
        if memory
        else "a strategy or system that can be evaluated (strategies, systems in the config)"
    )
    raise UserError(f"no system and strategy can be evaluated: {lines}; allowed: {hint}")


def cmd_paper(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.study.config import load_study
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.results import (
        LOCK,
        PAPER_DIR,
        PAPER_FILES,
        check_consistent,
        prepare,
        staged,
        stale_reasons,
    )

    study = load_study(args.config)
    results_dir = prepare(_results_dir(args, study), _results_label(args, study))
    hold_lock(results_dir, LOCK, "the results folder")
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


def cmd_pipeline(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from tqdm import tqdm

    from prophet_model.study.config import load_study
    from prophet_model.workflow.bookdir import CACHE, BookFolder
    from prophet_model.workflow.pipeline import clear_cache, jobs, record_timings, run_pipeline
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.results import LOCK, STUDY_FILES, check_consistent, owned

    study = load_study(args.config)
    results_dir = _results_dir(args, study)
    if owned(results_dir):
        hold_lock(results_dir, LOCK, "the results folder")
    check_consistent(results_dir, study, needed=STUDY_FILES[:2], producers=("run",))
    book = Path(args.book)
    folder = BookFolder(book)
    cache = book / CACHE
    job_list = jobs(study, book, results_dir)
    outputs = [j.output.relative_to(book).as_posix() for j in job_list]
    partial = [o.removesuffix(".ipynb") + ".partial.ipynb" for o in outputs]
    theirs = folder.foreign(partial)
    if theirs:
        raise UserError(f"--book {book}: {', '.join(theirs)} would be overwritten while a notebook runs; move it away")
    folder.claim(outputs)  # refuses before anything is written if a notebook there is the user's
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
    bar.close()
    record_timings(done, cache)
    if failed:
        print(f"error: {len(failed)} notebook(s) failed: {', '.join(o.job.name for o in failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_book(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.outputs.book import build_site, write_pages
    from prophet_model.study.config import load_study
    from prophet_model.workflow.bookdir import BookFolder
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.results import LOCK, owned

    study = load_study(args.config)
    results_dir = _results_dir(args, study)
    if owned(results_dir):
        hold_lock(results_dir, LOCK, "the results folder")
    folder = BookFolder(Path(args.book))
    pages = write_pages(study, results_dir, folder)
    print(f"wrote {len(pages)} generated pages to {Path(args.book) / '_generated'}")
    if args.build:
        print(build_site(folder))
    return 0


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

        rows = whatif_rows(args.system, b, a)
        sys.stdout.write(csv_text(rows) if args.format == "csv" else whatif_json(changes, notes, rows))
        return 0
    print(f"What if: {'; '.join(changes) or 'nothing changed'}")
    for note in notes:
        print(f"note: {note}")
    print(f"{s.name}: {s.count} x {s.gpu.name}, {s.interconnect.name}; model {after.model.name}\n")
    print(report(b, a))
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


def cmd_clean(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.workflow.results import clean

    results_dir = Path(args.results) if args.results else None
    if results_dir is None:
        try:
            from prophet_model.study.config import load_study

            results_dir = _results_dir(args, load_study(args.config))
        except UserError:
            results_dir = Path("results")  # a broken config must not stop a clean
    if not results_dir.exists():
        print(f"{results_dir}: nothing to remove")
        return 0
    kept = clean(results_dir)
    if kept:
        print(f"{results_dir}: removed the artifact's files; kept {len(kept)} of yours: {', '.join(kept[:5])}")
    else:
        print(f"{results_dir}: removed")
    return 0


def cmd_analyze(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.analyze import analyze

    text, code = analyze(Path(args.results))
    print(text)
    return code


def _encoding_safe() -> None:
    """Console streams that cannot encode a character (PYTHONIOENCODING=ascii, a C locale) print it
    as an escape (\\u00d7) instead of failing after the results are written."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot be reconfigured keeps its settings
                pass


def _pipe_closed() -> int:
    """The reader of standard output went away (`analyze | head`): stop quietly, as `cat` does. Later
    writes (and the interpreter's final flush) go to /dev/null; 141 = 128 + SIGPIPE."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    _encoding_safe()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    for h in list(log.handlers):
        log.removeHandler(h)
    _console(getattr(args, "log_level", "INFO"))
    try:
        code = {
            "run": cmd_run,
            "paper": cmd_paper,
            "pipeline": cmd_pipeline,
            "book": cmd_book,
            "whatif": cmd_whatif,
            "sweep": cmd_sweep,
            "compare": cmd_compare,
            "analyze": cmd_analyze,
            "clean": cmd_clean,
        }[args.command](args, argv)
        sys.stdout.flush()  # a reader that went away (`analyze | head`) shows here, inside the handler
        return code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"error: interrupted ({exc or 'SIGINT'}); previous results left as they were", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _pipe_closed()
    except Exception as exc:
        # only `run` takes --log-level (its log then holds the traceback)
        hint = " (rerun with --log-level DEBUG for the traceback in the log)" if args.command == "run" else ""
        print(f"error: internal error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1
    finally:
        from prophet_model.workflow.procs import release_locks

        release_locks()
