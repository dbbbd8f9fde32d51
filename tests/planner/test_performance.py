"""Step time: NVLink against the network, profile tables, FP8 weights, expert GEMMs, ZeRO-3 traffic."""

from dataclasses import replace

import pytest

from constraints.kernels import gemm_flops
from planner.errors import PlannerError
from planner.evaluate import memory
from planner.hardware import hardware_from_mapping, hardware_to_mapping, preset
from planner.performance import data_parallel_comm_s, performance
from planner.rates import Rates
from planner.space import Pins, build_space
from planner.specs import Dispatcher, Framework, ParallelConfig, Precision, Recompute, TrainingSpec, ZeroStage
from planner.stepmodel import layer_operations

from conftest import example


@pytest.fixture
def training() -> TrainingSpec:
    return TrainingSpec(seq_len=4096, global_batch_size=256)


def test_tp_inside_the_nvlink_domain_uses_nvlink(llama13b, training):
    """tp=16 spans two 8-GPU nodes: over the network unless one NVLink domain holds both."""
    node = preset("h100-80gb")
    rack = replace(node, nvlink_domain_gpus=16)
    config = ParallelConfig(tp=16, pp=1, dp=4)
    over_network = performance(llama13b, node, training, config).breakdown["tp_comm"]
    over_nvlink = performance(llama13b, rack, training, config).breakdown["tp_comm"]
    c = node.step_constants
    ratio = (node.intra_node_bandwidth_bytes_per_s * c.comm_efficiency) / (
        node.inter_node_bandwidth_bytes_per_s * c.network_efficiency
    )
    assert over_network / over_nvlink == pytest.approx(ratio)


def test_space_bounds_tp_by_the_nvlink_domain(training):
    """GPT-3 175B (96 heads, FFN 49152) on 96 GPUs: tp divides the domain's GPUs, 8 or 48 (without
    sequence parallelism, which would need tp to divide the sequence: 48 does not)."""
    gpt3 = example("gpt3-175b")
    tps = {layout[0] for layout in build_space(gpt3, training, 96, Pins(), 8).layouts}
    wide = {
        layout[0] for layout in build_space(gpt3, training, 96, Pins(sequence_parallel=False), 48).layouts
    }
    assert max(tps) == 8 and max(wide) == 48 and 16 in wide and 32 not in wide


def _with_tables(hardware, **tables):
    """``hardware`` with profile tables, read as a hardware file would be."""
    data = {**hardware_to_mapping(hardware), **tables}
    data.pop("constants", None)
    return hardware_from_mapping(data, "table.yaml")


def test_a_measured_gemm_table_sets_the_gemm_rate(llama13b, training):
    """One bf16 row: every bf16 product runs at its TFLOP/s (the table is clamped at its ends)."""
    node = preset("h100-80gb")
    measured = _with_tables(node, gemm=[{"dtype": "bf16", "m": 8192, "n": 8192, "k": 8192, "tflops": 400.0}])
    rates = Rates(measured, measured.step_constants)
    assert rates.gemm_s(4096, 5120, 5120, False) == pytest.approx(gemm_flops(4096, 5120, 5120) / 400e12)
    config = ParallelConfig(tp=1, pp=1, dp=64)
    slow = performance(llama13b, measured, training, config).breakdown["compute"]
    assert slow > performance(llama13b, node, training, config).breakdown["compute"]


def test_measured_collectives_set_the_bus_bandwidth(llama13b, training):
    node = preset("h100-80gb")
    row = {"op": "all_reduce", "span": "nvlink", "ranks": 8, "bytes": 1 << 26, "bus_gbps": 45.0}
    measured = _with_tables(node, collectives=[row])
    config = ParallelConfig(tp=8, pp=1, dp=8, sequence_parallel=True)
    tp = performance(llama13b, measured, training, config).breakdown["tp_comm"]
    rated = performance(llama13b, node, training, config).breakdown["tp_comm"]
    expected = node.intra_node_bandwidth_bytes_per_s * node.step_constants.comm_efficiency / 45e9
    assert tp / rated == pytest.approx(expected)


def test_fp8_weight_gather_halves_the_fp8_weights(llama13b):
    training = TrainingSpec(seq_len=4096, global_batch_size=256, precision=Precision.FP8)
    gathered = replace(training, fp8_param_gather=True)
    config = ParallelConfig(tp=2, pp=1, dp=32, zero_stage=ZeroStage.OPTIMIZER)
    node = preset("h100-80gb")
    plain, fp8_only = memory(llama13b, node, training, config), memory(llama13b, node, gathered, config)
    assert fp8_only.weights == pytest.approx(plain.weights / 2)
    assert fp8_only.total < plain.total


def test_fp8_weight_gather_needs_fp8():
    with pytest.raises(PlannerError, match="fp8_param_gather needs --precision fp8"):
        TrainingSpec(seq_len=4096, global_batch_size=256, fp8_param_gather=True)


def test_few_tokens_per_expert_make_the_expert_gemms_memory_bound(training):
    """Qwen3-30B-A3B (128 experts, 8 per token): without EP each expert sees 256 tokens of a 4096-token
    micro-batch and its GEMMs are weight-bound; at ep = 8 it sees 2048 and they are compute-bound,
    where more EP changes nothing (the rank's FLOPs stay the same). The per-layer and per-expert
    overheads are set to 0 here: the roofline alone."""
    model = example("qwen3-30b-a3b")
    node = preset("h100-80gb")
    roofline = replace(node.step_constants, moe_layer_overhead_s=0.0, moe_expert_overhead_s=0.0)
    times = []
    for ep in (1, 8, 64):
        config = ParallelConfig(tp=1, pp=1, dp=64, ep=ep)
        times.append(layer_operations(model, node, training, config, roofline)["mlp"].forward_s)
    assert times[0] > times[1] == pytest.approx(times[2])


def test_more_local_experts_cost_their_fixed_overhead(training):
    """At equal FLOPs per rank (ep 8 and 64 of Qwen3-30B-A3B's 128 experts, both compute-bound above),
    the layer differs by the per-expert overhead of the 16 - 2 = 14 experts a rank no longer holds,
    a third of it forward."""
    model = example("qwen3-30b-a3b")
    node = preset("h100-80gb")
    c = replace(node.step_constants, moe_layer_overhead_s=0.0, moe_expert_overhead_s=3e-4)
    mlp = [
        layer_operations(model, node, training, ParallelConfig(tp=1, pp=1, dp=64, ep=ep), c)["mlp"]
        for ep in (8, 64)
    ]
    assert mlp[0].forward_s - mlp[1].forward_s == pytest.approx(14 * 3e-4 / 3)
    assert mlp[0].backward_s - mlp[1].backward_s == pytest.approx(14 * 2 * 3e-4 / 3)


def test_zero3_moves_three_times_the_parameters_against_the_all_reduce_two(llama13b, training):
    """ZeRO paper, Section 7.2.2: ZeRO-3's communication is 1.5x data parallelism's."""
    node = preset("h100-80gb")
    rates = Rates(node, node.step_constants)
    base = ParallelConfig(tp=1, pp=1, dp=64)
    deepspeed = replace(training, framework=Framework.DEEPSPEED)  # 16-bit gradients, as the paper
    plain = data_parallel_comm_s(llama13b, deepspeed, base, rates)
    zero3 = data_parallel_comm_s(llama13b, deepspeed, replace(base, zero_stage=ZeroStage.WEIGHTS), rates)
    assert zero3 / plain == pytest.approx(1.5)


def _qwen3_235b_on_h100(**layout):
    """Megatron-Core's Qwen3-235B H100 layout (tp 2, pp 8, ep 32 over 4 nodes, dp 16)."""
    model, hardware = example("qwen3-235b-a22b"), preset("h100-80gb")
    training = TrainingSpec(seq_len=4096, global_batch_size=2048)
    config = ParallelConfig(tp=2, pp=8, dp=16, ep=32, vpp=4, sequence_parallel=True, **layout)
    return model, hardware, training, config


def test_flex_dispatch_sends_less_than_all_to_all_across_nodes():
    model, hardware, training, alltoall = _qwen3_235b_on_h100()
    flex = replace(alltoall, dispatcher=Dispatcher.FLEX)
    across = performance(model, hardware, training, alltoall).breakdown["ep_comm"]
    deduplicated = performance(model, hardware, training, flex).breakdown["ep_comm"]
    assert 0 < deduplicated < across / 2  # ~3 remote nodes per token instead of 6 of its 8 copies


def test_expert_tp_shards_expert_weights_and_gathers_tokens():
    model, hardware, training, layout = _qwen3_235b_on_h100()
    whole = replace(layout, ep=16)
    split = replace(whole, etp=2)  # each expert over 2 ranks: half the expert weights per rank
    assert (whole.expert_shard_group, split.expert_shard_group) == (2, 1)
    assert memory(model, hardware, training, split).weights < memory(model, hardware, training, whole).weights
    with_gathers = performance(model, hardware, training, split).breakdown["ep_comm"]
    without = performance(model, hardware, training, whole).breakdown["ep_comm"]
    assert with_gathers > without  # the all-to-all over 16 ranks, and the gathers over each expert's 2


def test_overlap_switches_expose_what_they_turn_off(llama13b, training):
    config = ParallelConfig(tp=2, pp=1, dp=32, zero_stage=ZeroStage.OPTIMIZER, sequence_parallel=True)
    hardware = preset("h100-80gb")
    rates = Rates(hardware, hardware.step_constants)
    overlapped = performance(llama13b, hardware, training, config).breakdown
    exposed = replace(training, overlap_grad_reduce=False, overlap_param_gather=False)
    assert performance(llama13b, hardware, exposed, config).breakdown["dp_comm"] == pytest.approx(
        data_parallel_comm_s(llama13b, exposed, config, rates)
    )
    assert overlapped["dp_comm"] < data_parallel_comm_s(llama13b, training, config, rates)
    tp_overlap = replace(training, tp_comm_overlap=True)
    assert performance(llama13b, hardware, tp_overlap, config).breakdown["tp_comm"] < overlapped["tp_comm"]
    no_sp = replace(config, sequence_parallel=False)  # Megatron overlaps TP only with SP
    assert (
        performance(llama13b, hardware, tp_overlap, no_sp).breakdown["tp_comm"]
        == performance(llama13b, hardware, training, no_sp).breakdown["tp_comm"]
    )


def test_param_gather_overlap_needs_grad_reduce_overlap():
    with pytest.raises(PlannerError, match="--overlap-param-gather needs --overlap-grad-reduce"):
        TrainingSpec(seq_len=4096, global_batch_size=256, overlap_grad_reduce=False)


def test_moe_dispatch_overlap_hides_dispatch_only_where_megatron_runs_it():
    model, hardware, training, layout = _qwen3_235b_on_h100()  # ep 32, pp 8 with vpp 4
    overlapped = replace(training, overlap_moe_expert_parallel_comm=True)
    plain = performance(model, hardware, training, layout).breakdown["ep_comm"]
    hidden = performance(model, hardware, overlapped, layout).breakdown["ep_comm"]
    assert hidden == pytest.approx(plain * (1 - hardware.step_constants.ep_overlap))
    for no_overlap in (replace(layout, vpp=1), replace(layout, recompute=Recompute.FULL)):
        assert (
            performance(model, hardware, overlapped, no_overlap).breakdown["ep_comm"]
            == performance(model, hardware, training, no_overlap).breakdown["ep_comm"]
        )
