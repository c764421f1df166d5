"""The versions of Python and of the packages the artifact runs on (the run log and the book's
reproducibility page)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("numpy", "pandas", "matplotlib", "jinja2", "pyyaml", "tqdm", "papermill", "jupyter-book")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
