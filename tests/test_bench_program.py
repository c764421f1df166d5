"""The validation benchmark's own logic, on the CPU (CI has no GPU and no torch)."""

from __future__ import annotations

import csv
import random

import pytest

from validation import bench


def test_percentile_and_summary() -> None:
    s = bench.summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s == {"reps": 5, "median_s": 3.0, "p10_s": 1.4, "p90_s": 4.6, "min_s": 1.0, "max_s": 5.0}
    assert bench.percentile([1.0, 2.0], 50) == 1.5
    with pytest.raises(ValueError):
        bench.percentile([], 50)


def test_sizes_cover_the_issue_ranges() -> None:
    assert bench.COPY_SIZES[0] == 1 << 20 and bench.COPY_SIZES[-1] == 2 << 30
    assert bench.A2A_BYTES[0] == 4 << 10 and bench.A2A_BYTES[-1] == 256 << 20
    assert bench.FFN_TOKENS[0] == 1 and bench.FFN_TOKENS[-1] == 4096


@pytest.mark.parametrize("ep", [2, 4, 8])
@pytest.mark.parametrize("frac", [None, 0.75, 0.875])
def test_routing_counts_conserve_assignments_and_keep_the_local_share(ep: int, frac: float | None) -> None:
    rng = random.Random(0)
    n = 40_000
    for rank in range(ep):
        counts = bench.routing_counts(n, ep, rank, frac, [rng.random() for _ in range(n)])
        assert sum(counts) == n
        local = counts[rank] / n
        expected = 1 / ep if frac is None else frac
        assert local == pytest.approx(expected, abs=0.01)
        remote = [c / n for i, c in enumerate(counts) if i != rank]
        assert max(remote) - min(remote) < 0.02  # remote traffic spread evenly


def test_writer_produces_the_documented_columns(tmp_path) -> None:
    rows = [{"machine": "m", "benchmark": "alltoall", "part": "graph", "bytes": 4096, "median_s": 1e-5}]
    path = bench.write_rows(rows, tmp_path / "out")
    with path.open() as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == bench.FIELDS
    assert got[0]["bytes"] == "4096" and got[0]["model"] == ""


def test_arguments() -> None:
    a = bench.parse_args(["--machine", "x", "--out", "o", "--device", "cpu", "--world-size", "2", "--quick"])
    assert (a.device, a.world_size, a.quick, a.parts) == ("cpu", 2, True, ["single", "alltoall", "moe"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--out", "o"])  # --machine is required
    with pytest.raises(SystemExit):
        bench.parse_args(["--machine", "x", "--out", "o", "--world-size", "-1"])


def test_committed_measurements_are_complete() -> None:
    """The data the validation page uses: both machines, every benchmark the issue asks for."""
    root = bench.ROOT / "validation" / "measurements"
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
    assert bench.recorded_env(env) == {
        "NCCL_LEGACY_CUDA_REGISTER": "1",
        "NCCL_NVLS_ENABLE": "0",
        "NVSHMEM_DISABLE_NVLS": "",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "",
    }
