"""Integer ranges: the CP-SAT model stays within OR-Tools' limit for every accepted request, and
its answers (status, fits) agree with brute force and with the plain evaluator.

Before ``planner.scaling``, ``--mem 1000000TB``, a global batch of 2^34 sequences or a tiny
``peak_tflops`` built a model CP-SAT refused, reported as ``status: infeasible`` beside
``fits: true``.
"""

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ortools.sat.python import cp_model

import planner.plan
from planner.document import document
from planner.errors import USAGE_EXIT_CODE, PlannerError
from planner.hardware import preset
from planner.plan import Request, run
from planner.scaling import CP_SAT_MAX_ACTIVITY, Units, choose_units, objective_activity, scale_terms
from planner.space import Pins, build_space, compile_terms
from planner.specs import TrainingSpec

from strategies import global_batches, models, roomy_hardware, trainings


def one_hot_model(coefficients: list[int]) -> cp_model.CpModel:
    """The shape of the planner's model: one boolean per row, exactly one chosen, a linear bound."""
    model = cp_model.CpModel()
    picks = [model.new_bool_var(f"x{i}") for i in range(len(coefficients))]
    model.add_exactly_one(picks)
    model.add(sum(c * x for c, x in zip(coefficients, picks, strict=True)) <= 1)
    model.minimize(sum(c * x for c, x in zip(coefficients, picks, strict=True)))
    return model


@pytest.mark.parametrize("rows", [1, 2, 1000])
def test_the_limit_is_or_tools_own(rows):
    """OR-Tools itself accepts activities up to CP_SAT_MAX_ACTIVITY and refuses one more: the
    constant is the solver's, not a guess."""
    at_limit = [CP_SAT_MAX_ACTIVITY // rows] * rows
    assert one_hot_model(at_limit).validate() == ""
    over = [*at_limit[:-1], at_limit[-1] + CP_SAT_MAX_ACTIVITY % rows + 1]
    assert "overflow" in one_hot_model(over).validate()


def test_ordinary_requests_keep_bytes_and_microseconds(llama13b):
    """The used-by example is ranked at full resolution: scaling changes nothing there."""
    hardware = preset("h100-80gb")
    training = TrainingSpec(seq_len=4096, global_batch_size=1024)
    space = build_space(llama13b, training, 64, Pins(), 8)
    terms = compile_terms(space, llama13b, hardware, training)
    assert choose_units(space, terms) == Units(time_us=1)


@st.composite
def absurd_requests(draw):
    model = draw(models())
    training = draw(trainings(global_batch=draw(global_batches)))
    hardware = draw(roomy_hardware(preset("h100-80gb")))
    return Request(
        model=model,
        hardware=hardware,
        training=training,
        gpus=draw(st.sampled_from([1, 4, 8, 16, 64])),
        pins=Pins(allow_offload=draw(st.booleans())),
        top=draw(st.integers(1, 3)),
    )


@settings(max_examples=40, deadline=None)
@given(absurd_requests())
def test_scaled_tables_are_within_the_limit(req):
    """The unit is proven on the actual rows: the objective fits, memory never rounds down."""
    space = build_space(req.model, req.training, req.gpus, req.pins, req.hardware.nvlink_domain_gpus)
    terms = compile_terms(space, req.model, req.hardware, req.training)
    units = choose_units(space, terms)
    assert objective_activity(space, terms, units.time_us) <= CP_SAT_MAX_ACTIVITY
    if units.time_us > 1:  # and it is the finest that fits
        assert objective_activity(space, terms, units.time_us // 2) > CP_SAT_MAX_ACTIVITY
    scaled = scale_terms(terms, units)
    for key, mem in terms.states.items():
        assert all(s >= m for s, m in zip(scaled.states[key], mem, strict=True))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(absurd_requests())
def test_status_and_fits_agree_with_brute_force_and_the_evaluator(monkeypatch, req):
    """CP-SAT and --exhaustive give the same status and plans; the document's ``fits`` (the plain
    evaluator) is true exactly when the status says a plan fits."""
    monkeypatch.setattr(planner.plan, "smallest_fixes", lambda *args, **kwargs: {})  # not under test

    def answer(request):
        try:
            return document(request, run(request))
        except PlannerError as exc:  # no layout takes this batch: bad input, the same for both
            assert exc.exit_code == USAGE_EXIT_CODE
            return str(exc)

    cp_sat, exhaustive = answer(req), answer(replace(req, exhaustive=True))
    if isinstance(cp_sat, str) or isinstance(exhaustive, str):
        assert cp_sat == exhaustive
        return
    assert cp_sat["status"] == exhaustive["status"]
    assert cp_sat.get("parallelism") == exhaustive.get("parallelism")
    assert cp_sat["alternatives"] == exhaustive["alternatives"]
    for doc in (cp_sat, exhaustive):
        if "fits" in doc:
            assert doc["fits"] == (doc["status"] != "infeasible")


@pytest.mark.parametrize(
    "change",
    [
        {"mem": 1e18},  # --mem 1000000TB
        {"global_batch": 2**34},
        {"peak_flops": 1e6},  # peak_tflops: 0.000001
    ],
)
def test_the_reported_false_answers_are_gone(llama13b, change):
    """The issue's examples on the used-by model: a plan that fits, as --exhaustive says."""
    hardware = preset("h100-80gb")
    hardware = replace(
        hardware,
        memory_bytes=change.get("mem", hardware.memory_bytes),
        peak_flops=change.get("peak_flops", hardware.peak_flops),
    )
    training = TrainingSpec(seq_len=4096, global_batch_size=change.get("global_batch", 1024))
    req = Request(model=llama13b, hardware=hardware, training=training, gpus=64)
    doc = document(req, run(req))
    assert doc["status"] == "optimal" and doc["fits"] is True
    exhaustive = document(replace(req, exhaustive=True), run(replace(req, exhaustive=True)))
    assert exhaustive["parallelism"] == doc["parallelism"]
