"""Which layouts a model admits: divisibility rules with messages that say what would work."""

from constraints.pipeline import end_stage_splits
from constraints.units import Dispatcher
from planner.specs import ModelSpec


def divisors(n: int) -> list[int]:
    """Positive divisors of ``n``, ascending."""
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _split(width: int, tp: int, what: str) -> list[str]:
    return [] if width % tp == 0 else [f"does not divide the {width} {what}"]


def tensor_parallel_reasons(model: ModelSpec, tp: int) -> list[str]:
    """Why ``tp`` ranks cannot split this model's attention and dense MLP (each reason reads ``does
    not divide the ...``, after the option or value), as Megatron-Core builds them (Megatron-LM
    d98e8a64; the frameworks here use the same tensor-parallel linear layers):

    - the query heads: ``TransformerConfig.__post_init__`` (``num_attention_heads`` a multiple of
      tp) and ``Attention.__init__`` (``divide(num_attention_heads, world_size)``);
    - the KV heads (query groups): ``Attention.__init__`` divides them over tp; Megatron also runs
      tp a multiple of the groups by replicating KV heads, which the memory model here does not
      price, so the planner keeps tp dividing them;
    - the MLP width: ``MLP.__init__`` builds ``linear_fc1`` (``ColumnParallelLinear``,
      ``divide(output_size, world_size)`` of the ffn, doubled when gated) and ``linear_fc2``
      (``RowParallelLinear``, ``divide(input_size, world_size)`` of the ffn) in
      ``megatron/core/tensor_parallel/layers.py``; for an MoE model only its dense layers have it;
    - the shared expert's width: ``SharedExpertMLP`` is an ``MLP`` over the tensor-parallel group.

    The routed experts split over the expert tensor-parallel group instead (``--etp``:
    ``planner.capability.expert_width_reasons``).
    """
    reasons = _split(model.num_heads, tp, "attention heads") + _split(model.num_kv_heads, tp, "KV heads")
    if not model.is_moe or model.num_dense_layers:
        reasons += _split(model.ffn_hidden_size, tp, "FFN width (ffn_hidden_size)")
    if model.shared_expert_ffn_hidden_size:
        reasons += _split(model.shared_expert_ffn_hidden_size, tp, "shared-expert FFN width")
    return reasons


def valid_tp(model: ModelSpec) -> list[int]:
    """TP sizes that split the query and KV heads, the dense and shared-expert MLPs evenly
    (``tensor_parallel_reasons``); the NVLink domain is the search's (``nvlink_tp_reason``)."""
    return [t for t in divisors(model.num_heads) if not tensor_parallel_reasons(model, t)]


def nvlink_tp_reason(tp: int, nvlink_domain_gpus: int) -> str | None:
    """Why ``tp`` ranks would not sit inside one NVLink domain (``does not divide ...``): Megatron-LM
    numbers tensor-parallel ranks first (``RankGenerator`` order ``tp-cp-ep-dp-pp``,
    ``megatron/core/parallel_state.py``), so each tp group is ``tp`` consecutive ranks, and torchrun
    numbers ranks node by node: the groups stay on NVLink exactly when tp divides the GPUs of a
    domain (a node, or an NVL72 rack)."""
    if nvlink_domain_gpus % tp == 0:
        return None
    return (
        f"does not divide the {nvlink_domain_gpus} GPUs of an NVLink domain, so tensor-parallel groups "
        "would cross the network"
    )


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
    chunks, two per rank, so ``2*cp`` must divide it (Megatron-LM d98e8a64 ``validate_args``:
    ``seq_length % (context_parallel_size * 2) == 0``; ``get_batch_on_this_cp_rank`` views the
    sequence as ``2 * cp_size`` chunks)."""
    return [c for c in divisors(seq_len) if seq_len % (2 * c) == 0 or c == 1]


def sequence_parallel_reasons(seq_len: int, tp: int, cp: int) -> list[str]:
    """Why Megatron sequence parallelism cannot split a sequence over ``tp`` ranks (each reason
    reads ``does not divide the ...``, after the option or value): each context-parallel rank holds
    ``seq_len / cp`` tokens of a sequence (``get_batch_on_this_cp_rank``), and with sequence
    parallelism the embedding hands them to the first layer split over the tp ranks: its
    ``[s/cp, b, h]`` output is reduce-scattered (RoPE models, ``VocabParallelEmbedding`` with
    ``reduce_scatter_embeddings``) or split (learned positions, ``scatter_to_sequence_parallel_region``)
    along the sequence, and both assert ``First dimension of the tensor should be divisible by
    tensor parallel size`` (``megatron/core/tensor_parallel/mappings.py``
    ``_reduce_scatter_along_first_dim``, ``_split_along_first_dim`` at d98e8a64). Megatron checks
    it only in the first forward, not in ``validate_args``. ``cp`` must be one of ``valid_cp``."""
    tokens = seq_len // cp
    if tp == 1 or tokens % tp == 0:
        return []
    where = f"--seq-len {seq_len}" + (f" / --cp {cp}" if cp > 1 else "")
    return [f"does not divide the {tokens} tokens of a sequence per context-parallel rank ({where})"]


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
