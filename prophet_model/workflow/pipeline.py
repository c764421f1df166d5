"""`python -m prophet_model pipeline`: execute the notebooks with papermill, one per system plus the
cross-system, validation and sensitivity ones, in parallel across cores, into book/ (where the Jupyter Book picks
them up).

A per-notebook cache skips unchanged work: each notebook's key is a hash of the files it reads: the
notebook file, the part of the configuration it depends on, as written in the YAML (for a system: its
own entry, its GPU, interconnect and model catalog entries, its expectations, and every study-wide
section; not the other systems), the package's source and templates and the data the package reads when
it loads the study (PACKAGE_SOURCES), and the files `run` wrote that the page reads (no notebook runs the
study): a system page the rows of its system in the study-wide tables, its GPU's rates, the single-GPU
claims and its results_<id>.csv; the cross-system page the comparison, headline and checks; the sensitivity
page data/sensitivity/ and uncertainty.csv; the validation page results/data/validation/. The keys are
computed from the raw YAML (study/rawconfig.py) and the results' files, so `make` can tell that every
notebook is cached without loading the study. A failing notebook is reported with its name and the
failing cell's error; the others still finish; the exit status is then 1.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prophet_model.errors import UserError
from prophet_model.outputs.files import (
    FACTS_FILE,
    SENSITIVITY_FILES,
    SYSTEM_FILES,
    UNCERTAINTY_FILE,
    VALIDATION_FILES,
    read_timings,
    system_page,
)
from prophet_model.outputs.formatting import md
from prophet_model.paths import ROOT
from prophet_model.study.rawconfig import RawStudy
from prophet_model.study.yaml_io import read_regular
from prophet_model.workflow.nbrun import RETRIED
from prophet_model.workflow.once import remembered

if TYPE_CHECKING:
    from prophet_model.study.config import Study

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
    note: str = ""  # e.g. that the kernel was started a second time


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def source_digest(root: Path = ROOT) -> bytes:
    return remembered(("source_digest", root), lambda: _source_digest(root))


def _source_digest(root: Path) -> bytes:
    files = sorted(p for pattern in PACKAGE_SOURCES for p in root.glob(pattern) if p.is_file())
    return _digest(*(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() for p in files)).encode()


# What `run` reads beyond PACKAGE_SOURCES: every file of the measurements (the validation's tables come from
# them: NCCL's logs, the probe, the runs under other NCCL settings or world sizes, env.json).
RUN_SOURCES = ("validation/measurements/**/*",)
MAX_RESULT_BYTES = 256 << 20  # protective: the validation's largest table (points.csv) is under 1 MB


def run_digest(root: Path = ROOT) -> bytes:
    """What a run's outputs depend on beyond the configuration: source_digest and every file of RUN_SOURCES."""
    return remembered(("run_digest", root), lambda: _run_digest(root))


def _run_digest(root: Path) -> bytes:
    files = sorted({p for pattern in RUN_SOURCES for p in root.glob(pattern) if p.is_file()})
    return (
        source_digest(root)
        + _digest(*(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() for p in files)).encode()
    )


def results_digest(results_dir: Path, names: tuple[str, ...]) -> bytes:
    """The files `names` of the results folder, each by name and bytes (a missing one as missing: the
    notebook then says which file to make)."""
    parts = []
    for rel in names:
        path = results_dir / rel
        data = read_regular(path, MAX_RESULT_BYTES, "a file `run` writes") if path.is_file() else b"\0missing"
        parts.append(rel.encode() + b"\0" + data)
    return _digest(*parts).encode()


def rows_digest(results_dir: Path, rel: str, column: str, values: tuple[str, ...]) -> bytes:
    """The header and the rows of the CSV `rel` of the results folder whose `column` is one of `values` (a
    page that shows only those rows reads no more); every row where the file has no such column, the bytes
    where it is not UTF-8 text, a missing file as missing."""
    path = results_dir / rel
    if not path.is_file():
        return _digest(rel.encode(), b"\0missing").encode()
    data = read_regular(path, MAX_RESULT_BYTES, "a file `run` writes")
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
        header = next(reader, [])
        i = header.index(column) if column in header else None
        rows = [r for r in reader if i is None or (len(r) > i and r[i] in values)]
    except (UnicodeDecodeError, csv.Error):
        return _digest(rel.encode(), data).encode()
    return _digest(rel.encode(), _dump([header, rows])).encode()


def _fact(results_dir: Path, name: str) -> object:
    """One entry of the results' facts.json (None where it cannot be read: the page then says why)."""
    try:
        return json.loads(read_regular(results_dir / FACTS_FILE, MAX_RESULT_BYTES, "a file `run` writes")).get(name)
    except Exception:
        return None


def system_results(rs: RawStudy, results_dir: Path, system_id: str) -> bytes:
    """What a system page reads of the results: its rows of the comparison and the checks, the single-GPU
    claims' rows of claims.csv (facts.json's single_gpu_id), its GPU's row of hardware_rates.csv, its
    results_<id>.csv, and its rows of headline.csv and sensitivity/tornado.csv (what moves its speedup)."""
    entry = next(e for e in rs.raw["systems"] if e["id"] == system_id)
    gpu = rs.entry("gpus", entry.get("gpu"))
    single = _fact(results_dir, "single_gpu_id")
    return _digest(
        rows_digest(results_dir, "data/all_systems_comparison.csv", "system_id", (system_id,)),
        rows_digest(results_dir, "data/sanity_checks.csv", "system_id", (system_id,)),
        rows_digest(results_dir, "data/claims.csv", "system_id", (str(single),)),
        rows_digest(results_dir, "data/hardware_rates.csv", "gpu", (str(gpu.get("name")),)),
        rows_digest(results_dir, "data/headline.csv", "system_id", (system_id,)),
        rows_digest(results_dir, "data/sensitivity/tornado.csv", "system_id", (system_id,)),
        _dump(single),
        results_digest(results_dir, (SYSTEM_FILES[0].format(id=system_id),)),
    ).encode()


CROSS_SYSTEM_FILES = ("data/all_systems_comparison.csv", "data/headline.csv", "data/sanity_checks.csv")


def _dump(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, default=str).encode()


PER_SYSTEM = ("systems", "expectations")


def shared_config(rs: RawStudy) -> bytes:
    """What every notebook depends on: every section but the per-system ones, the model's and the
    single-GPU claim GPU's catalog entries, and the routing trace's bytes (when one is used)."""
    raw = rs.raw
    rest = {k: v for k, v in raw.items() if k not in PER_SYSTEM}
    claim = raw.get("single_gpu_claim")
    return _dump(
        {
            "config": rest,
            "model": rs.entry("models", raw.get("model")),
            "claim_gpu": rs.entry("gpus", claim.get("gpu") if isinstance(claim, dict) else None),
            "trace": hashlib.sha256(rs.trace).hexdigest() if rs.trace is not None else None,
        }
    )


def system_config(rs: RawStudy, system_id: str) -> bytes:
    """What one system's notebook depends on beyond the shared part: its entry, its GPU and interconnect
    catalog entries, its expectations."""
    entry = next(e for e in rs.raw["systems"] if e["id"] == system_id)
    expectations = [e for e in rs.raw.get("expectations") or [] if isinstance(e, dict) and e.get("system") == system_id]
    parts = {
        "system": entry,
        "gpu": rs.entry("gpus", entry.get("gpu")),
        "interconnect": rs.entry("interconnects", entry.get("interconnect")),
        "expectations": expectations,
    }
    if entry.get("model") is not None:  # a system's own model (systems.<id>.model): its catalog entry too
        parts["model"] = rs.entry("models", entry.get("model"))
    return _dump(parts)


def raw_study(study: Study | RawStudy) -> RawStudy:
    """The raw configuration of a loaded study (read again; refused if the file changed meanwhile)."""
    if isinstance(study, RawStudy):
        return study
    rs = RawStudy.load(study.path)
    if rs.config_hash != study.config_hash:
        raise UserError(
            f"{study.path}: changed while the pipeline started (config {study.config_hash}, now "
            f"{rs.config_hash}); run the command again"
        )
    return rs


def jobs(study: Study | RawStudy, book_dir: Path, results_dir: Path, root: Path = ROOT) -> list[Job]:
    rs = raw_study(study)
    src, shared = source_digest(root), shared_config(rs)
    config = str(rs.path.resolve())
    results = str(results_dir.resolve())
    system_nb = root / "notebooks" / "system_analysis.ipynb"
    cross_nb = root / "notebooks" / "cross_system.ipynb"
    out = []
    for s in rs.systems:
        key = _digest(
            system_nb.read_bytes(), shared, system_config(rs, s.id), src, system_results(rs, results_dir, s.id)
        )
        out.append(
            Job(
                f"system {s.id}",
                system_nb,
                book_dir / "systems" / f"{system_page(s)}.ipynb",
                {"system": s.id, "config": config, "results": results},
                key,
                f"{md(s.name)}: system analysis",
            )
        )
    cross = _digest(cross_nb.read_bytes(), shared, src, results_digest(results_dir, CROSS_SYSTEM_FILES))
    out.append(
        Job(
            "cross-system",
            cross_nb,
            book_dir / "cross_system.ipynb",
            {"config": config, "results": results},
            cross,
        )
    )
    validation_nb = root / "notebooks" / "validation.ipynb"
    if validation_nb.is_file():  # model vs the committed GPU measurements
        # what the page reads: the validation's results, and of the configuration the model, the workload
        # (shared) and the systems' GPUs (which of them were never measured)
        gpus = _dump([rs.entry("gpus", e.get("gpu")) for e in rs.raw["systems"]])
        # (not the claims' evidence, which the paper and the claims page read: it follows the headline rows)
        page_files = tuple(f for f in VALIDATION_FILES if not f.endswith("/claim_evidence.csv"))
        key = _digest(validation_nb.read_bytes(), shared, src, gpus, results_digest(results_dir, page_files))
        params = {"config": config, "results": results}
        out.append(Job("validation", validation_nb, book_dir / "validation.ipynb", params, key))
    sensitivity_nb = root / "notebooks" / "sensitivity.ipynb"
    if sensitivity_nb.is_file():  # the sweeps, maps and intervals of every system; the uncertainty section
        uncertain = _dump(rs.raw.get("uncertainty") or {})
        read = results_digest(results_dir, (*SENSITIVITY_FILES, UNCERTAINTY_FILE))
        key = _digest(sensitivity_nb.read_bytes(), shared, src, uncertain, read)
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
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:
        return ""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return (
                    f"cell {i} ({cell.source.splitlines()[0][:60] if cell.source else ''!r}): {out.get('ename')}:"
                    f" {out.get('evalue')}"
                )
    return ""


def set_title(notebook: Path, title: str) -> None:
    """Give the executed notebook its own page title (its first Markdown heading)."""
    import nbformat

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
    data = read_timings(path)  # an unreadable file is replaced
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
    spec = json.dumps(
        {
            "input": str(job.notebook),
            "output": str(tmp),
            "cwd": str(ROOT),
            "timeout_s": timeout_s,
            "parameters": {k: _portable(v) for k, v in job.parameters.items()},
        }
    )
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
    notes = [line.removeprefix(RETRIED) for line in stderr.splitlines() if line.startswith(RETRIED)]
    return Outcome(job, "executed", "", seconds, "; ".join(notes))


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


def longest_first(todo: list[Job], cache_dir: Path) -> list[Job]:
    """The order to start notebooks in so that few workers finish soonest: longest first. A notebook's
    length is its last recorded time (timings.json); one never timed starts before the timed ones, a
    study-wide one before a one-system one, and of the study-wide ones the later listed first (each
    builds on more of the study: sensitivity on every system). Outputs do not depend on the order."""
    seen = read_timings(cache_dir / "timings.json")
    listed = {job.name: i for i, job in enumerate(todo)}

    def key(job: Job) -> tuple:
        if job.name in seen:
            return (1, -seen[job.name], listed[job.name])
        one_system = "system" in job.parameters
        return (0, one_system, listed[job.name] if one_system else -listed[job.name])

    return sorted(todo, key=key)


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
        futures = [pool.submit(execute, job, cache_dir, timeout_s) for job in longest_first(todo, cache_dir)]
        for fut in as_completed(futures):
            yield fut.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_running()
        raise
    pool.shutdown()
