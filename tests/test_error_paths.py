"""Every command's error path ends in a true, short message (never "internal error"), through the real
CLI: renamed systems, unwritable --out, hand-replaced or truncated CSVs, a failed book build, an ASCII
console, a closed pipe, and hints that work when followed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prophet_model.cli import main

from .conftest import ROOT, copy_built

SWEEP = ["sweep", "--system", "8xA100", "--vary", "prophet.prediction_accuracy=0.5,0.9"]


def _cli(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prophet_model", *args], cwd=cwd, capture_output=True,
                          env={**os.environ, **(env or {})}, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def results(plain_results, tmp_path_factory) -> Path:
    """A default run (no figures: a copy of the session's) with its paper, to break copies of."""
    out = copy_built(plain_results, tmp_path_factory.mktemp("res") / "r")
    assert main(["paper", "--results", str(out)]) == 0
    return out


@pytest.fixture
def broken(results, tmp_path) -> Path:
    copy = tmp_path / "r"
    shutil.copytree(results, copy)
    return copy


# ---------------------------------------------------------------------------------------------- whatif


@pytest.mark.parametrize("new_id", ["foo", "9xB200", "8xA100x"])
def test_whatif_renaming_the_system_asked_about_is_refused(new_id, capsys) -> None:
    assert main(["whatif", "--system", "8xA100", "--set", f"systems.8xA100.id={new_id}"]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and "cannot rename the system it asks about" in err and "allowed:" in err


# ---------------------------------------------------------------------------------------------- sweep --out


def test_sweep_out_where_nothing_can_be_written(capsys) -> None:
    assert main([*SWEEP, "--out", "/proc/x.csv"]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and "--out /proc/x.csv: cannot write there" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_sweep_out_in_a_read_only_folder(tmp_path, capsys) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main([*SWEEP, "--out", str(ro / "x.csv")]) == 2
        assert "cannot write there" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("force", [False, True])
def test_sweep_out_a_folder_is_never_replaced(tmp_path, capsys, force) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert main([*SWEEP, "--out", str(folder), *(["--force"] if force else [])]) == 2
    err = capsys.readouterr().err
    assert "is a folder (never replaced, not even with --force)" in err
    assert "or --force to replace it" not in err  # the old hint that --force then refused
    assert (folder / "keep.txt").read_text() == "mine"


def test_sweep_out_missing_folder_is_named(tmp_path, capsys) -> None:
    assert main([*SWEEP, "--out", str(tmp_path / "no" / "x.csv")]) == 2
    assert "no such folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- broken CSVs


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)].rstrip(b"\n") + b"9")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: _truncate(p),
        lambda p: p.write_text("system_id,x\n8xA100,1\n"),
        lambda p: p.write_text(""),
        lambda p: p.write_bytes(b"\xff\xfe\x00garbage\n"),
    ],
    ids=["truncated", "other-columns", "empty", "binary"],
)
def test_paper_names_a_broken_comparison_csv(broken, capsys, mutate) -> None:
    path = broken / "data" / "all_systems_comparison.csv"
    mutate(path)
    assert main(["paper", "--results", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and path.relative_to(broken).as_posix() in err
    assert f"python -m prophet_model run --results {broken}" in err


@pytest.mark.parametrize("name", ["all_systems_comparison.csv", "sanity_checks.csv", "claims.csv"])
def test_analyze_names_a_truncated_csv(broken, capsys, name) -> None:
    path = broken / "data" / name
    _truncate(path)
    assert main(["analyze", "--results", str(broken)]) == 1
    out = capsys.readouterr().out
    assert f"UNREADABLE: {path} is truncated" in out and "python -m prophet_model run" in out


def test_analyze_names_a_hand_replaced_checks_csv(broken, capsys) -> None:
    (broken / "data" / "sanity_checks.csv").write_text("a,b\n1,2\n")
    assert main(["analyze", "--results", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "sanity_checks.csv lacks the columns" in out


def test_paper_names_a_broken_claims_csv(broken, capsys) -> None:
    (broken / "data" / "claims.csv").write_text("claim,model\nx,notanumber\n")
    assert main(["paper", "--results", str(broken)]) == 2
    err = capsys.readouterr().err  # the manifest's sha256 catches the hand edit before the CSV is parsed
    assert "data/claims.csv" in err and "changed since the artifact wrote" in err and "internal error" not in err


# ---------------------------------------------------------------------------------------------- hints that work


def test_a_corrupt_manifest_hint_works_when_followed(broken, capsys) -> None:
    manifest = broken / "manifest.json"
    manifest.write_text("{bad")
    assert main(["run", "--results", str(broken), "--quiet", "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "move the whole folder away" in err and "rerun `make`" not in err
    broken.rename(broken.with_name(broken.name + ".old"))  # what the hint says
    assert main(["run", "--results", str(broken), "--quiet", "--no-figures"]) == 0


def test_a_missing_paper_file_suggests_the_paper_command(broken, tmp_path, capsys) -> None:
    shutil.rmtree(broken / "paper")
    assert main(["book", "--results", str(broken), "--book", str(tmp_path / "book")]) == 2
    err = capsys.readouterr().err
    assert "python -m prophet_model paper" in err and "prophet_model run" not in err


@pytest.mark.parametrize("command", [["analyze", "--results"], ["compare", "x"]])
def test_internal_error_hint_only_where_log_level_is_accepted(command, monkeypatch, capsys, tmp_path) -> None:
    import prophet_model.commands.analyze
    import prophet_model.commands.compare

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(prophet_model.commands.analyze, "analyze", boom)
    monkeypatch.setattr(prophet_model.commands.compare, "compare_folders", boom)
    assert main([*command, str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "--log-level" not in err


def test_run_internal_error_offers_log_level(monkeypatch, capsys, tmp_path) -> None:
    import prophet_model.study.runner

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(prophet_model.study.runner, "run_study", boom)
    assert main(["run", "--results", str(tmp_path / "r"), "--quiet", "--no-figures"]) == 1
    assert "--log-level DEBUG" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- the book build


def test_a_failed_book_build_is_one_line_and_a_log(results, tmp_path) -> None:
    from prophet_model.workflow.site import build_error_cause

    output = ("Running Sphinx v7\n\x1b[91mSphinx error:\x1b[39;49;00m\nTraceback (most recent call last):\n"
              '  File "x.py", line 1, in <module>\n    raise SphinxError(msg)\n'
              "sphinx.errors.SphinxError: Sphinx is unable to load the master document (/b/nope.rst).\n"
              "The above exception was the direct cause of the following exception:\n"
              "RuntimeError: \nThere was an error in building your book. Look above for the cause.\n")  # fmt: skip
    assert build_error_cause(output).startswith("sphinx.errors.SphinxError: Sphinx is unable to load")
    assert build_error_cause("/b/x.md:3: WARNING: undefined label\nboom\n") == "/b/x.md:3: WARNING: undefined label"
    assert build_error_cause("") == "no output"


@pytest.mark.skipif(not (Path(sys.executable).with_name("jupyter-book")).is_file(), reason="no jupyter-book")
def test_book_build_failure_through_the_cli(results, tmp_path) -> None:
    book = tmp_path / "book"
    shutil.copytree(
        ROOT / "book",
        book,
        ignore=shutil.ignore_patterns("_build", "_generated", ".pipeline-cache", "systems", "*.ipynb"),
    )
    (book / "_toc.yml").write_text("format: jb-book\nroot: nonexistent_page\n")
    p = _cli("book", "--results", str(results), "--book", str(book), "--build")
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert "Traceback" not in err and "jupyter-book build failed" in err
    assert len(err.strip().splitlines()) == 1  # the cause in one line
    log = book / "_build" / "jupyter-book-error.log"
    assert str(log) in err and "Traceback" in log.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------- the console


def test_an_ascii_console_does_not_fail_a_run(tmp_path) -> None:
    out = tmp_path / "r"
    p = _cli("run", "--results", str(out), "--no-figures", "--systems", "8xA100", "--jobs", "1",
             env={"PYTHONIOENCODING": "ascii", "LC_ALL": "C"})  # fmt: skip
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    assert p.stdout.isascii() and b"\\xd7" not in p.stdout  # the table's times sign as x (console.ASCII_FALLBACKS)
    assert (out / "data" / "results_8xA100.csv").is_file()


@pytest.mark.parametrize("command", [["whatif", "--system", "8xA100"], ["analyze", "--results", "{results}"]])
def test_an_ascii_console_prints_every_command(command, results) -> None:
    p = _cli(*(c.format(results=results) for c in command), env={"PYTHONIOENCODING": "ascii"})
    assert b"internal error" not in p.stderr and b"Traceback" not in p.stderr
    assert p.returncode in (0, 1) and p.stdout.isascii() and b"\\xd7" not in p.stdout  # analyze: 1 = figures
    # missing (run --no-figures); the times sign written as x (console.ASCII_FALLBACKS), not escaped


@pytest.mark.parametrize("command", [["analyze", "--results", "{results}"], ["whatif", "--system", "8xA100"]])
def test_a_closed_pipe_ends_quietly(command, results) -> None:
    """`analyze | head`: the reader has gone before anything is written (the read end closed at once)."""
    argv = [sys.executable, "-m", "prophet_model", *(c.format(results=results) for c in command)]
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run(argv, cwd=ROOT, stdout=w, stderr=subprocess.PIPE, check=False, timeout=300)
    finally:
        os.close(w)
    err = p.stderr.decode()
    assert p.returncode in (0, 141), err
    assert "internal error" not in err and "BrokenPipeError" not in err and "Traceback" not in err
