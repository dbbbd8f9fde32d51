"""The evaluator's small cache: the same arguments give the same result without a second call;
equal but distinct arguments, and entries pushed out, are computed again."""

from dataclasses import replace

from planner.evaluate import layer_activation_bytes
from planner.memo import RECENT_CALLS, recent_calls
from planner.specs import ParallelConfig, Recompute, TrainingSpec


def counting():
    calls = []

    @recent_calls
    def double(x):
        calls.append(x)
        return [2 * v for v in x]

    return double, calls


def test_a_repeat_is_served_from_the_cache():
    double, calls = counting()
    arg = (1, 2)
    assert double(arg) == [2, 4] and double(arg) is double(arg)
    assert calls == [arg]


def test_equal_but_distinct_arguments_are_computed_again():
    double, calls = counting()
    first, second = [1, 2], [1, 2]
    assert double(first) == double(second)
    assert len(calls) == 2


def test_old_entries_are_dropped():
    double, calls = counting()
    args = [(i,) for i in range(RECENT_CALLS + 1)]
    for arg in args:
        double(arg)
    double(args[-1])
    assert len(calls) == RECENT_CALLS + 1  # the newest is still there
    double(args[0])
    assert len(calls) == RECENT_CALLS + 2  # the oldest was not


def test_a_cached_layer_is_the_layer_of_its_own_arguments(llama13b):
    """A configuration that differs in one field gets its own answer, not the cached one."""
    training = TrainingSpec(seq_len=4096, global_batch_size=64)
    config = ParallelConfig(tp=2, pp=1, dp=4, micro_batch_size=1)
    one = layer_activation_bytes(llama13b, training, config, Recompute.NONE)
    two = layer_activation_bytes(llama13b, training, replace(config, micro_batch_size=2), Recompute.NONE)
    assert two == 2 * one
    assert layer_activation_bytes(llama13b, training, config, Recompute.FULL) < one
