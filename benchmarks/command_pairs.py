"""Whole ``plan`` commands timed in two checkouts of the planner, alternately, so that both see the
same load: what a change did to the command's time.

    python benchmarks/command_pairs.py BEFORE AFTER                 # two checkouts' root folders
    python benchmarks/command_pairs.py BEFORE AFTER --repeats 5

Each case is ``plan --gpus N MODEL --top 5 --format json`` in a fresh interpreter, run in BEFORE then
in AFTER, ``--repeats`` times; the medians (wall-clock seconds) are printed beside each other, with
the load average of the machine before and after. Both checkouts' ``planner/`` and ``constraints/``
are compiled to bytecode first (as ``search_speed.py`` does), so that neither pays for compiling
its modules. The cases are the largest spaces of the bundled MoE models, which the search-speed
target was missed on before the bound over layouts, a few where memory binds or the space is
dense, and the two smallest spaces of the grid (where CP-SAT was slower than brute force before one
solve enumerated the plans).
"""

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = [
    ("qwen3-235b-a22b", 512),
    ("qwen3-235b-a22b", 8192),
    ("qwen3-235b-a22b", 100000),
    ("qwen3-30b-a3b", 512),
    ("qwen3-30b-a3b", 100000),
    ("qwen1.5-moe-a2.7b", 100000),
    ("mixtral-8x7b", 512),
    ("mixtral-8x7b", 100000),
    ("deepseek-v3", 512),
    ("qwen3-235b-a22b", 8),
    ("deepseek-v3", 8),
    ("mixtral-8x7b", 8),
    ("qwen3-30b-a3b", 8),
    ("llama2-13b", 64),
    ("llama3.1-405b", 512),
    ("gpt2-xl", 8192),
    ("qwen2-7b", 8192),
]
CLI = "import sys; from planner.cli import entry; sys.argv[0] = 'plan'; entry()"  # what the plan script runs


def once(root: Path, model: str, gpus: int) -> float:
    """Wall-clock seconds of one command in the checkout at ``root``."""
    args = [sys.executable, "-c", CLI, "--gpus", str(gpus), model, "--top", "5", "--format", "json"]
    start = time.perf_counter()
    done = subprocess.run(args, env={**os.environ, "PYTHONPATH": str(root)}, cwd=root, capture_output=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"Error: {root}: plan --gpus {gpus} {model} exited {done.returncode}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="root folder of the checkout before the change")
    parser.add_argument("after", type=Path, help="root folder of the checkout after it")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per command and checkout (median printed)"
    )
    args = parser.parse_args()
    for root in (args.before, args.after):
        if not (root / "planner" / "cli.py").is_file():
            raise SystemExit(
                f"Error: {root} holds no planner checkout (planner/cli.py); give its root folder"
            )
        for package in ("planner", "constraints"):
            compileall.compile_dir(root / package, quiet=1)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; medians of {args.repeats}")
    print(f"{'model':<20}{'GPUs':>7}{'before':>9}{'after':>9}")
    for model, gpus in CASES:
        before, after = [], []
        for _ in range(args.repeats):
            before.append(once(args.before, model, gpus))
            after.append(once(args.after, model, gpus))
        print(
            f"{model:<20}{gpus:>7}{statistics.median(before):>8.3f}s{statistics.median(after):>8.3f}s",
            flush=True,
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
