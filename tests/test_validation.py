"""Model predictions of the validation measurements: hand-derived values and the summary."""

from __future__ import annotations

import pytest

from prophet_model.measured import measurements, nccl_log, predict, predict_steps, summary
from prophet_model.study import rates as measured
from prophet_model.study.config import load_study

from .conftest import ROOT


@pytest.fixture(scope="module")
def study():
    return load_study(ROOT / "_config.yml")


def test_predictions_by_hand(study) -> None:
    h100, h200 = study.gpus["h100_sxm5_80gb"], study.gpus["h200_sxm_141gb"]
    pair = study.interconnects["nvlink4_pair_h200"]
    # 1 GiB over PCIe 5.0 x16 at 64 GB/s: 1,073,741,824 / 64e9 s
    assert predict.predict_copy(h100, 2**30) == pytest.approx(2**30 / 64e9)
    # Mixtral expert, 1 token, datasheet: weights 3*4096*14336*2 B plus activations (3h + 8f) * 2 B,
    # every kernel memory-bound at 3350 GB/s, no start-up
    act1 = (3 * 4096 + 8 * 14336) * 2
    assert predict.predict_ffn(h100, 4096, 14336, 1) == pytest.approx((3 * 4096 * 14336 * 2 + act1) / 3350e9)
    # 4096 tokens: the three GEMMs compute-bound (2*4096*3*4096*14336 FLOP at 989 TFLOP/s), SiLU and
    # product memory-bound (5 * 4096 * 14336 * 2 B at 3350 GB/s)
    assert predict.predict_ffn(h100, 4096, 14336, 4096) == pytest.approx(
        2 * 4096 * 3 * 4096 * 14336 / 989e12 + 5 * 4096 * 14336 * 2 / 3350e9
    )
    # the model: 5 start-ups of 2 us, the same bytes at an attainable 3e12 B/s
    ceil = measured.Ceilings(kernel_startup_s=2e-6, hbm_bandwidth=3e12, gemm_flops=8e14, kernel_chain_s=1e-6)
    assert predict.predict_ffn(h100, 4096, 14336, 1, ceil) == pytest.approx(
        10e-6 + (3 * 4096 * 14336 * 2 + act1) / 3e12
    )
    # all-to-all of 256 MiB per rank on 2 GPUs: 10 us + half the buffer at 450 GB/s (datasheet),
    # at 450 GB/s * 0.824 payload efficiency (the model)
    assert predict.predict_alltoall(h200, pair, 256 * 2**20, 2) == pytest.approx(10e-6 + 128 * 2**20 / 450e9)
    assert predict.predict_alltoall(h200, pair, 256 * 2**20, 2, ceil) == pytest.approx(
        10e-6 + 128 * 2**20 / (450e9 * 0.824)
    )
    # where the link's ceiling was measured (3.6e11 B/s per direction), the model uses it instead
    linked = measured.Ceilings(
        kernel_startup_s=2e-6, hbm_bandwidth=3e12, gemm_flops=8e14, kernel_chain_s=1e-6, link_bandwidth=3.6e11
    )
    assert predict.predict_alltoall(h200, pair, 256 * 2**20, 2, linked) == pytest.approx(10e-6 + 128 * 2**20 / 3.6e11)


def test_ceilings_recover_a_line(tmp_path) -> None:
    """Copies made exactly as t = 1.5 us + 2 * bytes / 3e12 give back that start-up and bandwidth;
    the 4 KiB and 1 GiB copies lie outside the fitted range and do not move it; GEMMs give the max."""
    rows = ["machine,benchmark,part,hidden,bytes,median_s"]
    for b in [4096] + [2**20 * 4**i for i in range(6)]:
        t = 1.5e-6 + 2 * b / 3e12 if 2**20 <= b <= 256 * 2**20 else 1.0
        rows.append(f"x,ceiling_copy,graph,,{b},{t!r}")
    rows += [f"x,ceiling_gemm,graph,{n},,{2 * n**3 / f!r}" for n, f in ((2048, 7e14), (4096, 8e14))]
    rows.append("x,ceiling_kernel,graph,,4,1e-06")
    rows += [f"x,ceiling_link,bidirectional,,{b},{3e-6 + b / 3.5e11!r}" for b in (2**20, 2**24, 2**28)]
    rows += [f"x,ceiling_link,unidirectional,,{b},{1.0!r}" for b in (2**20, 2**28)]  # not used
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "ceilings.csv").write_text("\n".join(rows) + "\n")
    c = measured.ceilings("x", tmp_path)
    assert c.kernel_startup_s == pytest.approx(1.5e-6, rel=1e-9)
    assert c.hbm_bandwidth == pytest.approx(3e12, rel=1e-9)
    assert c.gemm_flops == pytest.approx(8e14)
    assert c.kernel_chain_s == 1e-6
    assert c.link_bandwidth == pytest.approx(3.5e11, rel=1e-9)
    assert measured.ceilings("nvidia-h100-x1").link_bandwidth is None  # one GPU: no link measured


def test_startup_is_the_median_of_the_measured_ones(study) -> None:
    """A GPU kind's kernel start-up is the median over its committed ceilings folders."""
    import statistics

    from prophet_model.study.rates import _by_gpu, attainable

    folders = _by_gpu()["h200_sxm_141gb"]
    assert {"nvidia-h200", "nvidia-h200-repeat", "nvidia-h200-x2"} <= set(folders)
    h200 = statistics.median(measured.ceilings(f).kernel_startup_s for f in folders)
    assert attainable("h200_sxm_141gb", study.gpus).kernel_startup_s == pytest.approx(h200, rel=1e-12)
    assert (
        attainable("h100_sxm5_80gb", study.gpus).kernel_startup_s
        == measured.ceilings("nvidia-h100-x1").kernel_startup_s
    )


def test_decode_step_is_predicted_within_the_criterion(study) -> None:
    """The whole decode step on one H200, out of sample: median |error| <= 10% over batch >= 8 and every
    such point within 25%, from the catalog and the machines' ceilings only."""
    t = predict_steps.decode_table(study)
    big = t[t.batch >= 8]
    assert len(big) >= 6 and set(t.model) == {"mixtral_8x7b", "qwen1_5_moe_a2_7b"}
    assert big.error_pct.abs().median() <= 10 and big.error_pct.abs().max() <= 25
    assert (t.datasheet_error_pct.abs() > t.error_pct.abs()).all()  # the measured ceilings matter


def test_ceilings_come_from_other_kernels_than_the_validated_ones() -> None:
    """No validated primitive feeds the model variant: ceilings.csv holds only ceiling_* rows."""
    import pandas as pd

    for machine in ("nvidia-h100-x1", "nvidia-h200", "nvidia-h200-repeat", "nvidia-h200-x2"):
        c = pd.read_csv(measured.MEASUREMENTS / machine / "ceilings.csv")
        assert set(c.benchmark) <= {"ceiling_kernel", "ceiling_copy", "ceiling_gemm", "ceiling_link", "ceiling_stream"}
        assert {"ceiling_kernel", "ceiling_copy", "ceiling_gemm"} <= set(c.benchmark)
    assert measured.ceilings("nvidia-h200-x2").link_bandwidth is not None


def test_moe_layer_locality_cuts_volume_not_latency(study) -> None:
    h200, pair, seed = (
        study.gpus["h200_sxm_141gb"],
        study.interconnects["nvlink4_pair_h200"],
        study.models["seed_128x2gb"],
    )
    _, uniform = predict.predict_moe(h200, pair, seed, 4096, 2, None)
    _, local = predict.predict_moe(h200, pair, seed, 4096, 2, 0.875)
    # 4096 tokens x top-2 x 4096 x 2 B = 64 MiB per rank; uniform sends half, 87.5% local sends 1/8
    per = 4096 * 2 * 4096 * 2
    assert uniform == pytest.approx(2 * (10e-6 + per / 2 / 450e9))
    assert local == pytest.approx(2 * (10e-6 + per / 8 / 450e9))


def test_summary_covers_the_required_primitives(study) -> None:
    df = predict.with_predictions(measurements.load(), study)
    s = summary.verdicts(summary.summary(df))
    names = set(s.primitive)
    assert {
        "host→device copy",
        "device→host copy",
        "expert FFN (GPU time)",
        "all-to-all (CUDA graph), ≥ 16 MiB per rank",
        "MoE layer",
    } <= names
    limit = summary.VERDICT_LIMIT_PCT
    off = s[s["median |error| %"] > limit]
    assert (off.why.str.len() > 0).all()  # every primitive off by more than the limit says why
    assert (s[s["median |error| %"] <= limit].verdict == f"within ±{limit:g}%").all()
    assert not off.verdict.str.startswith("within").any()


def test_the_verdicts_limit_is_one_constant() -> None:
    """A median |error| at the limit is within it, one just above is off, for whatever limit is set."""
    import pandas as pd

    for limit in (summary.VERDICT_LIMIT_PCT, 10.0):
        t = pd.DataFrame({"primitive": ["MoE layer", "MoE layer"], "median |error| %": [limit, limit + 0.1]})
        v = summary.verdicts(t, limit)
        assert list(v.verdict.str.startswith("within")) == [True, False]
        assert v.why.iloc[0] == "" and v.why.iloc[1] == summary.REASONS["MoE layer"]


def test_alltoall_regimes_from_the_measurements(study) -> None:
    df = predict.with_predictions(measurements.load(), study)
    r = summary.alltoall_regimes(df, 4096, 2)
    assert r["latency_bound_up_to_bytes"] < r["bandwidth_bound_from_bytes"]
    assert 0 < r["floor_us"] < 100 and 0 < r["largest_gbps"] < 450  # below the NVLink datasheet rate


def test_runs_per_world_size_are_loaded(tmp_path) -> None:
    """measure.py --subdir writes <machine>/ranksN/measurements.csv; the loader reads every one."""
    import shutil

    import pandas as pd

    src = ROOT / "validation" / "measurements" / "nvidia-h200-x2" / "measurements.csv"
    for n in (2, 4):
        (tmp_path / "nvidia-h200-x8" / f"ranks{n}").mkdir(parents=True)
        shutil.copy(src, tmp_path / "nvidia-h200-x8" / f"ranks{n}" / "measurements.csv")
    machines = tmp_path / "machines.yml"
    machines.write_text("nvidia-h200-x8: {gpu: h200_sxm_141gb, interconnect: nvswitch_nvlink4}\n")
    df = measurements.load(tmp_path, machines)
    assert len(df) == 2 * len(pd.read_csv(src))


def test_nccl_settings_runs_sit_beside_the_committed_one() -> None:
    """The NCCL-settings runs are read in a fixed order after the committed run, 3 large sizes each,
    and are not validation data (the loader does not read them)."""
    t = nccl_log.nccl_settings()
    assert list(t.run) == ["committed run", *nccl_log.NCCL_SETTINGS.values()]
    assert list(t.columns) == ["run", "16 MiB (µs)", "64 MiB (µs)", "256 MiB (µs)"]
    df = measurements.load()
    graph = df[(df.machine == "nvidia-h200-x2") & (df.benchmark == "alltoall") & (df.part == "graph")]
    assert len(graph) == 9 and graph.bytes.is_unique  # one run, 4 KiB .. 256 MiB


def test_alltoall_split_table() -> None:
    """Three variants per buffer, 1 MiB .. 256 MiB, and every variant's time is positive."""
    t = nccl_log.alltoall_split()
    assert list(t.index) == ["1 MiB", "4 MiB", "16 MiB", "64 MiB", "256 MiB"]
    assert list(t.columns) == ["full (µs)", "crossing share only (µs)", "kept share only (µs)"]
    assert (t > 0).all().all()


def test_a_machine_without_ceilings_is_named(study, tmp_path) -> None:
    """A machine added to machines.yml without its ceilings folder gets an error naming it."""
    bad = tmp_path / "machines.yml"
    bad.write_text("nvidia-h100-x1:\n  gpu: h100_sxm5_80gb\n  interconnect: null\n")
    df = measurements.load()
    with pytest.raises(ValueError, match="nvidia-h100-x1 names no 'ceilings' folder"):
        predict.with_predictions(df[df.machine == "nvidia-h100-x1"], study, bad)


def test_nccl_configuration_from_the_committed_log() -> None:
    """The probe's NCCL INFO log: version, transport, channels and NCCL's own ring/Simple model."""
    c = nccl_log.nccl_configuration()
    assert c["version"] == "2.28.9+cuda13.0" and c["transport"] == "P2P/CUMEM"
    assert c["p2p_channels_per_peer"] == "32" and c["coll_channels"] == "24" and c["p2p_chunk_bytes"] == "524288"
    assert (c["ring_simple_latency_us"], c["ring_simple_busbw_gbps"]) == (11.8, 360.0)


@pytest.mark.parametrize(
    ("read", "line", "message"),
    [
        (nccl_log.nccl_configuration, "NCCL INFO NCCL version 2.28.9", r"no line matches .*\(transport\)"),
        (nccl_log.nccl_staging, "NCCL INFO Channel 00/1 : 0[0] -> 1[1] via P2P/CUMEM", r"no allocated lines"),
    ],
)
def test_nccl_log_readers_name_the_log_and_what_is_missing(tmp_path, read, line: str, message: str) -> None:
    log = tmp_path / "m" / nccl_log.PROBE / "nccl-info-rank0.log"
    log.parent.mkdir(parents=True)
    log.write_text(line + "\n")
    with pytest.raises(ValueError, match="nccl-info-rank0.log: " + message):
        read("m", tmp_path)


def test_nccl_staging_from_the_committed_log() -> None:
    """24 ring and 32 point-to-point connections, each with a 10 MiB and a 2 MiB staging buffer on
    this GPU and the same mapped from the other (counted in rank 0's log with grep)."""
    s = nccl_log.nccl_staging()
    assert s["connections"] == {0: 24, 1: 32}
    assert s["allocated"] == s["imported"] == {2 << 20: 56, 10 << 20: 56}


def test_link_blocks_table() -> None:
    """One row per block count, remote and local for each shape; a remote copy never beats the
    NVLink 4 line rate, and up to 8 blocks each block adds at least half of one block's rate."""
    t = nccl_log.link_blocks()
    assert list(t.index) == [1, 2, 4, 8, 16, 24, 32, 64, 132]
    remote = t[[c for c in t.columns if c.startswith("remote")]]
    assert remote.shape[1] == 3 and t.shape[1] == 6
    assert (remote <= 450).all().all()
    assert (remote.loc[8] >= 4 * remote.loc[1]).all()


def test_large_alltoall_error_at_the_measured_link_is_the_summary(study) -> None:
    """The what-if at the measured link ceiling reproduces the summary's median for large all-to-alls,
    and a faster assumed link only lowers the predictions (so raises this under-predicted error)."""
    df = predict.with_predictions(measurements.load(), study)
    link = measured.ceilings("nvidia-h200-x2").link_bandwidth
    row = summary.summary(df).set_index("primitive").loc["all-to-all (CUDA graph), ≥ 16 MiB per rank"]
    assert predict.large_alltoall_error(df, study, link) == pytest.approx(row["median |error| %"], abs=0.05)
    assert predict.large_alltoall_error(df, study, 2 * link) > predict.large_alltoall_error(df, study, link)


def test_link_write_rate_at_one_size() -> None:
    """The link microbenchmark's 64 MiB rate (bytes over time), and a clear error for a size it lacks."""
    rate = nccl_log.link_write_rate("nvidia-h200-x2", nccl_log.PROBE_BYTES)
    assert 300e9 < rate < 450e9
    with pytest.raises(ValueError, match="no bidirectional ceiling_link row of 12345 bytes"):
        nccl_log.link_write_rate("nvidia-h200-x2", 12345)


def _synthetic_two_gpu_machine(root, peer: float, host: float, startup: float) -> None:
    """A machine folder `m2` whose ceilings give start-up `startup`, HBM 4 TB/s, 800 TFLOP/s, weight
    streaming at 3 TB/s and a link ceiling `peer` (kernel writes into the peer), and whose pinned
    host->device copies of 256 MiB and 1 GiB run at `host`; machines.yml maps it to the catalog's H200 pair."""
    rows = ["machine,benchmark,part,hidden,experts,tokens_per_rank,bytes,median_s"]
    rows += [f"m2,ceiling_copy,graph,,,,{b},{startup + 2 * b / 4e12!r}" for b in (2**20, 2**24, 2**28)]
    rows += [f"m2,ceiling_gemm,graph,{n},,{n},,{2 * n**3 / 8e14!r}" for n in (4096, 8192)]
    rows.append("m2,ceiling_kernel,graph,,,,4,2e-06")
    rows += [f"m2,ceiling_link,bidirectional,,,,{b},{b / peer!r}" for b in (2**20, 2**24, 2**28)]
    rows += [f"m2,ceiling_stream,{p},4096,,{m},{2**25},{2**25 / 3e12!r}" for p in ("dense", "grouped") for m in (1, 8)]
    (root / "m2").mkdir()
    (root / "m2" / "ceilings.csv").write_text("\n".join(rows) + "\n")
    copies = ["machine,benchmark,part,bytes,median_s"] + [f"m2,copy_h2d,copy,{b},{b / host!r}" for b in (2**28, 2**30)]
    (root / "m2" / "measurements.csv").write_text("\n".join(copies) + "\n")
    (root / "machines.yml").write_text(
        "m2:\n  gpu: h200_sxm_141gb\n  interconnect: nvlink4_pair_h200\n  ceilings: m2\n"
    )


def test_two_gpu_sets_predicted_by_hand(study, tmp_path) -> None:
    """Issue 27's sets, predicted from the machine's ceilings and copies only. By hand: a peer copy of b
    bytes takes start-up + b / P (P the link ceiling); a host copy start-up + b / H with both GPUs fetching
    (the catalog's H200 pair shares no PCIe switch); a pooled fetch with each replica holding half the
    experts takes from both sources at once, balanced, 1 / (P + H) seconds per byte (physics.fetch)."""
    from prophet_model.measured import predict_multi

    peer, host, t0 = 400e9, 50e9, 5e-6
    _synthetic_two_gpu_machine(tmp_path, peer, host, t0)
    machines = tmp_path / "machines.yml"
    assert predict_multi.predictions(study, tmp_path, machines).empty  # no two-GPU set yet: an empty table
    assert predict_multi.summary(predict_multi.predictions(study, tmp_path, machines)).empty

    b = 62_914_560  # the seed's expert
    peer_measured = [t0 + b / peer, 1.2 * (t0 + 4 * b / peer)]  # the second point measured 20% slower
    (tmp_path / "m2" / "peer_copy.csv").write_text(
        "machine,benchmark,part,direction,bytes,median_s\n"
        f"m2,peer_copy,both,both,{b},{peer_measured[0]!r}\nm2,peer_copy,alone,1->0,{4 * b},{peer_measured[1]!r}\n"
    )
    (tmp_path / "m2" / "host_concurrent.csv").write_text(
        f"machine,benchmark,part,direction,bytes,median_s\nm2,host_concurrent,both,h2d,{b},{t0 + b / host!r}\n"
    )
    t = predict_multi.predictions(study, tmp_path, machines)
    assert list(t.columns) == predict_multi.COLUMNS and len(t) == 3
    assert list(t.predicted_ms * 1e-3) == pytest.approx([t0 + b / peer, t0 + 4 * b / peer, t0 + b / host], rel=1e-9)
    assert list(t.error_pct) == pytest.approx([0.0, 100 * (1 / 1.2 - 1), 0.0], abs=1e-6)
    s = predict_multi.summary(t).set_index("set")
    assert s.loc["peer_copy", "points"] == 2 and s.loc["peer_copy", "worst |error| %"] == pytest.approx(16.7, abs=0.05)
    assert s.loc["peer_copy", "worst at"] == "alone 1->0 240 MiB"

    inp = predict_multi.inputs(study, "m2", tmp_path, machines)
    assert (inp.peer, inp.host) == (pytest.approx(peer, rel=1e-9), pytest.approx(host, rel=1e-9))
    row = predict_multi.planned_rows()["dp_peer_fetch"].iloc[0]  # seed expert shape, resident 1/2
    assert predict_multi.pooled_seconds_per_byte(inp, row) == pytest.approx(1 / (peer + host), rel=1e-6)


def test_two_gpu_sets_are_predicted_at_the_planned_points(study) -> None:
    """Before the run: every planned point of issue 27 has a finite, positive prediction; pooled fetches
    are faster than host fetches, TP=2's all-reduces cost time; nothing is measured yet."""
    from prophet_model.measured import predict_multi

    t = predict_multi.planned(study)
    assert set(t.set) == set(predict_multi.SETS) and t.measured_ms.isna().all()
    assert (t.predicted_ms > 0).all() and t.predicted_ms.notna().all()
    dp = t[t.set == "dp_peer_fetch"]
    host = dp[dp.point.str.startswith("host")].predicted_ms.to_numpy()
    assert (dp[dp.point.str.startswith("pool")].predicted_ms.to_numpy() < host).all()
    assert (t[t.point.str.contains("allreduce")].predicted_ms > 0).all()
