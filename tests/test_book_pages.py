"""The book's generated pages are templates (templates/book/*.md.j2) filled from the results folder, with the
data they show in templates/book/notes.yml: every worked-example term is shown, and names stay escaped."""

from __future__ import annotations

from prophet_model.outputs import book
from prophet_model.outputs.templating import render_page
from prophet_model.study.config import load_study
from prophet_model.study.worked_example import worked_example

from .conftest import ROOT


def test_the_worked_example_shows_every_term_the_model_computes_once() -> None:
    """notes.yml's rows name each term of study.worked_example exactly once (a term added to the model
    without a row, or a row naming no term, fails here rather than vanishing from the page)."""
    _, _, terms = worked_example(load_study(ROOT / "_config.yml"))
    shown = [row["term"] for row in book.notes()["worked_example"]]
    assert sorted(shown) == sorted(terms[0]) and len(set(shown)) == len(shown)


def test_a_name_from_the_config_is_escaped_on_the_page() -> None:
    """Markdown is not autoescaped: the templates escape names through the md filter (fmt.md)."""
    import pandas as pd

    name = "8x*A100* [link](x) `tick`"
    text = render_page(
        "claims",
        head={
            "system": name,
            "prophet_point": "p",
            "baseline_point": "b",
            "prophet_tokens_per_s": 1.0,
            "baseline_tokens_per_s": 1.0,
            "speedup": 1.0,
            "baseline_usd_per_1m_tokens": 1.0,
            "prophet_usd_per_1m_tokens": 1.0,
            "tokens": ("1", "1"),  # the pair as book.claims prints it (formatting.apart)
            "speedup_text": "1.00×",
            "cost": ("$1.00", "$1.00"),
        },
        rows=pd.DataFrame({"a": [1]}),
        placement="x",
        evidence=None,
        seed_claims=[name],
        needs=None,
        target=None,
    )
    assert book.fmt.md(name) != name and name not in text and book.fmt.md(name) in text


def test_labels_and_units_come_from_notes() -> None:
    assert book.label_of("batch_size_per_gpu") == "Batch size per GPU"
    assert (
        book.unit_of("memory_bandwidth_gbps") == "GB/s" and book.label_of("memory_bandwidth_gbps") == "Memory bandwidth"
    )
