"""Speed figures for the model (printed, never asserted in tests).

1. Configurations per second that one vectorized `evaluate` call handles on one core
   (target: >= 1,000,000/s).
2. Wall time of `python -m prophet_model run --no-figures` for the default study (model, CSVs,
   summaries, checks; target: < 2 s), and of the full run with all 20 PDF + PNG figures.
3. Wall time of `python -m prophet_model analyze` (target: < 2 s) and of `whatif --system 8xA100`
   (target: <= 0.4 s: a command imports only what it needs), with nothing changed and with one change
   (`--set prophet.prediction_accuracy=0.9`: the study searched twice).
Command wall times are medians of 5 runs (the machine may be shared), with Python's bytecode cache as
Python keeps it by default: an environment that sets PYTHONDONTWRITEBYTECODE (this machine's shell does)
compiles the package from source at every start, so the benchmark clears it for the commands it times;
`whatif` is also timed with it set, and that figure is printed beside the other.

Run: `make bench` (or .venv/bin/python benchmarks/bench_model.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prophet_model.physics import NUMBERS, Scenario, evaluate  # noqa: E402
from prophet_model.study.config import load_study  # noqa: E402
from prophet_model.study.scenarios import scenario_dict  # noqa: E402
from prophet_model.workflow.procs import roomy_heap  # noqa: E402

N_CONFIGS = 1_000_000
REPEATS = 5


def random_scenarios(n: int, seed: int = 0) -> Scenario:
    """The default study's 8xA100 configuration, with batch, accuracy, EP degree and link
    bandwidth varied across n configurations, and each side's searched options (weight and KV precision, cache
    policy, two-batch overlap none / two_batch / auto) drawn for each."""
    study = load_study(ROOT / "_config.yml")
    system = study.system("8xA100")
    base = scenario_dict(study, system.gpu_key, system.count, 4, system.interconnect, True)
    rng = np.random.default_rng(seed)
    s = Scenario(**{k: np.full(n, base[k], dtype=np.float64) for k in NUMBERS}, traces=base["traces"])
    return replace(
        s,
        ep=rng.choice([1.0, 2.0, 4.0, 8.0], n),
        batch_size_per_gpu=rng.integers(1, 513, n).astype(np.float64),
        prediction_accuracy=rng.random(n),
        link_bandwidth=base["link_bandwidth"] * rng.uniform(0.25, 4.0, n),
        bytes_per_param=rng.choice([1.0, 2.0], n),
        kv_bytes=rng.choice([1.0, 2.0], n),
        cache_policy=rng.choice([0.0, 1.0, 2.0], n),
        two_batch_overlap=rng.choice([0.0, 1.0, 2.0], n),
    )


def bench_vectorized() -> float:
    s = random_scenarios(N_CONFIGS).arrays()
    evaluate(s)  # warm-up
    best = min(_timed(lambda: evaluate(s)) for _ in range(REPEATS))
    return N_CONFIGS / best


# the systems of the study when the Monte Carlo's figure was first recorded (2026-12-07: 0.89 s): the same work
# then and now, beside the figure for every system the study has since gained
DRAFT_SYSTEMS = ("2xA100", "4xH100", "8xA100", "10xA6000")


def bench_monte_carlo(systems: tuple[str, ...] | None = None) -> tuple[float, int]:
    """(best wall time, model configurations) of the study's Monte Carlo at 100,000 samples (`systems`: those
    only; all by default)."""
    from prophet_model.study.runner import run_study
    from prophet_model.study.sensitivity import monte_carlo

    results, _ = run_study(load_study(ROOT / "_config.yml"), systems)
    monte_carlo(results, samples=1000)  # warm-up
    best = min(_timed(lambda: monte_carlo(results, samples=100_000)) for _ in range(3))
    systems = results.comparison.dropna(subset=["speedup"]).system_id.nunique()
    return best, 100_000 * systems * 2  # baseline and Prophet per sample and system


def zipf_trace(path: Path, layers: int = 32, experts: int = 128, exponent: float = 1.2, seed: int = 7) -> Path:
    """A realistic routing trace (layer,expert,count; layers 0..31, experts 0..127): per layer 200,000
    picks drawn from a Zipf law of the exponent, its popularity order shuffled per layer."""
    rng = np.random.default_rng(seed)
    w = np.arange(1, experts + 1, dtype=float) ** -exponent
    lines = ["layer,expert,count"]
    for layer in range(layers):
        counts = rng.multinomial(200_000, w / w.sum())[rng.permutation(experts)]
        lines += [f"{layer},{e},{c}" for e, c in enumerate(counts)]
    path.write_text("\n".join(lines) + "\n")
    return path


def bench_monte_carlo_routing(tmp: Path) -> dict[str, float]:
    """Wall time of the study's Monte Carlo at 100,000 samples under skewed routing: a 32 x 128 Zipf
    trace with the default uncertain inputs, and a Zipf law whose exponent is sampled too."""
    import yaml

    from prophet_model.study.runner import run_study
    from prophet_model.study.sensitivity import monte_carlo

    raw = yaml.safe_load((ROOT / "_config.yml").read_text())
    raw["catalogs"] = {k: str(ROOT / v) for k, v in raw["catalogs"].items()}
    out = {}
    trace = dict(raw, routing={**raw["routing"], "distribution": "trace",
                               "trace_file": str(zipf_trace(tmp / "trace.csv"))})  # fmt: skip
    skew = dict(raw, routing={**raw["routing"], "distribution": "zipf"})
    skew["uncertainty"] = {**raw["uncertainty"], "inputs": {**raw["uncertainty"]["inputs"], "routing.zipf_exponent":
                           {"distribution": "uniform", "low": 0.5, "high": 1.5, "source": "bench"}}}  # fmt: skip
    for name, cfg in (("trace 32x128", trace), ("Zipf exponent sampled", skew)):
        path = tmp / f"{name.split()[0]}.yml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        results, _ = run_study(load_study(path))
        out[name] = _timed(lambda results=results: monte_carlo(results, samples=100_000))
    return out


CLI_REPEATS = 5


def bench_cli(*args: str, results: Path | None = None, bytecode: bool = True) -> float:
    """Median wall time of `python -m prophet_model ARGS` (a first run is not counted: it writes the
    results folder and the bytecode cache, and warms the file cache). `bytecode` False: in a private copy
    of the checkout (no __pycache__ in its package) with PYTHONDONTWRITEBYTECODE set, so that every start
    compiles the package from source, as in a fresh clone under such a shell (the installed packages and
    the standard library keep their caches)."""
    import statistics

    from prophet_model.workflow.sandbox import copy_checkout

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        where = ROOT
        if not bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            where = copy_checkout(Path(tmp) / "checkout")
        cmd = [sys.executable, "-m", "prophet_model", *args, *(["--results", str(results)] if results else [])]
        run = lambda: subprocess.run(cmd, cwd=where, check=True, capture_output=True, env=env)  # noqa: E731
        run()
        if not bytecode and any((where / "prophet_model").rglob("*.pyc")):
            raise RuntimeError("the copy's package has a bytecode cache: the figure would not be what it says")
        return statistics.median(_timed(run) for _ in range(CLI_REPEATS))


def record(figures: dict[str, tuple[float, str, str]]) -> None:
    """Merge these figures into benchmarks/output/results.json ($PROPHET_BENCH_OUT overrides the
    folder). The book reads the committed benchmarks/results.json: copy the new file over it to
    publish new figures; `make bench` never rewrites a tracked file."""
    import json
    import platform
    from datetime import date

    out = Path(os.environ.get("PROPHET_BENCH_OUT", ROOT / "benchmarks" / "output"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    data = json.loads(path.read_text()) if path.is_file() else {"figures": {}}
    data["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    data["date"] = date.today().isoformat()
    data["figures"] |= {k: {"value": round(v, 3), "unit": u, "target": t} for k, (v, u, t) in figures.items()}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"figures saved to {path}")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        full = bench_cli("run", "--quiet", results=results)
        quick = bench_cli("run", "--quiet", "--no-figures", results=Path(tmp) / "quick")
        analyze = bench_cli("analyze", results=results)
        whatif = bench_cli("whatif", "--system", "8xA100")
        whatif_set = bench_cli("whatif", "--system", "8xA100", "--set", "prophet.prediction_accuracy=0.9")
        whatif_source = bench_cli("whatif", "--system", "8xA100", bytecode=False)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core for the model
    roomy_heap()  # as `python -m prophet_model` runs the model (prophet_model/cli.py)
    rate = bench_vectorized()
    mc_seconds, mc_configs = bench_monte_carlo()
    mc_draft, _ = bench_monte_carlo(DRAFT_SYSTEMS)
    with tempfile.TemporaryDirectory() as tmp:
        routed = bench_monte_carlo_routing(Path(tmp))
    print(f"vectorized model: {rate:,.0f} configurations/s on one core (target >= 1,000,000/s)")
    print(
        f"Monte Carlo, 100,000 samples x all systems: {mc_seconds:.2f} s on one core, {mc_configs / mc_seconds:,.0f} configurations/s (target < 5 s)"
    )
    print(f"Monte Carlo, 100,000 samples x {', '.join(DRAFT_SYSTEMS)}: {mc_draft:.2f} s on one core "
          f"(target <= 0.89 s, its figure of 2026-12-07)")  # fmt: skip
    for name, seconds in routed.items():
        print(f"Monte Carlo, 100,000 samples x all systems, {name}: {seconds:.2f} s on one core (target < 30 s)")
    n = CLI_REPEATS
    print(f"run --no-figures (default study): {quick:.2f} s wall, median of {n} (target <= 2.70 s, its figure of "
          "2026-12-07; < 2 s before the systems and options since)")  # fmt: skip
    print(f"run with all figures (default study): {full:.2f} s wall on {cores} cores, median of {n} (target <= 3 s)")
    print(f"analyze: {analyze:.2f} s wall, median of {n} (target < 2 s)")
    print(f"whatif --system 8xA100: {whatif:.2f} s wall, median of {n} (target <= 0.4 s)"
          + ("" if whatif <= 0.4 else f": MISSED by {whatif - 0.4:.2f} s"))  # fmt: skip
    print(f"whatif --system 8xA100 --set prophet.prediction_accuracy=0.9: {whatif_set:.2f} s wall, median of {n}")
    print(f"whatif --system 8xA100 with PYTHONDONTWRITEBYTECODE=1 (the package compiled at every start): "
          f"{whatif_source:.2f} s wall, median of {n}")  # fmt: skip
    record({
        "vectorized model": (rate, "configurations/s on one core", ">= 1,000,000"),
        "Monte Carlo (100,000 samples, all systems)": (mc_seconds, "s on one core", "< 5 s"),
        "Monte Carlo (100,000 samples, the four systems of 2026-12-07)": (mc_draft, "s on one core", "<= 0.89 s"),
        **{f"Monte Carlo (100,000 samples, all systems, {k})": (v, "s on one core", "< 30 s") for k, v in routed.items()},
        "run --no-figures": (quick, "s", "<= 2.70 s (its figure of 2026-12-07; < 2 s before the systems and options since)"),
        "run with all figures": (full, "s", "<= 3 s"),
        "analyze": (analyze, "s", "< 2 s"),
        "whatif": (whatif, "s", "<= 0.4 s"),
        "whatif, one change": (whatif_set, "s", "<= 0.4 s"),
        "whatif, no bytecode cache": (whatif_source, "s", ""),
    })  # fmt: skip


if __name__ == "__main__":
    main()
