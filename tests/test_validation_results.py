"""`run` writes what the measurements say under results/data/validation/ (measured.tables, outputs.files), and
the validation page, the book and the paper read those files: written deterministically, read back to the
same numbers, and the notebook's cache key follows them."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from prophet_model.measured import evidence
from prophet_model.measured.tables import tables
from prophet_model.outputs import validation_results as vr
from prophet_model.outputs import validation_views as vv
from prophet_model.outputs.files import VALIDATION_DIR, VALIDATION_FILES, VALIDATION_TABLES, write_validation
from prophet_model.study.config import load_study
from prophet_model.study.rawconfig import RawStudy
from prophet_model.study.runner import run_study
from prophet_model.workflow import pipeline

from .conftest import ROOT


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict, dict, object]:
    """The validation's tables and facts of the default study, written once into a results folder."""
    study = load_study(ROOT / "_config.yml")
    results, _ = run_study(study)
    t, f = tables(study, results.headline, None)
    out = tmp_path_factory.mktemp("results")
    write_validation(t, f, out)
    return out, t, f, (study, results)


def test_every_table_is_written_and_reads_back_to_the_same_numbers(written) -> None:
    out, t, f, _ = written
    assert sorted(p.relative_to(out).as_posix() for p in (out / VALIDATION_DIR).iterdir()) == sorted(VALIDATION_FILES)
    for stem, table in t.items():
        back = vr.read(out, stem)
        assert list(back.columns) == [str(c) for c in table.columns], stem
        for c in table.columns:
            if pd.api.types.is_float_dtype(table[c]):  # every float exactly as computed (full precision)
                assert back[c].to_numpy() == pytest.approx(table[c].to_numpy(), rel=0, abs=0, nan_ok=True), (stem, c)
    assert vr.facts(out) == json.loads(json.dumps(f))


def test_the_files_are_the_same_bytes_when_written_again(written, tmp_path) -> None:
    out, t, f, _ = written
    write_validation(t, f, tmp_path)
    for rel in VALIDATION_FILES:
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_the_writers_read_the_validated_errors_that_evidence_computes(written) -> None:
    out, _, _, (study, results) = written
    computed = evidence.validated(study)
    read = vr.validated(out)
    assert list(read) == list(computed)
    for k, v in computed.items():
        assert (read[k].median_pct, read[k].worst_pct, read[k].points) == (v.median_pct, v.worst_pct, v.points)
        assert read[k].text() == v.text()
    rows = results.headline.dropna(subset=["speedup"])
    ev = vr.claim_evidence(out, rows)
    assert list(ev.system_id) == list(rows.system_id.astype(str))
    assert list(ev.validated) == list(evidence.claim_evidence(study, rows, None).validated)


def test_a_missing_file_is_named_with_how_to_make_it(tmp_path) -> None:
    from prophet_model.errors import UserError

    with pytest.raises(UserError, match=r"data/validation/summary\.csv: not found.*prophet_model run"):
        vv.validation_summary(tmp_path)
    with pytest.raises(ValueError, match="allowed: points"):
        vr.read(tmp_path, "nonsense")


def test_the_page_reads_results_only() -> None:
    """The validation notebook imports neither the measurements' modules nor the rates (it reads results/)."""
    nb = nbformat.read(ROOT / "notebooks" / "validation.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                names += [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
                assert not [n for n in names if "prophet_model.measured" in n or "study.rates" in n], cell.source


def test_the_verdicts_limit_reaches_the_page(written) -> None:
    out = written[0]
    from prophet_model.measured.summary import VERDICT_LIMIT_PCT

    assert vv.limit_pct(out) == VERDICT_LIMIT_PCT
    table, reasons = vv.validation_summary(out)
    off = table[table["median |error| %"] > VERDICT_LIMIT_PCT]
    assert len(reasons.splitlines()) == len(off)


def _keys(config: Path, results: Path) -> dict[str, str]:
    return {j.name: j.key for j in pipeline.jobs(RawStudy.load(config), results.parent / "book", results)}


def test_a_notebook_reruns_when_a_file_it_reads_changes_and_only_then(written, tmp_path, study_dir) -> None:
    """Change nothing: no key changes. Change one file of results/data/validation/: the validation page's key
    changes, and no other notebook's (none of them reads it); the claims' evidence is read by the paper and the
    claims page, by no notebook."""
    import shutil

    out, *_ = written
    results = tmp_path / "results"
    shutil.copytree(out, results)
    config = study_dir / "_config.yml"
    before = _keys(config, results)
    assert _keys(config, results) == before
    for rel in VALIDATION_FILES:
        path = results / rel
        saved = path.read_bytes()
        path.write_bytes(saved + b"\n")
        after = _keys(config, results)
        page = set() if rel.endswith("/claim_evidence.csv") else {"validation"}
        assert {k for k in before if before[k] != after[k]} == page, rel
        path.write_bytes(saved)
    assert _keys(config, results) == before
    (results / VALIDATION_FILES[0]).unlink()  # missing: a key of its own (the notebook then names the file)
    assert {k for k, v in _keys(config, results).items() if v != before[k]} == {"validation"}


def test_every_table_has_a_description() -> None:
    assert all(isinstance(v, str) and v for v in VALIDATION_TABLES.values())
