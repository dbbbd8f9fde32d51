"""``plan serve``: serving memory per GPU and the largest batch, longest context, smallest tp."""

import sys
from dataclasses import replace
from typing import Any

import click

from constraints.serving import NumberFormat
from planner.cli_options import CONTEXT, build_hardware, hardware_option, one_line_errors, positive
from planner.errors import DOES_NOT_FIT_EXIT_CODE, PlannerError
from planner.io import load_model, parse_reserve, parse_token_count
from planner.numbers import check_finite_document, json_text
from planner.serving import ServeSpec, check, choose_layout, serve_document

FORMATS = [f.value for f in NumberFormat]
DEFAULT_GENERATE = 512


def render_serve(doc: dict[str, Any]) -> str:
    m, s = doc["memory_gib"], doc["serving"]
    lines = [
        f"{doc['model']['name']} on {doc['gpu']['name']} ({doc['gpu']['mem_gib']:.1f} GiB): tp={s['tp']} "
        f"pp={s['pp']}, {s['weights']} weights, {s['kv_cache']} KV cache, batch {s['batch']} x "
        f"{s['context']} tokens ({s['prompt_tokens']} prompt + {s['generate_tokens']} generated)",
        "memory per GPU (GiB):",
    ]
    lines += [
        f"  {k:<11}{m[k]:>9.2f}" for k in ("weights", "kv_cache", "workspace", "reserve", "total", "capacity")
    ]
    lines.append(f"  fits: {'yes' if doc['status'] == 'fits' else 'NO'}")
    lines.append(f"KV cache: {doc['kv_cache_bytes_per_token_per_gpu'] / 1024:,.1f} KiB per token per GPU")
    lines.append(f"largest batch at {s['context']} tokens: {doc['max_batch_at_this_context']}")
    lines.append(f"longest context at batch {s['batch']}: {doc['max_context_at_this_batch']:,} tokens")
    node = f"within an NVLink domain of {doc['gpu']['nvlink_domain_gpus']} GPUs at pp={s['pp']}"
    lines.append(f"smallest tp {node} that serves this: {doc['min_tp'] or 'none'}")
    split = doc["min_pp"]
    if split is None:
        lines.append("no tp x pp split fits: use more memory per GPU or quantize (--weights, --kv-cache)")
    elif split["pp"] > 1 or doc["min_tp"] is None:
        lines.append(
            f"fewest GPUs with pipeline stages: tp={split['tp']} pp={split['pp']} ({split['gpus']} GPUs)"
        )
    lines += [f"note: {note}" for note in doc["notes"]]
    return "\n".join(lines)


@click.command("serve", context_settings=CONTEXT)
@click.argument("model")
@hardware_option()
@click.option(
    "--weights",
    type=click.Choice(FORMATS),
    default="bf16",
    show_default=True,
    help="Storage format of the decoder's linear weights.",
)
@click.option("--kv-cache", "kv_format", type=click.Choice(FORMATS), default="bf16", show_default=True)
@click.option(
    "--context", help="Prompt + generated tokens, e.g. 32k (k = 1024); the prompt is the rest of --generate."
)
@click.option("--prompt", help="Prompt tokens (instead of --context).")
@click.option("--generate", type=int, default=DEFAULT_GENERATE, show_default=True, help="Generated tokens.")
@click.option("--batch", type=int, default=1, show_default=True, help="Concurrent sequences.")
@click.option("--tp", type=int, help="Tensor-parallel size (default: the smallest that fits).")
@click.option(
    "--pp",
    type=int,
    help="Pipeline-parallel size (default: 1, or the fewest stages that fit when no tp does).",
)
@click.option(
    "--reserve",
    default="10%",
    show_default=True,
    help="Memory kept free: a share (10%, vLLM's gpu_memory_utilization 0.9) or a size (6GiB).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "yaml", "json"]),
    help="Output format (default: table on a terminal, else json).",
)
@one_line_errors
def serve_command(
    model: str,
    gpu_name: str,
    mem: str | None,
    gpus_per_node: int | None,
    weights: str,
    kv_format: str,
    context: str | None,
    prompt: str | None,
    generate: int,
    batch: int,
    tp: int | None,
    pp: int | None,
    reserve: str,
    fmt: str | None,
) -> None:
    """Serving memory per GPU: weights, KV cache, workspace, reserve.

    KV cache = 2 x bytes x batch x (prompt + generated) x kv_heads x head_dim x layers, split over
    tp by KV heads (replicated once tp exceeds them), over pp by layers, capped at a sliding window.
    Also answers: the largest batch at this context, the longest context at this batch, and the
    smallest tp that serves it at all. Exit status 1 when it does not fit.

    \b
    Example:
      plan serve llama3-70b --gpu h100-80gb --context 32k --batch 8
      plan serve llama3-70b --weights int4 --kv-cache fp8 --context 128k --tp 2
    """
    spec_model = load_model(model)
    hardware = build_hardware(gpu_name, mem, gpus_per_node)
    positive(("--batch", batch), ("--tp", tp), ("--pp", pp), ("--generate", generate))
    if context is not None and prompt is not None:
        raise PlannerError("give --context or --prompt, not both")
    if prompt is not None:
        prompt_tokens = parse_token_count(prompt, "--prompt")
    else:
        total = parse_token_count(context or "2k", "--context")
        if total <= generate:
            raise PlannerError(f"--context {total} must exceed --generate {generate}")
        prompt_tokens = total - generate
    share, fixed = parse_reserve(reserve)
    spec = ServeSpec(
        weights=NumberFormat(weights),
        kv_cache=NumberFormat(kv_format),
        prompt_tokens=prompt_tokens,
        generate_tokens=generate,
        batch=batch,
        tp=tp or 1,
        pp=pp or 1,
        reserve_fraction=share,
        reserve_fixed_bytes=fixed,
    )
    check(spec_model, spec)
    layout = choose_layout(spec_model, hardware, spec, tp, pp)
    doc = serve_document(spec_model, hardware, replace(spec, tp=layout.tp, pp=layout.pp), layout.notes)
    check_finite_document(doc)
    fmt = fmt or ("table" if sys.stdout.isatty() else "json")
    if fmt == "table":
        click.echo(render_serve(doc))
    elif fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(doc, sort_keys=False))
    else:
        click.echo(json_text(doc))
    if doc["status"] != "fits":
        sys.exit(DOES_NOT_FIT_EXIT_CODE)
