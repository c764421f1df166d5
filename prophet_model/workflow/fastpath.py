"""`make`'s steps when nothing changed: each decides "up to date" with the standard library and PyYAML
(no numpy, pandas, matplotlib, Jinja2, papermill or jupyter-book), and answers as the full
command would. Whenever anything might differ -- a check fails, a file is missing, an option is not
`make`'s, anything raises -- it returns None and the full command runs, which decides again and
names the cause. Set PROPHET_NO_FAST_PATH=1 to always take the full path.

The checks are the full path's own functions (workflow/results.py, pipeline.py, bookdir.py, site.py),
given the raw configuration (study/rawconfig.py) instead of a validated Study:
- `run --if-stale`, `paper --if-stale`: the manifest's inputs hash (configuration hash + package
  source) and every listed file's sha256, no interrupted commit (results.stale_reasons); for `paper`
  also results.check_consistent. A configuration whose hash and source are those of the manifest
  validated when it was written, so the validation the fast path skips would pass again.
- `pipeline`: every notebook's cache key (computed from the raw YAML) and output, the book folder's
  list of the artifact's files, no removed system's notebook to delete, timings.json as it would be
  rewritten.
- `book --build`: a stamp (`<book>/_build/.pages-inputs.json`, written after a full build) of
  everything the generated pages read (`book_inputs`) and the site's own source digest.
Each also requires that the environment (`.venv/.installed`) is not newer than the results manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from prophet_model.outputs.files import PAPER_DIR, STUDY_FILES, read_timings
from prophet_model.study.rawconfig import RawStudy
from prophet_model.workflow.bookdir import CACHE, OWNED, BookFolder
from prophet_model.workflow.commit import recover
from prophet_model.workflow.procs import hold_lock
from prophet_model.workflow.results import (
    LOCK,
    MANIFEST,
    ROOT,
    check_consistent,
    owned,
    prepare,
    sha256,
    stale_reasons,
)

PAGES_STAMP = "_build/.pages-inputs.json"


def try_fast(args) -> int | None:
    """The exit status of `args.command` when the fast path can answer it, else None."""
    if os.environ.get("PROPHET_NO_FAST_PATH"):
        return None
    step = {"run": _run, "paper": _paper, "pipeline": _pipeline, "book": _book}.get(args.command)
    if step is None:
        return None
    try:
        rs = RawStudy.load(Path(args.config))
        results_dir = Path(args.results) if args.results else rs.path.parent / Path(rs.results_dir).expanduser()
        if not owned(results_dir) or _environment_newer(results_dir):
            return None
        return step(args, rs, results_dir)
    except Exception:  # unsure: the full path decides (and names any problem)
        return None


def _environment_newer(results_dir: Path) -> bool:
    """Packages installed (scripts/venv.sh) after the results were written: validate again."""
    stamp = Path(sys.prefix) / ".installed"
    return stamp.is_file() and stamp.stat().st_mtime > (results_dir / MANIFEST).stat().st_mtime


def _run(args, rs: RawStudy, results_dir: Path) -> int | None:
    if not args.if_stale or args.systems or args.no_figures:
        return None
    hold_lock(results_dir, LOCK, "the results folder")
    recover(results_dir)  # what a killed command left
    if stale_reasons(results_dir, rs, "run"):
        return None
    print(f"{results_dir}: results up to date (config {rs.config_hash})", file=sys.stderr)
    return 0


def _paper(args, rs: RawStudy, results_dir: Path) -> int | None:
    if not args.if_stale:
        return None
    results_dir = prepare(results_dir)
    hold_lock(results_dir, LOCK, "the results folder")
    recover(results_dir)
    check_consistent(results_dir, rs, needed=("data/all_systems_comparison.csv",), producers=("run",))
    if stale_reasons(results_dir, rs, "paper"):
        return None
    print(f"{results_dir / PAPER_DIR}: up to date", file=sys.stderr)
    return 0


def _pipeline(args, rs: RawStudy, results_dir: Path) -> int | None:
    from prophet_model.workflow.pipeline import is_cached, jobs

    if args.force:
        return None
    hold_lock(results_dir, LOCK, "the results folder")
    check_consistent(results_dir, rs, needed=STUDY_FILES[:2], producers=("run",))
    book = Path(args.book)
    folder = BookFolder(book)
    job_list = jobs(rs, book, results_dir)
    outputs = [j.output.relative_to(book).as_posix() for j in job_list]
    partial = [o.removesuffix(".ipynb") + ".partial.ipynb" for o in outputs]
    if folder.foreign(partial + outputs) or not set(outputs) <= folder.files or not (book / OWNED).is_file():
        return None  # the full path refuses, or records new files
    if any((book / p).exists() or (book / p).is_symlink() for p in partial):
        return None  # a killed pipeline's partial notebook: the full path removes it
    folder.claim(outputs)  # the book folder's lock; nothing new to record
    for stale in (book / "systems").glob("*.ipynb"):
        if stale.relative_to(book).as_posix() not in outputs and folder.owns(stale.relative_to(book).as_posix()):
            return None  # a removed system's notebook to delete
    cache = book / CACHE
    if not all(is_cached(j, cache) for j in job_list):
        return None
    try:
        timings = (cache / "timings.json").read_text(encoding="utf-8")
    except OSError:
        return None
    if timings != json.dumps(read_timings(cache / "timings.json"), indent=1, sort_keys=True) + "\n":
        return None  # the full path would rewrite it
    if not args.quiet:
        for j in job_list:
            print(f"{'cached':8s} {j.name}", file=sys.stderr)
    return 0


def _book(args, rs: RawStudy, results_dir: Path) -> int | None:
    from prophet_model.workflow.site import _digest_tree

    if not args.build:
        return None
    hold_lock(results_dir, LOCK, "the results folder")
    check_consistent(results_dir, rs, needed=(*STUDY_FILES[:2], f"{PAPER_DIR}/macros.tex"))
    book = Path(args.book)
    folder = BookFolder(book)
    stamp = json.loads((book / PAGES_STAMP).read_text())
    if folder.foreign(["_build"]) or stamp["inputs"] != book_inputs(rs, results_dir, book):
        return None
    sources = json.loads((book / "_build" / ".sources.json").read_text())
    index = book / "_build" / "html" / "index.html"
    if sources["digest"] != _digest_tree(book)[0] or not index.is_file():
        return None
    folder.claim(["_build"])  # the book folder's lock, as the full build takes it
    print(f"wrote {int(stamp['pages'])} generated pages to {book / '_generated'}")
    print(f"{index}: up to date")
    return 0


def _git(*args: str) -> str:
    """As outputs/book.py's reproducibility page runs git."""
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _installed() -> list[str]:
    """The distributions on sys.path (name and version in each .dist-info folder's name): the package
    versions the reproducibility page shows."""
    out = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        out += [f"{entry}/{n}" for n in names if n.endswith((".dist-info", ".egg-info", ".egg-link", ".pth"))]
    return sorted(out)


def book_inputs(rs: RawStudy, results_dir: Path, book: Path) -> str:
    """A hash of everything the book's generated pages are made from: the configuration, the package's
    source (templates and benchmarks/results.json included), every file of the results folder (the
    manifest's, the logs, any PDF), the book folder's timings and file list, the git commit and its
    uncommitted changes, the platform, Python and the installed packages, and the folders' paths."""
    from prophet_model.workflow.pipeline import source_digest

    h = hashlib.sha256()

    def add(*parts: object) -> None:
        for p in parts:
            h.update(hashlib.sha256(p if isinstance(p, bytes) else str(p).encode()).digest())

    add(rs.config_hash, rs.path.resolve(), results_dir.resolve(), book.resolve(), source_digest(ROOT))
    for path in sorted(results_dir.rglob("*")):
        if path.is_file() and path.relative_to(results_dir).as_posix() != LOCK:  # the lock names its last holder
            add(path.relative_to(results_dir).as_posix())
            h.update(bytes.fromhex(sha256(path)))  # as add(path.read_bytes()), read once with the steps' checks
    for rel in (f"{CACHE}/timings.json", OWNED):
        add(rel, (book / rel).read_bytes() if (book / rel).is_file() else b"(none)")
    add(_git("rev-parse", "HEAD"), _git("status", "--porcelain", "--untracked-files=no"))
    add(platform.platform(), sys.version, *_installed())
    return h.hexdigest()


def write_pages_stamp(book: Path, inputs: str, pages: int) -> None:
    """After a full `book --build`: what the pages were made from (`inputs`, computed before writing)."""
    path = book / PAGES_STAMP
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(json.dumps({"inputs": inputs, "pages": pages}, indent=1) + "\n")
    tmp.replace(path)  # whole or not at all


MAKE_STEPS = (["run", "--if-stale"], ["paper", "--if-stale"], ["pipeline"], ["book", "--build"])  # the Makefile's


def all_up_to_date(parse, otherwise: list[str] | None = None) -> int:
    """`python -m prophet_model uptodate [--else COMMAND ...]` (the Makefile's `all`): 0 when the fast path
    finds every step of `make` up to date, printing what the four steps would print. Else nothing is
    printed and the exit status is 1, or COMMAND's (`make book`: the steps) when one is given. COMMAND
    runs as this process's child and dies with it (procs.die_with_parent), as the steps do with make: a
    killed `make` leaves nothing running. `parse` is the command line's parser (cli.py)."""
    import contextlib
    import io

    from prophet_model.workflow.once import reading_once
    from prophet_model.workflow.procs import die_with_parent, release_locks

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), reading_once():
        ok = all(try_fast(parse(argv)) == 0 for argv in MAKE_STEPS)
    if ok:
        sys.stderr.write(err.getvalue())
        sys.stdout.write(out.getvalue())
        return 0
    if not otherwise:
        return 1
    release_locks()  # the steps take them
    sys.stdout.flush()
    # close_fds=False: a recursive make keeps the jobserver of `make -jN`
    return subprocess.run(otherwise, check=False, close_fds=False, preexec_fn=die_with_parent).returncode
