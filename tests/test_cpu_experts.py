"""Experts computed on the host CPU (experts.offload_compute, physics/cpu.py) and the peer-copy rate's source."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prophet_model import physics as m

from .conftest import toy
from .test_properties import scenarios

COPY, CPU, AUTO = (float(m.OFFLOAD_COMPUTE.index(k)) for k in ("copy", "cpu", "auto"))


def one_token(**changes) -> m.Scenario:
    """The toy (2 MoE layers, 4 experts of 3 x 1000 x 1000 BF16 = 6e6 B, one GPU) decoding one token (top-1)
    with nothing resident, on a host whose one socket reads 1e11 B/s and computes 1e12 FLOP/s."""
    base = dict(batch_size_per_gpu=1, resident_override=0.0, host_memory_bandwidth=1e11, cpu_flops=1e12)
    return toy(**(base | changes))


def test_a_cpu_expert_for_one_token_by_hand() -> None:
    """One token, top-1: per layer D = 4 (1 - 3/4) = 1 expert touched, A = 1 assignment, both missing.
    CPU: max(6e6 B / 1e11 B/s = 60 us, 2 x 3e6 FLOP / 1e12 = 6 us) + the activation there and back,
    2 x 1000 x 2 B / 1e10 B/s = 0.4 us: 60.4 us a layer, 120.8 us a step. Copying instead: 2 x 6e6 B / 1e10
    B/s = 1.2 ms. So `auto` computes on the CPU, and the step swaps 1.2 ms of copies for 120.8 us."""
    s = one_token()
    assert m.cpu_layer_time(s) == pytest.approx(60.4e-6, rel=1e-12)
    copy = m.evaluate(s)
    assert copy.fetch_exposed_s == pytest.approx(1.2e-3, rel=1e-12)
    for mode in (CPU, AUTO):
        r = m.evaluate(replace(s, offload_compute=mode))
        assert r.cpu_experts_s == pytest.approx(120.8e-6, rel=1e-12)
        assert r.fetch_s == 0 and r.fetch_exposed_s == 0
        assert r.step_s == pytest.approx(copy.step_s - 1.2e-3 + 120.8e-6, rel=1e-12)


def test_the_cpu_shares_its_socket_between_the_gpus_on_it() -> None:
    """Four GPUs on one socket each get a quarter of its memory and FLOP/s: the CPU's memory time grows 4x."""
    one, four = one_token(), one_token(n_gpus=4, ep=4, cpu_sockets=1)
    link = 2 * 1000 * 2 / m.fetch_rate(four)  # the activations' round trip (the four GPUs share the host too)
    mem_one = m.cpu_layer_time(one) - 2 * 1000 * 2 / m.fetch_rate(one)
    assert m.cpu_layer_time(four) - link == pytest.approx(4 * mem_one * m.distinct_experts_touched(four), rel=1e-9)


def test_no_host_cpu_means_the_experts_are_copied() -> None:
    """A system that names no host CPU (cpu_flops 0, or a single GPU's unbounded host memory) copies under every
    offload_compute."""
    for s in (one_token(cpu_flops=0.0), one_token(host_memory_bandwidth=np.inf)):
        copy = m.evaluate(s)
        for mode in (CPU, AUTO):
            r = m.evaluate(replace(s, offload_compute=mode))
            assert r.step_s == copy.step_s and r.cpu_experts_s == 0


def with_cpu(draw_s: m.Scenario, mem: float, flops: float, sockets: int) -> m.Scenario:
    return replace(draw_s, host_memory_bandwidth=mem * 1e10, cpu_flops=flops * 1e12, cpu_sockets=sockets)


@settings(max_examples=150, deadline=None)
@given(
    s=scenarios(),
    mem=st.floats(0.1, 100.0),
    flops=st.floats(0.01, 200.0),
    sockets=st.sampled_from([1, 2]),
    prophet=st.sampled_from([0, 1]),
    pooled=st.sampled_from([0, 1]),
)
def test_auto_is_never_slower_than_copy_or_cpu(s, mem, flops, sockets, prophet, pooled) -> None:
    """`auto` includes `copy` (and `cpu`): adding the option never makes either side slower."""
    base = replace(with_cpu(s, mem, flops, sockets), prophet=prophet, pooled=pooled, peer_bandwidth=3e10)
    copy, cpu, auto = (m.evaluate(replace(base, offload_compute=k)).step_s for k in (COPY, CPU, AUTO))
    assert np.all(auto <= copy * (1 + 1e-12))
    assert np.all(auto <= cpu * (1 + 1e-12))


@settings(max_examples=100, deadline=None)
@given(
    s=scenarios(),
    mode=st.sampled_from([CPU, AUTO]),
    a=st.floats(0, 1),
    r=st.floats(1, 16),
    window=st.sampled_from([0.0, 1.0]),
)
def test_prophet_inputs_never_move_a_baseline_number_with_cpu_experts(s, mode, a, r, window) -> None:
    base = replace(with_cpu(s, 20.0, 5.0, 2), prophet=0, offload_compute=mode)
    other = replace(base, prediction_accuracy=a, comm_reduction_factor=r, prefetch_window=window)
    one, two = m.evaluate(base), m.evaluate(other)
    assert np.array_equal(one.step_s, two.step_s, equal_nan=True)
    assert np.array_equal(one.cpu_experts_s, two.cpu_experts_s, equal_nan=True)


def test_peer_copies_without_measurements_take_the_published_copy_engine_rate() -> None:
    """With no machine's peer copies measured, the peer share is the median of the catalog's published
    copy-engine rates over their line rates (never the SM write rate of ceilings.csv)."""
    from prophet_model.study.config import load_study
    from prophet_model.study.rates import _link_shares, peer_link_share

    nets = load_study().interconnects
    rates = tuple(sorted((k, n.bandwidth_gbps_per_direction * 1e9) for k, n in nets.items()))
    if _link_shares(rates):
        pytest.skip("peer copies measured: their rate is used")
    published = [
        n.peer_copy_gbps_per_direction / n.bandwidth_gbps_per_direction
        for n in nets.values()
        if n.peer_copy_gbps_per_direction
    ]
    share, source = peer_link_share(nets)
    assert published and share == pytest.approx(float(np.median(published)), rel=1e-12)
    assert "peer_copy_gbps_per_direction" in source and "ceilings" not in source
