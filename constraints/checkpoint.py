"""Checkpoint size, save time and the share of training time saving costs.

What a training checkpoint holds, per parameter (Adam, mixed precision):
- Megatron-LM distributed checkpoint (``torch_dist``, and Megatron-FSDP's ``fsdp_dtensor``): the
  16-bit model weights (the model's ``sharded_state_dict``) and the distributed optimizer's fp32
  master weight and Adam ``exp_avg``, ``exp_avg_sq`` (``megatron/core/optimizer/distrib_optimizer.py``
  ``sharded_state_dict``): 2 + 12 bytes. FP8 training saves the bf16 weight, not its FP8 casts.
  With ``ckpt_fully_parallel_save`` (Megatron's default, ``training_config.py``) the data-parallel
  replicas split the writing, so each rank writes ``1/dp`` of its model-parallel shard.
- DeepSpeed ZeRO (``deepspeed/runtime/engine.py`` ``_save_checkpoint`` / ``_save_zero_checkpoint``):
  data-parallel rank 0 of each model-parallel rank writes ``mp_rank_XX_model_states.pt`` (the
  16-bit module weights; at ZeRO-3 they are partitioned placeholders, since
  ``stage3_gather_16bit_weights_on_model_save`` defaults to false) and every rank writes its
  optimizer partition ``zero_pp_rank_N_..._optim_states.pt`` (fp32 master + Adam, 12 bytes; at
  ZeRO-0 the whole optimizer goes with the model states).
fp32 training saves 4-byte weights and 8 bytes of Adam moments (the weight is the master).
"""

from constraints.memory import FP32_BYTES, HALF_BYTES, optimizer_bytes_per_param
from constraints.units import Framework, Precision, ZeroStage


def saved_weight_bytes_per_param(precision: Precision, framework: Framework, zero: ZeroStage) -> int:
    """Bytes of model weights a checkpoint stores per parameter: the 16-bit (or fp32) weight, none
    for DeepSpeed ZeRO-3, whose module state holds partitioned placeholders (the fp32 master in the
    optimizer files is the weight). Sources: module docstring."""
    if framework is Framework.DEEPSPEED and zero >= ZeroStage.WEIGHTS:
        return 0
    return HALF_BYTES if precision.is_mixed else FP32_BYTES


def saved_optimizer_bytes_per_param(precision: Precision) -> int:
    """Bytes of optimizer state a checkpoint stores per parameter: all of Adam's (12 mixed, 8 fp32),
    as the optimizer holds them (``constraints.memory.optimizer_bytes_per_param``)."""
    return optimizer_bytes_per_param(precision)


def checkpoint_bytes(num_params: float, weight_bytes: float, optimizer_bytes: float) -> float:
    """Size of one full checkpoint: every parameter's saved weight and optimizer state."""
    return num_params * (weight_bytes + optimizer_bytes)


def megatron_rank_shard_bytes(
    dense_params: float, expert_params: float, bytes_per_param: float, dp: int, expert_dp: int
) -> float:
    """Bytes one rank writes to a Megatron distributed checkpoint with fully parallel save: its
    model-parallel shard's weights and optimizer states split over the ranks that replicate them
    (``dp`` = dp*cp for dense parameters, ``expert_dp`` = tp*cp*dp/ep for routed experts).
    ``*_params`` are the parameters on one rank of the heaviest pipeline stage."""
    return dense_params * bytes_per_param / dp + expert_params * bytes_per_param / expert_dp


def deepspeed_rank_shard_bytes(
    rank_params: float, weight_bytes: float, optimizer_bytes: float, dp: int, zero: ZeroStage
) -> float:
    """Bytes data-parallel rank 0 (the most loaded writer) writes to a DeepSpeed checkpoint: the
    module weights of its model-parallel shard and its optimizer partition (``1/dp`` from ZeRO-1;
    the whole optimizer at ZeRO-0)."""
    optimizer_share = dp if zero >= ZeroStage.OPTIMIZER else 1
    return rank_params * (weight_bytes + optimizer_bytes / optimizer_share)


def save_time_s(num_bytes: float, storage_bytes_per_s: float) -> float:
    """Seconds to write ``num_bytes`` at the storage's aggregate write bandwidth (all ranks write
    at once; a synchronous save stalls training for this long)."""
    return num_bytes / storage_bytes_per_s


def checkpoint_overhead_fraction(save_s: float, interval_s: float) -> float:
    """Share of wall-clock time spent saving when a synchronous save of ``save_s`` follows every
    ``interval_s`` of training: ``save / (interval + save)`` (Young 1974, "A first order
    approximation to the optimum checkpoint interval", CACM 17(9): the overhead term ``δ/T``)."""
    return save_s / (interval_s + save_s)
