"""The evaluator's cache (``planner.memo.by_fields_read``): a result is reused only for a
configuration whose fields read by the computation are equal, and the other arguments identical."""

import random
from dataclasses import replace

import pytest

from planner.evaluate import layer_activation_bytes, stage_activation_terms, stage_params, stage_states_bytes
from planner.hardware import preset
from planner.io import load_model
from planner.memo import by_fields_read
from planner.space import Pins, build_space
from planner.specs import ParallelConfig, Recompute, TrainingSpec
from planner.stepmodel import head_operations, layer_operations


def counting():
    calls = []

    @by_fields_read(1)
    def expert_width(scale, config):
        calls.append(config.ep)
        return scale * (config.tp if config.ep > 1 else 1)  # tp is read only when ep > 1

    return expert_width, calls


def test_a_result_is_reused_only_while_the_fields_read_are_equal():
    width, calls = counting()
    scale = 3
    base = ParallelConfig(tp=2, pp=1, dp=4, ep=1)
    assert width(scale, base) == 3
    assert width(scale, replace(base, tp=4, pp=2, dp=2)) == 3  # tp and pp were not read: reused
    assert len(calls) == 1
    assert width(scale, replace(base, ep=2, dp=4)) == 6  # ep differs: computed, and tp read
    assert width(scale, replace(base, ep=2, dp=4, pp=2)) == 6  # reused
    assert width(scale, replace(base, ep=2, tp=4, dp=4)) == 12  # tp, read this time, differs
    assert len(calls) == 3


def test_other_arguments_are_matched_by_identity():
    width, calls = counting()
    config = ParallelConfig(tp=2, pp=1, dp=4, ep=2)
    first, second = [2], [2]
    width(first, config)
    width(first, replace(config))
    width(second, config)
    assert len(calls) == 2


def test_the_configuration_cannot_be_written_through_the_stand_in():
    @by_fields_read(0)
    def change(config):
        config.tp = 3

    with pytest.raises(AttributeError, match="read-only"):
        change(ParallelConfig(tp=2, pp=1, dp=4))


def test_cached_layers_equal_the_uncached_ones():
    """Every cached function of the evaluator, warmed by a whole space's configurations, gives
    for a sample of them what it computes without the cache (``__wrapped__``)."""
    model, hardware = load_model("mixtral-8x7b"), preset("h100-80gb")
    training = TrainingSpec(seq_len=4096, global_batch_size=256)
    space = build_space(model, training, 64, Pins(allow_offload=True), hardware.nvlink_domain_gpus)
    c = hardware.step_constants
    configs = [
        space.config(p, z, r, u)
        for p in range(len(space.layouts))
        for z in range(len(space.zero_stages))
        for r in range(len(space.recomputes))
        for u in range(len(space.micro_batches))
        if space.mbs_fits(p, u, training.global_batch_size)
    ]
    for config in configs:  # warm the caches with every configuration
        layer_operations(model, hardware, training, config, c)
    sample = random.Random(3).sample(configs, 300)
    for config in sample:
        stage = config.pp - 1
        assert layer_operations(model, hardware, training, config, c) == layer_operations.__wrapped__(
            model, hardware, training, config, c
        )
        assert head_operations(model, hardware, training, config, c) == head_operations.__wrapped__(
            model, hardware, training, config, c
        )
        for recompute in Recompute:
            assert layer_activation_bytes(model, training, config, recompute) == (
                layer_activation_bytes.__wrapped__(model, training, config, recompute)
            )
        assert stage_params(model, training, config, stage) == stage_params.__wrapped__(
            model, training, config, stage
        )
        assert stage_activation_terms(model, training, config, 0) == stage_activation_terms.__wrapped__(
            model, training, config, 0
        )
        assert stage_states_bytes(model, training, config, stage) == stage_states_bytes.__wrapped__(
            model, training, config, stage
        )
