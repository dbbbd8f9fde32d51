"""The diagnosis skips GPU counts that cannot hold the model states; the skip must never hide a
count on which the evaluator says something fits."""

from hypothesis import given, settings
from hypothesis import strategies as st
from test_solver import problems

from constraints.memory import min_gpus_for_states as states_bound
from planner.diagnose import min_gpus_for_states
from planner.search import brute_force, count_candidates, fits_within
from planner.space import build_space, capacity_units, compile_terms


def test_the_bound_is_zero_s_per_device_memory():
    """ZeRO (Rajbhandari et al. 2020) Fig. 1: 7.5B parameters, K = 12, 64 devices, P_os+g+p:
    1.9 GB per device; (2 + 2 + 12) x 7.5e9 / 64 = 1.875e9 bytes."""
    assert states_bound(7.5e9, 2 + 2 + 12, 1.875e9) == 64
    assert states_bound(7.5e9, 2 + 2 + 12, 1.9e9) == 64
    assert states_bound(7.5e9, 2 + 2 + 12, 1.8e9) == 67


@settings(max_examples=80, deadline=None)
@given(problems())
def test_below_the_bound_nothing_fits(problem):
    model, training, gpus, hardware, pins = problem
    bound = min_gpus_for_states(model, training, hardware, pins)
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    terms = compile_terms(space, model, hardware, training, times=False)
    if gpus < bound:
        assert not fits_within(terms, capacity_units(hardware))


@settings(max_examples=80, deadline=None)
@given(problems())
def test_the_probe_that_stops_at_the_first_fit_answers_as_the_whole_tables(problem):
    """``compile_terms(until_fit=True)`` (the diagnosis's probes) against the whole memory tables."""
    model, training, gpus, hardware, pins = problem
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    capacity = capacity_units(hardware)
    whole = compile_terms(space, model, hardware, training, times=False)
    probe = compile_terms(space, model, hardware, training, times=False, until_fit=True)
    assert fits_within(probe, capacity) == fits_within(whole, capacity)


@settings(max_examples=80, deadline=None)
@given(problems(), st.integers(1, 5))
def test_the_tables_of_the_rows_that_fit_hold_the_best_plans_of_the_whole_tables(problem, top):
    """``compile_terms(fitting_only=True)`` (the search's tables, and the diagnosis's best plans
    under other pins) against brute force over the whole tables: the same plans, objectives and
    peaks, and the same candidate count."""
    model, training, gpus, hardware, pins = problem
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    capacity = capacity_units(hardware)
    tables = compile_terms(space, model, hardware, training)
    whole = brute_force(space, tables, capacity, top)
    fitting = compile_terms(space, model, hardware, training, fitting_only=True)
    assert brute_force(space, fitting, capacity, top) == whole
    assert count_candidates(fitting) == count_candidates(tables)
