"""Sphinx extension for this book: `sphinx.ext.imgmath` starts from a LaTeX format that holds its preamble.

imgmath runs `latex` once per formula. Most of each run (about 0.1 of 0.27 s here) goes to loading the
preamble's packages again. Before the build, this extension renders imgmath's own template for an empty
formula. It dumps everything before `\\begin{document}` into a format with `latex -ini` (about 0.5 s, once per
preamble and TeX version). It then passes `-fmt=<that format>` to every formula's `latex`.

- The format also makes a second `\\documentclass` a no-op. So the template still compiles unchanged: its
  `\\usepackage` lines find their packages already loaded.
- The images keep the same names (a hash of the template's text) and the same bytes.
- If the format cannot be made (another `imgmath_latex`, no `latex`, an error), imgmath runs as before.

Each formula still costs a `latex` and a `dvipng` run (about 0.25 s: 35 of a from-scratch build's 41 s for 139
formulas). So, once every page is read and before any is written, the formulas the pages hold are rendered
side by side (one at a time per core) into the folder where imgmath looks for them, under the same names, with
imgmath's own functions; imgmath then finds them made. A formula rendered once is also kept in a cache folder,
`<book>/.pipeline-cache/imgmath/<key>/` (or $PROPHET_IMGMATH_CACHE/<key>/, which the test session shares between
its books), and copied from there by later builds, also from scratch; builds at once take turns (a lock file).
The key covers the latex and dvipng commands and options and their versions; an image's name covers its formula
and the preamble. Anything that fails here is left to imgmath, which renders it as before and reports any error.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from hashlib import sha1
from pathlib import Path
from types import SimpleNamespace

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

log = logging.getLogger(__name__)
BEGIN = "\\begin{document}"
# After the class and packages are loaded: the template's own \documentclass line is skipped.
DUMP = "\\makeatletter\\renewcommand\\documentclass[2][]{}\\makeatother\n\\dump\n"


def preamble(config: Config, confdir: str) -> str | None:
    """The text imgmath puts before `\\begin{document}` in every formula's file (its template, rendered)."""
    from sphinx.ext.imgmath import generate_latex_macro

    text = generate_latex_macro(config.imgmath_image_format, "", config, confdir)
    return text.split(BEGIN, 1)[0] if BEGIN in text else None


def make_format(latex: str, text: str, folder: Path) -> Path | None:
    """`<folder>/imgmath-<hash>.fmt` dumped from `text` (kept while the preamble and TeX are the same), or
    None when latex fails. The hash covers the preamble and `latex --version`."""
    try:
        version = subprocess.run([latex, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    name = "imgmath-" + hashlib.sha256((text + "\0" + version).encode()).hexdigest()[:16]
    fmt = folder / f"{name}.fmt"
    if fmt.is_file():
        return fmt
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "preamble.tex").write_text(text + DUMP, encoding="utf-8")
        try:
            subprocess.run([latex, "-ini", "-interaction=nonstopmode", f"-jobname={name}", "&latex", "preamble.tex"],
                           cwd=tmp, capture_output=True, timeout=120, check=True)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        made = Path(tmp) / f"{name}.fmt"
        if not made.is_file():
            return None
        part = folder / f".{name}.{os.getpid()}.part"  # whole or absent: a format is never read half-written
        shutil.copyfile(made, part)
        os.replace(part, fmt)
    return fmt


def use_format(app: Sphinx, config: Config) -> None:
    """At config-inited, before Sphinx compares the configuration with the last build's: the format's path
    depends only on the preamble and TeX, so an unchanged book is not rebuilt for it."""
    if config.html_math_renderer != "imgmath" or Path(config.imgmath_latex).name != "latex":
        return
    if config.imgmath_image_format != "png" or config.imgmath_use_preview:
        return
    text = preamble(config, app.confdir)
    fmt = make_format(config.imgmath_latex, text, Path(app.outdir).parent / ".imgmath-format") if text else None
    if fmt is None:
        log.info("imgmath_format: no LaTeX format; every formula loads its preamble")
        return
    config.imgmath_latex_args = [f"-fmt={fmt.with_suffix('')}", *config.imgmath_latex_args]


CACHE_ENV = "PROPHET_IMGMATH_CACHE"


def _latex_texts(doctree: nodes.Node) -> list[str]:
    """The formulas of a page as imgmath's HTML visitors pass them to render_math."""
    from sphinx.ext.imgmath import wrap_displaymath

    out = ["$" + n.astext() + "$" for n in doctree.findall(nodes.math)]
    for n in doctree.findall(nodes.math_block):
        out.append(n.astext() if n.get("nowrap") else wrap_displaymath(n.astext(), None, False))
    return out


def _version(command: str) -> str:
    try:
        return subprocess.run([command, "--version"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        return "?"


def _cache_dir(app: Sphinx) -> Path:
    """The cache folder of this build's commands (see the module's docstring)."""
    c = app.config
    latex_args = [a for a in c.imgmath_latex_args if not a.startswith("-fmt=")]  # the format: named by its content
    key = repr((c.imgmath_latex, latex_args, _version(c.imgmath_latex), c.imgmath_dvipng, c.imgmath_dvipng_args,
                _version(c.imgmath_dvipng), c.imgmath_image_format))  # fmt: skip
    root = Path(os.environ.get(CACHE_ENV) or Path(app.srcdir) / ".pipeline-cache" / "imgmath")
    return root / hashlib.sha256(key.encode()).hexdigest()[:16]


def _keep(source: Path, dest: Path) -> None:
    """Copy `source` to `dest` whole or not at all (builds may share the cache)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{os.getpid()}.{id(source)}.part")
    shutil.copyfile(source, part)
    os.replace(part, dest)


def _render(app: Sphinx, latex: str, cache: Path, work: Path) -> None:
    """The image imgmath would make for `latex`, where it would look for it: copied from the cache, else rendered
    (imgmath's compile_math and convert_dvi_to_png, in a folder of this formula's own) and kept in the cache."""
    from sphinx.ext.imgmath import compile_math, convert_dvi_to_png, generate_latex_macro

    text = generate_latex_macro("png", latex, app.config, app.confdir)
    name = f"{sha1(text.encode(), usedforsecurity=False).hexdigest()}.png"
    target = Path(app.builder.outdir) / app.builder.imagedir / "math" / name
    if target.is_file():
        return
    if (cache / name).is_file():
        _keep(cache / name, target)
        return
    own = SimpleNamespace(config=app.config, _imgmath_tempdir=tempfile.mkdtemp(dir=work))
    made = Path(own._imgmath_tempdir) / name
    convert_dvi_to_png(compile_math(text, own), own, str(made))
    _keep(made, cache / name)
    _keep(made, target)


def prerender(app: Sphinx, env) -> None:
    """At env-updated (every page read, none written): the formulas of the pages read, side by side."""
    texts = sorted(set(getattr(app, "_prophet_math", ())))
    c = app.config
    if not texts or c.html_math_renderer != "imgmath" or c.imgmath_image_format != "png" or c.imgmath_use_preview:
        return
    if c.imgmath_embed or Path(c.imgmath_latex).name != "latex":
        return
    cache = _cache_dir(app)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # builds at once (the tests') take turns: the later copies what one made
        with tempfile.TemporaryDirectory() as work, ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for done in [pool.submit(_render, app, t, cache, Path(work)) for t in texts]:
                try:
                    done.result()
                except Exception:  # left to imgmath, which renders it again and reports the error
                    pass


def collect(app: Sphinx, doctree: nodes.Node) -> None:
    """At doctree-read: the page's formulas, for prerender."""
    if not hasattr(app, "_prophet_math"):
        app._prophet_math = []
    app._prophet_math += _latex_texts(doctree)


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.imgmath")
    app.connect("config-inited", use_format, priority=900)
    app.connect("doctree-read", collect)
    app.connect("env-updated", prerender)
    return {"parallel_read_safe": True, "parallel_write_safe": True}  # a parallel read prerenders less
