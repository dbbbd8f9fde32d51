"""Write the plan document and launch files of every bundled example, for before/after diffs.

    python benchmarks/plan_documents.py OUT_DIR

For every bundled example model on 64, 1024 and 16384 GPUs (default options, h100-80gb) it runs
``plan --gpus N MODEL -o OUT_DIR/MODEL-NGPU`` in-process and keeps the plan document without
``solver.wall_time_s`` (timing), the launch files, the exit code and the output's last line. On 64
GPUs it also runs ``--framework deepspeed --top 3``. A refactor that keeps behaviour leaves
``diff -r BEFORE AFTER`` empty.
"""

import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from planner.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GPU_COUNTS = (64, 1024, 16384)
EXTRA_64 = ("--framework", "deepspeed", "--top", "3")


def case(out: Path, name: str, args: list[str]) -> None:
    """Run one ``plan`` command into ``out/name`` and normalise its plan document."""
    folder = out / name
    result = CliRunner().invoke(main, [*args, "--format", "yaml", "-o", str(folder)])
    folder.mkdir(parents=True, exist_ok=True)
    plan_file = folder / "plan.yaml"
    if plan_file.exists():
        doc = yaml.safe_load(plan_file.read_text())
        doc["solver"].pop("wall_time_s", None)
        plan_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    last = (result.output.strip().splitlines() or [""])[-1] if result.exit_code == 2 else ""
    (folder / "exit.txt").write_text(f"{result.exit_code}\n{last}\n")
    print(name, result.exit_code, flush=True)


def main_() -> None:
    out = Path(sys.argv[1])
    models = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if not p.stem.startswith("sweep"))
    for model in models:
        for gpus in GPU_COUNTS:
            case(out, f"{model}-{gpus}", ["--gpus", str(gpus), model])
        case(out, f"{model}-64-deepspeed-top3", ["--gpus", "64", *EXTRA_64, model])


if __name__ == "__main__":
    main_()
