"""A capacity-planning chart for slides: throughput, days to train and scaling efficiency vs GPUs.

matplotlib is an optional extra (``pip install '.[chart]'``); only this module imports it.
"""

import importlib.util
import io
from pathlib import Path
from typing import Any

from planner.errors import PlannerError
from planner.io import write_atomic


def require_matplotlib() -> None:
    """Fail before a sweep starts, not after it, when the chart cannot be drawn."""
    if importlib.util.find_spec("matplotlib") is None:
        raise PlannerError("--chart needs matplotlib: pip install -e '.[chart]' (or leave out --chart)")


def sweep_chart(rows: list[dict[str, Any]], title: str, path: Path, tokens: float | None) -> None:
    """Write a PNG with one line per GPU type (and sequence length, when several)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [
        ("tokens_per_s", "throughput (tokens/s, cluster)", True),
        ("days", "days to train the budget", True),
        ("scaling_efficiency", "scaling efficiency (tokens/s per GPU vs smallest)", False),
    ]
    if not tokens:
        panels = [p for p in panels if p[0] != "days"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), constrained_layout=True)
    for ax, (key, label, log_y) in zip(axes, panels, strict=True):
        series = list(dict.fromkeys((r["gpu"], r.get("seq_len")) for r in rows))
        many_seqs = len({seq for _, seq in series}) > 1
        for gpu, seq in series:
            points = [
                (r["gpus"], r[key]) for r in rows if (r["gpu"], r.get("seq_len")) == (gpu, seq) and key in r
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=f"{gpu}, seq {seq}" if many_seqs else gpu)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("GPUs")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    png = io.BytesIO()
    fig.savefig(png, dpi=130, format="png")
    plt.close(fig)
    write_atomic(path, png.getvalue(), option="--chart")  # a unique temporary file, then rename
