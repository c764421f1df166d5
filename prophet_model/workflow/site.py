"""Building the book's site with jupyter-book: skipped when no source changed, from scratch when pages
were added or removed, a short error (and the full output in a log) when the build fails."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from prophet_model.errors import UserError
from prophet_model.workflow.bookdir import BookFolder


def _digest_tree(book_dir: Path) -> tuple[str, list[str]]:
    """A hash of every book source (pages, generated fragments, executed notebooks, config), and the
    list of documents, which decides whether a clean build is needed."""
    import hashlib

    h = hashlib.sha256()
    docs = []
    skip = ("_build", ".pipeline-cache")
    for path in sorted(book_dir.rglob("*")):
        rel = path.relative_to(book_dir)
        if (
            rel.parts[0] in skip
            or "__pycache__" in rel.parts
            or not path.is_file()
            or path.name.endswith(".partial.ipynb")
        ):
            continue  # __pycache__: Python's cache of _ext/, written by the build itself
        h.update(rel.as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        if path.suffix in (".md", ".ipynb") and rel.parts[0] != "_generated":
            docs.append(rel.as_posix())
    return h.hexdigest(), docs


def build_error_cause(output: str) -> str:
    """The line of a failed jupyter-book build that names its cause: the first Sphinx warning (-W makes
    it an error), else the first exception with a message (the root of a chained traceback), else
    the last line; colours removed, at most 300 characters."""
    import re

    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines() if ln.strip()]
    warnings = [ln for ln in lines if re.search(r"\b(WARNING|ERROR|CRITICAL):\s*\S", ln)]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\w*:\s*\S", ln) and "Look above" not in ln]
    return ((warnings or errors or lines or ["no output"])[0])[:300]


def build_site(folder: BookFolder) -> str:
    """jupyter-book build BOOK -W --keep-going, skipped when no source changed since the last
    successful build. When documents were added or removed (a system left the config) the old site
    is removed first, so no page of a removed system stays. A `_build` folder the artifact did not
    make is refused, never removed."""
    import sys

    from prophet_model.workflow.procs import die_with_parent

    book_dir = folder.dir
    folder.claim(["_build"])
    stamp = book_dir / "_build" / ".sources.json"
    digest, docs = _digest_tree(book_dir)
    try:  # a stamp a killed build left half-written counts as none
        old = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else {}
    except (ValueError, UnicodeDecodeError):
        old = {}
    if not isinstance(old, dict):
        old = {}
    index = book_dir / "_build" / "html" / "index.html"
    if old.get("digest") == digest and index.is_file():
        return f"{index}: up to date"
    if old.get("documents") != docs:
        shutil.rmtree(book_dir / "_build", ignore_errors=True)
    exe = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run(
        [str(exe), "build", str(book_dir), "-W", "--keep-going", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=die_with_parent,
    )
    if proc.returncode != 0:  # a short error; jupyter-book's own output (a traceback, often) goes to a log
        output = proc.stdout + proc.stderr
        log_path = book_dir / "_build" / "jupyter-book-error.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(output, encoding="utf-8")
        cause = build_error_cause(output)
        raise UserError(
            f"{book_dir}: jupyter-book build failed (exit {proc.returncode}): {cause}; its full output is in {log_path}"
        )
    tmp = stamp.with_name(f"{stamp.name}.tmp")
    tmp.write_text(json.dumps({"digest": digest, "documents": docs}, indent=1) + "\n", encoding="utf-8")
    tmp.replace(stamp)  # whole or not at all
    return f"built {index}"
