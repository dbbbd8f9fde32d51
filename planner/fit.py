"""Fit the step-time constants to a user's measured runs (``plan calibrate``).

The step-time model is a black box here: ``planner.performance.performance`` with candidate
``StepTimeConstants``. The fit minimizes the mean absolute log error of predicted against measured
step time (the loss ``benchmarks/calibrate.py`` uses on the published runs) by Nelder-Mead
(Nelder and Mead 1965) over the chosen constants, each mapped onto [0, 1] between its bounds
(logarithmically where its range spans decades) and restarted from its own optimum until it stops
improving: derivative-free, because the model has kinks (``max``, pipeline bubbles), and
deterministic, so the same runs give the same constants.
"""

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

from planner.calibration import StepTimeConstants
from planner.errors import PlannerError
from planner.performance import performance
from planner.runs import MeasuredRun

DEFAULT_FIT = (
    "gemm_max_efficiency",
    "attention_efficiency",
    "comm_efficiency",
    "dp_overlap",
    "elementwise_bytes_per_width",
)
"""Constants fitted unless ``--fit`` says otherwise, those of them the model has: the ones that
govern every dense run (compute, communication, memory-bound work)."""
MIN_EFFICIENCY = 0.05  # the lowest share of a peak the search tries
LOG_SPAN = 10.0  # a positive constant without a known range: a decade either side of its default
REFLECT, EXPAND, CONTRACT, SHRINK = 1.0, 2.0, 0.5, 0.5  # Nelder-Mead's standard coefficients
INITIAL_STEP = 0.15  # first simplex: 15% of each constant's range around the start
RESTART_STEP = 0.05
MAX_RESTARTS = 8
MAX_EVALUATIONS = 4000
TOLERANCE = 1e-10


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound:
    """Where a constant may go; ``log`` spaces the search by ratios instead of differences."""

    low: float
    """Smallest value tried."""
    high: float
    """Largest value tried."""
    log: bool = False
    """Search ``log(value)`` (ranges of several decades)."""

    def value(self, unit: float) -> float:
        """The constant at position ``unit`` in [0, 1]."""
        if self.log:
            return self.low * (self.high / self.low) ** unit
        return self.low + (self.high - self.low) * unit

    def unit(self, value: float) -> float:
        """Position of ``value`` in [0, 1] (clipped into the bounds)."""
        value = min(max(value, self.low), self.high)
        if self.log:
            return math.log(value / self.low) / math.log(self.high / self.low)
        return (value - self.low) / (self.high - self.low)


BOUNDS = {
    "gemm_max_efficiency": Bound(low=0.2, high=1.0),  # a share of the dense peak
    "comm_efficiency": Bound(low=0.1, high=1.0),  # a share of the link's bandwidth
    "elementwise_bytes_per_width": Bound(low=10.0, high=1000.0, log=True),  # bytes per element, token, pass
    "cpu_adam_params_per_s": Bound(low=1e7, high=1e10, log=True),
    "moe_layer_overhead_s": Bound(low=0.0, high=0.05),  # seconds per MoE layer and micro-batch
    "moe_expert_overhead_s": Bound(low=0.0, high=0.005),  # seconds per local expert, layer, micro-batch
}
"""Known ranges; any other constant named ``*_efficiency`` is a share in [0.05, 1], ``*_overlap`` a
share in [0, 1], and any other positive one spans a decade either side of its default."""


def bound_for(name: str, default: float) -> Bound:
    """The search range of constant ``name``."""
    if name in BOUNDS:
        return BOUNDS[name]
    if name.endswith("_efficiency"):  # a share of a peak; 0 would make the step infinite
        return Bound(low=MIN_EFFICIENCY, high=1.0)
    if name.endswith("_overlap") or default == 0:
        return Bound(low=0.0, high=1.0)
    return Bound(low=default / LOG_SPAN, high=default * LOG_SPAN, log=True)


def at_bounds(constants: StepTimeConstants, start: StepTimeConstants, names: Sequence[str]) -> list[str]:
    """The fitted constants that ended on a bound of their range: the runs do not pin them down."""
    ends = []
    for name in names:
        bound, value = bound_for(name, getattr(start, name)), getattr(constants, name)
        if math.isclose(value, bound.low, rel_tol=1e-3) or math.isclose(value, bound.high, rel_tol=1e-3):
            ends.append(name)
    return ends


def constant_names() -> list[str]:
    """The step-time constants the model has now."""
    return [f.name for f in fields(StepTimeConstants)]


def default_fit() -> list[str]:
    """The constants fitted by default."""
    return [name for name in DEFAULT_FIT if name in constant_names()]


def check_names(names: Sequence[str]) -> None:
    """One-line error for names that are not step-time constants."""
    known = constant_names()
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise PlannerError(
            f"--fit: unknown constant(s) {', '.join(unknown) or '(none)'}; use {', '.join(known)}"
        )


def predicted_s(run: MeasuredRun, constants: StepTimeConstants) -> float:
    """The model's step time for a measured run."""
    return performance(run.model, run.hardware, run.training, run.config, constants).step_time_s


def log_errors(runs: Sequence[MeasuredRun], constants: StepTimeConstants) -> list[float]:
    """``log(predicted / measured)`` per run."""
    return [math.log(predicted_s(run, constants) / run.step_time_s) for run in runs]


def loss(runs: Sequence[MeasuredRun], constants: StepTimeConstants) -> float:
    """Mean absolute log error."""
    return statistics.fmean(abs(e) for e in log_errors(runs, constants))


def nelder_mead(
    f: Callable[[list[float]], float], start: list[float], step: float
) -> tuple[list[float], float]:
    """Minimize ``f`` over the unit cube from ``start`` (points clipped into the cube)."""

    def clip(point: list[float]) -> list[float]:
        return [min(max(x, 0.0), 1.0) for x in point]

    def toward(a: list[float], b: list[float], t: float) -> list[float]:
        return clip([x + t * (y - x) for x, y in zip(a, b, strict=True)])

    vertices = [clip(start)]
    for i in range(len(start)):
        vertex = list(vertices[0])
        vertex[i] += step if vertex[i] + step <= 1.0 else -step
        vertices.append(clip(vertex))
    simplex = sorted(((f(v), v) for v in vertices), key=lambda pair: pair[0])
    evaluations = len(simplex)
    while evaluations < MAX_EVALUATIONS and simplex[-1][0] - simplex[0][0] > TOLERANCE:
        worst_value, worst = simplex[-1]
        centroid = [statistics.fmean(column) for column in zip(*(v for _, v in simplex[:-1]), strict=True)]
        reflected = toward(centroid, worst, -REFLECT)
        r_value = f(reflected)
        evaluations += 1
        if r_value < simplex[0][0]:
            expanded = toward(centroid, worst, -EXPAND)
            e_value = f(expanded)
            evaluations += 1
            simplex[-1] = (e_value, expanded) if e_value < r_value else (r_value, reflected)
        elif r_value < simplex[-2][0]:
            simplex[-1] = (r_value, reflected)
        else:
            contracted = toward(centroid, worst, CONTRACT)
            c_value = f(contracted)
            evaluations += 1
            if c_value < worst_value:
                simplex[-1] = (c_value, contracted)
            else:  # shrink every vertex toward the best
                best = simplex[0][1]
                simplex = [simplex[0]] + [
                    (f(p), p) for p in (toward(best, v, SHRINK) for _, v in simplex[1:])
                ]
                evaluations += len(simplex) - 1
        simplex.sort(key=lambda pair: pair[0])
    return simplex[0][1], simplex[0][0]


def fit_constants(
    runs: Sequence[MeasuredRun], start: StepTimeConstants, names: Sequence[str]
) -> StepTimeConstants:
    """The constants ``names`` that minimize the mean |log error| over ``runs``, the others kept
    at ``start``."""
    check_names(names)
    bounds = [bound_for(name, getattr(start, name)) for name in names]

    def constants_at(point: list[float]) -> StepTimeConstants:
        return replace(start, **{n: b.value(u) for n, b, u in zip(names, bounds, point, strict=True)})

    def objective(point: list[float]) -> float:
        return loss(runs, constants_at(point))

    point = [b.unit(getattr(start, n)) for n, b in zip(names, bounds, strict=True)]
    best = objective(point)
    point, value = nelder_mead(objective, point, INITIAL_STEP)
    for _ in range(MAX_RESTARTS):  # a fresh simplex escapes where the last one collapsed
        if value >= best - TOLERANCE:
            break
        best = value
        point, value = nelder_mead(objective, point, RESTART_STEP)
    return constants_at(point) if value < loss(runs, start) else start


@dataclass(frozen=True, slots=True, kw_only=True)
class RunError:
    """One run's measured and predicted step time, before and after the fit."""

    name: str
    """The run's label."""
    measured_s: float
    """Measured seconds per step."""
    before_s: float
    """Predicted with the starting constants."""
    after_s: float
    """Predicted with the fitted constants."""

    @property
    def before_error(self) -> float:
        """Relative error before: ``predicted / measured - 1``."""
        return self.before_s / self.measured_s - 1

    @property
    def after_error(self) -> float:
        """Relative error after the fit."""
        return self.after_s / self.measured_s - 1


def run_errors(
    runs: Sequence[MeasuredRun], before: StepTimeConstants, after: StepTimeConstants
) -> list[RunError]:
    """Per-run predictions with both sets of constants."""
    return [
        RunError(
            name=run.name,
            measured_s=run.step_time_s,
            before_s=predicted_s(run, before),
            after_s=predicted_s(run, after),
        )
        for run in runs
    ]
