"""The validation benchmark's own logic, on the CPU (CI has no GPU and no torch)."""

from __future__ import annotations

import csv
import random

import pytest

from validation import measure


def test_percentile_and_summary() -> None:
    s = measure.summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s == {"reps": 5, "median_s": 3.0, "p10_s": 1.4, "p90_s": 4.6, "min_s": 1.0, "max_s": 5.0}
    assert measure.percentile([1.0, 2.0], 50) == 1.5
    with pytest.raises(ValueError):
        measure.percentile([], 50)


def test_sizes_cover_the_issue_ranges() -> None:
    assert measure.COPY_SIZES[0] == 1 << 20 and measure.COPY_SIZES[-1] == 2 << 30
    assert measure.A2A_BYTES[0] == 4 << 10 and measure.A2A_BYTES[-1] == 256 << 20
    assert measure.FFN_TOKENS[0] == 1 and measure.FFN_TOKENS[-1] == 4096


@pytest.mark.parametrize("ep", [2, 4, 8])
@pytest.mark.parametrize("frac", [None, 0.75, 0.875])
def test_routing_counts_conserve_assignments_and_keep_the_local_share(ep: int, frac: float | None) -> None:
    rng = random.Random(0)
    n = 40_000
    for rank in range(ep):
        counts = measure.routing_counts(n, ep, rank, frac, [rng.random() for _ in range(n)])
        assert sum(counts) == n
        local = counts[rank] / n
        expected = 1 / ep if frac is None else frac
        assert local == pytest.approx(expected, abs=0.01)
        remote = [c / n for i, c in enumerate(counts) if i != rank]
        assert max(remote) - min(remote) < 0.02  # remote traffic spread evenly


def test_writer_produces_the_documented_columns(tmp_path) -> None:
    rows = [{"machine": "m", "benchmark": "alltoall", "part": "graph", "bytes": 4096, "median_s": 1e-5}]
    path = measure.write_rows(rows, tmp_path / "out")
    with path.open() as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == measure.FIELDS
    assert got[0]["bytes"] == "4096" and got[0]["model"] == ""


def test_arguments() -> None:
    a = measure.parse_args(["--machine", "x", "--out", "o", "--device", "cpu", "--world-size", "2", "--quick"])
    assert (a.device, a.world_size, a.quick, a.parts) == ("cpu", 2, True, ["single", "alltoall", "moe"])
    with pytest.raises(SystemExit):
        measure.parse_args(["--out", "o"])  # --machine is required
    with pytest.raises(SystemExit):
        measure.parse_args(["--machine", "x", "--out", "o", "--world-size", "-1"])


def test_committed_measurements_are_complete() -> None:
    """The data the validation page uses: both machines, every benchmark the issue asks for."""
    root = measure.ROOT / "validation" / "measurements"
    found = {}
    for machine in ("nvidia-h100-x1", "nvidia-h200-x2"):
        with (root / machine / "measurements.csv").open() as fh:
            found[machine] = {(r["benchmark"], r["part"]) for r in csv.DictReader(fh)}
        assert (root / machine / "env.json").is_file() and (root / machine / "topo.txt").is_file()
    assert {("copy_h2d", "copy"), ("copy_d2h", "copy"), ("expert_ffn", "ffn")} <= found["nvidia-h100-x1"]
    assert {("alltoall", "graph"), ("alltoall", "eager"), ("moe_layer", "layer"), ("moe_layer", "comm")} <= found[
        "nvidia-h200-x2"
    ]


def test_recorded_env_keeps_the_transfer_settings_only() -> None:
    env = {"NCCL_LEGACY_CUDA_REGISTER": "1", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
           "NCCL_NVLS_ENABLE": "0", "HOME": "/root", "CUDA_VISIBLE_DEVICES": "0,1"}  # fmt: skip
    assert measure.recorded_env(env) == {
        "NCCL_LEGACY_CUDA_REGISTER": "1",
        "NCCL_NVLS_ENABLE": "0",
        "NVSHMEM_DISABLE_NVLS": "",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "",
    }


# ----------------------------------------------------------------------------------------------
# The offload and decode-step parts: their torch-free planning, on the CPU


def test_routing_picks_distinct_experts_and_follows_the_skew() -> None:
    from validation import measure_offload as ob

    rng = random.Random(1)
    r = ob.route(2000, 16, 2, rng)
    assert all(len(set(t)) == 2 and all(0 <= e < 16 for e in t) for t in r)
    w = ob.zipf_weights(16, 1.0, random.Random(2))
    assert sum(w) == pytest.approx(1.0) and max(w) / min(w) == pytest.approx(16.0)
    skew = ob.route(4000, 16, 1, random.Random(3), w)
    top = max(range(16), key=lambda e: w[e])
    share = sum(t[0] == top for t in skew) / len(skew)
    assert share == pytest.approx(w[top], abs=0.03)


@pytest.mark.parametrize("accuracy", [0.0, 0.5, 0.8, 1.0])
def test_prediction_sets_have_the_needed_size_and_the_stated_accuracy(accuracy) -> None:
    from validation import measure_offload as ob

    rng = random.Random(4)
    hit = total = 0
    for _ in range(400):
        need = set(rng.sample(range(128), 20))
        p = ob.predict(need, 128, accuracy, rng)
        assert len(p) == len(need)
        hit += len(p & need)
        total += len(need)
    assert hit / total == pytest.approx(accuracy, abs=0.03)


def test_static_plan_fetches_only_what_is_missing() -> None:
    from validation import measure_offload as ob

    shape = {"experts": 16, "top_k": 2}
    base = ob.plan_static(8, 0.5, None, 3, seed=5, shape=shape, layers=2)
    perfect = ob.plan_static(8, 0.5, 1.0, 3, seed=5, shape=shape, layers=2)
    for sb, sp in zip(base, perfect, strict=True):
        for lb, lp in zip(sb, sp, strict=True):
            assert lb["routing"] == lp["routing"]  # the same routing for every policy
            need = ob.needed(lb["routing"])
            assert set(lb["on_demand"]) == {e for e in need if e >= 8}  # experts 0..7 are resident
            assert lp["on_demand"] == [] and set(lp["prefetch"]) == set(lb["on_demand"]) and lp["wrong"] == 0


def test_lru_cache_evicts_the_least_recently_used() -> None:
    from validation import measure_offload as ob

    c = ob.LRU(2, [0, 1])
    assert c.access({0}) == set()
    assert c.access({2}) == {2}  # evicts 1, the least recently used
    assert c.access({1}) == {1}  # evicts 0
    assert c.access({2, 1}) == set()
    _, hit = ob.plan_lru(1, 128, None, 5, seed=1, shape={"experts": 128, "top_k": 2}, layers=1)
    assert hit == 1.0  # a cache as large as the layer never misses


def test_decode_step_sizes() -> None:
    from validation import measure_decode as db

    mixtral = measure.load_models()["mixtral_8x7b"]
    assert db.weight_params(mixtral) == pytest.approx(46.7e9, rel=0.01)  # Mixtral-8x7B without its embedding
    assert db.kv_bytes(mixtral, 1, 2048) == 2 * 32 * 2048 * 8 * 128 * 2
    assert db.fits(mixtral, 64, 2048, 150e9) and not db.fits(measure.load_models()["seed_128x2gb"], 1, 2048, 150e9)
    assert not db.fits(measure.load_models()["deepseek_v3"], 1, 2048, 150e9)  # fp8 weights, and too large


# ----------------------------------------------------------------------------------------------
# The two-GPU parts of issue 27 (validation/multi_plan.py; the torch side runs in measure_multi.py)


@pytest.mark.parametrize("frac", [None, 0.75])
def test_ep_routing_picks_distinct_experts_and_keeps_the_local_share(frac) -> None:
    from validation import multi_plan as plan

    routes = [plan.route_ep(2000, 60, 4, 2, r, frac, random.Random(r)) for r in range(2)]
    assert all(len(set(tok)) == 4 and all(0 <= e < 60 for e in tok) for route in routes for tok in route)
    assert plan.local_share(routes, 60) == pytest.approx(0.5 if frac is None else frac, abs=0.02)


def test_ep_exchange_is_consistent_between_ranks() -> None:
    """Rank 0 owns experts 0-3, rank 1 experts 4-7 (E = 8, ep = 2): by hand for two tokens per rank."""
    from validation import multi_plan as plan

    routes = [[[0, 5], [6, 7]], [[1, 2], [4, 3]]]  # rank 0's and rank 1's tokens' top-2 experts
    p0, p1 = plan.ep_exchange(routes, 8, 2)
    assert p0["send"] == [0, 1, 2, 3] and p0["in_splits"] == [1, 3]  # expert 0 stays; 5, 6, 7 go to rank 1
    assert p1["send"] == [0, 1, 3, 2] and p1["in_splits"] == [3, 1]  # 1, 2, 3 go to rank 0; 4 stays
    assert p0["out_splits"] == [1, 3] and p1["out_splits"] == [3, 1]
    assert p0["recv_expert"] == [0, 1, 2, 3] and p1["recv_expert"] == [1, 2, 3, 0]  # local ids, arrival order
    assert p0["needed"] == [0, 1, 2, 3] and p1["needed"] == [0, 1, 2, 3]
    assert plan.local_share(routes, 8) == 0.25


def test_peer_share_of_a_pooled_fetch() -> None:
    from validation import multi_plan as plan

    assert plan.peer_fraction(300e9, 100e9) == 0.75  # P / (P + H): both sources finish together
    assert plan.peer_fraction(None, 50e9) == 0.0 and plan.peer_fraction(300e9, None) == 1.0
    assert plan.split_sources([3, 5, 7, 9], 0.75) == ([3, 5, 7], [9])
    assert plan.split_sources([], 0.5) == ([], [])


def test_ep_offload_plan_copies_only_what_is_missing() -> None:
    from validation import multi_plan as plan

    needed = [[0, 1, 5, 9], [2, 12]]  # two layers, 16 local experts, the first 8 resident
    base = plan.plan_ep_offload(needed, 16, 0.5, None, 3, seed=0)
    assert [lay["on_demand"] for lay in base[0]] == [[9], [12]] and all(not lay["prefetch"] for lay in base[0])
    full = plan.plan_ep_offload(needed, 16, 0.5, 1.0, 3, seed=0)
    assert [lay["prefetch"] for lay in full[1]] == [[9], [12]] and all(not lay["on_demand"] for lay in full[1])
    half = plan.plan_ep_offload(needed, 16, 0.5, 0.5, 400, seed=1)
    for lay, miss in zip(range(2), (9, 12), strict=True):
        got = [miss in st[lay]["prefetch"] for st in half]
        assert all(miss in st[lay]["on_demand"] for st, g in zip(half, got, strict=True) if not g)
        assert sum(got) / len(got) == pytest.approx(0.5, abs=0.08)  # accuracy 0.5: predicted half the time


def test_the_two_gpu_parts_are_planned_and_bounded() -> None:
    from validation import multi_plan as plan

    assert plan.SEED_EXPERT_BYTES == 62_914_560 and plan.SEED_EXPERT_BYTES in plan.PEER_COPY_BYTES
    assert min(plan.PEER_COPY_BYTES) == 1 << 20 and max(plan.PEER_COPY_BYTES) == 256 << 20
    assert min(plan.DP_ACCURACIES) >= 0.5 and max(plan.DP_ACCURACIES) == 1.0
    a = measure.parse_args(["--machine", "x", "--out", "o", "--parts", *measure.MULTI_PARTS])
    assert a.parts == measure.MULTI_PARTS
    for p in sorted((measure.ROOT / "validation").glob("*.py")):
        assert len(p.read_text(encoding="utf-8").splitlines()) <= 450, p.name


def test_the_predictions_plan_the_points_the_bench_measures() -> None:
    """prophet_model.measured.predict_multi keeps its own copy of the planned points (prophet_model imports
    nothing from validation/): the same as multi_plan's, and the same kernel counts as the bench's."""
    from prophet_model.measured import predict_multi as pm
    from validation import measure_tp
    from validation import multi_plan as plan

    for name in ("SEED_EXPERT_BYTES", "PEER_COPY_BYTES", "HOST_COPY_BYTES", "DP_LAYERS", "DP_BATCHES", "DP_RESIDENT",
                 "DP_ACCURACIES", "EP_MODELS", "EP_BATCHES", "EP_CONTEXT", "EP_OFFLOAD_MODEL", "EP_OFFLOAD_LAYERS",
                 "EP_OFFLOAD_BATCHES", "EP_OFFLOAD_RESIDENT", "EP_OFFLOAD_ACCURACIES", "TP_MODELS", "TP_BATCHES",
                 "TP_CONTEXT"):  # fmt: skip
        assert getattr(pm, name) == getattr(plan, name), name
    assert pm.TP_KERNELS_PER_LAYER == measure_tp.TP_KERNELS_PER_LAYER
    assert set(pm.SETS) == set(measure.MULTI_PARTS)


def test_the_bench_files_are_read_by_the_predictions(tmp_path) -> None:
    """Rows written with the bench's own columns (measure.write_rows, measure_multi's field lists) are
    predicted as the same points are before the run: the two sides agree on every column they share."""
    import pandas as pd

    from prophet_model.measured import predict_multi as pm
    from prophet_model.study.config import load_study
    from prophet_model.study.rates import MACHINES, MEASUREMENTS
    from validation import measure_multi

    study = load_study(measure.ROOT / "_config.yml")
    planned = pm.planned(study).set_index(["set", "point"]).predicted_ms
    fields = {"peer_copy": measure_multi.COPY_FIELDS, "host_concurrent": measure_multi.COPY_FIELDS,
              "dp_peer_fetch": measure_multi.dp_fields(), "ep2_step": measure_multi.EP_FIELDS,
              "tp2_attention": measure_multi.TP_FIELDS}  # fmt: skip
    root = tmp_path / "m"
    (root / pm.PLANNED_MACHINE).mkdir(parents=True)
    for name, rows in pm.planned_rows().items():
        rows = rows.assign(layers=rows.layers.fillna(32)) if "layers" in rows and "model" in rows else rows
        rows = rows.assign(machine="nvidia-h200-x2", benchmark=name, median_s=1e-3, step_s=1e-3)
        rows = rows.astype(object).where(rows.notna(), "")
        measure.write_rows(rows.to_dict("records"), root / pm.PLANNED_MACHINE, f"{name}.csv", fields[name])
    for folder in ("nvidia-h200-x2",):  # the ceilings and host copies the machine rests on
        (root / folder).mkdir()
        for f in ("ceilings.csv", "measurements.csv"):
            (root / folder / f).write_text((MEASUREMENTS / folder / f).read_text())
    got = pm.predictions(study, root, MACHINES)
    assert set(got.set) == set(pm.SETS) and got.measured_ms.eq(1.0).all()
    mixtral = got[~got.point.str.contains("qwen")].set_index(["set", "point"]).predicted_ms  # 32 layers, as planned
    assert mixtral.to_numpy() == pytest.approx(planned.loc[mixtral.index].to_numpy(), rel=1e-9)
    assert isinstance(got, pd.DataFrame)


def test_the_two_gpu_parts_run_end_to_end_on_the_cpu(tmp_path) -> None:
    """The whole program of the 2xH200 validation, two processes on the CPU (gloo), quick sizes: every part
    writes its CSV. Needs torch, which CI does not install (the measurements run on lent GPU machines); the
    torch-free planning above is what CI checks. Run here with: python validation/measure.py --machine cpu-test
    --device cpu --world-size 2 --quick --parts peer_copy host_concurrent dp_peer_fetch ep2_step tp2_attention."""
    import subprocess
    import sys

    pytest.importorskip("torch")
    parts = ["peer_copy", "host_concurrent", "dp_peer_fetch", "ep2_step", "tp2_attention"]
    cmd = [sys.executable, "validation/measure.py", "--machine", "cpu-test", "--device", "cpu", "--world-size", "2",
           "--quick", "--out", str(tmp_path), "--parts", *parts]  # fmt: skip
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for part in parts:
        assert len((tmp_path / f"{part}.csv").read_text().splitlines()) > 1, part
