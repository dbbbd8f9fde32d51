"""Work counted by the microbenchmarks of ``plan profile``: FLOPs, bytes moved, bus bandwidth.

Each rate a hardware profile records is one of these counts divided by a measured time, so the
profile's numbers mean what the public benchmarks they are compared with mean.
"""

FLOPS_PER_MULTIPLY_ADD = 2
ATTENTION_MATMULS = 2  # Q·Kᵀ and P·V, each 2·s²·d FLOPs per head
ATTENTION_BACKWARD_TO_FORWARD = 2.5  # FlashAttention benchmarks: bwd = 2.5 × fwd (5 matmuls vs 2)
CAUSAL_SHARE = 0.5  # a causal mask skips the upper triangle of the scores
COPY_ACCESSES = 2  # a device-to-device copy reads each byte once and writes it once


def gemm_flops(m: int, n: int, k: int) -> float:
    """FLOPs of ``C[m,n] = A[m,k] B[k,n]``: ``m·n·k`` multiply-adds."""
    return FLOPS_PER_MULTIPLY_ADD * m * n * k


def attention_forward_flops(batch: int, heads: int, seq_len: int, head_dim: int, causal: bool) -> float:
    """FLOPs of one fused-attention forward call: ``4·batch·heads·seq_len²·head_dim``, halved when
    causal (FlashAttention's ``benchmarks/benchmark_flash_attention.py``, function ``flops``; the
    key/value heads of GQA do not change the count). Softmax work is not counted."""
    full = FLOPS_PER_MULTIPLY_ADD * ATTENTION_MATMULS * batch * heads * seq_len**2 * head_dim
    return full * (CAUSAL_SHARE if causal else 1.0)


def attention_backward_flops(batch: int, heads: int, seq_len: int, head_dim: int, causal: bool) -> float:
    """FLOPs of the matching backward call: 2.5 × forward (same source as the forward count)."""
    return ATTENTION_BACKWARD_TO_FORWARD * attention_forward_flops(batch, heads, seq_len, head_dim, causal)


def copy_traffic_bytes(size_bytes: float) -> float:
    """Device-memory traffic of copying ``size_bytes``: each byte read and written once (the
    convention of STREAM's Copy kernel, McCalpin 1995)."""
    return COPY_ACCESSES * size_bytes


def all_reduce_bus_factor(ranks: int) -> float:
    """Bus bandwidth over algorithm bandwidth of an all-reduce: ``2(n-1)/n`` (NCCL ``nccl-tests``
    ``doc/PERFORMANCE.md``, "AllReduce"). Algorithm bandwidth is the buffer size over the time."""
    return 2 * (ranks - 1) / ranks


def gather_bus_factor(ranks: int) -> float:
    """Bus bandwidth over algorithm bandwidth of an all-gather, reduce-scatter or all-to-all:
    ``(n-1)/n`` (NCCL ``nccl-tests`` ``doc/PERFORMANCE.md``, "AllGather", "ReduceScatter"), where
    the size is the whole gathered (or scattered) buffer."""
    return (ranks - 1) / ranks


def send_recv_bus_factor(ranks: int) -> float:
    """Bus bandwidth over algorithm bandwidth of a point-to-point send/receive: 1 (nothing is
    forwarded; ``nccl-tests`` ``src/sendrecv.cu``)."""
    return 1.0
