"""The book folder's generated files: which of them the artifact wrote (`pipeline` and `book`), so that
a `--book` folder holding files of the user's is never overwritten or emptied.

The list lives in `<book>/.pipeline-cache/owned.json`. A path the artifact is about to write is
refused when a file it did not write stands there; a generated file is removed only when the list
names it. The repository's own `book/` adopts the generated files an older version left (their paths
are in .gitignore: only the artifact writes them there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prophet_model.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
CACHE = ".pipeline-cache"
OWNED = f"{CACHE}/owned.json"
LOCK = f"{CACHE}/lock"
# What the artifact writes into a book folder (an older version's files, in the repository's book/).
GENERATED = ("systems/*.ipynb", "cross_system.ipynb", "validation.ipynb", "sensitivity.ipynb", "_generated/**/*")


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
            self.files = {p.relative_to(self.dir).as_posix() for g in GENERATED for p in self.dir.glob(g)
                          if p.is_file()}  # fmt: skip
            if (self.dir / "_build").is_dir():
                self.files.add("_build")

    def _is_repository_book(self) -> bool:
        try:
            return self.dir.resolve() == (ROOT / "book").resolve()
        except OSError:
            return False

    def foreign(self, rels: list[str]) -> list[str]:
        """Those of `rels` where a file or folder stands that the artifact did not write."""
        return [rel for rel in rels if ((self.dir / rel).exists() or (self.dir / rel).is_symlink())
                and rel not in self.files]  # fmt: skip

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
