"""The regime map figure (results/figures/regime_map.{pdf,png}): two panels of Prophet's speedup over the
baseline, each side at its best operating point (study/regime.py), contour lines at 1.1x, 1.2x and 1.5x, the
studied systems marked at their own coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from prophet_model.outputs.figure_style import new_figure, plain, plain_log_axis
from prophet_model.study.schema import Figures

TITLES = {
    "a": (
        "(a) Host link × expert bytes",
        "Host-link GB/s per GPU (per direction)",
        "Expert bytes / GPU memory of the box",
    ),
    "b": (
        "(b) All-to-all share × routing locality",
        "Baseline's all-to-all share of its step (%)",
        "Inter-layer affinity (chance to 1)",
    ),
}


def _grid(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The panel's rows as (X, Y, speedup) 2-D arrays, y down the rows, the driver across the columns."""
    g = g.sort_values(["y", "x"] if g.panel.iloc[0] == "a" else ["y", "interconnect_bandwidth_factor"], kind="stable")
    ny = g.y.nunique()
    shape = (ny, len(g) // ny)
    return (
        g.x.to_numpy(float).reshape(shape),
        g.y.to_numpy(float).reshape(shape),
        g.speedup.to_numpy(float).reshape(shape),
    )


def _label(ax, text: str, xy: tuple[float, float], ha: str, dx: float, dy: float):
    return ax.annotate(
        text,
        xy,
        xytext=(dx, dy),
        textcoords="offset points",
        fontsize="small",
        va="center",
        ha=ha,
        zorder=6,
        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
    )


def _mark(ax, marks: pd.DataFrame, names: dict[str, str], limits: tuple, taken: list) -> None:
    """Each system at its coordinates; one outside the panel's x range at its edge, its value said (an affinity
    below the reference's chance sits on the chance row: no locality either). A label goes to the first of a
    few places beside its point (above or below, farther, then the other side) where it overlaps no text drawn
    so far (`taken`: display boxes, to which each label placed is added); the figure's layout is fixed by then."""
    (xlim, ylim), renderer = limits, ax.figure.canvas.get_renderer()
    for i, r in enumerate(marks.sort_values("x").itertuples()):
        x, y = min(max(r.x, xlim[0]), xlim[1]), min(max(r.y, ylim[0]), ylim[1])
        off = "" if x == r.x else (f" (◂ {r.x:.2g}%)" if x > r.x else f" (▸ {r.x:.2g}%)")
        ax.plot(x, y, "o", ms=4, mfc="white", mec="black", mew=0.9, clip_on=False, zorder=5)
        low = y <= ylim[0] * 1.05 + 0.02 * (ylim[1] - ylim[0]) if ylim[1] < 2 else False  # on the bottom row: above
        dy = 9 if low or i % 2 == 0 else -9  # alternate above/below: neighbours do not collide
        side = "left" if x < np.sqrt(xlim[0] * xlim[1]) else "right"
        others = [
            (h, 4 if h == "left" else -4, k * d)
            for h in (side, "right" if side == "left" else "left")
            for k in (1, 2, 3)
            for d in (dy, -dy)
        ]
        places = [(side, 4, dy), *others[1:]]  # the first as before the labels were placed (4 points right)
        text = f"{plain(names.get(r.system_id, r.system_id))} {r.speedup:.2f}×{off}"
        for h, dx, d in places:
            label = _label(ax, text, (x, y), h, dx, d)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in taken):
                break
            label.remove()
        else:  # nowhere free: the first place
            label = _label(ax, text, (x, y), *places[0])
            box = label.get_window_extent(renderer)
        taken.append(box)


def regime_map_figure(
    table: pd.DataFrame, names: dict[str, str], reference: str, cfg: Figures, levels: Sequence[float]
):
    """Speedup colour maps, the contours at `levels` (study.regime.LEVELS, in facts.json) labelled, the studied
    systems marked."""
    from matplotlib.colors import Normalize
    from matplotlib.text import Text

    grid = table[table.kind == "grid"]
    if grid.empty:  # no regime_map section, or the reference system has no numbers: said, not drawn
        fig, ax = new_figure(cfg, cfg.full_width_in, cfg.height_in)
        ax.text(
            0.5,
            0.5,
            "Regime map not computed: the config has no regime_map section, or its reference system has no numbers",
            transform=ax.transAxes,
            ha="center",
            va="center",
        )
        ax.axis("off")
        return fig
    fig, axes = new_figure(cfg, cfg.full_width_in, cfg.height_in + 1.0, ncols=2)
    limits = []
    hi = max(float(np.nanmax(grid.speedup)), levels[-1])
    norm = Normalize(1.0, min(hi, 2.0))  # the contours' range resolved; above 2x one colour (the bar says so)
    for ax, panel in zip(axes, ("a", "b"), strict=True):
        title, xlabel, ylabel = TITLES[panel]
        g = grid[grid.panel == panel]
        X, Y, S = _grid(g)
        mesh = ax.pcolormesh(X, Y, S, cmap="cividis", shading="nearest", norm=norm)
        shown = [lv for lv in levels if np.nanmin(S) < lv < np.nanmax(S)]
        if shown:
            cs = ax.contour(X, Y, S, levels=shown, colors="white", linewidths=[0.8, 1.2, 1.6][: len(shown)])
            ax.clabel(cs, fmt=lambda v: f"{v:.1f}×", fontsize="small", inline_spacing=2)
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
        ax.set_xticks([t for t in (2, 5, 10, 20, 50, 100, 200, 400) if X.min() <= t <= X.max()])
        if panel == "a":
            ax.set_yscale("log")
            plain_log_axis(ax.yaxis)
        xlim, ylim = (float(X.min()), float(X.max())), (float(Y.min()), float(Y.max()))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        limits.append((xlim, ylim))
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(False)
    fig.colorbar(
        mesh,
        ax=list(axes),
        label=f"Speedup, each side at its best ({plain(names.get(reference, reference))})",
        extend="max" if hi > 2.0 else "neither",
    )
    # the layout solved once and fixed, so that the systems' labels can be placed where they overlap no text
    fig.canvas.draw()
    fig.set_layout_engine("none")
    taken = [t.get_window_extent() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    for ax, panel, lim in zip(axes, ("a", "b"), limits, strict=True):
        _mark(ax, table[(table.kind == "system") & (table.panel == panel)], names, lim, taken)
    return fig
