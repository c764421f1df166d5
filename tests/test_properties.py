"""Physical properties of the model, checked over random configurations (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prophet_model import physics as m
from prophet_model.physics.cost import usd_per_million_tokens

from .conftest import TOY

pos = st.floats(min_value=0.1, max_value=10.0)


@st.composite
def scenarios(draw) -> m.Scenario:
    """Random but physical configurations around a mid-size MoE on a mid-size GPU."""
    n = draw(st.sampled_from([1, 2, 4, 8, 10, 16]))
    ep = draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    sockets = draw(st.sampled_from([1, 2])) if n % 2 == 0 else 1
    experts = draw(st.integers(2, 256))
    return replace(
        TOY,
        n_gpus=n,
        ep=ep,
        peak_flops=draw(pos) * 1e14,
        hbm_bandwidth=draw(pos) * 1e12,
        memory_capacity=draw(st.floats(20, 200)) * 1e9,
        host_bandwidth=draw(pos) * 1e10,
        link_bandwidth=draw(pos) * 1e10,
        link_efficiency=draw(st.floats(0.5, 1.0)),
        kernel_startup=draw(st.floats(0, 5e-6)),
        link_latency=draw(st.floats(0, 1e-4)),
        sockets=sockets,
        cross_socket_bandwidth=draw(pos) * 1e9,
        num_layers=32,
        num_moe_layers=32,
        hidden_size=draw(st.sampled_from([1024, 4096, 7168])),
        expert_ffn_size=draw(st.integers(256, 16384)),
        num_experts=experts,
        top_k=draw(st.integers(1, min(8, experts))),
        attention_params_per_layer=draw(st.integers(1_000_000, 100_000_000)),
        kv_elements_per_token_per_layer=draw(st.integers(256, 8192)),
        vocab_size=32000,
        batch_size_per_gpu=draw(st.integers(1, 256)),
        context_length=draw(st.integers(1, 4096)),
        reserved_memory=1e9,
        stream_dense=draw(pos) * 1e12,
        stream_grouped=draw(pos) * 1e12,
        switch_uplink_bandwidth=draw(pos) * 1e10,
        gpus_per_switch=draw(st.sampled_from([1, 2, 4])),
        host_memory_bandwidth=draw(pos) * 1e11,
        cpu_sockets=sockets,
        fused=draw(st.sampled_from([0, 1])),
        kernels_per_layer=draw(st.integers(0, 20)),
        kernels_per_moe_layer=draw(st.integers(0, 8)),
        kernels_head=2,
        load_imbalance=1,
        prophet=draw(st.sampled_from([0, 1])),
        prediction_accuracy=draw(st.floats(0, 1)),
        comm_reduction_factor=draw(st.floats(1, 16)),
    )


def feasible(s: m.Scenario) -> bool:
    return bool(m.evaluate(s).feasible)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.floats(0, 1), st.floats(0, 1))
def test_more_accuracy_never_lowers_prophet_throughput(s, a1, a2) -> None:
    lo, hi = sorted((a1, a2))
    t_lo = m.evaluate(replace(s, prophet=1, prediction_accuracy=lo)).tokens_per_s
    t_hi = m.evaluate(replace(s, prophet=1, prediction_accuracy=hi)).tokens_per_s
    assert np.all(np.isnan(t_lo) | (t_hi >= t_lo * (1 - 1e-12)))


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.floats(1.0, 10.0))
def test_more_interconnect_bandwidth_never_raises_comm_overhead(s, factor) -> None:
    base = m.evaluate(s)
    faster = m.evaluate(
        replace(s, link_bandwidth=s.link_bandwidth * factor, cross_socket_bandwidth=s.cross_socket_bandwidth * factor)
    )
    assert faster.comm_overhead_pct <= base.comm_overhead_pct + 1e-9


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_data_parallel_has_no_alltoall(s) -> None:
    r = m.evaluate(replace(s, ep=1))
    assert r.alltoall_bytes == 0 and r.comm_exposed_s == 0


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_throughput_never_exceeds_the_roofline_bound(s) -> None:
    r = m.evaluate(s)
    if r.feasible:
        assert r.tokens_per_s <= r.roofline_tokens_per_s * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.floats(1.0, 1e5), st.floats(1.0, 1e5))
def test_cost_times_throughput_is_constant_for_a_system(s, t1, t2) -> None:
    """$/token * tokens/s = $/s of the hardware, whatever the throughput."""
    c1 = usd_per_million_tokens(s.n_gpus, 2.5, t1) * t1
    c2 = usd_per_million_tokens(s.n_gpus, 2.5, t2) * t2
    assert np.isclose(c1, c2, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_ep1_reduces_to_single_gpu(s) -> None:
    """With ep = 1 each GPU is a replica and the interconnect plays no part: per-GPU throughput equals
    one GPU's when the host side is not shared (a switch per GPU, ample host memory), and is never
    higher when replicas share switch uplinks and socket memory for their expert fetches."""
    alone = {"n_gpus": 1, "link_bandwidth": 1.0, "link_latency": 0.0, "sockets": 1}
    private = {"gpus_per_switch": 1, "host_memory_bandwidth": np.inf}
    many = m.evaluate(replace(s, ep=1, **private))
    one = m.evaluate(replace(s, ep=1, **alone, **private))
    assert np.allclose(many.tokens_per_s_per_gpu, one.tokens_per_s_per_gpu, equal_nan=True)
    assert np.allclose(many.tokens_per_s, s.n_gpus * one.tokens_per_s, equal_nan=True)
    shared = m.evaluate(replace(s, ep=1)).tokens_per_s_per_gpu
    lone = m.evaluate(replace(s, ep=1, **alone)).tokens_per_s_per_gpu
    assert np.all((shared <= lone * (1 + 1e-12)) | np.isnan(shared))


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_step_is_the_sum_of_its_terms_and_each_is_nonnegative(s) -> None:
    r = m.evaluate(s)
    for term in (r.compute_s, r.fetch_exposed_s, r.comm_exposed_s):
        assert term >= 0
    assert np.isclose(r.step_s, r.compute_s + r.fetch_exposed_s + r.comm_exposed_s)
    assert 0 <= r.resident_fraction <= 1


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_prophet_never_moves_more_alltoall_bytes(s) -> None:
    base = m.evaluate(replace(s, prophet=0))
    pro = m.evaluate(replace(s, prophet=1))
    assert pro.alltoall_bytes <= base.alltoall_bytes and pro.comm_exposed_s <= base.comm_exposed_s


def test_vectorized_equals_elementwise() -> None:
    """One call over arrays gives the same numbers as one call per configuration."""
    eps = np.array([1, 2, 4])
    batch = np.array([1, 16, 64])
    s = replace(TOY, n_gpus=4, ep=eps, batch_size_per_gpu=batch, memory_capacity=1e9)
    vec = m.evaluate(s).tokens_per_s
    one = [
        m.evaluate(replace(TOY, n_gpus=4, ep=e, batch_size_per_gpu=b, memory_capacity=1e9)).tokens_per_s.item()
        for e, b in zip(eps, batch, strict=True)
    ]
    assert np.allclose(vec, one)
