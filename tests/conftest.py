"""Shared fixtures: a toy scenario with round numbers for hand-derived examples, config helpers, and the
session's prebuilt folders that the slow tests copy instead of rebuilding: the default study's results
(`run --no-figures`, `plain_results`), a private checkout that `make` built (`built_checkout`: results,
paper, executed notebooks and site) and any folder made once per session (`made_once`: the hostile-name
paper, `paper_of`). A test that changes one works on a copy (`copy_built`)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from prophet_model.cli import main
from prophet_model.physics import Scenario
from prophet_model.workflow.sandbox import copy_checkout

ROOT = Path(__file__).resolve().parents[1]

# A toy MoE on a toy GPU, chosen so every term can be derived by hand (see test_worked_examples.py).
TOY = Scenario(
    n_gpus=1, ep=1,
    peak_flops=1e12, hbm_bandwidth=1e11, stream_dense=1e11, stream_grouped=1e11, memory_capacity=45_616_000,
    host_bandwidth=1e10, gpus_per_switch=1, switch_uplink_bandwidth=1e10, host_memory_bandwidth=float("inf"),
    cpu_sockets=1, remote_memory_share=0.0,
    link_bandwidth=1e11, link_efficiency=1.0, kernel_startup=0.0, link_latency=10e-6, sockets=1,
    cross_socket_bandwidth=0.0,
    num_layers=2, num_moe_layers=2, hidden_size=1000, expert_ffn_size=1000, num_experts=4, top_k=1,
    num_shared_experts=0, shared_expert_ffn_size=0, dense_ffn_size=0, attention_params_per_layer=4_000_000,
    kv_elements_per_token_per_layer=2000, num_attention_heads=1, head_dim=1000, vocab_size=1000, bytes_per_param=2,
    fused=0, kernels_per_layer=0, kernels_per_moe_layer=0, kernels_per_expert=5, kernels_head=0,
    kernels_per_shared_expert=3,
    batch_size_per_gpu=2, context_length=100, activation_bytes=2, reserved_memory=0,
    prophet=0, prediction_accuracy=0.8, comm_reduction_factor=4, load_imbalance=0, dedup_dispatch=1,
)  # fmt: skip


def _untouchable() -> tuple[dict[str, tuple[int, int]], str]:
    """(size and mtime of every file under results/, git's view of the tracked files)."""
    results = ROOT / "results"
    files = {p.relative_to(results).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
             for p in results.rglob("*") if p.is_file()} if results.is_dir() else {}  # fmt: skip
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                            cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout  # fmt: skip
    return files, status


@pytest.fixture(scope="session", autouse=True)
def tests_leave_results_and_tracked_files_alone():
    """The test suite never touches the repository's results/ or a tracked file."""
    before = _untouchable()
    yield
    after = _untouchable()
    assert after[0] == before[0], "a test changed results/"
    assert after[1] == before[1], "a test changed a tracked file"


def toy(**changes) -> Scenario:
    return replace(TOY, **changes)


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """A copy of the default study (config + catalogs) in a temporary folder."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "catalog", tmp_path / "catalog")
    return tmp_path


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dump_yaml(data: dict, path: Path) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def edited_config(path: Path, change) -> Path:
    """The default study's config with `change(data)` applied, written to `path` (its catalogs by absolute path,
    so that it loads from anywhere)."""
    data = load_yaml(ROOT / "_config.yml")
    change(data)
    data["catalogs"] = {k: str(ROOT / v) for k, v in data["catalogs"].items()}
    dump_yaml(data, path)
    return path


def only_systems(data: dict, ids: tuple[str, ...]) -> dict:
    """A config's data keeping the systems `ids` (and the expectations about them): end-to-end tests whose rule
    does not depend on the number of systems build fewer notebooks and pages."""
    data["systems"] = [s for s in data["systems"] if s["id"] in ids]
    data["expectations"] = [e for e in data.get("expectations") or [] if e.get("system") in ids]
    return data


def fixed_options(data: dict) -> None:
    """Every searched option at one value (the searches' first: BF16 weights and KV, lru / predicted, no overlap):
    an offloading regime, where the default model's experts do not all fit."""
    data["workload"].update(weight_precision="bf16", kv_precision="bf16")
    data["expert_cache"].update(baseline_policy="lru", prophet_policy="predicted")
    data["parallel"]["overlap"] = "none"


def zipf_trace(path: Path, layers: int = 32, experts: int = 128, seed: int = 3) -> Path:
    """A 32 x 128 Zipf trace, layers 0..31 (read_trace takes any layer numbers >= 0)."""
    rng = np.random.default_rng(seed)
    w = np.arange(1, experts + 1, dtype=float) ** -1.2
    rows = ["layer,expert,count"]
    for layer in range(layers):
        counts = rng.multinomial(50_000, w / w.sum())[rng.permutation(experts)]
        rows += [f"{layer},{e},{c}" for e, c in enumerate(counts)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def trace_study(study_dir: Path) -> Path:
    """The default study routed by a Zipf trace (zipf_trace), with 2,000 uncertainty samples: its config."""
    cfg = study_dir / "_config.yml"
    raw = load_yaml(cfg)
    raw["routing"] |= {"distribution": "trace", "trace_file": str(zipf_trace(study_dir / "trace.csv"))}
    raw["uncertainty"]["samples"] = 2000
    dump_yaml(raw, cfg)
    return cfg


# ---------------------------------------------------------------------------------------------------------
# Prebuilt folders, made once per session and copied by the tests that need them.


# the longest test files, started first (make test's --no-loadscope-reorder keeps this order; each of the first
# processes starts with two files, the first with the 1st and 4th, and so on): with --dist loadfile a file runs in
# one process, and one of these started last would be the suite's tail (test_make_sequences waits for
# built_checkout, then builds again)
FIRST = (
    "test_make_sequences.py",
    "test_book.py",
    "test_kill_repair.py",
    "test_fastpath.py",
    "test_results_integrity.py",
    "test_notebooks.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    """The files of FIRST before the others (each file's tests in their order)."""
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))


def _session_dir(tmp_path_factory) -> Path:
    """A folder every process of this session shares: under pytest-xdist the workers' common parent
    (pytest-N/, one per session), else the session's own base folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


# `make` in the built checkout; its exit status then goes to the file named by $1 (written whole, by a rename)
BUILD = 'make -s > "$1.log" 2>&1; echo $? > "$1.tmp"; mv "$1.tmp" "$1"'
BUILD_WAIT_S = 1200  # a build that has not ended by then fails the tests that need it


@pytest.fixture(scope="session", autouse=True)
def _one_formula_cache(tmp_path_factory) -> None:
    """Every book the session builds (the built checkout, the hostile-name site, the small builds) copies the
    formulas' images that another has rendered (book/_ext/imgmath_format.py: its cache, shared here): a book
    built from scratch otherwise renders its 139 formulas again, most of its build time."""
    os.environ["PROPHET_IMGMATH_CACHE"] = str(_session_dir(tmp_path_factory) / "imgmath")


@pytest.fixture(scope="session", autouse=True)
def _build_checkout_meanwhile(request, tmp_path_factory, _one_formula_cache):
    """Where a collected test needs built_checkout: start the session's `make` of it at once, in the background
    of the first worker, so that the tests go on while it builds (a test that needs it waits for it, the others
    do not). A worker that started it waits for it at its end (another worker may still need it)."""
    if not any("built_checkout" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield
        return
    proc = _start_build(_session_dir(tmp_path_factory))
    yield
    if proc is not None:
        proc.wait()


def _start_build(shared: Path) -> subprocess.Popen | None:
    """The session's `make` of the built checkout in the background, unless a process has started it already."""
    work = shared / "built-checkout"
    with (shared / "built-checkout.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if (shared / "built-checkout.started").is_file():
            return None
        shutil.rmtree(work, ignore_errors=True)
        copy_checkout(work)
        proc = subprocess.Popen(["sh", "-c", BUILD, "sh", str(shared / "built-checkout.status")], cwd=work)
        (shared / "built-checkout.started").write_text(str(proc.pid))
        return proc


@pytest.fixture(scope="session")
def built_checkout(tmp_path_factory, _one_formula_cache) -> Path:
    """A private copy of the checkout (copy_checkout) built by `make`: the default study's results and
    paper, the executed notebooks and the site. Built once per session, whatever the number of workers,
    from the session's start on (_build_checkout_meanwhile), or from the first request where no collected test
    named it (paper_of asks for it when called); a test that needs it waits for the build to end.
    Read-only for the tests: copy it (copy_built) to change anything."""
    shared = _session_dir(tmp_path_factory)
    proc = _start_build(shared)
    status, log = shared / "built-checkout.status", shared / "built-checkout.status.log"
    deadline = time.monotonic() + BUILD_WAIT_S
    while not status.is_file():
        assert time.monotonic() < deadline, "no end of the build: " + (log.read_text()[-3000:] if log.is_file() else "")
        time.sleep(0.5)
    if proc is not None:
        proc.wait()
    assert status.read_text().strip() == "0", log.read_text(errors="replace")[-6000:] if log.is_file() else ""
    return shared / "built-checkout"


@pytest.fixture(scope="session")
def made_once(tmp_path_factory):
    """made_once(name, build) -> the folder `name`, made by build(folder) once per session whichever process
    asks first (the others wait for it). Read-only for the tests: copy it (copy_built) to change anything."""
    shared = _session_dir(tmp_path_factory)

    def get(name: str, build) -> Path:
        folder, done = shared / f"once-{name}", shared / f"once-{name}.done"
        with (shared / f"once-{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
            if not done.is_file():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                build(folder)
                done.write_text("")
        return folder

    return get


@pytest.fixture(scope="session")
def plain_results(tmp_path_factory) -> Path:
    """The default study's `run --no-figures` (a few seconds: made once per worker). Read-only for the
    tests: copy it (copy_built) to change anything."""
    results = tmp_path_factory.mktemp("plain") / "results"
    argv = ["run", "--config", str(ROOT / "_config.yml"), "--results", str(results), "--quiet", "--no-figures"]
    assert main(argv) == 0
    return results


def _make_paper(folder: Path, name: str | None) -> None:
    """folder/results: the default study's results and paper, with `name` (when given) for 8xA100's name, the
    study's title and every catalog entry's name (every name a user or add-model supplies), and two systems
    (8xA100 and 4xH100: the names land in the same places for any number)."""
    shutil.copy(ROOT / "_config.yml", folder / "_config.yml")
    shutil.copytree(ROOT / "catalog", folder / "catalog")
    if name:
        cfg = only_systems(load_yaml(folder / "_config.yml"), ("4xH100", "8xA100"))
        next(s for s in cfg["systems"] if s["id"] == "8xA100")["name"] = name
        cfg["study"]["title"] = f"title {name}"
        dump_yaml(cfg, folder / "_config.yml")
        for catalog in ("models", "gpus", "interconnects"):
            entries = load_yaml(folder / "catalog" / f"{catalog}.yml")
            for i, entry in enumerate(entries.values()):
                entry["name"] = f"{catalog} {i} {name}"
            dump_yaml(entries, folder / "catalog" / f"{catalog}.yml")
    common = ["--config", str(folder / "_config.yml"), "--results", str(folder / "results")]
    assert main(["run", *common, "--quiet"]) == 0
    assert main(["paper", *common]) == 0


@pytest.fixture
def paper_of(request, made_once, tmp_path):
    """paper_of(name=None) -> a results/ folder in tmp_path with the paper: the default study's, copied from the
    session's built checkout (`make` wrote it from the same configuration), or, with `name`, the default study
    renamed as _make_paper does (made once per session, ~30 s, and copied)."""

    def get(name: str | None = None) -> Path:
        if name is None:
            source = request.getfixturevalue("built_checkout") / "results"
        else:
            source = made_once(f"paper-{hashlib.sha256(name.encode()).hexdigest()[:12]}",
                               lambda folder: _make_paper(folder, name)) / "results"  # fmt: skip
        return copy_built(source, tmp_path / "results")

    return get


def copy_built(source: Path, dest: Path) -> Path:
    """A copy of a prebuilt folder (links kept as links, times kept, so the copy is as up to date as
    its source: `make` there has nothing to do and the site is rebuilt incrementally)."""
    shutil.copytree(source, dest, symlinks=True)
    return dest
