"""A capacity-planning chart for slides: throughput, days to train, cost and scaling efficiency
against GPUs, one line per GPU type, each point labelled with its value.

A 16:9 canvas (13.3 x 7.5 in, the size of a widescreen slide) with 13-16 pt text, so that the
picture placed on a slide keeps its text legible. matplotlib is an optional extra
(``pip install '.[chart]'``); only this module imports it.
"""

import importlib.util
import io
from pathlib import Path
from typing import Any

from planner.errors import PlannerError
from planner.io import write_atomic
from planner.tables import compact, significant, tick_label

SLIDE_INCHES = (13.33, 7.5)  # PowerPoint/Keynote widescreen slide
DPI = 150  # 2000 x 1125 pixels
FONT_PT = 13
TITLE_PT = 16


def require_matplotlib() -> None:
    """Fail before a sweep starts, not after it, when the chart cannot be drawn."""
    if importlib.util.find_spec("matplotlib") is None:
        raise PlannerError("--chart needs matplotlib: pip install -e '.[chart]' (or leave out --chart)")


def _panels(rows: list[dict[str, Any]], tokens: float | None, baselines: list[dict[str, Any]]) -> list[tuple]:
    """(row key, axis label, log scale, value label) of each panel with data."""
    base = "; ".join(f"{b['gpu']} x {b['gpus']}" for b in baselines) or "smallest count"
    panels = [
        ("tokens_per_s", "throughput (tokens/s, whole cluster)", True, compact),
        ("days", "days to train the budget", True, significant),
        ("cost", "cost to train the budget ($, price x GPU-hours)", True, lambda v: "$" + compact(v)),
        ("scaling_efficiency", f"tokens/s per GPU vs {base}", False, lambda v: f"{v:.0%}"),
    ]
    if not tokens:
        panels = [p for p in panels if p[0] not in ("days", "cost")]
    return [p for p in panels if any(p[0] in r for r in rows)]


def _series(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return list(dict.fromkeys((r["gpu"], r.get("seq_len")) for r in rows))


def _label(gpu: str, seq: Any, rows: list[dict[str, Any]], many_seqs: bool) -> str:
    price = next(
        (r["price_per_gpu_hour"] for r in rows if r["gpu"] == gpu and "price_per_gpu_hour" in r), None
    )
    text = f"{gpu}, seq {seq}" if many_seqs else gpu
    return text + (f" (${price:,.2f}/GPU-h)" if price is not None else "")


def sweep_chart(
    rows: list[dict[str, Any]],
    title: str,
    path: Path,
    tokens: float | None,
    baselines: list[dict[str, Any]] | None = None,
) -> None:
    """Write a PNG with one line per GPU type (and sequence length, when several)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = _panels(rows, tokens, baselines or [])
    columns = 2 if len(panels) > 2 else len(panels)
    grid = (2 if len(panels) > 2 else 1, columns)
    plt.rcParams.update({"font.size": FONT_PT, "axes.titlesize": FONT_PT + 1, "axes.labelsize": FONT_PT})
    fig, axes = plt.subplots(*grid, figsize=SLIDE_INCHES, constrained_layout=True, squeeze=False)
    series = _series(rows)
    many_seqs = len({seq for _, seq in series}) > 1
    counts = sorted({r["gpus"] for r in rows})
    for ax, (key, label, log_y, fmt) in zip(axes.flat, panels, strict=False):
        for gpu, seq in series:
            points = [
                (r["gpus"], r[key]) for r in rows if (r["gpu"], r.get("seq_len")) == (gpu, seq) and key in r
            ]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            (line,) = ax.plot(
                xs, ys, marker="o", linewidth=2.5, markersize=7, label=_label(gpu, seq, rows, many_seqs)
            )
            for x, y in points:
                ax.annotate(
                    fmt(y),
                    (x, y),
                    textcoords="offset points",
                    xytext=(0, 8),
                    ha="center",
                    fontsize=FONT_PT - 2,
                    color=line.get_color(),
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if log_y:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: tick_label(y)))
        else:
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.margins(x=0.08, y=0.15)
        ax.set_xlabel("GPUs")
        ax.set_title(label)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=FONT_PT - 2)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=TITLE_PT)
    png = io.BytesIO()
    fig.savefig(png, dpi=DPI, format="png")
    plt.close(fig)
    write_atomic(path, png.getvalue(), option="--chart")  # a unique temporary file, then rename
