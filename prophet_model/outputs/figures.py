"""Figures for a two-column paper, each a function of the tables `run` writes (outputs/figure_cache.py draws
`run`'s, the notebooks the others); the house style (palette, fonts, fitting text, log axes, files) is
outputs/figure_style.py's, its names re-exported here."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.figure_style import (  # noqa: F401 (re-exported: notebooks and commands call figures.*)
    ALLREDUCE,
    BASELINE,
    COMM,
    COMPUTE,
    DECADES,
    FETCH,
    PROPHET,
    VARIANT_COLOR,
    VARIANT_LABEL,
    fit,
    log_value_axis,
    new_figure,
    plain,
    plain_log_axis,
    save,
    spans_decades,
    style,
    titled_with_legend_below,
    to_png,
)
from prophet_model.study.schema import Figures


def _live(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows.feasible.astype(bool) & rows.tokens_per_s.notna()]


def _say_why_empty(ax, rows: pd.DataFrame) -> None:
    """On a figure with no evaluated strategy: the reason (each row's note), in place of the bars."""
    if not _live(rows).empty:
        return
    import textwrap

    notes = [n for n in dict.fromkeys(rows.get("note", pd.Series(dtype=object))) if isinstance(n, str) and n]
    text = "Not evaluated: " + ("; ".join(notes) if notes else "no strategy of this system can be evaluated")
    ax.text(0.5, 0.5, textwrap.fill(text, 48), transform=ax.transAxes, ha="center", va="center", fontsize="small")
    ax.set_xticks([])


def _strategy_label(r: pd.Series) -> str:
    return f"{r.strategy}\n({r.ep}×{r.dp})"


def _paired_bars(ax, labels: list[str], base: np.ndarray, pro: np.ndarray, text, unit: str) -> None:
    """Baseline and Prophet side by side per label, each bar labelled with its value; on a log axis where the
    values span more than DECADES decades; `unit` names the axis."""
    x = np.arange(len(labels))
    w = 0.38
    ax.bar(x - w / 2, base, w, color=BASELINE, label="Baseline")
    ax.bar(x + w / 2, pro, w, color=PROPHET, label="Prophet")
    values = np.concatenate([base, pro])
    for xi, b, p in zip(x, base, pro, strict=True):
        for xb, v in ((xi - w / 2, b), (xi + w / 2, p)):
            ax.text(xb, v, " " + text(v), ha="center", va="bottom", rotation=90, fontsize="small")
    ax.set_xticks(x, labels)
    if spans_decades(values):
        log_value_axis(ax, values, headroom=0.3)
        ax.set_ylabel(f"{unit}, log scale")
        return
    top = np.nanmax(values) if len(labels) else 1.0
    ax.set_ylim(0, top * 1.45 if top > 0 else 1.0)
    ax.set_ylabel(unit)


def _pairs(rows: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    live = _live(rows)
    labels, base, pro = [], [], []
    for _strategy, g in live.groupby("strategy", sort=False):
        b = g[g.variant == "baseline"]
        p = g[g.variant == "prophet"]
        if b.empty or p.empty:
            continue
        labels.append(_strategy_label(b.iloc[0]))
        base.append(float(b.iloc[0][column]))
        pro.append(float(p.iloc[0][column]))
    return labels, np.array(base), np.array(pro)


def throughput_comparison(rows: pd.DataFrame, system_name: str, cfg: Figures) -> plt.Figure:
    """Baseline vs Prophet decode throughput per strategy (tokens/s), speedup annotated."""
    labels, base, pro = _pairs(rows, "tokens_per_s")
    labels = [f"{lab}\n{fmt.ratio(p / b)}" for lab, b, p in zip(labels, base, pro, strict=True)]
    fig, ax = new_figure(cfg, cfg.column_width_in, cfg.height_in)
    _paired_bars(ax, labels, base, pro, fmt.tokens, "Throughput (tokens/s)")
    _say_why_empty(ax, rows)
    titled_with_legend_below(fig, ax, f"{plain(system_name)}: throughput, speedup")
    return fig


def cost_efficiency(rows: pd.DataFrame, system_name: str, cfg: Figures) -> plt.Figure:
    """Serving cost per strategy, $ per 1M tokens."""
    labels, base, pro = _pairs(rows, "usd_per_1m_tokens")
    fig, ax = new_figure(cfg, cfg.column_width_in, cfg.height_in)
    _paired_bars(ax, labels, base, pro, fmt.usd, "Cost ($ per 1M tokens)")
    _say_why_empty(ax, rows)
    titled_with_legend_below(fig, ax, f"{plain(system_name)}: serving cost")
    return fig


def communication_overhead(rows: pd.DataFrame, system_name: str, cfg: Figures) -> plt.Figure:
    """Step-time breakdown per strategy and variant: one panel per term (compute, exposed expert fetch,
    exposed all-to-all, the all-reduce of TP attention, ms), each on its own scale so that no term is too small
    to see (a log scale where a term spans more than DECADES decades); every bar labelled."""
    live = _live(rows)
    labels = [f"{r.strategy} {r.ep}×{r.dp} {VARIANT_LABEL[r.variant]}" for r in live.itertuples()]
    y = np.arange(len(live))[::-1]
    style(cfg)
    fig, axes = plt.subplots(
        1, 4, figsize=(cfg.full_width_in, max(cfg.height_in, 0.3 * len(live) + 1.0)), layout="constrained", sharey=True
    )
    terms = (
        ("compute_ms", COMPUTE, "Compute"),
        ("fetch_exposed_ms", FETCH, "Expert fetch (exposed)"),
        ("alltoall_exposed_ms", COMM, "All-to-all (exposed)"),
        ("allreduce_ms", ALLREDUCE, "TP all-reduce"),
    )
    for ax, (col, color, name) in zip(axes, terms, strict=True):
        v = live[col].to_numpy(float)
        ax.barh(y, v, color=color, height=0.7)
        log = spans_decades(v)
        if log:  # bars from the axis's left end; a zero's label there
            log_value_axis(ax, v, headroom=0.35, axis="x")
        else:
            top = float(np.nanmax(v)) if len(v) and np.nanmax(v) > 0 else 1.0
            ax.set_xlim(0, top * 1.6)
        left = ax.get_xlim()[0]
        for yi, x in zip(y, v, strict=True):
            ax.text(max(x, left), yi, f" {fmt.ms(x)}", va="center", fontsize="small")
        ax.set_title(name, fontsize=cfg.font_size_pt)
        ax.grid(axis="x", alpha=0.3)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("ms per step, log scale" if log else "ms per step")
    axes[0].set_yticks(y, labels, fontsize="small")
    _say_why_empty(axes[1], rows)
    fig.suptitle(f"{plain(system_name)}: where the step time goes (each panel on its own scale)")
    return fig


def _arrow(baseline: str, prophet: str) -> str:
    """One value where both sides agree, else "baseline → Prophet"."""
    return baseline if baseline == prophet else f"{baseline} → {prophet}"


def best_configuration(r) -> list[str]:
    """The lines under a system in the key figure: strategy and EP × DP split, batch per GPU (B) and the
    attention's tensor-parallel degree (TP, where above 1), "baseline → Prophet" where the two differ."""

    def side(v: str) -> str:
        return f"{getattr(r, f'{v}_strategy')} {str(getattr(r, f'{v}_split')).replace('x', '×')}"

    tps = [getattr(r, f"{v}_attention_tp") for v in ("baseline", "prophet")]
    batch = "B " + _arrow(f"{r.baseline_batch:.0f}", f"{r.prophet_batch:.0f}")
    if any(t == t and t > 1 for t in tps):
        batch += ", TP " + _arrow(*(f"{t:.0f}" if t == t else "1" for t in tps))
    return [_arrow(side("baseline"), side("prophet")), batch]


def cross_system_comparison(headline: pd.DataFrame, cfg: Figures) -> plt.Figure:
    """The paper's key figure: throughput (a) and cost (b) per system, the baseline at its best configuration
    (strategy, split, batch) beside Prophet at its best (headline.csv: like with like), one panel above the
    other so that each system's label (its best configuration and Prophet's speedup) has the figure's width;
    a panel whose values span more than DECADES decades on a log axis."""
    rows = headline.dropna(subset=["speedup"])
    size = cfg.font_size_pt
    width = (cfg.full_width_in - 0.6) / max(len(rows), 1) - 0.08  # a system's share of the text width, inches
    labels = [
        fit("\n".join([plain(r.system), *best_configuration(r), fmt.ratio(r.speedup)]), width, size)
        for r in rows.itertuples()
    ]
    lines = max((lab.count("\n") + 1 for lab in labels), default=1)
    style(cfg)
    fig, (a, b) = plt.subplots(
        2, 1, sharex=True, figsize=(cfg.full_width_in, cfg.height_in + 1.2 + 0.12 * lines), layout="constrained"
    )
    base, pro = rows.baseline_tokens_per_s.to_numpy(float), rows.prophet_tokens_per_s.to_numpy(float)
    _paired_bars(a, labels, base, pro, fmt.tokens, "Tokens/s")
    a.set_title("(a) Decode throughput")
    base, pro = rows.baseline_usd_per_1m_tokens.to_numpy(float), rows.prophet_usd_per_1m_tokens.to_numpy(float)
    _paired_bars(b, labels, base, pro, fmt.usd, "$ per 1M tokens")
    b.set_title("(b) Serving cost per token")
    b.set_xlabel("Each system's best configuration (baseline → Prophet where they differ) and Prophet's speedup")
    fig.legend(*a.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    return fig


def scaling(comparison: pd.DataFrame, cfg: Figures) -> plt.Figure:
    """Per-GPU throughput relative to the same strategy on the smallest GPU count that holds every expert
    (100%: as per GPU as there; above: a larger batch fits), per system (a row each, by GPU count) and
    strategy; a strategy whose GPUs never hold every expert has no point."""
    live = comparison.dropna(subset=["speedup"]).sort_values(["n_gpus", "system_id"], kind="stable")
    systems = list(dict.fromkeys(zip(live.system, live.n_gpus, strict=True)))
    fig, ax = new_figure(cfg, cfg.column_width_in, 0.3 * len(systems) + 1.3)
    markers = {"EP": "o", "DP": "s", "Hybrid": "^"}
    pos = {name: i for i, (name, _) in enumerate(systems)}
    offset = {"EP": -0.2, "DP": 0.0, "Hybrid": 0.2}
    for strategy, g in live.groupby("strategy", sort=False):
        m = markers.get(strategy, "o")
        y = g.system.map(pos) + offset.get(strategy, 0.0)
        ax.plot(g.baseline_scaling_pct, y, m, mfc="none", color=BASELINE, ms=5, ls="none")
        ax.plot(g.prophet_scaling_pct, y, m, color=PROPHET, ms=3, ls="none")
        ax.plot([], [], m, color="0.3", ms=4, ls="none", label=strategy)
    ax.plot([], [], "o", mfc="none", color=BASELINE, ls="none", label="Baseline")
    ax.plot([], [], "o", color=PROPHET, ls="none", label="Prophet")
    ax.axvline(100, color="0.5", lw=0.6)
    for name, _ in systems:  # a system whose GPUs never hold every expert: no reference, said so on its row
        if live[live.system == name][["baseline_scaling_pct", "prophet_scaling_pct"]].isna().all().all():
            ax.text(
                0.02,
                pos[name],
                "no GPU count holds every expert",
                transform=ax.get_yaxis_transform(),
                va="center",
                fontsize="small",
            )
    ax.set_yticks(range(len(systems)), [fit(f"{plain(n)} ({g})", 1.3, cfg.font_size_pt) for n, g in systems])
    ax.set_ylim(len(systems) - 0.5, -0.5)  # the fewest GPUs on top
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.set_ylabel("System (GPU count)")
    ax.set_xlabel("Per-GPU tokens/s (% of the reference)")
    titled_with_legend_below(
        fig, ax, "Per-GPU throughput against the same strategy on the fewest GPUs holding every expert", ncols=5
    )
    return fig


def validation_figure(df: pd.DataFrame, cfg: Figures) -> plt.Figure:
    """Predicted (solid: the model; dotted: datasheet values only) vs measured (markers: median,
    bars p10-p90) for each primitive, log-log."""
    style(cfg)
    fig, axes = plt.subplots(2, 2, figsize=(cfg.full_width_in, 2 * cfg.height_in + 0.6), layout="constrained")
    colors = [BASELINE, PROPHET, COMPUTE, FETCH, COMM, "#56B4E9", "#F0E442", "0.3"]

    def series(ax, g, x, label, color, marker="o") -> None:
        g = g.sort_values(x)
        ax.errorbar(
            g[x],
            1e6 * g.median_s,
            yerr=[1e6 * (g.median_s - g.p10_s), 1e6 * (g.p90_s - g.median_s)],
            fmt=marker,
            ms=3,
            color=color,
            lw=0.8,
            label=f"{label} measured",
        )
        ax.plot(g[x], 1e6 * g.predicted_s, "-", color=color, lw=1, label=f"{label} model")
        if "predicted_datasheet_s" in g:
            ax.plot(g[x], 1e6 * g.predicted_datasheet_s, ":", color=color, lw=0.8)

    a, b, c, d = axes.ravel()
    copies = df[df.benchmark.isin(["copy_h2d", "copy_d2h"])]
    for i, ((machine, bench), g) in enumerate(copies.groupby(["machine", "benchmark"], sort=True)):
        series(
            a,
            g.assign(mib=g.bytes / 2**20),
            "mib",
            f"{machine.split('-')[1].upper()} {'H→D' if bench == 'copy_h2d' else 'D→H'}",
            colors[i],
            "os^v"[i % 4],
        )
    a.set(xlabel="Copy size (MiB)", title="(a) Host-link copies")
    ffn = df[(df.benchmark == "expert_ffn") & (df.part == "ffn") & (df.machine == df.machine.iloc[0])]
    for i, (model, g) in enumerate(ffn.groupby("model", sort=True)):
        series(b, g, "tokens_per_rank", model.split("_")[0], colors[i])
    b.set(xlabel="Tokens", title=f"(b) One expert FFN, {ffn.machine.iloc[0]}")
    a2a = df[df.benchmark == "alltoall"]
    for i, (part, g) in enumerate(a2a.groupby("part", sort=True)):
        series(c, g.assign(kib=g.bytes / 1024), "kib", f"{part}", colors[i], "os"[i % 2])
    c.set(xlabel="Per-rank buffer (KiB)", title=f"(c) All-to-all, {int(a2a.ep.max())} GPUs")
    moe = df[(df.benchmark == "moe_layer") & (df.local_fraction == "uniform")]
    for i, (part, g) in enumerate(moe.groupby("part", sort=True)):
        series(d, g, "tokens_per_rank", part, colors[i], "os"[i % 2])
    d.set(xlabel="Tokens per GPU", title="(d) MoE layer, uniform routing")
    for ax in axes.ravel():
        ax.set(xscale="log", yscale="log", ylabel="Time (µs)")
        ax.plot([], [], ":", color="0.4", lw=0.8, label="datasheet values")
        ax.legend(fontsize="x-small", ncols=2, loc="upper left")
        ax.grid(True, which="major", alpha=0.3)
    return fig


def validation_errors(df: pd.DataFrame, cfg: Figures, limit_pct: float) -> plt.Figure:
    """Relative error of the model per measured point, by primitive (0 = exact); the band is the verdicts'
    limit (results/data/validation/facts.json: verdict_limit_pct)."""
    prims = list(dict.fromkeys(df.primitive))
    fig, ax = new_figure(cfg, cfg.full_width_in, 0.3 * len(prims) + 1.0)
    for i, p in enumerate(prims):
        g = df[df.primitive == p]
        jitter = (np.arange(len(g)) % 7 - 3) * 0.05
        ax.scatter(g.error_pct, np.full(len(g), i) + jitter, s=8, color=BASELINE, alpha=0.7)
        ax.plot([g.error_pct.median()] * 2, [i - 0.35, i + 0.35], color=PROPHET, lw=2)
    ax.axvspan(-limit_pct, limit_pct, color="0.9", zorder=0)
    ax.axvline(0, color="0.4", lw=0.8)
    ax.set_yticks(range(len(prims)), prims)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"Model error (%): (predicted − measured) / measured; bar = median, band = ±{limit_pct:g}%")
    ax.set_title("The model vs measurement (nothing fitted to these points)")
    return fig


def validation_scaling(predicted: pd.DataFrame, measured: pd.DataFrame, cfg: Figures) -> plt.Figure:
    """All-to-all time against the per-rank buffer for each expert-parallel degree: the model (lines)
    and the CUDA-graph measurements (markers) where a run exists."""
    fig, ax = new_figure(cfg, cfg.column_width_in, cfg.height_in + 0.3)
    colors = [BASELINE, PROPHET, COMPUTE, FETCH]
    meas = measured[(measured.benchmark == "alltoall") & (measured.part == "graph")]
    for i, (ep, g) in enumerate(predicted.groupby("ep", sort=True)):
        ax.plot(g.bytes / 1024, 1e6 * g.predicted_s, "-", color=colors[i % 4], lw=1, label=f"EP {ep} model")
        mg = meas[meas.ep == ep]
        if not mg.empty:
            ax.plot(mg.bytes / 1024, 1e6 * mg.median_s, "o", ms=3, color=colors[i % 4], label=f"EP {ep} measured")
    ax.set(xscale="log", yscale="log", xlabel="Per-rank buffer (KiB)", ylabel="Time (µs)")
    titled_with_legend_below(fig, ax, "All-to-all vs expert-parallel degree", ncols=3)
    return fig


def sensitivity_sweeps(
    tables: dict[str, pd.DataFrame],
    names: dict[str, str],
    metric: str,
    labels: dict[str, str],
    cfg: Figures,
    ylabel: str,
) -> plt.Figure:
    """One panel per input: `metric` against the input's value, one line per system."""
    inputs = list(dict.fromkeys(next(iter(tables.values())).input))
    ncols = 4
    nrows = -(-len(inputs) // ncols)
    style(cfg)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cfg.full_width_in, 1.7 * nrows + 0.5), layout="constrained")
    colors = [BASELINE, PROPHET, COMPUTE, FETCH, COMM, "#56B4E9"]
    for ax, name in zip(axes.ravel(), inputs, strict=False):
        for i, (sid, t) in enumerate(tables.items()):
            g = t[t.input == name]
            ax.plot(g.value, g[metric], "-", color=colors[i % len(colors)], lw=1.2, label=plain(names[sid]))
        if name in (
            "interconnect_bandwidth_factor",
            "host_link_bandwidth_factor",
            "expert_size_factor",
            "workload.batch_size_per_gpu",
            "model.num_experts",
        ):
            ax.set_xscale("log")
            plain_log_axis(ax.xaxis)
        ax.set_xlabel(labels[name], fontsize="small")
        ax.set_ylabel(ylabel, fontsize="small")
    for ax in axes.ravel()[len(inputs) :]:
        ax.axis("off")
    handles, lbls = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, lbls, loc="outside lower center", ncols=len(tables))
    return fig


def tornado_figure(t: pd.DataFrame, system_name: str, metric_label: str, cfg: Figures) -> plt.Figure:
    """Inputs ranked by their effect on one metric: bars from the value at the low end of the input's
    range to the value at the high end; the line is the study's value."""
    fig, ax = new_figure(cfg, cfg.column_width_in, 0.28 * len(t) + 1.0)
    y = np.arange(len(t))[::-1]
    for yi, r in zip(y, t.itertuples(), strict=True):
        ax.barh(yi, r.at_low - r.point, left=r.point, color=BASELINE, height=0.6)
        ax.barh(yi, r.at_high - r.point, left=r.point, color=PROPHET, height=0.6)
    ax.axvline(t.point.iloc[0], color="0.3", lw=0.8)
    ax.set_yticks(y, t.label, fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    from matplotlib.patches import Patch

    ax.set_xlabel(metric_label)
    ax.set_title(f"{plain(system_name)}: {metric_label.split(' (')[0].lower()} drivers")
    fig.legend(
        handles=[Patch(color=BASELINE, label="input at low end"), Patch(color=PROPHET, label="input at high end")],
        loc="outside lower center",
        ncols=2,
    )
    return fig


def speedup_map_figure(
    acc: np.ndarray,
    bw: np.ndarray,
    speedup: np.ndarray,
    system_name: str,
    cfg: Figures,
    ylabel: str = "Interconnect bandwidth (× datasheet)",
    log: bool = True,
) -> plt.Figure:
    """Speedup over prediction accuracy x a second input (interconnect bandwidth by default), with the
    break-even contour (1.0×)."""
    fig, ax = new_figure(cfg, cfg.column_width_in, cfg.height_in + 0.4)
    lo, hi = float(np.nanmin(speedup)), float(np.nanmax(speedup))
    norm = LogNorm(lo, hi) if lo > 0 and hi / lo > 4 else None  # a wide range: colours on a log scale
    mesh = ax.pcolormesh(acc, bw, speedup, cmap="cividis", shading="auto", norm=norm)
    bar = fig.colorbar(mesh, ax=ax, label="Speedup (×)")
    if norm is not None:
        plain_log_axis(bar.ax.yaxis)
    levels = [lv for lv in (1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0) if speedup.min() < lv < speedup.max()]
    if levels:
        cs = ax.contour(
            acc,
            bw,
            speedup,
            levels=levels,
            colors=["white" if lv > 1.0 else "black" for lv in levels],
            linewidths=[1.6 if lv == 1.0 else 0.7 for lv in levels],
        )
        ax.clabel(cs, fmt=lambda v: f"{v:.2f}×", fontsize="x-small")
    if log:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
    ax.set_xlabel("Prediction accuracy")
    ax.set_ylabel(ylabel)
    ax.grid(False)
    reached = "break-even (1.00×) shown where reached"
    note = reached if 1.0 in levels else f"Prophet ≥ {speedup.min():.2f}× everywhere here"
    ax.set_title(f"{plain(system_name)}: speedup; {note}", fontsize="small")
    return fig
