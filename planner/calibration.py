"""The step-time model's few constants, fitted on published runs.

Fitted by ``benchmarks/calibrate.py --stated-only`` on the dense (non-MoE), BF16/FP16 rows of
``../shared/calibration/published.yaml`` that state their whole configuration, recompute included
(Megatron SC21, MosaicML MPT): a grid search minimizing the mean absolute log error of predicted vs
published step time. ``benchmarks/accuracy.py`` prints the per-entry errors on every usable row.
No entry is special-cased.

Fitted 2026-11-24: 71 entries, mean |log error| 0.100 (after vpp and cp entered the memory and
step-time model).
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTimeConstants:
    """Efficiency constants of ``constraints/throughput.py``."""

    gemm_max_efficiency: float = 0.70
    """Fraction of dense peak that large matrix products reach (fitted)."""
    gemm_half_size: float = 1.0e5
    """Per-GPU GEMM size ``b*s*h/t`` at which efficiency is half the maximum (fitted)."""
    comm_efficiency: float = 0.60
    """Achieved share of the link's per-GPU bandwidth for NCCL collectives (fitted)."""
    dp_overlap: float = 0.30
    """Share of data-parallel communication hidden behind backward compute (fitted)."""
    elementwise_bytes_per_width: float = 150.0
    """Bytes of memory-bound traffic per hidden element, token and pass (fitted)."""
    cp_overlap: float = 0.5
    """Share of ring-attention traffic hidden behind attention compute (Megatron/TE overlap each
    K/V hop with the previous chunk's attention). Not fitted: no usable CP entry states its
    recompute; 0.5 is an assumption, to be fitted when such data exists."""
    cpu_adam_params_per_s: float = 3.0e8
    """CPU Adam updates per second available to one GPU's shard (DeepSpeed CPU-Adam on a two-socket
    host shared by its 8 GPUs; order of magnitude from Ren et al. 2021, ZeRO-Offload, Section 5.2).
    Not fitted: no published entry offloads."""
    tp_overlap: float = 0.0
    """Share of TP collectives hidden (0: Megatron without TE comm overlap; not fitted)."""


DEFAULT_CONSTANTS = StepTimeConstants()
