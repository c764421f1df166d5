"""Every table and number the validation page, the book and the paper show of the measurements, computed
once: `run` writes them under results/data/validation/ (outputs/files.py names the files: one CSV per
table, the scalars as JSON), and the writers and notebooks read those files, never predicting anything.

Nothing here is new computing: each entry is the call of the measured module that owns it."""

from __future__ import annotations

import pandas as pd

from prophet_model.study import columns, columns_measured
from prophet_model.study.config import Study
from prophet_model.study.measured_csv import MeasurementError

NCCL_MACHINE = "nvidia-h200-x2"  # the two-GPU host whose NCCL runs and probe the page discusses


def machines_table(study: Study) -> pd.DataFrame:
    """Each machine of machines.yml: its catalog GPU (key and name), whether its folder holds measurements
    (an env.json), and the GPUs and software that env.json names."""
    from prophet_model.study.measured_csv import read_env
    from prophet_model.study.rates import MEASUREMENTS, machine_specs

    rows = []
    for name, spec in machine_specs().items():
        env = read_env(MEASUREMENTS / name / "env.json")  # bounded; a folder or FIFO there is an error
        gpu = study.gpus[spec["gpu"]].name if spec["gpu"] in study.gpus else ""
        row = {"machine": name, "gpu_key": spec["gpu"], "gpu_name": gpu, "measured": env is not None}
        if env is None:
            rows.append(row | {"GPUs": "not measured yet", "software": ""})
            continue
        rows.append(
            row
            | {
                "GPUs": f"{env.get('gpu_count', 1)} × {env.get('gpu', '?')}",
                "software": f"PyTorch {env.get('torch')}, CUDA {env.get('cuda')}, NCCL {env.get('nccl')}",
            }
        )
    return pd.DataFrame(rows)


def nccl_path(df: pd.DataFrame, study: Study, machine: str = NCCL_MACHINE) -> dict:
    """The numbers of how NCCL drives the link on `machine`: its configuration and staging buffers (INFO log),
    the probe's copy rates at NCCL's number of thread blocks and at one block per SM, the large all-to-alls'
    rates, the link ceiling, and what the large all-to-alls' median error would be had the link ceiling been
    each of the probe's rates at NCCL's block count (a what-if, predict.large_alltoall_error)."""
    from prophet_model.measured.nccl_log import (
        PROBE_BYTES,
        link_blocks,
        link_write_rate,
        nccl_configuration,
        nccl_staging,
    )
    from prophet_model.measured.predict import large_alltoall_error
    from prophet_model.measured.summary import alltoall_rates
    from prophet_model.study.rates import ceilings

    nccl, blocks, staging = nccl_configuration(machine), link_blocks(machine), nccl_staging(machine)
    n = int(nccl["p2p_channels_per_peer"])
    remote = blocks[[c for c in blocks.columns if c.startswith("remote")]]
    at_n, all_sms = remote.loc[n], remote.loc[remote.index.max()]
    rates = alltoall_rates(df, study)
    rates = rates[rates.machine == machine]
    link = ceilings(machine).link_bandwidth / 1e9
    return {
        "version": nccl["version"],
        "transport": nccl["transport"],
        "channels_per_peer": n,
        "p2p_chunk_bytes": int(nccl["p2p_chunk_bytes"]),
        "ring_simple_latency_us": nccl["ring_simple_latency_us"],
        "ring_simple_busbw_gbps": nccl["ring_simple_busbw_gbps"],
        "link_gbps": link,
        "connections": sum(staging["connections"].values()),
        "p2p_connections": staging["connections"].get(1, 0),
        "allocated": [[b, c] for b, c in staging["allocated"].items()],  # [bytes, count]
        "imported": sum(staging["imported"].values()),
        "rates_at_channels_gbps": [int(x) for x in at_n],
        "rates_all_sms_gbps": [int(x) for x in all_sms],
        "all_sms_blocks": int(remote.index.max()),
        "alltoall_gbps": [int(x) for x in rates["NCCL all-to-all (GB/s)"]],
        "alltoall_mib": [float(x) for x in rates["per-rank buffer (MiB)"]],
        "errors_at_channels_pct": [large_alltoall_error(df, study, 1e9 * r, machine) for r in at_n],
        "link_write_gbps": link_write_rate(machine, PROBE_BYTES) / 1e9,
        "probe_bytes": PROBE_BYTES,
    }


def facts(df: pd.DataFrame, study: Study) -> dict:
    """The scalars of the page: the verdicts' limit, the all-to-all's regimes (summary.alltoall_regimes) for the
    study's model, the bytes one decode token puts into an all-to-all, the GPUs the all-to-all ran on, and
    how NCCL drives the link (nccl_path)."""
    from prophet_model.measured.measurements import BF16
    from prophet_model.measured.summary import VERDICT_LIMIT_PCT, alltoall_regimes

    m = study.model
    return {
        "verdict_limit_pct": VERDICT_LIMIT_PCT,
        "alltoall_regimes": alltoall_regimes(df, m.hidden_size, m.top_k),
        "alltoall_per_token_bytes": m.top_k * m.hidden_size * BF16,
        "alltoall_gpus": int(df[df.benchmark == "alltoall"].ep.max()),
        "nccl_path": nccl_path(df, study),
    }


def tables(
    study: Study, headline: pd.DataFrame, checks: pd.DataFrame | None, strict: bool = False
) -> tuple[dict[str, pd.DataFrame], dict]:
    """({file stem: its table}, facts): everything results/data/validation/ holds (outputs/files.py,
    VALIDATION_TABLES, says what each table is); the claims' evidence is that of the headline rows. `strict`:
    a column the registry lacks is an error (the tests), else it is left out (a measurements.csv of your own
    may carry columns of its own)."""
    return with_claims(measured_tables(study, strict), study, headline, checks, strict)


def with_claims(
    measured: tuple[dict[str, pd.DataFrame], dict],
    study: Study,
    headline: pd.DataFrame,
    checks: pd.DataFrame | None,
    strict: bool = False,
) -> tuple[dict[str, pd.DataFrame], dict]:
    """`measured` (measured_tables) with the claims' evidence of the headline rows added."""
    from prophet_model.measured import evidence

    out, facts_ = measured
    rows = out["validated"].drop(columns="text").to_dict("records")
    known = {r["mechanism"]: evidence.Validated(**r) for r in rows}  # the validated errors measured_tables found
    claims = evidence.claim_evidence(study, headline, checks, known)
    return {**out, "claim_evidence": in_order("claim_evidence", claims, strict)}, facts_


def measured_tables(study: Study, strict: bool = False) -> tuple[dict[str, pd.DataFrame], dict]:
    """`tables` less the claims' evidence: what depends on the measurements and the study's inputs alone, not on
    the study's results (`run` computes it beside the study, in a process of its own)."""
    from prophet_model.measured import evidence, nccl_log, predict, predict_multi, predict_steps, summary
    from prophet_model.measured.measurements import ceilings_table, load

    df = predict.with_predictions(load(), study)
    fits, after = summary.calibrated(df)
    two = predict_multi.predictions(study)
    out = {
        "points": df,
        "summary": summary.verdicts(summary.summary(df)),
        "ceilings": ceilings_table(study).reset_index(),
        "machines": machines_table(study),
        "alltoall_rates": summary.alltoall_rates(df, study),
        "nccl_settings": nccl_log.nccl_settings(NCCL_MACHINE),
        "alltoall_split": nccl_log.alltoall_split(NCCL_MACHINE).reset_index(),
        "link_blocks": nccl_log.link_blocks(NCCL_MACHINE).reset_index(),
        "decode": predict_steps.decode_table(study),
        "batch_one": predict_steps.batch_one_gap(study),
        "offload": predict_steps.offload_table(study),
        "calibrated_fits": fits,
        "calibrated_summary": after,
        "scaling": predict.scaling_predictions(study),
        "two_gpu": two,
        "two_gpu_summary": predict_multi.summary(two),
        "two_gpu_planned": predict_multi.planned(study),
        "validated": pd.DataFrame(
            [
                {
                    "mechanism": v.mechanism,
                    "what": v.what,
                    "points": v.points,
                    "median_pct": v.median_pct,
                    "worst_pct": v.worst_pct,
                    "text": v.text(),
                }
                for v in evidence.validated(study).values()
            ],
            columns=columns.names(columns_measured.VALIDATED),
        ),
    }
    return {stem: in_order(stem, t, strict) for stem, t in out.items()}, facts(df, study)


def in_order(stem: str, table: pd.DataFrame, strict: bool = True) -> pd.DataFrame:
    """`table` with its columns in the order study/columns_measured.py registers for validation/<stem>.csv (a
    table without columns as it is); a registered column not computed is an error naming it, and so is a column
    computed and not registered when `strict` (else it is left out: a measurements.csv with a column of its
    own)."""
    if stem not in columns_measured.TABLES:
        raise ValueError(f"validation table {stem!r}; allowed: {', '.join(columns_measured.TABLES)}")
    if table.columns.empty:
        return table
    spec = columns_measured.TABLES[stem]
    if not strict:
        table = table[[c for c in table.columns if columns.registered(str(c), spec)]]
    try:
        return table[columns.arrange(table.columns, spec, f"validation/{stem}.csv")]
    except ValueError as exc:
        raise MeasurementError(str(exc)) from None
