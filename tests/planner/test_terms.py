"""What each tabulated term depends on: the solver's tables must reproduce the plain evaluator.

The CP-SAT model and the brute-force oracle both read the same tables (``planner.space.Terms``), so
a term tabulated over the wrong dimensions (say, one that depends on the ZeRO stage placed in the
(layout, recompute, micro-batch) table) would pass the oracle test. Here every sampled candidate's
tabulated time equals the evaluator's step time of the same configuration, and its tabulated peak
memory equals the evaluator's memory rounded up: a misplaced term fails loudly.
"""

import itertools
import math
import random
from dataclasses import replace

import pytest

from planner import space as space_module
from planner.errors import PlannerError
from planner.evaluate import memory
from planner.hardware import preset
from planner.io import load_model
from planner.performance import performance
from planner.search import brute_force, count_candidates, enumerate_candidates
from planner.space import LAYOUT_FIELDS, Pins, Terms, build_space, capacity_units, compile_terms, time_units
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


@pytest.mark.parametrize(("name", "gpus", "training", "pins"), SPACES, ids=[s[0] for s in SPACES])
@pytest.mark.parametrize("memory_gib", [80, 24])
def test_the_search_s_tables_hold_the_best_plans_and_count_of_the_whole_tables(
    name, gpus, training, pins, memory_gib
):
    """The search tabulates the step time of only the rows that fit beside some row of the other
    table, and skips the activations of a micro-batch above one whose row fits nothing
    (``compile_terms(fitting_only=True)``): its five best plans and its candidate count are those
    of the whole tables, on roomy and on tight GPUs."""
    model = load_model(name)
    hardware = replace(preset("h100-80gb"), memory_bytes=memory_gib * 2**30)
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    capacity = capacity_units(hardware)
    whole = compile_terms(space, model, hardware, training)
    fitting = compile_terms(space, model, hardware, training, fitting_only=True)
    assert len(fitting.activations) < len(whole.activations)  # rows were left out
    assert brute_force(space, fitting, capacity, 5) == brute_force(space, whole, capacity, 5)
    assert count_candidates(fitting) == count_candidates(whole)


@pytest.mark.parametrize(("name", "gpus", "training", "pins"), SPACES, ids=[s[0] for s in SPACES])
def test_activations_never_shrink_as_the_micro_batch_grows(name, gpus, training, pins):
    """What the skip above rests on: on every layout and recompute choice, each stage's activations
    row is at least as large at a larger micro-batch (fewer micro-batches in flight, each larger)."""
    model, hardware = load_model(name), preset("h100-80gb")
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    rows: dict[tuple[int, int], list[tuple[int, tuple[int, ...]]]] = {}
    for (p, r, u), row in compile_terms(space, model, hardware, training, times=False).activations.items():
        rows.setdefault((p, r), []).append((u, row))
    assert sum(len(v) > 1 for v in rows.values()) > 10  # many rows with more than one micro-batch
    for by_mbs in rows.values():
        by_mbs.sort()
        for (_, smaller), (_, larger) in itertools.pairwise(by_mbs):
            assert all(map(int.__le__, smaller, larger))


@pytest.mark.parametrize("fitting_only", [False, True])
def test_tables_shared_among_processes_equal_one_process_s(monkeypatch, fitting_only):
    """Large spaces are tabulated by several processes (``planner.workers``): the same rows in the
    same order, so the same plans and documents, as one process."""
    name, gpus, training, pins = SPACES[1]  # mixtral-8x7b: MoE, offload allowed
    model, hardware = load_model(name), preset("h100-80gb")
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    tables = {}
    for processes in (1, 3):
        monkeypatch.setattr(space_module, "processes_for", lambda layouts, n=processes: n)
        terms = compile_terms(space, model, hardware, training, fitting_only=fitting_only)
        tables[processes] = [list(getattr(terms, t).items()) for t in Terms.__slots__ if t != "candidates"]
        tables[processes].append(terms.candidates)
    assert tables[3] == tables[1]
    assert len(tables[1][1]) > 100


def test_an_error_in_a_worker_process_reaches_the_command(monkeypatch):
    """A row that fails in a forked worker (here the rows of the last layout that has any, in the
    last run of layouts) stops the tabulation with the worker's own one-line error, as in one
    process."""
    name, gpus, training, pins = SPACES[1]
    model, hardware = load_model(name), preset("h100-80gb")
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    last = max(p for p, _, _ in compile_terms(space, model, hardware, training).activations)
    real = space_module.activation_row

    def failing(model, training, config):
        if tuple(getattr(config, f) for f in LAYOUT_FIELDS) == space.layouts[last]:
            raise PlannerError("the memory of a candidate is nan: check sizes")
        return real(model, training, config)

    monkeypatch.setattr(space_module, "activation_row", failing)
    monkeypatch.setattr(space_module, "processes_for", lambda layouts: 3)
    with pytest.raises(PlannerError, match="memory of a candidate is nan"):
        compile_terms(space, model, hardware, training)
