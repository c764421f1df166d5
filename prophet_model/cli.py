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

Each command is a module of commands/ named after it (commands.COMMANDS), which registers its own options
and imports what it needs only when it runs; this module holds what they share: the global options, the
errors and exit codes, and Ctrl-C.

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


def _parser() -> argparse.ArgumentParser:
    """The global options, then every command's own (commands.COMMANDS: each module registers its parser)."""
    from prophet_model import __version__
    from prophet_model.commands import add_commands

    p = argparse.ArgumentParser(prog="python -m prophet_model", description="Prophet multi-GPU scalability model")
    p.add_argument("--version", action="version", version=f"prophet-artifact {__version__}")
    return add_commands(p)


def _console(level: str) -> None:
    """The package's log records to standard error as "LEVEL message" (the run's log file gets them all).
    Set only for a command whose module says LOGS (whatif does not, and starts 0.01 s sooner without
    importing logging); a record logged without it still reaches standard error, through logging's
    last-resort handler."""
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


FAST_PATHS = ("run", "paper", "pipeline", "book")  # workflow/fastpath.py


def _command(name: str):
    """The `main` of a command (its module imports what it needs only when main runs)."""
    from prophet_model.commands import module

    return module(name).main


def _logs(name: str) -> bool:
    """Whether the command's log records go to standard error as "LEVEL message" (its module's LOGS)."""
    from prophet_model.commands import module

    return bool(getattr(module(name), "LOGS", False))


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
        if args.command in FAST_PATHS:  # make's steps when nothing changed, before the heavy imports
            from prophet_model.workflow.fastpath import try_fast

            code = try_fast(args)
            if code is not None:
                sys.stdout.flush()
                return code
        from prophet_model.workflow.procs import roomy_heap

        roomy_heap()  # the model's large temporaries reuse heap memory
        command = _command(args.command)
        if _logs(args.command):
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
