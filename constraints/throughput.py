"""Step-time terms: compute at a size-dependent GEMM efficiency, collectives, bubble, optimizer.

Times are seconds for one optimizer step on the slowest rank. Collective costs follow the ring
algorithms' bus bandwidth (NCCL ``PERFORMANCE.md``: all-reduce moves ``2 (n-1)/n`` of the buffer
per rank, all-gather and reduce-scatter ``(n-1)/n``). The efficiency constants are calibrated in
``planner/calibration.py`` on ``../shared/calibration/published.yaml``; their values and
provenance live there, not here.
"""

ALL_REDUCE_FACTOR = 2  # reduce-scatter + all-gather


def gemm_efficiency(tokens: float, width: float, max_efficiency: float, half_size: float) -> float:
    """Fraction of peak FLOP/s that a rank's matrix products reach.

    A saturating curve in the per-GPU GEMM size ``tokens * width`` (rows of the micro-batch times
    the per-rank hidden width, ``b*s*h/t``): small products leave the tensor cores idle (kernel
    launch, wave quantization, memory-bound epilogues). ``half_size`` is the size at half of
    ``max_efficiency``.
    """
    size = tokens * width
    return max_efficiency * size / (size + half_size)


def compute_s(flops: float, peak_flops: float, efficiency: float) -> float:
    """Time to execute ``flops`` on one GPU at ``efficiency`` of its peak."""
    return flops / (peak_flops * efficiency)


def elementwise_s(
    tokens: float, width: float, passes: float, bytes_per_width: float, hbm_bytes_per_s: float
) -> float:
    """Memory-bound work beside the matrix products: norms, activations, residual adds, dropout,
    rotary embeddings, casts. Each moves ``bytes_per_width`` bytes per element of the per-rank
    hidden width per token and pass (forward = 1, backward = 2, recompute = 1 more), at device
    memory bandwidth. This is what makes narrow models slower than their FLOPs (Korthikanti et al.
    2022, Section 6.2: non-GEMM kernels are a large share of small models' time)."""
    return tokens * width * passes * bytes_per_width / hbm_bytes_per_s


def pipeline_bubble_fraction(pp: int, num_microbatches: int, vpp: int = 1) -> float:
    """Idle share of 1F1B relative to the useful work: ``(pp - 1) / (vpp * m)``
    (Narayanan et al. 2021, Sections 2.2.1-2.2.2)."""
    return (pp - 1) / (vpp * num_microbatches)


def all_reduce_s(buffer_bytes: float, ranks: int, bandwidth_bytes_per_s: float) -> float:
    """Ring all-reduce of ``buffer_bytes`` over ``ranks`` at the given per-rank bandwidth."""
    if ranks <= 1:
        return 0.0
    return ALL_REDUCE_FACTOR * (ranks - 1) / ranks * buffer_bytes / bandwidth_bytes_per_s


def all_gather_s(buffer_bytes: float, ranks: int, bandwidth_bytes_per_s: float) -> float:
    """Ring all-gather (or reduce-scatter) producing (or consuming) ``buffer_bytes`` per rank."""
    if ranks <= 1:
        return 0.0
    return (ranks - 1) / ranks * buffer_bytes / bandwidth_bytes_per_s


def all_to_all_s(buffer_bytes: float, ranks: int, bandwidth_bytes_per_s: float) -> float:
    """All-to-all of ``buffer_bytes`` per rank: all but its own ``1/ranks`` leave it."""
    if ranks <= 1:
        return 0.0
    return (ranks - 1) / ranks * buffer_bytes / bandwidth_bytes_per_s


def split_all_to_all_s(
    buffer_bytes: float, ranks: int, domain_ranks: int, nvlink_bytes_per_s: float, network_bytes_per_s: float
) -> float:
    """All-to-all over ``ranks`` that span several NVLink domains of ``domain_ranks`` each: of a
    rank's ``buffer_bytes``, ``(domain_ranks - 1)/ranks`` go to its own domain over NVLink and
    ``(ranks - domain_ranks)/ranks`` over the network, both at once (NCCL's all-to-all is a set of
    point-to-point sends, each on its own path)."""
    if ranks <= 1:
        return 0.0
    inside = (domain_ranks - 1) / ranks * buffer_bytes / nvlink_bytes_per_s
    outside = (ranks - domain_ranks) / ranks * buffer_bytes / network_bytes_per_s
    return max(inside, outside)


def point_to_point_s(message_bytes: float, bandwidth_bytes_per_s: float) -> float:
    """One send between adjacent pipeline stages."""
    return message_bytes / bandwidth_bytes_per_s


def optimizer_step_s(params_updated: float, bytes_per_param: float, hbm_bytes_per_s: float) -> float:
    """Adam update, bound by device-memory bandwidth: every state read and written once."""
    return params_updated * bytes_per_param / hbm_bytes_per_s


def adam_step_bytes_per_param(optimizer_bytes: float, grad_bytes: float, weight_bytes: float) -> float:
    """Bytes moved per parameter by one fused Adam step: optimizer states read and written, the
    gradient read, the working weight written."""
    return 2 * optimizer_bytes + grad_bytes + weight_bytes


def host_transfer_s(buffer_bytes: float, pcie_bytes_per_s: float) -> float:
    """Copy between GPU and host memory over PCIe."""
    return buffer_bytes / pcie_bytes_per_s


def cpu_adam_s(params: float, params_per_s: float) -> float:
    """Adam update of ``params`` on the CPU (DeepSpeed CPU-Adam)."""
    return params / params_per_s
