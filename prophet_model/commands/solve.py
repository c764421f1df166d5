"""`python -m prophet_model solve`: the value of one input that gives a target metric, or how close it
gets (study/questions/solve.py), in one line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from prophet_model.commands.shared import VARY_HELP, question, question_options

NAME = "solve"


def register(commands: argparse._SubParsersAction) -> None:
    so = commands.add_parser(
        "solve",
        help="the value of one input that gives a target metric (or how close it gets)",
        epilog=VARY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    question_options(so)
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


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.study.questions.solve import solve

    print(solve(question(args), args.metric, args.target, args.vary, args.range, args.rerun))
    return 0
