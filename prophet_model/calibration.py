"""Calibrate the two efficiencies the model cannot observe from the single-GPU measurements.

On one GPU there is no all-to-all, so the measured step times are
    baseline:  T_b = x + y
    Prophet:   T_p = max(x, y) + (1 - a) * y
with x the compute time (kernel start-ups + roofline time / compute efficiency), y the host-link time of the missing
experts (datasheet fetch time / host efficiency) and a the prediction accuracy. With r = y / x,
T_b / T_p = (1 + r) / (max(1, r) + (1 - a) r), which is at most 2 / (2 - a) (at r = 1).
Every exact root r is solved in closed form; where two exist, the one nearest the datasheet ratio
r0 = y0 / x0 is taken; where none exists, the closest reachable ratio is used and the residual is
reported. Fitted efficiencies above 1 are flagged as physically impossible. Nothing else is tuned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .config import Study
from .errors import UserError
from .model import evaluate, startup_time
from .scenarios import scenario_dict, stack


@dataclass(frozen=True)
class CalibrationResult:
    gpu: str
    compute_efficiency: float  # fraction of the roofline reached
    host_efficiency: float  # fraction of datasheet host-link bandwidth reached
    roofline_compute_s: float  # x0: compute time per step at datasheet peaks (start-ups included)
    startup_s: float  # S: the kernel start-ups inside x0, not scaled by the compute efficiency
    datasheet_fetch_s: float  # y0: fetch time per step at datasheet host-link bandwidth
    fitted_compute_s: float  # x
    fitted_fetch_s: float  # y
    measured_speedup: float
    max_model_speedup: float  # 2 / (2 - a)
    exact: bool
    model_baseline_tokens_per_s: float
    model_prophet_tokens_per_s: float
    measured_baseline_tokens_per_s: float
    measured_prophet_tokens_per_s: float
    flags: list[str] = field(default_factory=list)

    @property
    def baseline_residual_pct(self) -> float:
        return 100 * (self.model_baseline_tokens_per_s / self.measured_baseline_tokens_per_s - 1)

    @property
    def prophet_residual_pct(self) -> float:
        return 100 * (self.model_prophet_tokens_per_s / self.measured_prophet_tokens_per_s - 1)


def speedup_at_ratio(r: float, accuracy: float) -> float:
    """Single-GPU Prophet speedup when fetch/compute = r: (1 + r) / (max(1, r) + (1 - a) r)."""
    return (1 + r) / (max(1.0, r) + (1 - accuracy) * r)


def ratio_roots(speedup: float, accuracy: float) -> list[float]:
    """Every r >= 0 with speedup_at_ratio(r, a) == speedup.
    r <= 1: r = (R - 1) / (1 - R (1 - a));  r >= 1: r = 1 / (R (2 - a) - 1)."""
    roots = []
    den1 = 1 - speedup * (1 - accuracy)
    if den1 != 0:
        r1 = (speedup - 1) / den1
        if 0 <= r1 <= 1:
            roots.append(r1)
    den2 = speedup * (2 - accuracy) - 1
    if den2 > 0:
        r2 = 1 / den2
        if r2 >= 1 and all(not math.isclose(r2, r) for r in roots):
            roots.append(r2)
    return roots


def calibrate(study: Study) -> CalibrationResult:
    """Fit compute and host-link efficiency to the configured single-GPU measurements."""
    cal = study.config.calibration
    acc = study.config.prophet.prediction_accuracy
    batch = study.config.workload.batch_size_per_gpu
    gpu = study.calibration_gpu
    one_gpu = stack([scenario_dict(study, gpu, 1, 1, None, False, 1.0, 1.0)])
    datasheet = evaluate(one_gpu)
    x0 = float(datasheet.compute_s[0])
    startups = float(startup_time(one_gpu)[0])
    y0 = float(datasheet.fetch_s[0])
    t_b = batch / cal.baseline_tokens_per_s
    t_p = batch / cal.prophet_tokens_per_s
    measured = t_b / t_p
    max_speedup = 2 / (2 - acc)
    flags: list[str] = []

    if not bool(datasheet.feasible[0]):
        raise UserError(
            f"calibration.gpu: the model's dense weights and KV cache do not fit on one {gpu.name}, so the "
            "single-GPU measurements cannot be modelled; allowed: a GPU with more memory, or a smaller workload"
        )
    if y0 == 0:
        # Nothing is offloaded on one GPU: the fetch efficiency cannot be observed.
        x = math.sqrt(t_b * t_p)
        y = 0.0
        exact = math.isclose(t_b, t_p)
        host_eff = 1.0
        flags.append(
            "host-link efficiency is not identifiable (no expert is offloaded on one GPU); datasheet value used"
        )
        if not exact:
            flags.append(
                f"measured single-GPU speedup {measured:.2f}x cannot arise without offloaded experts; "
                "the model gives 1.00x"
            )
    else:
        r0 = y0 / x0
        roots = ratio_roots(measured, acc)
        exact = bool(roots)
        if roots:
            r = min(roots, key=lambda q: abs(math.log(q / r0)) if q > 0 else math.inf)
        else:
            r = 1.0 if measured > 1 else 1e6
            flags.append(
                f"measured single-GPU Prophet speedup {measured:.2f}x exceeds the model's maximum "
                f"{max_speedup:.2f}x at prediction accuracy {acc:g} (prefetch can at most hide fetch behind "
                "compute); fitted at the closest reachable point"
                if measured > 1
                else f"measured single-GPU Prophet speedup {measured:.2f}x is below what the model can produce"
            )
        g = max(1.0, r) + (1 - acc) * r
        x = math.exp(0.5 * (math.log(t_b / (1 + r)) + math.log(t_p / g)))
        y = r * x
        if y > 0:
            host_eff = y0 / y
        else:  # the measurements imply no fetch at all: the host link cannot be observed
            host_eff = 1.0
            flags.append(
                "host-link efficiency is not identifiable (the measured single-GPU figures imply no expert fetch "
                "time); datasheet value used"
            )
    if x <= startups:
        raise UserError(
            f"calibration: the measured single-GPU step implies {1e3 * x:.3g} ms of compute, less than the "
            f"{1e3 * startups:.3g} ms of kernel start-ups the model counts on one {gpu.name}; allowed: "
            "measurements with a longer step (lower tokens/s), or a smaller catalog kernel_startup_us"
        )
    compute_eff = (x0 - startups) / (x - startups)

    if compute_eff > 1:
        flags.append(
            f"compute efficiency {compute_eff:.2f} > 1: physically impossible (faster than the {gpu.name} roofline)"
        )
    if host_eff > 1:
        need = gpu.host_link_bandwidth_gbps * host_eff
        flags.append(
            f"host-link efficiency {host_eff:.2f} > 1: physically impossible (needs {need:,.0f} GB/s, "
            f"datasheet {gpu.host_link_bandwidth_gbps:g} GB/s)"
        )
    fitted = evaluate(stack([scenario_dict(study, gpu, 1, 1, None, v, compute_eff, host_eff) for v in (False, True)]))
    return CalibrationResult(
        gpu=cal.gpu,
        compute_efficiency=compute_eff,
        host_efficiency=host_eff,
        roofline_compute_s=x0,
        startup_s=startups,
        datasheet_fetch_s=y0,
        fitted_compute_s=x,
        fitted_fetch_s=y,
        measured_speedup=measured,
        max_model_speedup=max_speedup,
        exact=exact,
        model_baseline_tokens_per_s=float(fitted.tokens_per_s[0]),
        model_prophet_tokens_per_s=float(fitted.tokens_per_s[1]),
        measured_baseline_tokens_per_s=cal.baseline_tokens_per_s,
        measured_prophet_tokens_per_s=cal.prophet_tokens_per_s,
        flags=flags,
    )
