"""The CP-SAT model: data, variables, constraints, objective, solve -- in that order.

Nothing here restates a formula: every coefficient comes from ``planner.space.compile_terms``,
tables over only the dimensions each term depends on, linked by linear sums over row selectors. The
rows are first reduced to those that can be part of a ``top``-best plan (``planner.presolve``);
``top`` plans come from one enumerating solve where few rows are left, else from ``top`` solves.
"""

import importlib
import sys
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from planner.deadline import NO_DEADLINE, Deadline
from planner.errors import PlannerError
from planner.presolve import Incumbent, Row, reduce_rows
from planner.search import Candidate
from planner.space import Space, Terms, candidate_cost

MIN_SOLVE_S = 0.01  # CP-SAT needs a positive limit; below this the deadline has passed

NUM_WORKERS = 2  # this is a 2-core planning machine; the tie-break makes the optimum unique
SMALL_MODEL_ROWS = 1000  # up to this many rows one worker: starting a second thread costs more than
# it searches (a few hundred rows: 0.2 ms per solve with one worker, 0.6 to 2 ms with two, measured
# on the 2-core development machine); the presolve leaves most requests well below it
RANDOM_SEED = 0
TINY_MODEL_ROWS = 100  # up to this many rows, TINY_MODEL_PARAMETERS too (measured on 9 to 13 rows)
TINY_MODEL_PARAMETERS = {
    "cp_model_presolve": False,
    "linearization_level": 0,
    "cp_model_probing_level": 0,
    "symmetry_level": 0,
}
"""CP-SAT's own preparation, skipped on tiny models: its presolve, LP relaxation, probing and
symmetry detection cost more than searching a few dozen rows (each solve of the 12-row model of
``benchmarks/search_speed.py``'s pp16 case: 0.4 ms with them, 0.17 ms without; the other cases'
models, 9 to 13 rows after ``planner.presolve``, solve as fast or faster). They change how the
search runs, not what it proves: ``OPTIMAL`` is still a proof."""


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


def load():
    """OR-Tools' CP-SAT module, imported on first use, which only a search pays, not ``plan
    --help``, ``serve``, ``compare`` or ``--exhaustive``; a timed search imports it first. Its
    import loads pandas unless pandas is deferred (``_deferring_pandas``)."""
    module = sys.modules.get(CP_MODEL)
    if module is not None:
        return module
    if "pandas" in sys.modules:  # loaded already: nothing to save
        return importlib.import_module(CP_MODEL)
    try:
        with _deferring_pandas():
            module = importlib.import_module(CP_MODEL)
    except Exception:  # an OR-Tools that reads more of pandas as it loads: the plain import
        sys.modules.pop(CP_MODEL, None)
        return importlib.import_module(CP_MODEL)
    module.pd = _Pandas("pandas")  # the pandas-indexed helpers, if called, import the real one
    return module


CP_MODEL = "ortools.sat.python.cp_model"


@contextmanager
def _deferring_pandas() -> Iterator[None]:
    """While OR-Tools' ``cp_model`` is imported, a stand-in for pandas with the two names it reads
    as it loads (``pd.Index`` and ``pd.Series``, in a type alias). Loading pandas is two thirds of
    the import (0.26 of 0.39 s, ``python -X importtime``, on the development machine), and only
    ``cp_model``'s pandas-indexed helpers (``new_int_var_series`` and the like), which the planner
    never calls, use it; ``load`` then points them at ``_Pandas``, which imports the real pandas on
    first use. The stand-in leaves ``sys.modules`` when the import ends, so that a later ``import
    pandas`` anywhere gets the real one."""
    stand_in = types.ModuleType("pandas")
    stand_in.Index = type("Index", (), {})
    stand_in.Series = type("Series", (), {})
    sys.modules["pandas"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("pandas") is stand_in:
            del sys.modules["pandas"]


class _Pandas(types.ModuleType):
    """pandas, imported when one of its names is first read."""

    def __getattr__(self, name: str):
        return getattr(importlib.import_module("pandas"), name)


def new_model(cp_model):
    """An empty ``CpModel`` without the camel-case aliases of its methods (``addBoolOr`` for
    ``add_bool_or``, ...) that OR-Tools attaches to every new model for code written before PEP 8:
    attaching them walks every method of the model: 0.18 ms per model against 0.002 ms without, on
    the development machine, about a solve of a tiny model (``TINY_MODEL_PARAMETERS``); this module
    calls only the PEP 8 names."""
    return _model_class(cp_model)()


@cache
def _model_class(cp_model):
    """``CpModel`` whose new instances skip the camel-case aliases (``new_model``)."""

    class Model(cp_model.CpModel):
        def _add_pre_pep8_methods(self) -> None:
            pass

    return Model


def solve(
    space: Space,
    terms: Terms,
    capacity: int,
    top: int = 1,
    deadline: Deadline = NO_DEADLINE,
) -> SolveResult:
    """Find the ``top`` best feasible candidates; ``optimal`` only when CP-SAT proves it on the rows
    the presolve keeps (which hold every ``top``-best plan: ``planner.presolve``).

    Each table is a set of rows; one boolean per row selects it (exactly one per table), and the
    two selected rows belong to the one selected layout, the only dimension the tables share. The
    objective is a linear sum over the selected rows; ``terms`` must keep it within CP-SAT's integer
    range (``planner.scaling``), and a model CP-SAT refuses is an error, never "infeasible". No solve
    starts after the ``deadline`` and none runs past it. OR-Tools is imported only when the presolve
    leaves rows to search (``load``).

    More than one plan: where the presolve found ``top`` plans greedily and leaves at most
    ``ENUMERATE_PAIRS`` pairs of rows, one solve enumerates every plan that costs at most the
    ``top``-th greedy plan (the ``top`` best are among them: each costs at most that much), and
    they are ranked by their exact cost. Otherwise, or when the deadline cuts that solve short,
    the model minimizes the cost ``top`` times, each time excluding the plans found.
    """
    # Data: the rows that can be part of a ``top``-best plan (``planner.presolve``: over capacity,
    # dominated, or costlier than ``top`` plans found greedily are left out; the best ``top`` plans
    # are unchanged and the model gets smaller), and those greedy plans to start from.
    scale = space.tie_break_range

    def state_cost(key):
        p, z = key
        return terms.data_parallel_us[p, z] * scale + space.states_rank(z)

    def act_cost(key):
        p, r, u = key
        return terms.pipeline_us[p, r, u] * scale + space.activations_rank(p, r, u)

    reduced = reduce_rows(
        list(terms.states.items()), list(terms.activations.items()), state_cost, act_cost, capacity, top
    )
    states_rows, act_rows, known = reduced.states, reduced.activations, reduced.known
    if not states_rows or not act_rows:  # nothing fits: proven without a model
        return SolveResult(status="infeasible", candidates=[], wall_time_s=0.0, objective=None, bound=None)
    cp_model = load()

    # Variables: one selector per row of each table, and one per layout that both tables share.
    model = new_model(cp_model)
    pick_state = [model.new_bool_var(f"state_{p}_{z}") for (p, z), _ in states_rows]
    pick_act = [model.new_bool_var(f"act_{p}_{r}_{u}") for (p, r, u), _ in act_rows]
    layouts = sorted({p for (p, _), _ in states_rows} & {p for (p, _, _), _ in act_rows})
    pick_layout = {p: model.new_bool_var(f"layout_{p}") for p in layouts}

    # Constraints: one layout; one row of each table, on that layout (a selector per layout, rather
    # than equating the two tables' layout indices, keeps the LP relaxation tight).
    model.add_exactly_one(pick_layout.values())
    for rows, picks in ((states_rows, pick_state), (act_rows, pick_act)):
        by_layout: dict[int, list] = {}
        for (key, _), x in zip(rows, picks, strict=True):
            if key[0] in pick_layout:
                by_layout.setdefault(key[0], []).append(x)
            else:
                model.add(x == 0)
        for p, chosen in pick_layout.items():
            model.add(cp_model.LinearExpr.sum(by_layout[p]) == chosen)
    # Every stage within capacity, as one constraint per states row: the activations rows of its
    # layout that would overflow some stage beside it are excluded when it is picked (equivalent to
    # summing memory per stage, whose relaxation lets a fractional mix of rows through).
    act_by_layout: dict[int, list] = {}
    for ((p, _, _), mem), y in zip(act_rows, pick_act, strict=True):
        act_by_layout.setdefault(p, []).append((mem, y))
    for ((p, _), state_mem), x in zip(states_rows, pick_state, strict=True):
        overflow = [
            y
            for act_mem, y in act_by_layout.get(p, [])
            if any(s + a > capacity for s, a in zip(state_mem, act_mem, strict=True))
        ]
        if overflow:
            model.add(cp_model.LinearExpr.sum(overflow) <= 1 - x)

    # Objective: time, then the lexicographic tie-break of planner.space.Space.tie_break, split
    # over the two tables (Space.states_rank from the first, Space.activations_rank from the second).
    total_cost = cp_model.LinearExpr.weighted_sum(
        pick_state + pick_act,
        [state_cost(key) for key, _ in states_rows] + [act_cost(key) for key, _ in act_rows],
    )

    row_count = len(states_rows) + len(act_rows)

    def candidate(i: int, j: int) -> Candidate:
        """The candidate of states row ``i`` and activations row ``j``: its objective and peak from
        the tables in exact integers (CP-SAT reports doubles)."""
        (p, z), _ = states_rows[i]
        (_, r, u), _ = act_rows[j]
        cost, peak = candidate_cost(terms, space, p, z, r, u)
        return Candidate(indices=(p, z, r, u), objective=cost, peak_memory=peak)

    spent = 0.0
    pairs = _pair_count(states_rows, act_rows)
    if top > 1 and len(known) >= top and row_count <= SMALL_MODEL_ROWS and pairs <= ENUMERATE_PAIRS:
        # The ``top``-th greedy plan's cost bounds the ``top`` best plans': every plan within it,
        # enumerated by one solve, holds them (``_enumerate``).
        model.add(total_cost <= known[top - 1].objective)
        _validate(model)
        start, enumerator = time.perf_counter(), _new_solver(cp_model, row_count)
        enumerated = _enumerate(cp_model, model, enumerator, pairs, len(pick_state), deadline)
        spent = time.perf_counter() - start
        if enumerated is not None:
            found = sorted((candidate(i, j) for i, j in enumerated), key=lambda c: c.objective)[:top]
            return SolveResult(
                status="optimal",
                candidates=found,
                wall_time_s=spent,
                objective=found[0].objective,
                bound=found[0].objective,
            )
        # Cut short by the deadline: the one-by-one search below, within what is left of it (the
        # bound stays: it holds for the ``top`` best plans).
    model.minimize(total_cost)
    _validate(model)

    # Solve, then exclude each answer to find the next best; each solve starts from the best greedy
    # plan not yet found (a hint: CP-SAT then only has to prove it, or improve on it).
    state_var = {key: x for (key, _), x in zip(states_rows, pick_state, strict=True)}
    act_var = {key: y for (key, _), y in zip(act_rows, pick_act, strict=True)}
    hints = [c for c in known if c.states in state_var and c.activations in act_var]
    solver = _new_solver(cp_model, row_count)
    found: list[Candidate] = []
    status_name, objective, bound, limited = "infeasible", None, None, False
    for rank in range(top):
        left = deadline.remaining_s()
        if left is not None:
            if left < MIN_SOLVE_S:
                limited = True
                status_name = status_name if found else "unknown"
                break
            solver.parameters.max_time_in_seconds = left
        hint(model, hints, state_var, act_var, pick_layout, found)
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
        found.append(candidate(i, j))
        if rank == 0:
            status_name = "optimal" if status == cp_model.OPTIMAL else "feasible"
            objective = found[0].objective
            bound = objective if status == cp_model.OPTIMAL else round(solver.best_objective_bound)
        model.add_bool_or([pick_state[i].Not(), pick_act[j].Not()])
    return SolveResult(
        status=status_name,
        candidates=found,
        wall_time_s=spent,
        objective=objective,
        bound=bound,
        time_limited=limited,
    )


ENUMERATE_PAIRS = 4096
"""Up to this many (states row, activations row) pairs on the same layout left by the presolve,
the ``top`` best plans come from one enumerating solve (``_enumerate``) instead of ``top``
optimizing solves: on the small spaces CP-SAT's fixed cost per solve (about 0.2 ms on the
development machine) outweighs the search, and an enumeration lists at most this many plans."""


def _pair_count(states_rows: list[Row], act_rows: list[Row]) -> int:
    """How many (states row, activations row) pairs share a layout: the plans of the rows, fitting
    or not."""
    states: dict[int, int] = {}
    for (p, _), _ in states_rows:
        states[p] = states.get(p, 0) + 1
    return sum(states.get(key[0], 0) for key, _ in act_rows)


def _new_solver(cp_model, rows: int):
    """A ``CpSolver`` set for a model of ``rows`` table rows (``SMALL_MODEL_ROWS``,
    ``TINY_MODEL_ROWS``), seeded."""
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1 if rows <= SMALL_MODEL_ROWS else NUM_WORKERS
    if rows <= TINY_MODEL_ROWS:
        for name, value in TINY_MODEL_PARAMETERS.items():
            setattr(solver.parameters, name, value)
    solver.parameters.random_seed = RANDOM_SEED
    return solver


def _validate(model) -> None:
    """A model CP-SAT refuses is an internal error, never "infeasible"."""
    refusal = model.validate()
    if refusal:
        raise PlannerError(
            f"internal error: CP-SAT refuses the model ({refusal.splitlines()[0]}); please report the command"
        )


def _enumerate(
    cp_model, model, solver, pairs: int, states: int, deadline: Deadline
) -> list[tuple[int, int]] | None:
    """Every solution of ``model`` (it has no objective) as (states row, activations row) indices,
    from one ``solver`` run that enumerates them all; None when the deadline cuts it short.
    ``pairs`` bounds the solutions, so the pool that returns them (``solution_pool_size``) never
    drops one. The first ``states`` variables are the states rows' selectors; the activations
    rows' follow, then the layouts'."""
    left = deadline.remaining_s()
    if left is not None:
        if left < MIN_SOLVE_S:
            return None
        solver.parameters.max_time_in_seconds = left
    solver.parameters.enumerate_all_solutions = True
    solver.parameters.fill_additional_solutions_in_response = True
    solver.parameters.solution_pool_size = pairs + 1
    status = solver.solve(model)
    if status == cp_model.MODEL_INVALID:
        raise PlannerError("internal error: CP-SAT found the model invalid; please report the command")
    if status != cp_model.OPTIMAL:  # OPTIMAL: the enumeration ran to its end
        return None
    found = []
    for solution in solver.response_proto.additional_solutions:
        values = list(solution.values)
        found.append((values.index(1, 0, states), values.index(1, states) - states))
    return found


def hint(
    model, known: list[Incumbent], state_var: dict, act_var: dict, pick_layout: dict, found: list[Candidate]
) -> None:
    """Hint the first of ``known`` (plans that fit, best first) not among those ``found``: every
    selector's value in it, so that CP-SAT starts from a complete solution."""
    model.clear_hints()
    taken = {c.indices for c in found}
    for plan in known:
        p, z = plan.states
        _, r, u = plan.activations
        if (p, z, r, u) in taken:
            continue
        for rows, chosen in ((state_var, plan.states), (act_var, plan.activations)):
            for key, var in rows.items():
                model.add_hint(var, key == chosen)
        for layout, var in pick_layout.items():
            model.add_hint(var, layout == p)
        return
