"""Hypothesis strategies: small random models, layouts and training runs."""

from hypothesis import strategies as st

from planner.specs import Framework, ModelSpec, NormType, PositionEncoding, Precision, Recompute, TrainingSpec


@st.composite
def models(draw) -> ModelSpec:
    heads = draw(st.sampled_from([4, 8, 16, 32]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, 8, 16, 32) if heads % k == 0]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    gpt = draw(st.booleans())
    return ModelSpec(
        name="random",
        family="gpt2" if gpt else "llama",
        num_layers=draw(st.sampled_from([2, 4, 6, 8, 12, 24])),
        hidden_size=heads * head_dim,
        num_heads=heads,
        num_kv_heads=heads if gpt else kv,
        head_dim=head_dim,
        ffn_hidden_size=64 * draw(st.integers(4, 200)),
        vocab_size=draw(st.integers(1000, 130000)),
        max_position_embeddings=4096,
        gated_mlp=not gpt,
        qkv_bias=gpt,
        out_bias=gpt,
        mlp_bias=gpt,
        norm=NormType.LAYERNORM if gpt else NormType.RMSNORM,
        norm_bias=gpt,
        positions=PositionEncoding.LEARNED if gpt else PositionEncoding.ROTARY,
        tied_embeddings=draw(st.booleans()),
        dropout=draw(st.sampled_from([0.0, 0.1])),
    )


@st.composite
def trainings(draw, global_batch: int | None = None) -> TrainingSpec:
    return TrainingSpec(
        seq_len=draw(st.sampled_from([128, 512, 1024, 2048, 4096])),
        global_batch_size=global_batch or draw(st.sampled_from([8, 16, 32, 64, 128])),
        precision=draw(st.sampled_from(list(Precision))),
        framework=draw(st.sampled_from(list(Framework))),
        flash_attention=draw(st.booleans()),
    )


recomputes = st.sampled_from(list(Recompute))
