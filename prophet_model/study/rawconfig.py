"""The configuration as written, before validation: its hash, its systems and the catalog entries it
names, read with the standard library and PyYAML only (no numpy or pandas).

`make`'s steps use it to decide "up to date" quickly (workflow/fastpath.py), and the notebook cache
keys are computed from it (workflow/pipeline.py). `config_digest` is the configuration hash for both
paths: study/config.py computes a validated Study's `config_hash` with it. Anything here that is not
as a valid configuration would have it raises `Unsure`: the caller then takes the full path, which
validates and names the mistake.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prophet_model.paths import ROOT as REPOSITORY  # the checkout: where catalog/ and the traces ship
from prophet_model.study.yaml_io import MAX_YAML_BYTES, read_regular, read_yaml

CATALOGS = ("gpus", "interconnects", "models")
MAX_TRACE_BYTES = 64 << 20  # study/trace.py's limit is what refuses; this only bounds the read
CATALOG_FILE = "a YAML file of catalog entries"


def candidates(base: Path, name: str) -> list[Path]:
    """Where a path written in a configuration may be: as written when absolute, else in the config
    file's folder first, then in the repository (a config kept elsewhere still finds catalog/)."""
    p = Path(name).expanduser()
    if p.is_absolute():
        return [p]
    return list(dict.fromkeys([base / p, REPOSITORY / p]))


def locate(base: Path, name: str) -> Path | None:
    """The first of `candidates` that exists (a dangling link counts: reading it names the problem)."""
    return next((c for c in candidates(base, name) if c.exists() or c.is_symlink()), None)


class Unsure(ValueError):
    """The raw configuration is not shaped as a valid one: only the full path can tell."""


def config_digest(raw: Any, catalogs: tuple[Path, Path, Path], trace: bytes | None) -> str:
    """The configuration hash: the parsed YAML, the three catalogs' bytes (their resolved paths) and the
    routing trace's bytes (when routing.distribution is trace); 16 hex digits."""
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode())
    for p in catalogs:  # bounded, and a regular file only: a catalog that is /dev/zero or a FIFO is refused
        digest.update(read_regular(p, MAX_YAML_BYTES, CATALOG_FILE))
    if trace is not None:
        digest.update(trace)
    return digest.hexdigest()[:16]


def _found(base: Path, name: str) -> Path:
    found = locate(base, name)
    if found is None:
        raise Unsure(name)
    return found


@dataclass(frozen=True)
class RawSystem:
    id: str
    name: str
    count: int


@dataclass(frozen=True)
class _Flags:
    uncertainty: bool  # as `Study.config.uncertainty` is read by workflow/results.py


def _get(node: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(node, dict) or not isinstance(node.get(key), kind) or isinstance(node.get(key), bool):
        raise Unsure(key)
    return node[key]


@dataclass(frozen=True)
class RawStudy:
    """A configuration file as written (`load`), with the attributes of a Study the staleness checks read
    (path, config_hash, systems with id/name/count, config.uncertainty)."""

    path: Path
    raw: dict
    config_hash: str
    systems: tuple[RawSystem, ...]
    results_dir: str
    config: _Flags
    trace: bytes | None = None
    _catalogs: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> RawStudy:
        path = Path(path)
        raw = read_yaml(path)
        if not isinstance(raw, dict):
            raise Unsure("not a mapping")
        base = path.parent
        cats = _get(raw, "catalogs", dict)
        paths = tuple(_found(base, _get(cats, k, str)) for k in CATALOGS)
        systems = []
        for entry in _get(raw, "systems", list):
            systems.append(RawSystem(_get(entry, "id", str), _get(entry, "name", str), _get(entry, "count", int)))
        study = _get(raw, "study", dict)
        results_dir = study.get("results_dir", "results")
        if not isinstance(results_dir, str):
            raise Unsure("study.results_dir")
        trace = None
        if _get(_get(raw, "routing", dict), "distribution", str) == "trace":
            trace = read_regular(_found(base, _get(raw["routing"], "trace_file", str)), MAX_TRACE_BYTES, "a trace CSV")
        uncertainty = raw.get("uncertainty")
        if uncertainty is not None and not isinstance(uncertainty, dict):
            raise Unsure("uncertainty")
        return cls(
            path,
            raw,
            config_digest(raw, paths, trace),
            tuple(systems),
            results_dir,  # type: ignore[arg-type]
            _Flags(uncertainty is not None),
            trace,
        )

    def catalog(self, name: str) -> dict:
        """The raw entries of catalog `name` (gpus, interconnects or models)."""
        if name not in self._catalogs:
            path = self.catalog_path(name)
            data = read_regular(path, MAX_YAML_BYTES, CATALOG_FILE)
            from prophet_model.study.yaml_io import yaml_from_bytes

            entries = yaml_from_bytes(data, path)
            if not isinstance(entries, dict):
                raise Unsure(f"catalogs.{name}")
            self._catalogs[name] = entries
        return self._catalogs[name]

    def catalog_path(self, name: str) -> Path:
        """Where catalog `name` (gpus, interconnects or models) is read from (see `candidates`)."""
        return _found(self.path.parent, self.raw["catalogs"][name])

    def entry(self, catalog: str, key: Any) -> Any:
        entries = self.catalog(catalog)
        if not isinstance(key, str) or key not in entries:
            raise Unsure(f"{catalog}: {key!r}")
        return entries[key]
