"""The plan document's ``warnings``: what a plan that fits may still get wrong, each with a stable
``code`` a script can test and a ``message`` a person can act on.

- ``global_batch_small``: the global batch leaves the cluster idle (pipeline bubble, exposed
  data-parallel communication); the message names the smallest global batch, at the same sequence
  length and layout, that reaches ``EFFICIENT_FRACTION`` of the best throughput per GPU found.
- ``tp_crosses_nvlink_domain``, ``cp_crosses_nvlink_domain``: tensor- or context-parallel groups
  that leave one NVLink domain (only with ``--allow-inter-node-tp``, or cp beyond the domain).
- ``step_time_model_weak``: the plan's regime is one where the step-time model misses the
  published runs by more than its target (``planner.known_accuracy``), in the fit or with each
  run's source family held out of it.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace

from planner.calibration import StepTimeConstants
from planner.evaluate import memory, num_microbatches
from planner.known_accuracy import KnownAccuracy, accuracy_for, accuracy_of_gpu, target_of
from planner.layout import DIMENSIONS, Group
from planner.performance import performance
from planner.rules import nvlink_tp_reason
from planner.specs import HardwareSpec, ModelSpec, ParallelConfig, Recompute, TrainingSpec

EFFICIENT_FRACTION = 0.9
"""Share of the best throughput per GPU that counts as using the cluster well."""
REFERENCE_MICROBATCHES = 256
"""The best throughput of a layout is taken over global batches up to this many micro-batches per
data-parallel rank (the pipeline bubble of 16 stages is then under 6% of the step)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanWarning:
    """One entry of the document's ``warnings`` list."""

    code: str
    """Stable identifier (``global_batch_small``, ...): add new codes, never rename one."""
    message: str
    """One line saying what is wrong, by how much and what would help."""

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def _more_recompute(config: ParallelConfig) -> Iterator[ParallelConfig]:
    """``config``, then each heavier recompute mode with its other activation choices (block
    layers, modules, offload) at their defaults: all layers, Megatron's default modules."""
    yield config
    order = list(Recompute)  # least recompute first
    defaults = {e.name: e.default for e in DIMENSIONS if e.dimension.group is Group.ACTIVATIONS}
    for recompute in order[order.index(config.recompute) + 1 :]:
        yield replace(config, **(defaults | {"recompute": recompute}))


def _tokens_per_gpu_s(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    constants: StepTimeConstants | None,
) -> float | None:
    """Throughput per GPU of ``config`` at ``training``'s batch, with the least recompute (from the
    plan's up) whose memory fits: more micro-batches keep more of them in flight on the first
    pipeline stages. None when none fits."""
    for candidate in _more_recompute(config):
        if memory(model, hardware, training, candidate).fits:
            perf = performance(model, hardware, training, candidate, constants)
            return perf.tokens_per_s / config.num_gpus
    return None


def small_batch(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    constants: StepTimeConstants | None,
) -> PlanWarning | None:
    """``global_batch_small`` when the plan's throughput per GPU is below ``EFFICIENT_FRACTION`` of
    the best of its layout (same sequence length, tp, cp, pp, vpp, ep, ZeRO stage and micro-batch;
    more gradient accumulation) at the global batch doubled until it holds at least
    ``REFERENCE_MICROBATCHES`` micro-batches per data-parallel rank. The suggested batch is on the
    same doubling ladder, so planning with it no longer warns."""
    batch = training.global_batch_size
    microbatches = num_microbatches(training, config)
    curve = []
    k = 0
    while k == 0 or microbatches << (k - 1) < REFERENCE_MICROBATCHES:
        larger = replace(training, global_batch_size=batch << k)
        rate = _tokens_per_gpu_s(model, hardware, larger, config, constants)
        if rate is not None:
            curve.append((batch << k, rate))
        k += 1
    if not curve or curve[0][0] != batch:
        return None
    best_batch, best = max(curve, key=lambda point: point[1])
    now = curve[0][1]
    if now >= EFFICIENT_FRACTION * best:
        return None
    enough = next(b for b, rate in curve if rate >= EFFICIENT_FRACTION * best)
    return PlanWarning(
        code="global_batch_small",
        message=(
            f"global batch {batch} ({microbatches} micro-batches per data-parallel rank) leaves "
            f"{config.num_gpus} GPUs at {now / best:.0%} of the best throughput per GPU this layout "
            f"reaches ({best:,.0f} tokens/s per GPU at {best_batch} sequences); --global-batch {enough} "
            f"(x {training.seq_len} tokens) reaches {EFFICIENT_FRACTION:.0%} of it, or plan fewer GPUs"
        ),
    )


def crossing_domains(config: ParallelConfig, nvlink_domain_gpus: int) -> list[PlanWarning]:
    """Tensor- and context-parallel groups that leave one NVLink domain: Megatron-LM numbers ranks
    tp first, then cp (``RankGenerator`` order ``tp-cp-ep-dp-pp``), so a cp group spans ``tp·cp``
    consecutive ranks."""
    out = []
    reason = nvlink_tp_reason(config.tp, nvlink_domain_gpus)
    if reason:
        out.append(
            PlanWarning(
                code="tp_crosses_nvlink_domain",
                message=f"tp {config.tp} {reason}: every layer's tensor-parallel collectives run at "
                "network bandwidth (--allow-inter-node-tp)",
            )
        )
    span = config.tp * config.cp
    if config.cp > 1 and nvlink_tp_reason(span, nvlink_domain_gpus):
        out.append(
            PlanWarning(
                code="cp_crosses_nvlink_domain",
                message=f"cp {config.cp} with tp {config.tp} spans {span} consecutive ranks, beyond one "
                f"NVLink domain of {nvlink_domain_gpus} GPUs: the ring-attention exchanges go over the "
                "network (priced so in the step time)",
            )
        )
    return out


def _weak(accuracy: KnownAccuracy, what: str) -> PlanWarning:
    held_out = accuracy.held_out_median_abs_error
    unseen = (
        f", {held_out:.1%} predicted with constants fitted without their source"
        if held_out is not None and held_out > target_of(accuracy)
        else ""
    )
    return PlanWarning(
        code="step_time_model_weak",
        message=f"{what}: the step-time model's median error is {accuracy.median_abs_error:.1%} on "
        f"{accuracy.num_entries} published runs{unseen} ({accuracy.regime}; target "
        f"{target_of(accuracy):.0%}, README 'Accuracy'): treat the step time and the ranking of close "
        "plans as rough",
    )


def weak_regimes(model: ModelSpec, hardware: HardwareSpec, training: TrainingSpec) -> list[PlanWarning]:
    """The regimes of ``planner.known_accuracy`` this plan falls in whose figure misses the target."""
    out = []
    regime = accuracy_for(model.is_moe, training.precision)
    if regime.worst_median() > target_of(regime):
        out.append(_weak(regime, "mixture-of-experts model" if model.is_moe else regime.regime))
    gpu = accuracy_of_gpu(hardware.name)
    if gpu is not None and gpu.worst_median() > target_of(gpu):
        out.append(_weak(gpu, f"GPU {hardware.name}"))
    return out


def plan_warnings(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    constants: StepTimeConstants | None,
) -> list[PlanWarning]:
    """Every warning of a plan, in a fixed order (batch, NVLink domains, model accuracy)."""
    batch = small_batch(model, hardware, training, config, constants)
    return [
        *([batch] if batch else []),
        *crossing_domains(config, hardware.nvlink_domain_gpus),
        *weak_regimes(model, hardware, training),
    ]
