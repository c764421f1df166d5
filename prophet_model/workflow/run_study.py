"""What `run` does between reading the study and the results folder: evaluate every system (the log
says each split's fastest candidate), check, claim and sample the uncertainty, then write every output into
a staging folder and commit them all at once, or none (the previous results left as they were, checked)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prophet_model.errors import UserError

if TYPE_CHECKING:
    from prophet_model.study.config import Study

log = logging.getLogger("prophet_model")

INPUTS_PREFIX = "inputs as read: "  # the log's line of the inputs, which `compare` reads (commands/compare.py)


@dataclass(frozen=True)
class RunOptions:
    """What the command line asks of a run: which systems (None: all), --if-stale, --no-figures, --quiet,
    --jobs (0: one per core) and --log-level."""

    systems: Sequence[str] | None = None
    if_stale: bool = False
    no_figures: bool = False
    quiet: bool = False
    jobs: int = 0
    log_level: str = "INFO"


def result_table(comparison) -> str:
    """The table printed at the end of a run: each system and strategy's throughputs, speedup and cost."""
    from prophet_model.outputs.formatting import comparison_view, text_table

    view = comparison_view(
        comparison, ("system", "strategy", "baseline tok/s", "Prophet tok/s", "speedup", "$/1M tokens")
    )
    return text_table(view.to_dict("records"), list(view.columns))


class _NotCommitted(Exception):
    """A part of the run failed after staging began: nothing is moved into the results folder."""

    def __init__(self, failures: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in failures.items()))
        self.failures = failures


def inputs_json(study) -> str:
    """One line of JSON: the validated configuration, the model's and every system's catalog entries."""
    entries = {
        "config": study.config.model_dump(mode="json"),
        "catalog": {
            "models": {study.model_key: study.model.model_dump(mode="json", exclude={"sources"})},
            "gpus": {s.gpu_key: s.gpu.model_dump(mode="json", exclude={"sources"}) for s in study.systems},
            "interconnects": {
                s.interconnect_key: s.interconnect.model_dump(mode="json", exclude={"sources"}) for s in study.systems
            },
        },
    }
    return json.dumps(entries, sort_keys=True, ensure_ascii=False)


def log_system(system, df, exc) -> None:
    """The log's lines of one evaluated system: one per split (its fastest candidate), every candidate at
    debug level; or why it failed."""
    if exc is not None:
        log.error("system %s: evaluation failed: %s", system.id, exc)
        return
    for _, g in df.groupby(["role", "strategy", "variant", "ep", "dp"], sort=False, dropna=False):
        r = g.iloc[0]
        fits = g[g.feasible.astype(bool)] if r.ep else g.iloc[:0]
        if fits.empty:
            log.info("%s %s %s: not evaluated (%s)", system.id, r.strategy, r.variant, r.note)
            continue
        b = fits.loc[fits.tokens_per_s.idxmax()]
        log.info(
            "%s %s %s ep=%d dp=%d%s: fastest of %d candidates: B %d, TP %d: %.1f tok/s, step %.3f ms "
            "(compute %.3f, fetch %.3f, comm %.3f)",
            system.id,
            b.strategy,
            b.variant,
            b.ep,
            b.dp,
            (
                ""
                if b.role == "system"
                else (f" (scaling reference on {int(b.n_gpus_evaluated)} GPU{'' if b.n_gpus_evaluated == 1 else 's'})")
            ),
            len(g),
            b.batch_size_per_gpu,
            b.attention_tp,
            b.tokens_per_s,
            b.step_ms,
            b.compute_ms,
            b.fetch_exposed_ms,
            b.comm_exposed_ms,
        )
        if log.isEnabledFor(logging.DEBUG):
            for c in fits.itertuples():
                log.debug(
                    "  candidate B %d, TP %d: %.1f tok/s, step %.3f ms",
                    c.batch_size_per_gpu,
                    c.attention_tp,
                    c.tokens_per_s,
                    c.step_ms,
                )


def checks_and_claims(study: Study, results) -> tuple:
    """(the sanity checks, the claims) of an evaluated study, each logged: the single-GPU claims, the
    input warnings, every check (a miss as a warning), the expectations missed and what Prophet needs."""
    from prophet_model.study.checks import all_checks, input_warnings
    from prophet_model.study.claims import expectation_claims, need_claims, sentence, single_gpu_claims
    from prophet_model.study.sensitivity import setups

    single = single_gpu_claims(study)
    for c in single:
        log.warning("claim: %s", sentence(c))
    for w in input_warnings(study, results.chosen):
        log.warning("%s", w)
    checks = all_checks(study, results.chosen, results.comparison)
    for c in checks.itertuples():
        level = logging.INFO if c.status == "PASS" else logging.WARNING
        log.log(
            level,
            "check %s %s %s %s: %s (expected %g-%g)",
            c.status,
            c.system_id,
            c.strategy,
            c.check,
            f"{c.value:.6g}",
            c.min,
            c.max,
        )
    if results.comparison.empty:
        claims = single
    else:
        chosen_setups = setups(results)
        missed = expectation_claims(study, chosen_setups, checks, results)
        for c in missed:
            log.warning("claim: %s", sentence(c))
        needs = need_claims(study, chosen_setups)
        for c in needs:
            log.info("what Prophet needs: %s", sentence(c))
        claims = single + missed + needs
    return checks, claims


def sampled_uncertainty(study: Study, results, tick=None):
    """The Monte Carlo's table (None without an uncertainty section or without numbers): study/sensitivity.py's
    monte_carlo, every draw re-searching each side's operating point; `tick()` after each system."""
    if not study.config.uncertainty or results.comparison.empty:
        return None
    from prophet_model.study.sensitivity import monte_carlo

    return monte_carlo(results, tick=tick)


def uncertainty_bar(study: Study, results, quiet: bool) -> dict | None:
    """tqdm's arguments for the Monte Carlo's progress on stderr (one step per system), or None without one."""
    from prophet_model.study.sensitivity import setups, uncertain_inputs

    if not study.config.uncertainty or results.comparison.empty or not uncertain_inputs(study):
        return None
    total = len(setups(results))
    return {"total": total, "desc": "uncertainty", "unit": "system", "disable": quiet, "file": sys.stderr}


def log_uncertainty(study: Study, uncertainty) -> None:
    """Log the Monte Carlo's samples, the draws each system dropped and the metrics outside their interval."""
    if uncertainty is None:
        return
    from prophet_model.outputs.formatting import dropped
    from prophet_model.study.sensitivity import outside_interval, uncertain_inputs

    u = study.config.uncertainty
    log.info(
        "Monte Carlo: %d samples, seed %d, inputs %s (every draw re-searches each variant's operating point)",
        u.samples,
        u.seed,
        ", ".join(uncertain_inputs(study)),
    )
    for r in uncertainty.drop_duplicates("system_id").itertuples():
        log.info("Monte Carlo, %s: %s", r.system_id, dropped(r.draws, r.dropped, r.dropped_no_fit, r.dropped_max_step))
    for line in outside_interval(uncertainty):
        log.warning("uncertainty: %s", line)


def _in_scope(rel: str, figures: bool, systems: set[str] | None) -> bool:
    """Whether a run writes the results file `rel`: figures only with `figures`; with `systems` (a partial run),
    only those systems' files."""
    from prophet_model.outputs.files import system_of

    if not figures and rel.startswith("figures/"):
        return False
    return systems is None or system_of(rel) in systems


def run(study: Study, results_dir: Path, label: str, argv: Sequence[str], options: RunOptions) -> int:
    """`run` of `study` into `results_dir` (`label`: how errors name it; `argv`: the command line, for the
    log): the exit status. Files are replaced all at once or not at all."""
    from prophet_model.outputs.files import SYSTEM_FILES, expected_files
    from prophet_model.workflow.commit import recover, refuse_targets, staged
    from prophet_model.workflow.procs import hold_lock
    from prophet_model.workflow.results import LOCK, owned, prepare, read_manifest, stale_reasons

    for sid in options.systems or ():
        study.system(sid)  # raises UserError naming the allowed ids
    if options.if_stale and (options.systems or options.no_figures):
        raise UserError("--if-stale checks a whole run; allowed: --if-stale without --systems and --no-figures")
    if owned(results_dir):
        hold_lock(results_dir, LOCK, "the results folder")  # another make in this checkout goes first
        recover(results_dir)  # what a killed command left
    if options.if_stale and owned(results_dir):
        reasons = stale_reasons(results_dir, study, "run")
        if not reasons:
            print(f"{results_dir}: results up to date (config {study.config_hash})", file=sys.stderr)
            return 0
        print(
            f"{results_dir}: rerunning: {reasons[0]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""),
            file=sys.stderr,
        )
    from tqdm import tqdm

    from prophet_model.outputs.report import figure_tasks, write_cross_system, write_system
    from prophet_model.study.rates import hardware_lines
    from prophet_model.study.runner import run_study
    from prophet_model.workflow.parallel import Background, run_parallel
    from prophet_model.workflow.runlog import SUCCESS, close_log, open_log, write_header

    hardware = hardware_lines(study)  # a measurement that gives an efficiency above 1 stops here, before any write
    results_dir = prepare(results_dir, label)  # refuses folders that are not the artifact's
    hold_lock(results_dir, LOCK, "the results folder")
    # a path the commit would refuse (a link, a file of the user's, a file where a folder goes) is refused before
    # anything is computed; the commit checks again
    ids = list(options.systems or (s.id for s in study.systems))
    targets = [
        rel
        for rel in expected_files(ids, bool(study.config.uncertainty))
        if _in_scope(rel, not options.no_figures, set(options.systems) if options.systems else None)
    ]
    refuse_targets(results_dir, targets, read_manifest(results_dir)["files"])
    before = _manifest_state(results_dir)
    log_path = open_log(results_dir / "logs", options.log_level)
    background: list[Background] = []  # processes computing beside this one, killed if the run stops
    try:
        write_header(study, list(argv))
        if not options.systems:  # the measurements' tables need the study's inputs only: computed meanwhile
            from prophet_model.measured.tables import measured_tables

            validation = Background(measured_tables, (study,), options.jobs)
            background.append(validation)
        log.info("%s%s", INPUTS_PREFIX, inputs_json(study))  # what `compare` shows as the inputs' difference

        results, failures = run_study(study, options.systems, log_system)
        if not failures:
            nothing_fits(results.comparison)  # exit 2 naming the cause, before anything is written
        for line in hardware:
            log.info("hardware: %s", line)
        # the Monte Carlo runs beside the checks and the writers' tables (its own process; in this one, with its
        # progress bar, when there is one core or --jobs 1)
        bar = uncertainty_bar(study, results, options.quiet)
        sampling = Background(sampled_uncertainty, (study, results), options.jobs, bar)
        background.append(sampling)
        checks, claims = checks_and_claims(study, results)
        if failures:
            log.error(
                "ERROR %d system(s) failed: %s; nothing was written, %s",
                len(failures),
                "; ".join(f"{k}: {v}" for k, v in failures.items()),
                _previous(results_dir, before),
            )
            return 1
        done = [s for s in study.systems if s.id in set(results.chosen.get("system_id", []))]
        figs = not options.no_figures
        partial = bool(options.systems)
        mine = {s.id for s in done} if partial else None

        def scope(rel: str, entry: dict) -> bool:
            """The files this run replaces: a partial run touches only its own outputs."""
            return _in_scope(rel, figs, mine)

        from prophet_model.workflow.writer_tables import writer_tables

        # what the pages, paper and notebooks read (results/data)
        tables = writer_tables(results, checks, claims, whole=not partial)
        uncertainty, exc = sampling.outcome()
        if exc is not None:
            raise exc
        log_uncertainty(study, uncertainty)
        with staged(results_dir, study, "run", scope) as stage:
            tasks = [
                (write_system, (results, checks, system, stage, uncertainty, tables), system.id) for system in done
            ]
            if not partial:  # the cross-system files need every system
                tasks.append((write_cross_system, (results, checks, stage, uncertainty, tables), "cross-system"))
                measured = validation.outcome()
                tasks.append((write_validation, (measured, study, results.headline, checks, stage), "validation"))
            if figs:  # one task per figure, each copied from results_dir where nothing it shows changed
                figures = {k: e for k, e in read_manifest(results_dir)["files"].items() if k.startswith("figures/")}
                tasks = figure_tasks(results, tables, done, not partial, stage, results_dir, figures) + tasks
            bar = tqdm(total=len(tasks), desc="outputs", unit="part", disable=options.quiet, file=sys.stderr)
            for name, paths, exc in run_parallel(tasks, options.jobs):
                bar.update()
                if exc is not None:
                    failures[name] = f"writing outputs failed: {exc}"
                    log.error("%s: %s", name, failures[name])
                else:
                    log.info("%s: wrote %d files", name, len(paths))
            bar.close()
            if failures:  # nothing is committed: the staging folder goes, the previous results stay
                raise _NotCommitted(failures)
            if partial:
                log.info(
                    "partial run (--systems): wrote only %s; the cross-system files are left as they were",
                    ", ".join(p.format(id=i) for i in sorted(mine) for p in SYSTEM_FILES[:1]),
                )
        log.info("results in %s", results_dir.resolve())
        if not options.quiet and not results.comparison.empty:
            print(result_table(results.comparison))
        log.info(SUCCESS)
        print(f"log: {log_path}", file=sys.stderr)
        return 0
    except _NotCommitted as exc:
        log.error(
            "ERROR %d part(s) failed: %s; nothing was replaced, %s",
            len(exc.failures),
            "; ".join(f"{k}: {v}" for k, v in exc.failures.items()),
            _previous(results_dir, before),
        )
        return 1
    except BaseException as exc:
        log.debug("traceback", exc_info=True)
        # a UserError is printed once by main; the log still ends with it
        said_by_main = isinstance(exc, (UserError, KeyboardInterrupt))  # main prints these once
        text = str(exc) or ("interrupted (SIGINT)" if isinstance(exc, KeyboardInterrupt) else "(no message)")
        log.error("ERROR %s: %s", type(exc).__name__, text, extra={"log_file_only": said_by_main})
        raise
    finally:
        for task in background:
            task.close()
        close_log()


def _manifest_state(results_dir) -> bytes | None:
    """The manifest's bytes (None when there is none or it cannot be read): what `_previous` compares."""
    try:
        return (results_dir / "manifest.json").read_bytes()
    except OSError:
        return None


def _previous(results_dir, before: bytes | None) -> str:
    """What the log may say of the previous results, checked: their manifest and files as they were."""
    from prophet_model.workflow.results import changed_files

    try:
        same = _manifest_state(results_dir) == before and (before is None or not changed_files(results_dir))
    except (OSError, UserError):
        same = False
    if same:
        return "the previous results are left as they were"
    return f"but {results_dir} changed meanwhile (another program wrote or removed files there); check it"


def write_validation(measured: tuple, study: Study, headline, checks, out) -> list:
    """What the measurements say, written under out/data/validation/ (outputs.files): `measured` is
    Background.outcome() of measured.tables.measured_tables (its exception, if it raised, is raised here), to
    which the claims' evidence of the headline rows is added."""
    from prophet_model.measured.tables import with_claims
    from prophet_model.outputs.files import write_validation as write

    value, exc = measured
    if exc is not None:
        raise exc
    return write(*with_claims(value, study, headline, checks), out)


def nothing_fits(comparison) -> None:
    """A UserError naming why, when no system and strategy of the comparison has numbers; a study in
    which some do is a result (the others say why in their note)."""
    if comparison.empty or comparison.speedup.notna().any():
        return
    why = {}
    for r in comparison.itertuples():
        why.setdefault(str(r.note) if isinstance(r.note, str) and r.note else "not evaluated", []).append(
            f"{r.system_id} {r.strategy}"
        )
    lines = "; ".join(f"{', '.join(where)}: {reason}" for reason, where in why.items())
    memory = any("(before any expert)" in reason for reason in why)  # model.why_infeasible's wording
    hint = (
        "a smaller workload.batch_size_per_gpu, workload.context_length_tokens or workload.reserved_memory_gb, "
        "a smaller model, or GPUs with more memory"
        if memory
        else "a strategy or system that can be evaluated (strategies, systems in the config)"
    )
    raise UserError(f"no system and strategy can be evaluated: {lines}; allowed: {hint}")
