"""Names are data: a display name (system, title, GPU, interconnect, model) is one line of printable text that
no spreadsheet reads as a formula, and every output format shows it literally (HTML and Markdown here; LaTeX
in test_paper.py, the built book in a browser in test_book.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prophet_model.cli import main
from prophet_model.outputs import formatting as fmt

from .conftest import dump_yaml, load_yaml

BAD_NAMES = [
    ("newline", "8xA100\nevil: 1", "control or format characters (U+000A)"),
    ("tab", "8x\tA100", "U+0009"),
    ("bidi-override", "8x\u202eA100", "U+202E"),
    ("formula", '=HYPERLINK("x")', "does not start with =, +, - or @"),
    ("formula-at", "@SUM(1)", "does not start with =, +, - or @"),
    ("too-long", "x" * 201, "at most 200"),
    ("blank", "   ", "is empty"),
]


def _where(study: Path, field: str) -> tuple[Path, list]:
    """(file, key path) of the name of `field` in a copy of the default study."""
    return {
        "system": (study / "_config.yml", ["systems", 0, "name"]),
        "title": (study / "_config.yml", ["study", "title"]),
        "gpu": (study / "catalog" / "gpus.yml", ["a100_sxm4_80gb", "name"]),
        "interconnect": (study / "catalog" / "interconnects.yml", ["nvlink3_pair", "name"]),
        "model": (study / "catalog" / "models.yml", ["mixtral_8x7b", "name"]),
    }[field]


@pytest.mark.parametrize("field", ["system", "title", "gpu", "interconnect", "model"])
@pytest.mark.parametrize(("case", "name", "says"), BAD_NAMES, ids=[c[0] for c in BAD_NAMES])
def test_a_bad_display_name_is_refused_naming_the_field(study_dir, capsys, field, case, name, says) -> None:
    path, keys = _where(study_dir, field)
    data = load_yaml(path)
    node = data
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = name
    dump_yaml(data, path)
    rc = main(["whatif", "--config", str(study_dir / "_config.yml"), "--system", "8xA100"])
    err = capsys.readouterr().err
    assert rc == 2
    assert says in err and f"{keys[-1]}:" in err, err
    assert path.name in err and "Traceback" not in err


def test_any_other_text_is_a_name(study_dir) -> None:
    path, keys = _where(study_dir, "gpu")
    data = load_yaml(path)
    data[keys[0]]["name"] = "A100 <b>80GB</b> & {x} $y$ `z` | #1 -- 50%"
    dump_yaml(data, path)
    assert main(["whatif", "--config", str(study_dir / "_config.yml"), "--system", "8xA100"]) == 0


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("results", "`results`"),
        ("a`b", "``a`b``"),
        ("``x", "``` ``x ```"),
        ("x`", "`` x` ``"),
        ("two\nlines", "`two lines`"),
    ],
)
def test_a_code_span_holds_any_text(text, span) -> None:
    """By hand: one backtick more than the longest run inside, padded where the text starts or ends with one."""
    assert fmt.code(text) == span


def test_markdown_escaping_leaves_no_html_or_markup() -> None:
    shown = fmt.md("<img src=x onerror=alert(1)> *em* `c` [l](u) $m$ {doc}`y` | #h")
    assert "<img" not in shown.replace("\\<img", "")
    for ch in "<>*`[]$|{}#":
        assert ch not in shown.replace("\\" + ch, "")
