"""The default global batch works for every GPU count, and the plan says what it chose."""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.defaults import default_global_batch, target_global_batch, with_default_batch
from planner.space import Pins, build_space
from planner.specs import TrainingSpec

from strategies import models


@settings(max_examples=80, deadline=None)
@given(models(), st.integers(1, 4096), st.sampled_from([1024, 2048, 4096, 8192]), st.sampled_from([1, 8]))
def test_some_layout_takes_the_default_batch_at_every_gpu_count(model, gpus, seq_len, node):
    """Wherever a layout exists, one of them divides the default batch into whole micro-batches."""
    training = TrainingSpec(seq_len=seq_len, global_batch_size=target_global_batch(seq_len))
    choice = default_global_batch(model, training, gpus, Pins(), node)
    chosen = TrainingSpec(seq_len=seq_len, global_batch_size=choice.sequences)
    space = build_space(model, chosen, gpus, Pins(), node)
    if space.layouts:
        assert any(space.mbs_fits(i, 0, choice.sequences) for i in range(len(space.layouts)))
    assert str(choice.sequences) in choice.note


def test_power_of_two_clusters_keep_4m_tokens_and_an_nvl72_rack_gets_a_multiple_of_72(llama13b):
    training = TrainingSpec(seq_len=4096, global_batch_size=1024)
    assert default_global_batch(llama13b, training, 64, Pins(), 8).sequences == 1024
    assert default_global_batch(llama13b, training, 2048, Pins(), 8).sequences == 1024
    rack = default_global_batch(llama13b, training, 72, Pins(), 72)
    assert rack.sequences == 1008 and "multiple of the 72 GPUs" in rack.note


def test_a_kept_batch_keeps_the_training_object(llama13b):
    """The search's caches are matched on the training spec's identity (``planner.memo``): a
    default batch that changes nothing hands back the same object, a changed one a new one."""
    training = TrainingSpec(seq_len=4096, global_batch_size=1024)
    kept, _ = with_default_batch(llama13b, training, 64, Pins(), 8)
    assert kept is training
    rack, _ = with_default_batch(llama13b, training, 72, Pins(), 72)
    assert rack.global_batch_size == 1008 and replace(rack, global_batch_size=1024) == training
