"""``plan profile`` and ``plan calibrate``: hardware profiles from this machine or from measured runs."""

import datetime
import shlex
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import yaml

from planner.cli_options import CONTEXT, one_line_errors
from planner.errors import PlannerError
from planner.fit import RunError, at_bounds, check_names, default_fit, fit_constants, run_errors
from planner.hardware import hardware_from_mapping, hardware_to_mapping
from planner.io import check_output_file, load_hardware, read_mapping, write_atomic
from planner.profile import HardwareProfile, rounded
from planner.profiler import run_profile
from planner.runs import runs_from_list
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
    write_atomic(output, text, option="-o")
    click.echo(
        f"wrote {output}; plan with it: plan --gpu {shlex.quote(str(output))} --gpus N MODEL", err=True
    )


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
    if output is not None:  # before minutes of benchmarks
        check_output_file(output, "-o")
    if not 0 < seconds < float("inf"):
        raise PlannerError(f"--seconds must be a positive number of seconds, got {seconds}")
    hardware = run_profile(device, small, seconds, lambda line: click.echo(line, err=True))
    emit_profile(hardware, output)


def render_calibration(errors: list[RunError], names: list[str], before: Any, after: Any) -> str:
    """The per-run errors, their medians and the constants, before and after."""
    width = max(len("run"), *(len(e.name) for e in errors))
    lines = [f"{'run':<{width}}  measured s   before s    error    after s    error"]
    for e in errors:
        lines.append(
            f"{e.name:<{width}}  {e.measured_s:>10.3f} {e.before_s:>10.3f} {e.before_error:>+8.1%} "
            f"{e.after_s:>10.3f} {e.after_error:>+8.1%}"
        )
    median_before = statistics.median(abs(e.before_error) for e in errors)
    median_after = statistics.median(abs(e.after_error) for e in errors)
    lines.append(f"median |error|: {median_before:.1%} before, {median_after:.1%} after")
    lines.append(f"{'constant':<28}{'before':>12}{'after':>12}")
    lines += [f"{name:<28}{getattr(before, name):>12.4g}{getattr(after, name):>12.4g}" for name in names]
    return "\n".join(lines)


@click.command("calibrate", context_settings=CONTEXT)
@click.argument("runs_file", metavar="RUNS.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--gpu",
    "gpu_name",
    metavar="NAME|FILE",
    help="GPU preset or hardware/profile file the profile is for, and of runs without a gpu key "
    "(default: the runs' GPU).",
)
@click.option(
    "--fit",
    "fit_names",
    metavar="NAME,...",
    help=f"StepTimeConstants to fit, comma-separated (default: {', '.join(default_fit())}).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Profile YAML to write."
)
@one_line_errors
def calibrate_command(
    runs_file: Path, gpu_name: str | None, fit_names: str | None, output: Path | None
) -> None:
    """Fit the step-time model's constants to your own measured training steps.

    RUNS.yaml lists runs: model, gpu, gpus, the plan document's parallelism keys (tp, pp, dp, ...,
    zero_stage, recompute, micro_batch_size), seq_len, global_batch, precision, and the measured
    step_time_s or tokens_per_s. A bounded derivative-free search minimizes the mean |log error|;
    the per-run and median errors are printed before and after. -o writes a hardware profile with
    the fitted constants, which --gpu then plans with.

    \b
    Example:
      plan calibrate examples/calibration/mpt-7b-a100.yaml -o my-a100.yaml
      plan --gpu my-a100.yaml --gpus 64 llama3-8b
    """
    if output is not None:
        check_output_file(output, "-o")
    runs = runs_from_list(read_mapping(runs_file), str(runs_file), runs_file.parent, gpu_name)
    base = load_hardware(gpu_name) if gpu_name else runs[0].hardware
    others = sorted({run.hardware.name for run in runs if run.hardware != base})
    if not gpu_name and others:
        raise PlannerError(
            f"{runs_file}: runs use several GPUs ({base.name}, {', '.join(others)}); pass --gpu to "
            "say which one the profile is for"
        )
    names = [n.strip() for n in fit_names.split(",") if n.strip()] if fit_names else default_fit()
    check_names(names)
    start = base.step_constants
    fitted = fit_constants(runs, start, names)
    fitted = replace(fitted, **{name: rounded(getattr(fitted, name)) for name in names})
    errors = run_errors(runs, start, fitted)
    click.echo(f"fitting {', '.join(names)} to {len(runs)} runs ({base.name})")
    click.echo(render_calibration(errors, names, start, fitted))
    for name in at_bounds(fitted, start, names):
        click.echo(
            f"note: {name} ended at the edge of its range: these runs do not pin it down; fit fewer "
            "constants (--fit) or add runs that vary what it governs",
            err=True,
        )
    if output is None:
        click.echo("no -o: the profile is not written", err=True)
        return
    profile = base.profile or HardwareProfile()
    median_after = statistics.median(abs(e.after_error) for e in errors)
    profile = replace(
        profile,
        constants={**profile.constants, **{name: getattr(fitted, name) for name in names}},
        provenance={
            **profile.provenance,
            "constants": f"fit: plan calibrate {runs_file} {datetime.date.today().isoformat()} "
            f"({len(runs)} runs, median |error| {median_after:.1%})",
        },
    )
    emit_profile(replace(base, profile=profile), output)
