"""The rows the CP-SAT model needs: the tables' rows reduced, before the model is built, to those
that can be part of one of the ``top`` best plans, and a known good plan to start from.

Three reductions, each exact (the ``top`` best plans of the reduced rows are those of the full
tables; ``tests/planner/test_presolve.py`` and the solver's brute-force agreement tests check it):

- capacity: a row whose own memory exceeds the capacity on some stage is in no plan that fits;
- dominance (``undominated``): a row that ``top`` better rows of its layout beat while needing no
  more memory on any stage;
- bound (``within_bound``): a row with no partner that fits beside it for at most the cost of
  ``top`` known plans that fit (``incumbents``).

The incumbents also seed the search (``planner.solver`` hints the best of them). Nothing here
imports OR-Tools: brute force and the tests use it without the solver.
"""

from collections.abc import Callable
from dataclasses import dataclass
from operator import add

Row = tuple[tuple[int, ...], tuple[int, ...]]
"""One table row: its key (the layout index first) and its memory on each loaded stage."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Incumbent:
    """A plan that fits, found without the solver: one row of each table, on the same layout."""

    objective: int
    """Summed cost of the two rows (time times the tie-break range, plus the tie-break rank)."""
    states: tuple[int, ...]
    """Key of the (layout, states) row."""
    activations: tuple[int, ...]
    """Key of the (layout, activations, micro-batch) row."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reduced:
    """The rows left for the model, and the greedy plans found on the way."""

    states: list[Row]
    """(layout, states) rows."""
    activations: list[Row]
    """(layout, activations, micro-batch) rows."""
    known: list[Incumbent]
    """Plans that fit, best first (``incumbents``)."""


def reduce_rows(
    states_rows: list[Row],
    act_rows: list[Row],
    state_cost: Callable[[tuple[int, ...]], int],
    act_cost: Callable[[tuple[int, ...]], int],
    capacity: int,
    top: int,
) -> Reduced:
    """The three reductions: capacity, then the bound (a pass over the rows, which leaves few),
    then dominance (comparisons within a layout, now cheap). Each is exact on any set of rows that
    holds the ``top`` best plans, so their order is free; each row's cost is computed once."""
    states = [row for row in states_rows if max(row[1]) <= capacity]
    acts = [row for row in act_rows if max(row[1]) <= capacity]
    state_cost = {key: state_cost(key) for key, _ in states}.__getitem__
    act_cost = {key: act_cost(key) for key, _ in acts}.__getitem__
    known = incumbents(states, acts, state_cost, act_cost, capacity, top)
    cutoff = known[top - 1].objective if len(known) >= top else None
    states, acts = within_bound(states, acts, state_cost, act_cost, cutoff, capacity)
    states = undominated(states, state_cost, top)
    acts = undominated(acts, act_cost, top)
    return Reduced(states=states, activations=acts, known=known)


def fits_together(states_mem: tuple[int, ...], act_mem: tuple[int, ...], capacity: int) -> bool:
    """Whether two rows' memory, summed stage by stage, stays within ``capacity`` on every stage."""
    return max(map(add, states_mem, act_mem)) <= capacity


def by_layout(rows: list[Row], cost: Callable[[tuple[int, ...]], int]) -> dict[int, list[Row]]:
    """The rows of each layout, cheapest first."""
    groups: dict[int, list[Row]] = {}
    for row in rows:
        groups.setdefault(row[0][0], []).append(row)
    for group in groups.values():
        group.sort(key=lambda row: cost(row[0]))
    return groups


def undominated(rows: list[Row], cost: Callable[[tuple[int, ...]], int], top: int) -> list[Row]:
    """The rows of one table that can be part of a ``top``-best plan: a row that ``top`` other rows
    of the same layout beat in cost while needing no more memory on any stage is left out (each of
    those, with the same row of the other table, is a better plan that fits whenever it fits)."""
    kept = []
    for group in by_layout(rows, cost).values():
        frontier: list[Row] = []  # rows kept so far, cheaper than the current one
        for key, mem in group:
            beaten = sum(all(m <= n for m, n in zip(other, mem, strict=True)) for _, other in frontier)
            if beaten < top:
                frontier.append((key, mem))
        kept += frontier
    return sorted(kept)


def incumbents(
    states_rows: list[Row],
    act_rows: list[Row],
    state_cost: Callable[[tuple[int, ...]], int],
    act_cost: Callable[[tuple[int, ...]], int],
    capacity: int,
    top: int,
) -> list[Incumbent]:
    """Plans that fit, found greedily, best first: on each layout, its cheapest activations row
    that fits beside the layout's lightest states row, with the cheapest states row that fits
    beside it; then, on the ``top`` layouts whose plan is best, up to ``top`` such plans each.
    About linear in the rows for a given ``top``; good plans, not necessarily the best."""
    states_by_layout = by_layout(states_rows, state_cost)
    acts_by_layout = by_layout(act_rows, act_cost)

    def plans(p: int, count: int) -> list[Incumbent]:
        states = states_by_layout.get(p)
        if not states:
            return []
        lightest = min(states, key=lambda row: max(row[1]))[1]
        found = []
        for act_key, act_mem in acts_by_layout[p]:
            if len(found) == count:
                break
            if fits_together(lightest, act_mem, capacity):
                state_key = next(key for key, mem in states if fits_together(mem, act_mem, capacity))
                objective = state_cost(state_key) + act_cost(act_key)
                found.append(Incumbent(objective=objective, states=state_key, activations=act_key))
        return found

    first = sorted((plan for p in acts_by_layout for plan in plans(p, 1)), key=lambda c: c.objective)
    more = {plan for best in first[:top] for plan in plans(best.states[0], top)}
    return sorted(more.union(first), key=lambda c: c.objective)


def within_bound(
    states_rows: list[Row],
    act_rows: list[Row],
    state_cost: Callable[[tuple[int, ...]], int],
    act_cost: Callable[[tuple[int, ...]], int],
    bound: int | None,
    capacity: int,
) -> tuple[list[Row], list[Row]]:
    """The rows that are part of some plan that fits and costs at most ``bound`` (None: every row
    of a layout that has rows in both tables), in their input order.

    Why this is exact: let ``bound`` be the objective of the ``top``-th best of ``top`` distinct
    plans known to fit (``incumbents``). Then the ``top``-th best plan of the whole space costs at
    most ``bound``. A row kept has a partner on its layout, of the other table, that fits beside it
    with the two costing at most ``bound``; a row left out has none, so every plan through it is
    worse than the ``top``-th best plan and no ``top``-best plan uses it: leaving it out changes
    neither those plans nor their order.

    Each row's partners are scanned cheapest first, and the scan stops at the first that fits or
    at the first too costly to stay within ``bound``: the work is the pairs cheaper than ``bound``,
    few when the greedy plans are good (a pass over the rows when they are the best).
    """
    states_by_layout = by_layout(states_rows, state_cost)
    acts_by_layout = by_layout(act_rows, act_cost)
    layouts = states_by_layout.keys() & acts_by_layout.keys()
    if bound is None:
        return (
            [row for row in states_rows if row[0][0] in layouts],
            [row for row in act_rows if row[0][0] in layouts],
        )

    def completed(rows: list[Row], cost, partners: list[Row], partner_cost) -> set[tuple[int, ...]]:
        """Keys of ``rows`` (cheapest first) with a partner that fits within ``bound``."""
        kept = set()
        for key, mem in rows:
            budget = bound - cost(key)
            if partner_cost(partners[0][0]) > budget:
                break  # the rows after it cost more still
            for other, other_mem in partners:
                if partner_cost(other) > budget:
                    break
                if fits_together(mem, other_mem, capacity):
                    kept.add(key)
                    break
        return kept

    kept = set()
    for p in layouts:
        states, acts = states_by_layout[p], acts_by_layout[p]
        kept |= completed(states, state_cost, acts, act_cost)
        kept |= completed(acts, act_cost, states, state_cost)
    return [row for row in states_rows if row[0] in kept], [row for row in act_rows if row[0] in kept]
