"""The brute-force enumerator's helpers."""

from itertools import product

from hypothesis import given, settings
from test_solver import problems

from planner.search import count_candidates, enumerate_candidates
from planner.space import build_space, candidate_cost, compile_terms


@settings(max_examples=40, deadline=None)
@given(problems())
def test_the_count_is_the_number_of_candidates_listed(problem):
    model, training, gpus, hardware, pins = problem
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    terms = compile_terms(space, model, hardware, training)
    assert count_candidates(terms) == len(enumerate_candidates(space, terms))


@settings(max_examples=40, deadline=None)
@given(problems())
def test_every_index_combination_in_the_tables_is_listed_in_objective_order(problem):
    """The enumeration walks the tables' rows; the reference walks every index combination of
    the space and keeps those the tables price (``candidate_cost``)."""
    model, training, gpus, hardware, pins = problem
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    terms = compile_terms(space, model, hardware, training)
    ranges = (len(space.layouts), len(space.zero_stages), len(space.recomputes), len(space.micro_batches))
    priced = ((candidate_cost(terms, space, *i), i) for i in product(*map(range, ranges)))
    expected = sorted((cost[0], cost[1], i) for cost, i in priced if cost is not None)
    listed = [(c.objective, c.peak_memory, c.indices) for c in enumerate_candidates(space, terms)]
    assert listed == expected
