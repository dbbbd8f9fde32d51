"""The CP-SAT model: data, variables, constraints, objective, solve -- in that order.

Nothing here restates a formula: every coefficient comes from ``planner.space.compile_terms``,
tables over only the dimensions each term depends on, linked by linear sums over row selectors.
"""

import time
from dataclasses import dataclass

from ortools.sat.python import cp_model

from planner.deadline import NO_DEADLINE, Deadline
from planner.errors import PlannerError
from planner.search import Candidate
from planner.space import Space, Terms, candidate_cost

MIN_SOLVE_S = 0.01  # CP-SAT needs a positive limit; below this the deadline has passed

NUM_WORKERS = 2  # this is a 2-core planning machine; the tie-break makes the optimum unique
RANDOM_SEED = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SolveResult:
    """What CP-SAT found."""

    status: str
    """optimal, feasible (time limit hit with a solution), infeasible (proven), or unknown (time
    limit hit before any solution or proof)."""
    candidates: list[Candidate]
    """Best first; up to ``top``."""
    wall_time_s: float
    """Seconds spent in CP-SAT, all solves."""
    objective: int | None
    """Objective of the best candidate."""
    bound: int | None
    """Best proven lower bound of the objective."""
    time_limited: bool = False
    """Whether the time limit ended the search (then fewer than ``top`` candidates may be listed,
    or the first may be unproven)."""


def solve(
    space: Space,
    terms: Terms,
    capacity: int,
    top: int = 1,
    deadline: Deadline = NO_DEADLINE,
) -> SolveResult:
    """Find the ``top`` best feasible candidates; ``optimal`` only when CP-SAT proves it.

    Each table is a set of rows; one boolean per row selects it (exactly one per table), and the
    two selected rows must agree on the layout, the only dimension the tables share. Memory per
    stage and the objective are linear sums over the selected rows. ``terms`` must be within
    CP-SAT's integer range (``planner.scaling``); a model CP-SAT refuses is an error, never
    "infeasible". No solve starts after the ``deadline`` and none runs past it.
    """
    # Data: a row whose own term already exceeds the capacity on some stage can never be part of
    # a plan that fits, so it is left out (the feasible set is unchanged; the model gets smaller).
    states_rows = [(key, mem) for key, mem in terms.states.items() if max(mem) <= capacity]
    act_rows = [(key, mem) for key, mem in terms.activations.items() if max(mem) <= capacity]
    if not states_rows or not act_rows:
        return SolveResult(status="infeasible", candidates=[], wall_time_s=0.0, objective=None, bound=None)
    n_r, n_l, n_u = len(space.recomputes), len(space.layouts), len(space.micro_batches)
    scale = space.tie_break_range

    # Variables: one selector per row of each table.
    model = cp_model.CpModel()
    pick_state = [model.new_bool_var(f"state_{p}_{z}") for (p, z), _ in states_rows]
    pick_act = [model.new_bool_var(f"act_{p}_{r}_{u}") for (p, r, u), _ in act_rows]

    # Constraints: one row of each table, on the same layout; every stage within capacity.
    model.add_exactly_one(pick_state)
    model.add_exactly_one(pick_act)
    model.add(
        sum(p * x for ((p, _), _), x in zip(states_rows, pick_state, strict=True))
        == sum(p * y for ((p, _, _), _), y in zip(act_rows, pick_act, strict=True))
    )
    for stage in (0, 1):
        model.add(
            sum(mem[stage] * x for (_, mem), x in zip(states_rows, pick_state, strict=True))
            + sum(mem[stage] * y for (_, mem), y in zip(act_rows, pick_act, strict=True))
            <= capacity
        )

    # Objective: time, then the lexicographic tie-break of planner.space.Space.tie_break, split
    # over the two tables (ZeRO stage from the first; recompute, layout, micro-batch from the second).
    model.minimize(
        sum(
            (terms.data_parallel_us[p, z] * scale + z * n_r * n_l * n_u) * x
            for ((p, z), _), x in zip(states_rows, pick_state, strict=True)
        )
        + sum(
            (terms.pipeline_us[p, r, u] * scale + (r * n_l + p) * n_u + u) * y
            for ((p, r, u), _), y in zip(act_rows, pick_act, strict=True)
        )
    )

    refusal = model.validate()
    if refusal:
        raise PlannerError(
            f"internal error: CP-SAT refuses the model ({refusal.splitlines()[0]}); please report the command"
        )

    # Solve, then exclude each answer to find the next best.
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = NUM_WORKERS
    solver.parameters.random_seed = RANDOM_SEED
    found: list[Candidate] = []
    status_name, objective, bound, spent, limited = "infeasible", None, None, 0.0, False
    for rank in range(top):
        left = deadline.remaining_s()
        if left is not None:
            if left < MIN_SOLVE_S:
                limited = True
                status_name = status_name if found else "unknown"
                break
            solver.parameters.max_time_in_seconds = left
        start = time.perf_counter()
        status = solver.solve(model)
        spent += time.perf_counter() - start
        if status == cp_model.MODEL_INVALID:
            raise PlannerError("internal error: CP-SAT found the model invalid; please report the command")
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            limited = status == cp_model.UNKNOWN
            if rank == 0 and limited:
                status_name = "unknown"
            break
        limited = limited or status == cp_model.FEASIBLE
        i = next(k for k, x in enumerate(pick_state) if solver.value(x))
        j = next(k for k, y in enumerate(pick_act) if solver.value(y))
        (p, z), _ = states_rows[i]
        (_, r, u), _ = act_rows[j]
        # The objective and peak from the tables in exact integers (CP-SAT reports doubles).
        cost, peak = candidate_cost(terms, space, p, z, r, u)
        found.append(Candidate(indices=(p, z, r, u), objective=cost, peak_memory=peak))
        if rank == 0:
            status_name = "optimal" if status == cp_model.OPTIMAL else "feasible"
            objective = cost
            bound = cost if status == cp_model.OPTIMAL else round(solver.best_objective_bound)
        model.add_bool_or([pick_state[i].Not(), pick_act[j].Not()])
    return SolveResult(
        status=status_name,
        candidates=found,
        wall_time_s=spent,
        objective=objective,
        bound=bound,
        time_limited=limited,
    )
