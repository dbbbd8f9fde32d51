"""Which layouts a model admits: divisibility rules with messages that say what would work."""

from constraints.pipeline import end_stage_splits
from constraints.units import Dispatcher
from planner.specs import ModelSpec


def divisors(n: int) -> list[int]:
    """Positive divisors of ``n``, ascending."""
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def valid_tp(model: ModelSpec) -> list[int]:
    """TP sizes that split the query and KV heads evenly (Megatron-LM ``validate_args``)."""
    return [t for t in divisors(model.num_heads) if model.num_kv_heads % t == 0]


def valid_pp(model: ModelSpec) -> list[int]:
    """PP sizes that give every stage the same number of layers."""
    return divisors(model.num_layers)


def pipeline_sizes(model: ModelSpec) -> list[int]:
    """PP sizes with a whole split of the layers: every divisor, and every size whose first and last
    stages can hold fewer layers than the middle ones (``constraints.pipeline.end_stage_splits``);
    which of them a framework can build is ``planner.capability``'s."""
    n = model.num_layers
    return [p for p in range(1, n + 1) if n % p == 0 or end_stage_splits(n, p)]


def pipeline_splits(model: ModelSpec, pp: int, vpp: int) -> list[tuple[int, int]]:
    """(first, last) stage layers searched for this pp and vpp: ``(0, 0)`` for the even split when
    every stage's layers split into ``vpp`` chunks, then the lighter-ended splits
    (``constraints.pipeline.end_stage_splits``; the framework's own rule is ``planner.capability``'s)."""
    n = model.num_layers
    if pp == 1:
        return [(0, 0)] if vpp == 1 else []
    even = (n // pp, n // pp) if n % pp == 0 else None
    splits = [(0, 0)] if even and even[0] % vpp == 0 else []
    return splits + [split for split in end_stage_splits(n, pp) if split != even]


def valid_cp(seq_len: int) -> list[int]:
    """Context-parallel sizes: Megatron's load-balanced ring splits each sequence into ``2*cp``
    chunks, so ``2*cp`` must divide it."""
    return [c for c in divisors(seq_len) if seq_len % (2 * c) == 0 or c == 1]


def valid_vpp(model: ModelSpec, pp: int) -> list[int]:
    """Virtual stages per rank: 1, or (with pp > 1) a divisor of the layers per stage
    (Megatron-LM: layers divisible by pp * vpp)."""
    if pp == 1:
        return [1]
    return divisors(model.num_layers // pp)


def valid_ep(model: ModelSpec) -> list[int]:
    """Expert-parallel sizes: divisors of the routed experts (1 for a dense model)."""
    return divisors(model.num_experts) if model.is_moe else [1]


def expert_tensor_parallel_reasons(model: ModelSpec, etp: int) -> list[str]:
    """Why ``etp`` expert tensor-parallel ranks cannot split this model's routed experts (each
    reason reads ``does not divide the ...``): Megatron-Core's experts build ``linear_fc1`` and
    ``linear_fc2`` of width ``moe_ffn_hidden_size`` with ``is_expert=True``, column- and row-parallel
    over the expert-TP group (``pg_collection.expt_tp``; ``megatron/core/transformer/moe/experts.py``
    at d98e8a64), whose layers divide the width as the dense ones divide theirs over tp. The one
    place that takes the expert TP degree."""
    if not model.is_moe or model.expert_ffn % etp == 0:
        return []
    return [f"does not divide the {model.expert_ffn} expert FFN width"]


def valid_etp(model: ModelSpec, tp: int, pinned: int | None = None) -> list[int]:
    """Expert tensor-parallel sizes searched with ``tp``: 1 (every expert whole) and ``tp`` (the
    experts split like the dense layers), what Megatron-Core MoE recipes use; a pinned size as
    given (``capability`` says whether the framework can run it). 1 for a dense model."""
    if not model.is_moe:
        return [1]
    if pinned is not None:
        return [pinned]
    return sorted({1, tp})


def valid_dispatchers(model: ModelSpec) -> list[Dispatcher]:
    """MoE token dispatchers searched: all of them for an MoE model (``capability`` leaves out
    what a layout or framework cannot run), the default for a dense one."""
    return list(Dispatcher) if model.is_moe else [Dispatcher.ALLTOALL]
