"""The model's inputs that the code bounds, varies, samples or solves for, each declared once: its dotted key, type,
unit, allowed values, label and help, the Scenario fields it sets, and the grids the study sweeps it over.

Everything that bounds or varies an input reads it from here: the schema's bounds of the configured value
(study/schema.py), the sensitivity sweeps, maps and Monte Carlo (study/sensitivity.py), the claims' levers
(study/claims.py), and `sweep` / `solve` (their allowed values, default search range and help text). The values
themselves, with their sources, stay in `_config.yml` and the catalogs; an input's `source` says where.

Allowed values are a closed or open interval [low, high] / (low, high). Where a draw or a search needs a closed
range inside an open one, an open end moves inward by one step (`STEP_IN`: 1 for whole numbers, 1e-3 otherwise):
the Monte Carlo truncates a draw there, and `solve` searches from there."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # numpy is imported where a grid is made: `--help` and the schema load without it
    import numpy as np

WHOLE_STEP_IN, STEP_IN = 1.0, 1e-3  # how far inside an open end a closed range starts (whole numbers, others)
LEVER_POINTS = 2001  # grid points of a claims lever (study/inversion.py refines the bracket found on it)


@dataclass(frozen=True)
class Grid:
    """Values of an input: `n` points from `low` to `high`, evenly spaced (`log`: in log), or the `values` listed."""

    low: float = 0.0
    high: float = 0.0
    n: int = 0
    log: bool = False
    values: tuple[float, ...] = ()

    def array(self) -> np.ndarray:
        import numpy as np

        if self.values:
            return np.array(self.values, dtype=float)
        return np.geomspace(self.low, self.high, self.n) if self.log else np.linspace(self.low, self.high, self.n)


def lin(low: float, high: float, n: int) -> Grid:
    return Grid(low, high, n)


def log(low: float, high: float, n: int) -> Grid:
    return Grid(low, high, n, log=True)


@dataclass(frozen=True)
class Lever:
    """An input as a lever of the claims' inversion ("what value would give the claimed figure"):
    its name in claims.csv, the grid the solver starts from, and the unit claims.csv gives."""

    name: str
    grid: Grid
    unit: str


@dataclass(frozen=True)
class Input:
    """One input. `mode`: "value" (the value replaces the Scenario fields) or "factor" (it multiplies the catalog's
    or measured value, centred on 1). `side`: the variants it moves ("prophet": the baseline keeps its own).
    `solve`: the default range of `solve` where the allowed values are unbounded or very wide (None: the
    closed allowed range; a factor: FACTOR_RANGE). `uncertain`: the Monte Carlo may sample it
    (`uncertainty.inputs` in _config.yml gives its distribution, with a source)."""

    key: str
    unit: str
    label: str
    help: str
    fields: tuple[str, ...]
    type: Literal["float", "int", "choice"] = "float"
    source: str = "_config.yml"
    mode: Literal["value", "factor"] = "value"
    side: Literal["both", "prophet", "baseline"] = "both"
    low: float = -math.inf
    high: float = math.inf
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[str, ...] = ()  # a "choice" input: its names, in the order of their Scenario codes
    sweep: Grid | None = None  # the one-at-a-time sensitivity sweep (sensitivity.csv, tornado)
    map_grid: Grid | None = None  # the second axis of an accuracy x input speedup map
    solve: tuple[float, float] | None = None
    uncertain: bool = False
    lever: Lever | None = None

    @property
    def whole(self) -> bool:
        return self.type == "int"

    def ends(self) -> tuple[bool, bool]:
        """(low end inclusive, high end inclusive): an infinite end is open."""
        return self.low_inclusive and math.isfinite(self.low), self.high_inclusive and math.isfinite(self.high)

    def allows(self, v: float) -> bool:
        """Whether `v` is an allowed value (a number; a whole one for a whole-number input)."""
        low_in, high_in = self.ends()
        low_ok = v >= self.low if low_in else v > self.low
        high_ok = v <= self.high if high_in else v < self.high
        return low_ok and high_ok and (not self.whole or v == round(v))

    def allowed(self) -> str:
        """The allowed values in words, e.g. "numbers in [0, 1)" (for error messages)."""
        if self.choices:
            return ", ".join(self.choices)
        low_in, high_in = self.ends()
        span = f"{'[' if low_in else '('}{self.low:g}, {self.high:g}{']' if high_in else ')'}"
        return ("whole numbers in " if self.whole else "numbers in ") + span

    def closed(self) -> tuple[float, float]:
        """The allowed range closed: an open finite end moved inward by one step (WHOLE_STEP_IN or STEP_IN)."""
        step = WHOLE_STEP_IN if self.whole else STEP_IN
        low = self.low if self.low_inclusive or not math.isfinite(self.low) else self.low + step
        high = self.high if self.high_inclusive or not math.isfinite(self.high) else self.high - step
        return low, high

    def field_bounds(self) -> dict[str, float]:
        """The schema's bounds of the configured value (strict.Field's ge/gt/le/lt; infinite ends left out)."""
        low_in, high_in = self.ends()
        ends = (("ge" if low_in else "gt", self.low), ("le" if high_in else "lt", self.high))
        return {k: int(v) if float(v).is_integer() else v for k, v in ends if math.isfinite(v)}


SHARE = {"low": 0.0, "high": 1.0}
POSITIVE = {"low": 0.0, "low_inclusive": False}
FACTOR_RANGE = (1e-2, 1e2)  # the range `solve` searches for a factor on a catalog or measured value
OF_TOUCHED = "of touched experts"
OFFLOAD, OVERLAP = ("copy", "cpu", "auto"), ("none", "two_batch", "auto")  # physics' OFFLOAD_COMPUTE, OVERLAP codes
OVERLAP_TEXT = ("two-batch overlap", "one batch, two half-batches each hiding the other's collectives, or the faster")
OFFLOAD_TEXT = ("missing experts: copied or on the CPU", "a missing expert copied, computed by the CPU, or the faster")

REGISTRY: tuple[Input, ...] = (
    Input(
        "prophet.prediction_accuracy",
        "",
        "prediction accuracy",
        "share of needed experts Prophet predicts (its prediction set as large as needed)",
        ("prediction_accuracy",),
        side="prophet",
        **SHARE,
        sweep=lin(0.0, 1.0, 21),
        uncertain=True,
        lever=Lever("prediction accuracy", lin(0.0, 1.0, LEVER_POINTS), ""),
    ),
    Input(
        "prophet.comm_reduction_factor",
        "×",
        "all-to-all volume reduction (×, configured, not derived)",
        "a what-if override of Prophet's all-to-all cut (unset: derived from routing and placement)",
        ("comm_reduction_factor",),
        side="prophet",
        low=1.0,
        sweep=lin(1.0, 8.0, 29),
        solve=(1.0, 1e3),
        uncertain=True,
    ),
    Input(
        "workload.batch_size_per_gpu",
        "sequences",
        "batch per GPU (sequences)",
        "sequences decoded together per GPU",
        ("batch_size_per_gpu",),
        type="int",
        low=1.0,
        high=1e6,
        sweep=log(1, 512, 10),
        solve=(1.0, 4096.0),
        uncertain=True,
    ),
    Input(
        "workload.context_length_tokens",
        "tokens",
        "context length (tokens)",
        "tokens of context per sequence (its KV cache)",
        ("context_length",),
        type="int",
        low=1.0,
        high=1e8,
        solve=(1.0, 1e6),
        uncertain=True,
    ),
    Input(
        "interconnect_bandwidth_factor",
        "× catalog",
        "interconnect bandwidth (× catalog)",
        "a factor on the GPU-to-GPU links (and cross-socket, peer-copy and RDMA NIC rates)",
        ("link_bandwidth", "cross_socket_bandwidth", "peer_bandwidth", "nic_bandwidth"),
        source="catalog/interconnects.yml",
        mode="factor",
        **POSITIVE,
        sweep=log(0.25, 4.0, 17),
        map_grid=log(0.25, 4.0, 41),
        uncertain=True,
        lever=Lever("interconnect bandwidth", log(1e-2, 1e3, LEVER_POINTS), "x catalog"),
    ),
    Input(
        "host_link_bandwidth_factor",
        "× attainable",
        "host-link bandwidth (× attainable)",
        "a factor on the GPU's host link and its switch uplink (the attainable, measured rates)",
        ("host_bandwidth", "switch_uplink_bandwidth"),
        source="catalog/gpus.yml (attainable rates: study/rates.py)",
        mode="factor",
        **POSITIVE,
        sweep=log(0.25, 4.0, 9),
        uncertain=True,
        lever=Lever("host-link bandwidth", log(1e-2, 1e3, LEVER_POINTS), "x attainable"),
    ),
    Input(
        "expert_size_factor",
        "× catalog",
        "expert size (× catalog)",
        "a factor on every expert's FFN size",
        ("expert_ffn_size",),
        source="catalog/models.yml",
        mode="factor",
        **POSITIVE,
        sweep=log(0.25, 4.0, 9),
        uncertain=True,
    ),
    Input(
        # KV cache per token: KV heads x head size x KV precision (0.25: 8 of 32 KV heads; 0.5: a one-byte cache)
        "kv_cache_factor",
        "× catalog",
        "KV cache per token (× catalog)",
        "a factor on the KV cache per token (KV heads x head size x KV precision)",
        ("kv_elements_per_token_per_layer",),
        source="catalog/models.yml",
        mode="factor",
        **POSITIVE,
        sweep=log(0.125, 2.0, 9),
        uncertain=True,
    ),
    Input(
        "model.num_experts",
        "experts",
        "experts per layer",
        "routed experts per MoE layer",
        ("num_experts",),
        type="int",
        source="catalog/models.yml",
        low=1.0,
        high=1e5,
        sweep=Grid(values=(8, 16, 32, 64, 128, 256, 512)),
        solve=(1.0, 4096.0),
    ),
    Input(
        "resident_share",
        OF_TOUCHED,
        "hit rate (both)",
        "a what-if: the share of touched experts already on the GPU, both variants",
        ("resident_override",),
        source="the model (physics/cache.py)",
        **SHARE,
        lever=Lever("resident share", lin(0.0, 1.0, LEVER_POINTS), OF_TOUCHED),
    ),
    Input(
        "prophet_hit_rate",
        OF_TOUCHED,
        "Prophet's hit rate",
        "a what-if: the share of touched experts Prophet's cache holds (the baseline keeps its own)",
        ("resident_override",),
        source="the model (physics/cache.py)",
        side="prophet",
        **SHARE,
        map_grid=lin(0.0, 1.0, 41),
        lever=Lever("Prophet hit rate", lin(0.0, 1.0, LEVER_POINTS), OF_TOUCHED),
    ),
    Input(
        "prophet_overlap",
        "of Prophet's copy time hidden",
        "share of Prophet's copies hidden",
        "a what-if: the share of Prophet's expert-copy time hidden behind computation",
        ("overlap_override",),
        source="the model (physics/prefetch.py)",
        side="prophet",
        **SHARE,
        lever=Lever("fetch overlap", lin(0.0, 1.0, LEVER_POINTS), "of Prophet's copy time hidden"),
    ),
    Input(
        "routing.zipf_exponent",
        "",
        "routing skew (Zipf exponent)",
        "the Zipf exponent of expert popularity (routing.distribution zipf)",
        ("routing_skew",),
        low=0.0,
        high=4.0,
        sweep=lin(0.0, 1.5, 16),
        map_grid=lin(0.0, 1.5, 31),
        uncertain=True,
    ),
    Input(
        "routing.temporal_reuse",
        "",
        "temporal reuse between steps",
        "lag-1 correlation of an expert's use between decode steps",
        ("temporal_reuse",),
        low=0.0,
        high=1.0,
        high_inclusive=False,
        sweep=Grid(values=(0.0, 0.2, 0.4, 0.6, 0.8, 0.9)),
        uncertain=True,
    ),
    Input(
        "routing.inter_layer_affinity",
        "of tokens kept local",
        "inter-layer affinity (tokens kept local)",
        "share of tokens whose next layer's experts sit on their current GPU under Prophet's placement",
        ("inter_layer_affinity",),
        side="prophet",
        **SHARE,
        sweep=lin(0.0, 0.95, 20),
        uncertain=True,
        lever=Lever("inter-layer affinity", lin(0.0, 1.0, LEVER_POINTS), "of tokens kept local"),
    ),
    Input(
        "expert_cache.memory_share",
        "of free memory",
        "expert cache (share of free memory)",
        "share of the memory left after dense weights, KV cache and reserve that holds experts",
        ("cache_memory_share",),
        low=0.0,
        high=1.0,
        low_inclusive=False,
        sweep=lin(0.05, 1.0, 20),
        uncertain=True,
    ),
    Input(
        "expert_cache.prophet_policy",
        "",
        "Prophet's cache policy",
        "which experts Prophet's cache keeps",
        ("cache_policy",),
        type="choice",
        side="prophet",
        choices=("static", "lru", "predicted"),
    ),
    Input("experts.offload_compute", "", *OFFLOAD_TEXT, ("offload_compute",), type="choice", choices=OFFLOAD),
    Input("parallel.overlap", "", *OVERLAP_TEXT, ("two_batch_overlap",), type="choice", choices=OVERLAP),
    Input(
        "expert_cache.baseline_policy",
        "",
        "the baseline's cache policy",
        "which experts the baseline's cache keeps",
        ("cache_policy",),
        type="choice",
        side="baseline",
        choices=("static", "lru"),
    ),
)
BY_KEY: dict[str, Input] = {i.key: i for i in REGISTRY}
# the order of the one-at-a-time sweeps (sensitivity.csv's rows, the tornado's ties, the figures' panels)
SWEEP_ORDER = (
    "prophet.prediction_accuracy",
    "prophet.comm_reduction_factor",
    "interconnect_bandwidth_factor",
    "workload.batch_size_per_gpu",
    "expert_size_factor",
    "kv_cache_factor",
    "model.num_experts",
    "host_link_bandwidth_factor",
    "routing.zipf_exponent",
    "routing.temporal_reuse",
    "routing.inter_layer_affinity",
    "expert_cache.memory_share",
)


def get(key: str) -> Input:
    """The input of a dotted key (KeyError: not a registered input)."""
    return BY_KEY[key]


def numeric() -> tuple[Input, ...]:
    """The inputs that take numbers, in registry order (sweep's and solve's vectorized keys)."""
    return tuple(i for i in REGISTRY if not i.choices)


def choices() -> dict[str, tuple[str, ...]]:
    """{key: its names, in the order of their Scenario codes} of the inputs that take names."""
    return {i.key: i.choices for i in REGISTRY if i.choices}


def bounds_table() -> dict[str, tuple[float, float, bool, bool, bool]]:
    """{key: (low, high, low inclusive, high inclusive, whole numbers)} of every numeric input (sweep, solve)."""
    return {i.key: (i.low, i.high, *i.ends(), i.whole) for i in numeric()}


def solve_range(key: str) -> tuple[float, float] | None:
    """The range `solve` searches without --range: the declared one, else a factor's FACTOR_RANGE, else the
    closed allowed range of a bounded input; None for a key with no default range."""
    i = BY_KEY.get(key)
    if i is not None and i.solve is not None:
        return i.solve
    if key.endswith("_factor"):
        return FACTOR_RANGE
    if i is not None and not i.choices and all(map(math.isfinite, i.closed())):
        return i.closed()
    return None


def sweeps() -> dict[str, np.ndarray]:
    """{key: values} of the one-at-a-time sensitivity sweeps, in SWEEP_ORDER."""
    return {k: BY_KEY[k].sweep.array() for k in SWEEP_ORDER}  # type: ignore[union-attr]


def maps() -> dict[str, tuple[np.ndarray, bool]]:
    """{key: (grid, log scale)} of the second axis of the accuracy maps, in registry order."""
    return {i.key: (i.map_grid.array(), i.map_grid.log) for i in REGISTRY if i.map_grid is not None}


def labels() -> dict[str, str]:
    """{key: label} of the inputs (the sensitivity figures' and the book's wording)."""
    return {i.key: i.label for i in REGISTRY}


def uncertain_keys() -> tuple[str, ...]:
    """The inputs `uncertainty.inputs` may give a distribution (the Monte Carlo samples them)."""
    return tuple(i.key for i in REGISTRY if i.uncertain)


def clip_bounds(key: str) -> tuple[float, float] | None:
    """Where the Monte Carlo truncates a drawn value (a configured value times its factor): the closed allowed
    range; None for a factor (the model multiplies it)."""
    i = BY_KEY[key]
    return None if i.mode == "factor" else i.closed()


def levers() -> dict[str, tuple[str, np.ndarray, str]]:
    """{lever name: (input key, starting grid, unit)} of the claims' inversion, in registry order."""
    return {i.lever.name: (i.key, i.lever.grid.array(), i.lever.unit) for i in REGISTRY if i.lever is not None}


def lever_input(name: str) -> Input:
    """The input a claims lever moves."""
    return next(i for i in REGISTRY if i.lever is not None and i.lever.name == name)


def varied_help(width: int = 110) -> str:
    """The model's inputs for `sweep --help` and `solve --help`: key, allowed values and meaning, one line each."""
    import textwrap

    lines = []
    for i in REGISTRY:
        text = f"  {i.key}: {i.allowed()}; {i.help}"
        lines.append(textwrap.fill(text, width, subsequent_indent="      "))
    return "\n".join(lines)
