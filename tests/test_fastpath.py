"""make's fast paths (workflow/fastpath.py) answer "up to date" only when the full command would: any
change of what a step depends on sends it to the full path (None). Correctness only; the speed is
measured by `make bench`."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from prophet_model.cli import _parser
from prophet_model.outputs.files import SENSITIVITY_FILES, UNCERTAINTY_FILE
from prophet_model.study.config import load_study
from prophet_model.study.rawconfig import RawStudy
from prophet_model.workflow import fastpath, pipeline
from prophet_model.workflow.bookdir import BookFolder
from prophet_model.workflow.fastpath import book_inputs, try_fast, write_pages_stamp
from prophet_model.workflow.procs import release_locks
from prophet_model.workflow.results import JOURNAL
from prophet_model.workflow.site import _digest_tree
from tests.conftest import copy_built, dump_yaml, load_yaml


def fast(*argv: str) -> int | None:
    try:
        return try_fast(_parser().parse_args(list(argv)))
    finally:
        release_locks()


@pytest.fixture
def study(built_checkout: Path, tmp_path: Path) -> Path:
    """A study copy with a full run and the paper: config, catalogs and results of the session's built checkout."""
    where = tmp_path / "s"
    where.mkdir()
    shutil.copy2(built_checkout / "_config.yml", where / "_config.yml")
    copy_built(built_checkout / "catalog", where / "catalog")
    copy_built(built_checkout / "results", where / "results")
    return where


def args(study: Path, command: str, *extra: str) -> list[str]:
    return [command, "--config", str(study / "_config.yml"), "--results", str(study / "results"), *extra]


def test_the_raw_configuration_hash_is_the_studys(study_dir: Path) -> None:
    assert RawStudy.load(study_dir / "_config.yml").config_hash == load_study(study_dir / "_config.yml").config_hash
    trace = study_dir / "trace.csv"
    trace.write_text("layer,expert,count\n" + "".join(f"{i // 128},{i % 128},{1 + i % 7}\n" for i in range(128 * 32)))
    raw = load_yaml(study_dir / "_config.yml")
    raw["routing"] |= {"distribution": "trace", "trace_file": "trace.csv"}
    dump_yaml(raw, study_dir / "_config.yml")
    rs = RawStudy.load(study_dir / "_config.yml")
    assert rs.config_hash == load_study(study_dir / "_config.yml").config_hash
    trace.write_text(trace.read_text().replace("\n0,0,1\n", "\n0,0,2\n"))
    assert RawStudy.load(study_dir / "_config.yml").config_hash != rs.config_hash


def test_run_and_paper_are_up_to_date_after_a_run(study: Path, capsys, monkeypatch) -> None:
    assert fast(*args(study, "run", "--if-stale")) == 0
    assert fast(*args(study, "paper", "--if-stale")) == 0
    assert "results up to date" in capsys.readouterr().err
    assert fast(*args(study, "run")) is None  # not make's form: the full command
    assert fast(*args(study, "run", "--if-stale", "--no-figures")) is None
    assert fast(*args(study, "paper")) is None
    monkeypatch.setenv("PROPHET_NO_FAST_PATH", "1")
    assert fast(*args(study, "run", "--if-stale")) is None


@pytest.mark.parametrize("command", ["run", "paper"])
@pytest.mark.parametrize(
    "change",
    ["catalog value", "config value", "results file", "paper file", "journal", "source", "removed system",
     "missing file", "environment"],
)  # fmt: skip
def test_any_change_sends_run_and_paper_to_the_full_path(study: Path, command: str, change: str, monkeypatch) -> None:
    cfg = study / "_config.yml"
    if change == "catalog value":
        path = study / "catalog" / "gpus.yml"
        path.write_text(path.read_text().replace("price_usd_per_gpu_hour: 1.79", "price_usd_per_gpu_hour: 1.8", 1))
    elif change == "config value":
        raw = load_yaml(cfg)
        raw["workload"]["batch_size_per_gpu"] += 1
        dump_yaml(raw, cfg)
    elif change == "results file":
        p = study / "results" / "data" / "all_systems_comparison.csv"
        p.write_text(p.read_text() + "\n")
    elif change == "paper file":
        p = study / "results" / "paper" / "macros.tex"
        p.write_text(p.read_text() + "%\n")
    elif change == "journal":
        (study / "results" / JOURNAL).write_text(json.dumps({"pid": 1 << 22}))
    elif change == "source":  # the package's source is part of the inputs hash
        monkeypatch.setattr(pipeline, "source_digest", lambda root=None: b"another source")
    elif change == "removed system":
        raw = load_yaml(cfg)
        raw["systems"] = [s for s in raw["systems"] if s["id"] != "2xA100"]
        dump_yaml(raw, cfg)
    elif change == "missing file":
        (study / "results" / ("paper/table.tex" if command == "paper" else "figures/scaling.png")).unlink()
    elif change == "environment":
        stamp = study / "venv" / ".installed"
        stamp.parent.mkdir()
        stamp.write_text("")
        monkeypatch.setattr(fastpath.sys, "prefix", str(stamp.parent))
    if (change in ("paper file",) and command == "run") or (change == "results file" and command == "paper"):
        pytest.skip("the other step's file")  # (run ignores the paper; paper refuses a changed run file)
    assert fast(*args(study, command, "--if-stale")) is None


def _fake_pipeline(study: Path) -> tuple[Path, list]:
    """Executed notebooks as the pipeline leaves them (fake outputs, real keys)."""
    book = study / "book"
    rs = RawStudy.load(study / "_config.yml")
    job_list = pipeline.jobs(rs, book, study / "results")
    BookFolder(book).claim([j.output.relative_to(book).as_posix() for j in job_list])
    for j in job_list:
        j.output.parent.mkdir(parents=True, exist_ok=True)
        j.output.write_text("{}")
        (book / ".pipeline-cache").mkdir(exist_ok=True)
        (book / ".pipeline-cache" / (j.output.name + ".key")).write_text(j.key + "\n")
    (book / ".pipeline-cache" / "timings.json").write_text(json.dumps({"x": 1.0}, indent=1, sort_keys=True) + "\n")
    release_locks()
    return book, job_list


def test_pipeline_is_up_to_date_only_with_every_key(study: Path, capsys) -> None:
    book, job_list = _fake_pipeline(study)
    assert fast(*args(study, "pipeline", "--book", str(book))) == 0
    assert capsys.readouterr().err.count("cached") == len(job_list)
    assert fast(*args(study, "pipeline", "--book", str(book), "--force")) is None
    for text in ('{"x": 1.0}', '{"x": ', '{\n "x": "fast"\n}\n'):  # the full path would rewrite each
        (book / ".pipeline-cache" / "timings.json").write_text(text)
        assert fast(*args(study, "pipeline", "--book", str(book))) is None
    (book / ".pipeline-cache" / "timings.json").unlink()
    assert fast(*args(study, "pipeline", "--book", str(book))) is None
    _fake_pipeline(study)
    (book / ".pipeline-cache" / (job_list[0].output.name + ".key")).write_text("other\n")
    assert fast(*args(study, "pipeline", "--book", str(book))) is None
    _fake_pipeline(study)
    BookFolder(book).claim(["systems/0001-gone.ipynb"])  # a removed system's notebook, the artifact's
    release_locks()
    (book / "systems" / "0001-gone.ipynb").write_text("{}")
    assert fast(*args(study, "pipeline", "--book", str(book))) is None


def _keys(study: Path) -> dict[str, str]:
    return {j.name: j.key for j in pipeline.jobs(RawStudy.load(study / "_config.yml"), study / "b", study / "r")}


def test_notebook_keys_follow_what_each_notebook_reads(study: Path) -> None:
    before = _keys(study)
    assert _keys(study) == before
    cfg = study / "_config.yml"
    raw = load_yaml(cfg)
    one = raw["systems"][0]
    raw["systems"][0]["name"] = one["name"] + " (renamed)"
    dump_yaml(raw, cfg)
    after = _keys(study)
    changed = {k for k in before if before[k] != after[k]}
    # the cross-system and sensitivity pages read the system's name from results/ (keyed by those files below)
    assert changed == {f"system {one['id']}"}
    # a value of the GPU catalog entry one system uses
    gpus = load_yaml(study / "catalog" / "gpus.yml")
    gpus[one["gpu"]]["memory_bandwidth_gbps"] = gpus[one["gpu"]]["memory_bandwidth_gbps"] + 1
    dump_yaml(gpus, study / "catalog" / "gpus.yml")
    again = _keys(study)
    assert again[f"system {one['id']}"] != after[f"system {one['id']}"] and again["validation"] != after["validation"]
    # a study-wide value: every notebook
    raw["routing"]["temporal_reuse"] = 0.123
    dump_yaml(raw, cfg)
    assert all(v != again[k] for k, v in _keys(study).items())


def _fake_book(study: Path) -> Path:
    """A book whose site was built from these inputs (the stamp `book --build` writes)."""
    book, _ = _fake_pipeline(study)
    BookFolder(book).claim(["_build", "_generated/claims.md"])
    release_locks()
    (book / "_generated").mkdir()
    (book / "_generated" / "claims.md").write_text("claims\n")
    (book / "_build" / "html").mkdir(parents=True)
    (book / "_build" / "html" / "index.html").write_text("<html/>")
    digest, docs = _digest_tree(book)
    (book / "_build" / ".sources.json").write_text(json.dumps({"digest": digest, "documents": docs}))
    write_pages_stamp(book, book_inputs(RawStudy.load(study / "_config.yml"), study / "results", book), 7)
    return book


@pytest.mark.parametrize(
    "change", ["none", "another lock holder", "generated page", "book page", "results log", "a PDF of the user's",
               "timings", "no stamp", "no index", "results file", "validation results file",
               "sensitivity results file"],
)  # fmt: skip
def test_book_is_up_to_date_only_when_nothing_it_reads_changed(study: Path, change: str, capsys) -> None:
    book = _fake_book(study)
    if change == "generated page":
        (book / "_generated" / "claims.md").write_text("edited\n")
    elif change == "book page":
        (book / "intro.md").write_text("# Intro\n")
    elif change == "results log":
        (study / "results" / "logs" / "multi_gpu_analysis_29991231_000000.log").write_text("x\n")
    elif change == "a PDF of the user's":
        (study / "results" / "figures" / "mine.pdf").write_bytes(b"%PDF")
    elif change == "timings":
        (book / ".pipeline-cache" / "timings.json").write_text("{}\n")
    elif change == "no stamp":
        (book / fastpath.PAGES_STAMP).unlink()
    elif change == "no index":
        (book / "_build" / "html" / "index.html").unlink()
    elif change in ("results file", "validation results file", "sensitivity results file"):
        rel = {"results file": "claims", "validation results file": "validation/summary"}
        p = study / "results" / "data" / f"{rel.get(change, 'sensitivity/maps')}.csv"
        p.write_text(p.read_text() + "\n")
    elif change == "another lock holder":  # the full build held the lock in another process (make's own steps)
        (study / "results" / ".lock").write_text("book --build (pid 12345)\n")  # the lock names its holder
        write_pages_stamp(book, book_inputs(RawStudy.load(study / "_config.yml"), study / "results", book), 7)
    code = fast(*args(study, "book", "--book", str(book), "--build"))
    if change in ("none", "another lock holder"):
        assert code == 0
        assert "wrote 7 generated pages" in capsys.readouterr().out
    else:
        assert code is None
    assert fast(*args(study, "book", "--book", str(book))) is None  # without --build: the full command


def _touch_rows(path: Path, column: str | None = None, value: str | None = None) -> None:
    """Change the rows of a CSV whose `column` is `value` (every row when no column is named): each one's last cell."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    i = rows[0].index(column) if column else None
    for r in rows[1:]:
        if i is None or r[i] == value:
            r[-1] += " (edited)"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def test_notebook_keys_follow_the_results_each_page_reads(study: Path) -> None:
    """A page's key changes with the rows of results/ it shows and only with them: a system page with its own
    rows, its GPU's rates and the single-GPU claims; the cross-system page with the study-wide tables; the
    sensitivity page with data/sensitivity/ and the intervals."""
    results = study / "results"
    rs = RawStudy.load(study / "_config.yml")

    def keys() -> dict[str, str]:
        return {j.name: j.key for j in pipeline.jobs(rs, study / "b", results)}

    def changed_by(rel: str, column: str | None = None, value: str | None = None) -> set[str]:
        saved = (results / rel).read_bytes()
        before = keys()
        _touch_rows(results / rel, column, value)
        after = keys()
        (results / rel).write_bytes(saved)
        assert keys() == before
        return {k for k in before if before[k] != after[k]}

    systems = [e["id"] for e in rs.raw["systems"]]
    sid = systems[0]
    pages = {f"system {s}" for s in systems}
    assert changed_by("data/all_systems_comparison.csv", "system_id", sid) == {f"system {sid}", "cross-system"}
    assert changed_by("data/sanity_checks.csv", "system_id", sid) == {f"system {sid}", "cross-system"}
    assert changed_by(f"data/results_{sid}.csv") == {f"system {sid}"}
    assert changed_by("data/headline.csv") == pages | {"cross-system"}  # a system page says what moves its speedup
    assert changed_by("data/headline.csv", "system_id", sid) == {f"system {sid}", "cross-system"}
    assert changed_by("data/sensitivity/tornado.csv", "system_id", sid) == {f"system {sid}", "sensitivity"}
    single = json.loads((results / "data" / "facts.json").read_text())["single_gpu_id"]
    assert changed_by("data/claims.csv", "system_id", single) == pages  # every system page shows them
    with (results / "data" / "claims.csv").open(encoding="utf-8") as f:
        other = next(r["system_id"] for r in csv.DictReader(f) if r["system_id"] != single)
    assert changed_by("data/claims.csv", "system_id", other) == set()  # a system's claims: on no notebook page
    gpu = rs.entry("gpus", rs.raw["systems"][0]["gpu"])["name"]
    same_gpu = {f"system {e['id']}" for e in rs.raw["systems"] if rs.entry("gpus", e["gpu"])["name"] == gpu}
    assert changed_by("data/hardware_rates.csv", "gpu", gpu) == same_gpu
    for rel in (*SENSITIVITY_FILES, UNCERTAINTY_FILE):  # tornado.csv: also every system page's "what moves"
        assert changed_by(rel) == {"sensitivity"} | (pages if rel.endswith("tornado.csv") else set()), rel
