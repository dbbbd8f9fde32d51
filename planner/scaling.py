"""Integer units for the CP-SAT model, chosen per request so that no linear expression overflows.

CP-SAT refuses a model (``MODEL_INVALID``, "Possible integer overflow") when a linear constraint's
or the objective's activity -- the sum over its terms of |coefficient| times the largest |value|
of the variable -- can exceed ``2**62 - 1`` (OR-Tools ``cp_model_checker.cc``;
``tests/planner/test_scaling.py`` probes the limit with ``CpModel.validate``). Before this module, a
roomy request (a global batch of 2^34 sequences, a tiny ``peak_tflops``, ``--mem 1000000TB`` when
memory was still summed in the model) built such a model and was reported ``infeasible``.

The solver's model (``planner.solver``) has one large linear expression, the objective: every row's
time times the tie-break range plus its tie-break rank. Memory never enters a linear expression:
the exclusions "these two rows overflow a stage" are decided in Python on exact integers, and the
other constraints have coefficients of 1. The terms of ``planner.space.compile_terms`` are exact
Python integers (bytes, microseconds); ``choose_units`` picks the smallest power-of-two time unit at
which the objective's activity, computed from the actual rows, is within the limit -- proven for
each accepted input rather than assumed -- and refuses, with one line, a space whose tie-break
ranks alone overflow. ``scale_terms`` converts the tables (time to nearest; memory rounded up with
a relative slack, so that the tables never under-estimate the evaluator's floating-point sums).
The solver and the brute-force oracle both search the scaled tables.
"""

import math
from dataclasses import dataclass

from planner.errors import PlannerError
from planner.space import Space, Terms

CP_SAT_MAX_ACTIVITY = 2**62 - 1  # OR-Tools cp_model_checker: larger activities are refused
RELATIVE_SLACK_BITS = 40  # memory rows grow by 2**-40 of themselves and one byte: float sums of the
# same terms (the evaluator's ``MemoryBreakdown.total``) differ by a few ulps (2**-52), never more


@dataclass(frozen=True, slots=True, kw_only=True)
class Units:
    """Resolution of the integer tables."""

    time_us: int = 1
    """Microseconds per time unit (a power of two; 1 unless step times are huge)."""


def memory_up(value_bytes: int) -> int:
    """Integer bytes plus the relative slack and one byte: never below the evaluator's sum."""
    return value_bytes + (value_bytes >> RELATIVE_SLACK_BITS) + (1 if value_bytes > 0 else 0)


def time_nearest(value_us: int, unit: int) -> int:
    """Microseconds to time units, rounded to nearest (half up)."""
    return (value_us + unit // 2) // unit


def objective_activity(space: Space, terms: Terms, unit: int) -> int:
    """Activity of the solver's objective over every row (a bound on the rows it keeps): each row's
    time times the tie-break range plus its tie-break share (below the range)."""
    scale = space.tie_break_range
    times = list(terms.data_parallel_us.values()) + list(terms.pipeline_us.values())
    return sum(time_nearest(t, unit) * scale + scale for t in times)


def choose_units(space: Space, terms: Terms) -> Units:
    """The finest time unit at which the solver's objective is within CP-SAT's integer range."""
    rows = len(terms.data_parallel_us) + len(terms.pipeline_us)
    if rows * space.tie_break_range > CP_SAT_MAX_ACTIVITY:
        raise PlannerError(
            f"the search space ({space.size} candidates) is too large for CP-SAT's 62-bit objective; "
            "pin --tp, --pp or --mbs to narrow it"
        )
    exact = objective_activity(space, terms, 1)
    # Each doubling roughly halves the activity: start from the estimate, double until it fits.
    unit = 1 << max(0, math.ceil(math.log2(max(1, exact) / CP_SAT_MAX_ACTIVITY)))
    while objective_activity(space, terms, unit) > CP_SAT_MAX_ACTIVITY:
        unit *= 2
    return Units(time_us=unit)


def scale_terms(terms: Terms, units: Units) -> Terms:
    """The tables at ``units``: memory bytes with the slack, time to nearest unit."""
    t = units.time_us
    return Terms(
        {k: tuple(memory_up(v) for v in mem) for k, mem in terms.states.items()},
        {k: tuple(memory_up(v) for v in mem) for k, mem in terms.activations.items()},
        {k: time_nearest(v, t) for k, v in terms.pipeline_us.items()},
        {k: time_nearest(v, t) for k, v in terms.data_parallel_us.items()},
        terms.candidates,
    )


def boundary_band_bytes(capacity_bytes: float) -> int:
    """How far above the capacity a candidate's table peak can lie while its floating-point memory
    still fits: the rounding up of three byte terms, one byte per row and the slack of two rows."""
    return 2 * (math.ceil(capacity_bytes) >> RELATIVE_SLACK_BITS) + 8
