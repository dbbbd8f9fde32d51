"""Typed values of the planner: model, hardware, training run, parallel layout, results.

Every value is a frozen dataclass validated in ``__post_init__``; invalid values raise
``PlannerError`` with the field and what would work. Units are in the field names.
"""

from dataclasses import dataclass, field
from typing import Any

from constraints.recompute import RecomputeModule
from constraints.units import (
    BYTES_PER_GIB,
    Dispatcher,
    Framework,
    NormType,
    PositionEncoding,
    Precision,
    Recompute,
    ZeroStage,
)
from planner.calibration import DEFAULT_CONSTANTS, StepTimeConstants
from planner.errors import PlannerError
from planner.families import read_family
from planner.layout import ParallelConfig
from planner.profile import HardwareProfile
from planner.quoting import check_printable

__all__ = [
    "Dispatcher",
    "Framework",
    "Precision",
    "Recompute",
    "RecomputeModule",
    "ZeroStage",
    "NormType",
    "PositionEncoding",
    "ModelSpec",
    "HardwareSpec",
    "TrainingSpec",
    "ParallelConfig",
    "MemoryBreakdown",
    "DEFAULT_RESERVE_FRACTION",
    "DEFAULT_RESERVE_FIXED_BYTES",
]

# Default reserve for what no formula allocates (README "Reserve"): CUDA context and cuBLAS
# workspaces (~0.5-1 GiB), NCCL buffers (~1 GiB at 8 ranks per node), allocator fragmentation and
# backward transients. 6% of the device: BLOOM's nvidia-smi readings exceed our totals without it
# by a median 4.7 GiB on 80 GiB A100s (5.9%; benchmarks/accuracy.py, 31 rows); PyTorch's reserved
# memory exceeds its allocated peak by 6-10% on H100 (tests/fixtures/gpu_memory.json); MosaicML's
# MPT-3B at 8k tokens ran where the former 10% said it could not.
DEFAULT_RESERVE_FRACTION = 0.06
DEFAULT_RESERVE_FIXED_BYTES = 0.0


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise PlannerError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A decoder-only transformer, as its Hugging Face config describes it."""

    name: str
    """Display name (file stem or bundled model name)."""
    family: str
    """HF ``model_type``: one of ``planner.families.READERS`` (llama, qwen3_moe, deepseek_v3, ...)."""
    num_layers: int
    """Decoder layers."""
    hidden_size: int
    """Model width ``h``."""
    num_heads: int
    """Query heads ``a``."""
    num_kv_heads: int
    """Key/value heads (GQA); equals ``num_heads`` for multi-head attention."""
    head_dim: int
    """Width of one head; ``hidden_size / num_heads`` unless the config says otherwise."""
    ffn_hidden_size: int
    """MLP intermediate size of a dense layer; also of each routed expert unless
    ``moe_ffn_hidden_size`` is set (Mixtral sets only this one)."""
    vocab_size: int
    """Vocabulary entries of the embedding."""
    max_position_embeddings: int
    """Longest context the model was configured for, in tokens."""
    gated_mlp: bool
    """SwiGLU-style gate (3 matrices) instead of a plain 2-matrix MLP."""
    qkv_bias: bool
    """Biases on the Q, K, V projections."""
    out_bias: bool
    """Bias on the attention output projection."""
    mlp_bias: bool
    """Biases on the MLP projections."""
    norm: NormType
    """LayerNorm or RMSNorm."""
    norm_bias: bool
    """Whether the norms carry a bias (LayerNorm usually does; MPT's does not)."""
    positions: PositionEncoding
    """Learned, rotary or ALiBi positions."""
    tied_embeddings: bool
    """LM head shares the input embedding's weights."""
    embedding_norm: bool = False
    """A norm right after the token embedding (BLOOM ``word_embeddings_layernorm``)."""
    num_experts: int = 0
    """Routed experts per MoE layer; 0 for a dense model."""
    num_experts_per_token: int = 0
    """Experts each token is routed to (top-k)."""
    moe_ffn_hidden_size: int = 0
    """Intermediate size of one routed expert; 0 means ``ffn_hidden_size`` (Mixtral)."""
    shared_expert_ffn_hidden_size: int = 0
    """Intermediate size of the shared expert(s) every token goes through; 0 for none."""
    shared_expert_gate: bool = False
    """A sigmoid gate (``h x 1``) on the shared expert (Qwen2-MoE)."""
    num_dense_layers: int = 0
    """Layers of an MoE model whose MLP is dense (``ffn_hidden_size``), e.g. DeepSeek's first 3."""
    moe_router_score: str = "softmax"
    """Router scoring: ``softmax`` (Mixtral, Qwen) or ``sigmoid`` (DeepSeek-V3)."""
    moe_expert_bias: bool = False
    """Auxiliary-loss-free load balancing with a per-expert routing bias (DeepSeek-V3)."""
    moe_router_groups: int = 0
    """Group-limited routing: expert groups (DeepSeek-V3 ``n_group``); 0 = none."""
    moe_router_group_topk: int = 0
    """Group-limited routing: groups each token may use (``topk_group``)."""
    moe_routed_scaling: float = 0.0
    """Scale of the routed experts' output (``routed_scaling_factor``); 0 = none."""
    qk_norm: bool = False
    """RMSNorm over each query and key head (Qwen3, ``head_dim`` weights each)."""
    norms_per_layer: int = 2
    """Norms in one decoder layer (Gemma 2 has four)."""
    q_lora_rank: int = 0
    """Multi-head latent attention (DeepSeek-V2/V3): rank of the query down-projection; 0 = none."""
    kv_lora_rank: int = 0
    """MLA: rank of the joint key/value down-projection; 0 = standard attention."""
    qk_nope_head_dim: int = 0
    """MLA: query/key head dimensions without rotary embedding."""
    qk_rope_head_dim: int = 0
    """MLA: query/key head dimensions with rotary embedding (the key part shared by all heads)."""
    v_head_dim: int = 0
    """MLA: value head dimension."""
    activation: str = "silu"
    """MLP activation (``silu``: SwiGLU when gated; ``gelu``: GeGLU when gated, GeLU otherwise)."""
    unsupported_by_megatron: tuple[str, ...] = ()
    """Features of this family that Megatron-LM's GPT model has no flag for (launch notes)."""
    dropout: float = 0.0
    """Largest of the hidden/attention dropout probabilities; > 0 keeps dropout masks."""
    rope_theta: float = 10000.0
    """RoPE base frequency (``rope_theta``); launch files only."""
    rotary_fraction: float = 1.0
    """Share of each head's dimensions that RoPE rotates (GPT-NeoX ``rotary_pct``)."""
    rope_scaling: str | None = None
    """``rope_scaling.rope_type`` (``llama3`` for Llama 3.1 and later), else None."""
    norm_epsilon: float = 1e-5
    """Epsilon of the norms (``rms_norm_eps`` / ``layer_norm_epsilon``)."""
    parallel_residual: bool = False
    """Attention and MLP read the same input (GPT-NeoX ``use_parallel_residual``)."""
    sliding_window: int | None = None
    """Tokens each layer attends to (Mistral ``sliding_window``); None for full attention."""

    def __post_init__(self) -> None:
        check_printable(self.name, "model name")
        if self.rope_scaling is not None:
            check_printable(self.rope_scaling, f"model {self.name}: rope_scaling type")
        _positive(
            self,
            "num_layers",
            "hidden_size",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "ffn_hidden_size",
            "vocab_size",
            "max_position_embeddings",
        )
        if self.num_heads % self.num_kv_heads:
            raise PlannerError(
                f"num_key_value_heads ({self.num_kv_heads}) must divide num_attention_heads "
                f"({self.num_heads})"
            )
        if self.num_experts and not 0 < self.num_experts_per_token <= self.num_experts:
            raise PlannerError(
                f"num_experts_per_tok must be between 1 and num_local_experts ({self.num_experts}),"
                f" got {self.num_experts_per_token}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise PlannerError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def q_dim(self) -> int:
        """Width of all query heads, ``num_heads * head_dim``."""
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of all key (or value) heads, ``num_kv_heads * head_dim``."""
        return self.num_kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        """Mixture-of-experts MLPs."""
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention."""
        return self.kv_lora_rank > 0

    @property
    def mla_shape(self) -> tuple[int, int, int, int, int]:
        """MLA's (q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim)."""
        return (
            self.q_lora_rank,
            self.kv_lora_rank,
            self.qk_nope_head_dim,
            self.qk_rope_head_dim,
            self.v_head_dim,
        )

    @property
    def expert_ffn(self) -> int:
        """Intermediate size of one routed expert."""
        return self.moe_ffn_hidden_size or self.ffn_hidden_size

    @property
    def num_moe_layers(self) -> int:
        """Layers with a mixture-of-experts MLP."""
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    @property
    def dropout_enabled(self) -> bool:
        """Dropout masks are kept for backward."""
        return self.dropout > 0

    @classmethod
    def from_hf_config(cls, config: dict[str, Any], name: str, source: str = "model") -> "ModelSpec":
        """Read a Hugging Face ``config.json`` dictionary; ``source`` names the file in errors."""
        return cls(name=name, **read_family(config, source))


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareSpec:
    """One GPU type and the links between GPUs."""

    name: str
    """Preset name or file stem."""
    memory_bytes: float
    """Device memory capacity."""
    peak_flops: float
    """Dense 16-bit tensor-core peak, FLOP/s."""
    hbm_bandwidth_bytes_per_s: float
    """Device memory bandwidth."""
    intra_node_bandwidth_bytes_per_s: float
    """NVLink bandwidth per GPU, one direction."""
    inter_node_bandwidth_bytes_per_s: float
    """Network bandwidth per GPU (one NIC per GPU), one direction."""
    gpus_per_node: int = 8
    """GPUs in one node (one host): the launch's ranks per node."""
    nvlink_domain_gpus: int = 0
    """GPUs that reach each other over NVLink (the intra-node bandwidth): 72 on a GB200/GB300 NVL72
    rack of 4-GPU nodes; 0 (the default) means one node, ``gpus_per_node``."""
    peak_flops_fp8: float = 0.0
    """Dense FP8 peak, FLOP/s; 0 when the GPU has no FP8 tensor cores."""
    pcie_bandwidth_bytes_per_s: float = 25e9
    """Host-device bandwidth per GPU, one direction (PCIe Gen4 x16 ~25 GB/s, Gen5 ~50 GB/s), for offload."""
    profile: HardwareProfile | None = None
    """Achieved-performance tables and fitted constants of a hardware profile file; None for a
    plain preset or hardware file."""

    def __post_init__(self) -> None:
        check_printable(self.name, "hardware name")
        for name in (
            "memory_bytes",
            "peak_flops",
            "hbm_bandwidth_bytes_per_s",
            "intra_node_bandwidth_bytes_per_s",
            "inter_node_bandwidth_bytes_per_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise PlannerError(f"hardware {self.name}: {name} must be a positive number, got {value!r}")
        _positive(self, "gpus_per_node")
        if self.nvlink_domain_gpus == 0:  # frozen: fill the default once, here
            object.__setattr__(self, "nvlink_domain_gpus", self.gpus_per_node)
        _positive(self, "nvlink_domain_gpus")

    @property
    def memory_gib(self) -> float:
        """Capacity in GiB."""
        return self.memory_bytes / BYTES_PER_GIB

    @property
    def step_constants(self) -> StepTimeConstants:
        """The step-time constants for this GPU: the profile's fitted ones over the defaults."""
        return self.profile.step_constants() if self.profile else DEFAULT_CONSTANTS


MEGATRON_BF16_PRECISIONS = frozenset({Precision.BF16, Precision.FP8})
"""Precisions Megatron-LM runs under ``--bf16`` (FP8 too: Transformer Engine's FP8 GEMMs over bf16
parameters); only under them does its ``validate_args`` read ``--grad-reduce-in-bf16``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingSpec:
    """What is trained and how: sequence, batch, precision, framework conventions."""

    seq_len: int
    """Tokens per sequence."""
    global_batch_size: int
    """Sequences per optimizer step, over all data-parallel ranks."""
    precision: Precision = Precision.BF16
    """bf16 / fp16 mixed precision or fp32."""
    framework: Framework = Framework.MEGATRON
    """Whose allocation conventions the memory model follows."""
    flash_attention: bool = True
    """FlashAttention: no ``a*s*s`` attention scores are kept."""
    reserve_fraction: float = DEFAULT_RESERVE_FRACTION
    """Share of device memory kept free for what no formula allocates."""
    reserve_fixed_bytes: float = DEFAULT_RESERVE_FIXED_BYTES
    """Fixed reserve added to the fraction."""
    moe_capacity_factor: float | None = None
    """MoE expert capacity as a multiple of the average load (tokens beyond it are dropped and every
    expert's input is padded to it); None = dropless, sized for the average load."""
    fp8_param_gather: bool = False
    """FP8 training keeps the weights themselves in FP8 and all-gathers them as FP8 (Megatron
    ``--fp8-param-gather``, on in NVIDIA's FP8 recipes); False keeps bf16 weights and Transformer
    Engine's cached FP8 casts beside them."""
    grad_reduce_in_bf16: bool = False
    """Megatron keeps and reduces the gradients in bf16 (2 bytes per parameter, half the
    data-parallel traffic) instead of its default fp32 main-grad buffer (Megatron-LM
    ``--grad-reduce-in-bf16``; NeMo's and Megatron-Bridge's ``grad_reduce_in_fp32=False``, set by
    NVIDIA's performance recipes). DeepSpeed and FSDP keep 16-bit gradients either way."""

    overlap_grad_reduce: bool = True
    """Data-parallel gradient reduction runs during the backward, bucket by bucket (Megatron
    ``--overlap-grad-reduce``, DeepSpeed ``overlap_comm``, FSDP's default); False: after it, exposed."""
    overlap_param_gather: bool = True
    """With a sharded optimizer, the updated weights' all-gather runs during the next forward
    (Megatron ``--overlap-param-gather``, which needs ``overlap_grad_reduce``); False: exposed."""
    overlap_moe_expert_parallel_comm: bool = False
    """MoE dispatch and combine of one micro-batch overlapped with another's computation (Megatron
    ``--overlap-moe-expert-parallel-comm``, Megatron-Bridge's ``moe_a2a_overlap``); Megatron runs it
    only with ep > 1, interleaved stages when pp > 1, no full recompute and 16-bit training, so only
    such layouts gain. Off by default, as in Megatron."""
    tp_comm_overlap: bool = False
    """Tensor-parallel collectives overlapped with the GEMMs by Transformer Engine's userbuffers
    (Megatron ``--tp-comm-overlap``; needs sequence parallelism, so only layouts with tp > 1 and SP
    gain). Off by default: it needs TE built with userbuffers and its bootstrap on the cluster."""

    def __post_init__(self) -> None:
        _positive(self, "seq_len", "global_batch_size")
        if self.overlap_param_gather and not self.overlap_grad_reduce:
            raise PlannerError(
                "--overlap-param-gather needs --overlap-grad-reduce (Megatron asserts it); "
                "add --no-overlap-param-gather"
            )
        if self.grad_reduce_in_bf16 and self.precision not in MEGATRON_BF16_PRECISIONS:
            raise PlannerError(
                f"--grad-reduce-in-bf16 needs --precision bf16 or fp8 (got {self.precision.value}); "
                "drop the option"
            )
        if self.fp8_param_gather and self.precision is not Precision.FP8:
            raise PlannerError("fp8_param_gather needs --precision fp8")
        if self.moe_capacity_factor is not None and self.moe_capacity_factor <= 0:
            raise PlannerError(f"--moe-capacity-factor must be positive, got {self.moe_capacity_factor}")
        if not 0.0 <= self.reserve_fraction < 1.0 or self.reserve_fixed_bytes < 0:
            raise PlannerError("reserve must be a share below 100% (e.g. 10%) or a size (e.g. 4GiB)")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryBreakdown:
    """Memory of the most-loaded GPU, bytes."""

    weights: float
    """Working weights (and ZeRO-3's gathered units)."""
    gradients: float
    """Gradients (and, from ZeRO-2 on, the unsharded gradients of the units being reduced)."""
    optimizer: float
    """Master weights and Adam states."""
    activations: float
    """Kept activations of all in-flight micro-batches, plus the recompute working set."""
    reserve: float
    """CUDA context, NCCL buffers, fragmentation (an explicit, user-set share)."""
    capacity: float
    """Device memory."""
    stage: int = 0
    """Pipeline stage of this GPU (0 = first)."""
    detail: dict[str, float] = field(default_factory=dict)
    """Named parts of the components above, bytes (for explanations)."""

    @property
    def total(self) -> float:
        """Everything this GPU needs."""
        return self.weights + self.gradients + self.optimizer + self.activations + self.reserve

    @property
    def fits(self) -> bool:
        """Total within capacity."""
        return self.total <= self.capacity

    @property
    def model_states(self) -> float:
        """Weights, gradients and optimizer states."""
        return self.weights + self.gradients + self.optimizer
