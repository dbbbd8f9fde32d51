"""Which layouts a model admits: divisibility rules with messages that say what would work."""

from constraints.pipeline import end_stage_splits, megatron_split_form
from planner.errors import PlannerError
from planner.specs import Framework, ModelSpec, ParallelConfig, Recompute, TrainingSpec, ZeroStage


def divisors(n: int) -> list[int]:
    """Positive divisors of ``n``, ascending."""
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def valid_tp(model: ModelSpec) -> list[int]:
    """TP sizes that split the query and KV heads evenly (Megatron-LM ``validate_args``)."""
    return [t for t in divisors(model.num_heads) if model.num_kv_heads % t == 0]


def valid_pp(model: ModelSpec) -> list[int]:
    """PP sizes that give every stage the same number of layers."""
    return divisors(model.num_layers)


def pipeline_sizes(model: ModelSpec, framework: Framework) -> list[int]:
    """PP sizes with a whole split of the layers: every divisor, and with Megatron-LM every size
    whose first and last stages can hold fewer layers than the middle ones
    (``constraints.pipeline.end_stage_splits``)."""
    if framework is not Framework.MEGATRON:
        return valid_pp(model)
    n = model.num_layers
    return [p for p in range(1, n + 1) if n % p == 0 or end_stage_splits(n, p)]


def pipeline_splits(model: ModelSpec, pp: int, vpp: int, framework: Framework) -> list[tuple[int, int]]:
    """(first, last) stage layers searched for this pp and vpp: ``(0, 0)`` for the even split when
    there is one, then, with Megatron-LM, the lighter-ended splits it can build
    (``constraints.pipeline.megatron_split_form``). DeepSpeed's ``PipelineModule`` balances its own
    partition, so only the even split is planned for it."""
    n = model.num_layers
    if pp == 1:
        return [(0, 0)] if vpp == 1 else []
    splits = [(0, 0)] if n % pp == 0 and (n // pp) % vpp == 0 else []
    if framework is Framework.MEGATRON:
        even = (n // pp, n // pp) if n % pp == 0 else None
        splits += [
            (first, last)
            for first, last in end_stage_splits(n, pp)
            if (first, last) != even and megatron_split_form(n, pp, vpp, first, last) is not None
        ]
    return splits


def check_layout(model: ModelSpec, training: TrainingSpec, config: ParallelConfig, gpus: int) -> None:
    """Raise ``PlannerError`` naming the option and the values that would work."""
    if config.tp not in valid_tp(model):
        raise PlannerError(
            f"--tp {config.tp} does not divide the {model.num_heads} heads and "
            f"{model.num_kv_heads} KV heads; use one of {valid_tp(model)}"
        )
    if config.pp not in valid_pp(model):
        raise PlannerError(
            f"--pp {config.pp} does not divide the {model.num_layers} layers; use one of {valid_pp(model)}"
        )
    if config.num_gpus != gpus:
        fitting = [d for d in divisors(gpus) if d % (config.tp) == 0]
        raise PlannerError(
            f"tp*pp*dp = {config.tp}*{config.pp}*{config.dp} = {config.num_gpus} "
            f"is not --gpus {gpus}; tp*pp must divide {gpus} (e.g. {fitting[:8]})"
        )
    step = config.dp * config.micro_batch_size
    if training.global_batch_size % step:
        raise PlannerError(
            f"--global-batch {training.global_batch_size} is not a multiple of dp*mbs = "
            f"{config.dp}*{config.micro_batch_size} = {step}; use a multiple of {step}"
        )


def framework_allows_sharding(
    framework: Framework, pp: int, zero: ZeroStage, optimizer_offload: bool = False
) -> bool:
    """DeepSpeed's pipeline engine runs ZeRO-0/1 only (``deepspeed/runtime/pipe/engine.py``
    asserts it); Megatron-LM accepts every stage with pipelining (Megatron-FSDP for 2/3). Optimizer
    offload needs sharded optimizer states: DeepSpeed ZeRO-Offload from stage 1, Megatron's
    hybrid-device optimizer with its distributed optimizer (stage 1)."""
    if framework is Framework.DEEPSPEED and pp > 1 and zero >= ZeroStage.GRADIENTS:
        return False
    if optimizer_offload:
        return zero == ZeroStage.OPTIMIZER if framework is Framework.MEGATRON else zero >= ZeroStage.OPTIMIZER
    return True


def framework_allows_recompute(
    framework: Framework, recompute: Recompute, flash: bool, activation_offload: bool = False, pp: int = 1
) -> bool:
    """Selective (core-attention) recompute is Megatron's; with FlashAttention it keeps nothing
    more than no recompute, so DeepSpeed can run it as that. Activation offload: DeepSpeed moves
    the full-recompute checkpoints (``cpu_checkpointing``); Megatron-Core offloads the activations of
    all but the last layer, without pipelining (``TransformerConfig`` rejects pp > 1) and instead
    of full recompute."""
    if framework is Framework.DEEPSPEED and recompute is Recompute.SELECTIVE and not flash:
        return False
    if activation_offload:
        if framework is Framework.DEEPSPEED:
            return recompute is Recompute.FULL
        return pp == 1 and recompute is not Recompute.FULL
    return True


def valid_cp(seq_len: int) -> list[int]:
    """Context-parallel sizes: Megatron's load-balanced ring splits each sequence into ``2*cp``
    chunks, so ``2*cp`` must divide it."""
    return [c for c in divisors(seq_len) if seq_len % (2 * c) == 0 or c == 1]


def valid_vpp(model: ModelSpec, pp: int) -> list[int]:
    """Virtual stages per rank: 1, or (with pp > 1) a divisor of the layers per stage
    (Megatron-LM: layers divisible by pp * vpp)."""
    if pp == 1:
        return [1]
    return divisors(model.num_layers // pp)


def framework_allows_layout(framework: Framework, cp: int, vpp: int, flash: bool, ep: int = 1) -> bool:
    """Context parallelism, interleaved pipelines and expert parallelism are Megatron-LM's here
    (DeepSpeed has neither of the first two, and its expert parallelism needs DeepSpeed-MoE layers
    in the model code); context parallelism runs with FlashAttention / fused attention only."""
    if framework is Framework.DEEPSPEED and (cp > 1 or vpp > 1 or ep > 1):
        return False
    return cp == 1 or flash


def valid_ep(model: ModelSpec) -> list[int]:
    """Expert-parallel sizes: divisors of the routed experts (1 for a dense model)."""
    return divisors(model.num_experts) if model.is_moe else [1]
