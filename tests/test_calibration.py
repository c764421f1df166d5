"""Calibration: closed-form roots, the model's single-GPU ceiling, and flags."""

from __future__ import annotations

import math

import pytest

from prophet_model.calibration import calibrate, ratio_roots, speedup_at_ratio
from prophet_model.config import load_study

from .conftest import dump_yaml, load_yaml


@pytest.mark.parametrize("accuracy", [0.0, 0.5, 0.8, 1.0])
def test_roots_reproduce_the_speedup(accuracy: float) -> None:
    for r in (0.1, 0.5, 1.0, 2.0, 10.0):
        target = speedup_at_ratio(r, accuracy)
        roots = ratio_roots(target, accuracy)
        assert roots, (r, accuracy)
        assert all(math.isclose(speedup_at_ratio(q, accuracy), target, rel_tol=1e-12) for q in roots)
        assert any(math.isclose(q, r, rel_tol=1e-9) for q in roots) or accuracy == 0.0


def test_max_single_gpu_speedup_is_two_over_two_minus_a() -> None:
    """At a = 0.8 fetch and compute balanced (r = 1) give (1+1)/(1+0.2) = 1.667x, the ceiling."""
    assert speedup_at_ratio(1.0, 0.8) == pytest.approx(2 / 1.2)
    assert not ratio_roots(2.5, 0.8)


def test_seed_calibration_is_flagged(study_dir) -> None:
    """The seed's 250/100 = 2.5x single-GPU speedup exceeds what prefetching can give at 80%
    accuracy; the fit must say so and must flag the impossible host-link efficiency."""
    cal = calibrate(load_study(study_dir / "_config.yml"))
    assert not cal.exact
    assert cal.max_model_speedup == pytest.approx(2 / 1.2)
    assert any("exceeds the model's maximum" in f for f in cal.flags)
    assert cal.host_efficiency > 1 and any("physically impossible" in f for f in cal.flags)


def test_fit_recovers_the_efficiencies_that_generated_the_measurements(study_dir) -> None:
    """Measurements made by the model itself at efficiencies (0.5, 0.25) are fitted exactly and give
    those efficiencies back: x = S + (x0 - S)/0.5 (kernel start-ups S are not scaled), y = y0/0.25,
    T_b = x + y, T_p = max(x, y) + (1 - a) y."""
    path = study_dir / "_config.yml"
    probe = calibrate(load_study(path))
    assert 0 < probe.startup_s < probe.roofline_compute_s
    x = probe.startup_s + (probe.roofline_compute_s - probe.startup_s) / 0.5
    y = probe.datasheet_fetch_s / 0.25
    batch, acc = 16, 0.8
    cfg = load_yaml(path)
    cfg["calibration"]["baseline_tokens_per_s"] = batch / (x + y)
    cfg["calibration"]["prophet_tokens_per_s"] = batch / (max(x, y) + (1 - acc) * y)
    dump_yaml(cfg, path)
    cal = calibrate(load_study(path))
    assert cal.exact
    assert cal.compute_efficiency == pytest.approx(0.5, rel=1e-9)
    assert cal.host_efficiency == pytest.approx(0.25, rel=1e-9)
    assert cal.baseline_residual_pct == pytest.approx(0, abs=1e-7)
    assert cal.prophet_residual_pct == pytest.approx(0, abs=1e-7)
    assert not any("impossible" in f for f in cal.flags)
