"""Floating-point operations of training, per token.

Counted as Narayanan et al. 2021 ("Efficient Large-Scale Language Model Training on GPU Clusters
Using Megatron-LM", SC21, Section 5.1 and Appendix) count them: 2 FLOPs per multiply-add of every
weight matrix, attention scores ``Q K^T`` and ``P V`` over the full sequence (no causal discount,
as in SC21, PaLM's MFU and the NeMo recipes), the LM head, and backward = 2 x forward. For GPT this
is their ``72*B*s*l*h^2*(1 + s/(6h) + V/(12*h*l))`` without recompute.
Legend: ``s`` sequence length, ``h`` hidden, ``q`` = heads x head_dim, ``v`` vocabulary.
"""

from constraints.units import Recompute

FLOPS_PER_MAC = 2
BACKWARD_TO_FORWARD = 2  # gradients w.r.t. inputs and w.r.t. weights


def layer_forward_flops_per_token(matmul_params: float, s: int, q: int) -> float:
    """Forward FLOPs of one layer per token: its weight matrices (active experts only for MoE) and
    the two attention products ``Q K^T`` and ``P V``, ``2 * 2 * s * q``."""
    return FLOPS_PER_MAC * matmul_params + 2 * FLOPS_PER_MAC * s * q


def attention_score_forward_flops_per_token(s: int, q: int) -> float:
    """The part of a layer's forward that selective recompute repeats (core attention)."""
    return 2 * FLOPS_PER_MAC * s * q


def head_forward_flops_per_token(h: int, v: int) -> float:
    """LM head (logits) forward FLOPs per token."""
    return FLOPS_PER_MAC * h * v


def training_flops_per_token(forward_flops: float) -> float:
    """Model FLOPs of one training step per token: forward + backward (no recompute; MFU basis)."""
    return (1 + BACKWARD_TO_FORWARD) * forward_flops


def recompute_flops_per_token(layer_forward_flops: float, score_flops: float, recompute: Recompute) -> float:
    """Extra forward work of recomputation per token and layer (counted in HFU, not MFU):
    full repeats the layer's forward, selective the core attention (Korthikanti et al. 2022, Sec. 5)."""
    if recompute is Recompute.FULL:
        return layer_forward_flops
    if recompute is Recompute.SELECTIVE:
        return score_flops
    return 0.0
