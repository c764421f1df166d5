"""The book, built from a fresh run into a temporary folder, opened page by page in headless Chromium
(Debian's package): no console errors, every image loaded, every internal link resolves, the key figure
on the cross-system page, the claims equal to the CSV, no number typed by hand in the static pages."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from prophet_model.cli import main
from prophet_model.outputs import formatting as fmt

from .conftest import ROOT, dump_yaml, load_yaml, only_systems

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
# A system name with HTML, Markdown, MyST and LaTeX specials: it must show literally and never run.
HOSTILE = '8×A100 <script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> *em* _u_ $x$ & {doc}`y` | #h'


def hostile(field: str) -> str:
    """A name for `field` with HTML, Markdown, MyST, LaTeX and code-fence specials; it must show literally and
    never run (a script that runs sets window.__pwned to the field's name)."""
    return (
        f"{field} <script>window.__pwned='{field}'</script><img src=x onerror=\"window.__pwned='{field}'\"> "
        f"*em* _u_ $x$ & {{doc}}`y` | #h ```{{raw}} html``` <!-- ]]> %}}{{{{ x }}}}"
    )


HOSTILE_FIELDS = ("title", "model", "gpu", "interconnect")  # beside the system name, HOSTILE
# the hostile book's systems: four of the default study's (every kind of page; the other systems' pages are
# alike and take CI time)
BOOK_SYSTEMS = ("2xA100", "4xH100", "8xA100", "10xA6000")
STATIC_PAGES = [
    "intro.md",
    "getting_started.md",
    "assumptions.md",
    "sanity_checks.md",
    "paper_outputs.md",
    "reproducibility.md",
    "model.md",
    "glossary.md",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(html folder, results folder) of a book built the way `make` builds it, in a temporary folder."""
    tmp = tmp_path_factory.mktemp("site")
    book = tmp / "book"
    shutil.copytree(
        ROOT / "book",
        book,
        ignore=shutil.ignore_patterns(
            "_build",
            "_generated",
            "systems",
            "cross_system.ipynb",
            "validation.ipynb",
            "sensitivity.ipynb",
            ".pipeline-cache",
        ),
    )
    study = tmp / "study"  # the default study, with a hostile system name
    shutil.copytree(ROOT / "catalog", study / "catalog")
    data = load_yaml(ROOT / "_config.yml")
    next(x for x in data["systems"] if x["id"] == "8xA100")["name"] = HOSTILE
    data["study"]["title"] = hostile("title")
    dump_yaml(only_systems(data, BOOK_SYSTEMS), study / "_config.yml")
    for catalog, field in (("models", "model"), ("gpus", "gpu"), ("interconnects", "interconnect")):
        entries = load_yaml(study / "catalog" / f"{catalog}.yml")
        for i, entry in enumerate(entries.values()):
            entry["name"] = f"{hostile(field)} {i}"
        dump_yaml(entries, study / "catalog" / f"{catalog}.yml")
    results, cfg = tmp / "results", str(study / "_config.yml")
    assert main(["run", "--config", cfg, "--results", str(results), "--quiet"]) == 0
    assert main(["pipeline", "--config", cfg, "--results", str(results), "--book", str(book), "--quiet"]) == 0
    assert main(["paper", "--config", cfg, "--results", str(results)]) == 0
    assert main(["book", "--config", cfg, "--results", str(results), "--book", str(book)]) == 0
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run(
        [str(jb), "build", str(book), "-W", "--keep-going"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return book / "_build" / "html", results


@pytest.fixture(scope="module")
def server(built):
    html, _ = built
    handler = functools.partial(_QuietHandler, directory=str(html))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium missing: run scripts/install-system-deps.sh"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def pages(html: Path) -> list[str]:
    skip = {"genindex.html", "search.html"}
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_") and p.name not in skip)  # fmt: skip


WIDE_TABLES = """() => {
    const col = document.querySelector('.bd-article');
    return [...col.querySelectorAll('table')].map(t => [t.getBoundingClientRect().right,
            col.getBoundingClientRect().right, t.getBoundingClientRect().width])
        .filter(([r, c]) => r > c + 1).map(([r, c, w]) => [w, c - (r - w)]);
}"""


@pytest.fixture(scope="module")
def visits(built, server, browser) -> dict[str, dict]:
    """Every page of the hostile-name site visited once at 1280 x 900 px until the network is idle, as a reader's
    browser loads it, and what the tests below check read off it: {page: {"problems": what the browser reported
    (console errors, page errors, failed requests, HTTP errors), "unloaded": images not loaded, "links": the
    page's link targets, "pwned": window.__pwned (the field whose name ran as a script, if any), "wide": tables
    past the text column, "broken": header words broken across lines, "text" and "alts": the visible text and
    the images' alt texts, "prose": the text a person reads}. Each page is also screenshotted whole into
    tests/output/ (ignored by git, to look at)."""
    html, _ = built
    out = ROOT / "tests" / "output"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.jpg"):
        old.unlink()
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text} at {m.location.get('url', '')}")
            if m.type == "error" else None)  # fmt: skip
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    seen: dict[str, dict] = {}
    for name in pages(html):
        problems.clear()
        page.goto(f"{server}/{name}", wait_until="networkidle")
        v: dict = {"problems": list(problems)}
        v["unloaded"] = page.evaluate(
            "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )
        v["links"] = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
        v["pwned"] = page.evaluate("String(window.__pwned)")
        v["wide"] = page.evaluate(WIDE_TABLES)
        page.screenshot(path=str(out / (name.replace("/", "_").removesuffix(".html") + ".jpg")), full_page=True,
                        type="jpeg", quality=60)  # fmt: skip
        v["broken"] = page.evaluate(BROKEN_HEADERS)
        v["text"], v["alts"] = page.evaluate(VISIBLE_TEXT)
        v["prose"] = page.evaluate(PROSE_TEXT)
        v["problems"] += problems[len(v["problems"]) :]  # reported while the page was read
        seen[name] = v
    page.close()
    return seen


def test_the_book_has_every_page(built) -> None:
    html, _ = built
    got = set(pages(html))
    for name in ("intro.html", "getting_started.html", "assumptions.html", "model.html", "cross_system.html",
                 "sanity_checks.html", "sensitivity.html", "validation.html", "paper_outputs.html", "reproducibility.html"):  # fmt: skip
        assert name in got
    assert {f"systems/{s}.html" for s in ("0002-2xA100", "0004-4xH100", "0008-8xA100", "0010-10xA6000")} <= got
    # browsers ask the site root for /favicon.ico on pages without an icon link (index.html redirects)
    assert (html / "favicon.ico").is_file()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_every_page_loads_cleanly_in_chromium(visits, server) -> None:
    problems: list[str] = []
    checked_links: dict[str, int] = {}
    for name, v in visits.items():
        problems += [f"{name}: {p}" for p in v["problems"]]
        problems += [f"{name}: image not loaded: {src}" for src in v["unloaded"]]
        for href in v["links"]:
            target = urllib.parse.urldefrag(href).url
            if not target.startswith(server):
                continue  # external links are not followed (no network)
            if target not in checked_links:
                checked_links[target] = _status(target)
            if checked_links[target] != 200:
                problems.append(f"{name}: broken link {href} ({checked_links[target]})")
    assert not problems, "\n".join(problems)
    assert len(checked_links) > 20


def test_the_book_reads_well(built, server, browser, visits) -> None:
    """Systems in GPU-count order in the navigation; at 1280 px no table runs past the text column; no
    table shows a pandas index; notebook parameters shown once; every figure of a system page and the
    cross-system page links to its PDF (which loads) and names the command that made it."""
    html, _ = built
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/intro.html", wait_until="networkidle")
    nav = page.evaluate("[...document.querySelectorAll('nav.bd-links a')].map(a => a.getAttribute('href'))")
    systems = [h.split("/")[-1].removesuffix(".html") for h in nav if "systems/" in h]
    counts = [int(s.split("-", 1)[0]) for s in systems]
    assert len(systems) == len(BOOK_SYSTEMS) and counts == sorted(counts), systems
    wide = [f"{name}: table {w:.0f} px in a {c:.0f} px column" for name, v in visits.items() for w, c in v["wide"]]
    page.close()
    assert not wide, "\n".join(wide)
    from bs4 import BeautifulSoup

    for name in ("systems/0008-8xA100.html", "cross_system.html", "validation.html", "sensitivity.html"):
        soup = BeautifulSoup((html / name).read_text(), "html.parser")
        tables = soup.select("table.prophet-table")
        assert tables or name == "sensitivity.html", f"{name}: no table shown through views.table_html"
        for t in tables:
            assert not t.select("tbody th"), f"{name}: a table shows an index column"
        # results first: no code cell's source on the page (the papermill parameters neither), only what it shows
        assert not soup.select("div.cell_input"), f"{name}: shows a code cell's source"
        params = [c for c in soup.select("div.cell") if "config =" in c.get_text() and "results =" in c.get_text()]
        assert not params, f"{name}: parameters shown {len(params)} times"
    for name, depth in (("systems/0008-8xA100.html", "../"), ("cross_system.html", "")):
        soup = BeautifulSoup((html / name).read_text(), "html.parser")
        links = [a["href"] for a in soup.find_all("a", href=True) if a["href"].endswith(".pdf")]
        figures = soup.select("div.cell_output img")
        assert links and len(links) == len(figures), (name, links, len(figures))
        for href in links:
            assert href.startswith(f"{depth}figures/") and (html / name).parent.joinpath(href).resolve().is_file()
        assert "made by" in soup.get_text() and "python -m prophet_model run" in soup.get_text()


def test_cross_system_page_shows_the_key_figure(built, server, browser) -> None:
    page = browser.new_page()
    page.goto(f"{server}/cross_system.html", wait_until="networkidle")
    width = page.evaluate("""() => {
        const h = [...document.querySelectorAll('h2')].find(e => e.textContent.includes('The key figure'));
        const all = [...document.images];
        const after = all.find(i => h && (h.compareDocumentPosition(i) & Node.DOCUMENT_POSITION_FOLLOWING));
        return after ? after.naturalWidth : 0;
    }""")
    page.close()
    assert width >= 1500  # the full-width (7 in) figure at 300 dpi


MAX_PAGE_PX = 6000  # no page taller than this at 1,400 px wide: long tables and secondary figures fold
PLACEHOLDER = re.compile(r"not measured yet|not yet run|\bTODO\b|placeholder", re.I)
FIGURES = """() => [...document.querySelectorAll('.bd-article img')].filter(i => !i.classList.contains('math'))
    .map(i => [i.getAttribute('src'), i.naturalWidth])"""


def _image_bytes(html: Path, page_name: str, src: str) -> bytes:
    """An image of a page as bytes: a data: URI decoded, else the file the page's relative address names."""
    import base64

    if src.startswith("data:"):
        return base64.b64decode(src.split(",", 1)[1])
    return ((html / page_name).parent / urllib.parse.unquote(src)).resolve().read_bytes()


@pytest.fixture(scope="module")
def default_site(built_checkout):
    """(html folder, address) of the default study's site as `make` builds it (conftest's built_checkout, shared
    with the other tests): the pages a reader gets, names of ordinary length (the hostile ones of `built` are
    long on purpose)."""
    html = built_checkout / "book" / "_build" / "html"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(html)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield html, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_pages_are_short_show_no_placeholder_and_no_figure_twice(default_site, browser) -> None:
    """The default study's site at 1,400 px wide: every page at most MAX_PAGE_PX tall, nothing like "not measured
    yet", "TODO" or "placeholder", no two figures of a page with the same image bytes."""
    html, server = default_site
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    for name in pages(html):
        page.goto(f"{server}/{name}", wait_until="networkidle")
        height = page.evaluate("document.documentElement.scrollHeight")
        if height > MAX_PAGE_PX:
            problems.append(f"{name}: {height} px tall at 1,400 px wide (at most {MAX_PAGE_PX})")
        text = page.evaluate("document.querySelector('.bd-article').innerText")
        problems += [f"{name}: says '{m.group(0)}'" for m in PLACEHOLDER.finditer(text)]
        seen: dict[bytes, str] = {}
        for src, _ in page.evaluate(FIGURES):
            blob = _image_bytes(html, name, src)
            if blob in seen:
                problems.append(f"{name}: the same figure twice ({seen[blob][:60]}, {src[:60]})")
            seen[blob] = src
    page.close()
    assert not problems, "\n".join(problems)


def test_the_landing_page_shows_the_key_figure_under_the_finding(built, server, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{server}/intro.html", wait_until="networkidle")
    found = page.evaluate("""() => {
        const box = document.querySelector('.bd-article .admonition');
        const claims = [...document.querySelectorAll('h2')].find(e => e.textContent.includes('Claims'));
        const after = (a, b) => a && b && (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
        return [...document.querySelectorAll('.bd-article img')].filter(i => !i.classList.contains('math'))
            .filter(i => after(box, i) && after(i, claims))
            .map(i => [i.naturalWidth, i.getAttribute('alt') || '', i.closest('figure') ? i.closest('figure').innerText : '']);
    }""")
    page.close()
    assert found, "no figure between the finding and the claims"
    width, alt, caption = found[0]
    assert width >= 1500, width  # the full-width key figure at 300 dpi, loaded
    assert len(alt.split()) >= 3 and caption.strip() and len(caption.strip().splitlines()) == 1, (alt, caption)


def test_the_sensitivity_page_draws_no_map_that_looks_like_another(built_checkout) -> None:
    """Within each kind of speedup map, no two drawn maps are closer than views.MAP_SAME_SHARE of the colour scale
    (the systems whose maps would look the same are named under the one drawn). The drawn maps are the page's
    images whose alt text (views.figure_alt: title, axes) names a system's speedup over prediction accuracy; their
    data are the results' maps.csv."""
    from bs4 import BeautifulSoup

    from prophet_model.outputs import views

    html, results = built_checkout / "book" / "_build" / "html", built_checkout / "results"  # the default study's
    maps = pd.read_csv(results / "data" / "sensitivity" / "maps.csv")
    grids = {(a, r.system.iloc[0]): views.speedup_map(r)[2] for (a, _), r in maps.groupby(["against", "system_id"])}
    axes = {"Interconnect bandwidth": "interconnect_bandwidth_factor", "cache hit rate": "prophet_hit_rate",
            "Routing skew": "routing.zipf_exponent"}  # fmt: skip
    drawn: dict[str, list[str]] = {}
    for img in BeautifulSoup((html / "sensitivity.html").read_text(), "html.parser").find_all("img"):
        alt = img.get("alt", "")
        if ": speedup" in alt and "against Prediction accuracy" in alt:
            against = next(v for k, v in axes.items() if k in alt.split(": speedup", 1)[1])
            drawn.setdefault(against, []).append(alt.split(": speedup")[0].replace("\\$", "$"))  # figures.plain
    assert set(drawn) == set(axes.values()), drawn
    close = [
        (against, a, b)
        for against, names in drawn.items()
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if views.map_distance(grids[(against, a)], grids[(against, b)]) < views.MAP_SAME_SHARE
    ]
    assert not close, close


def test_maps_that_look_the_same_are_grouped() -> None:
    """views.map_distance on a worked example: a linear colour scale over 1.0-2.0 (hi/lo = 2 <= 4), maps apart by
    0.05 at one point are 0.05 / 1.0 = 5% apart (one picture); by 0.3, 30% (two). A wide range (0.01-1, hi/lo =
    100) is coloured on log10: 0.01 against 0.0125 is log10(1.25) / 2 = 4.8% apart."""
    import numpy as np

    from prophet_model.outputs import views

    a = np.array([[1.0, 1.5], [1.8, 2.0]])
    assert views.map_distance(a, a) == 0.0
    assert views.map_distance(a, a + np.array([[0, 0.05], [0, 0]])) == pytest.approx(0.05)
    assert views.map_distance(a, a + np.array([[0, 0.3], [0, 0]])) == pytest.approx(0.3)
    wide = np.array([[0.01, 0.1], [0.5, 1.0]])
    assert views.map_distance(wide, np.array([[0.0125, 0.1], [0.5, 1.0]])) == pytest.approx(np.log10(1.25) / 2)
    assert views.map_distance(a, np.ones((3, 2))) == float("inf")  # another grid
    near, far = a + 0.01, a + 0.6
    assert views.same_maps([("x", a), ("y", far), ("z", near)]) == [["x", "z"], ["y"]]


SIGNIFICANT = re.compile(r"(?<![\w.,\-])\d[\d,]*(?:\.\d+)*(?![\w])")
BROKEN_HEADERS = """() => {
    const out = [];
    for (const th of document.querySelectorAll('.bd-article th')) {
        const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
            const re = /[^\\s\\-\u2010\u2011]+/g;  // a break at a hyphen is not inside a word
            let m;
            while ((m = re.exec(n.data)) !== null) {
                const r = document.createRange();
                r.setStart(n, m.index);
                r.setEnd(n, m.index + m[0].length);
                const tops = new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)));
                if (tops.size > 1) out.push(m[0]);
            }
        }
    }
    return out;
}"""
VISIBLE_TEXT = """() => {
    const a = document.querySelector('.bd-article').cloneNode(true);
    return [a.innerText, [...document.querySelector('.bd-article').querySelectorAll('img')]
        .filter(i => !i.classList.contains('math')).map(i => i.getAttribute('alt') || '')];
}"""
PROSE_TEXT = """() => {
    const a = document.querySelector('.bd-article').cloneNode(true);
    a.querySelectorAll('pre, code, .highlight, .cell_input, details:not([open]) > :not(summary)').forEach(e => e.remove());
    document.body.appendChild(a);
    const t = a.innerText;
    a.remove();
    return t;
}"""


def significant_figures(token: str) -> int:
    """Significant figures of a number as written: leading zeros never count, trailing zeros of an integer
    written with separators do not either (12,700 has three)."""
    digits = token.replace(",", "")
    if "." in digits:
        return len(digits.replace(".", "").lstrip("0"))
    return len(digits.lstrip("0").rstrip("0")) or 1


def _last_place(token: str) -> float:
    """The place of a written number's last significant digit: 0.01 for 137.78, 10 for 142,480, 1 for 5,363."""
    digits = token.replace(",", "")
    if "." in digits:
        return 10.0 ** -len(digits.split(".")[1])
    return 10.0 ** (len(digits) - len(digits.rstrip("0"))) if digits.strip("0") else 1.0


def _needs_its_figures(token: str, line: str, after: str) -> bool:
    """Whether a number's last figure is what tells it apart (issue 38's rule, formatting.pair_texts/ratio): a
    speedup (followed by ×) that one figure fewer would show as 1, or a number of the same row (line) that
    one figure fewer would show alike, or with a gap off by more than half of the one written (1,615 and 1,616)."""
    value, place = float(token.replace(",", "")), _last_place(token)
    coarse = 10 * place

    def rounded(x: float) -> float:
        return round(x / coarse) * coarse

    if after.startswith("×") and abs(value - 1) < 0.01 and abs(rounded(value) - 1) < 1e-9:
        return True
    for m in SIGNIFICANT.finditer(line):
        other = float(m.group(0).rstrip(",").replace(",", "")) if m.group(0).count(".") <= 1 else None
        if other is None or other == value or abs(other - value) > 100 * coarse:
            continue
        gap, shown = other - value, rounded(other) - rounded(value)
        if abs(shown - gap) > abs(gap) / 2:
            return True
    return False


def long_numbers(text: str) -> list[str]:
    """Numbers a person reads with more than four significant figures, except where issue 38's rule needs them:
    the figures that tell a pair of one row apart, or a speedup from 1.00× (_needs_its_figures), up to
    formatting.MAX_FIGURES. Integers written without separators (years, counts as in the configuration,
    identifiers) and versions (several points) are not measurements."""
    out = []
    for m in SIGNIFICANT.finditer(text):
        token = m.group(0).rstrip(",")
        if token.count(".") > 1 or ("," not in token and "." not in token) or text[: m.start()].endswith("arXiv "):
            continue  # versions, plain integers and arXiv identifiers are not quantities
        figures = significant_figures(token)
        if figures <= 4:
            continue
        start, end = text.rfind("\n", 0, m.start()) + 1, text.find("\n", m.end())
        line = text[start : len(text) if end < 0 else end]
        if figures <= fmt.MAX_FIGURES and _needs_its_figures(token, line, text[m.end() : m.end() + 1]):
            continue
        out.append(text[max(0, m.start() - 30) : m.end() + 10].replace("\n", " "))
    return out


def test_significant_figures_are_counted_as_a_reader_would() -> None:
    assert [significant_figures(t) for t in ("12,700", "0.00217", "1,100,307.52", "5,363", "80", "98.3")] == [
        3,
        3,
        9,
        4,
        1,
        3,
    ]
    assert long_numbers("9.414901 tokens/s, 1,100,307.52 configurations/s") and not long_numbers(
        "5,360 tokens, v2.11.0"
    )
    assert long_numbers("12.3456 tokens/s") and long_numbers("12.3456 tokens/s, 18.2 tokens/s")


def test_extra_figures_are_allowed_exactly_where_they_tell_two_numbers_apart() -> None:
    """Issue 38: a pair of one row with the digits that separate it, a speedup with those that tell it from
    1.00×; the same digits without a near neighbour, or on another row, or past what separates, are flagged."""
    for fine in ("137.78% → 137.84%", "Hybrid\t142,480\t142,510\t1.0002×", "100% → 100.02%",
                 "$0.18654 → $0.18650", "1.00× – 1.0003×", "12,345.6 → 12,345.9", "1.2344 → 1.2346"):  # fmt: skip
        assert not long_numbers(fine), fine
    for gratuitous in ("137.78% → 152.84%", "142,480\t152,510", "142,480\n142,510", "1.0500×", "1.2346×",
                       "1.00021×", "$0.186541 → $0.186500", "12.3456 tokens/s beside 12.4 tokens/s",
                       "1,615.1 → 1,616.4"):  # fmt: skip
        assert long_numbers(gratuitous), gratuitous


def test_every_page_for_a_person(visits, server, browser) -> None:
    """A reader's check: every page screenshotted at 1280 px into tests/output/ (ignored by git, to look at:
    `visits`); the overview's first screen (1280 x 800) states the finding; no table header breaks inside a word;
    no number a person reads has more than four significant figures; nothing points to a folder outside the
    repository or to an issue; every image has alt text that says something."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server}/intro.html", wait_until="networkidle")
    page.screenshot(path=str(ROOT / "tests" / "output" / "book_overview.png"))  # the first screen
    box = page.evaluate("(() => { const b = document.querySelector('.bd-article .admonition');"
                        " return b ? [b.innerText, b.getBoundingClientRect().top] : ['', 9999]; })()")  # fmt: skip
    page.close()
    assert "Prophet speeds decode up by" in box[0] or "Prophet changes decode throughput by" in box[0], box
    assert box[1] < 400, "the finding is not on the first screen"
    problems: list[str] = []
    for name, v in visits.items():
        problems += [f"{name}: header breaks inside '{w}'" for w in v["broken"]]
        text = v["text"]
        problems += [f"{name}: shows a path outside the repository" for _ in re.findall(r"\.\./shared", text)]
        problems += [f"{name}: mentions an issue: ...{text[max(0, m.start() - 40) : m.end() + 20]}..."
                     for m in re.finditer(r"\bissue\b", text, re.I)]  # fmt: skip
        for alt in v["alts"]:
            if len(alt.split()) < 3 or re.search(r"[0-9a-f]{16,}|\.(png|jpe?g|svg)$", alt):
                problems.append(f"{name}: an image's alt text says nothing: {alt!r}")
        problems += [f"{name}: {n}" for n in long_numbers(v["prose"])]
    assert not problems, "\n".join(problems)


def test_no_injected_script_runs_and_names_show_literally(built, server, browser, visits) -> None:
    html, _ = built
    ran = {name: v["pwned"] for name, v in visits.items()}  # the field whose name ran as a script, if any
    page = browser.new_page()
    page.goto(f"{server}/systems/0008-8xA100.html", wait_until="networkidle")
    heading = page.evaluate("document.querySelector('h1').textContent")
    page.close()
    assert set(ran.values()) == {"undefined"}, {k: v for k, v in ran.items() if v != "undefined"}
    assert HOSTILE in heading
    from bs4 import BeautifulSoup

    def text(name: str) -> str:
        return BeautifulSoup((html / name).read_text(), "html.parser").get_text()

    for name in ("intro.html", "assumptions.html", "model.html"):
        assert HOSTILE in text(name), name
    assertions = text("assumptions.html")
    for field in ("model", "gpu", "interconnect"):  # every catalog name shows literally where the catalog is listed
        assert f"{hostile(field)} 0" in assertions, field
    assert hostile("model") in text("validation.html")  # the validation notebook's Markdown (the model's name)


def _side_point(r, side: str) -> str:
    """A side's operating point and, after "; ", its searched options (weights, KV cache, cache policy, overlap,
    CPU experts) as the claims table names them: "EP 8×1, B 107; W FP8, KV FP8, LRU"."""
    get = lambda name: getattr(r, f"{side}_{name}", None)  # noqa: E731
    point = fmt.operating_point(get("strategy"), get("split"), get("batch"), get("attention_tp"))
    chosen = fmt.options(*(get(o) for o in ("weight_precision", "kv_precision", "cache_policy", "overlap",
                                            "offload_compute")))  # fmt: skip
    return f"{point}; {chosen}" if chosen else point


def test_claims_table_equals_the_csv(built) -> None:
    """The overview's table is headline.csv: each system's Prophet and baseline at their best."""
    html, results = built
    headline = pd.read_csv(results / "data" / "headline.csv")
    validated = results / "data" / "validation" / "validated.csv"
    error = fmt.speedup_error_pct(pd.read_csv(validated) if validated.is_file() else None)
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((html / "intro.html").read_text(), "html.parser")
    table = next(t for t in soup.find_all("table") if t.find("th", string="speedup"))
    rows = {tr.find("td").get_text(" ", strip=True): [td.get_text(" ", strip=True) for td in tr.find_all("td")]
            for tr in table.find_all("tr") if tr.find("td")}  # fmt: skip
    seen = 0
    for r in headline.dropna(subset=["speedup"]).itertuples():
        p, b = (_side_point(r, side) for side in ("prophet", "baseline"))
        key = f"{r.system}: {p} / {b}"
        row = rows[key]
        seen += 1
        suffix = f" ({fmt.WITHIN_ERROR})" if fmt.within_error(r.speedup, error) else ""  # exactly where it is
        assert row[1] == fmt.ratio(r.speedup) + suffix
        assert row[2] == fmt.change(r.baseline_usd_per_1m_tokens, r.prophet_usd_per_1m_tokens, "usd")
        assert row[3] == fmt.ratio(r.comm_reduction)
        assert row[4] == fmt.change(r.baseline_scaling_pct, r.prophet_scaling_pct, "pct")
    assert seen == headline.system_id.nunique() == len(rows)


NUMBER_FORMATS = ("FP8", "BF16", "FP16", "FP32", "W8A16", "W8A8", "INT8", "INT4")  # names of number formats


@pytest.mark.parametrize("name", STATIC_PAGES)
def test_static_pages_carry_no_typed_numbers(name: str) -> None:
    """Outside code and math, the hand-written pages hold no digits: numbers come from the data."""
    text = (ROOT / "book" / name).read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # fenced blocks (includes, math, code)
    text = re.sub(r"\{math\}`[^`]*`", "", text)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"^#+ .*$", "", text, flags=re.M)  # headings
    text = re.sub(rf"\b(?:{'|'.join(NUMBER_FORMATS)})\b", "", text)  # a format's name is a name, not a number
    assert not re.findall(r"\d", text), re.findall(r".{20}\d.{20}", text)


def test_static_pages_may_name_formats_but_not_numbers() -> None:
    """The allow-list takes a format's exact name only: a rate or factor typed beside it is still flagged."""
    strip = re.compile(rf"\b(?:{'|'.join(NUMBER_FORMATS)})\b")
    assert not re.findall(r"\d", strip.sub("", "FP8 weights, BF16 activations, W8A16 (FP8-Marlin)"))
    assert re.findall(r"\d", strip.sub("", "FP8 is about 2 times BF16")) == ["2"]
    assert re.findall(r"\d", strip.sub("", "FP16x")) and re.findall(r"\d", strip.sub("", "FP82"))


def _imgmath_format():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        import imgmath_format
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))
    return imgmath_format


def _png(work: Path, tex: str, latex_args: list[str]) -> bytes:
    """One formula's image the way sphinx.ext.imgmath makes it (latex, then dvipng with its default args)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "math.tex").write_text(tex, encoding="utf-8")
    subprocess.run(["latex", "--interaction=nonstopmode", *latex_args, "math.tex"], cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(["dvipng", "-o", "math.png", "-T", "tight", "-z9", "-gamma", "1.5", "-D", "110", "-bg",
                    "Transparent", "math.dvi"], cwd=work, check=True, capture_output=True)  # fmt: skip
    return (work / "math.png").read_bytes()


def test_formulas_started_from_the_preamble_format_give_the_same_images(tmp_path) -> None:
    """book/_ext/imgmath_format.py: the book's template compiled from the dumped preamble gives the same PNG
    bytes as plain latex; the format is made once per preamble; no latex, or a broken preamble, gives None."""
    from types import SimpleNamespace

    from sphinx.ext.imgmath import generate_latex_macro

    ext = _imgmath_format()
    book = load_yaml(ROOT / "book" / "_config.yml")["sphinx"]["config"]
    cfg = SimpleNamespace(imgmath_image_format=book["imgmath_image_format"], imgmath_font_size=book["imgmath_font_size"],
                          imgmath_latex_preamble="", imgmath_use_preview=False, templates_path=book["templates_path"])  # fmt: skip
    text = ext.preamble(cfg, str(ROOT / "book"))
    assert text and "\\usepackage{amsmath}" in text and "\\begin{document}" not in text
    fmt = ext.make_format("latex", text, tmp_path / "fmt")
    assert fmt is not None and fmt.is_file()
    stamp = fmt.stat().st_mtime_ns
    assert ext.make_format("latex", text, tmp_path / "fmt") == fmt and fmt.stat().st_mtime_ns == stamp
    formulas = ["$N$", r"$ep \cdot dp = N$",
                r"\[E_g = \lceil E / ep \rceil, \qquad S_e = 3 h f b\]",
                r"\[T = ep\,B, \qquad D = E_g\left(1 - \left(1 - \tfrac{k}{E}\right)^{T}\right)\]",
                r"$\bm{\alpha}_{i}^{2} \le \sum_{k} x_k$"]  # fmt: skip
    for i, math in enumerate(formulas):
        tex = generate_latex_macro("png", math, cfg, str(ROOT / "book"))
        plain = _png(tmp_path / f"plain{i}", tex, [])
        assert _png(tmp_path / f"fmt{i}", tex, [f"-fmt={fmt.with_suffix('')}"]) == plain, math
    assert ext.make_format("no-such-latex", text, tmp_path / "none") is None
    assert ext.make_format("latex", "\\documentclass{no-such-class}\n", tmp_path / "broken") is None
    assert not list((tmp_path / "broken").glob("*.fmt"))


def test_formulas_are_rendered_once_and_served_from_the_cache(tmp_path) -> None:
    """book/_ext/imgmath_format.py: a page's formulas as imgmath passes them on; a formula rendered ahead of the
    writers lands where imgmath looks for it with imgmath's bytes, and is kept in the cache, from which a later
    build (here one whose latex cannot run) copies it; the cache's key changes with the commands' options."""
    from types import SimpleNamespace

    from docutils import nodes
    from sphinx.ext.imgmath import InvokeError, generate_latex_macro

    ext = _imgmath_format()
    page = nodes.section("", nodes.paragraph("", "", nodes.math("", "N")), nodes.math_block("", "a = b", nowrap=False))
    texts = ext._latex_texts(page)
    assert texts[0] == "$N$" and len(texts) == 2 and "a = b" in texts[1] and texts[1] != "a = b"
    book = load_yaml(ROOT / "book" / "_config.yml")["sphinx"]["config"]
    cfg = SimpleNamespace(imgmath_image_format="png", imgmath_font_size=book["imgmath_font_size"],
                          imgmath_latex_preamble="", imgmath_use_preview=False, templates_path=book["templates_path"],
                          imgmath_latex="latex", imgmath_latex_args=[], imgmath_dvipng="dvipng",
                          imgmath_dvipng_args=["-gamma", "1.5", "-D", "110", "-bg", "Transparent"])  # fmt: skip

    def app(out: Path, config=cfg) -> SimpleNamespace:
        return SimpleNamespace(config=config, confdir=str(ROOT / "book"), srcdir=str(ROOT / "book"),
                               builder=SimpleNamespace(outdir=str(out), imagedir="_images"))  # fmt: skip

    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    ext._render(app(tmp_path / "one"), texts[1], cache, work)
    made = list((tmp_path / "one" / "_images" / "math").glob("*.png"))
    assert len(made) == 1 and [p.name for p in cache.glob("*.png")] == [made[0].name]
    tex = generate_latex_macro("png", texts[1], cfg, str(ROOT / "book"))
    assert made[0].read_bytes() == _png(tmp_path / "plain", tex, [])  # imgmath's bytes
    no_latex = SimpleNamespace(**{**vars(cfg), "imgmath_latex": "no-such-latex"})
    ext._render(app(tmp_path / "two", no_latex), texts[1], cache, work)
    assert (tmp_path / "two" / "_images" / "math" / made[0].name).read_bytes() == made[0].read_bytes()
    with pytest.raises(InvokeError):  # not in the cache and no latex: left to imgmath
        ext._render(app(tmp_path / "three", no_latex), texts[0], cache, work)
    other = SimpleNamespace(**{**vars(cfg), "imgmath_dvipng_args": ["-D", "220"]})
    assert (
        ext._cache_dir(app(tmp_path, other)) != ext._cache_dir(app(tmp_path)) != ext._cache_dir(app(tmp_path, no_latex))
    )
