"""The seed's claims, checked and inverted. The model predicts what each claim describes from the
hardware alone; where it disagrees, each lever is solved for the value that would give the claimed
figure with everything else as configured (or reported unreachable, with the best the lever gives):
- resident share: the share of touched experts already on the GPU (what memory allows is the model's);
- host-link bandwidth: the GPU's host link and its switch uplink, as a multiple of the attainable rate
  (unreachable past the datasheet line rate);
- prediction accuracy (Prophet only, at most 1);
- inter-layer affinity (Prophet only: the share of tokens its placement keeps on one GPU, the locality that
  would give the claimed all-to-all cut) and interconnect bandwidth, for multi-GPU claims;
- Prophet's hit rate (its cache's share of touched experts; the baseline keeps its own) and the fetch
  overlap (the share of Prophet's copy time hidden behind computation), where Prophet's gain would have
  to come from.
Solving (study/inversion.py, as `solve` does): the metric on a grid of the lever (one vectorized model call), the
crossing nearest the configured value, then the bracket refined 64-fold per vectorized call to 1e-12 relative."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prophet_model.study import inputs, inversion
from prophet_model.study.config import Study, System
from prophet_model.study.runner import StudyResults
from prophet_model.study.scenarios import scenario_dict
from prophet_model.study.sensitivity import Setup, alltoall_per_token, evaluate, strategy_setup, tokens_per_s

# lever -> (sensitivity input, grid, unit): the inputs registry's levers (study/inputs.py)
LEVERS = inputs.levers()
SINGLE_GPU_LEVERS = (
    "resident share",
    "host-link bandwidth",
    "prediction accuracy",
    "Prophet hit rate",
    "fetch overlap",
)
MULTI_GPU_LEVERS = (
    "prediction accuracy",
    "inter-layer affinity",
    "resident share",
    "host-link bandwidth",
    "interconnect bandwidth",
)
# the all-to-all cut moves with the locality Prophet's placement finds, nothing else of Prophet's
COMM_LEVERS = ("inter-layer affinity",)
# where Prophet's gain would have to come from: its cache's hit rate, the overlap of its copies, its accuracy
NEED_LEVERS = ("Prophet hit rate", "fetch overlap", "prediction accuracy")
# the levers that move Prophet alone (the baseline keeps its own value)
PROPHET_ONLY = {name for name in LEVERS if inputs.lever_input(name).side == "prophet"}


@dataclass(frozen=True)
class Inversion:
    lever: str
    needed: float | None  # the lever's value that gives the claimed figure (None: unreachable)
    unit: str
    note: str  # why unreachable, or how the value compares with what is configured or physical
    configured: float = float("nan")  # the lever's value as configured (what the model gives)


@dataclass(frozen=True)
class ClaimCheck:
    claim: str
    system_id: str
    strategy: str
    metric: str
    claimed: float
    model: float
    inversions: list[Inversion] = field(default_factory=list)
    note: str = ""  # why the model gives no figure (the setup does not fit in memory), else ""

    @property
    def gap_pct(self) -> float:
        return 100 * (self.model / self.claimed - 1)


def metric_of(setup: Setup, metric: str, lever: str | None = None, values: np.ndarray | None = None) -> np.ndarray:
    over = {LEVERS[lever][0]: values} if lever else {}
    if metric in ("baseline_tokens_per_s", "prophet_tokens_per_s"):  # one variant is enough
        return np.asarray(tokens_per_s(setup, metric.split("_")[0], over), dtype=float)
    if metric == "comm_reduction":  # baseline all-to-all bytes per sequence over Prophet's
        with np.errstate(divide="ignore", invalid="ignore"):
            cut = alltoall_per_token(setup, "baseline", over) / alltoall_per_token(setup, "prophet", over)
        return np.asarray(cut, dtype=float)
    return np.asarray(evaluate(setup, over)[metric], dtype=float)


def span(lo: float, hi: float) -> str:
    """The least and most a metric reaches over a lever's range, with the figures (4 up to 8) that tell them apart:
    "1 to 1.017"; one value where they are equal ("1 at every value"), never "1 to 1"."""
    if lo == hi or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{lo:.4g} at every value" if lo == hi else f"{lo:.4g} to {hi:.4g}"
    for digits in range(4, 9):
        a, b = f"{lo:.{digits}g}", f"{hi:.{digits}g}"
        if a != b:
            return f"{a} to {b}"
    return f"{lo:.4g} at every value"


def invert(
    setup: Setup, metric: str, target: float, lever: str, configured: float, physical_max: float | None
) -> Inversion:
    """The lever value at which `metric` reaches `target` (the one closest to the configured value)."""
    _, grid, unit = LEVERS[lever]
    if lever in PROPHET_ONLY and metric.startswith("baseline"):
        return Inversion(lever, None, unit, "does not move the baseline", configured)
    solution = inversion.solve(lambda x: metric_of(setup, metric, lever, x), grid, target, near=configured)
    if not solution.roots:
        y = solution.y - target
        ok = np.isfinite(y)
        best, worst = (np.max(y[ok] + target), np.min(y[ok] + target)) if ok.any() else (np.nan, np.nan)
        where = f"{grid[0]:g}-{grid[-1]:g}" + (f" {unit}" if unit else "")
        return Inversion(
            lever, None, unit, f"unreachable: over {where} the model gives {span(worst, best)}", configured
        )
    needed = solution.roots[0]
    note = f"configured {configured:.4g}"
    if physical_max is not None and needed > physical_max * (1 + 1e-9):
        note += f"; above the physical limit {physical_max:.4g}: unreachable on this hardware"
    return Inversion(lever, needed, unit, note, configured)


def _configured(setup: Setup, lever: str, study: Study) -> tuple[float, float | None]:
    """(the lever's configured value, its physical upper bound or None): a share's is its allowed maximum
    (study/inputs.py), a bandwidth's the line rate."""
    from prophet_model import physics as m
    from prophet_model.study.scenarios import stack

    top = inputs.lever_input(lever).high
    if lever == "resident share":
        return float(m.evaluate(stack([setup.baseline])).resident_fraction[0]), top
    if lever == "Prophet hit rate":
        return float(m.evaluate(stack([setup.prophet])).resident_fraction[0]), top
    if lever == "fetch overlap":
        r = m.evaluate(stack([setup.prophet]))
        return (1 - float(r.fetch_exposed_s[0] / r.fetch_s[0]) if r.fetch_s[0] > 0 else 1.0), top
    if lever == "host-link bandwidth":
        from prophet_model.study.rates import attainable

        return 1.0, 1.0 / attainable(setup.system.gpu_key, study.gpus).host_share  # the line rate
    if lever == "prediction accuracy":
        return study.config.prophet.prediction_accuracy, top
    if lever == "inter-layer affinity":
        from prophet_model import physics as m
        from prophet_model.study.scenarios import stack

        s = stack([setup.prophet]).arrays()
        a = setup.prophet["inter_layer_affinity"]
        return (float(a) if np.isfinite(a) else float(m.chance_locality(s)[0])), top
    return 1.0, 1.0 / setup.baseline["link_efficiency"]


def not_evaluated(setup: Setup) -> str:
    """Why the setup gives no figure (model.why_infeasible of its memory terms), or a generic reason."""
    from prophet_model.physics import memory_terms, why_infeasible
    from prophet_model.study.scenarios import stack

    for variant in (setup.baseline, setup.prophet):
        why = why_infeasible(**{k: float(v[0]) for k, v in memory_terms(stack([variant])).items()})
        if why:
            return why
    return "the model gives no finite figure for this setup"


def check(setup: Setup, study: Study, claim: str, metric: str, target: float, levers: tuple[str, ...]) -> ClaimCheck:
    model = float(metric_of(setup, metric))
    if not np.isfinite(model):  # nothing to invert: say why instead
        return ClaimCheck(claim, setup.system.id, setup.strategy, metric, target, model, [], not_evaluated(setup))
    inversions = []
    if not np.isclose(model, target, rtol=1e-6):
        for lever in levers:
            configured, physical = _configured(setup, lever, study)
            inversions.append(invert(setup, metric, target, lever, configured, physical))
    return ClaimCheck(claim, setup.system.id, setup.strategy, metric, target, model, inversions)


def single_gpu_id(study: Study) -> str:
    """The id the single-GPU claims are filed under (claims.csv, summaries)."""
    return "1x" + study.config.single_gpu_claim.gpu


def single_gpu_setup(study: Study) -> Setup:
    c = study.config.single_gpu_claim
    gpu = study.gpus[c.gpu]
    name = f"1×{gpu.name}"
    system = System(single_gpu_id(study), name, c.gpu, gpu, 1, "", None, "none", "one GPU")  # type: ignore[arg-type]
    args = (study, c.gpu, 1, 1, None)
    return Setup(
        system,
        "single GPU",
        1,
        scenario_dict(*args, False),
        scenario_dict(*args, True),
        study.config.cost.monthly_tokens,
    )


def single_gpu_claims(study: Study) -> list[ClaimCheck]:
    c = study.config.single_gpu_claim
    s = single_gpu_setup(study)
    return [
        check(
            s,
            study,
            f"single-GPU baseline {c.baseline_tokens_per_s:g} tokens/s",
            "baseline_tokens_per_s",
            c.baseline_tokens_per_s,
            SINGLE_GPU_LEVERS,
        ),
        check(
            s,
            study,
            f"single-GPU Prophet {c.prophet_tokens_per_s:g} tokens/s",
            "prophet_tokens_per_s",
            c.prophet_tokens_per_s,
            SINGLE_GPU_LEVERS,
        ),
        check(
            s,
            study,
            f"single-GPU speedup {c.prophet_tokens_per_s / c.baseline_tokens_per_s:.3g}x",
            "speedup",
            c.prophet_tokens_per_s / c.baseline_tokens_per_s,
            SINGLE_GPU_LEVERS,
        ),
    ]


INVERTIBLE = ("speedup", "prophet_tokens_per_s", "baseline_tokens_per_s", "comm_reduction")


def expectation_claims(
    study: Study, setups: dict[str, Setup], checks: pd.DataFrame, results: StudyResults | None = None
) -> list[ClaimCheck]:
    """Every missed expectation on throughput, speedup or the all-to-all cut, inverted at its nearest bound
    (on the headline setup; a cut expectation also on its own strategy's configuration, given `results`)."""
    out = []
    for r in checks[(checks.kind == "expectation") & (checks.status == "MISS")].itertuples():
        setup = setups.get(r.system_id)
        if r.check == "comm_reduction" and results is not None and (setup is None or setup.strategy != r.strategy):
            setup = strategy_setup(results, r.system_id, r.strategy)
        if r.check not in INVERTIBLE or setup is None or setup.strategy != r.strategy:
            continue
        target = r.min if r.value < r.min else r.max
        label = f"{r.system_id} {r.strategy} {r.check} {r.min:g}" + (f"-{r.max:g}" if r.max != r.min else "")
        levers = COMM_LEVERS if r.check == "comm_reduction" else MULTI_GPU_LEVERS
        out.append(check(setup, study, label, r.check, target, levers))
    return out


def paper_speedup(study: Study) -> float | None:
    """The paper's multi-GPU speedup claim: the point-valued speedup expectation of the headline system, of
    whichever strategy the draft analysis gave it for (5.7x, Hybrid, in the seed), or None."""
    meta = study.config.study
    for e in study.config.expectations:
        if (e.system, e.metric) == (meta.headline_system, "speedup") and e.min == e.max:
            return e.min
    return None


NEED_PREFIX = "the paper's"


def need_claims(study: Study, setups: dict[str, Setup]) -> list[ClaimCheck]:
    """Per system (its headline row): what Prophet's hit rate, overlap and accuracy would each have to be,
    with everything else as configured, for the paper's speedup to hold on it."""
    target = paper_speedup(study)
    if target is None:
        return []
    return [
        check(setup, study, f"{NEED_PREFIX} {target:g}x speedup on {sid}", "speedup", target, NEED_LEVERS)
        for sid, setup in setups.items()
    ]


def table(claims: list[ClaimCheck]) -> pd.DataFrame:
    """One row per claim and lever (claims.csv)."""
    rows = []
    for c in claims:
        base = {
            "claim": c.claim,
            "system_id": c.system_id,
            "strategy": c.strategy,
            "metric": c.metric,
            "claimed": c.claimed,
            "model": c.model,
            "gap_pct": c.gap_pct,
        }
        if not c.inversions:
            rows.append(
                {
                    **base,
                    "lever": "",
                    "configured": np.nan,
                    "needed": np.nan,
                    "unit": "",
                    "note": f"not evaluated: {c.note}" if c.note else "the model agrees",
                }
            )
        for inv in c.inversions:
            rows.append(
                {
                    **base,
                    "lever": inv.lever,
                    "configured": inv.configured,
                    "needed": np.nan if inv.needed is None else inv.needed,
                    "unit": inv.unit,
                    "note": inv.note,
                }
            )
    return pd.DataFrame(rows)


def sentence(c: ClaimCheck) -> str:
    """A plain-text statement of the check and its inversions."""
    if c.note:
        return f"{c.claim}: not evaluated: {c.note}"
    parts = [f"{c.claim}: the model gives {c.model:,.4g} ({c.gap_pct:+.0f}%)"]
    for inv in c.inversions:
        if inv.needed is None:
            parts.append(f"{inv.lever}: {inv.note}")
        else:
            parts.append(f"{inv.lever} {inv.needed:.3g} {inv.unit} ({inv.note})".replace("  ", " "))
    return "; ".join(parts)
