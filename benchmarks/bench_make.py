"""Wall time of `make` (the whole artifact) cold and with nothing changed.

Cold: the environment exists, but results/, the executed notebooks, the pipeline cache and the
built book are removed first (target: < 60 s on the 2-core machine). Also the book build alone. Warm: `make` again with nothing changed
(target: < 5 s). Run: `make bench` or .venv/bin/python benchmarks/bench_make.py. It rebuilds the
artifact in this checkout, as `make` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = (
    "results",
    "book/systems",
    "book/cross_system.ipynb",
    "book/.pipeline-cache",
    "book/_build",
    "book/_generated",
    "book/validation.ipynb",
    "book/sensitivity.ipynb",
)


from bench_model import record  # noqa: E402


def timed_make() -> float:
    t0 = time.perf_counter()
    subprocess.run(["make", "-s"], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    for rel in GENERATED:
        p = ROOT / rel
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    cold = timed_make()
    warm = min(timed_make() for _ in range(3))
    print(f"make, cold (environment present, outputs removed): {cold:.1f} s on {os.cpu_count()} cores (target < 60 s)")
    print(f"make, nothing changed: {warm:.2f} s, best of 3 (target < 5 s)")
    shutil.rmtree(ROOT / "book" / "_build", ignore_errors=True)  # the book alone, from scratch
    t0 = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "jupyter-book"), "build", "book/", "-W", "--keep-going", "--quiet"],
                   cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    book = time.perf_counter() - t0
    print(f"jupyter-book build book/ -W --keep-going: {book:.1f} s (target < 60 s)")
    record(
        {
            "make, cold": (cold, "s", "< 60 s"),
            "make, nothing changed": (warm, "s", "< 5 s"),
            "book build": (book, "s", "< 60 s"),
        }
    )


if __name__ == "__main__":
    main()
