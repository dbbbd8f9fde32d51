"""FLOP counts against Narayanan et al. 2021 (SC21), Appendix: per iteration
``72*B*s*l*h^2*(1 + s/(6h) + V/(12*l*h))`` without recompute, ``96*B*s*l*h^2*(1 + s/(6h) + V/(16*l*h))``
with full recompute, for GPT with an MLP of 4h."""

import pytest

from planner.performance import step_flops_per_token
from planner.specs import ModelSpec, NormType, PositionEncoding, Recompute

# (layers, hidden, heads, seq, vocab): SC21 Table 1 rows (1.7B, 175B, 1T)
SHAPES = [(24, 2304, 24, 2048, 51200), (96, 12288, 96, 2048, 51200), (128, 25600, 160, 2048, 51200)]


def gpt(layers, h, a, v):
    return ModelSpec(
        name="gpt",
        family="gpt2",
        num_layers=layers,
        hidden_size=h,
        num_heads=a,
        num_kv_heads=a,
        head_dim=h // a,
        ffn_hidden_size=4 * h,
        vocab_size=v,
        max_position_embeddings=2048,
        gated_mlp=False,
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        norm=NormType.LAYERNORM,
        norm_bias=True,
        positions=PositionEncoding.LEARNED,
        tied_embeddings=True,
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_model_and_hardware_flops_equal_sc21(shape):
    layers, h, a, s, v = shape
    flops = step_flops_per_token(gpt(layers, h, a, v), s, Recompute.FULL)
    paper_model = 72 * s * layers * h**2 * (1 + s / (6 * h) + v / (12 * layers * h)) / s
    paper_hardware = 96 * s * layers * h**2 * (1 + s / (6 * h) + v / (16 * layers * h)) / s
    assert flops.model == pytest.approx(paper_model, rel=1e-12)
    assert flops.hardware == pytest.approx(paper_hardware, rel=1e-12)
