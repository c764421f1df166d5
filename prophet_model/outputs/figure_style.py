"""The figures' house style: palette, fonts, sizes that fit the paper's column and text width, text that fits,
value axes (log where values span decades) and deterministic files. PDF (TrueType/Type 42 fonts, no creation
date, so reruns are byte-identical) and PNG. Colours are the Okabe-Ito colorblind-safe palette."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from prophet_model.study.schema import Figures

# Okabe & Ito (2008), "Color Universal Design": distinguishable under common colour-vision deficiencies.
BASELINE = "#0072B2"  # blue
PROPHET = "#D55E00"  # vermillion
COMPUTE = "#009E73"  # bluish green
FETCH = "#E69F00"  # orange
COMM = "#CC79A7"  # reddish purple
ALLREDUCE = "#56B4E9"  # sky blue
VARIANT_COLOR = {"baseline": BASELINE, "prophet": PROPHET}
VARIANT_LABEL = {"baseline": "Baseline", "prophet": "Prophet"}


def plain(text: object) -> str:
    """Text shown as written: a $ would start matplotlib's math mode."""
    return str(text).replace("$", r"\$")


FONT = "DejaVu Sans"  # matplotlib's own font: the same glyphs on every machine
DECADES = 1.5  # bars whose values span more decades than this are drawn on a log axis


def text_width_pt(text: str, size_pt: float) -> float:
    """The width of one line of `text` in FONT at `size_pt`, points (the glyphs' advances, as drawn)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    return text_to_path.get_text_width_height_descent(text, FontProperties(family=FONT, size=size_pt), False)[0]


def _greedy(parts: list[str], fits) -> list[str]:
    """`parts` joined by spaces into as few lines as `fits` (a line -> bool) allows; a part that fits no line
    alone is split at its spaces."""
    lines: list[str] = []
    for part in parts:
        if lines and fits(f"{lines[-1]} {part}"):
            lines[-1] += f" {part}"
        elif fits(part) or " " not in part:
            lines.append(part)
        else:
            lines += _greedy(part.split(" "), fits)
    return lines


def fit(text: str, width_in: float, size_pt: float) -> str:
    """`text` broken into lines that fit `width_in` inches at `size_pt` (measured in FONT): first before a
    parenthesis and after a comma ("32×H100" / "(4 nodes, RDMA)"), then at other spaces; line breaks kept."""
    import re

    def fits(line: str) -> bool:
        return text_width_pt(line, size_pt) <= width_in * 72

    lines = [out for line in str(text).split("\n") for out in _greedy(re.split(r"(?<=,) | (?=\()", line), fits)]
    return "\n".join(lines)


def spans_decades(values: np.ndarray) -> bool:
    """Whether the positive values span more than DECADES decades (a linear axis would hide the small ones)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    return len(v) > 1 and bool(np.log10(v.max() / v.min()) > DECADES)


def log_value_axis(ax, values: np.ndarray, headroom: float, axis: str = "y") -> None:
    """A log axis over `values` from a round power of ten half a decade or more below the smallest, with
    `headroom` of the axis's length above the largest (for the value labels); ticks as plain numbers."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    lo = np.floor(np.log10(v.min()) - 0.5)
    hi = np.log10(v.max())
    top = 10 ** ((hi - headroom * lo) / (1 - headroom))
    if axis == "y":
        ax.set_yscale("log")
        ax.set_ylim(10**lo, top)
    else:
        ax.set_xscale("log")
        ax.set_xlim(10**lo, top)
    plain_log_axis(ax.yaxis if axis == "y" else ax.xaxis)


def style(fig_cfg: Figures) -> None:
    plt.rcParams.update(
        {
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
            "font.family": FONT,
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
    """The title on top, centred on the figure (not the axes, which the tick labels push aside) and broken into
    lines that fit its width; the legend below the plot area (never over the data)."""
    size = plt.rcParams["axes.titlesize"]
    size = size if isinstance(size, float | int) else plt.rcParams["font.size"]
    fig.suptitle(fit(title, fig.get_figwidth() - 0.2, size), fontsize=size)
    fig.legend(
        *ax.get_legend_handles_labels(), loc="outside lower center", ncols=ncols, handlelength=1.2, columnspacing=1.0
    )


def save(fig: plt.Figure, stem: Path, dpi: int) -> list[Path]:
    """Write stem.png and stem.pdf deterministically (no dates, no software version); return both paths. The
    layout is solved once, for the PNG, and kept for the PDF (a second solve would cost a tenth of the time)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = stem.with_name(f"{stem.name}.pdf"), stem.with_name(f"{stem.name}.png")  # a dot in an id stays
    fig.savefig(png, dpi=dpi, metadata={"Software": None})
    fig.set_layout_engine("none")
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)
    return [pdf, png]


def plain_log_axis(axis) -> None:
    """Log-scale ticks as plain numbers (0.25, 1, 4, 10,000) rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1000 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def to_png(fig: plt.Figure, dpi: int) -> bytes:
    """The figure as PNG bytes (for notebooks), then closed."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
