"""The launch files of a plan, and the plan document's ``launch`` block.

A framework that cannot run the plan gets no files: its block says ``expressible: false`` with the
reasons (``plan -o`` prints them on stderr); nothing half-usable is written in its place.
"""

from dataclasses import dataclass
from typing import Any

from planner.emit import DEFAULT_SAVE_INTERVAL, Target
from planner.emit_deepspeed import deepspeed_config
from planner.emit_megatron import megatron_args, megatron_env
from planner.emit_scripts import deepspeed_script, megatron_script, slurm_script
from planner.emit_shell import flag_lines
from planner.emit_torchtitan import torchtitan_args, torchtitan_script
from planner.numbers import json_text
from planner.specs import ModelSpec, TrainingSpec

MEGATRON_FILES = ["megatron.sh", "megatron_args.txt", "slurm.sbatch"]
DEEPSPEED_FILES = ["deepspeed.json", "deepspeed.sh"]
TORCHTITAN_FILES = ["torchtitan.sh", "torchtitan.sbatch"]


@dataclass(frozen=True, slots=True)
class Launch:
    """The launch files of one plan and what the document says about them."""

    files: dict[str, str]
    """File name -> text for ``plan -o DIR``."""
    block: dict[str, Any]
    """The plan document's ``launch`` block."""


def launch_files(
    model: ModelSpec, training: TrainingSpec, target: Target, save_interval: int = DEFAULT_SAVE_INTERVAL
) -> Launch:
    """Every framework's launch files for ``target``'s layout, and the document's ``launch`` block."""
    config = target.config
    megatron = megatron_args(model, training, config, save_interval)
    deepspeed = deepspeed_config(model, training, config)
    env = megatron_env(config)
    files = {}
    if megatron.expressible:
        files["megatron.sh"] = megatron_script(target, megatron, env)
        files["megatron_args.txt"] = "\n".join(flag_lines(megatron.content)) + "\n"
        files["slurm.sbatch"] = slurm_script(target, "megatron.sh", megatron.notes)
    if deepspeed.expressible:
        files["deepspeed.json"] = json_text(deepspeed.content) + "\n"
        files["deepspeed.sh"] = deepspeed_script(target, deepspeed, save_interval)
    torchtitan = torchtitan_args(model, training, config)
    if torchtitan.expressible:
        files["torchtitan.sh"] = torchtitan_script(target, torchtitan, model, training, save_interval)
        files["torchtitan.sbatch"] = slurm_script(target, "torchtitan.sh", torchtitan.notes)
    block = {
        "megatron": {
            "expressible": megatron.expressible,
            "files": MEGATRON_FILES if megatron.expressible else [],
            "notes": megatron.notes,
            "env": env,
        },
        "deepspeed": {
            "expressible": deepspeed.expressible,
            "files": DEEPSPEED_FILES if deepspeed.expressible else [],
            "notes": deepspeed.notes,
        },
        "torchtitan": {
            "expressible": torchtitan.expressible,
            "files": TORCHTITAN_FILES if torchtitan.expressible else [],
            "notes": torchtitan.notes,
        },
    }
    return Launch(files, block)


def refusals(block: dict[str, Any]) -> list[str]:
    """One line per framework that cannot run the plan, with its reasons (for stderr)."""
    return [
        f"plan: {name} cannot run this plan, no {name} files written: " + "; ".join(entry["notes"])
        for name, entry in block.items()
        if not entry.get("expressible", True)
    ]
