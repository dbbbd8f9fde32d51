"""Tables for people: numbers rounded to what a reader compares (three significant figures,
shares as percentages), aligned as text or as a Markdown table that pastes into a document.
JSON and CSV keep the exact values; only these renderings round."""

import math
from typing import Any

SIGNIFICANT_DIGITS = 3
PERCENT_COLUMNS = {"mfu", "hfu", "scaling_efficiency", "time_lost_fraction"}
MONEY_COLUMNS = {"price_per_gpu_hour"}


def significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> str:
    """``value`` to ``digits`` significant figures with thousands separators: 24,800, 6.94, 0.0123."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    return f"{round(value, decimals):,.{max(decimals, 0)}f}"


def compact(value: float) -> str:
    """Three significant figures with a k/M/B suffix for slides: 71.1k, 1.62M, 2.58B."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return significant(value / scale) + suffix
    return significant(value)


def tick_label(value: float) -> str:
    """An axis tick without trailing zeros: 20, 500, 2k, 1.5M."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def cell(column: str, value: Any) -> str:
    """One value of ``column`` rounded for people; ``-`` when absent."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if column in PERCENT_COLUMNS:
        return f"{value:.1%}"
    if column in MONEY_COLUMNS:
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return significant(value)


def row_cells(column: str, values: list[Any]) -> list[str]:
    """Values of one row that people compare (A, B, B - A) rounded alike: to the decimals that
    give the row's largest value three significant figures (6.21 and 12.43 would read as unequal
    precision; 6.21 and 12.4 as unequal sizes). Shares as percentages, integers whole."""
    numbers = [v for v in values if _is_number(v)]
    if column in PERCENT_COLUMNS or all(isinstance(v, int) for v in numbers):
        return [cell(column, v) for v in values]
    largest = max((abs(v) for v in numbers if math.isfinite(v)), default=0.0)
    decimals = 3 if largest == 0 else max(0, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(largest)))
    return [f"{v:,.{decimals}f}" if _is_number(v) and math.isfinite(v) else cell(column, v) for v in values]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def text_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """Right-aligned columns separated by two spaces."""
    table = [columns, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in table]


def markdown_table(columns: list[str], rows: list[list[str]], numeric: list[bool] | None = None) -> list[str]:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned. Pipes in cells escaped."""
    numeric = numeric or [False] * len(columns)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"
    return [line(columns), rule, *(line(r) for r in rows)]
