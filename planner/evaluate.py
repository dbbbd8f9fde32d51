"""The plain evaluator: one configuration, in floating point, from ``constraints/`` alone.

This is the specification the solver is checked against: ``plan`` with every dimension pinned
prints it, the brute-force enumerator ranks it, and the CP-SAT builder compiles the same functions
into tables.

The most-loaded GPU is the heavier of two ranks, both computed: the first pipeline stage
(embedding, and ``min(pp, m)`` micro-batches in flight under 1F1B) and the last stage (final norm,
LM head or the tied-embedding copy, fp32 logits, one micro-batch in flight). Middle stages hold
fewer micro-batches than the first and no embedding or head, so they are never heavier. With
``pp = 1`` both are the same rank.
"""

from dataclasses import dataclass

from constraints import activations as A
from constraints import memory as M
from constraints import params as P
from constraints.units import Framework, Recompute
from planner.specs import (
    HardwareSpec,
    MemoryBreakdown,
    ModelSpec,
    ParallelConfig,
    PositionEncoding,
    TrainingSpec,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StageParams:
    """Parameters one rank of a pipeline stage holds, and its largest gathered or reduced unit."""

    params: float
    """All parameters on this rank (its TP shard of its stage)."""
    largest_unit: float
    """Largest block ZeRO-2/3 reduces or gathers at once on this rank: a layer or the embedding."""


def num_microbatches(training: TrainingSpec, config: ParallelConfig) -> int:
    """Micro-batches per step on one data-parallel rank (gradient-accumulation steps)."""
    return training.global_batch_size // (config.dp * config.micro_batch_size)  # cp ranks share sequences


def vocab_for(model: ModelSpec, training: TrainingSpec, tp: int) -> int:
    """Vocabulary the framework allocates: Megatron pads it, DeepSpeed (HF model) does not."""
    if training.framework is Framework.MEGATRON:
        return P.padded_vocab(model.vocab_size, tp)
    return model.vocab_size


def stage_params(model: ModelSpec, training: TrainingSpec, config: ParallelConfig, stage: int) -> StageParams:
    """Parameters on one TP rank of pipeline stage ``stage``."""
    h, t = model.hidden_size, config.tp
    layer = P.layer_params_per_tp_rank(
        h,
        model.num_heads,
        model.num_kv_heads,
        model.head_dim,
        model.ffn_hidden_size,
        gated=model.gated_mlp,
        qkv_bias=model.qkv_bias,
        out_bias=model.out_bias,
        mlp_bias=model.mlp_bias,
        norm_bias=model.norm_bias,
        num_experts=model.num_experts,
        t=t,
    )
    params = layer * model.num_layers / config.pp
    embedding = P.embedding_params(vocab_for(model, training, t), h) / t  # vocab-parallel
    # ZeRO-3 gathers per module in DeepSpeed, per transformer block in FSDP / Megatron-FSDP.
    unit = (
        P.largest_matrix_params(h, model.q_dim, model.ffn_hidden_size, t)
        if training.framework is Framework.DEEPSPEED
        else layer
    )
    if stage == 0:
        params += embedding
        unit = max(unit, embedding)
        if model.positions is PositionEncoding.LEARNED:
            params += P.embedding_params(model.max_position_embeddings, h)
        if model.embedding_norm:
            params += P.norm_params(h, model.norm_bias)
    if stage == config.pp - 1:
        params += P.norm_params(h, model.norm_bias)
        # An untied head always adds its shard; a tied one is a second copy only on another stage.
        if not model.tied_embeddings or config.pp > 1:
            params += embedding
            unit = max(unit, embedding)
    return StageParams(params=params, largest_unit=unit)


def stage_activation_bytes(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, stage: int
) -> dict[str, float]:
    """Activation bytes on one rank of ``stage``: layers, embedding, output, recompute working set."""
    # Context parallelism gives each rank s/cp tokens of every sequence (FlashAttention only, so
    # no score matrix spans ranks: ``rules.framework_allows_layout``).
    s, b, h, t = training.seq_len // config.cp, config.micro_batch_size, model.hidden_size, config.tp
    e, sp, dropout = training.precision.activation_bytes, config.sequence_parallel, model.dropout_enabled

    def layer(recompute: Recompute) -> float:
        return A.layer_activation_bytes(
            s,
            b,
            h,
            model.num_heads,
            model.q_dim,
            model.kv_dim,
            model.ffn_hidden_size,
            gated=model.gated_mlp,
            t=t,
            sequence_parallel=sp,
            flash=training.flash_attention,
            dropout=dropout,
            recompute=recompute,
            e=e,
            kernels=A.Kernels.FUSED,
        )

    m = num_microbatches(training, config)
    in_flight = A.in_flight_microbatches(config.pp, stage, m)
    layer_microbatches = A.in_flight_layer_microbatches(model.num_layers, config.pp, config.vpp, stage, m)
    parts = {
        "layers": layer(config.recompute) * layer_microbatches,
        "recompute_working": A.recompute_working_bytes(layer(Recompute.NONE), layer(config.recompute)),
        "embedding": 0.0,
        "output": 0.0,
    }
    if stage == 0:
        parts["embedding"] = in_flight * A.embedding_activation_bytes(
            s, b, h, t=t, sequence_parallel=sp, dropout=dropout
        )
    if stage == config.pp - 1:
        parts["output"] = A.output_activation_bytes(
            s, b, h, vocab_for(model, training, t), t=t, sequence_parallel=sp, e=e, kernels=A.Kernels.FUSED
        )
    return parts


def stage_memory(
    model: ModelSpec, hardware: HardwareSpec, training: TrainingSpec, config: ParallelConfig, stage: int
) -> MemoryBreakdown:
    """Memory of one rank of pipeline stage ``stage``."""
    held = stage_params(model, training, config, stage)
    prec, fw, zero, dp = training.precision, training.framework, config.zero_stage, config.shard_group
    unit, stage_total = held.largest_unit, held.params
    weights = M.weights_bytes(held.params, prec, zero, dp) + M.unsharded_unit_bytes(
        unit, stage_total, dp, M.weight_bytes_per_param(prec), zero >= M.ZeroStage.WEIGHTS
    )
    gradients = M.gradients_bytes(held.params, prec, fw, zero, dp) + M.unsharded_unit_bytes(
        unit, stage_total, dp, M.grad_bytes_per_param(prec, fw), zero >= M.ZeroStage.GRADIENTS
    )
    acts = stage_activation_bytes(model, training, config, stage)
    return MemoryBreakdown(
        weights=weights,
        gradients=gradients,
        optimizer=M.optimizer_bytes(held.params, prec, zero, dp),
        activations=sum(acts.values()),
        reserve=M.reserve_bytes(
            hardware.memory_bytes, training.reserve_fraction, training.reserve_fixed_bytes
        ),
        capacity=hardware.memory_bytes,
        stage=stage,
        detail={"params_on_gpu": held.params, **{f"activations_{k}": v for k, v in acts.items()}},
    )


def memory(
    model: ModelSpec, hardware: HardwareSpec, training: TrainingSpec, config: ParallelConfig
) -> MemoryBreakdown:
    """Memory of the most-loaded GPU: the heavier of the first and last pipeline stage."""
    stages = {0, config.pp - 1}
    return max(
        (stage_memory(model, hardware, training, config, s) for s in sorted(stages)), key=lambda m: m.total
    )
