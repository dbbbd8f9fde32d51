"""Pin validation: one-line errors for pinned values that no layout can satisfy, naming the option
and what would work."""

from dataclasses import MISSING
from types import SimpleNamespace
from typing import TYPE_CHECKING

from planner.capability import problems_within
from planner.errors import PlannerError
from planner.layout import DIMENSIONS, Group
from planner.rules import divisors, valid_cp, valid_ep, valid_pp, valid_tp, valid_vpp
from planner.specs import Precision

if TYPE_CHECKING:
    from planner.plan import Request

MESH_ONLY = frozenset({Group.LAYOUT})


def raise_first_reason(req: "Request", name: str, value: int) -> None:
    """Raise the framework's first reason it cannot run the mesh size ``name=value`` (every other
    dimension at its default), if any."""
    defaults = {e.name: 1 if e.default is MISSING else e.default for e in DIMENSIONS}
    probe = SimpleNamespace(**(defaults | {name: value}))
    problems = problems_within(MESH_ONLY, req.training.framework, req.model, req.training, probe)
    if problems:
        option = next(e.dimension.option for e in DIMENSIONS if e.name == name)
        reason, fix = problems[0]
        raise PlannerError(f"{option} {value}: {reason}; {fix}")


def validate_pins(req: "Request") -> None:
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
    if pins.cp is not None and pins.cp > 1:
        raise_first_reason(req, "cp", pins.cp)
    if pins.vpp is not None and pins.vpp > 1:
        pp_choices = [pins.pp] if pins.pp else [p for p in valid_pp(model) if p > 1]
        if not any(pins.vpp in valid_vpp(model, p) for p in pp_choices if p > 1):
            raise PlannerError(
                f"--vpp {pins.vpp}: pp * vpp must divide the {model.num_layers} layers, with pp above 1"
            )
        raise_first_reason(req, "vpp", pins.vpp)
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
    if pins.ep is not None and pins.ep > 1:
        raise_first_reason(req, "ep", pins.ep)
    if pins.sequence_parallel and pins.tp == 1:
        raise PlannerError("--sequence-parallel needs --tp above 1")
