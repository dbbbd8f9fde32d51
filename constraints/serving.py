"""Inference memory: quantized weights, the KV cache, and the prefill workspace.

KV cache (Pope et al. 2022, "Efficiently Scaling Transformer Inference", Section 2.2; HF
Transformers ``StaticCache``): ``2 * bytes * b * (s + n) * kv_heads * head_dim * layers``, keys and
values for every cached token of every layer; a sliding-window model caches at most its window.
Legend: ``b`` batch, ``s`` prompt tokens, ``n`` generated tokens, ``t`` tensor-parallel size.
"""

from enum import Enum

from constraints.units import FP32_BYTES

KV_TENSORS = 2  # a key and a value per token, head and layer
QUANT_GROUP_SIZE = 128  # GPTQ/AWQ group size: one 16-bit scale per 128 int4 weights
SCALE_BYTES = 2


class NumberFormat(Enum):
    """Storage format of weights or of the KV cache."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"

    @property
    def bytes(self) -> float:
        """Bytes per element, scales excluded."""
        return {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}[self.value]


def quantized_weight_bytes_per_param(fmt: NumberFormat) -> float:
    """Bytes per weight of a linear layer: the element plus its share of a per-group scale for
    int4 (GPTQ, Frantar et al. 2023; AWQ, Lin et al. 2024: one fp16 scale per 128 weights).
    FP8 and INT8 use per-tensor or per-channel scales, negligible per weight."""
    scale = SCALE_BYTES / QUANT_GROUP_SIZE if fmt is NumberFormat.INT4 else 0.0
    return fmt.bytes + scale


def kv_heads_per_rank(kv_heads: int, t: int) -> int:
    """KV heads one TP rank holds: split over ranks, replicated once ``t`` exceeds the heads
    (vLLM and Megatron replicate KV heads rather than split a head)."""
    return max(kv_heads // t, 1)


def cached_tokens(tokens: int, window: int | None) -> int:
    """Tokens a layer caches: all of them, or the sliding window."""
    return tokens if window is None else min(tokens, window)


def kv_cache_bytes(
    b: int, tokens: int, kv_heads: int, head_dim: int, layers: float, bytes_per_elem: float
) -> float:
    """``2 * bytes * b * tokens * kv_heads * head_dim * layers`` (the module docstring's formula)."""
    return KV_TENSORS * bytes_per_elem * b * tokens * kv_heads * head_dim * layers


def prefill_workspace_bytes(
    tokens: int, h: int, q: int, k: int, f: int, gated: bool, t: int, e: int
) -> float:
    """Transient activations of one layer during a prefill chunk of ``tokens`` (inference keeps
    nothing for backward, so only the largest layer's intermediates are live at once): the
    residual input and output ``2h``, the QKV output ``(q + 2k)/t`` and the MLP intermediate
    (``2f/t`` gated, ``f/t`` plain), FlashAttention keeping no scores."""
    return e * tokens * (2 * h + (q + 2 * k) / t + (2 if gated else 1) * f / t)


def logits_bytes(b: int, v: int, t: int) -> float:
    """fp32 logits of the positions being sampled, vocab-parallel over TP."""
    return FP32_BYTES * b * v / t
