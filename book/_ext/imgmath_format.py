"""Sphinx extension for this book: `sphinx.ext.imgmath` starts from a LaTeX format that holds its preamble.

imgmath runs `latex` once per formula. Most of each run (about 0.1 of 0.27 s here) goes to loading the
preamble's packages again. Before the build, this extension renders imgmath's own template for an empty
formula. It dumps everything before `\\begin{document}` into a format with `latex -ini` (about 0.5 s, once per
preamble and TeX version). It then passes `-fmt=<that format>` to every formula's `latex`.

- The format also makes a second `\\documentclass` a no-op. So the template still compiles unchanged: its
  `\\usepackage` lines find their packages already loaded.
- The images keep the same names (a hash of the template's text) and the same bytes.
- If the format cannot be made (another `imgmath_latex`, no `latex`, an error), imgmath runs as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

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


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.imgmath")
    app.connect("config-inited", use_format, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
