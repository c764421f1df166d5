"""The commands of `python -m prophet_model`, one module each, named after the command. A module defines
NAME, `register(commands)` (its parser, added to the command line's subparsers) and `main(args, argv) -> int`
(the exit status), and imports what its work needs only inside `main`, so that building the parser stays
cheap; LOGS = True where the command's log records go to standard error as "LEVEL message" (cli.py).
A new command is a new module here and its name in COMMANDS (the order of `--help`)."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

COMMANDS = (
    "run",
    "paper",
    "pipeline",
    "book",
    "whatif",
    "sweep",
    "solve",
    "catalog",
    "compare",
    "clean",
    "analyze",
    "uptodate",
)


def module(name: str) -> ModuleType:
    """The module of the command `name` (one of COMMANDS)."""
    return importlib.import_module(f"{__name__}.{name}")


def add_commands(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser` with every command of COMMANDS as a subcommand (dest `command`, required)."""
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module(name).register(commands)
    return parser
