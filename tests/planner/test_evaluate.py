"""Properties of the plain evaluator: memory moves the right way with every knob."""

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from planner.evaluate import memory
from planner.hardware import preset
from planner.rules import valid_pp, valid_tp
from planner.specs import ParallelConfig, Recompute, TrainingSpec, ZeroStage

from conftest import example
from strategies import models, recomputes, trainings

HW = preset("h100-80gb")
EPS = 1e-9  # relative slack for float rounding


@st.composite
def cases(draw):
    model = draw(models())
    training = draw(trainings())
    tp = draw(st.sampled_from(valid_tp(model)))
    pp = draw(st.sampled_from(valid_pp(model)))
    dp = draw(st.sampled_from([d for d in (1, 2, 4, 8) if training.global_batch_size % d == 0]))
    mbs = draw(st.sampled_from([u for u in (1, 2, 4) if training.global_batch_size % (dp * u) == 0]))
    config = ParallelConfig(
        tp=tp,
        pp=pp,
        dp=dp,
        zero_stage=draw(st.sampled_from(list(ZeroStage))),
        recompute=draw(recomputes),
        micro_batch_size=mbs,
        sequence_parallel=tp > 1,
    )
    return model, training, config


def total(model, training, config):
    return memory(model, HW, training, config).total


@settings(max_examples=150, deadline=None)
@given(cases())
def test_memory_never_rises_with_tp(case):
    model, training, config = case
    wider = config.tp * 2
    assume(wider in valid_tp(model))
    more = replace(config, tp=wider, sequence_parallel=True)
    assert total(model, training, more) <= total(model, training, config) * (1 + EPS)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_memory_never_rises_with_zero_stage(case):
    model, training, config = case
    assume(config.zero_stage < ZeroStage.WEIGHTS)
    more = replace(config, zero_stage=ZeroStage(config.zero_stage + 1))
    assert total(model, training, more) <= total(model, training, config) * (1 + EPS)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_memory_never_rises_with_recompute_level(case):
    model, training, config = case
    assume(config.recompute is not Recompute.FULL)
    more = replace(config, recompute=list(Recompute)[config.recompute.level + 1])
    assert total(model, training, more) <= total(model, training, config) * (1 + EPS)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_memory_never_falls_with_micro_batch(case):
    model, training, config = case
    bigger = config.micro_batch_size * 2
    assume(training.global_batch_size % (config.dp * bigger) == 0)
    more = replace(config, micro_batch_size=bigger)
    assert total(model, training, more) >= total(model, training, config) * (1 - EPS)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_memory_never_falls_with_sequence_length(case):
    model, training, config = case
    longer = replace(training, seq_len=training.seq_len * 2)
    assert total(model, longer, config) >= total(model, training, config) * (1 - EPS)


def test_most_loaded_stage_is_reported(llama13b):
    from planner.specs import TrainingSpec

    training = TrainingSpec(seq_len=4096, global_batch_size=64)
    first_heavy = ParallelConfig(tp=1, pp=4, dp=1, micro_batch_size=1)
    assert memory(llama13b, HW, training, first_heavy).stage == 0
    # One micro-batch in flight everywhere: the last stage's fp32 logits make it the heavier one.
    last_heavy = ParallelConfig(tp=1, pp=4, dp=64, micro_batch_size=1)
    assert memory(llama13b, HW, training, last_heavy).stage == 3


@pytest.mark.parametrize("stage", [0, 1])
def test_breakdown_sums_to_total(llama13b, stage):
    from planner.evaluate import stage_memory
    from planner.specs import TrainingSpec

    training = TrainingSpec(seq_len=2048, global_batch_size=64)
    config = ParallelConfig(
        tp=2, pp=2, dp=2, zero_stage=ZeroStage.WEIGHTS, micro_batch_size=2, sequence_parallel=True
    )
    mem = stage_memory(llama13b, HW, training, config, stage)
    parts = mem.weights + mem.gradients + mem.optimizer + mem.activations + mem.reserve
    assert mem.total == pytest.approx(parts)
    assert mem.activations == pytest.approx(
        sum(v for k, v in mem.detail.items() if k.startswith("activations_"))
    )


@settings(max_examples=150, deadline=None)
@given(cases())
def test_memory_never_rises_with_cp(case):
    model, training, config = case
    assume(training.flash_attention and training.seq_len % (4 * config.cp) == 0)
    more = replace(config, cp=config.cp * 2)
    assert total(model, training, more) <= total(model, training, config) * (1 + EPS)


def test_interleaving_holds_the_megatron_penalty_on_the_first_stage():
    """First stage: ``layers * (1 + (pp - 1)/(pp * vpp))`` layer-micro-batches (Megatron-LM
    theoretical_memory_usage.py); plain 1F1B: ``layers``; the last stage holds one chunk per model
    chunk in flight at least."""
    from constraints.activations import in_flight_layer_microbatches

    for pp, vpp in ((4, 2), (8, 4), (4, 5), (2, 8)):
        assert in_flight_layer_microbatches(80, pp, vpp, 0, 64) == pytest.approx(
            80 * (1 + (pp - 1) / (pp * vpp))
        )
        assert in_flight_layer_microbatches(80, pp, 1, 0, 64) == 80
        assert in_flight_layer_microbatches(80, pp, vpp, pp - 1, 64) < in_flight_layer_microbatches(
            80, pp, vpp, 0, 64
        )


@settings(max_examples=150, deadline=None)
@given(cases(), st.booleans(), st.booleans())
def test_offload_never_raises_memory(case, optimizer, activations):
    model, training, config = case
    offloaded = replace(config, optimizer_offload=optimizer, activation_offload=activations)
    assert total(model, training, offloaded) <= total(model, training, config) * (1 + EPS)


@pytest.mark.parametrize(
    ("name", "pp", "vpp", "split"),
    [
        ("llama3.1-405b", 16, 1, (7, 7)),
        ("llama3.1-405b", 16, 8, (7, 7)),
        ("llama2-13b", 7, 1, (4, 6)),
        ("llama3-8b", 3, 1, (10, 10)),
        ("llama2-13b", 8, 1, (0, 0)),
    ],
)
def test_the_three_computed_stages_hold_the_most_loaded_rank(name, pp, vpp, split):
    """With uneven ends the busiest middle stage can outweigh the first; checking every stage shows
    that the first, second and last always include the heaviest."""
    from planner.evaluate import stage_layers, stage_memory

    model = example(name)
    training = TrainingSpec(seq_len=4096, global_batch_size=64 * pp)
    config = ParallelConfig(
        tp=8,
        pp=pp,
        dp=2,
        vpp=vpp,
        first_stage_layers=split[0],
        last_stage_layers=split[1],
        sequence_parallel=True,
    )
    hardware = preset("h100-80gb")
    every = [stage_memory(model, hardware, training, config, s).total for s in range(pp)]
    assert memory(model, hardware, training, config).total == max(every)
    assert sum(stage_layers(model, config)) == model.num_layers
