"""The study configuration (`_config.yml`): schema, loading, and readable errors.

`load_study(path)` returns a validated, fully resolved `Study` (catalog names replaced by their
specs) or raises `UserError` whose message names the file, the key path and the allowed values.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .catalog import GPU, Interconnect, MoEModel
from .errors import UserError

StrategyName = Literal["EP", "DP", "Hybrid"]
STRATEGIES: tuple[StrategyName, ...] = ("EP", "DP", "Hybrid")
PRECISION_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _WithSources(_Strict):
    sources: dict[str, str]

    @model_validator(mode="after")
    def _every_value_has_a_source(self) -> _WithSources:
        fields = [k for k in type(self).model_fields if k != "sources"]
        missing = sorted(k for k in fields if not self.sources.get(k, "").strip())
        if missing:
            raise ValueError(f"sources is missing an entry for: {', '.join(missing)}")
        return self


class StudyMeta(_Strict):
    title: str
    results_dir: str = "results"
    headline_system: str
    headline_strategy: StrategyName = "Hybrid"


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

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if not SAFE_ID.match(v):
            raise ValueError(f"id {v!r} is not safe for file names; allowed: letters, digits, '-' and '_'")
        return v

    @model_validator(mode="after")
    def _hybrid_matches_count(self) -> SystemConfig:
        h = self.hybrid
        if isinstance(h, HybridSplit) and h.ep * h.dp != self.count:
            raise ValueError(
                f"hybrid split {h.ep}x{h.dp} = {h.ep * h.dp} GPUs, but count is {self.count}; "
                "allowed: ep x dp = count, 'auto' or 'none'"
            )
        if h == "none" and not self.hybrid_note.strip():
            raise ValueError("hybrid: none needs a hybrid_note giving the reason")
        return self


class Workload(_WithSources):
    batch_size_per_gpu: int = Field(gt=0, le=1_000_000)
    context_length_tokens: int = Field(gt=0)
    precision: Literal["fp32", "bf16", "fp16", "fp8"]
    reserved_memory_gb: float = Field(ge=0)


class Prophet(_WithSources):
    prediction_accuracy: float = Field(ge=0, le=1)
    comm_reduction_factor: float = Field(ge=1)


class Calibration(_WithSources):
    gpu: str
    baseline_tokens_per_s: float = Field(gt=0)
    prophet_tokens_per_s: float = Field(gt=0)


class Cost(_WithSources):
    monthly_tokens: float = Field(gt=0)


class Figures(_WithSources):
    column_width_in: float = Field(gt=0, le=20)
    full_width_in: float = Field(gt=0, le=20)
    height_in: float = Field(gt=0, le=20)
    font_size_pt: float = Field(ge=4, le=24)
    png_dpi: int = Field(ge=200, le=1200)


UNCERTAIN_INPUTS = (
    "prophet.prediction_accuracy",
    "prophet.comm_reduction_factor",
    "workload.batch_size_per_gpu",
    "workload.context_length_tokens",
    "interconnect_bandwidth_factor",
    "host_link_bandwidth_factor",
    "expert_size_factor",
)


class Distribution(_Strict):
    distribution: Literal["uniform", "triangular", "loguniform"]
    low: float
    high: float
    mode: float | None = None
    source: str

    @model_validator(mode="after")
    def _ordered(self) -> Distribution:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
        if self.distribution == "triangular" and (self.mode is None or not self.low <= self.mode <= self.high):
            raise ValueError("a triangular distribution needs low <= mode <= high")
        if self.distribution == "loguniform" and self.low <= 0:
            raise ValueError("a loguniform distribution needs low > 0")
        return self


class Uncertainty(_Strict):
    samples: int = Field(gt=0, le=10_000_000)
    seed: int = Field(ge=0)
    inputs: dict[str, Distribution] = {}

    @field_validator("inputs")
    @classmethod
    def _known(cls, v: dict[str, Distribution]) -> dict[str, Distribution]:
        unknown = sorted(set(v) - set(UNCERTAIN_INPUTS))
        if unknown:
            raise ValueError(f"unknown uncertain input(s) {', '.join(unknown)}; allowed: {', '.join(UNCERTAIN_INPUTS)}")
        bounds = {"prophet.prediction_accuracy": (0, 1), "prophet.comm_reduction_factor": (1, float("inf"))}
        for name, (lo, hi) in bounds.items():
            d = v.get(name)
            if d and not (lo <= d.low and d.high <= hi):
                raise ValueError(f"{name}: the distribution must lie within [{lo}, {hi}]")
        for name in ("workload.batch_size_per_gpu", "workload.context_length_tokens", *UNCERTAIN_INPUTS[4:]):
            d = v.get(name)
            if d and d.low <= 0:
                raise ValueError(f"{name}: the distribution must be > 0")
        return v


class Expectation(_Strict):
    system: str
    strategy: StrategyName
    metric: str
    min: float
    max: float
    source: str

    @model_validator(mode="after")
    def _ordered(self) -> Expectation:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class StudyConfig(_Strict):
    study: StudyMeta
    catalogs: CatalogPaths
    model: str
    systems: list[SystemConfig] = Field(min_length=1)
    strategies: list[StrategyName] = Field(min_length=1)
    workload: Workload
    prophet: Prophet
    calibration: Calibration
    cost: Cost
    figures: Figures
    uncertainty: Uncertainty | None = None
    expectations: list[Expectation] = []

    @model_validator(mode="after")
    def _unique_and_known(self) -> StudyConfig:
        ids = [s.id for s in self.systems]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"systems: duplicate id(s) {', '.join(dupes)}; each id must be unique")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("strategies: each strategy may appear once")
        if self.study.headline_system not in ids:
            raise ValueError(
                f"study.headline_system {self.study.headline_system!r} is not a system id; allowed: {', '.join(ids)}"
            )
        for i, e in enumerate(self.expectations):
            if e.system not in ids:
                raise ValueError(f"expectations.{i}.system {e.system!r} is not a system id; allowed: {', '.join(ids)}")
        return self


@dataclass(frozen=True)
class System:
    """One resolved hardware system."""

    id: str
    name: str
    gpu_key: str
    gpu: GPU
    count: int
    interconnect_key: str
    interconnect: Interconnect
    hybrid: HybridSplit | Literal["auto", "none"]
    hybrid_note: str


@dataclass(frozen=True)
class Study:
    """The validated study: config plus the catalog entries it names."""

    path: Path
    config: StudyConfig
    systems: tuple[System, ...]
    model_key: str
    model: MoEModel
    calibration_gpu: GPU
    gpus: dict[str, GPU]
    interconnects: dict[str, Interconnect]
    models: dict[str, MoEModel]
    config_hash: str

    @property
    def activation_bytes(self) -> int:
        """Bytes per activation / KV element at the workload precision."""
        return PRECISION_BYTES[self.config.workload.precision]

    def system(self, system_id: str) -> System:
        for s in self.systems:
            if s.id == system_id:
                return s
        raise UserError(f"unknown system {system_id!r}; allowed: {', '.join(s.id for s in self.systems)}")


def _format_validation_error(err: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid configuration"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see _config.yml's comments for the allowed keys)"
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{path}: YAML syntax error{where}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None


def _load_catalog(path: Path, spec: type, label: str) -> dict:
    raw = _read_yaml(path)
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{path}: the {label} catalog must be a non-empty mapping of name -> entry")
    out = {}
    for key, entry in raw.items():
        try:
            out[str(key)] = spec.model_validate(entry)
        except ValidationError as err:
            raise UserError(_format_validation_error(err, f"{path} [{key}]")) from None
    return out


def _pick(catalog: dict, key: str, path: str, label: str) -> Any:
    if key not in catalog:
        raise UserError(f"{path}: unknown {label} {key!r}; allowed: {', '.join(sorted(catalog))}")
    return catalog[key]


def load_study(path: str | Path = "_config.yml") -> Study:
    """Read, validate and resolve a study configuration. Raises UserError on any mistake."""
    path = Path(path)
    return study_from_raw(_read_yaml(path), path)


def study_from_raw(raw: Any, path: Path, label: str | None = None) -> Study:
    """Validate and resolve an already parsed configuration (`label` names it in error messages;
    catalog paths are relative to `path`'s folder)."""
    where = label or str(path)
    if not isinstance(raw, dict):
        raise UserError(f"{where}: the configuration must be a YAML mapping of sections")
    try:
        cfg = StudyConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(_format_validation_error(err, where)) from None

    base = path.parent
    gpus = _load_catalog(base / cfg.catalogs.gpus, GPU, "GPU")
    nets = _load_catalog(base / cfg.catalogs.interconnects, Interconnect, "interconnect")
    models = _load_catalog(base / cfg.catalogs.models, MoEModel, "MoE model")
    model = _pick(models, cfg.model, f"{where}: model", "MoE model")
    systems = []
    for i, s in enumerate(cfg.systems):
        gpu = _pick(gpus, s.gpu, f"{where}: systems.{i}.gpu", "GPU")
        net = _pick(nets, s.interconnect, f"{where}: systems.{i}.interconnect", "interconnect")
        if net.sockets == 2 and s.count % 2:
            raise UserError(
                f"{where}: systems.{i}.count {s.count} cannot be split evenly over the 2 sockets of "
                f"interconnect {s.interconnect!r}; allowed: an even count"
            )
        systems.append(System(s.id, s.name, s.gpu, gpu, s.count, s.interconnect, net, s.hybrid, s.hybrid_note))
    cal_gpu = _pick(gpus, cfg.calibration.gpu, f"{where}: calibration.gpu", "GPU")

    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode())
    for p in (cfg.catalogs.gpus, cfg.catalogs.interconnects, cfg.catalogs.models):
        digest.update((base / p).read_bytes())
    return Study(path, cfg, tuple(systems), cfg.model, model, cal_gpu, gpus, nets, models, digest.hexdigest()[:16])
