"""Byte sizes and unit constants shared by the formulas."""

from enum import Enum, IntEnum

BYTES_PER_GIB = 1024**3
BYTES_PER_GB = 1000**3
FP32_BYTES = 4  # IEEE 754 single precision
HALF_BYTES = 2  # bf16 / fp16


class Precision(Enum):
    """Training precision: the dtype of weights, activations and communication."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"
    FP8 = "fp8"
    """bf16 training whose linear layers run in FP8 (Transformer Engine, Micikevicius et al. 2022)."""

    @property
    def is_mixed(self) -> bool:
        """16-bit compute with fp32 master weights and optimizer states."""
        return self is not Precision.FP32

    @property
    def activation_bytes(self) -> int:
        """Bytes of one activation element: 2 for bf16/fp16 (and FP8 training), 4 for fp32."""
        return FP32_BYTES if self is Precision.FP32 else HALF_BYTES

    @property
    def gemm_input_bytes(self) -> int:
        """Bytes of a linear layer's saved input: FP8 training keeps the FP8 cast (1), else as above."""
        return 1 if self is Precision.FP8 else self.activation_bytes


class Framework(Enum):
    """Training framework whose allocation conventions the memory model follows."""

    MEGATRON = "megatron"
    DEEPSPEED = "deepspeed"


class ZeroStage(IntEnum):
    """What is sharded over data-parallel ranks (Rajbhandari et al. 2020, ZeRO, Fig. 1).

    0: nothing; 1: optimizer states (Megatron: distributed optimizer); 2: + gradients;
    3: + weights (FSDP FULL_SHARD).
    """

    NONE = 0
    OPTIMIZER = 1
    GRADIENTS = 2
    WEIGHTS = 3


class Recompute(Enum):
    """Activation recomputation (Korthikanti et al. 2022, Section 5)."""

    NONE = "none"
    SELECTIVE = "selective"
    FULL = "full"

    @property
    def level(self) -> int:
        """0, 1, 2 in increasing order of memory saved."""
        return list(Recompute).index(self)


class Dispatcher(Enum):
    """How an MoE layer moves tokens to their experts (Megatron-Core ``--moe-token-dispatcher-type``)."""

    ALLTOALL = "alltoall"
    """NCCL all-to-all over the expert-parallel ranks: ``k`` copies of every token."""
    FLEX = "flex"
    """The flex dispatcher with the DeepEP backend: each token once per destination rank, and across
    NVLink domains once per domain, then forwarded over NVLink (``constraints/moe_comm.py``)."""


class NormType(Enum):
    """Normalization layer of a model family."""

    LAYERNORM = "layernorm"
    RMSNORM = "rmsnorm"


class PositionEncoding(Enum):
    """How positions enter the model: a learned table has parameters; RoPE and ALiBi do not."""

    LEARNED = "learned"
    ROTARY = "rotary"
    ALIBI = "alibi"
