"""Wall time of `make` (the whole artifact) cold and with nothing changed.

Cold: the environment exists, but results/, the executed notebooks and the pipeline cache are
removed first (target: < 60 s on the 2-core machine). Warm: `make` again with nothing changed
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
GENERATED = ("results", "book/systems", "book/cross_system.ipynb", "book/.pipeline-cache", "book/_build")


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


if __name__ == "__main__":
    main()
