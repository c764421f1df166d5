"""The two-GPU sets of issue 27 (measure.py --parts peer_copy host_concurrent dp_peer_fetch ep2_step
tp2_attention, validation/measure_multi.py), each measured point beside the model's prediction.

Out of sample: every prediction comes from the catalog (GPU, interconnect, model), the machine's ceilings
(validation/machines.yml names its folder: kernel start-up, HBM, GEMM and weight-streaming rates, and the
link ceiling `ceiling_link`, kernels writing into the peer GPU's memory) and the pinned host->device copy
rate of separate copies (measurements.csv, >= 256 MiB, the machine's folder or else its ceilings folder),
never from the points themselves. Through the physics:
- peer_copy: start-up + bytes / P, P the link ceiling (physics.fetch: a peer copy at peer_bandwidth);
- host_concurrent: start-up + bytes / fetch_rate (physics.fetch.fetch_rate with one or both GPUs
  fetching: the catalog names no shared PCIe switch, so the model predicts no contention);
- dp_peer_fetch: offloading steps (predict_steps.offload_step) with an expert's copy time from host at
  fetch_rate (both GPUs fetching), from the peer at P, or pooled: physics.fetch.fetch_time of the pooled
  scenario (its own split P / (P + H) between the two sources) per byte;
- ep2_step: compute_time + comm_time of the step's scenario (EP = 2; a local share p of assignments cuts
  the all-to-all volume by ((ep-1)/ep) / (1-p)); offloaded: + fetch_exposed over fetch_time from host,
  the prefetch hidden behind the layer's compute and all-to-alls;
- tp2_attention: per layer the attention projections and attention (dense_time's attention terms at
  attention_tp) with the bench's kernels, + allreduce_time at TP = 2.
`planned` predicts the points the bench will measure before any measurement exists."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from prophet_model import physics as m
from prophet_model.measured.measurements import hardware, known_models, machine_ceilings, read_table
from prophet_model.measured.predict import base_scenario, scalar
from prophet_model.measured.predict_steps import offload_step
from prophet_model.study.catalog import GPU, Interconnect
from prophet_model.study.config import Study
from prophet_model.study.measured_csv import MULTI, present
from prophet_model.study.rates import MACHINES, MEASUREMENTS, Ceilings, ceilings, host_copy_rate, machine_specs
from prophet_model.study.scenarios import model_fields

SETS = ("peer_copy", "host_concurrent", "dp_peer_fetch", "ep2_step", "tp2_attention")
PLANNED_MACHINE = "nvidia-h200-x2-pool"  # the folder issue 27's run writes (validation/measurements/README.md)
# the bench's structure, not timings: kernels per layer of measure_tp.attention and of measure_multi.ep_layer
TP_KERNELS_PER_LAYER = 8
EP_KERNELS_PER_LAYER = 26
# the planned points (validation/multi_plan.py; tests/test_measure_program.py checks they agree)
MIB = 1 << 20
SEED_EXPERT_BYTES = 3 * 4096 * 2560 * 2
PEER_COPY_BYTES = sorted([1 * MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB, SEED_EXPERT_BYTES])
HOST_COPY_BYTES = sorted([64 * MIB, 256 * MIB, 1024 * MIB, SEED_EXPERT_BYTES])
DP_LAYERS, DP_BATCHES, DP_RESIDENT, DP_ACCURACIES = 2, [1, 16, 64], [0.5, 0.75], [0.5, 0.8, 1.0]
EP_MODELS, EP_BATCHES, EP_CONTEXT = ("mixtral_8x7b", "qwen1_5_moe_a2_7b"), [1, 16, 64, 256], 2048
EP_OFFLOAD_MODEL, EP_OFFLOAD_LAYERS, EP_OFFLOAD_BATCHES = "qwen1_5_moe_a2_7b", 4, [16, 64]
EP_OFFLOAD_RESIDENT, EP_OFFLOAD_ACCURACIES = 0.5, [0.8, 1.0]
TP_MODELS, TP_BATCHES, TP_CONTEXT = ("mixtral_8x7b", "qwen1_5_moe_a2_7b"), [1, 8, 32, 64], 2048
SEED_SHAPE = {"hidden": 4096, "ffn": 2560, "experts": 128, "top_k": 2}


@dataclass(frozen=True)
class Inputs:
    """What a machine's predictions rest on."""

    gpu: GPU
    net: Interconnect | None
    ceil: Ceilings
    peer: float  # bytes/s, the link ceiling (NaN where none was measured)
    host: float  # bytes/s, pinned host->device copies of one GPU (NaN where none were measured)


def inputs(study: Study, machine: str, root: Path = MEASUREMENTS, machines_file: Path = MACHINES) -> Inputs:
    spec = machine_specs(machines_file)[machine]
    gpu, net = hardware(study, spec)
    ceil = ceilings(spec["ceilings"], root)
    if not (ceil.stream_dense and ceil.stream_grouped):
        ceil = machine_ceilings(study, machine, machines_file)
    host = host_copy_rate(machine, root) or host_copy_rate(spec["ceilings"], root)
    return Inputs(gpu, net, ceil, ceil.link_bandwidth or np.nan, host or np.nan)


def _scenario(inp: Inputs, **fields) -> m.Scenario:
    s = base_scenario(inp.gpu, inp.net, inp.ceil)
    return replace(
        s,
        host_bandwidth=inp.host,
        switch_uplink_bandwidth=max(inp.host, s.switch_uplink_bandwidth),
        peer_bandwidth=inp.peer,
        **fields,
    )


def host_rate(inp: Inputs, gpus: int) -> float:
    """physics.fetch.fetch_rate: the host->device rate of one GPU while `gpus` GPUs fetch."""
    return scalar(m.fetch_rate(_scenario(inp, n_gpus=gpus, ep=1).arrays()))


def pooled_seconds_per_byte(inp: Inputs, r) -> float:
    """physics.fetch.fetch_time / fetch_bytes for two replicas pooling the experts of r's layer shape, each
    holding a share r.resident_fraction >= 1/2 (so the peer holds every missing expert: peer_share = 1)."""
    e, res = int(r.experts), float(r.resident_fraction)
    s = _scenario(
        inp,
        n_gpus=2,
        ep=1,
        pooled=1,
        hidden_size=int(r.hidden),
        expert_ffn_size=int(r.ffn),
        num_experts=e,
        top_k=int(r.top_k),
        batch_size_per_gpu=int(r.tokens),
        resident_override=res,
        attention_params_per_layer=0,
        vocab_size=0,
        kv_elements_per_token_per_layer=0,
        memory_capacity=1.0,
    )
    need = scalar(m.experts_on_fullest_gpu(s.arrays())) * scalar(m.expert_bytes(s.arrays()))
    a = replace(s, memory_capacity=res * need + scalar(m.dense_params(s.arrays())) * 2).arrays()
    return scalar(m.fetch_time(a)) / scalar(m.fetch_bytes(a))


def _local(r) -> float | None:
    return None if str(r.local_fraction) in ("uniform", "nan", "") else float(r.local_fraction)


def _ep_scenarios(study: Study, inp: Inputs, r) -> tuple[np.ndarray, ...]:
    """(compute, comm) arrays of an EP = 2 step of r's model, r.layers layers, r.batch sequences per GPU."""
    mdl, layers, local = study.models[r.model], int(r.layers), _local(r)
    fields = model_fields(mdl) | {"num_layers": layers, "num_moe_layers": layers, "vocab_size": 0}
    s = replace(
        _scenario(inp, n_gpus=2, ep=2),
        **fields,
        fused=1,
        kernels_per_layer=EP_KERNELS_PER_LAYER,
        kernels_per_moe_layer=0,
        kernels_head=0,
        kernels_per_shared_expert=0,
        batch_size_per_gpu=int(r.batch),
        context_length=int(r.context),
    )
    comm = s if local is None else replace(s, prophet=1, comm_reduction_factor=(1 / 2) / (1 - local))
    return s, comm


def predict_point(study: Study, inp: Inputs, name: str, r) -> float:
    """Seconds the model predicts for one row of set `name`."""
    if name == "peer_copy":
        return inp.ceil.kernel_startup_s + r.bytes / inp.peer
    if name == "host_concurrent":
        return inp.ceil.kernel_startup_s + r.bytes / host_rate(inp, 2 if r.part == "both" else 1)
    if name == "dp_peer_fetch":
        from prophet_model.physics import prefetch

        d = float(prefetch.distinct(int(r.tokens), int(r.experts), int(r.top_k)))  # as predict_steps.offload_table
        per_byte = {"host": 1 / host_rate(inp, 2), "peer": 1 / inp.peer}.get(r.source) or pooled_seconds_per_byte(
            inp, r
        )
        return offload_step(r, inp.gpu, inp.ceil, r.expert_bytes * per_byte, float(r.resident_fraction), d)
    if name == "ep2_step":
        s, comm_s = _ep_scenarios(study, inp, r)
        compute, comm = scalar(m.compute_time(s.arrays())), scalar(m.comm_time(comm_s.arrays()))
        if r.part == "resident":
            return compute + comm
        prefetch = r.part == "offload_prefetch"
        f = replace(
            s,
            resident_override=float(r.resident_fraction),
            prophet=1 if prefetch else 0,
            prefetch_window=0,
            prediction_accuracy=float(r.accuracy) if prefetch else 1.0,
        ).arrays()
        return compute + comm + scalar(m.fetch_exposed(f, np.float64(compute + comm)))
    tp = 1 if r.part == "tp1" else 2
    mdl = study.models[r.model]
    s = replace(
        _scenario(inp, n_gpus=tp),
        **model_fields(mdl),
        attention_tp=tp,
        batch_size_per_gpu=int(r.batch),
        context_length=int(r.context),
        kernels_per_layer=TP_KERNELS_PER_LAYER,
    )
    a = s.arrays()
    reduce = scalar(m.allreduce_time(a))
    if r.part == "allreduce":
        return int(r.layers) * reduce
    attn = m.gemm_time(
        tp * a.batch_size_per_gpu, a.attention_params_per_layer / tp, a, a.stream_dense
    ) + m.attention_time(a)
    return int(r.layers) * (scalar(attn) + TP_KERNELS_PER_LAYER * a.kernel_startup + reduce)


def _measured(name: str, r) -> float:
    return float(r.step_s) if name == "dp_peer_fetch" else float(r.median_s)


def _label(name: str, r) -> str:
    if name in ("peer_copy", "host_concurrent"):
        direction = getattr(r, "direction", "")
        return " ".join(
            x for x in (r.part, direction if isinstance(direction, str) else "", f"{r.bytes / MIB:g} MiB") if x
        )
    if name == "dp_peer_fetch":
        acc = "baseline" if r.policy == "baseline" else f"prefetch a={r.accuracy}"
        return f"{r.source}, B={int(r.tokens)}, resident {r.resident_fraction}, {acc}"
    if name == "ep2_step":
        acc = f", a={r.accuracy}" if r.part == "offload_prefetch" else ""
        return f"{r.model} {r.part}{acc}, B={int(r.batch)}, local {r.local_fraction}"
    return f"{r.model} {r.part}, B={int(r.batch)}"


COLUMNS = ["machine", "set", "point", "measured_ms", "predicted_ms", "error_pct"]


def table(
    study: Study, frames: dict[tuple[str, str], pd.DataFrame], root: Path = MEASUREMENTS, machines_file: Path = MACHINES
) -> pd.DataFrame:
    """Every row of {(machine, set): rows} beside its prediction (measured NaN where not measured yet)."""
    out = []
    for (machine, name), df in frames.items():
        inp = inputs(study, machine, root, machines_file)
        for r in df.itertuples():
            measured = _measured(name, r) if hasattr(r, "median_s") or hasattr(r, "step_s") else np.nan
            pred = predict_point(study, inp, name, r)
            out.append(
                {
                    "machine": machine,
                    "set": name,
                    "point": _label(name, r),
                    "measured_ms": 1e3 * measured,
                    "predicted_ms": 1e3 * pred,
                    "error_pct": 100 * (pred / measured - 1),
                }
            )
    return pd.DataFrame(out, columns=COLUMNS)


def predictions(study: Study, root: Path = MEASUREMENTS, machines_file: Path = MACHINES) -> pd.DataFrame:
    """Every committed two-GPU set (validation/measurements/<machine>/<set>.csv of the machines in
    machines.yml) beside the model: machine, set, point, measured_ms, predicted_ms, error_pct. Empty
    (with those columns) where none is committed."""
    frames = {}
    for machine in machine_specs(machines_file):
        for name in SETS:
            path = root / machine / f"{name}.csv"
            if present(path, MULTI):
                df = read_table(path, MULTI, keep_default_na=False, na_values=[""])
                frames[(machine, name)] = known_models(df, path, study) if "model" in df else df
    return table(study, frames, root, machines_file)


def summary(t: pd.DataFrame) -> pd.DataFrame:
    """Per machine and set: points, median |error| %, worst |error| % and where (measured points only)."""
    rows = []
    for (machine, name), g in t.dropna(subset=["measured_ms"]).groupby(["machine", "set"], sort=False):
        err = g.error_pct.abs()
        rows.append(
            {
                "machine": machine,
                "set": name,
                "points": len(g),
                "median |error| %": round(float(err.median()), 1),
                "worst |error| %": round(float(err.max()), 1),
                "worst at": g.loc[err.idxmax(), "point"],
            }
        )
    return pd.DataFrame(rows, columns=["machine", "set", "points", "median |error| %", "worst |error| %", "worst at"])


def planned_rows() -> dict[str, pd.DataFrame]:
    """The points issue 27's run will measure (multi_plan), as rows without measurements."""
    seed = {**SEED_SHAPE, "layers": DP_LAYERS, "expert_bytes": SEED_EXPERT_BYTES}
    dp = [
        {**seed, "source": src, "tokens": b, "resident_fraction": res, "policy": pol, "accuracy": acc}
        for src in ("host", "peer", "pool")
        for b in DP_BATCHES
        for res in DP_RESIDENT
        for pol, acc in [("baseline", np.nan)] + [("prefetch", a) for a in DP_ACCURACIES]
    ]
    ep = [
        {
            "model": k,
            "part": "resident",
            "layers": None,
            "batch": b,
            "context": EP_CONTEXT,
            "local_fraction": lf,
            "resident_fraction": 1.0,
            "accuracy": np.nan,
        }
        for k in EP_MODELS
        for b in EP_BATCHES
        for lf in ("uniform", 0.75)
    ]
    ep += [
        {
            "model": EP_OFFLOAD_MODEL,
            "part": part,
            "layers": EP_OFFLOAD_LAYERS,
            "batch": b,
            "context": EP_CONTEXT,
            "local_fraction": lf,
            "resident_fraction": EP_OFFLOAD_RESIDENT,
            "accuracy": acc,
        }
        for b in EP_OFFLOAD_BATCHES
        for lf in ("uniform", 0.75)
        for part, acc in [("offload_baseline", np.nan)] + [("offload_prefetch", a) for a in EP_OFFLOAD_ACCURACIES]
    ]
    tp = [
        {"model": k, "part": part, "layers": None, "batch": b, "context": TP_CONTEXT}
        for k in TP_MODELS
        for b in TP_BATCHES
        for part in ("tp1", "tp2", "allreduce")
    ]
    return {
        "peer_copy": pd.DataFrame(
            [
                {"part": p, "direction": d, "bytes": b}
                for b in PEER_COPY_BYTES
                for p, d in (("alone", "1->0"), ("both", "both"))
            ]
        ),
        "host_concurrent": pd.DataFrame(
            [{"part": p, "direction": "h2d", "bytes": b} for b in HOST_COPY_BYTES for p in ("alone", "both")]
        ),
        "dp_peer_fetch": pd.DataFrame(dp),
        "ep2_step": pd.DataFrame(ep),
        "tp2_attention": pd.DataFrame(tp),
    }


def planned(
    study: Study, machine: str = PLANNED_MACHINE, machines_file: Path = MACHINES, root: Path = MEASUREMENTS
) -> pd.DataFrame:
    """The model's predictions at the points issue 27 plans, on `machine` (before the run)."""
    frames = {}
    for name, df in planned_rows().items():
        if "layers" in df and "model" in df:
            df = df.assign(
                layers=[
                    n if n == n and n is not None else study.models[k].num_layers
                    for n, k in zip(df.layers, df.model, strict=True)
                ]
            )
        frames[(machine, name)] = df
    return table(study, frames, root, machines_file)
