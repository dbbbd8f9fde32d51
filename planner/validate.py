"""Pin validation: one-line errors for pinned values that no layout can satisfy, naming the option
and what would work."""

from dataclasses import MISSING
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from constraints.pipeline import (
    MAX_END_STAGE_TRIM,
    end_stage_split_is_whole,
    end_stage_splits,
    stage_layer_counts,
)
from constraints.recompute import RecomputeModule
from planner.capability import problems_within
from planner.errors import PlannerError
from planner.layout import DIMENSIONS, LAYOUT_MESH, Group, document_value, parse_modules, sequence_parallel_of
from planner.numbers import check_number
from planner.rules import (
    divisors,
    nvlink_tp_reason,
    pipeline_sizes,
    pipeline_splits,
    tensor_parallel_reasons,
    valid_cp,
    valid_ep,
    valid_tp,
)
from planner.specs import Dispatcher, Precision, Recompute

if TYPE_CHECKING:
    from planner.plan import Request

MESH_ONLY = frozenset({Group.LAYOUT})


def mesh_probe(**values: Any) -> SimpleNamespace:
    """A partial layout for the capability rules: ``values``, every other dimension at its default
    (1 for the sizes without one)."""
    defaults = {e.name: 1 if e.default is MISSING else e.default for e in DIMENSIONS}
    return SimpleNamespace(**(defaults | values))


def raise_first_reason(req: "Request", name: str, value: Any, **others: int) -> None:
    """Raise the framework's first reason it cannot run the mesh size ``name=value`` (every other
    dimension at its default, or as in ``others``), if any."""
    probe = mesh_probe(**(others | {name: value}))
    if name == "first_stage_layers":
        probe.last_stage_layers = others.get("last_stage_layers", value)
    problems = problems_within(MESH_ONLY, req.training.framework, req.model, req.training, probe)
    if problems:
        option = next(e.dimension.option for e in DIMENSIONS if e.name == name)
        reason, fix = problems[0]
        raise PlannerError(f"{option} {document_value(value)}: {reason}; {fix}")


def validate_split(req: "Request") -> None:
    """Pinned first/last stage layers: set together, a whole split of the layers over --pp."""
    pins, model = req.pins, req.model
    first, last = pins.first_stage_layers, pins.last_stage_layers
    if first is None or last is None or pins.pp is None:
        raise PlannerError("--first-stage-layers and --last-stage-layers are pinned together, with --pp")
    if first == last == 0:  # the even split
        if model.num_layers % pins.pp:
            raise PlannerError(
                f"--first-stage-layers 0 --last-stage-layers 0 (even): --pp {pins.pp} does not divide the "
                f"{model.num_layers} layers; leave them out to search an uneven split"
            )
        return
    if not end_stage_split_is_whole(model.num_layers, pins.pp, first, last):
        splits = ", ".join(f"{f}/{n}" for f, n in end_stage_splits(model.num_layers, pins.pp)) or "none"
        raise PlannerError(
            f"--first-stage-layers {first} --last-stage-layers {last}: the {model.num_layers} layers do not "
            f"split over --pp {pins.pp} with those ends (the middle stages share the rest evenly); "
            f"searched first/last: {splits}"
        )
    raise_first_reason(
        req, "first_stage_layers", first, pp=pins.pp, last_stage_layers=last, vpp=pins.vpp or 1
    )


def recompute_pins(recompute: str | None, layers: int | None, modules: object) -> dict[str, object]:
    """The recompute pins of ``--recompute``, ``--recompute-layers`` and ``--recompute-modules``
    (one-line errors naming the option and what works). ``--recompute-layers`` implies full
    recompute and ``--recompute-modules`` selective; ``--recompute full`` alone still means every
    layer and ``--recompute selective`` alone Megatron's default module (``core_attn``)."""
    valid = [r.value for r in Recompute]
    if recompute is not None and recompute not in valid:
        raise PlannerError(f"--recompute {recompute!r}: use one of {', '.join(valid)}")
    mode = None if recompute is None else Recompute(recompute)
    if layers is not None:
        check_number(layers, "--recompute-layers")
        if mode not in (None, Recompute.FULL):
            raise PlannerError(
                f"--recompute-layers {layers} recomputes whole layers: it goes with --recompute full "
                "(or no --recompute), not --recompute " + recompute
            )
    parsed = None
    if modules is not None:
        parsed = parse_modules(modules, "--recompute-modules")
        if not parsed:
            raise PlannerError(
                "--recompute-modules needs at least one module: "
                + ", ".join(m.value for m in RecomputeModule)
            )
        if mode not in (None, Recompute.SELECTIVE):
            raise PlannerError(
                "--recompute-modules recomputes parts of every layer: it goes with --recompute selective "
                f"(or no --recompute), not --recompute {recompute}"
            )
    if layers is not None and parsed is not None:
        raise PlannerError(
            "--recompute-layers (full recompute of N layers) and --recompute-modules (selective "
            "recompute) are two different modes; pin one"
        )
    return {"recompute": mode, "recompute_num_layers": layers, "recompute_modules": parsed}


def validate_recompute(req: "Request") -> None:
    """Pinned recompute the framework can run (its first reason otherwise), and a pinned
    ``--recompute-layers`` that fits in some model chunk the pins leave."""
    pins, model = req.pins, req.model
    if pins.recompute_num_layers or pins.recompute_modules:
        option = "--recompute-layers" if pins.recompute_num_layers else "--recompute-modules"
        mode = Recompute.FULL if pins.recompute_num_layers else Recompute.SELECTIVE
        probe = SimpleNamespace(
            recompute=mode,
            recompute_num_layers=pins.recompute_num_layers or 0,
            recompute_modules=pins.recompute_modules or (),
            activation_offload=bool(pins.activation_offload),
        )
        problems = problems_within(
            frozenset({Group.ACTIVATIONS}), req.training.framework, model, req.training, probe
        )
        if problems:
            reason, fix = problems[0]
            raise PlannerError(f"{option}: {reason}" + (f"; {fix}" if fix else ""))
    n = pins.recompute_num_layers
    if not n:
        return
    vpp = pins.vpp or 1
    pps = [pins.pp] if pins.pp else [p for p in pipeline_sizes(model) if (req.gpus % p == 0)]
    largest = max(
        (
            max(stage_layer_counts(model.num_layers, p, first, last) if first else (model.num_layers // p,))
            // vpp
            for p in pps
            for first, last in pipeline_splits(model, p, vpp)
        ),
        default=model.num_layers,
    )
    if n > largest:
        raise PlannerError(
            f"--recompute-layers {n}: the model chunks these pins leave hold at most {largest} layers "
            f"(layers / (pp * vpp)); use 1 to {largest}, or --recompute full for every layer"
        )


def validate_sequence_parallel(req: "Request") -> None:
    """A pinned tp whose sequence parallelism the framework cannot run (Megatron: tp dividing each
    context-parallel rank's tokens, ``rules.sequence_parallel_reasons``) with the pinned cp, or
    with cp 1 when cp is searched (a tp that does not divide the sequence divides no part of it)."""
    pins = req.pins
    if pins.tp is None or not sequence_parallel_of(pins.tp, pins.sequence_parallel):
        return
    cp = pins.cp or 1

    def problems(tp: int) -> list[tuple[str, str]]:
        sequence_parallel = sequence_parallel_of(tp, pins.sequence_parallel)
        probe = mesh_probe(tp=tp, cp=cp, sequence_parallel=sequence_parallel)
        return problems_within(LAYOUT_MESH, req.training.framework, req.model, req.training, probe)

    found = problems(pins.tp)
    if found:
        reason, fix = found[0]
        domain = req.hardware.nvlink_domain_gpus
        works = [
            t
            for t in valid_tp(req.model)
            if req.gpus % (t * cp) == 0 and (pins.max_tp or domain % t == 0) and not problems(t)
        ]
        with_cp = f" (with --cp {cp})" if cp > 1 else ""
        raise PlannerError(f"--tp {pins.tp}: {reason}; use one of {works}{with_cp} {fix}")


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
        reason = tensor_parallel_reasons(model, pins.tp)[0]  # valid_tp: exactly the tp with none
        raise PlannerError(f"--tp {pins.tp} {reason}; use one of {valid_tp(model)}")
    domain = req.hardware.nvlink_domain_gpus
    if pins.tp is not None and pins.max_tp is None and nvlink_tp_reason(pins.tp, domain):
        raise PlannerError(
            f"--tp {pins.tp} {nvlink_tp_reason(pins.tp, domain)}; use one of "
            f"{[t for t in valid_tp(model) if domain % t == 0]} or add --allow-inter-node-tp"
        )
    sizes = pipeline_sizes(model)
    if pins.pp is not None and pins.pp not in sizes:
        shown = ", ".join(map(str, sizes[:16])) + (", ..." if len(sizes) > 16 else "")
        raise PlannerError(
            f"--pp {pins.pp} cannot split the {model.num_layers} layers (evenly, or with the first and "
            f"last stages up to {MAX_END_STAGE_TRIM} layers lighter); use one of {shown}"
        )
    if pins.pp is not None and model.num_layers % pins.pp:  # only uneven splits: can the framework?
        first, last = pipeline_splits(model, pins.pp, 1)[0]
        raise_first_reason(req, "first_stage_layers", first, pp=pins.pp, last_stage_layers=last)
    if pins.first_stage_layers is not None or pins.last_stage_layers is not None:
        validate_split(req)
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
    validate_sequence_parallel(req)
    if pins.vpp is not None and pins.vpp > 1:
        pp_choices = [pins.pp] if pins.pp else [p for p in sizes if p > 1]
        if not any(pipeline_splits(model, p, pins.vpp) for p in pp_choices if p > 1):
            raise PlannerError(
                f"--vpp {pins.vpp}: every pipeline rank's layers must split into {pins.vpp} chunks "
                f"(pp * vpp dividing the {model.num_layers} layers, or uneven ends that allow it), "
                "with pp above 1"
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
    if pins.etp is not None and pins.etp > 1:
        raise_first_reason(req, "etp", pins.etp)
    if pins.dispatcher is Dispatcher.FLEX:  # with the largest ep unless pinned: is any layout possible?
        raise_first_reason(
            req, "dispatcher", pins.dispatcher, ep=pins.ep or max(valid_ep(model)), etp=pins.etp or 1
        )
    if pins.sequence_parallel and pins.tp == 1:
        raise PlannerError("--sequence-parallel needs --tp above 1")
    validate_recompute(req)
