"""Model states and first-stage activations against Megatron-LM's and DeepSpeed's own estimators.

Fixtures: ``megatron_theoretical_memory.json`` (Megatron-LM ``theoretical_memory_usage.py`` run on
these layouts) and ``deepspeed_estimates.json`` (DeepSpeed's ``estimate_zero{2,3}_...``). Where the
conventions differ the test names the difference; README "Cross-checks" explains each.
"""

import pytest

from constraints import memory as M
from constraints.units import Framework, Precision, Recompute, ZeroStage
from planner.evaluate import stage_activation_bytes, stage_memory
from planner.hardware import preset
from planner.specs import ParallelConfig, TrainingSpec

from conftest import example, fixture, reference_model

MEGATRON = fixture("megatron_theoretical_memory.json")["cases"]


def megatron_layout(case):
    training = TrainingSpec(
        seq_len=case["seq_len"],
        framework=Framework.MEGATRON,
        global_batch_size=case["dp"] * case["micro_batch"] * case["num_microbatches"],
    )
    config = ParallelConfig(
        tp=case["tp"],
        pp=case["pp"],
        dp=case["dp"],
        zero_stage=ZeroStage.OPTIMIZER if case["distributed_optimizer"] else ZeroStage.NONE,
        recompute=Recompute.SELECTIVE,
        micro_batch_size=case["micro_batch"],
        sequence_parallel=case["tp"] > 1,
    )
    return example(case["model"]), training, config


@pytest.mark.parametrize("case", MEGATRON, ids=lambda c: f"{c['model']}-tp{c['tp']}pp{c['pp']}dp{c['dp']}")
def test_model_states_equal_megatron(case):
    """18 B/param (6 + 12/dp with the distributed optimizer) on the first stage's shard. Megatron's
    count omits learned position embeddings (GPT-3 has 2048 x 12288, on the first stage; taken out
    here) and linear-layer biases (0.02% of GPT-3)."""
    model, training, config = megatron_layout(case)
    mem = stage_memory(model, preset("a100-80gb"), training, config, stage=0)
    positions = model.max_position_embeddings * model.hidden_size if model.positions.value == "learned" else 0
    per_param = mem.model_states / mem.detail["params_on_gpu"]
    ours = mem.model_states - positions * per_param
    assert ours == pytest.approx(case["weight_and_optimizer_bytes"], rel=5e-4)


@pytest.mark.parametrize(
    "case",
    [c for c in MEGATRON if c["model"] == "gpt3-175b"],
    ids=lambda c: f"tp{c['tp']}pp{c['pp']}dp{c['dp']}",
)
def test_gpt_first_stage_activations_equal_megatron(case):
    """SP + selective recompute, Korthikanti Table 2: equal within 2% for GPT (Megatron also divides
    the int64 token ids by tp and has no FlashAttention log-sum-exp)."""
    model, training, config = megatron_layout(case)
    ours = sum(stage_activation_bytes(model, training, config, stage=0).values())
    assert ours == pytest.approx(case["activation_bytes_sp_selective"], rel=0.02)


DEEPSPEED = fixture("deepspeed_estimates.json")["cases"]


@pytest.mark.parametrize("case", DEEPSPEED, ids=lambda c: f"{c['config']}-{c['gpus']}")
def test_zero2_states_equal_deepspeed_estimator(case):
    """DeepSpeed's estimate is ``2P + 18P/N``: ours (2 weight + 2/N grad + 12/N optimizer) plus the
    fp32 gradient partition (4P/N) it allocates for the optimizer step, after the activations of
    backward are freed, so it is not part of the backward peak we model."""
    p, n = case["total_params"], case["gpus"]
    prec, fw, zero = Precision.BF16, Framework.DEEPSPEED, ZeroStage.GRADIENTS
    ours = (
        M.weights_bytes(p, prec, zero, n)
        + M.gradients_bytes(p, prec, fw, zero, n)
        + M.optimizer_bytes(p, prec, zero, n)
    )
    conventions = 4 * p / n
    assert ours + conventions == pytest.approx(case["zero2_gpu_bytes"], rel=1e-6)


@pytest.mark.parametrize("case", DEEPSPEED, ids=lambda c: f"{c['config']}-{c['gpus']}")
def test_zero3_states_equal_deepspeed_estimator(case):
    """DeepSpeed's estimate is ``18P/N + 4L`` (L = largest module). Ours shards 16 B/param; it adds
    an fp32 gradient partition (2 B/param more) and one whole largest module of weights and grads."""
    p, n, largest = case["total_params"], case["gpus"], case["largest_layer_params"]
    prec, fw, zero = Precision.BF16, Framework.DEEPSPEED, ZeroStage.WEIGHTS
    sharded = (
        M.weights_bytes(p, prec, zero, n)
        + M.gradients_bytes(p, prec, fw, zero, n)
        + M.optimizer_bytes(p, prec, zero, n)
    )
    assert sharded + 2 * p / n + 4 * largest == pytest.approx(case["zero3_gpu_bytes"], rel=1e-6)


def test_framework_bytes_per_param():
    """The per-parameter conventions the module docstring cites."""
    assert (
        M.weight_bytes_per_param(Precision.BF16)
        + M.grad_bytes_per_param(Precision.BF16, Framework.MEGATRON)
        + M.optimizer_bytes_per_param(Precision.BF16)
        == 18
    )
    assert (
        M.weight_bytes_per_param(Precision.FP32)
        + M.grad_bytes_per_param(Precision.FP32, Framework.DEEPSPEED)
        + M.optimizer_bytes_per_param(Precision.FP32)
        == 16
    )


def test_bf16_main_gradients_are_the_zero_papers_two_bytes():
    """Megatron with ``--grad-reduce-in-bf16`` (NVIDIA's recipes' ``grad_reduce_in_fp32=False``)
    holds 16-bit gradients: the ZeRO paper's mixed-precision 2 + 2 + K, K = 12 (Fig. 1); fp32
    training is unchanged."""
    bf16 = M.grad_bytes_per_param(Precision.BF16, Framework.MEGATRON, reduce_in_bf16=True)
    assert M.weight_bytes_per_param(Precision.BF16) + bf16 + M.optimizer_bytes_per_param(Precision.BF16) == 16
    assert M.grad_bytes_per_param(Precision.FP32, Framework.MEGATRON, reduce_in_bf16=True) == 4


def test_unsharded_units_never_exceed_the_stage():
    assert M.unsharded_unit_bytes(10, 15, 4, 2, True) == pytest.approx(15 * 0.75 * 2)
    assert M.unsharded_unit_bytes(10, 100, 1, 2, True) == 0
    assert M.unsharded_unit_bytes(10, 100, 4, 2, False) == 0


GPU = fixture("gpu_memory.json")["measurements"]


@pytest.mark.parametrize("row", GPU[:6], ids=lambda r: f"{r['config']}-L{r['layers']}")
def test_parameter_count_matches_h100_allocation(row):
    """The H100 runs allocate exactly 2 B/param of bf16 weights for the parameters we count."""
    model = reference_model("configs/" + row["config"])
    from dataclasses import replace

    from planner.counts import count_params

    assert count_params(replace(model, num_layers=row["layers"])).total == row["params"]
    assert row["weights_bytes"] == pytest.approx(2 * row["params"], rel=1e-3)
