"""Model-state memory per GPU: weights, gradients, optimizer states, ZeRO-3 live buffers, reserve.

Conventions (bytes per parameter, Adam):
- fp32 training: 4 weight + 4 gradient + 8 Adam ``m``, ``v`` = 16.
- Mixed precision, Megatron-LM: 2 bf16 weight + 4 fp32 main gradient + 4 fp32 master + 8 Adam = 18;
  the distributed optimizer shards the 12 optimizer bytes over data-parallel ranks, ``6 + 12/dp``
  (Megatron-LM ``megatron/training/theoretical_memory_usage.py``,
  ``compute_weight_and_optimizer_memory``).
- Mixed precision, DeepSpeed: 2 weight + 2 gradient + 12 optimizer (fp32 master, ``m``, ``v``) = 16,
  the "2+2+K, K=12" of Rajbhandari et al. 2020 (ZeRO), Fig. 1. Stage 1 shards the optimizer,
  stage 2 also the gradients, stage 3 also the weights.
TP and PP shard all of it; the caller passes the parameters that live on one rank.
"""

import math

from constraints.units import FP32_BYTES, HALF_BYTES, Framework, Precision, ZeroStage

ADAM_MOMENTS_BYTES = 2 * FP32_BYTES  # Adam m and v, fp32 (Kingma & Ba 2015)
MASTER_WEIGHT_BYTES = FP32_BYTES  # fp32 copy of 16-bit weights (Micikevicius et al. 2018)
MEGATRON_MAIN_GRAD_BYTES = FP32_BYTES  # --accumulate-allreduce-grads-in-fp32, default for bf16
ZERO3_UNITS_IN_FLIGHT = 2  # the unit in use and the one prefetched (or still reducing)


FP8_WEIGHT_CACHE_BYTES = 2  # Transformer Engine keeps each weight's FP8 cast, row- and column-wise
FP8_BYTES = 1


def weight_bytes_per_param(precision: Precision, fp8_param_gather: bool = False) -> int:
    """Bytes of the working (compute) copy of one weight: 2 in 16-bit, 4 in fp32. FP8 training keeps
    the bf16 weight and Transformer Engine's cached FP8 casts of it for the forward and the
    transposed backward GEMMs (``transformer_engine`` ``Float8Tensor`` row/column-wise data); with
    ``--fp8-param-gather`` the FP8 casts are the weight (no bf16 copy; the distributed optimizer's
    fp32 main weights are the master), as Megatron-LM builds the model under TE's
    ``fp8_model_init`` (``megatron/training/training.py``, ``get_model``)."""
    if precision is Precision.FP8:
        return FP8_WEIGHT_CACHE_BYTES + (0 if fp8_param_gather else HALF_BYTES)
    return HALF_BYTES if precision.is_mixed else FP32_BYTES


def gathered_weight_bytes_per_param(precision: Precision, fp8_param_gather: bool = False) -> int:
    """Bytes per weight that a data-parallel all-gather of updated (or ZeRO-3 sharded) weights moves:
    the 16-bit weight, or its FP8 data under ``--fp8-param-gather``, 4 in fp32."""
    if fp8_param_gather:
        return FP8_BYTES
    return HALF_BYTES if precision.is_mixed else FP32_BYTES


def grad_bytes_per_param(precision: Precision, framework: Framework, reduce_in_bf16: bool = False) -> int:
    """Bytes of one gradient: Megatron accumulates into an fp32 main-grad buffer (4) unless told to
    keep and reduce it in bf16 (2: ``--grad-reduce-in-bf16``, Megatron-Core's
    ``DistributedDataParallelConfig.grad_reduce_in_fp32=False``, whose buffer then takes the
    parameters' dtype); DeepSpeed keeps 16-bit gradients (2); fp32 training 4. Sources: Megatron-LM
    ``theoretical_memory_usage.py`` (18 B = 2 + 4 + 12), ``megatron/core/distributed/
    param_and_grad_buffer.py`` (the grad buffer's dtype); ZeRO paper Fig. 1 (2 + 2 + 12)."""
    if not precision.is_mixed:
        return FP32_BYTES
    if framework is Framework.MEGATRON and not reduce_in_bf16:
        return MEGATRON_MAIN_GRAD_BYTES
    return HALF_BYTES


def optimizer_bytes_per_param(precision: Precision) -> int:
    """Adam states of one parameter: fp32 master + ``m`` + ``v`` = 12 in mixed precision, ``m`` +
    ``v`` = 8 in fp32 (the weight itself is the master). Source: ZeRO paper Section 3.1, K = 12."""
    return MASTER_WEIGHT_BYTES + ADAM_MOMENTS_BYTES if precision.is_mixed else ADAM_MOMENTS_BYTES


def sharded_bytes(num_params: float, bytes_per_param: float, dp: int, sharded: bool) -> float:
    """Bytes one data-parallel rank holds: all of them, or ``1/dp`` when the state is sharded."""
    return num_params * bytes_per_param / (dp if sharded else 1)


def weights_bytes(
    num_params: float, precision: Precision, zero: ZeroStage, dp: int, fp8_param_gather: bool = False
) -> float:
    """Working weights on one rank: sharded over ``dp`` only at ZeRO-3 (FSDP FULL_SHARD)."""
    per_param = weight_bytes_per_param(precision, fp8_param_gather)
    return sharded_bytes(num_params, per_param, dp, zero >= ZeroStage.WEIGHTS)


def gradients_bytes(
    num_params: float,
    precision: Precision,
    framework: Framework,
    zero: ZeroStage,
    dp: int,
    reduce_in_bf16: bool = False,
) -> float:
    """Gradients on one rank: sharded from ZeRO-2 on (reduce-scatter instead of all-reduce)."""
    per_param = grad_bytes_per_param(precision, framework, reduce_in_bf16)
    return sharded_bytes(num_params, per_param, dp, zero >= ZeroStage.GRADIENTS)


def optimizer_bytes(
    num_params: float, precision: Precision, zero: ZeroStage, dp: int, offload: bool = False
) -> float:
    """Optimizer states on one GPU: sharded from ZeRO-1 (Megatron: distributed optimizer) on; none
    when offloaded to the CPU (ZeRO-Offload, Ren et al. 2021, Section 4: fp32 master weights and
    Adam states in host memory, the update on the CPU)."""
    if offload:
        return 0.0
    return sharded_bytes(num_params, optimizer_bytes_per_param(precision), dp, zero >= ZeroStage.OPTIMIZER)


def unsharded_unit_bytes(
    unit_params: float, stage_params: float, dp: int, bytes_per_param: float, sharded: bool
) -> float:
    """Unsharded copies of a sharded state that are live on one rank: ZeRO-3's gathered weights,
    and from ZeRO-2 on the full gradients of the units whose backward just ran, before their
    reduce-scatter.

    ``unit_params`` is the largest unit gathered or reduced at once on this rank (a transformer
    layer or the embedding, per TP shard). Two units are live: the one computing and the one
    prefetched or still reducing (``stage3_prefetch_bucket_size`` and the overlapped reduce buckets
    in DeepSpeed, ``forward_prefetch``/``backward_prefetch`` in FSDP). A rank already holds
    ``1/dp`` of each unit, so ``(dp - 1)/dp`` more arrive, never more than the stage has: sharding
    never costs more than not sharding. DeepSpeed's ``estimate_zero3_model_states_mem_needs``
    counts one whole unit of weights and gradients, ``4 * largest_layer_params``; its
    ``estimate_zero2_model_states_mem_needs`` all gradients unsharded, ``2 * total_params``.
    """
    if not sharded:
        return 0.0
    gathered = min(ZERO3_UNITS_IN_FLIGHT * unit_params, stage_params)
    return gathered * (dp - 1) / dp * bytes_per_param


def min_gpus_for_states(num_params: float, bytes_per_param: float, usable_bytes_per_gpu: float) -> int:
    """Fewest GPUs whose memory can hold the model states at all, nothing offloaded: every
    parameter's weight, gradient and optimizer state is held at least once in the cluster (ZeRO-3
    shards each over its data-parallel group; tensor, pipeline and expert parallelism split the
    rest), so the most loaded GPU holds at least the average share, ``(2 + 2 + K) * params / N_d``
    in ZeRO's notation (Rajbhandari et al. 2020, Fig. 1, P_os+g+p). ``usable_bytes_per_gpu`` is
    what the reserve leaves."""
    return math.ceil(num_params * bytes_per_param / usable_bytes_per_gpu)


def reserve_bytes(capacity_bytes: float, fraction: float, fixed_bytes: float) -> float:
    """Memory set aside for what no formula allocates: CUDA context and cuBLAS workspaces,
    NCCL communicator buffers, allocator fragmentation and transient buffers (logit gradients,
    all-gather staging). ``fraction`` of the device capacity plus ``fixed_bytes``; the default
    (``planner.specs.DEFAULT_RESERVE``) and its provenance are documented in the README."""
    return capacity_bytes * fraction + fixed_bytes
