"""The results folder: ownership, a manifest of what was written by which configuration, and
atomic-per-file writes that never delete a file the artifact did not write.

- A results folder is the artifact's when it holds the marker file `.prophet-results` (written
  when the artifact creates the folder, or adopts an empty one). A non-empty folder without the
  marker is refused, and so are `/`, the home folder, the current folder, the repository root and
  their parents.
- `manifest.json` lists every file the artifact wrote there, with the configuration hash, the
  inputs hash (configuration + package source), the command and the file's sha256. `make` reruns
  whatever it shows stale or missing (`run --if-stale`, `paper --if-stale`); `paper`, `pipeline`,
  the book and `analyze` refuse or flag a folder whose parts come from different configurations.
- `staged()` writes into `<results>/.staging-<pid>/`; on success each file replaces its old copy
  (an unchanged file is left alone, mtime included) and the files the manifest lists in the run's
  scope that the run no longer writes are removed. Any other file in the folder is left as it is.
  On any failure or signal the staging folder is removed (a forked guardian removes it even after
  SIGKILL), and the previous results are untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from prophet_model.errors import UserError
from prophet_model.outputs.files import (
    PAPER_DIR,
    PAPER_FILES,
    expected_files,
    system_of,
)
from prophet_model.paths import ROOT
from prophet_model.workflow.once import remembered
from prophet_model.workflow.procs import pid_alive

MARKER = ".prophet-results"
MANIFEST = "manifest.json"
LOCK = ".lock"  # held by every command that writes or reads the folder (procs.hold_lock)


def sha256(path: Path) -> str:
    return remembered(("sha256",), lambda: hashlib.sha256(path.read_bytes()).hexdigest(), path)


def inputs_hash(config_hash: str, root: Path = ROOT) -> str:
    """The configuration hash, the package's source and the measurements: what a run's outputs depend on."""
    from prophet_model.workflow.pipeline import run_digest

    return hashlib.sha256(config_hash.encode() + run_digest(root)).hexdigest()[:16]


def command_line() -> str:
    return " ".join(["python -m prophet_model", *sys.argv[1:]])


# --------------------------------------------------------------------------------------------
# Ownership


def _protected() -> set[Path]:
    here = {Path("/"), Path.home().resolve(), Path.cwd().resolve(), ROOT}
    for p in (Path.cwd().resolve(), ROOT):
        here |= set(p.parents)
    return here


def prepare(results_dir: Path, label: str = "--results") -> Path:
    """Check that `results_dir` may be written by the artifact; create and mark it. UserError if not,
    naming the folder by `label` (the option or config key it came from)."""
    r = Path(results_dir).expanduser()
    how = "choose another with --results DIR (a new or empty folder, or one the artifact made)"
    if label != "--results":
        how = how.replace("with --results DIR", f"with {label.rsplit(': ', 1)[-1]} or --results DIR")
    if r.is_symlink() and not r.exists():
        raise UserError(f"{label} {r}: a symbolic link to a missing folder ({os.readlink(r)}); {how}")
    try:
        resolved = r.resolve()
    except (OSError, RuntimeError) as exc:
        raise UserError(f"{label} {r}: cannot resolve the path ({exc}); {how}") from None
    if resolved in _protected():
        raise UserError(
            f"{label} {r}: refusing to write results into {resolved} (the root, home, current or repository "
            f"folder, or a parent of one); {how}"
        )
    if r.exists() and not r.is_dir():
        raise UserError(f"{label} {r}: is a file, not a folder; {how}")
    try:
        if r.is_dir():
            if not (r / MARKER).is_file() and not _adopt_legacy(r):
                if any(r.iterdir()):
                    raise UserError(
                        f"{label} {r}: the folder is not empty and was not made by this artifact (no {MARKER} "
                        f"file), so nothing in it will be touched; {how}"
                    )
                _mark(r)
        else:
            r.mkdir(parents=True)
            _mark(r)
        probe = r / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:  # the machine, not the input: exit 1
        from prophet_model.workflow.procs import EnvironmentProblem

        raise EnvironmentProblem(
            f"{label} {r}: cannot create or write the folder ({exc.strerror or exc}); allowed: "
            "a folder this user can write, on a disk with free space"
        ) from None
    return r


LEGACY_PATTERNS = (
    "data/results_*.csv",
    "data/all_systems_comparison.csv",
    "data/sanity_checks.csv",
    "data/uncertainty.csv",
    "data/claims.csv",
    "figures/*.pdf",
    "figures/*.png",
    "SUMMARY_*.md",
    "paper/*.tex",
    "logs/multi_gpu_analysis_*.log",
    "book_overview.png",
)


def _adopt_legacy(r: Path) -> bool:
    """A folder written by the artifact before it had markers: every file has a name the artifact
    writes. It is marked, and its files are listed in the manifest (from config 'legacy'), so the next
    full run replaces or removes them. Anything else makes the folder foreign."""
    files = [p.relative_to(r).as_posix() for p in r.rglob("*") if p.is_file()]
    if not files or not all(
        any(Path(f).match(pat) and f.count("/") == pat.count("/") for pat in LEGACY_PATTERNS) for f in files
    ):
        return False
    _mark(r)
    entry = {"config_hash": "legacy", "inputs_hash": "legacy", "command": "(written before manifests existed)"}
    listed = {
        f: {**entry, "producer": "paper" if f.startswith(f"{PAPER_DIR}/") else "run", "sha256": sha256(r / f)}
        for f in files
        if not f.startswith("logs/")
    }
    _write_manifest(r, {"files": listed})
    return True


def _mark(folder: Path) -> None:
    (folder / MARKER).write_text(
        "This folder was created by prophet-artifact (python -m prophet_model run). Files listed in\n"
        "manifest.json are the artifact's and may be replaced or removed by later runs; any other file is\n"
        "left alone.\n",
        encoding="utf-8",
    )


def owned(results_dir: Path) -> bool:
    return (Path(results_dir) / MARKER).is_file()


# --------------------------------------------------------------------------------------------
# Manifest


def read_manifest(results_dir: Path) -> dict:
    """{'files': {relative path: entry}}; empty when there is none. UserError if it is unreadable or
    names a path outside its folder (absolute, with '..', through a link, or not a plain name)."""
    path = Path(results_dir) / MANIFEST
    if not path.is_file():
        return {"files": {}}
    data = remembered(("manifest",), lambda: _read_manifest(Path(results_dir), path), path)
    return {**data, "files": {rel: dict(entry) for rel, entry in data["files"].items()}}  # the caller's own copy


def _read_manifest(folder: Path, path: Path) -> dict:
    how = (
        f"the artifact will not trust it to say which of the folder's files are its own; restore it, or move the "
        f"whole folder away (mv {folder} {folder}.old) and rerun, which makes a new one"
    )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            raise ValueError("no 'files' mapping")
        for rel, entry in data["files"].items():
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise ValueError(f"the entry for {rel!r} is not a mapping of strings")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{path}: not a valid results manifest ({exc}); {how}") from None
    for rel in data["files"]:
        problem = unsafe_path(folder, rel)
        if problem:
            raise UserError(f"{path}: lists {rel!r}, {problem}; {how}")
    return data


SAFE_PART = re.compile(r"^[A-Za-z0-9._+-]+$")


def unsafe_path(folder: Path, rel: str) -> str:
    """Why `rel` may not name a file of `folder` (empty when it may): it must be relative, made of
    plain names (no '..', no '.', no empty part), and reach no link on its way."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel:
        return "not a relative path"
    if any(p in ("", ".", "..") or not SAFE_PART.match(p) for p in parts):
        return "not a plain relative path inside the folder"
    here = Path(folder)
    for p in parts:
        here = here / p
        if here.is_symlink():
            return f"which passes through a symbolic link ({here.relative_to(folder).as_posix()})"
    return ""


def _write_manifest(results_dir: Path, data: dict) -> None:
    write_json(results_dir / MANIFEST, manifest_data(data["files"]))


def stale_reasons(results_dir: Path, study, producer: str = "run") -> list[str]:
    """Why the outputs of `producer` ('run' or 'paper') in `results_dir` do not match `study`: missing
    files, files from other inputs, files changed by hand, files of systems no longer configured."""
    r = Path(results_dir)
    if why := interrupted(r):
        return [why]
    files = read_manifest(r)["files"]
    want_hash = inputs_hash(study.config_hash)
    if producer == "run":
        expected = expected_files([s.id for s in study.systems], bool(study.config.uncertainty))
    else:
        expected = [f"{PAPER_DIR}/{n}" for n in PAPER_FILES]
    reasons = []
    for rel in expected:
        e = files.get(rel)
        if e is None or not (r / rel).is_file():
            reasons.append(f"{rel}: missing")
        elif e.get("inputs_hash") != want_hash:
            reasons.append(f"{rel}: made from other inputs (config {e.get('config_hash')})")
        elif sha256(r / rel) != e.get("sha256"):
            reasons.append(f"{rel}: changed since it was written")
    configured = {s.id for s in study.systems}
    for rel, e in files.items():
        sid = system_of(rel)
        if e.get("producer") == producer and sid is not None and sid not in configured and (r / rel).exists():
            reasons.append(f"{rel}: system {sid!r} is no longer configured")
    return reasons


def check_consistent(
    results_dir: Path, study, needed: Sequence[str] = (), producers: Sequence[str] = ("run", "paper")
) -> None:
    """Refuse (UserError) a results folder that is not the artifact's, lacks a needed file, or whose
    files (those written by `producers`) come from different configurations or from another
    configuration than `study`'s."""
    r = Path(results_dir)
    if not (r / MANIFEST).is_file():
        raise UserError(
            f"{r}: no {MANIFEST} (not a results folder of this artifact, or made before manifests existed); "
            "run `make` or `python -m prophet_model run`"
        )
    if why := interrupted(r):
        raise UserError(f"{r}: incomplete: {why}")
    files = read_manifest(r)["files"]
    for rel in needed:
        if rel not in files or not (r / rel).is_file():
            raise UserError(f"{r / rel}: not found; {remedy(rel, r)}")
    changed = changed_files(r, producers)
    if changed:
        raise UserError(
            f"{r}: {len(changed)} file(s) changed since the artifact wrote them: {', '.join(changed[:5])}"
            f"{' …' if len(changed) > 5 else ''}; {remedy(changed[0], r)} to write them again"
        )
    by = files_by_config(r, producers)
    hashes = sorted(by)
    if len(hashes) > 1:
        detail = "; ".join(f"config {h}: {', '.join(v[:4])}{' …' if len(v) > 4 else ''}" for h, v in by.items())
        raise UserError(
            f"{r}: its files come from different configurations ({detail}); run `make` to bring them up to date"
        )
    if hashes and hashes[0] != study.config_hash:
        raise UserError(
            f"{r}: the results were made from another configuration (config {hashes[0]}; {study.path} is "
            f"{study.config_hash}); run `make` to bring them up to date"
        )


def files_by_config(results_dir: Path, producers: Sequence[str] = ("run", "paper")) -> dict[str, list[str]]:
    """The manifest's files present on disk, written by `producers`, grouped by configuration hash
    (sorted by hash, each list sorted)."""
    r = Path(results_dir)
    by: dict[str, list[str]] = {}
    for rel, e in sorted(read_manifest(r)["files"].items()):
        if e.get("producer") in producers and (r / rel).is_file():
            by.setdefault(e.get("config_hash", "?"), []).append(rel)
    return dict(sorted(by.items()))


def changed_files(results_dir: Path, producers: Sequence[str] = ("run", "paper")) -> list[str]:
    """The manifest's files (written by `producers`) whose bytes differ from what the artifact wrote."""
    r = Path(results_dir)
    return [
        rel
        for rel, e in sorted(read_manifest(r)["files"].items())
        if e.get("producer") in producers and (r / rel).is_file() and sha256(r / rel) != e.get("sha256")
    ]


def remedy(rel: str, results_dir: Path) -> str:
    """The command that writes `rel` of `results_dir` again."""
    command = "paper" if rel.startswith(f"{PAPER_DIR}/") else "run"
    return f"run `make` (or `python -m prophet_model {command} --results {results_dir}`)"


def consistency_problems(results_dir: Path) -> list[str]:
    """For `analyze`: an interrupted commit, files changed since they were written, and a line per
    configuration when the folder's files come from several."""
    if why := interrupted(results_dir):
        return [why]
    out = [f"{rel}: changed since the artifact wrote it" for rel in changed_files(results_dir)]
    by = files_by_config(results_dir)
    if len(by) > 1:
        out += [f"config {h}: {len(v)} file(s), e.g. {v[0]}" for h, v in by.items()]
    return out


# --------------------------------------------------------------------------------------------
# Writing


JOURNAL = ".commit-journal.json"
PENDING_MANIFEST = f".{MANIFEST}.pending"


def manifest_data(files: dict) -> dict:
    return {"artifact": "prophet-artifact", "format": 1, "files": dict(sorted(files.items()))}


def write_json(path: Path, data: dict) -> None:
    """Write `path` whole or not at all: a temporary file, flushed to disk, then renamed."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def interrupted(results_dir: Path) -> str:
    """Why the folder is incomplete because of a commit that did not finish (empty when it is not)."""
    journal = Path(results_dir) / JOURNAL
    if not journal.exists():
        return ""
    try:
        pid = int(json.loads(journal.read_text(encoding="utf-8"))["pid"])
    except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError):
        pid = 0
    if pid and pid != os.getpid() and pid_alive(pid):
        return f"a command (pid {pid}) is replacing its files right now; wait for it to finish"
    return (
        "a run was stopped while it replaced its files, so they may come from two runs; run `make` or "
        "`python -m prophet_model run` to rewrite them"
    )
