"""Checkpoint planning for one plan: the size of a full checkpoint in the framework's format, the
largest shard one rank writes, the time to save it at a stated storage bandwidth, and the share of
training time lost at the save interval (formulas in ``constraints/checkpoint.py``)."""

import math
import re
from dataclasses import dataclass
from typing import Any

from constraints import checkpoint as C
from constraints.units import BYTES_PER_GB, BYTES_PER_GIB
from planner.emit import DEFAULT_SAVE_INTERVAL
from planner.errors import PlannerError
from planner.evaluate import edge_stages, stage_params
from planner.specs import Framework, ModelSpec, ParallelConfig, TrainingSpec, ZeroStage

SECONDS_PER_UNIT = {"min": 60, "m": 60, "h": 3600}
_INTERVAL = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(steps?|min|m|h)?\s*$")
INTERVAL_FORMS = "500 (steps), 500steps, 30min or 2h"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRequest:
    """How often the run saves and how fast its storage writes."""

    interval_steps: int | None = None
    """Steps between saves (``--checkpoint-interval 500``)."""
    interval_s: float | None = None
    """Wall-clock seconds between saves (``--checkpoint-interval 30min``), turned into steps."""
    storage_gbps: float | None = None
    """Aggregate write bandwidth of the checkpoint storage, GB/s (10^9 bytes); None: sizes only."""

    def steps(self, step_time_s: float) -> int:
        """The save interval in whole steps (at least one)."""
        if self.interval_steps is not None:
            return self.interval_steps
        if self.interval_s is not None:
            return max(1, math.ceil(self.interval_s / step_time_s))
        return DEFAULT_SAVE_INTERVAL


def parse_interval(text: str, storage_gbps: float | None) -> CheckpointRequest:
    """``--checkpoint-interval``: steps (``500``, ``500steps``) or time (``30min``, ``2h``)."""
    if storage_gbps is not None and not (storage_gbps > 0 and math.isfinite(storage_gbps)):
        raise PlannerError(f"--storage-gbps must be a positive bandwidth in GB/s, got {storage_gbps}")
    if text is None:
        return CheckpointRequest(storage_gbps=storage_gbps)
    match = _INTERVAL.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise PlannerError(f"--checkpoint-interval: cannot read {text!r}; use e.g. {INTERVAL_FORMS}")
    value, unit = float(match.group(1)), match.group(2)
    if unit in SECONDS_PER_UNIT:
        return CheckpointRequest(interval_s=value * SECONDS_PER_UNIT[unit], storage_gbps=storage_gbps)
    if value != int(value):
        raise PlannerError(f"--checkpoint-interval: {text!r} steps must be a whole number")
    return CheckpointRequest(interval_steps=int(value), storage_gbps=storage_gbps)


def checkpoint_format(training: TrainingSpec, config: ParallelConfig) -> str:
    """The format the launch files save in."""
    if training.framework is Framework.DEEPSPEED:
        return "deepspeed zero"
    if config.zero_stage >= ZeroStage.GRADIENTS:
        return "megatron-fsdp fsdp_dtensor"
    return "megatron torch_dist"


def checkpoint_doc(
    model: ModelSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    total_params: float,
    step_time_s: float,
    request: CheckpointRequest,
) -> dict[str, Any]:
    """The plan document's ``checkpoint`` block."""
    prec, fw, zero = training.precision, training.framework, config.zero_stage
    weight_b = C.saved_weight_bytes_per_param(prec, fw, zero)
    optim_b = C.saved_optimizer_bytes_per_param(prec)
    full = C.checkpoint_bytes(total_params, weight_b, optim_b)
    stages = [stage_params(model, training, config, s) for s in sorted(set(edge_stages(config.pp)))]
    if fw is Framework.DEEPSPEED:
        shard = max(
            C.deepspeed_rank_shard_bytes(s.params, weight_b, optim_b, config.dp, zero) for s in stages
        )
    else:
        shard = max(
            C.megatron_rank_shard_bytes(
                s.params - s.expert_params,
                s.expert_params,
                weight_b + optim_b,
                config.shard_group,
                config.expert_shard_group,
            )
            for s in stages
        )
    steps = request.steps(step_time_s)
    block: dict[str, Any] = {
        "format": checkpoint_format(training, config),
        "full_gib": round(full / BYTES_PER_GIB, 3),
        "weights_gib": round(C.checkpoint_bytes(total_params, weight_b, 0) / BYTES_PER_GIB, 3),
        "optimizer_gib": round(C.checkpoint_bytes(total_params, 0, optim_b) / BYTES_PER_GIB, 3),
        "largest_rank_shard_gib": round(shard / BYTES_PER_GIB, 3),
        "interval_steps": steps,
        "interval_minutes": round(steps * step_time_s / 60, 3),
        "storage_gbps": request.storage_gbps,
    }
    if request.storage_gbps:
        save_s = C.save_time_s(full, request.storage_gbps * BYTES_PER_GB)
        block["save_time_s"] = round(save_s, 3)
        block["time_lost_fraction"] = round(C.checkpoint_overhead_fraction(save_s, steps * step_time_s), 6)
    return block
