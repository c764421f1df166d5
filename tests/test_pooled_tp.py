"""Pooled experts and tensor-parallel attention: worked examples by hand on the toy model
(conftest.TOY: E = 4 experts, L = Lmoe = 2, expert 6,000,000 B, free memory 24,000,000 B on one GPU,
host link 1e10 B/s, link 1e11 B/s, all-to-all latency 10 us, B = 2, h = 1000, 2-byte activations),
and properties: `pool` never slower than `replicate`, more interconnect never slower, baselines
untouched by Prophet's inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prophet_model import physics as m

from .conftest import toy
from .test_properties import scenarios

US = 1e-6


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-12)


def test_pool_covers_every_expert_when_the_pair_has_room() -> None:
    """Two DP replicas (ep = 1, dp = 2), n = 4 experts per layer, C = 24e6 / (2 x 6e6) = 2 slots each:
    dp C = 4 >= n, so the pair holds every expert (core r = (4 - 4) / 1 = 0: two distinct halves) and a
    GPU's 2 missing experts are both on its peer: g = 1.
    Missing bytes per step (as test_worked_examples.test_one_gpu): 2 layers x 1.75 touched x 0.5 x 6e6
    = 10.5e6 B. Replicate: all from host, 10.5e6 / 1e10 = 1.05 ms. Pool with a 5e10 B/s peer: the two
    streams balance at x = 5e10 / (5e10 + 1e10) = 5/6 from the peer: 8.75e6 / 5e10 = 175 us =
    1.75e6 / 1e10."""
    rep = toy(n_gpus=2, ep=1, peer_bandwidth=5e10).arrays()
    pool = toy(n_gpus=2, ep=1, peer_bandwidth=5e10, pooled=1).arrays()
    assert m.peer_share(rep) == 0
    assert m.peer_share(pool) == 1
    assert m.fetch_bytes(pool) == approx(10.5e6)
    assert m.fetch_time(rep) == approx(1.05e-3)
    assert m.fetch_time(pool) == approx(175 * US)


def test_pool_short_of_room_fetches_the_rest_from_host() -> None:
    """12e6 B less memory: C = 12e6 / 12e6 = 1 slot of n = 4 (resident 0.25), dp C = 2 < 4: the pair holds
    2 distinct experts, so of a GPU's 3 missing ones its peer holds 1: g = (dp - 1) C / (n - C) = 1/3.
    Missing bytes = 2 x 1.75 x 0.75 x 6e6 = 15.75e6 B. NVLink (streams at once): x = min(1/3, 5/6) = 1/3,
    max(5.25e6 / 5e10, 10.5e6 / 1e10) = 1.05 ms. Over PCIe (the same links): 105 us + 1.05 ms = 1.155 ms.
    Replicate: 15.75e6 / 1e10 = 1.575 ms."""
    small = {"n_gpus": 2, "ep": 1, "peer_bandwidth": 5e10, "memory_capacity": 45_616_000 - 12e6}
    pool = toy(pooled=1, **small).arrays()
    assert m.resident_fraction(pool) == approx(0.25)
    assert m.peer_share(pool) == approx(1 / 3)
    assert m.fetch_bytes(pool) == approx(15.75e6)
    assert m.fetch_time(pool) == approx(1.05e-3)
    assert m.fetch_time(toy(pooled=1, peer_over_pcie=1, **small).arrays()) == approx(1.155e-3)
    assert m.fetch_time(toy(**small).arrays()) == approx(1.575e-3)


def test_a_slow_peer_is_not_used() -> None:
    """A peer slower than host over PCIe would add time: the fetcher keeps to host (x = 0), as replicate."""
    slow = {"n_gpus": 2, "ep": 1, "peer_bandwidth": 1e9, "peer_over_pcie": 1}
    assert m.fetch_time(toy(pooled=1, **slow).arrays()) == approx(1.05e-3)


def test_one_replica_has_no_peer_to_pool_with() -> None:
    """EP over both GPUs (dp = 1): each GPU's shard is its own; pool changes nothing."""
    a = toy(n_gpus=2, ep=2, peer_bandwidth=5e10, memory_capacity=30e6)
    assert m.peer_share(toy(pooled=1, **{k: getattr(a, k) for k in ("n_gpus", "ep", "peer_bandwidth",
                                                                      "memory_capacity")}).arrays()) == 0  # fmt: skip


def test_tensor_parallel_attention_by_hand() -> None:
    """tp = 2 over an EP pair (ep = 2): attention weights 2 x 4e6 / 2 per GPU, dense params 10,008,000 - 4e6 =
    6,008,000. KV heads split (kv_heads >= tp): 1,600,000 B as without TP; MLA's one latent: held whole on
    both GPUs for their 2 B sequences: 3,200,000 B.
    All-reduce per layer: volume tp B h a = 2 x 2 x 1000 x 2 = 8000 B; ring: 2 (tp - 1) / tp x 8000 = 8000 B
    over 1e11 B/s = 0.08 us, + 10 us latency = 10.08 us; 2 layers: 20.16 us beside the all-to-alls."""
    tp2 = toy(n_gpus=2, ep=2, attention_tp=2).arrays()
    assert m.dense_params(tp2) == 6_008_000
    assert m.kv_cache_bytes(tp2) == 1_600_000
    assert m.kv_cache_bytes(toy(n_gpus=2, ep=2, attention_tp=2, num_kv_heads=1).arrays()) == 3_200_000
    assert m.allreduce_time(tp2) == approx(10.08 * US)
    one = toy(n_gpus=2, ep=2).arrays()
    assert m.allreduce_time(one) == 0
    assert m.comm_time(tp2) - m.comm_time(one) == approx(2 * 10.08 * US)


def test_tensor_parallel_attention_keeps_the_work_and_frees_memory() -> None:
    """The attention's FLOP and KV reads per GPU are those without TP (tp B sequences, nq / tp heads); the
    projections stream attn / tp weights for tp B rows; memory for experts grows by (1 - 1/tp) L attn bytes."""
    small = {"n_gpus": 2, "ep": 2, "memory_capacity": 45_616_000 - 12e6}  # 12e6 B free of the 24e6 needed
    one, tp2 = toy(**small).arrays(), toy(attention_tp=2, **small).arrays()
    assert m.memory_resident_fraction(one) == approx(0.5)
    assert m.attention_time(tp2) == approx(float(m.attention_time(one)))
    assert m.dense_time(tp2) < m.dense_time(one)
    freed = 2 * 4e6 * 2 / 2
    need = 2 * 2 * 6e6  # ceil(4/2) experts x 2 layers x 6e6 B
    assert m.memory_resident_fraction(tp2) - m.memory_resident_fraction(one) == approx(freed / need)


@settings(max_examples=150, deadline=None)
@given(s=scenarios(), peer=st.floats(0.01, 100.0), pcie=st.sampled_from([0.0, 1.0]))
def test_pool_never_slower_than_replicate(s, peer, pcie) -> None:
    rep = m.evaluate(replace_fields(s, peer_bandwidth=peer * 1e10, peer_over_pcie=pcie))
    pool = m.evaluate(replace_fields(s, peer_bandwidth=peer * 1e10, peer_over_pcie=pcie, pooled=1))
    assert np.all(pool.fetch_s <= rep.fetch_s * (1 + 1e-12))
    assert np.all(pool.step_s <= rep.step_s * (1 + 1e-12))


@settings(max_examples=150, deadline=None)
@given(s=scenarios(), factor=st.floats(1.0, 8.0), pcie=st.sampled_from([0.0, 1.0]))
def test_more_interconnect_never_slower(s, factor, pcie) -> None:
    """Faster links (all-to-all, peer copies and the socket link together) never lengthen the step."""
    base = replace_fields(s, pooled=1, peer_bandwidth=2e10, peer_over_pcie=pcie)
    fast = replace_fields(base, link_bandwidth=s.link_bandwidth * factor, peer_bandwidth=2e10 * factor,
                          cross_socket_bandwidth=s.cross_socket_bandwidth * factor)  # fmt: skip
    assert np.all(m.evaluate(fast).step_s <= m.evaluate(base).step_s * (1 + 1e-12))


@settings(max_examples=100, deadline=None)
@given(s=scenarios(), tp=st.sampled_from([1, 2, 4]), a=st.floats(0, 1), r=st.floats(1, 16))
def test_baseline_ignores_prophet_inputs_with_pool_and_tp(s, tp, a, r) -> None:
    base = replace_fields(s, prophet=0, pooled=1, peer_bandwidth=3e10, attention_tp=tp)
    other = replace_fields(base, prediction_accuracy=a, comm_reduction_factor=r)
    assert np.array_equal(m.evaluate(base).step_s, m.evaluate(other).step_s, equal_nan=True)


def replace_fields(s: m.Scenario, **changes) -> m.Scenario:
    from dataclasses import replace

    return replace(s, **changes)


def test_peer_share_takes_copy_engine_peer_copies_never_the_sm_link_ceiling(tmp_path) -> None:
    """A machine with an interconnect of 400 GB/s line rate: its link ceiling (kernel writes, an SM rate, 1-256
    MiB at t = 1 us + bytes / 300e9) gives no peer-copy share; once its peer copies (copy engines, both GPUs at
    once, >= 16 MiB) are committed at 320 GB/s, they give 0.8. Smaller copies do not count."""
    from prophet_model.study.rates import _link_shares

    (tmp_path / "m").mkdir()
    (tmp_path / "machines.yml").write_text("m:\n  gpu: g\n  interconnect: link\n  ceilings: m\n")
    sizes = (1 << 20, 1 << 24, 1 << 28)
    rows = [("ceiling_copy", "graph", b, "", 1e-6 + 2 * b / 4e12) for b in sizes]
    rows += [("ceiling_gemm", "graph", "", 2048, 1e-3), ("ceiling_kernel", "graph", 4, "", 1e-6)]
    rows += [("ceiling_link", "bidirectional", b, "", 1e-6 + b / 300e9) for b in sizes]
    lines = ["machine,benchmark,part,bytes,hidden,median_s"] + [f"m,{a},{b},{c},{d},{e!r}" for a, b, c, d, e in rows]
    (tmp_path / "m" / "ceilings.csv").write_text("\n".join(lines) + "\n")
    nets = (("link", 400e9),)
    assert _link_shares(nets, tmp_path / "machines.yml", tmp_path) == ()  # the SM write rate is not a copy's
    copies = "machine,benchmark,part,direction,bytes,median_s\n" + "\n".join(
        [f"m,peer_copy,both,both,{b},{b / 320e9}" for b in (16 << 20, 64 << 20)] + ["m,peer_copy,both,both,1024,1"]
    )
    (tmp_path / "m" / "peer_copy.csv").write_text(copies + "\n")
    _link_shares.cache_clear()
    (share,) = _link_shares(nets, tmp_path / "machines.yml", tmp_path)
    assert share == ("m/peer_copy.csv", pytest.approx(0.8, rel=1e-12))
