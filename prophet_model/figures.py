"""Figures for a two-column paper: PDF (TrueType/Type 42 fonts, no creation date, so reruns are
byte-identical) and PNG. Colours are the Okabe-Ito colorblind-safe palette."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import formatting as fmt
from .config import Figures

# Okabe & Ito (2008), "Color Universal Design": distinguishable under common colour-vision deficiencies.
BASELINE = "#0072B2"  # blue
PROPHET = "#D55E00"  # vermillion
COMPUTE = "#009E73"  # bluish green
FETCH = "#E69F00"  # orange
COMM = "#CC79A7"  # reddish purple
VARIANT_COLOR = {"baseline": BASELINE, "prophet": PROPHET}
VARIANT_LABEL = {"baseline": "Baseline", "prophet": "Prophet"}


def style(fig_cfg: Figures) -> None:
    plt.rcParams.update(
        {
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
            "font.family": "DejaVu Sans",
            "font.size": fig_cfg.font_size_pt,
            "axes.titlesize": fig_cfg.font_size_pt + 1,
            "axes.labelsize": fig_cfg.font_size_pt,
            "legend.fontsize": fig_cfg.font_size_pt - 0.5,
            "xtick.labelsize": fig_cfg.font_size_pt,
            "ytick.labelsize": fig_cfg.font_size_pt,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "axes.grid.axis": "y",
            "grid.alpha": 0.3,
            "legend.frameon": False,
            "svg.hashsalt": "prophet",
        }
    )


def new_figure(cfg: Figures, width: float, height: float, ncols: int = 1) -> tuple[plt.Figure, object]:
    """A figure in the house style (fonts, TrueType embedding, palette-neutral grid)."""
    style(cfg)
    return plt.subplots(1, ncols, figsize=(width, height), layout="constrained")


def titled_with_legend_below(fig: plt.Figure, ax, title: str, ncols: int = 2) -> None:
    """Axes title on top, the legend below the plot area (never over the data)."""
    ax.set_title(title)
    fig.legend(
        *ax.get_legend_handles_labels(), loc="outside lower center", ncols=ncols, handlelength=1.2, columnspacing=1.0
    )


def save(fig: plt.Figure, stem: Path, dpi: int) -> list[Path]:
    """Write stem.pdf and stem.png deterministically; return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = stem.with_suffix(".pdf"), stem.with_suffix(".png")
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None})
    fig.savefig(png, dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return [pdf, png]


def _live(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows.feasible.astype(bool) & rows.tokens_per_s.notna()]


def _strategy_label(r: pd.Series) -> str:
    return f"{r.strategy}\n({r.ep}×{r.dp})"


def _paired_bars(ax, labels: list[str], base: np.ndarray, pro: np.ndarray, text) -> None:
    x = np.arange(len(labels))
    w = 0.38
    ax.bar(x - w / 2, base, w, color=BASELINE, label="Baseline")
    ax.bar(x + w / 2, pro, w, color=PROPHET, label="Prophet")
    top = np.nanmax(np.concatenate([base, pro])) if len(labels) else 1.0
    for xi, b, p in zip(x, base, pro, strict=True):
        for xb, v in ((xi - w / 2, b), (xi + w / 2, p)):
            ax.text(xb, v, " " + text(v), ha="center", va="bottom", rotation=90, fontsize="small")
    ax.set_xticks(x, labels)
    ax.set_ylim(0, top * 1.45)


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
    _paired_bars(ax, labels, base, pro, fmt.tokens)
    ax.set_ylabel("Throughput (tokens/s)")
    titled_with_legend_below(fig, ax, f"{system_name}: throughput, speedup")
    return fig


def cost_efficiency(rows: pd.DataFrame, system_name: str, cfg: Figures) -> plt.Figure:
    """Serving cost per strategy, $ per 1M tokens."""
    labels, base, pro = _pairs(rows, "usd_per_1m_tokens")
    fig, ax = new_figure(cfg, cfg.column_width_in, cfg.height_in)
    _paired_bars(ax, labels, base, pro, fmt.usd)
    ax.set_ylabel("Cost ($ per 1M tokens)")
    titled_with_legend_below(fig, ax, f"{system_name}: serving cost")
    return fig


def communication_overhead(rows: pd.DataFrame, system_name: str, cfg: Figures) -> plt.Figure:
    """Step-time breakdown (compute, exposed expert fetch, exposed all-to-all, ms) per strategy and
    variant, with the all-to-all share of the step annotated."""
    live = _live(rows)
    labels = [f"{r.strategy} {r.ep}×{r.dp} {VARIANT_LABEL[r.variant]}" for r in live.itertuples()]
    y = np.arange(len(live))[::-1]
    fig, ax = new_figure(cfg, cfg.column_width_in, max(cfg.height_in, 0.28 * len(live) + 0.9))
    left = np.zeros(len(live))
    for col, color, name in (
        ("compute_ms", COMPUTE, "Compute"),
        ("fetch_exposed_ms", FETCH, "Expert fetch"),
        ("comm_exposed_ms", COMM, "All-to-all"),
    ):
        v = live[col].to_numpy(float)
        ax.barh(y, v, left=left, color=color, label=name, height=0.7)
        left += v
    for yi, total, share in zip(y, left, live.comm_overhead_pct, strict=True):
        ax.text(total, yi, f" {fmt.pct(share)}", va="center", fontsize="small")
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_xlim(0, left.max() * 1.2 if len(left) else 1)
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("Step time (ms)")
    titled_with_legend_below(fig, ax, f"{system_name}: step time (% all-to-all)", ncols=3)
    return fig


def key_rows(comparison: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """Per system the row of `strategy`, or, where that strategy was not evaluated, the row with the
    highest Prophet throughput (its strategy is then named in the figure)."""
    out = []
    for _, g in comparison.groupby("system_id", sort=False):
        g = g.dropna(subset=["speedup"])
        if g.empty:
            continue
        hit = g[g.strategy == strategy]
        out.append(hit.iloc[0] if not hit.empty else g.loc[g.prophet_tokens_per_s.idxmax()])
    return pd.DataFrame(out)


def cross_system_comparison(comparison: pd.DataFrame, strategy: str, cfg: Figures) -> plt.Figure:
    """The paper's key figure: throughput and cost per system, baseline vs Prophet."""
    rows = key_rows(comparison, strategy)
    labels = [
        f"{r.system}\n{r.strategy} {r.prophet_split.replace('x', '×')}\n{fmt.ratio(r.speedup)}"
        for r in rows.itertuples()
    ]
    fig, (a, b) = new_figure(cfg, cfg.full_width_in, cfg.height_in + 0.4, ncols=2)
    base, pro = rows.baseline_tokens_per_s.to_numpy(float), rows.prophet_tokens_per_s.to_numpy(float)
    _paired_bars(a, labels, base, pro, fmt.tokens)
    a.set_ylabel("Decode throughput (tokens/s)")
    a.set_title("(a) Throughput (speedup below each system)")
    base, pro = rows.baseline_usd_per_1m_tokens.to_numpy(float), rows.prophet_usd_per_1m_tokens.to_numpy(float)
    _paired_bars(b, labels, base, pro, fmt.usd)
    b.set_ylabel("Serving cost ($ per 1M tokens)")
    b.set_title("(b) Cost per token")
    fig.legend(*a.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    return fig


def scaling_efficiency(comparison: pd.DataFrame, cfg: Figures) -> plt.Figure:
    """Scaling efficiency (% of N x the same GPU alone) against GPU count, per strategy."""
    live = comparison.dropna(subset=["speedup"]).sort_values(["n_gpus", "system_id"], kind="stable")
    fig, ax = new_figure(cfg, cfg.column_width_in, cfg.height_in + 0.3)
    markers = {"EP": "o", "DP": "s", "Hybrid": "^"}
    systems = list(dict.fromkeys(zip(live.system, live.n_gpus, strict=True)))
    pos = {name: i for i, (name, _) in enumerate(systems)}
    for strategy, g in live.groupby("strategy", sort=False):
        m = markers.get(strategy, "o")
        x = g.system.map(pos)
        ax.plot(x, g.baseline_scaling_efficiency_pct, m + "--", color=BASELINE, ms=4, lw=0.8)
        ax.plot(x, g.prophet_scaling_efficiency_pct, m + "-", color=PROPHET, ms=4, lw=0.8)
        ax.plot([], [], m, color="0.3", ms=4, ls="none", label=strategy)
    ax.plot([], [], "--", color=BASELINE, label="Baseline")
    ax.plot([], [], "-", color=PROPHET, label="Prophet")
    ax.axhline(100, color="0.5", lw=0.6)
    ax.set_xticks(range(len(systems)), [f"{n}\n({g})" for n, g in systems])
    ax.set_xlabel("System (GPU count)")
    ax.set_ylabel("Scaling efficiency (%)")
    titled_with_legend_below(fig, ax, "Scaling efficiency", ncols=3)
    return fig


def to_png(fig: plt.Figure, dpi: int) -> bytes:
    """The figure as PNG bytes (for notebooks), then closed."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
