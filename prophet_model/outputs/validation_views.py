"""The validation page's tables and text (notebooks/validation.ipynb, through views): thin views over
prophet_model.measured, numbers formatted by formatting.py."""

from __future__ import annotations

import html

import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.formatting import table_html
from prophet_model.study.config import Study


def validation_summary(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The summary per primitive as a table narrow enough for a page, and the reasons for every
    primitive whose median error exceeds 25%, as a Markdown list."""
    from prophet_model.measured.summary import summary, verdicts

    v = verdicts(summary(df))
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


def alltoall_finding(df: pd.DataFrame, study: Study) -> str:
    """The latency- vs bandwidth-bound finding, in words, with the measured numbers."""
    from prophet_model.measured.measurements import BF16
    from prophet_model.measured.summary import alltoall_regimes

    m = study.model
    r = alltoall_regimes(df, m.hidden_size, m.top_k)
    per_token = m.top_k * m.hidden_size * BF16
    batch = study.config.workload.batch_size_per_gpu
    kib = lambda b: f"{b / 1024:,.0f} KiB" if b < 2**20 else f"{b / 2**20:,.0f} MiB"  # noqa: E731
    where = (
        "in the latency-bound range: cutting the volume, as Prophet does, saves little there"
        if batch <= r["latency_bound_up_to_tokens"]
        else "beyond the latency-bound range"
    )
    return (
        f"Measured on {int(df[df.benchmark == 'alltoall'].ep.max())} GPUs (CUDA graph, NCCL): the all-to-all has a"
        " floor of "
        f"{r['floor_us']:.1f} µs and stays within 1.5× of it up to {kib(r['latency_bound_up_to_bytes'])} per rank; it"
        " is at least "
        f"twice the floor from {kib(r['bandwidth_bound_from_bytes'])} per rank, and the largest buffer "
        f"({kib(r['largest_bytes'])}) moves {r['largest_gbps']:.0f} GB/s per direction. For {fmt.md(m.name)}"
        f" (top-{m.top_k}, hidden "
        f"{m.hidden_size}) one decode token puts {per_token / 1024:.0f} KiB into each all-to-all, so the exchange is "
        f"latency-bound up to about {r['latency_bound_up_to_tokens']:,.0f} tokens per GPU and bandwidth-bound from"
        " about "
        f"{r['bandwidth_bound_from_tokens']:,.0f}. The study's decode batch of {batch} sequences per GPU is "
        f"{where}."
    )


def nccl_path_finding(df: pd.DataFrame, study: Study, machine: str = "nvidia-h200-x2") -> str:
    """How NCCL drives the link, in words: its own configuration, staging buffers and performance
    model (INFO log), what a plain copy with as many thread blocks reaches, what a link ceiling
    taken from those copies would do to the large all-to-alls' error, and what is not yet measured."""
    from prophet_model.measured.nccl_log import (
        PROBE_BYTES,
        link_blocks,
        link_write_rate,
        nccl_configuration,
        nccl_staging,
    )
    from prophet_model.measured.predict import large_alltoall_error
    from prophet_model.measured.summary import alltoall_rates
    from prophet_model.study.rates import ceilings

    nccl, blocks, staging = nccl_configuration(machine), link_blocks(machine), nccl_staging(machine)
    conns = staging["connections"]
    buffers = " and ".join(f"{c} of {b / 2**20:g} MiB" for b, c in staging["allocated"].items())
    n = int(nccl["p2p_channels_per_peer"])
    remote = blocks[[c for c in blocks.columns if c.startswith("remote")]]
    at_n, all_sms = remote.loc[n], remote.loc[remote.index.max()]
    rates = alltoall_rates(df, study)
    rates = rates[rates.machine == machine]
    moved = rates["NCCL all-to-all (GB/s)"]
    link = ceilings(machine).link_bandwidth / 1e9
    listed = ", ".join(f"{r:.0f}" for r in moved)
    sizes = ", ".join(f"{b:g}" for b in rates["per-rank buffer (MiB)"])
    errors = [large_alltoall_error(df, study, 1e9 * r, machine) for r in at_n]
    span = lambda x: f"{min(x):.0f}–{max(x):.0f}"  # noqa: E731
    return (
        f"NCCL {nccl['version']} carried the all-to-all over {nccl['transport']} on {n} channels per peer, one thread"
        f" block each, in chunks of {int(nccl['p2p_chunk_bytes']) // 1024} KiB (its INFO log). Its own performance"
        f" model expects {nccl['ring_simple_busbw_gbps']:.0f} GB/s after {nccl['ring_simple_latency_us']} µs"
        " for a ring"
        f" on this pair; the link ceiling the model uses is {link:.0f} GB/s (every SM writing). For its"
        f" {sum(conns.values())} connections to the other GPU ({conns.get(1, 0)} of them point-to-point) NCCL allocated"
        f" {sum(staging['allocated'].values())} shareable buffers on each GPU ({buffers}) and mapped"
        f" {sum(staging['imported'].values())} of the other GPU's: its staging buffers. The benchmark's tensors come"
        " from PyTorch's caching allocator, which takes its memory from cudaMalloc unless PYTORCH_CUDA_ALLOC_CONF says"
        " otherwise (the runs' commands set none), and NCCL, from 2.23 on, registers such buffers for zero-copy"
        " transfers only with NCCL_LEGACY_CUDA_REGISTER=1, which is off by default (NCCL user guide, General Buffer"
        " Registration). So in these all-to-alls each byte bound for the other GPU crossed the link into a staging"
        " buffer there, and that GPU's NCCL blocks then copied it into the output: a second copy the model, one link"
        f" transfer per byte, does not count. A plain copy kernel with the same {n} thread blocks, no NCCL, moves"
        f" {span(at_n)} GB/s into the other GPU ({PROBE_BYTES >> 20} MiB, both GPUs at once), depending on the bytes"
        f" each thread moves per iteration; with {remote.index.max()} blocks, one per SM, {span(all_sms)} GB/s. NCCL's"
        f" large all-to-alls moved {listed} GB/s ({sizes} MiB per rank, table above), {int((moved < link).sum())} of"
        f" {len(moved)} below the link ceiling. At a fixed number of blocks the rate depends on the copy code, so what"
        f" NCCL reaches with its {n} blocks is a property of its code, while the model describes the hardware. Had the"
        f" link ceiling been one of the {n}-block rates, the large all-to-alls' median error would be {span(errors)}%"
        " over these copy shapes. The model does not adopt that: which shape matches NCCL's copy loop is a choice"
        f" these data cannot make, and even with every SM the probe's kernel ({span(all_sms)} GB/s) trails the"
        f" elementwise kernel behind the link ceiling ({link_write_rate(machine, PROBE_BYTES) / 1e9:.0f} GB/s for the"
        f" same {PROBE_BYTES >> 20} MiB), so its rates describe its own code as well. Whether a zero-copy all-to-all"
        " (registered buffers) reaches the link ceiling would tell the staging copy from NCCL's block count as the"
        " cause; it needs the two-GPU machine again and has not been measured (the commands are under 'Not yet run' in"
        " validation/measurements/README.md)."
    )


def validation_digest(study: Study, df: pd.DataFrame | None = None) -> str:
    """In short: the model's validated error per mechanism the study's numbers rest on (median and worst, the
    same numbers the claims cite), then the primitives measured on their own whose median error is larger
    (the summary table below), and what no measurement covers."""
    from prophet_model.measured.evidence import validated

    lines = [
        (
            "**In short.** The model predicts measurements it was not fitted to, from datasheets and separate "
            "microbenchmarks. The mechanisms the study's numbers rest on:"
        ),
        "",
    ]
    lines += [f"- {fmt.md(v.text())}" for v in validated(study).values()]
    if df is not None:
        from prophet_model.measured.summary import summary, verdicts

        v = verdicts(summary(df))
        worse = v[v["median |error| %"] > 25]
        if not worse.empty:
            lines += [
                "",
                "Primitives measured on their own, which the study does not use as they were measured, "
                "miss by more (the summary per primitive below says why): "
                + "; ".join(
                    f"{fmt.md(p)} {fmt.pct(m)} median, worst {fmt.pct(w)}"
                    for p, m, w in zip(
                        worse.primitive, worse["median |error| %"], worse["worst |error| %"], strict=True
                    )
                )
                + ".",
            ]
    from prophet_model.outputs.prose import measured_gpus

    measured, extrapolated = measured_gpus(study, pd.DataFrame({"system_id": [s.id for s in study.systems]}))
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


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """Column names a person reads: underscores become spaces, units spelled out (resident_fraction ->
    resident share, error_pct -> error (%), measured_ms -> measured (ms))."""
    words = {"fraction": "share", "pct": "(%)", "ms": "(ms)", "us": "(µs)", "gbps": "(GB/s)"}

    def name(c: str) -> str:
        parts = str(c).split("_")
        return " ".join(words.get(p, p) for p in parts)

    return df.rename(columns={c: name(c) for c in df.columns})


def batch_one_text(study: Study, t: pd.DataFrame) -> str:
    """Why batch 1 is faster in the model than measured, from the batch-1 kernel profile."""
    from prophet_model.measured.predict_steps import batch_one_gap

    g = batch_one_gap(study)
    if g.empty:
        return "No batch-1 kernel profile is committed, so the batch-1 gap is not explained."
    parts = []
    for r in g.itertuples():
        step = t[(t.machine == r.machine) & (t.model == r.model) & (t.batch == 1)].iloc[0]
        gap = step.measured_ms - step.predicted_ms
        at_one = r.grouped_gemm_model_ms * r.stream_model_gbps / r.stream_one_row_gbps
        parts.append(
            f"{fmt.md(r.model)}: the step is {gap:.2f} ms longer than the model; its grouped GEMMs take "
            f"{r.grouped_gemm_measured_ms:.2f} ms against the model's {r.grouped_gemm_model_ms:.2f} ms, "
            f"{100 * (r.grouped_gemm_measured_ms - r.grouped_gemm_model_ms) / gap:.0f}% of the gap "
            f"(at the microbenchmark's one-row rate they would take {at_one:.2f} ms)"
        )
    r = g.iloc[0]
    return (
        f"At batch 1 every expert gets one row. The batch-1 profile ({fmt.md(r.machine)}) shows where the time goes: "
        + "; ".join(parts)
        + f". The grouped-GEMM microbenchmark itself streams {r.stream_one_row_gbps:,.0f} GB/s at one row per "
        f"weight, against the {r.stream_model_gbps:,.0f} GB/s median over 1-64 rows that the model uses: the grouped "
        "kernel streams its weights more slowly when each group has a single row. The rest of the gap lies in the "
        "other kernels, not broken down here. The model keeps one streaming rate per kernel type, so batch 1 is "
        "reported apart and nothing is fitted to it."
    )


def decode_validation(study: Study) -> tuple[pd.DataFrame, str]:
    """The whole-decode-step table (measured, model, datasheet, errors) and a summary computed from it:
    the median and worst |error| over batch >= 8, and batch 1 on its own."""
    from prophet_model.measured.predict_steps import decode_table

    t = decode_table(study)
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
        + ". "
        + batch_one_text(study, t)
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


def offload_validation(study: Study) -> tuple[pd.DataFrame, str]:
    """Measured expert-offloading steps against the model's layer-by-layer prediction, and a summary
    computed from them: step-time and speedup errors, the worst points, and the LRU hit rates."""
    from prophet_model.measured.predict_steps import offload_table

    t = offload_table(study)
    if t.empty:
        return t, "No offloading measurements are committed."
    sp = t.dropna(subset=["speedup_error_pct"])
    worst = sp.loc[sp.speedup_error_pct.abs().sort_values(ascending=False).index[:3]]
    over = int((sp.speedup_error_pct.abs() > 25).sum())
    lru = t[t.policy == "lru"]
    off = lru.loc[lru.error_pct.abs().sort_values(ascending=False).index[:1]]
    text = (
        f"{len(t)} steps on {t.machine.nunique()} machine(s). Prophet's speedup over on-demand fetching ({len(sp)}"
        f" points): median |error| {sp.speedup_error_pct.abs().median():.1f}%, worst"
        f" {sp.speedup_error_pct.abs().max():.1f}%, {over} point(s) beyond 25%. The largest errors: "
        + "; ".join(
            f"{int(r.tokens)} token(s), {100 * r.resident_fraction:.0f}% resident, accuracy {r.accuracy:g} "
            f"({r.speedup_error_pct:+.0f}%)"
            for r in worst.itertuples()
        )
        + ". With static residency the model takes the number of missing experts per layer as binomial (each "
        "non-resident expert touched independently) and averages the layer time over it: where a layer misses a "
        "fraction of an expert on average, the mean of max(copies, compute) is not the max of the means. "
        f"Step times: median |error| {t.error_pct.abs().median():.1f}%, worst {t.error_pct.abs().max():.0f}%"
        + (
            f" ({fmt.md(off.policy.iloc[0])} {fmt.md(off.routing.iloc[0])}, {int(off.tokens.iloc[0])} token(s), cache"
            f" of {int(off.cache_slots.iloc[0])}: measured hit rate {off.hit_rate_measured.iloc[0]:.2f} against"
            f" {off.hit_rate_predicted.iloc[0]:.2f} predicted; with one token a layer sees two accesses a step, and"
            " eleven steps do not bring the cache to the steady state that Che's approximation describes)"
            if len(off)
            else ""
        )
        + "."
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


def two_gpu_sets(study: Study):
    """The two-GPU sets (validation/measure_multi.py): the committed measurements beside the model's
    predictions with a summary per set, then the predictions at the planned points, one folded table per
    set (HTML)."""
    from IPython.display import HTML

    from prophet_model.measured import predict_multi

    measured = predict_multi.predictions(study)
    parts = []
    if measured.empty:
        parts.append("<p>No two-GPU set is committed yet: the tables below are predictions only.</p>")
    else:
        parts.append(table_html(readable(predict_multi.summary(measured))))
        parts.append(f"<details><summary>Every measured point</summary>\n{table_html(readable(measured))}\n</details>")
    planned = predict_multi.planned(study)
    parts += [
        f"<details><summary>{html.escape(str(name))}: predicted at {len(g)} planned points (ms)</summary>\n"
        f"{table_html(readable(g[['point', 'predicted_ms']]))}\n</details>"
        for name, g in planned.groupby("set", sort=False)
    ]
    return HTML("\n".join(parts))
