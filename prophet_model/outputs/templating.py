"""Jinja2 environment shared by every template (Markdown summaries now, LaTeX later)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import jinja2

from prophet_model.errors import UserError
from prophet_model.outputs import formatting as fmt
from prophet_model.paths import TEMPLATES


def _where(filename: str | None, name: str | None) -> str:
    """A template's file as the user would type it: relative to the repository where it is inside it."""
    if not filename:
        return f"templates/{name}" if name else "a template"
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(TEMPLATES.parent))
    except ValueError:
        return str(path)


class Environment(jinja2.Environment):
    """A Jinja environment whose templates that do not parse are a UserError naming the file and line
    (`templates/x.tex.j2:12: unexpected '}'`), not an internal error."""

    def _load_template(self, name, globals):  # type: ignore[override]  (every get_template and include)
        try:
            return super()._load_template(name, globals)
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(
                f"{_where(exc.filename, exc.name)}:{exc.lineno}: {exc.message}; allowed: Jinja "
                "template syntax (https://jinja.palletsprojects.com/templates/)"
            ) from None


@functools.cache
def environment() -> jinja2.Environment:
    """One environment per process, so that each template is compiled once (compiling the summary's
    template takes longer than rendering it for every system)."""
    env = Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        tokens=fmt.tokens,
        ratio=fmt.ratio,
        pct=fmt.pct,
        usd=fmt.usd,
        ms=fmt.ms,
        number=fmt.number,
        md=fmt.md,
        unit=lambda x, metric: fmt.value_in_unit(x, metric),
    )
    env.tests["nan"] = lambda x: isinstance(x, float) and math.isnan(x)
    return env


@functools.cache
def markdown_environment() -> jinja2.Environment:
    """The book's pages (templates/book/*.md.j2): standard delimiters, no autoescape (Markdown is not HTML);
    every name from the config, a catalog or the user goes through the `md` or `code` filter (fmt.md,
    fmt.code), tables through `table` (fmt.md_table) and collapsed blocks through `dropdown`."""
    env = Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES / "book"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        tokens=fmt.tokens,
        ratio=fmt.ratio,
        pct=fmt.pct,
        usd=fmt.usd,
        ms=fmt.ms,
        sig=fmt.sig,
        count=fmt.count,
        number=fmt.number,
        md=fmt.md,
        code=fmt.code,
        table=fmt.md_table,
        cell=fmt.md_cell,
        dropdown=lambda body, title: fmt.dropdown(title, body),
        unit=lambda x, metric: fmt.value_in_unit(x, metric),
        capital=lambda s: s[:1].upper() + s[1:],
    )
    return env


def render_page(name: str, **context: object) -> str:
    """templates/book/<name>.md.j2 rendered with `context`."""
    return markdown_environment().get_template(f"{name}.md.j2").render(**context)
