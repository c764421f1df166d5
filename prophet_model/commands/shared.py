"""What several commands share: the types of --jobs and --count, the options and help of a question (sweep,
solve), which results folder a command works on and how its errors name it (an error of the machine: one
line, exit 1), CSV text for standard output, and new files for --out and --plot (never over one without
--force)."""

from __future__ import annotations

import argparse
import errno
import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prophet_model.errors import UserError
from prophet_model.study import inputs

if TYPE_CHECKING:
    import pandas as pd

    from prophet_model.study.questions.point import Question


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


def whole(text: str, what: str) -> int:
    """A whole number >= 1, else argparse's one-line error saying what it counts (`what`)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; allowed: 1, 2, ... ({what})") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not allowed; allowed: a whole number >= 1 ({what})")
    return n


def jobs(text: str) -> int:
    """--jobs N: a whole number >= 1 (0 is the default: one per core); more than the cores is capped in main."""
    return whole(text, "processes, at most one per core")


def gpus(text: str) -> int:
    """--count N: the GPUs of a system, a whole number >= 1 (the schema's upper bound is checked with the rest)."""
    return whole(text, "GPUs in the system")


VARY_HELP = (
    """keys: the model's inputs (one vectorized call for the whole grid, around the operating point the
study chose: its strategy, split and batch per GPU; study/inputs.py):
"""
    + inputs.varied_help()
    + """
or any key of the configuration that whatif --set reaches (the study re-run for each value), e.g.
implementation.kernels_per_layer or systems.8xA100.count. A key holding dots in one name goes in brackets:
uncertainty.inputs[prophet.prediction_accuracy].low

values: V1,V2,...; a:b:step (a to b inclusive); log:a:b:n (n values evenly spaced in log); mixed: 0:0.5:0.25,0.9

examples:
  python -m prophet_model sweep --system 8xA100 --vary prophet.prediction_accuracy=0:1:0.25 --plot acc.png
  python -m prophet_model sweep --gpu h100_sxm5_80gb --count 8 --interconnect nvswitch_nvlink4 --model mixtral_8x7b \\
      --vary host_link_bandwidth_factor=log:0.25:8:6
  python -m prophet_model sweep --system 8xA100 --model-file Qwen1.5-MoE-A2.7B/config.json \\
      --vary prophet.prediction_accuracy=0:1:0.25
  python -m prophet_model solve --system 8xA100 --metric speedup --target 2 --vary prophet.prediction_accuracy"""
)


def question_options(p: argparse.ArgumentParser) -> None:
    """The options that say which system, model (a catalog key, or a config.json) and strategy a sweep or solve is
    about."""
    p.add_argument("--config", default="_config.yml", help="study configuration (default: _config.yml)")
    p.add_argument("--system", help="a configured system id, e.g. 8xA100 (or give --gpu --count --interconnect)")
    p.add_argument("--gpu", help="a catalog GPU (catalog/gpus.yml key): changes --system's, or makes a system")
    p.add_argument("--count", type=gpus, help="GPUs in the system")
    p.add_argument("--interconnect", help="a catalog interconnect (catalog/interconnects.yml key)")
    model_options(p)
    p.add_argument("--strategy", choices=["EP", "DP", "Hybrid"], help="this strategy only (default: the best)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fixed change, as whatif --set (repeatable)",
    )


MODEL_FILE_HELP = (
    "a HuggingFace config.json of an MoE model (Mixtral, Qwen-MoE, OLMoE, DeepSeek-V2/V3): its model instead of "
    "the configured one, read as `catalog add-model` reads it and never written to the catalog"
)


def model_options(p: argparse.ArgumentParser) -> None:
    """--model KEY or --model-file PATH (one of them): the MoE model a question is about."""
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", help="a catalog MoE model (catalog/models.yml key)")
    which.add_argument("--model-file", metavar="CONFIG_JSON", type=Path, help=MODEL_FILE_HELP)


def read_results(args: argparse.Namespace, needed: Sequence[str], producers: Sequence[str]):
    """(study, results folder) of a command that reads the results: the folder's lock taken, and the folder
    checked complete and consistent with the study (workflow.results.check_consistent)."""
    from prophet_model.study.config import load_study
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.results import LOCK, check_consistent, owned

    study = load_study(args.config)
    folder = results_dir(args, study)
    if owned(folder):
        hold_lock(folder, LOCK, "the results folder")
    check_consistent(folder, study, needed=needed, producers=producers)
    return study, folder


def question(args: argparse.Namespace) -> Question:
    """The question of a sweep or solve, from question_options."""
    from prophet_model.study.questions.point import Question

    return Question(
        Path(args.config),
        args.system,
        tuple(args.sets),
        args.gpu,
        args.count,
        args.interconnect,
        args.model,
        args.strategy,
        args.model_file,
    )


def csv_text(rows: pd.DataFrame) -> str:
    """Deterministic CSV text (the results' float format, no index, LF line endings)."""
    import io

    from prophet_model.outputs.files import FLOAT_FORMAT

    buf = io.StringIO()
    rows.to_csv(buf, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    return buf.getvalue()


def check_new(path: Path, force: bool, option: str = "--out") -> None:
    """What write_new refuses, said before anything is computed or written: an existing file without
    --force, a folder or other non-file, a folder that does not exist."""
    if path.is_dir():
        raise UserError(
            f"{path} is a folder (never replaced, not even with --force); allowed: a file path for "
            f"{option}, e.g. {path / ('sweep.png' if option == '--plot' else 'sweep.csv')}"
        )
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a regular file (never replaced); allowed: a file path for {option}")
    if path.exists() and not force:
        raise UserError(f"{path} exists; allowed: another {option}, or --force to replace it")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder; allowed: {option} in an existing folder")


def write_new(path: Path, text: str | bytes, force: bool, option: str = "--out") -> None:
    """Write `text` to `path` through a temporary file; an existing file is replaced only with --force,
    a folder (or anything else that is not a file) never; a folder that cannot be written is named."""
    check_new(path, force, option)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(text, bytes):
            tmp.write_bytes(text)
        else:
            tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(
            f"{option} {path}: cannot write there ({exc.strerror or exc}); allowed: a file in a folder you can write to"
        ) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a folder where nothing could be made has nothing to remove
            pass
