"""Megatron-LM launch: ``pretrain_gpt.py`` arguments, the environment it requires, a torchrun
script and a SLURM batch script. Flags follow ``megatron/training/arguments.py`` at the commit named
in ``tests/fixtures/megatron_arguments.json``, where Megatron's own parser accepted them."""

from constraints.pipeline import account_for_ends
from planner.capability import unsupported_reasons
from planner.emit import (
    ADAM_BETAS,
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_EVAL_INTERVAL,
    DEFAULT_EVAL_ITERS,
    DEFAULT_LOG_INTERVAL,
    DEFAULT_LR,
    DEFAULT_MIN_LR,
    DEFAULT_SAVE_INTERVAL,
    DEFAULT_TRAIN_ITERS,
    DEFAULT_WARMUP_ITERS,
    GRAD_CLIP,
    INIT_METHOD_STD,
    WEIGHT_DECAY,
    Emitted,
    format_number,
)
from planner.emit_shell import flag_pairs
from planner.performance import moe_ep_overlap_runs
from planner.specs import (
    MEGATRON_BF16_PRECISIONS,
    Dispatcher,
    Framework,
    ModelSpec,
    NormType,
    ParallelConfig,
    PositionEncoding,
    Precision,
    Recompute,
    RecomputeModule,
    TrainingSpec,
    ZeroStage,
)

MOCK_DATA_ARGS = ["--mock-data"]
# With DATA_PATH set: Megatron's indexed dataset prefix, split train/validation/test (the share
# Megatron's own examples use; without --split it warns and takes a legacy default).
DATA_SPLIT = "99,1,0"


def run_args(training: TrainingSpec, config: ParallelConfig, save_interval: int) -> list[str]:
    """Checkpointing (Megatron distributed checkpoint at ``--save``), logging and evaluation, the
    communication overlap the step-time model prices (``TrainingSpec.overlap_grad_reduce``,
    ``overlap_param_gather`` with a sharded optimizer, ``tp_comm_overlap`` with sequence
    parallelism: Megatron asserts it; ``overlap_moe_expert_parallel_comm`` where
    ``moe_ep_overlap_runs``), bf16 gradients (``grad_reduce_in_bf16``), fused cross entropy (the
    memory model's 4-byte logits)."""
    a = [
        "--save",
        DEFAULT_CHECKPOINT_DIR,
        "--load",
        DEFAULT_CHECKPOINT_DIR,
        "--save-interval",
        str(save_interval),
        "--log-interval",
        str(DEFAULT_LOG_INTERVAL),
        "--eval-interval",
        str(DEFAULT_EVAL_INTERVAL),
        "--eval-iters",
        str(DEFAULT_EVAL_ITERS),
    ]
    if training.overlap_grad_reduce:
        a += ["--overlap-grad-reduce"]
        # Megatron gathers parameters only when sharded
        if training.overlap_param_gather and config.zero_stage >= ZeroStage.OPTIMIZER:
            a += ["--overlap-param-gather"]
    if training.tp_comm_overlap and config.sequence_parallel:
        a += ["--tp-comm-overlap"]
    if moe_ep_overlap_runs(training, config):
        a += ["--overlap-moe-expert-parallel-comm"]
    if training.grad_reduce_in_bf16:
        a += ["--grad-reduce-in-bf16"]
    return a + ["--cross-entropy-loss-fusion"]


def user_data_args(args: list[str], data_path: str, tokenizer_model: str) -> list[str]:
    """The arguments ``megatron.sh`` passes when DATA_PATH and TOKENIZER_MODEL are set: the
    indexed dataset instead of mock data, a Hugging Face tokenizer instead of the null one."""
    out, pairs = [], flag_pairs(args)
    for flag, value in pairs:
        if flag == "--mock-data":
            out += ["--data-path", data_path, "--split", DATA_SPLIT]
        elif flag == "--tokenizer-type":
            out += ["--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", tokenizer_model]
        elif flag != "--vocab-size":
            out += [flag] if value is None else [flag, value]
    return out


def split_args(num_layers: int, config: ParallelConfig) -> list[str]:
    """The flags of an uneven layer split, in the first form Megatron-LM can build it
    (``constraints.pipeline.megatron_split_form``): the embedding and/or loss counted as a layer of
    the end stages, or the end stages' own layer counts."""
    if not config.uneven_stages:
        return []
    first, last = config.first_stage_layers, config.last_stage_layers
    counted = account_for_ends(num_layers, config.pp, config.vpp, first, last)
    if counted is not None:
        embedding, loss = counted
        return ["--account-for-embedding-in-pipeline-split"] * embedding + [
            "--account-for-loss-in-pipeline-split"
        ] * loss
    return [
        "--decoder-first-pipeline-num-layers",
        str(first),
        "--decoder-last-pipeline-num-layers",
        str(last),
    ]


Args = tuple[list[str], list[str]]
"""Arguments and the notes that explain them, one group of ``pretrain_gpt.py`` flags."""


def attention_args(model: ModelSpec) -> Args:
    """The model's width, heads and attention kind: multi-head latent, GQA, explicit head size."""
    notes: list[str] = []
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
    if model.is_mla:  # DeepSeek-V2/V3 multi-head latent attention (Megatron-Core MLASelfAttention)
        a += [
            "--multi-latent-attention",
            "--kv-lora-rank",
            str(model.kv_lora_rank),
            "--qk-head-dim",
            str(model.qk_nope_head_dim),
            "--qk-pos-emb-head-dim",
            str(model.qk_rope_head_dim),
            "--v-head-dim",
            str(model.v_head_dim),
            "--rope-type",
            "rope",
        ]
        if model.q_lora_rank:
            a += ["--q-lora-rank", str(model.q_lora_rank)]
        notes.append(
            "MLA with plain RoPE (set --rope-type yarn and its factors for long-context YaRN); "
            "multi-token prediction is off, as in the parameter count"
        )
    elif model.head_dim * model.num_heads != model.hidden_size:
        a += ["--kv-channels", str(model.head_dim)]
    if model.num_kv_heads != model.num_heads and not model.is_mla:
        a += ["--group-query-attention", "--num-query-groups", str(model.num_kv_heads)]
    return a, notes


def position_and_norm_args(model: ModelSpec, training: TrainingSpec) -> Args:
    """Sequence length, positions (RoPE and its scaling, learned), MLP gate and norms."""
    a: list[str] = []
    a += [
        "--seq-length",
        str(training.seq_len),
        "--max-position-embeddings",
        str(max(model.max_position_embeddings, training.seq_len)),
    ]
    if model.positions is PositionEncoding.ROTARY:
        a += ["--position-embedding-type", "rope", "--rotary-base", format_number(model.rope_theta)]
        if model.rotary_fraction != 1.0:
            a += ["--rotary-percent", format_number(model.rotary_fraction)]
        if model.rope_scaling == "llama3":
            a += ["--use-rope-scaling"]
    elif model.positions is PositionEncoding.LEARNED:
        a += ["--position-embedding-type", "learned_absolute"]
    if model.gated_mlp:
        a += ["--swiglu"]
    a += [
        "--normalization",
        "RMSNorm" if model.norm is NormType.RMSNORM else "LayerNorm",
        "--norm-epsilon",
        format_number(model.norm_epsilon),
    ]
    if model.qk_norm or model.is_mla:  # MLA: the RMSNorms of the query and key/value latents
        a += ["--qk-layernorm"]
    return a, []


def dispatcher_args(config: ParallelConfig) -> list[str]:
    """The token dispatcher: all-to-all, or flex with the DeepEP backend (Megatron-Core
    ``TransformerConfig.moe_flex_dispatcher_backend``; the older ``--moe-enable-deepep`` is
    deprecated at the fixture's commit)."""
    if config.dispatcher is Dispatcher.FLEX:
        return ["--moe-token-dispatcher-type", "flex", "--moe-flex-dispatcher-backend", "deepep"]
    return ["--moe-token-dispatcher-type", "alltoall"]


def moe_args(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> Args:
    """Experts, routing, dispatcher and capacity of a mixture-of-experts model (none for a dense one)."""
    notes: list[str] = []
    a: list[str] = []
    if model.is_moe:
        a += [
            "--num-experts",
            str(model.num_experts),
            "--moe-router-topk",
            str(model.num_experts_per_token),
            "--moe-ffn-hidden-size",
            str(model.expert_ffn),
            *dispatcher_args(config),
        ]
        if model.shared_expert_ffn_hidden_size:
            a += ["--moe-shared-expert-intermediate-size", str(model.shared_expert_ffn_hidden_size)]
        if model.num_dense_layers:
            pattern = f"([0]*{model.num_dense_layers}+[1]*{model.num_moe_layers})"
            a += ["--moe-layer-freq", pattern]
        if training.moe_capacity_factor is not None:
            a += [
                "--moe-expert-capacity-factor",
                format_number(training.moe_capacity_factor),
                "--moe-pad-expert-input-to-capacity",
            ]
        if model.moe_router_score != "softmax":
            a += ["--moe-router-score-function", model.moe_router_score]
        if model.moe_expert_bias:
            a += ["--moe-router-enable-expert-bias"]
        if model.moe_router_groups:
            a += [
                "--moe-router-num-groups",
                str(model.moe_router_groups),
                "--moe-router-group-topk",
                str(model.moe_router_group_topk),
            ]
        if model.moe_routed_scaling:
            a += ["--moe-router-topk-scaling-factor", format_number(model.moe_routed_scaling)]
        notes.append(
            "MoE: top-k softmax routing without auxiliary loss; add --moe-aux-loss-coeff "
            "(Mixtral used 0.02) and capacity options to taste"
        )
    return a, notes


def bias_and_dropout_args(model: ModelSpec, training: TrainingSpec) -> Args:
    """Linear biases, tied embeddings, dropout and the attention kernel."""
    a: list[str] = []
    linear_bias = model.out_bias or model.mlp_bias
    if not linear_bias:
        a += ["--disable-bias-linear"]
        if model.qkv_bias:
            a += ["--add-qkv-bias"]
    if not model.tied_embeddings:
        a += ["--untie-embeddings-and-output-weights"]
    a += [
        "--attention-dropout",
        format_number(model.dropout),
        "--hidden-dropout",
        format_number(model.dropout),
    ]
    if not training.flash_attention:
        a += ["--attention-backend", "unfused"]
    return a, []


def parallel_args(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> Args:
    """The layout: tp, pp (with interleaving and the stage split), cp, ep, sequence parallelism,
    micro and global batch."""
    a: list[str] = []
    a += ["--tensor-model-parallel-size", str(config.tp), "--pipeline-model-parallel-size", str(config.pp)]
    if config.vpp > 1:
        a += ["--num-virtual-stages-per-pipeline-rank", str(config.vpp)]
    a += split_args(model.num_layers, config)
    if config.cp > 1:
        a += ["--context-parallel-size", str(config.cp), "--cp-comm-type", "p2p"]
    if config.ep > 1:
        a += ["--expert-model-parallel-size", str(config.ep)]
    if model.is_moe:  # always: left out, Megatron splits the experts over tp
        a += ["--expert-tensor-parallel-size", str(config.etp)]
    if config.sequence_parallel:
        a += ["--sequence-parallel"]
    a += [
        "--micro-batch-size",
        str(config.micro_batch_size),
        "--global-batch-size",
        str(training.global_batch_size),
    ]
    return a, []


def precision_and_sharding_args(model: ModelSpec, training: TrainingSpec, config: ParallelConfig) -> Args:
    """bf16/fp16/FP8, the distributed optimizer or Megatron-FSDP, CPU offload and recompute."""
    notes: list[str] = []
    a: list[str] = []
    if training.precision in MEGATRON_BF16_PRECISIONS:
        a += ["--bf16"]
    if training.precision is Precision.FP8:
        a += ["--fp8-format", "hybrid", "--fp8-amax-history-len", "1024", "--fp8-amax-compute-algo", "max"]
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
        if config.tp > 1 or config.cp > 1:
            notes.append(
                "Megatron-FSDP with tp > 1: Megatron warns that the two want different "
                "CUDA_DEVICE_MAX_CONNECTIONS; it is left unset, as FSDP requires"
            )
    if config.optimizer_offload:
        a += ["--optimizer-cpu-offload", "--use-precision-aware-optimizer", "--overlap-cpu-optimizer-d2h-h2d"]
    if config.activation_offload:
        a += ["--cpu-offloading-num-layers", str(model.num_layers - 1)]
    a += recompute_args(config)
    return a, notes


def recompute_args(config: ParallelConfig) -> list[str]:
    """Activation recomputation: selective with Megatron's default module (``core_attn``) or the
    plan's ``--recompute-modules`` (``moe_act`` needs grouped GEMMs); full for every layer
    (``uniform`` over chunks of one layer) or the block method's first N layers of each chunk."""
    if config.recompute is Recompute.SELECTIVE:
        a = ["--recompute-granularity", "selective"]
        if config.recompute_modules:
            a += ["--recompute-modules", *(m.value for m in config.recompute_modules)]
        if RecomputeModule.MOE_ACT in config.recompute_modules:
            a += ["--moe-grouped-gemm"]
        return a
    if config.recompute is Recompute.FULL:
        method, layers = (
            ("block", config.recompute_num_layers) if config.recompute_num_layers else ("uniform", 1)
        )
        return [
            "--recompute-granularity",
            "full",
            "--recompute-method",
            method,
            "--recompute-num-layers",
            str(layers),
        ]
    return []


def data_and_schedule_args(
    model: ModelSpec, training: TrainingSpec, config: ParallelConfig, save_interval: int
) -> Args:
    """Data and tokenizer placeholders, the optimizer schedule, checkpointing and logging."""
    notes: list[str] = []
    a: list[str] = []
    a += [
        *MOCK_DATA_ARGS,
        "--tokenizer-type",
        "NullTokenizer",
        "--vocab-size",
        str(model.vocab_size),
        "--train-iters",
        str(DEFAULT_TRAIN_ITERS),
        "--lr",
        format_number(DEFAULT_LR),
        "--min-lr",
        format_number(DEFAULT_MIN_LR),
        "--lr-decay-style",
        "cosine",
        "--lr-warmup-iters",
        str(DEFAULT_WARMUP_ITERS),
        "--weight-decay",
        format_number(WEIGHT_DECAY),
        "--clip-grad",
        format_number(GRAD_CLIP),
        "--adam-beta1",
        format_number(ADAM_BETAS[0]),
        "--adam-beta2",
        format_number(ADAM_BETAS[1]),
        "--init-method-std",
        format_number(INIT_METHOD_STD),
        *run_args(training, config, save_interval),
    ]
    notes.append(
        "data and tokenizer default to --mock-data and NullTokenizer: set DATA_PATH and "
        "TOKENIZER_MODEL in megatron.sh (or the environment)"
    )
    return a, notes


def megatron_args(
    model: ModelSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    save_interval: int = DEFAULT_SAVE_INTERVAL,
) -> Emitted:
    """``pretrain_gpt.py`` arguments for the plan, and the reasons it cannot run, if any. Data,
    tokenizer, checkpointing, logging and overlap take the defaults ``megatron.sh`` exposes as
    variables (``SCRIPT_VARIABLES``)."""
    args: list[str] = []
    notes: list[str] = []
    for group, group_notes in (
        attention_args(model),
        position_and_norm_args(model, training),
        moe_args(model, training, config),
        bias_and_dropout_args(model, training),
        parallel_args(model, training, config),
        precision_and_sharding_args(model, training, config),
        data_and_schedule_args(model, training, config, save_interval),
    ):
        args += group
        notes += group_notes
    blockers = unsupported_reasons(Framework.MEGATRON, model, training, config)
    return Emitted(expressible=not blockers, notes=blockers + notes, content=args)


def megatron_env(config: ParallelConfig) -> dict[str, str]:
    """Environment Megatron-LM requires: ``validate_args`` asserts one CUDA connection for tp > 1
    or cp > 1 before Blackwell, and asserts the opposite for Megatron-FSDP (then it only warns)."""
    fsdp = config.zero_stage >= ZeroStage.GRADIENTS
    return {"CUDA_DEVICE_MAX_CONNECTIONS": "1"} if (config.tp > 1 or config.cp > 1) and not fsdp else {}
