"""The CP-SAT model: data, variables, constraints, objective, solve -- in that order.

Nothing here restates a formula: every coefficient comes from ``planner.space.compile_terms``,
tables over only the dimensions each term depends on, linked through the domain-index variables.
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
    """Find the ``top`` best feasible candidates; ``optimal`` only when CP-SAT proves it."""
    # Data
    states_rows = [(p, z, *mem, terms.data_parallel_us[p, z]) for (p, z), mem in terms.states.items()]
    act_rows = [(p, r, u, *mem, terms.pipeline_us[p, r, u]) for (p, r, u), mem in terms.activations.items()]
    if not states_rows or not act_rows:
        return SolveResult(status="infeasible", candidates=[], wall_time_s=0.0, objective=None, bound=None)
    big_mem = max(max(row[2:4]) for row in states_rows) + max(max(row[3:5]) for row in act_rows)

    # Variables
    model = cp_model.CpModel()
    pair = model.new_int_var(0, len(space.pairs) - 1, "pair")
    zero = model.new_int_var(0, len(space.zero_stages) - 1, "zero")
    rec = model.new_int_var(0, len(space.recomputes) - 1, "recompute")
    mbs = model.new_int_var(0, len(space.micro_batches) - 1, "mbs")
    state_first, state_last = (model.new_int_var(0, big_mem, n) for n in ("state_first", "state_last"))
    act_first, act_last = (model.new_int_var(0, big_mem, n) for n in ("act_first", "act_last"))
    dp_time = model.new_int_var(0, max(r[4] for r in states_rows), "dp_time")
    pipe_time = model.new_int_var(0, max(r[5] for r in act_rows), "pipe_time")

    # Constraints: tables link the dimensions to their terms; memory within capacity per stage.
    model.add_allowed_assignments([pair, zero, state_first, state_last, dp_time], states_rows)
    model.add_allowed_assignments([pair, rec, mbs, act_first, act_last, pipe_time], act_rows)
    model.add(state_first + act_first <= capacity)
    model.add(state_last + act_last <= capacity)

    # Objective: time, then the lexicographic tie-break of planner.space.Space.tie_break.
    n_r, n_p, n_u = len(space.recomputes), len(space.pairs), len(space.micro_batches)
    tie = ((zero * n_r + rec) * n_p + pair) * n_u + mbs
    model.minimize((pipe_time + dp_time) * space.tie_break_range + tie)

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
        idx = (solver.value(pair), solver.value(zero), solver.value(rec), solver.value(mbs))
        peak = max(
            solver.value(state_first) + solver.value(act_first),
            solver.value(state_last) + solver.value(act_last),
        )
        found.append(Candidate(indices=idx, objective=round(solver.objective_value), peak_memory=peak))
        if rank == 0:
            status_name = "optimal" if status == cp_model.OPTIMAL else "feasible"
            objective, bound = round(solver.objective_value), round(solver.best_objective_bound)
        model.add_forbidden_assignments([pair, zero, rec, mbs], [idx])
    return SolveResult(
        status=status_name, candidates=found, wall_time_s=spent, objective=objective, bound=bound
    )
