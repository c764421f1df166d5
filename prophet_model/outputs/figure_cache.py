"""`run`'s figures as jobs, one per figure in the writers' worker pool, each skipped when nothing it shows changed.

A job holds the tables a figure shows; the figure is drawn from their CSV bytes (the format of the files `run`
writes, which the notebooks read), read back, so that what is hashed is exactly what is drawn. Its key is

    sha256(style || kind || arguments || each table's name and CSV bytes)

where the style is the source of the figure modules (figure_style.py, figures.py, regime_figure.py,
formatting.py, this file), matplotlib's version, any matplotlibrc that applies and the config's `figures`
section. The key goes into the manifest entries of the figure's PDF and PNG (`figure_key`, beside their sha256:
the stage's EXTRAS files, which workflow/commit.py reads). A later run into the same results folder whose job
has the same key, and whose PDF and PNG are still the bytes the manifest lists, copies them into its stage
instead of drawing (no matplotlib import)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prophet_model.outputs.files import FLOAT_FORMAT

if TYPE_CHECKING:  # pandas is imported where a table is read (workflow/commit.py imports EXTRAS, quickly)
    import pandas as pd

# inside a staging folder: JSON files {relative path: {field: text}} whose fields workflow/commit.py adds to those
# files' manifest entries; not files of the results folder
EXTRAS = ".manifest-extras"
KEY_FIELD = "figure_key"
HERE = Path(__file__).resolve().parent
STYLE_SOURCES = ("figure_style.py", "figures.py", "regime_figure.py", "formatting.py", "figure_cache.py")
SYSTEM_KINDS = ("throughput_comparison", "communication_overhead", "cost_efficiency")
KINDS = (*SYSTEM_KINDS, "cross_system_comparison", "scaling", "regime_map")


@dataclass(frozen=True)
class FigureJob:
    """One figure of `run`: results/figures/<stem>.{pdf,png}, drawn by `kind` (one of KINDS) from `tables`
    (name -> DataFrame) and `params` (JSON-able arguments: names, levels)."""

    stem: str
    kind: str
    tables: Mapping[str, pd.DataFrame]
    params: Mapping[str, Any] = field(default_factory=dict)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """A table as `run` writes it (outputs/files.write_csv): fixed float format, no index, LF line endings."""
    return df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n").encode()


def _read(data: bytes) -> pd.DataFrame:
    """CSV bytes as the notebooks read the file (study_results._read): an empty file is an empty table."""
    import pandas as pd

    try:
        return pd.read_csv(io.BytesIO(data))
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _rc_files() -> list[Path]:
    """The matplotlibrc files that may apply besides matplotlib's own (matplotlib.matplotlib_fname's search,
    without importing matplotlib): $MATPLOTLIBRC, ./matplotlibrc, the user's config folder."""
    env = os.environ
    user = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "matplotlib"
    candidates = [
        Path(env.get("MATPLOTLIBRC") or "matplotlibrc"),
        Path("matplotlibrc"),
        Path(env.get("MPLCONFIGDIR") or user),
    ]
    found = [c / "matplotlibrc" if c.is_dir() else c for c in candidates]
    return [p for p in dict.fromkeys(found) if p.is_file()]


def style_digest() -> bytes:
    """What every figure's look depends on beyond its data and config: the figure code, matplotlib's version
    (its _version.py, found without importing it) and the matplotlibrc files that apply."""
    from importlib.util import find_spec

    parts = [(HERE / name).read_bytes() for name in STYLE_SOURCES]
    spec = find_spec("matplotlib")
    if spec is not None and spec.origin:
        version = Path(spec.origin).parent / "_version.py"
        parts.append(version.read_bytes() if version.is_file() else spec.origin.encode())
    parts += [p.read_bytes() for p in _rc_files()]
    return b"\0".join(hashlib.sha256(p).digest() for p in parts)


def job_key(job: FigureJob, data: Mapping[str, bytes], cfg, style: bytes) -> str:
    """sha256 of the style, the figures config, the job's kind, arguments and tables' bytes (hex)."""
    h = hashlib.sha256(style)
    h.update(json.dumps([job.kind, cfg.model_dump(mode="json"), dict(job.params)], sort_keys=True).encode())
    for name in sorted(data):
        h.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(data[name]).digest())
    return h.hexdigest()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(stem: str) -> tuple[str, str]:
    """The figure's PDF and PNG, relative to the results folder."""
    return f"figures/{stem}.pdf", f"figures/{stem}.png"


def _unchanged(previous: Path, entries: Mapping[str, Mapping[str, str]], stem: str, key: str) -> bool:
    """Whether `previous` (a results folder, `entries` its manifest's) holds this figure drawn with `key`, its
    files the bytes the manifest lists."""
    try:
        return all(
            entries[rel].get(KEY_FIELD) == key and _sha(previous / rel) == entries[rel].get("sha256")
            for rel in _files(stem)
        )
    except (OSError, KeyError, AttributeError):
        return False


def _draw(job: FigureJob, tables: dict[str, pd.DataFrame], cfg):
    """The job's figure (matplotlib imported here only)."""
    from prophet_model.outputs import figures

    p = job.params
    if job.kind in SYSTEM_KINDS:
        return getattr(figures, job.kind)(tables["rows"], p["system"], cfg)
    if job.kind == "cross_system_comparison":
        return figures.cross_system_comparison(tables["headline"], cfg)
    if job.kind == "scaling":
        return figures.scaling(tables["live"], cfg)
    if job.kind == "regime_map":
        from prophet_model.outputs.regime_figure import regime_map_figure

        return regime_map_figure(tables["regime_map"], dict(p["names"]), p["reference"], cfg, p["levels"])
    raise ValueError(f"figure kind {job.kind!r}; allowed: {', '.join(KINDS)}")


def figure(job: FigureJob, cfg):
    """The job's figure, drawn from its tables' CSV bytes read back (what `run` draws)."""
    return _draw(job, {name: _read(csv_bytes(df)) for name, df in job.tables.items()}, cfg)


def render(
    job: FigureJob,
    cfg,
    stage: Path,
    previous: Path | None = None,
    entries: Mapping[str, Mapping[str, str]] | None = None,
    style: bytes | None = None,
) -> tuple[list[Path], bool]:
    """Write the job's PDF and PNG under `stage`, and its key for their manifest entries (EXTRAS): copied from
    `previous` (a results folder, `entries` its manifest's files) where it holds them with the same key, else
    drawn. Returns (the PDF's and PNG's paths, whether drawn)."""
    data = {name: csv_bytes(df) for name, df in job.tables.items()}
    key = job_key(job, data, cfg, style_digest() if style is None else style)
    rels = _files(job.stem)
    paths = [stage / rel for rel in rels]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    (stage / EXTRAS).mkdir(exist_ok=True)
    (stage / EXTRAS / f"{job.stem}.json").write_text(json.dumps({rel: {KEY_FIELD: key} for rel in rels}) + "\n")
    if previous is not None and entries is not None and _unchanged(previous, entries, job.stem, key):
        for rel, path in zip(rels, paths, strict=True):
            shutil.copyfile(previous / rel, path)
        return paths, False
    from prophet_model.outputs.figure_style import save

    save(_draw(job, {name: _read(b) for name, b in data.items()}, cfg), stage / "figures" / job.stem, cfg.png_dpi)
    return paths, True


def write_figure(
    job: FigureJob, cfg, stage: Path, previous: Path | None, entries: Mapping[str, Mapping[str, str]] | None
) -> list[Path]:
    """A writer task (workflow/parallel.py): the job's files under `stage` (render), their paths."""
    return render(job, cfg, stage, previous, entries)[0]
