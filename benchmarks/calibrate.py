"""Fit the step-time constants (``planner/calibration.py``, ``planner/gpus/*.yaml``) on published runs.

    python benchmarks/calibrate.py [--published ../shared/calibration/published.yaml]

Coordinate descent, one constant at a time over a grid, minimizing the mean absolute log error of
predicted vs published step time over every usable row with a step time (``benchmarks/published.py``
says which, by field rules; no row is special-cased):

1. the shared constants and the GEMM efficiencies on every row: the defaults of
   ``planner/calibration.py`` (what a GPU without its own fit gets);
2. per tensor-core architecture (``ARCHITECTURES``), then per GPU generation, its 16-bit and FP8
   GEMM efficiencies on its own rows, where it has at least ``MIN_ROWS`` rows of that precision from
   at least ``MIN_MODELS`` models (else a generation keeps its architecture's value, else the
   shared one, and says so);
3. the shared constants again, with those values in place; steps 2 and 3 twice.

Prints the constants, the loss, and each generation's ``constants:`` block for its preset files.
"""

import argparse
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from planner.calibration import DEFAULT_CONSTANTS, StepTimeConstants  # noqa: E402
from planner.performance import performance  # noqa: E402
from planner.specs import Precision  # noqa: E402

from published import DEFAULT_PATH, Row, load_or_exit  # noqa: E402

GRID = {
    "gemm_max_efficiency": [0.45 + 0.025 * i for i in range(19)],  # 0.45 .. 0.90
    "gemm_fp8_efficiency": [0.30 + 0.025 * i for i in range(23)],  # 0.30 .. 0.85
    "attention_efficiency": [0.20 + 0.05 * i for i in range(13)],  # 0.20 .. 0.80
    "comm_efficiency": [0.3 + 0.1 * i for i in range(7)],  # 0.3 .. 0.9
    "network_efficiency": [0.3 + 0.1 * i for i in range(7)],
    "dp_overlap": [0.1 * i for i in range(10)],  # 0 .. 0.9
    "elementwise_bytes_per_width": [0, 25, 50, 75, 100, 150, 200, 250, 300],
    "moe_layer_overhead_s": [0.0, 5e-4, 1e-3, 1.5e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3, 8e-3],
    "moe_expert_overhead_s": [0.0, 5e-5, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 8e-4, 1e-3],
}
SHARED = tuple(GRID)
PER_GENERATION = {"gemm_max_efficiency": False, "gemm_fp8_efficiency": True}
"""Constants fitted per GPU generation, and whether on its FP8 rows (else its 16-bit rows)."""
MIN_ROWS = 3
MIN_MODELS = 2
"""Models a group's rows must span for the group to take its own GEMM efficiency: the rows of one
model cannot tell the GPU's efficiency from that model's own misfit (a recompute its source does
not state, its shapes), which a second model's rows do not share. (DGX Cloud v25.05's six GB200 rows
are all Llama 3.1 405B: with Megatron-Bridge's held out, they alone set Blackwell's efficiencies.)"""
SWEEPS = 2


ARCHITECTURES = {
    "A100": "Ampere",
    "H100": "Hopper",
    "B200": "Blackwell",
    "GB200": "Blackwell",
    "GB300": "Blackwell",
}
"""Tensor-core architecture of each GPU generation: a generation with too few rows of a precision
takes its architecture's fit (B200, GB200 and GB300 are one Blackwell die family), else the shared."""


@dataclass(frozen=True)
class Fit:
    """Shared constants, and the per-architecture and per-generation values fitted over them."""

    shared: StepTimeConstants
    architectures: dict[str, dict[str, float]] = field(default_factory=dict)
    generations: dict[str, dict[str, float]] = field(default_factory=dict)

    def constants_of(self, generation: str) -> StepTimeConstants:
        """The constants a generation's GPUs get: its own values over its architecture's over the
        shared ones."""
        arch = self.architectures.get(ARCHITECTURES.get(generation, ""), {})
        return replace(self.shared, **(arch | self.generations.get(generation, {})))

    def constants(self, row: Row) -> StepTimeConstants:
        """The constants a row's GPU gets."""
        return self.constants_of(row.generation)


def predicted_s(row: Row, c: StepTimeConstants | None) -> float:
    """Predicted step time of a row (``None``: its preset's own constants)."""
    return performance(row.model, row.hardware, row.training, row.config, c).step_time_s


def log_loss(rows: Iterable[Row], constants_of: Callable[[Row], StepTimeConstants]) -> float:
    """Mean |log(predicted / published)|."""
    return statistics.mean(abs(math.log(predicted_s(r, constants_of(r)) / r.measured_step_s)) for r in rows)


def descend(
    rows: Sequence[Row], start: StepTimeConstants, names: Sequence[str], of=None
) -> StepTimeConstants:
    """Coordinate descent over ``names`` from ``start``; ``of(row, c)`` gives a row's constants when
    ``c`` is the point being tried (default: ``c`` itself)."""
    of = of or (lambda row, c: c)
    best, best_loss = start, log_loss(rows, lambda r: of(r, start))
    for _ in range(SWEEPS):
        for name in names:
            for value in GRID[name]:
                trial = replace(best, **{name: round(value, 4)})
                loss = log_loss(rows, lambda r, t=trial: of(r, t))
                if loss < best_loss - 1e-9:
                    best, best_loss = trial, loss
    return best


def _per_group(rows: Sequence[Row], start: StepTimeConstants) -> dict[str, float]:
    """The per-generation constants fitted on ``rows`` where they hold ``MIN_ROWS`` of the precision
    from ``MIN_MODELS`` models."""
    values, c = {}, start
    for name, fp8 in PER_GENERATION.items():
        subset = [r for r in rows if (r.training.precision is Precision.FP8) == fp8]
        if len(subset) >= MIN_ROWS and len({r.model.name for r in subset}) >= MIN_MODELS:
            c = descend(subset, c, [name])
            values[name] = getattr(c, name)
    return values


def fit(rows: Sequence[Row]) -> Fit:
    """The three steps of the module docstring, with each generation's values falling back to its
    architecture's where it has too few rows."""
    rows = [r for r in rows if r.measured_step_s]
    shared = descend(rows, DEFAULT_CONSTANTS, SHARED)
    for _ in range(2):  # per-group values given the shared ones, then the shared ones given them
        result = Fit(shared=shared)
        arches = {
            arch: _per_group([r for r in rows if ARCHITECTURES.get(r.generation) == arch], shared)
            for arch in sorted({ARCHITECTURES.get(r.generation, "") for r in rows} - {""})
        }
        result = Fit(shared=shared, architectures=arches)
        generations = {
            g: _per_group([r for r in rows if r.generation == g], result.constants_of(g))
            for g in sorted({r.generation for r in rows})
        }
        result = Fit(shared=shared, architectures=arches, generations=generations)

        def with_groups(row: Row, trial: StepTimeConstants, result: Fit = result) -> StepTimeConstants:
            arch = result.architectures.get(ARCHITECTURES.get(row.generation, ""), {})
            return replace(trial, **(arch | result.generations.get(row.generation, {})))

        shared = descend(rows, shared, [n for n in SHARED if n not in PER_GENERATION], with_groups)
    return Fit(shared=shared, architectures=result.architectures, generations=result.generations)


def changed(c: StepTimeConstants, base: StepTimeConstants) -> dict[str, float]:
    """The constants of ``c`` that differ from ``base``."""
    return {f.name: getattr(c, f.name) for f in fields(c) if getattr(c, f.name) != getattr(base, f.name)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--published", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args()
    rows = [r for r in load_or_exit(args.published)[0] if r.measured_step_s]
    print(f"fitting on {len(rows)} rows", flush=True)
    result = fit(rows)
    print(
        f"mean |log error|: {log_loss(rows, result.constants):.4f} (default constants: "
        f"{log_loss(rows, lambda r: DEFAULT_CONSTANTS):.4f})"
    )
    print("shared constants (planner/calibration.py):")
    for name in SHARED:
        print(f"  {name} = {getattr(result.shared, name)}")
    for arch, values in result.architectures.items():
        print(f"{arch} architecture constants: {values}")
    for generation in sorted({r.generation for r in rows}):
        n = sum(r.generation == generation for r in rows)
        arch = result.architectures.get(ARCHITECTURES.get(generation, ""), {})
        own = result.generations.get(generation, {})
        print(f"{generation} ({n} rows) constants: {arch | own}")
        for name in PER_GENERATION:
            source = "its own rows" if name in own else "its architecture's rows" if name in arch else None
            told = f"fitted on {source}" if source else "too few rows; the shared value"
            print(f"{generation}: {name}: {told}")


if __name__ == "__main__":
    main()
