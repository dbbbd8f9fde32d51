"""Inline SVG charts for the HTML report, drawn in Python: no JavaScript, no fonts or files to
fetch, text at 15-17 px in a 960-px-wide view box (so the page projected or printed keeps it
legible), every bar and point labelled with its value and unit.

Every string placed in a chart is escaped (``html.escape``); numbers are formatted by the caller.
"""

import math
from collections.abc import Callable, Sequence
from html import escape

WIDTH = 960
FONT_PX = 15
SMALL_PX = 13
# Okabe-Ito, a palette readable with colour-vision deficiencies (Okabe & Ito 2008).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
GREY = "#666666"
TOTAL_LABEL_PX = 80  # width of a "70.8 GiB" label: moved past the capacity line rather than across it


def _svg(height: float, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'font-family="Helvetica, Arial, sans-serif" font-size="{FONT_PX}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _text(
    x: float, y: float, text: str, anchor: str = "start", size: int = FONT_PX, fill: str = "#222"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}">'
        f"{escape(text)}</text>"
    )


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    capacity: float,
    unit: str,
    title: str,
    fmt: Callable[[float], str],
) -> str:
    """Horizontal stacked bars, one per row (label, [(segment, value)]), against a dashed capacity
    line; segments labelled inside when they are wide enough, totals at the bar's end."""
    label_w, right_pad, bar_h, gap, top = 230, 90, 34, 18, 58
    names = list(dict.fromkeys(name for _, segments in rows for name, _ in segments))
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    largest = max([capacity] + [sum(v for _, v in s) for _, s in rows])
    scale = (WIDTH - label_w - right_pad) / largest
    body = []
    x = label_w
    for name in names:  # legend
        body.append(f'<rect x="{x}" y="12" width="14" height="14" fill="{colors[name]}"/>')
        body.append(_text(x + 19, 24, name, size=SMALL_PX))
        x += 34 + 8 * len(name)
    capacity_x = label_w + capacity * scale
    y = top
    for label, segments in rows:
        body.append(_text(label_w - 10, y + bar_h * 0.65, label, "end"))
        x = label_w
        for name, value in segments:
            w = value * scale
            body.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colors[name]}">'
                f"<title>{escape(f'{name}: {fmt(value)} {unit}')}</title></rect>"
            )
            if w > 9 * len(fmt(value)) + 8:
                body.append(_text(x + w / 2, y + bar_h * 0.65, fmt(value), "middle", SMALL_PX, "#fff"))
            x += w
        total = sum(v for _, v in segments)
        label_x = x + 6 if not capacity_x - TOTAL_LABEL_PX < x + 6 < capacity_x + 4 else capacity_x + 6
        body.append(_text(label_x, y + bar_h * 0.65, f"{fmt(total)} {unit}", size=SMALL_PX))
        y += bar_h + gap
    cx = capacity_x
    body.append(
        f'<line x1="{cx:.1f}" y1="{top - 10}" x2="{cx:.1f}" y2="{y - gap + 10}" stroke="#C00000" '
        'stroke-width="2.5" stroke-dasharray="8 5"/>'
    )
    body.append(_text(cx, y - gap + 30, f"capacity {fmt(capacity)} {unit}", "middle", SMALL_PX, "#C00000"))
    return _svg(y - gap + 44, body, title)


def bars(items: Sequence[tuple[str, float]], unit: str, title: str, fmt: Callable[[float], str]) -> str:
    """Horizontal bars (label, value), each labelled with its value and unit."""
    label_w, right_pad, bar_h, gap, top = 230, 120, 26, 10, 10
    largest = max([v for _, v in items] + [1e-30])
    scale = (WIDTH - label_w - right_pad) / largest
    body, y = [], top
    for i, (label, value) in enumerate(items):
        w = max(value * scale, 1.0)
        body.append(_text(label_w - 10, y + bar_h * 0.72, label, "end"))
        color = PALETTE[i % len(PALETTE)]
        body.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        body.append(_text(label_w + w + 6, y + bar_h * 0.72, f"{fmt(value)} {unit}", size=SMALL_PX))
        y += bar_h + gap
    return _svg(y + top, body, title)


def _nice_log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if low <= value <= high:
                ticks.append(value)
    return ticks or [low, high]


def _nice_linear_ticks(low: float, high: float, count: int = 5) -> list[float]:
    raw = (high - low) / count or 1.0
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    start = math.floor(low / step) * step
    return [
        start + i * step for i in range(int((high - start) / step) + 2) if start + i * step <= high + 1e-9
    ]


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    x_label: str,
    y_label: str,
    title: str,
    fmt: Callable[[float], str],
    tick: Callable[[float], str],
    log_y: bool = True,
) -> str:
    """Lines over a log2 x axis whose ticks are the x values themselves, each point labelled."""
    height, left, right, top, bottom = 420, 100, 40, 54, 64
    xs = sorted({x for _, points in series for x, _ in points})
    ys = [y for _, points in series for _, y in points]
    if not xs or not ys:
        return ""
    x_lo, x_hi = math.log2(xs[0]), math.log2(xs[-1]) if len(xs) > 1 else math.log2(xs[0]) + 1
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    if log_y:
        y_lo, y_hi = math.log10(min(ys)) - 0.12, math.log10(max(ys)) + 0.18
        ticks = _nice_log_ticks(10**y_lo, 10**y_hi)
    else:
        span = (max(ys) - min(ys)) or abs(max(ys)) or 1.0
        y_lo, y_hi = min(0.0, min(ys) - 0.1 * span), max(ys) + 0.2 * span
        ticks = _nice_linear_ticks(y_lo, y_hi)

    def px(x: float) -> float:
        return left + 30 + (math.log2(x) - x_lo) / ((x_hi - x_lo) or 1) * (plot_w - 60)

    def py(y: float) -> float:
        value = math.log10(y) if log_y else y
        return top + plot_h - (value - y_lo) / (y_hi - y_lo) * plot_h

    body = [_text(left, 18, y_label, size=FONT_PX)]
    for t in ticks:
        body.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#ddd"/>'
        )
        body.append(_text(left - 8, py(t) + 5, tick(t), "end", SMALL_PX, GREY))
    for x in xs:
        body.append(_text(px(x), top + plot_h + 24, f"{x:,.0f}", "middle", SMALL_PX, GREY))
    body.append(_text(left + plot_w / 2, height - 14, x_label, "middle"))
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for i, (name, points) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for j, (x, y) in enumerate(points))
        body.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="3"/>')
        for x, y in points:
            body.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="5" fill="{color}"/>')
            body.append(_text(px(x), py(y) - 10, fmt(y), "middle", SMALL_PX, color))
        lx = left + 10 + 250 * i
        body.append(f'<rect x="{lx}" y="{top - 24}" width="14" height="14" fill="{color}"/>')
        body.append(_text(lx + 20, top - 12, name, size=SMALL_PX))
    return _svg(height, body, title)
