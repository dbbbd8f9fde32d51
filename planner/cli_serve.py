"""``plan serve``: serving memory per GPU and the largest batch, longest context, smallest tp."""

import sys
from dataclasses import replace
from typing import Any

import click

from constraints.serving import NumberFormat
from constraints.units import BYTES_PER_GIB
from planner.cli_options import CONTEXT, build_hardware, hardware_option, one_line_errors, positive
from planner.errors import DOES_NOT_FIT_EXIT_CODE, PlannerError
from planner.io import load_model, parse_reserve, parse_token_count
from planner.numbers import check_finite_document, json_text
from planner.serving import ServeSpec, check, max_batch, max_context, min_tp, serve_memory, valid_serving_tp

FORMATS = [f.value for f in NumberFormat]
DEFAULT_GENERATE = 512


def serve_doc(model, hardware, spec: ServeSpec) -> dict[str, Any]:
    """The serving answer as a document."""
    mem = serve_memory(model, hardware, spec)
    gib = {
        k: round(getattr(mem, k) / BYTES_PER_GIB, 3)
        for k in ("weights", "kv_cache", "workspace", "reserve", "total", "capacity")
    }
    kv_per_token = mem.kv_cache / (
        spec.batch * max(1, min(spec.context, model.sliding_window or spec.context))
    )
    return {
        "status": "fits" if mem.fits else "does_not_fit",
        "model": {
            "name": model.name,
            "layers": model.num_layers,
            "kv_heads": model.num_kv_heads,
            "head_dim": model.head_dim,
        },
        "gpu": {"name": hardware.name, "mem_gib": round(hardware.memory_gib, 3)},
        "serving": {
            "weights": spec.weights.value,
            "kv_cache": spec.kv_cache.value,
            "tp": spec.tp,
            "pp": spec.pp,
            "batch": spec.batch,
            "prompt_tokens": spec.prompt_tokens,
            "generate_tokens": spec.generate_tokens,
            "context": spec.context,
            "sliding_window": model.sliding_window,
        },
        "memory_gib": gib | {"most_loaded_stage": mem.stage},
        "kv_cache_bytes_per_token_per_gpu": round(kv_per_token, 1),
        "max_batch_at_this_context": max_batch(model, hardware, spec),
        "max_context_at_this_batch": max_context(model, hardware, spec),
        "min_tp": min_tp(model, hardware, spec),
    }


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
    lines.append(f"smallest tp that serves this: {doc['min_tp'] or 'none (use pp, more memory or quantize)'}")
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
@click.option("--pp", type=int, default=1, show_default=True, help="Pipeline-parallel size.")
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
    pp: int,
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
        pp=pp,
        reserve_fraction=share,
        reserve_fixed_bytes=fixed,
    )
    if tp is None:
        spec = replace(spec, tp=min_tp(spec_model, hardware, spec) or max(valid_serving_tp(spec_model)))
    check(spec_model, spec)
    doc = serve_doc(spec_model, hardware, spec)
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
