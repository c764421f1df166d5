"""The book folder's generated files: which of them the artifact wrote (`pipeline` and `book`), so that
a `--book` folder holding files of the user's is never overwritten or emptied.

The list lives in `<book>/.pipeline-cache/owned.json`, which also marks the folder as the artifact's
(`prepare_book`, as `results.prepare` guards `--results`): a `--book` folder must be new, empty, marked,
a Jupyter Book's source folder (`_toc.yml`) or the repository's `book/`; `/`, the home, current and
repository folders and their parents are refused. A path the artifact is about to write is refused when
a file it did not write stands there; a generated file is removed only when the list names it. The
repository's own `book/` adopts the generated files an older version left (their paths are in
.gitignore: only the artifact writes them there). What a killed `pipeline` leaves (partial notebooks,
listed before they are written) is removed by the next one (`recover`) and by `clean`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from prophet_model.errors import UserError
from prophet_model.paths import ROOT

CACHE = ".pipeline-cache"
OWNED = f"{CACHE}/owned.json"
LOCK = f"{CACHE}/lock"
# What the artifact writes into a book folder (an older version's files, in the repository's book/).
GENERATED = ("systems/*.ipynb", "cross_system.ipynb", "validation.ipynb", "sensitivity.ipynb", "_generated/**/*")


def is_repository_book(book_dir: Path) -> bool:
    """Whether `book_dir` is the repository's own book/."""
    try:
        return Path(book_dir).resolve() == (ROOT / "book").resolve()
    except OSError:
        return False


class BookFolder:
    """The artifact's files in one book folder."""

    def __init__(self, book_dir: Path) -> None:
        self.dir = Path(book_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise UserError(f"--book {self.dir}: is a file, not a folder; allowed: a book folder (default: book)")
        self.files: set[str] = set()
        self._load()

    def _load(self) -> None:
        path = self.dir / OWNED
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self.files = {str(p) for p in data["files"] if isinstance(p, str)}
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                raise UserError(f"{path}: not a list of the artifact's book files ({exc}); move it away") from None
        elif self._is_repository_book():
            self.files = {
                p.relative_to(self.dir).as_posix() for g in GENERATED for p in self.dir.glob(g) if p.is_file()
            }
            if (self.dir / "_build").is_dir():
                self.files.add("_build")

    def _is_repository_book(self) -> bool:
        return is_repository_book(self.dir)

    def foreign(self, rels: list[str]) -> list[str]:
        """Those of `rels` where a file or folder stands that the artifact did not write."""
        return [
            rel
            for rel in rels
            if ((self.dir / rel).exists() or (self.dir / rel).is_symlink()) and rel not in self.files
        ]

    def claim(self, rels: list[str]) -> None:
        """Refuse (UserError) before anything is written if a path is the user's; else record them. The
        first claim takes the folder's lock (held until the command ends)."""
        from prophet_model.workflow.procs import hold_lock

        for locked in (False, True):
            self._load()
            theirs = self.foreign(rels)
            if theirs:
                raise UserError(
                    f"--book {self.dir}: {len(theirs)} path(s) the artifact would write hold files it did not "
                    f"make: {', '.join(theirs[:5])}{' …' if len(theirs) > 5 else ''}; nothing was changed. Move "
                    "them away, or choose another book folder with --book DIR"
                )
            if not locked:
                hold_lock(self.dir, LOCK, "the book folder")
        if not set(rels) <= self.files or not (self.dir / OWNED).is_file():
            self.files |= set(rels)
            self.save()

    def owns(self, rel: str) -> bool:
        return rel in self.files

    def remove(self, rel: str) -> None:
        """Remove a generated file the artifact wrote; anything else stays."""
        if rel in self.files:
            (self.dir / rel).unlink(missing_ok=True)
            self.files.discard(rel)
            self.save()

    def save(self) -> None:
        path = self.dir / OWNED
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"owned.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"files": sorted(self.files)}, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)

    def recover(self) -> list[str]:
        """Remove what a killed command left (its lock held): the partial notebooks the list names and
        half-written copies of the list of dead processes. Returns the paths removed."""
        from prophet_model.workflow.procs import pid_alive

        gone = []
        for rel in sorted(self.files):
            path = self.dir / rel
            if rel.endswith(".partial.ipynb") and (path.is_file() or path.is_symlink()):
                path.unlink()
                gone.append(rel)
        for tmp in (self.dir / CACHE).glob("owned.*.tmp"):
            pid = tmp.name.split(".")[1]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)) and not tmp.is_symlink():
                tmp.unlink()
                gone.append(tmp.relative_to(self.dir).as_posix())
        return gone

    def clean(self) -> list[str]:
        """Remove every file the list names (the executed notebooks, generated pages, partial notebooks, the
        site), the folders they leave empty and the artifact's cache; anything else stays. Returns the
        generated folders' files that are kept (the user's)."""
        from prophet_model.workflow.procs import hold_lock

        hold_lock(self.dir, LOCK, "the book folder")
        self._load()
        for rel in sorted(self.files):
            path = self.dir / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.is_file() or path.is_symlink():
                path.unlink()
        kept = []
        for top in ("systems", "_generated"):
            here = self.dir / top
            if here.is_dir() and not here.is_symlink():
                for d in sorted(
                    (p for p in [here, *here.rglob("*")] if p.is_dir() and not p.is_symlink()), reverse=True
                ):
                    if not any(d.iterdir()):
                        d.rmdir()
                kept += [p.relative_to(self.dir).as_posix() for p in here.rglob("*") if not p.is_dir()]
        self.files = set()
        shutil.rmtree(self.dir / CACHE, ignore_errors=True)
        return sorted(kept)


def _first_files(folder: Path, n: int = 5) -> list[str]:
    """Up to `n` entries of `folder` (files, with their path below it), without reading the whole tree."""
    out: list[str] = []
    for here, dirs, files in os.walk(folder):
        dirs.sort()
        rel = Path(here).relative_to(folder)
        out += [(rel / f).as_posix() for f in sorted(files)][: n - len(out)]
        if len(out) >= n:
            break
    return out or sorted(p.name for p in folder.iterdir())[:n]


def prepare_book(book_dir: Path, label: str = "--book") -> BookFolder:
    """The book folder, checked as `results.prepare` checks a results folder, created and marked if new or
    empty. UserError (nothing written) for a folder that may not be the artifact's."""
    from prophet_model.workflow.procs import EnvironmentProblem
    from prophet_model.workflow.results import _protected

    d = Path(book_dir).expanduser()
    how = (
        f"allowed: a new or empty folder, one the artifact made (it holds {OWNED}), a Jupyter Book's source "
        "folder (it holds _toc.yml), or the default book"
    )
    if d.is_symlink() and not d.exists():
        raise UserError(
            f"{label} {d}: a symbolic link to a missing folder ({os.readlink(d)}); nothing was changed; {how}"
        )
    try:
        resolved = d.resolve()
    except (OSError, RuntimeError) as exc:
        raise UserError(f"{label} {d}: cannot resolve the path ({exc}); nothing was changed; {how}") from None
    repository = resolved == (ROOT / "book").resolve()
    if resolved in _protected() and not repository:
        raise UserError(
            f"{label} {d}: refusing to write a book into {resolved} (the root, home, current or repository "
            f"folder, or a parent of one); nothing was changed; {how}"
        )
    if d.exists() and not d.is_dir():
        raise UserError(f"{label} {d}: is a file, not a folder; nothing was changed; {how}")
    try:
        if d.is_dir():
            if not repository and not (d / OWNED).is_file() and not (d / "_toc.yml").is_file():
                theirs = _first_files(d)
                if theirs:
                    more = " …" if len(theirs) >= 5 else ""
                    raise UserError(
                        f"{label} {d}: the folder is not empty ({', '.join(theirs)}{more}) "
                        f"and was not made by this artifact (no {OWNED}); nothing was changed; {how}"
                    )
        else:
            d.mkdir(parents=True)
        folder = BookFolder(d)
        if not (d / OWNED).is_file() and not (d / "_toc.yml").is_file():
            folder.save()  # the mark (a Jupyter Book source of the user's gets it with the first page written)
    except OSError as exc:
        raise EnvironmentProblem(
            f"{label} {d}: cannot create or write the folder ({exc.strerror or exc}); allowed: "
            "a folder this user can write, on a disk with free space"
        ) from None
    return folder
