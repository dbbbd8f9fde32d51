"""The plan document (README "Plan document"): its keys are a contract with users' scripts; keep
them stable (add, never rename)."""

from typing import Any

from constraints.units import BYTES_PER_GIB
from planner.checkpoint import checkpoint_doc
from planner.counts import count_params
from planner.evaluate import memory, num_microbatches, stage_layers
from planner.launch import Launch
from planner.layout import parallelism_block, tie_break_note
from planner.performance import performance
from planner.plan import Outcome, Request, best_config, launch_of
from planner.plan_warnings import plan_warnings
from planner.specs import MemoryBreakdown, ParallelConfig, TrainingSpec


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
    """The ``parallelism`` block (``planner.layout`` orders it)."""
    return parallelism_block(config, num_microbatches(training, config))


def config_doc(req: Request, config: ParallelConfig) -> dict[str, Any]:
    """parallelism, memory_gib and performance of one configuration, from the plain evaluator."""
    mem = memory(req.model, req.hardware, req.training, config)
    perf = performance(req.model, req.hardware, req.training, config, req.constants)
    return {
        "parallelism": parallelism_doc(config, req.training)
        | {"layers_per_stage": list(stage_layers(req.model, config))},
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
    return document_and_launch(req, outcome)[0]


def document_and_launch(req: Request, outcome: Outcome) -> tuple[dict[str, Any], Launch | None]:
    """The plan document and the launch files of its plan (None when nothing was planned), built
    once: the files save checkpoints at the document's checkpoint interval."""
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
            "overlap_grad_reduce": req.training.overlap_grad_reduce,
            "overlap_param_gather": req.training.overlap_param_gather,
            "tp_comm_overlap": req.training.tp_comm_overlap,
            "overlap_moe_expert_parallel_comm": req.training.overlap_moe_expert_parallel_comm,
            "grad_reduce_in_bf16": req.training.grad_reduce_in_bf16,
            **({"global_batch_note": req.global_batch_note} if req.global_batch_note else {}),
        },
    }
    config, launch = best_config(outcome), None
    if config is not None:
        doc |= config_doc(req, config)
        step_s = doc["performance"]["step_time_s"]
        doc["checkpoint"] = checkpoint_doc(
            req.model, req.training, config, counts.total, step_s, req.checkpoint
        )
        launch = launch_of(req, outcome, doc["checkpoint"]["interval_steps"])
        doc["launch"] = launch.block
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
        "tie_break": tie_break_note(),
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
    doc["warnings"] = []
    if config is not None and doc["fits"]:
        found = plan_warnings(req.model, req.hardware, req.training, config, req.constants)
        doc["warnings"] = [w.as_dict() for w in found]
    return doc, launch
