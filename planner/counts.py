"""Parameter count of a model, component by component, as HF Transformers instantiates it."""

from dataclasses import dataclass

from constraints import params as P
from planner.specs import ModelSpec, PositionEncoding


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamCount:
    """Parameters per component; ``total`` counts tied weights once."""

    embedding: int
    """Token embedding, ``vocab x hidden``."""
    position_embedding: int
    """Learned position table (0 for RoPE and ALiBi)."""
    embedding_norm: int
    """Norm after the embedding (BLOOM), else 0."""
    attention: int
    """One layer's attention block (with per-head q/k norms or MLA's projections and norms)."""
    mlp: int
    """One layer's MLP (for MoE: router, routed experts and shared expert)."""
    norm: int
    """One layer's norms."""
    num_layers: int
    """Decoder layers."""
    dense_mlp: int = 0
    """The dense MLP of the MoE model's dense layers."""
    num_dense_layers: int = 0
    """MoE model layers with the dense MLP instead."""
    final_norm: int
    """Norm before the LM head."""
    lm_head: int
    """Untied LM head (0 when tied to the embedding)."""

    @property
    def per_layer(self) -> int:
        """The first decoder layer (dense in DeepSeek-style models)."""
        return self.attention + self.norm + (self.dense_mlp if self.num_dense_layers else self.mlp)

    @property
    def last_layer(self) -> int:
        """The last decoder layer (an MoE layer in MoE models)."""
        return self.attention + self.norm + self.mlp

    @property
    def total(self) -> int:
        """All parameters of the model."""
        layers = (
            self.num_layers * (self.attention + self.norm)
            + (self.num_layers - self.num_dense_layers) * self.mlp
            + self.num_dense_layers * self.dense_mlp
        )
        return (
            self.embedding
            + self.position_embedding
            + self.embedding_norm
            + layers
            + self.final_norm
            + self.lm_head
        )

    def as_dict(self) -> dict[str, int]:
        """Plain mapping for the plan document."""
        return {
            "total": self.total,
            "embedding": self.embedding,
            "position_embedding": self.position_embedding,
            "per_layer": self.per_layer,
            "attention_per_layer": self.attention,
            "mlp_per_layer": self.mlp,
            "norm_per_layer": self.norm,
            "final_norm": self.final_norm + self.embedding_norm,
            "lm_head": self.lm_head,
        }


def attention_params(model: ModelSpec) -> int:
    """One layer's attention: standard (GQA, biases, per-head q/k norms) or multi-head latent."""
    if model.is_mla:
        return P.mla_params(model.hidden_size, model.num_heads, *model.mla_shape)
    attention = P.attention_params(
        model.hidden_size, model.num_heads, model.num_kv_heads, model.head_dim, model.qkv_bias, model.out_bias
    )
    return attention + (P.qk_norm_params(model.head_dim) if model.qk_norm else 0)


def mlp_params(model: ModelSpec) -> int:
    """One layer's MLP: dense, or router + routed experts + shared expert."""
    h = model.hidden_size
    if not model.is_moe:
        return P.mlp_params(h, model.ffn_hidden_size, model.gated_mlp, model.mlp_bias)
    routed = P.moe_mlp_params(h, model.expert_ffn, model.num_experts, model.gated_mlp, model.mlp_bias)
    shared = P.shared_expert_params(
        h, model.shared_expert_ffn_hidden_size, model.gated_mlp, model.shared_expert_gate
    )
    return routed + shared


def count_params(model: ModelSpec) -> ParamCount:
    """Count every parameter of ``model`` from ``constraints.params``."""
    h = model.hidden_size
    embedding = P.embedding_params(model.vocab_size, h)
    learned = model.positions is PositionEncoding.LEARNED
    return ParamCount(
        embedding=embedding,
        position_embedding=P.embedding_params(model.max_position_embeddings, h) if learned else 0,
        embedding_norm=P.norm_params(h, model.norm_bias) if model.embedding_norm else 0,
        attention=attention_params(model),
        mlp=mlp_params(model),
        norm=model.norms_per_layer * P.norm_params(h, model.norm_bias),
        num_layers=model.num_layers,
        dense_mlp=P.mlp_params(h, model.ffn_hidden_size, model.gated_mlp, model.mlp_bias)
        if model.num_dense_layers
        else 0,
        num_dense_layers=model.num_dense_layers,
        final_norm=P.norm_params(h, model.norm_bias),
        lm_head=0 if model.tied_embeddings else embedding,
    )
