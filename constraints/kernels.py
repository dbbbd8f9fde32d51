"""Work of one GPU kernel: FLOPs of products and fused attention, bytes moved, bus bandwidth.

``plan profile`` divides these counts by measured times, so a profile's rates mean what the public
benchmarks they are compared with mean. Legend: ``m, n, k`` a product ``C[m,n] = A[m,k] B[k,n]``;
``b`` sequences, ``a`` heads, ``s`` query tokens, ``s_kv`` key tokens, ``d`` head width.
"""

FLOPS_PER_MAC = 2
ATTENTION_MATMULS = 2  # Q·Kᵀ and P·V, each a multiply-add per b·a·s·s_kv·d
ATTENTION_BACKWARD_TO_FORWARD = (
    2.5  # FlashAttention's benchmark convention (Dao 2023, benchmark_flash_attention.py)
)
CAUSAL_SHARE = 0.5  # a causal mask skips the upper triangle of the scores
COPY_ACCESSES = 2  # a device-to-device copy reads each byte once and writes it once


def gemm_flops(m: float, n: float, k: float) -> float:
    """FLOPs of one matrix product: a multiply-add per ``m*n*k``."""
    return FLOPS_PER_MAC * m * n * k


def attention_forward_flops(b: float, a: float, s: float, s_kv: float, d: float, causal: bool) -> float:
    """Forward FLOPs of fused attention, ``Q K^T`` and ``P V``: ``4 b a s s_kv d``, halved when causal
    (FlashAttention's ``flops`` in ``benchmarks/benchmark_flash_attention.py``, Dao 2023; the
    key/value heads of GQA do not change the count, softmax work is not counted)."""
    return FLOPS_PER_MAC * ATTENTION_MATMULS * b * a * s * s_kv * d * (CAUSAL_SHARE if causal else 1.0)


def attention_backward_flops(b: float, a: float, s: float, s_kv: float, d: float, causal: bool) -> float:
    """Backward FLOPs of fused attention: 2.5 x forward (same source as the forward count)."""
    return ATTENTION_BACKWARD_TO_FORWARD * attention_forward_flops(b, a, s, s_kv, d, causal)


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
