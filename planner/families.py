"""Readers of Hugging Face ``config.json`` keys, one per ``model_type``.

Each reader returns the ``ModelSpec`` fields for its family with the defaults that family's
Transformers config class uses when a key is absent, so counts match what Transformers builds.
"""

from collections.abc import Callable
from typing import Any

from constraints.units import NormType, PositionEncoding
from planner.errors import PlannerError
from planner.numbers import MODEL_INT, RANGES, Range, check_number

Config = dict[str, Any]
_MISSING = object()
PROBABILITY = Range(low=0, high=1, integer=False, high_open=True)
POSITIVE = Range(low=0, high=1e12, integer=False, low_open=True)


class _Keys:
    """Typed access to a config dictionary with one-line errors naming the file and the key."""

    def __init__(self, config: Config, source: str) -> None:
        self.config, self.source = config, source

    def _raw(self, names: tuple[str, ...], default: Any) -> tuple[str, Any]:
        for name in names:
            if name in self.config and self.config[name] is not None:
                return name, self.config[name]
        if default is _MISSING:
            raise PlannerError(f"{self.source}: missing key '{names[0]}' (a positive integer)")
        return names[0], default

    def int(self, *names: str, default: Any = _MISSING) -> int:
        name, value = self._raw(names, default)
        return check_number(value, name, self.source, RANGES.get(name, MODEL_INT))

    def float(self, *names: str, default: Any = _MISSING) -> float:
        """A probability in [0, 1) (dropout)."""
        name, value = self._raw(names, default)
        return float(check_number(value, name, self.source, RANGES.get(name, PROBABILITY)))

    def positive(self, *names: str, default: Any = _MISSING) -> float:
        """A finite positive number (RoPE base, epsilon), within its field's range."""
        name, value = self._raw(names, default)
        return float(check_number(value, name, self.source, RANGES.get(name, POSITIVE)))

    def bool(self, *names: str, default: Any = _MISSING) -> bool:
        name, value = self._raw(names, default)
        if not isinstance(value, bool):
            raise PlannerError(f"{self.source}: key '{name}' must be true or false, got {value!r}")
        return value


def _heads(k: _Keys, hidden: int, heads: int) -> tuple[int, int]:
    """Head dim and KV heads; the head dim must tile the hidden size unless given explicitly."""
    if "head_dim" in k.config and k.config["head_dim"] is not None:
        head_dim = k.int("head_dim")
    else:
        if hidden % heads:
            raise PlannerError(
                f"{k.source}: num_attention_heads ({heads}) must divide hidden_size ({hidden})"
            )
        head_dim = hidden // heads
    kv_heads = k.int("num_key_value_heads", default=heads)
    return head_dim, kv_heads


def _llama_like(k: _Keys, *, qkv_bias_default: bool, qkv_bias_key: str = "attention_bias") -> dict:
    hidden, heads = k.int("hidden_size"), k.int("num_attention_heads")
    head_dim, kv_heads = _heads(k, hidden, heads)
    attention_bias = k.bool(qkv_bias_key, default=qkv_bias_default)
    return dict(
        num_layers=k.int("num_hidden_layers"),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        ffn_hidden_size=k.int("intermediate_size"),
        vocab_size=k.int("vocab_size"),
        max_position_embeddings=k.int("max_position_embeddings", default=4096),
        gated_mlp=True,
        qkv_bias=attention_bias,
        out_bias=attention_bias,
        mlp_bias=k.bool("mlp_bias", default=False),
        norm=NormType.RMSNORM,
        norm_bias=False,
        positions=PositionEncoding.ROTARY,
        tied_embeddings=k.bool("tie_word_embeddings", default=False),
        dropout=k.float("attention_dropout", default=0.0),
        rope_theta=k.positive("rope_theta", default=10000.0),
        rope_scaling=_rope_scaling(k),
        norm_epsilon=k.positive("rms_norm_eps", default=1e-6),
        sliding_window=_sliding_window(k),
    )


def _sliding_window(k: _Keys) -> int | None:
    """Mistral's window; Qwen2 lists one but turns it off with ``use_sliding_window: false``."""
    if k.config.get("sliding_window") is None or k.config.get("use_sliding_window") is False:
        return None
    return k.int("sliding_window")


def _rope_scaling(k: _Keys) -> str | None:
    scaling = k.config.get("rope_scaling")
    if scaling is None:
        return None
    if not isinstance(scaling, dict):
        raise PlannerError(f"{k.source}: key 'rope_scaling' must be a mapping or null")
    kind = scaling.get("rope_type") or scaling.get("type") or "unknown"
    if not isinstance(kind, str):
        raise PlannerError(f"{k.source}: key 'rope_scaling.rope_type' must be a string such as llama3")
    return kind


def _llama(k: _Keys) -> dict:
    return _llama_like(k, qkv_bias_default=False)


def _qwen2(k: _Keys) -> dict:
    # Qwen2Attention: q/k/v projections with bias, o_proj without (transformers qwen2/modeling).
    fields = _llama_like(k, qkv_bias_default=False)
    return fields | dict(qkv_bias=True, out_bias=False)


def _mixtral(k: _Keys) -> dict:
    fields = _llama_like(k, qkv_bias_default=False)
    return fields | dict(
        num_experts=k.int("num_local_experts", default=8),
        num_experts_per_token=k.int("num_experts_per_tok", default=2),
    )


def _layernorm_plain_mlp(k: _Keys, hidden: int, heads: int, **fields) -> dict:
    """Fields shared by the GPT-2-like families: multi-head attention, LayerNorm, plain MLP."""
    head_dim, _ = _heads(k, hidden, heads)
    return (
        dict(
            hidden_size=hidden,
            num_heads=heads,
            num_kv_heads=heads,
            head_dim=head_dim,
            gated_mlp=False,
            norm=NormType.LAYERNORM,
            vocab_size=k.int("vocab_size"),
            norm_epsilon=k.positive("layer_norm_epsilon", "layer_norm_eps", default=1e-5),
        )
        | fields
    )


def _gpt2(k: _Keys) -> dict:
    hidden, heads = k.int("n_embd", "hidden_size"), k.int("n_head", "num_attention_heads")
    dropout = max(k.float(name, default=0.1) for name in ("resid_pdrop", "attn_pdrop", "embd_pdrop"))
    return _layernorm_plain_mlp(
        k,
        hidden,
        heads,
        num_layers=k.int("n_layer", "num_hidden_layers"),
        ffn_hidden_size=k.int("n_inner", default=4 * hidden),
        max_position_embeddings=k.int("n_positions", "max_position_embeddings", default=1024),
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        norm_bias=True,
        positions=PositionEncoding.LEARNED,
        tied_embeddings=k.bool("tie_word_embeddings", default=True),
        dropout=dropout,
    )


def _gpt_neox(k: _Keys) -> dict:
    bias = k.bool("attention_bias", default=True)
    dropout = max(k.float("hidden_dropout", default=0.0), k.float("attention_dropout", default=0.0))
    return _layernorm_plain_mlp(
        k,
        k.int("hidden_size"),
        k.int("num_attention_heads"),
        num_layers=k.int("num_hidden_layers"),
        ffn_hidden_size=k.int("intermediate_size"),
        max_position_embeddings=k.int("max_position_embeddings", default=2048),
        qkv_bias=bias,
        out_bias=bias,
        mlp_bias=True,
        norm_bias=True,
        positions=PositionEncoding.ROTARY,
        tied_embeddings=k.bool("tie_word_embeddings", default=False),
        rope_theta=k.positive("rotary_emb_base", "rope_theta", default=10000.0),
        rotary_fraction=k.positive("rotary_pct", default=1.0),
        parallel_residual=k.bool("use_parallel_residual", default=True),
        dropout=dropout,
    )


def _bloom(k: _Keys) -> dict:
    hidden = k.int("hidden_size", "n_embed")
    dropout = max(k.float("hidden_dropout", default=0.0), k.float("attention_dropout", default=0.0))
    return _layernorm_plain_mlp(
        k,
        hidden,
        k.int("n_head", "num_attention_heads"),
        num_layers=k.int("n_layer", "num_hidden_layers"),
        ffn_hidden_size=4 * hidden,
        max_position_embeddings=k.int("seq_length", "max_position_embeddings", default=2048),
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        norm_bias=True,
        positions=PositionEncoding.ALIBI,
        tied_embeddings=k.bool("tie_word_embeddings", default=True),
        embedding_norm=True,
        dropout=dropout,
    )


def _mpt(k: _Keys) -> dict:
    hidden = k.int("d_model", "hidden_size")
    attn = k.config.get("attn_config") or {}
    if not isinstance(attn, dict):
        raise PlannerError(f"{k.source}: key 'attn_config' must be a mapping")
    bias = not k.bool("no_bias", default=True)
    dropout = max(
        k.float("resid_pdrop", default=0.0),
        k.float("emb_pdrop", default=0.0),
        _Keys(attn, f"{k.source} attn_config").float("attn_pdrop", default=0.0),
    )
    return _layernorm_plain_mlp(
        k,
        hidden,
        k.int("n_heads", "num_attention_heads"),
        num_layers=k.int("n_layers", "num_hidden_layers"),
        ffn_hidden_size=k.int("expansion_ratio", default=4) * hidden,
        max_position_embeddings=k.int("max_seq_len", default=2048),
        qkv_bias=bias,
        out_bias=bias,
        mlp_bias=bias,
        norm_bias=bias,
        positions=PositionEncoding.ALIBI if attn.get("alibi", True) else PositionEncoding.LEARNED,
        tied_embeddings=True,
        dropout=dropout,
    )


def _qwen3(k: _Keys) -> dict:
    return _llama_like(k, qkv_bias_default=False) | dict(qk_norm=True)


def _gemma(k: _Keys) -> dict:
    return _llama_like(k, qkv_bias_default=False) | dict(
        tied_embeddings=k.bool("tie_word_embeddings", default=True),
        activation="gelu",
        unsupported_by_megatron=(
            "GeGLU MLP (Megatron-LM's --swiglu is SiLU)",
            "RMSNorm scaled by (1 + weight) and embeddings scaled by sqrt(h)",
        ),
    )


def _gemma2(k: _Keys) -> dict:
    # Gemma 2 alternates local (sliding-window) and global layers; serving memory conservatively
    # caches every layer in full.
    return _gemma(k) | dict(
        norms_per_layer=4,
        sliding_window=None,
        unsupported_by_megatron=(
            "GeGLU MLP (Megatron-LM's --swiglu is SiLU)",
            "four norms per layer and attention/final logit soft-capping",
            "alternating sliding-window layers",
        ),
    )


def _moe_fields(k: _Keys, experts_key: str, shared_ffn: int, shared_gate: bool) -> dict:
    num_layers = k.int("num_hidden_layers")
    step = k.int("decoder_sparse_step", default=1)
    dense_only = set(k.config.get("mlp_only_layers") or [])
    dense = sum(1 for i in range(num_layers) if i in dense_only or (i + 1) % step)
    return dict(
        num_experts=k.int(experts_key),
        num_experts_per_token=k.int("num_experts_per_tok"),
        moe_ffn_hidden_size=k.int("moe_intermediate_size"),
        shared_expert_ffn_hidden_size=shared_ffn,
        shared_expert_gate=shared_gate,
        num_dense_layers=dense,
    )


def _qwen2_moe(k: _Keys) -> dict:
    shared = (
        k.int("shared_expert_intermediate_size", default=0)
        if k.config.get("shared_expert_intermediate_size")
        else 0
    )
    return (
        _qwen2(k)
        | _moe_fields(k, "num_experts", shared, shared_gate=bool(shared))
        | dict(unsupported_by_megatron=("the sigmoid gate on the shared expert",))
    )


def _qwen3_moe(k: _Keys) -> dict:
    return _qwen3(k) | _moe_fields(k, "num_experts", 0, shared_gate=False)


def _deepseek_v3(k: _Keys) -> dict:
    fields = _llama_like(k, qkv_bias_default=False)
    nope, rope = k.int("qk_nope_head_dim"), k.int("qk_rope_head_dim")
    moe_ffn = k.int("moe_intermediate_size")
    return fields | dict(
        head_dim=nope + rope,
        num_kv_heads=fields["num_heads"],
        q_lora_rank=k.int("q_lora_rank", default=0) if k.config.get("q_lora_rank") else 0,
        kv_lora_rank=k.int("kv_lora_rank"),
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        v_head_dim=k.int("v_head_dim"),
        num_experts=k.int("n_routed_experts"),
        num_experts_per_token=k.int("num_experts_per_tok"),
        moe_ffn_hidden_size=moe_ffn,
        shared_expert_ffn_hidden_size=moe_ffn * k.int("n_shared_experts", default=1),
        num_dense_layers=min(k.int("first_k_dense_replace", default=3), fields["num_layers"]),
        moe_router_score="sigmoid",
        moe_expert_bias=True,
        moe_router_groups=k.int("n_group", default=1) if k.config.get("n_group") else 0,
        moe_router_group_topk=k.int("topk_group", default=1) if k.config.get("topk_group") else 0,
        moe_routed_scaling=k.positive("routed_scaling_factor", default=1.0),
    )


READERS: dict[str, Callable[[_Keys], dict]] = {
    "llama": _llama,
    "mistral": _llama,
    "mixtral": _mixtral,
    "qwen2": _qwen2,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "qwen3": _qwen3,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "qwen2_moe": _qwen2_moe,
    "qwen3_moe": _qwen3_moe,
    "deepseek_v3": _deepseek_v3,
    "bloom": _bloom,
    "mpt": _mpt,
}


def read_family(config: Config, source: str) -> dict:
    """``ModelSpec`` fields (without ``name``) from a config dictionary."""
    if not isinstance(config, dict):
        raise PlannerError(f"{source}: expected a mapping of config keys, got {type(config).__name__}")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in READERS:
        raise PlannerError(
            f"{source}: model_type {model_type!r} is not supported; use one of: " + ", ".join(sorted(READERS))
        )
    return {"family": model_type, **READERS[model_type](_Keys(config, source))}
