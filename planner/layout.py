"""The parallel layout: one record whose fields are the registry of every dimension.

``ParallelConfig``'s field order is the search's tie-break order (lower ZeRO stage, no optimizer
offload, less recompute, no activation offload, smaller tp, cp, pp, vpp, ep, etp, the all-to-all
dispatcher, even stages, smaller micro-batch);
each field carries a ``Dimension`` (its CLI pin option, document key and position, help text, and
which candidate table of the search it belongs to). The space, the solver's tie-break, the pins,
the CLI pin options, the document's ``parallelism`` block, the one-line summaries (table, sweep,
launch comments) iterate ``DIMENSIONS`` instead of naming the fields. A new dimension is one field
here, its formula in ``constraints/``, its flag in each emitter, and its tests.
"""

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum, IntEnum
from typing import Any

from constraints.recompute import RecomputeModule
from constraints.units import Dispatcher, Recompute, ZeroStage
from planner.errors import PlannerError


class Group(Enum):
    """Which domain of the candidate space a dimension belongs to (``planner.space.Space``); the
    groups nest in this order in the tie-break, as the fields do."""

    STATES = "states"
    """Sharding of the model states: the (layout, states) table of weights, gradients, optimizer."""
    ACTIVATIONS = "activations"
    """What happens to kept activations: the (layout, activations, micro-batch) table."""
    LAYOUT = "layout"
    """Mesh sizes: shared by both tables; together they fix dp."""
    MICRO_BATCH = "micro_batch"
    """Sequences per micro-batch."""
    DERIVED = "derived"
    """Not searched: follows from the others (dp = GPUs / (tp cp pp)) or from a user option."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Dimension:
    """What the planner needs to know about one ``ParallelConfig`` field besides its value."""

    group: Group
    """Search domain it belongs to."""
    document_position: int
    """Position of its key in the plan document's ``parallelism`` block (a contract with users'
    scripts, older than the tie-break order: keep it)."""
    label: str
    """Short name in one-line summaries (``zero=1``, ``mbs=2``)."""
    option: str | None = None
    """CLI option that pins it, or None when pinned another way (``--offload``)."""
    help: str = ""
    """``--help`` text of the option."""
    tie_break: str | None = None
    """How the document's ``solver.tie_break`` note names the preference (``smaller tp``, or just
    ``cp`` after another of its kind), or None when the note leaves it out."""
    quiet: bool = False
    """One-line summaries leave it out at its default (cp=1, offload off)."""


def _dim(default: Any = None, **kwargs: Any) -> Any:
    metadata = {"dimension": Dimension(**kwargs)}
    if default is None:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelConfig:
    """How one training step is laid out over the GPUs; field order is the tie-break order."""

    zero_stage: ZeroStage = _dim(
        ZeroStage.NONE,
        group=Group.STATES,
        document_position=8,
        label="zero",
        option="--zero",
        tie_break="lower zero_stage",
        help="Pin ZeRO stage (Megatron: 1 = distributed optimizer).",
    )
    """What is sharded over ``dp * cp``; Megatron's distributed optimizer is stage 1."""
    optimizer_offload: bool = _dim(
        False, group=Group.STATES, document_position=6, label="optimizer_offload", quiet=True
    )
    """Master weights and Adam states live in CPU memory and the Adam step runs on the CPU
    (DeepSpeed ZeRO-Offload, Ren et al. 2021; Megatron ``--optimizer-cpu-offload``)."""
    recompute: Recompute = _dim(
        Recompute.NONE,
        group=Group.ACTIVATIONS,
        document_position=9,
        label="recompute",
        option="--recompute",
        tie_break="less recompute",
        help="Pin activation recomputation.",
    )
    """Activation recomputation: none, selective (the modules of ``recompute_modules``) or full (the
    layers of ``recompute_num_layers``)."""
    recompute_num_layers: int = _dim(
        0,
        group=Group.ACTIVATIONS,
        document_position=17,
        label="recompute_layers",
        option="--recompute-layers",
        quiet=True,
        help="Pin full recompute of the first N layers of each model chunk (Megatron's block method).",
    )
    """With ``recompute`` full: layers of each model chunk (a pipeline rank's layers, or one virtual
    stage's) that keep only their input and rerun their forward, the first ones (Megatron-LM
    ``--recompute-method block --recompute-num-layers N``); 0: every layer."""
    recompute_modules: tuple[RecomputeModule, ...] = _dim(
        (),
        group=Group.ACTIVATIONS,
        document_position=18,
        label="recompute_modules",
        option="--recompute-modules",
        quiet=True,
        help="Pin selective recompute of these modules (comma-separated: "
        + ",".join(m.value for m in RecomputeModule)
        + ").",
    )
    """With ``recompute`` selective: the modules every layer recomputes, in ``RecomputeModule``
    order (Megatron-LM ``--recompute-modules``); empty: Megatron's default, ``core_attn``."""
    activation_offload: bool = _dim(
        False, group=Group.ACTIVATIONS, document_position=7, label="activation_offload", quiet=True
    )
    """Kept activations go to CPU memory and come back for backward (Megatron ``--cpu-offloading``,
    all layers but one; DeepSpeed ``cpu_checkpointing`` of the full-recompute checkpoints)."""
    tp: int = _dim(
        group=Group.LAYOUT,
        document_position=0,
        label="tp",
        option="--tp",
        tie_break="smaller tp",
        help="Pin tensor-parallel size.",
    )
    """Tensor-parallel size."""
    cp: int = _dim(
        1,
        group=Group.LAYOUT,
        document_position=3,
        label="cp",
        option="--cp",
        tie_break="cp",
        quiet=True,
        help="Pin context-parallel size (sequence split over ranks).",
    )
    """Context-parallel size: ranks that split each sequence (ring attention)."""
    pp: int = _dim(
        group=Group.LAYOUT,
        document_position=1,
        label="pp",
        option="--pp",
        tie_break="pp",
        help="Pin pipeline-parallel size.",
    )
    """Pipeline-parallel size (stages)."""
    vpp: int = _dim(
        1,
        group=Group.LAYOUT,
        document_position=4,
        label="vpp",
        option="--vpp",
        tie_break="vpp",
        quiet=True,
        help="Pin virtual pipeline stages per rank (interleaved 1F1B).",
    )
    """Virtual pipeline stages (model chunks) per pipeline rank; 1 = plain 1F1B, > 1 interleaved."""
    ep: int = _dim(
        1,
        group=Group.LAYOUT,
        document_position=5,
        label="ep",
        option="--ep",
        tie_break="ep",
        quiet=True,
        help="Pin expert-parallel size (MoE models).",
    )
    """Expert-parallel size: ranks that split the routed experts; with ``etp`` carved out of
    ``tp * cp * dp`` (Megatron-Core ``parallel_state``: the expert groups re-split each pipeline
    stage's ranks as etp x ep x expert-dp)."""
    etp: int = _dim(
        1,
        group=Group.LAYOUT,
        document_position=15,
        label="etp",
        option="--etp",
        tie_break="etp",
        quiet=True,
        help="Pin expert tensor-parallel size (MoE models; Megatron --expert-tensor-parallel-size).",
    )
    """Expert tensor-parallel size: ranks that split each routed expert's FFN width (Megatron-Core
    ``--expert-tensor-parallel-size``; 1 keeps every expert whole on a rank, as most MoE recipes
    run). Searched among 1 and ``tp``."""
    dispatcher: Dispatcher = _dim(
        Dispatcher.ALLTOALL,
        group=Group.LAYOUT,
        document_position=16,
        label="dispatcher",
        option="--dispatcher",
        tie_break="all-to-all dispatcher",
        quiet=True,
        help="Pin the MoE token dispatcher: alltoall, or flex (DeepEP hierarchical dispatch).",
    )
    """How MoE layers move tokens to their experts (``constraints.units.Dispatcher``)."""
    first_stage_layers: int = _dim(
        0,
        group=Group.LAYOUT,
        document_position=13,
        label="first_layers",
        option="--first-stage-layers",
        tie_break="even stages",
        quiet=True,
        help="Pin the decoder layers of the first pipeline stage (with --last-stage-layers).",
    )
    """Decoder layers of the first pipeline stage, the middle stages sharing the rest evenly
    (``constraints.pipeline``); 0 with ``last_stage_layers`` 0: every stage the same."""
    last_stage_layers: int = _dim(
        0,
        group=Group.LAYOUT,
        document_position=14,
        label="last_layers",
        option="--last-stage-layers",
        quiet=True,
        help="Pin the decoder layers of the last pipeline stage (with --first-stage-layers).",
    )
    """Decoder layers of the last pipeline stage; 0 with ``first_stage_layers`` 0: an even split."""
    micro_batch_size: int = _dim(
        1,
        group=Group.MICRO_BATCH,
        document_position=10,
        label="mbs",
        option="--mbs",
        tie_break="smaller mbs",
        help="Pin micro-batch size (sequences).",
    )
    """Sequences per micro-batch on one data-parallel rank."""
    dp: int = _dim(
        group=Group.DERIVED, document_position=2, label="dp", option="--dp", help="Pin data-parallel size."
    )
    """Data-parallel size; ``tp * cp * pp * dp`` is the GPU count."""
    sequence_parallel: bool = _dim(False, group=Group.DERIVED, document_position=12, label="sp")
    """Megatron sequence parallelism (needs ``tp > 1``)."""

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "micro_batch_size", "vpp", "cp", "ep", "etp"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise PlannerError(f"{name} must be a positive integer, got {value!r}")
        for name, must in (
            ("first_stage_layers", "be a positive integer (0: an even split)"),
            ("last_stage_layers", "be a positive integer (0: an even split)"),
            ("recompute_num_layers", "be a whole number (0: every layer)"),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise PlannerError(f"{name} must {must}, got {value!r}")
        if self.recompute_num_layers and self.recompute is not Recompute.FULL:
            raise PlannerError("--recompute-layers (recompute_num_layers) needs --recompute full")
        if not isinstance(self.recompute_modules, tuple) or not all(
            isinstance(m, RecomputeModule) for m in self.recompute_modules
        ):
            raise PlannerError(
                f"recompute_modules must be a tuple of RecomputeModule, got {self.recompute_modules!r}"
            )
        if self.recompute_modules and self.recompute_modules != canonical_modules(self.recompute_modules):
            raise PlannerError("recompute_modules must be distinct and in RecomputeModule order")
        if self.recompute_modules and self.recompute is not Recompute.SELECTIVE:
            raise PlannerError("--recompute-modules (recompute_modules) needs --recompute selective")
        if (self.first_stage_layers == 0) != (self.last_stage_layers == 0):
            raise PlannerError("--first-stage-layers and --last-stage-layers are set together")
        if self.uneven_stages and self.pp == 1:
            raise PlannerError("uneven pipeline stages (--first-stage-layers) need --pp above 1")
        if (self.tp * self.dp * self.cp) % (self.ep * self.etp):
            raise PlannerError(
                f"--ep {self.ep} x --etp {self.etp} must divide tp*cp*dp = {self.tp * self.dp * self.cp}"
            )
        if self.sequence_parallel and self.tp == 1:
            raise PlannerError("sequence parallel needs --tp above 1; use --no-sequence-parallel")
        if self.vpp > 1 and self.pp == 1:
            raise PlannerError("--vpp above 1 needs --pp above 1 (interleaved pipeline)")

    @property
    def num_gpus(self) -> int:
        """GPUs the layout occupies."""
        return self.tp * self.cp * self.pp * self.dp

    @property
    def uneven_stages(self) -> bool:
        """The first and last stages hold their own layer counts."""
        return self.first_stage_layers > 0

    @property
    def shard_group(self) -> int:
        """Ranks that share gradients and shard ZeRO states: data-parallel times context-parallel
        (Megatron-LM reduces gradients over its ``dp_cp`` group)."""
        return self.dp * self.cp

    @property
    def expert_shard_group(self) -> int:
        """Ranks that hold the same expert shards and shard their ZeRO states: expert data
        parallelism ``tp * cp * dp / (etp * ep)`` (Megatron-Core ``parallel_state``,
        ``expert_data_parallel_size``)."""
        return self.tp * self.dp * self.cp // (self.ep * self.etp)

    @property
    def expert_dispatch_ranks(self) -> int:
        """Consecutive ranks one MoE dispatch spans: ``etp * ep`` (expert ranks ordered etp, ep,
        expert-dp; Megatron-Core's ``tp_ep`` group)."""
        return self.ep * self.etp


LAYOUT_MESH = frozenset({Group.LAYOUT, Group.DERIVED})
"""What one layout decides: its mesh sizes and what follows from them (dp, sequence parallelism)."""


def checked_config(values: Mapping[str, Any]) -> ParallelConfig:
    """The ``ParallelConfig`` of a value for every field, without running its checks again: for
    values already checked as a whole (``planner.space``: the tables build one configuration per
    row from domains whose every layout, recompute choice and micro-batch was built as a
    ``ParallelConfig`` once)."""
    config = object.__new__(ParallelConfig)
    for name in ParallelConfig.__slots__:
        object.__setattr__(config, name, values[name])
    return config


def sequence_parallel_of(tp: int, pinned: bool | None) -> bool:
    """A layout's sequence parallelism: on with tp above 1 unless pinned off (``--no-sequence-parallel``)."""
    return tp > 1 and pinned is not False


def canonical_modules(modules: Any) -> tuple[RecomputeModule, ...]:
    """Modules once each, in ``RecomputeModule`` order (how plans and flags list them)."""
    chosen = set(modules)
    return tuple(m for m in RecomputeModule if m in chosen)


def parse_modules(text: Any, where: str) -> tuple[RecomputeModule, ...]:
    """``core_attn,mlp`` (or a list of names) as modules in canonical order; an empty string or
    list is Megatron's default set. Unknown names are an error naming ``where`` and the choices."""
    names = text.split(",") if isinstance(text, str) else text
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise PlannerError(
            f"{where} must be a list of module names such as [layernorm, moe_act], got {text!r}"
        )
    names = [n.strip() for n in names if n.strip()]
    valid = [m.value for m in RecomputeModule]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise PlannerError(f"{where}: unknown module(s) {', '.join(unknown)}; use {', '.join(valid)}")
    return canonical_modules(RecomputeModule(n) for n in names)


def tie_break_value(name: str, value: Any) -> Any:
    """A field's value as the tie-break compares it (smaller first): enums in their definition
    order, ``recompute_num_layers`` with 0 (every layer) after every partial count, module sets by
    size then by their modules' order, numbers by size."""
    if name == "recompute_num_layers":
        return value or float("inf")
    if name == "recompute_modules":
        order = list(RecomputeModule)
        return (len(value), tuple(order.index(m) for m in value))
    if isinstance(value, Enum):
        return list(type(value)).index(value)
    return int(value)


@dataclass(frozen=True, slots=True)
class Entry:
    """One registered dimension: the field's name, type and default with its ``Dimension``."""

    name: str
    type: Any
    default: Any
    dimension: Dimension


DIMENSIONS: tuple[Entry, ...] = tuple(
    Entry(f.name, f.type, f.default, f.metadata["dimension"]) for f in fields(ParallelConfig)
)
"""Every dimension, in tie-break order."""

GRAD_ACCUM_KEY = "grad_accum_steps"
GRAD_ACCUM_POSITION = 11
"""The document's ``parallelism`` block also holds the derived micro-batch count, at this position."""


def group_fields(group: Group) -> tuple[str, ...]:
    """Names of the dimensions of one search domain, in tie-break order."""
    return tuple(e.name for e in DIMENSIONS if e.dimension.group is group)


def document_order() -> tuple[str, ...]:
    """Keys of the document's ``parallelism`` block, in its order (dimensions and grad_accum_steps)."""
    positions = {e.name: e.dimension.document_position for e in DIMENSIONS} | {
        GRAD_ACCUM_KEY: GRAD_ACCUM_POSITION
    }
    return tuple(sorted(positions, key=positions.__getitem__))


def document_value(value: Any) -> Any:
    """A field's value as the document writes it: ZeRO stage as an int, other enums by value."""
    if isinstance(value, IntEnum):
        return int(value)
    if isinstance(value, tuple):
        return [document_value(v) for v in value]
    return value.value if isinstance(value, Enum) else value


def parallelism_block(config: ParallelConfig, grad_accum_steps: int) -> dict[str, Any]:
    """The plan document's ``parallelism`` block."""
    values = {e.name: document_value(getattr(config, e.name)) for e in DIMENSIONS}
    values[GRAD_ACCUM_KEY] = grad_accum_steps
    return {key: values[key] for key in document_order()}


def config_from_block(block: Any, where: str) -> ParallelConfig:
    """The inverse of ``parallelism_block``: a layout from a plan document's (or a user's)
    ``parallelism`` mapping. Dimensions left out take their defaults; each value must be of its
    field's type (enums by their document value); ``grad_accum_steps`` is accepted (the caller
    checks it against the batch). Errors name ``where`` and the key."""
    if not isinstance(block, Mapping):
        raise PlannerError(f"{where} must be a mapping such as {{tp: 2, pp: 1, dp: 32}}")
    known = {e.name: e for e in DIMENSIONS}
    if "recompute_method" in block:
        raise PlannerError(
            f"{where}.recompute_method: Megatron's recompute methods are planned as recompute: full "
            "(every layer: uniform, one layer a group) and recompute_num_layers: N (block, the first N "
            "layers of each chunk); uniform groups of several layers are not (README 'Partial recompute')"
        )
    unknown = sorted(map(str, set(block) - set(known) - {GRAD_ACCUM_KEY}))
    if unknown:
        keys = [k for k in document_order() if k in known]
        raise PlannerError(f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(keys)}")
    values = {}
    for name, entry in known.items():
        if name in block:
            values[name] = _typed(entry.type, block[name], f"{where}.{name}", zero_ok=entry.default == 0)
        elif entry.default is MISSING:
            raise PlannerError(f"{where}: missing key '{name}'")
    return ParallelConfig(**values)


def _typed(kind: Any, value: Any, where: str, zero_ok: bool = False) -> Any:
    """``value`` as a field of type ``kind``: an enum member by value, a bool, a positive int (or 0
    where ``zero_ok``: a field whose 0 means unset, as the first/last stage layers of an even split)."""
    if kind == tuple[RecomputeModule, ...]:
        return parse_modules(value, where)
    if isinstance(kind, type) and issubclass(kind, Enum):
        allowed = [document_value(member) for member in kind]
        if value not in allowed or isinstance(value, bool):
            raise PlannerError(f"{where} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return kind(value)
    if kind is bool and not isinstance(value, bool):
        raise PlannerError(f"{where} must be true or false, got {value!r}")
    if kind is int and (
        not isinstance(value, int) or isinstance(value, bool) or value < (0 if zero_ok else 1)
    ):
        raise PlannerError(
            f"{where} must be a {'whole number' if zero_ok else 'positive integer'}, got {value!r}"
        )
    return value  # other types: the field's own validation decides


def tie_break_note() -> str:
    """The document's ``solver.tie_break``: the preference of each named dimension, in order."""
    return ", ".join(e.dimension.tie_break for e in DIMENSIONS if e.dimension.tie_break)


def columns() -> tuple[tuple[str, str], ...]:
    """(document key, label) of each dimension for tables with a column per dimension (``plan
    sweep``): the mesh sizes and dp, then the searched choices in tie-break order."""
    by_name = {e.name: e.dimension.label for e in DIMENSIONS}
    order = [
        *group_fields(Group.LAYOUT),
        "dp",
        *group_fields(Group.STATES),
        *group_fields(Group.ACTIVATIONS),
        *group_fields(Group.MICRO_BATCH),
    ]
    return tuple((name, by_name[name]) for name in order)


def column_values(parallelism: dict[str, Any]) -> dict[str, Any]:
    """Label -> value of ``columns()`` for one ``parallelism`` block; quiet switches and quiet
    settings whose default means unset (0, empty) only when set; module lists comma-separated."""
    quiet = {
        e.name for e in DIMENSIONS if e.dimension.quiet and (isinstance(e.default, bool) or not e.default)
    }
    shown = {}
    for key, label in columns():
        value = parallelism[key]
        if key not in quiet or value:
            shown[label] = ",".join(value) if isinstance(value, list) else value
    return shown


def summary(parallelism: dict[str, Any], style: str = "table") -> str:
    """One line naming a ``parallelism`` block's values in document order.

    ``table``: ``tp=1 pp=4 dp=16 vpp=5 zero=1 ... sp=off`` (quiet dimensions only when not at their
    default); ``brief``: the same without grad_accum and sp; ``comment``: every mesh size, switches
    as true/false under their full key (quiet switches only when on), for generated scripts.
    """
    by_name = {e.name: e for e in DIMENSIONS}
    words = []
    for key in document_order():
        value = parallelism.get(key)
        entry = by_name.get(key)
        if entry is None:  # grad_accum_steps
            if style != "brief":
                words.append(f"grad_accum={value}")
            continue
        dim = entry.dimension
        if style == "brief" and dim.group is Group.DERIVED and isinstance(value, bool):
            continue  # follows from the rest (sequence parallelism)
        at_default = value == document_value(entry.default)
        if isinstance(value, list):  # recompute modules: only when named
            if value:
                words.append(f"{dim.label}={','.join(map(str, value))}")
            continue
        if isinstance(value, bool):
            if dim.quiet and not value:
                continue
            if style == "comment":
                words.append(f"{key}={str(value).lower()}")
            else:
                words.append(f"{dim.label}={'on' if value else 'off'}")
            continue
        # comments name every mesh size, not a default that is no size (even stages, a dispatcher)
        if dim.quiet and at_default and (style != "comment" or not isinstance(value, int) or value == 0):
            continue
        words.append(f"{dim.label}={value}")
    return " ".join(words)
