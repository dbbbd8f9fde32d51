"""Launch files from a plan: Megatron-LM arguments, a torchrun script, a SLURM batch script and a
DeepSpeed config. Pure functions: a plan in, text or dictionaries out; ``planner/io.py`` writes.

What a framework cannot express is never emitted silently: each emitter returns notes, a plan that
one framework cannot run is marked ``expressible: false`` in the plan document, its script exits
with the reason, and its config file is not written.
Flags and config keys follow Megatron-LM ``megatron/training/arguments.py`` at the commit named in
``tests/fixtures/megatron_arguments.json`` and DeepSpeed 0.19 ``deepspeed/runtime/config.py``.
"""

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from planner.evaluate import num_microbatches
from planner.specs import (
    Framework,
    ModelSpec,
    NormType,
    ParallelConfig,
    PositionEncoding,
    Precision,
    Recompute,
    TrainingSpec,
    ZeroStage,
)

# Placeholders the user replaces: data, tokenizer, schedule. Values follow common GPT/Llama
# pre-training recipes (Touvron et al. 2023: AdamW 0.9/0.95, weight decay 0.1, clip 1.0).
DEFAULT_TRAIN_ITERS = 1000
DEFAULT_LR = 3e-4
DEFAULT_MIN_LR = 3e-5
DEFAULT_WARMUP_ITERS = 100
ADAM_BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.1
GRAD_CLIP = 1.0
INIT_METHOD_STD = 0.02
# DeepSpeed bucket sizes (elements): DeepSpeed's documented defaults for ZeRO-1/2 are 5e8; for
# ZeRO-3 prefetch 5e7 and persistence threshold 1e5 (deepspeed/runtime/zero/config.py).
DS_BUCKET_ELEMENTS = 500_000_000
DS_PREFETCH_ELEMENTS = 50_000_000
DS_PERSISTENCE_THRESHOLD = 100_000
DS_MAX_LIVE_PARAMETERS = 1_000_000_000
MASTER_PORT = 6000


@dataclass(frozen=True, slots=True)
class Emitted:
    """One framework's launch content and what it cannot express."""

    expressible: bool
    notes: list[str] = field(default_factory=list)
    content: Any = None


def megatron_args(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> Emitted:
    """``pretrain_gpt.py`` arguments for the plan, and the reasons it cannot run, if any."""
    notes, blockers = [], []
    a: list[str] = [
        "--num-layers",
        str(model.num_layers),
        "--hidden-size",
        str(model.hidden_size),
        "--num-attention-heads",
        str(model.num_heads),
        "--ffn-hidden-size",
        str(model.ffn_hidden_size),
    ]
    if model.head_dim * model.num_heads != model.hidden_size:
        a += ["--kv-channels", str(model.head_dim)]
    if model.num_kv_heads != model.num_heads:
        a += ["--group-query-attention", "--num-query-groups", str(model.num_kv_heads)]
    a += [
        "--seq-length",
        str(training.seq_len),
        "--max-position-embeddings",
        str(max(model.max_position_embeddings, training.seq_len)),
    ]
    if model.positions is PositionEncoding.ROTARY:
        a += ["--position-embedding-type", "rope", "--rotary-base", _num(model.rope_theta)]
        if model.rotary_fraction != 1.0:
            a += ["--rotary-percent", _num(model.rotary_fraction)]
        if model.rope_scaling == "llama3":
            a += ["--use-rope-scaling"]
        elif model.rope_scaling is not None:
            blockers.append(f"rope_scaling type {model.rope_scaling!r} has no Megatron-LM flag")
    elif model.positions is PositionEncoding.LEARNED:
        a += ["--position-embedding-type", "learned_absolute"]
    else:
        blockers.append("ALiBi positions are not implemented in Megatron-LM's GPT model")
    if model.gated_mlp:
        a += ["--swiglu"]
    a += [
        "--normalization",
        "RMSNorm" if model.norm is NormType.RMSNORM else "LayerNorm",
        "--norm-epsilon",
        _num(model.norm_epsilon),
    ]
    if model.norm is NormType.LAYERNORM and not model.norm_bias:
        blockers.append("LayerNorm without bias (MPT) has no Megatron-LM flag")
    if model.embedding_norm:
        blockers.append("the LayerNorm after the word embedding (BLOOM) is not in Megatron-LM's GPT model")
    if model.parallel_residual:
        blockers.append("parallel attention/MLP residual (GPT-NeoX) is not in Megatron-LM's GPT model")
    if model.is_moe:
        blockers.append("mixture-of-experts layers are planned in the modern-space work, not here yet")
    linear_bias = model.out_bias or model.mlp_bias
    if not linear_bias:
        a += ["--disable-bias-linear"]
        if model.qkv_bias:
            a += ["--add-qkv-bias"]
    elif not (model.qkv_bias and model.out_bias and model.mlp_bias):
        blockers.append("biases on only some linear layers have no Megatron-LM flag")
    if not model.tied_embeddings:
        a += ["--untie-embeddings-and-output-weights"]
    a += ["--attention-dropout", _num(model.dropout), "--hidden-dropout", _num(model.dropout)]
    if not training.flash_attention:
        a += ["--attention-backend", "unfused"]
    a += ["--tensor-model-parallel-size", str(config.tp), "--pipeline-model-parallel-size", str(config.pp)]
    if config.sequence_parallel:
        a += ["--sequence-parallel"]
    a += [
        "--micro-batch-size",
        str(config.micro_batch_size),
        "--global-batch-size",
        str(training.global_batch_size),
    ]
    if training.precision is Precision.BF16:
        a += ["--bf16"]
    elif training.precision is Precision.FP16:
        a += ["--fp16"]
    if config.zero_stage is ZeroStage.OPTIMIZER:
        a += ["--use-distributed-optimizer"]
    elif config.zero_stage >= ZeroStage.GRADIENTS:
        strategy = "optim_grads" if config.zero_stage is ZeroStage.GRADIENTS else "optim_grads_params"
        a += [
            "--use-megatron-fsdp",
            "--data-parallel-sharding-strategy",
            strategy,
            "--ckpt-format",
            "fsdp_dtensor",
        ]
        notes.append(
            f"ZeRO-{int(config.zero_stage)} runs as Megatron-FSDP ({strategy}, fsdp_dtensor checkpoints)"
        )
        if config.tp > 1:
            notes.append(
                "Megatron-FSDP with tp > 1: Megatron warns that the two want different "
                "CUDA_DEVICE_MAX_CONNECTIONS; it is left unset, as FSDP requires"
            )
    if config.recompute is Recompute.SELECTIVE:
        a += ["--recompute-granularity", "selective"]
    elif config.recompute is Recompute.FULL:
        a += [
            "--recompute-granularity",
            "full",
            "--recompute-method",
            "uniform",
            "--recompute-num-layers",
            "1",
        ]
    a += [
        "--mock-data",
        "--tokenizer-type",
        "NullTokenizer",
        "--vocab-size",
        str(model.vocab_size),
        "--train-iters",
        str(DEFAULT_TRAIN_ITERS),
        "--lr",
        _num(DEFAULT_LR),
        "--min-lr",
        _num(DEFAULT_MIN_LR),
        "--lr-decay-style",
        "cosine",
        "--lr-warmup-iters",
        str(DEFAULT_WARMUP_ITERS),
        "--weight-decay",
        _num(WEIGHT_DECAY),
        "--clip-grad",
        _num(GRAD_CLIP),
        "--adam-beta1",
        _num(ADAM_BETAS[0]),
        "--adam-beta2",
        _num(ADAM_BETAS[1]),
        "--init-method-std",
        _num(INIT_METHOD_STD),
    ]
    notes.append(
        "data, tokenizer and schedule are placeholders (--mock-data, NullTokenizer, "
        f"{DEFAULT_TRAIN_ITERS} iterations): replace them with --data-path and your tokenizer"
    )
    return Emitted(expressible=not blockers, notes=blockers + notes, content=a)


def megatron_env(config: ParallelConfig) -> dict[str, str]:
    """Environment Megatron-LM requires: ``validate_args`` asserts one CUDA connection for tp > 1
    before Blackwell, and asserts the opposite for Megatron-FSDP (then tp > 1 only warns)."""
    fsdp = config.zero_stage >= ZeroStage.GRADIENTS
    return {"CUDA_DEVICE_MAX_CONNECTIONS": "1"} if config.tp > 1 and not fsdp else {}


def num_nodes(gpus: int, gpus_per_node: int) -> int:
    """Nodes the plan occupies."""
    return max(1, -(-gpus // gpus_per_node))


def _comments(title: str, doc: dict[str, Any], emitted: Emitted) -> list[str]:
    p = doc["parallelism"]
    return [
        f"# {title}, generated by plan for {doc['model']['name']} on {doc['cluster']['gpus']} x "
        f"{doc['cluster']['gpu']}.",
        f"# tp={p['tp']} pp={p['pp']} dp={p['dp']} zero={p['zero_stage']} recompute={p['recompute']} "
        f"mbs={p['micro_batch_size']} grad_accum={p['grad_accum_steps']} "
        f"sequence_parallel={str(p['sequence_parallel']).lower()}",
        *(f"# note: {n}" for n in emitted.notes),
    ]


def _guard(emitted: Emitted) -> list[str]:
    """Strict mode, and an exit with the reason when the framework cannot run the plan."""
    lines = ["set -euo pipefail"]
    if not emitted.expressible:
        reason = "plan: Megatron-LM cannot run this plan: " + "; ".join(emitted.notes)
        lines += [f"echo {shlex.quote(reason)} >&2", "exit 1"]
    return lines


def _pairs(args: list[str]) -> list[str]:
    """``--flag value`` pairs, one per line, values shell-quoted."""
    pairs, i = [], 0
    while i < len(args):
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            pairs.append(f"{args[i]} {shlex.quote(args[i + 1])}")
            i += 2
        else:
            pairs.append(args[i])
            i += 1
    return pairs


def megatron_script(doc: dict[str, Any], emitted: Emitted, config: ParallelConfig, gpus_per_node: int) -> str:
    """A torchrun launcher for ``pretrain_gpt.py`` (one node per invocation; SLURM runs it on each)."""
    nodes = num_nodes(doc["cluster"]["gpus"], gpus_per_node)
    per_node = min(gpus_per_node, doc["cluster"]["gpus"])
    lines = ["#!/usr/bin/env bash", *_comments("Megatron-LM launch", doc, emitted), *_guard(emitted)]
    lines += [f"export {k}={v}" for k, v in megatron_env(config).items()]
    lines += [
        'MEGATRON="${MEGATRON:-$HOME/Megatron-LM}"',
        f'NNODES="${{NNODES:-{nodes}}}"',
        'NODE_RANK="${NODE_RANK:-${SLURM_NODEID:-0}}"',
        'MASTER_ADDR="${MASTER_ADDR:-localhost}"',
        f'MASTER_PORT="${{MASTER_PORT:-{MASTER_PORT}}}"',
        f'torchrun --nproc-per-node {per_node} --nnodes "$NNODES" --node-rank "$NODE_RANK" \\',
        '  --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" \\',
        '  "$MEGATRON/pretrain_gpt.py" \\',
        *(f"  {p} \\" for p in _pairs(emitted.content)),
        '  "$@"',
    ]
    return "\n".join(lines) + "\n"


def slurm_script(doc: dict[str, Any], emitted: Emitted, gpus_per_node: int) -> str:
    """A SLURM batch script running ``megatron.sh`` once per node."""
    gpus = doc["cluster"]["gpus"]
    nodes = num_nodes(gpus, gpus_per_node)
    lines = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name={doc['model']['name']}-plan",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={min(gpus_per_node, gpus)}",
        "#SBATCH --exclusive",
        *_comments("SLURM batch script", doc, emitted),
        *_guard(emitted),
        'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
        f"export MASTER_ADDR MASTER_PORT={MASTER_PORT} NNODES={nodes}",
        "# Submit from the directory that holds megatron.sh (or set PLAN_DIR).",
        'srun --kill-on-bad-exit=1 bash -c \'NODE_RANK=$SLURM_NODEID exec bash "$0" "$@"\' '
        '"${PLAN_DIR:-$SLURM_SUBMIT_DIR}/megatron.sh" "$@"',
    ]
    return "\n".join(lines) + "\n"


def deepspeed_config(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> Emitted:
    """A DeepSpeed config for the plan; batch numbers satisfy DeepSpeed's rule
    ``train_batch_size = micro_batch * grad_accum * dp``."""
    notes, blockers = [], []
    ds: dict[str, Any] = {
        "train_batch_size": training.global_batch_size,
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": num_microbatches(training, config),
        "gradient_clipping": GRAD_CLIP,
        "steps_per_print": 10,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": DEFAULT_LR,
                "betas": list(ADAM_BETAS),
                "eps": ADAM_EPS,
                "weight_decay": WEIGHT_DECAY,
            },
        },
    }
    if training.precision is Precision.BF16:
        ds["bf16"] = {"enabled": True}
    elif training.precision is Precision.FP16:
        ds["fp16"] = {
            "enabled": True,
            "loss_scale": 0,
            "initial_scale_power": 16,
            "loss_scale_window": 1000,
            "hysteresis": 2,
            "min_loss_scale": 1,
        }
    zero: dict[str, Any] = {"stage": int(config.zero_stage)}
    if config.zero_stage in (ZeroStage.OPTIMIZER, ZeroStage.GRADIENTS):
        zero |= {
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_scatter": True,
            "reduce_bucket_size": DS_BUCKET_ELEMENTS,
            "allgather_bucket_size": DS_BUCKET_ELEMENTS,
        }
    elif config.zero_stage is ZeroStage.WEIGHTS:
        zero |= {
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_bucket_size": DS_BUCKET_ELEMENTS,
            "stage3_prefetch_bucket_size": DS_PREFETCH_ELEMENTS,
            "stage3_param_persistence_threshold": DS_PERSISTENCE_THRESHOLD,
            "stage3_max_live_parameters": DS_MAX_LIVE_PARAMETERS,
        }
    ds["zero_optimization"] = zero
    if config.tp > 1:
        ds["tensor_parallel"] = {"autotp_size": config.tp}
        notes.append(f"tp={config.tp} runs as DeepSpeed AutoTP (tensor_parallel.autotp_size)")
    if config.sequence_parallel:
        blockers.append(
            "Megatron sequence parallelism has no DeepSpeed equivalent (Ulysses splits "
            "attention heads instead); plan with --no-sequence-parallel"
        )
    if config.pp > 1:
        if config.zero_stage >= ZeroStage.GRADIENTS:
            blockers.append("DeepSpeed's pipeline engine supports ZeRO-0/1 only")
        notes.append(
            f"pp={config.pp} needs the model wrapped in deepspeed.pipe.PipelineModule(num_stages={config.pp})"
        )
    if config.recompute is Recompute.FULL:
        ds["activation_checkpointing"] = {
            "partition_activations": False,
            "contiguous_memory_optimization": False,
            "cpu_checkpointing": False,
        }
        notes.append("full recompute: checkpoint every layer (HF: model.gradient_checkpointing_enable())")
    elif config.recompute is Recompute.SELECTIVE:
        if training.flash_attention:
            notes.append("selective recompute equals none with FlashAttention (it keeps no attention scores)")
        else:
            blockers.append("selective (core-attention) recompute is Megatron-only")
    if training.framework is Framework.MEGATRON:
        notes.append(
            "memory was planned with Megatron's conventions (fp32 gradients); "
            "plan with --framework deepspeed for DeepSpeed's"
        )
    return Emitted(expressible=not blockers, notes=blockers + notes, content=ds)


def launch_files(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, doc: dict[str, Any], gpus_per_node: int
) -> tuple[dict[str, str], dict[str, Any]]:
    """File name -> text for ``plan -o DIR``, and the plan document's ``launch`` block."""
    megatron = megatron_args(model, training, config)
    deepspeed = deepspeed_config(model, training, config)
    files = {
        "megatron.sh": megatron_script(doc, megatron, config, gpus_per_node),
        "megatron_args.txt": "\n".join(_pairs(megatron.content)) + "\n",
        "slurm.sbatch": slurm_script(doc, megatron, gpus_per_node),
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
    return files, block


def _num(value: float) -> str:
    """A number as argparse reads it back exactly: ``10000``, ``0.1``, ``1e-05``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
