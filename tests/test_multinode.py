"""Issue 36's systems (physics/comm.py, study/scenarios.py, study/rates.py): the all-to-all over several nodes
(dispatch forwarded over one NIC per GPU, then NVLink), a latency that grows with the peers and the tier they
sit on, an NVLink-C2C host link at its own published share, and a system serving its own model. The draft's
four systems keep every input the model reads."""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pytest import approx

from prophet_model import physics as m
from prophet_model.errors import UserError
from prophet_model.study.config import load_study
from prophet_model.study.rates import attainable
from prophet_model.study.runner import run_study
from prophet_model.study.scenarios import scenario_dict, stack

from .conftest import ROOT, dump_yaml, load_yaml, toy

DRAFT_SYSTEMS = ("2xA100", "4xH100", "8xA100", "10xA6000")
NEW_FIELDS = ("gpus_per_node", "nic_bandwidth", "nic_efficiency", "peer_latency", "nic_node_latency")

# two nodes of 8 GPUs (N = 2, G = 8), 16 experts (one per GPU), top-1, B = 4 tokens of h a = 1e6 x 2 bytes;
# NVLink 450 GB/s at 0.824, NIC 50 GB/s at 0.9; latencies 8.4 us + 3.4 us per peer step + 14 us per other node
TWO_NODES = {
    "n_gpus": 16,
    "ep": 16,
    "num_experts": 16,
    "top_k": 1,
    "batch_size_per_gpu": 4,
    "hidden_size": 1_000_000,
    "activation_bytes": 2,
    "link_bandwidth": 450e9,
    "link_efficiency": 0.824,
    "link_latency": 8.4e-6,
    "peer_latency": 3.4e-6,
    "gpus_per_node": 8,
    "nic_bandwidth": 50e9,
    "nic_efficiency": 0.9,
    "nic_node_latency": 14e-6,
    "comm_reduction_factor": np.nan,
}


def test_one_nic_one_layer_by_hand() -> None:
    """One all-to-all (one layer's dispatch) over 2 nodes, by hand. A token's one expert sits in the other node
    with p(E/N) = p(8) = 8/16 = 1/2, so the busiest rank's NIC sends B (N - 1) p h a = 4 x 1 x 1/2 x 2e6 =
    4e6 bytes, in 4e6 / (50e9 x 0.9) = 88.9 us. Its NVLink carries, for each of the N = 2 node-slices it serves
    (its own tokens and the ones it forwards), the tokens of the G - 1 = 7 other local GPUs, each p(1) = 1/16:
    N (G - 1) p(1) B h a = 2 x 7/16 x 4 x 2e6 = 7e6 bytes, 7e6 / (450e9 x 0.824) = 18.9 us: the NIC sets the
    pace. Latency: 8.4 + 3.4 x (ep - N = 14) + 14 x (N - 1 = 1) = 70.0 us. One all-to-all: 70.0 + 88.9 = 158.9 us."""
    s = toy(**TWO_NODES).arrays()
    assert m.group_nodes(s) == 2
    assert m.nic_bytes(s) == approx(4 * 1 * 0.5 * 2e6)
    assert m.intra_node_bytes(s) == approx(2 * 7 / 16 * 4 * 2e6)
    assert m.alltoall_latency(s) == approx(8.4e-6 + 3.4e-6 * 14 + 14e-6)
    assert m.alltoall_time(s) == approx(70.0e-6 + 4e6 / (50e9 * 0.9))
    # the NIC's bytes are the busiest rank's tokens for the other node once per node, fewer than a copy per GPU
    per_gpu = 4 * 8 * (1 / 16) * 2e6  # direct: one copy to each of the 8 remote GPUs holding the expert
    assert m.nic_bytes(s) <= per_gpu + 1e-9


def test_the_nic_copy_per_node_deduplicates_top_k() -> None:
    """top-k > 1: a token crosses the NIC once per node that holds any of its experts, p(E/N) = 1 - C(E - E/N,
    k) / C(E, k); one copy per (token, expert) pair without de-duplication: k (N - 1) / N."""
    s = toy(**TWO_NODES | {"top_k": 4}).arrays()
    p_node = 1 - comb(8, 4) / comb(16, 4)
    assert m.nic_bytes(s) == approx(4 * p_node * 2e6)
    pairs = toy(**TWO_NODES | {"top_k": 4, "dedup_dispatch": 0}).arrays()
    assert m.nic_bytes(pairs) == approx(4 * 4 * 0.5 * 2e6)


def test_alltoall_grows_with_peers_and_tier() -> None:
    """At a fixed per-GPU batch the all-to-all takes longer with more peers: its latency rises by the per-peer
    step within a node and by the network's step per node crossed, and the time never falls as ep grows."""
    eps = np.array([2, 4, 8, 16, 32, 64])
    s = toy(**TWO_NODES | {"ep": eps, "n_gpus": eps, "num_experts": 256, "top_k": 8}).arrays()
    lat, t = m.alltoall_latency(s), m.alltoall_time(s)
    assert np.all(np.diff(lat) > 0) and np.all(np.diff(t) > 0)
    # crossing into a second node adds the network's step on top of the steps within the node
    assert lat[3] - lat[2] == approx(3.4e-6 * (16 - 2 - (8 - 1)) + 14e-6)
    one_node = toy(**TWO_NODES | {"ep": 8, "n_gpus": 8, "gpus_per_node": np.inf}).arrays()
    assert m.nic_bytes(one_node) == 0 and m.group_nodes(one_node) == 1


def test_one_node_is_the_single_node_model() -> None:
    """On one node (gpus_per_node inf, or an expert group within a node) the NVLink bytes are the single-node
    all-to-all's and the NIC carries nothing, whatever the NIC fields say."""
    for ep in (2, 4, 8):
        within = toy(**TWO_NODES | {"ep": ep, "n_gpus": 32, "num_experts": 64, "top_k": 4}).arrays()
        flat = toy(**TWO_NODES | {"ep": ep, "n_gpus": 32, "num_experts": 64, "top_k": 4, "gpus_per_node": np.inf})
        assert m.alltoall_time(within) == m.alltoall_time(flat.arrays())
        assert m.nic_bytes(within) == 0


def test_forwarding_over_one_node_is_exact() -> None:
    """The NVLink share N (G - 1) / (ep - 1) is 1 at N = 1: the single-node volume exactly."""
    s = toy(**TWO_NODES | {"gpus_per_node": 16}).arrays()
    assert m.intra_node_bytes(s) == m.alltoall_bytes(s)


@pytest.fixture(scope="module")
def study():
    return load_study(ROOT / "_config.yml")


def test_draft_systems_keep_every_model_input(study) -> None:
    """The draft's four systems: their Scenario rows hold no NIC and no per-peer latency, so every term the
    physics computes for them is as before issue 36's fields (the new fields at their defaults)."""
    defaults = {"gpus_per_node": np.inf, "nic_bandwidth": 0.0, "nic_efficiency": 1.0}
    defaults |= {"peer_latency": 0.0, "nic_node_latency": 0.0}
    for sid in DRAFT_SYSTEMS:
        sy = study.system(sid)
        assert study.model_of(sy) is study.model
        for ep in (1, sy.count):
            row = scenario_dict(study, sy.gpu_key, sy.count, ep, sy.interconnect, True, study.model_of(sy))
            assert {k: row[k] for k in NEW_FIELDS} == defaults
            assert row["cpu_sockets"] == sy.interconnect.cpu_sockets


def test_multinode_system_serves_deepseek_v3_over_nics(study) -> None:
    """32xH100: DeepSeek-V3 in FP8 with MLA, four nodes of 8 joined by one 400 Gb/s NIC per GPU; pooled experts
    across nodes come at the NIC's attainable rate, and the nodes' sockets add up."""
    sy = study.system("32xH100")
    model = study.model_of(sy)
    assert model.name == "DeepSeek-V3" and model.attention == "mla" and model.bytes_per_param == 1
    row = scenario_dict(study, sy.gpu_key, sy.count, 8, sy.interconnect, False, model)
    nic = row["nic_bandwidth"] * row["nic_efficiency"]
    assert row["nic_bandwidth"] == 50e9 and 0 < row["nic_efficiency"] <= 1
    assert row["peer_bandwidth"] == approx(nic) and row["cpu_sockets"] == 2 * 4
    s = stack([row | {"ep": 32.0}]).arrays()
    assert m.group_nodes(s) == 4 and m.nic_bytes(s) > 0
    # within one node (a group of 8) no byte crosses a NIC
    assert m.nic_bytes(stack([row]).arrays()) == 0


def test_the_interconnect_factor_scales_the_nics_too(study) -> None:
    """The sweeps' and Monte Carlo's interconnect factor scales every GPU-to-GPU rate, the NICs between nodes
    included: at 2x the 32xH100 all-to-all across four nodes takes less time, and a NIC-less box is unchanged."""
    from prophet_model.study.sensitivity import scenario

    sy = study.system("32xH100")
    row = scenario_dict(study, sy.gpu_key, sy.count, 32, sy.interconnect, False, study.model_of(sy))
    one, two = (scenario(row, {"interconnect_bandwidth_factor": np.array([f])}) for f in (1.0, 2.0))
    assert np.asarray(two.nic_bandwidth) == approx(2 * np.asarray(one.nic_bandwidth))
    assert m.alltoall_time(two.arrays()) < m.alltoall_time(one.arrays())


def test_c2c_host_link_takes_its_published_share(study) -> None:
    """GH200's NVLink-C2C host copies run at the catalog's measured share (a published microbenchmark), not
    the PCIe share the committed host copies give; a PCIe GPU keeps the measured one."""
    gh = attainable("gh200_144gb", study.gpus)
    h100 = attainable("h100_sxm5_80gb", study.gpus)
    assert gh.host_share == study.gpus["gh200_144gb"].host_link_attainable_share != h100.host_share
    assert 0 < gh.host_share <= 1 and "NVLink-C2C" in gh.source
    sy = study.system("2xGH200")
    row = scenario_dict(study, sy.gpu_key, sy.count, 2, sy.interconnect, False)
    assert row["host_bandwidth"] == approx(450e9 * gh.host_share)


def test_new_systems_have_rows_and_larger_than_memory_box(tmp_path) -> None:
    """Every system has its rows in the comparison; the workstation's GPUs hold less than its model's experts
    in BF16 (FP8, which the default searches, halves them: they fit), so its baseline fetches from host."""
    study = load_study(_write(tmp_path / "s", lambda raw: raw["workload"].update(weight_precision="bf16")))
    results, failures = run_study(study, ["2xGH200", "32xH100", "4xA6000"])
    assert not failures
    c = results.comparison
    assert set(c.system_id) == {"2xGH200", "32xH100", "4xA6000"}
    sy = study.system("4xA6000")
    model = study.model_of(sy)
    assert sy.count * sy.gpu.memory_capacity_gb * 1e9 < model.expert_bytes_all_layers * model.num_experts
    box = c[c.system_id == "4xA6000"]
    assert (box.baseline_fetch_overhead_pct > 0).all()


def _write(tmp: Path, edit) -> Path:
    import shutil

    tmp.mkdir()
    shutil.copy(ROOT / "_config.yml", tmp / "_config.yml")
    shutil.copytree(ROOT / "catalog", tmp / "catalog")
    raw = load_yaml(tmp / "_config.yml")
    edit(raw)
    dump_yaml(raw, tmp / "_config.yml")
    return tmp / "_config.yml"


def test_system_model_is_validated(tmp_path: Path) -> None:
    """A system's own model must be a catalog model and come with a reason."""

    def unknown(raw):
        raw["systems"][5]["model"] = "no_such_model"

    with pytest.raises(UserError, match=r"systems.32xH100.model: unknown MoE model 'no_such_model'; allowed:"):
        load_study(_write(tmp_path / "a", unknown))

    def no_note(raw):
        raw["systems"][5].pop("model_note")

    with pytest.raises(UserError, match="model_note"):
        load_study(_write(tmp_path / "b", no_note))


def test_whole_nodes_only(tmp_path: Path) -> None:
    """A multi-node system's count is a whole number of nodes (or fits one node)."""

    def partial(raw):
        raw["systems"][5] |= {"count": 12, "hybrid": "auto"}

    with pytest.raises(UserError, match="not a whole number of nodes of 8 GPUs"):
        load_study(_write(tmp_path / "c", partial))


def test_a_trace_routes_only_the_study_model(tmp_path: Path) -> None:
    """A routing trace records the study's model: the systems serving it are routed by it, 32xH100 (its own
    model) uniformly, and the warnings say so."""
    from prophet_model.study.checks import input_warnings

    from .conftest import zipf_trace

    def traced(raw):
        raw["routing"] |= {"distribution": "trace", "trace_file": str(zipf_trace(tmp_path / "trace.csv"))}

    study = load_study(_write(tmp_path / "t", traced))
    assert study.routing_trace > 0
    own, draft = study.system("32xH100"), study.system("8xA100")
    assert scenario_dict(study, own.gpu_key, 32, 32, own.interconnect, False, study.model_of(own))["routing_trace"] == 0
    assert scenario_dict(study, draft.gpu_key, 8, 8, draft.interconnect, False)["routing_trace"] == study.routing_trace
    assert any(w.startswith("32xH100: serves deepseek_v3") for w in input_warnings(study, pd.DataFrame()))
