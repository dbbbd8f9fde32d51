"""What each tabulated term depends on: the solver's tables must reproduce the plain evaluator.

The CP-SAT model and the brute-force oracle both read the same tables (``planner.space.Terms``), so
a term tabulated over the wrong dimensions (say, one that depends on the ZeRO stage placed in the
(layout, recompute, micro-batch) table) would pass the oracle test. Here every sampled candidate's
tabulated time equals the evaluator's step time of the same configuration, and its tabulated peak
memory equals the evaluator's memory rounded up: a misplaced term fails loudly.
"""

import math
import random

import pytest

from planner.evaluate import memory
from planner.hardware import preset
from planner.io import load_model
from planner.performance import performance
from planner.search import enumerate_candidates
from planner.space import Pins, build_space, compile_terms, time_units
from planner.specs import Dispatcher, Framework, Precision, TrainingSpec, ZeroStage

SAMPLES_PER_SPACE = 150
SEED = 9
# Each table entry is rounded on its own (time to the microsecond, memory up to the byte), so the
# sum of two or three rounded entries may differ from the rounded total by the number of entries.
TIME_SLACK_UNITS = 1
MEMORY_SLACK_BYTES = 3

SPACES = [
    ("llama2-13b", 64, TrainingSpec(seq_len=4096, global_batch_size=1024), Pins()),
    ("mixtral-8x7b", 32, TrainingSpec(seq_len=4096, global_batch_size=256), Pins(allow_offload=True)),
    (
        "llama3-8b",
        16,
        TrainingSpec(seq_len=8192, global_batch_size=128, framework=Framework.DEEPSPEED),
        Pins(sequence_parallel=False, allow_offload=True),
    ),
    ("qwen3-8b", 32, TrainingSpec(seq_len=16384, global_batch_size=64, precision=Precision.FP8), Pins()),
    (  # expert TP, both dispatchers across nodes; overlap switched the other way
        "qwen3-30b-a3b",
        64,
        TrainingSpec(
            seq_len=4096,
            global_batch_size=256,
            overlap_grad_reduce=False,
            overlap_param_gather=False,
            tp_comm_overlap=True,
        ),
        Pins(zero_stage=ZeroStage.OPTIMIZER),
    ),
]


@pytest.mark.parametrize(("name", "gpus", "training", "pins"), SPACES, ids=[s[0] for s in SPACES])
def test_tables_reproduce_the_evaluator(name, gpus, training, pins):
    model, hardware = load_model(name), preset("h100-80gb")
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    constants = hardware.step_constants
    terms = compile_terms(space, model, hardware, training, constants)
    candidates = enumerate_candidates(space, terms)
    assert len(candidates) > 10  # the space is not trivial
    sample = random.Random(SEED).sample(candidates, min(SAMPLES_PER_SPACE, len(candidates)))
    searched = {(c.indices[1], c.indices[2]) for c in sample}
    assert len(searched) > 1 or pins.zero_stage is not None  # more than one ZeRO / recompute choice
    if model.is_moe:  # the expert layout's choices are exercised too
        configs = [space.config(*c.indices) for c in sample]
        assert {c.etp > 1 for c in configs} == {True, False}
        assert {c.dispatcher for c in configs} == set(Dispatcher)
        assert any(c.expert_dispatch_ranks > hardware.nvlink_domain_gpus for c in configs)
    for c in sample:
        config = space.config(*c.indices)
        tabulated_time = c.objective // space.tie_break_range
        assert abs(
            tabulated_time - time_units(performance(model, hardware, training, config, constants).step_time_s)
        ) <= (TIME_SLACK_UNITS), config
        evaluated_bytes = math.ceil(memory(model, hardware, training, config).total)
        assert 0 <= c.peak_memory - evaluated_bytes <= MEMORY_SLACK_BYTES, config
