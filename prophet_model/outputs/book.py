"""Generated parts of the book (`python -m prophet_model book`): Markdown fragments written into
book/_generated/ from the config and the results folder (results/data: the tables `run` writes, facts.json
among them) and the benchmark data, which the static pages include. The pages' text is in
templates/book/*.md.j2 and the data they show (labels, units, section titles) in templates/book/notes.yml;
every number on a book page is written here or there, from data, through formatting.py; none is typed."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from prophet_model.outputs import formatting as fmt
from prophet_model.outputs.book_paper import paper_page, reproducibility, timings_page
from prophet_model.outputs.files import read_facts, system_page
from prophet_model.outputs.templating import TEMPLATES, render_page
from prophet_model.paths import ROOT
from prophet_model.study.catalog import Named

if TYPE_CHECKING:
    from prophet_model.study.config import Study
    from prophet_model.workflow.bookdir import BookFolder


@functools.cache
def notes() -> dict:
    """templates/book/notes.yml: unit labels, words, section titles and the worked example's rows."""
    from prophet_model.study.yaml_io import read_yaml

    return read_yaml(TEMPLATES / "book" / "notes.yml")


def unit_of(key: str) -> str:
    return next((u for suffix, u in notes()["units"] if key.endswith(suffix)), "")


def label_of(key: str) -> str:
    """A readable label for a configuration key: its unit suffix dropped (the unit has its own column),
    words spaced, acronyms in capitals (batch_size_per_gpu -> Batch size per GPU)."""
    kept = notes()["kept_suffixes"]
    stem = next(
        (key[: -len(suffix)] for suffix, _ in notes()["units"] if key.endswith(suffix) and suffix not in kept), key
    )
    words = [notes()["words"].get(w, w) for w in stem.replace(".", " ").split("_") if w]
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


def sourced_rows(section: str, obj) -> pd.DataFrame:
    """Rows (input, value, unit, source) for a config section or catalog entry with `sources`."""
    return pd.DataFrame(
        [
            {
                "input": fmt.md(label_of(key)),
                "value": value_text(value),
                "unit": unit_of(key),
                "source": fmt.md(obj.sources.get(key, "")),
            }
            for key, value in obj.model_dump().items()
            if key != "sources" and (key in obj.model_fields_set or not isinstance(obj, Named))  # optional: if given
        ]
    )


def read_data(results_dir: Path | None, name: str) -> pd.DataFrame | None:
    """results/data/<name>.csv, or None where the results folder has none."""
    path = None if results_dir is None else results_dir / "data" / f"{name}.csv"
    return pd.read_csv(path) if path is not None and path.is_file() else None


def assumptions(study: Study, results_dir: Path) -> str:
    c = study.config
    sections = [
        (t, sourced_rows(n, getattr(c, n))) for n, t in notes()["sections"].items() if getattr(c, n, None) is not None
    ]
    systems = pd.DataFrame(
        [
            {
                "id": s.id,
                "name": fmt.md(s.name),
                "GPU": s.gpu_key,
                "GPUs": s.count,
                "interconnect": s.interconnect_key,
                "hybrid split (EP × DP)": f"{s.hybrid.ep}×{s.hybrid.dp}" if hasattr(s.hybrid, "ep") else s.hybrid,
                "note": fmt.md("; ".join(x for x in (s.hybrid_note, s.model_note) if x)),  # own model: why
            }
            for s in study.systems
        ]
    )
    catalogs = [
        (title, path, what, [(f"{fmt.md(getattr(e, 'name', k))} (`{k}`)", sourced_rows(k, e)) for k, e in cat.items()])
        for title, cat, path, what in (
            ("GPUs", study.gpus, c.catalogs.gpus, "GPU"),
            ("Interconnects", study.interconnects, c.catalogs.interconnects, "interconnect"),
            ("MoE models", study.models, c.catalogs.models, "moe model"),
        )
    ]
    hw = read_data(results_dir, "hardware_rates")
    for col in hw.columns[1:-1]:
        hw[col] = [fmt.number(v) for v in hw[col]]
    hw["source"] = hw["source"].map(fmt.md)
    hw["gpu"] = hw["gpu"].map(fmt.md)
    return render_page(
        "assumptions",
        sections=sections,
        systems=systems,
        catalogs=catalogs,
        hardware=hw.drop(columns=["source"]),
        sources="\n".join(f"- {r.gpu}: {r.source}" for r in hw.itertuples()),
    )


def finding_box(headline: pd.DataFrame, results_dir: Path) -> str:
    """The study's finding (outputs/finding.py: three sentences, and where Prophet pays), for the overview's first
    screen."""
    from prophet_model.outputs.finding import as_text, finding, moves_sentence

    claims_table = read_data(results_dir, "claims")
    claims_table = pd.DataFrame(columns=["claim"]) if claims_table is None else claims_table
    facts = read_facts(results_dir)
    sentences = finding(headline, claims_table, read_data(results_dir, "regime_map"), facts["need_prefix"])
    moves = moves_sentence(read_data(results_dir, "sensitivity/tornado"), headline)
    return render_page("finding", finding=as_text(sentences), moves=moves)


def _prophet_point(r: Any) -> str:
    return _point(r, "prophet")


def _baseline_point(r: Any) -> str:
    return _point(r, "baseline")


def _point(r: Any, side: str) -> str:
    """A side's operating point and its searched options: "EP 8×1, B 107; W FP8, KV FP8, LRU"."""
    get = lambda name: getattr(r, f"{side}_{name}", None)  # noqa: E731
    point = fmt.operating_point(get("strategy"), get("split"), get("batch"), get("attention_tp"))
    chosen = fmt.options(
        *(get(o) for o in ("weight_precision", "kv_precision", "cache_policy", "overlap", "offload_compute"))
    )
    return f"{point}; {chosen}" if chosen else point


def claims(study: Study, headline: pd.DataFrame, results_dir: Path) -> str:
    """Each system's headline (headline.csv: Prophet at its best configuration against the baseline at
    its best) beside the draft analysis's claims, what each rests on and what Prophet would need."""
    from prophet_model.outputs.finding import as_text, draft_sentences
    from prophet_model.outputs.paper import claim_sentences
    from prophet_model.outputs.voice import model_error_pct

    rows = headline.dropna(subset=["speedup"])
    error = model_error_pct(results_dir)
    ev = read_data(results_dir, "validation/claim_evidence")
    validated = read_data(results_dir, "validation/validated")
    table = pd.DataFrame(
        [
            {
                "system: Prophet's / baseline's best (strategy, split, batch; precision, cache, overlap)": (
                    f"{fmt.md(r.system)}: {_prophet_point(r)} / {_baseline_point(r)}"
                ),
                "speedup": _speedup(r.speedup, error),
                "$ per 1M tokens": _usd_change(r),
                "all-to-all bytes per token cut": (
                    fmt.ratio(r.comm_reduction) + fmt.comm_cut_suffix(study.config.prophet.comm_reduction_factor)
                ),
                "per-GPU scaling": _change(r.baseline_scaling_pct, r.prophet_scaling_pct, "pct"),
                "rests on (validated error: median, worst)": rests_on(ev, validated, r),
                "evidence": (
                    f"{{doc}}`system page </systems/{system_page(study.system(r.system_id))}>`, "
                    "{doc}`key figure </cross_system>`"
                ),
            }
            for r in rows.itertuples()
        ]
    )
    head = rows[rows.system_id == study.config.study.headline_system]
    h = None
    if not head.empty:
        r = head.iloc[0]
        h = r.to_dict() | {
            "prophet_point": _prophet_point(r),
            "baseline_point": _baseline_point(r),
            "tokens": fmt.pair_texts(r.baseline_tokens_per_s, r.prophet_tokens_per_s, "tokens"),
            "speedup_text": fmt.speedup(r.speedup)
            + (f", {fmt.WITHIN_ERROR}" if fmt.within_error(r.speedup, error) else ""),
            "cost": fmt.pair_texts(r.baseline_usd_per_1m_tokens, r.prophet_usd_per_1m_tokens, "usd"),
        }
    claims_table = read_data(results_dir, "claims")
    prefix = read_facts(results_dir)["need_prefix"]
    checks = [] if claims_table is None else draft_sentences(headline, claims_table, prefix)
    seed = [] if claims_table is None else claim_sentences(claims_table, study.config.study.headline_system)
    return render_page(
        "claims",
        head=h,
        rows=table,
        placement=notes()["placement"][study.config.experts.placement],
        evidence=evidence(ev),
        seed_claims=seed,
        draft_checks=as_text(checks),
        **needs(claims_table, read_facts(results_dir), error),
    )


def _usd_change(r: Any) -> str:
    return _change(r.baseline_usd_per_1m_tokens, r.prophet_usd_per_1m_tokens, "usd")


def _speedup(x: float, error: float | None) -> str:
    """A speedup with the digits that tell it from 1.00×, and "(within the model's error)" where it is."""
    return fmt.speedup_within(x, error)


def _change(a: float, b: float, kind: str) -> str:
    """a → b with the digits that tell them apart, "unchanged at a", or n/a where neither is known."""
    return "n/a" if pd.isna(a) and pd.isna(b) else fmt.change(a, b, kind)


def rests_on(ev: pd.DataFrame, validated: pd.DataFrame, row: Any) -> str:
    """A claim row's mechanisms with each one's validated |error| (median, worst), in a few words, and
    whether the system's GPU rates were measured or extrapolated
    (results/data/validation/claim_evidence.csv and validated.csv)."""
    v = {r.mechanism: r for r in validated.itertuples()}
    mine = ev[(ev.system_id == row.system_id) & (ev.strategy == row.strategy)].iloc[0]
    short = notes()["mechanism_short"]
    parts = [
        (
            f"{short[m]} {fmt.pct(v[m].median_pct)} (worst {fmt.pct(v[m].worst_pct)})"
            if m in v
            else f"{short[m]} (not validated)"
        )
        for m in mine.mechanisms.split("; ")
    ]
    return ", ".join(parts) + ("; rates extrapolated" if "extrapolated" in mine.rates else "; rates measured")


def evidence(ev: pd.DataFrame) -> pd.DataFrame | None:
    """What each claim of the table rests on (results/data/validation/claim_evidence.csv): the mechanisms,
    the model's validated error for each, whether the system's rates were measured or extrapolated, and the
    expected ranges it misses."""
    if ev.empty:
        return None
    return pd.DataFrame(
        {
            "system (strategy)": [f"{fmt.md(r.system_id)} ({r.strategy})" for r in ev.itertuples()],
            "its rates": [fmt.md(v) for v in ev.rates],
            "validated (out of sample: what, where, median and worst error)": [fmt.md(v) for v in ev.validated],
            "expected ranges missed": [fmt.md(v) for v in ev.failed_checks],
        }
    )


def needs(c: pd.DataFrame | None, facts: dict, error: float | None = None) -> dict:
    """Per system: the hit rate, overlap and accuracy Prophet would each need for the paper's speedup,
    against what the configured ones give (claims.csv): {needs: the table or None, target: the speedup}."""
    if c is not None:
        c = c[c.claim.str.startswith(facts["need_prefix"])]
    if c is None or c.empty:
        return {"needs": None, "target": None}

    def shown(r: pd.Series, x: float) -> str:  # a share (hit rate, overlap) as a percentage, as everywhere
        return fmt.pct(100 * x) if str(r.unit).startswith("of ") else fmt.number(x, 3)

    def cell(r: pd.Series) -> str:
        if pd.isna(r.needed):
            return f"{shown(r, r.configured)} → unreachable" if "unreachable" in r.note else fmt.md(r.note)
        return f"{shown(r, r.configured)} → **{shown(r, r.needed)}**"

    rows = []
    for (_, sid), g in c.groupby(["claim", "system_id"], sort=False):
        by = {r.lever: r for _, r in g.iterrows()}
        row = {
            "system": f"{fmt.md(sid)} ({fmt.md(g.strategy.iloc[0])})",
            "model's speedup": _speedup(g.model.iloc[0], error),
        }
        row |= {lever: cell(by[lever]) if lever in by else "met" for lever in facts["need_levers"]}
        rows.append(row)
    return {"needs": pd.DataFrame(rows), "target": c.claimed.iloc[0]}


def regime_page(results_dir: Path, copies: dict[str, bytes]) -> str:
    """The regime map's figure (its PNG added to `copies`), where Prophet pays (regime_map.csv's numbers) and
    the studied systems' coordinates."""
    from prophet_model.outputs.finding import as_text, regime_sentence

    t = read_data(results_dir, "regime_map")
    if t is None:
        return render_page("regime_map", missing=True)
    head = pd.read_csv(results_dir / "data" / "headline.csv").dropna(subset=["speedup"])
    marks = t[t.kind == "system"]
    a, b = marks[marks.panel == "a"], marks[marks.panel == "b"]
    names = dict(zip(head.system_id, head.system, strict=True))
    view = pd.DataFrame(
        {
            "system": [fmt.md(names.get(s, s)) for s in a.system_id],
            "host link per GPU (GB/s)": [fmt.number(v) for v in a.x],
            "expert bytes / GPU memory": [fmt.number(v) for v in a.y],
            "baseline's all-to-all share": [fmt.pct(v) for v in b.x],
            "speedup (headline)": [fmt.ratio(v) for v in a.speedup],
        }
    )
    png = results_dir / "figures" / "regime_map.png"
    if png.is_file():
        copies["regime_map.png"] = png.read_bytes()
    return render_page(
        "regime_map",
        missing=False,
        sentence=as_text([regime_sentence(t, head)]),
        figure=png.is_file(),
        view=view,
        n_grid=len(t[t.kind == "grid"]),
    )


def key_figure(results_dir: Path, copies: dict[str, bytes]) -> str:
    """The landing page's figure under the finding: the paper's key figure (its PNG added to `copies`), nothing
    where the results hold no figures (run --no-figures)."""
    png = results_dir / "figures" / "cross_system_comparison.png"
    if png.is_file():
        copies["cross_system_comparison.png"] = png.read_bytes()
    return render_page("key_figure", figure=png.is_file())


def worked_example(study: Study, results_dir: Path) -> str:
    """Every intermediate number of one configuration (worked_example.csv): the headline system and strategy."""
    terms = read_data(results_dir, "worked_example").set_index("variant")
    shown = {"sig": fmt.sig, "number": fmt.number, "ms": fmt.ms, "tokens": fmt.tokens, "whole": "{:.0f}".format}

    def cell(spec: dict, x: float) -> str:
        x = x / spec["per"] if "per" in spec else spec["times"] * x if "times" in spec else x
        return shown[spec["as"]](x) + spec.get("unit", "")

    specs = notes()["worked_example"]
    table = pd.DataFrame(
        {
            "quantity": [s["label"] for s in specs],
            "baseline": [cell(s, terms.loc["baseline", s["term"]]) for s in specs],
            "Prophet": [cell(s, terms.loc["prophet", s["term"]]) for s in specs],
        }
    )
    system = study.system(terms.system_id.iloc[0])
    w = study.config.workload
    return render_page(
        "worked_example",
        system=system,
        strategy="Hybrid" if int(terms.ep.iloc[0]) < system.count else "EP",  # study/worked_example.py's split
        ep=int(terms.ep.iloc[0]),
        model=study.model_of(system).name,
        batch=w.batch_size_per_gpu,
        context=w.context_length_tokens,
        table=table,
    )


def checks_page(c: pd.DataFrame, claims_table: pd.DataFrame | None) -> str:
    """The run's sanity_checks.csv: the expected ranges the model misses first, then those it meets; the
    consistency identities (which must all hold) collapsed, listed only where one fails; then the draft
    analysis's claims (claims.csv), one line each with the model's figure, every lever's inversion collapsed."""
    exp, cons = c[c.kind == "expectation"], c[c.kind == "consistency"]
    order = {"MISS": 0, "NOT EVALUATED": 1, "PASS": 2}
    exp = exp.iloc[sorted(range(len(exp)), key=lambda i: order.get(exp.status.iloc[i], 3))]
    view = fmt.checks_view(exp)
    view["source"] = view.source.map(fmt.md)
    cons_view = pd.DataFrame(
        {"status": cons.status, "system": cons.system_id, "strategy": cons.strategy, "identity": cons.check}
    )
    summary = claim_rows = None
    if claims_table is not None:
        cl, short = claims_table, claims_table.drop_duplicates("claim")
        summary = pd.DataFrame(
            {
                "claim": short.claim.map(fmt.md),
                "claimed": [fmt.value_in_unit(v, m) for v, m in zip(short.claimed, short.metric, strict=True)],
                "model": [fmt.value_in_unit(v, m) for v, m in zip(short.model, short.metric, strict=True)],
            }
        )
        claim_rows = pd.DataFrame(
            {
                "claim": cl.claim.map(fmt.md),
                "lever": cl.lever.fillna("").map(fmt.md),
                "configured": ["" if pd.isna(v) else fmt.number(v) for v in cl.configured],
                "needed": ["" if pd.isna(v) else fmt.number(v) for v in cl.needed],
                "unit": cl.unit.fillna("").map(fmt.md),
                "note": cl.note.fillna("").map(fmt.md),
            }
        )
    return render_page(
        "checks",
        n_miss=int((exp.status == "MISS").sum()),
        n_exp=len(exp),
        n_pass=int((exp.status == "PASS").sum()),
        n_not=int((exp.status == "NOT EVALUATED").sum()),
        expectations=view,
        held=int((cons.status == "PASS").sum()),
        consistency=cons_view,
        failed=cons_view[cons_view.status != "PASS"],
        claims_summary=summary,
        claims=claim_rows,
    )


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
        "assumptions.md": assumptions(study, results_dir),
        "worked_example.md": worked_example(study, results_dir),
        "checks.md": checks_page(pd.read_csv(data / "sanity_checks.csv"), read_data(results_dir, "claims")),
        "paper.md": paper_page(results_dir, copies, notes()["paper_files"]),
        "regime_map.md": regime_page(results_dir, copies),
        "key_figure.md": key_figure(results_dir, copies),  # the landing page's figure (book/intro.md)
        "timings.md": timings_page(ROOT / "benchmarks" / "results.json"),
        "reproducibility.md": reproducibility(study.config_hash, results_dir, book_dir),
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
