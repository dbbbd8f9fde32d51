"""DeepSpeed launch: a config whose keys DeepSpeed 0.19 ``deepspeed/runtime/config.py`` reads, and
whose batch numbers satisfy its rule ``train_batch_size = micro_batch * grad_accum * dp``."""

from typing import Any

from planner.capability import unsupported_reasons
from planner.emit import (
    ADAM_BETAS,
    ADAM_EPS,
    DEFAULT_LOG_INTERVAL,
    DEFAULT_LR,
    DEFAULT_MIN_LR,
    DEFAULT_TRAIN_ITERS,
    DEFAULT_WARMUP_ITERS,
    GRAD_CLIP,
    WEIGHT_DECAY,
    Emitted,
)
from planner.evaluate import num_microbatches
from planner.specs import Framework, ModelSpec, ParallelConfig, Precision, Recompute, TrainingSpec, ZeroStage

# DeepSpeed bucket sizes (elements): DeepSpeed's documented defaults for ZeRO-1/2 are 5e8; for
# ZeRO-3 prefetch 5e7 and persistence threshold 1e5 (deepspeed/runtime/zero/config.py).
DS_BUCKET_ELEMENTS = 500_000_000
DS_PREFETCH_ELEMENTS = 50_000_000
DS_PERSISTENCE_THRESHOLD = 100_000
DS_MAX_LIVE_PARAMETERS = 1_000_000_000


def scheduler() -> dict[str, Any]:
    """The learning-rate schedule of the Megatron launch in DeepSpeed's terms: linear warm-up, then
    cosine decay to ``DEFAULT_MIN_LR`` (``deepspeed/runtime/lr_schedules.py`` ``WarmupCosineLR``)."""
    return {
        "type": "WarmupCosineLR",
        "params": {
            "total_num_steps": DEFAULT_TRAIN_ITERS,
            "warmup_num_steps": DEFAULT_WARMUP_ITERS,
            "warmup_type": "linear",
            "warmup_min_ratio": 0.0,
            "cos_min_ratio": DEFAULT_MIN_LR / DEFAULT_LR,
        },
    }


def deepspeed_config(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> Emitted:
    """A DeepSpeed config for the plan; batch numbers satisfy DeepSpeed's rule
    ``train_batch_size = micro_batch * grad_accum * dp``."""
    notes: list[str] = []
    ds: dict[str, Any] = {
        "train_batch_size": training.global_batch_size,
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": num_microbatches(training, config),
        "gradient_clipping": GRAD_CLIP,
        "steps_per_print": DEFAULT_LOG_INTERVAL,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": DEFAULT_LR,
                "betas": list(ADAM_BETAS),
                "eps": ADAM_EPS,
                "weight_decay": WEIGHT_DECAY,
            },
        },
        "scheduler": scheduler(),
    }
    if training.precision in (Precision.BF16, Precision.FP8):
        ds["bf16"] = {"enabled": True}
    if training.precision is Precision.FP16:
        ds["fp16"] = {
            "enabled": True,
            "loss_scale": 0,
            "initial_scale_power": 16,
            "loss_scale_window": 1000,
            "hysteresis": 2,
            "min_loss_scale": 1,
        }
    zero: dict[str, Any] = {"stage": int(config.zero_stage)}
    if config.zero_stage in (ZeroStage.OPTIMIZER, ZeroStage.GRADIENTS):
        zero |= {
            "overlap_comm": training.overlap_grad_reduce,
            "contiguous_gradients": True,
            "reduce_scatter": True,
            "reduce_bucket_size": DS_BUCKET_ELEMENTS,
            "allgather_bucket_size": DS_BUCKET_ELEMENTS,
        }
    elif config.zero_stage is ZeroStage.WEIGHTS:
        zero |= {
            "overlap_comm": training.overlap_grad_reduce,
            "contiguous_gradients": True,
            "reduce_bucket_size": DS_BUCKET_ELEMENTS,
            "stage3_prefetch_bucket_size": DS_PREFETCH_ELEMENTS,
            "stage3_param_persistence_threshold": DS_PERSISTENCE_THRESHOLD,
            "stage3_max_live_parameters": DS_MAX_LIVE_PARAMETERS,
        }
    if config.optimizer_offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    ds["zero_optimization"] = zero
    if config.tp > 1:
        ds["tensor_parallel"] = {"autotp_size": config.tp}
        notes.append(f"tp={config.tp} runs as DeepSpeed AutoTP (tensor_parallel.autotp_size)")
    if config.pp > 1:
        notes.append(
            f"pp={config.pp} needs the model wrapped in deepspeed.pipe.PipelineModule(num_stages={config.pp})"
        )
    if config.recompute is Recompute.FULL:
        ds["activation_checkpointing"] = {
            "partition_activations": config.activation_offload,
            "contiguous_memory_optimization": False,
            "cpu_checkpointing": config.activation_offload,
        }
        notes.append("full recompute: checkpoint every layer (HF: model.gradient_checkpointing_enable())")
    elif config.recompute is Recompute.SELECTIVE and training.flash_attention:
        notes.append("selective recompute equals none with FlashAttention (it keeps no attention scores)")
    if training.framework is Framework.MEGATRON:
        notes.append(
            "memory was planned with Megatron's conventions (fp32 gradients); "
            "plan with --framework deepspeed for DeepSpeed's"
        )
    blockers = unsupported_reasons(Framework.DEEPSPEED, model, training, config)
    return Emitted(expressible=not blockers, notes=blockers + notes, content=ds)
