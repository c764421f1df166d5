"""Tables for the notebooks and the book: thin views over the configuration and the files `run` wrote under
results/ (outputs/study_results.py reads them), so that the notebooks hold no logic of their own and run
nothing of the study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs import study_results as sr
from prophet_model.outputs.formatting import table_html
from prophet_model.outputs.validation_views import (  # noqa: F401 (the validation notebook calls them as views.*)
    alltoall_finding,
    batch_one_text,
    collapsed,
    decode_validation,
    nccl_path_finding,
    offload_validation,
    readable,
    two_gpu_sets,
    validation_digest,
    validation_summary,
)
from prophet_model.study.config import Study, System, load_study


def setup_display() -> None:
    """Show every DataFrame of the notebook with table_html (call once, in the first code cell)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, table_html)


def show_figure(
    fig,
    fig_cfg,
    pdf: str | None = None,
    depth: int = 0,
    made_by: str = "python -m prophet_model run",
    fold: str | None = None,
) -> None:
    """Display a figure as PNG with a line under it: a link to its PDF in the book's figures/ folder
    (`pdf`, a file name of results/figures/; None for a book-only figure) and the command that made it; with
    `fold`, both folded under that one-line summary (HTML <details>), for a page that would otherwise run long."""
    import base64
    import html

    from IPython.display import HTML, display

    from prophet_model.outputs.figures import to_png

    alt = html.escape(figure_alt(fig), quote=True)
    data = base64.b64encode(to_png(fig, fig_cfg.png_dpi)).decode("ascii")
    img = f'<img src="data:image/png;base64,{data}" alt="{alt}" style="max-width: 100%; height: auto;">'
    # HTML, not Markdown: the book parses Markdown outputs as MyST, where a link to a file is a cross-reference
    href = html.escape(f"{'../' * depth}figures/{pdf}", quote=True)
    link = f'<a href="{href}">PDF</a> · ' if pdf else "PNG only (made for this page) · "
    note = f"<p>{link}made by <code>{html.escape(made_by)}</code></p>"
    if fold is None:
        display(HTML(img))
        display(HTML(note))
    else:
        display(HTML(f"<details><summary>{html.escape(fold)}</summary>\n{img}\n{note}\n</details>"))


def pdf_note(results: str | Path, system: str | None = None) -> str:
    """Where the page's PDFs are (Markdown; the results folder, the user's, shown literally in a code span)."""
    if system is None:
        return f"PDF of the key figure: {fmt.code(f'{results}/figures/cross_system_comparison.pdf')}"
    return f"PDFs for the paper: {fmt.code(f'{results}/figures/*_{system}.pdf')} (linked under each figure)."


def figure_alt(fig) -> str:
    """Alt text for a figure, from what it says: its title, each panel's title and axis labels."""
    parts = []
    if fig._suptitle is not None and fig._suptitle.get_text():
        parts.append(fig._suptitle.get_text())
    for ax in fig.axes:
        bits = [t for t in (ax.get_title(), ax.get_title("left")) if t]
        axes = " against ".join(t for t in (ax.get_ylabel(), ax.get_xlabel()) if t)
        if axes:
            bits.append(axes)
        if bits:
            parts.append(": ".join(bits))
    text = "; ".join(dict.fromkeys(p.replace("\n", " ") for p in parts))
    return text or "A figure of the study (see the text around it)"


def heading(system) -> str:
    """A system page's heading, names escaped for Markdown."""
    return f"## {fmt.md(system.name)}: {system.count} × {fmt.md(system.gpu.name)}, {fmt.md(system.interconnect.name)}"


def load(config: str | Path) -> Study:
    """Load the study's configuration for a notebook (it runs nothing of the study: its numbers are the
    files `run` wrote); tables are then shown the book's way (setup_display)."""
    setup_display()
    return load_study(config)


read = sr.read  # a study-wide table of results/data/ (headline, all_systems_comparison, ...)
system_rows = sr.system_rows  # one system's rows (results_<id>.csv)


def system_assumptions(study: Study, system: System) -> pd.DataFrame:
    """The inputs that shape this system's results, with units and sources."""
    g, n, w, p = system.gpu, system.interconnect, study.config.workload, study.config.prophet
    m = study.model_of(system)  # the system's own model where it names one
    rows = [
        ("GPU", g.name, "", f"catalog/gpus.yml: {system.gpu_key}"),
        ("GPUs", system.count, "", "_config.yml: systems"),
        ("HBM capacity", g.memory_capacity_gb, "GB", g.sources["memory_capacity_gb"]),
        ("HBM bandwidth", g.memory_bandwidth_gbps, "GB/s", g.sources["memory_bandwidth_gbps"]),
        ("Dense BF16", g.bf16_dense_tflops, "TFLOP/s", g.sources["bf16_dense_tflops"]),
        ("Host link", g.host_link_bandwidth_gbps, "GB/s per direction", g.sources["host_link_bandwidth_gbps"]),
        ("Price", g.price_usd_per_gpu_hour, "$/GPU-hour", g.sources["price_usd_per_gpu_hour"]),
        ("Interconnect", f"{n.name} ({n.kind})", "", f"catalog/interconnects.yml: {system.interconnect_key}"),
        (
            "Interconnect bandwidth",
            n.bandwidth_gbps_per_direction,
            "GB/s per GPU per direction",
            n.sources["bandwidth_gbps_per_direction"],
        ),
        ("Payload efficiency", n.payload_efficiency, "of the line rate", n.sources["payload_efficiency"]),
        ("All-to-all latency", n.latency_us, "µs", n.sources["latency_us"]),
        ("CPU sockets", n.sockets, "", n.sources["sockets"]),
        *_node_rows(g, n),
        ("Model", m.name, "", f"catalog/models.yml: {study.model_key_of(system)}"),
        (
            "Experts × MoE layers, top-k",
            f"{m.num_experts} × {m.num_moe_layers}, top-{m.top_k}",
            "",
            m.sources["num_experts"],
        ),
        ("Expert size (all layers)", round(m.expert_bytes_all_layers / 1e9, 3), "GB", m.sources["expert_ffn_size"]),
        ("Batch per GPU", w.batch_size_per_gpu, "sequences", w.sources["batch_size_per_gpu"]),
        ("Context", w.context_length_tokens, "tokens", w.sources["context_length_tokens"]),
        ("Prediction accuracy", p.prediction_accuracy, "", p.sources["prediction_accuracy"]),
        ("All-to-all cut", fmt.comm_cut_text(p.comm_reduction_factor), "", p.sources["comm_reduction_factor"]),
    ]

    def text(v: object) -> str:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return str(v)
        return fmt.count(v) if isinstance(v, int) else fmt.number(v)

    return pd.DataFrame([(a, text(v), u, src) for a, v, u, src in rows], columns=["input", "value", "unit", "source"])


def _node_rows(g, n) -> list[tuple]:
    """The rows only some systems have (none for a PCIe host link on one node without per-peer latency): the
    NVLink-C2C host link's measured share, the per-peer all-to-all latency, the NIC tier between nodes."""
    rows = []
    if g.host_link == "nvlink_c2c":
        share = g.host_link_attainable_share
        rows.append(("Host link attainable", share, "of the line rate", g.sources["host_link_attainable_share"]))
    if n.latency_per_peer_us:
        rows.append(("All-to-all latency per peer", n.latency_per_peer_us, "µs", n.sources["latency_per_peer_us"]))
    if n.gpus_per_node:
        rows += [
            ("GPUs per node", n.gpus_per_node, "", n.sources["gpus_per_node"]),
            (
                "NIC per GPU",
                n.nic_bandwidth_gbps_per_direction,
                "GB/s per direction",
                n.sources["nic_bandwidth_gbps_per_direction"],
            ),
            (
                "NIC payload efficiency",
                n.nic_payload_efficiency,
                "of the line rate",
                n.sources["nic_payload_efficiency"],
            ),
            (
                "All-to-all latency per other node",
                n.nic_latency_per_node_us,
                "µs",
                n.sources["nic_latency_per_node_us"],
            ),
        ]
    return rows


def hardware_table(results: str | Path, system: System) -> pd.DataFrame:
    """What this system's GPU attains (measured by separate microbenchmarks), and the source (hardware_rates.csv)."""
    rates = sr.read(results, "hardware_rates")
    row = rates[rates.gpu == system.gpu.name].iloc[0].to_dict()
    return pd.DataFrame(
        [{"quantity": k, "value": v if isinstance(v, str) else fmt.number(v)} for k, v in row.items() if k != "gpu"]
    )


def claims_table(results: str | Path) -> pd.DataFrame:
    """The draft analysis's single-GPU claims: claimed, the model's figure, and each lever that would close the gap
    (the rows of claims.csv filed under the single-GPU claim's id)."""
    t = sr.read(results, "claims")
    t = t[t.system_id == sr.facts(results)["single_gpu_id"]].reset_index(drop=True)
    return t.drop(columns=["system_id", "strategy", "metric", "gap_pct"])


def breakdown(results: str | Path, system_id: str) -> pd.DataFrame:
    """Step-time terms (ms) per strategy and variant (results_<id>.csv)."""
    rows = sr.system_rows(results, system_id)
    rows = rows[rows.tokens_per_s.notna()]
    return pd.DataFrame(
        {
            "strategy": rows.strategy + " " + rows.ep.astype(str) + "×" + rows.dp.astype(str),
            "variant": rows.variant,
            "compute (ms)": rows.compute_ms.round(2),
            "fetch exposed (ms)": rows.fetch_exposed_ms.round(2),
            "all-to-all exposed (ms)": rows.alltoall_exposed_ms.round(2),
            "TP all-reduce (ms)": rows.allreduce_ms.round(2),
            "step (ms)": rows.step_ms.round(2),
            "tokens/s": rows.tokens_per_s.map(fmt.tokens),
            "resident experts": (100 * rows.resident_expert_fraction).map(fmt.pct),
        }
    ).reset_index(drop=True)


def comparison(results: str | Path, system_id: str | None = None) -> pd.DataFrame:
    """Baseline beside Prophet (all_systems_comparison.csv), formatted as everywhere else."""
    c = sr.read(results, "all_systems_comparison")
    return fmt.comparison_view(c[c.system_id == system_id] if system_id else c)


def checks(results: str | Path, system_id: str | None = None, kind: str = "expectation") -> pd.DataFrame:
    """The sanity checks of one kind (sanity_checks.csv), of one system or all."""
    c = sr.read(results, "sanity_checks")
    c = c[c.kind == kind]
    c = c[c.system_id == system_id] if system_id else c
    if c.empty:  # said in words, not as an empty table
        return pd.DataFrame({"note": ["The draft analysis gave no expected range here."]})
    return fmt.checks_view(c)


SENSITIVITY_MADE_BY = "make (notebooks/sensitivity.ipynb)"


def _per_system(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(system name, its rows) per system, in the table's order."""
    return [(g.system.iloc[0], g.reset_index(drop=True)) for _, g in table.groupby("system_id", sort=False)]


def show_tornados(results: str | Path, fig_cfg) -> None:
    """One tornado chart of the speedup per system (sensitivity/tornado.csv)."""
    from prophet_model.outputs import figures

    for name, t in _per_system(sr.sensitivity(results, "tornado")):
        fig = figures.tornado_figure(t, name, "Speedup (×)", fig_cfg)
        show_figure(fig, fig_cfg, made_by=SENSITIVITY_MADE_BY, fold=f"{name}: every input at both ends of its range")


def sensitivity_digest(results: str | Path) -> str:
    """In short: per system, the two inputs that move the speedup most and the range they span."""
    lines = [
        "**In short.** What moves each system's speedup most (every input over its sweep range, the others "
        "as configured):",
        "",
    ]
    for name, t in _per_system(sr.sensitivity(results, "tornado")):
        t = t.head(2)
        parts = [
            f"{r.label} ({fmt.ratio(min(r.at_low, r.at_high))}–{fmt.ratio(max(r.at_low, r.at_high))})"
            for r in t.itertuples()
        ]
        lines.append(f"- {fmt.md(name)} ({t.strategy.iloc[0]}, now {fmt.ratio(t.point.iloc[0])}): {'; '.join(parts)}")
    return "\n".join(lines)


MAP_MIN_SPREAD = 0.02  # a map whose speedup varies less than this (relative) over its range reads as one colour
MAP_SAME_SHARE = 0.1  # two maps whose speedups differ by less than this share of the colour scale read as one picture


def speedup_map(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(accuracy grid, grid of the other input, speedup) of one map's rows of sensitivity/maps.csv (row-major
    over (value, accuracy))."""
    shape = (-1, rows.accuracy.nunique())
    return tuple(rows[c].to_numpy(float).reshape(shape) for c in ("accuracy", "value", "speedup"))


def map_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two speedup maps of the same grid look: max |c(a) - c(b)| / (c(hi) - c(lo)) over every
    point, lo and hi the two maps' joint range and c their colour scale: log10 where hi/lo > 4, as
    figures.speedup_map_figure colours a wide range; 0 for the same picture, inf for different grids."""
    if a.shape != b.shape:
        return float("inf")
    lo, hi = float(np.nanmin([np.nanmin(a), np.nanmin(b)])), float(np.nanmax([np.nanmax(a), np.nanmax(b)]))
    c = np.log10 if lo > 0 and hi / lo > 4 else np.asarray
    diff = float(np.nanmax(np.abs(c(a) - c(b))))
    span = float(c(hi) - c(lo))
    return 0.0 if diff == 0 else diff / span if span > 0 else float("inf")


def same_maps(maps: list[tuple[str, np.ndarray]]) -> list[list[str]]:
    """The maps grouped by what they show: each group a first map and those within MAP_SAME_SHARE of its colour
    scale (map_distance), in the input's order; a figure is drawn once per group."""
    groups: list[tuple[np.ndarray, list[str]]] = []
    for name, sp in maps:
        match = next((g for g in groups if map_distance(g[0], sp) < MAP_SAME_SHARE), None)
        if match is None:
            groups.append((sp, [name]))
        else:
            match[1].append(name)
    return [names for _, names in groups]


def show_speedup_maps(results: str | Path, fig_cfg, against: str = "interconnect_bandwidth_factor") -> None:
    """One speedup map per system (prediction accuracy x `against`, a map input of sensitivity/maps.csv), each
    folded under a line; none where the speedup barely moves (MAP_MIN_SPREAD), and one for systems whose maps
    show the same picture (same_maps), the others named under it."""
    from IPython.display import Markdown, display

    from prophet_model.outputs import figures

    label = {
        "interconnect_bandwidth_factor": "Interconnect bandwidth (× datasheet)",
        "prophet_hit_rate": "Prophet's cache hit rate",
        "routing.zipf_exponent": "Routing skew (Zipf exponent)",
    }[against]
    flat, drawn = [], {}
    maps = sr.sensitivity(results, "maps")
    for name, rows in _per_system(maps[maps.against == against]):
        acc, y, sp = speedup_map(rows)
        lo, hi = np.nanmin(sp), np.nanmax(sp)
        if fmt.ratio(lo) == fmt.ratio(hi) or hi - lo < MAP_MIN_SPREAD * lo:
            flat.append(f"{fmt.md(name)} ({fmt.ratio(lo)}–{fmt.ratio(hi)})")
        else:
            drawn[name] = (acc, y, sp, bool(rows.log_scale.iloc[0]))
    for first, *alike in same_maps([(n, v[2]) for n, v in drawn.items()]):
        acc, y, sp, log = drawn[first]
        fig = figures.speedup_map_figure(acc, y, sp, first, fig_cfg, label, log)
        also = f" (the same map for {', '.join(alike)})" if alike else ""
        show_figure(fig, fig_cfg, made_by=SENSITIVITY_MADE_BY, fold=f"{first}: speedup map{also}")
        if alike:
            display(
                Markdown(
                    f"The map above is drawn once for {_and([first, *alike])}: their speedups differ by less than "
                    f"{fmt.pct(100 * MAP_SAME_SHARE)} of its colour scale at every point, so the pictures would look "
                    f"the same ({'; '.join(_map_range(n, drawn[n][2]) for n in [first, *alike])})."
                )
            )
    if flat:
        display(
            Markdown(
                f"No map is drawn where the speedup barely moves over the whole range (less than "
                f"{fmt.pct(100 * MAP_MIN_SPREAD)} from one corner to the other): {'; '.join(flat)}."
            )
        )


def _map_range(name: str, sp: np.ndarray) -> str:
    return f"{fmt.md(name)} {fmt.ratio(np.nanmin(sp))}–{fmt.ratio(np.nanmax(sp))}"


def _and(names: list[str]) -> str:
    """a, b and c (names escaped for Markdown)."""
    names = [fmt.md(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def uncertainty_inputs(study: Study) -> pd.DataFrame:
    u = study.config.uncertainty
    if u is None:
        return pd.DataFrame({"note": ["no uncertain inputs configured"]})
    rows = [
        {
            "input": k,
            "distribution": d.distribution,
            "low": d.low,
            "mode": "" if d.mode is None else d.mode,
            "high": d.high,
            "source": d.source,
        }
        for k, d in u.inputs.items()
    ]
    return pd.DataFrame(rows).astype({"mode": str})


def uncertainty_table(results: str | Path) -> pd.DataFrame:
    """Point value, median and 90% interval of the headline metrics (uncertainty.csv), formatted."""
    mc = sr.uncertainty(results)
    if mc is None:
        return pd.DataFrame({"note": ["no uncertain inputs configured: no Monte Carlo"]})
    keep = mc[mc.metric.isin(["speedup", "prophet_tokens_per_s", "prophet_usd_per_1m_tokens", "annual_savings_usd"])]
    return pd.DataFrame(
        {
            "system": keep.system + " (" + keep.strategy + ")",
            "metric": keep.metric,
            "point": [fmt.value_in_unit(v, m) for v, m in zip(keep.point, keep.metric, strict=True)],
            "median": [fmt.value_in_unit(v, m) for v, m in zip(keep["median"], keep.metric, strict=True)],
            "90% interval": [
                f"{fmt.value_in_unit(a, m)} – {fmt.value_in_unit(b, m)}"
                for a, b, m in zip(keep.p5, keep.p95, keep.metric, strict=True)
            ],
            "draws": [
                fmt.dropped(*r)
                for r in zip(keep.draws, keep.dropped, keep.dropped_no_fit, keep.dropped_max_step, strict=True)
            ],
        }
    ).reset_index(drop=True)


def sensitivity_inputs(results: str | Path) -> tuple[dict[str, str], dict[str, pd.DataFrame], dict[str, str]]:
    """(display names, one-at-a-time sweep tables, each input's label), one entry per system
    (sensitivity/sweeps.csv)."""
    sweeps = sr.sensitivity(results, "sweeps")
    per = sweeps.groupby("system_id", sort=False)
    return (
        {sid: g.system.iloc[0] for sid, g in per},
        {sid: g.reset_index(drop=True) for sid, g in per},
        dict(zip(sweeps.input, sweeps.label, strict=True)),
    )
