"""Time limits: one deadline for the whole command, passed down to the solver and the diagnosis
and checked before each piece of work. A fake clock makes the tests exact, with no timing."""

import math
from dataclasses import replace

import pytest

import planner.diagnose
from planner import solver as solver_module
from planner.deadline import Deadline
from planner.document import document
from planner.errors import PlannerError
from planner.hardware import preset
from planner.plan import Request, run
from planner.space import Pins
from planner.specs import Recompute, TrainingSpec


class FakeClock:
    """Seconds that advance only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("limit", [math.nan, math.inf, 0.0, -1.0])
def test_a_limit_that_is_not_a_positive_number_is_refused(limit):
    with pytest.raises(PlannerError, match="--time-limit must be a positive number"):
        Deadline(limit_s=limit)


def test_the_deadline_counts_from_its_start():
    clock = FakeClock()
    clock.now = 100.0
    deadline = Deadline(limit_s=2.0, clock=clock)
    assert deadline.remaining_s() == 2.0 and not deadline.expired
    clock.now = 101.5
    assert deadline.remaining_s() == 0.5
    clock.now = 102.0
    assert deadline.expired and Deadline().remaining_s() is None and not Deadline().expired


def test_the_diagnosis_stops_at_the_deadline(monkeypatch, llama13b):
    """Nothing fits (8 GB GPUs): each probe of the diagnosis takes (fake) 1 s, the limit is 0.5 s,
    so one probe (of the GPU counts) runs and the document lists the fixes it did not search and why."""
    clock = FakeClock()
    probes = []
    real = planner.diagnose.fits_anywhere

    def slow_probe(*args, **kwargs):
        probes.append(args[1])
        clock.now += 1.0
        return real(*args, **kwargs)

    monkeypatch.setattr(planner.diagnose, "fits_anywhere", slow_probe)
    hardware = preset("h100-80gb")
    req = Request(
        model=llama13b,
        hardware=replace(hardware, memory_bytes=8e9),
        training=TrainingSpec(seq_len=4096, global_batch_size=1024),
        gpus=64,
        pins=Pins(tp=1),
        time_limit_s=0.5,
    )
    doc = document(req, run(req, Deadline(limit_s=0.5, clock=clock)))
    assert doc["status"] == "infeasible" and len(probes) == 1
    diagnosis = doc["diagnosis"]
    assert diagnosis["not_searched"] == [
        "min_gpus_at_this_memory",
        "unpinned_plan",
        "offload_plan",
        "max_seq_len_that_fits",
    ]
    assert diagnosis["not_searched_reason"] == "--time-limit 0.5 s reached"
    unlimited = document(replace(req, time_limit_s=None), run(replace(req, time_limit_s=None)))
    assert "not_searched" not in unlimited["diagnosis"] and len(probes) > 2


def test_fewer_plans_than_top_say_why(llama13b, monkeypatch):
    """--top beyond the plans that fit, and --top cut short by the time limit, both say so. The
    time limit cuts the search between two plans where each takes a solve; one enumerating solve
    (``planner.solver._enumerate``) finds them all at once."""
    training = TrainingSpec(seq_len=4096, global_batch_size=1024)
    hardware = preset("h100-80gb")
    pins = Pins(tp=1, pp=4, vpp=5, recompute=Recompute.NONE, micro_batch_size=1)
    few = Request(model=llama13b, hardware=hardware, training=training, gpus=64, pins=pins, top=50)
    doc = document(few, run(few))
    solver = doc["solver"]
    assert solver["plans_requested"] == 50 and solver["plans_returned"] == len(doc["alternatives"]) + 1 < 50
    assert solver["shortfall"] == f"only {solver['plans_returned']} distinct plans fit (--top 50)"

    class OneSolve(FakeClock):
        """Each reading of the clock takes a second: the first solve starts, the second does not."""

        def __call__(self) -> float:
            self.now += 1.0
            return self.now

    cut = Request(model=llama13b, hardware=hardware, training=training, gpus=64, top=5, time_limit_s=1.5)
    doc = document(cut, run(cut, Deadline(limit_s=1.5, clock=OneSolve())))
    assert doc["solver"]["plans_returned"] == 5 and "shortfall" not in doc["solver"]
    monkeypatch.setattr(solver_module, "ENUMERATE_PAIRS", 0)  # a solve per plan
    doc = document(cut, run(cut, Deadline(limit_s=1.5, clock=OneSolve())))
    assert doc["solver"]["plans_returned"] == 1 and doc["status"] == "optimal"
    assert doc["solver"]["shortfall"] == "--time-limit 1.5 s reached after 1 of --top 5 plans"
