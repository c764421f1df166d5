"""The paper's LaTeX: escaping, macro names, compilation with pdflatex, and agreement with the CSV."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from prophet_model.cli import main
from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.paper import PAPER_FILES, macro_name, tex, tex_value

from .conftest import ROOT

HOSTILE = "8×A100 & friends_v2 (50%) #1 $x ~y^z {a} \\b"


def test_tex_escapes_every_special_character() -> None:
    assert tex("a&b%c$d#e_f{g}h") == r"a\&b\%c\$d\#e\_f\{g\}h"
    assert tex("~^\\×") == r"\textasciitilde{}\textasciicircum{}\textbackslash{}$\times$"


def test_macro_names_are_letters_only() -> None:
    assert macro_name("Speedup", "8xA100") == "prophetSpeedupEightxAOneZeroZero"
    assert re.fullmatch(r"[A-Za-z]+", macro_name("X", "10×A6000 & friends_v2 (50%)"))


PREAMBLE = r"""\documentclass[twocolumn]{article}
\usepackage[T1]{fontenc}
\usepackage{lmodern}
\usepackage{booktabs}
\usepackage{array}
"""

DOC = (
    PREAMBLE
    + r"""\usepackage{graphicx}
\graphicspath{{%(figures)s/}}
\input{macros}
\begin{document}
\begin{abstract}\input{abstract}\end{abstract}
\input{section_multi_gpu}
\end{document}
"""
)


TABLE_DOC = (
    PREAMBLE
    + r"""\begin{document}
\begin{table}\centering\input{table}\end{table}
\begin{table*}\centering\input{table_wide}\end{table*}
\end{document}
"""
)


def _compile(results: Path, doc: str = DOC, name: str = "main") -> str:
    paper = results / "paper"
    (paper / f"{name}.tex").write_text(doc % {"figures": (results / "figures").as_posix()})
    for _ in range(2):
        proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
                              cwd=paper, capture_output=True, text=True, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:]
    return (paper / f"{name}.log").read_text(errors="replace")


@pytest.mark.parametrize("name", [None, HOSTILE], ids=["default", "hostile-name"])
def test_latex_compiles_without_errors_or_overfull_table(paper_of, tmp_path, name) -> None:
    assert shutil.which("pdflatex"), "pdflatex missing: run scripts/install-system-deps.sh"
    results = paper_of(name)
    assert sorted(p.name for p in (results / "paper").glob("*.tex")) == sorted(PAPER_FILES)
    log = _compile(results)
    assert "! " not in log
    if name is None:
        assert "Overfull \\hbox" not in log  # the default study's section sets cleanly
    table_log = _compile(results, TABLE_DOC, "table_only")
    assert "Overfull \\hbox" not in table_log, "table.tex is wider than a column or table_wide.tex than the text"
    if name:
        assert (
            r"8$\times$A100 \& friends\_v2 (50\%) \#1 \$x \textasciitilde{}y\textasciicircum{}z \{a\} \textbackslash{}b"
            in (results / "paper" / "table.tex").read_text()
        )
        assert (results / "SUMMARY_8xA100.md").read_text().startswith(f"# {fmt.md(name)}")  # shown literally


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d[\d,]*\.?\d*", text)


KEYED = re.compile(r"\\prophet\{([^{}]*)\}\{([^{}]*)\}")


def _keyed(macros: str) -> dict[tuple[str, str], str]:
    """{(key, metric): value} of macros.tex."""
    return {(k, m): v for k, m, v in re.findall(r"prophet@v@(.*?)@([A-Za-z0-9_]+)\\endcsname\{(.*)\}$", macros, re.M)}


def _prose(path: Path) -> str:
    """A generated file without its comment lines."""
    return "\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith("%"))


def test_abstract_and_section_are_prose_with_keyed_numbers_only(paper_of, tmp_path) -> None:
    """The abstract is four to six sentences (at most 150 words, test_paper_voice.py counts them as a reader
    does) an author can keep, and the section is paragraphs; outside the keyed commands neither holds a digit,
    every command they use is defined, and the values are the CSV's, formatted once (formatting.py)."""
    results = paper_of()
    paper = results / "paper"
    keyed = _keyed((paper / "macros.tex").read_text())
    headline = pd.read_csv(results / "data" / "headline.csv").set_index("system_id")
    abstract = _prose(paper / "abstract.tex")
    words = KEYED.sub("X", abstract).split()
    assert 30 <= len(words) <= 150, len(words)
    assert 4 <= len(re.findall(r"\.(?:\s|$)", abstract.strip())) <= 6
    section = _prose(paper / "section_multi_gpu.tex")
    for name, text in (("abstract", abstract), ("section", section)):
        uses = KEYED.findall(text)
        assert uses, name
        for use in uses:
            assert use in keyed, (name, use)
        bare = re.sub(r"\\(ref|label|input|includegraphics|begin|end)(\[[^]]*\])?\{[^}]*\}", "", KEYED.sub("", text))
        bare = re.sub(r"\b(FP8|BF16)\b", "", bare)  # names of number formats (the options each side chooses)
        assert not re.findall(r"\d", bare), (name, re.findall(r".{30}\d.{30}", bare))
    assert "\\prophetSpeedup" not in section and "\\prophetBaseline" not in section  # no legacy aliases
    assert section.count("\\paragraph{") >= 4
    for (key, metric), value in keyed.items():
        if key in headline.index and metric in ("speedup", "prophet_tokens_per_s", "baseline_usd_per_1m_tokens"):
            f = {  # a speedup with the digits that tell it from 1.00x (1.002x)
                "speedup": lambda x: fmt.apart(x, 1.0)[0],
                "prophet_tokens_per_s": fmt.tokens,
                "baseline_usd_per_1m_tokens": fmt.usd,
            }[metric]
            assert value == tex_value(f(headline.loc[key, metric])), (key, metric, value)


def test_the_finding_heads_the_section_and_reads_like_the_book(paper_of, tmp_path) -> None:
    """The section opens with the sentences of the overview's box in the paper's own voice (without the draft
    analysis's speedup and what it would take: the appendix has those), and its "Where Prophet pays" paragraph
    opens with the box's regime-map sentence: the same words, the numbers as keyed commands whose values are the
    numbers the book shows."""
    from prophet_model.outputs.finding import as_text, finding

    results = paper_of()
    paper = results / "paper"
    keyed = _keyed((paper / "macros.tex").read_text())
    data = results / "data"
    prefix = json.loads((data / "facts.json").read_text())["need_prefix"]
    tables = (
        pd.read_csv(data / "headline.csv"),
        pd.read_csv(data / "claims.csv"),
        pd.read_csv(data / "regime_map.csv"),
    )
    assert len(finding(*tables, prefix)) == 4  # the book's box: with the draft's speedup and what it would take
    own = finding(*tables, prefix, draft=False)
    assert len(own) == 3
    section = _prose(paper / "section_multi_gpu.tex")
    head, pays = section.split("\\paragraph{")[0], section.split("\\paragraph{Where Prophet pays.}")[1]

    def expand(text: str) -> str:
        text = KEYED.sub(lambda m: keyed[(m[1], m[2])], text)
        return text.replace("\\ensuremath{\\times}", "$\\times$").replace("{,}", ",")

    assert tex(as_text(own[:2], str)) in expand(head)
    assert expand(pays).lstrip().startswith(tex(as_text(own[2:], str)))


def test_tables_hold_the_csv_numbers(paper_of, tmp_path) -> None:
    results = paper_of()
    headline = pd.read_csv(results / "data" / "headline.csv")
    paper = results / "paper"
    narrow, wide = paper.joinpath("table.tex").read_text(), paper.joinpath("table_wide.tex").read_text()
    for r in headline.dropna(subset=["speedup"]).itertuples():
        one = next(ln for ln in narrow.splitlines() if ln.startswith(tex(r.system) + " &"))
        for v in (*fmt.pair_texts(r.baseline_tokens_per_s, r.prophet_tokens_per_s, "tokens"), fmt.ratio(r.speedup),
                  fmt.usd(r.prophet_usd_per_1m_tokens)):  # fmt: skip
            assert tex(v) in one, (v, one)
        line = next(ln for ln in wide.splitlines() if ln.startswith(tex(r.system) + " &"))
        for v in (*fmt.pair_texts(r.baseline_tokens_per_s, r.prophet_tokens_per_s, "tokens"), fmt.ratio(r.speedup),
                  fmt.usd(r.baseline_usd_per_1m_tokens), fmt.usd(r.prophet_usd_per_1m_tokens)):  # fmt: skip
            assert tex(v) in line, (v, line)
        cost = fmt.apart(r.baseline_usd_per_1m_tokens, r.prophet_usd_per_1m_tokens, fmt.usd)
        if cost[0] == cost[1]:  # two equal-looking costs are not a change
            assert tex(f"unchanged at {cost[0]}") in line and "rightarrow" not in line, line
        else:
            assert tex(f"{cost[0]} → {cost[1]} ({fmt.ratio(r.cost_reduction)})") in line, line
    caption = paper.joinpath("caption.tex").read_text()
    rows = headline.dropna(subset=["speedup"])
    for col in ("baseline_scaling_pct", "prophet_scaling_pct"):
        lo, hi = fmt.pct(rows[col].min()), fmt.pct(rows[col].max())
        assert tex(lo if lo == hi else f"{lo}–{hi}") in caption
    cut = rows[rows.comm_reduction > 1.005]  # a cut that reads 1.00x is none (finding.CUT_TOLERANCE)
    if cut.empty:  # no system's all-to-all is cut: the caption says so, with no number
        assert "cuts no all-to-all bytes" in caption, caption
    else:
        lo, hi = fmt.ratio(cut.comm_reduction.min()), fmt.ratio(cut.comm_reduction.max())
        assert tex(lo if lo == hi else f"{lo}–{hi}") in caption
        assert all(tex(name) in caption for name in cut.system)  # the systems it cuts on, by name
    assert "1.00$\\times$--" not in caption  # never a range from no cut


def test_paper_without_results_is_a_clear_error(study_dir, tmp_path, capsys) -> None:
    rc = main(["paper", "--config", str(study_dir / "_config.yml"), "--results", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert rc == 2 and "no manifest.json" in err and "run `make` or `python -m prophet_model run`" in err


SAMPLE = r"""\documentclass[twocolumn]{article}
\usepackage[T1]{fontenc}
\usepackage{lmodern}
\usepackage{booktabs}
\usepackage{array}
\usepackage{graphicx}
\makeatletter\def\input@path{{%(paper)s/}}\makeatother
\graphicspath{{%(figures)s/}}
\input{macros}
\begin{document}
\title{A sample paper}\author{Evaluator}\maketitle
\begin{abstract}\input{abstract}\end{abstract}
Prophet reaches \prophet{8xA100}{speedup} on \prophet{8xA100}{system} and \prophet{8xA100/EP}{speedup} with
expert parallelism, at \prophet{8xA100}{prophet_tokens_per_s} tokens/s; the study assumes
\prophet{study}{prediction_accuracy} accuracy. In math: $s = \prophet{8xA100}{speedup}$,
$t = \prophet{8xA100}{prophet_tokens_per_s}$, $c = \prophet{8xA100}{prophet_usd_per_1m_tokens}$,
$x \approx \prophet{8xA100/DP}{prophet_hit_rate}$. The old commands still work: \prophetSpeedupEightxAOneZeroZero.

\begin{table}[h]\centering
\begin{tabular}{lr}\toprule System & Speedup \\ \midrule
\prophet{2xA100}{system} & \prophet{2xA100}{speedup} \\
\prophet{8xA100}{system} & $\prophet{8xA100}{speedup}$ \\ \bottomrule
\end{tabular}\caption{Keyed values in a table.}\end{table}

\begin{table}[h]\centering\input{table}\caption{The one-column table.}\end{table}

\begin{figure}[h]\centering\includegraphics[width=\columnwidth]{cross_system_comparison}
\caption[Throughput and cost of every system]{\input{caption}}\end{figure}
\input{section_multi_gpu}
\appendix
\input{artifact_appendix}
\end{document}
"""


def test_a_sample_paper_inputs_everything_from_the_results_folder(paper_of, tmp_path) -> None:
    """A two-column article in its own folder uses the keyed macros in text, math and a table, and
    \\input's the table, caption, section and appendix from results/paper/ through \\input@path, nothing
    copied; pdflatex sets it with no error and no overfull box in the table."""
    results = paper_of()
    paper = tmp_path / "my-paper"
    paper.mkdir()
    (paper / "main.tex").write_text(SAMPLE % {"paper": (results / "paper").as_posix(),
                                              "figures": (results / "figures").as_posix()})  # fmt: skip
    for _ in range(2):
        proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=paper,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:]
    assert sorted(p.name for p in paper.iterdir() if p.suffix == ".tex") == ["main.tex"]  # nothing copied
    log = (paper / "main.log").read_text(errors="replace")
    assert "! " not in log
    assert not re.search(r"Overfull \\hbox [^\n]* in alignment", log), "a table is wider than its column"
    assert "Overfull \\hbox" not in log  # the appendix and section set cleanly in two columns too
    text = subprocess.run(["pdftotext", "main.pdf", "-"], cwd=paper, capture_output=True, text=True, check=True).stdout
    # \prophet{8xA100}{speedup} is the like-with-like headline (headline.csv), the EP key its strategy's row
    head = pd.read_csv(results / "data" / "headline.csv").set_index("system_id").loc["8xA100"]
    comp = pd.read_csv(results / "data" / "all_systems_comparison.csv")
    ep = comp[(comp.system_id == "8xA100") & (comp.strategy == "EP")].iloc[0]
    assert fmt.ratio(head.speedup) in text and fmt.ratio(ep.speedup) in text and "Artifact Appendix" in text


def test_an_unknown_key_is_a_latex_error_naming_it(paper_of, tmp_path) -> None:
    results = paper_of()
    doc = tmp_path / "bad.tex"
    path = (results / "paper").as_posix()
    doc.write_text("\\documentclass{article}\n\\makeatletter\\def\\input@path{{" + path + "/}}\\makeatother\n"
                   "\\input{macros}\n\\begin{document}\\prophet{9xB200}{speedup}\\end{document}\n")  # fmt: skip
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "bad.tex"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode != 0 and "Unknown key '9xB200' with metric 'speedup'" in proc.stdout


def test_readme_states_the_generated_finding_and_the_measured_run_times(paper_of, tmp_path) -> None:
    """The README's results open with the finding as the default study generates it, and every page quotes
    the cold-make time of benchmarks/results.json (one source)."""
    from prophet_model.outputs import timings
    from prophet_model.outputs.finding import as_text, finding

    results = paper_of()
    data = results / "data"
    text = as_text(
        finding(
            pd.read_csv(data / "headline.csv"),
            pd.read_csv(data / "claims.csv"),
            pd.read_csv(data / "regime_map.csv"),
            json.loads((data / "facts.json").read_text())["need_prefix"],
        )
    )
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- /finding -->")[0].rsplit("-->", 1)[1].strip()
    assert block == f"> {text}", "README's finding is stale: copy the overview's box (book/_generated/finding.md)"
    cold = timings.phrase(timings.COLD)
    assert cold and cold in readme
    appendix = (results / "paper" / "artifact_appendix.tex").read_text()
    assert f"{cold} for make (measured, cold)" in appendix
    assert "\\prophetRepository" in appendix and "\\prophetDOI" in appendix  # the authors' fill-ins
    assert "Tolerance:" in appendix and "Badges" in appendix


def test_a_missed_target_is_marked() -> None:
    """The timings page's `met` column by hand: 9 min misses "<= 8 min", 7.5 min meets it; a rate meets ">=";
    a figure without a target is not judged."""
    from prophet_model.outputs.timings import met

    assert met(540, "<= 8 min") == "MISSED" and met(450, "<= 8 min") == "met"
    assert met(2.5e6, ">= 1,000,000") == "met" and met(2.7, "< 2 s") == "MISSED" and met(0.15, "<= 0.4 s") == "met"
    assert met(44.5, "") == ""
