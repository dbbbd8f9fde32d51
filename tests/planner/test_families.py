"""Model files: every family's keys, and one-line errors for bad files."""

import pytest

from planner.errors import PlannerError
from planner.specs import ModelSpec, NormType, PositionEncoding

LLAMA = {
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "vocab_size": 128256,
}


def read(**changes):
    return ModelSpec.from_hf_config({**LLAMA, **changes}, "m", "model.yaml")


def test_llama_keys():
    m = read()
    assert (m.num_kv_heads, m.head_dim, m.gated_mlp, m.norm, m.positions) == (
        8,
        128,
        True,
        NormType.RMSNORM,
        PositionEncoding.ROTARY,
    )
    assert not m.tied_embeddings and not m.qkv_bias


def test_explicit_head_dim_is_respected():
    assert read(head_dim=64).q_dim == 32 * 64


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"model_type": "t5"}, "model_type 't5' is not supported"),
        ({"hidden_size": None}, "missing key 'hidden_size'"),
        ({"hidden_size": "4k"}, "'hidden_size' must be a positive integer"),
        ({"num_hidden_layers": 0}, "'num_hidden_layers' must be a positive integer"),
        ({"vocab_size": -5}, "'vocab_size' must be a positive integer"),
        ({"num_attention_heads": 30}, "num_attention_heads (30) must divide hidden_size (4096)"),
        ({"num_key_value_heads": 5}, "num_key_value_heads (5) must divide num_attention_heads (32)"),
        ({"tie_word_embeddings": "yes"}, "'tie_word_embeddings' must be true or false"),
    ],
)
def test_bad_keys_name_the_file_and_key(changes, fragment):
    with pytest.raises(PlannerError) as err:
        read(**changes)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_non_mapping_is_rejected():
    with pytest.raises(PlannerError, match="expected a mapping"):
        ModelSpec.from_hf_config([1, 2], "m", "model.yaml")  # type: ignore[arg-type]


def test_mixtral_reads_experts():
    m = read(model_type="mixtral", num_local_experts=8, num_experts_per_tok=2)
    assert (m.num_experts, m.num_experts_per_token, m.is_moe) == (8, 2, True)
