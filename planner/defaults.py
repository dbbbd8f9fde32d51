"""Defaults of a training request that depend on the model and the cluster: sequence length and
global batch. Every entry point (CLI, ``planner.api``, sweeps) takes them from here."""

from dataclasses import dataclass, replace

from planner.space import Pins, build_space
from planner.specs import ModelSpec, TrainingSpec

DEFAULT_TOKENS_PER_STEP = 4 * 1024 * 1024  # ~4M tokens per step (GPT-3, Llama 2 recipes)
MAX_DEFAULT_SEQ_LEN = 8192  # long-context models are pre-trained mostly at 4-8k, then extended


def default_seq_len(max_positions: int) -> int:
    """The model's context, capped at 8192 tokens for training."""
    return min(max_positions, MAX_DEFAULT_SEQ_LEN)


def target_global_batch(seq_len: int) -> int:
    """About 4M tokens per step, in whole sequences (at least one)."""
    return max(1, DEFAULT_TOKENS_PER_STEP // seq_len)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchChoice:
    """The default global batch and how it was chosen."""

    sequences: int
    """Global batch in sequences."""
    note: str
    """One line for the plan document (``training.global_batch_note``)."""


def default_global_batch(
    model: ModelSpec, training: TrainingSpec, gpus: int, pins: Pins, nvlink_domain_gpus: int
) -> BatchChoice:
    """~4M tokens per step, kept when some layout of this GPU count can take it (dp times the
    micro-batch divides it; interleaved pipelines also need the micro-batch count divisible by
    pp), otherwise the nearest multiple of the GPU count (at least one sequence per GPU).

    A multiple of the GPU count always works: every layout's dp divides the GPU count, and the
    micro-batch count per step, a multiple of tp*cp*pp at micro-batch 1, is divisible by pp. So
    ``plan --gpus 72 llama2-13b`` (one NVL72 rack: dp or pp carries its factor 9, and its 40 layers
    have no 9-stage split) gets 1008 sequences of 4096, not the 1024 that no dp divides.
    """
    target = target_global_batch(training.seq_len)
    space = build_space(model, training, gpus, pins, nvlink_domain_gpus)
    if any(space.mbs_fits(i, 0, target) for i in range(len(space.layouts))):
        return BatchChoice(
            sequences=target, note=f"default: ~4M tokens per step ({target} x {training.seq_len} tokens)"
        )
    multiple = max(1, round(target / gpus)) * gpus
    return BatchChoice(
        sequences=multiple,
        note=f"default: ~4M tokens per step ({target} sequences) rounded to a multiple of the "
        f"{gpus} GPUs, which every layout's dp divides: {multiple} x {training.seq_len} tokens",
    )


def with_default_batch(
    model: ModelSpec, training: TrainingSpec, gpus: int, pins: Pins, nvlink_domain_gpus: int
) -> tuple[TrainingSpec, str]:
    """``training`` with the default global batch of this GPU count (``default_global_batch``),
    and the note saying how it was chosen."""
    choice = default_global_batch(model, training, gpus, pins, nvlink_domain_gpus)
    if choice.sequences == training.global_batch_size:  # the same object: the evaluator's caches,
        return training, choice.note  # matched on its identity (planner.memo), stay warm for the search
    return replace(training, global_batch_size=choice.sequences), choice.note
