"""Fit the step-time constants of ``planner/calibration.py`` on the published runs.

    python benchmarks/calibrate.py [--published ../shared/calibration/published.yaml]

Grid search minimizing the mean absolute log error of predicted vs published step time over every
usable entry (``benchmarks/published.py`` says which, by field rules); prints the best constants and
their error, to be copied into ``planner/calibration.py`` with the date and this command.
"""

import argparse
import itertools
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from planner.calibration import StepTimeConstants  # noqa: E402
from planner.performance import performance  # noqa: E402

from published import DEFAULT_PATH, load  # noqa: E402

GRID = {
    "gemm_max_efficiency": [round(0.50 + 0.025 * i, 3) for i in range(17)],  # 0.50 .. 0.90
    "gemm_half_size": [1e4, 1e5, 1e6, 3e6],
    "comm_efficiency": [0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "dp_overlap": [0.0, 0.3, 0.6, 0.9],
    "elementwise_bytes_per_width": [0, 25, 50, 100, 150, 200, 300],
}


def loss(rows, constants) -> float:
    return statistics.mean(
        abs(
            math.log(
                performance(r.model, r.hardware, r.training, r.config, constants).step_time_s
                / r.measured_step_s
            )
        )
        for r in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--published", type=Path, default=DEFAULT_PATH)
    parser.add_argument(
        "--include-moe",
        action="store_true",
        help="also fit on MoE entries (their hierarchical all-to-all is not modelled; off by default)",
    )
    parser.add_argument(
        "--stated-only", action="store_true", help="fit only on entries that state their recompute mode"
    )
    args = parser.parse_args()
    rows = [
        r
        for r in load(args.published)[0]
        if r.measured_step_s
        and not (args.stated_only and r.recompute_inferred)
        and (args.include_moe or not r.model.is_moe)
    ]
    print(
        f"fitting on {len(rows)} entries, {math.prod(len(v) for v in GRID.values())} grid points", flush=True
    )
    best = None
    for values in itertools.product(*GRID.values()):
        constants = StepTimeConstants(**dict(zip(GRID, values, strict=True)))
        score = loss(rows, constants)
        if best is None or score < best[0]:
            best = (score, constants)
    score, constants = best
    print(f"best mean |log error| {score:.4f} (exp: {math.exp(score) - 1:.1%}) with")
    for name in GRID:
        print(f"  {name} = {getattr(constants, name)}")


if __name__ == "__main__":
    main()
