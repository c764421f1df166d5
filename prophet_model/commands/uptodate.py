"""`python -m prophet_model uptodate`: exit 0 (printing what make's steps print) when every step of make is
up to date, else 1 with nothing done, or run --else COMMAND ... (workflow/fastpath.py): the no-op `make`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

NAME = "uptodate"


def register(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser(
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


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Each of make's steps parsed as the command line parses it (every command's options and defaults)."""
    from prophet_model.commands import add_commands
    from prophet_model.workflow.fastpath import all_up_to_date

    steps = add_commands(argparse.ArgumentParser(prog="python -m prophet_model"))
    return all_up_to_date(steps.parse_args, args.otherwise)
