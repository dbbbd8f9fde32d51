"""Predicted vs published step time, and whether each published configuration fits.

    python benchmarks/accuracy.py [--published ../shared/calibration/published.yaml] [--csv out.csv]

Prints one line per usable entry (predicted and published step time, error, predicted memory, fit
verdict) and a summary: median and mean absolute error, share within 10/25%, fit agreement (the
published runs ran, so they must fit; those marked ``oom: true`` must not).
"""

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from planner.evaluate import memory  # noqa: E402
from planner.performance import performance  # noqa: E402

from published import DEFAULT_PATH, load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--published", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    rows, skipped = load(args.published)
    errors, fit_ok, fit_total, mem_errors, table = [], 0, 0, [], []
    stated_errors, moe_errors, fp8_errors = [], [], []
    print(
        f"{'entry':<62} {'pred s':>8} {'pub s':>8} {'err':>7} {'mem GiB':>8} {'fits':>5} {'pub':>5} recompute"
    )
    for row in rows:
        mem = memory(row.model, row.hardware, row.training, row.config)
        pred = performance(row.model, row.hardware, row.training, row.config).step_time_s
        err = (pred / row.measured_step_s - 1) if row.measured_step_s else None
        if err is not None:
            errors.append(err)
            if not row.recompute_inferred and not row.model.is_moe:
                stated_errors.append(abs(err))
            if row.model.is_moe:
                moe_errors.append(abs(err))
            if row.training.precision.value == "fp8":
                fp8_errors.append(abs(err))
        if not row.recompute_inferred:
            fit_total += 1
            fit_ok += mem.fits == (not row.oom)
        if row.peak_mem_gb:
            mem_errors.append((mem.total - mem.reserve) / (row.peak_mem_gb * 1e9) - 1)
        pub = f"{row.measured_step_s:8.2f}" if row.measured_step_s else f"{'-':>8}"
        err_s = f"{err:+7.1%}" if err is not None else f"{'-':>7}"
        print(
            f"{row.id[:62]:<62} {pred:8.2f} {pub} {err_s} {mem.total / 2**30:8.1f} "
            f"{'yes' if mem.fits else 'NO':>5} {'oom' if row.oom else 'ran':>5} "
            f"{row.config.recompute.value}{'*' if row.recompute_inferred else ''}"
        )
        table.append(
            {
                "id": row.id,
                "predicted_step_s": pred,
                "published_step_s": row.measured_step_s,
                "error": err,
                "predicted_mem_gib": mem.total / 2**30,
                "fits": mem.fits,
                "oom": row.oom,
            }
        )
    abs_err = [abs(e) for e in errors]
    print(
        f"\nentries used: {len(rows)}, skipped: {len(skipped)} "
        f"({', '.join(sorted(set(skipped.values())))[:120]})"
    )
    print(
        f"step time: n={len(errors)}, median |error| {statistics.median(abs_err):.1%}, "
        f"mean |error| {statistics.mean(abs_err):.1%}, within 10%: {sum(e <= 0.10 for e in abs_err)}, "
        f"within 25%: {sum(e <= 0.25 for e in abs_err)}, "
        f"mean |log error| {statistics.mean(abs(math.log1p(e)) for e in errors):.3f}"
    )
    print(
        f"  dense entries stating their recompute (the calibration set): n={len(stated_errors)}, "
        f"median |error| "
        f"{statistics.median(stated_errors):.1%}; MoE entries: n={len(moe_errors)}, median |error| "
        f"{statistics.median(moe_errors) if moe_errors else float('nan'):.1%}; "
        f"FP8 entries: n={len(fp8_errors)}, "
        f"median |error| {statistics.median(fp8_errors) if fp8_errors else float('nan'):.1%}"
    )
    print(
        f"fit verdicts agreeing with the source (rows that state recompute): {fit_ok}/{fit_total}; "
        f"* = recompute not stated, inferred as the least that fits"
    )
    if mem_errors:
        print(
            f"memory vs nvidia-smi peak (reserve excluded, n={len(mem_errors)}): median error "
            f"{statistics.median(mem_errors):+.1%}"
        )
    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)


if __name__ == "__main__":
    main()
