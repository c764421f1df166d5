"""`python -m prophet_model whatif`: the headline metrics of one system under changed assumptions,
printed beside the study's (or as CSV or JSON rows for scripts), without touching any file. The changed
study (study/questions/overrides.py) is re-run whole, exactly as `make` would after the same edit to
_config.yml."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from prophet_model.study.frames import Record, StudyResults

NAME = "whatif"


def register(commands: argparse._SubParsersAction) -> None:
    from prophet_model.commands.shared import model_options

    wi = commands.add_parser(
        "whatif", help="headline metrics of one system under changed assumptions (no files written)"
    )
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
    model_options(wi)
    wi.add_argument("--interconnect", help="a catalog interconnect for the system")
    wi.add_argument("--format", default="text", choices=["text", "csv", "json"], help="output format (default: text)")


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from prophet_model.study.questions.overrides import compared_studies, headline

    before, after, notes = compared_studies(
        Path(args.config), args.system, args.sets, args.gpu, args.model, args.interconnect, args.model_file
    )
    s = after.system(args.system)
    asked = (
        ("gpu", args.gpu),
        ("model", args.model),
        ("model-file", args.model_file),
        ("interconnect", args.interconnect),
    )
    changes = [*args.sets, *(f"{k}={v}" for k, v in asked if v)]
    a = headline(after, args.system)
    b = a if before is after else None if before is None else headline(before, args.system)  # one study: once
    if args.format != "text":
        from prophet_model.commands.shared import csv_text

        rows = whatif_rows(b, a, args.system)
        sys.stdout.write(csv_text(rows) if args.format == "csv" else whatif_json(changes, notes, rows))
        return 0
    print(f"What if: {'; '.join(changes) or 'nothing changed'}")
    for note in notes:
        print(f"note: {note}")
    print(
        f"{s.name}: {s.count} x {s.gpu.name}, {s.interconnect.name}; model {after.model.name}; experts "
        f"{dict(pool='pooled', replicate='replicated')[after.config.experts.placement]}, attention TP "
        f"{after.config.parallel.attention_tp}\n"
    )
    compared = b is not None and b is not a
    from prophet_model.outputs.model_error import speedup_error

    error = speedup_error(Path(args.config).parent / after.config.study.results_dir)
    print(report(b.comparison_records if compared else [], a.comparison_records, error))
    if compared:
        print("(was ...): the same system and model at the configured inputs (without the --set changes)")
    moved = moves_line(a, args.system)
    if moved:
        print(moved)
    return 0


def moves_line(results: StudyResults, system_id: str) -> str:
    """After the table: what moves the speedup at the best operating point (baseline's best against Prophet's
    best) of the what-if, and what does not (study/questions/point.moves_at)."""
    from prophet_model.study.questions.point import moves_at

    said = moves_at(results, system_id)
    return f"What moves it: {said}" if said else ""


def _pair(b: float, p: float) -> str:
    """A setting of both variants: one value where they agree, else baseline / Prophet."""
    return f"{p:.0f}" if b == p else f"{b:.0f} / {p:.0f}"


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _note(row: Record) -> str:
    note = row.get("note")
    return note if isinstance(note, str) and note else "the model gives no numbers"


def report(before: list[Record], after: list[Record], error: float | None = None) -> str:
    """The what-if table (each strategy at its best split, batch per GPU and attention tensor-parallel
    degree, as the study searches them; baseline / Prophet where they differ), then why each strategy
    without numbers has none (model.why_infeasible: which memory term overflows and by how much),
    strategies with the same reason on one line. `before`, `after`: the comparison's records; `error`: the model's
    validated error on a speedup (percent), below which a gain is said to be within it."""
    from prophet_model.outputs import formatting as fmt
    from prophet_model.outputs.model_error import within_note

    rows, why = [], {}
    for a in after:
        b = next((r for r in before if r["strategy"] == a["strategy"]), None)
        was = "" if b is None or _missing(b.get("speedup")) else None
        if _missing(a.get("speedup")):
            was = "" if was == "" else f" (was {fmt.ratio(b['speedup'])})"
            rows.append(
                {
                    "strategy": a["strategy"],
                    "split": "",
                    "batch": "",
                    "attention TP": "",
                    "baseline tok/s": "n/a",
                    "Prophet tok/s": "n/a",
                    "speedup": "not evaluated" + was,
                    "$/1M tokens": "",
                    "savings/yr": "",
                }
            )
            why.setdefault(_note(a), []).append(str(a["strategy"]))
            continue
        shown = fmt.pair_texts(a["baseline_tokens_per_s"], a["prophet_tokens_per_s"], "tokens")
        rows.append(
            {
                "strategy": a["strategy"],
                "split": a["prophet_split"].replace("x", "×"),
                "batch": (
                    f"{a['prophet_batch']:.0f}"
                    if a["prophet_batch"] == a["baseline_batch"]
                    else f"{a['baseline_batch']:.0f} / {a['prophet_batch']:.0f}"
                ),
                "attention TP": _pair(a["baseline_attention_tp"], a["prophet_attention_tp"]),
                "baseline tok/s": shown[0],
                "Prophet tok/s": shown[1],
                "speedup": _speedup(
                    a["speedup"],
                    None if was == "" else b["speedup"],
                    "*" if fmt.within_error(a["speedup"], error) else "",
                ),
                "$/1M tokens": fmt.change(a["baseline_usd_per_1m_tokens"], a["prophet_usd_per_1m_tokens"], "usd"),
                "savings/yr": fmt.usd(a["annual_savings_usd"]),
            }
        )
    lines = [f"{', '.join(where)}: not evaluated: {reason}" for reason, where in why.items()]
    if any(fmt.within_error(a.get("speedup"), error) for a in after):
        lines.append(f"* {within_note(error)}")
    return "\n".join([fmt.text_table(rows), *lines])


def _speedup(after: float, before: float | None, mark: str = "") -> str:
    """The what-if's speedup (then `mark`) and, where there is a configured one, beside it with the decimals that
    tell the two apart: "1.018× (was 1.024×)", or "1.00× (unchanged)" where they are equal."""
    from prophet_model.outputs import formatting as fmt

    if before is None:
        return fmt.ratio(after) + mark
    was, now = fmt.pair_texts(before, after, "ratio")
    return f"{now}{mark} (unchanged)" if was == now else f"{now}{mark} (was {was})"


# headline columns of a what-if, per strategy
WHATIF_COLUMNS = (
    "baseline_split",
    "prophet_split",
    "baseline_batch",
    "prophet_batch",
    "baseline_attention_tp",
    "prophet_attention_tp",
    "placement",
    "baseline_step_ms",
    "prophet_step_ms",
    "baseline_tokens_per_s",
    "prophet_tokens_per_s",
    "speedup",
    "baseline_usd_per_1m_tokens",
    "prophet_usd_per_1m_tokens",
    "annual_savings_usd",
    "note",
)  # (note: why a strategy has no numbers, e.g. the memory that overflows)


def _value(v: object) -> object:
    """A CSV/JSON cell: floats as floats (NaN -> None), numpy scalars unwrapped."""
    import numpy as np

    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


STEP_TERMS = (
    "compute_ms",
    "fetch_ms",
    "fetch_exposed_ms",
    "comm_exposed_ms",
    "alltoall_exposed_ms",
    "allreduce_ms",
    "step_ms",
)  # the step's breakdown


def whatif_rows(before: StudyResults | None, after: StudyResults, system_id: str) -> pd.DataFrame:
    """One tidy row per strategy and case ('configured': the same system and model without the --set changes,
    none where that is no study; 'what-if'): the system (id, name, GPU,
    interconnect, count), the model, the headline columns, each variant's step-time breakdown (compute,
    expert fetch before and after hiding, exposed all-to-all, ms) and whether it fits in memory
    (`*_fits`: weights, KV cache and reserve fit; `*_holds_all_experts`: every expert stays on the GPUs)."""
    import numpy as np
    import pandas as pd

    rows = []
    for case, res in (("configured", before), ("what-if", after)):
        if res is None:
            continue
        system = res.study.system(system_id)
        chosen = res.chosen[res.chosen.system_id == system_id]
        for _, r in res.comparison[res.comparison.system_id == system_id].iterrows():
            row = {
                "system_id": system_id,
                "system": system.name,
                "gpu": system.gpu_key,
                "interconnect": system.interconnect_key,
                "n_gpus": system.count,
                "model": res.study.model_key,
                "strategy": r.strategy,
                "case": case,
                **{c: r.get(c, np.nan) for c in WHATIF_COLUMNS},
            }
            for variant in ("baseline", "prophet"):
                v = chosen[(chosen.strategy == r.strategy) & (chosen.variant == variant)]
                v = v.iloc[0] if len(v) else pd.Series(dtype=object)
                for term in STEP_TERMS[:-1]:
                    row[f"{variant}_{term}"] = v.get(term, np.nan)
                row[f"{variant}_fits"] = bool(v.get("feasible", False))
                held = v.get("holds_all_experts", np.nan)
                row[f"{variant}_holds_all_experts"] = held if pd.isna(held) else bool(held)
            rows.append(row)
    return pd.DataFrame(rows)


def whatif_json(changes: list[str], notes: list[str], rows: pd.DataFrame) -> str:
    """The what-if as JSON: the changes, the notes, and whatif_rows' rows (NaN as null)."""
    import json

    out = {
        "changes": changes,
        "notes": notes,
        "rows": [{k: _value(v) for k, v in r.items()} for r in rows.to_dict("records")],
    }
    return json.dumps(out, indent=1, sort_keys=False, allow_nan=False) + "\n"
