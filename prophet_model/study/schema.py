"""The study configuration's schema (`_config.yml`): every section as a strict, frozen record
(study/strict.py), with the allowed values and the checks that need only the file itself."""

from __future__ import annotations

import math
import re
from typing import Literal

from prophet_model.study import columns, inputs
from prophet_model.study.catalog import display_name
from prophet_model.study.strict import Field, Record, field_validator, model_validator

StrategyName = Literal["EP", "DP", "Hybrid"]
STRATEGIES: tuple[StrategyName, ...] = ("EP", "DP", "Hybrid")
PRECISION_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
MAX_ID_CHARS = 64  # protective: an id is part of file names (results_<id>.csv), which the file system limits


def _bounds(key: str) -> dict[str, float]:
    """The allowed values of a model input's configured value, as the registry declares them (study/inputs.py)."""
    return inputs.get(key).field_bounds()


class _Strict(Record):
    """No unknown keys; numbers finite; whole numbers given as whole numbers (not true, "3" or 2.0)."""


class _WithSources(_Strict):
    sources: dict[str, str]

    @model_validator(mode="after")
    def _every_value_has_a_source(self) -> _WithSources:
        fields = [k for k in type(self).model_fields if k != "sources" and k in self.model_fields_set]
        missing = sorted(k for k in fields if not self.sources.get(k, "").strip())
        if missing:
            raise ValueError(
                f"sources is missing an entry for: {', '.join(missing)}; allowed: sources with one entry "
                "per value given, saying where it comes from"
            )
        return self


class StudyMeta(_Strict):
    title: str
    results_dir: str = "results"
    headline_system: str
    headline_strategy: str | None = (
        None  # removed: accepted as a key only to be refused with why (_no_headline_strategy)
    )

    @field_validator("title")
    @classmethod
    def _display_name(cls, v: str) -> str:
        return display_name(v)

    @field_validator("headline_strategy")
    @classmethod
    def _no_headline_strategy(cls, v: str | None) -> None:
        if v is not None:
            raise ValueError(
                f"{v!r}: this key was removed (the study compares each side at its best strategy, split and "
                "batch); allowed: delete study.headline_strategy"
            )
        return None


class CatalogPaths(_Strict):
    gpus: str
    interconnects: str
    models: str


class HybridSplit(_Strict):
    ep: int = Field(gt=0)
    dp: int = Field(gt=0)


class SystemConfig(_Strict):
    id: str
    name: str
    gpu: str
    count: int = Field(gt=0, le=4096)
    interconnect: str
    hybrid: HybridSplit | Literal["auto", "none"]
    hybrid_note: str = ""
    # the MoE model this system serves (a key of catalog/models.yml); None: the study's `model` (a routing trace
    # records the study's model: a system serving its own routes uniformly, and the run's warnings say so)
    model: str | None = None
    model_note: str = ""  # why this system serves another model than the study's (required with `model`)

    @field_validator("name")
    @classmethod
    def _display_name(cls, v: str) -> str:
        return display_name(v)

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if len(v) > MAX_ID_CHARS:
            raise ValueError(f"id is {len(v)} characters long; allowed: at most {MAX_ID_CHARS} (it names files)")
        if not SAFE_ID.fullmatch(v):
            raise ValueError(f"id {v!r} is not safe for file names; allowed: letters, digits, '-' and '_'")
        return v

    @model_validator(mode="after")
    def _hybrid_matches_count(self) -> SystemConfig:
        h = self.hybrid
        if isinstance(h, HybridSplit) and (h.ep < 2 or h.dp < 2):
            raise ValueError(
                f"hybrid: {{ep: {h.ep}, dp: {h.dp}}} is {'EP' if h.dp == 1 else 'DP'}, not a hybrid split; allowed: "
                "ep > 1 and dp > 1 with ep x dp = count, 'auto' or 'none' (with a hybrid_note)"
            )
        if isinstance(h, HybridSplit) and h.ep * h.dp != self.count:
            raise ValueError(
                f"hybrid split {h.ep}x{h.dp} = {h.ep * h.dp} GPUs, but count is {self.count}; "
                "allowed: ep x dp = count, 'auto' or 'none'"
            )
        if h == "none" and not self.hybrid_note.strip():
            raise ValueError("hybrid: none needs a hybrid_note giving the reason; allowed: hybrid_note: '...'")
        if self.model is not None and not self.model_note.strip():
            raise ValueError(
                "model (a system's own model) needs a model_note giving the reason; allowed: model_note: '...'"
            )
        return self


class Workload(_WithSources):
    batch_size_per_gpu: int = Field(**_bounds("workload.batch_size_per_gpu"))
    # true: every configuration runs at the integer per-GPU batch with the most tokens/s that fits GPU memory
    # (and meets max_step_ms), found exactly (study/operating_point.py); batch_size_per_gpu is kept as the
    # fixed-batch comparison
    batch_search: bool = True
    max_step_ms: float | None = Field(default=None, gt=0)  # a time-per-output-token bound (None: no bound)
    context_length_tokens: int = Field(**_bounds("workload.context_length_tokens"))
    precision: Literal["fp32", "bf16", "fp16", "fp8"]  # activations (and the all-to-all's rows)
    # the weights' and the KV cache's precision (study/scenarios.py OPTIONS): auto searches bf16 and fp8 (weights:
    # a model shipped in FP8 keeps fp8), each side at its best
    weight_precision: Literal["bf16", "fp8", "auto"] = "auto"
    kv_precision: Literal["bf16", "fp8", "auto"] = "auto"
    reserved_memory_gb: float = Field(ge=0)


class Prophet(_WithSources):
    prediction_accuracy: float = Field(**_bounds("prophet.prediction_accuracy"))
    # a what-if override of the all-to-all cut (None: derived from routing and placement, physics/comm.py)
    comm_reduction_factor: float | None = Field(default=None, **_bounds("prophet.comm_reduction_factor"))
    prefetch_policy: Literal["window", "eager"]


class ExpertCache(_WithSources):
    """Which experts stay on the GPU between uses (physics/cache.py): the baseline's policy and Prophet's."""

    baseline_policy: Literal["static", "lru", "auto"]  # auto: static and lru searched, the faster kept
    prophet_policy: Literal["static", "lru", "predicted", "auto"]  # auto: all three searched
    memory_share: float = Field(**_bounds("expert_cache.memory_share"))


class Experts(_WithSources):
    """Where the routed experts live (physics/fetch.py): `replicate`, every replica holds what its memory
    allows and a miss comes from host; `pool`, the GPUs of the replicas place their experts together, each
    expert on at least one GPU where the memory allows it, and a miss comes from the GPU that holds it.
    `offload_compute`: a missing expert is copied (`copy`), computed by the host CPU from its memory (`cpu`), or
    per layer the faster of the two (`auto`)."""

    placement: Literal["replicate", "pool"] = "pool"
    # a missing expert (physics/cpu.py): copied to the GPU, computed on the host CPU, or per layer the faster
    offload_compute: Literal["copy", "cpu", "auto"] = "copy"


class Parallel(_WithSources):
    """Tensor-parallel attention within a replica (physics/memory.py, comm.py): 1 (none), 2, 4, 8 (must
    divide the replica's GPUs and the attention heads), or `auto` (every such degree searched like the batch)."""

    attention_tp: Literal[1, 2, 4, 8, "auto"] = "auto"
    # two_batch: two half-batches, one's all-to-all behind the other's computation (physics/step.py overlapped);
    # auto: none and two_batch searched, each side at its best
    overlap: Literal["none", "two_batch", "auto"] = "auto"


class Routing(_WithSources):
    """How tokens spread over the experts (physics/cache.py)."""

    distribution: Literal["uniform", "zipf", "trace"]
    zipf_exponent: float = Field(**_bounds("routing.zipf_exponent"))  # used by `zipf`
    trace_file: str  # used by `trace`: CSV layer,expert,count, relative to the config's folder
    temporal_reuse: float = Field(**_bounds("routing.temporal_reuse"))
    # share of tokens whose next layer's experts all sit on their current GPU under an affinity-aware placement
    # (physics/comm.py; None: the chance level of the engines' placement, no cut)
    inter_layer_affinity: float | None = Field(default=None, **_bounds("routing.inter_layer_affinity"))

    @model_validator(mode="after")
    def _trace_named(self) -> Routing:
        if self.distribution == "trace" and not self.trace_file.strip():
            raise ValueError("distribution trace needs trace_file: a CSV with columns layer,expert,count")
        return self


class SingleGpuClaim(_WithSources):
    """The draft analysis's single-GPU throughputs: a claim the model checks and inverts, never an input."""

    gpu: str
    baseline_tokens_per_s: float = Field(gt=0)
    prophet_tokens_per_s: float = Field(gt=0)


class Implementation(_WithSources):
    """How the served engine runs a decode step: its kernel structure and kernel counts."""

    kernel_structure: Literal["fused", "per_expert"]
    kernels_per_layer: int = Field(ge=0, le=1000)  # everything of a layer but the routed experts
    kernels_per_moe_layer: int = Field(ge=0, le=1000)  # fused: a layer's routed experts
    kernels_per_expert: int = Field(ge=0, le=1000)  # per_expert: one touched expert
    kernels_per_shared_expert: int = Field(ge=0, le=1000)  # one shared expert of an MoE layer
    kernels_head: int = Field(ge=0, le=1000)  # final norm and LM head


class Cost(_WithSources):
    monthly_tokens: float = Field(gt=0)


class Figures(_WithSources):
    column_width_in: float = Field(gt=0, le=20)
    full_width_in: float = Field(gt=0, le=20)
    height_in: float = Field(gt=0, le=20)
    font_size_pt: float = Field(ge=4, le=24)
    png_dpi: int = Field(ge=200, le=1200)


class RegimeMap(_WithSources):
    """The regime map's hardware ends and its reference system (null: the headline system)."""

    host_link_low_gbps_per_direction: float = Field(gt=0, le=10_000)
    host_link_high_gbps_per_direction: float = Field(gt=0, le=10_000)
    reference_system: str | None = None
    grid_points: int = Field(default=25, ge=5, le=101)

    @model_validator(mode="after")
    def _ordered(self) -> RegimeMap:
        if self.host_link_low_gbps_per_direction >= self.host_link_high_gbps_per_direction:
            raise ValueError(
                "host_link_low_gbps_per_direction must be below host_link_high_gbps_per_direction; "
                "allowed: low < high, e.g. 32 (PCIe 4.0 x16) and 450 (NVLink-C2C)"
            )
        return self


# the inputs `uncertainty.inputs` may name (study/inputs.py: those declared uncertain)
UNCERTAIN_INPUTS = inputs.uncertain_keys()


class Distribution(_Strict):
    """A multiplicative factor on the configured (or catalog) value, centred on 1: the configured value
    is the distribution's median. Every draw re-searches each variant's operating point (study/mc_search.py)
    and a draw where a variant has none is dropped and counted (uncertainty.csv: draws, dropped), so a
    headline number stays inside its own interval whatever value is configured, unless it sits on a spike
    that few draws reach (sensitivity.outside_interval names it; the README gives the case)."""

    distribution: Literal["uniform", "triangular", "loguniform"]
    low: float = Field(gt=0)
    high: float = Field(gt=0)
    mode: float | None = None
    source: str

    @model_validator(mode="after")
    def _ordered(self) -> Distribution:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high}); allowed: low <= high")
        if self.distribution == "triangular" and (self.mode is None or not self.low <= self.mode <= self.high):
            raise ValueError("a triangular distribution needs low <= mode <= high")
        centred = {
            "uniform": math.isclose(self.low + self.high, 2.0, rel_tol=1e-9),
            "triangular": self.mode is not None
            and math.isclose(self.mode, 1.0)
            and math.isclose(self.low + self.high, 2.0),
            "loguniform": math.isclose(self.low * self.high, 1.0, rel_tol=1e-9),
        }[self.distribution]
        if not centred:
            raise ValueError(
                f"a {self.distribution} factor must be centred on 1 (the configured value is its median); allowed: "
                + {
                    "uniform": "low + high = 2, e.g. {low: 0.8, high: 1.2}",
                    "triangular": "mode: 1 and low + high = 2, e.g. {low: 0.875, mode: 1, high: 1.125}",
                    "loguniform": "low x high = 1, e.g. {low: 0.5, high: 2}",
                }[self.distribution]
            )
        return self


class Uncertainty(_Strict):
    samples: int = Field(gt=0, le=10_000_000)
    seed: int = Field(ge=0)
    inputs: dict[str, Distribution] = Field(default={})

    @field_validator("inputs")
    @classmethod
    def _known(cls, v: dict[str, Distribution]) -> dict[str, Distribution]:
        unknown = sorted(set(v) - set(UNCERTAIN_INPUTS))
        if unknown:
            raise ValueError(f"unknown uncertain input(s) {', '.join(unknown)}; allowed: {', '.join(UNCERTAIN_INPUTS)}")
        return v


# The metrics of all_systems_comparison.csv that an expectation may check (study/columns.py).
COMPARISON_METRICS = columns.expectation_metrics()


class Expectation(_Strict):
    system: str
    strategy: StrategyName
    metric: str
    min: float
    max: float
    source: str

    @model_validator(mode="after")
    def _ordered(self) -> Expectation:
        if self.metric not in COMPARISON_METRICS:
            raise ValueError(
                f"metric {self.metric!r} is not a comparison metric; allowed: {', '.join(COMPARISON_METRICS)}"
            )
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max}); allowed: min <= max")
        return self


class StudyConfig(_Strict):
    study: StudyMeta
    catalogs: CatalogPaths
    model: str
    systems: list[SystemConfig] = Field(min_length=1)
    strategies: list[StrategyName] = Field(min_length=1)
    workload: Workload
    prophet: Prophet
    expert_cache: ExpertCache
    experts: Experts = Experts(sources={})
    parallel: Parallel = Parallel(sources={})
    routing: Routing
    implementation: Implementation
    single_gpu_claim: SingleGpuClaim
    cost: Cost
    figures: Figures
    uncertainty: Uncertainty | None = None
    regime_map: RegimeMap | None = None
    expectations: list[Expectation] = Field(default=[])

    @model_validator(mode="after")
    def _unique_and_known(self) -> StudyConfig:
        ids = [s.id for s in self.systems]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"systems: duplicate id(s) {', '.join(dupes)}; allowed: each id once")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("strategies: a strategy appears twice; allowed: each of EP, DP, Hybrid at most once")
        ref = self.regime_map.reference_system if self.regime_map else None
        if ref is not None and ref not in ids:
            raise ValueError(f"regime_map.reference_system {ref!r} is not a system id; allowed: {', '.join(ids)}")
        if self.study.headline_system not in ids:
            raise ValueError(
                f"study.headline_system {self.study.headline_system!r} is not a system id; allowed: {', '.join(ids)}"
            )
        for i, e in enumerate(self.expectations):
            if e.system not in ids:
                raise ValueError(f"expectations.{i}.system {e.system!r} is not a system id; allowed: {', '.join(ids)}")
        return self
