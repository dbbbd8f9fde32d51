"""Partial activation recomputation: some layers of a stage, or some modules of every layer.

Block method (Megatron-LM ``--recompute-granularity full --recompute-method block
--recompute-num-layers N``): in each model chunk the first ``N`` layers keep only their input and
rerun their forward in backward; the other layers keep everything (``megatron/core/recompute.py``,
the ``block`` branch of the checkpointed forward, at commit d98e8a64). FSDP recipes that checkpoint
every k-th block keep the same memory as ``N = chunk_layers / k``.

Modules (``--recompute-granularity selective --recompute-modules ...``): each module named keeps
only its input (``core_attn``, ``mlp``, ``moe``, ``shared_experts``: normal checkpointing) or drops
its output and rebuilds it before backward (``layernorm``, ``moe_act``: output-discarding
checkpointing); ``TransformerConfig.recompute_modules`` documents both. The bytes each module
frees are the terms of ``activations.layer_activation_bytes`` it owns; the legend is that module's.
"""

from enum import Enum

from constraints.activations import Kernels, mlp_saved_bytes_per_f, score_saved_bytes_per_element


class RecomputeModule(Enum):
    """Megatron-LM's ``--recompute-modules`` choices the planner models (``mla_up_proj`` and the
    linear-attention ones are not)."""

    CORE_ATTN = "core_attn"
    """Softmax(QK^T)V: the attention scores (nothing with FlashAttention, which keeps none)."""
    LAYERNORM = "layernorm"
    """The two norms' outputs, i.e. the inputs of the QKV and fc1 (or router) projections."""
    MLP = "mlp"
    """A dense MLP's internals: fc1 output and activation."""
    MOE_ACT = "moe_act"
    """The routed experts' activation output (their fc2 input)."""
    MOE = "moe"
    """A whole MoE layer: the routed experts' internals and the dispatched token copies."""
    SHARED_EXPERTS = "shared_experts"
    """The shared experts' internals."""


def block_recompute_chunk_bytes(
    chunk_layers: int, recompute_layers: int, recomputed_layer_bytes: float, kept_layer_bytes: float
) -> float:
    """Bytes one model chunk keeps for one micro-batch when its first ``recompute_layers`` layers
    are fully recomputed (Megatron-LM block method; ``recompute_layers`` above the chunk's layers
    recomputes all of them)."""
    n = min(recompute_layers, chunk_layers)
    return n * recomputed_layer_bytes + (chunk_layers - n) * kept_layer_bytes


def block_recompute_share(chunk_layers: int, recompute_layers: int) -> float:
    """Share of a chunk's layers whose forward runs twice under the block method (their recompute
    FLOPs and TP collectives)."""
    return min(recompute_layers, chunk_layers) / chunk_layers


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
    gated: bool,
    t: int,
    sequence_parallel: bool,
    flash: bool,
    dropout: bool,
    e: int,
    kernels: Kernels,
    linear_input_bytes: int | None = None,
) -> float:
    """Bytes of one layer, one micro-batch, one TP rank that recomputing ``module`` frees.

    ``f_dense``: a dense MLP's intermediate size (0 on MoE layers); ``f_routed``: the routed
    experts' intermediate size summed over the ``k`` a token visits (times the capacity factor);
    ``f_shared``: the shared experts'; ``dispatch_bytes``: the MoE layer's dispatched token copies
    and router probabilities (``activations.moe_dispatch_bytes``). The terms are those of
    ``activations.layer_activation_bytes`` (Korthikanti et al. 2022, Section 4.1, term by term).
    """
    li = e if linear_input_bytes is None else linear_input_bytes
    sb = s * b
    if module is RecomputeModule.CORE_ATTN:
        if flash:
            return 0.0
        return score_saved_bytes_per_element(kernels, dropout, e) * a * s * sb / t
    if module is RecomputeModule.LAYERNORM:
        return 2 * li * sb * h / (t if sequence_parallel else 1)
    per_f = mlp_saved_bytes_per_f(kernels, gated, e, li)
    if module is RecomputeModule.MLP:
        return per_f * sb * f_dense / t
    if module is RecomputeModule.MOE_ACT:
        return li * sb * f_routed / t
    if module is RecomputeModule.MOE:
        return per_f * sb * f_routed / t + dispatch_bytes
    return per_f * sb * f_shared / t  # SHARED_EXPERTS
