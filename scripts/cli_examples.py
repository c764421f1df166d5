"""Refresh the example command-line sessions of README.md and book/getting_started.md from real runs.

A session is a fenced ```text block whose lines starting with `$ ` are commands; the lines after each
command are its output. Every block's commands run, in order, in a fresh private copy of the checkout
(prophet_model.workflow.sandbox.copy_checkout: the repository's results/ and files are never touched),
from its root, with stdout and stderr on one pipe (Python unbuffered, so in the order a terminal shows
them), and the output lines are replaced with what they printed. The `$ ` lines stay as written, as does
whether a blank line precedes each one.

What a block needs is set up first, as the prose around it says:
- `/tmp/my-study/study.yml` ("a copy of `_config.yml` in a folder of its own, with no `catalog/` beside it"):
  made in a temporary folder, the command pointed at it, and its path written back as /tmp/my-study;
- `compare results-a results-b`: `run --results results-a --quiet --no-figures` of the study, then the
  same into results-b after setting `prophet.comm_reduction_factor: 8` in the copy's `_config.yml`;
- `python3 -m prophet_model ...` (a Python without the artifact's packages): run with /usr/bin/python3,
  or the `python3` on PATH, whichever lacks pandas; none: the block is reported as not run and left as is.
Paths of the private copy in an output are written as /path/to/prophet-artifact.

Run: `make examples`, or .venv/bin/python scripts/cli_examples.py [--check] [--only TEXT]
--check writes nothing and exits 1 naming each block whose shown output differs from the real one;
--only runs only the blocks with a command containing TEXT.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prophet_model.workflow.sandbox import copy_checkout  # noqa: E402

PAGES = ("README.md", "book/getting_started.md")
SHOWN_STUDY = "/tmp/my-study"  # the folder the README's prose shows
SHOWN_CHECKOUT = "/path/to/prophet-artifact"  # how a path of the private copy is written
COMPARED = ("results-a", "results-b")
FENCE = re.compile(r"^\s*```(\S*)")  # an opening fence and its info string ({include} too)


class NotRunnable(Exception):
    """A block this machine cannot run as the page shows it."""


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    start: int  # index of the first content line in the page's lines
    end: int  # index of the closing fence
    content: list[str]

    @property
    def commands(self) -> list[str]:
        return [x[2:] for x in self.content if x.startswith("$ ")]

    def name(self) -> str:
        first = self.commands[0]
        return f"{self.page}:{self.line} ($ {first[:70]}{'...' if len(first) > 70 else ''})"


def sessions(page: str, lines: list[str]) -> list[Block]:
    """Every ```text block of the page that holds a `$ ` command line."""
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        content = lines[i + 1 : j]
        if m.group(1) == "text" and any(x.startswith("$ ") for x in content):
            found.append(Block(page, i + 1, i + 1, j, content))
        i = j + 1
    return found


def bare_python() -> str:
    """A python3 that lacks the artifact's packages (pandas), as the README's session needs."""
    for cand in ("/usr/bin/python3", shutil.which("python3")):
        if cand and Path(cand).exists():
            probe = subprocess.run([cand, "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('pandas') is not None)"],
                                   capture_output=True, check=False)  # fmt: skip
            if probe.returncode == 0:
                return cand
    raise NotRunnable("no python3 without pandas on this machine (tried /usr/bin/python3 and PATH's python3)")


def made(proc: subprocess.CompletedProcess) -> None:
    """A set-up step that failed stops the block: its output would be invented otherwise."""
    if proc.returncode != 0:
        raise NotRunnable(f"set-up `{' '.join(proc.args[-5:])}` failed: {(proc.stdout + proc.stderr)[-300:]}")


def setup(block: Block, work: Path, tmp: Path) -> dict[str, str]:
    """Prepare what the block's commands need; returns {text in the command: what it runs as}."""
    text = "\n".join(block.commands)
    swaps: dict[str, str] = {}
    if SHOWN_STUDY in text:
        study = tmp / "my-study"
        study.mkdir()
        shutil.copy2(work / "_config.yml", study / "study.yml")
        swaps[SHOWN_STUDY] = str(study)
    if f"compare {COMPARED[0]} {COMPARED[1]}" in text:
        py = [str(work / ".venv" / "bin" / "python"), "-m", "prophet_model", "run", "--quiet", "--no-figures"]
        made(subprocess.run([*py, "--results", COMPARED[0]], cwd=work, capture_output=True, text=True, check=False))
        cfg = work / "_config.yml"
        changed, n = re.subn(r"(?m)^(  comm_reduction_factor:) .*$", r"\1 8", cfg.read_text(encoding="utf-8"))
        if n != 1:
            raise NotRunnable("prophet.comm_reduction_factor not found once in _config.yml")
        cfg.write_text(changed, encoding="utf-8")
        made(subprocess.run([*py, "--results", COMPARED[1]], cwd=work, capture_output=True, text=True, check=False))
    return swaps


def run_command(command: str, work: Path, swaps: dict[str, str]) -> str:
    """The command's output, as a terminal shows it."""
    for shown, real in swaps.items():
        command = command.replace(shown, real)
    if command.startswith("python3 "):
        command = bare_python() + command[len("python3") :]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(["bash", "-c", command], cwd=work, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False, timeout=600)  # fmt: skip
    out = proc.stdout
    for shown, real in swaps.items():
        out = out.replace(real, shown)
    return out.replace(str(work), SHOWN_CHECKOUT).rstrip("\n")


def refreshed(block: Block) -> list[str]:
    """The block's lines with each command's output replaced by a real run's."""
    with tempfile.TemporaryDirectory(prefix="prophet-examples-") as t:
        tmp = Path(t)
        work = copy_checkout(tmp / "checkout")
        swaps = setup(block, work, tmp)
        lines: list[str] = []
        for k, x in enumerate(block.content):
            if not x.startswith("$ "):
                continue
            if lines and k > 0 and block.content[k - 1] == "":
                lines.append("")
            lines.append(x)
            out = run_command(x[2:], work, swaps)
            if str(tmp) in out or re.search(r"/tmp/prophet-examples-", out):
                raise NotRunnable(f"its output holds a temporary path: {out[:200]}")
            if out:
                lines.extend(out.split("\n"))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a shown output differs")
    ap.add_argument("--only", metavar="TEXT", help="only the blocks with a command containing TEXT")
    args = ap.parse_args(argv)
    differ, not_run, seen = [], [], 0
    for page in PAGES:
        path = ROOT / page
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        page_differ, page_not_run = [], []
        blocks = [b for b in sessions(page, lines) if not args.only or any(args.only in c for c in b.commands)]
        seen += len(blocks)
        for b in reversed(blocks):  # from the end, so earlier blocks' line numbers hold
            try:
                new = refreshed(b)
            except NotRunnable as e:
                page_not_run.insert(0, f"{b.name()}: not run: {e}")
                continue
            if new != b.content:
                page_differ.insert(0, b.name())
                lines[b.start : b.end] = new
        differ += page_differ
        not_run += page_not_run
        if not args.check and "\n".join(lines) != text:
            path.write_text("\n".join(lines), encoding="utf-8")
            print(f"wrote {page}")
    for x in not_run:
        print(x, file=sys.stderr)
    if not seen:
        print(f"error: no example session with a command containing {args.only!r}", file=sys.stderr)
        return 2
    if args.check:
        for name in differ:
            print(f"output differs: {name}")
        return 1 if differ else 0
    print(f"{len(differ)} block(s) refreshed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
