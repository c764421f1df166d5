"""`python -m prophet_model analyze`: read a results folder (never re-run the model) and print
what is there, each system's numbers, the cost ranking, key findings, sanity checks and the last
20 lines of the latest run log. Exit 1 if files are missing or the last run did not succeed."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prophet_model.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

NAME = "analyze"


def register(commands: argparse._SubParsersAction) -> None:
    an = commands.add_parser("analyze", help="summarise an existing results folder")
    an.add_argument("--results", default="results", help="results folder (default: results)")


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    text, code = analyze(Path(args.results))
    print(text)
    return code


def _table(df: pd.DataFrame) -> str:
    from prophet_model.outputs import formatting as fmt

    return fmt.text_table(df.to_dict("records"), list(df.columns))


def analyze(results_dir: Path) -> tuple[str, int]:
    """The report text and the exit code."""
    import pandas as pd

    from prophet_model.outputs import formatting as fmt
    from prophet_model.outputs.files import expected_files
    from prophet_model.outputs.model_error import within_note
    from prophet_model.outputs.tables import problem, regenerate_hint
    from prophet_model.workflow.results import consistency_problems
    from prophet_model.workflow.runlog import SUCCESS, latest_log

    out: list[str] = [f"Results folder: {results_dir}"]
    comp_path = results_dir / "data" / "all_systems_comparison.csv"
    if not comp_path.is_file():
        out.append(
            f"MISSING: {comp_path.relative_to(results_dir)} (no results here; run `make` or `python -m prophet_model"
            " run`)"
        )
        last = latest_log(results_dir / "logs")
        if last:
            out += ["", f"Last 20 lines of {last}:", *last.read_text(encoding="utf-8").splitlines()[-20:]]
        return "\n".join(out), 1
    broken = problem(comp_path)
    if broken is not None:
        return "\n".join([*out, f"UNREADABLE: {comp_path} {broken}; {regenerate_hint(results_dir)}"]), 1
    comp = pd.read_csv(comp_path)
    ids = list(dict.fromkeys(comp["system_id"].astype(str)))

    files = expected_files(ids)
    missing = [f for f in files if not (results_dir / f).is_file()]
    out += ["", f"Generated files: {len(files) - len(missing)} of {len(files)} present"]
    out += [f"  MISSING {f}" for f in missing]
    try:
        mixed = consistency_problems(results_dir)
    except UserError as exc:
        mixed = [str(exc)]
    if mixed:
        out += ["INCONSISTENT: the files are not one run's as the artifact wrote them (run `make`):"]
        out += [f"  {line}" for line in mixed]
        missing = [*missing, *mixed]

    live = comp.dropna(subset=["speedup"]).copy()
    error = _speedup_error(results_dir)
    head = _headline(results_dir, live)
    out += ["", *headline_lines(head, error)]
    out += ["", "Per system and strategy:"]
    view = fmt.comparison_view(
        live,
        (
            "system",
            "strategy",
            "split",
            "baseline tok/s",
            "Prophet tok/s",
            "speedup",
            "all-to-all share",
            "$/1M tokens",
            "savings/yr",
        ),
    )
    marked = [fmt.within_error(x, error) for x in live.speedup]
    view["speedup"] = [t + ("*" if m else "") for t, m in zip(view["speedup"], marked, strict=True)]
    out.append(_table(view))
    if any(marked):
        out.append(f"  * {within_note(error)}")
    for r in comp[comp.speedup.isna()].itertuples():
        out.append(f"  {r.system} {r.strategy}: not evaluated ({r.note})")

    if not live.empty:
        best = live.loc[live.groupby("system_id", sort=False).prophet_usd_per_1m_tokens.idxmin()]
        best = best.sort_values("prophet_usd_per_1m_tokens", kind="stable")
        out += ["", "Cost-efficiency ranking (Prophet, each system at its cheapest strategy):"]
        for i, r in enumerate(best.itertuples(), 1):
            out.append(
                f"  {i}. {r.system} {r.strategy} {r.prophet_split}: {fmt.usd(r.prophet_usd_per_1m_tokens)} per 1M"
                f" tokens ({fmt.tokens(r.prophet_tokens_per_s)} tok/s)"
            )
        top = head.loc[head.speedup.idxmax()]
        cheap = best.iloc[0]
        comm = head.loc[head.baseline_comm_overhead_pct.idxmax()]
        out += [
            "",
            "Key findings:",
            (
                f"  Highest speedup, each side at its best: {top.system}, {fmt.speedup_within(top.speedup, error)} "
                f"({fmt.change(top.baseline_tokens_per_s, top.prophet_tokens_per_s, 'tokens')} tok/s)."
            ),
            (
                f"  Most cost-efficient: {cheap.system} {cheap.strategy} ({cheap.prophet_split}) with Prophet, "
                f"{fmt.usd(cheap.prophet_usd_per_1m_tokens)} per 1M tokens."
            ),
            (
                f"  Interconnect matters most on {comm.system} {comm.strategy} (each side at its best): all-to-all"
                f" takes {_share(comm.baseline_comm_overhead_pct, comm.prophet_comm_overhead_pct)}, its bytes per"
                f" token cut {fmt.ratio(comm.comm_reduction)}."
            ),
        ]

    checks_path = results_dir / "data" / "sanity_checks.csv"
    for path in (checks_path, results_dir / "data" / "claims.csv"):
        broken = problem(path) if path.is_file() else None
        if broken is not None:
            out += ["", f"UNREADABLE: {path} {broken}; {regenerate_hint(results_dir)}"]
            missing = [*missing, str(path)]
    if checks_path.is_file() and problem(checks_path) is None:
        checks = pd.read_csv(checks_path)
        exp = checks[checks.kind == "expectation"]
        cons = checks[checks.kind == "consistency"]
        out += [
            "",
            (
                f"Sanity checks against the draft analysis's expectations ({(exp.status == 'PASS').sum()} PASS,"
                f" {(exp.status == 'MISS').sum()} MISS):"
            ),
        ]
        view = fmt.checks_view(exp).drop(columns=["source"])
        out.append(_table(view))
        failed = cons[cons.status != "PASS"]
        out.append(f"Consistency checks: {len(cons) - len(failed)} of {len(cons)} pass")
        out += [f"  FAIL {r.system_id} {r.strategy}: {r.check}" for r in failed.itertuples()]

    claims_path = results_dir / "data" / "claims.csv"
    if claims_path.is_file() and problem(claims_path) is None:
        c = pd.read_csv(claims_path)
        out += ["", "The draft analysis's claims, checked (model figure; what each lever would need):"]
        for claim, g in c.groupby("claim", sort=False):
            r = g.iloc[0]
            levers = [
                f"{x.lever} {_lever(x.needed, x.unit)}" if not pd.isna(x.needed) else f"{x.lever}: {x.note}"
                for x in g.itertuples()
                if isinstance(x.lever, str) and x.lever
            ]
            if pd.isna(r.model):  # the claim's setup cannot be evaluated: its note says why
                out.append(f"  {claim}: {r.note}")
                continue
            out.append(
                f"  {claim}: model {fmt.value_in_unit(r.model, r.metric)} ({r.gap_pct:+.0f}%)"
                + ("; " + "; ".join(levers) if levers else "")
            )

    last = latest_log(results_dir / "logs")
    ok = False
    if last is None:
        out += ["", "MISSING: no run log in logs/"]
    else:
        lines = last.read_text(encoding="utf-8").splitlines()
        ok = bool(lines) and lines[-1].endswith(SUCCESS)
        out += ["", f"Last 20 lines of {last}:", *lines[-20:]]
        if not ok:
            out.append("The last run did not complete successfully.")
    return "\n".join(out), 0 if (ok and not missing) else 1


def _lever(value: float, unit: object) -> str:
    """A lever's needed value: a share ("of touched experts") as a percentage, like every hit rate; else the
    number and its unit."""
    from prophet_model.outputs import formatting as fmt

    unit = unit if isinstance(unit, str) else ""
    if unit.startswith("of "):
        return f"{fmt.pct(100 * value)} {unit}"
    return f"{fmt.number(value)} {unit}".rstrip()


def _share(baseline: float, prophet: float) -> str:
    """The all-to-all's share of the step, baseline → Prophet, or one share where they are equal."""
    from prophet_model.outputs import formatting as fmt

    shown = fmt.change(baseline, prophet, "pct")
    if shown.startswith("unchanged"):
        return f"{fmt.pct(baseline)} of either side's step"
    return f"{shown} of the step (baseline → Prophet)"


def _speedup_error(results_dir: Path) -> float | None:
    """The model's validated error on a speedup (results/data/validation/validated.csv), None where absent or
    damaged (outputs/tables.problem)."""
    from prophet_model.outputs.model_error import speedup_error
    from prophet_model.outputs.tables import problem

    path = results_dir / "data" / "validation" / "validated.csv"
    return speedup_error(results_dir) if path.is_file() and problem(path) is None else None


def _headline(results_dir: Path, live: pd.DataFrame) -> pd.DataFrame:
    """Each system's best baseline against its best Prophet (results/data/headline.csv, the study's headline);
    where that file is absent or unreadable, each system's row of the highest Prophet throughput."""
    import pandas as pd

    from prophet_model.outputs.tables import problem

    path = results_dir / "data" / "headline.csv"
    if path.is_file() and problem(path) is None:
        head = pd.read_csv(path).dropna(subset=["speedup"])
        if not head.empty:
            return head.reset_index(drop=True)
    rows = live.loc[live.groupby("system_id", sort=False).prophet_tokens_per_s.idxmax()]
    return rows.assign(
        baseline_strategy=rows.strategy,
        prophet_strategy=rows.strategy,
        baseline_batch=rows.get("baseline_batch"),
        prophet_batch=rows.get("prophet_batch"),
    ).reset_index(drop=True)


def _point(strategy: str, split: str, batch: float) -> str:
    """A side's operating point as the headline shows it: "EP 8×1, B 64"."""
    return f"{strategy} {split.replace('x', '×')}, B {batch:.0f}"


def headline_lines(head: pd.DataFrame, error: float | None) -> list[str]:
    """The study's headline, one row per system: the baseline's best against Prophet's best (each its strategy,
    split and batch), throughput, speedup (marked where within the model's error) and cost."""
    from prophet_model.outputs import formatting as fmt
    from prophet_model.outputs.model_error import within_note

    rows = []
    for r in head.itertuples():
        b, p = fmt.pair_texts(r.baseline_tokens_per_s, r.prophet_tokens_per_s, "tokens")
        rows.append(
            {
                "system": r.system,
                "baseline's best": _point(r.baseline_strategy, r.baseline_split, r.baseline_batch),
                "Prophet's best": _point(r.prophet_strategy, r.prophet_split, r.prophet_batch),
                "baseline tok/s": b,
                "Prophet tok/s": p,
                "speedup": fmt.ratio(r.speedup) + ("*" if fmt.within_error(r.speedup, error) else ""),
                "$/1M tokens": fmt.change(r.baseline_usd_per_1m_tokens, r.prophet_usd_per_1m_tokens, "usd"),
            }
        )
    out = ["Each system at its best (baseline's best against Prophet's best, the study's headline):"]
    out.append(fmt.text_table(rows))
    if any(fmt.within_error(x, error) for x in head.speedup):
        out.append(f"  * {within_note(error)}")
    return out
