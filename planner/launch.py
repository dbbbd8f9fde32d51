"""The launch files of a plan, and the plan document's ``launch`` block."""

import json
from typing import Any

from planner.emit_deepspeed import deepspeed_config
from planner.emit_megatron import flag_lines, megatron_args, megatron_env, megatron_script, slurm_script
from planner.emit_torchtitan import torchtitan_args, torchtitan_script
from planner.specs import ModelSpec, ParallelConfig, TrainingSpec


def launch_files(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, doc: dict[str, Any], gpus_per_node: int
) -> tuple[dict[str, str], dict[str, Any]]:
    """File name -> text for ``plan -o DIR``, and the plan document's ``launch`` block."""
    megatron = megatron_args(model, training, config)
    deepspeed = deepspeed_config(model, training, config)
    files = {
        "megatron.sh": megatron_script(doc, megatron, config, gpus_per_node),
        "megatron_args.txt": "\n".join(flag_lines(megatron.content)) + "\n",
        "slurm.sbatch": slurm_script(doc, megatron, gpus_per_node),
    }
    if deepspeed.expressible:
        files["deepspeed.json"] = json.dumps(deepspeed.content, indent=2) + "\n"
    torchtitan = torchtitan_args(model, training, config)
    if torchtitan.expressible:
        files["torchtitan.sh"] = torchtitan_script(doc, torchtitan, model, training, gpus_per_node)
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
        "torchtitan": {
            "expressible": torchtitan.expressible,
            "files": ["torchtitan.sh"] if torchtitan.expressible else [],
            "notes": torchtitan.notes,
        },
    }
    return files, block
