"""One lock for every writer, what a killed command leaves recognised as the artifact's (and only that), the
book folder guarded as the results folder is, and errors of the machine in one line (exit 1)."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prophet_model.cli import main
from prophet_model.workflow.bookdir import OWNED
from prophet_model.workflow.commit import STAGE_MARK
from prophet_model.workflow.nbrun import RUNNER_PID, remove_stale_kernel_dirs

from .conftest import ROOT, dump_yaml, load_yaml


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "logs" not in p.relative_to(folder).parts and p.name != ".lock"}  # fmt: skip


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """(config, results) of a one-system study: `run --no-figures` and `paper` done."""
    base = tmp_path_factory.mktemp("small")
    (base / "study").mkdir()
    shutil.copytree(ROOT / "catalog", base / "study" / "catalog")
    data = load_yaml(ROOT / "_config.yml")
    data["systems"] = [s for s in data["systems"] if s["id"] == "8xA100"]
    data["expectations"] = [e for e in data.get("expectations") or [] if e.get("system") == "8xA100"]
    dump_yaml(data, base / "study" / "_config.yml")
    cfg, results = base / "study" / "_config.yml", base / "results"
    assert main(["run", "--config", str(cfg), "--results", str(results), "--quiet", "--no-figures"]) == 0
    assert main(["paper", "--config", str(cfg), "--results", str(results)]) == 0
    return cfg, results


@pytest.fixture
def results(small, tmp_path) -> Path:
    """A private copy of the small study's results."""
    return Path(shutil.copytree(small[1], tmp_path / "results", symlinks=True))


def _args(small, results: Path, *rest: str) -> list[str]:
    return ["--config", str(small[0]), "--results", str(results), *rest]


HOLD = textwrap.dedent(
    """
    import sys, time
    sys.argv = ["prophet_model", "run"]
    from prophet_model.workflow.procs import hold_lock
    hold_lock({folder!r}, {name!r}, "the folder")
    print("held", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def holder():
    """Start a process that holds a folder's lock (as a `run` would); yields a function taking (folder, name)."""
    procs = []

    def hold(folder: Path, name: str = ".lock") -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLD.format(folder=str(folder), name=name)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield hold
    for p in procs:
        p.kill()
        p.wait()


# ---------------------------------------------------------------------------------------------- the lock


@pytest.mark.parametrize("command", ["clean", "run", "paper", "pipeline", "book"])
def test_a_second_writer_refuses_naming_the_holder(small, results, holder, tmp_path, monkeypatch, capsys,
                                                   command) -> None:  # fmt: skip
    monkeypatch.setenv("PROPHET_LOCK_WAIT", "0.3")
    monkeypatch.setenv("PROPHET_NO_FAST_PATH", "1")
    before = _snapshot(results)
    p = holder(results)
    extra = {"run": ["--quiet", "--no-figures"], "pipeline": ["--book", str(tmp_path / "b"), "--quiet"],
             "book": ["--book", str(tmp_path / "b")]}.get(command, [])  # fmt: skip
    assert main([command, *_args(small, results, *extra)]) == 2
    err = capsys.readouterr().err
    assert f"error: {results}: in use by `run` (pid {p.pid}); allowed: wait for it to finish" in err
    assert "Traceback" not in err and "internal error" not in err
    assert _snapshot(results) == before
    assert not (tmp_path / "b" / "_generated").exists()


def test_clean_waits_for_a_run_and_the_run_keeps_its_results(small, results, tmp_path) -> None:
    """The issue's case: `clean` during a `run` removed the run's staging folder and results."""
    env = {**os.environ, "PROPHET_LOCK_WAIT": "0"}
    run = subprocess.Popen([sys.executable, "-m", "prophet_model", "run", *_args(small, results, "--quiet")],
                           cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    end = time.monotonic() + 60
    while not list(results.glob(".staging-*/data")) and run.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    clean = subprocess.run([sys.executable, "-m", "prophet_model", "clean", *_args(small, results)], cwd=ROOT,
                           env=env, capture_output=True, text=True, check=False)  # fmt: skip
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    if clean.returncode == 0:  # only when the run had finished already
        assert not results.exists()
    else:
        assert clean.returncode == 2 and "in use by `run`" in clean.stderr, clean.stderr
        files = json.loads((results / "manifest.json").read_text())["files"]
        assert files and all((results / rel).is_file() for rel in files)


def test_a_stale_lock_is_taken_over(small, results, monkeypatch) -> None:
    monkeypatch.setenv("PROPHET_LOCK_WAIT", "0")
    (results / ".lock").write_text(json.dumps({"command": "run", "pid": _dead_pid()}))
    assert main(["paper", *_args(small, results)]) == 0


@pytest.mark.parametrize("kind", ["folder", "link", "fifo"])
def test_a_lock_that_is_not_a_file_is_refused(small, results, tmp_path, capsys, kind) -> None:
    lock = results / ".lock"
    target = tmp_path / "elsewhere.txt"
    target.write_text("mine\n")
    lock.unlink(missing_ok=True)  # the last run's
    if kind == "folder":
        lock.mkdir()
    elif kind == "link":
        lock.symlink_to(target)
    else:
        os.mkfifo(lock)
    before = _snapshot(results)
    assert main(["paper", *_args(small, results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {lock}: ") and "allowed:" in err and len(err.strip().splitlines()) == 1
    assert _snapshot(results) == before and target.read_text() == "mine\n"


def test_a_lock_that_cannot_be_opened_is_an_error_of_the_machine(small, results, monkeypatch, capsys) -> None:
    """As a mode-000 lock file answers a user other than root."""
    real = os.open

    def denied(path, *a, **k):
        if str(path).endswith("/.lock"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *a, **k)

    before = _snapshot(results)
    monkeypatch.setattr(os, "open", denied)
    code = main(["paper", *_args(small, results)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    _one_line_exit_1(code, err)
    assert f"{results}/.lock: cannot open the lock file (Permission denied)" in err
    assert _snapshot(results) == before


def test_a_users_partial_notebook_in_a_book_source_folder_stays(small, results, tmp_path, capsys) -> None:
    book = tmp_path / "jb"
    book.mkdir()
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (book / "validation.partial.ipynb").write_text("mine")
    assert main(["pipeline", *_args(small, results), "--book", str(book), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "validation.partial.ipynb" in err and "nothing was changed" in err
    assert (book / "validation.partial.ipynb").read_text() == "mine" and not (book / "systems").exists()


# ---------------------------------------------------------------------------------------------- leftovers


def test_what_a_kill_left_is_removed_and_look_alikes_of_the_users_stay(small, results, tmp_path) -> None:
    dead = str(_dead_pid())
    ours = results / f".staging-{dead}"
    (ours / "data").mkdir(parents=True)
    (ours / STAGE_MARK).write_bytes(b"")
    (ours / "data" / "x.csv").write_text("half")
    theirs = results / ".staging-1"  # pid 1 is alive; and no stage mark
    theirs.mkdir()
    (theirs / "keep.txt").write_text("mine")
    unmarked = results / f".staging-{int(dead) + 1}"  # no stage mark: maybe the user's
    unmarked.mkdir()
    (unmarked / "keep.txt").write_text("mine")
    (results / f"manifest.json.{dead}.tmp").write_text("{")
    assert main(["paper", *_args(small, results)]) == 0
    assert not ours.exists() and not (results / f"manifest.json.{dead}.tmp").exists()
    assert (theirs / "keep.txt").read_text() == "mine" and (unmarked / "keep.txt").read_text() == "mine"
    assert main(["clean", *_args(small, results), "--book", str(tmp_path / "nobook")]) == 0
    assert (unmarked / "keep.txt").read_text() == "mine"


def test_kernel_folders_of_dead_runners_only(tmp_path) -> None:
    dead = tmp_path / "prophet-kernel-dead"
    dead.mkdir()
    (dead / RUNNER_PID).write_text(f"{_dead_pid()}\n")
    alive = tmp_path / "prophet-kernel-alive"
    alive.mkdir()
    (alive / RUNNER_PID).write_text(f"{os.getppid()}\n")
    users = tmp_path / "prophet-kernel-mine"  # no runner's pid file: not the artifact's
    users.mkdir()
    (users / "notes").write_text("mine")
    assert remove_stale_kernel_dirs(tmp_path) == [dead]
    assert alive.is_dir() and (users / "notes").read_text() == "mine"


def test_a_users_partial_notebook_stays_and_a_killed_pipelines_goes(small, results, tmp_path, capsys) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "cross_system.partial.ipynb").write_text("mine")
    assert main(["pipeline", *_args(small, results), "--book", str(book), "--quiet"]) == 2
    assert "cross_system.partial.ipynb" in capsys.readouterr().err
    assert (book / "cross_system.partial.ipynb").read_text() == "mine"
    assert not (book / "systems").exists()
    # the artifact's own (listed before it was written), as a SIGKILL leaves it: `clean` removes it
    (book / "cross_system.partial.ipynb").unlink()
    owned = {"files": ["cross_system.partial.ipynb", "systems/0008-8xA100.partial.ipynb"]}
    (book / OWNED).parent.mkdir()
    (book / OWNED).write_text(json.dumps(owned))
    (book / "systems").mkdir()
    (book / "systems" / "0008-8xA100.partial.ipynb").write_text("{half")
    (book / "systems" / "notes.md").write_text("mine")
    assert main(["clean", *_args(small, results), "--book", str(book)]) == 0
    assert sorted(p.relative_to(book).as_posix() for p in book.rglob("*") if p.is_file()) == ["systems/notes.md"]


# ---------------------------------------------------------------------------------------------- --book


def test_the_book_folder_is_guarded_as_the_results_folder(small, results, tmp_path, monkeypatch, capsys) -> None:
    home = tmp_path / "home"
    (home / "work").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.txt").write_text("mine")
    for book in (home, foreign, Path("/"), ROOT, ROOT.parent):
        before = {p: p.stat().st_mtime_ns for p in (book, *(book.iterdir() if book in (home, foreign) else ()))}
        for command in (["book", "--build"], ["pipeline", "--quiet"]):
            assert main([command[0], *_args(small, results, "--book", str(book), *command[1:])]) == 2
            err = capsys.readouterr().err
            assert f"--book {book}: " in err and "nothing was changed" in err and "allowed:" in err, err
            assert len(err.strip().splitlines()) == 1
        assert {p: p.stat().st_mtime_ns for p in before} == before
    assert sorted(p.name for p in foreign.rglob("*")) == ["a.txt"]
    assert sorted(p.name for p in home.rglob("*")) == ["work"]
    new = tmp_path / "new" / "book"  # a new folder is made and marked
    assert main(["book", *_args(small, results, "--book", str(new))]) == 0
    assert (new / OWNED).is_file() and (new / "_generated" / "claims.md").is_file()


# ---------------------------------------------------------------------------------------------- the machine


def _one_line_exit_1(code: int, err: str) -> None:
    assert code == 1, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err and "Traceback" not in err and "allowed:" in err


def test_a_results_folder_that_cannot_be_written(small, tmp_path, monkeypatch, capsys) -> None:
    """As a read-only folder answers (root writes anyway, so the probe's write is made to fail)."""
    real = pathlib.Path.write_bytes

    def read_only(self, data):
        if self.name.startswith(".write-test"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", read_only)
    code = main(["run", *_args(small, tmp_path / "r", "--quiet", "--no-figures")])
    _one_line_exit_1(code, capsys.readouterr().err)


def test_a_results_folder_that_cannot_be_read(small, results, monkeypatch, capsys) -> None:
    """As a mode-000 folder answers a user other than root."""
    monkeypatch.setenv("PROPHET_NO_FAST_PATH", "1")
    real = pathlib.Path.stat

    def no_access(self, *a, **k):
        if str(self).startswith(str(results) + "/"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *a, **k)

    before = _snapshot(results)
    monkeypatch.setattr(pathlib.Path, "stat", no_access)
    for command in (["run", "--quiet", "--no-figures"], ["paper"], ["clean"]):
        code = main([command[0], *_args(small, results, *command[1:])])
        _one_line_exit_1(code, capsys.readouterr().err)
    monkeypatch.undo()
    assert _snapshot(results) == before


def test_a_full_disk_during_book_build(small, results, tmp_path, monkeypatch, capsys) -> None:
    book = tmp_path / "book"
    real = pathlib.Path.write_bytes

    def full(self, data):
        if "_generated" in self.parts:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    before = _snapshot(results)
    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    code = main(["book", *_args(small, results, "--book", str(book), "--build")])
    err = capsys.readouterr().err
    _one_line_exit_1(code, err)
    assert "no space left on device" in err
    assert _snapshot(results) == before


def test_clean_does_not_follow_a_link(small, results, tmp_path, capsys) -> None:
    link = tmp_path / "link"
    link.symlink_to(results)
    before = _snapshot(results)
    assert main(["clean", "--results", str(link), "--book", str(tmp_path / "nobook")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --results {link}: a symbolic link") and "allowed:" in err
    assert _snapshot(results) == before and link.is_symlink()
