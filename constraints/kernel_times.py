"""Seconds of one GPU kernel: matrix products, fused attention, memory-bound work, FP8 casts.

The per-operation step-time model (``planner/stepmodel.py``) times each operation of a layer with
these functions, from the hardware's peaks or a measured profile's achieved rates; the work counts
(FLOPs of a product or an attention call) are those of ``constraints/kernels.py``, which the
microbenchmarks share. Every function works element-wise on numpy arrays. Legend: ``m, n, k`` a
product ``C[m,n] = A[m,k] B[k,n]``; ``b`` sequences, ``a`` heads, ``s`` query tokens, ``s_kv`` key
tokens.
"""

from constraints.kernels import gemm_flops

FP8_CAST_BYTES_PER_ELEMENT = 2 + 1 + 1  # read bf16, write the FP8 copy and its transpose (TE cast_transpose)
ATTENTION_BACKWARD_TO_FORWARD = (
    2.5  # FlashAttention's benchmark convention (Dao 2023, benchmark_flash_attention.py)
)
CROSS_ENTROPY_BYTES_PER_LOGIT = 2 + 4 + 4 + 4 + 2
"""bf16 logits read, fp32 upcast written (Megatron ``vocab_parallel_cross_entropy``), read again for
the max/sum-exp and the softmax gradient, bf16 gradient written."""
UNFUSED_SOFTMAX_BYTES_PER_SCORE = 2 * (2 + 2) + 2 + 1
"""Unfused attention (no FlashAttention), forward: scale-mask-softmax reads and writes the bf16
score (twice: the fused softmax kernel, then dropout), writes the mask (1 B); backward roughly
doubles it (Megatron ``FusedScaleMaskSoftmax`` then ``attention_dropout``)."""


def gemm_bytes(m: float, n: float, k: float, input_bytes: float, output_bytes: float) -> float:
    """Device-memory traffic of one product at best: both inputs read once, the output written once."""
    return input_bytes * (m * k + k * n) + output_bytes * m * n


def gemm_s(
    m: float,
    n: float,
    k: float,
    peak_flops: float,
    efficiency: float,
    hbm_bytes_per_s: float,
    input_bytes: float = 2,
    output_bytes: float = 2,
) -> float:
    """One matrix product under the roofline (Williams, Waterman, Patterson 2009, "Roofline", CACM):
    the slower of its FLOPs at ``efficiency`` of the dtype's peak and its minimum memory traffic at
    the device bandwidth. Narrow products (few tokens per expert, small per-rank widths) come out
    memory-bound, large ones at ``efficiency``."""
    compute = gemm_flops(m, n, k) / (peak_flops * efficiency)
    memory = gemm_bytes(m, n, k, input_bytes, output_bytes) / hbm_bytes_per_s
    return _maximum(compute, memory)


def attention_efficiency(s: float, max_efficiency: float, half_seq: float) -> float:
    """Share of the 16-bit peak that fused attention reaches at ``s`` keys: saturating in the
    sequence (short sequences leave tiles idle; FlashAttention-2/3 papers, Figs. 4-6 of Dao 2023
    and Shah et al. 2024, rise with sequence length and flatten from about 4k tokens)."""
    return max_efficiency * s / (s + half_seq)


def compute_s(flops: float, peak_flops: float, efficiency: float) -> float:
    """Time to execute ``flops`` on one GPU at ``efficiency`` of its peak."""
    return flops / (peak_flops * efficiency)


def memory_bound_s(num_bytes: float, hbm_bytes_per_s: float) -> float:
    """Time to move ``num_bytes`` through device memory at the achieved bandwidth."""
    return num_bytes / hbm_bytes_per_s


def unfused_softmax_bytes(b: float, a: float, s: float, s_kv: float) -> float:
    """Forward device-memory traffic of an unfused scale-mask-softmax and dropout over one rank's
    ``b a s s_kv`` scores (``UNFUSED_SOFTMAX_BYTES_PER_SCORE``)."""
    return UNFUSED_SOFTMAX_BYTES_PER_SCORE * b * a * s * s_kv


def fp8_cast_bytes(elements: float) -> float:
    """Traffic of casting ``elements`` bf16 values to FP8 with the transposed copy Hopper's FP8 GEMMs
    need for the backward (Transformer Engine ``cast_transpose``)."""
    return FP8_CAST_BYTES_PER_ELEMENT * elements


def cross_entropy_bytes(tokens: float, vocab_per_rank: float) -> float:
    """Traffic of the vocabulary-parallel cross-entropy, forward and backward, on one rank's logits."""
    return CROSS_ENTROPY_BYTES_PER_LOGIT * tokens * vocab_per_rank


def elementwise_bytes(tokens: float, width: float, passes: float, bytes_per_width: float) -> float:
    """Memory-bound work beside the matrix products: norms, activation functions, residual adds,
    dropout, rotary embeddings. Each pass (forward 1, backward 2, recompute 1 more) moves
    ``bytes_per_width`` bytes per element of the per-rank hidden width and token; this is what
    makes narrow models slower than their FLOPs (Korthikanti et al. 2022, Section 6.2)."""
    return tokens * width * passes * bytes_per_width


def moe_fixed_overhead_s(local_experts: float, per_layer_s: float, per_expert_s: float) -> float:
    """Seconds of one MoE layer for one micro-batch, forward and backward, that its FLOPs and bytes
    do not account for: a part per layer (routing, token permutation, the host synchronization of
    dropless token counts) and a part per expert held on the rank. The second is why many small
    local experts run slower than their FLOPs say: Megatron-Core's grouped experts (Transformer
    Engine ``GroupedLinear``) launch each local expert's products (two forward, four backward) and,
    under FP8, its quantizations as kernels of their own, each with its launch latency and the idle
    tail of its last wave of tiles. Both constants are fitted on the published MoE rows
    (``benchmarks/calibrate.py``); the split is linear in the local experts, the simplest form the
    rows support (4 to 32 experts per rank)."""
    return per_layer_s + per_expert_s * local_experts


def _maximum(x: float, y: float) -> float:
    """``max`` that also works element-wise on numpy arrays."""
    return x + (y - x) * (y > x)


def rerun_forward_bytes(elements_in: float, elements_out: float, element_bytes: float) -> float:
    """Traffic of rerunning one memory-bound forward op (a norm, an activation function) in
    backward: it reads its ``elements_in`` inputs and writes its ``elements_out`` outputs once."""
    return (elements_in + elements_out) * element_bytes
