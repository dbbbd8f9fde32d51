"""torchtitan launch: ``torchrun -m torchtitan.train`` with the model's named config and
``--section.key`` overrides for the layout. Pure functions: a plan in, arguments or text out.

Keys follow torchtitan 0.3.0: ``torchtitan/config/configs.py`` (``ParallelismConfig``,
``TrainingConfig``), ``trainer.py`` (``Trainer.Config``: ``dump_folder``, ``hf_assets_path``, the
batch arithmetic of ``Trainer.__init__``), ``distributed/fsdp.py``
(``get_fsdp_reshard_after_forward_policy``), ``distributed/pipeline_parallel.py``
(``_get_pipeline_metadata``) and ``distributed/activation_checkpoint.py`` (the
``activation_checkpoint:{none,selective,full}`` subcommands). The tests parse every emitted
argument list with torchtitan's own ``ConfigManager``.

How the plan's layout maps:
- data parallelism: ZeRO-0 is ``data_parallel_replicate_degree = dp`` (FSDP2 with one shard is
  DDP); ZeRO-2 and ZeRO-3 are ``data_parallel_shard_degree = dp`` with
  ``fsdp_reshard_after_forward`` ``never`` (weights stay gathered from forward to backward: only
  gradients and optimizer states sharded during the step) and ``always``;
- pipelines: ``pp·vpp`` stages of equal layer counts (``pipeline_parallel_layers_per_stage``, no
  fewer layers on the first and last stage), schedule ``1F1B`` or ``Interleaved1F1B`` for vpp > 1,
  ``local_batch_size = mbs · grad_accum`` split into micro-batches of ``mbs``; without pipelining
  ``local_batch_size = mbs`` and the trainer accumulates ``global / (mbs·dp)`` micro-batches;
- recompute: the activation-checkpointing subcommand, which tyro reads last.
"""

import shlex
from dataclasses import dataclass
from typing import Any

from planner.emit import DEFAULT_TRAIN_ITERS, Emitted
from planner.errors import PlannerError
from planner.specs import ModelSpec, ParallelConfig, Precision, Recompute, TrainingSpec, ZeroStage
from planner.torchtitan_configs import (
    MODULE_OF_FAMILY,
    NAMED_CONFIGS,
    TORCHTITAN_VERSION,
    NamedConfig,
    configs_for,
)

DEFAULT_DATASET = "c4"  # the dataset of torchtitan's own llama3/qwen3/deepseek_v3 named configs
DEFAULT_CHECKPOINT_INTERVAL = 500  # steps, torchtitan's CheckpointManager default
DEFAULT_LOG_FREQ = 10  # steps, torchtitan's MetricsProcessor default
MASTER_PORT = 29500  # torchrun's default rendezvous port

RESHARD_AFTER_FORWARD = {ZeroStage.GRADIENTS: "never", ZeroStage.WEIGHTS: "always"}
ACTIVATION_CHECKPOINT = {
    Recompute.NONE: "activation_checkpoint:none",
    Recompute.SELECTIVE: "activation_checkpoint:selective",
    Recompute.FULL: "activation_checkpoint:full",
}
MIXED_PRECISION_PARAM = {Precision.BF16: "bfloat16", Precision.FP8: "bfloat16", Precision.FP32: "float32"}


def named_config(model: ModelSpec, training: TrainingSpec) -> NamedConfig | None:
    """The named config that trains this model in this precision, if torchtitan has one."""
    float8 = training.precision is Precision.FP8
    return next((c for c in configs_for(model) if c.float8 == float8), None)


def shard_degree(config: ParallelConfig) -> int:
    """``data_parallel_shard_degree``: the FSDP2 shards (ZeRO-2/3), else 1."""
    return config.dp if config.zero_stage >= ZeroStage.GRADIENTS else 1


def _model_reasons(model: ModelSpec, training: TrainingSpec) -> list[str]:
    module = MODULE_OF_FAMILY.get(model.family)
    if module is None:
        return [
            f"torchtitan {TORCHTITAN_VERSION} has no model module for {model.family} models "
            f"(this planner's families it implements: {', '.join(sorted(MODULE_OF_FAMILY))})"
        ]
    same_shape = configs_for(model)
    if not same_shape:
        names = ", ".join(c.config for c in NAMED_CONFIGS if c.module == module)
        return [
            f"no torchtitan {TORCHTITAN_VERSION} named config trains this model's shape (module "
            f"{module}: {names}); the model comes from the named config, which no command-line key "
            "changes (Trainer.Config.model_spec is not a CLI field)"
        ]
    if named_config(model, training) is None:
        names = ", ".join(c.config for c in same_shape)
        if training.precision is Precision.FP8:
            return [
                f"torchtitan's {names} has no float8 variant: float8 is a model converter chosen in "
                "the named config, not a command-line key"
            ]
        return [
            f"torchtitan's {names} trains with float8 linear layers (a converter in the named "
            "config, not a command-line key): plan with --precision fp8"
        ]
    return []


def torchtitan_reasons(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> list[str]:
    """Every reason torchtitan 0.3.0 cannot run this plan from the command line, in order."""
    reasons = _model_reasons(model, training)
    if training.precision is Precision.FP16:
        reasons.append("torchtitan trains in bf16 or fp32 (training.mixed_precision_param), not fp16")
    if config.zero_stage is ZeroStage.OPTIMIZER:
        reasons.append(
            "torchtitan shards with FSDP2, which shards gradients with the optimizer states: there is "
            "no ZeRO-1; plan with --zero 2 (reshard_after_forward never), --zero 3 or --zero 0"
        )
    if config.zero_stage is ZeroStage.NONE and config.cp > 1:
        reasons.append(
            "torchtitan applies FSDP2 over the context-parallel ranks (dp_shard·cp), so ZeRO-0 "
            "with cp > 1 shards anyway: plan with --zero 2 or 3"
        )
    dense_ranks = shard_degree(config) * config.cp * config.tp
    if config.ep > 1 and dense_ranks % config.ep:
        reasons.append(
            f"torchtitan's expert parallelism borrows its ranks from dp_shard·cp·tp = {dense_ranks}, "
            f"which ep = {config.ep} does not divide"
        )
    if config.activation_offload:
        reasons.append(f"torchtitan {TORCHTITAN_VERSION} has no activation offload to the CPU")
    if config.optimizer_offload and config.zero_stage < ZeroStage.GRADIENTS:
        reasons.append(
            "torchtitan offloads to the CPU through FSDP2 (training.enable_cpu_offload): ZeRO-2/3 only"
        )
    if model.is_moe and training.moe_capacity_factor is not None:
        reasons.append(
            "torchtitan's MoE routing is dropless; a capacity factor belongs to the token dispatcher "
            "of the model config, not to a command-line key"
        )
    if model.num_layers % (config.pp * config.vpp):
        stages = config.pp * config.vpp
        reasons.append(
            f"torchtitan's equal stages need pp·vpp = {stages} to divide the {model.num_layers} layers"
        )
    # Trainer.__init__: the sequence splits over tp (sequence parallel) and 2·cp (load balancing).
    divisor = (config.tp if config.sequence_parallel else 1) * (2 * config.cp if config.cp > 1 else 1)
    if training.seq_len % divisor:
        reasons.append(
            f"torchtitan needs the sequence length divisible by {divisor} (tp with SP, times 2·cp)"
        )
    return reasons


def _notes(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, chosen: NamedConfig
) -> list[str]:
    notes = [chosen.note] if chosen.note else []
    if config.zero_stage is ZeroStage.GRADIENTS:
        notes.append("ZeRO-2 runs as FSDP2 with reshard_after_forward never")
    if config.recompute is Recompute.SELECTIVE:
        notes.append(
            "torchtitan's selective checkpointing is per op (it saves matmul, attention and "
            "collective outputs but every second matmul's and recomputes the rest), not Megatron's "
            "attention-core recompute the memory model assumes"
        )
    if not training.flash_attention:
        notes.append(
            "torchtitan attends with FlexAttention, which keeps no a·s² scores: less memory than planned"
        )
    if config.optimizer_offload:
        notes.append(
            "FSDP2's CPU offload moves the parameter and gradient shards too, with the Adam step on "
            "the CPU: less GPU memory than planned, and host copies every step"
        )
    notes.append(
        "data and tokenizer: torchtitan's dataset name (DATASET, default c4 from the Hugging Face "
        "hub) and the tokenizer under HF_ASSETS_PATH (torchtitan's scripts/download_hf_assets.py)"
    )
    return notes


def layout_args(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> list[str]:
    """The ``--section.key`` overrides of the layout, the batch and the precision."""
    grad_accum = training.global_batch_size // (config.dp * config.micro_batch_size)
    pipelined = config.pp > 1
    a = [
        "--training.seq_len",
        str(training.seq_len),
        "--training.local_batch_size",
        str(config.micro_batch_size * (grad_accum if pipelined else 1)),
        "--training.global_batch_size",
        str(training.global_batch_size),
        "--training.mixed_precision_param",
        MIXED_PRECISION_PARAM.get(training.precision, "bfloat16"),
        "--parallelism.data_parallel_replicate_degree",
        str(config.dp // shard_degree(config)),
        "--parallelism.data_parallel_shard_degree",
        str(shard_degree(config)),
    ]
    if config.zero_stage in RESHARD_AFTER_FORWARD:
        a += ["--parallelism.fsdp_reshard_after_forward", RESHARD_AFTER_FORWARD[config.zero_stage]]
    a += [
        "--parallelism.tensor_parallel_degree",
        str(config.tp),
        "--parallelism.enable_sequence_parallel"
        if config.sequence_parallel
        else "--parallelism.no-enable_sequence_parallel",
        "--parallelism.context_parallel_degree",
        str(config.cp),
        "--parallelism.pipeline_parallel_degree",
        str(config.pp),
    ]
    if pipelined:
        a += [
            "--parallelism.pipeline_parallel_schedule",
            "Interleaved1F1B" if config.vpp > 1 else "1F1B",
            "--parallelism.pipeline_parallel_layers_per_stage",
            str(model.num_layers // (config.pp * config.vpp)),
            "--parallelism.pipeline_parallel_first_stage_less_layers",
            "0",
            "--parallelism.pipeline_parallel_last_stage_less_layers",
            "0",
            "--parallelism.pipeline_parallel_microbatch_size",
            str(config.micro_batch_size),
        ]
    a += ["--parallelism.expert_parallel_degree", str(config.ep)]
    if config.optimizer_offload:
        a += ["--training.enable_cpu_offload"]
    # Trainer.Config._validate_cuda_graphs: CUDA graphs run neither pipelines nor the default
    # (host-synchronising) expert-parallel token dispatcher.
    if pipelined or config.ep > 1:
        a += ["--training.disable_cuda_graphs"]
    return a


def torchtitan_args(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> Emitted:
    """``torchtitan.train`` arguments for the plan (the activation-checkpointing subcommand last),
    and the reasons it cannot run, if any (then no arguments)."""
    reasons = torchtitan_reasons(model, training, config)
    chosen = named_config(model, training)
    if reasons or chosen is None:
        return Emitted(expressible=False, notes=reasons)
    args = [
        "--module",
        chosen.module,
        "--config",
        chosen.config,
        *layout_args(model, training, config),
        ACTIVATION_CHECKPOINT[config.recompute],
    ]
    return Emitted(expressible=True, notes=_notes(model, training, config, chosen), content=args)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunValue:
    """A run-time value ``torchtitan.sh`` exposes as a variable: its torchtitan key and default."""

    variable: str
    """Shell variable (upper case)."""
    key: str
    """The ``--section.key`` it sets."""
    default: str
    """Value when neither the script nor the environment sets it."""
    help: str
    """One line for the comment beside it."""


def run_values(chosen_assets: str) -> list[RunValue]:
    """Data, tokenizer, output, schedule length, checkpoints and logging (torchtitan's keys)."""
    return [
        RunValue(
            variable="HF_ASSETS_PATH",
            key="--hf_assets_path",
            default=chosen_assets,
            help="tokenizer (and weights) folder: torchtitan's scripts/download_hf_assets.py",
        ),
        RunValue(
            variable="DATASET",
            key="--dataloader.dataset",
            default=DEFAULT_DATASET,
            help="a dataset torchtitan knows (hf_datasets/text_datasets.py DATASETS)",
        ),
        RunValue(
            variable="DUMP_FOLDER", key="--dump_folder", default="./outputs", help="logs and checkpoints"
        ),
        RunValue(
            variable="STEPS", key="--training.steps", default=str(DEFAULT_TRAIN_ITERS), help="training steps"
        ),
        RunValue(
            variable="CHECKPOINT_FOLDER",
            key="--checkpoint.folder",
            default="checkpoint",
            help="checkpoint folder inside DUMP_FOLDER (resumes from its latest step)",
        ),
        RunValue(
            variable="CHECKPOINT_INTERVAL",
            key="--checkpoint.interval",
            default=str(DEFAULT_CHECKPOINT_INTERVAL),
            help="steps between checkpoints",
        ),
        RunValue(
            variable="LOG_FREQ",
            key="--metrics.log_freq",
            default=str(DEFAULT_LOG_FREQ),
            help="steps between log lines",
        ),
    ]


def run_args(values: list[RunValue]) -> list[str]:
    """The run values' ``--key default`` pairs, checkpointing on: what ``torchtitan.sh`` passes
    when no variable is changed."""
    a = ["--checkpoint.enable"]
    for v in values:
        a += [v.key, v.default]
    return a


def _safe_comment(text: str) -> str:
    """``text`` for a comment line; a control character (a newline would end the comment) is refused."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise PlannerError(f"{text!r}: control characters cannot go into a generated script; rename it")
    return text


def torchtitan_script(
    doc: dict[str, Any], emitted: Emitted, model: ModelSpec, training: TrainingSpec, gpus_per_node: int
) -> str:
    """``torchtitan.sh``: the values to choose at the top, the rendezvous (``MASTER_ADDR`` from the
    environment, else the SLURM allocation's first node, else localhost on one node), then
    ``torchrun -m torchtitan.train`` on this node (SLURM runs it once per node)."""
    gpus = doc["cluster"]["gpus"]
    nodes = max(1, -(-gpus // gpus_per_node))
    chosen = named_config(model, training)
    assert emitted.expressible and chosen is not None, "torchtitan.sh is written only for a plan it can run"
    p = doc["parallelism"]
    values = run_values(chosen.hf_assets_path)
    name, gpu = _safe_comment(str(doc["model"]["name"])), _safe_comment(str(doc["cluster"]["gpu"]))
    lines = [
        "#!/usr/bin/env bash",
        f"# torchtitan {TORCHTITAN_VERSION} launch, generated by plan for {name} on {gpus} x {gpu}.",
        f"# tp={p['tp']} pp={p['pp']} dp={p['dp']} cp={p['cp']} vpp={p['vpp']} ep={p['ep']} "
        f"zero={p['zero_stage']} recompute={p['recompute']} mbs={p['micro_batch_size']} "
        f"grad_accum={p['grad_accum_steps']} sequence_parallel={str(p['sequence_parallel']).lower()}",
        *(f"# note: {_safe_comment(n)}" for n in emitted.notes),
        "# Run it on every node (slurm: srun --ntasks-per-node=1 bash torchtitan.sh); extra",
        "# --section.key overrides after the script name reach torchtitan.",
        "set -euo pipefail",
        "# Values to choose (edit them here or set them in the environment):",
        *(f'{v.variable}="${{{v.variable}:-{v.default}}}"  # {v.help}' for v in values),
        f'NNODES="${{NNODES:-{nodes}}}"  # nodes in the job (the plan\'s)',
        'NODE_RANK="${NODE_RANK:-${SLURM_NODEID:-0}}"  # this node\'s rank (SLURM sets it)',
        f'MASTER_PORT="${{MASTER_PORT:-{MASTER_PORT}}}"  # rendezvous port on the first node',
        'if [[ -z "${MASTER_ADDR:-}" ]]; then',
        '  if [[ -n "${SLURM_JOB_NODELIST:-}" ]]; then',
        '    MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
        '  elif [[ "$NNODES" == 1 ]]; then',
        "    MASTER_ADDR=localhost",
        "  else",
        '    echo "plan: $NNODES nodes and no SLURM allocation: set MASTER_ADDR to the first node" >&2',
        "    exit 1",
        "  fi",
        "fi",
        f"torchrun --nproc-per-node {min(gpus_per_node, gpus)} "
        '--nnodes "$NNODES" --node-rank "$NODE_RANK" \\',
        '  --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" \\',
        "  -m torchtitan.train \\",
        *(f"  {pair} \\" for pair in _pairs(emitted.content[:-1])),
        "  --checkpoint.enable \\",
        *(f'  {v.key} "${v.variable}" \\' for v in values),
        '  "$@" \\',
        f"  {shlex.quote(emitted.content[-1])}",
    ]
    return "\n".join(lines) + "\n"


def _pairs(args: list[str]) -> list[str]:
    """``--key value`` pairs (or a lone switch), values shell-quoted."""
    out, i = [], 0
    while i < len(args):
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            out.append(f"{args[i]} {shlex.quote(args[i + 1])}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out
