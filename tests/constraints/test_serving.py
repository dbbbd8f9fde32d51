"""KV cache bytes against what HF Transformers allocates for a static cache (CPU measurement)."""

import pytest

from constraints import serving as S

from conftest import fixture, reference_model

KV = fixture("kv_cache.json")["cases"]


@pytest.mark.parametrize("case", KV, ids=lambda c: f"{c['config']}-b{c['batch']}-{c['max_cache_len']}")
def test_kv_cache_equals_hf_static_cache(case):
    model = reference_model("configs/" + case["config"])
    tokens = S.cached_tokens(case["max_cache_len"], model.sliding_window)
    ours = S.kv_cache_bytes(
        case["batch"], tokens, model.num_kv_heads, model.head_dim, model.num_layers, case["bytes_per_element"]
    )
    assert ours == case["kv_cache_bytes"]


def test_sliding_window_caps_the_cache():
    mistral = next(c for c in KV if c["config"].startswith("mistral"))
    assert mistral["max_cache_len"] > mistral["sliding_window"]
    full = S.kv_cache_bytes(1, mistral["max_cache_len"], 8, 128, 32, 2)
    assert mistral["kv_cache_bytes"] == full * mistral["sliding_window"] / mistral["max_cache_len"]


def test_kv_heads_replicate_beyond_tp():
    assert [S.kv_heads_per_rank(8, t) for t in (1, 2, 4, 8, 16)] == [8, 4, 2, 1, 1]


def test_int4_carries_group_scales():
    assert S.quantized_weight_bytes_per_param(S.NumberFormat.INT4) == pytest.approx(0.5 + 2 / 128)
    assert S.quantized_weight_bytes_per_param(S.NumberFormat.FP8) == 1
