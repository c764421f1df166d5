"""The repository's folders, named once: the checkout's root (the folder that holds prophet_model/) and the
standard folders and files under it. Paths only, nothing read or made here: this module imports nothing of
the package, so every layer may import it (pyproject.toml's import-linter contracts say so).

These are the repository's own copies; a command's --config, --results or --book names other ones."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout
CONFIG = ROOT / "_config.yml"  # the default study
CATALOG = ROOT / "catalog"  # gpus.yml, interconnects.yml, models.yml
TEMPLATES = ROOT / "templates"  # the paper's and the book's Jinja2 templates
RESULTS = ROOT / "results"  # the default results folder
BOOK = ROOT / "book"  # the book's sources and generated pages
NOTEBOOKS = ROOT / "notebooks"
VALIDATION = ROOT / "validation"  # the GPU programs and machines.yml
MEASUREMENTS = VALIDATION / "measurements"  # one folder of recorded measurements per machine
BENCHMARKS = ROOT / "benchmarks"  # the artifact's speed figures (results.json)
VENV = ROOT / ".venv"  # the environment `make` creates
