"""``plan sweep`` and ``plan compare``: the numbers people bring to capacity meetings."""

import csv
import io
from pathlib import Path
from typing import Any

import click

from planner.capacity import (
    check_plan_document,
    compare,
    differing_context,
    parse_gpu_counts,
    parse_prices,
    parse_tokens,
    sweep,
)
from planner.chart import require_matplotlib, sweep_chart
from planner.cli_options import (
    CONTEXT,
    build_hardware,
    build_training,
    hardware_option,
    one_line_errors,
    parse_seq_lens,
    positive,
    training_options,
)
from planner.cli_progress import TerminalProgress
from planner.counts import count_params
from planner.io import check_output_file, load_model, read_mapping, write_atomic
from planner.known_accuracy import accuracy_for
from planner.layout import columns
from planner.numbers import json_text
from planner.report import sweep_report, training_summary
from planner.tables import cell, markdown_table, row_cells, text_table

SWEEP_COLUMNS = [
    "gpu",
    "seq_len",
    "gpus",
    "status",
    *(label for _, label in columns()),
    "mem_gib",
    "tokens_per_s",
    "mfu",
    "step_time_s",
    "scaling_efficiency",
    "days",
    "gpu_hours",
    "price_per_gpu_hour",
    "cost",
]
NUMERIC = {c for c in SWEEP_COLUMNS if c not in ("gpu", "status", "recompute")}


def render_sweep(
    rows: list[dict[str, Any]],
    smallest: list[dict[str, Any]],
    fmt: str,
    baselines: list[dict[str, Any]] | None = None,
) -> str:
    """Table, Markdown, CSV or JSON of a sweep; table and Markdown rounded for people, CSV and
    JSON exact."""
    baselines = baselines or []
    columns = [c for c in SWEEP_COLUMNS if any(c in r for r in rows)]
    if fmt == "json":
        return json_text({"rows": rows, "min_gpus": smallest, "scaling_baseline": baselines})
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    cells = [[cell(c, r.get(c)) for c in columns] for r in rows]
    if fmt == "markdown":
        lines = markdown_table(columns, cells, [c in NUMERIC for c in columns]) + [""]
        bullet = "- "
    else:
        lines, bullet = text_table(columns, cells), ""
    for base in baselines:
        lines.append(
            f"{bullet}scaling efficiency: tokens/s per GPU relative to {base['gpu']} x {base['gpus']} GPUs "
            f"at seq {base['seq_len']}"
        )
    for found in smallest:
        lines.append(
            f"{bullet}smallest GPU count that trains on {found['gpu']} at seq {found['seq_len']}: "
            f"{found['gpus'] or 'none up to 1M'} (search started at the lower bound {found['lower_bound']})"
        )
    return "\n".join(lines)


@click.command("sweep", context_settings=CONTEXT)
@click.argument("model")
@click.option(
    "--gpus",
    "gpu_counts",
    default="8..1024",
    show_default=True,
    help="GPU counts: 8..1024 (powers of two), 8..64x8 (every 8) or 8,16,48.",
)
@hardware_option(multiple=True)
@training_options(many_seq_lens=True)
@click.option("--tokens", help="Training budget in tokens (2T, 300B) for days, GPU-hours and cost.")
@click.option(
    "--price-per-gpu-hour", type=float, help="Price of one GPU-hour of every GPU type, for the cost column."
)
@click.option(
    "--price",
    "prices",
    multiple=True,
    help="Price of one GPU-hour per type: --price a100-80gb=1.8 --price h100-80gb=3.2, or a YAML file "
    "mapping GPU names to prices. Overrides --price-per-gpu-hour for the types it names.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv", "json"]),
    default="table",
    show_default=True,
    help="table and markdown round for people; csv and json are exact.",
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG chart (needs the chart extra: matplotlib).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML page: the question, findings, throughput/days/cost/scaling "
    "charts, every row, assumptions and known accuracy.",
)
@one_line_errors
def sweep_command(
    model: str,
    gpu_counts: str,
    gpu_names: tuple[str, ...],
    mem: str | None,
    gpus_per_node: int | None,
    seq_len: str | None,
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
    tokens: str | None,
    price_per_gpu_hour: float | None,
    prices: tuple[str, ...],
    fmt: str,
    chart: Path | None,
    report: Path | None,
) -> None:
    """Plan one model on a range of GPU counts and types.

    Each row is the best plan at that count: layout, memory per GPU, tokens/s, MFU and, with
    --tokens, days and GPU-hours to train (and cost with --price-per-gpu-hour). It also finds the
    smallest GPU count that trains at all, per GPU type and sequence length, starting from a lower
    bound. --seq-len takes a list (2048,8192) to sweep several lengths.

    \b
    Example:
      plan sweep llama3-70b --gpus 64..2048 --gpu a100-80gb --gpu h100-80gb --tokens 2T \\
        --price a100-80gb=1.8 --price h100-80gb=3.2 --chart sweep.png --report sweep.html
    """
    if chart is not None:  # before the sweep: a chart that cannot be written fails first
        check_output_file(chart, "--chart")
        require_matplotlib()
    if report is not None:
        check_output_file(report, "--report")
    spec = load_model(model)
    counts = parse_gpu_counts(gpu_counts)
    budget = parse_tokens(tokens) if tokens else None
    positive(("--price-per-gpu-hour", price_per_gpu_hour))
    price_table = parse_prices(prices, price_per_gpu_hour)
    trainings = [
        build_training(
            spec,
            seq,
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
        for seq in parse_seq_lens(seq_len)
    ]
    hardwares = [build_hardware(name, mem, gpus_per_node) for name in gpu_names]

    progress = TerminalProgress()
    try:
        answer = sweep(
            spec,
            hardwares,
            trainings,
            counts,
            tokens=budget,
            prices=price_table,
            batch_given=global_batch is not None,
            progress=progress,
        )
    finally:  # an error's one line starts on a clean line
        progress.done()
    rows, smallest, baselines = answer.rows, answer.min_gpus, answer.scaling_baseline
    text = render_sweep(rows, smallest, fmt, baselines)
    if chart is not None:  # written before the table is printed: a failure prints nothing
        budget_text = f", {tokens} tokens" if tokens else ""
        seqs = "/".join(str(t.seq_len) for t in trainings)
        batches = "/".join(str(b) for b in dict.fromkeys(r["global_batch"] for r in rows))
        title = f"{spec.name}: seq {seqs}, batch {batches}{budget_text}, {trainings[0].precision.value}"
        sweep_chart(rows, title, chart, budget, baselines)
    if report is not None:
        question = {
            "model": spec.name,
            "params": count_params(spec).total,
            "gpu_types": [hw.name for hw in hardwares],
            "gpu_counts": counts,
            "seq_lens": ", ".join(f"{t.seq_len:,}" for t in trainings),
            "global_batch": ", ".join(f"{b:,}" for b in dict.fromkeys(r["global_batch"] for r in rows)),
            "precision": trainings[0].precision.value,
            "tokens": tokens,
        }
        accuracy = accuracy_for(spec.is_moe, trainings[0].precision)
        page = sweep_report(rows, smallest, baselines, question, accuracy, training_summary(trainings[0]))
        write_atomic(report, page, option="--report")
    click.echo(text)
    for written in (chart, report):
        if written is not None:
            click.echo(f"wrote {written}", err=True)


def render_compare(rows: list[dict[str, Any]], fmt: str) -> str:
    """Table, Markdown or JSON of a plan diff. The first line says when the plans answer different
    questions, and ``*`` marks each row that differs. Table and Markdown round each row alike (A,
    B and B - A to the decimals of three significant figures of the row's largest value); JSON is
    exact, each row with ``differs``."""
    if fmt == "json":
        return json_text(rows)
    columns = ["", "section", "term", "A", "B", "B - A", "B / A"]
    cells = [
        [
            "*" if r["differs"] else "",
            r["section"],
            r["term"],
            *row_cells(r["term"], [r["a"], r["b"], r.get("delta")]),
            "-" if r.get("ratio") is None else f"{r['ratio']:.3f}",
        ]
        for r in rows
    ]
    context = differing_context(rows)
    head = [f"A and B answer different questions: they differ in {', '.join(context)}"] if context else []
    if fmt == "markdown":
        table = markdown_table(columns, cells, [False, False, False, True, True, True, True])
        return "\n".join([*(f"{line}\n" for line in head), *table])
    return "\n".join([*head, *text_table(columns, cells), "(* the plans differ in this term)"])


@click.command("compare", context_settings=CONTEXT)
@click.argument("plan_a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("plan_b", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table", show_default=True
)
@one_line_errors
def compare_command(plan_a: Path, plan_b: Path, fmt: str) -> None:
    """What-if diff of two plan.yaml files: layout, memory terms and step-time terms.

    \b
    Example:
      plan --gpus 64 llama2-13b -o a && plan --gpus 64 --zero 3 llama2-13b -o b
      plan compare a/plan.yaml b/plan.yaml
    """
    docs = [check_plan_document(read_mapping(path), str(path)) for path in (plan_a, plan_b)]
    click.echo(render_compare(compare(*docs), fmt))
