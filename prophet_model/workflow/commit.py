"""Writing into a results folder: staged files moved into place all at once or not at all (a journal
and the new manifest are written first), an interrupted commit recovered, and `clean`, which removes
only the artifact's files."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prophet_model.errors import UserError
from prophet_model.outputs.figure_cache import EXTRAS  # stage files that add fields to manifest entries
from prophet_model.workflow.procs import Guardian
from prophet_model.workflow.results import (
    JOURNAL,
    LOCK,
    MANIFEST,
    MARKER,
    PENDING_MANIFEST,
    command_line,
    inputs_hash,
    interrupted,
    manifest_data,
    owned,
    pid_alive,
    read_manifest,
    sha256,
    unsafe_path,
    write_json,
)

STAGE_MARK = ".prophet-stage"  # inside every staging folder: what makes a `.staging-<pid>` folder the artifact's
TMP = re.compile(r"^(?:manifest\.json|\.commit-journal\.json|\.manifest\.json\.pending)\.(\d+)\.tmp$")


def _dead(pid: str) -> bool:
    return pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))


def _artifact_json(path: Path) -> bool:
    """Whether `path` is a file the artifact's write_json wrote (a manifest or a journal)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and (
        data.get("artifact") == "prophet-artifact" or set(data) == {"pid", "producer", "paths"}
    )


def recover(results_dir: Path) -> list[str]:
    """What a killed command left in the artifact's results folder (its lock held by the caller): staging
    folders of dead processes (named `.staging-<pid>` and holding the stage mark, or empty), half-written
    manifest or journal files of dead processes, and a new manifest whose journal was never written. An
    interrupted commit's journal stays: every reader refuses the folder and the next run, which rewrites
    the files, recovers it (recover_interrupted). Returns the names removed."""
    r = Path(results_dir)
    if not owned(r):
        return []
    gone = []
    for d in r.glob(".staging-*"):
        pid = d.name.removeprefix(".staging-")
        if d.is_dir() and not d.is_symlink() and _dead(pid) and ((d / STAGE_MARK).is_file() or not any(d.iterdir())):
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d.name)
    for f in r.iterdir():
        m = TMP.match(f.name)
        if m and f.is_file() and not f.is_symlink() and _dead(m.group(1)):
            f.unlink()
            gone.append(f.name)
    pending = r / PENDING_MANIFEST
    if pending.is_file() and not (r / JOURNAL).exists() and _artifact_json(pending):
        pending.unlink()  # written before the journal: the commit had not begun to change the folder
        gone.append(pending.name)
    return gone


@contextmanager
def staged(
    results_dir: Path,
    study,
    producer: str = "run",
    scope: Callable[[str, dict], bool] = lambda rel, entry: True,
) -> Iterator[Path]:
    """Yield an empty staging folder inside `results_dir` (already `prepare`d). On success every file
    written there is moved into place and recorded in the manifest; files the manifest lists for
    `producer` within `scope` that were not written again are removed. On failure nothing changes."""
    r = Path(results_dir)
    recover(r)
    stage = r / f".staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    with Guardian([stage]):
        stage.mkdir()
        (stage / STAGE_MARK).write_bytes(b"")
        try:
            yield stage
            commit(stage, r, study, producer, scope)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def refuse_targets(results_dir: Path, rels: Iterable[str], files: dict) -> None:
    """UserError if the artifact may not write the relative paths `rels` into `results_dir` (`files`: its
    manifest's): a path through a link or not plain, a file of the user's where the artifact would write for the
    first time, a file where a folder is needed. `run` asks before it computes, the commit again before it moves
    anything."""
    rels = list(rels)
    problems = [f"{rel} ({why})" for rel in rels if (why := unsafe_path(results_dir, rel))]
    if problems:
        raise UserError(f"{results_dir}: refusing to write {', '.join(problems[:5])}; nothing was changed")
    foreign = [rel for rel in rels if rel not in files and (results_dir / rel).exists()]
    if foreign:
        raise UserError(
            f"{results_dir}: {len(foreign)} file(s) the artifact would write are yours (not in its {MANIFEST}): "
            f"{', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}; nothing was changed. Move them away, or "
            "choose another results folder with --results DIR"
        )
    blocked = [
        rel
        for rel in rels
        for parent in Path(rel).parents
        if parent != Path(".") and (results_dir / parent).exists() and not (results_dir / parent).is_dir()
    ]
    if blocked:
        raise UserError(
            f"{results_dir}: a file stands where a folder is needed for {', '.join(blocked[:5])}; nothing was changed"
        )


def commit(stage: Path, results_dir: Path, study, producer: str, scope: Callable[[str, dict], bool]) -> list[str]:
    """Move the staged files into place; returns the relative paths written.

    Everything that can fail is done before the first file of the folder changes: the paths are checked
    (a file of the user's standing where the artifact would write for the first time is refused), the
    new manifest is written beside the old one and a journal lists every path about to change. Then
    the files are renamed into place (a rename within one file system needs no space), the new manifest
    replaces the old and the journal goes. A kill in between leaves the journal, which every reader
    takes as an incomplete folder and the next run as files to rewrite."""
    manifest = read_manifest(results_dir)
    files = manifest["files"]
    entry = {
        "producer": producer,
        "config_hash": study.config_hash,
        "inputs_hash": inputs_hash(study.config_hash),
        "command": command_line(),
    }
    new = sorted(
        p.relative_to(stage).as_posix()
        for p in stage.rglob("*")
        if p.is_file() and p.name != STAGE_MARK and p.relative_to(stage).parts[0] != EXTRAS
    )
    extras = _extras(stage, set(new))
    refuse_targets(results_dir, new, files)
    digests = {rel: sha256(stage / rel) for rel in new}
    replace = [
        rel
        for rel in new
        if not (
            (results_dir / rel).is_file()
            and files.get(rel, {}).get("sha256") == digests[rel]
            and sha256(results_dir / rel) == digests[rel]
        )
    ]  # an unchanged file keeps its mtime, which make reads
    remove = [rel for rel, e in files.items() if rel not in digests and e.get("producer") == producer and scope(rel, e)]
    updated = {rel: e for rel, e in files.items() if rel not in remove} | {
        rel: {**extras.get(rel, {}), **entry, "sha256": digests[rel]} for rel in new
    }
    pending = results_dir / PENDING_MANIFEST
    write_json(pending, manifest_data(updated))
    write_json(results_dir / JOURNAL, {"pid": os.getpid(), "producer": producer, "paths": sorted(replace + remove)})
    for rel in replace:
        (results_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / rel, results_dir / rel)
    for rel in remove:
        (results_dir / rel).unlink(missing_ok=True)  # the artifact wrote it (it is in the manifest)
    os.replace(pending, results_dir / MANIFEST)
    (results_dir / JOURNAL).unlink()
    return new


def _extras(stage: Path, new: set[str]) -> dict[str, dict[str, str]]:
    """The fields the stage's EXTRAS files add to the manifest entries of files it holds (text values only)."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted((stage / EXTRAS).glob("*.json")):
        for rel, fields in json.loads(path.read_text(encoding="utf-8")).items():
            if rel in new and isinstance(fields, dict):
                out.setdefault(rel, {}).update({k: v for k, v in fields.items() if isinstance(v, str)})
    return out


def recover_interrupted(results_dir: Path) -> None:
    """After a commit that did not finish: every path it was changing is recorded as the artifact's,
    from no known configuration ('interrupted'), so the next run rewrites it and readers refuse it."""
    r = Path(results_dir)
    journal = r / JOURNAL
    if not journal.exists() or interrupted(r).startswith("a command"):
        return
    try:
        data = json.loads(journal.read_text(encoding="utf-8"))
        paths = [p for p in data["paths"] if isinstance(p, str) and not unsafe_path(r, p)]
        producer = str(data.get("producer", "run"))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        paths, producer = [], "run"
    files = read_manifest(r)["files"]
    for rel in paths:
        if (r / rel).is_file():
            files[rel] = {
                "producer": producer,
                "config_hash": "interrupted",
                "inputs_hash": "interrupted",
                "command": "(a commit that did not finish)",
                "sha256": sha256(r / rel),
            }
        else:
            files.pop(rel, None)
    write_json(r / MANIFEST, manifest_data(files))
    (r / PENDING_MANIFEST).unlink(missing_ok=True)
    journal.unlink()


def clean(results_dir: Path, label: str = "--results") -> list[str]:
    """Remove what the artifact wrote in `results_dir` (manifest files, run logs, the manifest, what killed
    commands left, the lock and the marker) and the folders left empty; anything else stays. The folder's
    lock is taken first: a command using the folder makes this one wait or refuse. Returns what was kept."""
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.runlog import LOG_GLOB

    r = Path(results_dir)
    if r.is_symlink():
        raise UserError(
            f"{label} {r}: a symbolic link (to {os.readlink(r)}), which clean does not follow; allowed: "
            "the folder itself"
        )
    if not r.is_dir():
        return []
    if not owned(r):
        raise UserError(
            f"{label} {r}: not made by this artifact (no {MARKER}); nothing removed; allowed: a results "
            "folder the artifact made"
        )
    hold_lock(r, LOCK, "the results folder")
    read_manifest(r)  # refuses (before anything goes) a manifest naming paths outside the folder
    recover(r)
    for rel in read_manifest(r)["files"]:
        if not unsafe_path(r, rel):
            (r / rel).unlink(missing_ok=True)
    for log in (r / "logs").glob(LOG_GLOB):
        if log.is_file() and not log.is_symlink():
            log.unlink()
    for name in (MANIFEST, PENDING_MANIFEST, JOURNAL):
        (r / name).unlink(missing_ok=True)
    for d in sorted((p for p in r.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    kept = sorted(
        p.relative_to(r).as_posix()
        for p in r.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name not in (MARKER, LOCK)
    )
    (r / LOCK).unlink(missing_ok=True)  # held until this command ends; a command waiting for it locks anew
    if not kept:
        (r / MARKER).unlink(missing_ok=True)
        r.rmdir()
    return kept
