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
What torchtitan cannot run is refused with the reasons of ``planner.capability``
(``Launcher.TORCHTITAN``); the model's named config comes from ``planner.torchtitan_configs``.
"""

import shlex
from dataclasses import dataclass

from planner.capability import Launcher, unsupported_reasons
from planner.emit import (
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_LOG_INTERVAL,
    DEFAULT_SAVE_INTERVAL,
    DEFAULT_TRAIN_ITERS,
    Emitted,
    Target,
)
from planner.emit_shell import (
    UserVariable,
    flag_lines,
    header,
    num_nodes,
    rendezvous_lines,
    rendezvous_variables,
    script,
    torchrun_lines,
    variables_block,
)
from planner.errors import PlannerError
from planner.specs import ModelSpec, ParallelConfig, Precision, Recompute, TrainingSpec, ZeroStage
from planner.torchtitan_configs import TORCHTITAN_VERSION, NamedConfig, named_config, shard_degree

DEFAULT_DATASET = "c4"  # the dataset of torchtitan's own llama3/qwen3/deepseek_v3 named configs
DEFAULT_DUMP_FOLDER = "./outputs"  # torchtitan's Trainer.Config default

RESHARD_AFTER_FORWARD = {ZeroStage.GRADIENTS: "never", ZeroStage.WEIGHTS: "always"}
ACTIVATION_CHECKPOINT = {
    Recompute.NONE: "activation_checkpoint:none",
    Recompute.SELECTIVE: "activation_checkpoint:selective",
    Recompute.FULL: "activation_checkpoint:full",
}
MIXED_PRECISION_PARAM = {Precision.BF16: "bfloat16", Precision.FP8: "bfloat16", Precision.FP32: "float32"}


def _notes(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, chosen: NamedConfig
) -> list[str]:
    notes = [chosen.note] if chosen.note else []
    if config.zero_stage is ZeroStage.GRADIENTS:
        notes.append("ZeRO-2 runs as FSDP2 with reshard_after_forward never")
    if config.zero_stage is ZeroStage.WEIGHTS and config.pp > 1:
        notes.append(
            "ZeRO-3 with pipelining: reshard_after_forward always gathers the weights again for every "
            "micro-batch (torchtitan's default under pipelining is never, i.e. ZeRO-2)"
        )
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
        MIXED_PRECISION_PARAM[training.precision],
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
    reasons = unsupported_reasons(Launcher.TORCHTITAN, model, training, config)
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
    """A run-time value ``torchtitan.sh`` exposes as a variable, and the torchtitan key it sets."""

    key: str
    """The ``--section.key`` it sets (``--checkpoint.enable`` is a switch)."""
    variable: UserVariable
    """The script's variable and its default."""


def run_values(chosen: NamedConfig, save_interval: int = DEFAULT_SAVE_INTERVAL) -> list[RunValue]:
    """Data, tokenizer, output, schedule length, checkpoints and logging, in torchtitan's keys; the
    names are the Megatron and DeepSpeed scripts' where the meaning is the same."""
    return [
        RunValue(
            key="--hf_assets_path",
            variable=UserVariable(
                name="HF_ASSETS_PATH",
                default=chosen.hf_assets_path,
                help=f"tokenizer folder of {chosen.config} (torchtitan's scripts/download_hf_assets.py)",
            ),
        ),
        RunValue(
            key="--dataloader.dataset",
            variable=UserVariable(
                name="DATASET",
                default=DEFAULT_DATASET,
                help="a dataset torchtitan knows (torchtitan/hf_datasets/text_datasets.py DATASETS)",
            ),
        ),
        RunValue(
            key="--dump_folder",
            variable=UserVariable(
                name="DUMP_FOLDER", default=DEFAULT_DUMP_FOLDER, help="logs, traces, checkpoints"
            ),
        ),
        RunValue(
            key="--checkpoint.enable",
            variable=UserVariable(
                name="CHECKPOINT", default="1", help="save (and resume from) checkpoints", switch=True
            ),
        ),
        RunValue(
            key="--checkpoint.folder",
            variable=UserVariable(
                name="CHECKPOINT_DIR",
                default=DEFAULT_CHECKPOINT_DIR,
                help="torchtitan distributed checkpoints, inside DUMP_FOLDER unless absolute",
            ),
        ),
        RunValue(
            key="--checkpoint.interval",
            variable=UserVariable(
                name="SAVE_INTERVAL",
                default=str(save_interval),
                help="steps between checkpoints (plan --checkpoint-interval)",
            ),
        ),
        RunValue(
            key="--training.steps",
            variable=UserVariable(
                name="TRAIN_ITERS", default=str(DEFAULT_TRAIN_ITERS), help="training steps"
            ),
        ),
        RunValue(
            key="--metrics.log_freq",
            variable=UserVariable(
                name="LOG_INTERVAL",
                default=str(DEFAULT_LOG_INTERVAL),
                help="steps between loss and throughput lines",
            ),
        ),
    ]


def run_args(values: list[RunValue]) -> list[str]:
    """The run values' arguments with their defaults: what ``torchtitan.sh`` passes when no
    variable is changed."""
    a: list[str] = []
    for v in values:
        a += [v.key] if v.variable.switch else [v.key, v.variable.default]
    return a


def _run_lines(values: list[RunValue]) -> list[str]:
    """The run values' argument lines, each reading its variable."""
    return [
        f"${{{v.variable.name}:+{v.key}}}" if v.variable.switch else f'{v.key} "${v.variable.name}"'
        for v in values
    ]


def torchtitan_script(
    target: Target,
    emitted: Emitted,
    model: ModelSpec,
    training: TrainingSpec,
    save_interval: int = DEFAULT_SAVE_INTERVAL,
) -> str:
    """``torchtitan.sh``: the values to choose at the top, the rendezvous, then
    ``torchrun -m torchtitan.train`` on this node (``torchtitan.sbatch`` runs it once per node)."""
    chosen = named_config(model, training)
    if not emitted.expressible or chosen is None:
        raise PlannerError("torchtitan.sh is written only for a plan torchtitan can run")
    gpus, gpus_per_node = target.gpus, target.gpus_per_node
    values = run_values(chosen, save_interval)
    *layout, subcommand = emitted.content
    body = [
        "set -euo pipefail",
        *rendezvous_lines(),
        *torchrun_lines(
            gpus,
            gpus_per_node,
            "-m torchtitan.train",
            flag_lines(layout) + _run_lines(values),
            last=shlex.quote(subcommand),
        ),
    ]
    variables = [v.variable for v in values] + rendezvous_variables(num_nodes(gpus, gpus_per_node))
    how = "set any of them in the environment, e.g. DUMP_FOLDER=/lustre/run1 bash torchtitan.sh"
    return script(
        header(f"torchtitan {TORCHTITAN_VERSION} launch", target, emitted.notes),
        [
            "# Extra --section.key overrides after the script name reach torchtitan: "
            "bash torchtitan.sh --training.steps 20",
        ],
        variables_block(variables, how),
        body,
    )
