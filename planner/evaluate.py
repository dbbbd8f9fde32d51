"""The plain evaluator: one configuration, in floating point, from ``constraints/`` alone.

This is the specification the solver is checked against: ``plan`` with every dimension pinned
prints it, the brute-force enumerator ranks it, and the CP-SAT builder compiles the same functions
into tables.

The most-loaded GPU is the heaviest of three ranks, all computed: the first pipeline stage
(embedding, and ``min(pp, m)`` micro-batches in flight under 1F1B), the second (the first middle
stage: most micro-batches in flight of the middle ones, which all hold the same layers) and the last
stage (final norm, LM head or the tied-embedding copy, fp32 logits, one micro-batch in flight). With
an even split the second is never heavier than the first; with lighter ends
(``ParallelConfig.first_stage_layers``) it can be. With ``pp = 1`` they are one rank.
"""

from dataclasses import dataclass

from constraints import activations as A
from constraints import memory as M
from constraints import params as P
from constraints import pipeline as S
from constraints import recompute as R
from constraints.units import Framework, Recompute
from planner.memo import by_fields_read
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
    """Parameters one rank of a pipeline stage holds, and its largest gathered unit (ZeRO-3)."""

    params: float
    """All parameters on this rank (its TP shard of its stage), experts included."""
    expert_params: float = 0.0
    """Of those, the routed experts (sharded over ``dp*cp/ep`` instead of ``dp*cp``)."""
    largest_unit: float
    """Largest block ZeRO-2/3 reduces or gathers at once on this rank: a layer or the embedding."""


def num_microbatches(training: TrainingSpec, config: ParallelConfig) -> int:
    """Micro-batches per step on one data-parallel rank (gradient-accumulation steps)."""
    return training.global_batch_size // (config.dp * config.micro_batch_size)  # cp ranks share sequences


def stage_layers(model: ModelSpec, config: ParallelConfig) -> tuple[int, ...]:
    """Decoder layers of each pipeline stage, first to last (``constraints.pipeline``)."""
    if not config.uneven_stages:
        return (model.num_layers // config.pp,) * config.pp
    return S.stage_layer_counts(
        model.num_layers, config.pp, config.first_stage_layers, config.last_stage_layers
    )


def largest_chunk_layers(model: ModelSpec, config: ParallelConfig) -> int:
    """Decoder layers of the largest model chunk: the most loaded stage's layers over its ``vpp``
    virtual stages (what Megatron's block method counts ``--recompute-num-layers`` in)."""
    return max(stage_layers(model, config)) // config.vpp


def loaded_stages(config: ParallelConfig) -> tuple[int, int, int]:
    """The stages that can be the most loaded: first, second (the busiest middle one) and last;
    repeated when the pipeline has fewer stages, so tables over them keep one shape."""
    return (0, min(1, config.pp - 1), config.pp - 1)


def vocab_for(model: ModelSpec, training: TrainingSpec, tp: int) -> int:
    """Vocabulary the framework allocates: Megatron pads it, DeepSpeed (HF model) does not."""
    if training.framework is Framework.MEGATRON:
        return P.padded_vocab(model.vocab_size, tp)
    return model.vocab_size


def layer_params_per_rank(model: ModelSpec, config: ParallelConfig) -> tuple[float, float, float]:
    """(dense layer, MoE layer without its routed experts, routed experts of an MoE layer) on one rank."""
    h, t = model.hidden_size, config.tp
    if model.is_mla:
        attention = P.mla_params_per_tp_rank(h, model.num_heads, *model.mla_shape, t)
    else:
        attention = P.attention_params_per_tp_rank(
            h,
            model.num_heads,
            model.num_kv_heads,
            model.head_dim,
            qkv_bias=model.qkv_bias,
            out_bias=model.out_bias,
            qk_norm=model.qk_norm,
            t=t,
        )
    norms = model.norms_per_layer * P.norm_params(h, model.norm_bias)
    dense = (
        attention
        + norms
        + P.mlp_params_per_tp_rank(h, model.ffn_hidden_size, gated=model.gated_mlp, bias=model.mlp_bias, t=t)
    )
    if not model.is_moe:
        return dense, 0.0, 0.0
    shared = P.shared_expert_params(
        h, model.shared_expert_ffn_hidden_size, model.gated_mlp, model.shared_expert_gate
    )
    moe = attention + norms + P.router_params(h, model.num_experts) + shared / t
    experts = P.routed_expert_params_per_rank(
        h,
        model.expert_ffn,
        model.num_experts,
        gated=model.gated_mlp,
        bias=model.mlp_bias,
        ep=config.ep,
        etp=config.etp,
    )
    return dense, moe, experts


@by_fields_read(2)  # the same layer for many rows of the tables (planner.memo)
def stage_params(model: ModelSpec, training: TrainingSpec, config: ParallelConfig, stage: int) -> StageParams:
    """Parameters on one TP rank of pipeline stage ``stage``: its layers (``stage_layers``, in
    order); an MoE model's dense layers come first (DeepSeek-V3)."""
    h, t = model.hidden_size, config.tp
    dense, moe, experts = layer_params_per_rank(model, config)
    counts = stage_layers(model, config)
    per_stage = counts[stage]
    first = sum(counts[:stage])
    n_dense = per_stage if not model.is_moe else max(0, min(model.num_dense_layers - first, per_stage))
    n_moe = per_stage - n_dense
    params = n_dense * dense + n_moe * (moe + experts)
    embedding = P.embedding_params(vocab_for(model, training, t), h) / t  # vocab-parallel
    # ZeRO-3 gathers per module in DeepSpeed, per transformer block in FSDP / Megatron-FSDP.
    unit = (
        P.largest_matrix_params(h, model.q_dim, max(model.ffn_hidden_size, model.expert_ffn), t)
        if training.framework is Framework.DEEPSPEED
        else max(dense if n_dense else 0.0, moe + experts if n_moe else 0.0)
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
    return StageParams(params=params, expert_params=n_moe * experts, largest_unit=unit)


def _moe_widths(model: ModelSpec, training: TrainingSpec) -> tuple[float, float]:
    """(routed, shared) MLP widths a token of an MoE layer passes through: the ``k`` experts it
    visits (times the capacity factor when padded to capacity) and the shared experts."""
    capacity = training.moe_capacity_factor or 1.0  # padded to capacity, or the average (dropless)
    routed = capacity * model.num_experts_per_token * model.expert_ffn
    return routed, float(model.shared_expert_ffn_hidden_size)


@by_fields_read(2)  # the same layer for many rows of the tables (planner.memo)
def layer_activation_bytes(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, recompute: Recompute
) -> float:
    """Bytes one layer keeps for one micro-batch on one rank under ``recompute`` (selective: the
    modules of ``config.recompute_modules``, ``selective_freed_bytes``)."""
    if recompute is Recompute.SELECTIVE:
        kept = layer_activation_bytes(model, training, config, Recompute.NONE)
        return kept - selective_freed_bytes(model, training, config)
    # Context parallelism gives each rank s/cp tokens of every sequence (FlashAttention only, so
    # no score matrix spans ranks: ``rules.framework_allows_layout``).
    s, b, h, t = rank_seq_len(training, config), config.micro_batch_size, model.hidden_size, config.tp
    e, sp = training.precision.activation_bytes, config.sequence_parallel
    # An MoE layer's MLP activations are those of a dense MLP as wide as the k experts each token
    # visits plus the shared expert, and the dispatched token copies (taken for every layer: the
    # dense layers of DeepSeek-style models are no wider).
    mlp_width, dispatch = model.ffn_hidden_size, 0.0
    if model.is_moe:
        routed, shared = _moe_widths(model, training)
        mlp_width = max(mlp_width if model.num_dense_layers else 0, routed + shared)
        if recompute is not Recompute.FULL:
            dispatch = _dispatch_bytes(model, training, config)
    return dispatch + A.layer_activation_bytes(
        s,
        b,
        h,
        model.num_heads,
        model.q_dim,
        model.kv_dim,
        mlp_width,
        gated=model.gated_mlp,
        t=t,
        sequence_parallel=sp,
        flash=training.flash_attention,
        dropout=model.dropout_enabled,
        recompute=recompute,
        e=e,
        kernels=A.Kernels.FUSED,
        linear_input_bytes=training.precision.gemm_input_bytes,
    )


def _dispatch_bytes(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> float:
    """An MoE layer's dispatched token copies and router probabilities (expert tensor parallelism
    gathers the dispatched copies of the etp ranks' tokens)."""
    s, b, h = rank_seq_len(training, config), config.micro_batch_size, model.hidden_size
    return A.moe_dispatch_bytes(
        s,
        b,
        h,
        model.num_experts_per_token * config.etp,
        model.num_experts,
        t=config.tp,
        sequence_parallel=config.sequence_parallel,
        e=training.precision.activation_bytes,
    )


def separate_norms(model: ModelSpec) -> int:
    """Norms of a layer that are modules of their own in Megatron-Core's Transformer Engine spec
    (the rest are fused into the next linear layer): the pre-MLP norm of an MoE layer (the router's
    input) and the input norm of MLA attention (``constraints.recompute``)."""
    return int(model.is_moe) + int(model.is_mla)


def selective_freed_bytes(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> float:
    """Bytes of one layer, one micro-batch, one rank that selective recompute of
    ``config.recompute_modules`` frees (``constraints.recompute``; Megatron's default ``core_attn``
    when none is named). An MoE model's layers are taken as MoE layers, as in
    ``layer_activation_bytes``."""
    routed, shared = _moe_widths(model, training) if model.is_moe else (0.0, 0.0)
    return sum(
        R.module_recompute_freed_bytes(
            module,
            rank_seq_len(training, config),
            config.micro_batch_size,
            model.hidden_size,
            model.num_heads,
            f_dense=0.0 if model.is_moe else model.ffn_hidden_size,
            f_routed=routed,
            f_shared=shared,
            dispatch_bytes=_dispatch_bytes(model, training, config) if model.is_moe else 0.0,
            separate_norms=separate_norms(model),
            gated=model.gated_mlp,
            t=config.tp,
            sequence_parallel=config.sequence_parallel,
            flash=training.flash_attention,
            dropout=model.dropout_enabled,
            e=training.precision.activation_bytes,
            kernels=A.Kernels.FUSED,
            linear_input_bytes=training.precision.gemm_input_bytes,
            mla_qkv_width=R.mla_qkv_width(model.num_heads, *model.mla_shape[2:]) if model.is_mla else 0,
            mla_latent_width=model.q_lora_rank + model.kv_lora_rank if model.is_mla else 0,
            mla_rope_dim=model.qk_rope_head_dim if model.is_mla else 0,
        )
        for module in R.effective_modules(config.recompute_modules)
    )


def recomputed_layer_share(model: ModelSpec, config: ParallelConfig, stage: int) -> float:
    """Share of stage ``stage``'s layers whose whole forward is recomputed: 1 under full recompute
    of every layer, the block method's ``N`` of each model chunk of ``layers / vpp`` layers, 0 under
    none or selective recompute."""
    return chunk_recompute_share(config, stage_layers(model, config)[stage] / config.vpp)


def chunk_recompute_share(config: ParallelConfig, chunk_layers: float) -> float:
    """Share of a model chunk of ``chunk_layers`` layers that full recompute reruns: all of them
    (``recompute_num_layers`` 0), or the block method's first ``recompute_num_layers``."""
    if config.recompute is not Recompute.FULL:
        return 0.0
    if config.recompute_num_layers == 0:
        return 1.0
    return R.block_recompute_share(chunk_layers, config.recompute_num_layers)


@dataclass(frozen=True, slots=True)
class StageActivations:
    """What one rank of a stage holds, whatever the block method's layer count
    (``stage_activation_bytes`` adds that)."""

    layers: int
    """Decoder layers of the stage."""
    layer_microbatches: float
    """Layer-micro-batches whose activations stay on the GPU at once."""
    kept: float
    """Bytes one layer keeps for its backward without recompute."""
    stored: float
    """Bytes one layer keeps under the configuration's recompute (under full recompute: what a
    recomputed layer keeps, its input)."""
    embedding: float
    output: float


@by_fields_read(2)  # many rows share it: the ZeRO stage, the block method's count (planner.memo)
def stage_activation_terms(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, stage: int
) -> StageActivations:
    """The parts of ``stage_activation_bytes`` that the block method's layer count does not change."""
    s, b, h, t = rank_seq_len(training, config), config.micro_batch_size, model.hidden_size, config.tp
    e, sp, dropout = training.precision.activation_bytes, config.sequence_parallel, model.dropout_enabled
    m = num_microbatches(training, config)
    num_layers = stage_layers(model, config)[stage]
    embedding = output = 0.0
    if stage == 0:
        embedding = A.in_flight_microbatches(config.pp, stage, m) * A.embedding_activation_bytes(
            s, b, h, t=t, sequence_parallel=sp, dropout=dropout
        )
    if stage == config.pp - 1:
        output = A.output_activation_bytes(
            s, b, h, vocab_for(model, training, t), t=t, sequence_parallel=sp, e=e, kernels=A.Kernels.FUSED
        )
    return StageActivations(
        layers=num_layers,
        layer_microbatches=A.resident_layer_microbatches(
            S.stage_in_flight_layer_microbatches(num_layers, config.pp, config.vpp, stage, m),
            config.activation_offload,
        ),
        kept=layer_activation_bytes(model, training, config, Recompute.NONE),
        stored=layer_activation_bytes(model, training, config, config.recompute),
        embedding=embedding,
        output=output,
    )


def stage_activation_bytes(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, stage: int
) -> dict[str, float]:
    """Activation bytes on one rank of ``stage``: layers, embedding, output, recompute working set."""
    terms = stage_activation_terms(model, training, config, stage)
    kept = terms.kept
    if config.recompute is Recompute.FULL:  # the block method keeps the other layers whole
        chunk = terms.layers / config.vpp
        share, recomputed = chunk_recompute_share(config, chunk), terms.stored
        stored = share * recomputed + (1 - share) * kept
        layers = config.recompute_num_layers or chunk  # 0: every layer
        working = R.block_recompute_working_bytes(chunk, layers, recomputed, kept)
    else:
        stored = terms.stored
        working = A.recompute_working_bytes(kept, stored)
    return {
        "layers": stored * terms.layer_microbatches,
        "recompute_working": working,
        "embedding": terms.embedding,
        "output": terms.output,
    }


@by_fields_read(2)  # the rows of one layout and ZeRO stage share it whatever their vpp (planner.memo)
def stage_states_bytes(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, stage: int
) -> tuple[float, float, float]:
    """Weights, gradients and optimizer states (bytes) on one rank of pipeline stage ``stage``."""
    held = stage_params(model, training, config, stage)
    prec, fw, zero, dp = training.precision, training.framework, config.zero_stage, config.shard_group
    unit, stage_total = held.largest_unit, held.params
    # Non-expert states shard over dp*cp, routed experts' over their own group dp*cp/ep.
    groups = ((held.params - held.expert_params, dp), (held.expert_params, config.expert_shard_group))
    fp8_gather = training.fp8_param_gather
    weights = sum(M.weights_bytes(n, prec, zero, g, fp8_gather) for n, g in groups) + M.unsharded_unit_bytes(
        unit, stage_total, dp, M.weight_bytes_per_param(prec, fp8_gather), zero >= M.ZeroStage.WEIGHTS
    )
    bf16_grads = training.grad_reduce_in_bf16
    gradients = sum(
        M.gradients_bytes(n, prec, fw, zero, g, bf16_grads) for n, g in groups
    ) + M.unsharded_unit_bytes(
        unit, stage_total, dp, M.grad_bytes_per_param(prec, fw, bf16_grads), zero >= M.ZeroStage.GRADIENTS
    )
    optimizer = sum(M.optimizer_bytes(n, prec, zero, g, config.optimizer_offload) for n, g in groups)
    return weights, gradients, optimizer


def stage_memory(
    model: ModelSpec, hardware: HardwareSpec, training: TrainingSpec, config: ParallelConfig, stage: int
) -> MemoryBreakdown:
    """Memory of one rank of pipeline stage ``stage``."""
    weights, gradients, optimizer = stage_states_bytes(model, training, config, stage)
    acts = stage_activation_bytes(model, training, config, stage)
    return MemoryBreakdown(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        activations=sum(acts.values()),
        reserve=M.reserve_bytes(
            hardware.memory_bytes, training.reserve_fraction, training.reserve_fixed_bytes
        ),
        capacity=hardware.memory_bytes,
        stage=stage,
        detail={
            "params_on_gpu": stage_params(model, training, config, stage).params,
            **{f"activations_{k}": v for k, v in acts.items()},
        },
    )


def rank_seq_len(training: TrainingSpec, config: ParallelConfig) -> int:
    """Tokens of one sequence on each context-parallel rank: ``s / cp`` (``2*cp`` divides ``s``,
    ``rules.valid_cp``)."""
    return training.seq_len // config.cp


def edge_stages(pp: int) -> tuple[int, int]:
    """The pipeline stages that can be the most loaded: the first (embedding, and the most
    micro-batches in flight under 1F1B) and the last (LM head and its logits); one stage when pp = 1."""
    return (0, pp - 1)


def memory(
    model: ModelSpec, hardware: HardwareSpec, training: TrainingSpec, config: ParallelConfig
) -> MemoryBreakdown:
    """Memory of the most-loaded GPU: the heaviest of the first, second and last pipeline stage."""
    return max(
        (stage_memory(model, hardware, training, config, s) for s in sorted(set(loaded_stages(config)))),
        key=lambda m: m.total,
    )
