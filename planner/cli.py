"""The ``plan`` command: option parsing, one call into the library, rendering."""

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import yaml

from planner.errors import DOES_NOT_FIT_EXIT_CODE, PlannerError
from planner.io import load_hardware, load_model, parse_reserve, parse_size, write_atomic
from planner.plan import Request, document, launch_outputs, run
from planner.space import Pins
from planner.specs import Framework, Precision, Recompute, TrainingSpec, ZeroStage

DEFAULT_TOKENS_PER_STEP = 4 * 1024 * 1024  # ~4M tokens per step (GPT-3, Llama 2 recipes)
MAX_DEFAULT_SEQ_LEN = 8192  # long-context models are pre-trained mostly at 4-8k, then extended
DEFAULT_GPU = "h100-80gb"


def default_seq_len(max_positions: int) -> int:
    """The model's context, capped at 8192 tokens for training."""
    return min(max_positions, MAX_DEFAULT_SEQ_LEN)


def default_global_batch(seq_len: int) -> int:
    """About 4M tokens per step, in whole sequences."""
    return max(1, DEFAULT_TOKENS_PER_STEP // seq_len)


def render_table(doc: dict[str, Any]) -> str:
    """A readable summary of the plan document."""
    lines = [
        f"status: {doc['status']}",
        f"model: {doc['model']['name']} ({doc['model']['family']}), "
        f"{doc['model']['params']:,} parameters ({doc['model']['params'] / 1e9:.2f} B)",
        f"cluster: {doc['cluster']['gpus']} x {doc['cluster']['gpu']}, "
        f"{doc['cluster']['mem_gib']:.1f} GiB each, {doc['cluster']['gpus_per_node']} per node",
        f"training: seq {doc['training']['seq_len']}, global batch {doc['training']['global_batch_size']} "
        f"sequences, {doc['training']['precision']}, {doc['training']['framework']}",
    ]
    if "parallelism" in doc:
        p, m, perf = doc["parallelism"], doc["memory_gib"], doc["performance"]
        label = "closest plan (least memory)" if doc["status"] == "infeasible" else "plan"
        lines += [
            f"{label}: tp={p['tp']} pp={p['pp']} dp={p['dp']} zero={p['zero_stage']} "
            f"recompute={p['recompute']} mbs={p['micro_batch_size']} "
            f"grad_accum={p['grad_accum_steps']} sp={'on' if p['sequence_parallel'] else 'off'}",
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
    for alt in doc.get("alternatives", []):
        p, perf = alt["parallelism"], alt["performance"]
        lines.append(
            f"alternative: tp={p['tp']} pp={p['pp']} dp={p['dp']} zero={p['zero_stage']} "
            f"recompute={p['recompute']} mbs={p['micro_batch_size']}: {perf['step_time_s']:.2f} s, "
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
            p = fixes["unpinned_plan"]
            lines.append(
                f"  without the pinned options: tp={p['tp']} pp={p['pp']} dp={p['dp']} "
                f"zero={p['zero_stage']} recompute={p['recompute']} mbs={p['micro_batch_size']}"
            )
        if "max_seq_len_that_fits" in fixes:
            lines.append(f"  --seq-len {fixes['max_seq_len_that_fits']} (longest sequence that fits)")
    s = doc["solver"]
    lines.append(f"solver: {s['method']}, {s['candidates']} candidates, {s['wall_time_s']:.3f} s")
    return "\n".join(lines)


def render(doc: dict[str, Any], fmt: str) -> str:
    """Text for ``--format``."""
    if fmt == "json":
        return json.dumps(doc, indent=2)
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False)
    return render_table(doc)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("model")
@click.option("--gpus", type=int, required=True, help="Number of GPUs.")
@click.option(
    "--gpu",
    "gpu_name",
    default=DEFAULT_GPU,
    show_default=True,
    help="GPU preset (a100-40gb, a100-80gb, h100-80gb, h200, b200) or a hardware YAML file.",
)
@click.option("--mem", help="Memory per GPU, overriding the preset: 80GB, 80GiB, 81920MiB, 1.5TB.")
@click.option("--gpus-per-node", type=int, help="GPUs per node (default: the preset's, 8).")
@click.option("--tp", type=int, help="Pin tensor-parallel size.")
@click.option("--pp", type=int, help="Pin pipeline-parallel size.")
@click.option("--dp", type=int, help="Pin data-parallel size.")
@click.option(
    "--zero", type=click.IntRange(0, 3), help="Pin ZeRO stage (Megatron: 1 = distributed optimizer)."
)
@click.option(
    "--recompute", type=click.Choice([r.value for r in Recompute]), help="Pin activation recomputation."
)
@click.option("--mbs", type=int, help="Pin micro-batch size (sequences).")
@click.option("--seq-len", type=int, help="Sequence length (default: the model's context, at most 8192).")
@click.option("--global-batch", type=int, help="Global batch in sequences (default: ~4M tokens).")
@click.option(
    "--precision", type=click.Choice([p.value for p in Precision]), default="bf16", show_default=True
)
@click.option(
    "--framework",
    type=click.Choice([f.value for f in Framework]),
    default="megatron",
    show_default=True,
    help="Whose memory conventions to follow.",
)
@click.option(
    "--sequence-parallel/--no-sequence-parallel",
    default=None,
    help="Megatron sequence parallelism (default: on when tp > 1).",
)
@click.option(
    "--flash-attention/--no-flash-attention",
    default=True,
    show_default=True,
    help="Off keeps the a*s*s attention scores.",
)
@click.option(
    "--reserve",
    default="10%",
    show_default=True,
    help="Memory kept free for CUDA context, NCCL and fragmentation: a share (10%) or a size (6GiB).",
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
    "--format",
    "fmt",
    type=click.Choice(["table", "yaml", "json"]),
    help="Output format (default: table on a terminal, else yaml).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write plan.yaml into this directory.",
)
def main(
    model: str,
    gpus: int,
    gpu_name: str,
    mem: str | None,
    gpus_per_node: int | None,
    tp: int | None,
    pp: int | None,
    dp: int | None,
    zero: int | None,
    recompute: str | None,
    mbs: int | None,
    seq_len: int | None,
    global_batch: int | None,
    precision: str,
    framework: str,
    sequence_parallel: bool | None,
    flash_attention: bool,
    reserve: str,
    allow_inter_node_tp: bool,
    top: int,
    exhaustive: bool,
    time_limit: float | None,
    fmt: str | None,
    output: Path | None,
) -> None:
    """Plan how to split a model over a GPU cluster for training.

    MODEL is a Hugging Face config.json (or the same keys in YAML) or the name of a bundled
    example (llama2-13b, llama3-70b, ...). Every dimension not pinned (--tp, --pp, --dp, --zero,
    --recompute, --mbs) is searched by CP-SAT for the shortest step time whose memory fits.
    Exit status: 0 a plan fits, 1 nothing fits (the closest plan and the smallest fix are
    printed), 2 bad input.

    \b
    Examples:
      plan --gpus 64 --mem 80GB examples/llama2-13b.yaml
      plan --gpus 64 --gpu a100-80gb --tp 2 --pp 1 --zero 1 --recompute selective --mbs 1 llama2-13b
      plan --gpus 1024 --gpu h100-80gb --seq-len 8192 --top 3 --format json llama3-70b
    """
    try:
        spec = load_model(model)
        hardware = load_hardware(gpu_name)
        if mem is not None:
            hardware = replace(hardware, memory_bytes=parse_size(mem, "--mem"))
        if gpus_per_node is not None:
            if gpus_per_node <= 0:
                raise PlannerError(f"--gpus-per-node must be a positive integer, got {gpus_per_node}")
            hardware = replace(hardware, gpus_per_node=gpus_per_node)
        for option, value in (
            ("--gpus", gpus),
            ("--seq-len", seq_len),
            ("--global-batch", global_batch),
            ("--tp", tp),
            ("--pp", pp),
            ("--dp", dp),
            ("--mbs", mbs),
        ):
            if value is not None and value <= 0:
                raise PlannerError(f"{option} must be a positive integer, got {value}")
        if time_limit is not None and time_limit <= 0:
            raise PlannerError(f"--time-limit must be positive seconds, got {time_limit}")
        seq = seq_len or default_seq_len(spec.max_position_embeddings)
        share, fixed = parse_reserve(reserve)
        if sequence_parallel is None and framework == Framework.DEEPSPEED.value:
            sequence_parallel = False  # DeepSpeed has no Megatron-style sequence parallelism
        training = TrainingSpec(
            seq_len=seq,
            global_batch_size=global_batch or default_global_batch(seq),
            precision=Precision(precision),
            framework=Framework(framework),
            flash_attention=flash_attention,
            reserve_fraction=share,
            reserve_fixed_bytes=fixed,
        )
        pins = Pins(
            tp=tp,
            pp=pp,
            dp=dp,
            zero_stage=None if zero is None else ZeroStage(zero),
            recompute=None if recompute is None else Recompute(recompute),
            micro_batch_size=mbs,
            sequence_parallel=sequence_parallel,
            max_tp=gpus if allow_inter_node_tp else None,
        )
        req = Request(
            model=spec,
            hardware=hardware,
            training=training,
            gpus=gpus,
            pins=pins,
            top=top,
            exhaustive=exhaustive,
            time_limit_s=time_limit,
        )
        doc = document(req, run(req))
        fmt = fmt or ("table" if sys.stdout.isatty() else "yaml")
        click.echo(render(doc, fmt))
        if output is not None:
            files = {"plan.yaml": yaml.safe_dump(doc, sort_keys=False), **launch_outputs(req, doc)}
            for name, text in files.items():
                write_atomic(output / name, text, executable=name.endswith((".sh", ".sbatch")))
            click.echo(f"wrote {', '.join(files)} to {output}", err=True)
    except PlannerError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(f"Error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    if doc["status"] == "infeasible":
        sys.exit(DOES_NOT_FIT_EXIT_CODE)
