"""Step time of one configuration, term by term: compute operation by operation
(``planner/stepmodel.py``), communication in one named function per parallel dimension (from
``constraints/throughput.py`` at the rates of ``planner/rates.py``).

The slowest rank is the pipeline stage whose micro-batch takes longest (the last with an even
split: its layers plus the LM head); the step is ``m`` of its micro-batches plus the bubble, the
exposed TP and pipeline communication, the exposed data-parallel gradient communication and the
optimizer step. Terms are grouped by the dimensions
they depend on, so the solver can tabulate them (``planner.space.STATES_TABLE`` and
``ACTIVATIONS_TABLE``): ``pipeline_time`` depends on the layout (tp, cp, pp, vpp, ep, hence dp),
the recompute mode, activation offload and the micro-batch; ``data_parallel_time`` on the layout,
the ZeRO stage and optimizer offload. ``tests/planner/test_terms.py`` checks the tables against
this evaluator.
"""

from dataclasses import dataclass, replace

from constraints import flops as F
from constraints import memory as M
from constraints import moe_comm as MC
from constraints import params as P
from constraints import recompute as R
from constraints import throughput as T
from constraints.units import Dispatcher, Recompute, ZeroStage
from planner.calibration import StepTimeConstants
from planner.counts import attention_params
from planner.evaluate import (
    chunk_recompute_share,
    layer_activation_bytes,
    loaded_stages,
    num_microbatches,
    rank_seq_len,
    recomputed_layer_share,
    stage_layers,
    stage_params,
)
from planner.memo import by_fields_read
from planner.rates import Rates, rates_of
from planner.specs import HardwareSpec, ModelSpec, ParallelConfig, Precision, TrainingSpec
from planner.stepmodel import microbatch_compute_s

TP_COLLECTIVES_PER_LAYER = 4  # two all-reduces (or AG/RS pairs with SP) forward, two backward
TP_COLLECTIVES_PER_RECOMPUTE = 2  # the repeated forward of full recompute
TP_COLLECTIVES_PER_MLP_RECOMPUTE = 1  # an MLP or MoE module's repeated forward: its half of the layer's
ALL_GATHER_PER_COLLECTIVE = 0.5  # a collective above is an all-gather/reduce-scatter pair (one all-reduce)
EP_ALL_TO_ALL_PER_RECOMPUTE = 2  # dispatch and combine again in a recomputed MoE forward
RECOMPUTED_MLP_MODULES = frozenset({R.RecomputeModule.MLP, R.RecomputeModule.MOE})
P2P_PER_MICROBATCH = 2  # activation forward, its gradient backward (per model chunk)
EP_ALL_TO_ALL_PER_LAYER = 4  # dispatch and combine, forward and backward (Megatron-Core alltoall dispatcher)
ZERO3_WEIGHT_GATHERS = 2  # forward and backward (ZeRO Section 7.2.2); no gather after the step
CP_PASSES_PER_LAYER = 3  # ring passes of K/V: one forward; K/V again and their gradients backward
KV_TENSORS = 2  # a key and a value chunk travel together round the ring
OFFLOAD_TRIPS = 2  # offloaded activations go to the host in forward and come back in backward


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFlops:
    """FLOPs per token of the whole model."""

    model: float
    """Forward + backward (MFU basis)."""
    hardware: float
    """Plus recomputation (HFU basis)."""


def layer_matmul_params(model: ModelSpec, capacity_factor: float | None = None) -> float:
    """Weights of one layer that every token multiplies: attention (MLA's projections included) and,
    for MoE, the router, the ``k`` experts a token visits and the shared expert (active parameters;
    times the capacity factor when experts are padded to capacity); the dense layers of an MoE
    model are averaged in."""
    h = model.hidden_size
    if model.is_mla:  # its two small RMSNorms are counted too: under 0.01% of the projections
        attention = float(attention_params(model))
    else:  # weights only, as Narayanan et al. count FLOPs
        attention = P.attention_params(h, model.num_heads, model.num_kv_heads, model.head_dim, False, False)
    dense = P.mlp_params(h, model.ffn_hidden_size, model.gated_mlp, False)
    if not model.is_moe:
        return attention + dense
    capacity = capacity_factor or 1.0  # experts padded to capacity compute the padding too
    active = (
        capacity * model.num_experts_per_token * P.mlp_params(h, model.expert_ffn, model.gated_mlp, False)
        + P.router_params(h, model.num_experts)
        + P.shared_expert_params(h, model.shared_expert_ffn_hidden_size, model.gated_mlp, False)
    )
    moe_share = model.num_moe_layers / model.num_layers
    return attention + moe_share * active + (1 - moe_share) * dense


def _layer_flops(
    model: ModelSpec,
    seq_len: int,
    recompute: Recompute,
    capacity_factor: float | None = None,
    modules: tuple[R.RecomputeModule, ...] = (),
) -> tuple[float, float]:
    """(forward, recompute) FLOPs of one layer per token (with MoE padding when a capacity factor
    pads experts: executed, not model, FLOPs). Selective recompute repeats the attention scores of
    ``core_attn``, the MLP's (or MoE layer's) products of ``mlp`` / ``moe`` / ``shared_experts`` and
    MLA's up-projections of ``mla_up_proj``; norms and activation functions have no matrix FLOPs."""
    forward = F.layer_forward_flops_per_token(
        layer_matmul_params(model, capacity_factor), seq_len, model.q_dim
    )
    chosen = R.effective_modules(modules)
    repeated = F.attention_score_forward_flops_per_token(seq_len, model.q_dim) * (
        R.RecomputeModule.CORE_ATTN in chosen
    )
    h = model.hidden_size
    if model.is_moe:
        moe_share = model.num_moe_layers / model.num_layers
        routed = (capacity_factor or 1.0) * model.num_experts_per_token
        shared = P.mlp_params(h, model.shared_expert_ffn_hidden_size, model.gated_mlp, False)
        if R.RecomputeModule.MOE in chosen:
            expert = P.mlp_params(h, model.expert_ffn, model.gated_mlp, False)
            repeated += F.FLOPS_PER_MAC * moe_share * (routed * expert + shared)
        elif R.RecomputeModule.SHARED_EXPERTS in chosen:
            repeated += F.FLOPS_PER_MAC * moe_share * shared
    if model.is_mla and R.RecomputeModule.MLA_UP_PROJ in chosen:
        repeated += F.FLOPS_PER_MAC * P.mla_up_projection_params(h, model.num_heads, *model.mla_shape)
    if R.RecomputeModule.MLP in chosen and not (model.is_moe and model.num_dense_layers == 0):
        dense_share = 1 - model.num_moe_layers / model.num_layers if model.is_moe else 1.0
        repeated += (
            F.FLOPS_PER_MAC * dense_share * P.mlp_params(h, model.ffn_hidden_size, model.gated_mlp, False)
        )
    return forward, F.recompute_flops_per_token(forward, repeated, recompute)


def step_flops_per_token(
    model: ModelSpec,
    seq_len: int,
    recompute: Recompute,
    recomputed_share: float = 1.0,
    modules: tuple[R.RecomputeModule, ...] = (),
) -> StepFlops:
    """Model and hardware FLOPs per token of a training step; ``recomputed_share`` of the layers
    rerun their forward under full recompute (the block method), ``modules`` are those selective
    recompute reruns."""
    forward, extra = _layer_flops(model, seq_len, recompute, modules=modules)
    if recompute is Recompute.FULL:
        extra *= recomputed_share
    head = F.head_forward_flops_per_token(model.hidden_size, model.vocab_size)
    useful = F.training_flops_per_token(model.num_layers * forward + head)
    return StepFlops(model=useful, hardware=useful + model.num_layers * extra)


def model_recomputed_share(model: ModelSpec, config: ParallelConfig) -> float:
    """Share of all the model's layers whose forward full recompute repeats (1 without the block
    method): each stage's ``evaluate.recomputed_layer_share`` weighted by its layers."""
    counts = stage_layers(model, config)
    return sum(n * recomputed_layer_share(model, config, st) for st, n in enumerate(counts)) / sum(counts)


def _recomputed_collectives(
    model: ModelSpec, config: ParallelConfig, num_layers: float
) -> tuple[float, float]:
    """(TP collectives, all-to-alls) one layer of a stage of ``num_layers`` layers repeats in its
    recomputed forward, on average: full recompute the layer's two TP collectives and the MoE
    dispatch and combine (on the block method's share of each chunk); selective recompute of an MLP
    or MoE module that module's (Megatron-Core reruns the checkpointed module's forward,
    communication included), and of ``mla_up_proj`` under sequence parallelism the all-gathers of
    the up-projections' inputs (half a collective each, as wide as the query rank and the
    key/value rank against the hidden size)."""
    if config.recompute is Recompute.NONE:
        return 0.0, 0.0
    if config.recompute is Recompute.FULL:
        share = chunk_recompute_share(config, num_layers / config.vpp)
        return TP_COLLECTIVES_PER_RECOMPUTE * share, EP_ALL_TO_ALL_PER_RECOMPUTE * share
    chosen = R.effective_modules(config.recompute_modules)  # selective
    mlp = any(m in RECOMPUTED_MLP_MODULES for m in chosen)
    moe = R.RecomputeModule.MOE in chosen
    collectives = TP_COLLECTIVES_PER_MLP_RECOMPUTE * mlp
    if model.is_mla and config.sequence_parallel and R.RecomputeModule.MLA_UP_PROJ in chosen:
        q_lora, kv_lora = model.mla_shape[:2]
        collectives += (
            ALL_GATHER_PER_COLLECTIVE * ((q_lora or model.hidden_size) + kv_lora) / model.hidden_size
        )
    return collectives, EP_ALL_TO_ALL_PER_RECOMPUTE * moe


def tensor_parallel_comm_s(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, rates: Rates, num_layers: float
) -> float:
    """Exposed TP collectives of one micro-batch over ``num_layers`` layers: two all-reduces (or
    all-gather/reduce-scatter pairs with sequence parallelism, the same bytes) forward, two backward,
    more for what recompute repeats (``_recomputed_collectives``; ``tp_hidden_share`` of them
    hidden behind the GEMMs)."""
    t = config.tp
    message = rank_seq_len(training, config) * config.micro_batch_size * model.hidden_size
    message *= training.precision.activation_bytes
    collectives = TP_COLLECTIVES_PER_LAYER + _recomputed_collectives(model, config, num_layers)[0]
    return num_layers * collectives * rates.all_reduce_s(message, t, t)


def expert_parallel_comm_s(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, rates: Rates, num_layers: float
) -> float:
    """Token dispatch and combine of one micro-batch, forward and backward (twice more where
    recompute repeats the MoE forward: ``_recomputed_collectives``), over ``num_layers`` layers:
    ``expert_dispatch_s`` for each pass of each MoE layer."""
    if not model.is_moe or config.expert_dispatch_ranks == 1:
        return 0.0
    passes = EP_ALL_TO_ALL_PER_LAYER + _recomputed_collectives(model, config, num_layers)[1]
    moe_layers = num_layers * model.num_moe_layers / model.num_layers
    return moe_layers * passes * expert_dispatch_s(model, training, config, rates)


@by_fields_read(2)  # the same dispatch for many rows of the tables (planner.memo)
def expert_dispatch_s(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, rates: Rates
) -> float:
    """One dispatch (or combine) of one micro-batch's tokens in one MoE layer, over the
    ``etp * ep`` consecutive ranks of a dispatch group; each TP rank sends its ``1/t`` of the
    tokens. The all-to-all dispatcher sends ``k`` copies of each over the ``ep`` ranks and, with
    ``etp > 1``, all-gathers them over the expert's ``etp`` ranks (reduce-scatter after); the flex
    (DeepEP) dispatcher sends each token once per rank and once per other NVLink domain that holds
    one of its experts (``constraints/moe_comm.py``)."""
    s, b, k = rank_seq_len(training, config), config.micro_batch_size, model.num_experts_per_token
    tokens = s * b / config.tp * model.hidden_size * training.precision.activation_bytes
    span, domain = config.expert_dispatch_ranks, rates.hardware.nvlink_domain_gpus
    if config.dispatcher is Dispatcher.FLEX:
        return MC.hierarchical_dispatch_s(
            tokens,
            k,
            model.num_experts,
            config.ep,
            config.etp,
            domain,
            rates.bus_bandwidth("all_to_all", min(span, domain), tokens),
            rates.bus_bandwidth("all_to_all", span, tokens),
            model.moe_router_groups,
            model.moe_router_group_topk,
        )
    one = rates.all_to_all_s(tokens * k, config.ep, span)
    if config.etp > 1:
        one += rates.all_gather_s(MC.expert_tp_gather_bytes(tokens, k, config.etp), config.etp, config.etp)
    return one


def context_parallel_comm_s(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, rates: Rates, num_layers: float
) -> float:
    """Ring attention of one micro-batch: each rank's K and V chunk goes round ``cp - 1`` hops
    forward, K, V and their gradients backward; ``cp_overlap`` hidden behind the attention of the
    previous chunk (Megatron/Transformer Engine)."""
    cp = config.cp
    if cp == 1:
        return 0.0
    s, b, t = rank_seq_len(training, config), config.micro_batch_size, config.tp
    kv_chunk = KV_TENSORS * s * b * model.kv_dim / t * training.precision.activation_bytes
    hops = CP_PASSES_PER_LAYER * (cp - 1) * num_layers
    return hops * rates.send_s(kv_chunk, t * cp) * (1 - rates.c.cp_overlap)


def pipeline_comm_s(model: ModelSpec, training: TrainingSpec, config: ParallelConfig, rates: Rates) -> float:
    """Point-to-point sends between stages over the whole step: each micro-batch's activation
    forward and its gradient backward, per model chunk (``vpp``); sequence-parallel ranks send
    their ``1/t`` shard."""
    if config.pp == 1:
        return 0.0
    t = config.tp
    message = rank_seq_len(training, config) * config.micro_batch_size * model.hidden_size
    message *= training.precision.activation_bytes / (t if config.sequence_parallel else 1)
    m = num_microbatches(training, config)
    return P2P_PER_MICROBATCH * config.vpp * m * rates.send_s(message, t * config.cp * config.pp)


def pipeline_time(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants | None = None,
) -> dict[str, float]:
    """Seconds of compute, bubble, TP, context-parallel and pipeline communication per step on the
    slowest stage, operation by operation (``planner/stepmodel.py``): of the first (its layers), the
    second (a middle one) and the last (its layers and the LM head), the one whose micro-batch takes
    longest sets the pace of 1F1B and its bubble (the last, with an even split).
    With context parallelism each rank runs ``s/cp`` tokens of each sequence against keys that span
    the whole sequence. ``c`` defaults to the GPU's own constants (``hardware.step_constants``)."""
    c = c or hardware.step_constants
    rates = rates_of(hardware, c)
    m = num_microbatches(training, config)
    tp_hidden, ep_hidden = _hidden_shares(training, config, c)
    slowest = max(
        _stage_terms(model, hardware, training, config, c, rates),
        key=lambda terms: _paced(terms, tp_hidden, ep_hidden),
    )
    microbatch, tp, cp = slowest["compute"], slowest["tp"], slowest["cp"]
    return {
        "compute": m * microbatch,
        "bubble": T.pipeline_bubble_fraction(config.pp, m, config.vpp) * m * (microbatch + tp + cp),
        "tp_comm": m * tp * (1 - tp_hidden),
        "cp_comm": m * cp,
        "ep_comm": m * slowest["ep"] * (1 - ep_hidden),
        "pp_comm": pipeline_comm_s(model, training, config, rates),
        "offload": m * slowest["offload"],
    }


def pipeline_time_floor(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants | None = None,
) -> float:
    """A lower bound, in seconds, of ``sum(pipeline_time(...).values())`` for ``config``'s layout
    and micro-batch under every recompute choice and with or without activation offload
    (``config`` itself is taken without either): what the search may skip a layout by
    (``planner.space.compile_terms(top=...)``).

    Why it bounds: recompute and offload only add to each stage's terms (the repeated forward's
    compute and collectives, the exposed copy; recompute also stops Megatron overlapping the MoE
    dispatch, ``moe_ep_overlap_runs``), and change neither the micro-batch count, the bubble
    fraction nor the point-to-point sends. ``pipeline_time`` is ``m`` times the pace of its
    slowest stage (``_paced``, the largest of the stages'), plus the bubble fraction times ``m``
    times that stage's compute, TP and context-parallel time (at least the smallest stage's), plus
    the sends; each is at least its value here, taken without recompute or offload, when a stage's
    terms are those of its layers plus, on the last, the LM head's, as ``_stage_microbatch`` sums
    them without recompute or offload. ``tests/planner/test_bound.py`` checks the floor against
    every row of whole tables, and that it equals the step's pipeline time on one stage without
    recompute."""
    c = c or hardware.step_constants
    plain = _without_recompute(config)
    rates = rates_of(hardware, c)
    m = num_microbatches(training, plain)
    tp_hidden, ep_hidden = _hidden_shares(training, plain, c)
    # Without recompute or offload each stage's terms are its layers times one layer's plus, on the
    # last, the LM head's (``_stage_microbatch``): both cached on the fields they read, which many
    # layouts share (they differ in pp, vpp and the split, hence in their stages' layer counts).
    layer = _stage_part(model, hardware, training, plain, c, rates, False)
    head = _stage_part(model, hardware, training, plain, c, rates, True)
    stages = [
        {k: n * v + (head[k] if last else 0.0) for k, v in layer.items()}
        for n, last in _stage_shapes(model, plain)
    ]
    pace = max(_paced(terms, tp_hidden, ep_hidden) for terms in stages)
    least = min(terms["compute"] + terms["tp"] + terms["cp"] for terms in stages)
    bubble = T.pipeline_bubble_fraction(plain.pp, m, plain.vpp) * m * least
    return m * pace + bubble + pipeline_comm_s(model, training, plain, rates)


@by_fields_read(3)  # the same layer and head for the floors of many layouts (planner.memo)
def _stage_part(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants,
    rates: Rates,
    head: bool,
) -> dict[str, float]:
    """``_stage_microbatch`` of one layer on a stage without the LM head, or with ``head`` of the
    LM head alone (no layer) on the last stage."""
    return _stage_microbatch(model, hardware, training, config, c, rates, 0 if head else 1, head)


def _without_recompute(config: ParallelConfig) -> ParallelConfig:
    """``config`` without recompute and activation offload (itself when it has neither)."""
    if config.recompute is Recompute.NONE and not config.activation_offload:
        return config
    return replace(
        config,
        recompute=Recompute.NONE,
        recompute_num_layers=0,
        recompute_modules=(),
        activation_offload=False,
    )


def _hidden_shares(
    training: TrainingSpec, config: ParallelConfig, c: StepTimeConstants
) -> tuple[float, float]:
    """(TP, expert-parallel) shares of communication hidden behind computation."""
    ep_hidden = c.ep_overlap if moe_ep_overlap_runs(training, config) else 0.0
    return tp_hidden_share(training, config, c), ep_hidden


def _paced(terms: dict[str, float], tp_hidden: float, ep_hidden: float) -> float:
    """What one micro-batch of a stage takes with its hidden communication left out: the stage
    whose micro-batch takes longest sets the pace of 1F1B."""
    return sum(terms.values()) - terms["tp"] * tp_hidden - terms["ep"] * ep_hidden


def _stage_terms(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants,
    rates: Rates,
) -> list[dict[str, float]]:
    """``_stage_microbatch`` of each stage that can be the slowest (``_stage_shapes``)."""
    return [
        _stage_microbatch(model, hardware, training, config, c, rates, n, last)
        for n, last in _stage_shapes(model, config)
    ]


def _stage_shapes(model: ModelSpec, config: ParallelConfig) -> list[tuple[int, bool]]:
    """(layers, whether the last) of each stage that can be the slowest (``evaluate.loaded_stages``),
    first to last; stages of as many layers, neither the last, take as long: each is listed once."""
    counts = stage_layers(model, config)
    return list({(counts[st], st == config.pp - 1): None for st in sorted(set(loaded_stages(config)))})


def _stage_microbatch(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants,
    rates: Rates,
    layers: int,
    last_stage: bool,
) -> dict[str, float]:
    """Seconds of one micro-batch on a stage of ``layers`` layers (the LM head on the last):
    compute, TP, expert-parallel and context-parallel communication, exposed offload."""
    microbatch = sum(microbatch_compute_s(model, hardware, training, config, c, layers, last_stage).values())
    offload = 0.0
    if config.activation_offload:  # activations out in forward, back in backward, hidden behind compute
        stored = layers * layer_activation_bytes(model, training, config, config.recompute)
        copy = OFFLOAD_TRIPS * T.host_transfer_s(stored, hardware.pcie_bandwidth_bytes_per_s)
        offload = max(0.0, copy - microbatch)
    return {
        "compute": microbatch,
        "tp": tensor_parallel_comm_s(model, training, config, rates, layers),
        "ep": expert_parallel_comm_s(model, training, config, rates, layers),
        "cp": context_parallel_comm_s(model, training, config, rates, layers),
        "offload": offload,
    }


def data_parallel_comm_parts_s(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, rates: Rates
) -> tuple[float, float]:
    """(gradient, parameter) communication of one step over the data-parallel groups: non-expert
    parameters over ``dp*cp``, routed experts over their expert-data-parallel group. ZeRO-0
    all-reduces gradients; ZeRO-1/2 (Megatron's distributed optimizer) reduce-scatter them and
    all-gather the updated weights; ZeRO-3 keeps weights sharded and gathers them for the forward
    and again for the backward, nothing after the step: 3x the parameter volume against the
    all-reduce's 2x (Rajbhandari et al. 2020, ZeRO, Section 7.2.2)."""
    held = max(
        (stage_params(model, training, config, st) for st in set(loaded_stages(config))),
        key=lambda x: x.params,
    )
    prec, zero = training.precision, config.zero_stage
    w = M.gathered_weight_bytes_per_param(prec, training.fp8_param_gather)
    g = M.grad_bytes_per_param(prec, training.framework, training.grad_reduce_in_bf16)
    span, grads, weights = config.num_gpus, 0.0, 0.0
    for params, dp in (
        (held.params - held.expert_params, config.shard_group),
        (held.expert_params, config.expert_shard_group),
    ):
        if zero is ZeroStage.NONE:
            grads += rates.all_reduce_s(params * g, dp, span)
        else:
            gathers = ZERO3_WEIGHT_GATHERS if zero is ZeroStage.WEIGHTS else 1
            grads += rates.all_gather_s(params * g, dp, span)
            weights += gathers * rates.all_gather_s(params * w, dp, span)
    return grads, weights


def data_parallel_comm_s(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, rates: Rates
) -> float:
    """Gradient and parameter communication of one step (``data_parallel_comm_parts_s``)."""
    return sum(data_parallel_comm_parts_s(model, training, config, rates))


def moe_ep_overlap_runs(training: TrainingSpec, config: ParallelConfig) -> bool:
    """Megatron overlaps the MoE dispatch with another micro-batch's computation
    (``--overlap-moe-expert-parallel-comm``) when asked and the layout allows it: expert parallelism,
    interleaved stages when pipelined, no full recompute (nor its block method), no ``moe`` among
    the recomputed modules, 16-bit training (Megatron-Core ``TransformerConfig.__post_init__`` at
    d98e8a64)."""
    return (
        training.overlap_moe_expert_parallel_comm
        and config.ep > 1
        and (config.pp == 1 or config.vpp > 1)
        and config.recompute is not Recompute.FULL
        and R.RecomputeModule.MOE not in config.recompute_modules
        and training.precision is not Precision.FP32
    )


def tp_hidden_share(training: TrainingSpec, config: ParallelConfig, c: StepTimeConstants) -> float:
    """Share of TP collectives hidden behind GEMMs: ``tp_overlap`` with Transformer Engine's
    userbuffer overlap (``TrainingSpec.tp_comm_overlap``, which Megatron runs only with sequence
    parallelism), none without it."""
    return c.tp_overlap if training.tp_comm_overlap and config.sequence_parallel else 0.0


def data_parallel_time(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants | None = None,
) -> dict[str, float]:
    """Seconds of exposed data-parallel communication and of the optimizer step.

    Communication hides behind compute: ``dp_overlap`` of it while it is shorter than the step's
    compute, all of the compute's length when it is longer (Megatron's overlapped gradient
    reduce-scatter and parameter all-gather, FSDP's prefetch). The compute window is taken without
    recompute at one sequence per micro-batch, so the term depends only on the layout and ZeRO stage,
    as the solver's table requires."""
    c = c or hardware.step_constants
    rates = rates_of(hardware, c)
    grads, weights = data_parallel_comm_parts_s(model, training, config, rates)
    # What the framework overlaps (TrainingSpec.overlap_*) hides behind compute; the rest is exposed.
    hidden = grads * training.overlap_grad_reduce + weights * training.overlap_param_gather
    plain = replace(
        config, micro_batch_size=1, recompute=Recompute.NONE, recompute_num_layers=0, recompute_modules=()
    )
    per_sequence = microbatch_compute_s(model, hardware, training, plain, c, model.num_layers / config.pp)
    window = training.global_batch_size / config.dp * sum(per_sequence.values())
    exposed = max(hidden * (1 - c.dp_overlap), hidden - window) + (grads + weights - hidden)
    held = max(
        (stage_params(model, training, config, st) for st in set(loaded_stages(config))),
        key=lambda x: x.params,
    )
    prec, fw, zero = training.precision, training.framework, config.zero_stage
    w = M.gathered_weight_bytes_per_param(prec, training.fp8_param_gather)
    g = M.grad_bytes_per_param(prec, fw, training.grad_reduce_in_bf16)
    updated, host = 0.0, 0.0
    for params, dp in (
        (held.params - held.expert_params, config.shard_group),
        (held.expert_params, config.expert_shard_group),
    ):
        shard = params / dp if zero >= ZeroStage.OPTIMIZER else params
        updated += shard
        if config.optimizer_offload:  # gradients down, updated weights up, Adam on the CPU
            host += T.host_transfer_s(shard * (g + w), hardware.pcie_bandwidth_bytes_per_s)
    if config.optimizer_offload:
        return {"dp_comm": exposed, "optimizer": host + T.cpu_adam_s(updated, c.cpu_adam_params_per_s)}
    opt_bytes = M.optimizer_bytes_per_param(prec)
    step = rates.memory_s(updated * T.adam_step_bytes_per_param(opt_bytes, g, w))
    return {"dp_comm": exposed, "optimizer": step}


@dataclass(frozen=True, slots=True, kw_only=True)
class Performance:
    """Step time and throughput of one configuration."""

    step_time_s: float
    """Seconds per optimizer step."""
    tokens_per_s: float
    """Tokens per second over the whole cluster."""
    tflops_per_gpu: float
    """Model TFLOP/s per GPU (no recompute)."""
    mfu: float
    """Model FLOPs utilization: model FLOP/s over peak."""
    hfu: float
    """Hardware FLOPs utilization: recompute counted."""
    breakdown: dict[str, float]
    """Seconds per term: compute, bubble, tp_comm, cp_comm, ep_comm, pp_comm, offload, dp_comm,
    optimizer."""


def performance(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants | None = None,
) -> Performance:
    """Step time of ``config`` and the throughput figures derived from it; ``c`` defaults to the
    GPU's own constants."""
    terms = pipeline_time(model, hardware, training, config, c) | data_parallel_time(
        model, hardware, training, config, c
    )
    step = sum(terms.values())
    tokens = training.global_batch_size * training.seq_len
    work = step_flops_per_token(
        model,
        training.seq_len,
        config.recompute,
        model_recomputed_share(model, config),
        config.recompute_modules,
    )
    per_gpu = tokens / step / config.num_gpus
    return Performance(
        step_time_s=step,
        tokens_per_s=tokens / step,
        tflops_per_gpu=work.model * per_gpu / 1e12,
        mfu=work.model * per_gpu / hardware.peak_flops,
        hfu=work.hardware * per_gpu / hardware.peak_flops,
        breakdown=terms,
    )
