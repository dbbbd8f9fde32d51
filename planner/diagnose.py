"""Infeasibility: the smallest changes that would make a plan fit (more GPUs, more memory, no pins,
a shorter sequence)."""

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from constraints.units import BYTES_PER_GIB
from planner.evaluate import num_microbatches
from planner.layout import parallelism_block
from planner.search import Candidate, brute_force, least_memory
from planner.space import Pins, Space, build_space, capacity_units, compile_terms
from planner.specs import HardwareSpec, TrainingSpec

if TYPE_CHECKING:
    from planner.plan import Request

MIN_FIX_SEQ_LEN = 256
MAX_GPU_GROWTH = 1024  # look for a fitting GPU count up to this multiple of the request
NODE_STEPS_UP_TO = 8  # node by node up to this multiple of the request (a useful answer), then doubling


def fits_anywhere(
    req: "Request", gpus: int, training: TrainingSpec | None = None, hardware: HardwareSpec | None = None
) -> bool:
    """Whether any candidate fits with these GPUs / training / hardware."""
    training, hardware = training or req.training, hardware or req.hardware
    space = build_space(req.model, training, gpus, replace(req.pins, dp=None), hardware.nvlink_domain_gpus)
    terms = compile_terms(space, req.model, hardware, training, req.constants)
    best = least_memory(space, terms)
    return best is not None and best.peak_memory <= capacity_units(hardware)


def smallest_fixes(req: "Request", closest: Candidate | None, space: Space) -> dict[str, Any]:
    """Fewest GPUs at this memory, least memory at this GPU count, shortest fitting sequence."""
    fixes: dict[str, Any] = {}
    if closest is not None:
        fixes["min_mem_gib_at_this_gpu_count"] = round(closest.peak_memory / BYTES_PER_GIB, 2)
    step = req.hardware.gpus_per_node if req.gpus >= req.hardware.gpus_per_node else 1
    count = req.gpus + step
    while count <= req.gpus * MAX_GPU_GROWTH:
        if fits_anywhere(req, count):
            fixes["min_gpus_at_this_memory"] = count
            break
        count = count + step if count < NODE_STEPS_UP_TO * req.gpus else count * 2
    free = Pins(sequence_parallel=req.pins.sequence_parallel, max_tp=req.pins.max_tp)
    if req.pins != free:
        unpinned = replace(req, pins=free, top=1, exhaustive=True)
        space_free = build_space(req.model, req.training, req.gpus, free, req.hardware.nvlink_domain_gpus)
        terms = compile_terms(space_free, req.model, req.hardware, req.training, req.constants)
        best = brute_force(space_free, terms, capacity_units(req.hardware), 1)
        if best:
            config = space_free.config(*best[0].indices)
            fixes["unpinned_plan"] = parallelism_block(config, num_microbatches(unpinned.training, config))
    seq = req.training.seq_len // 2
    while seq >= MIN_FIX_SEQ_LEN:
        shorter = replace(req.training, seq_len=seq)
        if fits_anywhere(req, req.gpus, training=shorter):
            fixes["max_seq_len_that_fits"] = seq
            break
        seq //= 2
    return fixes
