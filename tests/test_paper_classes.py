"""The generated paper under the publishers' classes: an author's document in acmart (sigconf) and in
IEEEtran (conference) \\input's the abstract, tables, caption, section and appendix from results/paper/, and
pdflatex sets it with no error and no overfull box. The classes come from Debian's texlive-publishers (with
texlive-latex-extra, texlive-plain-generic and, for acmart's Libertine, Inconsolata and newtxmath fonts,
texlive-fonts-extra), which scripts/install-system-deps.sh installs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_paper import HOSTILE

# Each class's preamble and title block as its template has them; the body below is the same for both but
# for the appendix's start: IEEEtran's \appendix drops the next \section's title, its \appendices keeps it.
APPENDIX = {"acmart-sigconf": r"\appendix", "IEEEtran-conference": r"\appendices"}
CLASSES = {
    "acmart-sigconf": r"""\documentclass[sigconf]{acmart}
\usepackage{array}
%(preamble)s
\begin{document}
\title{A sample paper}
\author{Evaluator}
\affiliation{\institution{A university}\city{A city}\country{A country}}
\begin{abstract}\input{abstract}\end{abstract}
\maketitle
""",
    "IEEEtran-conference": r"""\documentclass[conference]{IEEEtran}
\usepackage[T1]{fontenc}
\usepackage{booktabs}
\usepackage{array}
\usepackage{graphicx}
%(preamble)s
\begin{document}
\title{A sample paper}
\author{\IEEEauthorblockN{Evaluator}\IEEEauthorblockA{A university}}
\maketitle
\begin{abstract}\input{abstract}\end{abstract}
""",
}

PREAMBLE = r"""\makeatletter\def\input@path{{%(paper)s/}}\makeatother
\graphicspath{{%(figures)s/}}
%(fill_in)s\input{macros}"""

BODY = r"""\begin{table}[t]\centering\input{table}\caption{The one-column table.}\end{table}
\begin{figure}[t]\centering\includegraphics[width=\columnwidth]{cross_system_comparison}
\caption[Throughput and cost of every system]{\input{caption}}\end{figure}
\input{section_multi_gpu}
%(appendix)s
\input{artifact_appendix}
\end{document}
"""

FILLED = {"Repository": "https://example.org/prophet", "DOI": "10.5281/zenodo.1234567"}


def _document(cls: str, results: Path, fill_in: bool = False) -> str:
    """An author's main.tex in class `cls` that uses the paper's files where `make` writes them; with
    `fill_in`, the authors' repository URL and DOI defined before the appendix."""
    lines = "".join(f"\\newcommand{{\\prophet{k}}}{{\\texttt{{{v}}}}}\n" for k, v in FILLED.items())
    preamble = PREAMBLE % {
        "paper": (results / "paper").as_posix(),
        "figures": (results / "figures").as_posix(),
        "fill_in": lines if fill_in else "",
    }
    return CLASSES[cls].replace("%(preamble)s", preamble) + BODY.replace("%(appendix)s", APPENDIX[cls])


def _installed(cls: str) -> None:
    """Skips when the class's file is missing (CI installs it: scripts/install-system-deps.sh)."""
    assert shutil.which("pdflatex"), "pdflatex missing: run scripts/install-system-deps.sh"
    name = cls.split("-")[0] + ".cls"
    found = subprocess.run(["kpsewhich", name], capture_output=True, text=True, check=False).stdout.strip()
    if not found:
        pytest.skip(f"{name} not installed: scripts/install-system-deps.sh installs texlive-publishers")


def _compile(folder: Path, doc: str) -> tuple[str, str]:
    """(log, text of the PDF) of `doc` set twice by pdflatex in `folder` (the second pass resolves the
    references); a LaTeX error fails with the log's tail."""
    folder.mkdir()
    (folder / "main.tex").write_text(doc)
    for _ in range(2):
        proc = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-3000:]
    text = subprocess.run(["pdftotext", "main.pdf", "-"], cwd=folder, capture_output=True, text=True, check=True)
    return (folder / "main.log").read_text(errors="replace"), text.stdout


@pytest.mark.parametrize("cls", CLASSES)
def test_the_paper_sets_under_the_class_without_error_or_overfull_box(paper_of, tmp_path, cls) -> None:
    """The default study's paper in the class's two columns: no error, no overfull box (tables, section
    and appendix all fit), every part present in the PDF, the authors' fill-ins shown as reminders."""
    _installed(cls)
    results = paper_of()
    log, text = _compile(tmp_path / "doc", _document(cls, results))
    assert not re.findall(r"^! .*", log, re.M), re.findall(r"^! .*", log, re.M)
    overfull = re.findall(r"^Overfull \\hbox.*", log, re.M)
    assert not overfull, overfull
    flat = _flat(text)  # headings may be in small capitals, letter-spaced
    for part in ("Multi-GPU Scalability", "Artifact Appendix", "The one-column table"):
        assert _flat(part) in flat, part
    assert _flat("[authors: the public repository's URL]") in flat and _flat("[authors: the archive") in flat


def test_the_authors_fill_in_where_the_artifact_is_published(paper_of, tmp_path) -> None:
    """The appendix does not claim availability: where the artifact is published (repository URL, DOI) is a
    command the authors define before \\input{artifact_appendix}, and what they define is what the PDF shows."""
    results = paper_of()
    appendix = _prose_lines(results / "paper" / "artifact_appendix.tex")
    available = next(ln for ln in appendix if "Publicly available?" in ln)
    assert "Yes" not in available and "\\prophetRepository" in available and "\\prophetDOI" in available
    for name in FILLED:
        assert any(ln.startswith(f"\\providecommand{{\\prophet{name}}}") for ln in appendix), name
    _installed("acmart-sigconf")
    log, text = _compile(tmp_path / "doc", _document("acmart-sigconf", results, fill_in=True))
    assert "[authors:" not in text and all(_flat(v) in _flat(text) for v in FILLED.values())
    assert not re.findall(r"^(! |Overfull \\hbox).*", log, re.M)


def _flat(text: str) -> str:
    """Text without white space, in lower case, with typographic apostrophes plain."""
    return "".join(text.split()).lower().replace("\u2019", "'")


def _prose_lines(path: Path) -> list[str]:
    """A generated file's lines without its comments."""
    return [ln.strip() for ln in path.read_text().splitlines() if not ln.startswith("%")]


def test_hostile_names_compile_under_every_class(paper_of, tmp_path) -> None:
    """System, model and GPU names with every LaTeX special character set without error in both classes
    (acmart loads hyperref, whose bookmarks and PDF strings see the same text)."""
    for cls in CLASSES:
        _installed(cls)
    results = paper_of(HOSTILE)
    for cls in CLASSES:
        log, text = _compile(tmp_path / cls, _document(cls, results))
        assert not re.findall(r"^! .*", log, re.M), (cls, re.findall(r"^! .*", log, re.M))
        assert "friends_v2" in text, cls
