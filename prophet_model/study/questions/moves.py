"""What moves the speedup at an operating point, and what does not, with the reason where it is known (issue 38).

An input moves the speedup where its tornado spread (|speedup at the high end of its range - at the low end|,
the others as configured, study.sensitivity.tornado) is at least MOVES. An input that does not is named with why,
where the operating point says it: an input that acts only through expert copies does not move a step that copies
nothing (every expert resident at this batch); one that acts through the all-to-all moves the speedup by at most
the all-to-all's share of the step. Plain records in, plain text out: `whatif`, `sweep` and `solve` use it on the
study they run, the finding page and the system pages on results/data/sensitivity/tornado.csv and headline.csv."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MOVES = 0.01  # a tornado spread of the speedup at least this (a hundredth of a speedup of 1) moves it
RESIDENT = 0.999  # a hit rate of 1 to three figures: every touched expert is in GPU memory
CUT_TOLERANCE = 0.005  # a derived all-to-all cut within 0.5% of 1 reads as 1.00×: no cut

# inputs that act on the speedup only through the expert copies (what is fetched, hit or hidden)
THROUGH_FETCH = frozenset(
    {
        "prophet.prediction_accuracy",
        "host_link_bandwidth_factor",
        "routing.temporal_reuse",
        "routing.zipf_exponent",
        "resident_share",
        "prophet_hit_rate",
        "prophet_overlap",
        "expert_cache.prophet_policy",
        "expert_cache.baseline_policy",
    }
)
# inputs that act on the speedup only through the all-to-all exchange
THROUGH_ALLTOALL = frozenset(
    {"prophet.comm_reduction_factor", "routing.inter_layer_affinity", "interconnect_bandwidth_factor"}
)
NOTHING_FETCHED = "nothing is fetched: every expert is resident at this batch"
NO_LOCALITY = "the routing has no locality to exploit"
SAME_BYTES = "both sides send the same all-to-all bytes, so a faster or slower link changes both alike"
SMALL_SHARE_PCT = 10.0  # an all-to-all below this share of the step is named as why cutting it moves little


def _pct(x: float) -> str:
    """A percentage as outputs/formatting.pct writes it: three significant figures (2.06%, 51.5%)."""
    return f"{float(f'{x:.3g}'):,g}%" if x else "0%"


def fetches(row: Mapping[str, object]) -> bool:
    """Whether either side copies experts at this operating point: a hit rate below RESIDENT or a fetch share
    above 0 (headline.csv's, whatif's or sweep's columns)."""
    hit = row.get("baseline_hit_rate")
    share = row.get("baseline_fetch_overhead_pct")
    hit = 1.0 if hit is None or hit != hit else float(hit)
    share = 0.0 if share is None or share != share else float(share)
    return hit < RESIDENT or share > 0


def reason(key: str, row: Mapping[str, object]) -> str:
    """Why `key` cannot move the speedup much at the operating point `row`, where the row says it; else ""."""
    if key in THROUGH_FETCH and not fetches(row):
        return NOTHING_FETCHED
    if key == "interconnect_bandwidth_factor" and no_cut(row):
        return SAME_BYTES
    share = row.get("baseline_comm_overhead_pct")
    if key in THROUGH_ALLTOALL and share is not None and share == share and float(share) < SMALL_SHARE_PCT:
        return f"the all-to-all takes only {_pct(float(share))} of the baseline's step"
    return ""


def no_cut(row: Mapping[str, object], configured_cut: float | None = None) -> bool:
    """Whether Prophet's all-to-all cut, derived from the routing (no configured override), reads as none."""
    cut = row.get("comm_reduction")
    return configured_cut is None and cut is not None and cut == cut and abs(float(cut) - 1) <= CUT_TOLERANCE


def short_label(label: str) -> str:
    """An input's label without its parenthesised unit or note ("host-link bandwidth (× attainable)" ->
    "host-link bandwidth")."""
    return label.split(" (")[0]


@dataclass(frozen=True)
class Moves:
    """At one operating point: the inputs that move the speedup (label, spread), largest first, and those that
    do not, grouped by the reason (reason -> labels; "" where none is known)."""

    moving: list[tuple[str, float]]
    still: dict[str, list[str]]

    def text(self) -> str:
        """In one sentence's words: "moved by A (0.1), B (0.02); not by C, D (why), E"."""
        parts = []
        if self.moving:
            parts.append("moved by " + ", ".join(f"{lab} (spread {s:.2g})" for lab, s in self.moving))
        else:
            parts.append(f"no input moves it by {MOVES:g} or more")
        for why, labels in self.still.items():
            said = ", ".join(labels)
            parts.append(f"not by {said} ({why})" if why else f"not by {said}")
        return "; ".join(parts)


def moves(spreads: Sequence[Mapping[str, object]], row: Mapping[str, object]) -> Moves:
    """What moves the speedup at the operating point `row` (a headline row: hit rate, fetch and all-to-all
    shares), from its tornado `spreads` (records with input, label, spread: tornado.csv's speedup rows)."""
    moving, still = [], {}
    for r in sorted(spreads, key=lambda r: -float(r["spread"])):
        spread = float(r["spread"])
        label = short_label(str(r["label"]))
        if math.isfinite(spread) and spread >= MOVES:
            moving.append((label, spread))
        else:
            still.setdefault(reason(str(r["input"]), row), []).append(label)
    known = {k: v for k, v in still.items() if k}  # the reasons first, the inputs without one last
    return Moves(moving, known | ({"": still[""]} if "" in still else {}))


def speedup_sentence(system: str, m: Moves, row: Mapping[str, object], configured_cut: float | None = None) -> str:
    """One system's sentence: what moves its speedup and what does not, and why Prophet's all-to-all cut is none
    where it is (`configured_cut`: prophet.comm_reduction_factor where the study configures it)."""
    cut = f"; Prophet's all-to-all cut is 1.00×: {NO_LOCALITY}" if no_cut(row, configured_cut) else ""
    return f"{system}'s speedup at its best operating point is {m.text()}{cut}."


def moves_of(m: Moves, label: str) -> str | None:
    """Why `label` does not move the speedup in `m` ("" where no reason is known), or None where it moves it."""
    return next((why for why, labels in m.still.items() if label in labels), None)
