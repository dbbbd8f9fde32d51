"""The step-time model's constants: what a GPU achieves beyond its datasheet, fitted on published runs.

The defaults below are the fit over every GPU generation (what a hardware file without its own
``constants`` gets); each preset in ``planner/gpus/`` carries its generation's fit where the
calibration data holds rows on that generation, with the command in its ``provenance``.

Fitted by ``python benchmarks/calibrate.py --published ../shared/calibration/published.yaml`` on
every usable row of the calibration data with a step time (``benchmarks/published.py`` says which,
by field rules; no row is special-cased): coordinate descent on a grid per constant, minimizing the
mean absolute log error of predicted vs published step time; per architecture and GPU generation
the GEMM efficiencies where the rows allow (the preset files say which). ``benchmarks/accuracy.py``
prints the per-row errors and the leave-one-family-out figure.

Fitted 2026-12-02 on 205 rows: mean |log error| 0.0994 (0.1056 with these defaults alone, without the
per-generation values); a fixed point of the fit: rerun from these values, it returns them.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTimeConstants:
    """Efficiency constants of ``constraints/kernel_times.py`` and ``constraints/throughput.py``."""

    gemm_max_efficiency: float = 0.675
    """Fraction of the dense 16-bit peak that large matrix products reach (fitted)."""
    gemm_fp8_efficiency: float = 0.7
    """Fraction of the dense FP8 peak that large FP8 matrix products reach (fitted on FP8 rows)."""
    attention_efficiency: float = 0.35
    """Fraction of the 16-bit peak that fused attention reaches on long sequences, forward and
    backward (fitted)."""
    attention_half_seq: float = 512.0
    """Keys at which fused attention reaches half of ``attention_efficiency``. Not fitted (the rows
    do not separate it): read off the FlashAttention-2 paper's Fig. 4-5 (Dao 2023), which rise from
    512 to 2k tokens and flatten beyond."""
    hbm_efficiency: float = 0.80
    """Achieved share of the HBM datasheet bandwidth for memory-bound kernels. Not fitted: STREAM-like
    copies reach 80-90% of the datasheet on A100/H100; a measured profile's ``memory_bound`` table
    replaces it."""
    comm_efficiency: float = 0.6
    """Achieved share of the NVLink per-GPU bandwidth for NCCL collectives (fitted)."""
    network_efficiency: float = 0.9
    """Achieved share of the network per-GPU bandwidth for NCCL collectives across nodes (fitted)."""
    dp_overlap: float = 0.7
    """Share of data-parallel communication hidden behind the step's compute while it is shorter than
    that compute (Megatron's ``--overlap-grad-reduce`` / ``--overlap-param-gather``, FSDP prefetch);
    beyond it, what exceeds the compute is exposed (fitted)."""
    elementwise_bytes_per_width: float = 50
    """Bytes of memory-bound traffic per hidden element, token and pass (fitted)."""
    cp_overlap: float = 0.5
    """Share of ring-attention traffic hidden behind attention compute (Megatron/TE overlap each
    K/V hop with the previous chunk's attention). Not fitted: too few CP rows separate it; 0.5 is an
    assumption."""
    cpu_adam_params_per_s: float = 3.0e8
    """CPU Adam updates per second available to one GPU's shard (DeepSpeed CPU-Adam on a two-socket
    host shared by its 8 GPUs; order of magnitude from Ren et al. 2021, ZeRO-Offload, Section 5.2).
    Not fitted: no published entry offloads."""
    moe_layer_overhead_s: float = 0.0
    """Seconds per MoE layer and micro-batch, forward and backward, beyond the GEMMs and the
    all-to-all: routing, token permutation, the host synchronization of dropless token counts
    (``constraints.kernel_times.moe_fixed_overhead_s``; fitted on the MoE rows, which put it at 0
    once the per-expert part below is fitted beside it)."""
    moe_expert_overhead_s: float = 0.0004
    """Seconds per expert held on a rank (``E/ep``), per MoE layer and micro-batch, forward and
    backward: what grows with the number of local experts rather than with their FLOPs, each
    expert's products and FP8 quantizations launched as kernels of their own
    (``constraints.kernel_times.moe_fixed_overhead_s``; fitted on the MoE rows)."""
    ep_overlap: float = 0.5
    """Share of the MoE dispatch and combine hidden behind another micro-batch's computation with
    ``--overlap-moe-expert-parallel-comm`` (without it none is hidden). Not fitted: one calibration
    row states it (Megatron-Core's Qwen3-235B H100 layout measured 19.7 s without and 17.6 s with
    it); 0.5 is an assumption."""
    tp_overlap: float = 0.5
    """Share of TP collectives hidden behind GEMMs with Transformer Engine's userbuffer overlap
    (``--tp-comm-overlap``; without it none is hidden). Not fitted: no calibration row states that
    it ran with it; 0.5 is an assumption (the ring-exchange overlap hides the all-gathers and
    reduce-scatters of the larger GEMMs, not those of the smallest)."""


DEFAULT_CONSTANTS = StepTimeConstants()
