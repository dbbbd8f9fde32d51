"""Launch scripts a team can start as they are: ``megatron.sh`` (torchrun on one node; SLURM runs it
on each), ``slurm.sbatch`` and ``deepspeed.sh``. The values a user chooses are variables listed at
the top with defaults (``planner/emit_shell.py``); with every default the Megatron script passes
exactly the arguments Megatron-LM's parser validated (``megatron_args.txt``)."""

import shlex

from planner.emit import DEFAULT_CHECKPOINT_DIR, Emitted, Target
from planner.emit_megatron import DATA_SPLIT
from planner.emit_shell import (
    FIRST_NODE,
    MASTER_PORT,
    UserVariable,
    flag_pairs,
    header,
    job_name,
    last_node_gpus,
    num_nodes,
    rendezvous_lines,
    rendezvous_variables,
    script,
    torchrun_lines,
    variables_block,
)

OVERRIDE_HOW = "set any of them in the environment, e.g. CHECKPOINT_DIR=/lustre/ckpt"
# Megatron flags whose value a variable sets, and the one-line help of that variable.
MEGATRON_VALUE_FLAGS = {
    "--save": ("CHECKPOINT_DIR", "Megatron distributed checkpoints are saved here and resumed from"),
    "--load": ("CHECKPOINT_DIR", ""),
    "--save-interval": ("SAVE_INTERVAL", "steps between checkpoints (plan --checkpoint-interval)"),
    "--train-iters": ("TRAIN_ITERS", "training steps"),
    "--log-interval": ("LOG_INTERVAL", "steps between loss and throughput lines"),
    "--eval-interval": ("EVAL_INTERVAL", "steps between validation passes"),
    "--eval-iters": ("EVAL_ITERS", "validation batches per pass"),
}
# Megatron switches a variable turns on (non-empty) or off (empty), and why the plan wants them.
MEGATRON_SWITCH_FLAGS = {
    "--overlap-grad-reduce": (
        "OVERLAP_GRAD_REDUCE",
        "overlap the gradient reduction with backward (the step time assumes dp_overlap)",
    ),
    "--overlap-param-gather": (
        "OVERLAP_PARAM_GATHER",
        "overlap the sharded parameter all-gather with forward (needs OVERLAP_GRAD_REDUCE)",
    ),
    "--overlap-moe-expert-parallel-comm": (
        "MOE_EP_OVERLAP",
        "overlap the MoE dispatch with another micro-batch (the step time assumes ep_overlap)",
    ),
    "--tp-comm-overlap": (
        "TP_COMM_OVERLAP",
        "overlap TP collectives with GEMMs (TE userbuffers; the step time assumes tp_overlap)",
    ),
    "--cross-entropy-loss-fusion": (
        "CROSS_ENTROPY_FUSION",
        "fused cross entropy (the memory plan assumes its 4-byte logits)",
    ),
}
DEEPSPEED_PROGRAM = "train.py"
SLURM_TIME = "04:00:00"  # a first run's wall-clock limit; clusters cap it, so it is a variable
SLURM_OUTPUT = "%x-%j.out"  # job name and id, in the submission directory


def megatron_variables(args: list[str]) -> list[UserVariable]:
    """The Megatron script's variables, defaults taken from the validated arguments."""
    values = dict(flag_pairs(args))
    out = [
        UserVariable(name="MEGATRON", default="$HOME/Megatron-LM", help="Megatron-LM checkout", expand=True),
        UserVariable(
            name="DATA_PATH",
            default="",
            help=f"Megatron indexed dataset prefix (.bin/.idx), split {DATA_SPLIT}; empty: --mock-data",
        ),
        UserVariable(
            name="TOKENIZER_MODEL",
            default="",
            help="Hugging Face tokenizer name or path; empty: NullTokenizer of the model's vocabulary",
        ),
    ]
    seen = set()
    for flag, (name, text) in MEGATRON_VALUE_FLAGS.items():
        if flag in values and name not in seen:
            seen.add(name)
            out.append(UserVariable(name=name, default=str(values[flag]), help=text))
    for flag, (name, text) in MEGATRON_SWITCH_FLAGS.items():
        if flag in values:
            out.append(UserVariable(name=name, default="1", help=text, switch=True))
    return out


def _megatron_argument_lines(args: list[str]) -> list[str]:
    """Argument lines for torchrun: values from variables where the user chooses them."""
    lines = []
    for flag, value in flag_pairs(args):
        if flag in MEGATRON_VALUE_FLAGS:
            lines.append(f'{flag} "${MEGATRON_VALUE_FLAGS[flag][0]}"')
        elif flag in MEGATRON_SWITCH_FLAGS:
            lines.append(f"${{{MEGATRON_SWITCH_FLAGS[flag][0]}:+{flag}}}")
        elif flag == "--mock-data":
            lines.append('"${DATA_ARGS[@]}"')
        elif flag == "--tokenizer-type":
            lines.append('"${TOKENIZER_ARGS[@]}"')
        elif flag != "--vocab-size":
            quoted = shlex.quote(flag)  # a value that looks like a flag (--$(...)) stays inert
            lines.append(quoted if value is None else f"{quoted} {shlex.quote(value)}")
    return lines


def megatron_script(target: Target, emitted: Emitted, env: dict[str, str]) -> str:
    """A torchrun launcher for ``pretrain_gpt.py`` (one node per invocation; SLURM runs it on each)."""
    gpus, gpus_per_node = target.gpus, target.gpus_per_node
    args = emitted.content
    vocab = dict(flag_pairs(args))["--vocab-size"]
    variables = megatron_variables(args) + rendezvous_variables(num_nodes(gpus, gpus_per_node))
    body = [
        "set -euo pipefail",
        *(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
        'if [[ -n "$DATA_PATH" ]]; then',
        f'  DATA_ARGS=(--data-path "$DATA_PATH" --split {DATA_SPLIT})',
        "else",
        "  DATA_ARGS=(--mock-data)",
        "fi",
        'if [[ -n "$TOKENIZER_MODEL" ]]; then',
        '  TOKENIZER_ARGS=(--tokenizer-type HuggingFaceTokenizer --tokenizer-model "$TOKENIZER_MODEL")',
        "else",
        f"  TOKENIZER_ARGS=(--tokenizer-type NullTokenizer --vocab-size {shlex.quote(vocab)})",
        "fi",
        *rendezvous_lines(),
        *torchrun_lines(gpus, gpus_per_node, '"$MEGATRON/pretrain_gpt.py"', _megatron_argument_lines(args)),
    ]
    return script(
        header("Megatron-LM launch", target, emitted.notes),
        variables_block(variables, OVERRIDE_HOW + " bash megatron.sh"),
        body,
    )


def slurm_script(target: Target, launcher: str, notes: list[str]) -> str:
    """A SLURM batch script running ``launcher`` (``megatron.sh``) once per node, optionally in a
    container (pyxis ``--container-image``)."""
    gpus, gpus_per_node = target.gpus, target.gpus_per_node
    nodes = num_nodes(gpus, gpus_per_node)
    directives = [
        f"#SBATCH --job-name={job_name(target.model_name)}-plan",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={min(gpus_per_node, gpus)}",
        "#SBATCH --exclusive",
        f"#SBATCH --time={SLURM_TIME}",
        f"#SBATCH --output={SLURM_OUTPUT}",
        "##SBATCH --partition=PARTITION",
        "##SBATCH --account=ACCOUNT",
    ]
    variables = [
        UserVariable(
            name="CONTAINER_IMAGE",
            default="",
            help="pyxis/enroot image (e.g. nvcr.io/nvidia/pytorch:25.04-py3); empty: run on the hosts",
        ),
        UserVariable(
            name="CONTAINER_MOUNTS", default="", help="pyxis --container-mounts, e.g. /lustre:/lustre"
        ),
        UserVariable(
            name="PLAN_DIR",
            default="$SLURM_SUBMIT_DIR",
            help=f"the folder holding {launcher} (default: where sbatch ran)",
            expand=True,
        ),
    ]
    body = [
        "set -euo pipefail",
        f"MASTER_ADDR={FIRST_NODE}",
        f"export MASTER_ADDR MASTER_PORT=${{MASTER_PORT:-{MASTER_PORT}}} NNODES={nodes}",
        "CONTAINER_ARGS=()",
        'if [[ -n "$CONTAINER_IMAGE" ]]; then',
        '  CONTAINER_ARGS+=(--container-image "$CONTAINER_IMAGE" --container-workdir "$PLAN_DIR")',
        "fi",
        'if [[ -n "$CONTAINER_MOUNTS" ]]; then',
        '  CONTAINER_ARGS+=(--container-mounts "$CONTAINER_MOUNTS")',
        "fi",
        'srun --kill-on-bad-exit=1 "${CONTAINER_ARGS[@]}" \\',
        '  bash -c \'NODE_RANK=$SLURM_NODEID exec bash "$0" "$@"\' \\',
        f'  "$PLAN_DIR/{launcher}" "$@"',
    ]
    return script(
        directives,
        header("SLURM batch script", target, notes),
        _partial_node_comment(gpus, gpus_per_node, launcher),
        [
            "# Also to choose: the #SBATCH lines above (remove one '#' to set the partition and",
            "# account) or the same options on the command line: sbatch --partition=P --account=A ...",
            f"# The variables of {launcher} pass through: CHECKPOINT_DIR=/lustre/ckpt sbatch slurm.sbatch",
        ],
        variables_block(variables, "set any of them in the environment of sbatch"),
        body,
    )


def _partial_node_comment(gpus: int, gpus_per_node: int, launcher: str) -> list[str]:
    """Why a whole last node is allocated when the plan uses part of it."""
    last = last_node_gpus(gpus, gpus_per_node)
    if last == min(gpus, gpus_per_node):
        return []
    return [
        f"# The plan uses {gpus} GPUs: the last of the {num_nodes(gpus, gpus_per_node)} nodes runs {last} "
        f"processes ({launcher} reads SLURM_NODEID), its other {gpus_per_node - last} GPUs stay idle.",
    ]


def deepspeed_script(target: Target, emitted: Emitted, save_interval: int) -> str:
    """A torchrun launcher for the user's DeepSpeed program with ``deepspeed.json``
    (``deepspeed.add_config_arguments`` reads ``--deepspeed --deepspeed_config``)."""
    gpus, gpus_per_node = target.gpus, target.gpus_per_node
    variables = [
        UserVariable(
            name="TRAIN_PROGRAM",
            default=DEEPSPEED_PROGRAM,
            help="your training script: it calls deepspeed.initialize(args=...) with the config below",
        ),
        UserVariable(
            name="DEEPSPEED_CONFIG",
            default='$(dirname "$0")/deepspeed.json',
            help="the config plan wrote beside this script",
            expand=True,
        ),
        UserVariable(
            name="CHECKPOINT_DIR",
            default=DEFAULT_CHECKPOINT_DIR,
            help="exported: where your program calls engine.save_checkpoint (ZeRO shards per rank)",
        ),
        UserVariable(
            name="SAVE_INTERVAL",
            default=str(save_interval),
            help="exported: steps between checkpoints (plan --checkpoint-interval)",
        ),
        *rendezvous_variables(num_nodes(gpus, gpus_per_node)),
    ]
    body = [
        "set -euo pipefail",
        "export CHECKPOINT_DIR SAVE_INTERVAL",
        *rendezvous_lines(),
        *torchrun_lines(
            gpus,
            gpus_per_node,
            '"$TRAIN_PROGRAM"',
            ['--deepspeed --deepspeed_config "$DEEPSPEED_CONFIG"'],
        ),
    ]
    return script(
        header("DeepSpeed launch", target, emitted.notes),
        variables_block(variables, OVERRIDE_HOW + " bash deepspeed.sh"),
        body,
    )
