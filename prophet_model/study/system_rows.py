"""One system's rows: every candidate split (and attention TP degree, and each side's searched options: weight
and KV precision, cache policy, two-batch overlap) at every batch of its grid through the model in one vectorized
call, and the reference configurations of the scaling ratio; one record per
configuration with the step breakdown (study/runner.py picks and tables them).

The options' search leaves out what is dominated by construction (scenarios.searched_sets: FP8 weights and KV
where searched) and takes each configuration's cache policy as the one of the highest hit rate (best_policy),
so that a side's option sets multiply its candidates by the overlap's two values at most.

With `workload.batch_search` the grid is 1, 2, 4, ..., the largest batch that fits GPU memory, the knee past
which experts are fetched from host, and the configured batch; the exact integer operating point of every
configuration is then searched (study/operating_point.py) and only the batches it adds are evaluated again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from prophet_model.physics import (
    Scenario,
    evaluate,
    max_batch,
    max_batch_all_resident,
    memory_resident_fraction,
    memory_terms,
    peer_share,
    resident_fraction,
    why_infeasible,
)
from prophet_model.physics.cache import POLICIES
from prophet_model.physics.cost import usd_per_million_tokens
from prophet_model.physics.routing import skewed_routing
from prophet_model.study.config import Study, System
from prophet_model.study.frames import Record, SystemRows
from prophet_model.study.operating_point import exact_cases
from prophet_model.study.scenarios import (
    memory_sets,
    option_sets,
    option_values,
    scenario_dict,
    searched_sets,
    stack,
)
from prophet_model.study.size import MAX_BATCH, VARIANTS, reference_splits, tp_degrees
from prophet_model.study.strategies import splits


def batch_grid(
    study: Study, system: System, ep: int, tp: int = 1, options: dict | None = None, also: Sequence[dict] = ()
) -> tuple[int, ...]:
    """The per-GPU batches evaluated for a split with expert groups of `ep` GPUs: the configured one and,
    with batch_search, 1, 2, 4, ... up to the largest that fits GPU memory (physics.memory.max_batch),
    that largest, and the largest at which every expert of the fullest GPU stays resident (the knee
    past which experts are fetched from host: max_batch_all_resident). `options`: the weight and KV precision
    (they set what fits; None: the baseline's first); `also`: dominated precisions never evaluated, whose largest
    batch and knee join the grid (so that the dominant one is evaluated at every batch they would have been)."""
    w = study.config.workload
    if not w.batch_search:
        return (w.batch_size_per_gpu,)
    args = (study, system.gpu_key, system.count, ep, system.interconnect, False, study.model_of(system), tp)
    one = stack([scenario_dict(*args, options=o) for o in (options, *also)]).arrays()
    tops = np.minimum(max_batch(one), MAX_BATCH).astype(int)
    knees = np.minimum(max_batch_all_resident(one), tops).astype(int)
    top = int(tops[0])
    grid = {w.batch_size_per_gpu, *(1 << i for i in range(top.bit_length()) if 1 << i <= top)}
    return tuple(sorted(grid | {int(b) for b in (*tops, *knees) if b >= 1}))


TIE = 1e-12  # hit rates this close are equal: the first policy in the side's order is kept


def best_policy(rows: Sequence[dict[str, Any]]) -> Scenario:
    """The rows as one Scenario, each at the cache policy of the highest hit rate among its side's searched
    policies (a row's `policies`: their codes in the order ties go; one code or none: its own policy). The policy
    moves the hit rate alone and no step time rises with the hit rate (tests/test_options.py), so this is the
    fastest of those policies at every batch."""
    s = stack(rows)
    choices = [tuple(r.get("policies", ())) for r in rows]
    groups = {ch for ch in choices if len(ch) > 1}
    n = len(rows)
    if not groups or not np.any(skewed_routing(replace(s, cache_policy=np.ones(n)))):
        return s  # uniform routing without reuse: every policy hits C / n (physics/routing.py), the first is kept
    hit = {
        c: np.broadcast_to(resident_fraction(replace(s, cache_policy=np.full(n, c))), (n,))
        for c in sorted({c for ch in groups for c in ch})
    }
    code = np.array(s.cache_policy, dtype=float)
    for group in groups:
        idx = np.array([i for i, ch in enumerate(choices) if ch == group])
        h = np.stack([hit[c][idx] for c in group])
        code[idx] = np.asarray(group, dtype=float)[np.argmax(h >= h.max(axis=0) - TIE, axis=0)]
    return replace(s, cache_policy=code)


def _row_specs(study: Study, system: System) -> list[dict]:
    specs = []
    for strategy in study.config.strategies:
        sp = splits(system, strategy)
        if not sp.candidates:
            for variant in VARIANTS:
                specs.append({"strategy": strategy, "variant": variant, "ep": 0, "dp": 0, "note": sp.note})
        for ep, dp in sp.candidates:
            for variant in VARIANTS:
                specs.append({"strategy": strategy, "variant": variant, "ep": ep, "dp": dp, "note": sp.note})
    return specs


def _tp_note(study: Study, ep: int) -> str:
    """Why no attention TP degree fits a replica of `ep` GPUs: only the divisibility that actually fails."""
    t, heads = study.config.parallel.attention_tp, study.model.num_attention_heads
    if t == "auto":  # 1 divides everything: never without a degree, said for completeness
        return "no attention tensor-parallel degree of 1, 2, 4, 8 divides the replica's GPUs and the heads"
    fails = [
        what
        for what, n in ((f"the replica's {ep} GPU(s)", ep), (f"the model's {heads} attention heads", heads))
        if n % t
    ]
    said = f"divides neither {fails[0]} nor {fails[1]}" if len(fails) == 2 else f"does not divide {fails[0]}"
    return f"parallel.attention_tp {t} {said} evenly; allowed: a degree dividing both, or auto"


def evaluate_system(study: Study, system: System, full: bool = False) -> SystemRows:
    """All rows of one system: every candidate split at every batch of the grid, and the reference
    configurations of the scaling ratio (fewer GPUs, same strategy), in one model call. `full`: every option set
    evaluated as one (scenarios.option_sets, no set left out as dominated, no policy or overlap chosen per
    configuration: the tests' reference for the search)."""
    specs = _row_specs(study, system)
    configured, model = study.config.workload.batch_size_per_gpu, study.model_of(system)
    live = [{**s, "n": system.count, "role": "system"} for s in specs if s["ep"] > 0]
    refs = {
        (s["strategy"], s["variant"], ep, dp)
        for s in live
        for ep, dp in reference_splits(s["strategy"], s["ep"], s["dp"])
        if ep * dp < system.count
    }
    live += [
        {"strategy": st, "variant": v, "ep": ep, "dp": dp, "note": "", "n": ep * dp, "role": "reference"}
        for st, v, ep, dp in sorted(refs)
    ]
    configs, cases, grids, bases = [], [], {}, []
    for s in live:
        degrees = tp_degrees(study, s["ep"])
        if not degrees and s["role"] == "system":
            specs.append(
                {
                    **{k: s[k] for k in ("strategy", "variant", "ep", "dp")},
                    "note": _tp_note(study, s["ep"]),
                    "no_tp": True,
                }
            )
        prophet = s["variant"] == "prophet"
        sets, dominated = searched_sets(study, prophet, model), memory_sets(study, prophet, model)
        policies = tuple(float(POLICIES.index(p)) for p in option_values(study, prophet, model)["cache_policy"])
        if full:
            sets, dominated, policies = option_sets(study, prophet, model), [], ()
        for tp in degrees:
            for opts in sets:  # each side's searched precision and overlap (the cache policy: best_policy)
                base = scenario_dict(
                    study, system.gpu_key, s["n"], s["ep"], system.interconnect, prophet, model, tp, options=opts
                ) | {"policies": policies}
                g = (s["ep"], tp, opts["weight_precision"], opts["kv_precision"])  # what sets the memory
                if g not in grids:  # one grid per expert group, degree and precision (not one per row spec)
                    grids[g] = batch_grid(study, system, s["ep"], tp, opts, dominated)
                bases.append(({**s, "attention_tp": tp, **opts}, base))
                for b in grids[g]:
                    configs.append({**base, "batch_size_per_gpu": float(b)})
                    cases.append((len(bases) - 1, b))
    out = []
    if configs:
        scenario = best_policy(configs)
        res = evaluate(scenario)
        rows = list(zip(cases, _rows(system, bases, scenario, cases, res, configured), strict=True))
        if study.config.workload.batch_search:  # the exact integer operating point of every configuration
            added = exact_cases(
                [b for _, b in bases], cases, res, study.config.workload.max_step_ms, lambda r: evaluate(best_policy(r))
            )
            if added:  # only the added batches are evaluated again; each configuration's rows in batch order
                more = best_policy([{**bases[k][1], "batch_size_per_gpu": float(b)} for k, b in added])
                rows = sorted(
                    rows + list(zip(added, _rows(system, bases, more, added, evaluate(more), configured), strict=True)),
                    key=lambda kr: kr[0],
                )
        out = [r for _, r in rows]
    out += [
        {
            **{k: v for k, v in s.items() if k != "no_tp"},
            "n": system.count,
            "role": "system",
            "batch_size_per_gpu": configured,
            "configured_batch": True,
            "feasible": False,
        }
        for s in specs
        if s["ep"] == 0 or s.get("no_tp")
    ]
    identity = {
        "system_id": system.id,
        "system": system.name,
        "gpu": system.gpu.name,
        "interconnect": system.interconnect.name,
        "n_gpus": system.count,
        "placement": study.config.experts.placement,
    }
    return SystemRows(identity, out)


def _rows(system: System, bases: list, scenario, cases: list, res, configured: int) -> list[Record]:
    """One record per evaluated case (configuration, batch): the step breakdown of `res`."""
    memory = memory_terms(scenario)
    one = replace(scenario, batch_size_per_gpu=np.ones(len(cases)))  # the same configurations at batch 1
    holds = (memory_resident_fraction(one) >= 1) | (peer_share(one) >= 1)  # no host fetch: own GPU or a peer
    out = []
    for i, (c, b) in enumerate(cases):
        s = bases[c][0]
        tps = float(res.tokens_per_s[i])
        why = "" if res.feasible[i] else why_infeasible(**{k: float(v[i]) for k, v in memory.items()})
        out.append(
            {
                **s,
                "batch_size_per_gpu": b,
                "cache_policy": POLICIES[int(scenario.cache_policy[i])],  # best_policy's choice
                "overlap": "two_batch" if res.two_batch[i] else "none",  # the step's (overlap auto: the faster)
                "configured_batch": b == configured,
                "note": "; ".join(x for x in (why, s["note"]) if x),  # an infeasible row says why
                "compute_ms": 1e3 * res.compute_s[i],
                "fetch_ms": 1e3 * res.fetch_s[i],
                "fetch_exposed_ms": 1e3 * res.fetch_exposed_s[i],
                "offload_compute": "cpu" if res.cpu_experts_s[i] > 0 else "copy",  # physics/cpu.py
                "cpu_experts_ms": 1e3 * res.cpu_experts_s[i],
                "comm_exposed_ms": 1e3 * res.comm_exposed_s[i],
                "alltoall_exposed_ms": 1e3 * res.alltoall_s[i],
                "allreduce_ms": 1e3 * res.allreduce_s[i],
                "step_ms": 1e3 * res.step_s[i],
                "tokens_per_s": tps,
                "tokens_per_s_per_gpu": float(res.tokens_per_s_per_gpu[i]),
                "holds_all_experts": bool(holds[i]),
                "comm_overhead_pct": float(res.comm_overhead_pct[i]),  # the all-to-all only
                "allreduce_overhead_pct": float(res.allreduce_overhead_pct[i]),
                "fetch_overhead_pct": float(res.fetch_overhead_pct[i]),
                "resident_expert_fraction": float(res.resident_fraction[i]),
                "alltoall_mb": float(res.alltoall_bytes[i]) / 1e6,
                "roofline_tokens_per_s": float(res.roofline_tokens_per_s[i]),
                "roofline_fraction_pct": 100 * float(res.roofline_fraction[i]),
                "usd_per_1m_tokens": float(usd_per_million_tokens(s["n"], system.gpu.price_usd_per_gpu_hour, tps)),
                "feasible": bool(res.feasible[i]),
            }
        )
    return out
