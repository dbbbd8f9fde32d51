"""What each framework can run: one ordered list of rules, each giving the reason a configuration
cannot run.

The search leaves out what its framework cannot run (``reasons_within`` over the dimensions one
candidate table holds), pin validation raises the first reason, and the emitters put every reason
of their framework in their notes (``unsupported_reasons``), so a rule and its wording live here
once. Sources: Megatron-LM ``megatron/training/arguments.py`` (``validate_args``) and Megatron-Core
``TransformerConfig``; DeepSpeed 0.19 ``deepspeed/runtime/pipe/engine.py`` and ``runtime/config.py``;
torchtitan 0.3.0 ``torchtitan/config/configs.py``, ``trainer.py`` and ``distributed/`` (a launcher
only: its rules decide ``launch.torchtitan``, not the search).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from constraints.pipeline import megatron_split_form, stage_layer_counts
from constraints.recompute import RecomputeModule
from planner.layout import Group
from planner.memo import by_fields_read
from planner.rules import expert_tensor_parallel_reasons, sequence_parallel_reasons
from planner.specs import (
    Dispatcher,
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
from planner.torchtitan_configs import (
    MODULE_OF_FAMILY,
    NAMED_CONFIGS,
    TORCHTITAN_VERSION,
    configs_for,
    named_config,
    shard_degree,
)


class Launcher(Enum):
    """A framework the planner writes launch files for without planning in its conventions (the
    search and the memory model follow ``TrainingSpec.framework``): its rules decide only whether
    its files are written."""

    TORCHTITAN = "torchtitan"


@dataclass(frozen=True, slots=True)
class Rule:
    """One thing a framework cannot run."""

    frameworks: tuple[Framework | Launcher, ...]
    """Frameworks the rule applies to."""
    reads: frozenset[Group]
    """Layout dimensions the rule reads (empty: it reads only the model and the training run)."""
    check: Callable[[ModelSpec, TrainingSpec, Any], Iterable[str]]
    """The reasons, if any; ``config`` is a ``ParallelConfig`` or anything with its attributes."""
    fix: str = ""
    """What would work instead, for error messages."""


MEGATRON, DEEPSPEED = (Framework.MEGATRON,), (Framework.DEEPSPEED,)
TORCHTITAN = (Launcher.TORCHTITAN,)
BOTH = (Framework.MEGATRON, Framework.DEEPSPEED)
MODEL_ONLY: frozenset[Group] = frozenset()
USE_MEGATRON = "use --framework megatron"


def _when(condition: bool, reason: str) -> list[str]:
    return [reason] if condition else []


def split(model: ModelSpec, config: Any) -> tuple[int, int]:
    """(first, last) stage layers of ``config``: its own, or the even split's."""
    if config.first_stage_layers:
        return config.first_stage_layers, config.last_stage_layers
    return (model.num_layers // config.pp,) * 2


def run_lengths(counts: tuple[int, ...]) -> str:
    """Layers per stage with repeats folded: ``7,8x14,7``."""
    parts: list[str] = []
    for n in counts:
        if parts and parts[-1].split("x")[0] == str(n):
            head, _, times = parts[-1].partition("x")
            parts[-1] = f"{head}x{int(times or 1) + 1}"
        else:
            parts.append(str(n))
    return ",".join(parts)


MOE_MODULES = (RecomputeModule.MOE_ACT, RecomputeModule.MOE, RecomputeModule.SHARED_EXPERTS)
OUTPUT_DISCARDING = (RecomputeModule.LAYERNORM, RecomputeModule.MOE_ACT)


def _module_names(modules: Iterable[RecomputeModule]) -> str:
    return ",".join(m.value for m in modules)


def _megatron_modules(model: ModelSpec, training: TrainingSpec, config: Any) -> list[str]:
    """Megatron-Core ``TransformerConfig``/``TransformerLayer``: MoE modules need MoE layers (and
    ``moe_act`` grouped GEMMs, which the launch files then turn on), ``mla_up_proj`` multi-head
    latent attention; ``layernorm`` and ``moe_act`` refuse FP8 delayed scaling, the recipe the
    launch files set (``mla_up_proj`` runs under FP8: its checkpoint keeps the FP8 state)."""
    modules = config.recompute_modules
    reasons = []
    moe_named = [m for m in modules if m in MOE_MODULES]
    if moe_named and not model.is_moe:
        reasons.append(
            f"--recompute-modules {_module_names(moe_named)} recompute MoE layers; this model has none"
        )
    if RecomputeModule.SHARED_EXPERTS in modules and model.is_moe and not model.shared_expert_ffn_hidden_size:
        reasons.append("--recompute-modules shared_experts: this model has no shared experts")
    if RecomputeModule.MLP in modules and model.is_moe and not model.num_dense_layers:
        reasons.append(
            "--recompute-modules mlp recomputes dense MLPs; every layer of this model is MoE (use moe)"
        )
    if RecomputeModule.MLA_UP_PROJ in modules and not model.is_mla:
        reasons.append(
            "--recompute-modules mla_up_proj recomputes the up-projections of multi-head latent "
            "attention; this model has none"
        )
    discarding = [m for m in modules if m in OUTPUT_DISCARDING]
    if discarding and training.precision is Precision.FP8:
        reasons.append(
            f"Megatron-Core refuses {_module_names(discarding)} recompute under FP8 delayed scaling, "
            "the FP8 recipe of the launch files"
        )
    return reasons


def _megatron_rope(model: ModelSpec, training: TrainingSpec, config: Any) -> list[str]:
    scaled = model.positions is PositionEncoding.ROTARY and model.rope_scaling not in (None, "llama3")
    return _when(scaled, f"rope_scaling type {model.rope_scaling!r} has no Megatron-LM flag")


def _torchtitan_model(model: ModelSpec, training: TrainingSpec, config: Any) -> list[str]:
    """torchtitan takes the model from a named config (``planner/torchtitan_configs.py``)."""
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
    if named_config(model, training) is not None:
        return []
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


def _torchtitan_expert_ranks(model: ModelSpec, training: TrainingSpec, config: Any) -> list[str]:
    """ParallelismConfig.expert_parallel_degree: dp_shard·cp·tp = efsdp·ep."""
    dense_ranks = shard_degree(config) * config.cp * config.tp
    return _when(
        config.ep > 1 and dense_ranks % config.ep > 0,
        f"torchtitan's expert parallelism borrows its ranks from dp_shard·cp·tp = {dense_ranks}, "
        f"which ep = {config.ep} does not divide",
    )


def _torchtitan_sequence(model: ModelSpec, training: TrainingSpec, config: Any) -> list[str]:
    """Trainer.__init__: the sequence splits over tp (sequence parallel) and 2·cp (load balancing)."""
    divisor = (config.tp if config.sequence_parallel else 1) * (2 * config.cp if config.cp > 1 else 1)
    return _when(
        training.seq_len % divisor > 0,
        f"torchtitan needs the sequence length divisible by {divisor} (tp with SP, times 2·cp)",
    )


def _expert_tp(model: ModelSpec, training: TrainingSpec, config: Any) -> list[str]:
    """Expert tensor parallelism: an MoE model's experts, split evenly (both frameworks' rules)."""
    if config.etp == 1:
        return []
    if not model.is_moe:
        return ["--etp above 1 splits routed experts; this model has none"]
    return [
        f"expert tensor parallelism {config.etp} {r}"
        for r in expert_tensor_parallel_reasons(model, config.etp)
    ]


def _megatron_split(model: ModelSpec, training: TrainingSpec, config: Any) -> list[str]:
    """Megatron-Core ``TransformerConfig`` / ``get_num_layers_to_build``: the layer split and its
    chunks (the message built only for a split it cannot build: the space asks for every layout)."""
    if config.pp == 1:
        return []
    first, last = split(model, config)
    if megatron_split_form(model.num_layers, config.pp, config.vpp, first, last) is not None:
        return []
    counts = stage_layer_counts(model.num_layers, config.pp, first, last)
    return [
        f"Megatron-LM cannot build {model.num_layers} layers as {run_lengths(counts)} with vpp "
        f"{config.vpp} (every rank's layers, or layer slots counting the embedding and loss, must "
        "split into vpp chunks)"
    ]


def _megatron_sequence(model: ModelSpec, training: TrainingSpec, config: Any) -> list[str]:
    """Megatron sequence parallelism splits each context-parallel rank's tokens over tp
    (``planner.rules.sequence_parallel_reasons``: asserted in the first forward)."""
    if not config.sequence_parallel:
        return []
    return [
        f"with sequence parallelism, tp {config.tp} {r}"
        for r in sequence_parallel_reasons(training.seq_len, config.tp, config.cp)
    ]


DEEPEP_GROUP_SIZES = (2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 144, 160)
"""Dispatch-group sizes DeepEP has buffer configurations for: ``Buffer.get_dispatch_config`` and
``get_combine_config`` assert the rank count is one of these (DeepEP ``deep_ep/buffers/legacy.py``
at dd758caf), and Megatron-Core's ``fused_a2a.get_buffer`` asks both for its ``tp_ep`` group."""


def _flex_dispatcher(model: ModelSpec, training: TrainingSpec, config: Any) -> list[str]:
    """Megatron-Core ``MoEFlexTokenDispatcher`` (d98e8a64): DeepEP needs a dispatch group of
    ``etp * ep`` above 1, of a size DeepEP has buffers for, and does not pad experts to capacity
    (``TransformerConfig.__post_init__``)."""
    if config.dispatcher is not Dispatcher.FLEX:
        return []
    if not model.is_moe:
        return ["the flex (DeepEP) token dispatcher moves tokens of MoE layers; this model has none"]
    reasons = _when(
        config.ep * config.etp == 1,
        "the flex (DeepEP) dispatcher needs etp x ep above 1 (Megatron: 'DeepEP dispatcher requires "
        "TPxEP > 1')",
    )
    group = config.ep * config.etp
    reasons += _when(
        group > 1 and group not in DEEPEP_GROUP_SIZES,
        f"DeepEP has no buffer configuration for a dispatch group of etp x ep = {group} ranks "
        f"(it supports {', '.join(map(str, DEEPEP_GROUP_SIZES))})",
    )
    return reasons + _when(
        training.moe_capacity_factor is not None,
        "the flex dispatcher with the DeepEP backend does not pad experts to capacity "
        "(--moe-capacity-factor)",
    )


RULES: tuple[Rule, ...] = (
    # Megatron-LM: model features its GPT model has no flag for (launch notes only; not searched).
    Rule(MEGATRON, MODEL_ONLY, _megatron_rope),
    Rule(
        MEGATRON,
        MODEL_ONLY,
        lambda m, t, c: _when(
            m.positions is PositionEncoding.ALIBI,
            "ALiBi positions are not implemented in Megatron-LM's GPT model",
        ),
    ),
    Rule(
        MEGATRON,
        MODEL_ONLY,
        lambda m, t, c: _when(
            m.norm is NormType.LAYERNORM and not m.norm_bias,
            "LayerNorm without bias (MPT) has no Megatron-LM flag",
        ),
    ),
    Rule(
        MEGATRON,
        MODEL_ONLY,
        lambda m, t, c: _when(
            m.embedding_norm,
            "the LayerNorm after the word embedding (BLOOM) is not in Megatron-LM's GPT model",
        ),
    ),
    Rule(
        MEGATRON,
        MODEL_ONLY,
        lambda m, t, c: _when(
            m.parallel_residual,
            "parallel attention/MLP residual (GPT-NeoX) is not in Megatron-LM's GPT model",
        ),
    ),
    Rule(MEGATRON, MODEL_ONLY, lambda m, t, c: list(m.unsupported_by_megatron)),
    Rule(
        MEGATRON,
        MODEL_ONLY,
        lambda m, t, c: _when(
            (m.out_bias or m.mlp_bias) and not (m.qkv_bias and m.out_bias and m.mlp_bias),
            "biases on only some linear layers have no Megatron-LM flag",
        ),
    ),
    # Megatron-LM: the hybrid-device optimizer is its distributed optimizer's (ZeRO-1).
    Rule(
        MEGATRON,
        frozenset({Group.STATES}),
        lambda m, t, c: _when(
            c.optimizer_offload and c.zero_stage != ZeroStage.OPTIMIZER,
            "Megatron-LM offloads the optimizer with its distributed optimizer only (ZeRO-1)",
        ),
    ),
    # Megatron-Core TransformerConfig: activation offloading rejects pp > 1 and any recompute
    # granularity ("CPU offloading does not work when activation recomputation is enabled").
    Rule(
        MEGATRON,
        frozenset({Group.ACTIVATIONS, Group.LAYOUT}),
        lambda m, t, c: _when(
            c.activation_offload and (c.pp > 1 or c.recompute is not Recompute.NONE),
            "Megatron-Core activation offloading runs without pipelining and instead of recompute",
        ),
    ),
    Rule(MEGATRON, frozenset({Group.ACTIVATIONS}), _megatron_modules),
    # Megatron-Core TransformerConfig / get_num_layers_to_build: the layer split and its chunks.
    Rule(
        MEGATRON,
        frozenset({Group.LAYOUT}),
        _megatron_split,
        "pick another --vpp or --first-stage-layers/--last-stage-layers",
    ),
    # Megatron-Core tensor_parallel/mappings.py: sequence parallelism splits the sequence over tp.
    Rule(MEGATRON, frozenset({Group.LAYOUT, Group.DERIVED}), _megatron_sequence, "or --no-sequence-parallel"),
    # Megatron-Core MoE: expert tensor parallelism and the flex dispatcher.
    Rule(MEGATRON, frozenset({Group.LAYOUT}), _expert_tp, "pick --etp 1 or a divisor of the expert FFN"),
    Rule(MEGATRON, frozenset({Group.LAYOUT}), _flex_dispatcher, "use --dispatcher alltoall"),
    # DeepSpeed.
    Rule(
        DEEPSPEED,
        MODEL_ONLY,
        lambda m, t, c: _when(
            t.precision is Precision.FP8,
            "FP8 linear layers come from Transformer Engine modules in the model code, "
            "not from the DeepSpeed config",
        ),
    ),
    Rule(
        DEEPSPEED,
        frozenset({Group.STATES}),
        lambda m, t, c: _when(
            c.optimizer_offload and c.zero_stage is ZeroStage.NONE,
            "optimizer offload needs ZeRO stage 1 or more (ZeRO-Offload)",
        ),
    ),
    Rule(
        DEEPSPEED,
        frozenset({Group.ACTIVATIONS}),
        lambda m, t, c: _when(
            c.activation_offload and c.recompute is not Recompute.FULL,
            "DeepSpeed offloads activation checkpoints only (cpu_checkpointing with full recompute)",
        ),
    ),
    Rule(
        DEEPSPEED,
        frozenset({Group.DERIVED}),
        lambda m, t, c: _when(
            c.sequence_parallel,
            "Megatron sequence parallelism has no DeepSpeed equivalent (Ulysses splits "
            "attention heads instead); plan with --no-sequence-parallel",
        ),
    ),
    Rule(
        DEEPSPEED,
        frozenset({Group.LAYOUT}),
        lambda m, t, c: _when(
            c.cp > 1, "context parallelism (ring attention) is Megatron-LM's; DeepSpeed has none"
        ),
        USE_MEGATRON,
    ),
    Rule(
        DEEPSPEED,
        frozenset({Group.LAYOUT}),
        lambda m, t, c: _when(
            c.etp > 1 or c.dispatcher is not Dispatcher.ALLTOALL,
            "expert tensor parallelism and the flex (DeepEP) dispatcher are Megatron-Core's",
        ),
        USE_MEGATRON,
    ),
    Rule(
        DEEPSPEED,
        frozenset({Group.LAYOUT}),
        lambda m, t, c: _when(
            c.ep > 1,
            "expert parallelism needs DeepSpeed-MoE layers (deepspeed.moe.layer.MoE) in the model code",
        ),
        USE_MEGATRON,
    ),
    Rule(
        DEEPSPEED,
        frozenset({Group.LAYOUT}),
        lambda m, t, c: _when(
            c.vpp > 1, "interleaved pipeline stages (vpp > 1) are Megatron-LM's; DeepSpeed has none"
        ),
        USE_MEGATRON,
    ),
    Rule(
        DEEPSPEED,
        frozenset({Group.LAYOUT}),
        lambda m, t, c: _when(
            c.first_stage_layers > 0,
            "uneven pipeline stages are planned for Megatron-LM (DeepSpeed's PipelineModule "
            "partitions the layers by its own rule)",
        ),
        USE_MEGATRON,
    ),
    # deepspeed/runtime/pipe/engine.py asserts ZeRO stage < 2 with pipelining.
    Rule(
        DEEPSPEED,
        frozenset({Group.LAYOUT, Group.STATES}),
        lambda m, t, c: _when(
            c.pp > 1 and c.zero_stage >= ZeroStage.GRADIENTS,
            "DeepSpeed's pipeline engine supports ZeRO-0/1 only",
        ),
    ),
    # Selective (core-attention) recompute is Megatron's; with FlashAttention it keeps nothing more
    # than no recompute, so DeepSpeed runs it as that.
    Rule(
        DEEPSPEED,
        frozenset({Group.ACTIVATIONS}),
        lambda m, t, c: _when(
            c.recompute is Recompute.SELECTIVE and not t.flash_attention,
            "selective (core-attention) recompute is Megatron-only",
        ),
    ),
    # DeepSpeed checkpoints whole layers: every layer (the model's checkpointed blocks,
    # activation_checkpointing) or every k-th (PipelineModule activation_checkpoint_interval).
    Rule(
        DEEPSPEED,
        frozenset({Group.ACTIVATIONS}),
        lambda m, t, c: _when(
            c.recompute_num_layers > 0,
            "DeepSpeed checkpoints every layer (or every k-th, activation_checkpoint_interval), not "
            "the first N of each stage (--recompute-layers is Megatron-LM's block method)",
        ),
        USE_MEGATRON,
    ),
    Rule(
        DEEPSPEED,
        frozenset({Group.ACTIVATIONS}),
        lambda m, t, c: _when(
            bool(c.recompute_modules),
            "per-module recompute (--recompute-modules) is Megatron-Core's; DeepSpeed checkpoints "
            "whole layers",
        ),
        USE_MEGATRON,
    ),
    # Ring attention runs with FlashAttention / fused attention only.
    Rule(
        BOTH,
        frozenset({Group.LAYOUT}),
        lambda m, t, c: _when(
            c.cp > 1 and not t.flash_attention,
            "context parallelism needs FlashAttention (ring attention over fused attention)",
        ),
        "leave out --no-flash-attention",
    ),
    # torchtitan 0.3.0 (launch only).
    Rule(TORCHTITAN, MODEL_ONLY, _torchtitan_model),
    Rule(
        TORCHTITAN,
        MODEL_ONLY,
        lambda m, t, c: _when(
            t.precision is Precision.FP16,
            "torchtitan trains in bf16 or fp32 (training.mixed_precision_param), not fp16",
        ),
    ),
    Rule(
        TORCHTITAN,
        frozenset({Group.STATES}),
        lambda m, t, c: _when(
            c.zero_stage is ZeroStage.OPTIMIZER,
            "torchtitan shards with FSDP2, which shards gradients with the optimizer states: there is "
            "no ZeRO-1; plan with --zero 2 (reshard_after_forward never), --zero 3 or --zero 0",
        ),
    ),
    # FSDP2 always runs over dp_shard·cp (torchtitan/distributed/parallel_dims.py, the fsdp mesh).
    Rule(
        TORCHTITAN,
        frozenset({Group.STATES, Group.LAYOUT}),
        lambda m, t, c: _when(
            c.zero_stage is ZeroStage.NONE and c.cp > 1,
            "torchtitan applies FSDP2 over the context-parallel ranks (dp_shard·cp), so ZeRO-0 "
            "with cp > 1 shards anyway: plan with --zero 2 or 3",
        ),
    ),
    Rule(TORCHTITAN, frozenset({Group.STATES, Group.LAYOUT, Group.DERIVED}), _torchtitan_expert_ranks),
    Rule(
        TORCHTITAN,
        frozenset({Group.ACTIVATIONS}),
        lambda m, t, c: _when(
            c.activation_offload, f"torchtitan {TORCHTITAN_VERSION} has no activation offload to the CPU"
        ),
    ),
    Rule(
        TORCHTITAN,
        frozenset({Group.STATES}),
        lambda m, t, c: _when(
            c.optimizer_offload and c.zero_stage < ZeroStage.GRADIENTS,
            "torchtitan offloads to the CPU through FSDP2 (training.enable_cpu_offload): ZeRO-2/3 only",
        ),
    ),
    Rule(
        TORCHTITAN,
        MODEL_ONLY,
        lambda m, t, c: _when(
            m.is_moe and t.moe_capacity_factor is not None,
            "torchtitan's MoE routing is dropless; a capacity factor belongs to the token dispatcher "
            "of the model config, not to a command-line key",
        ),
    ),
    Rule(
        TORCHTITAN,
        frozenset({Group.LAYOUT}),
        lambda m, t, c: _when(
            m.num_layers % (c.pp * c.vpp) > 0,
            f"torchtitan's equal stages need pp·vpp = {c.pp * c.vpp} to divide the {m.num_layers} layers",
        ),
    ),
    Rule(TORCHTITAN, frozenset({Group.LAYOUT, Group.DERIVED}), _torchtitan_sequence),
    # torchtitan/distributed/activation_checkpoint.py: FullAC wraps every block, SelectiveAC is
    # per op (every second matmul), MemoryBudgetAC needs compile; no per-layer or per-module choice.
    Rule(
        TORCHTITAN,
        frozenset({Group.ACTIVATIONS}),
        lambda m, t, c: _when(
            c.recompute_num_layers > 0,
            f"torchtitan {TORCHTITAN_VERSION} checkpoints every transformer block "
            "(activation_checkpoint:full), not the first N of each stage",
        ),
    ),
    Rule(
        TORCHTITAN,
        frozenset({Group.ACTIVATIONS}),
        lambda m, t, c: _when(
            bool(c.recompute_modules),
            f"torchtitan {TORCHTITAN_VERSION}'s selective checkpointing is per op, not per module "
            "(--recompute-modules)",
        ),
    ),
    Rule(
        TORCHTITAN,
        frozenset({Group.LAYOUT}),
        lambda m, t, c: _when(
            c.etp > 1 or c.dispatcher is not Dispatcher.ALLTOALL,
            f"torchtitan {TORCHTITAN_VERSION} splits no expert over tp (its ParallelismConfig has "
            "expert_parallel_degree only) and picks its DeepEP token dispatcher in the model's "
            "config, not on the command line: plan with --etp 1 --dispatcher alltoall",
        ),
    ),
)


def unsupported_reasons(
    framework: Framework | Launcher, model: ModelSpec, training: TrainingSpec, config: ParallelConfig
) -> list[str]:
    """Every reason ``framework`` cannot run ``config`` for this model and training run, in order."""
    return [
        reason
        for rule in RULES
        if framework in rule.frameworks
        for reason in rule.check(model, training, config)
    ]


def problems_within(
    groups: frozenset[Group], framework: Framework, model: ModelSpec, training: TrainingSpec, config: Any
) -> list[tuple[str, str]]:
    """(reason, fix) of the rules that read only dimensions of ``groups`` (and at least one): what
    can be decided from a partial configuration whose other dimensions are placeholders."""
    return [
        (reason, rule.fix)
        for rule in rules_within(groups, framework)
        for reason in rule.check(model, training, config)
    ]


@cache
def rules_within(groups: frozenset[Group], framework: Framework) -> tuple[Rule, ...]:
    """The rules of ``framework`` that read only dimensions of ``groups`` (and at least one), in
    order; cached, as the space asks once per table row."""
    return tuple(
        rule for rule in RULES if framework in rule.frameworks and rule.reads and rule.reads <= groups
    )


@by_fields_read(4)  # the space asks once per table row; most rows share the fields the rules read
def reasons_within(
    groups: frozenset[Group], framework: Framework, model: ModelSpec, training: TrainingSpec, config: Any
) -> list[str]:
    """The reasons of ``problems_within``: the search leaves out a table row that has any."""
    return [reason for reason, _ in problems_within(groups, framework, model, training, config)]
