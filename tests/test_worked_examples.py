"""Hand-derived worked examples for each time term.

Toy model (conftest.TOY): L = Lmoe = 2, h = f = 1000, E = 4, k = 1, attention 4e6 params/layer,
KV 2000 elements/token/layer, V = 1000, 2 bytes/param; B = 2, context 100, 2-byte activations.
Toy GPU: 1e12 FLOP/s, 1e11 B/s HBM, 1e10 B/s host link, 45,616,000 B memory.

Sizes (all cases):
  expert bytes        = 3 * 1000 * 1000 * 2                          = 6,000,000 B
  dense params        = 2*4e6 + 2*(1000*4) + 2*1000*1000               = 10,008,000
  KV cache            = 2 * 100 * 2 * 2000 * 2                          = 1,600,000 B
  free for experts    = 45,616,000 - 2*10,008,000 - 1,600,000           = 24,000,000 B
  dense time          : active = 10,008,000 - 1000*1000 = 9,008,000 params
                        FLOP  = 2*9,008,000*2 + 4*2*100*1000*2 = 37,632,000  -> 37.632 us
                        bytes = 9,008,000*2 + 1,600,000       = 19,616,000  -> 196.16 us  (memory-bound)
  expert activations  : each SwiGLU expert on tau tokens moves, besides its weights, (3h + 8f) * a * tau
                        = 22,000 * tau B (GEMMs 3 * (h + f), SiLU 2f, product 3f); summed over the
                        touched experts tau adds up to the assignments, so per step
                        Lmoe * assignments * 22,000 B.  With kernel_startup = 0 and every kernel of
                        these toys memory-bound, expert time = (weights + activations) / HBM.
"""

from __future__ import annotations

import pytest

from prophet_model import physics as m
from prophet_model.physics.cost import annual_savings_usd, usd_per_million_tokens

from .conftest import TOY, toy

US = 1e-6


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-12)


def test_sizes() -> None:
    s = TOY.arrays()
    assert m.expert_bytes(s) == 6_000_000
    assert m.dense_params(s) == 10_008_000
    assert m.kv_cache_bytes(s) == 1_600_000
    assert m.dense_time(s) == approx(196.16 * US)


def test_one_gpu() -> None:
    """One GPU holds all 4 experts x 2 layers = 48e6 B but has 24e6 B free: resident 0.5.
    T = 2 tokens; distinct experts = 4 * (1 - (3/4)^2) = 1.75; assignments = 2.
    experts: FLOP = 2 * 2*2 * 3e6 = 24e6 -> 24 us; weights = 2 * 1.75 * 6e6 = 21e6 -> 210 us;
    activations = 2 * 2 * 22,000 = 88,000 B -> 0.88 us; expert time 210.88 us.
    compute = 196.16 + 210.88 = 407.04 us.
    fetch = 2 * 1.75 * 0.5 * 6e6 = 10.5e6 B / 1e10 = 1.05 ms.
    baseline step = 0.40704 + 1.05 = 1.45704 ms -> 2 / 1.45704e-3 tok/s.
    Prophet (a = 0.8, eager, wrong 0.2): per layer X ~ Binomial(2, 0.4375) misses of 0.6 ms each against
    c = 0.20352 ms, E[min(X t_e, c)] = c (1 - 0.5625^2) = 0.139125 ms (tests/test_truth.py derives it);
    exposed = 2 (0.2 * 0.525 + 0.525 - 0.139125) = 0.98175 ms; step = 0.40704 + 0.98175 = 1.38879 ms."""
    s = TOY.arrays()
    assert m.resident_fraction(s) == approx(0.5)
    assert m.distinct_experts_touched(s) == approx(1.75)
    assert m.expert_time(s) == approx(210.88 * US)
    assert m.fetch_bytes(s) == approx(10.5e6)
    base = m.evaluate(TOY)
    assert base.compute_s == approx(407.04 * US)
    assert base.fetch_exposed_s == approx(1.05e-3)
    assert base.comm_exposed_s == 0
    assert base.step_s == approx(1.45704e-3)
    assert base.tokens_per_s == approx(2 / 1.45704e-3)
    pro = m.evaluate(toy(prophet=1))
    assert pro.fetch_exposed_s == approx(0.98175e-3)
    assert pro.step_s == approx(1.38879e-3)
    assert pro.tokens_per_s == approx(2 / 1.38879e-3)


def test_two_gpus_nvlink() -> None:
    """ep = 2: 2 experts per GPU x 2 layers = 24e6 B = free memory: resident 1, no fetch.
    T = 4; distinct = 2 * (1 - (3/4)^4) = 1.3671875; assignments = 4 * 2/4 = 2.
    experts: weights = 2 * 1.3671875 * 6e6 = 16,406,250 -> 164.0625 us (FLOP 24 us);
    activations 2 * 2 * 22,000 = 88,000 B -> 0.88 us.
    compute = 196.16 + 164.9425 = 361.1025 us.
    all-to-all: B*k*h*a = 4000 B; send = 4000 * (1 - 1/2) = 2000, receive = 4000 * 1/2 * 1 = 2000.
    one all-to-all = 10 us + 2000 / 1e11 = 10.02 us; per step 2 * 2 * 10.02 = 40.08 us.
    step = 401.1825 us; throughput = 2 GPUs * 2 / step. Prophet: 500 B -> 10.005 us -> 40.02 us."""
    base = m.evaluate(toy(n_gpus=2, ep=2))
    assert base.resident_fraction == approx(1.0)
    assert base.fetch_exposed_s == 0
    assert base.compute_s == approx(361.1025 * US)
    assert base.alltoall_bytes == approx(2000)
    assert base.comm_exposed_s == approx(40.08 * US)
    assert base.step_s == approx(401.1825 * US)
    assert base.tokens_per_s == approx(4 / (401.1825 * US))
    pro = m.evaluate(toy(n_gpus=2, ep=2, prophet=1))
    assert pro.alltoall_bytes == approx(500)
    assert pro.comm_exposed_s == approx(40.02 * US)


def test_pcie_two_sockets() -> None:
    """4 GPUs over 2 sockets (2 per socket), PCIe 1e9 B/s per GPU, socket link 5e8 B/s, 20 us.
    ep = 4: 1 expert per GPU; T = 8; distinct = 1 - (3/4)^8 = 0.8998870849609375.
    send = 4000 * 3/4 = 3000, receive = 4000 * 1/4 * 3 = 3000 -> 3 us on the GPU's link.
    The group straddles the sockets 2 | 2: crossing = 2 * 2 / 4 * 4000 = 4000 B -> 8 us (binding).
    one all-to-all = 20 + 8 = 28 us; per step 2 * 2 * 28 = 112 us.
    ep = 2: groups {0,1} and {2,3} each sit in one socket: no crossing; 20 + 2000/1e9 s = 22 us."""
    pcie = {"n_gpus": 4, "link_bandwidth": 1e9, "link_latency": 20e-6, "sockets": 2, "cross_socket_bandwidth": 5e8}
    s = toy(ep=4, **pcie).arrays()
    assert m.distinct_experts_touched(s) == approx(0.8998870849609375)
    assert m.alltoall_bytes(s) == approx(3000)
    assert m.cross_socket_bytes(s) == approx(4000)
    assert m.alltoall_time(s) == approx(28 * US)
    assert m.comm_time(s) == approx(112 * US)
    # assignments on the fullest GPU = 8 * 1 * 1/4 = 2: activations 2 * 2 * 22,000 B -> 0.88 us
    assert m.compute_time(s) == approx((196.16 + 2 * 0.8998870849609375 * 6e6 / 1e11 / US + 0.88) * US)
    s2 = toy(ep=2, **pcie).arrays()
    assert m.cross_socket_bytes(s2) == 0
    assert m.alltoall_time(s2) == approx(22 * US)


def test_uneven_expert_split_sets_the_pace() -> None:
    """128 experts over 5 GPUs, top-2: the fullest GPU holds ceil(128/5) = 26 (the others share 102, 25.5
    each); a token goes once to each GPU that holds one of its experts (h*a = 2000 B a copy).
    A GPU of n experts gets a token with p(n) = 1 - (128 - n)(127 - n) / (128 * 127):
    p(26) = 1 - 102*101/16256 = 5954/16256; p(25.5) = 1 - 102.5*101.5/16256 = 5852.25/16256.
    send: B * 4 p(25.5) * 2000 = 2 * 4 * 5852.25/16256 * 2000 = 5,760.2 B;
    receive: the (5 - 1) * 2 = 8 tokens of the others, each p(26): 8 * 5954/16256 * 2000 = 5,860.2 B (binding).
    One copy per (token, expert) pair it was B*k*h*a * 26/128 * 4 = 6,500 B."""
    s = toy(num_experts=128, ep=5, n_gpus=5, top_k=2).arrays()
    assert m.experts_on_fullest_gpu(s) == 26
    assert m.remote_destinations(s) == approx(4 * 5852.25 / 16256)
    assert m.alltoall_bytes(s) == approx(8 * 5954 / 16256 * 2000)
    assert m.alltoall_bytes(toy(num_experts=128, ep=5, n_gpus=5, top_k=2, dedup_dispatch=0).arrays()) == approx(6500)


def test_roofline_compute_bound_branch() -> None:
    """With HBM and weight streaming 1000x faster, the dense part is FLOP-bound: per layer the attention
    GEMM 2*2*4e6 = 16e6 FLOP, attention 4*2*100*1*1000 = 0.8e6, router 2*2*4000 = 16,000; the LM head
    2*2*1e6 = 4e6: 2 * 16.816e6 + 4e6 = 37,632,000 FLOP / 1e12 = 37.632 us."""
    assert m.dense_time(toy(hbm_bandwidth=1e14, stream_dense=1e14).arrays()) == approx(37.632 * US)


def test_cost_worked_example() -> None:
    """8 GPUs at $2/h serving 1000 tok/s: 16 $/h / 3.6e6 tok/h * 1e6 = 4.444... $/1M tokens.
    Savings: ($4 - $1) * 1e9 tokens/month * 12 / 1e6 = $36,000/yr."""
    assert usd_per_million_tokens(8, 2.0, 1000.0) == approx(16 / 3.6)
    assert annual_savings_usd(4.0, 1.0, 1e9) == approx(36_000)


def test_dense_weights_that_do_not_fit_are_infeasible() -> None:
    r = m.evaluate(toy(memory_capacity=1e6))
    assert not r.feasible.item()
    assert r.tokens_per_s != r.tokens_per_s  # NaN


def test_kernel_startup_and_payload_efficiency() -> None:
    """The two-GPU case with a 1 us kernel start-up and links that carry data at half the line rate.
    Start-ups: Lmoe * distinct * 5 kernels * 1 us = 2 * 1.3671875 * 5 = 13.671875 us, added to the
    expert time; the roofline bound leaves them out.
    One all-to-all = 10 us + 2000 B / (1e11 * 0.5) = 10.04 us; per step 4 * 10.04 = 40.16 us."""
    s = toy(n_gpus=2, ep=2, kernel_startup=1e-6, link_efficiency=0.5)
    r = m.evaluate(s)
    assert m.startup_time(s.arrays()) == approx(13.671875 * US)
    assert r.compute_s == approx((361.1025 + 13.671875) * US)
    assert r.comm_exposed_s == approx(40.16 * US)
    assert m.roofline_time(s.arrays()) == approx(361.1025 * US)


def test_one_expert_kernel_by_kernel() -> None:
    """One expert, h = f = 1000, on 1000 tokens at 1e12 FLOP/s and 1e11 B/s, 2 us start-up:
    gate/up/down GEMMs: 2e9 FLOP -> 2 ms; bytes 2e6 + (1e6 + 1e6) * 2 = 6e6 -> 60 us: compute-bound;
    SiLU: 2 * 1e6 * 2 = 4e6 B -> 40 us; product 6e6 B -> 60 us; 5 start-ups 10 us.
    total = 3 * 2000 + 40 + 60 + 10 = 6110 us."""
    s = toy(kernel_startup=2e-6).arrays()
    assert m.expert_ffn_time(1000.0, s) == approx(6110 * US)


def test_the_all_to_all_share_leaves_the_tp_all_reduce_apart() -> None:
    """The toy on 2 GPUs (EP 2) with attention split over both (TP 2). By hand: one all-reduce = latency 10 µs
    + 2 (2 - 1) / 2 x (2 x 2 sequences x 1000 x 2 bytes) / 1e11 B/s = 10.08 µs, two layers: 20.16 µs; the
    all-to-alls are the rest of the step's collectives, and the all-to-all share counts them alone."""
    r = m.evaluate(toy(n_gpus=2, ep=2, attention_tp=2))
    assert r.allreduce_s == approx(20.16 * US)
    assert r.alltoall_s + r.allreduce_s == approx(r.comm_exposed_s)
    assert r.comm_overhead_pct == approx(100 * r.alltoall_s / r.step_s)
    assert r.allreduce_overhead_pct == approx(100 * 20.16 * US / r.step_s)
    one = m.evaluate(toy(n_gpus=2, ep=2))
    assert one.allreduce_s == 0 and one.alltoall_s == one.comm_exposed_s
