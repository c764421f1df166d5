"""Model predictions of the validation measurements: hand-derived values and the summary."""

from __future__ import annotations

import pytest

from prophet_model import validation as v
from prophet_model.config import load_study

from .conftest import ROOT


@pytest.fixture(scope="module")
def study():
    return load_study(ROOT / "_config.yml")


def test_predictions_by_hand(study) -> None:
    h100, h200 = study.gpus["h100_sxm5_80gb"], study.gpus["h200_sxm_141gb"]
    pair = study.interconnects["nvlink4_pair_h200"]
    # 1 GiB over PCIe 5.0 x16 at 64 GB/s: 1,073,741,824 / 64e9 s
    assert v.predict_copy(h100, 2**30) == pytest.approx(2**30 / 64e9)
    # Mixtral expert, 1 token: weights 3*4096*14336*2 B at 3350 GB/s (memory-bound)
    assert v.predict_ffn(h100, 4096, 14336, 1) == pytest.approx(3 * 4096 * 14336 * 2 / 3350e9)
    # 4096 tokens: FLOP 2*4096*3*4096*14336 at 989 TFLOP/s (compute-bound)
    assert v.predict_ffn(h100, 4096, 14336, 4096) == pytest.approx(2 * 4096 * 3 * 4096 * 14336 / 989e12)
    # all-to-all of 256 MiB per rank on 2 GPUs: 10 us + half the buffer at 450 GB/s
    assert v.predict_alltoall(h200, pair, 256 * 2**20, 2) == pytest.approx(10e-6 + 128 * 2**20 / 450e9)


def test_moe_layer_locality_cuts_volume_not_latency(study) -> None:
    h200, pair, seed = (
        study.gpus["h200_sxm_141gb"],
        study.interconnects["nvlink4_pair_h200"],
        study.models["seed_128x2gb"],
    )
    _, uniform = v.predict_moe(h200, pair, seed, 4096, 2, None)
    _, local = v.predict_moe(h200, pair, seed, 4096, 2, 0.875)
    # 4096 tokens x top-2 x 4096 x 2 B = 64 MiB per rank; uniform sends half, 87.5% local sends 1/8
    per = 4096 * 2 * 4096 * 2
    assert uniform == pytest.approx(2 * (10e-6 + per / 2 / 450e9))
    assert local == pytest.approx(2 * (10e-6 + per / 8 / 450e9))


def test_summary_covers_the_required_primitives(study) -> None:
    df = v.with_predictions(v.load(), study)
    s = v.verdicts(v.summary(df))
    names = set(s.primitive)
    assert {
        "host→device copy",
        "device→host copy",
        "expert FFN (GPU time)",
        "all-to-all (CUDA graph), ≥ 16 MiB per rank",
        "MoE layer",
    } <= names
    off = s[s["median |error| %"] > 25]
    assert (off.why.str.len() > 0).all()  # every primitive off by more than 25% says why
    assert (s[s["median |error| %"] <= 25].verdict == "within ±25%").all()


def test_alltoall_regimes_from_the_measurements(study) -> None:
    df = v.with_predictions(v.load(), study)
    r = v.alltoall_regimes(df, 4096, 2)
    assert r["latency_bound_up_to_bytes"] < r["bandwidth_bound_from_bytes"]
    assert 0 < r["floor_us"] < 100 and 0 < r["largest_gbps"] < 450  # below the NVLink datasheet rate


def test_runs_per_world_size_are_loaded(tmp_path) -> None:
    """bench.py --subdir writes <machine>/ranksN/measurements.csv; the loader reads every one."""
    import shutil

    src = ROOT / "validation" / "measurements" / "nvidia-h200-x2" / "measurements.csv"
    for n in (2, 4):
        (tmp_path / "nvidia-h200-x8" / f"ranks{n}").mkdir(parents=True)
        shutil.copy(src, tmp_path / "nvidia-h200-x8" / f"ranks{n}" / "measurements.csv")
    machines = tmp_path / "machines.yml"
    machines.write_text("nvidia-h200-x8: {gpu: h200_sxm_141gb, interconnect: nvswitch_nvlink4}\n")
    df = v.load(tmp_path, machines)
    assert len(df) == 2 * len(v.pd.read_csv(src))
