"""The CP-SAT model: data, variables, constraints, objective, solve -- in that order.

Nothing here restates a formula: every coefficient comes from ``planner.space.compile_terms``,
tables over only the dimensions each term depends on, linked by linear sums over row selectors.
"""

import time
from dataclasses import dataclass

from ortools.sat.python import cp_model

from planner.search import Candidate
from planner.space import Space, Terms

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


def solve(
    space: Space, terms: Terms, capacity: int, top: int = 1, time_limit_s: float | None = None
) -> SolveResult:
    """Find the ``top`` best feasible candidates; ``optimal`` only when CP-SAT proves it.

    Each table is a set of rows; one boolean per row selects it (exactly one per table), and the
    two selected rows must agree on the layout, the only dimension the tables share. Memory per
    stage and the objective are linear sums over the selected rows.
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

    # Solve, then exclude each answer to find the next best.
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = NUM_WORKERS
    solver.parameters.random_seed = RANDOM_SEED
    found: list[Candidate] = []
    status_name, objective, bound, spent = "infeasible", None, None, 0.0
    for rank in range(top):
        if time_limit_s is not None:
            solver.parameters.max_time_in_seconds = max(time_limit_s - spent, 0.01)
        start = time.perf_counter()
        status = solver.solve(model)
        spent += time.perf_counter() - start
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            if rank == 0 and status == cp_model.UNKNOWN:
                status_name = "unknown"
            break
        i = next(k for k, x in enumerate(pick_state) if solver.value(x))
        j = next(k for k, y in enumerate(pick_act) if solver.value(y))
        (p, z), state_mem = states_rows[i]
        (_, r, u), act_mem = act_rows[j]
        peak = max(state_mem[stage] + act_mem[stage] for stage in (0, 1))
        found.append(
            Candidate(indices=(p, z, r, u), objective=round(solver.objective_value), peak_memory=peak)
        )
        if rank == 0:
            status_name = "optimal" if status == cp_model.OPTIMAL else "feasible"
            objective, bound = round(solver.objective_value), round(solver.best_objective_bound)
        model.add_bool_or([pick_state[i].Not(), pick_act[j].Not()])
    return SolveResult(
        status=status_name, candidates=found, wall_time_s=spent, objective=objective, bound=bound
    )
