"""The search's answer checked against the plain evaluator before it is reported.

The solver and the brute-force oracle rank candidates by integer tables (``planner.space``,
``planner.scaling``); the plan document reports what ``planner.evaluate`` and
``planner.performance`` compute in floating point. Every reported candidate must fit by the
evaluator and have the step time its objective says (within the tables' rounding); a mismatch is a
planner bug and stops the command instead of printing a false answer.

The tables round memory up, so a candidate within a few bytes of the capacity can be refused by
them while the evaluator says it fits. When the tables leave nothing that fits, the candidates in
that band are checked by the evaluator, so ``status`` and the document's ``fits`` always agree.
"""

from planner.calibration import StepTimeConstants
from planner.errors import PlannerError
from planner.evaluate import memory, num_microbatches
from planner.layout import parallelism_block, summary
from planner.performance import performance
from planner.scaling import Units, boundary_band_bytes
from planner.search import Candidate, enumerate_candidates
from planner.space import Space, Terms
from planner.specs import HardwareSpec, ModelSpec, TrainingSpec

INTERNAL_EXIT_CODE = 3  # the planner contradicted itself: a bug, not the user's input
TIME_TOLERANCE_UNITS = 2  # two terms (pipeline, data-parallel), each rounded to nearest twice
TIME_TOLERANCE_RELATIVE = 1e-9  # float summation order


def check_reported(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    constants: StepTimeConstants | None,
    space: Space,
    units: Units,
    chosen: list[Candidate],
) -> None:
    """Raise when a candidate the search reports does not fit by the evaluator, or its step time
    is not the one the search ranked it by."""
    for candidate in chosen:
        config = space.config(*candidate.indices)
        name = summary(parallelism_block(config, num_microbatches(training, config)), "brief")
        mem = memory(model, hardware, training, config)
        if not mem.fits:
            raise PlannerError(
                f"internal check failed: the search chose {name} but the evaluator needs "
                f"{mem.total:.6g} bytes of {mem.capacity:.6g}; please report the command",
                INTERNAL_EXIT_CODE,
            )
        step_units = (
            performance(model, hardware, training, config, constants).step_time_s * 1e6 / units.time_us
        )
        ranked_units = candidate.objective // space.tie_break_range
        if abs(step_units - ranked_units) > TIME_TOLERANCE_UNITS + TIME_TOLERANCE_RELATIVE * step_units:
            raise PlannerError(
                f"internal check failed: the search ranked {name} at {ranked_units} x "
                f"{units.time_us} us but the evaluator says {step_units:.6g}; please report the command",
                INTERNAL_EXIT_CODE,
            )


def boundary_candidates(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    space: Space,
    terms: Terms,
    capacity: int,
    top: int,
) -> list[Candidate]:
    """The ``top`` best candidates that the integer tables put just above ``capacity`` (within
    the rounding band) but that fit by the evaluator; best first."""
    band = boundary_band_bytes(hardware.memory_bytes)
    return [
        c
        for c in enumerate_candidates(space, terms)
        if capacity < c.peak_memory <= capacity + band
        and memory(model, hardware, training, space.config(*c.indices)).fits
    ][:top]
