"""Command line.

    python -m prophet_model run     [--config FILE] [--systems ID ...] [--results DIR] [--log-level L]
    python -m prophet_model analyze [--results DIR]
    python -m prophet_model whatif  --system ID [--set KEY=VALUE ...] [--format text|csv|json]
    python -m prophet_model sweep   --system ID | --gpu G --count N --interconnect I  [--model M] [--strategy S]
                                    [--set KEY=VALUE ...] --vary KEY=V1,V2,...|a:b:step|log:a:b:n [--vary ...]
                                    [--out FILE] [--plot FILE.png|pdf [--metric M]] [--force]
    python -m prophet_model solve   (the same system options) --metric M --target X --vary KEY [--range LOW:HIGH]
    python -m prophet_model catalog add-model --from config.json [--name KEY] [--out FILE]
    python -m prophet_model catalog add-gpu [--name KEY] [--out FILE]
    python -m prophet_model compare DIR_A DIR_B [--rtol R] [--format text|csv] [--all]   (exit 1 when they differ)
    python -m prophet_model --version

User mistakes print one clear message and exit 2; a failed evaluation exits 1; neither prints a
traceback (--log-level DEBUG writes the traceback of an internal error to the log). The environment:
standard output that cannot be written (/dev/full, a full disk) or a file that cannot be, one line and exit
1; a reader that went away (`... | head`) ends the command quietly with 141 (128 + SIGPIPE), as Unix tools
do; Ctrl-C at any moment from the package's first statement, one line and 130 (SIGTERM, SIGHUP too). A
console that cannot encode × → – gets x -> - (console.ASCII_FALLBACKS). --jobs above the cores is capped at them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prophet_model.console import encoding_safe, environment_error, pipe_closed, short_words, stdout_failed
from prophet_model.errors import UserError


def _whole(text: str, what: str) -> int:
    """A whole number >= 1, else argparse's one-line error saying what it counts (`what`)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; allowed: 1, 2, ... ({what})") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not allowed; allowed: a whole number >= 1 ({what})")
    return n


def _jobs(text: str) -> int:
    """--jobs N: a whole number >= 1 (0 is the default: one per core); more than the cores is capped in main."""
    return _whole(text, "processes, at most one per core")


def _gpus(text: str) -> int:
    """--count N: the GPUs of a system, a whole number >= 1 (the schema's upper bound is checked with the rest)."""
    return _whole(text, "GPUs in the system")


def cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a container), else os.cpu_count()."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cap_jobs(args: argparse.Namespace) -> None:
    """--jobs above the cores: as many processes as cores (more only add memory and switching), said on stderr."""
    n = getattr(args, "jobs", 0) or 0
    limit = cores()
    if n > limit:
        print(f"note: --jobs {n} capped at {limit} (the cores)", file=sys.stderr)
        args.jobs = limit


VARY_HELP = """keys: the model's inputs (one vectorized call for the whole grid, around the operating point the
study chose: its strategy, split and batch per GPU), e.g. prophet.prediction_accuracy,
prophet.comm_reduction_factor, workload.batch_size_per_gpu, interconnect_bandwidth_factor,
host_link_bandwidth_factor, expert_size_factor, kv_cache_factor, expert_cache.prophet_policy; or any key of
the configuration that whatif --set reaches (the study re-run for each value), e.g.
implementation.kernels_per_layer or systems.8xA100.count. A key holding dots in one name goes in brackets:
uncertainty.inputs[prophet.prediction_accuracy].low

values: V1,V2,...; a:b:step (a to b inclusive); log:a:b:n (n values evenly spaced in log); mixed: 0:0.5:0.25,0.9

examples:
  python -m prophet_model sweep --system 8xA100 --vary prophet.prediction_accuracy=0:1:0.25 --plot acc.png
  python -m prophet_model sweep --gpu h100_sxm5_80gb --count 8 --interconnect nvswitch_nvlink4 --model mixtral_8x7b \\
      --vary host_link_bandwidth_factor=log:0.25:8:6
  python -m prophet_model solve --system 8xA100 --metric speedup --target 2 --vary prophet.prediction_accuracy"""


def _question(p: argparse.ArgumentParser) -> None:
    """The options that say which system, model and strategy a sweep or solve is about."""
    p.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    p.add_argument("--system", help="a configured system id, e.g. 8xA100 (or give --gpu --count --interconnect)")
    p.add_argument("--gpu", help="a catalog GPU (catalog/gpus.yml key): changes --system's, or makes a system")
    p.add_argument("--count", type=_gpus, help="GPUs in the system")
    p.add_argument("--interconnect", help="a catalog interconnect (catalog/interconnects.yml key)")
    p.add_argument("--model", help="a catalog MoE model (catalog/models.yml key)")
    p.add_argument("--strategy", choices=["EP", "DP", "Hybrid"], help="this strategy only (default: the best)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fixed change, as whatif --set (repeatable)",
    )


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
    sw = sub.add_parser(
        "sweep",
        help="a tidy CSV of a system's metrics over a grid of inputs (any GPU, model, strategy)",
        epilog=VARY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _question(sw)
    sw.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="an input and its values: V1,V2,..., a:b:step or log:a:b:n (repeatable: every combination)",
    )
    sw.add_argument("--out", help="write the CSV here (default: standard output)")
    sw.add_argument("--plot", metavar="FILE", help="draw --metric against the first varied key (FILE.png or .pdf)")
    sw.add_argument("--metric", default="speedup", help="the metric --plot draws (default: speedup)")
    sw.add_argument("--force", action="store_true", help="replace an existing --out or --plot file")
    so = sub.add_parser(
        "solve",
        help="the value of one input that gives a target metric (or how close it gets)",
        epilog=VARY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _question(so)
    so.add_argument("--metric", required=True, help="a metric of the comparison, e.g. speedup, prophet_tokens_per_s")
    so.add_argument("--target", required=True, type=float, help="the metric's value wanted, e.g. 2")
    so.add_argument(
        "--vary", required=True, metavar="KEY", help="the input to solve for, e.g. prophet.prediction_accuracy"
    )
    so.add_argument("--range", metavar="LOW:HIGH", help="where to search (default: the input's allowed values)")
    so.add_argument(
        "--rerun",
        action="store_true",
        help=(
            "re-run the study at each value (strategy, split and "
            "batch searched again) instead of holding the operating point; slower"
        ),
    )
    ca = sub.add_parser("catalog", help="write catalog entries: a model from its config.json, a GPU template")
    cs = ca.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    am = cs.add_parser("add-model", help="a catalog/models.yml entry from a HuggingFace config.json")
    am.add_argument("--from", dest="source", required=True, metavar="CONFIG_JSON", help="the model's config.json")
    am.add_argument("--name", help="the entry's key (default: from the file's folder or model type)")
    am.add_argument("--out", help="write the YAML here (default: standard output); never over an existing file")
    ag = cs.add_parser("add-gpu", help="a catalog/gpus.yml entry template: every field, its unit and meaning")
    ag.add_argument("--name", default="my_gpu", help="the entry's key (default: my_gpu)")
    ag.add_argument("--out", help="write the YAML here (default: standard output); never over an existing file")
    cp = sub.add_parser("compare", help="the numbers that differ between two results folders (exit 1 if any)")
    cp.add_argument("a", help="a results folder")
    cp.add_argument("b", help="another results folder")
    cp.add_argument("--rtol", type=float, default=0.0, help="ignore relative differences up to this (default 0)")
    cp.add_argument(
        "--format",
        default="text",
        choices=["text", "csv"],
        help=(
            "text: the inputs that differ, then the headline metrics that changed most; csv: every "
            "difference (default: text)"
        ),
    )
    cp.add_argument("--all", action="store_true", help="text: list every difference after the ranked headline ones")
    cl = sub.add_parser("clean", help="remove what the artifact wrote in the results folder (nothing else)")
    cl.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    cl.add_argument("--results", help="results folder (default: study.results_dir in the config)")
    cl.add_argument("--book", default="book", help="book folder: its generated files go too (default: book)")
    an = sub.add_parser("analyze", help="summarise an existing results folder")
    an.add_argument("--results", default="results", help="results folder (default: results)")
    up = sub.add_parser(
        "uptodate",
        help=(
            "exit 0 (printing what make's steps print) when every step of make is up "
            "to date, else 1 with nothing done (or run --else COMMAND ...)"
        ),
    )
    up.add_argument(
        "--else",
        dest="otherwise",
        nargs=argparse.REMAINDER,
        default=[],
        metavar="COMMAND",
        help="run this command when a step is not up to date, and exit with its status",
    )
    return p


def _console(level: str) -> None:
    """The package's log records to standard error as "LEVEL message" (the run's log file gets them all).
    Set only where the command's modules import logging (a command that logs imports it at the top of its
    module; whatif does not, and starts 0.01 s sooner); a record logged without it still reaches standard
    error, through logging's last-resort handler."""
    if "logging" not in sys.modules:
        return
    import logging

    log = logging.getLogger("prophet_model")
    for h in list(log.handlers):
        log.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
    handler.addFilter(lambda record: not getattr(record, "log_file_only", False))
    log.addHandler(handler)
    log.propagate = False


COMMANDS = {
    "run": "run",
    "paper": "build",
    "pipeline": "build",
    "book": "build",
    "clean": "build",
    "whatif": "explore",
    "sweep": "explore",
    "compare": "explore",
    "analyze": "explore",
    "solve": "explore",
    "catalog": "explore",
}


FAST_PATHS = ("run", "paper", "pipeline", "book")  # workflow/fastpath.py


def _command(name: str):
    """The function of a command, imported only when it runs (a command loads only what it needs)."""
    import importlib

    return getattr(importlib.import_module(f"prophet_model.commands.{COMMANDS[name]}"), f"cmd_{name}")


DEPENDENCIES = ("numpy", "pandas", "yaml", "matplotlib")  # what every command's imports need


def missing_dependencies(names: Sequence[str] = DEPENDENCIES) -> list[str]:
    """The packages this Python cannot import (found without importing them: no command has run yet)."""
    import importlib.util

    return [n for n in names if importlib.util.find_spec(n) is None]


def _environment_hint(missing: list[str]) -> str:
    """What to type instead: the repository's environment (made by `make`), by its path or activated."""
    from prophet_model.paths import ROOT as root

    venv = root / ".venv" / "bin" / "python"
    return (
        f"this Python ({sys.executable}) lacks the artifact's dependencies ({', '.join(missing)}); allowed: the "
        f"repository's environment: {venv} -m prophet_model ... (or `source {root / '.venv' / 'bin' / 'activate'}` "
        "first, then python -m prophet_model ...)"
        + ("" if venv.exists() else "; it does not exist yet: run `make` in the repository to create it")
    )


INTERRUPTED = {"seen": False}  # a SIGINT came during the command (also one that C code or importlib swallowed)


def _raise_interrupt(signum, frame) -> None:
    INTERRUPTED["seen"] = True
    raise KeyboardInterrupt


def _unraisable(hook):
    """sys.unraisablehook that stays silent for a KeyboardInterrupt raised where Python can only ignore it (a
    weakref callback in importlib): main says the interrupt once, as a line, and exits 130."""

    def unraisable(u) -> None:
        if not (isinstance(u.exc_type, type) and issubclass(u.exc_type, KeyboardInterrupt)):
            hook(u)

    return unraisable


def main(argv: Sequence[str] | None = None, interrupt_handler=None) -> int:
    """Run one command; the exit status. `interrupt_handler` (from __main__): the SIGINT handler in force
    before and after the command; during it SIGINT raises KeyboardInterrupt (cleanup runs, exit 130), and an
    interrupt that an extension module's import turned into another error, or that Python ignored, still
    ends in 130."""
    import signal

    said = "previous results left as they were"
    try:
        if interrupt_handler is not None:
            INTERRUPTED["seen"] = False
            sys.unraisablehook = _unraisable(sys.unraisablehook)
            signal.signal(signal.SIGINT, _raise_interrupt)
        code = _main(argv)
        if not INTERRUPTED["seen"] or code == 130:  # 130: _main said it
            return code
        said = f"the command went on to its end (exit status {code})"  # the interrupt was swallowed on the way
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:  # also one that came while an error was being said
        if interrupt_handler is not None:
            signal.signal(signal.SIGINT, interrupt_handler)
        print(f"error: interrupted ({str(exc) or 'SIGINT'}); {said}", file=sys.stderr)
        return 130
    finally:
        if interrupt_handler is not None:
            signal.signal(signal.SIGINT, interrupt_handler)


def _main(argv: Sequence[str] | None = None) -> int:
    encoding_safe()
    missing = missing_dependencies()
    if missing:  # before any command imports pandas: say which Python to use, not "internal error"
        print(f"error: {_environment_hint(missing)}", file=sys.stderr)
        return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except SystemExit:  # --help, --version or a usage error: what argparse printed must reach its reader
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return pipe_closed()
        except OSError as exc:
            return stdout_failed(exc)
        raise
    _cap_jobs(args)
    try:
        if args.command == "uptodate":
            from prophet_model.workflow.fastpath import all_up_to_date

            return all_up_to_date(lambda step: _parser().parse_args(step), args.otherwise)
        if args.command in FAST_PATHS:  # make's steps when nothing changed, before the heavy imports
            from prophet_model.workflow.fastpath import try_fast

            code = try_fast(args)
            if code is not None:
                sys.stdout.flush()
                return code
        command = _command(args.command)  # its module imported: logging too, if it logs
        _console(getattr(args, "log_level", "INFO"))
        code = command(args, argv)
        sys.stdout.flush()  # a reader that went away (`analyze | head`) shows here, inside the handler
        return code
    except UserError as exc:  # bad input: 2; a UserError of the machine (workflow.procs.EnvironmentProblem): 1
        print(f"error: {short_words(str(exc))}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt as exc:
        print(
            f"error: interrupted ({str(exc) or 'SIGINT'}) during `{args.command}`; files are replaced only when "
            "whole, and what a killed step leaves is repaired when it runs again (or by `make`)",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        return pipe_closed()
    except OSError as exc:  # the environment (a full disk, permissions), not the input: exit 1, no traceback
        if getattr(exc, "stdout", False):
            return stdout_failed(exc)
        print(f"error: {short_words(environment_error(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:
        if INTERRUPTED["seen"]:  # Ctrl-C inside an extension's import comes back as an ImportError
            raise KeyboardInterrupt from None
        # only `run` takes --log-level (its log then holds the traceback)
        hint = " (rerun with --log-level DEBUG for the traceback in the log)" if args.command == "run" else ""
        print(f"error: internal error: {type(exc).__name__}: {short_words(str(exc))}{hint}", file=sys.stderr)
        return 1
    finally:
        from prophet_model.workflow.procs import release_locks

        release_locks()
