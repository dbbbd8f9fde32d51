"""A small, stable Python API: the documents ``plan``, ``plan sweep`` and ``plan serve`` print, for
scripts.

    from planner.api import plan, serve, sweep
    doc = plan("llama2-13b", gpus=64, mem="80GB")          # the plan document (README "The plan document")
    doc["parallelism"]["tp"], doc["fits"]
    sweep("llama3-8b", gpus="8..64", gpu=["a100-80gb", "h100-80gb"], tokens="1T")  # plan sweep --format json
    serve("llama3-70b", gpu="h100-80gb", context=32768)    # the serving document

Arguments mirror the CLI options (the same defaults, the same checks); every bad input raises
``PlannerError`` with the same one-line message and ``exit_code`` the CLI prints. The functions
build the request exactly as the CLI does (``planner.defaults`` for the global batch), so the
documents are equal, key for key.
"""

from dataclasses import replace
from typing import Any

from constraints.serving import NumberFormat
from planner.capacity import parse_gpu_counts, parse_prices, parse_tokens
from planner.capacity import sweep as sweep_points
from planner.defaults import default_seq_len, target_global_batch, with_default_batch
from planner.document import document
from planner.errors import PlannerError
from planner.io import load_hardware, load_model, parse_reserve, parse_size
from planner.plan import Request, run
from planner.serving import ServeSpec, check, choose_layout, serve_document
from planner.space import Pins
from planner.specs import (
    DEFAULT_RESERVE_FIXED_BYTES,
    DEFAULT_RESERVE_FRACTION,
    Dispatcher,
    HardwareSpec,
    Precision,
    TrainingSpec,
    ZeroStage,
)
from planner.validate import recompute_pins

__all__ = ["PlannerError", "plan", "serve", "sweep"]

DEFAULT_GPU = "h100-80gb"
DEFAULT_GENERATE = 512


def _hardware(gpu: str, mem: str | None) -> HardwareSpec:
    hardware = load_hardware(gpu)
    return hardware if mem is None else replace(hardware, memory_bytes=parse_size(mem, "--mem"))


def plan(
    model: str,
    gpus: int,
    *,
    gpu: str = DEFAULT_GPU,
    mem: str | None = None,
    seq_len: int | None = None,
    global_batch: int | None = None,
    precision: str = "bf16",
    reserve: str | None = None,
    zero: int | None = None,
    recompute: str | None = None,
    recompute_layers: int | None = None,
    recompute_modules: str | list[str] | None = None,
    dispatcher: str | None = None,
    top: int = 1,
    exhaustive: bool = False,
    time_limit_s: float | None = None,
    **sizes: int,
) -> dict[str, Any]:
    """The plan document of ``plan --gpus GPUS MODEL`` (``sizes``: tp, pp, dp, cp, vpp, ep, etp, mbs
    pins as in ``--tp`` ...; ``dispatcher``: ``alltoall`` or ``flex`` as ``--dispatcher``;
    ``recompute_layers`` and ``recompute_modules`` as ``--recompute-layers`` and
    ``--recompute-modules``, the modules as a list or ``"a,b"``)."""
    spec = load_model(model)
    hardware = _hardware(gpu, mem)
    unknown = sorted(set(sizes) - {"tp", "pp", "dp", "cp", "vpp", "ep", "etp", "mbs"})
    if unknown:
        raise PlannerError(
            f"unknown option(s) {', '.join(unknown)}; pins are tp, pp, dp, cp, vpp, ep, etp, mbs"
        )
    dispatchers = [d.value for d in Dispatcher]
    if dispatcher is not None and dispatcher not in dispatchers:
        raise PlannerError(f"dispatcher must be one of {', '.join(dispatchers)}, got {dispatcher!r}")
    for name, value in [("gpus", gpus), *sizes.items()]:
        if not isinstance(value, int) or value <= 0:
            raise PlannerError(f"{name} must be a positive integer, got {value!r}")
    training = _training(
        seq_len or default_seq_len(spec.max_position_embeddings), global_batch, precision, reserve
    )
    pins = Pins(
        **{("micro_batch_size" if k == "mbs" else k): v for k, v in sizes.items()},
        zero_stage=None if zero is None else ZeroStage(zero),
        **recompute_pins(recompute, recompute_layers, recompute_modules),
        dispatcher=None if dispatcher is None else Dispatcher(dispatcher),
    )
    note = None
    if global_batch is None:
        training, note = with_default_batch(spec, training, gpus, pins, hardware.nvlink_domain_gpus)
    req = Request(
        model=spec,
        hardware=hardware,
        training=training,
        gpus=gpus,
        pins=pins,
        top=top,
        exhaustive=exhaustive,
        time_limit_s=time_limit_s,
        constants=hardware.step_constants,
        global_batch_note=note,
    )
    return document(req, run(req))


def _training(seq: int, global_batch: int | None, precision: str, reserve: str | None) -> TrainingSpec:
    """The training run of ``plan`` and ``plan sweep``, with the CLI's defaults."""
    share, fixed = (
        (DEFAULT_RESERVE_FRACTION, DEFAULT_RESERVE_FIXED_BYTES) if reserve is None else parse_reserve(reserve)
    )
    return TrainingSpec(
        seq_len=seq,
        global_batch_size=global_batch or target_global_batch(seq),
        precision=Precision(precision),
        reserve_fraction=share,
        reserve_fixed_bytes=fixed,
    )


def sweep(
    model: str,
    gpus: str = "8..1024",
    *,
    gpu: str | list[str] = DEFAULT_GPU,
    mem: str | None = None,
    seq_len: int | list[int] | None = None,
    global_batch: int | None = None,
    precision: str = "bf16",
    reserve: str | None = None,
    tokens: str | None = None,
    price_per_gpu_hour: float | None = None,
    prices: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The document of ``plan sweep MODEL --gpus GPUS --format json``: ``rows``, ``min_gpus`` and
    ``scaling_baseline``. ``gpus`` takes the CLI's forms (``8..1024``, ``8..64x8``, ``8,16,48``),
    ``gpu`` one preset or file or a list of them, ``seq_len`` one length or a list, ``tokens`` a
    budget such as ``2T``, ``prices`` GPU-hour prices by GPU type (``price_per_gpu_hour`` for every
    type not named)."""
    spec = load_model(model)
    names = [gpu] if isinstance(gpu, str) else list(gpu)
    if not names:
        raise PlannerError("gpu: name at least one GPU preset or hardware file")
    hardwares = [_hardware(name, mem) for name in names]
    lengths = seq_len if isinstance(seq_len, list) else [seq_len]
    for value in [global_batch, *lengths]:
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise PlannerError(f"seq_len and global_batch must be positive integers, got {value!r}")
    trainings = [
        _training(seq or default_seq_len(spec.max_position_embeddings), global_batch, precision, reserve)
        for seq in lengths
    ]
    entries = tuple(f"{name}={price}" for name, price in (prices or {}).items())
    answer = sweep_points(
        spec,
        hardwares,
        trainings,
        parse_gpu_counts(gpus),
        tokens=parse_tokens(tokens) if tokens else None,
        prices=parse_prices(entries, price_per_gpu_hour),
        batch_given=global_batch is not None,
    )
    return answer.as_dict()


def serve(
    model: str,
    *,
    gpu: str = DEFAULT_GPU,
    mem: str | None = None,
    context: int = 2048,
    generate: int = DEFAULT_GENERATE,
    batch: int = 1,
    tp: int | None = None,
    pp: int | None = None,
    weights: str = "bf16",
    kv_cache: str = "bf16",
) -> dict[str, Any]:
    """The serving document of ``plan serve MODEL --context CONTEXT`` (tokens, prompt plus the
    ``generate`` generated)."""
    spec_model = load_model(model)
    hardware = _hardware(gpu, mem)
    if context <= generate:
        raise PlannerError(f"context {context} must exceed generate {generate}")
    spec = ServeSpec(
        weights=NumberFormat(weights),
        kv_cache=NumberFormat(kv_cache),
        prompt_tokens=context - generate,
        generate_tokens=generate,
        batch=batch,
        tp=tp or 1,
        pp=pp or 1,
    )
    check(spec_model, spec)
    layout = choose_layout(spec_model, hardware, spec, tp, pp)
    return serve_document(spec_model, hardware, replace(spec, tp=layout.tp, pp=layout.pp), layout.notes)
