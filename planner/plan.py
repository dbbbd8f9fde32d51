"""Plan a cluster: validate the pins, search the space, and diagnose infeasibility.

``planner.document`` turns the outcome into the plan document; the launch files are built once from
the chosen configuration (``launch_of``).
"""

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from planner.calibration import StepTimeConstants
from planner.checkpoint import CheckpointRequest
from planner.deadline import Deadline
from planner.diagnose import fits_anywhere, min_gpus_for_states, smallest_fixes
from planner.emit import Target
from planner.errors import PlannerError
from planner.evaluate import num_microbatches
from planner.launch import Launch, launch_files
from planner.rules import valid_pp, valid_tp
from planner.scaling import Units, choose_units, scale_terms
from planner.search import Candidate, brute_force, count_candidates, least_memory
from planner.solver import load as load_solver
from planner.solver import solve
from planner.space import Pins, Space, bound_top, build_space, capacity_units, search_terms
from planner.specs import HardwareSpec, ModelSpec, ParallelConfig, TrainingSpec
from planner.validate import validate_pins
from planner.verify import boundary_candidates, check_reported
from planner.workers import meanwhile

__all__ = ["Request", "Outcome", "run", "best_config", "launch_of", "fits_anywhere", "validate_pins"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """Everything ``plan`` was asked."""

    model: ModelSpec
    hardware: HardwareSpec
    training: TrainingSpec
    gpus: int
    pins: Pins = Pins()
    top: int = 1
    exhaustive: bool = False
    time_limit_s: float | None = None
    """Seconds the whole search may take, diagnosis included (None: no limit)."""
    constants: StepTimeConstants | None = None
    """Step-time constants; None: the GPU's own (``hardware.step_constants``: a preset's fit, a
    profile's ``constants``, else the calibrated defaults)."""
    checkpoint: CheckpointRequest = CheckpointRequest()
    global_batch_note: str | None = None
    """How the default global batch was chosen (``planner.defaults``); None when given."""
    timing: bool = False
    """Report the solver's wall time (``solver.wall_time_s``); off, so that the same request always
    gives a byte-identical document."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """A searched plan: status, best configuration (or the closest one), alternatives, diagnosis."""

    status: str
    space: Space
    chosen: list[Candidate]
    wall_time_s: float
    objective: int | None
    bound: int | None
    candidates: int
    method: str
    units: Units = Units()
    """Resolution of the integer tables the search ranked by."""
    shortfall: str | None = None
    """Why fewer plans than ``top`` are listed (None when all are, or none fits)."""
    closest: Candidate | None = None
    fixes: dict[str, Any] | None = None


def run(
    req: Request, deadline: Deadline | None = None, progress: Callable[[str], None] | None = None
) -> Outcome:
    """Search the space (CP-SAT over the layouts that can hold one of the ``top`` plans, or, with
    ``exhaustive``, brute force over every layout's rows: ``space.search_terms``), then check the
    answer against the evaluator (``planner.verify``). The whole command, diagnosis included,
    starts no new work after the deadline (by default ``req.time_limit_s`` from now). When nothing
    fits, each probe of the diagnosis says what it tries to ``progress``."""
    deadline = deadline or Deadline(limit_s=req.time_limit_s)
    validate_pins(req)
    space = build_space(req.model, req.training, req.gpus, req.pins, req.hardware.nvlink_domain_gpus)
    if not space.layouts:
        raise PlannerError(
            f"no tp x cp x pp layout divides --gpus {req.gpus} for this model; "
            f"tp from {valid_tp(req.model)}, pp from {valid_pp(req.model)}"
        )
    fewest = min_gpus_for_states(req.model, req.training, req.hardware, req.pins)
    states_fit = req.gpus >= fewest
    # OR-Tools imported while workers tabulate (or after), so before the search's clock starts; not
    # at all where the model states alone do not fit (the presolve proves that without a model)
    searching = states_fit and not req.exhaustive
    with meanwhile(load_solver) if searching else nullcontext():
        # where memory does not bind, only the layouts that can hold one of the --top plans
        top = bound_top(req.gpus, fewest, req.top)
        terms = search_terms(
            space, req.model, req.hardware, req.training, req.constants, states_fit=states_fit, top=top
        )
    capacity = capacity_units(req.hardware)
    if not terms.activations:
        batch_fits = any(
            space.mbs_fits(p, u, req.training.global_batch_size)
            for p in range(len(space.layouts))
            for u in range(len(space.micro_batches))
        )
        if batch_fits:
            raise PlannerError(
                f"--framework {req.training.framework.value} cannot run the recompute / offload these pins "
                "leave (DeepSpeed offloads activations only with full recompute; Megatron-LM without "
                "pipelining and instead of recompute); change the pins or use --framework megatron"
            )
        raise PlannerError(
            f"--global-batch {req.training.global_batch_size} is not divisible by dp*mbs "
            f"for any layout of {req.gpus} GPUs; use a multiple of {req.gpus}"
        )
    if not terms.states:
        raise PlannerError(
            f"--framework {req.training.framework.value} cannot run any layout these pins leave "
            "(DeepSpeed's pipeline engine supports ZeRO-0/1 only); unpin --zero or --pp, or use "
            "--framework megatron"
        )
    units = choose_units(space, terms)
    if req.exhaustive and top is not None:  # the oracle enumerates every layout's rows, ranked in
        # the unit CP-SAT ranks by (where memory binds, CP-SAT's tables are already every layout's)
        terms = search_terms(
            space, req.model, req.hardware, req.training, req.constants, states_fit=states_fit
        )
    terms = scale_terms(terms, units)
    counted = count_candidates(terms)
    limited = False
    if req.exhaustive:
        start = time.perf_counter()
        chosen = brute_force(space, terms, capacity, req.top)
        wall = time.perf_counter() - start
        status = "optimal" if chosen else "infeasible"
        objective = chosen[0].objective if chosen else None
        bound, method = objective, "exhaustive"
    else:
        start = time.perf_counter()  # the whole search, as for brute force: presolve, model, solves
        result = solve(space, terms, capacity, req.top, deadline)
        wall = time.perf_counter() - start
        if result.status == "unknown":
            raise PlannerError(
                f"--time-limit {req.time_limit_s} s: CP-SAT found no plan and no proof of "
                "infeasibility in time; raise --time-limit or leave it out"
            )
        chosen, status = result.candidates, result.status
        objective, bound, method = result.objective, result.bound, "cp-sat"
        limited = result.time_limited
    check_reported(req.model, req.hardware, req.training, req.constants, space, units, chosen)
    if not chosen:
        chosen = boundary_candidates(req.model, req.hardware, req.training, space, terms, capacity, req.top)
        if chosen:
            status, objective = "optimal", chosen[0].objective
            bound = objective
    closest = None if chosen else least_memory(space, terms)
    return Outcome(
        status=status if chosen else "infeasible",
        space=space,
        chosen=chosen,
        wall_time_s=wall,
        objective=objective,
        bound=bound,
        candidates=counted,
        method=method,
        units=units,
        shortfall=shortfall(req, len(chosen), limited),
        closest=closest,
        fixes=None if chosen else smallest_fixes(req, closest, space, deadline, progress),
    )


def shortfall(req: Request, found: int, time_limited: bool) -> str | None:
    """Why fewer plans than ``--top`` are listed, or None when all are."""
    if found == 0 or found >= req.top:
        return None
    if time_limited:
        return f"--time-limit {req.time_limit_s} s reached after {found} of --top {req.top} plans"
    return f"only {found} distinct plans fit (--top {req.top})"


def best_config(outcome: Outcome) -> ParallelConfig | None:
    """The plan's layout: the best candidate, or the closest one when nothing fits."""
    best = outcome.chosen[0] if outcome.chosen else outcome.closest
    return None if best is None else outcome.space.config(*best.indices)


def launch_of(req: Request, outcome: Outcome, save_interval: int) -> Launch | None:
    """The launch files of the outcome's plan, saving a checkpoint every ``save_interval`` steps,
    and the document's ``launch`` block (None when nothing was planned)."""
    config = best_config(outcome)
    if config is None:
        return None
    target = Target(
        model_name=req.model.name,
        gpu_name=req.hardware.name,
        gpus=req.gpus,
        gpus_per_node=req.hardware.gpus_per_node,
        config=config,
        grad_accum_steps=num_microbatches(req.training, config),
    )
    return launch_files(req.model, req.training, target, save_interval)
