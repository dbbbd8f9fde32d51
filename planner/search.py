"""Brute-force enumeration of the candidate space: the oracle the CP-SAT solver is tested against.

It ranks every candidate by the same integer terms (``planner.space``) the solver optimizes, so the
two must agree exactly on the optimum and on the tie-break.
"""

from dataclasses import dataclass

from planner.space import Space, Terms, candidate_cost


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One point of the space with its integer objective and peak memory."""

    indices: tuple[int, int, int, int]
    """(layout, zero, recompute, micro-batch) domain indices."""
    objective: int
    """Time units times the tie-break range, plus the tie-break rank."""
    peak_memory: int
    """Memory of the most-loaded stage, integer bytes."""


def enumerate_candidates(space: Space, terms: Terms) -> list[Candidate]:
    """Every candidate whose batch divides, feasible or not, in objective order: each activations
    row beside each states row of its layout (the other index combinations are not in the tables).
    Objectives are distinct (each ends in its own tie-break rank), so the order is total."""
    zeros: dict[int, list[int]] = {}
    for p, z in terms.states:
        zeros.setdefault(p, []).append(z)
    found = []
    for p, r, u in terms.activations:
        for z in zeros.get(p, ()):
            objective, peak = candidate_cost(terms, space, p, z, r, u)
            found.append(Candidate(indices=(p, z, r, u), objective=objective, peak_memory=peak))
    return sorted(found, key=lambda c: c.objective)


def count_candidates(terms: Terms) -> int:
    """How many candidates ``enumerate_candidates`` lists, without listing them: on each layout, its
    states rows times its activations rows (a candidate is one of each on the same layout); of the
    whole tables where ``compile_terms`` left rows out (``Terms.candidates``)."""
    if terms.candidates is not None:
        return terms.candidates
    states: dict[int, int] = {}
    for p, _ in terms.states:
        states[p] = states.get(p, 0) + 1
    return sum(states.get(key[0], 0) for key in terms.activations)


def fits_within(terms: Terms, capacity: int) -> bool:
    """Whether some candidate's memory is within ``capacity`` on every stage (memory tables only:
    ``compile_terms(..., times=False)`` is enough)."""
    states: dict[int, list[tuple[int, ...]]] = {}
    for (p, _), mem in terms.states.items():
        if max(mem) <= capacity:
            states.setdefault(p, []).append(mem)
    return any(
        all(s + a <= capacity for s, a in zip(state, act, strict=True))
        for (p, *_), act in terms.activations.items()
        for state in states.get(p, ())
    )


def brute_force(space: Space, terms: Terms, capacity: int, top: int = 1) -> list[Candidate]:
    """The ``top`` best feasible candidates (peak memory within ``capacity``)."""
    feasible = [c for c in enumerate_candidates(space, terms) if c.peak_memory <= capacity]
    return feasible[:top]


def least_memory(space: Space, terms: Terms) -> Candidate | None:
    """The candidate that needs the least memory (ties: better objective)."""
    candidates = enumerate_candidates(space, terms)
    return min(candidates, key=lambda c: (c.peak_memory, c.objective)) if candidates else None
