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

import gc
import heapq
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, make_dataclass, replace
from enum import Enum
from functools import cache, partial
from itertools import product

from constraints import memory as M
from constraints.recompute import RecomputeModule
from constraints.units import Recompute, ZeroStage
from planner.calibration import StepTimeConstants
from planner.capability import reasons_within
from planner.errors import PlannerError
from planner.evaluate import largest_chunk_layers, loaded_stages, stage_activation_bytes, stage_states_bytes
from planner.layout import (
    DIMENSIONS,
    LAYOUT_MESH,
    Group,
    canonical_modules,
    checked_config,
    group_fields,
    sequence_parallel_of,
    tie_break_value,
)
from planner.performance import data_parallel_time, expert_parallel_comm_s, pipeline_time, pipeline_time_floor
from planner.rates import rates_of
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
from planner.workers import in_processes, processes_for

TIME_SCALE_PER_S = 1_000_000  # objective resolution: microseconds
MEMORY_SCALE_PER_BYTE = 1  # memory resolution: bytes, rounded up
MAX_MICRO_BATCH = 64
MIN_TOKENS_PER_CP_RANK = 4096  # below this, ring-attention hops are no longer hidden (not searched)
MAX_VPP = 8  # virtual stages per rank searched (recipes: Llama 3.1 405B uses 8); pin --vpp for more
DENSE_MODULE_SETS = ((RecomputeModule.MLP,),)
"""Selective module sets searched on dense models beside Megatron's default (``core_attn``): with
Transformer Engine's spec their norms are fused into the linear layers, leaving the MLP."""
MOE_MODULE_SETS = (
    (RecomputeModule.LAYERNORM, RecomputeModule.MOE_ACT),
    (RecomputeModule.LAYERNORM, RecomputeModule.MOE_ACT, RecomputeModule.SHARED_EXPERTS),
)
"""Selective module sets searched on MoE models beside the default: NVIDIA's MoE recipes'
``layernorm,moe_act`` (with ``shared_experts`` where there are any). The whole MoE layer (``moe``)
is left to a pin: it reruns the experts' GEMMs and the dispatch, as the block method reruns whole
layers, and searching it too grew the MoE tables by a third."""


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
    recomputes: tuple[tuple[Recompute, int, tuple[RecomputeModule, ...], bool], ...]
    """Values of the ``ACTIVATIONS_FIELDS`` (recompute mode, layers of the block method, modules,
    activations offloaded to the CPU), in tie-break order."""
    micro_batches: tuple[int, ...]
    gpus: int
    sequence_parallel: bool | None
    block_layers: tuple[frozenset[int], ...] = ()
    """Per layout, the block-method layer counts (``recompute_num_layers`` above 0) it may take:
    every count below its largest model chunk's layers, or the pinned count where some chunk is
    that large."""
    optional_recomputes: frozenset[int] = frozenset()
    """Indices of the searched ``recomputes`` beyond the three modes (block method, module sets),
    tabulated on a layout and micro-batch only where they can be part of a best plan
    (``compile_terms``): where no recompute does not fit beside some states row that full
    recompute fits beside, and then, of the block method, only the fewest layers that fit beside
    each such states row."""

    def allows(self, layout: int, recompute: int) -> bool:
        """Whether the table has rows for this recompute choice on this layout (block-method layer
        counts are the layout's own)."""
        n = self.recomputes[recompute][1]
        return n == 0 or n in self.block_layers[layout]

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
        values["sequence_parallel"] = sequence_parallel_of(tp, self.sequence_parallel)
        return checked_config(values)  # build_space checked each domain value

    def mbs_fits(self, layout: int, mbs: int, global_batch: int) -> bool:
        """dp * mbs divides the global batch (grad accumulation is a whole number); interleaved
        pipelines also need the micro-batch count divisible by pp (Megatron-LM's schedule)."""
        mesh = dict(zip(LAYOUT_FIELDS, self.layouts[layout], strict=True))
        pp = mesh["pp"]
        step = self.gpus // (mesh["tp"] * mesh["cp"] * pp) * self.micro_batches[mbs]
        return global_batch % step == 0 and (mesh["vpp"] == 1 or (global_batch // step) % pp == 0)

    def fitting_micro_batches(self, layout: int, global_batch: int) -> list[int]:
        """The micro-batch indices whose size ``mbs_fits`` this layout and global batch."""
        return [u for u in range(len(self.micro_batches)) if self.mbs_fits(layout, u, global_batch)]

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
    sorted_layouts, block_layers = _layouts(model, training, gpus, pins, nvlink_domain_gpus)

    def offload_options(pinned: bool | None) -> list[bool]:
        return [pinned] if pinned is not None else ([False, True] if pins.allow_offload else [False])

    zeros = [
        (z, o)
        for z in ([pins.zero_stage] if pins.zero_stage is not None else list(ZeroStage))
        for o in offload_options(pins.optimizer_offload)
    ]
    choices = recompute_choices(model, pins, sorted(set().union(*block_layers)))
    optional = {c for c in choices if _optional(c, pins)}
    recomputes = sorted(
        ((*c, o) for c in choices for o in offload_options(pins.activation_offload)),
        key=lambda v: tuple(tie_break_value(n, x) for n, x in zip(ACTIVATIONS_FIELDS, v, strict=True)),
    )
    if pins.micro_batch_size is not None:
        mbs = [pins.micro_batch_size]
    else:
        mbs = [u for u in divisors(training.global_batch_size) if u <= MAX_MICRO_BATCH]
    # Each domain value checked once (its checks read no other group), so ``Space.config`` need not.
    for values in [dict(zip(STATES_FIELDS, z, strict=True)) for z in zeros] + [
        dict(zip(ACTIVATIONS_FIELDS, r, strict=True)) for r in recomputes
    ]:
        ParallelConfig(tp=1, pp=1, dp=1, **values)
    for u in mbs:
        ParallelConfig(tp=1, pp=1, dp=1, micro_batch_size=u)
    return Space(
        layouts=sorted_layouts,
        zero_stages=tuple(zeros),
        recomputes=tuple(recomputes),
        micro_batches=tuple(mbs),
        gpus=gpus,
        sequence_parallel=pins.sequence_parallel,
        block_layers=block_layers,
        optional_recomputes=frozenset(i for i, v in enumerate(recomputes) if v[:3] in optional),
    )


def _layouts(
    model: ModelSpec, training: TrainingSpec, gpus: int, pins: Pins, nvlink_domain_gpus: int
) -> tuple[tuple[tuple[int, ...], ...], tuple[frozenset[int], ...]]:
    """``build_space``'s layouts, sorted, and each one's block-method layer counts; the last ones
    again when asked again with only the global batch changed, which no layout depends on (the
    default batch, ``planner.defaults``, is chosen from the layouts the search then searches)."""
    key = (id(model), replace(training, global_batch_size=1), gpus, pins, nvlink_domain_gpus)
    if _LAST_LAYOUTS and _LAST_LAYOUTS[0] == key:
        return _LAST_LAYOUTS[2]

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
    meshes = [
        (t, c, p)
        for t, c, p in product(tps, cps, pipeline_sizes(model))
        if not gpus % (t * c * p)
        and pins.tp in (None, t)
        and pins.pp in (None, p)
        and pins.dp in (None, gpus // (t * c * p))
    ]

    def domains(i: int) -> tuple[int, list[int], range | list[int], list[int], list]:
        """Stage ranks, ep, vpp, etp and dispatcher values of ``meshes[i]``'s layouts."""
        t, _, p = meshes[i]
        stage_ranks = gpus // p  # ranks of one stage (tp * cp * dp): the experts spread over them
        eps = [e for e in valid_ep(model) if stage_ranks % e == 0 and pins.ep in (None, e)]
        vpps = [1] if p == 1 else range(1, max(MAX_VPP, pins.vpp or 1) + 1)
        etps = [x for x in valid_etp(model, t, pins.etp) if pins.etp in (None, x)]
        dispatchers = [d for d in valid_dispatchers(model) if pins.dispatcher in (None, d)]
        return stage_ranks, eps, vpps, etps, dispatchers

    def layouts_of(i: int) -> list[tuple[int, ...]]:
        """The layouts of one (tp, cp, pp) that the framework can run."""
        t, c, p = meshes[i]
        stage_ranks, eps, vpps, etps, dispatchers = domains(i)
        found = []
        for v, e, x, d in product(vpps, eps, etps, dispatchers):
            if v != pins.vpp and (pins.vpp is not None or v > MAX_VPP):
                continue
            if stage_ranks % (e * x):
                continue
            for first, last in pipeline_splits(model, p, v):
                if pins.first_stage_layers not in (None, first) or pins.last_stage_layers not in (None, last):
                    continue
                mesh = _mesh(
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
                    sequence_parallel=sequence_parallel_of(t, pins.sequence_parallel),
                )
                if not reasons_within(LAYOUT_MESH, training.framework, model, training, mesh):
                    found.append(tuple(getattr(mesh, name) for name in LAYOUT_FIELDS))
        return found

    combinations = sum(
        len(vpps) * len(eps) * len(etps) * len(dispatchers)
        for _, eps, vpps, etps, dispatchers in map(domains, range(len(meshes)))
    )
    processes = processes_for(combinations, MESH_COMBINATIONS_PER_PROCESS)
    parts = in_processes(layouts_of, range(len(meshes)), processes)
    layouts = [layout for part in parts for layout in part]
    sorted_layouts = tuple(sorted(layouts, key=_order))
    block_layers = tuple(block_layer_counts(model, layout, pins) for layout in sorted_layouts)
    _LAST_LAYOUTS[:] = key, model, (sorted_layouts, block_layers)  # the model kept: its id stays its own
    return sorted_layouts, block_layers


_LAST_LAYOUTS: list = []

MESH_COMBINATIONS_PER_PROCESS = 1500
"""(tp, cp, pp, vpp, ep, etp, dispatcher) combinations per worker process building the layouts
(``planner.workers``): each is a split or a few checked by the capability rules; MoE models on
hundreds of GPUs have several thousand (qwen3-235b-a22b on 512 GPUs at 8k tokens: 0.3 to 0.45 s
in one process)."""

_DEFAULTS = {name: getattr(ParallelConfig(tp=1, pp=1, dp=1), name) for name in ParallelConfig.__slots__}


def _mesh(**values: object) -> ParallelConfig:
    """A layout's configuration (the fields not given at their defaults) from values that pass
    ``ParallelConfig``'s checks by construction, without running them again: ``_layouts`` draws
    every size from the rules' domains, dp from the GPU count, ``ep * etp`` dividing a stage's ranks,
    vpp and the split above 1 only with pp, sequence parallelism only with tp (the checks cost as
    much as the capability rules, for each of tens of thousands of meshes on a large MoE space;
    ``tests/planner/test_bound.py`` builds every layout of pinned and unpinned spaces with them)."""
    return checked_config(_DEFAULTS | values)


def recompute_choices(
    model: ModelSpec, pins: Pins, block_layers: list[int]
) -> list[tuple[Recompute, int, tuple[RecomputeModule, ...]]]:
    """(recompute, block-method layers, modules) searched under the pins. A pinned ``--recompute
    full`` or ``selective`` means what it always meant (every layer; Megatron's default module)
    unless ``--recompute-layers`` or ``--recompute-modules`` is pinned too, which imply their mode."""
    mode = pins.recompute
    if mode is None and pins.recompute_num_layers:
        mode = Recompute.FULL
    if mode is None and pins.recompute_modules is not None:
        mode = Recompute.SELECTIVE
    choices: list[tuple[Recompute, int, tuple[RecomputeModule, ...]]] = []
    if mode in (None, Recompute.NONE):
        choices.append((Recompute.NONE, 0, ()))
    if mode in (None, Recompute.SELECTIVE):
        if pins.recompute_modules is not None:
            choices.append((Recompute.SELECTIVE, 0, pins.recompute_modules))
        else:
            choices.append((Recompute.SELECTIVE, 0, ()))
            if mode is None:
                choices += [(Recompute.SELECTIVE, 0, m) for m in module_sets(model)]
    if mode in (None, Recompute.FULL):
        if pins.recompute_num_layers is not None:
            choices.append((Recompute.FULL, pins.recompute_num_layers, ()))
        else:
            choices.append((Recompute.FULL, 0, ()))
            if mode is None:
                choices += [(Recompute.FULL, n, ()) for n in block_layers]
    return choices


def module_sets(model: ModelSpec) -> tuple[tuple[RecomputeModule, ...], ...]:
    """The selective module sets searched for this model besides Megatron's default; with
    multi-head latent attention also the first of them with ``mla_up_proj`` (NVIDIA's DeepSeek
    recipe ``mla_up_proj layernorm moe_act``, Megatron-Core ``transformer/moe/README.md``; at
    DeepSeek-V3's widths ``mla_up_proj`` frees ten times what ``shared_experts`` does for about the
    same rerun GEMMs, so the shared experts are not added to it: each set searched costs a
    tabulation of every layout's candidate rows)."""
    if not model.is_moe:
        sets = DENSE_MODULE_SETS
    else:
        sets = tuple(
            m
            for m in MOE_MODULE_SETS
            if RecomputeModule.SHARED_EXPERTS not in m or model.shared_expert_ffn_hidden_size
        )
    if model.is_mla:
        sets += (canonical_modules((*sets[0], RecomputeModule.MLA_UP_PROJ)),)
    return sets


def _optional(choice: tuple[Recompute, int, tuple[RecomputeModule, ...]], pins: Pins) -> bool:
    """A searched choice beyond the three modes: the block method or a named module set."""
    recompute, layers, modules = choice
    pinned = pins.recompute_num_layers is not None or pins.recompute_modules is not None
    return not pinned and (layers > 0 or bool(modules))


def block_layer_counts(model: ModelSpec, layout: tuple[int, ...], pins: Pins) -> frozenset[int]:
    """Block-method layer counts for one layout: the pinned count where its largest model chunk
    has at least that many layers, else every count below that chunk's layers (``compile_terms``
    tabulates only the smallest that fits beside each states row)."""
    mesh = dict(zip(LAYOUT_FIELDS, layout, strict=True))
    config = _mesh(**mesh, dp=mesh["ep"] * mesh["etp"])  # dp does not change the split
    chunk = largest_chunk_layers(model, config)
    if pins.recompute_num_layers is not None:
        n = pins.recompute_num_layers
        return frozenset({n} if 0 < n <= chunk else ())
    return frozenset(range(1, chunk))


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
    candidates: int | None = None
    """Candidates of the whole tables when rows were left out (``compile_terms(fitting_only=True)``):
    states rows times activations rows on each layout, counted before leaving out those that fit
    nothing; None when the tables are whole (``search.count_candidates`` counts them)."""


def compile_terms(
    space: Space,
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    constants: StepTimeConstants | None = None,
    *,
    times: bool = True,
    until_fit: bool = False,
    fitting_only: bool = False,
    top: int | None = None,
) -> Terms:
    """Evaluate every term over only the dimensions it depends on (not for layouts whose token
    dispatcher ``slower_dispatchers`` rules out); with ``times`` False only the memory tables (the
    time tables stay empty: whether anything fits needs no step time, and the step time is most of
    the work). With ``until_fit`` the tabulation stops at the first activations row that fits
    beside a states row of its layout, visiting the layouts with the lightest states rows first
    (and none without states rows): the tables, partial, then hold a candidate that fits
    (``search.fits_within``) if and only if the whole tables do, which is all a probe of the
    diagnosis asks. With ``fitting_only`` the activations rows that fit beside no states row of
    their layout are left out, and their step time never computed, and so are the states rows that
    fit beside none of the rows kept: no plan that fits uses them, so the best plans that fit are
    those of the whole tables (the choice of the partial recompute rows still reads them first);
    so is the candidate count (``Terms.candidates``), not the least-memory candidate. Above a
    micro-batch whose row fits beside no states row, the rows of the same layout and recompute
    choice are counted without being computed (``FITS_NOTHING``). Large spaces are tabulated by
    several processes (``planner.workers``), the rows put back in layout order.

    With ``top`` (and ``fitting_only``) only the layouts that can hold one of the ``top`` best plans
    that fit are tabulated (``_bounded``): the others' rows are left out of the tables and counted
    by their base recompute choices (``_Floor.candidates``)."""
    with collector_paused():
        try:
            return _tabulate(space, model, hardware, training, constants, times, until_fit, fitting_only, top)
        except _FitFound as found:
            return found.terms


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the block, back as it was after. The tabulation makes
    millions of tuples, dicts and configurations that reference counting frees as they go, and the
    collector, started by so many allocations, walks every object alive (the growing tables and the
    evaluator's caches) again and again: 0.3 of the 1.9 s qwen3-30b-a3b on 512 GPUs takes, for no
    cycle to find. Whatever cycles the block leaves are collected once the collector is back."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


FITS_NOTHING = (math.inf,) * len(loaded_stages(ParallelConfig(tp=1, pp=1, dp=1)))
"""The activations row of a candidate that ``compile_terms(fitting_only=True)`` knows, without
computing it, to fit beside no states row (a smaller micro-batch's row already does not): counted
among the candidates, then left out with the other rows that fit nothing."""


def search_terms(
    space: Space,
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    constants: StepTimeConstants | None = None,
    *,
    states_fit: bool = True,
    top: int | None = None,
) -> Terms:
    """The tables the search ranks: only the rows that fit beside some row of the other table
    (``compile_terms(fitting_only=True)``: the step time of the others is never computed), or, when
    none does, the whole tables, which say why nothing fits (a batch no layout divides, what the
    framework cannot run) and which candidate comes closest; those straight away when the caller
    knows that no GPU can hold the model states (``states_fit`` False:
    ``diagnose.min_gpus_for_states``). With ``top``, of the layouts only those that can hold one of
    the ``top`` best plans (``compile_terms(top=...)``); the ``top`` best plans of these tables are
    those of the tables without it, as long as the search ranks them in microseconds (the time unit
    of every request but the most extreme, ``scaling.choose_units``: otherwise rounding to a coarser
    unit could tie a row left out with one kept, and the tables are tabulated without ``top``)."""
    if states_fit:
        terms = compile_terms(space, model, hardware, training, constants, fitting_only=True, top=top)
        if terms.activations and (top is None or microsecond_units(space, terms)):
            return terms
        if terms.activations:
            return compile_terms(space, model, hardware, training, constants, fitting_only=True)
    return compile_terms(space, model, hardware, training, constants)


ROOMY_STATES_MARGIN = 2
"""The bound (``compile_terms(top=...)``) is used from this many times the fewest GPUs that hold the
model states (``diagnose.min_gpus_for_states``) on. Closer to it the states take most of each GPU,
memory decides which rows fit (few without recompute, whose time the floors assume), the floors
leave nearly every layout to tabulate and only add their own cost: qwen3-30b-a3b on 8 GPUs (7 hold
its states) tabulated all 240 of its layouts after their floors, 0.3 s more than without."""


def bound_top(gpus: int, fewest_gpus: int, top: int) -> int | None:
    """The ``top`` to bound the tabulation by on ``gpus`` GPUs, where ``fewest_gpus`` hold the model
    states (``ROOMY_STATES_MARGIN``), or None: every layout's rows. Either way the plans are the
    same; only the time to find them differs."""
    return top if gpus >= ROOMY_STATES_MARGIN * fewest_gpus else None


def microsecond_units(space: Space, terms: Terms) -> bool:
    """Whether the search ranks ``terms`` in microseconds (``scaling.choose_units``)."""
    from planner.scaling import choose_units  # noqa: PLC0415 (planner.scaling imports this module)

    return choose_units(space, terms).time_us == 1


class _FitFound(Exception):
    """Raised by the tabulation with ``until_fit`` at the first candidate that fits."""

    def __init__(self, terms: "Terms") -> None:
        super().__init__("a candidate fits")
        self.terms = terms


def _tabulate(
    space: Space,
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    constants: StepTimeConstants | None,
    times: bool,
    until_fit: bool,
    fitting_only: bool,
    top: int | None = None,
) -> Terms:
    """``compile_terms``'s tables, layout by layout: the rows of one layout depend on nothing of
    another's, so large spaces share the layouts among processes (``planner.workers``)."""
    framework = training.framework
    constants = constants or hardware.step_constants  # once: a profile's are rebuilt on each access
    # the dispatcher changes no memory: a memory-only probe keeps every layout
    slower = slower_dispatchers(space, model, hardware, training, constants) if times else frozenset()
    capacity = capacity_units(hardware)
    reserve = bytes_up(
        M.reserve_bytes(hardware.memory_bytes, training.reserve_fraction, training.reserve_fixed_bytes)
    )
    plain = {v[:3]: i for i, v in enumerate(space.recomputes) if not v[3]}  # without offload
    none_row, full_row = plain.get((Recompute.NONE, 0, ())), plain.get((Recompute.FULL, 0, ()))
    optional = space.optional_recomputes
    block = {v[1]: r for r, v in enumerate(space.recomputes) if r in optional and v[1] and not v[3]}
    modules = [r for r in sorted(optional) if not space.recomputes[r][1]]
    base = [r for r in range(len(space.recomputes)) if r not in optional]

    def states_rows(p: int) -> dict[tuple[int, int], tuple[int, ...]]:
        """The (layout, states) rows of layout ``p``: memory of each ``loaded_stages`` stage."""
        rows = {}
        for z, config in _zero_stages_run(space, model, training, p) if p not in slower else ():
            rows[p, z] = tuple(
                bytes_up(sum(stage_states_bytes(model, training, config, st))) + reserve
                for st in loaded_stages(config)
            )
        return rows

    @cache
    def dp_units(p: int, z: int) -> int:
        """The (layout, states) table's time of one row (once: the bounded tabulation asks first)."""
        return data_parallel_units(model, hardware, training, space.config(p, z, 0, 0), constants)

    def data_parallel_rows(states: dict[tuple[int, int], tuple[int, ...]]) -> dict[tuple[int, int], int]:
        """The (layout, states) table's time of each of ``states``' keys."""
        return {(p, z): dp_units(p, z) for p, z in states}

    def layout_rows(p: int, beside: list[tuple[int, ...]], tables: _LayoutRows) -> None:
        """The activations rows of layout ``p`` (and their step time) into ``tables``, and the keys
        of those that fit beside some row of ``beside`` (the layout's states rows)."""
        acts, pipe, kept_rows = tables.activations, tables.pipeline_us, tables.kept

        def tabulate(u: int, r: int, config: ParallelConfig, row: tuple[int, ...] | None = None) -> None:
            acts[p, r, u] = row or activation_row(model, training, config)
            fits = (until_fit or fitting_only) and any(_fits(acts[p, r, u], s, capacity) for s in beside)
            if until_fit and fits:
                raise _FitFound(Terms(tables.states, acts, pipe, tables.data_parallel_us))
            if fits:
                kept_rows.add((p, r, u))
            if times and (fits or not fitting_only):
                pipe[p, r, u] = time_units(
                    sum(pipeline_time(model, hardware, training, config, constants).values())
                )

        fitting = [] if p in slower else space.fitting_micro_batches(p, training.global_batch_size)
        if not fitting:
            return
        for r in base + modules:
            if not _runs(space, model, training, p, r, fitting[0]):
                continue
            too_large = False  # a smaller micro-batch's row fits beside no states row (fitting_only)
            for u in fitting:
                if too_large:  # nor does this one: activations never shrink as the micro-batch grows
                    if r not in optional:
                        acts[p, r, u] = FITS_NOTHING  # counted as a candidate, never in a plan
                    continue
                config = space.config(p, 0, r, u)
                if r not in optional:
                    tabulate(u, r, config)
                    too_large = fitting_only and (p, r, u) not in kept_rows
                    continue
                partners = _partners(acts.get((p, none_row, u)), acts.get((p, full_row, u)), beside, capacity)
                if not partners:
                    continue
                row = activation_row(model, training, config)
                if any(_fits(row, s, capacity) for s in partners):  # else never in a plan that fits
                    tabulate(u, r, config, row)
                else:
                    too_large = fitting_only and not any(_fits(row, s, capacity) for s in beside)
        counts = sorted(n for n in block if space.allows(p, block[n]))
        if not counts or reasons_within(
            ACTIVATIONS_TABLE, framework, model, training, space.config(p, 0, block[counts[0]], fitting[0])
        ):
            return
        for u in fitting:
            partners = _partners(acts.get((p, none_row, u)), acts.get((p, full_row, u)), beside, capacity)
            indices, rows = [block[n] for n in counts], {}
            row_at = partial(_memo_row, model, training, space, p, u, indices, rows)
            found: dict[tuple[int, ...], int] = {}  # states row -> fewest layers that fit beside it
            for states_row in sorted(set(partners), key=sum):
                # beside a states row no lighter on any stage, no fewer layers fit
                lo = max((i for row, i in found.items() if all(map(int.__le__, row, states_row))), default=0)
                fewest = _fewest_that_fit(row_at, lo, len(counts), states_row, capacity)
                if fewest is not None:
                    found[states_row] = fewest
            for i in sorted(set(found.values())):
                tabulate(u, block[counts[i]], space.config(p, 0, block[counts[i]], u), row_at(i))

    if until_fit:  # the likeliest to fit first: the order changes what is visited, not the answer
        tables = _LayoutRows()
        for p in range(len(space.layouts)):
            tables.states.update(states_rows(p))
        if times:
            tables.data_parallel_us = data_parallel_rows(tables.states)
        states_of: dict[int, list[tuple[int, ...]]] = {}
        for (p, _), row in tables.states.items():
            states_of.setdefault(p, []).append(row)
        for p in sorted(states_of, key=lambda p: (min(max(row) for row in states_of[p]), p)):
            layout_rows(p, states_of[p], tables)
        return Terms(tables.states, tables.activations, tables.pipeline_us, tables.data_parallel_us)

    def layout_tables(p: int) -> _LayoutRows:
        """Every table's rows of layout ``p``; with ``fitting_only`` only those that fit beside a
        row of the other table (and ``candidates``, the whole tables' count on this layout)."""
        tables = _LayoutRows(states=states_rows(p))
        beside = list(tables.states.values())
        layout_rows(p, beside, tables)
        if fitting_only:
            tables.candidates = len(beside) * len(tables.activations)
            tables.activations = {k: row for k, row in tables.activations.items() if k in tables.kept}
            tables.states = {
                k: row
                for k, row in tables.states.items()
                if any(_fits(a, row, capacity) for a in tables.activations.values())
            }
        if times:
            tables.data_parallel_us = data_parallel_rows(tables.states)
        return tables

    whole = _LayoutRows(candidates=0 if fitting_only else None)
    if top is not None and fitting_only and times:

        def floor_of(p: int) -> _Floor | None:
            return _layout_floor(space, model, hardware, training, constants, p, p in slower)

        share = processes_for(len(space.layouts), FLOOR_LAYOUTS_PER_PROCESS)
        floors = in_processes(floor_of, range(len(space.layouts)), share)
        parts = _bounded(floors, dp_units, layout_tables, capacity, top)
    else:
        parts = in_processes(layout_tables, range(len(space.layouts)), processes_for(len(space.layouts)))
    for part in parts:  # in layout order, as one process would have filled them
        whole.states.update(part.states)
        whole.activations.update(part.activations)
        whole.pipeline_us.update(part.pipeline_us)
        whole.data_parallel_us.update(part.data_parallel_us)
        if fitting_only:
            whole.candidates += part.candidates
    return Terms(whole.states, whole.activations, whole.pipeline_us, whole.data_parallel_us, whole.candidates)


def _runs(space: Space, model: ModelSpec, training: TrainingSpec, p: int, r: int, u: int) -> bool:
    """Whether the activations table has rows of recompute choice ``r`` on layout ``p``: the layout
    takes its block-method count (``Space.allows``) and the framework runs it (its first fitting
    micro-batch ``u`` stands for all: the rules read no micro-batch)."""
    return space.allows(p, r) and not reasons_within(
        ACTIVATIONS_TABLE, training.framework, model, training, space.config(p, 0, r, u)
    )


def _zero_stages_run(
    space: Space, model: ModelSpec, training: TrainingSpec, p: int
) -> Iterator[tuple[int, ParallelConfig]]:
    """The ZeRO stages (``Space.zero_stages`` indices) the framework runs on layout ``p``, each with
    its states-table configuration: the states table's rows, and the floors' count of them."""
    for z in range(len(space.zero_stages)):
        config = space.config(p, z, 0, 0)
        if not reasons_within(STATES_TABLE, training.framework, model, training, config):
            yield z, config


@dataclass(frozen=True, slots=True)
class _Floor:
    """What the bounded tabulation (``_bounded``) knows of a layout before tabulating it."""

    pipeline_us: int
    """No activations row of the layout has a shorter pipeline time (integer microseconds, as the
    tables)."""
    zeros: tuple[int, ...]
    """The ZeRO stages (``Space.zero_stages`` indices) the framework runs on it."""
    candidates: int
    """Its candidates, counted without their memory: states rows the framework runs times
    activations rows of the base recompute choices (none, selective, full; the block method's and
    the module sets' rows are searched only where memory calls for them, which this count does not
    compute)."""


def _layout_floor(
    space: Space,
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    constants: StepTimeConstants,
    p: int,
    slower: bool,
) -> _Floor | None:
    """Layout ``p``'s ``_Floor``, or None when it has no candidate (a slower dispatcher's twin, no
    micro-batch that divides the batch, no ZeRO stage the framework runs): the least
    ``performance.pipeline_time_floor`` of its micro-batches, rounded down (a microsecond and
    ``FLOOR_SLACK`` below the float sum: the tables round the same terms, summed in another order,
    to nearest)."""
    fitting = [] if slower else space.fitting_micro_batches(p, training.global_batch_size)
    if not fitting:
        return None
    zeros = tuple(z for z, _ in _zero_stages_run(space, model, training, p))
    if not zeros:
        return None
    base = [
        r
        for r in range(len(space.recomputes))
        if r not in space.optional_recomputes and _runs(space, model, training, p, r, fitting[0])
    ]
    pipeline = min(  # the floor holds for every recompute choice: any one names the micro-batch
        pipeline_time_floor(model, hardware, training, space.config(p, 0, 0, u), constants) for u in fitting
    )
    return _Floor(
        pipeline_us=max(0, math.floor(pipeline * TIME_SCALE_PER_S * (1 - FLOOR_SLACK)) - 1),
        zeros=zeros,
        candidates=len(zeros) * len(base) * len(fitting),
    )


FLOOR_LAYOUTS_PER_PROCESS = 250
"""Layouts per worker process of the floors (``planner.workers``): a layout's floor costs about
half of tabulating it (``workers.MIN_LAYOUTS_PER_PROCESS``), so half as many pay for a worker."""

FLOOR_SLACK = 1e-9
"""Relative slack below a floor: the bound and the tables sum the same float terms in other
orders, which differ by a few ulps (``2**-52`` of the sum), never by this much."""


def _bounded(
    floors: list[_Floor | None],
    data_parallel_us: Callable[[int, int], int],
    layout_tables: Callable[[int], "_LayoutRows"],
    capacity: int,
    top: int,
) -> list["_LayoutRows"]:
    """The rows of the layouts that can hold one of the ``top`` best plans that fit, in layout
    order (branch and bound). Layouts are tabulated from the lowest bound up, the bound being the
    pipeline floor plus the least data-parallel time of the layout's ZeRO stages
    (``data_parallel_us(p, z)``, the states table's time); the visit stops at the first bound that
    exceeds the ``top``-th least time of the candidates that fit so far (memory as the search
    compares it, ``scaling.memory_up``). The data-parallel times are asked lazily: a layout is
    queued by its pipeline floor, a lower bound of its bound, and its bound is completed when that
    comes first, so layouts whose pipeline floor alone ends the visit never ask for them. Every
    candidate of a layout left out then takes longer than ``top`` candidates that fit, at the
    tables' microsecond resolution, so it is not among the ``top`` best whatever the tie-break; a
    layout left out contributes only its candidate count."""
    from planner.scaling import memory_up  # noqa: PLC0415 (planner.scaling imports this module)

    # Each layout's key is a lower bound of its candidates' times: first its pipeline floor alone,
    # then, once that is the least key, plus its least data-parallel time (put back in the queue).
    queue = [(f.pipeline_us, False, p) for p, f in enumerate(floors) if f is not None]
    heapq.heapify(queue)
    best: list[int] = []  # the ``top`` least times found, negated (a max-heap)
    parts: dict[int, _LayoutRows] = {}
    while queue:
        key, whole, p = heapq.heappop(queue)
        if len(best) == top and key > -best[0]:
            break  # every key left is at least this one
        if not whole:
            dp_floor = min(data_parallel_us(p, z) for z in floors[p].zeros)
            heapq.heappush(queue, (key + dp_floor, True, p))
            continue
        part = parts[p] = layout_tables(p)
        states = {(q, z): tuple(map(memory_up, row)) for (q, z), row in part.states.items()}
        for (q, r, u), acts in part.activations.items():
            held = tuple(map(memory_up, acts))
            for (_, z), row in states.items():
                if _fits(held, row, capacity):
                    time = part.pipeline_us[q, r, u] + part.data_parallel_us[q, z]
                    if len(best) < top:
                        heapq.heappush(best, -time)
                    elif time < -best[0]:
                        heapq.heapreplace(best, -time)
    for p, f in enumerate(floors):
        if p not in parts and f is not None:
            parts[p] = _LayoutRows(candidates=f.candidates)
    return [parts[p] for p in sorted(parts)]


@dataclass(slots=True)
class _LayoutRows:
    """Rows of the tables being filled (of one layout, or of all), and with ``fitting_only`` the
    activations keys that fit and the candidate count."""

    states: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict)
    activations: dict[tuple[int, int, int], tuple[int, ...]] = field(default_factory=dict)
    pipeline_us: dict[tuple[int, int, int], int] = field(default_factory=dict)
    data_parallel_us: dict[tuple[int, int], int] = field(default_factory=dict)
    kept: set[tuple[int, int, int]] = field(default_factory=set)
    candidates: int | None = None


def data_parallel_units(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    constants: StepTimeConstants,
) -> int:
    """The (layout, states) table's time: exposed DP communication and optimizer step, in units."""
    return time_units(sum(data_parallel_time(model, hardware, training, config, constants).values()))


def activation_row(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> tuple[int, ...]:
    """Activation memory of ``config`` on each of ``evaluate.loaded_stages``, integer bytes (each
    stage once: they repeat when the pipeline has fewer than three)."""
    stages = loaded_stages(config)
    held = {
        st: bytes_up(sum(stage_activation_bytes(model, training, config, st).values())) for st in set(stages)
    }
    return tuple(held[st] for st in stages)


def _partners(
    none: tuple[int, ...] | None,
    full: tuple[int, ...] | None,
    states_rows: list[tuple[int, ...]],
    capacity: int,
) -> list[tuple[int, ...]]:
    """The states rows of a layout beside which a block-method or module-set row of one micro-batch
    can be part of a best plan: those full recompute of every layer fits beside (a partial
    recompute keeps at least as much) and no recompute does not (beside the others no recompute
    is faster: recompute only adds time, and the tie-break prefers less)."""
    return [
        row
        for row in states_rows
        if (full is None or _fits(full, row, capacity)) and (none is None or not _fits(none, row, capacity))
    ]


def _memo_row(
    model: ModelSpec,
    training: TrainingSpec,
    space: Space,
    p: int,
    u: int,
    indices: list[int],
    rows: dict[int, tuple[int, ...]],
    i: int,
) -> tuple[int, ...]:
    """The activations row of recompute choice ``indices[i]`` on layout ``p``, micro-batch ``u``,
    computed once into ``rows``."""
    if i not in rows:
        rows[i] = activation_row(model, training, space.config(p, 0, indices[i], u))
    return rows[i]


def _fewest_that_fit(
    row_at: Callable[[int], tuple[int, ...]], lo: int, count: int, states_row: tuple[int, ...], capacity: int
) -> int | None:
    """Index (from ``lo``) of the fewest block-method layers (``row_at(i)``: the activations of the
    ``i``-th count, falling as ``i`` grows) that fit beside ``states_row``; None if even the most do
    not. A stage's activations fall linearly with the layers recomputed while each chunk keeps some
    whole, so the straight line through the two ends guesses the index, which is then checked and,
    where the line misses (lighter end stages recompute all their layers earlier; rounding), found
    by bisection between the checked bounds."""
    hi = count - 1
    if not _fits(row_at(hi), states_row, capacity):
        return None
    if lo >= hi or _fits(row_at(lo), states_row, capacity):
        return min(lo, hi)
    first, last = row_at(0), row_at(hi)
    guess = lo + 1
    for most, fewest, held in zip(first, last, states_row, strict=True):
        if most + held > capacity and most > fewest:  # this stage must fall by most + held - capacity
            guess = max(guess, math.ceil((most + held - capacity) * hi / (most - fewest)))
    guess = min(guess, hi)
    if _fits(row_at(guess), states_row, capacity):
        if not _fits(row_at(guess - 1), states_row, capacity):
            return guess
        hi = guess - 1
    else:
        lo = guess + 1
    while lo < hi:  # invariant: row_at(hi) fits, row_at(lo - 1) does not
        mid = (lo + hi) // 2
        if _fits(row_at(mid), states_row, capacity):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _fits(acts: tuple[int, ...], states_row: tuple[int, ...], capacity: int) -> bool:
    """Whether an activations row and a states row fit together on every stage."""
    return all(a + s <= capacity for a, s in zip(acts, states_row, strict=True))


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
    rates = rates_of(hardware, constants or hardware.step_constants)  # the tabulation's: its caches warm
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
