"""The catalog's MoE models as the benchmarks read them (catalog/models.yml: plain dictionaries, no
prophet_model import, so that a GPU machine needs only PyTorch and PyYAML)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_models(path: Path = ROOT / "catalog" / "models.yml") -> dict[str, dict]:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))
