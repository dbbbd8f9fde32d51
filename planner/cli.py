"""The ``plan`` commands: option parsing, one call into the library, rendering.

``plan [OPTIONS] MODEL`` plans training (the default command, ``plan train``); ``plan sweep``,
``plan compare`` and ``plan serve`` answer the capacity and serving questions.
"""

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import yaml

from planner.checkpoint import parse_interval
from planner.cli_capacity import compare_command, sweep_command
from planner.cli_options import (
    CONTEXT,
    build_hardware,
    build_training,
    hardware_option,
    one_line_errors,
    pin_help,
    positive,
    size_pin_options,
    size_pins,
    training_options,
)
from planner.cli_profile import calibrate_command, profile_command
from planner.cli_progress import TerminalProgress
from planner.cli_serve import serve_command
from planner.defaults import with_default_batch
from planner.document import document, document_and_launch
from planner.errors import DOES_NOT_FIT_EXIT_CODE, USAGE_EXIT_CODE
from planner.fileset import check_output_dir, write_file_set
from planner.io import check_output_file, load_model, write_atomic
from planner.known_accuracy import accuracy_for
from planner.launch import refusals
from planner.layout import summary
from planner.numbers import check_finite_document, json_text
from planner.plan import Request, run
from planner.quoting import escaped
from planner.report import RUNNERS_UP, plan_report
from planner.space import Pins
from planner.specs import Dispatcher, Framework, Recompute, ZeroStage
from planner.validate import recompute_pins


def render_table(doc: dict[str, Any]) -> str:
    """A readable summary of the plan document."""
    lines = [
        f"status: {doc['status']}",
        f"model: {doc['model']['name']} ({doc['model']['family']}), "
        f"{doc['model']['params']:,} parameters ({doc['model']['params'] / 1e9:.2f} B)",
        f"cluster: {doc['cluster']['gpus']} x {doc['cluster']['gpu']}, "
        f"{doc['cluster']['mem_gib']:.1f} GiB each, {doc['cluster']['gpus_per_node']} per node",
        f"training: seq {doc['training']['seq_len']}, global batch {doc['training']['global_batch_size']} "
        f"sequences, {doc['training']['precision']}, {doc['training']['framework']}"
        + (", bf16 gradients" if doc["training"].get("grad_reduce_in_bf16") else ""),
    ]
    if "global_batch_note" in doc["training"]:
        lines.append(f"  global batch: {doc['training']['global_batch_note']}")
    if "parallelism" in doc:
        p, m, perf = doc["parallelism"], doc["memory_gib"], doc["performance"]
        label = "closest plan (least memory)" if doc["status"] == "infeasible" else "plan"
        lines += [
            f"{label}: {summary(p)}",
            f"memory per GPU (stage {m['most_loaded_stage']}, GiB):",
        ]
        for key in ("weights", "gradients", "optimizer", "activations", "reserve", "total", "capacity"):
            lines.append(f"  {key:<12}{m[key]:>9.2f}")
        lines.append(
            f"  fits: {'yes' if doc['fits'] else 'NO'} (largest term: {doc['dominant_memory_term']})"
        )
        lines += [
            f"step: {perf['step_time_s']:.2f} s, {perf['tokens_per_s']:,.0f} tokens/s, "
            f"{perf['tflops_per_gpu']:.0f} TFLOP/s per GPU, MFU {perf['mfu']:.1%}, HFU {perf['hfu']:.1%}",
            "  breakdown (s): " + ", ".join(f"{k} {v:.3f}" for k, v in perf["breakdown"].items()),
        ]
    if "checkpoint" in doc:
        lines.append(checkpoint_line(doc["checkpoint"]))
    for alt in doc.get("alternatives", []):
        p, perf = alt["parallelism"], alt["performance"]
        lines.append(
            f"alternative: {summary(p, 'brief')}: {perf['step_time_s']:.2f} s, "
            f"{alt['memory_gib']['total']:.1f} GiB"
        )
    if "diagnosis" in doc:
        fixes = doc["diagnosis"]
        lines.append("does not fit. Smallest changes that would:")
        if "min_gpus_at_this_memory" in fixes:
            lines.append(f"  --gpus {fixes['min_gpus_at_this_memory']} (fewest GPUs at this memory)")
        if "min_mem_gib_at_this_gpu_count" in fixes:
            lines.append(
                f"  {fixes['min_mem_gib_at_this_gpu_count']:.1f} GiB per GPU at this GPU count "
                "(reserve included)"
            )
        if "unpinned_plan" in fixes:
            lines.append(f"  without the pinned options: {summary(fixes['unpinned_plan'], 'brief')}")
        if "offload_plan" in fixes:
            lines.append(f"  --allow-offload: {summary(fixes['offload_plan'], 'brief')}")
        if "max_seq_len_that_fits" in fixes:
            lines.append(f"  --seq-len {fixes['max_seq_len_that_fits']} (longest sequence that fits)")
        if "not_searched" in fixes:
            lines.append(
                f"  not searched ({fixes['not_searched_reason']}): {', '.join(fixes['not_searched'])}"
            )
    s = doc["solver"]
    timing = f", {s['wall_time_s']:.3f} s" if "wall_time_s" in s else ""
    lines.append(f"solver: {s['method']}, {s['candidates']} candidates{timing}")
    if "shortfall" in s:
        lines.append(f"  {s['plans_returned']} of {s['plans_requested']} plans: {s['shortfall']}")
    lines += [f"warning ({w['code']}): {w['message']}" for w in doc.get("warnings", [])]
    return "\n".join(lines)


def checkpoint_line(c: dict[str, Any]) -> str:
    """The checkpoint block in one or two lines."""
    line = (
        f"checkpoint ({c['format']}): {c['full_gib']:,.1f} GiB (weights {c['weights_gib']:,.1f}, "
        f"optimizer {c['optimizer_gib']:,.1f}), largest rank shard {c['largest_rank_shard_gib']:,.2f} GiB; "
        f"every {c['interval_steps']} steps ({c['interval_minutes']:,.1f} min)"
    )
    if "save_time_s" in c:
        line += (
            f"\n  save {c['save_time_s']:,.1f} s at {c['storage_gbps']:g} GB/s: "
            f"{c['time_lost_fraction']:.2%} of training time"
        )
    return line


def render(doc: dict[str, Any], fmt: str) -> str:
    """Text for ``--format``."""
    if fmt == "json":
        return json_text(doc)
    if fmt == "yaml":
        check_finite_document(doc)
        return yaml.safe_dump(doc, sort_keys=False)
    return render_table(doc)


class DefaultCommandGroup(click.Group):
    """A group whose first argument may be a model instead of a command: ``plan --gpus 64 MODEL``
    runs ``plan train --gpus 64 MODEL``."""

    default_command = "train"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help", "--version"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Usage errors as one line ``Error: ...`` on stderr with exit status 2 (click's own
        handler prints ``Usage:`` and ``Try ...`` lines around it)."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            click.echo(f"Error: {escaped(' '.join(exc.format_message().split()))}", err=True)
            sys.exit(USAGE_EXIT_CODE)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=DefaultCommandGroup, context_settings=CONTEXT)
@click.version_option(package_name="parallelism-planner")
def main() -> None:
    """Plan how to split a model over a GPU cluster for training, and what it takes to serve it.

    \b
    plan [train] --gpus N MODEL   the best TP/PP/DP/ZeRO/recompute/micro-batch plan (default)
    plan sweep MODEL              GPU counts and types: throughput, days, GPU-hours, cost, chart
    plan compare A.yaml B.yaml    two plans, term by term
    plan serve MODEL              serving memory: weights, KV cache, largest batch and context
    plan profile -o FILE          measure this machine's GPU: a hardware profile for --gpu FILE
    plan calibrate RUNS.yaml      fit the step-time constants to your measured runs

    \b
    Examples:
      plan --gpus 64 --mem 80GB examples/llama2-13b.yaml
      plan sweep llama3-70b --gpus 64..2048 --gpu a100-80gb --gpu h100-80gb --tokens 2T --chart s.png
      plan serve llama3-70b --gpu h100-80gb --context 32k --batch 8
    """


@main.command("train", context_settings=CONTEXT)
@click.argument("model")
@click.option("--gpus", type=int, required=True, help="Number of GPUs.")
@hardware_option()
@size_pin_options
@click.option(
    "--offload",
    type=click.Choice(["none", "optimizer", "activations", "both"]),
    help="Pin CPU offload of the optimizer and/or the activations.",
)
@click.option(
    "--allow-offload", is_flag=True, help="Let the search offload the optimizer or activations to the CPU."
)
@click.option("--zero", type=click.IntRange(0, 3), help=pin_help("zero_stage"))
@click.option("--recompute", type=click.Choice([r.value for r in Recompute]), help=pin_help("recompute"))
@click.option("--recompute-modules", help=pin_help("recompute_modules"))
@click.option("--dispatcher", type=click.Choice([d.value for d in Dispatcher]), help=pin_help("dispatcher"))
@training_options
@click.option(
    "--sequence-parallel/--no-sequence-parallel",
    default=None,
    help="Megatron sequence parallelism (default: on when tp > 1 with --framework megatron).",
)
@click.option("--allow-inter-node-tp", is_flag=True, help="Let tp exceed the GPUs of one node.")
@click.option(
    "--top", type=click.IntRange(1, 100), default=1, show_default=True, help="Return the K best plans."
)
@click.option("--exhaustive", is_flag=True, help="Brute-force enumeration instead of CP-SAT (same answer).")
@click.option(
    "--time-limit", type=float, help="CP-SAT time limit in seconds (then status may be 'feasible')."
)
@click.option(
    "--timing",
    is_flag=True,
    help="Add the solver's wall time (solver.wall_time_s); the output then differs between runs.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "yaml", "json"]),
    help="Output format (default: table on a terminal, else yaml).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML page for the planning meeting: the question, the plan and its "
    "runners-up, memory and step-time charts, checkpoints, assumptions and known accuracy.",
)
@click.option(
    "--checkpoint-interval",
    help="Save interval for checkpoint planning and the launch files: steps (500) or time (30min, 2h).",
)
@click.option(
    "--storage-gbps",
    type=float,
    help="Aggregate checkpoint write bandwidth in GB/s: adds the save time and the share of training lost.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write plan.yaml and the launch files (megatron.sh, megatron_args.txt, slurm.sbatch, "
    "deepspeed.json, deepspeed.sh, torchtitan.sh, torchtitan.sbatch: those of the frameworks that "
    "can run the plan) into this directory.",
)
@one_line_errors
def train(
    model: str,
    gpus: int,
    gpu_name: str,
    mem: str | None,
    gpus_per_node: int | None,
    offload: str | None,
    allow_offload: bool,
    zero: int | None,
    recompute: str | None,
    recompute_modules: str | None,
    dispatcher: str | None,
    seq_len: int | None,
    global_batch: int | None,
    precision: str,
    framework: str,
    flash_attention: bool,
    reserve: str,
    moe_capacity_factor: float | None,
    overlap_grad_reduce: bool,
    overlap_param_gather: bool,
    overlap_moe_expert_parallel_comm: bool,
    tp_comm_overlap: bool,
    grad_reduce_in_bf16: bool,
    sequence_parallel: bool | None,
    allow_inter_node_tp: bool,
    top: int,
    exhaustive: bool,
    time_limit: float | None,
    timing: bool,
    report: Path | None,
    checkpoint_interval: str | None,
    storage_gbps: float | None,
    fmt: str | None,
    output: Path | None,
    **sizes: int | None,
) -> None:
    """Plan how to split a model over a GPU cluster for training.

    MODEL is a Hugging Face config.json (or the same keys in YAML) or the name of a bundled
    example (llama2-13b, llama3-70b, ...). Every dimension not pinned (--tp, --pp, --dp, --cp,
    --vpp, --ep, --etp, --dispatcher, --zero, --recompute, --recompute-layers, --recompute-modules,
    --mbs) is searched by CP-SAT for the shortest step time whose memory fits.
    Exit status: 0 a plan fits, 1 nothing fits (the closest plan and the smallest fix are
    printed), 2 bad input.

    \b
    Examples:
      plan --gpus 64 --mem 80GB examples/llama2-13b.yaml
      plan --gpus 64 --gpu a100-80gb --tp 2 --pp 1 --zero 1 --recompute selective --mbs 1 llama2-13b
      plan --gpus 1024 --gpu h100-80gb --seq-len 8192 --top 3 --format json llama3-70b
    """
    if output is not None:
        check_output_dir(output)
    if report is not None:
        check_output_file(report, "--report")
    spec = load_model(model)
    hardware = build_hardware(gpu_name, mem, gpus_per_node)
    positive(
        ("--gpus", gpus),
        *size_pins(sizes),
        ("--time-limit", time_limit),
    )
    training = build_training(
        spec,
        seq_len,
        global_batch,
        precision,
        framework,
        flash_attention,
        reserve,
        moe_capacity_factor,
        overlap_grad_reduce,
        overlap_param_gather,
        tp_comm_overlap,
        overlap_moe_expert_parallel_comm,
        grad_reduce_in_bf16,
    )
    if sequence_parallel is None and training.framework is Framework.DEEPSPEED:
        sequence_parallel = False  # DeepSpeed has no Megatron-style sequence parallelism
    pins = Pins(
        **(sizes | recompute_pins(recompute, sizes["recompute_num_layers"], recompute_modules)),
        optimizer_offload=None if offload is None else offload in ("optimizer", "both"),
        activation_offload=None if offload is None else offload in ("activations", "both"),
        allow_offload=allow_offload,
        zero_stage=None if zero is None else ZeroStage(zero),
        dispatcher=None if dispatcher is None else Dispatcher(dispatcher),
        sequence_parallel=sequence_parallel,
        max_tp=gpus if allow_inter_node_tp else None,
    )
    batch_note = None
    if global_batch is None:
        training, batch_note = with_default_batch(spec, training, gpus, pins, hardware.nvlink_domain_gpus)
    req = Request(
        model=spec,
        hardware=hardware,
        training=training,
        global_batch_note=batch_note,
        gpus=gpus,
        pins=pins,
        top=top,
        exhaustive=exhaustive,
        time_limit_s=time_limit,
        timing=timing,
        constants=hardware.step_constants,
        checkpoint=parse_interval(checkpoint_interval, storage_gbps),
    )
    progress = TerminalProgress()  # the diagnosis, when nothing fits, can take seconds
    try:
        outcome = run(req, progress=progress)
    finally:
        progress.done()
    doc, launch = document_and_launch(req, outcome)
    text = render(doc, fmt or ("table" if sys.stdout.isatty() else "yaml"))
    if report is not None:  # the runners-up on the page even when --top asks for fewer
        shown = doc if top > RUNNERS_UP else document(req, run(replace(req, top=RUNNERS_UP + 1)))
        page = plan_report(shown, accuracy_for(spec.is_moe, training.precision))
        write_atomic(report, page, option="--report")
    if output is not None:  # written before anything is printed: a failure prints no plan
        plan_text = render(doc, "yaml")
        files = {"plan.yaml": plan_text, **(launch.files if launch else {})}
        kept = write_file_set(output, files, [n for n in files if n.endswith((".sh", ".sbatch"))])
    click.echo(text)
    if report is not None:
        click.echo(f"wrote {report}", err=True)
    if output is not None:
        click.echo(f"wrote {', '.join(files)} to {output}", err=True)
        for folder in kept:
            click.echo(f"plan: kept {folder}: it holds files plan did not write", err=True)
        for line in refusals(doc.get("launch", {})):
            click.echo(line, err=True)
    if doc["status"] == "infeasible":
        sys.exit(DOES_NOT_FIT_EXIT_CODE)


main.add_command(sweep_command)
main.add_command(compare_command)
main.add_command(serve_command)
main.add_command(profile_command)
main.add_command(calibrate_command)


def entry() -> None:
    """The ``plan`` console script: ``main``, then, its output flushed, the process ends without
    the interpreter's teardown (``os._exit``). Tearing down OR-Tools, pandas and numpy after a
    search takes 0.1 to 0.2 s (``python -c "import ortools.sat.python.cp_model"``: 0.56 s, against
    0.45 s ended so, on the development machine), and nothing the planner leaves needs it: every
    file it writes is closed when written (``io.write_atomic``), its worker processes are joined
    (``planner.workers``), it registers no exit handler. What escapes ``main`` (a bug's traceback,
    Ctrl-C) goes the usual way."""
    try:
        main()
        code: Any = 0
    except SystemExit as done:
        code = done.code
    if not isinstance(code, int):  # as Python's own exit: None is 0, a message is printed and 1
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the reader took what it wanted
            pass
    os._exit(code)
