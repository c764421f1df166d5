"""One result column's declaration, the type both registries use: study/columns.py (the study's tables and the
one FILES map) and study/columns_measured.py (the validation's tables), which columns.py imports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column. `format`: the name of its formatter, a function of outputs/formatting.py or latex.py's
    `whole` / `share_pct` ("": text, or a number shown as written). `text`: it holds words, not numbers.
    `expectation`: an expectation in _config.yml may check it (a metric of the comparison). `pattern`: the
    name is an fnmatch pattern standing for one column per value the data holds (a buffer size, a copy
    kernel's shape), in the order the table has them."""

    name: str
    unit: str
    label: str
    format: str = ""
    text: bool = False
    expectation: bool = False
    pattern: bool = False


def text(name: str, label: str) -> Column:
    """A column of words."""
    return Column(name, "", label, text=True)
