"""The search's answer is checked against the plain evaluator before it is reported."""

from dataclasses import replace

import pytest

from planner.calibration import DEFAULT_CONSTANTS
from planner.document import document
from planner.errors import PlannerError
from planner.evaluate import memory
from planner.hardware import preset
from planner.plan import Request, run
from planner.scaling import Units
from planner.search import Candidate
from planner.space import Pins, build_space
from planner.specs import Recompute, TrainingSpec, ZeroStage
from planner.verify import INTERNAL_EXIT_CODE, check_reported

PINNED = Pins(
    tp=2,
    pp=4,
    dp=8,
    cp=1,
    first_stage_layers=0,  # the even split: every dimension pinned
    last_stage_layers=0,
    vpp=1,
    ep=1,
    zero_stage=ZeroStage.OPTIMIZER,
    recompute=Recompute.SELECTIVE,
    micro_batch_size=1,
    optimizer_offload=False,
    activation_offload=False,
)
TRAINING = TrainingSpec(seq_len=4096, global_batch_size=1024, reserve_fraction=0.0)


def test_a_plan_exactly_at_the_capacity_fits_in_status_and_document(llama13b):
    """Capacity equal to the evaluator's total: it fits (total <= capacity). The integer tables
    round up and refuse it; the boundary check finds it, so status and ``fits`` agree."""
    hardware = preset("h100-80gb")
    space = build_space(llama13b, TRAINING, 64, PINNED, 8)
    need = memory(llama13b, hardware, TRAINING, space.config(0, 0, 0, 0)).total
    exact = replace(hardware, memory_bytes=need)
    for exhaustive in (False, True):
        req = Request(
            model=llama13b, hardware=exact, training=TRAINING, gpus=64, pins=PINNED, exhaustive=exhaustive
        )
        doc = document(req, run(req))
        assert doc["status"] == "optimal" and doc["fits"] is True
    below = replace(hardware, memory_bytes=need * (1 - 1e-9))
    req = Request(model=llama13b, hardware=below, training=TRAINING, gpus=64, pins=PINNED)
    doc = document(req, run(req))
    assert doc["status"] == "infeasible" and doc["fits"] is False


def test_a_candidate_the_evaluator_contradicts_is_an_internal_error(llama13b):
    """A reported candidate whose objective is not its evaluated step time, or that does not fit,
    stops the command (exit 3) instead of being printed."""
    hardware = preset("h100-80gb")
    space = build_space(llama13b, TRAINING, 64, PINNED, 8)
    wrong_time = Candidate(indices=(0, 0, 0, 0), objective=space.tie_break_range * 5, peak_memory=0)
    with pytest.raises(PlannerError) as error:
        check_reported(llama13b, hardware, TRAINING, DEFAULT_CONSTANTS, space, Units(), [wrong_time])
    assert error.value.exit_code == INTERNAL_EXIT_CODE and "ranked" in str(error.value)
    tiny = replace(hardware, memory_bytes=2**30)
    with pytest.raises(PlannerError, match="evaluator needs") as error:
        check_reported(llama13b, tiny, TRAINING, DEFAULT_CONSTANTS, space, Units(), [wrong_time])
    assert error.value.exit_code == INTERNAL_EXIT_CODE
