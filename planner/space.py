"""The candidate space and its integer terms, shared by the CP-SAT builder and brute force.

A candidate picks one value of each domain: the layout (tp, cp, pp, vpp, ep, which fixes dp), the
states (ZeRO stage, optimizer offload), the activations (recompute, activation offload) and the
micro-batch size -- the groups of ``planner.layout``'s dimensions. Each term is computed by the plain
evaluator over only the dimensions it depends on and converted to integers at a named scale: memory
in bytes rounded up (the solver never under-estimates), time in microseconds rounded to nearest.
The objective of a candidate is its summed time terms, with the lexicographic tie-break of
``ParallelConfig``'s field order (``planner.layout.tie_break_note``) so the same input always gives
the same plan.
"""

import math
from dataclasses import dataclass, field, make_dataclass
from enum import Enum
from itertools import product

from constraints import memory as M
from constraints.units import Recompute, ZeroStage
from planner.calibration import StepTimeConstants
from planner.capability import reasons_within
from planner.errors import PlannerError
from planner.evaluate import loaded_stages, stage_activation_bytes, stage_states_bytes
from planner.layout import DIMENSIONS, Group, group_fields
from planner.performance import data_parallel_time, expert_parallel_comm_s, pipeline_time
from planner.rates import Rates
from planner.rules import (
    divisors,
    nvlink_tp_reason,
    pipeline_sizes,
    pipeline_splits,
    valid_cp,
    valid_dispatchers,
    valid_ep,
    valid_etp,
    valid_tp,
)
from planner.specs import HardwareSpec, ModelSpec, ParallelConfig, TrainingSpec

TIME_SCALE_PER_S = 1_000_000  # objective resolution: microseconds
MEMORY_SCALE_PER_BYTE = 1  # memory resolution: bytes, rounded up
MAX_MICRO_BATCH = 64
MIN_TOKENS_PER_CP_RANK = 4096  # below this, ring-attention hops are no longer hidden (not searched)
MAX_VPP = 8  # virtual stages per rank searched (recipes: Llama 3.1 405B uses 8); pin --vpp for more


Pins = make_dataclass(
    "Pins",
    [(e.name, e.type | None, field(default=None)) for e in DIMENSIONS]
    + [("allow_offload", bool, field(default=False)), ("max_tp", int | None, field(default=None))],
    frozen=True,
    slots=True,
    kw_only=True,
)
Pins.__module__ = __name__
Pins.__doc__ = """Dimensions the user fixed, one field per ``ParallelConfig`` field (``None`` means
searched), plus ``allow_offload`` (search CPU offload of the optimizer and of activations, off
unless allowed or pinned) and ``max_tp`` (``--allow-inter-node-tp``: largest tp searched, tp groups
may cross NVLink domains; default None: tp divides the GPUs of an NVLink domain)."""

LAYOUT_FIELDS = group_fields(Group.LAYOUT)
LAYOUT_ONLY = frozenset({Group.LAYOUT})
STATES_TABLE = frozenset({Group.LAYOUT, Group.STATES})
"""Dimensions of the (layout, states) table: weights, gradients, optimizer; DP communication."""
ACTIVATIONS_TABLE = frozenset({Group.LAYOUT, Group.ACTIVATIONS, Group.MICRO_BATCH})
"""Dimensions of the (layout, activations, micro-batch) table: activations; the pipeline's time."""
STATES_FIELDS = group_fields(Group.STATES)
ACTIVATIONS_FIELDS = group_fields(Group.ACTIVATIONS)
SEARCHED_FIELDS = LAYOUT_FIELDS + STATES_FIELDS + ACTIVATIONS_FIELDS
"""The fields of one layout, states and activations domain value, concatenated in that order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Space:
    """Domains of each searched dimension, in tie-break order."""

    layouts: tuple[tuple[int, ...], ...]
    """Values of the ``LAYOUT_FIELDS`` (tp, cp, pp, vpp, ep, etp, dispatcher, first and last stage
    layers), sorted: the tie-break prefers the earlier."""
    zero_stages: tuple[tuple[ZeroStage, bool], ...]
    """Values of the ``STATES_FIELDS`` (ZeRO stage, optimizer offloaded to the CPU)."""
    recomputes: tuple[tuple[Recompute, bool], ...]
    """Values of the ``ACTIVATIONS_FIELDS`` (recompute mode, activations offloaded to the CPU)."""
    micro_batches: tuple[int, ...]
    gpus: int
    sequence_parallel: bool | None

    def config(self, layout: int, zero: int, recompute: int, mbs: int) -> ParallelConfig:
        """The parallel layout at these domain indices."""
        values = dict(
            zip(
                SEARCHED_FIELDS,
                self.layouts[layout] + self.zero_stages[zero] + self.recomputes[recompute],
                strict=True,
            )
        )
        tp = values["tp"]
        values["micro_batch_size"] = self.micro_batches[mbs]
        values["dp"] = self.gpus // (tp * values["cp"] * values["pp"])
        values["sequence_parallel"] = (
            (tp > 1) if self.sequence_parallel is None else (self.sequence_parallel and tp > 1)
        )
        return ParallelConfig(**values)

    def mbs_fits(self, layout: int, mbs: int, global_batch: int) -> bool:
        """dp * mbs divides the global batch (grad accumulation is a whole number); interleaved
        pipelines also need the micro-batch count divisible by pp (Megatron-LM's schedule)."""
        mesh = dict(zip(LAYOUT_FIELDS, self.layouts[layout], strict=True))
        pp = mesh["pp"]
        step = self.gpus // (mesh["tp"] * mesh["cp"] * pp) * self.micro_batches[mbs]
        return global_batch % step == 0 and (mesh["vpp"] == 1 or (global_batch // step) % pp == 0)

    @property
    def size(self) -> int:
        """Candidates before the batch-divisibility filter."""
        return len(self.layouts) * len(self.zero_stages) * len(self.recomputes) * len(self.micro_batches)

    def states_rank(self, zero: int) -> int:
        """The (layout, states) table's share of the tie-break rank: the ZeRO stage and optimizer
        offload come first in ``ParallelConfig``'s field order, so they weigh most."""
        return zero * len(self.recomputes) * len(self.layouts) * len(self.micro_batches)

    def activations_rank(self, layout: int, recompute: int, mbs: int) -> int:
        """The (layout, activations, micro-batch) table's share: recompute and activation offload,
        then the layout, then the micro-batch."""
        return (recompute * len(self.layouts) + layout) * len(self.micro_batches) + mbs

    def tie_break(self, layout: int, zero: int, recompute: int, mbs: int) -> int:
        """Lexicographic rank of the indices in ``ParallelConfig``'s field order: ZeRO stage (with
        optimizer offload), recompute (with activation offload), (tp, cp, pp, vpp, ep) layout,
        micro-batch. The sum of the two tables' shares, which the solver weighs row by row."""
        return self.states_rank(zero) + self.activations_rank(layout, recompute, mbs)

    @property
    def tie_break_range(self) -> int:
        """One more than the largest tie-break rank."""
        return self.size


def build_space(
    model: ModelSpec, training: TrainingSpec, gpus: int, pins: Pins, nvlink_domain_gpus: int
) -> Space:
    """The candidate space for ``gpus`` GPUs under the user's pins (possibly empty).

    tp splits the model's layers (``planner.rules.valid_tp``) and divides the GPUs of an NVLink
    domain (``nvlink_domain_gpus``; ``rules.nvlink_tp_reason``) unless inter-node tp is allowed
    (``max_tp``: then any tp up to it); cp is searched while every rank keeps at least
    ``MIN_TOKENS_PER_CP_RANK`` tokens of a sequence; vpp up to ``MAX_VPP`` chunks per rank. Layouts
    the framework cannot run are left out (``planner.capability``).
    """

    def tp_allowed(t: int) -> bool:
        if pins.max_tp is not None:
            return t <= pins.max_tp or t == pins.tp
        return nvlink_tp_reason(t, nvlink_domain_gpus) is None

    tps = [t for t in valid_tp(model) if gpus % t == 0 and tp_allowed(t)]
    cps = [
        c
        for c in valid_cp(training.seq_len)
        if c == pins.cp or (pins.cp is None and (c == 1 or training.seq_len // c >= MIN_TOKENS_PER_CP_RANK))
    ]
    layouts = []
    for t, c, p in product(tps, cps, pipeline_sizes(model)):
        if gpus % (t * c * p) or pins.tp not in (None, t) or pins.pp not in (None, p):
            continue
        if pins.dp not in (None, gpus // (t * c * p)):
            continue
        stage_ranks = gpus // p  # ranks of one stage (tp * cp * dp): the experts spread over them
        eps = [e for e in valid_ep(model) if stage_ranks % e == 0 and pins.ep in (None, e)]
        vpps = [1] if p == 1 else range(1, max(MAX_VPP, pins.vpp or 1) + 1)
        etps = [x for x in valid_etp(model, t, pins.etp) if pins.etp in (None, x)]
        dispatchers = [d for d in valid_dispatchers(model) if pins.dispatcher in (None, d)]
        for v, e, x, d in product(vpps, eps, etps, dispatchers):
            if v != pins.vpp and (pins.vpp is not None or v > MAX_VPP):
                continue
            if stage_ranks % (e * x):
                continue
            for first, last in pipeline_splits(model, p, v):
                if pins.first_stage_layers not in (None, first) or pins.last_stage_layers not in (None, last):
                    continue
                mesh = ParallelConfig(
                    tp=t,
                    cp=c,
                    pp=p,
                    vpp=v,
                    ep=e,
                    etp=x,
                    dispatcher=d,
                    dp=gpus // (t * c * p),
                    first_stage_layers=first,
                    last_stage_layers=last,
                )
                if not reasons_within(LAYOUT_ONLY, training.framework, model, training, mesh):
                    layouts.append(tuple(getattr(mesh, name) for name in LAYOUT_FIELDS))

    def offload_options(pinned: bool | None) -> list[bool]:
        return [pinned] if pinned is not None else ([False, True] if pins.allow_offload else [False])

    zeros = [
        (z, o)
        for z in ([pins.zero_stage] if pins.zero_stage is not None else list(ZeroStage))
        for o in offload_options(pins.optimizer_offload)
    ]
    recomputes = [
        (r, o)
        for r in ([pins.recompute] if pins.recompute is not None else list(Recompute))
        for o in offload_options(pins.activation_offload)
    ]
    if pins.micro_batch_size is not None:
        mbs = [pins.micro_batch_size]
    else:
        mbs = [u for u in divisors(training.global_batch_size) if u <= MAX_MICRO_BATCH]
    return Space(
        layouts=tuple(sorted(layouts, key=_order)),
        zero_stages=tuple(zeros),
        recomputes=tuple(recomputes),
        micro_batches=tuple(mbs),
        gpus=gpus,
        sequence_parallel=pins.sequence_parallel,
    )


def _order(values: tuple) -> tuple[int, ...]:
    """Sort key of a domain value: numbers by size, enum members in their definition order."""
    return tuple(list(type(v)).index(v) if isinstance(v, Enum) else v for v in values)


def _finite(value: float, what: str) -> float:
    """The value, or a one-line error when the model's arithmetic overflowed or met a NaN."""
    if not math.isfinite(value):
        raise PlannerError(
            f"the {what} of a candidate is {value}: the model's or hardware's numbers overflow the "
            "formulas; check sizes, bandwidths and peak_tflops"
        )
    return value


def bytes_up(value: float) -> int:
    """Memory to integer bytes, never rounding down (an exact Python integer of any size)."""
    return math.ceil(_finite(value, "memory") * MEMORY_SCALE_PER_BYTE)


def time_units(seconds: float) -> int:
    """Seconds to integer objective units (microseconds, an exact Python integer of any size)."""
    return round(_finite(seconds, "step time") * TIME_SCALE_PER_S)


@dataclass(frozen=True, slots=True)
class Terms:
    """The integer tables: per-stage memory and time, keyed by domain indices."""

    states: dict[tuple[int, int], tuple[int, ...]]
    """(layout, zero) -> memory of weights, grads, optimizer (+ reserve) on each of
    ``evaluate.loaded_stages`` (first, second, last); only the combinations the framework can run."""
    activations: dict[tuple[int, int, int], tuple[int, ...]]
    """(layout, recompute, mbs) -> activation memory on each of ``evaluate.loaded_stages``."""
    pipeline_us: dict[tuple[int, int, int], int]
    """(layout, recompute, mbs) -> compute, bubble, TP and p2p time."""
    data_parallel_us: dict[tuple[int, int], int]
    """(layout, zero) -> exposed DP communication and optimizer time."""


def compile_terms(
    space: Space,
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    constants: StepTimeConstants | None = None,
    *,
    times: bool = True,
) -> Terms:
    """Evaluate every term over only the dimensions it depends on (not for layouts whose token
    dispatcher ``slower_dispatchers`` rules out); with ``times`` False only the memory tables (the
    time tables stay empty: whether anything fits needs no step time, and the step time is most of
    the work)."""
    states, acts, pipe, dpt = {}, {}, {}, {}
    framework = training.framework
    constants = constants or hardware.step_constants  # once: a profile's are rebuilt on each access
    # the dispatcher changes no memory: a memory-only probe keeps every layout
    slower = slower_dispatchers(space, model, hardware, training, constants) if times else frozenset()
    for p, z in product(range(len(space.layouts)), range(len(space.zero_stages))):
        config = space.config(p, z, 0, 0)
        if p in slower or reasons_within(STATES_TABLE, framework, model, training, config):
            continue
        reserve = bytes_up(
            M.reserve_bytes(hardware.memory_bytes, training.reserve_fraction, training.reserve_fixed_bytes)
        )
        states[p, z] = tuple(
            bytes_up(sum(stage_states_bytes(model, training, config, st))) + reserve
            for st in loaded_stages(config)
        )
        if times:
            dpt[p, z] = time_units(
                sum(data_parallel_time(model, hardware, training, config, constants).values())
            )
    for p, r in product(range(len(space.layouts)), range(len(space.recomputes))):
        fitting = [
            u
            for u in range(len(space.micro_batches))
            if p not in slower and space.mbs_fits(p, u, training.global_batch_size)
        ]
        configs = {u: space.config(p, 0, r, u) for u in fitting}
        if not configs or reasons_within(ACTIVATIONS_TABLE, framework, model, training, configs[fitting[0]]):
            continue
        for u, config in configs.items():
            acts[p, r, u] = tuple(
                bytes_up(sum(stage_activation_bytes(model, training, config, st).values()))
                for st in loaded_stages(config)
            )
            if times:
                pipe[p, r, u] = time_units(
                    sum(pipeline_time(model, hardware, training, config, constants).values())
                )
    return Terms(states, acts, pipe, dpt)


def slower_dispatchers(
    space: Space,
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    constants: StepTimeConstants | None = None,
) -> frozenset[int]:
    """Layouts that another layout beats by its token dispatcher alone: the dispatcher changes only
    the dispatch time (``performance.expert_parallel_comm_s``, linear in the micro-batch and the
    same multiple under recompute), not memory or anything else, so of layouts alike but for it only
    the fastest can be chosen (the all-to-all on a tie, as the tie-break orders them)."""
    position = LAYOUT_FIELDS.index("dispatcher")
    twins: dict[tuple, list[int]] = {}
    for p, layout in enumerate(space.layouts):
        twins.setdefault(layout[:position] + layout[position + 1 :], []).append(p)
    rates = Rates(hardware, constants or hardware.step_constants)
    slower: set[int] = set()
    dispatch: dict[tuple, float] = {}  # by the fields the dispatch time reads: pp, vpp, ends share it

    def seconds(p: int) -> float:
        c = space.config(p, 0, 0, 0)
        key = (c.tp, c.cp, c.ep, c.etp, c.dispatcher)
        if key not in dispatch:
            dispatch[key] = expert_parallel_comm_s(model, training, c, rates, model.num_layers)
        return dispatch[key]

    for group in (g for g in twins.values() if len(g) > 1):
        fastest = min(group, key=lambda p: (seconds(p), p))
        slower.update(p for p in group if p != fastest)
    return frozenset(slower)


def capacity_units(hardware: HardwareSpec) -> int:
    """Device memory in integer bytes, rounded down."""
    return math.floor(hardware.memory_bytes * MEMORY_SCALE_PER_BYTE)


def candidate_cost(terms: Terms, space: Space, p: int, z: int, r: int, u: int) -> tuple[int, int] | None:
    """(objective, peak memory units) of one candidate, or ``None`` if it is outside the space (its
    batch does not divide, or the framework cannot run it)."""
    if (p, r, u) not in terms.activations or (p, z) not in terms.states:
        return None
    peak = max(s + a for s, a in zip(terms.states[p, z], terms.activations[p, r, u], strict=True))
    time = terms.pipeline_us[p, r, u] + terms.data_parallel_us[p, z]
    return time * space.tie_break_range + space.tie_break(p, z, r, u), peak
