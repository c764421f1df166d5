"""The regime map: where Prophet pays. Prophet's speedup over the baseline, each side at its best operating
point (strategy, split, TP degree, batch: every candidate of the study, study/mc_search.py's, evaluated at every
grid point) and at its chosen options (precision, cache policy, overlap: held as the study chose them, not searched
again at each point), over two planes of a reference system (the headline system unless regime_map.reference_system
names another):

(a) host-link bytes/s per GPU (the host path scaled as a whole: the GPU's link, its switch's uplink and the
    host memory behind it, so that the axis is what a GPU's copies get; line rates, GB/s per direction) x
    total expert bytes of the model over the box's total GPU memory (expert_size_factor);
(b) the baseline's all-to-all share of its step at its best point (interconnect_bandwidth_factor: a computed,
    monotone coordinate) x the routing's inter-layer affinity, from chance (each candidate's own) to 1; the
    affinity is a Prophet-only input (sensitivity.PROPHET_ONLY_INPUTS): the baseline does not see it.

The grid rows name the reference system (system_id); each studied system is marked where its own coordinates can be
computed (host link and expert ratio; all-to-all
share and its chance affinity); the map's other properties are the reference system's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from prophet_model import physics as m
from prophet_model.study import mc_search
from prophet_model.study.config import Study, System
from prophet_model.study.runner import StudyResults
from prophet_model.study.sensitivity import scenario, setups

GB = 1e9
HOST, EXPERT, LINK, AFFINITY = (
    "host_link_bandwidth_factor",
    "expert_size_factor",
    "interconnect_bandwidth_factor",
    "routing.inter_layer_affinity",
)
EXPERT_RATIO = (0.1, 10.0)  # panel (a)'s y: expert bytes / GPU memory, log axis
LINK_FACTOR = (1 / 1024, 4.0)  # panel (b)'s driver: interconnect bandwidth x catalog, log spaced
LEVELS = (1.1, 1.2, 1.5)
COLUMNS = [
    "panel",
    "kind",
    "system_id",
    "x",
    "y",
    "speedup",
    "baseline_tokens_per_s",
    "prophet_tokens_per_s",
    "baseline_strategy",
    "baseline_split",
    "baseline_attention_tp",
    "baseline_batch",
    "prophet_strategy",
    "prophet_split",
    "prophet_attention_tp",
    "prophet_batch",
    HOST,
    EXPERT,
    LINK,
    AFFINITY,
]


def reference_system(study: Study) -> str:
    """The system whose properties the map keeps."""
    cfg = study.config.regime_map
    return (cfg.reference_system if cfg and cfg.reference_system else None) or study.config.study.headline_system


def host_link_per_gpu(system: System) -> float:
    """Host-link line rate one GPU gets while every GPU copies (GB/s per direction): the least of its own link,
    its share of its PCIe switch's uplink and of its socket's memory bandwidth (physics/fetch.fetch_rate)."""
    n = system.interconnect
    if n is None:  # a GPU on its own host link
        return float(system.gpu.host_link_bandwidth_gbps)
    on_switch = min(n.gpus_per_pcie_switch, system.count)
    nodes = -(-system.count // n.gpus_per_node) if n.gpus_per_node else 1  # cpu_sockets is per node
    per_socket = max(1.0, system.count / (n.cpu_sockets * nodes))
    return min(
        system.gpu.host_link_bandwidth_gbps,
        n.pcie_switch_uplink_gbps / on_switch,
        n.host_memory_bandwidth_gbps_per_socket / per_socket,
    )


def expert_ratio(base: dict[str, float]) -> float:
    """Total expert bytes of the model over the box's total GPU memory."""
    s = m.scenario_from(base)
    total = float(m.expert_bytes(s)) * base["num_experts"] * base["num_moe_layers"]
    return total / (base["memory_capacity"] * base["n_gpus"])


def _host_path(base: dict[str, float], draws: dict[str, np.ndarray]) -> m.Scenario:
    """sensitivity.scenario, with the host-link factor on the host memory behind the link too."""
    s = scenario(base, draws)
    if HOST not in draws:
        return s
    return replace(s, host_memory_bandwidth=base["host_memory_bandwidth"] * np.asarray(draws[HOST], float))


def best(results: StudyResults, sid: str, variant: str, draws: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per draw, the variant's best qualifying candidate (every candidate evaluated at every draw, one model
    call): tokens/s (NaN: none), its split, batch and the share of its step its all-to-alls take."""
    side = mc_search.side(results, sid, variant)
    n = len(next(iter(draws.values())))
    cases = list(range(len(side.cases)))
    if not cases:  # no candidate of the study has numbers: none at any point
        nan = np.full(n, np.nan)
        return {
            "tokens_per_s": nan,
            "batch": nan,
            "split": np.full(n, ""),
            "strategy": np.full(n, ""),
            "attention_tp": nan,
            "alltoall_share": nan,
        }
    s = mc_search.stack_cases(side, cases, draws, n, _host_path)
    res = m.evaluate(s)
    shape = (len(cases), n)

    def grid(a: object) -> np.ndarray:
        return np.broadcast_to(np.asarray(a, dtype=float), (len(cases) * n,)).reshape(shape)

    tps = grid(res.tokens_per_s)
    ok = np.broadcast_to(res.feasible, (len(cases) * n,)).reshape(shape) & np.isfinite(tps)
    limit = results.study.config.workload.max_step_ms
    if limit is not None:
        ok &= 1e3 * grid(res.step_s) <= limit
    score = np.where(ok, tps, -np.inf)
    pick = np.argmax(score, axis=0)  # the first of equals: deterministic
    cols = np.arange(n)
    found = np.isfinite(score[pick, cols])

    def chosen(a: object) -> np.ndarray:
        return np.where(found, grid(a)[pick, cols], np.nan)

    ep, gpus = chosen(s.ep), chosen(s.n_gpus)
    split = np.array([f"{int(e)}x{int(g // e)}" if e == e else "" for e, g in zip(ep, gpus, strict=True)])
    strategy = np.where(ep == gpus, "EP", np.where(ep == 1, "DP", "Hybrid"))  # the study's strategies by split
    return {
        "tokens_per_s": chosen(res.tokens_per_s),
        "batch": chosen(s.batch_size_per_gpu),
        "split": split,
        "strategy": np.where(found, strategy, ""),
        "attention_tp": chosen(s.attention_tp),
        "alltoall_share": chosen(res.alltoall_s) / chosen(res.step_s),
    }


def _frame(
    panel: str, sid: str, x: np.ndarray, y: np.ndarray, draws: dict[str, np.ndarray], b: dict, p: dict
) -> pd.DataFrame:
    n = x.size
    inputs = {k: np.broadcast_to(np.asarray(draws.get(k, np.nan), float), (n,)) for k in (HOST, EXPERT, LINK, AFFINITY)}
    return pd.DataFrame(
        {
            "panel": panel,
            "kind": "grid",
            "system_id": sid,
            "x": x,
            "y": y,
            "speedup": p["tokens_per_s"] / b["tokens_per_s"],
            "baseline_tokens_per_s": b["tokens_per_s"],
            "prophet_tokens_per_s": p["tokens_per_s"],
            **{
                f"{side}_{k}": v[k]
                for side, v in (("baseline", b), ("prophet", p))
                for k in ("strategy", "split", "attention_tp", "batch")
            },
            **inputs,
        }
    )


def panel_a(results: StudyResults, sid: str, n: int) -> pd.DataFrame:
    """Host-link GB/s per GPU (log) x expert bytes / GPU memory (log), n x n."""
    study = results.study
    cfg = study.config.regime_map
    ref = study.system(sid)
    own = [host_link_per_gpu(s) for s in study.systems]
    lo = min(cfg.host_link_low_gbps_per_direction, *own)
    x1, y1 = np.geomspace(lo, cfg.host_link_high_gbps_per_direction, n), np.geomspace(*EXPERT_RATIO, n)
    X, Y = (a.ravel() for a in np.meshgrid(x1, y1))
    ratio = expert_ratio(setups(results)[sid].baseline)
    draws = {HOST: X / host_link_per_gpu(ref), EXPERT: Y / ratio}
    b, p = (best(results, sid, v, draws) for v in ("baseline", "prophet"))
    return _frame("a", sid, X, Y, draws, b, p)


def panel_b(results: StudyResults, sid: str, n: int) -> pd.DataFrame:
    """The baseline's all-to-all share (computed) x inter-layer affinity from chance (NaN: each candidate's own)
    to 1, n x n."""
    w = np.geomspace(*LINK_FACTOR, n)
    chance = float(m.chance_locality(scenario(setups(results)[sid].prophet, {})))
    a = np.concatenate([[np.nan], np.linspace(chance, 1.0, n)[1:]])
    W, A = (v.ravel() for v in np.meshgrid(w, a))
    draws = {LINK: W, AFFINITY: A}
    b, p = (best(results, sid, v, draws) for v in ("baseline", "prophet"))
    return _frame("b", sid, 100 * b["alltoall_share"], np.where(np.isnan(A), chance, A), draws, b, p)


def systems(results: StudyResults) -> pd.DataFrame:
    """Each studied system at its own coordinates: (a) its host link per GPU and expert ratio, (b) its
    baseline's all-to-all share at its headline point and its chance affinity; its headline speedup."""
    rows = []
    head = results.headline.dropna(subset=["speedup"]) if results.headline is not None else pd.DataFrame()
    for sid, setup in setups(results).items():
        r = head[head.system_id == sid].iloc[0]
        base = scenario(setup.baseline, {})
        res = m.evaluate(base)
        share = 100 * float(res.alltoall_s) / float(res.step_s)
        chance = float(m.chance_locality(scenario(setup.prophet, {})))
        common = {
            "kind": "system",
            "system_id": sid,
            "speedup": r.speedup,
            "baseline_tokens_per_s": r.baseline_tokens_per_s,
            "prophet_tokens_per_s": r.prophet_tokens_per_s,
        }
        rows.append({"panel": "a", "x": host_link_per_gpu(setup.system), "y": expert_ratio(setup.baseline), **common})
        rows.append({"panel": "b", "x": share, "y": chance, **common})
    return pd.DataFrame(rows, columns=COLUMNS)


def regime_map(results: StudyResults) -> pd.DataFrame:
    """Both panels' grids and the studied systems' marks, one tidy table (COLUMNS); empty without a
    regime_map section or a reference system with numbers."""
    study = results.study
    sid = reference_system(study)
    if study.config.regime_map is None or sid not in setups(results):
        return pd.DataFrame(columns=COLUMNS)
    n = study.config.regime_map.grid_points
    parts = [panel_a(results, sid, n), panel_b(results, sid, n), systems(results)]
    return pd.concat(parts, ignore_index=True)[COLUMNS]
