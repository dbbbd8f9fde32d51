"""MoE token dispatch: DeepEP's per-token destinations against a simulation of DeepEP's own routing
test (``tests/fixtures/deepep_dispatch_layout.json``), hierarchical against flat all-to-all at the
DeepSeek-V3 report's bandwidths (IB 50 GB/s, NVLink 160 GB/s per GPU, arXiv:2412.19437 Section 3.2.2)."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constraints.moe_comm import (
    expected_ranks_reached,
    expected_remote_nodes,
    expert_tp_gather_bytes,
    flat_dispatch_network_copies,
    grouped_hit_probability,
    hierarchical_dispatch_s,
)
from constraints.throughput import all_to_all_s

IB, NVLINK = 50e9, 160e9  # per-GPU bandwidths the DeepSeek-V3 report uses (H800: IB 50 GB/s, NVLink 160 GB/s)
LAYOUT = json.loads((Path(__file__).parents[1] / "fixtures" / "deepep_dispatch_layout.json").read_text())
MONTE_CARLO_TOLERANCE = 0.01  # 2^17 simulated tokens: the means are within a fraction of a percent


@pytest.mark.parametrize("case", LAYOUT["cases"], ids=lambda c: c["case"])
def test_ranks_and_nodes_a_token_reaches_match_deepeps_routing(case):
    k, experts, ranks, nodes = case["topk"], case["num_experts"], case["num_ranks"], case["num_nodes"]
    groups, picked = case["num_groups"], case["num_topk_groups"]
    assert expected_ranks_reached(k, experts, ranks, 1, groups, picked) == pytest.approx(
        case["mean_ranks_per_token"], rel=MONTE_CARLO_TOLERANCE
    )
    # remote nodes: every node reached but the token's own (reached with the same probability)
    own = grouped_hit_probability(k, experts, nodes, groups, picked) if nodes > 1 else 1.0
    reached = expected_remote_nodes(k, experts, nodes, groups, picked) + own
    assert reached == pytest.approx(case["mean_nodes_per_token"], rel=MONTE_CARLO_TOLERANCE)


@given(st.sampled_from([2, 4, 8, 16, 32, 64, 128]), st.sampled_from([(8, 4), (8, 2), (4, 1), (16, 8)]))
def test_group_limited_routing_reaches_no_more_nodes_than_its_groups_allow(parts, grouping):
    groups, picked = grouping
    limited = parts * grouped_hit_probability(8, 256, parts, groups, picked)
    # at most the parts the picked groups cover, and at most one per expert
    assert 0 < limited <= min(parts, 8, picked * max(1, parts // groups)) + 1e-9


def test_one_node_sends_nothing_over_the_network():
    assert expected_remote_nodes(8, 256, 1) == 0 and flat_dispatch_network_copies(8, 1) == 0


@given(st.sampled_from([1, 2, 4, 6, 8]), st.sampled_from([2, 4, 8, 16, 32, 64]))
def test_a_token_reaches_at_most_k_and_at_most_all_other_nodes(k, nodes):
    experts = 256
    reached = expected_remote_nodes(k, experts, nodes)
    assert 0 < reached <= min(k, nodes - 1) + 1e-9
    assert reached <= flat_dispatch_network_copies(k, nodes) + 1e-9  # never more than flat all-to-all
    assert expected_ranks_reached(k, experts, nodes) <= k + 1e-9  # de-duplicated per rank


def test_the_slower_stage_sets_the_time():
    token = 7168 * 2  # DeepSeek-V3 hidden size, bf16
    # two nodes: forwarding ~7 copies over NVLink outlasts one IB crossing
    two_nodes = hierarchical_dispatch_s(token, 8, 256, 16, 1, 8, NVLINK, IB)
    assert two_nodes > hierarchical_dispatch_s(token, 8, 256, 16, 1, 8, 1e15, IB)
    assert two_nodes == hierarchical_dispatch_s(token, 8, 256, 16, 1, 8, NVLINK, 1e15)
    # eight nodes: ~4.6 IB crossings per token set the time (DeepSeek-V3 capped them at 4 nodes)
    eight_nodes = hierarchical_dispatch_s(token, 8, 256, 64, 1, 8, NVLINK, IB)
    assert eight_nodes > hierarchical_dispatch_s(token, 8, 256, 64, 1, 8, NVLINK, 1e15)
    assert eight_nodes == hierarchical_dispatch_s(token, 8, 256, 64, 1, 8, 1e15, IB)


@pytest.mark.parametrize("nodes", [2, 4, 8, 32])
def test_hierarchical_dispatch_beats_flat_all_to_all_across_nodes(nodes):
    tokens = 4096 * 7168 * 2
    flat = all_to_all_s(tokens * 8, 8 * nodes, IB)  # k = 8 copies over the slower link
    assert hierarchical_dispatch_s(tokens, 8, 256, 8 * nodes, 1, 8, NVLINK, IB) < flat


def test_expert_tensor_parallel_shards_each_receive_the_token():
    one = expected_ranks_reached(8, 128, 8)
    assert expected_ranks_reached(8, 128, 8, etp=2) == pytest.approx(2 * one)
    assert expert_tp_gather_bytes(100.0, 8, 4) == 4 * expert_tp_gather_bytes(100.0, 8, 1)
