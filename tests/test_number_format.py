"""Numbers that show their differences (issue 38): pairs, speedups near 1 and gains printed with the digits that tell
them apart, "unchanged" where they are equal, "within the model's error" below the validated error; and what moves a
speedup, with the reason (study/questions/moves.py). Worked by hand."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from prophet_model.outputs import formatting as fmt
from prophet_model.study.questions import moves as mv


@pytest.mark.parametrize(
    ("a", "b", "kind", "shown"),
    [
        # differ in the 3rd significant figure: three figures suffice
        (15.89, 16.10, "tokens", "15.9 → 16.1"),
        (0.00884, 0.00895, "pct", "0.00884% → 0.00895%"),
        (62.58, 61.75, "usd", "$62.58 → $61.75"),
        # differ in the 4th: 1,615 and 1,616 are not 1,610 and 1,620 (a 0.08% gap shown as 0.6%)
        (1615.12, 1616.4, "tokens", "1,615 → 1,616"),
        # $0.69461 and $0.69432 both read $0.69 with cents: four figures tell them apart
        (0.69461, 0.69432, "usd", "$0.6946 → $0.6943"),
        # equal at full precision: one value, never "a → a"
        (0.6946, 0.6946, "usd", "unchanged at $0.69"),
        (4.3993, 4.3993, "pct", "unchanged at 4.4%"),
        (1615.1, 1615.1, "tokens", "unchanged at 1,620"),
        # alike even at six figures (a difference of 1e-7): unchanged, never two equal-looking numbers
        (1.0, 1.0000001, "number", "unchanged at 1"),
    ],
)
def test_a_change_shows_the_digits_that_tell_its_ends_apart(a, b, kind, shown) -> None:
    assert fmt.change(a, b, kind) == shown


def test_a_pair_never_reads_alike_when_the_values_differ() -> None:
    """Over many close pairs: either the texts differ, or the change says "unchanged"; and a shown gap is within
    half of the true one (no rounding invents a difference ten times the real one)."""
    for base in (0.6946, 15.89, 1615.12, 5726.2, 101841.2):
        for rel in (1e-2, 3e-3, 8e-4, 2e-4, 5e-5):
            a, b = base, base * (1 + rel)
            ta, tb = fmt.pair_texts(a, b, "tokens")
            assert ta != tb, (a, b)
            shown = float(tb.replace(",", "")) - float(ta.replace(",", ""))
            assert abs(shown - (b - a)) <= (b - a) / 2, (ta, tb, a, b)


@pytest.mark.parametrize(
    ("x", "shown"),
    [
        (1.0, "1.00×"),  # exactly one: two decimals
        (1.34, "1.34×"),
        (1.0133, "1.01×"),
        (1.002, "1.002×"),  # 1.00× would hide the gain: three decimals
        (1.0004, "1.0004×"),  # four
        (0.9996, "0.9996×"),  # a loss as well
        (1.00001, "1.00×"),  # reads 1 even at the cap of four decimals: no change to show
        (5.7, "5.70×"),
    ],
)
def test_a_speedup_shows_the_digits_that_tell_it_from_one(x, shown) -> None:
    assert fmt.ratio(x) == shown == fmt.speedup(x)


def test_gains_and_the_models_error() -> None:
    # a 1.0133× speedup is a +1.3% gain; 1.002× +0.2%; 1 none
    assert (fmt.gain(1.0133), fmt.gain(1.002), fmt.gain(1.0), fmt.gain(0.985)) == ("+1.3%", "+0.2%", "±0%", "-1.5%")
    # the validated error of a speedup is 1.33%: a 1.0100× speedup (+1%) is within it, 1.0200× (+2%) is not, and
    # no speedup of exactly 1 is "within" anything: it is no gain
    assert fmt.within_error(1.01, 1.33) and fmt.within_error(0.99, 1.33)
    assert not fmt.within_error(1.02, 1.33) and not fmt.within_error(1.0, 1.33) and not fmt.within_error(1.01, None)
    assert fmt.speedup_within(1.002, 1.33) == "1.002× (within the model's error)"
    assert fmt.speedup_within(1.2, 1.33) == "1.20×"
    # the error a speedup is held against is the whole decode step's (formatting.ERROR_MECHANISM), one row
    validated = pd.DataFrame(
        {
            "mechanism": ["expert offloading and prefetch", fmt.ERROR_MECHANISM, "all-to-all"],
            "median_pct": [1.33, 3.7, 20.4],
        }
    )
    assert fmt.speedup_error_pct(validated) == 3.7
    assert fmt.speedup_error_pct(validated.iloc[[0]]) is None


RESIDENT_ROW = {
    "baseline_hit_rate": 1.0,
    "baseline_fetch_overhead_pct": 0.0,
    "baseline_comm_overhead_pct": 2.06,
    "comm_reduction": 1.0,
}
FETCHING_ROW = RESIDENT_ROW | {"baseline_hit_rate": 0.002, "baseline_fetch_overhead_pct": 98.3}


def test_what_does_not_move_a_speedup_and_why() -> None:
    """Every expert resident: the accuracy and the host link change nothing (nothing is fetched); the all-to-all's
    small share is why its cut moves little; a link both sides use alike with the same bytes changes both alike."""
    assert mv.reason("prophet.prediction_accuracy", RESIDENT_ROW) == mv.NOTHING_FETCHED
    assert mv.reason("host_link_bandwidth_factor", RESIDENT_ROW) == mv.NOTHING_FETCHED
    assert mv.reason("prophet.prediction_accuracy", FETCHING_ROW) == ""  # it fetches: no such reason
    assert mv.reason("prophet.comm_reduction_factor", RESIDENT_ROW) == (
        "the all-to-all takes only 2.06% of the baseline's step"
    )
    big = RESIDENT_ROW | {"baseline_comm_overhead_pct": 51.5}
    assert mv.reason("prophet.comm_reduction_factor", big) == ""  # half the step: its share is no reason
    assert mv.reason("interconnect_bandwidth_factor", big) == mv.SAME_BYTES
    assert mv.reason("interconnect_bandwidth_factor", big | {"comm_reduction": 1.05}) == ""
    assert mv.no_cut(RESIDENT_ROW) and not mv.no_cut(RESIDENT_ROW, configured_cut=1.0)


def test_moves_splits_a_tornado_at_the_threshold() -> None:
    spreads = [
        {"input": "kv_cache_factor", "label": "KV cache per token (× catalog)", "spread": 0.04},
        {"input": "prophet.prediction_accuracy", "label": "prediction accuracy", "spread": 0.0},
        {"input": "host_link_bandwidth_factor", "label": "host-link bandwidth (× attainable)", "spread": 0.0},
        {"input": "routing.inter_layer_affinity", "label": "inter-layer affinity", "spread": mv.MOVES / 2},
        {"input": "model.num_experts", "label": "experts per layer", "spread": mv.MOVES},  # at the threshold: moves
    ]
    m = mv.moves(spreads, RESIDENT_ROW)
    assert m.moving == [("KV cache per token", 0.04), ("experts per layer", mv.MOVES)]
    assert m.still[mv.NOTHING_FETCHED] == ["prediction accuracy", "host-link bandwidth"]
    assert mv.moves_of(m, "prediction accuracy") == mv.NOTHING_FETCHED and mv.moves_of(m, "experts per layer") is None
    said = mv.speedup_sentence("8×A100", m, RESIDENT_ROW)
    assert said.startswith("8×A100's speedup at its best operating point is moved by KV cache per token")
    assert "not by prediction accuracy, host-link bandwidth (nothing is fetched" in said
    assert said.endswith(f"Prophet's all-to-all cut is 1.00×: {mv.NO_LOCALITY}.")


def test_expected_ranges_are_said_for_the_strategy_the_draft_gave_them() -> None:
    """A headline row of a strategy without expected ranges names those of the system's other strategies and how
    many it misses, never "no expected range given"; a system without any says the draft gave none."""
    from prophet_model.measured.evidence import expected_text

    checks = pd.DataFrame(
        {
            "system_id": ["8xA100"] * 3,
            "strategy": ["Hybrid"] * 3,
            "check": ["speedup", "baseline_tokens_per_s", "prophet_tokens_per_s"],
            "value": [1.34, 1970.0, 2640.0],
            "min": [4.0, 400.0, 2000.0],
            "max": [6.0, 600.0, 3000.0],
            "status": ["MISS", "MISS", "PASS"],
        }
    )
    said = expected_text(checks, "EP")
    assert said.startswith("none given for EP; for Hybrid, 2 of 3 missed: speedup 1.34 outside 4-6")
    assert expected_text(checks, "Hybrid").startswith("speedup 1.34 outside 4-6; baseline_tokens_per_s")
    assert expected_text(checks[checks.status == "PASS"], "Hybrid") == "none (1 of 1 met)"
    assert expected_text(checks.iloc[0:0], "EP") == ""


# "a → a": two equal-looking numbers stated as a change; each number whole (not the "1 → 1" inside "1,021 → 1,022")
SAME_PAIR = r"(?<![\d,.$])(\$?[\d,.]*\d%?×?) → \1(?![\d]|[,.]\d)"


def test_same_pair_finds_equal_looking_changes_only() -> None:

    for same in ("$0.69 → $0.69.", "1,021 → 1,021 tok/s", "(1.00× → 1.00×)", "2.5% → 2.5%"):
        assert re.search(SAME_PAIR, same), same
    for differ in ("1,021 → 1,022 tok/s", "11 → 1", "1 → 12", "$0.69 → $0.691", "0.5 → 10.5", "1.5% → 1.50%"):
        assert not re.search(SAME_PAIR, differ), differ


def test_analyze_reports_each_sides_best_and_no_equal_looking_change(plain_results, capsys) -> None:

    from prophet_model.cli import main

    main(["analyze", "--results", str(plain_results)])
    out = capsys.readouterr().out
    head = pd.read_csv(plain_results / "data" / "headline.csv").dropna(subset=["speedup"])
    top = head.loc[head.speedup.idxmax()]
    assert f"Highest speedup, each side at its best: {top.system}, {fmt.ratio(top.speedup)}" in out
    assert "Each system at its best (baseline's best against Prophet's best" in out
    assert not re.search(SAME_PAIR, out), re.search(SAME_PAIR, out)
    assert "unchanged at" in out  # the default study has equal pairs (8×A100's cost): said as such


def test_whatif_and_the_finding_say_what_moves_the_speedup(plain_results, capsys) -> None:
    """8×A100 keeps every expert resident at its best batch: whatif's line and the finding page say the prediction
    accuracy does not move its speedup, and why."""
    from prophet_model.cli import main
    from prophet_model.outputs.finding import moves_sentence, system_moves

    assert main(["whatif", "--system", "8xA100", "--set", "prophet.prediction_accuracy=0.9"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("What moves it: "))
    # the rule, not a list: the inputs said not to move it because nothing is fetched act only through the expert
    # copies (the prediction accuracy among them), and every input said to move it has a spread of at least MOVES
    from prophet_model.study.sensitivity import LABELS

    still = re.search(rf"not by ([^;()]+) \({re.escape(mv.NOTHING_FETCHED)}\)", line)
    assert still, line
    through_fetch = {mv.short_label(LABELS[k]) for k in mv.THROUGH_FETCH if k in LABELS}
    assert "prediction accuracy" in still[1].split(", ") and set(still[1].split(", ")) <= through_fetch, line
    spreads = re.findall(r"\(spread ([\d.e+-]+)\)", line)
    assert spreads and all(float(x) >= mv.MOVES for x in spreads), line
    assert "1.00× (unchanged)" in out and "unchanged at $" in out
    data = plain_results / "data"
    head = pd.read_csv(data / "headline.csv")
    sentence = moves_sentence(pd.read_csv(data / "sensitivity" / "tornado.csv"), head)
    assert "the prediction accuracy does not change it on " in sentence and "8×A100" in sentence
    assert "nothing is fetched" in system_moves(plain_results, "8xA100")
    tornado = pd.read_csv(data / "sensitivity" / "tornado.csv")
    rows = tornado[(tornado.system_id == "8xA100") & (tornado.metric == "speedup")]
    page = system_moves(plain_results, "8xA100")
    moved, _, not_moved = page.partition("; not by ")
    for r in rows.itertuples():  # each input on the side of the sentence its results' spread puts it
        label = fmt.md(mv.short_label(r.label))
        assert label in (moved if r.spread >= mv.MOVES else not_moved), (label, r.spread, page)
    assert system_moves(plain_results, "no-such-system") == ""


def test_a_claims_range_never_reads_one_to_one() -> None:
    """An unreachable lever's note gives the least and most the model reaches over its range: one value where the
    two are equal, else with the figures that tell them apart."""
    from prophet_model.study.claims import span

    assert span(1.0, 1.0) == "1 at every value"
    assert span(1.0, 1.0166861) == "1 to 1.017"
    assert span(1.0, 1.0000001) == "1 to 1.0000001"  # 4 figures read alike: more, up to 8
    assert span(0.8035, 1.39) == "0.8035 to 1.39"
