"""The paper speaks in its own voice (issue 38): the abstract and the section state what was evaluated and what it
found, with no review of the draft analysis (its estimates and their checks are in the appendix and the book's
claims page); numbers that a sentence compares print differently or are called unchanged; a gain below the model's
validated error is called so; the hypothetical model is labelled as such."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from prophet_model.outputs import formatting as fmt

from .conftest import ROOT, copy_built, load_yaml
from .test_paper import KEYED, _keyed, _prose

WITHIN = "within the model's error"


def _expand(text: str, keyed: dict[tuple[str, str], str]) -> str:
    """A paper text as a reader sees it: keyed commands replaced by their values, common LaTeX undone."""
    out = KEYED.sub(lambda m: keyed[(m[1], m[2])], text)
    for a, b in (("\\ensuremath{\\times}", "×"), ("$\\times$", "×"), ("$\\rightarrow$", "→"), ("{,}", ",")):
        out = out.replace(a, b)
    out = re.sub(r"\\([%$&#_])", r"\1", out).replace("~", " ").replace("--", "–")
    return out


def _words(text: str) -> list[str]:
    """The words of a rendered text without LaTeX commands (\\ref{...}, \\paragraph{...} and the like)."""
    return re.sub(r"\\[A-Za-z]+\*?(\[[^]]*\])?(\{[^}]*\})?", " ", text).split()


@pytest.fixture(scope="module")
def paper(built_checkout, tmp_path_factory) -> dict[str, str]:
    """The default study's paper texts as a reader sees them ({name: text}, comments dropped), with the raw
    files under `raw:<name>`, the results folder under `results` (a copy of the session's built checkout's)."""
    results = copy_built(built_checkout / "results", tmp_path_factory.mktemp("voice") / "results")
    folder = results / "paper"
    keyed = _keyed((folder / "macros.tex").read_text())
    out: dict[str, str] = {"results": str(results)}
    for name in ("abstract", "section_multi_gpu", "artifact_appendix", "caption", "table_wide"):
        out[f"raw:{name}"] = (folder / f"{name}.tex").read_text()
        out[name] = _expand(_prose(folder / f"{name}.tex"), keyed)
    return out


def test_the_abstract_is_a_real_abstract_of_at_most_150_words(paper) -> None:
    """Problem, method, result with numbers and where Prophet pays, in at most 150 words as a reader counts them
    (every keyed value expanded)."""
    words = _words(paper["abstract"])
    assert 60 <= len(words) <= 150, (len(words), paper["abstract"])
    assert 4 <= len(re.findall(r"\.(?:\s|$)", paper["abstract"].strip())) <= 6
    text = paper["abstract"]
    assert "host memory" in text and "all-to-all" in text  # the problem
    assert "measured" in text and "best" in text  # the method: measured rates, each side at its best point
    assert re.search(r"\d\.\d+×–\d\.\d+×", text)  # the result: the speedup's range
    assert "GB/s" in text  # where it pays: the regime map's threshold


def test_no_draft_in_the_abstract_and_the_section(paper) -> None:
    for name in ("abstract", "section_multi_gpu"):
        for text in (paper[f"raw:{name}"], paper[name]):  # the files, comments included, and what a reader sees
            assert "draft" not in text.lower(), (name, re.findall(r".{60}draft.{60}", text, re.I))


def test_models_are_named_and_the_hypothetical_one_is_labelled(paper) -> None:
    """The section names the model each system serves; the draft's model is labelled hypothetical wherever its
    name is shown (its catalog display name)."""
    config = load_yaml(ROOT / "_config.yml")
    models = load_yaml(ROOT / "catalog" / "models.yml")
    study_model = models[config["model"]]["name"]
    assert "hypothetical" in study_model.lower()
    setup = paper["section_multi_gpu"].split("Setup.")[1].split("Results.")[0]
    assert study_model in setup
    for s in config["systems"]:
        if s.get("model"):
            assert models[s["model"]]["name"] in setup, s["id"]


PAIRS = (
    re.compile(r"from (\$?[\d,.]+[×%]?) to (\$?[\d,.]+[×%]?)"),
    re.compile(r"(\$?[\d,.]*\d[×%]?)\s?[–→]\s?(\$?[\d,.]*\d[×%]?)"),
    re.compile(r"([\d,.]*\d) tokens/s against ([\d,.]*\d)"),
)


def _pairs(text: str) -> list[tuple[str, str]]:
    return [m.groups() for p in PAIRS for m in p.finditer(text)]


def test_no_two_equal_looking_numbers_are_called_a_change_or_a_range(paper) -> None:
    """Every "from X to Y", "X–Y", "X → Y" and "X tokens/s against Y" prints two different numbers (two equal
    ones are said "unchanged at" or "the same" instead), in every paper text and the book's claims page."""
    texts = {k: v for k, v in paper.items() if not k.startswith("raw:") and k != "results"}
    texts["claims.md"] = _claims_page(paper)
    seen = 0
    for name, text in texts.items():
        for a, b in _pairs(text):
            seen += 1
            assert a != b, (name, a, b)
    assert seen >= 5  # the check looked at real pairs


def _claims_page(paper) -> str:
    from prophet_model.outputs.book import claims
    from prophet_model.study.config import load_study

    results = Path(paper["results"])
    study = load_study(ROOT / "_config.yml")
    return claims(study, pd.read_csv(results / "data" / "headline.csv"), results)


def test_ranges_in_one_text_agree(paper) -> None:
    """A quantity stated as a range twice in one text gives the same range both times (computed from the same
    rows): the speedup's range in the abstract, the section and the appendix's checks."""
    section, abstract = paper["section_multi_gpu"], paper["abstract"]
    span = re.compile(r"speeds decode up by (\S+–\S+?)[ :]")
    ranges = span.findall(section) + span.findall(abstract) + span.findall(paper["artifact_appendix"])
    assert len(ranges) >= 3 and len(set(ranges)) == 1, ranges
    across = re.findall(r"Across the systems the speedup is (\S+–\S+)", section)
    assert across == [ranges[0]], (across, ranges)


def test_a_gain_below_the_validated_error_is_called_so(paper) -> None:
    """Every system whose gain (|speedup - 1|) is below the validated median error of the decode step is called
    "within the model's error" wherever its speedup is stated alone: the section, the appendix's claims and the
    book's claims table; the others are not."""
    results = Path(paper["results"])
    validated = pd.read_csv(results / "data" / "validation" / "validated.csv").set_index("mechanism")
    error = float(validated.loc["decode step", "median_pct"])
    headline = pd.read_csv(results / "data" / "headline.csv").dropna(subset=["speedup"])
    within = headline[[fmt.within_error(x, error) for x in headline.speedup]]
    assert not within.empty, "the default study has a gain within the model's error (2xA100's 1.3% < 3.7%)"
    section = paper["section_multi_gpu"]
    assert WITHIN in section
    claims_md = _claims_page(paper)
    for r in headline.itertuples():
        line = next(ln for ln in claims_md.splitlines() if ln.startswith(f"| {fmt.md(r.system)}:"))
        item = next(
            ln for ln in paper["artifact_appendix"].splitlines() if ln.strip().startswith(f"\\item {r.system} (")
        )
        expected = r.system_id in set(within.system_id)
        assert (WITHIN in line) == expected, line
        assert (WITHIN in item) == expected, item
        if expected:
            said = [s for s in re.split(r"(?<=\.)\s", section) if r.system in s and WITHIN in s]
            assert said, r.system


def test_equal_sides_are_unchanged_not_a_change(paper) -> None:
    """The headline system (8xA100 in the default study) where both sides choose the same point: the section
    says they reach the same throughput and the cost is unchanged, never "from $0.69 to $0.69"."""
    results = Path(paper["results"])
    headline = pd.read_csv(results / "data" / "headline.csv").set_index("system_id")
    head = load_yaml(ROOT / "_config.yml")["study"]["headline_system"]
    h = headline.loc[head]
    results_par = paper["section_multi_gpu"].split("Results.")[1]
    if h.baseline_usd_per_1m_tokens == h.prophet_usd_per_1m_tokens:
        assert f"unchanged at {fmt.usd(h.baseline_usd_per_1m_tokens)}" in results_par
    assert "unchanged at" in paper["caption"] or "for both sides" in paper["caption"]


def test_the_appendix_and_the_claims_page_keep_every_check(paper) -> None:
    """The draft analysis's estimates leave the section but not the artifact: the appendix states the draft's
    speedup against the model's range and what reaching it would take on each system where a lever reaches it,
    the claims checked for the headline system and their count; the book's claims page carries the same sentences."""
    from prophet_model.outputs.finding import as_text, draft_sentences

    results = Path(paper["results"])
    data = results / "data"
    claims_table = pd.read_csv(data / "claims.csv")
    prefix = json.loads((data / "facts.json").read_text())["need_prefix"]
    checks = draft_sentences(pd.read_csv(data / "headline.csv"), claims_table, prefix)
    assert len(checks) == 2  # the range against the draft's speedup, and what reaching it would take
    appendix = paper["raw:artifact_appendix"]
    assert "\\prophet{study}{draft_speedup}" in appendix
    need = claims_table[claims_table.claim.str.startswith(prefix)].dropna(subset=["needed"])
    for sid in need.system_id.unique():
        assert f"\\prophet{{{sid}}}{{system}}, a Prophet cache hit rate" in appendix, sid
    assert f"{claims_table.claim.nunique()} of the draft analysis's claims checked" in paper["artifact_appendix"]
    assert "The draft analysis claims a speedup of" in paper["artifact_appendix"]
    assert as_text(checks) in _claims_page(paper)


@pytest.mark.parametrize(
    ("a", "b", "show", "expected"),
    [
        (1.002, 1.0, fmt.ratio, ("1.002×", "1.00×")),  # three decimals tell it from 1.00×
        (1.0004, 1.0, fmt.ratio, ("1.0004×", "1.00×")),  # 1.000× would still read as 1.00×
        (1.0133, 1.0, fmt.ratio, ("1.01×", "1.00×")),  # two decimals already do
        (0.69466, 0.69466, fmt.usd, ("$0.69", "$0.69")),  # equal: the caller says "unchanged"
        (0.69466, 0.69480, fmt.usd, ("$0.6947", "$0.6948")),  # $0.69 both at cents
        (5726.2, 5730.4, fmt.tokens, ("5,726", "5,730")),  # 5,730 both at three figures
        (1.1993, 1.2, fmt.ratio, ("1.199×", "1.20×")),  # 1.2 exactly keeps its own text
    ],
)
def test_apart_prints_the_digits_that_tell_two_numbers_apart(a, b, show, expected) -> None:
    assert fmt.apart(a, b, show) == expected


def test_change_says_unchanged_for_equal_numbers() -> None:
    assert fmt.change(0.69466, 0.69466, "usd") == "unchanged at $0.69"
    assert fmt.change(1.0000001, 1.0000001, "ratio") == "unchanged at 1.00×"
    assert fmt.change(62.576, 61.7547, "usd") == "$62.58 → $61.75"


def test_within_error_is_a_nonzero_gain_below_the_error() -> None:
    assert fmt.within_error(1.013, 3.7)  # +1.3% < 3.7%
    assert fmt.within_error(0.99, 3.7)  # a loss of 1% too
    assert not fmt.within_error(1.07, 3.7)  # +7%: a finding
    assert not fmt.within_error(1.0, 3.7)  # no gain at all: nothing to qualify
    assert not fmt.within_error(1.013, None)  # no validated error: nothing said
