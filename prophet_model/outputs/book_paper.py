"""The book's pages about the paper's files, the measured run times and what made the pages (the paper-outputs,
getting-started and reproducibility pages): the data here, the words in templates/book/{paper,timings,
reproducibility}.md.j2 and notes.yml (paper_files)."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime
from pathlib import Path

import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.files import PAPER_FILES, read_timings
from prophet_model.outputs.templating import render_page
from prophet_model.paths import ROOT
from prophet_model.versions import package_versions

EXCERPT_LINES = 6


def excerpt(text: str, lines: int = EXCERPT_LINES) -> str:
    """The first lines of a generated file after its comment header, each cut to a readable width."""
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("%")]
    cut = [ln if len(ln) <= 110 else ln[:107] + "..." for ln in body[:lines]]
    return "\n".join(cut + (["..."] if len(body) > lines else []))


def paper_page(results_dir: Path, copies: dict[str, bytes], roles: dict[str, str]) -> str:
    """The paper page: each file with what it is for (`roles`: notes.yml's paper_files), a download link and its
    first lines; the files it offers for download are added to `copies` (path -> bytes)."""
    rows, excerpts = [], []
    for name in PAPER_FILES:
        src = results_dir / "paper" / name
        copies[f"paper/{name}"] = src.read_bytes()
        text = src.read_text(encoding="utf-8")
        rows.append(
            {
                "file": f"{{download}}`{name} </_generated/paper/{name}>`",
                "what it holds": fmt.md(roles.get(name, "")),
                "lines": str(len(text.splitlines())),
            }
        )
        excerpts.append((name, excerpt(text)))
    pdfs = sorted((results_dir / "figures").glob("*.pdf"))
    for pdf in pdfs:
        copies[f"site/figures/{pdf.name}"] = pdf.read_bytes()  # also served at figures/ (html_extra_path)
    return render_page("paper", files=pd.DataFrame(rows), excerpts=excerpts, pdfs=[p.name for p in pdfs])


def timings_page(bench_file: Path) -> str:
    """The measured run times (benchmarks/results.json, the one source the README and the appendix quote)."""
    from prophet_model.outputs import timings

    if not bench_file.is_file():
        return render_page("timings", rows=None)
    data = timings.load(bench_file)
    rows = [
        {
            "measure": k,
            "value": f"{fmt.sig(v['value'])} {v['unit']}",
            "target": v.get("target", ""),
            "met": timings.met(float(v["value"]), v.get("target", "")),
        }
        for k, v in data["figures"].items()
    ]
    return render_page(
        "timings",
        rows=pd.DataFrame(rows),
        cold=timings.phrase(timings.COLD, bench_file),
        machine=data["machine"],
        date=data["date"],
    )


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def reproducibility(config_hash: str, results_dir: Path, book_dir: Path) -> str:
    """What made the pages: the git commit (and whether it had uncommitted changes), the configuration's hash, the
    platform, the packages, the last model run's duration (its log's first and last time stamps) and each
    notebook's last papermill time."""
    logs = sorted((results_dir / "logs").glob("multi_gpu_analysis_*.log"))
    seconds = None
    if logs:
        lines = logs[-1].read_text(encoding="utf-8").splitlines()
        t0, t1 = (datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") for line in (lines[0], lines[-1]))
        seconds = (t1 - t0).total_seconds()
    return render_page(
        "reproducibility",
        commit=_git("rev-parse", "HEAD"),
        dirty=bool(_git("status", "--porcelain", "--untracked-files=no")),
        config_hash=config_hash,
        platform=platform.platform(),
        packages=package_versions(),
        run_log=logs[-1].name if logs else None,
        run_seconds=seconds,
        notebooks=read_timings(book_dir / ".pipeline-cache" / "timings.json"),
    )
