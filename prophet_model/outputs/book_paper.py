"""The book's pages about the paper's files and the measured run times (the paper-outputs and
getting-started pages)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.files import PAPER_FILES
from prophet_model.outputs.formatting import dropdown, md_table

PAPER_ROLES = {
    "abstract.tex": "two sentences for the abstract",
    "section_multi_gpu.tex": "the multi-GPU section: the finding, then setup, result, where the time goes, sensitivity "
    "and validation, every number a keyed command; inputs table_wide.tex and the key figure",
    "table.tex": "the results table for one column (\\begin{table})",
    "table_wide.tex": "the same table with each side's configuration, for both columns (\\begin{table*})",
    "caption.tex": "the key figure's caption",
    "macros.tex": "every number as \\prophet{KEY}{METRIC} (input once in the preamble)",
    "artifact_appendix.tex": "the artifact-evaluation appendix",
}


EXCERPT_LINES = 6


def excerpt(text: str, lines: int = EXCERPT_LINES) -> str:
    """The first lines of a generated file after its comment header, each cut to a readable width."""
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("%")]
    cut = [ln if len(ln) <= 110 else ln[:107] + "..." for ln in body[:lines]]
    return "\n".join(cut + (["..."] if len(body) > lines else []))


def paper_page(results_dir: Path, copies: dict[str, bytes]) -> str:
    """The paper page: each file with what it is for, a download link and its first lines; the files it
    offers for download are added to `copies` (path -> bytes)."""
    rows, parts = [], []
    for name in PAPER_FILES:
        src = results_dir / "paper" / name
        copies[f"paper/{name}"] = src.read_bytes()
        text = src.read_text(encoding="utf-8")
        rows.append(
            {
                "file": f"{{download}}`{name} </_generated/paper/{name}>`",
                "what it holds": fmt.md(PAPER_ROLES.get(name, "")),
                "lines": str(len(text.splitlines())),
            }
        )
        parts.append(dropdown(f"{name}: the first lines", f"```latex\n{excerpt(text)}\n```"))
    out = ["## Files (`results/paper/`)\n", md_table(pd.DataFrame(rows)), *parts]
    out.append("\n## Figures (PDF, fonts embedded as TrueType)\n")
    for pdf in sorted((results_dir / "figures").glob("*.pdf")):
        copies[f"site/figures/{pdf.name}"] = pdf.read_bytes()  # also served at figures/ (html_extra_path)
        out.append(f"- {{download}}`{pdf.name} </_generated/site/figures/{pdf.name}>`")
    return "\n".join(out) + "\n"


def timings_page(bench_file: Path) -> str:
    """The measured run times (benchmarks/results.json, the one source the README and the appendix quote)."""
    from prophet_model.outputs import timings

    if not bench_file.is_file():
        return "No benchmark data yet: run `make bench`.\n"
    data = timings.load(bench_file)
    rows = [
        {"measure": k, "value": f"{fmt.sig(v['value'])} {v['unit']}", "target": v.get("target", "")}
        for k, v in data["figures"].items()
    ]
    cold = timings.phrase(timings.COLD, bench_file)
    head = f"A cold `make` takes {cold}. " if cold else ""
    return (
        f"{head}Measured by `make bench` and `benchmarks/bench_prepare.py` (a fresh environment, `make test`, disk) "
        f"on {data['machine']} ({data['date']}); `benchmarks/results.json` holds these figures.\n\n"
        + md_table(pd.DataFrame(rows))
    )
