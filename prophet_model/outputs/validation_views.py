"""The validation page's tables and text (notebooks/validation.ipynb, through views): read from the files `run`
writes under results/data/validation/ (validation_results), numbers formatted here and by formatting.py, the
long prose in templates/book/validation_*.md.j2. Nothing here predicts or reads a measurement."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.formatting import table_html
from prophet_model.outputs.templating import environment
from prophet_model.outputs.validation_results import facts, read, validated
from prophet_model.study.config import Study

Results = str | Path  # the results folder


def paragraph(template: str, **context: object) -> str:
    """templates/book/<template> rendered, its lines joined by spaces: one Markdown paragraph per block of lines
    (a blank line in the template starts the next; the paragraphs are separated by a blank line)."""
    text = environment().get_template(f"book/{template}").render(**context)
    blocks = [" ".join(line.strip() for line in b.splitlines() if line.strip()) for b in text.split("\n\n")]
    return "\n\n".join(b for b in blocks if b)


def first_shown(template: str, title: str, **context: object) -> str:
    """templates/book/<template> rendered (paragraph): its first paragraph shown, the others folded under `title`."""
    first, _, rest = paragraph(template, **context).partition("\n\n")
    return first + ("\n\n" + folded_markdown(rest, title) if rest else "")


def limit_pct(results: Results) -> float:
    """The verdicts' limit (%): a median |error| at most this is 'within' (measured.summary.VERDICT_LIMIT_PCT)."""
    return float(facts(results)["verdict_limit_pct"])


def points(results: Results) -> pd.DataFrame:
    """Every measured primitive beside its predictions (points.csv): what the figures draw."""
    return read(results, "points")


def table(results: Results, stem: str) -> pd.DataFrame:
    """A table of results/data/validation/ as the page shows it (the first column the index where it names rows)."""
    t = read(results, stem)
    index = {"ceilings": "measured on", "alltoall_split": "per-rank buffer", "link_blocks": "thread blocks"}
    return t.set_index(index[stem]) if stem in index else t


def provenance(results: Results) -> pd.DataFrame:
    """Which machines were measured, on what, with which software (each folder's env.json, as run read it); the
    planned machines without a measurement are named by planned_machines, not listed as empty rows."""
    m = read(results, "machines")
    return m[m.measured.astype(bool)][["machine", "GPUs", "software"]].fillna("").reset_index(drop=True)


def planned_machines(results: Results) -> str:
    """The machines validation/machines.yml plans that have no measurement, in one sentence (Markdown); "" when
    every planned machine was measured."""
    m = read(results, "machines")
    planned = [str(x) for x in m[~m.measured.astype(bool)].machine]
    if not planned:
        return ""
    return (
        f"Planned in `validation/machines.yml`, with no measurement committed: {fmt.md(', '.join(planned))}. "
        "Nothing on this page rests on them; the model's predictions for them are drawn under *Toward 4 and 8 GPUs* "
        "and listed under *Predictions for the 2×H200 sets*."
    )


def calibrated(results: Results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The separate calibrated variant: (fitted values, errors after)."""
    return read(results, "calibrated_fits"), read(results, "calibrated_summary")


def validation_summary(results: Results) -> tuple[pd.DataFrame, str]:
    """The summary per primitive as a table narrow enough for a page, and the reasons for every
    primitive whose median error exceeds the verdicts' limit, as a Markdown list."""
    v = read(results, "summary").fillna({"why": ""})
    cols = [
        "primitive",
        "points",
        "median |error| %",
        "datasheet only: median |error| %",
        "worst |error| %",
        "worst at",
        "verdict",
    ]
    reasons = "\n".join(f"- **{fmt.md(p)}**: {fmt.md(why)}" for p, why in zip(v.primitive, v.why, strict=True) if why)
    return v[cols].reset_index(drop=True), reasons


def _kib(b: float) -> str:
    return f"{b / 1024:,.0f} KiB" if b < 2**20 else f"{b / 2**20:,.0f} MiB"


def alltoall_finding(results: Results, study: Study) -> str:
    """The latency- vs bandwidth-bound finding, in words, with the measured numbers."""
    f = facts(results)
    r, m = f["alltoall_regimes"], study.model
    batch = study.config.workload.batch_size_per_gpu
    return paragraph(
        "validation_alltoall.md.j2",
        gpus=f["alltoall_gpus"],
        floor_us=f"{r['floor_us']:.1f}",
        latency_bound_up_to=_kib(r["latency_bound_up_to_bytes"]),
        bandwidth_bound_from=_kib(r["bandwidth_bound_from_bytes"]),
        largest=_kib(r["largest_bytes"]),
        largest_gbps=f"{r['largest_gbps']:.0f}",
        model=m.name,
        top_k=m.top_k,
        hidden=m.hidden_size,
        per_token_kib=f"{f['alltoall_per_token_bytes'] / 1024:.0f}",
        latency_tokens=f"{r['latency_bound_up_to_tokens']:,.0f}",
        bandwidth_tokens=f"{r['bandwidth_bound_from_tokens']:,.0f}",
        batch=batch,
        in_latency_range=batch <= r["latency_bound_up_to_tokens"],
    )


def nccl_path_finding(results: Results) -> str:
    """How NCCL drives the link, in words: its own configuration, staging buffers and performance
    model (INFO log), what a plain copy with as many thread blocks reaches, what a link ceiling
    taken from those copies would do to the large all-to-alls' error, and what is not yet measured."""
    p = facts(results)["nccl_path"]
    span = lambda x: f"{min(x):.0f}–{max(x):.0f}"  # noqa: E731
    moved = p["alltoall_gbps"]
    return first_shown(
        "validation_nccl.md.j2",
        "Why NCCL's all-to-all stays below the link ceiling",
        version=p["version"],
        transport=p["transport"],
        n=p["channels_per_peer"],
        chunk_kib=p["p2p_chunk_bytes"] // 1024,
        busbw=f"{p['ring_simple_busbw_gbps']:.0f}",
        latency_us=p["ring_simple_latency_us"],
        link=f"{p['link_gbps']:.0f}",
        connections=p["connections"],
        p2p_connections=p["p2p_connections"],
        allocated=sum(c for _, c in p["allocated"]),
        buffers=" and ".join(f"{c} of {b / 2**20:g} MiB" for b, c in p["allocated"]),
        imported=p["imported"],
        at_n=span(p["rates_at_channels_gbps"]),
        probe_mib=p["probe_bytes"] >> 20,
        all_sms_blocks=p["all_sms_blocks"],
        all_sms=span(p["rates_all_sms_gbps"]),
        moved=", ".join(f"{r:.0f}" for r in moved),
        sizes=", ".join(f"{b:g}" for b in p["alltoall_mib"]),
        below=sum(r < p["link_gbps"] for r in moved),
        count=len(moved),
        errors=span(p["errors_at_channels_pct"]),
        link_write=f"{p['link_write_gbps']:.0f}",
    )


def validation_digest(results: Results, study: Study) -> str:
    """In short: the model's validated error per mechanism the study's numbers rest on (median and worst, the
    same numbers the claims cite), then the primitives measured on their own whose median error is larger
    (the summary table below), and what no measurement covers."""
    lines = [
        (
            "**In short.** The model predicts measurements it was not fitted to, from datasheets and separate "
            "microbenchmarks. The mechanisms the study's numbers rest on:"
        ),
        "",
    ]
    lines += [f"- {fmt.md(v.text())}" for v in validated(results).values()]
    v = read(results, "summary")
    worse = v[v["median |error| %"] > limit_pct(results)]
    if not worse.empty:
        lines += [
            "",
            "Primitives measured on their own, which the study does not use as they were measured, "
            "miss by more (the summary per primitive below says why): "
            + "; ".join(
                f"{fmt.md(p)} {fmt.pct(m)} median, worst {fmt.pct(w)}"
                for p, m, w in zip(worse.primitive, worse["median |error| %"], worse["worst |error| %"], strict=True)
            )
            + ".",
        ]
    machines = read(results, "machines")
    measured = list(dict.fromkeys(machines[machines.measured.astype(bool)].gpu_name.dropna()))
    measured = [g for g in measured if g]
    extrapolated = [g for g in dict.fromkeys(s.gpu.name for s in study.systems) if g not in measured]
    if extrapolated:
        lines += [
            "",
            (
                f"Measured GPUs: {fmt.md(', '.join(measured))}. Never measured, their rates extrapolated from "
                f"those: {fmt.md(', '.join(extrapolated))}."
            ),
        ]
    return "\n".join(lines)


def collapsed(df: pd.DataFrame, title: str):
    """A long table folded under a one-line summary (HTML <details>), its columns named in words."""
    from IPython.display import HTML

    return HTML(f"<details><summary>{html.escape(title)}</summary>\n{table_html(readable(df))}\n</details>")


def folded_markdown(text: str, title: str) -> str:
    """Markdown (already escaped) folded under a one-line title: a MyST dropdown, which the book parses in a
    notebook's Markdown output; "" for no text."""
    if not text.strip():
        return ""
    return fmt.dropdown(fmt.md(title), text)


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """Column names a person reads: underscores become spaces, units spelled out (resident_fraction ->
    resident share, error_pct -> error (%), measured_ms -> measured (ms))."""
    words = {"fraction": "share", "pct": "(%)", "ms": "(ms)", "us": "(µs)", "gbps": "(GB/s)"}

    def name(c: str) -> str:
        parts = str(c).split("_")
        return " ".join(words.get(p, p) for p in parts)

    return df.rename(columns={c: name(c) for c in df.columns})


def batch_one_text(results: Results, t: pd.DataFrame) -> str:
    """Why batch 1 is faster in the model than measured, from the batch-1 kernel profile."""
    g = read(results, "batch_one")
    if g.empty:
        return "No batch-1 kernel profile is committed, so the batch-1 gap is not explained."
    parts = []
    for r in g.itertuples():
        step = t[(t.machine == r.machine) & (t.model == r.model) & (t.batch == 1)].iloc[0]
        gap = step.measured_ms - step.predicted_ms
        parts.append(
            {
                "model": r.model,
                "gap": f"{gap:.2f}",
                "measured": f"{r.grouped_gemm_measured_ms:.2f}",
                "modelled": f"{r.grouped_gemm_model_ms:.2f}",
                "share": f"{100 * (r.grouped_gemm_measured_ms - r.grouped_gemm_model_ms) / gap:.0f}",
                "at_one": f"{r.grouped_gemm_model_ms * r.stream_model_gbps / r.stream_one_row_gbps:.2f}",
            }
        )
    r = g.iloc[0]
    return paragraph(
        "validation_batch_one.md.j2",
        machine=r.machine,
        parts=parts,
        one_row=f"{r.stream_one_row_gbps:,.0f}",
        median_rate=f"{r.stream_model_gbps:,.0f}",
    )


def decode_validation(results: Results) -> tuple[pd.DataFrame, str]:
    """The whole-decode-step table (measured, model, datasheet, errors) and a summary computed from it:
    the median and worst |error| over batch >= 8, and batch 1 on its own."""
    t = read(results, "decode")
    if t.empty:
        return t, "No whole-decode-step measurements are committed."
    big, one = t[t.batch >= 8], t[t.batch == 1]
    text = (
        f"Over batch ≥ 8 ({len(big)} steps on {big.machine.nunique()} machine(s)): median |error|"
        f" {big.error_pct.abs().median():.1f}%, worst {big.error_pct.abs().max():.1f}%"
        f" ({fmt.md(big.loc[big.error_pct.abs().idxmax(), 'model'])} at batch"
        f" {int(big.loc[big.error_pct.abs().idxmax(), 'batch'])}); at datasheet rates the median is"
        f" {big.datasheet_error_pct.abs().median():.0f}%, and with the copy rate in place of the weight-streaming rates"
        f" {big.copy_rate_only_error_pct.abs().median():.0f}% (the model then runs fast on"
        f" {int((big.copy_rate_only_error_pct < 0).sum())} of {len(big)} steps). Batch 1 on its own: "
        + ", ".join(f"{fmt.md(r.model)} {r.error_pct:+.1f}%" for r in one.itertuples())
        + "."
        + "\n\n"
        + folded_markdown(batch_one_text(results, t), "Why batch 1 runs slower than the model")
    )
    view = t.assign(
        **{c: t[c].round(2) for c in ("measured_ms", "predicted_ms", "datasheet_ms")},
        error_pct=t.error_pct.round(1),
        datasheet_error_pct=t.datasheet_error_pct.round(1),
    ).drop(columns=["copy_rate_only_error_pct"])
    return (
        view.rename(
            columns={
                "measured_ms": "measured (ms)",
                "predicted_ms": "model (ms)",
                "datasheet_ms": "datasheet (ms)",
                "error_pct": "error (%)",
                "datasheet_error_pct": "datasheet error (%)",
            }
        ),
        text,
    )


def offload_validation(results: Results) -> tuple[pd.DataFrame, str]:
    """Measured expert-offloading steps against the model's layer-by-layer prediction, and a summary
    computed from them: step-time and speedup errors, the worst points, and the LRU hit rates."""
    t = read(results, "offload")
    if t.empty:
        return t, "No offloading measurements are committed."
    limit = limit_pct(results)
    sp = t.dropna(subset=["speedup_error_pct"])
    worst = sp.loc[sp.speedup_error_pct.abs().sort_values(ascending=False).index[:3]]
    lru = t[t.policy == "lru"]
    off = lru.loc[lru.error_pct.abs().sort_values(ascending=False).index[:1]]
    text = first_shown(
        "validation_offload.md.j2",
        "How the model averages a layer over its misses, and the step times",
        steps=len(t),
        machines=t.machine.nunique(),
        points=len(sp),
        median=f"{sp.speedup_error_pct.abs().median():.1f}",
        worst=f"{sp.speedup_error_pct.abs().max():.1f}",
        over=int((sp.speedup_error_pct.abs() > limit).sum()),
        limit=f"{limit:g}",
        largest=[
            {
                "tokens": int(r.tokens),
                "resident": f"{100 * r.resident_fraction:.0f}",
                "accuracy": f"{r.accuracy:g}",
                "error": f"{r.speedup_error_pct:+.0f}",
            }
            for r in worst.itertuples()
        ],
        step_median=f"{t.error_pct.abs().median():.1f}",
        step_worst=f"{t.error_pct.abs().max():.0f}",
        lru=None
        if off.empty
        else {
            "policy": off.policy.iloc[0],
            "routing": off.routing.iloc[0],
            "tokens": int(off.tokens.iloc[0]),
            "slots": int(off.cache_slots.iloc[0]),
            "measured": f"{off.hit_rate_measured.iloc[0]:.2f}",
            "predicted": f"{off.hit_rate_predicted.iloc[0]:.2f}",
        },
    )
    cols = [
        "machine",
        "policy",
        "routing",
        "tokens",
        "resident_fraction",
        "cache_slots",
        "accuracy",
        "measured_ms",
        "predicted_ms",
        "error_pct",
        "speedup_measured",
        "speedup_predicted",
        "speedup_error_pct",
    ]
    return t[cols].round(2), text


def two_gpu_sets(results: Results):
    """The two-GPU sets (validation/measure_multi.py): the committed measurements beside the model's
    predictions with a summary per set, then the predictions at the planned points, one folded table per
    set (HTML)."""
    from IPython.display import HTML

    measured = read(results, "two_gpu")
    parts = []
    if measured.empty:
        parts.append(
            "<p>No two-GPU set is measured (validation/measurements/ holds none): the tables below are the model's "
            "predictions at the planned points.</p>"
        )
    else:
        parts.append(table_html(readable(read(results, "two_gpu_summary"))))
        parts.append(f"<details><summary>Every measured point</summary>\n{table_html(readable(measured))}\n</details>")
    planned = read(results, "two_gpu_planned")
    parts += [
        f"<details><summary>{html.escape(str(name))}: predicted at {len(g)} planned points (ms)</summary>\n"
        f"{table_html(readable(g[['point', 'predicted_ms']]))}\n</details>"
        for name, g in planned.groupby("set", sort=False)
    ]
    return HTML("\n".join(parts))
