"""Which results folder a command works on, and how its errors name it (an error of the machine: one line, exit 1)."""

from __future__ import annotations

import argparse
import errno
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def results_dir(args: argparse.Namespace, study) -> Path:
    """--results, else study.results_dir relative to the config file's folder (as the catalogs are)."""
    if args.results:
        return Path(args.results)
    return study.path.parent / Path(study.config.study.results_dir).expanduser()


def results_label(args: argparse.Namespace, study) -> str:
    """How errors name the results folder: the option or the config key it came from."""
    return "--results" if args.results else f"{study.path}: study.results_dir"


def environment_errors(command: Callable[[argparse.Namespace, Sequence[str]], int]):
    """A writing command whose machine fails it (a folder it may not write, a full disk, a read-only file
    system) prints one line naming the file and exits 1, instead of an internal error's traceback-like line."""

    @functools.wraps(command)
    def wrapper(args: argparse.Namespace, argv: Sequence[str]) -> int:
        from prophet_model.workflow.procs import EnvironmentProblem

        try:
            return command(args, argv)
        except EnvironmentProblem as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except BrokenPipeError:
            raise  # the reader of standard output went away: cli.py ends quietly
        except OSError as exc:
            print(f"error: {describe_os_error(exc)}", file=sys.stderr)
            return 1

    return wrapper


def describe_os_error(exc: OSError) -> str:
    """`<file>: <what failed>; allowed: <what would work>` for an error of the machine."""
    where = exc.filename if exc.filename is not None else "(a file of the command)"
    what = (exc.strerror or type(exc).__name__).lower()
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        how = "free some disk space (or choose a folder on another disk) and run the command again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        how = "a folder this user can read and write (check its permissions), or another with --results/--book"
    else:
        how = "run the command again once the file system works"
    return f"{where}: {what}; allowed: {how}"
