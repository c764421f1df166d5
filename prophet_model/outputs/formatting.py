"""Number formatting in one place, so a number reads the same in every summary, table and page.

One rule for everything a person reads (CSVs keep full precision): measured and modelled quantities to
three significant figures (`sig`), counts as integers, money to cents below $100, speedups and other
factors to two decimals, more where needed to tell them from 1.00× (1.002×). A change "a → b" is shown with the
figures that tell a from b, or as "unchanged at a" (`change`); a gain below the model's validated error is said to
be within it (`within_error`)."""

from __future__ import annotations

import math
import re

MD_SPECIALS = set("\\`*_[]<>|$~&{}#!")
MAX_FIGURES = 6  # the most significant figures a change is shown with (past them two values read as one)
SPEEDUP_DECIMALS = 4  # the most decimals a speedup near 1 is shown with (1.0004×)


def md(text: object) -> str:
    """Text shown literally in Markdown (MyST and GitHub): HTML, emphasis, links, math, roles and
    table pipes are backslash-escaped, so a name like `<script>` is displayed, never run."""
    return "".join("\\" + ch if ch in MD_SPECIALS else ch for ch in str(text)).replace("\n", " ")


def code(text: object) -> str:
    """Text as an inline code span (CommonMark): fenced by one backtick more than its longest run of
    backticks, padded where it starts or ends with one, on one line. Shown literally, whatever it holds."""
    t = str(text).replace("\r", " ").replace("\n", " ")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", t)), default=0) + 1)
    pad = " " if t.startswith("`") or t.endswith("`") else ""
    return f"{fence}{pad}{t}{pad}{fence}"


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def sig(x: float, digits: int = 3) -> str:
    """`x` to `digits` significant figures, never in scientific notation, thousands separated and without
    trailing zeros after the point (5,363.2 -> 5,360; 98.34 -> 98.3; 80.0 -> 80; 0.0021749 -> 0.00217)."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    exponent = math.floor(math.log10(abs(x)))
    decimals = digits - 1 - exponent
    rounded = round(x, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > exponent:  # 9.996 -> 10.0: one digit fewer
        decimals -= 1
        rounded = round(x, decimals)
    text = f"{rounded:,.{max(decimals, 0)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def tokens(x: float | None) -> str:
    """Throughput, tokens/s: three significant figures, thousands separators (5,360; 15.5)."""
    return "n/a" if _missing(x) else sig(x)


def ratio(x: float | None) -> str:
    """A speedup or reduction factor with a times sign: two decimals (1.49×), more where they are needed to tell
    it from 1.00× (1.002×, 1.0004×; up to SPEEDUP_DECIMALS); 1, and a factor that reads 1 even at
    SPEEDUP_DECIMALS (1.00001), is 1.00×."""
    if _missing(x):
        return "n/a"
    for decimals in range(2, SPEEDUP_DECIMALS + 1):
        if x == 1 or round(x, decimals) != 1:
            return f"{x:.{decimals}f}×"
    return "1.00×"


def pct(x: float | None) -> str:
    """A percentage to three significant figures (12.3%, 80%, 0.217%)."""
    return "n/a" if _missing(x) else f"{sig(x)}%"


def usd(x: float | None) -> str:
    """Dollars: cents below $100, three significant figures above ($4.06, $126, $12,700)."""
    if _missing(x):
        return "n/a"
    if abs(x) < 100:
        return f"-${-x:,.2f}" if x < 0 else f"${x:,.2f}"
    return f"-${sig(-x)}" if x < 0 else f"${sig(x)}"


def ms(x: float | None) -> str:
    """Milliseconds to three significant figures (62 ms, 8,490 ms, 0.116 ms)."""
    return "n/a" if _missing(x) else f"{sig(x)} ms"


def number(x: float | None, digits: int = 3) -> str:
    """A general value to `digits` significant figures (0.592, 21.5, 1,410)."""
    return "n/a" if _missing(x) else sig(x, digits)


def count(x: float | None) -> str:
    """A count, as an integer with thousands separators (36; 16,384)."""
    return "n/a" if _missing(x) else f"{x:,.0f}"


def dropped(draws: float, dropped: float, no_fit: float = 0, max_step: float = 0) -> str:
    """The Monte Carlo's dropped draws in words: "12 of 100,000 draws dropped: 12 where nothing fits"."""
    if _missing(draws) or not draws:
        return "no draws"
    if not dropped:
        return f"none of {count(draws)} draws dropped"
    why = [
        f"{count(n)} {what}"
        for n, what in ((no_fit, "where nothing fits in GPU memory"), (max_step, "where no batch meets max_step_ms"))
        if n
    ]
    return f"{count(dropped)} of {count(draws)} draws dropped" + (f": {', '.join(why)}" if why else "")


def value_in_unit(x: float, metric: str) -> str:
    """Format a value by the unit its metric name carries."""
    if metric.endswith("_pct"):
        return pct(x)
    if metric.endswith("_usd") or "usd_per" in metric:
        return usd(x)
    if metric.endswith("tokens_per_s"):
        return tokens(x)
    if metric in ("speedup", "cost_reduction", "comm_reduction"):
        return ratio(x)
    return number(x)


CONFIGURED_CUT = "configured, not derived"


def comm_cut_text(factor: float | None) -> str:
    """How the study sets Prophet's all-to-all cut: derived from the routing and the placement, or the
    what-if override prophet.comm_reduction_factor, said to be configured, not derived."""
    if factor is None:
        return "derived from routing and placement"
    return f"{ratio(factor)} ({CONFIGURED_CUT})"


def comm_cut_suffix(factor: float | None) -> str:
    """The words after a shown cut: " (configured, not derived)" when the override set it, else ""."""
    return "" if factor is None else f" ({CONFIGURED_CUT})"


def comparison_view(comparison, columns: tuple[str, ...] | None = None):
    """Baseline beside Prophet, one formatted row per evaluated system x strategy (a DataFrame).
    `columns` picks and orders the columns; by default all of them."""
    import pandas as pd

    c = comparison.dropna(subset=["speedup"])

    def pair(kind: str, a: str, b: str) -> list[str]:
        return [change(x, y, kind) for x, y in zip(c[a], c[b], strict=True)]

    shown = [pair_texts(x, y, "tokens") for x, y in zip(c.baseline_tokens_per_s, c.prophet_tokens_per_s, strict=True)]
    view = pd.DataFrame(
        {
            "system": c.system,
            "strategy": c.strategy,
            "split": c.prophet_split.str.replace("x", "×"),
            "baseline tok/s": [b for b, _ in shown],
            "Prophet tok/s": [p for _, p in shown],
            "speedup": c.speedup.map(ratio),
            "all-to-all share": pair("pct", "baseline_comm_overhead_pct", "prophet_comm_overhead_pct"),
            "per-GPU scaling": pair("pct", "baseline_scaling_pct", "prophet_scaling_pct"),
            "$/1M tokens": pair("usd", "baseline_usd_per_1m_tokens", "prophet_usd_per_1m_tokens"),
            "savings/yr": c.annual_savings_usd.map(usd),
        }
    ).reset_index(drop=True)
    return view[list(columns)] if columns else view


def checks_view(checks):
    """Sanity checks (sanity_checks.csv rows) with values and ranges in their units (a DataFrame)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "status": checks.status,
            "system": checks.system_id,
            "strategy": checks.strategy,
            "check": [str(c).replace("_", " ") for c in checks.check],  # wraps between words
            "value": [value_in_unit(v, m) for v, m in zip(checks.value, checks.check, strict=True)],
            "expected": [
                f"{value_in_unit(a, m)} – {value_in_unit(b, m)}"
                for a, b, m in zip(checks["min"], checks["max"], checks.check, strict=True)
            ],
            "source": checks.source,
        }
    ).reset_index(drop=True)


def operating_point(strategy: str, split: str, batch: float, attention_tp: float = 1) -> str:
    """EP 8×1, B 36, TP 4: a strategy, its EP × DP split, the batch per GPU (sequences) and, where attention
    is split, its tensor-parallel degree."""
    tp = f", TP {attention_tp:.0f}" if attention_tp == attention_tp and attention_tp > 1 else ""
    return f"{strategy} {str(split).replace('x', '×')}, B {batch:.0f}{tp}"


def options(weights: object, kv: object, policy: object, overlap: object, offload: object) -> str:
    """A side's searched options in short ("W FP8, KV FP8, LRU", then "two-batch" and "CPU experts" where taken);
    an option the row does not name (NaN) is left out."""
    names = {"predicted": "predicted", "lru": "LRU", "static": "static", "lfu": "LFU"}
    parts = [f"W {str(weights).upper()}" if isinstance(weights, str) else ""]
    parts += [f"KV {str(kv).upper()}" if isinstance(kv, str) else "", names.get(str(policy), "")]
    parts += ["two-batch" if overlap == "two_batch" else "", "CPU experts" if offload == "cpu" else ""]
    return ", ".join(x for x in parts if x)


def table_html(df) -> str:
    """A DataFrame as the book shows it: no index column (a meaningful index becomes a column), empty
    cells for missing values, numbers to three significant figures, a class the book's stylesheet wraps to
    the page width."""
    import pandas as pd

    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    if floats:  # one number format: three significant figures, never a long float (formatting.py)
        df = df.assign(**{c: ["" if pd.isna(v) else number(v) for v in df[c]] for c in floats})
    return df.to_html(index=False, border=0, na_rep="", classes="prophet-table")


def text_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Rows (dicts of the same keys) as a plain-text table, each column padded to its widest cell."""
    cols = list(columns if columns is not None else rows[0] if rows else [])
    widths = [max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in cols]
    line = lambda vals: "  ".join(str(v).ljust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    return "\n".join([line(cols), line("-" * w for w in widths), *(line([r[c] for c in cols]) for r in rows)])


def md_cell(value: object) -> str:
    """A value as one cell of a Markdown table: a pipe not yet escaped is, a line break is a space."""
    return re.sub(r"(?<!\\)\|", r"\\|", str(value)).replace("\n", " ")


def md_table(df) -> str:
    """A Markdown table with | escaped in cells (md_cell)."""
    esc = md_cell
    head = "| " + " | ".join(esc(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    return (
        "\n".join([head, sep, *("| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False))])
        + "\n"
    )


def dropdown(title: str, body: str, open_: bool = False) -> str:
    """A collapsed block (sphinx-design's dropdown) holding Markdown."""
    return f"\n:::{{dropdown}} {title}\n{':open:' + chr(10) if open_ else ''}\n{body}\n:::\n"


# Changes: a pair, a speedup near 1 and a gain are printed with the digits that tell them apart (issue 38).


def _at(kind: str, x: float, figures: int) -> str:
    """`x` in the format of `kind` (tokens, pct, usd, ms, number, ratio) with at least `figures` significant
    figures: the quantity's own format where it already has them (usd: cents below $100; ratio: two decimals)."""
    if _missing(x):
        return "n/a"
    if kind == "usd":
        if figures <= 3:
            return usd(x)
        if abs(x) < 100:  # cents at least
            decimals = max(2, figures - 1 - (math.floor(math.log10(abs(x))) if x else 0))
            text = f"{abs(x):,.{decimals}f}"
        else:
            text = sig(abs(x), figures)
        return f"-${text}" if x < 0 else f"${text}"
    if kind == "ratio":
        decimals = max(2, figures - 1 - (math.floor(math.log10(abs(x))) if x else 0))
        return f"{x:.{decimals}f}×"
    if kind in ("tokens", "number"):
        return sig(x, figures)
    if kind == "pct":
        return f"{sig(x, figures)}%"
    if kind == "ms":
        return f"{sig(x, figures)} ms"
    raise ValueError(f"kind {kind!r}: allowed: tokens, pct, usd, ms, number, ratio")


def _shown(text: str) -> float:
    """The number a formatted text shows ("$1,615.5" -> 1615.5; "-4.4%" -> -4.4)."""
    return float(re.sub(r"[^0-9.\-]", "", text))


def pair_texts(a: float | None, b: float | None, kind: str = "number") -> tuple[str, str]:
    """Two values of one quantity in the format of `kind`, with the fewest significant figures (3 up to
    MAX_FIGURES) at which their shown difference is within half of the true one: never two equal-looking texts
    for different values, nor a rounding that invents a gap (1,615 and 1,616 are not 1,610 and 1,620). Values
    equal at full precision, or alike even at MAX_FIGURES, read the same."""
    if _missing(a) or _missing(b) or a == b:
        return _at(kind, a, 3), _at(kind, b, 3)
    for figures in range(3, MAX_FIGURES + 1):
        ta, tb = _at(kind, a, figures), _at(kind, b, figures)
        if ta != tb and abs((_shown(tb) - _shown(ta)) - (b - a)) <= abs(b - a) / 2:
            return ta, tb
    return (ta, tb) if ta != tb else (_at(kind, a, 3), _at(kind, b, 3))


def change(a: float | None, b: float | None, kind: str = "number") -> str:
    """A pair "a → b" in the format of `kind` as pair_texts shows it, or "unchanged at a" where the two are equal
    at full precision or read alike even at MAX_FIGURES ($0.6946 → $0.6946 is "unchanged at $0.69";
    1,615.1 → 1,616.4 tokens/s is "1,615 → 1,616")."""
    ta, tb = pair_texts(a, b, kind)
    if ta == tb and not (_missing(a) or _missing(b)):
        return f"unchanged at {ta}"
    return f"{ta} → {tb}"


speedup = ratio  # a speedup is a factor: 1.34×, 1.002×, 1.0004× (a speedup within 0.00005 of 1 reads 1.00×)


def gain(x: float | None) -> str:
    """A speedup as a signed change of throughput, to the figures that tell it from none (+0.2%, -1.5%, +34%;
    exactly 1: ±0%)."""
    if _missing(x):
        return "n/a"
    g = 100 * (x - 1)
    return "±0%" if g == 0 else f"{'+' if g > 0 else '-'}{sig(abs(g), 2 if abs(g) >= 1 else 1)}%"


def within_error(x: float | None, error_pct: float | None) -> bool:
    """Whether a speedup's gain (|x - 1|, in percent) is below the model's validated error `error_pct` (the
    single rule: speedup_error_pct, the median |error| of validated.csv's ERROR_MECHANISM row); never where no
    error is given or there is no gain."""
    return not (_missing(x) or _missing(error_pct) or x == 1) and 100 * abs(x - 1) < error_pct


WITHIN_ERROR = "within the model's error"


def speedup_within(x: float | None, error_pct: float | None) -> str:
    """speedup(x), followed by "(within the model's error)" where its gain is below `error_pct` (within_error)."""
    return speedup(x) + (f" ({WITHIN_ERROR})" if within_error(x, error_pct) else "")


# validated.csv's row whose error bounds a speedup: each side's throughput is a decode step the model predicts, and
# the whole decode step's median |error| is the larger of the two errors a speedup's ratio carries (the prefetch
# speedup's own validated error, 1.3%, is for offloaded experts alone)
ERROR_MECHANISM = "decode step"


def speedup_error_pct(validated) -> float | None:
    """The model's validated error on a speedup (median |error|, percent): the ERROR_MECHANISM row of validated.csv's
    rows (a DataFrame or a list of dicts); None where it is absent."""
    if validated is None:
        return None
    rows = validated.to_dict("records") if hasattr(validated, "to_dict") else validated
    mine = [r for r in rows if r.get("mechanism") == ERROR_MECHANISM]
    return float(mine[0]["median_pct"]) if mine else None


# A pair in the format of a formatter function (the keyed LaTeX values, whose format is their column's): the
# digits that tell the two apart. pair_texts does the same for a kind of quantity, with the half-gap rule.
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _finer(text: str, x: float, digits: int) -> str:
    """`text` (a formatted number with its unit) with the number written to `digits` significant figures,
    trailing zeros kept (1.0004 to four: 1.000), unless the text already gives x exactly (1.00× stays)."""
    m = _NUMBER.search(text)
    if m is None or math.isclose(_read(m[0]), abs(x), rel_tol=1e-12, abs_tol=1e-12):
        return text
    decimals = max(digits - 1 - math.floor(math.log10(abs(x))), 0) if x else 0
    return text[: m.start()] + f"{abs(x):,.{decimals}f}" + text[m.end() :]


def _read(number: str) -> float:
    return float(number.replace(",", ""))


def apart(a: float, b: float, show=ratio, most: int = 6) -> tuple[str, str]:
    """a and b as `show` prints them or, where it prints them alike though they differ, to the fewest
    significant figures (4 to `most`) that tell them apart, in show's unit (1.002× beside 1.00×; $0.6947
    beside $0.6951). The same text for both only when they agree to `most` figures: say "unchanged at"."""
    sa, sb = show(a), show(b)
    if sa != sb or a == b:
        return sa, sb
    for digits in range(4, most + 1):
        fa, fb = _finer(sa, a, digits), _finer(sb, b, digits)
        na, nb = _NUMBER.search(fa), _NUMBER.search(fb)
        if na is not None and nb is not None and _read(na[0]) != _read(nb[0]):
            return fa, fb
    return sa, sb
