"""`python -m prophet_model pipeline`: execute the notebooks with papermill, one per system plus the
cross-system, validation and sensitivity ones, in parallel across cores, into book/ (where the Jupyter Book picks them up).

A per-notebook cache skips unchanged work: each notebook's key is a hash of the notebook file, the
part of the configuration it depends on (for a system: its own entry, its GPU, interconnect and model
catalog entries, and the study-wide sections; not the other systems) and the package's source and
templates. A failing notebook is reported with its name and the failing cell's error; the others
still finish; the exit status is then 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat

from prophet_model.outputs.files import system_page
from prophet_model.outputs.formatting import md
from prophet_model.study.config import Study

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_SOURCES = (
    "prophet_model/**/*.py",
    "templates/*",
    "validation/machines.yml",
    "validation/measurements/*/*.csv",
    "benchmarks/results.json",
)  # the artifact appendix quotes the measured run times


@dataclass(frozen=True)
class Job:
    name: str  # "system 8xA100" or "cross-system"
    notebook: Path
    output: Path
    parameters: dict[str, str]
    key: str
    title: str = ""  # replaces the notebook's first heading (the book's page title)


@dataclass(frozen=True)
class Outcome:
    job: Job
    status: str  # "executed" | "cached" | "failed"
    error: str = ""
    seconds: float = 0.0


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def source_digest(root: Path = ROOT) -> bytes:
    files = sorted(p for pattern in PACKAGE_SOURCES for p in root.glob(pattern) if p.is_file())
    return _digest(*(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() for p in files)).encode()


def _dump(obj) -> bytes:
    return json.dumps(
        obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj, sort_keys=True, default=str
    ).encode()


def shared_config(study: Study) -> bytes:
    """The study-wide sections every notebook depends on."""
    c = study.config
    return _dump(
        {
            "study": c.study.model_dump(mode="json"),
            "model": study.model.model_dump(mode="json"),
            "strategies": c.strategies,
            "workload": c.workload.model_dump(mode="json"),
            "prophet": c.prophet.model_dump(mode="json"),
            "implementation": c.implementation.model_dump(mode="json"),
            "single_gpu_claim": c.single_gpu_claim.model_dump(mode="json"),
            "claim_gpu": study.claim_gpu.model_dump(mode="json"),
            "cost": c.cost.model_dump(mode="json"),
            "figures": c.figures.model_dump(mode="json"),
        }
    )


def system_config(study: Study, system_id: str) -> bytes:
    s = study.system(system_id)
    entry = next(e for e in study.config.systems if e.id == system_id)
    expectations = [e.model_dump(mode="json") for e in study.config.expectations if e.system == system_id]
    return _dump({"system": entry.model_dump(mode="json"), "gpu": s.gpu.model_dump(mode="json"),
                  "interconnect": s.interconnect.model_dump(mode="json"), "expectations": expectations})  # fmt: skip


def jobs(study: Study, book_dir: Path, results_dir: Path, root: Path = ROOT) -> list[Job]:
    src, shared = source_digest(root), shared_config(study)
    config = str(study.path.resolve())
    results = str(results_dir.resolve())
    system_nb = root / "notebooks" / "system_analysis.ipynb"
    cross_nb = root / "notebooks" / "cross_system.ipynb"
    out = []
    for s in study.systems:
        key = _digest(system_nb.read_bytes(), shared, system_config(study, s.id), src)
        out.append(Job(f"system {s.id}", system_nb, book_dir / "systems" / f"{system_page(s)}.ipynb",
                       {"system": s.id, "config": config, "results": results}, key, f"{md(s.name)}: system analysis"))  # fmt: skip
    everything = _digest(cross_nb.read_bytes(), shared, *(system_config(study, s.id) for s in study.systems), src)
    out.append(
        Job(
            "cross-system",
            cross_nb,
            book_dir / "cross_system.ipynb",
            {"config": config, "results": results},
            everything,
        )
    )
    validation_nb = root / "notebooks" / "validation.ipynb"
    if validation_nb.is_file():  # model vs the committed GPU measurements
        data = sorted((ROOT / "validation").rglob("*.csv")) + sorted((ROOT / "validation").glob("*.yml"))
        catalogs = study.config.catalogs
        cats = [study.path.parent / p for p in (catalogs.gpus, catalogs.interconnects, catalogs.models)]
        key = _digest(validation_nb.read_bytes(), shared, src, *(p.read_bytes() for p in data + cats))
        params = {"config": config, "results": results}
        out.append(Job("validation", validation_nb, book_dir / "validation.ipynb", params, key))
    sensitivity_nb = root / "notebooks" / "sensitivity.ipynb"
    if sensitivity_nb.is_file():  # depends on every system and the uncertainty section
        uncertain = _dump(study.config.uncertainty.model_dump(mode="json") if study.config.uncertainty else {})
        key = _digest(sensitivity_nb.read_bytes(), everything.encode(), uncertain)
        params = {"config": config, "results": results}
        out.append(Job("sensitivity", sensitivity_nb, book_dir / "sensitivity.ipynb", params, key))
    return out


def _cache_file(job: Job, cache_dir: Path) -> Path:
    return cache_dir / (job.output.name + ".key")


def is_cached(job: Job, cache_dir: Path) -> bool:
    f = _cache_file(job, cache_dir)
    return job.output.is_file() and f.is_file() and f.read_text().strip() == job.key


def first_error(notebook: Path) -> str:
    """The failing cell and its error, read from the partly executed notebook papermill wrote."""
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:
        return ""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {i} ({cell.source.splitlines()[0][:60] if cell.source else ''!r}): {out.get('ename')}: {out.get('evalue')}"
    return ""


def set_title(notebook: Path, title: str) -> None:
    """Give the executed notebook its own page title (its first Markdown heading)."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            _, _, rest = cell.source.partition("\n")
            cell.source = f"# {title}\n{rest}"
            break
    nbformat.write(nb, notebook)


def clear_cache(job_list: list[Job], cache_dir: Path) -> None:
    """Forget the cached keys of these jobs (`--force`): each runs again."""
    for job in job_list:
        _cache_file(job, cache_dir).unlink(missing_ok=True)


def record_timings(outcomes: list[Outcome], cache_dir: Path) -> None:
    """Seconds per executed notebook, kept across runs (the book's reproducibility page)."""
    path = cache_dir / "timings.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data |= {o.job.name: round(o.seconds, 2) for o in outcomes if o.status == "executed"}
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _portable(value: str) -> str:
    """A path inside the repository as seen from its root (papermill runs there), so the parameters
    cell the book shows names no machine's folders; anything else unchanged."""
    path = Path(value)
    if path.is_absolute() and path.is_relative_to(ROOT):
        return path.relative_to(ROOT).as_posix() or "."
    return value


_RUNNING: set[subprocess.Popen] = set()
_STOPPING = False


def execute(job: Job, cache_dir: Path, timeout_s: int) -> Outcome:
    import time

    job.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.output.with_suffix(".partial.ipynb")
    spec = json.dumps({"input": str(job.notebook), "output": str(tmp), "cwd": str(ROOT), "timeout_s": timeout_s,
                       "parameters": {k: _portable(v) for k, v in job.parameters.items()}})  # fmt: skip
    cmd = [sys.executable, "-m", "prophet_model.workflow.nbrun", spec]
    t0 = time.perf_counter()
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1", "MPLBACKEND": "Agg"}
    if _STOPPING:
        return Outcome(job, "failed", "stopped", 0.0)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    _RUNNING.add(proc)
    try:
        _, stderr = proc.communicate()
    finally:
        _RUNNING.discard(proc)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        err = first_error(tmp) or (stderr.strip().splitlines() or ["papermill failed"])[-1]
        tmp.unlink(missing_ok=True)
        return Outcome(job, "failed", err, seconds)
    if job.title:
        set_title(tmp, job.title)
    tmp.replace(job.output)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _cache_file(job, cache_dir).write_text(job.key + "\n")
    return Outcome(job, "executed", "", seconds)


def stop_running() -> None:
    """SIGTERM every notebook runner (each kills its kernel and removes its partial file) and wait."""
    global _STOPPING
    _STOPPING = True
    for proc in list(_RUNNING):
        if proc.poll() is None:
            proc.terminate()
    for proc in list(_RUNNING):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_pipeline(job_list: list[Job], cache_dir: Path, workers: int = 0, timeout_s: int = 600) -> Iterator[Outcome]:
    """Yield an Outcome per job as it finishes (cached ones first). On a signal or an error every
    running notebook is stopped before the exception goes on."""
    todo = []
    for job in job_list:
        if is_cached(job, cache_dir):
            yield Outcome(job, "cached")
        else:
            todo.append(job)
    if not todo:
        return
    workers = workers or min(len(todo), os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=workers)  # each job is its own runner process
    try:
        futures = [pool.submit(execute, job, cache_dir, timeout_s) for job in todo]
        for fut in as_completed(futures):
            yield fut.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_running()
        raise
    pool.shutdown()
