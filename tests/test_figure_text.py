"""Every figure `run` writes reads: no two of its texts (tick labels, axis labels, titles, legend entries, value
labels, annotations) overlap and none runs off the canvas, measured with the Agg renderer on the figures as
drawn from the session's results (outputs/figure_cache.figure: what `run` draws)."""

from __future__ import annotations

import itertools

import pytest

from prophet_model.outputs import study_results as sr
from prophet_model.outputs.figure_cache import figure
from prophet_model.outputs.report import figure_jobs
from prophet_model.study.config import load_study

from .conftest import ROOT

TOLERANCE_PX = 1.0  # at 100 dpi: boxes may touch, not cross
SMALLEST_PT = 5.5  # at print size (figures are made at the paper's column or text width)


@pytest.fixture(scope="module")
def study():
    return load_study(ROOT / "_config.yml")


def jobs_of(results, study) -> list:
    """Every figure job of a whole run, from the results folder's tables."""
    names = {s.id: s.name for s in study.systems}
    rows = {s.id: sr.system_rows(results, s.id) for s in study.systems}
    head, comp, regimes = (sr.read(results, t) for t in ("headline", "all_systems_comparison", "regime_map"))
    return figure_jobs(rows, names, head, comp, regimes, sr.facts(results))


def drawn_texts(fig, monkeypatch) -> list:
    """(text, window extent in pixels, font size in points) of every text the renderer drew: tick labels out
    of view are not drawn, so they are not counted."""
    from matplotlib.text import Text

    drawn = []
    real = Text.draw

    def draw(self, renderer):
        real(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append((self.get_text(), self.get_window_extent(renderer), self.get_fontsize()))

    with monkeypatch.context() as m:
        m.setattr(Text, "draw", draw)
        fig.set_dpi(100)
        fig.canvas.draw()
    return drawn


def text_problems(fig, monkeypatch) -> list[str]:
    """Each pair of drawn texts whose boxes overlap by more than TOLERANCE_PX both ways, each text that runs
    off the canvas, each text smaller than SMALLEST_PT."""
    texts = drawn_texts(fig, monkeypatch)
    w, h = fig.bbox.width, fig.bbox.height
    out = []
    for (a, ba, _), (b, bb, _) in itertools.combinations(texts, 2):
        dx = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        dy = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if dx > TOLERANCE_PX and dy > TOLERANCE_PX:
            out.append(f"{a!r} overlaps {b!r}")
    for t, box, size in texts:
        if box.x0 < -TOLERANCE_PX or box.y0 < -TOLERANCE_PX or box.x1 > w + TOLERANCE_PX or box.y1 > h + TOLERANCE_PX:
            out.append(f"{t!r} runs off the canvas")
        if size < SMALLEST_PT:
            out.append(f"{t!r} is {size:.1f} pt")
    return out


def test_no_figure_of_run_has_overlapping_or_clipped_text(plain_results, study, monkeypatch) -> None:
    import matplotlib.pyplot as plt

    jobs = jobs_of(plain_results, study)
    assert len(jobs) == 3 * len(study.systems) + 3
    problems = {}
    for job in jobs:
        fig = figure(job, study.config.figures)
        if found := text_problems(fig, monkeypatch):
            problems[job.stem] = found
        plt.close(fig)
    assert not problems, "\n".join(f"{stem}: {'; '.join(p)}" for stem, p in problems.items())


def bar_spans(fig) -> list[tuple[int, float, str]]:
    """(panel, decades spanned by its bars' positive lengths, the scale of their value axis) of each panel with
    bars (vertical bars: heights on y; horizontal: widths on x)."""
    import numpy as np
    from matplotlib.patches import Rectangle

    out = []
    for i, ax in enumerate(fig.axes):
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        if len(bars) < 2:
            continue
        widths = np.array([b.get_width() for b in bars])
        vertical = np.ptp(widths) < 1e-9  # vertical bars share one width
        v = np.abs([b.get_height() if vertical else b.get_width() for b in bars])
        v = v[np.isfinite(v) & (v > 0)]
        if len(v) > 1:
            out.append((i, float(np.log10(v.max() / v.min())), ax.get_yscale() if vertical else ax.get_xscale()))
    return out


def test_bars_spanning_decades_are_on_a_log_axis(plain_results, study) -> None:
    """A panel whose bars span more than DECADES decades (the 2×A100's 16 tokens/s beside 102,000) draws
    them on a log axis: on a linear one the small bars cannot be seen."""
    import matplotlib.pyplot as plt

    from prophet_model.outputs.figures import DECADES

    wrong, logs = [], 0
    for job in jobs_of(plain_results, study):
        fig = figure(job, study.config.figures)
        for panel, span, scale in bar_spans(fig):
            logs += scale == "log"
            if span > DECADES and scale != "log":
                wrong.append(f"{job.stem} panel {panel}: {span:.1f} decades on a {scale} axis")
        plt.close(fig)
    assert not wrong
    assert logs >= 2  # the key figure's two panels at least


def test_the_check_sees_an_overlap(study, monkeypatch) -> None:
    """Two labels at one place, and one past the right edge, are found (the check can fail)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.text(0.5, 0.5, "one label", transform=ax.transAxes)
    ax.text(0.52, 0.5, "another", transform=ax.transAxes)
    ax.text(0.99, 0.1, "past the edge", transform=ax.transAxes)
    problems = text_problems(fig, monkeypatch)
    plt.close(fig)
    assert "'one label' overlaps 'another'" in problems
    assert "'past the edge' runs off the canvas" in problems
