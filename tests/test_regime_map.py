"""The regime map (study/regime.py, outputs/regime_figure.py): its physics properties on the computed grid, its
determinism, its cost and a figure whose texts do not overlap."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
import pytest

from prophet_model.outputs.files import write_csv
from prophet_model.study import regime
from prophet_model.study.config import load_study
from prophet_model.study.runner import run_study

from .conftest import dump_yaml, edited_config, fixed_options, load_yaml


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The default study at the options of an offloading regime (BF16 weights and KV, no search of the cache
    policy or overlap): with FP8 weights every expert of the default model fits and the maps are flat."""
    cfg = edited_config(tmp_path_factory.mktemp("regime") / "_config.yml", fixed_options)
    out, failures = run_study(load_study(cfg))
    assert not failures
    return out


@pytest.fixture(scope="module")
def table(results) -> pd.DataFrame:
    return regime.regime_map(results)


def _grid(table: pd.DataFrame, panel: str) -> pd.DataFrame:
    return table[(table.kind == "grid") & (table.panel == panel)]


def test_the_map_costs_seconds_and_has_every_grid_point(results, table) -> None:
    n = results.study.config.regime_map.grid_points
    t0 = time.perf_counter()
    regime.regime_map(results)
    assert time.perf_counter() - t0 < 10
    for panel in "ab":
        g = _grid(table, panel)
        assert len(g) == n * n and g.speedup.notna().all(), panel
    assert set(table[table.kind == "system"].system_id) == {s.id for s in results.study.systems}


def test_chance_affinity_gives_no_speedup(table) -> None:
    """Uniform routing at the chance affinity: Prophet's placement has nothing to exploit, speedup 1."""
    g = _grid(table, "b")
    chance = g[g.y == g.y.min()]
    assert chance["routing.inter_layer_affinity"].isna().all()  # each candidate's own chance
    assert np.allclose(chance.speedup, 1.0, rtol=0, atol=1e-9), chance.speedup.describe()
    assert (g[g.y == g.y.max()].speedup > 1.01).any()  # and locality does pay somewhere


def test_speedup_does_not_fall_with_host_link_where_experts_do_not_fit(table) -> None:
    g = _grid(table, "a")
    rows = g[g.y > 1].sort_values(["y", "x"])
    assert rows.y.nunique() >= 5
    for y, r in rows.groupby("y"):
        s = r.speedup.to_numpy()
        assert (np.diff(s) >= -1e-9).all(), (y, s)
        assert s[-1] > s[0], y  # and rises: faster host links pay Prophet where the experts live on the host


def test_the_baseline_ignores_the_prophet_only_axis(table) -> None:
    g = _grid(table, "b")
    for w, col in g.groupby("interconnect_bandwidth_factor"):
        assert col.baseline_tokens_per_s.nunique() == 1, w
        assert col.x.nunique() == 1 and col.baseline_split.nunique() == 1, w
    share = g.groupby("interconnect_bandwidth_factor").x.first().sort_index().to_numpy()
    assert (np.diff(share) < 0).all()  # a monotone coordinate: more bandwidth, a smaller share


def test_the_csv_is_deterministic(results, table, tmp_path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(table, a)
    write_csv(regime.regime_map(results), b)
    assert a.read_bytes() == b.read_bytes()
    assert list(pd.read_csv(a).columns) == regime.COLUMNS


def _overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts whose bounding boxes (Agg renderer) intersect."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


def test_the_figure_has_no_overlapping_text(results, table) -> None:
    from prophet_model.outputs.regime_figure import regime_map_figure

    study = results.study
    names = {s.id: s.name for s in study.systems}
    fig = regime_map_figure(table, names, regime.reference_system(study), study.config.figures, regime.LEVELS)
    assert _overlaps(fig) == []
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(lbl.startswith("1.2") for lbl in labels) and any(lbl.startswith("1.1") for lbl in labels)
    assert all(any(s.name in lbl for lbl in labels) for s in study.systems)


def test_the_finding_says_where_prophet_pays_from_the_csv(table, results) -> None:
    """The sentence's numbers follow the CSV: the least host link where 1.2x is reached, and 'no host link'
    where the map never reaches it."""
    from prophet_model.outputs.finding import PAYS, as_text, regime_sentence

    head = results.headline.dropna(subset=["speedup"])
    text = as_text([regime_sentence(table, head)])
    a = table[(table.kind == "grid") & (table.panel == "a")]
    assert f"at least {a[a.speedup >= PAYS].x.min():.3g} GB/s per GPU" in text
    flat = table.copy()
    flat.loc[flat.panel == "a", "speedup"] = 1.0
    assert "no host link up to 450 GB/s per GPU gives Prophet 1.20×" in as_text([regime_sentence(flat, head)])


def test_an_unknown_reference_system_is_one_clear_error(study_dir) -> None:
    from prophet_model.errors import UserError

    cfg = load_yaml(study_dir / "_config.yml")
    cfg["regime_map"]["reference_system"] = "99xZ"
    dump_yaml(cfg, study_dir / "_config.yml")
    with pytest.raises(UserError, match=r"regime_map.reference_system '99xZ' is not a system id; allowed: 2xA100"):
        load_study(study_dir / "_config.yml")


def test_each_point_is_each_sides_best_of_every_candidate(results) -> None:
    """The map searches every candidate at every point: never below mc_search.best's screened search, and
    equal to it within its screening's loss."""
    from prophet_model.study import mc_search

    sid = regime.reference_system(results.study)
    t = regime.panel_a(results, sid, 9)
    draws = {regime.HOST: t[regime.HOST].to_numpy(), regime.EXPERT: t[regime.EXPERT].to_numpy()}
    for variant in ("baseline", "prophet"):
        side = mc_search.side(results, sid, variant)
        screened = mc_search.best(side, draws, len(t), {k: np.ones(1) for k in draws}, regime._host_path, None)
        mine = t[f"{variant}_tokens_per_s"].to_numpy()
        assert (screened.tokens_per_s <= mine * (1 + 1e-12)).all(), variant
        assert np.allclose(screened.tokens_per_s, mine, rtol=1e-2), variant
        assert set(t[f"{variant}_strategy"]) <= {"EP", "DP", "Hybrid"}


def test_without_a_regime_map_section_the_table_is_empty_and_the_figure_says_so(study_dir) -> None:
    from prophet_model.outputs.regime_figure import regime_map_figure

    cfg = load_yaml(study_dir / "_config.yml")
    del cfg["regime_map"]
    dump_yaml(cfg, study_dir / "_config.yml")
    study = load_study(study_dir / "_config.yml")
    out, _ = run_study(study)
    t = regime.regime_map(out)
    assert t.empty and list(t.columns) == regime.COLUMNS
    fig = regime_map_figure(t, {}, regime.reference_system(study), study.config.figures, regime.LEVELS)
    assert any("not computed" in x.get_text() for x in fig.axes[0].texts)
