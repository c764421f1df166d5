"""Nothing of the user's lost, nothing silently wrong: a full disk, a tampered manifest, a kill during
the commit, a file of the user's where the artifact would write, two commands at once.

Each case leaves the earlier results (and every file of the user's) byte for byte as they were, or a
state that every reader refuses as incomplete until the next run rewrites it."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prophet_model.cli import main
from prophet_model.outputs import report
from prophet_model.workflow.results import JOURNAL, MANIFEST

from .conftest import ROOT, copy_built, dump_yaml, load_yaml


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (logs and the lock aside: each run adds a log) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.relative_to(folder).as_posix().startswith("logs/") and p.name != ".lock"}  # fmt: skip


def run(study_dir: Path, results: Path, *extra: str) -> int:
    return main(["run", "--config", str(study_dir / "_config.yml"), "--results", str(results), "--quiet", *extra])


@pytest.fixture
def good(plain_results: Path, tmp_path: Path) -> Path:
    """A results folder holding a good `run --no-figures` of the default study (a copy of the session's)."""
    return copy_built(plain_results, tmp_path / "results")


# ------------------------------------------------------------------------------------------------
# 1. A full disk (or any failed write) changes nothing


@contextlib.contextmanager
def small_disk(where: Path, size: str = "5m"):
    """A tmpfs of `size` at `where` (root only); skip where the machine forbids mounting one."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_leaves_the_earlier_results_exactly_as_they_were(study_dir: Path, tmp_path: Path, capsys) -> None:
    # 5 MB: a run without figures fits (about 3.8 MB for the seven systems); a second run with
    # its figures (2.6 MB more) beside the first one's files does not
    with small_disk(tmp_path / "disk") as disk:
        results = disk / "results"
        assert run(study_dir, results, "--no-figures", "--jobs", "1") == 0
        before = snapshot(results)
        assert run(study_dir, results, "--jobs", "1") == 1  # the figures do not fit
        assert snapshot(results) == before
        assert not list(results.glob(".staging-*")) and not (results / JOURNAL).exists()
        log = sorted((results / "logs").glob("*.log"))[-1].read_text(encoding="utf-8")
        assert "No space left on device" in log or "Errno 28" in log
        assert "nothing was replaced, the previous results are left as they were" in log


def test_a_failed_write_anywhere_commits_nothing(good: Path, study_dir: Path, monkeypatch) -> None:
    """The same without a tmpfs: one part's write fails with ENOSPC after a partial file."""
    before = snapshot(good)
    real = report.write_system

    def half_written(results, checks, system, stage, *rest):
        paths = real(results, checks, system, stage, *rest)
        if system.id == "4xH100":
            (stage / "data" / f"results_{system.id}.csv").write_bytes(b"")  # a truncated file
            raise OSError(errno.ENOSPC, "No space left on device")
        return paths

    monkeypatch.setattr(report, "write_system", half_written)
    assert run(study_dir, good, "--no-figures", "--jobs", "1") == 1
    assert snapshot(good) == before


def test_a_failing_system_writes_nothing(good: Path, study_dir: Path, monkeypatch) -> None:
    from prophet_model.study import runner as study_mod

    before = snapshot(good)
    real = study_mod.evaluate_system
    monkeypatch.setattr(study_mod, "evaluate_system",
                        lambda s, system: (_ for _ in ()).throw(RuntimeError("boom")) if system.id == "2xA100"
                        else real(s, system))  # fmt: skip
    assert run(study_dir, good, "--no-figures") == 1
    assert snapshot(good) == before


# ------------------------------------------------------------------------------------------------
# 2. The manifest never names a path outside its folder


def _tamper(results: Path, rel: str) -> None:
    m = json.loads((results / MANIFEST).read_text())
    m["files"][rel] = {**next(iter(m["files"].values()))}
    (results / MANIFEST).write_text(json.dumps(m))


@pytest.mark.parametrize("entry", ["../victim1.txt", "{victim}", "data/../../victim1.txt", "./SUMMARY_x.md",
                                   "data//x.csv", "data\\..\\..\\victim1.txt", ""])  # fmt: skip
@pytest.mark.parametrize("command", ["run", "clean"])
def test_a_tampered_manifest_deletes_nothing_outside(good: Path, study_dir: Path, command: str, entry: str,
                                                     capsys) -> None:  # fmt: skip
    victim = good.parent / "victim1.txt"
    victim.write_text("mine")
    _tamper(good, entry.format(victim=victim))
    before = snapshot(good)
    args = ["--config", str(study_dir / "_config.yml"), "--results", str(good)]
    assert main([command, *args] + (["--quiet", "--no-figures"] if command == "run" else [])) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "Traceback" not in err
    assert victim.read_text() == "mine"
    assert snapshot(good) == before


def test_a_manifest_entry_through_a_link_is_refused(good: Path, study_dir: Path, capsys) -> None:
    outside = good.parent / "elsewhere"
    outside.mkdir()
    (outside / "x.csv").write_text("mine")
    (good / "linked").symlink_to(outside)
    _tamper(good, "linked/x.csv")
    assert main(["clean", "--results", str(good)]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert (outside / "x.csv").read_text() == "mine"


def test_a_link_where_a_results_folder_would_go_is_refused(good: Path, study_dir: Path, capsys) -> None:
    """`figures/` does not exist after --no-figures: a link the user put there is not written through."""
    outside = good.parent / "elsewhere"
    outside.mkdir()
    (good / "figures").symlink_to(outside)
    assert run(study_dir, good) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert not any(outside.iterdir())


# ------------------------------------------------------------------------------------------------
# A file of the user's where the artifact would write for the first time


def _add_system(study_dir: Path, new_id: str) -> None:
    data = load_yaml(study_dir / "_config.yml")
    entry = dict(next(s for s in data["systems"] if s["id"] == "2xA100"))
    data["systems"].append({**entry, "id": new_id, "name": f"{new_id} system"})
    dump_yaml(data, study_dir / "_config.yml")


def test_a_new_system_never_overwrites_the_users_files(good: Path, study_dir: Path, capsys) -> None:
    (good / "SUMMARY_NEW.md").write_text("my notes")
    (good / "data" / "results_NEW.csv").write_text("my,data\n")
    before = snapshot(good)
    _add_system(study_dir, "NEW")
    assert run(study_dir, good, "--no-figures") == 2
    err = capsys.readouterr().err
    assert "SUMMARY_NEW.md" in err and "data/results_NEW.csv" in err and "nothing was changed" in err
    assert snapshot(good) == before
    assert main(["clean", "--results", str(good)]) == 0
    assert (good / "SUMMARY_NEW.md").read_text() == "my notes"
    assert (good / "data" / "results_NEW.csv").read_text() == "my,data\n"


def test_a_file_where_a_folder_is_needed_is_refused(good: Path, study_dir: Path, capsys) -> None:
    (good / "figures").write_text("not a folder")
    assert run(study_dir, good) == 2
    assert (good / "figures").read_text() == "not a folder"


def test_a_users_file_where_the_paper_goes_stays(good: Path, study_dir: Path, capsys) -> None:
    (good / "paper").mkdir()
    (good / "paper" / "abstract.tex").write_text("my abstract")
    assert main(["paper", "--config", str(study_dir / "_config.yml"), "--results", str(good)]) == 2
    assert "paper/abstract.tex" in capsys.readouterr().err
    assert (good / "paper" / "abstract.tex").read_text() == "my abstract"
    assert not (good / "paper" / "table.tex").exists()


# ------------------------------------------------------------------------------------------------
# 1. A kill during the commit: the readers refuse, the next run rewrites


KILL_DURING_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    import prophet_model.workflow.commit as r
    real, calls = r.os.replace, []

    class Os:  # every name of os as it is, but the second file moved into place kills the process
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def replace(src, dst):
            real(src, dst)
            if "staging" in str(src):
                calls.append(dst)
                if len(calls) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)

    r.os = Os()
    from prophet_model.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_a_kill_during_the_commit_is_seen_by_every_reader(good: Path, study_dir: Path, tmp_path: Path,
                                                          capsys) -> None:  # fmt: skip
    cfg = study_dir / "_config.yml"
    args = ["--config", str(cfg), "--results", str(good)]
    assert main(["paper", *args]) == 0
    data = load_yaml(cfg)  # config B: another accuracy, so every number changes
    data["prophet"]["prediction_accuracy"] = 0.5
    cfg_b = study_dir / "b.yml"
    dump_yaml(data, cfg_b)
    script = tmp_path / "kill.py"
    script.write_text(KILL_DURING_COMMIT)
    done = subprocess.run([sys.executable, str(script), "run", "--config", str(cfg_b), "--results", str(good),
                           "--quiet", "--no-figures", "--jobs", "1"], cwd=ROOT, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert (good / JOURNAL).exists()
    capsys.readouterr()
    for cmd in (["paper", *args], ["paper", "--config", str(cfg_b), "--results", str(good)],
                ["book", *args, "--book", str(tmp_path / "book")]):  # fmt: skip
        assert main(cmd) == 2, cmd
        assert "stopped while it replaced its files" in capsys.readouterr().err
    assert main(["analyze", "--results", str(good)]) == 1
    assert "stopped while it replaced its files" in capsys.readouterr().out
    assert run(study_dir, good, "--no-figures") == 0  # the next run rewrites what the kill left
    assert not (good / JOURNAL).exists()
    assert main(["paper", *args]) == 0


# ------------------------------------------------------------------------------------------------
# Files changed by hand: the readers say which


def test_a_results_file_replaced_by_hand_is_named_by_the_readers(
    built_checkout: Path, study_dir: Path, tmp_path: Path, capsys
) -> None:
    good = copy_built(built_checkout / "results", tmp_path / "results")  # a full run's: its figures are reused
    csv = good / "data" / "all_systems_comparison.csv"
    csv.write_text(csv.read_text().replace("8xA100", "8xA100 (edited)"))
    args = ["--config", str(study_dir / "_config.yml"), "--results", str(good)]
    assert main(["paper", *args]) == 2
    err = capsys.readouterr().err
    assert "data/all_systems_comparison.csv" in err and "changed since" in err and "Traceback" not in err
    assert main(["analyze", "--results", str(good)]) == 1
    assert "changed since the artifact wrote it" in capsys.readouterr().out
    assert main(["run", *args, "--quiet", "--if-stale"]) == 0  # make's first step rewrites it
    assert main(["paper", *args]) == 0


# ------------------------------------------------------------------------------------------------
# 3. The book folder follows the same rule


def test_pipeline_never_overwrites_or_removes_the_users_notebooks(good: Path, study_dir: Path, tmp_path: Path,
                                                                   capsys) -> None:  # fmt: skip
    book = tmp_path / "mybook"
    (book / "systems").mkdir(parents=True)
    (book / "systems" / "0008-8xA100.ipynb").write_text("my notebook")
    (book / "systems" / "old-analysis.ipynb").write_text("my other notebook")
    (book / "cross_system.ipynb").write_text("mine too")
    before = snapshot(book)
    args = ["--config", str(study_dir / "_config.yml"), "--results", str(good), "--book", str(book), "--quiet"]
    assert main(["pipeline", *args]) == 2
    err = capsys.readouterr().err
    assert "systems/0008-8xA100.ipynb" in err and "cross_system.ipynb" in err and "nothing was changed" in err
    assert snapshot(book) == before


def test_book_never_overwrites_or_removes_the_users_pages(good: Path, study_dir: Path, tmp_path: Path,
                                                           capsys) -> None:  # fmt: skip
    cfg = str(study_dir / "_config.yml")
    assert main(["paper", "--config", cfg, "--results", str(good)]) == 0
    book = tmp_path / "mybook"
    (book / "_generated").mkdir(parents=True)
    (book / "_generated" / "claims.md").write_text("my claims")
    (book / "_generated" / "notes.md").write_text("my notes")
    args = ["--config", cfg, "--results", str(good), "--book", str(book)]
    before = snapshot(book)
    assert main(["book", *args]) == 2  # a folder of someone's files that is no book source: refused, untouched
    assert "nothing was changed" in capsys.readouterr().err
    assert snapshot(book) == before
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n")  # the user's own Jupyter Book source
    before = snapshot(book)
    assert main(["book", *args]) == 2
    assert "_generated/claims.md" in capsys.readouterr().err
    assert snapshot(book) == before
    (book / "_generated" / "claims.md").unlink()
    assert main(["book", *args]) == 0  # writes its pages, leaves the user's note
    assert (book / "_generated" / "notes.md").read_text() == "my notes"
    (book / "_build").mkdir()
    (book / "_build" / "site.html").write_text("my site")
    assert main(["book", *args, "--build"]) == 2
    assert "_build" in capsys.readouterr().err
    assert (book / "_build" / "site.html").read_text() == "my site"


def test_a_book_folder_that_is_a_file_is_refused(good: Path, study_dir: Path, tmp_path: Path, capsys) -> None:
    book = tmp_path / "book.txt"
    book.write_text("x")
    args = ["--config", str(study_dir / "_config.yml"), "--results", str(good), "--book", str(book), "--quiet"]
    assert main(["pipeline", *args]) == 2
    assert "is a file" in capsys.readouterr().err
    assert book.read_text() == "x"


# ------------------------------------------------------------------------------------------------
# 7. Two commands at once take turns


def test_two_runs_at_once_take_turns(good: Path, study_dir: Path) -> None:
    cmd = [sys.executable, "-m", "prophet_model", "run", "--config", str(study_dir / "_config.yml"), "--results",
           str(good), "--quiet", "--no-figures"]  # fmt: skip
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1].decode()[-500:] for o in outs]
    assert any(b"waiting: another prophet_model command" in o[1] for o in outs)
    assert main(["paper", "--config", str(study_dir / "_config.yml"), "--results", str(good)]) == 0
