"""The models torchtitan can train from the command line: its named configs and their shapes.

torchtitan 0.3.0 takes the model from a named config (``--module llama3 --config llama3_8b``: a
function in ``torchtitan/models/<module>/config_registry.py`` returning a ``Trainer.Config``); the
model inside it (``Trainer.Config.model_spec``) is ``tyro.conf.Suppress``-ed, so no ``--section.key``
override can change a layer count, a width or a converter (float8). A model trains under torchtitan
from the command line only when its shape is that of a named config, and in float8 only when that
config converts its linear layers (``Float8LinearConverter`` in the model registry call).

Every row below is checked against torchtitan's own config functions by
``tests/planner/test_emit_torchtitan.py`` (``test_named_configs_match_torchtitan``).
"""

from dataclasses import dataclass

from planner.specs import ModelSpec, ParallelConfig, Precision, TrainingSpec, ZeroStage

TORCHTITAN_VERSION = "0.3.0"

# HF model types whose architecture a torchtitan model module implements (Llama 3: RMSNorm, SwiGLU,
# GQA, RoPE, no biases; Qwen3: + per-head q/k norms, MoE; DeepSeek-V3: MLA and MoE with shared
# experts). Llama 2 has the same layer but no named config in torchtitan 0.3.0.
MODULE_OF_FAMILY = {
    "llama": "llama3",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3",
    "deepseek_v3": "deepseek_v3",
}

Shape = tuple[int, int, int, int | None, int | None, int, int, int, int, bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class NamedConfig:
    """One ``config_registry`` function of torchtitan and the model it trains."""

    module: str
    """``--module``: the model module (``torchtitan/models/<module>``)."""
    config: str
    """``--config``: the function in that module's ``config_registry.py``."""
    flavor: str
    """The model flavor it builds (``model_registry(flavor)``)."""
    num_layers: int
    """Decoder layers."""
    hidden_size: int
    """Model width (``dim``)."""
    num_heads: int
    """Query heads."""
    num_kv_heads: int | None
    """Key/value heads; None for multi-head latent attention (DeepSeek)."""
    ffn_hidden_size: int | None
    """Intermediate size of the dense MLPs; None when every layer is a mixture of experts."""
    vocab_size: int
    """Embedding rows."""
    hf_assets_path: str
    """Its default folder of Hugging Face assets (tokenizer, weights), relative to the torchtitan checkout."""
    num_experts: int = 0
    """Routed experts per MoE layer; 0 for a dense model."""
    num_experts_per_token: int = 0
    """Experts each token is routed to (top-k)."""
    expert_ffn_hidden_size: int = 0
    """Intermediate size of one routed expert."""
    tied_embeddings: bool = False
    """The LM head shares the embedding (``enable_weight_tying``)."""
    float8: bool = False
    """Its linear layers are converted to float8 (torchao ``Float8Linear``)."""
    note: str = ""
    """What the named config trains that the model file may not say."""

    @property
    def shape(self) -> Shape:
        """What must equal the planned model's ``model_shape``."""
        return (
            self.num_layers,
            self.hidden_size,
            self.num_heads,
            self.num_kv_heads,
            self.ffn_hidden_size,
            self.vocab_size,
            self.num_experts,
            self.num_experts_per_token,
            self.expert_ffn_hidden_size,
            self.tied_embeddings,
        )


def model_shape(model: ModelSpec) -> Shape:
    """The planned model's shape in ``NamedConfig.shape``'s terms."""
    dense = not model.is_moe or model.num_dense_layers > 0
    return (
        model.num_layers,
        model.hidden_size,
        model.num_heads,
        None if model.is_mla else model.num_kv_heads,
        model.ffn_hidden_size if dense else None,
        model.vocab_size,
        model.num_experts,
        model.num_experts_per_token,
        model.expert_ffn if model.is_moe else 0,
        model.tied_embeddings,
    )


_LLAMA31 = "torchtitan's Llama 3 flavors are Llama 3.1's (RoPE with Llama 3.1 scaling, theta 500000)"
_QWEN3 = "torchtitan's Qwen3 flavors (RoPE theta 1000000, per-head q/k RMSNorm)"
_DSV3 = "torchtitan's DeepSeek-V3 flavor: MLA with YaRN RoPE, sigmoid group-limited routing, no MTP"

# From torchtitan 0.3.0 torchtitan/models/{llama3,qwen3,deepseek_v3}/__init__.py and
# config_registry.py. Named configs that train something else than pre-training of the flavor
# (SFT, NVFP4 or MXFP8 layers, debug models) are left out.
NAMED_CONFIGS: tuple[NamedConfig, ...] = (
    NamedConfig(
        module="llama3",
        config="llama3_8b",
        flavor="8B",
        num_layers=32,
        hidden_size=4096,
        num_heads=32,
        num_kv_heads=8,
        ffn_hidden_size=14336,
        vocab_size=128256,
        hf_assets_path="./assets/hf/Llama-3.1-8B",
        note=_LLAMA31,
    ),
    NamedConfig(
        module="llama3",
        config="llama3_70b",
        flavor="70B",
        num_layers=80,
        hidden_size=8192,
        num_heads=64,
        num_kv_heads=8,
        ffn_hidden_size=28672,
        vocab_size=128256,
        hf_assets_path="./assets/hf/Llama-3.1-70B",
        note=_LLAMA31,
    ),
    NamedConfig(
        module="llama3",
        config="llama3_405b",
        flavor="405B",
        num_layers=126,
        hidden_size=16384,
        num_heads=128,
        num_kv_heads=8,
        ffn_hidden_size=53248,
        vocab_size=128256,
        hf_assets_path="./assets/hf/Llama-3.1-405B",
        float8=True,
        note=_LLAMA31 + "; float8 linear layers except the LM head, torch.compile and async TP",
    ),
    NamedConfig(
        module="qwen3",
        config="qwen3_0_6b",
        flavor="0.6B",
        num_layers=28,
        hidden_size=1024,
        num_heads=16,
        num_kv_heads=8,
        ffn_hidden_size=3072,
        vocab_size=151936,
        hf_assets_path="./assets/hf/Qwen3-0.6B",
        tied_embeddings=True,
        note=_QWEN3,
    ),
    NamedConfig(
        module="qwen3",
        config="qwen3_1_7b",
        flavor="1.7B",
        num_layers=28,
        hidden_size=2048,
        num_heads=16,
        num_kv_heads=8,
        ffn_hidden_size=6144,
        vocab_size=151936,
        hf_assets_path="./assets/hf/Qwen3-1.7B",
        tied_embeddings=True,
        note=_QWEN3,
    ),
    NamedConfig(
        module="qwen3",
        config="qwen3_14b",
        flavor="14B",
        num_layers=40,
        hidden_size=5120,
        num_heads=40,
        num_kv_heads=8,
        ffn_hidden_size=17408,
        vocab_size=151936,
        hf_assets_path="./assets/hf/Qwen3-14B",
        note=_QWEN3,
    ),
    NamedConfig(
        module="qwen3",
        config="qwen3_32b",
        flavor="32B",
        num_layers=64,
        hidden_size=5120,
        num_heads=64,
        num_kv_heads=8,
        ffn_hidden_size=25600,
        vocab_size=151936,
        hf_assets_path="./assets/hf/Qwen3-32B",
        note=_QWEN3,
    ),
    NamedConfig(
        module="qwen3",
        config="qwen3_30b_a3b",
        flavor="30B-A3B",
        num_layers=48,
        hidden_size=2048,
        num_heads=32,
        num_kv_heads=4,
        ffn_hidden_size=None,
        vocab_size=151936,
        hf_assets_path="./assets/hf/Qwen3-30B-A3B",
        num_experts=128,
        num_experts_per_token=8,
        expert_ffn_hidden_size=768,
        note=_QWEN3,
    ),
    NamedConfig(
        module="deepseek_v3",
        config="deepseek_v3_671b",
        flavor="671B",
        num_layers=61,
        hidden_size=7168,
        num_heads=128,
        num_kv_heads=None,
        ffn_hidden_size=18432,
        vocab_size=129280,
        hf_assets_path="./assets/hf/DeepSeek-V3.1-Base",
        num_experts=256,
        num_experts_per_token=8,
        expert_ffn_hidden_size=2048,
        note=_DSV3,
    ),
    NamedConfig(
        module="deepseek_v3",
        config="deepseek_v3_671b_float8",
        flavor="671B",
        num_layers=61,
        hidden_size=7168,
        num_heads=128,
        num_kv_heads=None,
        ffn_hidden_size=18432,
        vocab_size=129280,
        hf_assets_path="./assets/hf/DeepSeek-V3.1-Base",
        num_experts=256,
        num_experts_per_token=8,
        expert_ffn_hidden_size=2048,
        float8=True,
        note=_DSV3 + "; float8 linear layers",
    ),
)


def configs_for(model: ModelSpec) -> list[NamedConfig]:
    """The named configs that train this model's shape (with and without float8)."""
    if model.family not in MODULE_OF_FAMILY:
        return []
    module, shape = MODULE_OF_FAMILY[model.family], model_shape(model)
    return [c for c in NAMED_CONFIGS if c.module == module and c.shape == shape]


def named_config(model: ModelSpec, training: TrainingSpec) -> NamedConfig | None:
    """The named config that trains this model in this precision, if torchtitan has one."""
    float8 = training.precision is Precision.FP8
    return next((c for c in configs_for(model) if c.float8 == float8), None)


def shard_degree(config: ParallelConfig) -> int:
    """``data_parallel_shard_degree``: the FSDP2 shards (ZeRO-2/3), else 1."""
    return config.dp if config.zero_stage >= ZeroStage.GRADIENTS else 1
