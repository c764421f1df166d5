"""Wall time of `make` (the whole artifact) cold and with nothing changed, in a private copy of the
checkout (prophet_model.workflow.sandbox), so results/, the book and tracked files here are not touched.

Cold: the environment exists (linked), nothing else is built (target: < 60 s on the 2-core machine).
Nothing changed: `make` again, median of 5 (target: <= 0.5 s), and each of its steps alone (venv.sh and
the four `python -m prophet_model` steps, which decide "up to date" before importing the heavy stack:
workflow/fastpath.py). Also the book build alone, from scratch: every formula rendered, and with the formulas'
images in the cache that `make` filled (book/_ext/imgmath_format.py).
Run: `make bench` or .venv/bin/python benchmarks/bench_make.py.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_model import record  # noqa: E402

from prophet_model.workflow.sandbox import copy_checkout  # noqa: E402


def timed_make(where: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["make", "-s"], cwd=where, check=True, capture_output=True)
    return time.perf_counter() - t0


REPEATS = 5
STEPS = {
    "venv.sh": ["./scripts/venv.sh", "python3"],
    "run --if-stale": [".venv/bin/python", "-m", "prophet_model", "run", "--if-stale"],
    "paper --if-stale": [".venv/bin/python", "-m", "prophet_model", "paper", "--if-stale"],
    "pipeline": [".venv/bin/python", "-m", "prophet_model", "pipeline"],
    "book --build": [".venv/bin/python", "-m", "prophet_model", "book", "--build"],
}


def median_time(cmd: list[str], where: Path) -> float:
    def once() -> float:
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=where, check=True, capture_output=True)
        return time.perf_counter() - t0

    return statistics.median(once() for _ in range(REPEATS))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="prophet-bench-") as tmp:
        work = copy_checkout(Path(tmp) / "checkout")
        cold = timed_make(work)
        warm = median_time(["make", "-s"], work)
        steps = {name: median_time(cmd, work) for name, cmd in STEPS.items()}
        print(
            f"make, cold (environment present, outputs removed): {cold:.1f} s on {os.cpu_count()} cores (target < 60 s)"
        )
        print(f"make, nothing changed: {warm:.2f} s, median of {REPEATS} (target <= 0.5 s)"
              + ("" if warm <= 0.5 else f": MISSED by {warm - 0.5:.2f} s"))  # fmt: skip
        for name, seconds in steps.items():
            print(f"  {name}, nothing changed: {seconds:.3f} s, median of {REPEATS}")
        jb = [str(ROOT / ".venv" / "bin" / "jupyter-book"), "build", "book/", "-W", "--keep-going", "--quiet"]

        def scratch() -> float:  # the book alone, from scratch
            shutil.rmtree(work / "book" / "_build")
            t0 = time.perf_counter()
            subprocess.run(jb, cwd=work, check=True, capture_output=True, env=env)
            return time.perf_counter() - t0

        env = {k: v for k, v in os.environ.items() if k != "PROPHET_IMGMATH_CACHE"}
        cached = scratch()  # the formulas' images copied from the cache the make above filled
        shutil.rmtree(work / "book" / ".pipeline-cache" / "imgmath")
        book = scratch()  # every formula rendered (book/_ext/imgmath_format.py)
    print(
        f"jupyter-book build book/ -W --keep-going: {book:.1f} s (target < 60 s), {cached:.1f} s with the formulas cached"
    )
    record(
        {
            "make, cold": (cold, "s", "< 60 s"),
            "make, nothing changed": (warm, "s", "<= 0.5 s"),
            **{f"make, nothing changed: {k}": (v, "s", "") for k, v in steps.items()},
            "book build": (book, "s", "< 60 s"),
            "book build, formulas cached": (cached, "s", ""),
        }
    )


if __name__ == "__main__":
    main()
