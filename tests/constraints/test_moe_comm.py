"""MoE token dispatch: hierarchical (DeepEP) against flat all-to-all, at the DeepSeek-V3 report's
bandwidths (IB 50 GB/s, NVLink 160 GB/s per GPU, arXiv:2412.19437 Section 3.2.2)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constraints.moe_comm import expected_remote_nodes, flat_dispatch_network_copies, hierarchical_dispatch_s
from constraints.throughput import all_to_all_s

IB, NVLINK = 50e9, 160e9  # per-GPU bandwidths the DeepSeek-V3 report uses (H800: IB 50 GB/s, NVLink 160 GB/s)


def test_one_node_sends_nothing_over_the_network():
    assert expected_remote_nodes(8, 1) == 0 and flat_dispatch_network_copies(8, 1) == 0


@given(st.integers(1, 16), st.integers(2, 64))
def test_a_token_reaches_at_most_k_and_at_most_all_other_nodes(k, nodes):
    reached = expected_remote_nodes(k, nodes)
    assert 0 < reached <= min(k, nodes - 1) + 1e-9
    assert reached <= flat_dispatch_network_copies(k, nodes) + 1e-9  # never more than flat all-to-all


def test_the_slower_stage_sets_the_time():
    token = 7168 * 2  # DeepSeek-V3 hidden size, bf16
    # two nodes, 8 experts: the NVLink forwarding of 8 copies outlasts one IB crossing
    nvlink = token * 8 * 7 / 8 / NVLINK
    assert hierarchical_dispatch_s(token, 8, 2, 8, NVLINK, IB) == pytest.approx(
        max(nvlink, token * expected_remote_nodes(8, 2) / IB)
    )
    assert hierarchical_dispatch_s(token, 8, 2, 8, NVLINK, IB) > hierarchical_dispatch_s(
        token, 8, 2, 8, 1e15, IB
    )


@pytest.mark.parametrize("nodes", [2, 4, 8, 32])
def test_hierarchical_dispatch_beats_flat_all_to_all_across_nodes(nodes):
    tokens = 4096 * 7168 * 2
    flat = all_to_all_s(tokens * 8, 8 * nodes, IB)  # k = 8 copies over the slower link
    assert hierarchical_dispatch_s(tokens, 8, nodes, 8, NVLINK, IB) < flat
