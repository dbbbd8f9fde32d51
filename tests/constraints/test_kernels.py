"""Work counts of the microbenchmarks against PyTorch's FLOP counter and published nccl-tests output."""

import pytest

from constraints import kernels as K

from conftest import fixture

FLOPS = fixture("kernel_flops.json")
NCCL = fixture("nccl_tests_output.json")


@pytest.mark.parametrize("case", FLOPS["gemm"], ids=lambda c: f"{c['m']}x{c['n']}x{c['k']}")
def test_gemm_flops_match_torch_flop_counter(case):
    assert K.gemm_flops(case["m"], case["n"], case["k"]) == case["flops"]


@pytest.mark.parametrize("case", FLOPS["attention"], ids=lambda c: f"s{c['seq_len']}d{c['head_dim']}")
def test_attention_forward_flops_match_torch_flop_counter(case):
    shape = (case["batch"], case["heads"], case["seq_len"], case["seq_len"], case["head_dim"])
    assert K.attention_forward_flops(*shape, causal=False) == case["forward_flops"]
    # A causal mask computes half the scores (torch's counter ignores the mask).
    assert K.attention_forward_flops(*shape, causal=True) == case["forward_flops"] / 2


@pytest.mark.parametrize("case", FLOPS["attention"], ids=lambda c: f"s{c['seq_len']}d{c['head_dim']}")
def test_attention_backward_is_torchs_four_gradient_matmuls_plus_the_recomputed_scores(case):
    shape = (case["batch"], case["heads"], case["seq_len"], case["seq_len"], case["head_dim"])
    # FlashAttention recomputes Q·Kᵀ in backward: one of the forward's two matmuls on top of the
    # four gradient matmuls torch counts.
    recomputed_scores = case["forward_flops"] / 2
    assert K.attention_backward_flops(*shape, causal=False) == case["backward_flops"] + recomputed_scores


@pytest.mark.parametrize(
    "op, factor", [("all_reduce", K.all_reduce_bus_factor), ("send_recv", K.send_recv_bus_factor)]
)
def test_bus_bandwidth_matches_nccl_tests_output(op, factor):
    ranks = NCCL[op]["ranks"]
    for size_bytes, time_us, algbw, busbw in NCCL[op]["rows"]:
        measured_algbw = size_bytes / (time_us * 1e-6) / 1e9
        assert measured_algbw == pytest.approx(algbw, abs=0.01)
        assert measured_algbw * factor(ranks) == pytest.approx(busbw, abs=0.02)


def test_gather_factor_is_the_all_reduce_factor_halved():
    # nccl-tests doc/PERFORMANCE.md: an all-reduce is a reduce-scatter followed by an all-gather.
    for ranks in (2, 8, 72):
        assert 2 * K.gather_bus_factor(ranks) == pytest.approx(K.all_reduce_bus_factor(ranks))
