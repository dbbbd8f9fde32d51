"""The brute-force enumerator's helpers."""

from hypothesis import given, settings
from test_solver import problems

from planner.search import count_candidates, enumerate_candidates
from planner.space import build_space, compile_terms


@settings(max_examples=40, deadline=None)
@given(problems())
def test_the_count_is_the_number_of_candidates_listed(problem):
    model, training, gpus, hardware, pins = problem
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    terms = compile_terms(space, model, hardware, training)
    assert count_candidates(terms) == len(enumerate_candidates(space, terms))
