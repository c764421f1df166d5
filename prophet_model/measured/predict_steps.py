"""Whole steps: the decode step on one GPU (measure.py --parts decode) and expert offloading
(measure.py --parts offload), each measured step beside the model's prediction from the catalog and
the machine's ceilings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from prophet_model import physics as m
from prophet_model.errors import UserError
from prophet_model.measured.measurements import (
    BF16,
    decode_kernels,
    gpu_of,
    known_models,
    machine_ceilings,
    read_table,
)
from prophet_model.measured.predict import base_scenario, scalar
from prophet_model.study.catalog import GPU
from prophet_model.study.config import Study
from prophet_model.study.measured_csv import BENCH, DECODE, KERNELS, OFFLOAD, present
from prophet_model.study.rates import MEASUREMENTS, Ceilings, machine_specs
from prophet_model.study.scenarios import model_fields


def predict_decode(
    study: Study, gpu: GPU, model_key: str, batch: int, context: int, ceil: Ceilings | None, kernels: int = 0
) -> float:
    """One decode step of `model_key` on one GPU, everything resident: the model's compute_time with the
    machine's ceilings (attainable HBM, GEMM and weight-streaming rates, start-up) and the benchmark's
    `kernels` per step; without `ceil`, datasheet rates and no start-up."""
    mdl = study.models[model_key]
    s = replace(
        base_scenario(gpu, None, ceil),
        **model_fields(mdl),
        fused=1,
        kernels_per_layer=kernels / mdl.num_layers,
        kernels_head=0,
        batch_size_per_gpu=batch,
        context_length=context,
    )
    return scalar(m.compute_time(s.arrays()))


def decode_table(study: Study, root: Path = MEASUREMENTS) -> pd.DataFrame:
    """Every measured whole decode step beside the model's prediction (the machine's own ceilings) and the
    datasheet-only prediction, with errors in %."""
    rows = []
    for machine in machine_specs():
        path = root / machine / "decode.csv"
        if not present(path, DECODE):
            continue
        ceil = machine_ceilings(study, machine)
        gpu = gpu_of(study, machine_specs()[machine])
        for r in known_models(read_table(path, DECODE), path, study).itertuples():
            shape = (r.model, int(r.batch), int(r.context))
            kernels = decode_kernels(machine, r.model, int(r.batch), root)
            model = predict_decode(study, gpu, *shape, ceil, kernels)
            sheet = predict_decode(study, gpu, *shape, None)
            copy_rate = replace(ceil, stream_dense=ceil.hbm_bandwidth, stream_grouped=ceil.hbm_bandwidth)
            copy_only = predict_decode(study, gpu, *shape, copy_rate, kernels)
            rows.append(
                {
                    "machine": machine,
                    "model": r.model,
                    "batch": int(r.batch),
                    "context": int(r.context),
                    "measured_ms": 1e3 * r.median_s,
                    "predicted_ms": 1e3 * model,
                    "datasheet_ms": 1e3 * sheet,
                    "error_pct": 100 * (model / r.median_s - 1),
                    "datasheet_error_pct": 100 * (sheet / r.median_s - 1),
                    "copy_rate_only_error_pct": 100 * (copy_only / r.median_s - 1),
                }
            )
    return pd.DataFrame(rows)


def batch_one_gap(study: Study, root: Path = MEASUREMENTS) -> pd.DataFrame:
    """Where the batch-1 decode steps lose time, from the profiled kernels: the grouped-GEMM (routed
    experts) GPU time at batch 1 against the model's expert term at the machine's grouped streaming
    rate (the median over 1..64 rows per weight), and the microbenchmark's own grouped rate at one row."""
    rows = []
    for machine, spec in machine_specs().items():
        path = root / machine / "decode_kernels.csv"
        if not present(path, KERNELS):
            continue
        k = known_models(read_table(path, KERNELS), path, study)
        k = k[k.batch == 1]
        if k.empty:
            continue
        c = read_table(root / spec["ceilings"] / "ceilings.csv", BENCH)
        if "tokens_per_rank" not in c:
            c = c.assign(tokens_per_rank=np.nan)
        one = c[(c.benchmark == "ceiling_stream") & (c.part == "grouped") & (c.tokens_per_rank == 1)]
        ceil = machine_ceilings(study, machine)
        for model_key, g in k.groupby("model"):
            mdl = study.models[model_key]
            grouped = g[g.kernel.str.contains("GroupProblem")].gpu_s.sum()
            s = replace(
                base_scenario(gpu_of(study, spec), None, ceil), **model_fields(mdl), fused=1, batch_size_per_gpu=1
            )
            rows.append(
                {
                    "machine": machine,
                    "model": model_key,
                    "grouped_gemm_measured_ms": 1e3 * grouped,
                    "grouped_gemm_model_ms": 1e3 * scalar(m.expert_time(s.arrays())),
                    "stream_one_row_gbps": float((one.bytes / one.median_s).iloc[0]) / 1e9 if len(one) else np.nan,
                    "stream_model_gbps": ceil.stream_grouped / 1e9,
                    "step_measured_ms": 1e3 * g.gpu_s.sum(),
                }
            )
    return pd.DataFrame(rows)


OFFLOAD_KERNELS_PER_LAYER = 22  # one per op of measure_offload.layer_compute (radix sort and scan as two each)


def offload_step(r, gpu: GPU, ceil: Ceilings, t_e: float, hit: float, d: float) -> float:
    """One measured offloading step (a row of offload.csv, or of dp_peer_fetch.csv) as the model predicts
    it: each layer's compute from the ceilings, and its copies at t_e seconds per expert, on demand or
    prefetched one layer ahead (prefetch.prefetch_exposed, eager, over the binomial number of misses);
    `hit` the resident share, `d` the distinct experts a layer touches."""
    from prophet_model.physics import prefetch

    e, k, h, f, tokens = int(r.experts), int(r.top_k), int(r.hidden), int(r.ffn), int(r.tokens)
    s = replace(
        base_scenario(gpu, None, ceil),
        fused=1,
        kernels_per_moe_layer=OFFLOAD_KERNELS_PER_LAYER,
        hidden_size=h,
        expert_ffn_size=f,
        num_experts=e,
        top_k=k,
        batch_size_per_gpu=tokens,
    )
    a = s.arrays()
    grouped = max(2 * tokens * k * 3 * h * f / ceil.gemm_flops, d * 3 * h * f * BF16 / ceil.stream_grouped)
    compute = grouped + scalar(
        m.startup_time(a) + m.gemm_time(np.float64(tokens), np.float64(h * e), a, a.stream_dense)
    )
    nonresident = e - round(hit * e)  # static residency: the first round(r E) experts
    mean = nonresident * (1 - (1 - k / e) ** tokens)
    if r.policy == "lru":  # on demand: linear in the misses, their mean suffices
        layer = d * (1 - hit) * t_e + compute
    elif r.policy == "baseline":
        layer = mean * t_e + compute
    else:  # eager prefetch, over the binomial number of misses
        acc = float(r.accuracy)
        wrong = scalar(prefetch.wrong_share(acc, d, e))
        layer = compute + scalar(
            prefetch.prefetch_exposed(
                np.float64(mean * t_e),
                np.float64(compute),
                np.float64(mean),
                np.float64(nonresident),
                np.float64(acc),
                np.float64(wrong),
                np.float64(0),
            )
        )
    return int(r.layers) * layer


OFFLOAD_ROWS = (
    "baseline, prefetch (with accuracy in [0, 1]) or lru (with cache_slots >= 0; zipf_s > 0 for zipf routing)"
)


def _offload_row_ok(r) -> bool:
    """Whether a row of offload.csv has the values its policy's prediction reads (NaN compares False)."""
    nan = float("nan")
    if r.policy == "prefetch":
        return 0 <= getattr(r, "accuracy", nan) <= 1
    if r.policy == "lru":
        return getattr(r, "cache_slots", nan) >= 0 and (r.routing != "zipf" or getattr(r, "zipf_s", nan) > 0)
    return r.policy == "baseline"


def offload_table(study: Study, root: Path = MEASUREMENTS) -> pd.DataFrame:
    """Every measured offloading step beside the model's prediction (prophet_model.physics.prefetch): the copy time
    of an expert from the machine's measured host->device copy rate (>= 256 MiB), the layer's compute from
    its ceilings; the routing statistics from the model's own expectations (prophet_model.physics.cache: LRU by
    Che's approximation, C / E under uniform routing), not from the run's draws."""
    from prophet_model.physics import cache, prefetch
    from prophet_model.study.rates import host_copy_rate

    rows = []
    for machine, spec in machine_specs().items():
        path = root / machine / "offload.csv"
        if not present(path, OFFLOAD):
            continue
        ceil = machine_ceilings(study, machine)
        rate = host_copy_rate(machine, root)
        if not rate:
            raise UserError(
                f"{root / machine / 'measurements.csv'}: no host->device copies of >= 256 MiB, needed "
                f"for {path}; allowed: the copies of validation/measure.py --parts single"
            )
        gpu = gpu_of(study, spec)
        offload = read_table(path, OFFLOAD)
        for i, r in zip(offload.attrs["lines"], offload.itertuples(), strict=True):
            if not _offload_row_ok(r):
                raise UserError(f"{path} line {i}: policy {str(r.policy)[:40]!r}; allowed: {OFFLOAD_ROWS}")
        for r in offload.itertuples():
            e, k, tokens = int(r.experts), int(r.top_k), int(r.tokens)
            d = float(prefetch.distinct(tokens, e, k))
            if r.policy == "lru" and r.routing == "zipf":
                q = cache.touch_probability(cache.zipf(e, float(r.zipf_s)), tokens, k)
                hit, d = cache.lru_che_hit(r.cache_slots, q), float(q.sum())
            elif r.policy == "lru":
                hit = cache.lru_uniform_hit(r.cache_slots, e)
            else:
                hit = float(r.resident_fraction)
            step = offload_step(r, gpu, ceil, r.expert_bytes / rate, hit, d)
            rows.append(
                {
                    "machine": machine,
                    "policy": r.policy,
                    "routing": r.routing,
                    "tokens": tokens,
                    "resident_fraction": r.resident_fraction,
                    "cache_slots": r.cache_slots,
                    "accuracy": r.accuracy,
                    "measured_ms": 1e3 * r.step_s,
                    "predicted_ms": 1e3 * step,
                    "error_pct": 100 * (step / r.step_s - 1),
                    "hit_rate_measured": r.hit_rate,
                    "hit_rate_predicted": hit if r.policy == "lru" else np.nan,
                }
            )
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    # Prophet's speedup over the on-demand baseline of the same machine, batch and residency
    key = ["machine", "tokens", "resident_fraction"]
    base = t[t.policy == "baseline"][[*key, "measured_ms", "predicted_ms"]].rename(
        columns={"measured_ms": "measured_ms_baseline", "predicted_ms": "predicted_ms_baseline"}
    )
    pre = t[t.policy == "prefetch"].merge(base, on=key, how="left")
    pre = pre.assign(
        speedup_measured=pre.measured_ms_baseline / pre.measured_ms,
        speedup_predicted=pre.predicted_ms_baseline / pre.predicted_ms,
    )
    pre["speedup_error_pct"] = 100 * (pre.speedup_predicted / pre.speedup_measured - 1)
    return t.merge(
        pre[[*key, "accuracy", "speedup_measured", "speedup_predicted", "speedup_error_pct"]],
        on=[*key, "accuracy"],
        how="left",
    )
