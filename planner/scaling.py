"""Integer units for the CP-SAT model, chosen per request so that no linear expression overflows.

CP-SAT refuses a model (``MODEL_INVALID``, "Possible integer overflow") when a linear constraint's
or the objective's activity -- the sum over its terms of |coefficient| times the largest |value|
of the variable -- can exceed ``2**62 - 1`` (OR-Tools ``cp_model_checker.cc``;
``tests/planner/test_scaling.py`` probes the limit with ``CpModel.validate``). Before this module, a
roomy request (``--mem 1000000TB``, a global batch of 2^34 sequences, a tiny ``peak_tflops``) built
such a model and was reported ``infeasible``.

The terms of ``planner.space.compile_terms`` are exact Python integers at the base resolution
(bytes, microseconds). ``choose_units`` picks the smallest power-of-two memory and time units at
which every expression of the solver's model stays within the limit, computed from the actual
rows, so the bound is proven for each accepted input rather than assumed; ``scale_terms`` converts
the tables (memory rounded up, so the solver still never under-estimates; time to nearest). The
solver and the brute-force oracle both search the scaled tables. A space so large that even its
tie-break ranks overflow is refused with a one-line error.
"""

import math
from dataclasses import dataclass

from planner.errors import PlannerError
from planner.space import Space, Terms

CP_SAT_MAX_ACTIVITY = 2**62 - 1  # OR-Tools cp_model_checker: larger activities are refused
RELATIVE_SLACK_BITS = 40  # memory rows grow by 2**-40 of themselves: float sums of the same terms
# (the evaluator's ``MemoryBreakdown.total``) differ by a few ulps (2**-52), never by this much


@dataclass(frozen=True, slots=True, kw_only=True)
class Units:
    """Resolution of the integer tables."""

    memory_bytes: int = 1
    """Bytes per memory unit (a power of two; 1 unless the capacity times the row count is huge)."""
    time_us: int = 1
    """Microseconds per time unit (a power of two; 1 unless step times are huge)."""


def memory_up(value_bytes: int, unit: int) -> int:
    """Bytes to memory units, rounded up after the relative slack (never under-estimates)."""
    padded = value_bytes + (value_bytes >> RELATIVE_SLACK_BITS) + (1 if value_bytes > 0 else 0)
    return -(-padded // unit)


def capacity_down(capacity_bytes: float, unit: int) -> int:
    """Device memory in memory units, rounded down."""
    return math.floor(capacity_bytes) // unit


def time_nearest(value_us: int, unit: int) -> int:
    """Microseconds to time units, rounded to nearest (half up)."""
    return (value_us + unit // 2) // unit


def kept_rows(table: dict, capacity_bytes: float) -> list:
    """The rows the solver keeps: a row whose own memory exceeds the capacity on some stage can
    never be part of a plan that fits."""
    return [key for key, mem in table.items() if max(mem) <= capacity_bytes]


def memory_activity(terms: Terms, capacity_bytes: float, unit: int) -> int:
    """Largest activity of the solver's per-stage memory constraints (all kept rows at 1) and of
    its capacity bound."""
    states = kept_rows(terms.states, capacity_bytes)
    acts = kept_rows(terms.activations, capacity_bytes)
    per_stage = [
        sum(memory_up(terms.states[k][st], unit) for k in states)
        + sum(memory_up(terms.activations[k][st], unit) for k in acts)
        for st in (0, 1)
    ]
    return max(*per_stage, capacity_down(capacity_bytes, unit))


def objective_activity(space: Space, terms: Terms, unit: int) -> int:
    """Activity of the solver's objective: every row's time times the tie-break range plus its
    tie-break share (each below the range)."""
    scale = space.tie_break_range
    times = list(terms.data_parallel_us.values()) + list(terms.pipeline_us.values())
    return sum(time_nearest(t, unit) * scale + scale for t in times)


def _smallest_unit(activity_at, base_activity: int) -> int:
    """Smallest power of two ``u`` with ``activity_at(u)`` within the limit; starts from the
    estimate ``base / limit`` and doubles (each doubling roughly halves the activity)."""
    unit = 1 << max(0, math.ceil(math.log2(max(1, base_activity) / CP_SAT_MAX_ACTIVITY)))
    while activity_at(unit) > CP_SAT_MAX_ACTIVITY:
        unit *= 2
    return unit


def choose_units(space: Space, terms: Terms, capacity_bytes: float) -> Units:
    """The finest units at which the solver's model is within CP-SAT's integer range."""
    floor = sum(space.tie_break_range for _ in terms.data_parallel_us) + sum(
        space.tie_break_range for _ in terms.pipeline_us
    )
    if floor > CP_SAT_MAX_ACTIVITY:
        raise PlannerError(
            f"the search space ({space.size} candidates) is too large for CP-SAT's 62-bit objective; "
            "pin --tp, --pp or --mbs to narrow it"
        )
    memory_unit = _smallest_unit(
        lambda u: memory_activity(terms, capacity_bytes, u), memory_activity(terms, capacity_bytes, 1)
    )
    time_unit = _smallest_unit(
        lambda u: objective_activity(space, terms, u), objective_activity(space, terms, 1)
    )
    return Units(memory_bytes=memory_unit, time_us=time_unit)


def scale_terms(terms: Terms, units: Units) -> Terms:
    """The tables at ``units``: memory rounded up, time to nearest."""
    m, t = units.memory_bytes, units.time_us
    return Terms(
        {k: tuple(memory_up(v, m) for v in mem) for k, mem in terms.states.items()},
        {k: tuple(memory_up(v, m) for v in mem) for k, mem in terms.activations.items()},
        {k: time_nearest(v, t) for k, v in terms.pipeline_us.items()},
        {k: time_nearest(v, t) for k, v in terms.data_parallel_us.items()},
    )


def boundary_band_units(capacity_bytes: float, units: Units) -> int:
    """How far above the capacity (in memory units) a candidate's integer peak can lie while its
    floating-point memory still fits: the rounding up of three byte terms and two scaled rows, and
    the relative slack of two rows."""
    slack_bytes = 2 * (math.ceil(capacity_bytes) >> RELATIVE_SLACK_BITS) + 8
    return 4 + -(-slack_bytes // units.memory_bytes)
