"""Plan a cluster: search the space, explain infeasibility, and build the plan document.

The document's keys are a contract with users' scripts (README "Plan document"); keep them stable.
"""

import time
from dataclasses import dataclass, replace
from typing import Any

from constraints.units import BYTES_PER_GIB
from planner.calibration import DEFAULT_CONSTANTS, StepTimeConstants
from planner.checkpoint import CheckpointRequest, checkpoint_doc
from planner.counts import count_params
from planner.deadline import NO_DEADLINE, Deadline
from planner.defaults import default_global_batch
from planner.errors import PlannerError
from planner.evaluate import memory, num_microbatches
from planner.launch import launch_files
from planner.performance import performance
from planner.rules import divisors, framework_allows_layout, valid_cp, valid_ep, valid_pp, valid_tp, valid_vpp
from planner.scaling import Units, choose_units, scale_terms
from planner.search import Candidate, brute_force, enumerate_candidates, least_memory
from planner.solver import solve
from planner.space import Pins, Space, build_space, capacity_units, compile_terms
from planner.specs import (
    Framework,
    HardwareSpec,
    MemoryBreakdown,
    ModelSpec,
    ParallelConfig,
    Precision,
    TrainingSpec,
)
from planner.verify import boundary_candidates, check_reported

MIN_FIX_SEQ_LEN = 256
MAX_GPU_GROWTH = 1024  # look for a fitting GPU count up to this multiple of the request


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """Everything ``plan`` was asked."""

    model: ModelSpec
    hardware: HardwareSpec
    training: TrainingSpec
    gpus: int
    pins: Pins = Pins()
    top: int = 1
    exhaustive: bool = False
    time_limit_s: float | None = None
    """Seconds the whole search may take, diagnosis included (None: no limit)."""
    constants: StepTimeConstants = DEFAULT_CONSTANTS
    checkpoint: CheckpointRequest = CheckpointRequest()
    global_batch_note: str | None = None
    """How the default global batch was chosen (``planner.defaults``); None when given."""
    timing: bool = False
    """Report the solver's wall time (``solver.wall_time_s``); off, so that the same request always
    gives a byte-identical document."""


def validate_pins(req: Request) -> None:
    """One-line errors for pinned values that no layout can satisfy."""
    pins, model, gpus = req.pins, req.model, req.gpus
    if gpus <= 0:
        raise PlannerError(f"--gpus must be a positive integer, got {gpus}")
    if req.training.precision is Precision.FP8 and not req.hardware.peak_flops_fp8:
        raise PlannerError(
            f"--precision fp8 needs FP8 tensor cores; {req.hardware.name} has none "
            "(use h100-80gb, h200, b200, or peak_tflops_fp8 in a hardware file)"
        )
    if pins.tp is not None and pins.tp not in valid_tp(model):
        raise PlannerError(
            f"--tp {pins.tp} does not divide the {model.num_heads} heads and "
            f"{model.num_kv_heads} KV heads; use one of {valid_tp(model)}"
        )
    if pins.pp is not None and pins.pp not in valid_pp(model):
        raise PlannerError(
            f"--pp {pins.pp} does not divide the {model.num_layers} layers; use one of {valid_pp(model)}"
        )
    fixed = (pins.tp or 1) * (pins.cp or 1) * (pins.pp or 1) * (pins.dp or 1)
    if gpus % fixed:
        raise PlannerError(
            f"tp*cp*pp*dp = {fixed} does not divide --gpus {gpus}; "
            f"use values whose product divides {gpus} (divisors: {divisors(gpus)[:12]})"
        )
    if None not in (pins.tp, pins.pp, pins.dp) and fixed != gpus:
        raise PlannerError(
            f"--tp {pins.tp} x --cp {pins.cp or 1} x --pp {pins.pp} x --dp {pins.dp} = {fixed}, "
            f"not --gpus {gpus}"
        )
    if pins.cp is not None and pins.cp not in valid_cp(req.training.seq_len):
        raise PlannerError(
            f"--cp {pins.cp}: twice it must divide --seq-len {req.training.seq_len}; "
            f"use one of {valid_cp(req.training.seq_len)[:10]}"
        )
    if (
        pins.cp is not None
        and pins.cp > 1
        and not framework_allows_layout(req.training.framework, pins.cp, 1, req.training.flash_attention)
    ):
        raise PlannerError("--cp above 1 needs --framework megatron and FlashAttention")
    if pins.vpp is not None and pins.vpp > 1:
        pp_choices = [pins.pp] if pins.pp else [p for p in valid_pp(model) if p > 1]
        if not any(pins.vpp in valid_vpp(model, p) for p in pp_choices if p > 1):
            raise PlannerError(
                f"--vpp {pins.vpp}: pp * vpp must divide the {model.num_layers} layers, with pp above 1"
            )
        if req.training.framework is not Framework.MEGATRON:
            raise PlannerError("--vpp above 1 (interleaved pipeline) needs --framework megatron")
    if pins.micro_batch_size is not None and pins.micro_batch_size <= 0:
        raise PlannerError(f"--mbs must be a positive integer, got {pins.micro_batch_size}")
    if pins.micro_batch_size is not None and req.training.global_batch_size % pins.micro_batch_size:
        raise PlannerError(
            f"--mbs {pins.micro_batch_size} does not divide --global-batch {req.training.global_batch_size}"
        )
    if pins.ep is not None and pins.ep not in valid_ep(model):
        raise PlannerError(
            f"--ep {pins.ep} does not divide the {model.num_experts} experts; use one of {valid_ep(model)}"
        )
    if pins.ep is not None and pins.ep > 1 and req.training.framework is not Framework.MEGATRON:
        raise PlannerError(
            "--ep above 1 needs --framework megatron (DeepSpeed's expert parallelism needs "
            "DeepSpeed-MoE layers in the model code)"
        )
    if pins.sequence_parallel and pins.tp == 1:
        raise PlannerError("--sequence-parallel needs --tp above 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """A searched plan: status, best configuration (or the closest one), alternatives, diagnosis."""

    status: str
    space: Space
    chosen: list[Candidate]
    wall_time_s: float
    objective: int | None
    bound: int | None
    candidates: int
    method: str
    units: Units = Units()
    """Resolution of the integer tables the search ranked by."""
    shortfall: str | None = None
    """Why fewer plans than ``top`` are listed (None when all are, or none fits)."""
    closest: Candidate | None = None
    fixes: dict[str, Any] | None = None


def fits_anywhere(
    req: Request, gpus: int, training: TrainingSpec | None = None, hardware: HardwareSpec | None = None
) -> bool:
    """Whether any candidate fits with these GPUs / training / hardware."""
    training, hardware = training or req.training, hardware or req.hardware
    pins = replace(req.pins, dp=None)
    if req.global_batch_note is not None and gpus != req.gpus:  # a defaulted batch follows the count
        choice = default_global_batch(req.model, training, gpus, pins, hardware.nvlink_domain_gpus)
        training = replace(training, global_batch_size=choice.sequences)
    space = build_space(req.model, training, gpus, pins, hardware.nvlink_domain_gpus)
    terms = compile_terms(space, req.model, hardware, training, req.constants)
    best = least_memory(space, terms)
    return best is not None and best.peak_memory <= capacity_units(hardware)


def smallest_fixes(
    req: Request, closest: Candidate | None, space: Space, deadline: Deadline = NO_DEADLINE
) -> dict[str, Any]:
    """Fewest GPUs at this memory, least memory at this GPU count, the best plan without the pins
    or with CPU offload allowed, shortest fitting sequence. Each probe starts only before the
    ``deadline``; the fixes it leaves out are listed under ``not_searched``."""
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
        if fits_anywhere(req, count):
            fixes["min_gpus_at_this_memory"] = count
            break
        count = count + step if count < 8 * req.gpus else count * 2
    free = Pins(sequence_parallel=req.pins.sequence_parallel, max_tp=req.pins.max_tp)
    if req.pins != free:
        if deadline.expired:
            skipped.append("unpinned_plan")
        elif best := best_plan(req, free):
            fixes["unpinned_plan"] = best
    pinned_offload = (req.pins.optimizer_offload, req.pins.activation_offload) != (None, None)
    if not req.pins.allow_offload and not pinned_offload:
        if deadline.expired:
            skipped.append("offload_plan")
        elif best := best_plan(req, replace(req.pins, allow_offload=True)):
            fixes["offload_plan"] = best
    seq = req.training.seq_len // 2
    while seq >= MIN_FIX_SEQ_LEN:
        if deadline.expired:
            skipped.append("max_seq_len_that_fits")
            break
        shorter = replace(req.training, seq_len=seq)
        if fits_anywhere(req, req.gpus, training=shorter):
            fixes["max_seq_len_that_fits"] = seq
            break
        seq //= 2
    if skipped:
        fixes["not_searched"] = skipped
        fixes["not_searched_reason"] = f"--time-limit {req.time_limit_s} s reached"
    return fixes


def best_plan(req: Request, pins: Pins) -> dict[str, Any] | None:
    """The ``parallelism`` block of the best plan under other pins at this GPU count (brute force
    over the same integer tables), or None when nothing fits."""
    space = build_space(req.model, req.training, req.gpus, pins, req.hardware.nvlink_domain_gpus)
    terms = compile_terms(space, req.model, req.hardware, req.training, req.constants)
    best = brute_force(space, terms, capacity_units(req.hardware), 1)
    return parallelism_doc(space.config(*best[0].indices), req.training) if best else None


def run(req: Request, deadline: Deadline | None = None) -> Outcome:
    """Search the space (CP-SAT, or brute force with ``exhaustive``), then check the answer against
    the evaluator (``planner.verify``). The whole command, diagnosis included, starts no new work
    after the deadline (by default ``req.time_limit_s`` from now)."""
    deadline = deadline or Deadline(limit_s=req.time_limit_s)
    validate_pins(req)
    space = build_space(req.model, req.training, req.gpus, req.pins, req.hardware.nvlink_domain_gpus)
    if not space.layouts:
        raise PlannerError(
            f"no tp x cp x pp layout divides --gpus {req.gpus} for this model; "
            f"tp from {valid_tp(req.model)}, pp from {valid_pp(req.model)}"
        )
    terms = compile_terms(space, req.model, req.hardware, req.training, req.constants)
    capacity = capacity_units(req.hardware)
    if not terms.activations:
        batch_fits = any(
            space.mbs_fits(p, u, req.training.global_batch_size)
            for p in range(len(space.layouts))
            for u in range(len(space.micro_batches))
        )
        if batch_fits:
            raise PlannerError(
                f"--framework {req.training.framework.value} cannot run the recompute / offload these pins "
                "leave (DeepSpeed offloads activations only with full recompute; Megatron-LM without "
                "pipelining and instead of full recompute); change the pins or use --framework megatron"
            )
        raise PlannerError(
            f"--global-batch {req.training.global_batch_size} is not divisible by dp*mbs "
            f"for any layout of {req.gpus} GPUs; use a multiple of {req.gpus}"
        )
    if not terms.states:
        raise PlannerError(
            f"--framework {req.training.framework.value} cannot run any layout these pins leave "
            "(DeepSpeed's pipeline engine supports ZeRO-0/1 only); unpin --zero or --pp, or use "
            "--framework megatron"
        )
    units = choose_units(space, terms)
    terms = scale_terms(terms, units)
    capacity = capacity_units(req.hardware)
    counted = len(enumerate_candidates(space, terms))
    limited = False
    if req.exhaustive:
        start = time.perf_counter()
        chosen = brute_force(space, terms, capacity, req.top)
        wall = time.perf_counter() - start
        status = "optimal" if chosen else "infeasible"
        objective = chosen[0].objective if chosen else None
        bound, method = objective, "exhaustive"
    else:
        result = solve(space, terms, capacity, req.top, deadline)
        if result.status == "unknown":
            raise PlannerError(
                f"--time-limit {req.time_limit_s} s: CP-SAT found no plan and no proof of "
                "infeasibility in time; raise --time-limit or leave it out"
            )
        chosen, status, wall = result.candidates, result.status, result.wall_time_s
        objective, bound, method = result.objective, result.bound, "cp-sat"
        limited = result.time_limited
    check_reported(req.model, req.hardware, req.training, req.constants, space, units, chosen)
    if not chosen:
        chosen = boundary_candidates(req.model, req.hardware, req.training, space, terms, capacity, req.top)
        if chosen:
            status, objective = "optimal", chosen[0].objective
            bound = objective
    closest = None if chosen else least_memory(space, terms)
    return Outcome(
        status=status if chosen else "infeasible",
        space=space,
        chosen=chosen,
        wall_time_s=wall,
        objective=objective,
        bound=bound,
        candidates=counted,
        method=method,
        units=units,
        shortfall=shortfall(req, len(chosen), limited),
        closest=closest,
        fixes=None if chosen else smallest_fixes(req, closest, space, deadline),
    )


def shortfall(req: Request, found: int, time_limited: bool) -> str | None:
    """Why fewer plans than ``--top`` are listed, or None when all are."""
    if found == 0 or found >= req.top:
        return None
    if time_limited:
        return f"--time-limit {req.time_limit_s} s reached after {found} of --top {req.top} plans"
    return f"only {found} distinct plans fit (--top {req.top})"


def gib(value: float) -> float:
    """Bytes to GiB, rounded for the document."""
    return round(value / BYTES_PER_GIB, 3)


def memory_doc(mem: MemoryBreakdown) -> dict[str, float]:
    """The ``memory_gib`` block."""
    return {
        "weights": gib(mem.weights),
        "gradients": gib(mem.gradients),
        "optimizer": gib(mem.optimizer),
        "activations": gib(mem.activations),
        "reserve": gib(mem.reserve),
        "total": gib(mem.total),
        "capacity": gib(mem.capacity),
        "most_loaded_stage": mem.stage,
    }


def parallelism_doc(config: ParallelConfig, training: TrainingSpec) -> dict[str, Any]:
    """The ``parallelism`` block."""
    return {
        "tp": config.tp,
        "pp": config.pp,
        "dp": config.dp,
        "cp": config.cp,
        "vpp": config.vpp,
        "ep": config.ep,
        "optimizer_offload": config.optimizer_offload,
        "activation_offload": config.activation_offload,
        "zero_stage": int(config.zero_stage),
        "recompute": config.recompute.value,
        "micro_batch_size": config.micro_batch_size,
        "grad_accum_steps": num_microbatches(training, config),
        "sequence_parallel": config.sequence_parallel,
    }


def config_doc(req: Request, config: ParallelConfig) -> dict[str, Any]:
    """parallelism, memory_gib and performance of one configuration, from the plain evaluator."""
    mem = memory(req.model, req.hardware, req.training, config)
    perf = performance(req.model, req.hardware, req.training, config, req.constants)
    return {
        "parallelism": parallelism_doc(config, req.training),
        "memory_gib": memory_doc(mem),
        "fits": mem.fits,
        "performance": {
            "step_time_s": round(perf.step_time_s, 4),
            "tokens_per_s": round(perf.tokens_per_s, 1),
            "tflops_per_gpu": round(perf.tflops_per_gpu, 2),
            "mfu": round(perf.mfu, 4),
            "hfu": round(perf.hfu, 4),
            "breakdown": {k: round(v, 4) for k, v in perf.breakdown.items()},
        },
        "dominant_memory_term": max(
            ("weights", "gradients", "optimizer", "activations"), key=lambda k: getattr(mem, k)
        ),
    }


def document(req: Request, outcome: Outcome) -> dict[str, Any]:
    """The plan document (README "Plan document"); ``launch`` says what each framework can run."""
    counts = count_params(req.model)
    doc: dict[str, Any] = {
        "status": outcome.status,
        "model": {
            "name": req.model.name,
            "family": req.model.family,
            "params": counts.total,
            "param_breakdown": counts.as_dict(),
        },
        "cluster": {
            "gpus": req.gpus,
            "gpu": req.hardware.name,
            "mem_gib": round(req.hardware.memory_gib, 3),
            "gpus_per_node": req.hardware.gpus_per_node,
        },
        "training": {
            "seq_len": req.training.seq_len,
            "global_batch_size": req.training.global_batch_size,
            "tokens_per_step": req.training.seq_len * req.training.global_batch_size,
            "precision": req.training.precision.value,
            "framework": req.training.framework.value,
            "flash_attention": req.training.flash_attention,
            "reserve_fraction": req.training.reserve_fraction,
            "reserve_fixed_gib": gib(req.training.reserve_fixed_bytes),
            **({"global_batch_note": req.global_batch_note} if req.global_batch_note else {}),
        },
    }
    config = best_config(outcome)
    if config is not None:
        doc |= config_doc(req, config)
        step_s = doc["performance"]["step_time_s"]
        doc["checkpoint"] = checkpoint_doc(
            req.model, req.training, config, counts.total, step_s, req.checkpoint
        )
        doc["launch"] = launch_files(
            req.model,
            req.training,
            config,
            doc,
            req.hardware.gpus_per_node,
            doc["checkpoint"]["interval_steps"],
        )[1]
    gap = None
    if outcome.objective and outcome.bound is not None:
        gap = round((outcome.objective - outcome.bound) / outcome.objective, 6)
    doc["solver"] = {
        "method": outcome.method,
        **({"wall_time_s": round(outcome.wall_time_s, 4)} if req.timing else {}),
        "objective": outcome.objective,
        "bound": outcome.bound,
        "gap": gap,
        "candidates": outcome.candidates,
        "tie_break": "lower zero_stage, less recompute, smaller tp, cp, pp, vpp, ep, smaller mbs",
        "time_unit_us": outcome.units.time_us,
        "plans_requested": req.top,
        "plans_returned": len(outcome.chosen),
        **({"shortfall": outcome.shortfall} if outcome.shortfall else {}),
    }
    doc["alternatives"] = [
        {
            k: v
            for k, v in config_doc(req, outcome.space.config(*c.indices)).items()
            if k in ("parallelism", "memory_gib", "performance")
        }
        for c in outcome.chosen[1:]
    ]
    if outcome.status == "infeasible":
        doc["diagnosis"] = {
            "closest_plan": "the configuration above needs the least memory",
            **(outcome.fixes or {}),
        }
    return doc


def best_config(outcome: Outcome) -> ParallelConfig | None:
    """The plan's layout: the best candidate, or the closest one when nothing fits."""
    best = outcome.chosen[0] if outcome.chosen else outcome.closest
    return None if best is None else outcome.space.config(*best.indices)


def launch_outputs(req: Request, outcome: Outcome, doc: dict[str, Any]) -> dict[str, str]:
    """The launch files for the outcome's plan (none when nothing was planned)."""
    config = best_config(outcome)
    if config is None:
        return {}
    interval = doc["checkpoint"]["interval_steps"]
    return launch_files(req.model, req.training, config, doc, req.hardware.gpus_per_node, interval)[0]
