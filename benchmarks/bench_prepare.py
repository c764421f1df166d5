"""What an artifact evaluator waits for and how much disk the artifact takes, measured in a private copy
of the checkout (prophet_model.workflow.sandbox) so nothing here is touched:

1. Time to prepare: `scripts/venv.sh python3` creating the environment from requirements.lock (needs the
   package registries; the Debian packages of scripts/install-system-deps.sh are assumed present).
2. Time to run: a cold `make` in that fresh environment (study, paper, notebooks, book).
3. Time to test: `make test` (the whole suite, as CI runs it).
4. Disk: the environment (.venv) and the outputs (results/, the executed notebooks, the built book).

Run: .venv/bin/python benchmarks/bench_prepare.py [--no-tests]; about 15 minutes on 2 cores. Figures go
to benchmarks/output/results.json (copy it over benchmarks/results.json to publish them); the artifact
appendix quotes the published ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_model import record  # noqa: E402

from prophet_model.workflow.sandbox import checkout_files  # noqa: E402


def du(path: Path) -> float:
    """Bytes under `path` (files only, links not followed)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-tests", action="store_true", help="skip `make test`")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="prophet-prepare-") as tmp:
        work = Path(tmp) / "checkout"
        for rel in checkout_files():  # no .venv: the environment is made from scratch
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, work / rel)  # modes kept: the scripts stay executable
        subprocess.run(["git", "init", "-q"], cwd=work, check=True)  # the tests look for a git checkout
        subprocess.run(["git", "add", "-A"], cwd=work, check=True)
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"],
                       cwd=work, check=True)  # fmt: skip
        prepare = timed(["bash", "scripts/venv.sh", "python3"], work)
        print(f"prepare (fresh environment from requirements.lock): {prepare:.0f} s")
        run = timed(["make", "-s"], work)
        print(f"make, cold, fresh environment: {run:.0f} s")
        env_bytes = du(work / ".venv")
        out_bytes = sum(du(work / p) for p in ("results", "book/_build", "book/systems", "book/_generated"))
        print(f"disk: environment {env_bytes / 1e9:.2f} GB, outputs {out_bytes / 1e6:.0f} MB")
        figures = {
            "prepare (fresh environment)": (prepare, "s", ""),
            "make, cold, fresh environment": (run, "s", "< 60 s"),
            "disk, environment": (env_bytes / 1e9, "GB", ""),
            "disk, outputs": (out_bytes / 1e6, "MB", ""),
        }
        if not args.no_tests:
            tests = timed(["make", "test"], work)
            print(f"make test: {tests / 60:.1f} min")
            figures["make test"] = (tests, "s", "<= 8 min")  # CI allows 20 min; the suite's own target is 8
    record(figures)


if __name__ == "__main__":
    main()
