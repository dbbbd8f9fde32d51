"""Step time of one configuration, term by term, from ``constraints/flops.py`` and
``constraints/throughput.py``.

The slowest rank is the last pipeline stage (its layers plus the LM head); the step is ``m`` of
its micro-batches plus the bubble, the exposed TP and pipeline communication, the exposed
data-parallel gradient communication and the optimizer step. Terms are grouped by the dimensions
they depend on, so the solver can tabulate them: ``pipeline_time`` depends on (tp, pp, dp,
recompute, micro-batch), ``data_parallel_time`` on (tp, pp, dp, ZeRO stage).
"""

from dataclasses import dataclass

from constraints import flops as F
from constraints import memory as M
from constraints import params as P
from constraints import throughput as T
from constraints.units import Recompute, ZeroStage
from planner.calibration import DEFAULT_CONSTANTS, StepTimeConstants
from planner.counts import attention_params
from planner.evaluate import layer_activation_bytes, num_microbatches, stage_params
from planner.specs import HardwareSpec, ModelSpec, ParallelConfig, Precision, TrainingSpec

TP_COLLECTIVES_PER_LAYER = 4  # two all-reduces (or AG/RS pairs with SP) forward, two backward
TP_COLLECTIVES_PER_RECOMPUTE = 2  # the repeated forward of full recompute
P2P_PER_MICROBATCH = 2  # activation forward, its gradient backward (per model chunk)
FLOPS_PER_MAC_TRAINING = 2 * (1 + F.BACKWARD_TO_FORWARD)  # forward and backward of a weight
EP_ALL_TO_ALL_PER_LAYER = 4  # dispatch and combine, forward and backward (Megatron-Core alltoall dispatcher)
CP_PASSES_PER_LAYER = 3  # ring passes of K/V: one forward; K/V again and their gradients backward


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
    model: ModelSpec, seq_len: int, recompute: Recompute, capacity_factor: float | None = None
) -> tuple[float, float]:
    """(forward, recompute) FLOPs of one layer per token (with MoE padding when a capacity factor
    pads experts: executed, not model, FLOPs)."""
    forward = F.layer_forward_flops_per_token(
        layer_matmul_params(model, capacity_factor), seq_len, model.q_dim
    )
    score = F.attention_score_forward_flops_per_token(seq_len, model.q_dim)
    return forward, F.recompute_flops_per_token(forward, score, recompute)


def step_flops_per_token(model: ModelSpec, seq_len: int, recompute: Recompute) -> StepFlops:
    """Model and hardware FLOPs per token of a training step."""
    forward, extra = _layer_flops(model, seq_len, recompute)
    head = F.head_forward_flops_per_token(model.hidden_size, model.vocab_size)
    useful = F.training_flops_per_token(model.num_layers * forward + head)
    return StepFlops(model=useful, hardware=useful + model.num_layers * extra)


def _link(hardware: HardwareSpec, span_gpus: int, c: StepTimeConstants) -> float:
    """Achieved per-GPU bandwidth of a group spanning ``span_gpus`` consecutive ranks: NVLink
    inside one NVLink domain, the network beyond it."""
    raw = (
        hardware.intra_node_bandwidth_bytes_per_s
        if span_gpus <= hardware.nvlink_domain_gpus
        else hardware.inter_node_bandwidth_bytes_per_s
    )
    return raw * c.comm_efficiency


def pipeline_time(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants = DEFAULT_CONSTANTS,
) -> dict[str, float]:
    """Seconds of compute, bubble, TP, context-parallel and pipeline communication per step on the
    last stage. With context parallelism each rank runs ``s/cp`` tokens of each sequence; its
    attention still spans the whole sequence, so FLOPs per token are those of length ``s``."""
    s, b, h, t, pp = training.seq_len, config.micro_batch_size, model.hidden_size, config.tp, config.pp
    cp, vpp = config.cp, config.vpp
    m = num_microbatches(training, config)
    forward, extra = _layer_flops(model, s, config.recompute, training.moe_capacity_factor)
    s = s // cp  # tokens of each sequence on this rank
    layers = model.num_layers / pp
    head = F.head_forward_flops_per_token(h, model.vocab_size)
    flops_per_token = layers * (F.training_flops_per_token(forward) + extra) + F.training_flops_per_token(
        head
    )
    efficiency = T.gemm_efficiency(b * s, h / t, c.gemm_max_efficiency, c.gemm_half_size)
    passes = 1 + F.BACKWARD_TO_FORWARD + (1 if config.recompute is Recompute.FULL else 0)
    peak = hardware.peak_flops
    if training.precision is Precision.FP8:  # the layers' GEMMs at the FP8 peak; attention and head in bf16
        layer_gemm = (
            FLOPS_PER_MAC_TRAINING * layer_matmul_params(model, training.moe_capacity_factor) * layers
        )
        peak = flops_per_token / (
            layer_gemm / (hardware.peak_flops_fp8 or peak)  # no FP8 units: bf16 speed (plan rejects it)
            + (flops_per_token - layer_gemm) / peak
        )
    microbatch = T.compute_s(flops_per_token * b * s / t, peak, efficiency) + T.elementwise_s(
        b * s * layers, h / t, passes, c.elementwise_bytes_per_width, hardware.hbm_bandwidth_bytes_per_s
    )
    message = s * b * h * training.precision.activation_bytes
    collectives = TP_COLLECTIVES_PER_LAYER + (
        TP_COLLECTIVES_PER_RECOMPUTE if config.recompute is Recompute.FULL else 0
    )
    tp_per_microbatch = layers * collectives * T.all_reduce_s(message, t, _link(hardware, t, c))
    ep_per_microbatch = 0.0
    if model.is_moe and config.ep > 1:  # all-to-all dispatch and combine, forward and backward
        # Each TP rank dispatches its 1/t of the tokens, k copies each, over ep contiguous ranks.
        routed = s * b / t * model.num_experts_per_token * h * training.precision.activation_bytes
        passes = EP_ALL_TO_ALL_PER_LAYER + (2 if config.recompute is Recompute.FULL else 0)
        moe_layers = model.num_moe_layers / pp
        ep_per_microbatch = (
            moe_layers * passes * T.all_to_all_s(routed, config.ep, _link(hardware, config.ep, c))
        )
    cp_per_microbatch = 0.0
    if cp > 1:  # ring attention: K and V chunks go round forward, K, V and their gradients backward
        kv_chunk = 2 * s * b * model.kv_dim / t * training.precision.activation_bytes
        hops = CP_PASSES_PER_LAYER * (cp - 1) * layers
        cp_per_microbatch = (
            hops * T.point_to_point_s(kv_chunk, _link(hardware, t * cp, c)) * (1 - c.cp_overlap)
        )
    offload = 0.0
    if config.activation_offload:  # activations out in forward, back in backward, hidden behind compute
        stored = layers * layer_activation_bytes(model, training, config, config.recompute)
        copy = 2 * T.host_transfer_s(stored, hardware.pcie_bandwidth_bytes_per_s)
        offload = max(0.0, copy - microbatch)
    p2p = 0.0
    if pp > 1:
        shard = message / (t if config.sequence_parallel else 1)
        p2p = P2P_PER_MICROBATCH * vpp * m * T.point_to_point_s(shard, _link(hardware, t * cp * pp, c))
    return {
        "compute": m * microbatch,
        "bubble": T.pipeline_bubble_fraction(pp, m, vpp)
        * m
        * (microbatch + tp_per_microbatch + cp_per_microbatch),
        "tp_comm": m * tp_per_microbatch * (1 - c.tp_overlap),
        "cp_comm": m * cp_per_microbatch,
        "ep_comm": m * ep_per_microbatch,
        "pp_comm": p2p,
        "offload": m * offload,
    }


def data_parallel_time(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    c: StepTimeConstants = DEFAULT_CONSTANTS,
) -> dict[str, float]:
    """Seconds of exposed gradient/parameter communication and of the optimizer step. Non-expert
    parameters reduce over ``dp*cp``, routed experts over their own group ``dp*cp/ep``."""
    held = max(
        (stage_params(model, training, config, st) for st in {0, config.pp - 1}), key=lambda x: x.params
    )
    prec, fw, zero = training.precision, training.framework, config.zero_stage
    w, g = M.weight_bytes_per_param(prec), M.grad_bytes_per_param(prec, fw)
    link = _link(hardware, config.num_gpus, c)
    comm, updated, host = 0.0, 0.0, 0.0
    for params, dp in (
        (held.params - held.expert_params, config.shard_group),
        (held.expert_params, config.expert_shard_group),
    ):
        if zero is ZeroStage.NONE:
            comm += T.all_reduce_s(params * g, dp, link)
        else:  # reduce-scatter gradients, all-gather updated weights (twice more for ZeRO-3)
            gathers = 3 if zero is ZeroStage.WEIGHTS else 1
            comm += T.all_gather_s(params * g, dp, link) + gathers * T.all_gather_s(params * w, dp, link)
        shard = params / dp if zero >= ZeroStage.OPTIMIZER else params
        updated += shard
        if config.optimizer_offload:  # gradients down, updated weights up, Adam on the CPU
            host += T.host_transfer_s(shard * (g + w), hardware.pcie_bandwidth_bytes_per_s)
    opt_bytes = M.optimizer_bytes_per_param(prec)
    if config.optimizer_offload:
        return {
            "dp_comm": comm * (1 - c.dp_overlap),
            "optimizer": host + T.cpu_adam_s(updated, c.cpu_adam_params_per_s),
        }
    step = T.optimizer_step_s(
        updated, T.adam_step_bytes_per_param(opt_bytes, g, w), hardware.hbm_bandwidth_bytes_per_s
    )
    return {"dp_comm": comm * (1 - c.dp_overlap), "optimizer": step}


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
    c: StepTimeConstants = DEFAULT_CONSTANTS,
) -> Performance:
    """Step time of ``config`` and the throughput figures derived from it."""
    terms = pipeline_time(model, hardware, training, config, c) | data_parallel_time(
        model, hardware, training, config, c
    )
    step = sum(terms.values())
    tokens = training.global_batch_size * training.seq_len
    work = step_flops_per_token(model, training.seq_len, config.recompute)
    per_gpu = tokens / step / config.num_gpus
    return Performance(
        step_time_s=step,
        tokens_per_s=tokens / step,
        tflops_per_gpu=work.model * per_gpu / 1e12,
        mfu=work.model * per_gpu / hardware.peak_flops,
        hfu=work.hardware * per_gpu / hardware.peak_flops,
        breakdown=terms,
    )
