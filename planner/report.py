"""The HTML report for a capacity-planning meeting (``plan --report`` and ``plan sweep --report``):
one self-contained page, inline CSS and SVG, no script and nothing fetched, printable.

Pure functions: documents in, HTML text out; every string from a user's file is escaped.
"""

from html import escape
from typing import Any

from planner.calibration import DEFAULT_CONSTANTS
from planner.known_accuracy import ALL_ENTRIES, HELD_OUT, MEMORY_ENTRIES, MEMORY_MEDIAN_ERROR, KnownAccuracy
from planner.svg import bars, line_chart, stacked_bars
from planner.tables import cell, compact, significant, tick_label

MEMORY_TERMS = ("weights", "gradients", "optimizer", "activations", "reserve")
LAYOUT_KEYS = ("tp", "cp", "pp", "vpp", "ep", "dp")
RUNNERS_UP = 4
STYLE = """
body { font-family: Helvetica, Arial, sans-serif; font-size: 17px; line-height: 1.45; color: #222;
       max-width: 1000px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 28px; margin-bottom: 4px; } h2 { font-size: 22px; border-bottom: 2px solid #0072B2;
       padding-bottom: 4px; margin-top: 32px; }
.sub { color: #555; margin-top: 0; } .big { font-size: 22px; } .warn { color: #C00000; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; } th { background: #f0f4f8; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } td, th { white-space: nowrap; }
tr.best td { background: #eaf4ea; font-weight: bold; }
svg { width: 100%; height: auto; display: block; margin: 8px 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.card b { display: block; font-size: 24px; }
@page { size: A4 landscape; margin: 12mm; }
@media print { body { margin: 0; max-width: none; font-size: 13px; } section { break-inside: avoid; } }
"""


def _page(title: str, sections: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def _table(columns: list[str], rows: list[list[str]], numeric: list[bool], best: int | None = None) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(
            f'<td class="n">{escape(v)}</td>' if n else f"<td>{escape(v)}</td>"
            for v, n in zip(row, numeric, strict=True)
        )
        body.append(f'<tr class="best">{cells}</tr>' if i == best else f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def layout_text(p: dict[str, Any]) -> str:
    """``tp=4 cp=2 pp=4 vpp=5 dp=32 zero=1 recompute=none mbs=1``: dimensions above 1 and the rest."""
    dims = " ".join(f"{k}={p[k]}" for k in LAYOUT_KEYS if k in p and (p[k] != 1 or k in ("tp", "pp", "dp")))
    zero, mbs = p.get("zero_stage", p.get("zero")), p.get("micro_batch_size", p.get("mbs"))
    return f"{dims} zero={zero} recompute={p['recompute']} mbs={mbs}"


def short_layout(row: dict[str, Any]) -> str:
    """A sweep row's layout in a table cell: ``tp4 cp2 pp4 vpp5 dp32 z1``, recompute and micro-batch
    only when they are not none and 1."""
    if "tp" not in row:
        return "-"
    dims = " ".join(
        f"{k}{row[k]}" for k in LAYOUT_KEYS if k in row and (row[k] != 1 or k in ("tp", "pp", "dp"))
    )
    extra = (f" rc-{row['recompute']}" if row["recompute"] != "none" else "") + (
        f" mbs{row['mbs']}" if row["mbs"] != 1 else ""
    )
    return f"{dims} z{row['zero']}{extra}"


def _accuracy_section(accuracy: KnownAccuracy, assumptions: list[str]) -> str:
    items = "".join(f"<li>{escape(a)}</li>" for a in assumptions)
    return (
        "<section><h2>Assumptions and known accuracy</h2>"
        f"<ul>{items}</ul>"
        f"<p>Step time against published runs ({escape(accuracy.regime)}, n={accuracy.num_entries}): "
        f"median error <b>{accuracy.median_abs_error:.0%}</b>; over every usable entry "
        f"(n={ALL_ENTRIES.num_entries}) {ALL_ENTRIES.median_abs_error:.0%}, and "
        f"{HELD_OUT.median_abs_error:.1%} when each source family is predicted from constants fitted "
        "without it (the estimate for runs the model has not seen). Memory totals, reserve "
        f"excluded, are a median {abs(MEMORY_MEDIAN_ERROR):.0%} "
        f"{'below' if MEMORY_MEDIAN_ERROR < 0 else 'above'} nvidia-smi peaks (n={MEMORY_ENTRIES}), which "
        "the reserve covers. Plans within the step-time error of each other are practically "
        "equivalent. Source: <code>python benchmarks/accuracy.py</code>.</p></section>"
    )


def training_summary(training: Any) -> dict[str, Any]:
    """The training block of a plan document from a ``TrainingSpec`` (for a sweep's page)."""
    return {
        "framework": training.framework.value,
        "precision": training.precision.value,
        "flash_attention": training.flash_attention,
        "reserve_fraction": training.reserve_fraction,
        "reserve_fixed_gib": training.reserve_fixed_bytes / 2**30,
        "overlap_grad_reduce": training.overlap_grad_reduce,
        "overlap_param_gather": training.overlap_param_gather,
        "tp_comm_overlap": training.tp_comm_overlap,
        "overlap_moe_expert_parallel_comm": training.overlap_moe_expert_parallel_comm,
        "grad_reduce_in_bf16": training.grad_reduce_in_bf16,
    }


def _assumptions(training: dict[str, Any]) -> list[str]:
    c = DEFAULT_CONSTANTS
    reserve = (
        f"{training['reserve_fraction']:.0%} of each GPU"
        if training.get("reserve_fraction")
        else f"{training.get('reserve_fixed_gib', 0):.1f} GiB per GPU"
    )
    overlapped = [
        name
        for key, name in (
            ("overlap_grad_reduce", "gradient reduce"),
            ("overlap_param_gather", "parameter gather"),
        )
        if training.get(key, True)
    ]
    dp_hidden = f"{c.dp_overlap:.0%} hidden ({', '.join(overlapped)} overlapped)" if overlapped else "exposed"
    tp_hidden = (
        f"{c.tp_overlap:.0%} hidden (--tp-comm-overlap)" if training.get("tp_comm_overlap") else "exposed"
    )
    if training.get("overlap_moe_expert_parallel_comm"):
        tp_hidden += f", MoE dispatch {c.ep_overlap:.0%} hidden where Megatron overlaps it"
    return [
        f"{training['framework']} memory conventions, {training['precision']}"
        f"{', bf16 gradients' if training.get('grad_reduce_in_bf16') else ''}, "
        f"FlashAttention {'on' if training['flash_attention'] else 'off'}, fused kernels and cross entropy.",
        f"Memory kept free for the CUDA context, NCCL buffers and fragmentation: {reserve}.",
        f"Data-parallel communication {dp_hidden} behind backward, ring attention "
        f"{c.cp_overlap:.0%} hidden, tensor-parallel collectives {tp_hidden}; collectives at "
        f"{c.comm_efficiency:.0%} of link bandwidth; large GEMMs at most {c.gemm_max_efficiency:.0%} of peak "
        "(planner/calibration.py, fitted on published runs).",
        "Pipeline stages hold equal layer counts, or first and last stages up to two layers lighter "
        "(Megatron's uneven split); the bubble follows 1F1B (interleaved when vpp > 1).",
    ]


def plan_report(doc: dict[str, Any], accuracy: KnownAccuracy) -> str:
    """The page for one plan: the question, the recommendation and its runners-up, memory against
    capacity, the step-time breakdown, checkpoints, launch, assumptions and accuracy."""
    m, c, t = doc["model"], doc["cluster"], doc["training"]
    title = f"Parallelism plan: {m['name']} on {c['gpus']} x {c['gpu']}"
    sections = [
        f"<header><h1>{escape(title)}</h1><p class='sub'>status: {escape(doc['status'])}; "
        "generated by plan</p></header>",
        "<section><h2>The question</h2>"
        f"<p>How to train <b>{escape(m['name'])}</b> ({m['params'] / 1e9:,.2f} B parameters, "
        f"{escape(m['family'])}) on <b>{c['gpus']:,} x {escape(c['gpu'])}</b> ({c['mem_gib']:.1f} GiB each, "
        f"{c['gpus_per_node']} per node): sequences of {t['seq_len']:,} tokens, "
        f"{t['global_batch_size']:,} per step ({t['tokens_per_step']:,} tokens), "
        f"{escape(t['precision'])}, {escape(t['framework'])}.</p></section>",
    ]
    if "parallelism" not in doc:
        sections.append(
            "<section><h2>Recommendation</h2>"
            "<p class='warn'>No layout exists for this question.</p></section>"
        )
        return _page(title, sections)
    p, mem, perf = doc["parallelism"], doc["memory_gib"], doc["performance"]
    plans = [doc, *doc.get("alternatives", [])[:RUNNERS_UP]]
    if doc["status"] == "infeasible":
        fixes = doc.get("diagnosis", {})
        advice = "".join(
            f"<li>{escape(text)}</li>"
            for key, text in (
                ("min_gpus_at_this_memory", f"{fixes.get('min_gpus_at_this_memory')} GPUs at this memory"),
                (
                    "min_mem_gib_at_this_gpu_count",
                    f"{fixes.get('min_mem_gib_at_this_gpu_count')} GiB per GPU",
                ),
                ("max_seq_len_that_fits", f"sequences of {fixes.get('max_seq_len_that_fits')} tokens"),
            )
            if key in fixes
        )
        sections.append(
            "<section><h2>Recommendation</h2><p class='warn big'>Nothing fits. The closest plan needs "
            f"{mem['total']:.1f} GiB of {mem['capacity']:.1f} GiB per GPU.</p>"
            f"<p>Smallest changes that fit:</p><ul>{advice}</ul></section>"
        )
    else:
        cards = [
            ("step time", f"{significant(perf['step_time_s'])} s"),
            ("throughput", f"{compact(perf['tokens_per_s'])} tokens/s"),
            ("MFU", f"{perf['mfu']:.1%}"),
            ("memory per GPU", f"{mem['total']:.1f} / {mem['capacity']:.1f} GiB"),
        ]
        ranked = "".join(f"<div class='card'>{escape(k)}<b>{escape(v)}</b></div>" for k, v in cards)
        method = doc["solver"]["method"]
        proof = (
            f"proved optimal by {method}"
            if doc["status"] == "optimal"
            else f"the best {method} found in time"
        )
        sections.append(
            "<section><h2>Recommendation</h2>"
            f"<p class='big'><b>{escape(layout_text(p))}</b></p><div class='cards'>{ranked}</div>"
            f"<p>Why it won: the shortest modelled step time among the {doc['solver']['candidates']:,} "
            f"layouts searched whose memory fits ({proof}; ties go to less sharding and less recompute).</p>"
            + _runners_up(plans)
            + "</section>"
        )
    memory_rows = [
        ("chosen" if i == 0 else f"runner-up {i}", [(k, plan["memory_gib"][k]) for k in MEMORY_TERMS])
        for i, plan in enumerate(plans)
    ]
    sections.append(
        "<section><h2>Memory per GPU</h2>"
        f"<p>The most-loaded GPU (pipeline stage {mem['most_loaded_stage']}), term by term, against the "
        f"{mem['capacity']:.1f} GiB it has.</p>"
        + stacked_bars(memory_rows, mem["capacity"], "GiB", "memory per GPU", lambda v: f"{v:.1f}")
        + "</section>"
    )
    breakdown = [(k, v) for k, v in perf["breakdown"].items() if v > 0]
    sections.append(
        "<section><h2>Step time</h2>"
        f"<p>{significant(perf['step_time_s'])} s per step of {t['tokens_per_step']:,} tokens, on the "
        "slowest rank; the terms add up to the step.</p>"
        + bars(breakdown, "s", "step-time breakdown", significant)
        + "</section>"
    )
    if "checkpoint" in doc:
        ck = doc["checkpoint"]
        lost = (
            f" Saving takes {significant(ck['save_time_s'])} s at {ck['storage_gbps']:g} GB/s: "
            f"{ck['time_lost_fraction']:.2%} of training time."
            if "save_time_s" in ck
            else " (give --storage-gbps for the save time and the share of training time lost)"
        )
        sections.append(
            "<section><h2>Checkpoints</h2>"
            f"<p>{escape(ck['format'])}: {ck['full_gib']:,.1f} GiB per checkpoint "
            f"(weights {ck['weights_gib']:,.1f}, optimizer {ck['optimizer_gib']:,.1f}); "
            "the largest shard one rank writes is "
            f"{ck['largest_rank_shard_gib']:,.2f} GiB; a save every {ck['interval_steps']:,} steps "
            f"({ck['interval_minutes']:,.1f} min).{escape(lost)}</p></section>"
        )
    if "launch" in doc:
        items = "".join(
            f"<li><b>{escape(name)}</b>: "
            + (f"runs it ({escape(', '.join(entry['files']))})" if entry["expressible"] else "cannot run it")
            + (": " + escape("; ".join(entry["notes"])) if entry["notes"] else "")
            + "</li>"
            for name, entry in doc["launch"].items()
        )
        sections.append(f"<section><h2>Launch</h2><ul>{items}</ul></section>")
    sections.append(_accuracy_section(accuracy, _assumptions(t)))
    return _page(title, sections)


def _runners_up(plans: list[dict[str, Any]]) -> str:
    if len(plans) == 1:
        return "<p>No other layout was asked for (<code>--top K</code> lists runners-up).</p>"
    best = plans[0]["performance"]["step_time_s"]
    best_mem = plans[0]["memory_gib"]["total"]
    rows = []
    for i, plan in enumerate(plans):
        step, total = plan["performance"]["step_time_s"], plan["memory_gib"]["total"]
        cost = "-" if i == 0 else f"{step / best - 1:+.1%} step time, {total - best_mem:+.1f} GiB"
        rows.append(
            [
                "chosen" if i == 0 else str(i),
                layout_text(plan["parallelism"]),
                significant(step),
                f"{total:.1f}",
                cost,
            ]
        )
    return "<p>Runners-up and what each costs against the chosen plan:</p>" + _table(
        ["rank", "layout", "step s", "memory GiB", "what it costs"],
        rows,
        [False, False, True, True, False],
        best=0,
    )


def sweep_report(
    rows: list[dict[str, Any]],
    smallest: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    question: dict[str, Any],
    accuracy: KnownAccuracy,
    training: dict[str, Any],
) -> str:
    """The page for a sweep: the question, the smallest GPU count per type, the fastest and the
    cheapest row, throughput, days, cost and scaling efficiency against GPUs, the table."""
    title = f"Capacity plan: {question['model']}"
    priced = {r["gpu"]: r["price_per_gpu_hour"] for r in rows if "price_per_gpu_hour" in r}
    prices = ", ".join(f"{g} ${p:,.2f}/GPU-hour" for g, p in priced.items()) or "none given"
    sections = [
        f"<header><h1>{escape(title)}</h1><p class='sub'>generated by plan sweep</p></header>",
        "<section><h2>The question</h2>"
        f"<p>How fast, how long and at what cost does <b>{escape(question['model'])}</b> "
        f"({question['params'] / 1e9:,.2f} B parameters) train on "
        f"{escape(', '.join(question['gpu_types']))} at "
        f"{escape(', '.join(f'{n:,}' for n in question['gpu_counts']))} GPUs? "
        f"Sequences of {escape(question['seq_lens'])} tokens, {escape(question['global_batch'])} per step, "
        f"{escape(question['precision'])}; budget: {escape(question['tokens'] or 'not given')} tokens; "
        f"prices: {escape(prices)}.</p></section>",
    ]
    fits = [r for r in rows if "tokens_per_s" in r]
    findings = [
        f"Smallest GPU count that trains on {f['gpu']} at seq {f['seq_len']}: "
        f"{f['gpus'] if f['gpus'] else 'none up to 1M'} "
        f"(the search started at the lower bound {f['lower_bound']})."
        for f in smallest
    ]
    if fits:
        fastest = max(fits, key=lambda r: r["tokens_per_s"])
        findings.append(
            f"Fastest: {fastest['gpus']:,} x {fastest['gpu']}, {compact(fastest['tokens_per_s'])} tokens/s "
            f"({layout_text(fastest)})"
            + (f", {significant(fastest['days'])} days." if "days" in fastest else ".")
        )
        costed = [r for r in fits if "cost" in r]
        if costed:
            cheapest = min(costed, key=lambda r: r["cost"])
            findings.append(
                f"Cheapest: {cheapest['gpus']:,} x {cheapest['gpu']}, ${compact(cheapest['cost'])} "
                f"in {significant(cheapest['days'])} days ({layout_text(cheapest)})."
            )
    sections.append(
        "<section><h2>Findings</h2><ul>"
        + "".join(f"<li>{escape(f)}</li>" for f in findings)
        + "</ul></section>"
    )
    base = "; ".join(f"{b['gpu']} x {b['gpus']} at seq {b['seq_len']}" for b in baselines)
    charts = [
        ("tokens_per_s", "throughput, whole cluster (tokens/s)", compact, True),
        ("days", "days to train the budget", significant, True),
        ("cost", "cost to train the budget ($)", lambda v: "$" + compact(v), False),
        ("scaling_efficiency", f"tokens/s per GPU against {base}", lambda v: f"{v:.0%}", False),
    ]
    many_seqs = len({r.get("seq_len") for r in rows}) > 1
    series_keys = list(dict.fromkeys((r["gpu"], r.get("seq_len")) for r in rows))
    for key, label, fmt, log_y in charts:
        series = []
        for gpu, seq in series_keys:
            points = [
                (r["gpus"], r[key]) for r in fits if (r["gpu"], r.get("seq_len")) == (gpu, seq) and key in r
            ]
            if points:
                name = f"{gpu}, seq {seq}" if many_seqs else gpu
                series.append(
                    (
                        name + (f" (${priced[gpu]:,.2f}/GPU-h)" if gpu in priced and key == "cost" else ""),
                        points,
                    )
                )
        if series:
            tick = (lambda v: f"{v:.0%}") if key == "scaling_efficiency" else tick_label
            sections.append(
                f"<section><h2>{escape(label[0].upper() + label[1:])}</h2>"
                + line_chart(series, "GPUs", label, label, fmt, tick, log_y)
                + "</section>"
            )
    columns = {
        "gpu": "GPU",
        "seq_len": "seq",
        "gpus": "GPUs",
        "status": "status",
        "layout": "layout",
        "mem_gib": "GiB/GPU",
        "tokens_per_s": "tokens/s",
        "mfu": "MFU",
        "step_time_s": "step s",
        "scaling_efficiency": "scaling",
        "days": "days",
        "gpu_hours": "GPU-hours",
        "cost": "cost $",
    }
    shown = [
        c
        for c in columns
        if c == "layout"
        or (c == "status" and any(r["status"] != "optimal" for r in rows))
        or (c != "status" and any(c in r for r in rows))
    ]
    table_rows = [[short_layout(r) if c == "layout" else cell(c, r.get(c)) for c in shown] for r in rows]
    numeric = [c not in ("gpu", "status", "layout") for c in shown]
    sections.append(
        "<section><h2>Every row</h2>"
        + _table([columns[c] for c in shown], table_rows, numeric)
        + f"<p>Scaling efficiency: tokens/s per GPU relative to {escape(base)}.</p></section>"
    )
    sections.append(_accuracy_section(accuracy, _assumptions(training)))
    return _page(title, sections)
