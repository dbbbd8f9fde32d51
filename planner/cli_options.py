"""Options and helpers shared by the ``plan`` commands (only CLI modules import click)."""

import functools
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click

from planner.defaults import default_seq_len, target_global_batch
from planner.errors import PlannerError
from planner.io import load_hardware, parse_reserve, parse_size
from planner.layout import DIMENSIONS
from planner.numbers import check_number
from planner.quoting import escaped
from planner.specs import Framework, HardwareSpec, ModelSpec, Precision, TrainingSpec

DEFAULT_GPU = "h100-80gb"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def hardware_option(multiple: bool = False) -> Callable:
    """``--gpu`` (one, or repeatable), ``--mem`` and ``--gpus-per-node``."""

    def decorate(f: Callable) -> Callable:
        f = click.option("--gpus-per-node", type=int, help="GPUs per node (default: the preset's, 8).")(f)
        f = click.option(
            "--mem", help="Memory per GPU, overriding the preset: 80GB, 80GiB, 81920MiB, 1.5TB."
        )(f)
        return click.option(
            "--gpu",
            "gpu_names" if multiple else "gpu_name",
            multiple=multiple,
            default=(DEFAULT_GPU,) if multiple else DEFAULT_GPU,
            show_default=True,
            help="GPU preset (a100-40gb, a100-80gb, h100-80gb, h200, b200) or a hardware YAML file"
            + ("; repeat to compare types." if multiple else "."),
        )(f)

    return decorate


def training_options(f: Callable | None = None, *, many_seq_lens: bool = False) -> Callable:
    """Sequence, batch, precision, framework, attention kernel and reserve; ``many_seq_lens`` lets
    ``--seq-len`` take a comma-separated list."""
    if f is None:
        return functools.partial(training_options, many_seq_lens=many_seq_lens)
    seq_help = "Sequence length (default: the model's context, at most 8192)."
    for option in reversed(
        [
            click.option(
                "--seq-len",
                type=str if many_seq_lens else int,
                help=seq_help + (" A list (2048,8192) sweeps each." if many_seq_lens else ""),
            ),
            click.option("--global-batch", type=int, help="Global batch in sequences (default: ~4M tokens)."),
            click.option(
                "--precision",
                type=click.Choice([p.value for p in Precision]),
                default="bf16",
                show_default=True,
            ),
            click.option(
                "--framework",
                type=click.Choice([f.value for f in Framework]),
                default="megatron",
                show_default=True,
                help="Whose memory conventions to follow.",
            ),
            click.option(
                "--flash-attention/--no-flash-attention",
                default=True,
                show_default=True,
                help="Off keeps the a*s*s attention scores.",
            ),
            click.option(
                "--reserve",
                default="6%",
                show_default=True,
                help="Memory kept free for CUDA context, NCCL and fragmentation: a share (6%) or a size "
                "(6GiB).",
            ),
            click.option(
                "--moe-capacity-factor",
                type=float,
                help="MoE expert capacity as a multiple of the average load (drops, pads); default dropless.",
            ),
            click.option(
                "--overlap-grad-reduce/--no-overlap-grad-reduce",
                default=True,
                show_default=True,
                help="Gradient reduction overlapped with the backward (priced and emitted).",
            ),
            click.option(
                "--overlap-param-gather/--no-overlap-param-gather",
                default=True,
                show_default=True,
                help="Sharded optimizer: parameter all-gather overlapped with the forward.",
            ),
            click.option(
                "--overlap-moe-expert-parallel-comm/--no-overlap-moe-expert-parallel-comm",
                default=False,
                show_default=True,
                help="MoE dispatch overlapped with another micro-batch's compute (ep > 1; vpp > 1 with pp).",
            ),
            click.option(
                "--tp-comm-overlap/--no-tp-comm-overlap",
                default=False,
                show_default=True,
                help="TP collectives overlapped with GEMMs (Transformer Engine userbuffers; needs SP).",
            ),
            click.option(
                "--grad-reduce-in-bf16/--no-grad-reduce-in-bf16",
                default=False,
                show_default=True,
                help="Megatron: keep and reduce gradients in bf16 (2 B/param, half the DP traffic), "
                "as NVIDIA's performance recipes do; default: fp32 main gradients.",
            ),
        ]
    ):
        f = option(f)
    return f


def build_hardware(name: str, mem: str | None, gpus_per_node: int | None) -> HardwareSpec:
    """A preset or file, with the user's memory and node-size overrides."""
    hardware = load_hardware(name)
    if mem is not None:
        hardware = replace(hardware, memory_bytes=parse_size(mem, "--mem"))
    if gpus_per_node is not None:
        positive(("--gpus-per-node", gpus_per_node))
        # A domain of one node follows the node; a rack-wide domain (NVL72) stays.
        domain = gpus_per_node if hardware.nvlink_domain_gpus == hardware.gpus_per_node else None
        hardware = replace(
            hardware, gpus_per_node=gpus_per_node, nvlink_domain_gpus=domain or hardware.nvlink_domain_gpus
        )
    return hardware


def build_training(
    model: ModelSpec,
    seq_len: int | None,
    global_batch: int | None,
    precision: str,
    framework: str,
    flash_attention: bool,
    reserve: str,
    moe_capacity_factor: float | None = None,
    overlap_grad_reduce: bool = True,
    overlap_param_gather: bool = True,
    tp_comm_overlap: bool = False,
    overlap_moe_expert_parallel_comm: bool = False,
    grad_reduce_in_bf16: bool = False,
) -> TrainingSpec:
    """The training run, with the documented defaults (the global batch: ~4M tokens, which
    ``planner.defaults.default_global_batch`` adjusts to the GPU count when it is not given)."""
    positive(
        ("--seq-len", seq_len),
        ("--global-batch", global_batch),
        ("--moe-capacity-factor", moe_capacity_factor),
    )
    seq = seq_len or default_seq_len(model.max_position_embeddings)
    share, fixed = parse_reserve(reserve)
    return TrainingSpec(
        seq_len=seq,
        global_batch_size=global_batch or target_global_batch(seq),
        precision=Precision(precision),
        framework=Framework(framework),
        flash_attention=flash_attention,
        reserve_fraction=share,
        reserve_fixed_bytes=fixed,
        moe_capacity_factor=moe_capacity_factor,
        overlap_grad_reduce=overlap_grad_reduce,
        overlap_param_gather=overlap_param_gather and overlap_grad_reduce,
        tp_comm_overlap=tp_comm_overlap,
        overlap_moe_expert_parallel_comm=overlap_moe_expert_parallel_comm,
        grad_reduce_in_bf16=grad_reduce_in_bf16,
    )


SIZE_PINS = tuple(e for e in DIMENSIONS if e.dimension.option and e.type is int)
"""Dimensions pinned by an integer option (``--tp``, ``--mbs``, ...): generated from the registry."""


def size_pin_options(f: Callable) -> Callable:
    """One ``--OPTION N`` per integer dimension of ``planner.layout``; the values arrive by field name."""
    for entry in reversed(SIZE_PINS):
        f = click.option(entry.dimension.option, entry.name, type=int, help=entry.dimension.help)(f)
    return f


def size_pins(sizes: dict[str, int | None]) -> list[tuple[str, int | None]]:
    """(option, value) of the integer pins, for ``positive``."""
    return [(e.dimension.option, sizes[e.name]) for e in SIZE_PINS]


def pin_help(name: str) -> str:
    """``--help`` text of the option pinning dimension ``name``."""
    return next(e.dimension.help for e in DIMENSIONS if e.name == name)


def positive(*pairs: tuple[str, float | None]) -> None:
    """One-line errors for numeric options outside their range (``planner.numbers.RANGES``: finite,
    positive, not absurd) when given."""
    for option, value in pairs:
        if value is not None:
            check_number(value, option)


def one_line_errors(f: Callable) -> Callable:
    """Map library errors to ``Error: ...`` on stderr and their exit code; never a traceback."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except PlannerError as exc:
            click.echo(f"Error: {escaped(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:
            click.echo(f"Error: {escaped(str(exc.filename or ''))}: {exc.strerror or exc}", err=True)
            sys.exit(2)

    return wrapper


def parse_seq_lens(text: str | None) -> list[int | None]:
    """``--seq-len`` of a sweep: one length, a comma-separated list, or the model's default."""
    if text is None:
        return [None]
    try:
        values = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) <= 0:
        raise PlannerError(f"--seq-len {text!r}: use a positive length or a list such as 2048,4096,8192")
    positive(*(("--seq-len", value) for value in values))
    return values
