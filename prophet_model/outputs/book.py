"""Generated parts of the book (`python -m prophet_model book`): Markdown fragments written into
book/_generated/ from the config, the results and the benchmark data, which the static pages include.
Every number on a book page is written here, from data, through formatting.py; none is typed."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.book_paper import paper_page, timings_page
from prophet_model.outputs.files import read_timings, system_page
from prophet_model.outputs.formatting import dropdown, md_table
from prophet_model.paths import ROOT
from prophet_model.study.config import Study
from prophet_model.versions import package_versions

if TYPE_CHECKING:
    from prophet_model.workflow.bookdir import BookFolder

UNITS = (
    ("_usd_per_gpu_hour", "US dollars per GPU-hour"),
    ("_gbps_per_direction", "GB/s per direction"),
    ("_gbps", "GB/s"),
    ("_gb", "GB"),
    ("_tflops", "TFLOP/s"),
    ("_us", "microseconds"),
    ("_tokens_per_s", "tokens/s"),
    ("_tokens", "tokens"),
    ("_in", "inches"),
    ("_pt", "pt"),
    ("_dpi", "dpi"),
    ("_per_gpu", "sequences per GPU"),
)


def unit_of(key: str) -> str:
    return next((u for suffix, u in UNITS if key.endswith(suffix)), "")


WORDS = {
    "gpu": "GPU",
    "gpus": "GPUs",
    "kv": "KV",
    "usd": "USD",
    "bf16": "BF16",
    "fp8": "FP8",
    "ep": "EP",
    "dp": "DP",
    "tp": "TP",
    "moe": "MoE",
    "ffn": "FFN",
    "nvlink": "NVLink",
    "pcie": "PCIe",
    "hbm": "HBM",
    "cpu": "CPU",
    "lru": "LRU",
    "png": "PNG",
    "tflops": "TFLOP/s",
    "a2a": "all-to-all",
}


def label_of(key: str) -> str:
    """A readable label for a configuration key: its unit suffix dropped (the unit has its own column),
    words spaced, acronyms in capitals (batch_size_per_gpu -> Batch size per GPU)."""
    stem = next((key[: -len(suffix)] for suffix, _ in UNITS if key.endswith(suffix) and suffix != "_per_gpu"), key)
    words = [WORDS.get(w, w) for w in stem.replace(".", " ").split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def value_text(value: object) -> str:
    """A configuration value as a person reads it: numbers to three significant figures (integers whole)."""
    if isinstance(value, bool) or value is None:
        return fmt.md(value)
    if isinstance(value, int):
        return fmt.count(value)
    if isinstance(value, float):
        return fmt.number(value)
    return fmt.md(value)


def sourced_rows(section: str, obj) -> list[dict]:
    """Rows (input, value, unit, source) for a config section or catalog entry with `sources`."""
    out = []
    for key, value in obj.model_dump().items():
        if key == "sources":
            continue
        out.append(
            {
                "input": fmt.md(label_of(key)),
                "value": value_text(value),
                "unit": unit_of(key),
                "source": fmt.md(obj.sources.get(key, "")),
            }
        )
    return out


SECTIONS = {
    "workload": "Workload",
    "prophet": "Prophet",
    "implementation": "Serving engine",
    "single_gpu_claim": "The draft analysis's single-GPU claim",
    "cost": "Cost",
    "figures": "Figures",
}


def assumptions(study: Study) -> str:
    c = study.config
    parts = ["## Study inputs (`_config.yml`)\n\nGrouped by section; each value with its unit and its source.\n"]
    for name, title in SECTIONS.items():
        section = getattr(c, name, None)
        if section is None:
            continue
        parts.append(f"\n### {title}\n")
        parts.append(md_table(pd.DataFrame(sourced_rows(name, section))))
    parts.append("\n## Systems\n")
    parts.append(
        md_table(
            pd.DataFrame(
                [
                    {
                        "id": s.id,
                        "name": fmt.md(s.name),
                        "GPU": s.gpu_key,
                        "GPUs": s.count,
                        "interconnect": s.interconnect_key,
                        "hybrid split (EP × DP)": (
                            f"{s.hybrid.ep}×{s.hybrid.dp}" if hasattr(s.hybrid, "ep") else s.hybrid
                        ),
                        "note": fmt.md(s.hybrid_note),
                    }
                    for s in study.systems
                ]
            )
        )
    )
    for title, catalog, path in (
        ("GPUs", study.gpus, c.catalogs.gpus),
        ("Interconnects", study.interconnects, c.catalogs.interconnects),
        ("MoE models", study.models, c.catalogs.models),
    ):
        parts.append(
            f"\n## {title} (`{path}`)\n\nOne entry per {title[:-1].lower() if title != 'GPUs' else 'GPU'}; "
            "open one to see its values and sources.\n"
        )
        for key, entry in catalog.items():
            name = fmt.md(getattr(entry, "name", key))
            parts.append(dropdown(f"{name} (`{key}`)", md_table(pd.DataFrame(sourced_rows(key, entry)))))
    from prophet_model.study.rates import hardware_rows

    parts.append("\n## What each GPU attains (measured, never fitted)\n")
    hw = pd.DataFrame(hardware_rows(study))
    for col in hw.columns[1:-1]:
        hw[col] = [fmt.number(v) for v in hw[col]]
    hw["source"] = hw["source"].map(fmt.md)
    hw["gpu"] = hw["gpu"].map(fmt.md)
    parts.append(md_table(hw.drop(columns=["source"])))
    parts.append(
        dropdown("Where each GPU's rates come from", "\n".join(f"- {r.gpu}: {r.source}" for r in hw.itertuples()))
    )
    return "\n".join(parts)


def seed_claims(study: Study, results_dir: Path | None) -> str:
    """The headline system's missed draft-analysis claims: the model's figure and what each lever would need."""
    from prophet_model.outputs.paper import claim_sentences

    path = None if results_dir is None else results_dir / "data" / "claims.csv"
    if path is None or not path.is_file():
        return ""
    lines = claim_sentences(pd.read_csv(path), study.config.study.headline_system)
    if not lines:
        return ""
    return (
        "\nThe draft analysis's claims for the headline system, checked ({doc}`sanity_checks` has them all):\n\n"
        + "".join(f"- {fmt.md(line[:1].upper() + line[1:])}.\n" for line in lines)
    )


def finding_box(headline: pd.DataFrame, results_dir: Path) -> str:
    """The study's finding (outputs/finding.py: three sentences, and where Prophet pays), for the overview's first
    screen."""
    from prophet_model.outputs.finding import as_text, finding

    path = results_dir / "data" / "claims.csv"
    claims_table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["claim"])
    regimes = results_dir / "data" / "regime_map.csv"
    return as_text(finding(headline, claims_table, pd.read_csv(regimes) if regimes.is_file() else None)) + "\n"


def _prophet_point(r: Any) -> str:
    return fmt.operating_point(r.prophet_strategy, r.prophet_split, r.prophet_batch, r.prophet_attention_tp)


def _baseline_point(r: Any) -> str:
    return fmt.operating_point(r.baseline_strategy, r.baseline_split, r.baseline_batch, r.baseline_attention_tp)


def claims(study: Study, headline: pd.DataFrame, results_dir: Path | None = None) -> str:
    """Each system's headline (headline.csv: Prophet at its best configuration against the baseline at
    its best) beside the draft analysis's claims."""
    rows = headline.dropna(subset=["speedup"])
    out = [
        {
            "system: Prophet's / baseline's best (strategy, split, batch)": (
                f"{fmt.md(r.system)}: {_prophet_point(r)} / {_baseline_point(r)}"
            ),
            "speedup": fmt.ratio(r.speedup),
            "$ per 1M tokens": f"{fmt.usd(r.baseline_usd_per_1m_tokens)} → {fmt.usd(r.prophet_usd_per_1m_tokens)}",
            "all-to-all bytes per token cut": (
                fmt.ratio(r.comm_reduction) + fmt.comm_cut_suffix(study.config.prophet.comm_reduction_factor)
            ),
            "per-GPU scaling": f"{fmt.pct(r.baseline_scaling_pct)} → {fmt.pct(r.prophet_scaling_pct)}",
            "rests on (validated error: median, worst)": rests_on(study, r),
            "evidence": (
                f"{{doc}}`system page </systems/{system_page(study.system(r.system_id))}>`, "
                "{doc}`key figure </cross_system>`"
            ),
        }
        for r in rows.itertuples()
    ]
    head = rows[rows.system_id == study.config.study.headline_system]
    intro = ""
    if not head.empty:
        h = head.iloc[0]
        intro = (
            f"Headline, like with like ({fmt.md(h.system)}): Prophet at its best configuration"
            f" ({_prophet_point(h)})"
            f" reaches {fmt.tokens(h.prophet_tokens_per_s)} tokens/s against {fmt.tokens(h.baseline_tokens_per_s)} for"
            " the baseline at its best"
            f" ({_baseline_point(h)};"
            f" {fmt.ratio(h.speedup)}), and serving cost goes from {fmt.usd(h.baseline_usd_per_1m_tokens)} to"
            f" {fmt.usd(h.prophet_usd_per_1m_tokens)} per million tokens.\n\n"
        )
    placement = {
        "pool": "pooled across the GPUs' memory (a miss is copied from a GPU that holds the expert)",
        "replicate": "replicated per replica (a miss is copied from host)",
    }[study.config.experts.placement]
    note = (
        "\nBaseline → Prophet where two values are given; each is searched over strategy, EP × DP split,"
        " batch per GPU (B) and tensor-parallel attention degree (TP, shown where above 1) the same way;"
        f" experts {placement}. Files:"
        " `results/data/headline.csv` (these rows), `results/data/all_systems_comparison.csv` (every strategy),"
        " `results/data/fixed_batch_comparison.csv` (the configured batch),"
        " `results/figures/cross_system_comparison.pdf` (key figure), `results/figures/*_<system>.pdf`. `python -m"
        " prophet_model run` regenerates the numbers and figures alone.\n"
    )
    return (
        intro
        + md_table(pd.DataFrame(out))
        + note
        + evidence(study, headline, results_dir)
        + seed_claims(study, results_dir)
        + needs(results_dir)
    )


def regime_page(results_dir: Path, copies: dict[str, bytes]) -> str:
    """The regime map's figure (its PNG added to `copies`), where Prophet pays (regime_map.csv's numbers) and
    the studied systems' coordinates."""
    from prophet_model.outputs.finding import as_text, regime_sentence

    path = results_dir / "data" / "regime_map.csv"
    if not path.is_file():
        return "The results folder has no regime map (`results/data/regime_map.csv`): run `make`.\n"
    t = pd.read_csv(path)
    head = pd.read_csv(results_dir / "data" / "headline.csv").dropna(subset=["speedup"])
    marks = t[t.kind == "system"]
    view = pd.DataFrame(
        {
            "system": [
                fmt.md(dict(zip(head.system_id, head.system, strict=True)).get(s, s))
                for s in marks[marks.panel == "a"].system_id
            ],
            "host link per GPU (GB/s)": [fmt.number(v) for v in marks[marks.panel == "a"].x],
            "expert bytes / GPU memory": [fmt.number(v) for v in marks[marks.panel == "a"].y],
            "baseline's all-to-all share": [fmt.pct(v) for v in marks[marks.panel == "b"].x],
            "speedup (headline)": [fmt.ratio(v) for v in marks[marks.panel == "a"].speedup],
        }
    )
    sentence = as_text([regime_sentence(t, head)])
    png = results_dir / "figures" / "regime_map.png"
    figure = ""
    if png.is_file():
        copies["regime_map.png"] = png.read_bytes()
        figure = "![The regime map: Prophet's speedup over each side's best](/_generated/regime_map.png)"
    return (
        f"{sentence}\n\n{figure}\n\nThe studied systems at their own "
        "coordinates (the map's other properties are the reference system's):\n\n"
        + md_table(view)
        + f"\nFrom `results/data/regime_map.csv` ({len(t[t.kind == 'grid'])} grid points, each side's best split "
        "and batch per point).\n"
    )


def rests_on(study: Study, row: object) -> str:
    """A claim row's mechanisms with each one's validated |error| (median, worst), in a few words, and
    whether the system's GPU rates were measured or extrapolated."""
    from prophet_model.measured.evidence import mechanisms, rates_basis, validated

    v = validated(study)
    short = {"decode step": "decode step", "expert offloading and prefetch": "offloading", "all-to-all": "all-to-all"}
    parts = [
        (
            f"{short[m]} {fmt.pct(v[m].median_pct)} (worst {fmt.pct(v[m].worst_pct)})"
            if m in v
            else f"{short[m]} (not validated)"
        )
        for m in mechanisms(pd.Series(row._asdict()))
    ]
    basis = rates_basis(study, row.system_id)
    return ", ".join(parts) + ("; rates extrapolated" if "extrapolated" in basis else "; rates measured")


def evidence(study: Study, comparison: pd.DataFrame, results_dir: Path | None) -> str:
    """What each claim of the table rests on: the mechanisms, the model's validated error for each (median
    and worst, and the GPU it was measured on), whether the system's rates were measured or extrapolated,
    and the expected ranges it misses."""
    from prophet_model.measured.evidence import claim_evidence

    path = None if results_dir is None else results_dir / "data" / "sanity_checks.csv"
    checks = pd.read_csv(path) if path is not None and path.is_file() else None
    rows = comparison.dropna(subset=["speedup"])  # the headline rows
    ev = claim_evidence(study, rows, checks)
    if ev.empty:
        return ""
    view = pd.DataFrame(
        {
            "system (strategy)": [f"{fmt.md(r.system_id)} ({r.strategy})" for r in ev.itertuples()],
            "its rates": [fmt.md(v) for v in ev.rates],
            "validated (out of sample: what, where, median and worst error)": [fmt.md(v) for v in ev.validated],
            "expected ranges missed": [fmt.md(v) for v in ev.failed_checks],
        }
    )
    return (
        "\n### What each claim rests on\n\nWhat was measured and what is extrapolated: each validated error "
        "names the GPU it was measured on; a system whose GPU was never measured uses the shares of "
        "its datasheet figures that the measured GPUs attain, so its numbers are extrapolated, and its all-to-all "
        "runs on an interconnect the validation did not measure. The model's validated errors are in "
        "{doc}`validation`; the expected ranges of the draft analysis in {doc}`sanity_checks`.\n\n" + md_table(view)
    )


def needs(results_dir: Path | None) -> str:
    """Per system: the hit rate, overlap and accuracy Prophet would each need for the paper's speedup,
    against what the configured ones give (claims.csv)."""
    from prophet_model.study.claims import NEED_LEVERS, NEED_PREFIX

    path = None if results_dir is None else results_dir / "data" / "claims.csv"
    if path is None or not path.is_file():
        return ""
    c = pd.read_csv(path)
    c = c[c.claim.str.startswith(NEED_PREFIX)]
    if c.empty:
        return ""

    def cell(r: pd.Series) -> str:
        if pd.isna(r.needed):
            return f"{fmt.number(r.configured, 3)} → unreachable" if "unreachable" in r.note else fmt.md(r.note)
        return f"{fmt.number(r.configured, 3)} → **{fmt.number(r.needed, 3)}**"

    rows = []
    for (_, sid), g in c.groupby(["claim", "system_id"], sort=False):
        by = {r.lever: r for _, r in g.iterrows()}
        row = {"system": f"{fmt.md(sid)} ({fmt.md(g.strategy.iloc[0])})", "model's speedup": fmt.ratio(g.model.iloc[0])}
        row |= {lever: cell(by[lever]) if lever in by else "met" for lever in NEED_LEVERS}
        rows.append(row)
    target = c.claimed.iloc[0]
    return (
        f"\n## What Prophet would need for the draft analysis's {fmt.ratio(target)}\n\nPer system (its headline row):"
        " the value each of Prophet's own mechanisms would need, the others as configured, for the draft analysis's"
        " speedup to hold there: the hit rate of its expert cache (the baseline keeps its own), the share of its"
        " expert copies hidden behind computation (overlap), and the prediction accuracy. Configured → needed;"
        " *unreachable*: not even at its limit. From `results/data/claims.csv`.\n\n" + md_table(pd.DataFrame(rows))
    )


def worked_example(study: Study) -> str:
    """Every intermediate number of one configuration: the headline system and strategy, Prophet."""
    from prophet_model.study.worked_example import worked_example as terms

    cfg = study.config.study
    system, ep, values = terms(study)
    rows = [
        {
            "expert bytes {math}`S_e = 3hf\\,b`": f"{fmt.sig(t['expert_bytes'] / 1e6)} MB",
            "dense parameters {math}`P_d`": f"{fmt.sig(t['dense_params'] / 1e9)} G",
            "KV cache {math}`K`": f"{fmt.sig(t['kv_cache_bytes'] / 1e9)} GB",
            "experts on the fullest GPU {math}`\\lceil E/ep \\rceil`": f"{t['experts_on_fullest_gpu']:.0f}",
            "hit rate {math}`\\rho`": fmt.number(t["hit_rate"]),
            "tokens per group {math}`T = ep\\,B`": f"{t['tokens_per_group']:.0f}",
            "distinct experts touched {math}`D`": fmt.number(t["distinct_experts_touched"]),
            "assignments on the fullest GPU {math}`A`": fmt.number(t["assignments_on_fullest_gpu"]),
            "dense time {math}`t_d`": fmt.ms(1e3 * t["dense_time_s"]),
            "expert time {math}`t_e`": fmt.ms(1e3 * t["expert_time_s"]),
            "kernel start-ups {math}`n_k \\tau_0`": fmt.ms(1e3 * t["startup_time_s"]),
            "fetch bytes {math}`F`": f"{fmt.sig(t['fetch_bytes'] / 1e9)} GB",
            "misses a peer GPU holds {math}`g` (pooled experts)": fmt.number(t["peer_share"]),
            "fetch time {math}`t_f`": fmt.ms(1e3 * t["fetch_s"]),
            "fetch exposed": fmt.ms(1e3 * t["fetch_exposed_s"]),
            "all-to-all bytes {math}`V`": f"{fmt.sig(t['alltoall_bytes'] / 1e3)} kB",
            "one all-to-all {math}`t_{a2a}`": f"{fmt.sig(1e6 * t['alltoall_time_s'])} µs",
            "comm exposed {math}`2L_{moe}t_{a2a}`": fmt.ms(1e3 * t["comm_exposed_s"]),
            "step {math}`t`": fmt.ms(1e3 * t["step_s"]),
            "throughput {math}`N B / t`": f"{fmt.tokens(t['tokens_per_s'])} tokens/s",
        }
        for t in values
    ]
    table = pd.DataFrame(
        {"quantity": list(rows[0]), "baseline": list(rows[0].values()), "Prophet": list(rows[1].values())}
    )
    head = (
        f"{fmt.md(system.name)} ({system.count} × {fmt.md(system.gpu.name)}, {fmt.md(system.interconnect.name)}),"
        f" {cfg.headline_strategy} EP {ep} × DP {system.count // ep}, model {fmt.md(study.model.name)}, B ="
        f" {study.config.workload.batch_size_per_gpu} sequences per GPU, context"
        f" {study.config.workload.context_length_tokens} tokens, the GPU's measured attainable rates.\n\n"
    )
    return head + md_table(table)


def checks_page(c: pd.DataFrame) -> str:
    """The run's sanity_checks.csv: the expected ranges the model misses first, then those it meets; the
    consistency identities (which must all hold) collapsed, listed only where one fails."""
    exp, cons = c[c.kind == "expectation"], c[c.kind == "consistency"]
    order = {"MISS": 0, "NOT EVALUATED": 1, "PASS": 2}
    exp = exp.iloc[sorted(range(len(exp)), key=lambda i: order.get(exp.status.iloc[i], 3))]
    view = fmt.checks_view(exp)
    view["source"] = view.source.map(fmt.md)
    n_miss, n_pass = int((exp.status == "MISS").sum()), int((exp.status == "PASS").sum())
    n_not = int((exp.status == "NOT EVALUATED").sum())
    counts = (
        f"the model misses {n_miss} of {len(exp)}"
        + (f", meets {n_pass}" if n_pass else "")
        + (f", {n_not} not evaluated" if n_not else "")
    )
    cons_view = pd.DataFrame(
        {"status": cons.status, "system": cons.system_id, "strategy": cons.strategy, "identity": cons.check}
    )
    failed = cons_view[cons_view.status != "PASS"]
    held = int((cons.status == "PASS").sum())
    out = (
        f"## Expected ranges from the draft analysis ({counts})\n\nA MISS means the model, from the hardware "
        "alone, lands outside the range the draft analysis expected; it is reported, not tuned away. Misses first.\n\n"
        + md_table(view)
        + f"\n## Consistency identities ({held} of {len(cons)} hold)\n\nIdentities every result must satisfy "
        "(cost reduction equals the speedup on the same hardware, annual savings follow the cost difference, "
        "throughput equals GPUs × batch ÷ step time).\n"
    )
    if not failed.empty:
        out += "\nFailing:\n\n" + md_table(failed)
    return out + dropdown(f"All {len(cons)} identities", md_table(cons_view))


def claims_page(path: Path) -> str:
    """The draft analysis's claims: one line each with the model's figure, then every lever's inversion
    collapsed (claims.csv)."""
    if not path.is_file():
        return ""
    c = pd.read_csv(path)
    short = c.drop_duplicates("claim")
    summary = pd.DataFrame(
        {
            "claim": short.claim.map(fmt.md),
            "claimed": [fmt.value_in_unit(v, m) for v, m in zip(short.claimed, short.metric, strict=True)],
            "model": [fmt.value_in_unit(v, m) for v, m in zip(short.model, short.metric, strict=True)],
        }
    )
    view = pd.DataFrame(
        {
            "claim": c.claim.map(fmt.md),
            "lever": c.lever.fillna("").map(fmt.md),
            "configured": ["" if pd.isna(v) else fmt.number(v) for v in c.configured],
            "needed": ["" if pd.isna(v) else fmt.number(v) for v in c.needed],
            "unit": c.unit.fillna("").map(fmt.md),
            "note": c.note.fillna("").map(fmt.md),
        }
    )
    return (
        "\n## The draft analysis's claims, checked and inverted\n\nEach claim predicted from the hardware alone. "
        "Where the model disagrees, each lever (an input the claim depends on) is solved for the value that would "
        "give the claimed figure, everything else as configured; *unreachable* means no value in its range does.\n\n"
        + md_table(summary)
        + dropdown(f"Every lever of every claim ({len(view)} rows, `results/data/claims.csv`)", md_table(view))
    )


def reproducibility(study: Study, results_dir: Path, book_dir: Path) -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    dirty = git("status", "--porcelain", "--untracked-files=no")
    rows = [
        {"item": "git commit", "value": git("rev-parse", "HEAD") + (" (with uncommitted changes)" if dirty else "")},
        {"item": "config hash (sha256/16 of _config.yml and catalogs)", "value": study.config_hash},
        {"item": "platform", "value": platform.platform()},
    ]
    rows += [{"item": f"package {k}", "value": v} for k, v in package_versions().items()]
    logs = sorted((results_dir / "logs").glob("multi_gpu_analysis_*.log"))
    if logs:
        lines = logs[-1].read_text(encoding="utf-8").splitlines()
        t0, t1 = (datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") for line in (lines[0], lines[-1]))
        rows.append({"item": f"model run ({logs[-1].name})", "value": f"{fmt.sig((t1 - t0).total_seconds())} s"})
    for name, secs in read_timings(book_dir / ".pipeline-cache" / "timings.json").items():
        rows.append({"item": f"notebook {name}", "value": f"{fmt.sig(secs)} s (papermill, last execution)"})
    return md_table(pd.DataFrame(rows))


def write_pages(study: Study, results_dir: Path, folder: BookFolder) -> list[Path]:
    """Write every generated fragment into `<book>/_generated` from a complete, consistent results folder
    of this configuration and the paper (the command checks it). A page is rewritten only when its text changed,
    and fragments the artifact wrote that this version no longer writes are removed (nothing else)."""
    book_dir = folder.dir
    data = results_dir / "data"
    comparison = pd.read_csv(data / "headline.csv")
    out = book_dir / "_generated"
    copies: dict[str, bytes] = {}
    pages = {
        "finding.md": finding_box(comparison, results_dir),
        "claims.md": claims(study, comparison, results_dir),
        "assumptions.md": assumptions(study),
        "worked_example.md": worked_example(study),
        "checks.md": checks_page(pd.read_csv(data / "sanity_checks.csv")) + claims_page(data / "claims.csv"),
        "paper.md": paper_page(results_dir, copies),
        "regime_map.md": regime_page(results_dir, copies),
        "timings.md": timings_page(ROOT / "benchmarks" / "results.json"),
        "reproducibility.md": reproducibility(study, results_dir, book_dir),
    }
    wanted = {**{name: text.encode("utf-8") for name, text in pages.items()}, **copies}
    folder.claim([f"_generated/{rel}" for rel in wanted])  # refuses before writing if a file there is the user's
    for rel, blob in wanted.items():
        path = out / rel
        if not path.is_file() or path.read_bytes() != blob:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
    for path in sorted(out.rglob("*"), reverse=True):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel not in wanted:
            folder.remove(f"_generated/{rel}")  # only what the artifact wrote
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return [out / n for n in pages]
