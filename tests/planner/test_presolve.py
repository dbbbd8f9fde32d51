"""The rows left for the CP-SAT model keep the ``top`` best plans exactly: checked by enumerating
every pair of rows, on random tables and on the planner's own."""

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.presolve import fits_together, incumbents, reduce_rows, undominated, within_bound

STAGES = 3


@st.composite
def tables(draw):
    """Random (layout, states) and (layout, activations) rows with memory on three stages, costs
    made unique as the planner's tie-break makes them (time, then the row's own rank)."""
    layouts = draw(st.integers(1, 4))
    memory = st.tuples(*[st.integers(0, 12)] * STAGES)
    states = [((p, z), draw(memory)) for p in range(layouts) for z in range(draw(st.integers(0, 4)))]
    sizes = [draw(st.integers(0, 3)) for _ in range(layouts)]
    acts = [((p, r, u), draw(memory)) for p in range(layouts) for r in range(3) for u in range(sizes[p])]
    times = st.integers(0, 6)
    state_time = {key: draw(times) for key, _ in states}
    act_time = {key: draw(times) for key, _ in acts}
    act_rank = {key: i for i, (key, _) in enumerate(acts)}
    state_rank = {key: i * len(acts) for i, (key, _) in enumerate(states)}
    scale = (len(states) + 1) * (len(acts) + 1)

    def state_cost(key):
        return state_time[key] * scale + state_rank[key]

    def act_cost(key):
        return act_time[key] * scale + act_rank[key]

    return states, acts, state_cost, act_cost, draw(st.integers(0, 24)), draw(st.integers(1, 5))


def best_pairs(states, acts, state_cost, act_cost, capacity, top):
    """Every pair of rows on the same layout that fits, cheapest first: the oracle."""
    pairs = [
        (state_cost(s) + act_cost(a), s, a)
        for s, s_mem in states
        for a, a_mem in acts
        if s[0] == a[0] and fits_together(s_mem, a_mem, capacity)
    ]
    return sorted(pairs)[:top]


@settings(max_examples=400, deadline=None)
@given(tables())
def test_reduced_rows_keep_the_top_plans(table):
    states, acts, state_cost, act_cost, capacity, top = table
    reduced = reduce_rows(states, acts, state_cost, act_cost, capacity, top)
    assert best_pairs(reduced.states, reduced.activations, state_cost, act_cost, capacity, top) == best_pairs(
        states, acts, state_cost, act_cost, capacity, top
    )


@settings(max_examples=200, deadline=None)
@given(tables())
def test_incumbents_fit_and_cost_what_they_say(table):
    states, acts, state_cost, act_cost, capacity, top = table
    memory = dict(states) | dict(acts)
    found = incumbents(states, acts, state_cost, act_cost, capacity, top)
    assert [c.objective for c in found] == sorted(c.objective for c in found)
    for plan in found:
        assert plan.states[0] == plan.activations[0]
        assert fits_together(memory[plan.states], memory[plan.activations], capacity)
        assert plan.objective == state_cost(plan.states) + act_cost(plan.activations)
    feasible = best_pairs(states, acts, state_cost, act_cost, capacity, len(states) * len(acts))
    assert {(c.objective, c.states, c.activations) for c in found} <= set(feasible)
    # With one states row per layout, every layout where an activations row fits beside it has a plan.
    single = {key[0]: mem for key, mem in states if sum(k[0] == key[0] for k, _ in states) == 1}
    covered = {a[0] for a, mem in acts if a[0] in single and fits_together(single[a[0]], mem, capacity)}
    assert covered <= {c.states[0] for c in found}


def test_a_layout_that_cannot_beat_a_known_plan_is_left_out():
    """Layout 0 has a plan costing 3; layout 1's cheapest rows already cost 4 together."""
    states = [((0, 0), (1,)), ((1, 0), (1,))]
    acts = [((0, 0, 0), (1,)), ((1, 0, 0), (1,))]
    cost = {(0, 0): 1, (1, 0): 2, (0, 0, 0): 2, (1, 0, 0): 2}
    reduced = reduce_rows(states, acts, cost.__getitem__, cost.__getitem__, capacity=2, top=1)
    assert reduced.states == [((0, 0), (1,))] and reduced.activations == [((0, 0, 0), (1,))]
    assert [c.objective for c in reduced.known] == [3, 4]
    # With two plans asked for, both layouts stay.
    both = reduce_rows(states, acts, cost.__getitem__, cost.__getitem__, capacity=2, top=2)
    assert len(both.states) == 2 and len(both.activations) == 2


def test_a_row_whose_cheap_partners_do_not_fit_beside_it_is_left_out():
    """The light states row (0, 1) is costly; the cheap heavy one (0, 0) fits only beside the
    costly activations row. Known plan: (0, 1) + (0, 0, 0) = 11. The cheap activations row
    (0, 0, 0) also fits beside (0, 1) only, so (0, 0) + (0, 0, 0) is not a plan, and (0, 0) +
    (0, 0, 1) = 21 exceeds 11: both costly rows, and (0, 0), go."""
    states = [((0, 0), (3,)), ((0, 1), (1,))]
    acts = [((0, 0, 0), (2,)), ((0, 0, 1), (1,))]
    cost = {(0, 0): 1, (0, 1): 10, (0, 0, 0): 1, (0, 0, 1): 20}.__getitem__
    assert within_bound(states, acts, cost, cost, 11, capacity=4) == ([((0, 1), (1,))], [((0, 0, 0), (2,))])


def test_without_enough_known_plans_nothing_is_cut_by_the_bound():
    states = [((0, 0), (1,)), ((1, 0), (1,))]
    acts = [((0, 0, 0), (1,)), ((1, 0, 0), (1,))]
    cost = {(0, 0): 1, (1, 0): 50, (0, 0, 0): 2, (1, 0, 0): 50}.__getitem__
    assert within_bound(states, acts, cost, cost, None, capacity=2) == (states, acts)
    # A dominated row: same layout, costlier and no lighter than a kept one.
    assert undominated([((0, 0), (1,)), ((0, 1), (2,))], lambda key: key[1], 1) == [((0, 0), (1,))]
