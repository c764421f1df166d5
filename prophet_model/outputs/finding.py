"""The study's finding in four sentences, from the result tables: what the study finds, why (the mechanism
that binds), what it would take and where Prophet pays (the regime map). The overview's box, the head of the paper's
section and the README's
results say the same sentences; in LaTeX every number is a keyed command (\\prophet{KEY}{METRIC})."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from prophet_model.outputs import formatting as fmt

if TYPE_CHECKING:
    from prophet_model.study.questions.moves import Moves


@dataclass(frozen=True)
class Value:
    """A number in a sentence: its text, and the keyed command that gives it in the paper."""

    key: str
    metric: str
    text: str


Sentence = list["str | Value"]
RESIDENT = 0.999  # a hit rate of 1 to three figures: every touched expert is in GPU memory


def _names(rows: pd.DataFrame) -> list[Value]:
    return [Value(r.system_id, "system", r.system) for r in rows.itertuples()]


def _join(parts: list, last: str = "and") -> list:
    """a, b and c, as sentence parts."""
    out: list = []
    for i, p in enumerate(parts):
        if i:
            out.append(f" {last} " if i == len(parts) - 1 else ", ")
        out.extend(p if isinstance(p, list) else [p])
    return out


def _span(rows: pd.DataFrame, column: str, formatter) -> list:
    """min–max of a column over rows, each end the keyed value of its row (one value when they read alike)."""
    lo, hi = rows.loc[rows[column].idxmin()], rows.loc[rows[column].idxmax()]
    a, b = Value(lo.system_id, column, formatter(lo[column])), Value(hi.system_id, column, formatter(hi[column]))
    return [a] if a.text == b.text else [a, "–", b]


def need_rows(claims: pd.DataFrame, need_prefix: str) -> pd.DataFrame:
    """The rows of claims.csv that say what Prophet would need for the draft's speedup: their claim starts
    with `need_prefix` (study.claims.NEED_PREFIX, in results/data/facts.json)."""
    return claims[claims.claim.astype(str).str.startswith(need_prefix)] if "claim" in claims else claims.iloc[0:0]


def draft_speedup(claims: pd.DataFrame, need_prefix: str) -> float | None:
    """The draft analysis's multi-GPU speedup, as claims.csv checks it on every system (None if it does not)."""
    need = need_rows(claims, need_prefix)
    return None if need.empty else float(need.claimed.iloc[0])


CUT_TOLERANCE = 0.005  # a derived all-to-all cut within 0.5% of 1 reads as 1.00x: no cut


def finding(
    headline: pd.DataFrame, claims: pd.DataFrame, regimes: pd.DataFrame | None, need_prefix: str, draft: bool = True
) -> list[Sentence]:
    """Three sentences (lists of text and Values) from headline.csv (each side at its best configuration)
    and claims.csv (what Prophet's own levers would need for the draft's speedup: the rows whose claim starts
    with `need_prefix`, facts.json's), and a fourth from regime_map.csv where given: where Prophet pays.
    draft=False: the paper's own voice, without the draft analysis's speedup and what it would take."""
    rows = headline.dropna(subset=["speedup"]).reset_index(drop=True)
    if rows.empty:
        return [["No system could be evaluated, so the study states no finding."]]
    claimed = draft_speedup(claims, need_prefix) if draft else None
    first: Sentence = [
        "With each side at its best operating point, ",
        "Prophet speeds decode up by " if rows.speedup.min() >= 1 else "Prophet changes decode throughput by ",
        *_span(rows, "speedup", fmt.ratio),
        " on the ",
        Value("study", "n_systems", str(len(rows))),
        " systems studied",
    ]
    if claimed is not None:
        first += [", not the ", Value("study", "draft_speedup", fmt.ratio(claimed)), " the draft analysis claims"]
    first.append(".")

    resident = rows[(rows.baseline_hit_rate >= RESIDENT) & (rows.baseline_fetch_overhead_pct <= 0)]
    offload = rows[~rows.index.isin(resident.index)]
    why: Sentence = []
    if not resident.empty:
        cut = resident.comm_reduction.astype(float)
        trims = bool((cut > 1 + CUT_TOLERANCE).any())  # a cut that rounds to 1 trims nothing
        why += [
            "On ",
            *_join(_names(resident)),
            " every expert stays in GPU memory at the best batch, so there is nothing to prefetch",
            *(
                [" and Prophet only trims the all-to-all exchange, "]
                if trims
                else [
                    ", and the study's routing has no locality that Prophet's placement could exploit, so the "
                    "all-to-all exchange, "
                ]
            ),
            *_span(resident, "baseline_comm_overhead_pct", fmt.pct),
            " of the baseline's step",
            *([] if trims else [", is not cut either"]),
        ]
    for r in offload.itertuples():
        why.append("; on " if why else "On ")
        why += [
            Value(r.system_id, "system", r.system),
            ", where the experts do not fit, copies from host memory take ",
            Value(r.system_id, "baseline_fetch_overhead_pct", fmt.pct(r.baseline_fetch_overhead_pct)),
            " of the step",
        ]
        hidden = r.prophet_fetch_hidden_pct
        if hidden == hidden:
            few = hidden < 50  # a host link fast enough (NVLink-C2C) lets a layer's computation hide most copies
            why += [
                " and Prophet hides only " if few else " and Prophet hides ",
                Value(r.system_id, "prophet_fetch_hidden_pct", fmt.pct(hidden)),
                " of its copies, because a layer's computation is far shorter than the copies it could hide"
                if few
                else " of its copies behind a layer's computation",
            ]
    why.append(".")

    take: Sentence = []
    if claimed is not None:
        need = need_rows(claims, need_prefix)
        never, reachable = [], []
        for sid, g in need.groupby("system_id", sort=False):
            if sid not in set(rows.system_id):
                continue
            r = rows[rows.system_id == sid].iloc[0]
            ok = g.dropna(subset=["needed"])
            (reachable if not ok.empty else never).append((r, ok))
        target = Value("study", "draft_speedup", fmt.ratio(claimed))
        for r, ok in reachable:
            levers = []
            for x in ok.itertuples():
                if x.lever == "Prophet hit rate":
                    levers.append(
                        [
                            "a Prophet cache hit rate of ",
                            Value(r.system_id, "needed_hit_rate", fmt.pct(100 * x.needed)),
                            " (now ",
                            Value(r.system_id, "prophet_hit_rate", fmt.pct(100 * x.configured)),
                            ")",
                        ]
                    )
                elif x.lever == "fetch overlap":
                    levers.append(
                        [
                            Value(r.system_id, "needed_overlap", fmt.pct(100 * x.needed)),
                            " of its copies hidden (now ",
                            Value(r.system_id, "prophet_fetch_hidden_pct", fmt.pct(100 * x.configured)),
                            ")",
                        ]
                    )
            if levers:
                take += [
                    "; on " if take else "Reaching ",
                    *([] if take else [target, " would take, on "]),
                    Value(r.system_id, "system", r.system),
                    ", ",
                    *_join(levers, "or"),
                ]
        if never:
            if take:
                take += [
                    "; on the other ",
                    Value("study", "n_never", str(len(never))) if len(never) > 1 else "system",
                    *([" systems"] if len(never) > 1 else []),
                    (
                        " no prediction accuracy, hit rate or overlap alone "
                        "reaches it: the step has almost nothing left to hide"
                    ),
                ]
            else:
                take += [
                    "On ",
                    *_join([Value(r.system_id, "system", r.system) for r, _ in never]),
                    " no prediction accuracy, hit rate or overlap alone reaches ",
                    target,
                    ": the step has almost nothing left to hide",
                ]
        if take:
            take.append(".")
    where = regime_sentence(regimes, rows) if regimes is not None else []
    return [s for s in (first, why, take, where) if len(s) > 1]


PAYS = 1.2  # the regime map's contour the finding names


def regime_sentence(regimes: pd.DataFrame, rows: pd.DataFrame) -> Sentence:
    """Where Prophet pays, from regime_map.csv: the least host link and expert ratio, and the least all-to-all
    share and affinity, at which some grid point reaches PAYS (each a necessary condition on the map), the
    map's best point, and where the studied systems sit."""
    grid = regimes[regimes.kind == "grid"] if "kind" in regimes else regimes.iloc[0:0]
    if grid.empty:
        return []
    marks = regimes[regimes.kind == "system"]
    names = dict(zip(rows.system_id, rows.system, strict=True))
    ref = str(grid.system_id.iloc[0])  # the reference system, whose other properties the map keeps
    a, b = grid[grid.panel == "a"], grid[grid.panel == "b"]
    level = Value("regime", "level", fmt.ratio(PAYS))
    out: Sentence = [
        "On the regime map (",
        *([Value("regime", "reference", names[ref]), "'s"] if ref in names else ["the reference system's"]),
        " other properties, each side at its best operating point), ",
    ]
    pa, pb = a[a.speedup >= PAYS], b[b.speedup >= PAYS]
    if pa.empty:
        out += [
            "no host link up to ",
            Value("regime", "a_host_max_gbps", fmt.number(a.x.max())),
            " GB/s per GPU gives Prophet ",
            level,
        ]
    else:
        top = a.loc[a.speedup.idxmax()]
        out += [
            "Prophet gains ",
            level,
            " or more only where the host link carries at least ",
            Value("regime", "a_host_gbps", fmt.number(pa.x.min())),
            " GB/s per GPU and the experts take at least ",
            Value("regime", "a_expert_ratio", fmt.number(pa.y.min())),
            " times the box's GPU memory (up to ",
            Value("regime", "a_top_speedup", fmt.ratio(top.speedup)),
            " at ",
            Value("regime", "a_top_host_gbps", fmt.number(top.x)),
            " GB/s and ",
            Value("regime", "a_top_expert_ratio", fmt.number(top.y)),
            " times)",
        ]
    if pb.empty:
        out += ["; no all-to-all share and affinity on the map reaches it"]
    else:
        out += [
            ", and only where the baseline's all-to-all takes at least ",
            Value("regime", "b_share_pct", fmt.pct(pb.x.min())),
            " of its step and the routing's inter-layer affinity reaches ",
            Value("regime", "b_affinity", fmt.number(pb.y.min())),
        ]
    ma, mb = marks[marks.panel == "a"], marks[marks.panel == "b"]
    if not ma.empty:
        lo, hi = ma.x.min(), ma.x.max()
        out += [
            "; the studied systems' host links carry ",
            Value("regime", "systems_host_low_gbps", fmt.number(lo)),
            *(
                ["–", Value("regime", "systems_host_high_gbps", fmt.number(hi))]
                if fmt.number(lo) != fmt.number(hi)
                else []
            ),
            " GB/s per GPU and their all-to-all takes at most ",
            Value("regime", "systems_share_pct", fmt.pct(mb.x.max())),
            " of the baseline's step, with no affinity measured",
        ]
    return [*out, "."]


def as_text(sentences: list[Sentence], escape=fmt.md) -> str:
    """The sentences as one paragraph, text escaped with `escape` (Markdown by default)."""
    return " ".join("".join(escape(p if isinstance(p, str) else p.text) for p in s) for s in sentences)


def as_tex(sentences: list[Sentence]) -> str:
    """The sentences in LaTeX, every number a keyed command."""
    from prophet_model.outputs.latex import tex

    return " ".join(
        "".join(tex(p) if isinstance(p, str) else f"\\prophet{{{p.key}}}{{{p.metric}}}" for p in s) for s in sentences
    )


def values(sentences: list[Sentence]) -> list[Value]:
    """Every keyed value the sentences use (for macros.tex)."""
    return [p for s in sentences for p in s if isinstance(p, Value)]


def draft_sentences(headline: pd.DataFrame, claims: pd.DataFrame, need_prefix: str) -> list[Sentence]:
    """The finding's sentences that check the draft analysis's speedup (the range against its claim, and what
    reaching it would take), for the artifact appendix and the book's claims page; [] when it states none."""
    own = finding(headline, claims, None, need_prefix, draft=False)
    return [s for s in finding(headline, claims, None, need_prefix) if s not in own]


def what_moves(tornado: pd.DataFrame | None, headline: pd.DataFrame) -> dict[str, Moves]:
    """Per system of the headline (each side at its best): what moves its speedup and what does not
    (study/questions/moves.py), from the speedup rows of results/data/sensitivity/tornado.csv."""
    from prophet_model.study.questions.moves import moves

    if tornado is None or "metric" not in tornado:
        return {}
    spread = tornado[tornado.metric == "speedup"]
    rows = headline.dropna(subset=["speedup"])
    return {
        r["system_id"]: moves(spread[spread.system_id == r["system_id"]].to_dict("records"), r)
        for r in rows.to_dict("records")
        if (spread.system_id == r["system_id"]).any()
    }


def moves_sentence(tornado: pd.DataFrame | None, headline: pd.DataFrame) -> str:
    """One sentence for the finding page: the input that moves each system's speedup most, systems grouped, and
    where the prediction accuracy does not move it, with the reason (Markdown-escaped)."""
    from prophet_model.study.questions.moves import MOVES, NOTHING_FETCHED, moves_of

    found = what_moves(tornado, headline)
    if not found:
        return ""
    names = dict(zip(headline.system_id, headline.system, strict=True))
    top: dict[str, list[str]] = {}
    for sid, m in found.items():
        top.setdefault(m.moving[0][0] if m.moving else "", []).append(names[sid])
    most = [f"the {label} on {_words(systems)}" for label, systems in top.items() if label]
    still = [names[sid] for sid, m in found.items() if moves_of(m, "prediction accuracy") == NOTHING_FETCHED]
    text = (
        f"What moves the speedup at each system's best operating point (an input whose range moves it by {MOVES:g}"
        " or more, the others as configured; `results/data/sensitivity/tornado.csv`): most of all "
        + (", ".join(most) if most else "nothing")
    )
    if still:
        text += f"; the prediction accuracy does not change it on {_words(still)}: {NOTHING_FETCHED}"
    return fmt.md(text + ".").replace(fmt.md("`results/data/sensitivity/tornado.csv`"), TORNADO_CODE)


TORNADO_CODE = "`results/data/sensitivity/tornado.csv`"


def _words(names: list[str]) -> str:
    """a, b and c."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def system_moves(results_dir: Path, system_id: str) -> str:
    """A system page's sentence (Markdown-escaped): what moves its speedup at its best operating point and what
    does not, with the reason where known, from results/data/sensitivity/tornado.csv and headline.csv; "" where
    the results hold no tornado for it."""
    from prophet_model.study.questions.moves import speedup_sentence

    data = results_dir / "data"
    tornado = data / "sensitivity" / "tornado.csv"
    if not tornado.is_file():
        return ""
    headline = pd.read_csv(data / "headline.csv")
    found = what_moves(pd.read_csv(tornado), headline)
    if system_id not in found:
        return ""
    row = headline[headline.system_id == system_id].iloc[0].to_dict()
    return fmt.md(speedup_sentence(str(row["system"]), found[system_id], row))
