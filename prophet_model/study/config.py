"""The study configuration (`_config.yml`): schema, loading, and readable errors.

`load_study(path)` returns a validated, fully resolved `Study` (catalog names replaced by their
specs) or raises `UserError` whose message names the file, the key path and the allowed values.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prophet_model.errors import UserError
from prophet_model.study.catalog import GPU, Interconnect, MoEModel

StrategyName = Literal["EP", "DP", "Hybrid"]
STRATEGIES: tuple[StrategyName, ...] = ("EP", "DP", "Hybrid")
PRECISION_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
MAX_ID_CHARS = 64  # protective: an id is part of file names (results_<id>.csv), which the file system limits


class _Strict(BaseModel):
    """No unknown keys; numbers finite; whole numbers given as whole numbers (not true, "3" or 2.0)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


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
        if len(v) > MAX_ID_CHARS:
            raise ValueError(f"id is {len(v)} characters long; allowed: at most {MAX_ID_CHARS} (it names files)")
        if not SAFE_ID.match(v):
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
            raise ValueError("hybrid: none needs a hybrid_note giving the reason")
        return self


class Workload(_WithSources):
    batch_size_per_gpu: int = Field(gt=0, le=1_000_000)
    context_length_tokens: int = Field(gt=0)
    precision: Literal["fp32", "bf16", "fp16", "fp8"]
    reserved_memory_gb: float = Field(ge=0)


class Prophet(_WithSources):
    prediction_accuracy: float = Field(ge=0, le=1)  # share of needed experts predicted (set as large as needed)
    comm_reduction_factor: float = Field(ge=1)
    prefetch_policy: Literal["window", "eager"]


class ExpertCache(_WithSources):
    """Which experts stay on the GPU between uses (cache.py): the baseline's policy and Prophet's."""

    baseline_policy: Literal["static", "lru"]
    prophet_policy: Literal["static", "lru", "predicted"]
    memory_share: float = Field(gt=0, le=1)  # of the memory left after dense weights, KV cache and reserve


class Routing(_WithSources):
    """How tokens spread over the experts (cache.py)."""

    distribution: Literal["uniform", "zipf", "trace"]
    zipf_exponent: float = Field(ge=0, le=4)  # used by `zipf`
    trace_file: str  # used by `trace`: CSV layer,expert,count, relative to the config's folder
    temporal_reuse: float = Field(ge=0, lt=1)  # lag-1 correlation of an expert's use between decode steps

    @model_validator(mode="after")
    def _trace_named(self) -> Routing:
        if self.distribution == "trace" and not self.trace_file.strip():
            raise ValueError("distribution trace needs trace_file: a CSV with columns layer,expert,count")
        return self


class SingleGpuClaim(_WithSources):
    """The seed's single-GPU throughputs: a claim the model checks and inverts, never an input."""

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


UNCERTAIN_INPUTS = (
    "prophet.prediction_accuracy",
    "prophet.comm_reduction_factor",
    "workload.batch_size_per_gpu",
    "workload.context_length_tokens",
    "interconnect_bandwidth_factor",
    "host_link_bandwidth_factor",
    "expert_size_factor",
    "expert_cache.memory_share",
    "routing.zipf_exponent",
    "routing.temporal_reuse",
)


class Distribution(_Strict):
    """A multiplicative factor on the configured (or catalog) value, centred on 1: the configured value
    is the distribution's median, so a headline number stays the centre of its own interval whatever
    value is configured."""

    distribution: Literal["uniform", "triangular", "loguniform"]
    low: float = Field(gt=0)
    high: float = Field(gt=0)
    mode: float | None = None
    source: str

    @model_validator(mode="after")
    def _ordered(self) -> Distribution:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
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
                + {"uniform": "low + high = 2, e.g. {low: 0.8, high: 1.2}",
                   "triangular": "mode: 1 and low + high = 2, e.g. {low: 0.875, mode: 1, high: 1.125}",
                   "loguniform": "low x high = 1, e.g. {low: 0.5, high: 2}"}[self.distribution]
            )  # fmt: skip
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
        return v


# Configured values whose factor range must stay within bounds: (lower, upper) of value x factor.
UNCERTAIN_BOUNDS = {
    "prophet.prediction_accuracy": (0.0, 1.0),
    "prophet.comm_reduction_factor": (1.0, math.inf),
    "workload.batch_size_per_gpu": (1.0, math.inf),
    "workload.context_length_tokens": (1.0, math.inf),
    "expert_cache.memory_share": (0.0, 1.0),
    "routing.zipf_exponent": (0.0, 4.0),
    "routing.temporal_reuse": (0.0, 0.999),
}


# The metrics of all_systems_comparison.csv that an expectation may check (study.compare writes them).
COMPARISON_METRICS = (
    "baseline_tokens_per_s", "prophet_tokens_per_s", "speedup", "baseline_step_ms", "prophet_step_ms",
    "baseline_comm_overhead_pct", "prophet_comm_overhead_pct", "comm_reduction", "baseline_fetch_overhead_pct",
    "prophet_fetch_overhead_pct", "baseline_scaling_efficiency_pct", "prophet_scaling_efficiency_pct",
    "baseline_usd_per_1m_tokens", "prophet_usd_per_1m_tokens", "cost_reduction", "annual_savings_usd",
    "best_baseline_tokens_per_s", "speedup_vs_best_baseline",
)  # fmt: skip


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
    expert_cache: ExpertCache
    routing: Routing
    implementation: Implementation
    single_gpu_claim: SingleGpuClaim
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
        if self.study.headline_strategy not in self.strategies:
            raise ValueError(
                f"study.headline_strategy {self.study.headline_strategy!r} is not among strategies; allowed: "
                f"{', '.join(self.strategies)}"
            )
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
    claim_gpu: GPU
    gpus: dict[str, GPU]
    interconnects: dict[str, Interconnect]
    models: dict[str, MoEModel]
    config_hash: str
    routing_trace: int = 0  # cache.register_trace id of routing.trace_file (0: none)

    @property
    def activation_bytes(self) -> int:
        """Bytes per activation / KV element at the workload precision."""
        return PRECISION_BYTES[self.config.workload.precision]

    def system(self, system_id: str) -> System:
        for s in self.systems:
            if s.id == system_id:
                return s
        raise UserError(f"unknown system {system_id!r}; allowed: {', '.join(s.id for s in self.systems)}")


def _format_validation_error(err: ValidationError, where: str, raw: Any = None) -> str:
    """One line per problem: the key path (systems named by id, not position) and what is allowed."""
    lines = [f"{where}: invalid configuration"]
    for e in err.errors():
        loc = list(e["loc"])
        if len(loc) >= 2 and loc[0] == "systems" and isinstance(loc[1], int) and isinstance(raw, dict):
            entries = raw.get("systems")
            entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                loc[1] = entry["id"]
        path = ".".join(str(p) for p in loc) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see _config.yml's comments for the allowed keys)"
        elif e["type"] == "finite_number":
            msg = "must be a finite number (not .inf or .nan)"
        elif e["type"] in ("int_type", "int_parsing", "int_from_float"):
            msg = f"must be a whole number, got {e.get('input')!r}"
        elif e["type"] in ("float_type", "float_parsing"):
            msg = f"must be a number, got {e.get('input')!r}"
        if (
            e["type"] in ("int_type", "float_type")
            and isinstance(e.get("input"), str)
            and YAML11_NUMBER.match(e["input"])
        ):
            msg += f" ({NUMBER_HINT})"
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


MAX_YAML_BYTES = 1 << 20  # a study or catalog is a few kB; refuse anything past 1 MiB
MAX_YAML_NODES = 100_000  # values after expanding anchors and aliases (a "billion laughs" document)
# YAML 1.2 core schema numbers, without the YAML 1.1 forms that read as surprising values: no
# sexagesimal (1:30 is not 90), no octal by a leading zero (010 is not 8), no '_' or 0b. A plain
# number with a leading zero (010) is left as text and refused by the schema, since YAML 1.1 readers
# take it as octal; 0o10 (octal) and 0x10 (hex) are YAML 1.2 numbers. A float needs a '.' or an exponent.
INT_12 = re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$")
FLOAT_12 = re.compile(
    r"^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+)$"
    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)
# What a YAML 1.1 reader takes as a number but YAML 1.2 reads as text (named in the schema's message).
YAML11_NUMBER = re.compile(
    r"^[-+]?(?:0b[01_]+|0[0-7_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|[0-9._]*_[0-9._]*)$"
)
NUMBER_HINT = (
    "read as text: numbers follow YAML 1.2, where a leading 0 (010), '_' (1_000), ':' (1:30) or 0b is not "
    "part of a number; allowed: plain digits such as 10, 0o10 for octal, 0x10 for hex"
)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads numbers as YAML 1.2 does (1e9 is a number, not a
    string; 1:30 and 010 are not the YAML 1.1 numbers 90 and 8)."""


def _no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1}); each key may appear once",
                key_node.start_mark,
            )  # fmt: skip
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", INT_12, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_12, list("-+0123456789."))


def _count_nodes(data: Any, limit: int) -> int:
    """Values in `data` with aliases expanded, stopping past `limit`."""
    n, todo = 0, [data]
    while todo and n <= limit:
        item = todo.pop()
        n += 1
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return n


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text with the artifact's rules; UserError naming `where` on any problem."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{where}: YAML error{at}: {problem}") from None
    except RecursionError:
        raise UserError(f"{where}: YAML nested too deeply; allowed: a plain configuration") from None
    if _count_nodes(data, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise UserError(
            f"{where}: expands to more than {MAX_YAML_NODES:,} values (anchors and aliases included); "
            "allowed: a configuration of ordinary size"
        )
    return data


_FILE_TYPES = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
               stat.S_IFSOCK: "a socket"}  # fmt: skip


def read_regular(path: Path, max_bytes: int, kind: str) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; UserError with the true reason otherwise (a
    missing file, a dangling or looping symbolic link, a folder, a FIFO or device, a file too large).
    A FIFO or device is refused by its type before anything is read, so reading never blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise UserError(
                f"{path}: a symbolic link to a missing file ({os.readlink(path)}); allowed: {kind}"
            ) from None
        raise UserError(f"{path}: file not found; allowed: {kind}") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; allowed: {kind}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path}: a loop of symbolic links; allowed: {kind}") from None
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}); allowed: {kind}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UserError(f"{path}: is a folder; allowed: {kind}")
        if not stat.S_ISREG(mode):
            what = _FILE_TYPES.get(stat.S_IFMT(mode), "not a plain file")
            raise UserError(f"{path}: not a regular file but {what}; allowed: {kind}")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise UserError(f"{path}: over {max_bytes:,} bytes; allowed: {kind} under {max_bytes:,} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}); allowed: {kind}") from None
    finally:
        os.close(fd)


def _read_yaml(path: Path) -> Any:
    """Read a YAML file; UserError naming the file for a missing file, a folder, a special file, unreadable
    bytes, a file over 1 MiB, invalid YAML, duplicate keys or an alias bomb."""
    data = read_regular(path, MAX_YAML_BYTES, "a YAML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    return parse_yaml(text, str(path))


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


def _check_uncertainty_bounds(cfg: StudyConfig, where: str) -> None:
    """A configured value times its factor range must stay within the value's own bounds."""
    inputs = cfg.uncertainty.inputs if cfg.uncertainty else {}
    for name, (lo, hi) in UNCERTAIN_BOUNDS.items():
        d = inputs.get(name)
        if d is None:
            continue
        section, key = name.split(".")
        value = getattr(getattr(cfg, section), key)
        if value * d.low < lo or value * d.high > hi:
            raise UserError(
                f"{where}: {name} = {value:g} with its uncertainty factor {d.low:g}-{d.high:g} spans "
                f"{value * d.low:g}-{value * d.high:g}, outside [{lo:g}, {hi:g}]; allowed: a configured value in "
                f"[{lo / d.low:g}, {hi / d.high:g}], or a narrower factor range under uncertainty.inputs.{name}"
            )


def macro_key(system_id: str) -> str:
    """The part of a LaTeX macro name a system id gives: digits as words, letters kept, others dropped."""
    digits = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]
    return "".join(digits[int(c)] if c.isdigit() else c for c in system_id if c.isascii() and c.isalnum())


def _check_macro_names(cfg: StudyConfig, where: str) -> None:
    """Two ids that give the same LaTeX macro name would fail only when the paper is rendered."""
    seen: dict[str, str] = {}
    for s in cfg.systems:
        key = macro_key(s.id)
        if key in seen:
            raise UserError(
                f"{where}: systems.{s.id}.id gives the same LaTeX macro names as {seen[key]!r} (\\prophet...{key}); "
                "allowed: ids that differ in their letters or digits, not only in '-' or '_'"
            )
        seen[key] = s.id


def study_from_raw(raw: Any, path: Path, label: str | None = None) -> Study:
    """Validate and resolve an already parsed configuration (`label` names it in error messages;
    catalog paths are relative to `path`'s folder)."""
    where = label or str(path)
    if not isinstance(raw, dict):
        raise UserError(f"{where}: the configuration must be a YAML mapping of sections")
    try:
        cfg = StudyConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(_format_validation_error(err, where, raw)) from None
    _check_uncertainty_bounds(cfg, where)
    _check_macro_names(cfg, where)

    base = path.parent
    gpus = _load_catalog(base / cfg.catalogs.gpus, GPU, "GPU")
    nets = _load_catalog(base / cfg.catalogs.interconnects, Interconnect, "interconnect")
    models = _load_catalog(base / cfg.catalogs.models, MoEModel, "MoE model")
    model = _pick(models, cfg.model, f"{where}: model", "MoE model")
    systems = []
    for s in cfg.systems:
        gpu = _pick(gpus, s.gpu, f"{where}: systems.{s.id}.gpu", "GPU")
        net = _pick(nets, s.interconnect, f"{where}: systems.{s.id}.interconnect", "interconnect")
        if s.count > net.max_gpus:
            fits = sorted(k for k, n in nets.items() if n.max_gpus >= s.count)
            raise UserError(
                f"{where}: systems.{s.id}.count {s.count} exceeds the {net.max_gpus} GPUs that interconnect "
                f"{s.interconnect!r} ({net.name}) joins (max_gpus in {cfg.catalogs.interconnects}); allowed: "
                f"count 1..{net.max_gpus}, or an interconnect that joins {s.count} GPUs: "
                + (", ".join(fits) if fits else "none in the catalog")
            )
        if net.sockets == 2 and s.count % 2:
            raise UserError(
                f"{where}: systems.{s.id}.count {s.count} cannot be split evenly over the 2 sockets of "
                f"interconnect {s.interconnect!r}; allowed: an even count"
            )
        systems.append(System(s.id, s.name, s.gpu, gpu, s.count, s.interconnect, net, s.hybrid, s.hybrid_note))
    claim_gpu = _pick(gpus, cfg.single_gpu_claim.gpu, f"{where}: single_gpu_claim.gpu", "GPU")

    from prophet_model.study.rates import (
        attainable,  # the measured shares of every GPU the study uses: refused here if above 1
    )

    for key in sorted({s.gpu_key for s in systems} | {cfg.single_gpu_claim.gpu}):  # sorted: one message, always
        attainable(key, gpus)
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode())
    for p in (cfg.catalogs.gpus, cfg.catalogs.interconnects, cfg.catalogs.models):
        digest.update((base / p).read_bytes())
    trace = 0
    if cfg.routing.distribution == "trace":
        from prophet_model.physics.cache import parse_trace, register_trace, trace_bytes

        trace_path, label = base / cfg.routing.trace_file, f"{where}: routing.trace_file"
        data = trace_bytes(trace_path, label)  # read once: the bytes parsed are the bytes hashed
        trace = register_trace(parse_trace(data, trace_path, model.num_experts, label, model.num_layers,
                                           model.num_moe_layers))  # fmt: skip
        digest.update(data)
    return Study(path, cfg, tuple(systems), cfg.model, model, claim_gpu, gpus, nets, models, digest.hexdigest()[:16],
                 trace)  # fmt: skip
