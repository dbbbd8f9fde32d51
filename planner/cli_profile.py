"""``plan profile`` and ``plan calibrate``: hardware profiles from this machine or from measured runs."""

from pathlib import Path

import click
import yaml

from planner.cli_options import CONTEXT, one_line_errors
from planner.errors import PlannerError
from planner.hardware import hardware_from_mapping, hardware_to_mapping
from planner.io import write_atomic
from planner.profiler import run_profile
from planner.specs import HardwareSpec

DEFAULT_BUDGET_S = 120.0


def emit_profile(hardware: HardwareSpec, output: Path | None) -> None:
    """The profile as YAML: into ``output`` (atomically) or on stdout."""
    mapping = hardware_to_mapping(hardware)
    hardware_from_mapping(mapping, hardware.name)  # never write a profile that --gpu would refuse
    text = yaml.safe_dump(mapping, sort_keys=False, width=1000)
    if output is None:
        click.echo(text, nl=False)
        return
    write_atomic(output, text)
    click.echo(f"wrote {output}; plan with it: plan --gpu {output} --gpus N MODEL", err=True)


@click.command("profile", context_settings=CONTEXT)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Profile YAML to write."
)
@click.option("--small", is_flag=True, help="A tiny version of every benchmark (seconds; for tests).")
@click.option(
    "--device",
    type=click.Choice(["cuda", "cpu"]),
    default="cuda",
    show_default=True,
    help="cpu runs the same code on the CPU (CPU numbers, marked as such).",
)
@click.option(
    "--seconds",
    type=float,
    default=DEFAULT_BUDGET_S,
    show_default=True,
    help="Time budget; points beyond it are skipped (and said so).",
)
@one_line_errors
def profile_command(output: Path | None, small: bool, device: str, seconds: float) -> None:
    """Measure this machine's GPU and write a hardware profile that --gpu reads.

    GEMMs (bf16, fp8 where the GPU has it) over transformer-layer shapes, FlashAttention forward
    and backward, device-memory copy bandwidth and, with more than one GPU visible, NCCL
    collectives; medians of CUDA-event timings after a warm-up, with the device, driver, CUDA and
    torch versions. Needs PyTorch and a CUDA GPU; progress goes to stderr, the profile to FILE (or
    stdout). A benchmark that fails is left out and its error recorded in the provenance.

    \b
    Examples:
      plan profile -o h200.yaml && plan --gpu h200.yaml --gpus 64 llama3-70b
      plan profile --small --device cpu        # the code path on a laptop, in seconds
    """
    if not 0 < seconds < float("inf"):
        raise PlannerError(f"--seconds must be a positive number of seconds, got {seconds}")
    hardware = run_profile(device, small, seconds, lambda line: click.echo(line, err=True))
    emit_profile(hardware, output)
