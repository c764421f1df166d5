"""Every intermediate number of one configuration, for the book's worked example: the headline system
and strategy, baseline and Prophet, each term of the step model in SI units (bytes, s, tokens/s)."""

from __future__ import annotations

import numpy as np

from prophet_model import physics as m
from prophet_model.study.config import Study, System
from prophet_model.study.scenarios import scenario_dict, stack


def worked_example(study: Study) -> tuple[System, int, list[dict[str, float]]]:
    """(system, ep, [baseline terms, Prophet terms]) of the headline system's headline strategy split."""
    cfg = study.config.study
    system = study.system(cfg.headline_system)
    ep = system.hybrid.ep if hasattr(system.hybrid, "ep") else system.count
    rows = []
    for prophet in (False, True):
        row = scenario_dict(
            study, system.gpu_key, system.count, ep, system.interconnect, prophet, study.model_of(system)
        )
        s = stack([row]).arrays()
        r = m.evaluate(s)
        v = lambda a: float(np.asarray(a).ravel()[0])  # noqa: E731
        rows.append(
            {
                "expert_bytes": v(m.expert_bytes(s)),
                "dense_params": v(m.dense_params(s)),
                "kv_cache_bytes": v(m.kv_cache_bytes(s)),
                "experts_on_fullest_gpu": v(m.experts_on_fullest_gpu(s)),
                "hit_rate": v(m.resident_fraction(s)),
                "tokens_per_group": v(m.tokens_per_group(s)),
                "distinct_experts_touched": v(m.distinct_experts_touched(s)),
                "assignments_on_fullest_gpu": v(m.assignments_on_fullest_gpu(s)),
                "dense_time_s": v(m.dense_time(s)),
                "expert_time_s": v(m.expert_time(s)),
                "startup_time_s": v(m.startup_time(s)),
                "fetch_bytes": v(m.fetch_bytes(s)),
                "peer_share": v(m.peer_share(s)),
                "fetch_s": v(r.fetch_s),
                "fetch_exposed_s": v(r.fetch_exposed_s),
                "alltoall_bytes": v(m.alltoall_bytes(s)),
                "alltoall_time_s": v(m.alltoall_time(s)),
                "comm_exposed_s": v(r.comm_exposed_s),
                "step_s": v(r.step_s),
                "tokens_per_s": v(r.tokens_per_s),
            }
        )
    return system, ep, rows
