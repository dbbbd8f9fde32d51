"""The launch files of a plan, and the plan document's ``launch`` block, built once from the chosen
configuration."""

import json
from dataclasses import dataclass
from typing import Any

from planner.emit import Target
from planner.emit_deepspeed import deepspeed_config
from planner.emit_megatron import flag_lines, megatron_args, megatron_env, megatron_script, slurm_script
from planner.specs import ModelSpec, TrainingSpec


@dataclass(frozen=True, slots=True)
class Launch:
    """The launch files of one plan and what the document says about them."""

    files: dict[str, str]
    """File name -> text for ``plan -o DIR``."""
    block: dict[str, Any]
    """The plan document's ``launch`` block."""


def launch_files(model: ModelSpec, training: TrainingSpec, target: Target) -> Launch:
    """Every framework's launch files for ``target``'s layout, and the document's ``launch`` block."""
    config = target.config
    megatron = megatron_args(model, training, config)
    deepspeed = deepspeed_config(model, training, config)
    files = {
        "megatron.sh": megatron_script(target, megatron),
        "megatron_args.txt": "\n".join(flag_lines(megatron.content)) + "\n",
        "slurm.sbatch": slurm_script(target, megatron),
    }
    if deepspeed.expressible:
        files["deepspeed.json"] = json.dumps(deepspeed.content, indent=2) + "\n"
    block = {
        "megatron": {
            "expressible": megatron.expressible,
            "files": ["megatron.sh", "megatron_args.txt", "slurm.sbatch"],
            "notes": megatron.notes,
            "env": megatron_env(config),
        },
        "deepspeed": {
            "expressible": deepspeed.expressible,
            "files": ["deepspeed.json"] if deepspeed.expressible else [],
            "notes": deepspeed.notes,
        },
    }
    return Launch(files, block)
