"""The study configuration (`_config.yml`): schema, loading, and readable errors.

`load_study(path)` returns a validated, fully resolved `Study` (catalog names replaced by their
specs) or raises `UserError` whose message names the file, the key path and the allowed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prophet_model.errors import UserError
from prophet_model.study.catalog import GPU, Interconnect, MoEModel
from prophet_model.study.rawconfig import CATALOG_FILE, CATALOGS, candidates, config_digest, locate
from prophet_model.study.schema import PRECISION_BYTES, HybridSplit, StudyConfig
from prophet_model.study.strict import ValidationError
from prophet_model.study.yaml_io import (
    MAX_YAML_BYTES,
    NUMBER_HINT,
    YAML11_NUMBER,
    read_regular,
    read_yaml,
    yaml_from_bytes,
)

if TYPE_CHECKING:
    from prophet_model.physics import Trace


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
    # the system's own MoE model (systems.<id>.model); "" and None: the study's model (Study.model_of)
    model_key: str = ""
    model: MoEModel | None = None
    model_note: str = ""


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
    routing_trace: int = 0  # physics.cache.trace_id of routing.trace_file (0: none)
    traces: Mapping[int, Trace] = field(default_factory=dict)  # that id -> the trace (the Scenarios carry it)

    @property
    def activation_bytes(self) -> int:
        """Bytes per activation / KV element at the workload precision."""
        return PRECISION_BYTES[self.config.workload.precision]

    def model_of(self, system: System) -> MoEModel:
        """The MoE model `system` serves: its own (systems.<id>.model) or the study's."""
        return system.model if system.model is not None else self.model

    def model_key_of(self, system: System) -> str:
        """The catalog key of the model `system` serves."""
        return system.model_key or self.model_key

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
            msg = f"must be a whole number, got {shown_value(e.get('input'))}"
        elif e["type"] in ("float_type", "float_parsing"):
            v = e.get("input")
            huge = isinstance(v, int) and not isinstance(v, bool) and abs(v) > 1.7e308
            msg = f"must be a number{' a float can hold (below 1.7e308)' if huge else ''}, got {shown_value(v)}"
        elif e["type"] == "literal_error" and isinstance(e.get("input"), (bool, float)):
            msg += f", got {shown_value(e['input'])} (a whole number is written as one: 2, not 2.0 or true)"
        if (
            e["type"] in ("int_type", "float_type")
            and isinstance(e.get("input"), str)
            and YAML11_NUMBER.match(e["input"])
        ):
            msg += f" ({NUMBER_HINT})"
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def shown_value(value: object, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters (a value of 5,000 digits makes no 5,000-character message)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


_CATALOGS: dict[tuple, dict] = {}  # (path, entry type, bytes) -> entries: a what-if reads each catalog once


def _load_catalog(path: Path, spec: type, label: str, key: str = "") -> dict:
    try:
        data = read_regular(path, MAX_YAML_BYTES, CATALOG_FILE)
    except UserError as exc:  # the key that names the file first: catalogs.gpus: <path>: is a folder ...
        raise UserError(f"{key}: {exc}" if key else str(exc)) from None
    key = (str(path), spec, data)
    if key not in _CATALOGS:
        _CATALOGS[key] = _parse_catalog(yaml_from_bytes(data, path), path, spec, label)
    return dict(_CATALOGS[key])  # the entries are frozen models; the mapping is the caller's


def _parse_catalog(raw: Any, path: Path, spec: type, label: str) -> dict:
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


def resolve(base: Path, name: str, label: str) -> Path:
    """A path written in the configuration: in the config file's folder first, then in the repository
    (rawconfig.candidates); a UserError naming every path tried when none exists."""
    found = locate(base, name)
    if found is None:
        tried = ", ".join(str(c) for c in candidates(base, name))
        raise UserError(
            f"{label}: {name}: file not found; tried {tried}; allowed: a path relative to the "
            "config file's folder or to the repository, or an absolute path"
        )
    return found


def load_study(path: str | Path = "_config.yml") -> Study:
    """Read, validate and resolve a study configuration. Raises UserError on any mistake."""
    path = Path(path)
    return study_from_raw(read_yaml(path), path)


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


def study_from_raw(
    raw: Any, path: Path, label: str | None = None, extra_models: Mapping[str, MoEModel] | None = None
) -> Study:
    """Validate and resolve an already parsed configuration (`label` names it in error messages;
    catalog and trace paths are looked up in `path`'s folder first, then in the repository). `extra_models`:
    entries beside the model catalog's (a --model-file's, never written to it), part of the configuration hash."""
    where = label or str(path)
    if not isinstance(raw, dict):
        raise UserError(f"{where}: the configuration must be a YAML mapping of sections")
    try:
        cfg = StudyConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(_format_validation_error(err, where, raw)) from None
    _check_macro_names(cfg, where)

    base = path.parent
    cats = tuple(resolve(base, getattr(cfg.catalogs, k), f"{where}: catalogs.{k}") for k in CATALOGS)
    gpus = _load_catalog(cats[0], GPU, "GPU", f"{where}: catalogs.gpus")
    nets = _load_catalog(cats[1], Interconnect, "interconnect", f"{where}: catalogs.interconnects")
    models = {**_load_catalog(cats[2], MoEModel, "MoE model", f"{where}: catalogs.models"), **(extra_models or {})}
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
        if net.gpus_per_node and s.count > net.gpus_per_node and s.count % net.gpus_per_node:
            raise UserError(
                f"{where}: systems.{s.id}.count {s.count} is not a whole number of nodes of {net.gpus_per_node} GPUs "
                f"(gpus_per_node of interconnect {s.interconnect!r}); allowed: at most {net.gpus_per_node}, or a "
                f"multiple of it up to {net.max_gpus}"
            )
        if net.sockets == 2 and s.count % 2:
            raise UserError(
                f"{where}: systems.{s.id}.count {s.count} cannot be split evenly over the 2 sockets of "
                f"interconnect {s.interconnect!r}; allowed: an even count"
            )
        own = None if s.model is None else _pick(models, s.model, f"{where}: systems.{s.id}.model", "MoE model")
        systems.append(
            System(
                s.id,
                s.name,
                s.gpu,
                gpu,
                s.count,
                s.interconnect,
                net,
                s.hybrid,
                s.hybrid_note,
                s.model or "",
                own,
                s.model_note,
            )
        )
    claim_gpu = _pick(gpus, cfg.single_gpu_claim.gpu, f"{where}: single_gpu_claim.gpu", "GPU")

    from prophet_model.study.rates import (
        attainable,  # the measured shares of every GPU the study uses: refused here if above 1
    )

    for key in sorted({s.gpu_key for s in systems} | {cfg.single_gpu_claim.gpu}):  # sorted: one message, always
        attainable(key, gpus)
    trace, traces, data = 0, {}, None
    if cfg.routing.distribution == "trace":
        from prophet_model.study.trace import parse_trace, trace_bytes, trace_id

        label = f"{where}: routing.trace_file"
        trace_path = resolve(base, cfg.routing.trace_file, label)
        data = trace_bytes(trace_path, label)  # read once: the bytes parsed are the bytes hashed
        layers = parse_trace(data, trace_path, model.num_experts, label, model.num_layers, model.num_moe_layers)
        trace = trace_id(layers)
        traces = {trace: layers}
    digest = config_digest(raw, cats, data)  # type: ignore[arg-type]
    if extra_models:  # the hash covers the models given beside the catalog
        import hashlib
        import json

        given = json.dumps({k: m.model_dump(mode="json") for k, m in extra_models.items()}, sort_keys=True)
        digest = hashlib.sha256(f"{digest}{given}".encode()).hexdigest()[:16]
    return Study(path, cfg, tuple(systems), cfg.model, model, claim_gpu, gpus, nets, models, digest, trace, traces)
