"""Parameter counts against what HF Transformers instantiates (tests/fixtures/*param_counts*)."""

import pytest
import yaml

from planner.counts import count_params
from planner.specs import ModelSpec

from conftest import EXAMPLES, fixture, reference_model

SHARED = fixture("reference/param_counts.json")
EXTRA = fixture("extra_param_counts.json")["counts"]


@pytest.mark.parametrize("ref", SHARED, ids=lambda r: r["config"])
def test_components_equal_transformers(ref):
    counts = count_params(reference_model(ref["config"]))
    assert counts.total == ref["total_params"]
    assert counts.embedding == ref["embedding_params"]
    assert counts.position_embedding == ref["position_embedding_params"]
    assert counts.lm_head == ref["lm_head_params"]
    assert counts.final_norm == ref["final_norm_params"]
    assert counts.num_layers == ref["layers"]
    assert counts.attention == ref["per_layer"]["attention"]
    assert counts.mlp == ref["per_layer"]["mlp"]
    assert counts.norm == ref["per_layer"]["norm"]


@pytest.mark.parametrize("ref", EXTRA, ids=lambda r: r["example"])
def test_other_families_equal_transformers(ref):
    path = EXAMPLES.parent / ref["example"]
    model = ModelSpec.from_hf_config(yaml.safe_load(path.read_text()), path.stem)
    counts = count_params(model)
    assert counts.total == ref["total_params"]
    assert counts.per_layer == ref["per_layer"]  # first layer (dense in DeepSeek-V3)
    assert counts.last_layer == ref["last_layer"]  # last layer (MoE in MoE models)
