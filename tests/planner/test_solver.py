"""The CP-SAT optimum equals brute-force enumeration; plans are reproducible."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.document import document
from planner.hardware import preset
from planner.layout import DIMENSIONS, Group, tie_break_value
from planner.plan import Request, run
from planner.search import brute_force
from planner.solver import solve
from planner.space import LAYOUT_FIELDS, Pins, build_space, capacity_units, compile_terms
from planner.specs import Dispatcher, Recompute, TrainingSpec, ZeroStage

from strategies import models, trainings


@st.composite
def problems(draw):
    model = draw(models())
    training = draw(trainings())
    gpus = draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64]))
    hardware = replace(
        preset(draw(st.sampled_from(["a100-40gb", "h100-80gb"]))),
        memory_bytes=draw(st.floats(0.5, 80)) * 2**30,
    )
    pins = Pins(
        tp=draw(st.none() | st.sampled_from([1, 2])),
        cp=draw(st.none() | st.sampled_from([1, 2])),
        vpp=draw(st.none() | st.sampled_from([1, 2])),
        allow_offload=draw(st.booleans()),
        zero_stage=draw(st.none() | st.sampled_from(list(ZeroStage))),
        recompute=draw(st.none() | st.sampled_from(list(Recompute))),
        micro_batch_size=draw(st.none() | st.sampled_from([1, 2])),
    )
    return model, training, gpus, hardware, pins


@settings(max_examples=60, deadline=None)
@given(problems(), st.integers(1, 3))
def test_cp_sat_equals_brute_force(problem, top):
    model, training, gpus, hardware, pins = problem
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    terms = compile_terms(space, model, hardware, training)
    capacity = capacity_units(hardware)
    expected = brute_force(space, terms, capacity, top)
    result = solve(space, terms, capacity, top)
    assert [c.indices for c in result.candidates] == [c.indices for c in expected]
    assert [c.objective for c in result.candidates] == [c.objective for c in expected]
    assert result.status == ("optimal" if expected else "infeasible")
    for found in result.candidates:
        config = space.config(*found.indices)
        assert config.num_gpus == config.tp * config.cp * config.pp * config.dp == gpus
        assert found.peak_memory <= capacity


@settings(max_examples=20, deadline=None)
@given(problems())
def test_solver_memory_never_underestimates_the_evaluator(problem):
    from planner.evaluate import memory

    model, training, gpus, hardware, pins = problem
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    terms = compile_terms(space, model, hardware, training)
    for found in solve(space, terms, capacity_units(hardware), 2).candidates:
        exact = memory(model, hardware, training, space.config(*found.indices)).total
        assert exact <= found.peak_memory < exact + 16  # bytes, rounded up per term


def plan_doc(model, **kw):
    req = Request(model=model, hardware=preset("h100-80gb"), training=kw.pop("training"), gpus=64, **kw)
    return document(req, run(req))


def test_same_input_same_plan(llama13b):
    from planner.specs import TrainingSpec

    training = TrainingSpec(seq_len=4096, global_batch_size=1024)
    first, second = plan_doc(llama13b, training=training, top=3), plan_doc(llama13b, training=training, top=3)
    assert first == second and "wall_time_s" not in first["solver"]


def test_exhaustive_prints_the_same_plan(llama13b):
    from planner.specs import TrainingSpec

    training = TrainingSpec(seq_len=4096, global_batch_size=1024)
    cp = plan_doc(llama13b, training=training, top=2)
    bf = plan_doc(llama13b, training=training, top=2, exhaustive=True)
    assert cp["parallelism"] == bf["parallelism"] and cp["alternatives"] == bf["alternatives"]
    assert bf["solver"]["method"] == "exhaustive" and cp["solver"]["method"] == "cp-sat"


def test_sensible_plan_for_llama2_13b_on_64_h100(llama13b):
    """A practitioner's sanity check: it fits, TP stays in a node, no needless recompute."""
    from planner.specs import TrainingSpec

    doc = plan_doc(llama13b, training=TrainingSpec(seq_len=4096, global_batch_size=1024))
    p = doc["parallelism"]
    assert doc["status"] == "optimal" and doc["fits"]
    assert p["tp"] * p["pp"] * p["dp"] == 64 and p["tp"] <= 8
    assert p["dp"] * p["micro_batch_size"] * p["grad_accum_steps"] == 1024
    assert 0.3 < doc["performance"]["mfu"] < 0.7


def test_infeasible_gives_closest_plan_and_fixes():
    from planner.io import load_model
    from planner.specs import TrainingSpec

    model = load_model("llama3-70b")
    req = Request(
        model=model,
        hardware=replace(preset("h100-80gb"), memory_bytes=40e9),
        training=TrainingSpec(seq_len=8192, global_batch_size=512),
        gpus=8,
    )
    doc = document(req, run(req))
    assert doc["status"] == "infeasible" and not doc["fits"]
    fixes = doc["diagnosis"]
    assert fixes["min_gpus_at_this_memory"] > 8
    assert fixes["min_mem_gib_at_this_gpu_count"] == pytest.approx(doc["memory_gib"]["total"], rel=1e-3)
    assert doc["dominant_memory_term"] in ("weights", "gradients", "optimizer", "activations")
    bigger = replace(req, gpus=fixes["min_gpus_at_this_memory"])
    assert document(bigger, run(bigger))["status"] == "optimal"


@settings(max_examples=40, deadline=None)
@given(problems())
def test_deepspeed_plans_are_runnable_by_deepspeed(problem):
    from planner.emit_deepspeed import deepspeed_config
    from planner.specs import Framework, Precision

    model, training, gpus, hardware, pins = problem
    if training.precision is Precision.FP8:  # FP8 comes from Transformer Engine modules in the model code
        training = replace(training, precision=Precision.BF16)
    training = replace(training, framework=Framework.DEEPSPEED)
    pins = replace(pins, sequence_parallel=False)
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    terms = compile_terms(space, model, hardware, training)
    expected = brute_force(space, terms, capacity_units(hardware), 2)
    result = solve(space, terms, capacity_units(hardware), 2)
    assert [c.indices for c in result.candidates] == [c.indices for c in expected]
    for found in result.candidates:
        assert deepspeed_config(model, training, space.config(*found.indices)).expressible


@pytest.mark.parametrize("name, gpus", [("mixtral-8x7b", 64), ("qwen3-30b-a3b", 32), ("deepseek-v3", 1024)])
def test_moe_search_equals_brute_force_and_uses_expert_parallelism(name, gpus):
    from planner.io import load_model
    from planner.specs import TrainingSpec

    model, hardware = load_model(name), preset("h100-80gb")
    training = TrainingSpec(seq_len=4096, global_batch_size=1024)
    space = build_space(model, training, gpus, Pins(), hardware.nvlink_domain_gpus)
    assert any(layout[4] > 1 for layout in space.layouts)  # ep is searched for MoE models
    searched = dict(zip(LAYOUT_FIELDS, zip(*space.layouts, strict=True), strict=True))
    assert max(searched["etp"]) > 1 and set(searched["dispatcher"]) == set(Dispatcher)  # so are these
    terms = compile_terms(space, model, hardware, training)
    expected = brute_force(space, terms, capacity_units(hardware), 2)
    result = solve(space, terms, capacity_units(hardware), 2)
    assert [c.indices for c in result.candidates] == [c.indices for c in expected]


def test_tie_break_follows_the_layout_records_field_order(llama13b):
    """The tie-break rank orders candidates exactly as ``ParallelConfig``'s searched fields do,
    compared in field order (lower ZeRO stage, no offload, less recompute, smaller tp, cp, pp, vpp,
    ep, etp, the all-to-all dispatcher, smaller micro-batch): the registry's order is the search's."""
    training = TrainingSpec(seq_len=4096, global_batch_size=64)
    space = build_space(llama13b, training, 16, Pins(allow_offload=True), 8)
    searched = [e.name for e in DIMENSIONS if e.dimension.group is not Group.DERIVED]

    def field_order(indices):
        config = space.config(*indices)
        return tuple(tie_break_value(n, getattr(config, n)) for n in searched)

    grid = [
        (p, z, r, u)
        for p in range(len(space.layouts))
        for z in range(len(space.zero_stages))
        for r in range(len(space.recomputes))
        for u in range(len(space.micro_batches))
    ]
    assert len({space.tie_break(*i) for i in grid}) == len(grid) > 100
    assert sorted(grid, key=lambda i: space.tie_break(*i)) == sorted(grid, key=field_order)


ENUMERATED = [("llama2-13b", 64, 5), ("gpt2-xl", 8192, 5), ("mixtral-8x7b", 64, 3), ("qwen3-30b-a3b", 8, 4)]


@pytest.mark.parametrize("name, gpus, top", ENUMERATED)
def test_one_enumeration_and_one_solve_per_plan_give_brute_forces_plans(name, gpus, top, monkeypatch):
    """The ``top`` plans come from one enumerating solve where the presolve leaves few pairs
    (checked: it ran to its end; with and without CP-SAT's own presolve), and from ``top``
    optimizing solves otherwise, or when the enumeration is cut short (as by the deadline): the
    same plans as brute force, each way."""
    from planner import solver as solver_module
    from planner.io import load_model

    model, hardware = load_model(name), preset("h100-80gb")
    training = TrainingSpec(seq_len=4096, global_batch_size=1024)
    space = build_space(model, training, gpus, Pins(), hardware.nvlink_domain_gpus)
    terms = compile_terms(space, model, hardware, training)
    capacity = capacity_units(hardware)
    expected = [(c.indices, c.objective) for c in brute_force(space, terms, capacity, top)]
    assert len(expected) == top
    enumerations, presolved = [], []
    enumerate_all = solver_module._enumerate

    def counted(cp_model, model, solver, *args):
        presolved.append(solver.parameters.cp_model_presolve)
        enumerations.append(enumerate_all(cp_model, model, solver, *args))
        return enumerations[-1]

    monkeypatch.setattr(solver_module, "_enumerate", counted)
    ways = {"enumerated": solve(space, terms, capacity, top)}
    monkeypatch.setattr(solver_module, "TINY_MODEL_ROWS", 0)  # with CP-SAT's own presolve too
    ways["enumerated, presolved"] = solve(space, terms, capacity, top)
    monkeypatch.undo()
    assert presolved == [False, True] and all(e is not None and len(e) >= top for e in enumerations)
    monkeypatch.setattr(solver_module, "_enumerate", lambda *args: None)
    ways["cut short"] = solve(space, terms, capacity, top)
    monkeypatch.setattr(solver_module, "ENUMERATE_PAIRS", 0)
    monkeypatch.setattr(solver_module, "_enumerate", counted)
    ways["one by one"] = solve(space, terms, capacity, top)
    assert len(enumerations) == 2
    for way, result in ways.items():
        assert [(c.indices, c.objective) for c in result.candidates] == expected, way
        assert result.status == "optimal" and result.objective == result.bound == expected[0][1], way
