"""Infeasibility: the smallest changes that would make a plan fit (more GPUs, more memory, no pins,
CPU offload, a shorter sequence), within the command's deadline."""

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from constraints import memory as M
from constraints.units import BYTES_PER_GIB
from planner.deadline import NO_DEADLINE, Deadline
from planner.defaults import with_default_batch
from planner.evaluate import memory, num_microbatches, stage_params
from planner.layout import parallelism_block
from planner.numbers import MAX_GPUS
from planner.search import Candidate, brute_force, fits_within
from planner.space import Pins, Space, build_space, capacity_units, compile_terms
from planner.specs import HardwareSpec, ModelSpec, ParallelConfig, TrainingSpec

if TYPE_CHECKING:
    from planner.plan import Request

MIN_FIX_SEQ_LEN = 256
MAX_GPU_GROWTH = 1024  # look for a fitting GPU count up to this multiple of the request
NODE_STEPS_UP_TO = 8  # node by node up to this multiple of the request (a useful answer), then doubling


def fits_anywhere(
    req: "Request", gpus: int, training: TrainingSpec | None = None, hardware: HardwareSpec | None = None
) -> bool:
    """Whether any candidate fits with these GPUs / training / hardware. A defaulted global batch
    follows the GPU count (``planner.defaults``)."""
    training, hardware = training or req.training, hardware or req.hardware
    pins = replace(req.pins, dp=None)
    if gpus < min_gpus_for_states(req.model, training, hardware, pins):
        return False  # the model states alone overflow these GPUs: nothing to tabulate
    if req.global_batch_note is not None and gpus != req.gpus:
        training, _ = with_default_batch(req.model, training, gpus, pins, hardware.nvlink_domain_gpus)
    space = build_space(req.model, training, gpus, pins, hardware.nvlink_domain_gpus)
    terms = compile_terms(space, req.model, hardware, training, req.constants, times=False, until_fit=True)
    return fits_within(terms, capacity_units(hardware))


def min_gpus_for_states(model: ModelSpec, training: TrainingSpec, hardware: HardwareSpec, pins: Pins) -> int:
    """Fewer GPUs than this cannot hold the model states (``constraints.memory.min_gpus_for_states``
    with the parameters the evaluator counts on one unsplit rank, the least any layout holds in
    all); 1 when the pins let the optimizer go to the CPU, which the bound does not cover."""
    if pins.allow_offload or pins.optimizer_offload:
        return 1
    params = stage_params(model, training, ParallelConfig(tp=1, pp=1, dp=1), 0).params
    prec = training.precision
    per_param = (
        M.weight_bytes_per_param(prec, training.fp8_param_gather)
        + M.grad_bytes_per_param(prec, training.framework, training.grad_reduce_in_bf16)
        + M.optimizer_bytes_per_param(prec)
    )
    usable = hardware.memory_bytes - M.reserve_bytes(
        hardware.memory_bytes, training.reserve_fraction, training.reserve_fixed_bytes
    )
    return M.min_gpus_for_states(params, per_param, usable) if usable > 0 else MAX_GPUS + 1


def smallest_fixes(
    req: "Request",
    closest: Candidate | None,
    space: Space,
    deadline: Deadline = NO_DEADLINE,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fewest GPUs at this memory, least memory at this GPU count, the best plan without the pins
    or with CPU offload allowed, shortest fitting sequence. Each probe starts only before the
    ``deadline``, and says what it tries to ``progress``; the fixes it leaves out are listed under
    ``not_searched``."""
    say = progress or (lambda message: None)
    fixes: dict[str, Any] = {}
    skipped: list[str] = []
    if closest is not None:
        need = memory(req.model, req.hardware, req.training, space.config(*closest.indices)).total
        fixes["min_mem_gib_at_this_gpu_count"] = round(need / BYTES_PER_GIB, 2)
    step = req.hardware.gpus_per_node if req.gpus >= req.hardware.gpus_per_node else 1
    count = req.gpus + step
    while count <= req.gpus * MAX_GPU_GROWTH:
        if deadline.expired:
            skipped.append("min_gpus_at_this_memory")
            break
        say(f"nothing fits; the fewest GPUs that would: trying {count}")
        if fits_anywhere(req, count):
            fixes["min_gpus_at_this_memory"] = count
            break
        count = count + step if count < NODE_STEPS_UP_TO * req.gpus else count * 2
    free = Pins(sequence_parallel=req.pins.sequence_parallel, max_tp=req.pins.max_tp)
    if req.pins != free:
        if deadline.expired:
            skipped.append("unpinned_plan")
        else:
            say("nothing fits; trying without the pins")
            if best := best_plan(req, free):
                fixes["unpinned_plan"] = best
    pinned_offload = (req.pins.optimizer_offload, req.pins.activation_offload) != (None, None)
    if not req.pins.allow_offload and not pinned_offload:
        if deadline.expired:
            skipped.append("offload_plan")
        else:
            say("nothing fits; trying CPU offload")
            if best := best_plan(req, replace(req.pins, allow_offload=True)):
                fixes["offload_plan"] = best
    seq = req.training.seq_len // 2
    while seq >= MIN_FIX_SEQ_LEN:
        if deadline.expired:
            skipped.append("max_seq_len_that_fits")
            break
        shorter = replace(req.training, seq_len=seq)
        say(f"nothing fits; the longest sequence that would: trying {seq}")
        if fits_anywhere(req, req.gpus, training=shorter):
            fixes["max_seq_len_that_fits"] = seq
            break
        seq //= 2
    if skipped:
        fixes["not_searched"] = skipped
        fixes["not_searched_reason"] = f"--time-limit {req.time_limit_s} s reached"
    return fixes


def best_plan(req: "Request", pins: Pins) -> dict[str, Any] | None:
    """The ``parallelism`` block of the best plan under other pins at this GPU count (brute force
    over the integer tables), or None when nothing fits. The step time of a row that fits beside
    nothing is never computed (``compile_terms(fitting_only=True)``): when nothing fits, none is."""
    space = build_space(req.model, req.training, req.gpus, pins, req.hardware.nvlink_domain_gpus)
    terms = compile_terms(space, req.model, req.hardware, req.training, req.constants, fitting_only=True)
    best = brute_force(space, terms, capacity_units(req.hardware), 1)
    if not best:
        return None
    config = space.config(*best[0].indices)
    return parallelism_block(config, num_microbatches(req.training, config))
