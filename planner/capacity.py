"""Capacity questions around one plan: sweeps over GPU counts and types, the smallest GPU count
that trains at all, days and GPU-hours for a token budget, and a term-by-term diff of two plans."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from constraints import memory as M
from planner.counts import count_params
from planner.defaults import with_default_batch
from planner.document import document
from planner.errors import PlannerError
from planner.io import DECIMAL_BASE, parse_count, read_mapping
from planner.layout import column_values
from planner.numbers import MAX_SWEEP_POINTS, check_number
from planner.plan import Request, fits_anywhere, run
from planner.space import Pins
from planner.specs import HardwareSpec, ModelSpec, TrainingSpec

SECONDS_PER_DAY = 86_400
SMALL_COUNTS = (1, 2, 4)  # below one node; from there on, whole nodes
MAX_GPUS = 1 << 20
MAX_CHECKED = 200  # counts tried above the lower bound before giving up


def parse_gpu_counts(text: str) -> list[int]:
    """``8..1024`` (powers of two), ``8..64x8`` (step 8) or ``8,16,48``."""
    try:
        if ".." in text:
            low_text, high_text = text.split("..")
            step = None
            if "x" in high_text:
                high_text, step_text = high_text.split("x")
                step = int(step_text)
            low, high = int(low_text), int(high_text)
            if low <= 0 or high < low:
                raise ValueError
            if step is not None and step <= 0:
                raise ValueError
            check_number(high, "--gpus")
            counts = _sweep_points(text, range(low, high + 1, step)) if step else _doublings(low, high)
        else:
            counts = sorted({int(part) for part in text.split(",") if part.strip()})
            if not counts or counts[0] <= 0:
                raise ValueError
    except ValueError:
        raise PlannerError(
            f"--gpus {text!r}: use a range such as 8..1024 (powers of two), "
            "8..64x8 (every 8) or a list such as 8,16,48"
        ) from None
    for count in counts:
        check_number(count, "--gpus")
    return _sweep_points(text, counts)


def _doublings(low: int, high: int) -> list[int]:
    counts, n = [], low
    while n <= high:
        counts.append(n)
        n *= 2
    return counts


def _sweep_points(text: str, counts: range | list[int]) -> list[int]:
    """The counts, unless there are more than a sweep can plan in reasonable time."""
    if len(counts) > MAX_SWEEP_POINTS:
        raise PlannerError(
            f"--gpus {text!r} gives {len(counts):,} GPU counts; a sweep plans at most "
            f"{MAX_SWEEP_POINTS} (use a larger step, e.g. 8..4096x64, or powers of two)"
        )
    return list(counts)


def parse_tokens(text: str) -> float:
    """A token budget: ``2T``, ``300B``, ``1.5e12`` (decimal: T = 10^12, as budgets are quoted)."""
    value = parse_count(text, DECIMAL_BASE)
    if not value > 0:  # also NaN
        raise PlannerError(f"--tokens {text!r}: use a positive count such as 2T, 300B or 1.5e12")
    return check_number(value, "--tokens")


def training_cost(
    tokens_per_s: float, gpus: int, tokens: float | None, price: float | None
) -> dict[str, float]:
    """Days, GPU-hours and cost to train ``tokens`` at ``tokens_per_s``."""
    if not tokens:
        return {}
    seconds = tokens / tokens_per_s
    out = {"days": seconds / SECONDS_PER_DAY, "gpu_hours": seconds * gpus / 3600}
    if price is not None:
        out["cost"] = out["gpu_hours"] * price
    return out


def sweep_row(
    req: Request, tokens: float | None, price: float | None, progress: "Progress | None" = None
) -> dict[str, Any]:
    """One row of a sweep: the best plan at this GPU type and count."""
    try:
        doc = document(req, run(req, progress=progress))
    except PlannerError as exc:  # e.g. no layout divides this GPU count or batch
        return {"gpu": req.hardware.name, "gpus": req.gpus, "status": "no layout", "reason": str(exc)}
    row: dict[str, Any] = {"gpu": req.hardware.name, "gpus": req.gpus, "status": doc["status"]}
    if doc["status"] != "infeasible":
        p, perf = doc["parallelism"], doc["performance"]
        row |= column_values(p)
        row |= {
            "mem_gib": doc["memory_gib"]["total"],
            "tokens_per_s": perf["tokens_per_s"],
            "mfu": perf["mfu"],
            "step_time_s": perf["step_time_s"],
        }
        if price is not None:
            row["price_per_gpu_hour"] = price
        row |= training_cost(perf["tokens_per_s"], req.gpus, tokens, price)
    return row


def with_scaling_efficiency(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tokens/s per GPU relative to one common baseline per sequence length: the first row that
    trains (the first GPU type's smallest count), so GPU types compare on one scale. Returns the
    baselines, ``{gpu, gpus, seq_len}`` each."""
    baselines: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if "tokens_per_s" in row:
            base = baselines.setdefault(row.get("seq_len"), row)
            row["scaling_efficiency"] = (row["tokens_per_s"] / row["gpus"]) / (
                base["tokens_per_s"] / base["gpus"]
            )
    return [{"gpu": b["gpu"], "gpus": b["gpus"], "seq_len": b.get("seq_len")} for b in baselines.values()]


def parse_prices(entries: tuple[str, ...], every_type: float | None) -> dict[str, float]:
    """GPU-hour prices by GPU type from ``--price NAME=PRICE`` entries or ``--price FILE`` (a YAML
    mapping ``name: price``); ``--price-per-gpu-hour`` is the price of every type not named.
    The key ``*`` holds that default."""
    prices: dict[str, float] = {}
    if every_type is not None:
        prices["*"] = _price(every_type, "--price-per-gpu-hour")
    for entry in entries:
        if "=" in entry:
            name, _, value = entry.partition("=")
            try:
                prices[name.strip()] = _price(float(value), f"--price {entry}")
            except ValueError:
                raise PlannerError(f"--price {entry!r}: use NAME=PRICE, e.g. --price h100-80gb=3.2") from None
            continue
        mapping = read_mapping(Path(entry))
        if not isinstance(mapping, dict) or not mapping:
            raise PlannerError(
                f"--price {entry}: a prices file maps GPU names to prices, e.g. h100-80gb: 3.2"
            )
        for name, value in mapping.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PlannerError(f"--price {entry}: the price of {name!r} must be a number, got {value!r}")
            prices[str(name)] = _price(float(value), f"--price {entry} ({name})")
    return prices


def _price(value: float, option: str) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise PlannerError(f"{option}: a price must be a finite number, zero or more; got {value}")
    return value


def price_of(gpu: str, prices: dict[str, float]) -> float | None:
    """The GPU-hour price of ``gpu``: its own, else the price of every type, else none."""
    return prices.get(gpu, prices.get("*"))


@dataclass(frozen=True, slots=True)
class MinGpus:
    """The smallest GPU count that trains, and the lower bound the search started from."""

    gpus: int | None
    lower_bound: int
    checked: list[int]


def candidate_counts(start: int, gpus_per_node: int) -> list[int]:
    """GPU counts worth renting from ``start`` up: 1, 2, 4, then whole nodes, doubling the step
    every 8 nodes (a bounded walk, not a scan)."""
    counts = [n for n in SMALL_COUNTS if n >= start and n < gpus_per_node]
    n, step = max(gpus_per_node, -(-start // gpus_per_node) * gpus_per_node), gpus_per_node
    while n <= MAX_GPUS:
        counts.append(n)
        if n >= 8 * step:
            step *= 2
        n += step
    return counts


def min_gpus(req: Request, progress: "Progress | None" = None) -> MinGpus:
    """Smallest GPU count on which some plan fits.

    The search starts at a lower bound no plan can beat: every parameter's 16-bit weight, gradient
    and optimizer state sharded over all GPUs (ZeRO-3), into the memory left after the reserve. It
    then walks up the counts of ``candidate_counts`` and stops at the first that fits, saying
    each count it tries to ``progress``.
    """
    params = count_params(req.model).total
    training, hardware = req.training, req.hardware
    per_param = (
        M.weight_bytes_per_param(training.precision)
        + M.grad_bytes_per_param(training.precision, training.framework, training.grad_reduce_in_bf16)
        + M.optimizer_bytes_per_param(training.precision)
    )
    usable = hardware.memory_bytes - M.reserve_bytes(
        hardware.memory_bytes, training.reserve_fraction, training.reserve_fixed_bytes
    )
    if usable <= 0:
        raise PlannerError("--reserve leaves no memory")
    bound = max(1, int(params * per_param // usable))
    checked = []
    for count in candidate_counts(bound, hardware.gpus_per_node)[:MAX_CHECKED]:
        checked.append(count)
        if progress is not None:
            progress(f"smallest GPU count on {hardware.name}, seq {training.seq_len}: trying {count}")
        if fits_anywhere(req, count):
            return MinGpus(count, bound, checked)
    return MinGpus(None, bound, checked)


COMPARED_SECTIONS = (
    "model",
    "cluster",
    "training",
    "parallelism",
    "memory_gib",
    "performance",
    "performance.breakdown",
)
CONTEXT_SECTIONS = ("model", "cluster", "training")  # the question asked, not the answer
REQUIRED_SECTIONS = ("parallelism", "memory_gib")


def check_plan_document(doc: Any, source: str) -> dict[str, Any]:
    """``doc`` if it is a plan document ``compare`` can read: the sections it compares are
    mappings of scalars (text, true/false, finite numbers); else a one-line error naming
    ``source`` and the key (``parallelism.layers_per_stage``, a list of whole numbers, is read and
    left out of the comparison; ``parallelism.recompute_modules``, a list of names, is compared as
    ``layernorm,moe_act``)."""
    if not isinstance(doc, dict) or any(key not in doc for key in REQUIRED_SECTIONS):
        raise PlannerError(
            f"{source}: not a plan document (no memory_gib / parallelism); write one with plan ... -o DIR"
        )
    for section in COMPARED_SECTIONS:
        node: Any = doc
        for key in section.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            continue
        if not isinstance(node, dict):
            raise PlannerError(f"{source}: key '{section}' must be a mapping, got {type(node).__name__}")
        for term, value in node.items():
            if isinstance(value, dict) or value is None or isinstance(value, (str, bool)):
                continue
            if (section, term) == ("parallelism", "layers_per_stage") and _whole_numbers(value):
                continue  # shown, not compared
            if (section, term) == ("parallelism", "recompute_modules") and _texts(value):
                continue  # compared as one comma-separated text
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PlannerError(
                    f"{source}: key '{section}.{term}' must be text or a finite number, got {value!r:.40}"
                )
    return doc


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (section, term, A, B, B - A, ratio, differs) for the question each plan answers
    (model, cluster, training) and its answer (layout, memory and step-time terms)."""
    rows = []
    for section in COMPARED_SECTIONS:
        left, right = _section(a, section), _section(b, section)
        for term in list(left) + [t for t in right if t not in left]:
            va, vb = (",".join(v) if _texts(v) else v for v in (left.get(term), right.get(term)))
            if isinstance(va, (dict, list)) or isinstance(vb, (dict, list)):
                continue
            row = {"section": section, "term": term, "a": va, "b": vb, "differs": va != vb}
            if _number(va) and _number(vb):
                row["delta"] = vb - va
                row["ratio"] = vb / va if va else None
            rows.append(row)
    return rows


def differing_context(rows: list[dict[str, Any]]) -> list[str]:
    """``cluster.gpu``, ``training.seq_len``, ...: where the two plans answer different questions."""
    return [f"{r['section']}.{r['term']}" for r in rows if r["section"] in CONTEXT_SECTIONS and r["differs"]]


def _whole_numbers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _section(doc: dict[str, Any], path: str) -> dict[str, Any]:
    node: Any = doc
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return {}
        node = node[key]
    return node if isinstance(node, dict) else {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Sweep:
    """The answer of ``plan sweep``: one row per GPU type, sequence length and count, the smallest
    count that trains per type and length, and the common scaling baselines."""

    rows: list[dict[str, Any]]
    """``sweep_row`` of each point, with its ``seq_len`` and ``global_batch``."""
    min_gpus: list[dict[str, Any]]
    """``{gpu, seq_len, gpus, lower_bound}`` per GPU type and sequence length."""
    scaling_baseline: list[dict[str, Any]]
    """The rows ``scaling_efficiency`` is measured against (``with_scaling_efficiency``)."""

    def as_dict(self) -> dict[str, Any]:
        """The document ``plan sweep --format json`` prints."""
        return {"rows": self.rows, "min_gpus": self.min_gpus, "scaling_baseline": self.scaling_baseline}


Progress = Callable[[str], None]
"""Called with one line saying what starts now (``planning 3/12: h100-80gb x 256 GPUs, seq 8192``);
the CLI shows it on a terminal (``planner.cli_progress``)."""


def sweep(
    model: ModelSpec,
    hardwares: list[HardwareSpec],
    trainings: list[TrainingSpec],
    counts: list[int],
    *,
    tokens: float | None = None,
    prices: dict[str, float] | None = None,
    batch_given: bool = False,
    progress: Progress | None = None,
) -> Sweep:
    """Plan ``model`` on every GPU type, training (sequence length) and count. Unless the global
    batch was given, each point takes the default batch for its GPU count
    (``planner.defaults.with_default_batch``), as ``plan`` does."""
    rows, smallest = [], []
    jobs = [(hw, training, n) for hw in hardwares for training in trainings for n in counts]
    for index, (hardware, training, count) in enumerate(jobs, 1):
        if progress is not None:
            progress(f"planning {index}/{len(jobs)}: {hardware.name} x {count} GPUs, seq {training.seq_len}")
        note = None
        if not batch_given:
            training, note = with_default_batch(model, training, count, Pins(), hardware.nvlink_domain_gpus)
        req = Request(
            model=model,
            hardware=hardware,
            training=training,
            gpus=count,
            constants=hardware.step_constants,
            global_batch_note=note,
        )
        row = sweep_row(req, tokens, price_of(hardware.name, prices or {}), progress)
        rows.append({"seq_len": training.seq_len, "global_batch": training.global_batch_size, **row})
        if count == counts[0]:
            found = min_gpus(req, progress)
            smallest.append(
                {
                    "gpu": hardware.name,
                    "seq_len": training.seq_len,
                    "gpus": found.gpus,
                    "lower_bound": found.lower_bound,
                }
            )
    baselines = with_scaling_efficiency(rows)
    return Sweep(rows=rows, min_gpus=smallest, scaling_baseline=baselines)
