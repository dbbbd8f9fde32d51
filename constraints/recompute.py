"""Partial activation recomputation: some layers of a model chunk, or some modules of every layer.

Block method (Megatron-LM ``--recompute-granularity full --recompute-method block
--recompute-num-layers N``): in each model chunk (the layers of one pipeline rank, or of one of its
virtual stages: ``TransformerBlock.num_layers_per_pipeline_rank = len(self.layers)``) the first
``N`` layers keep only their input and rerun their forward in backward; the other layers keep
everything (Megatron-LM ``megatron/core/recompute.py`` ``checkpointed_forward``, the ``block``
branch, at commit d98e8a64ddf34856e74b24714e3bedb2f5a39553).
FSDP recipes that checkpoint every k-th block keep the same memory as ``N = chunk_layers / k``.

Modules (``--recompute-granularity selective --recompute-modules ...``, ``TransformerConfig.
recompute_modules`` at the same commit; default ``core_attn``): ``core_attn``, ``mlp``, ``moe`` and
``shared_experts`` keep their input and rerun their forward (normal checkpointing); ``layernorm``,
``moe_act`` and ``mla_up_proj`` drop their output and rebuild it before backward (output-discarding
checkpointing, ``tensor_parallel.CheckpointWithoutOutput``).
``layernorm`` only acts on norms that are modules of their own: Transformer Engine's layer spec
fuses the attention input norm into the QKV projection and, on dense layers, the pre-MLP norm into
fc1 (``TELayerNormColumnParallelLinear``; the layer's norm is then an ``IdentityOp`` and
``TransformerLayer.__init__`` leaves ``recompute_input_layernorm`` off), so it acts on the pre-MLP
norm of MoE layers (the router's input) and on the input norm of MLA attention
(``megatron/core/models/gpt/gpt_layer_specs.py``). ``mlp`` acts on dense layers only, ``moe_act``
needs grouped GEMMs and ``mla_up_proj`` multi-head latent attention (``TransformerConfig.__post_init__``).

``mla_up_proj`` (``MLASelfAttention``, ``recompute_up_proj``): the query and key/value
up-projections (with the latent norms fused into them, Transformer Engine's spec with
``--qk-layernorm``) and the RoPE application run under ``CheckpointWithoutOutput``: in forward
without autograd (none of their own tensors is kept), keeping their inputs (the compressed query
and key/value, which the fused norms keep anyway, and the shared rotary key ``k_pos_emb``: a view
of the key/value down-projection's output, except under sequence parallelism, where it is gathered
over the sequence and kept by nothing else), and once the attention core has run it frees the
storage of the query, key and value they produced (``discard_output_and_register_recompute``), the
tensors the attention core saves; they are rebuilt before the core's backward.

The bytes each module frees are the terms of ``activations.layer_activation_bytes`` it owns
(Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
Section 4.1, term by term); ``tests/fixtures/saved_tensors_recompute.json`` measures them on a
Megatron-like layer with PyTorch's own checkpointing.

Legend: ``s`` sequence length (this rank's), ``b`` micro-batch, ``h`` hidden size, ``a`` attention
heads, ``t`` tensor-parallel size, ``e`` bytes of one activation element, ``f_*`` MLP widths.
"""

from collections.abc import Iterable
from enum import Enum
from functools import cache

from constraints.activations import Kernels, mlp_saved_bytes_per_f, score_saved_bytes_per_element


class RecomputeModule(Enum):
    """Megatron-LM's ``--recompute-modules`` choices the planner models (``mhc`` and the
    linear-attention ones are not), in the order plans list them."""

    CORE_ATTN = "core_attn"
    """Softmax(QK^T)V: the attention scores (nothing with FlashAttention, which keeps none)."""
    LAYERNORM = "layernorm"
    """The outputs of the norms that are modules of their own (see the module docstring)."""
    MLP = "mlp"
    """A dense MLP's internals: its fused norm's output (the fc1 input), fc1 output, activation."""
    MOE_ACT = "moe_act"
    """The routed experts' activation output (their fc2 input)."""
    MOE = "moe"
    """A whole MoE layer: the routed and shared experts' internals and the dispatched token copies."""
    SHARED_EXPERTS = "shared_experts"
    """The shared experts' internals."""
    MLA_UP_PROJ = "mla_up_proj"
    """Multi-head latent attention's up-projections and RoPE: the queries, keys and values they
    produce, which the attention core saves (output-discarding)."""


MEGATRON_DEFAULT_MODULES = (RecomputeModule.CORE_ATTN,)
"""What ``--recompute-granularity selective`` recomputes without ``--recompute-modules``
(``TransformerConfig.recompute_modules`` default)."""


def block_recompute_share(chunk_layers: float, recompute_layers: int) -> float:
    """Share of a chunk's layers whose forward runs twice under the block method (their memory is
    the layer input only; their recompute FLOPs and TP collectives are paid again); more layers
    than the chunk has recomputes all of them."""
    return min(recompute_layers, chunk_layers) / chunk_layers


def block_recompute_chunk_bytes(
    chunk_layers: int, recompute_layers: int, recomputed_layer_bytes: float, kept_layer_bytes: float
) -> float:
    """Bytes one model chunk keeps for one micro-batch when its first ``recompute_layers`` layers
    are fully recomputed (Megatron-LM block method)."""
    share = block_recompute_share(chunk_layers, recompute_layers)
    return chunk_layers * (share * recomputed_layer_bytes + (1 - share) * kept_layer_bytes)


def block_recompute_working_bytes(
    chunk_layers: float, recompute_layers: int, recomputed_layer_bytes: float, kept_layer_bytes: float
) -> float:
    """Bytes one chunk's backward needs beyond what its micro-batch stored, for rebuilding a
    recomputed layer: backward runs the chunk's layers last to first, so the layers the block
    method keeps whole (the last ones) are freed before the first recomputed one is rebuilt; only
    when every layer is recomputed does the rebuilt layer come on top of the stored inputs
    (``activations.recompute_working_bytes``)."""
    if recompute_layers < chunk_layers:
        return 0.0
    return kept_layer_bytes - recomputed_layer_bytes


def effective_modules(modules: Iterable[RecomputeModule]) -> tuple[RecomputeModule, ...]:
    """The modules whose savings count, once: Megatron's default (``core_attn``) when none is named,
    and ``moe_act`` and ``shared_experts`` left out beside ``moe``, whose checkpoint (the whole
    ``MoELayer``) already covers them."""
    return _effective(frozenset(modules))


@cache  # a handful of distinct sets, asked for on every row of the search's tables
def _effective(modules: frozenset[RecomputeModule]) -> tuple[RecomputeModule, ...]:
    chosen = set(modules) or set(MEGATRON_DEFAULT_MODULES)
    if RecomputeModule.MOE in chosen:
        chosen -= {RecomputeModule.MOE_ACT, RecomputeModule.SHARED_EXPERTS}
    return tuple(m for m in RecomputeModule if m in chosen)


def mla_qkv_width(a: int, nope: int, rope: int, v: int) -> int:
    """Elements per token of the query, key and value that multi-head latent attention's
    up-projections hand the attention core, all ``a`` heads: queries and keys ``nope + rope`` wide
    per head (the shared rotary key is expanded to every head and concatenated), values ``v``
    (``MLASelfAttention.qkv_up_proj_and_rope_apply``, Megatron-LM d98e8a64)."""
    return a * (2 * (nope + rope) + v)


def module_recompute_freed_bytes(
    module: RecomputeModule,
    s: int,
    b: int,
    h: int,
    a: int,
    *,
    f_dense: float,
    f_routed: float,
    f_shared: float,
    dispatch_bytes: float,
    separate_norms: int,
    gated: bool,
    t: int,
    sequence_parallel: bool,
    flash: bool,
    dropout: bool,
    e: int,
    kernels: Kernels,
    linear_input_bytes: int | None = None,
    mla_qkv_width: int = 0,
    mla_latent_width: int = 0,
    mla_rope_dim: int = 0,
) -> float:
    """Bytes of one layer, one micro-batch, one TP rank that recomputing ``module`` frees.

    ``f_dense``: a dense MLP's intermediate size (0 on MoE layers); ``f_routed``: the routed
    experts' intermediate size summed over the ``k`` a token visits (times the capacity factor);
    ``f_shared``: the shared experts'; ``dispatch_bytes``: the MoE layer's dispatched token copies
    and router probabilities (``activations.moe_dispatch_bytes``); ``separate_norms``: the layer's
    norms that are modules of their own (0 on a dense layer of Transformer Engine's spec, 1 on an
    MoE layer, one more with MLA). Terms outside the TP regions are split by ``t`` only under
    sequence parallelism, as in ``activations.layer_activation_bytes``. With FlashAttention
    ``core_attn`` frees only its 4-byte log-sum-exp per row and head, which the layer formula does
    not count either.

    ``mla_up_proj`` (multi-head latent attention; 0 widths for other attention) frees the query,
    key and value the up-projections produce, ``mla_qkv_width`` wide for all heads and split over
    the tp ranks' heads, and the outputs of the latent norms fused into the up-projections
    (``--qk-layernorm``: ``TELayerNormColumnParallelLinear`` keeps its norm's output, as the fused
    norm of ``mlp`` does), ``mla_latent_width`` = query rank + key/value rank wide, split over tp
    under sequence parallelism; under sequence parallelism its checkpoint keeps the rotary key
    gathered over the whole sequence, ``mla_rope_dim`` wide, which nothing kept before (without
    it the rotary key is a view of the key/value down-projection's output, kept anyway).
    """
    li = e if linear_input_bytes is None else linear_input_bytes
    sb, shard = s * b, (t if sequence_parallel else 1)
    if module is RecomputeModule.CORE_ATTN:
        if flash:
            return 0.0
        return score_saved_bytes_per_element(kernels, dropout, e) * a * s * sb / t
    if module is RecomputeModule.LAYERNORM:
        return separate_norms * li * sb * h / shard
    per_f = mlp_saved_bytes_per_f(kernels, gated, e, li)
    if module is RecomputeModule.MLP:
        fused_norm_output = li * sb * h / shard if f_dense else 0.0
        return fused_norm_output + per_f * sb * f_dense / t
    if module is RecomputeModule.MOE_ACT:
        return li * sb * f_routed / t
    if module is RecomputeModule.MOE:
        return per_f * sb * (f_routed + f_shared) / t + dispatch_bytes
    if module is RecomputeModule.MLA_UP_PROJ:
        gathered_rotary_key = e * sb * mla_rope_dim if sequence_parallel else 0.0
        return e * sb * mla_qkv_width / t + li * sb * mla_latent_width / shard - gathered_rotary_key
    return per_f * sb * f_shared / t  # SHARED_EXPERTS


def modules_recompute_forward_s(
    modules: Iterable[RecomputeModule],
    *,
    attention_core_s: float,
    norms_s: float,
    dense_mlp_s: float,
    expert_activation_s: float,
    moe_s: float,
    shared_experts_s: float,
    mla_up_projection_s: float = 0.0,
) -> float:
    """Seconds of forward work one layer repeats for ``modules`` (``effective_modules``): each
    module's own forward; ``norms_s`` is that of its separate norms, ``moe_s`` the whole MoE layer
    (router, experts, shared experts), ``expert_activation_s`` the experts' activation function and
    ``mla_up_projection_s`` MLA's up-projections with their RoPE application."""
    seconds = {
        RecomputeModule.CORE_ATTN: attention_core_s,
        RecomputeModule.LAYERNORM: norms_s,
        RecomputeModule.MLP: dense_mlp_s,
        RecomputeModule.MOE_ACT: expert_activation_s,
        RecomputeModule.MOE: moe_s,
        RecomputeModule.SHARED_EXPERTS: shared_experts_s,
        RecomputeModule.MLA_UP_PROJ: mla_up_projection_s,
    }
    return sum(seconds[m] for m in effective_modules(modules))
