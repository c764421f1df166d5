"""`python -m prophet_model sweep`: a tidy CSV of a system's metrics over a grid of inputs (any GPU, model,
strategy; study/questions/sweep.py), on standard output or a new --out file, and a --plot of throughput and
one metric against the first varied key."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prophet_model.commands.shared import VARY_HELP, check_new, question, question_options, write_new
from prophet_model.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

NAME = "sweep"


def register(commands: argparse._SubParsersAction) -> None:
    sw = commands.add_parser(
        "sweep",
        help="a tidy CSV of a system's metrics over a grid of inputs (any GPU, model, strategy)",
        epilog=VARY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    question_options(sw)
    sw.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="an input and its values: V1,V2,..., a:b:step or log:a:b:n (repeatable: every combination)",
    )
    sw.add_argument("--out", help="write the CSV here (default: standard output)")
    sw.add_argument(
        "--plot",
        metavar="FILE",
        help="draw both variants' throughput and --metric against the first varied key, the title naming what is "
        "held: system, model, strategy, split, batch (FILE.png or .pdf)",
    )
    sw.add_argument("--metric", default="speedup", help="the metric --plot draws beside throughput (default: speedup)")
    sw.add_argument("--force", action="store_true", help="replace an existing --out or --plot file")


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.commands.shared import csv_text
    from prophet_model.study.questions.sweep import check_metric, sweep_grid
    from prophet_model.study.yaml_io import read_yaml

    if args.plot:  # every option that says where to write, checked before anything is computed or written
        check_metric(args.metric)
        plot_format(Path(args.plot))
        check_new(Path(args.plot), args.force, "--plot")
    if args.out:
        check_new(Path(args.out), args.force, "--out")
        if args.plot and Path(args.out).resolve() == Path(args.plot).resolve():
            raise UserError(f"--out and --plot are the same file ({args.out}); allowed: two different files")
    done = sweep_grid(question(args), args.vary, read_yaml(Path(args.config)))
    table, keys = done.table, done.keys
    text = csv_text(table)
    if args.out:
        write_new(Path(args.out), text, args.force)
        print(f"wrote {len(table)} rows to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.plot and not table[args.metric].notna().any():
        print(
            f"note: {args.plot} not written: no point of the grid has a {args.metric} (the note column says why)",
            file=sys.stderr,
        )
    elif args.plot:
        title = held(table, done.setup.system.name, done.study.model.name)
        save_figure(plot(table, keys, args.metric, title), Path(args.plot), args.force)
        print(f"wrote {args.plot} (throughput and {args.metric} against {keys[0]})", file=sys.stderr)
    return 0


def held(table: pd.DataFrame, system: str, model: str) -> str:
    """What a sweep holds, in words: the system, the model, and the strategy, split and batch per GPU where one
    value serves every row (a configuration key re-runs the study, which may choose them again)."""
    parts = [system, f"model {model}"]
    one = {c: table[c].unique() for c in ("strategy", "split", "baseline_batch", "prophet_batch") if c in table}
    if len(one["strategy"]) == 1 and len(one["split"]) == 1:
        parts.append(f"{one['strategy'][0]} {str(one['split'][0]).replace('x', '×')}")
    else:
        parts.append("strategy and split chosen at each value")
    if "baseline_batch" not in one:
        pass  # the batch is swept
    elif len(one["baseline_batch"]) == 1 and len(one["prophet_batch"]) == 1:
        b, p = one["baseline_batch"][0], one["prophet_batch"][0]
        parts.append(f"batch per GPU {b:.0f}" if b == p else f"batch per GPU {b:.0f} (baseline) / {p:.0f} (Prophet)")
    else:
        parts.append("batch per GPU chosen at each value")
    return ", ".join(parts)


def plot(table: pd.DataFrame, keys: list[str], metric: str, title: str):
    """Two panels against the first varied key: both variants' throughput (tokens/s), and `metric`; one line
    per value of the second key (further keys at their first value, named in the title): a matplotlib figure."""
    import textwrap

    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prophet_model.outputs.figures import VARIANT_COLOR, VARIANT_LABEL, plain

    x = keys[0]
    rest = {k: table[k].iloc[0] for k in keys[2:]}
    sub = table
    for k, v in rest.items():
        sub = sub[sub[k] == v]
    fig, (tput, right) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=150)
    groups = list(sub.groupby(keys[1], sort=False)) if len(keys) > 1 else [(None, sub)]
    styles = ("-", "--", ":", "-.")
    for i, (value, g) in enumerate(groups):
        said = "" if value is None else f", {plain(keys[1])} = {plain(_label(value))}"
        for variant in ("baseline", "prophet"):
            tput.plot(
                g[x],
                g[f"{variant}_tokens_per_s"],
                styles[i % len(styles)],
                color=VARIANT_COLOR[variant],
                marker="o",
                ms=3,
                label=f"{VARIANT_LABEL[variant]}{said}",
            )
        right.plot(g[x], g[metric], styles[i % len(styles)], marker="o", ms=3, label=said.removeprefix(", ") or None)
    xs = pd.to_numeric(sub[x], errors="coerce")
    for ax, ylabel in ((tput, "throughput (tokens/s)"), (right, metric)):
        if xs.notna().all() and (xs > 0).all() and xs.max() / xs.min() >= 20:
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ticks = sorted(set(xs.tolist()))
            if len(ticks) <= 12:  # the values swept, written as numbers
                ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(plain(x))
        ax.set_ylabel(plain(ylabel))
        ax.grid(alpha=0.3)
    tput.set_ylim(bottom=0)
    tput.legend(fontsize=6)
    if len(keys) > 1:
        right.legend(fontsize=6)
    text = title + "".join(f"; {k} = {_label(v)}" for k, v in rest.items())
    fig.suptitle(plain(textwrap.fill(text, 120)), fontsize=7)
    fig.tight_layout()
    return fig


def _label(value: object) -> str:
    import numpy as np

    return f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)


def save_figure(fig, path, force: bool) -> None:
    """Write the figure to `path` (.png or .pdf) as shared.write_new writes a file: never over an
    existing one without --force."""
    import io

    suffix = plot_format(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=suffix, metadata={"CreationDate": None} if suffix == "pdf" else None)
    write_new(path, buf.getvalue(), force, "--plot")


def plot_format(path: Path) -> str:
    """The figure format of a --plot file name (png or pdf), else a UserError."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf"):
        raise UserError(f"--plot {path}: allowed: a file name ending in .png or .pdf")
    return suffix
