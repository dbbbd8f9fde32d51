"""The per-operation compute model: one micro-batch on one rank, operation by operation.

Each layer's operations (QKV and output projections, the attention core, the MLP or the router and
the experts' grouped GEMMs, the shared expert, norms and elementwise work) and the last stage's LM
head and cross-entropy are timed with ``constraints/kernel_times.py`` from the GPU's rates
(``planner/rates.py``: a measured profile's tables where the hardware file has them, else the
datasheet peaks times the calibrated efficiencies). FP8 training runs the linear layers' GEMMs at the
FP8 rate and pays Transformer Engine's casts; the attention core, router and LM head stay in bf16.
Communication is not here: ``planner/performance.py`` adds it term by term.

Legend: ``T`` tokens of one micro-batch on this rank (``b*s/cp``), ``h`` hidden, ``t`` tensor
parallel, ``E`` experts, ``k`` experts per token.
"""

from dataclasses import dataclass

from constraints import kernel_times as K
from constraints import recompute as R
from constraints.flops import BACKWARD_TO_FORWARD
from constraints.kernels import ATTENTION_BACKWARD_TO_FORWARD, attention_forward_flops
from constraints.units import Recompute
from planner.calibration import StepTimeConstants
from planner.counts import attention_params
from planner.evaluate import chunk_recompute_share, separate_norms
from planner.memo import by_fields_read
from planner.rates import Rates, rates_of
from planner.specs import HardwareSpec, ModelSpec, ParallelConfig, Precision, TrainingSpec

FORWARD_PASSES, BACKWARD_PASSES = 1, 2  # memory-bound work: backward reads and writes about twice


@dataclass(frozen=True, slots=True, kw_only=True)
class OpTime:
    """Seconds of one operation for one micro-batch on one rank."""

    forward_s: float
    """Forward pass."""
    backward_s: float
    """Backward pass (gradients with respect to inputs and weights)."""


def _linear(rates: Rates, m: float, n: float, k: float, fp8: bool) -> OpTime:
    """A linear layer ``[m,k] x [k,n]``: forward, and backward's two products (input and weight
    gradients) of the same size; under FP8 its input and output gradient are cast first."""
    forward = rates.gemm_s(m, n, k, fp8)
    backward = BACKWARD_TO_FORWARD * forward
    if fp8:
        forward += rates.memory_s(K.fp8_cast_bytes(m * k))
        backward += rates.memory_s(K.fp8_cast_bytes(m * n))
    return OpTime(forward_s=forward, backward_s=backward)


def _sum(*ops: OpTime, scale: float = 1.0) -> OpTime:
    return OpTime(
        forward_s=scale * sum(o.forward_s for o in ops), backward_s=scale * sum(o.backward_s for o in ops)
    )


def _attention_core(rates: Rates, model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> OpTime:
    """Scores and their weighted sum for this rank's heads: fused (FlashAttention: causal, compute
    bound) or unfused (two batched products plus a memory-bound softmax over the score matrix)."""
    b, s, t, cp = config.micro_batch_size, training.seq_len, config.tp, config.cp
    heads = model.num_heads / t
    if model.is_mla:  # scores over nope+rope dims, values over v_head_dim
        _, _, nope, rope, v_dim = model.mla_shape
        width = (nope + rope + v_dim) / 2
    else:
        width = model.head_dim
    if training.flash_attention:  # each CP rank: s/cp queries against the whole (load-balanced) sequence
        flops = attention_forward_flops(b, heads, s / cp, s, width, causal=True)
        forward = rates.attention_s(flops, s)
        return OpTime(forward_s=forward, backward_s=ATTENTION_BACKWARD_TO_FORWARD * forward)
    batch = b * heads
    products = 2 * batch * rates.gemm_s(s, s, width, False)  # Q K^T and P V, every score computed
    softmax = rates.memory_s(K.unfused_softmax_bytes(b, heads, s, s))
    forward = products + softmax
    return OpTime(forward_s=forward, backward_s=BACKWARD_TO_FORWARD * forward)


def _mlp(rates: Rates, h: float, ffn: float, gated: bool, tokens: float, t: float, fp8: bool) -> OpTime:
    """A dense MLP split over ``t`` ranks: up (and gate) projection, down projection."""
    up = ffn * (2 if gated else 1)
    return _sum(_linear(rates, tokens, up / t, h, fp8), _linear(rates, tokens, h, ffn / t, fp8))


def _experts(
    rates: Rates,
    model: ModelSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants,
    tokens: float,
    fp8: bool,
) -> OpTime:
    """The router and this rank's ``E/ep`` experts as grouped GEMMs, each expert's width split
    over ``etp`` ranks. Each of the ``ep*etp`` ranks of a dispatch group sends its ``T/t``
    (sequence-parallel) tokens, ``k`` copies each, so an expert shard sees ``ep*etp*T*k/(t*E)``
    tokens (times the capacity factor when padded): few tokens per expert make the products narrow
    and memory-bound on the expert weights. ``K.moe_fixed_overhead_s`` adds what the GEMMs do not
    account for, per layer and per local expert, a third of it forward."""
    h, t, ep, etp = model.hidden_size, config.tp, config.ep, config.etp
    local = tokens / t
    router = _linear(rates, local, model.num_experts, h, False)
    capacity = training.moe_capacity_factor or 1.0
    per_expert = ep * etp * local * model.num_experts_per_token * capacity / model.num_experts
    expert = _mlp(rates, h, model.expert_ffn, model.gated_mlp, per_expert, etp, fp8)
    grouped = _sum(expert, scale=model.num_experts / ep)
    overhead = K.moe_fixed_overhead_s(model.num_experts / ep, c.moe_layer_overhead_s, c.moe_expert_overhead_s)
    ops = [router, grouped, OpTime(forward_s=overhead / 3, backward_s=2 * overhead / 3)]
    if model.shared_expert_ffn_hidden_size:
        ops.append(_mlp(rates, h, model.shared_expert_ffn_hidden_size, model.gated_mlp, tokens, t, fp8))
    return _sum(*ops)


@by_fields_read(3)  # the same layer for many rows of the tables (planner.memo)
def layer_operations(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants,
) -> dict[str, OpTime]:
    """Seconds of each operation of one layer for one micro-batch on one rank. An MoE model's dense
    layers (DeepSeek-V3's first three) are averaged in."""
    rates = rates_of(hardware, c)
    h, t = model.hidden_size, config.tp
    tokens = config.micro_batch_size * training.seq_len / config.cp
    fp8 = training.precision is Precision.FP8
    out_width = model.num_heads * (model.mla_shape[4] if model.is_mla else model.head_dim)
    qkv_width = (attention_params(model) - out_width * h) / h
    ops = {
        "qkv_projection": _linear(rates, tokens, qkv_width / t, h, fp8),
        "attention_core": _attention_core(rates, model, training, config),
        "output_projection": _linear(rates, tokens, h, out_width / t, fp8),
    }
    dense = _mlp(rates, h, model.ffn_hidden_size, model.gated_mlp, tokens, t, fp8)
    if model.is_moe:
        share = model.num_moe_layers / model.num_layers
        ops["mlp"] = _sum(
            _sum(_experts(rates, model, training, config, c, tokens, fp8), scale=share),
            _sum(dense, scale=1 - share),
        )
    else:
        ops["mlp"] = dense
    elementwise = rates.memory_s(K.elementwise_bytes(tokens, h / t, 1, c.elementwise_bytes_per_width))
    ops["elementwise"] = OpTime(
        forward_s=FORWARD_PASSES * elementwise, backward_s=BACKWARD_PASSES * elementwise
    )
    return ops


@by_fields_read(3)  # the same layer for many rows of the tables (planner.memo)
def head_operations(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants,
) -> dict[str, OpTime]:
    """The last stage's LM head (bf16: Transformer Engine leaves it out of FP8) and the
    vocabulary-parallel cross-entropy, for one micro-batch on one rank."""
    rates = rates_of(hardware, c)
    tokens = config.micro_batch_size * training.seq_len / config.cp
    vocab = model.vocab_size / config.tp
    loss = rates.memory_s(K.cross_entropy_bytes(tokens, vocab))
    return {
        "lm_head": _linear(rates, tokens, vocab, model.hidden_size, False),
        "cross_entropy": OpTime(forward_s=loss / 2, backward_s=loss / 2),
    }


@by_fields_read(3)  # the same layer for many rows of the tables (planner.memo)
def selective_recompute_s(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants,
) -> float:
    """Forward seconds one layer repeats for one micro-batch under selective recompute of
    ``config.recompute_modules`` (``constraints.recompute``): the attention core, the separate
    norms and the experts' activation function (memory-bound reruns), the dense MLP, the whole MoE
    layer or its shared experts (only those of the modules named are computed). An MoE model's
    dense layers are averaged in, as in ``layer_operations``."""
    chosen = R.effective_modules(config.recompute_modules)
    rates = rates_of(hardware, c)
    h, t, e = model.hidden_size, config.tp, training.precision.activation_bytes
    tokens = config.micro_batch_size * training.seq_len / config.cp
    fp8 = training.precision is Precision.FP8
    moe_share = model.num_moe_layers / model.num_layers if model.is_moe else 0.0
    seconds = dict.fromkeys(R.RecomputeModule, 0.0)
    if R.RecomputeModule.CORE_ATTN in chosen:
        seconds[R.RecomputeModule.CORE_ATTN] = _attention_core(rates, model, training, config).forward_s
    if R.RecomputeModule.LAYERNORM in chosen:
        norm_tokens = tokens / (t if config.sequence_parallel else 1)
        norm = rates.memory_s(K.rerun_forward_bytes(norm_tokens * h, norm_tokens * h, e))
        seconds[R.RecomputeModule.LAYERNORM] = separate_norms(model) * norm
    if R.RecomputeModule.MLP in chosen:
        dense = _mlp(rates, h, model.ffn_hidden_size, model.gated_mlp, tokens, t, fp8).forward_s
        seconds[R.RecomputeModule.MLP] = (1 - moe_share) * dense
    if model.is_moe and R.RecomputeModule.MOE_ACT in chosen:
        width = (
            tokens
            / t
            * model.num_experts_per_token
            * (training.moe_capacity_factor or 1.0)
            * model.expert_ffn
        )
        activation = rates.memory_s(K.rerun_forward_bytes(width * (2 if model.gated_mlp else 1), width, e))
        seconds[R.RecomputeModule.MOE_ACT] = moe_share * activation
    if model.is_moe and R.RecomputeModule.MOE in chosen:
        experts = _experts(rates, model, training, config, c, tokens, fp8).forward_s
        seconds[R.RecomputeModule.MOE] = moe_share * experts
    if model.is_mla and R.RecomputeModule.MLA_UP_PROJ in chosen:
        seconds[R.RecomputeModule.MLA_UP_PROJ] = _mla_up_projection(rates, model, tokens, t, e, fp8)
    if model.shared_expert_ffn_hidden_size and R.RecomputeModule.SHARED_EXPERTS in chosen:
        shared = _mlp(rates, h, model.shared_expert_ffn_hidden_size, model.gated_mlp, tokens, t, fp8)
        seconds[R.RecomputeModule.SHARED_EXPERTS] = moe_share * shared.forward_s
    return R.modules_recompute_forward_s(
        chosen,
        attention_core_s=seconds[R.RecomputeModule.CORE_ATTN],
        norms_s=seconds[R.RecomputeModule.LAYERNORM],
        dense_mlp_s=seconds[R.RecomputeModule.MLP],
        expert_activation_s=seconds[R.RecomputeModule.MOE_ACT],
        moe_s=seconds[R.RecomputeModule.MOE],
        shared_experts_s=seconds[R.RecomputeModule.SHARED_EXPERTS],
        mla_up_projection_s=seconds[R.RecomputeModule.MLA_UP_PROJ],
    )


def _mla_up_projection(rates: Rates, model: ModelSpec, tokens: float, t: int, e: int, fp8: bool) -> float:
    """Forward seconds of what ``mla_up_proj`` reruns on this rank's heads: the query
    up-projection (from the query rank, or from the hidden state without one), the key/value
    up-projection, and the RoPE application with the concatenations that write the query, key
    and value (memory-bound: the projections' outputs read, the ``mla_qkv_width`` tensors written;
    ``MLASelfAttention.qkv_up_proj_and_rope_apply``)."""
    q_lora, kv_lora, nope, rope, v = model.mla_shape
    a = model.num_heads
    query = _linear(rates, tokens, a * (nope + rope) / t, q_lora or model.hidden_size, fp8)
    key_value = _linear(rates, tokens, a * (nope + v) / t, kv_lora, fp8)
    produced = tokens * (a * (2 * nope + rope + v) / t + rope)  # the two projections' outputs, k_pos_emb
    written = tokens * R.mla_qkv_width(a, nope, rope, v) / t
    return query.forward_s + key_value.forward_s + rates.memory_s(K.rerun_forward_bytes(produced, written, e))


def microbatch_compute_s(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants,
    num_layers: float,
    last_stage: bool = True,
) -> dict[str, float]:
    """Seconds of forward, backward and recomputation of one micro-batch over ``num_layers``
    layers of one rank, with the head on the last stage. Full recompute repeats the forward of
    every layer, or of the first ``recompute_num_layers`` of each of the ``vpp`` model chunks (the
    block method); selective recompute that of its modules (Korthikanti et al. 2022, Section 5)."""
    layer = layer_operations(model, hardware, training, config, c)
    head = head_operations(model, hardware, training, config, c) if last_stage else {}
    forward = num_layers * sum(o.forward_s for o in layer.values())
    backward = num_layers * sum(o.backward_s for o in layer.values())
    if config.recompute is Recompute.FULL:
        recompute = chunk_recompute_share(config, num_layers / config.vpp) * forward
    elif config.recompute is Recompute.SELECTIVE:
        recompute = num_layers * selective_recompute_s(model, hardware, training, config, c)
    else:
        recompute = 0.0
    return {
        "forward": forward + sum(o.forward_s for o in head.values()),
        "backward": backward + sum(o.backward_s for o in head.values()),
        "recompute": recompute,
    }
