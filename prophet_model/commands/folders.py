"""Which results folder a command works on, and how its errors name it."""

from __future__ import annotations

import argparse
from pathlib import Path


def results_dir(args: argparse.Namespace, study) -> Path:
    """--results, else study.results_dir relative to the config file's folder (as the catalogs are)."""
    if args.results:
        return Path(args.results)
    return study.path.parent / Path(study.config.study.results_dir).expanduser()


def results_label(args: argparse.Namespace, study) -> str:
    """How errors name the results folder: the option or the config key it came from."""
    return "--results" if args.results else f"{study.path}: study.results_dir"
