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
    """One layer's attention block."""
    mlp: int
    """One layer's MLP (router and experts for MoE)."""
    norm: int
    """One layer's norms."""
    num_layers: int
    """Decoder layers."""
    final_norm: int
    """Norm before the LM head."""
    lm_head: int
    """Untied LM head (0 when tied to the embedding)."""

    @property
    def per_layer(self) -> int:
        """One decoder layer."""
        return self.attention + self.mlp + self.norm

    @property
    def total(self) -> int:
        """All parameters of the model."""
        return (
            self.embedding
            + self.position_embedding
            + self.embedding_norm
            + self.num_layers * self.per_layer
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


def count_params(model: ModelSpec) -> ParamCount:
    """Count every parameter of ``model`` from ``constraints.params``."""
    h = model.hidden_size
    if model.is_moe:
        mlp = P.moe_mlp_params(h, model.ffn_hidden_size, model.num_experts, model.gated_mlp, model.mlp_bias)
    else:
        mlp = P.mlp_params(h, model.ffn_hidden_size, model.gated_mlp, model.mlp_bias)
    embedding = P.embedding_params(model.vocab_size, h)
    learned = model.positions is PositionEncoding.LEARNED
    return ParamCount(
        embedding=embedding,
        position_embedding=P.embedding_params(model.max_position_embeddings, h) if learned else 0,
        embedding_norm=P.norm_params(h, model.norm_bias) if model.embedding_norm else 0,
        attention=P.attention_params(
            h, model.num_heads, model.num_kv_heads, model.head_dim, model.qkv_bias, model.out_bias
        ),
        mlp=mlp,
        norm=2 * P.norm_params(h, model.norm_bias),
        num_layers=model.num_layers,
        final_norm=P.norm_params(h, model.norm_bias),
        lm_head=0 if model.tied_embeddings else embedding,
    )
