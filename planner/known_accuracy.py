"""How accurate the model is known to be, by regime: the figures ``python benchmarks/accuracy.py
--published ../shared/calibration/published.yaml`` prints (README "Accuracy", after the per-GPU
recalibration). The HTML report quotes the line for the plan's regime. Rerun the benchmark and
update these figures whenever the model is recalibrated."""

from dataclasses import dataclass

from constraints.units import Precision


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownAccuracy:
    """Step-time error of one regime against published runs."""

    regime: str
    """Which published entries."""
    num_entries: int
    """How many entries the figure summarises."""
    median_abs_error: float
    """Median of |predicted / published - 1| of the step time."""
    held_out_median_abs_error: float | None = None
    """The same median with each entry predicted from constants fitted without its source family
    (the benchmark's leave-one-family-out lines): the figure for runs the model has not seen."""

    def worst_median(self) -> float:
        """The larger of the two figures (the held-out one where known)."""
        return max(self.median_abs_error, self.held_out_median_abs_error or 0.0)


ALL_ENTRIES = KnownAccuracy(regime="every usable published entry", num_entries=205, median_abs_error=0.058)
HELD_OUT = KnownAccuracy(
    regime="each source family predicted from constants fitted without it",
    num_entries=205,
    median_abs_error=0.069,
)
DENSE = KnownAccuracy(
    regime="dense models, entries that state their recompute", num_entries=71, median_abs_error=0.068
)
MOE = KnownAccuracy(
    regime="mixture-of-experts entries",
    num_entries=11,
    median_abs_error=0.101,
    held_out_median_abs_error=0.125,
)
FP8 = KnownAccuracy(
    regime="FP8 entries", num_entries=43, median_abs_error=0.047, held_out_median_abs_error=0.068
)
ACCURACY_TARGET = 0.10
"""Median |error| the step-time model aims at (README "Accuracy", targets: held out and per GPU
generation); a regime above its target is flagged in the plan's ``warnings``."""
TARGET_OF_REGIME = {MOE.regime: 0.15, FP8.regime: 0.15}
"""The benchmark's own targets for the MoE and FP8 rows."""
BY_GPU_GENERATION = {
    "a100": KnownAccuracy(
        regime="A100 entries", num_entries=129, median_abs_error=0.066, held_out_median_abs_error=0.069
    ),
    "b200": KnownAccuracy(
        regime="B200 entries, all Megatron-Bridge 25.11",
        num_entries=4,
        median_abs_error=0.018,
        held_out_median_abs_error=0.064,
    ),
    "gb200": KnownAccuracy(
        regime="GB200 entries", num_entries=10, median_abs_error=0.010, held_out_median_abs_error=0.149
    ),
    "gb300": KnownAccuracy(
        regime="GB300 entries, all Megatron-Bridge 25.11",
        num_entries=4,
        median_abs_error=0.049,
        held_out_median_abs_error=0.070,
    ),
    "h100": KnownAccuracy(
        regime="H100 entries", num_entries=58, median_abs_error=0.056, held_out_median_abs_error=0.066
    ),
}
"""The ``per GPU generation`` lines of the accuracy benchmark (in the fit, and held out)."""
MEMORY_MEDIAN_ERROR = -0.102
"""Median error of the memory total (reserve excluded) against nvidia-smi peaks, 31 BLOOM entries."""
MEMORY_ENTRIES = 31


def accuracy_for(is_moe: bool, precision: Precision) -> KnownAccuracy:
    """The figure for a plan's regime: MoE and FP8 have their own, else the dense calibration set."""
    if is_moe:
        return MOE
    if precision is Precision.FP8:
        return FP8
    return DENSE


GENERATION_OF_PRESET = {
    "a100-40gb": "a100",
    "a100-80gb": "a100",
    "h100-80gb": "h100",
    "b200": "b200",
    "gb200": "gb200",
    "gb300": "gb300",
}
"""Presets whose GPU generation has published rows (H200 and H100 96GB share the H100's constants
but have no rows of their own)."""


def accuracy_of_gpu(name: str) -> KnownAccuracy | None:
    """The figure of a preset's GPU generation, None for other hardware."""
    generation = GENERATION_OF_PRESET.get(name)
    return None if generation is None else BY_GPU_GENERATION[generation]


def target_of(accuracy: KnownAccuracy) -> float:
    """The median |error| the benchmark aims at for this regime."""
    return TARGET_OF_REGIME.get(accuracy.regime, ACCURACY_TARGET)
