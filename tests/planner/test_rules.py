"""Valid tensor parallelism (issue 10 item 6), checked against what Megatron-LM itself builds.

``tests/fixtures/megatron_arguments.json`` ``tp_probes``: for bundled models and tp 1 to 16,
whether Megatron-LM (the commit it names) accepts the arguments and builds a decoder layer on rank 0
of tp ranks (``scripts/megatron_args_reference.py`` ``tp_probes``)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.io import load_model
from planner.rules import nvlink_tp_reason, tensor_parallel_reasons
from planner.space import LAYOUT_FIELDS, Pins, build_space
from planner.specs import TrainingSpec

from conftest import fixture

PROBES = fixture("megatron_arguments.json")["tp_probes"]


def planner_accepts(model, tp: int) -> bool:
    """tp on its own (pp, cp, dp 1; an MoE model's experts whole, expert tensor parallelism 1)."""
    return not tensor_parallel_reasons(model, tp)


def kv_heads_replicated(model, tp: int) -> bool:
    """Megatron runs tp a multiple of the KV heads by replicating them; the planner keeps tp
    dividing the KV heads (its memory model splits them), so it refuses these on purpose."""
    return tp > model.num_kv_heads and tp % model.num_kv_heads == 0


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: f"{p['model']}-tp{p['tp']}")
def test_tp_verdicts_agree_with_megatrons_model_build(probe):
    model = load_model(probe["model"])
    ours = planner_accepts(model, probe["tp"])
    if ours:
        assert probe["accepted"], probe.get("error")
    elif probe["accepted"]:
        assert kv_heads_replicated(model, probe["tp"]), tensor_parallel_reasons(model, probe["tp"])


def test_the_probes_exercise_every_rule():
    """Megatron refused a tp for its heads, for its MLP width alone, and accepted replicated KV heads."""
    errors = [p.get("error", "") for p in PROBES if not p["accepted"]]
    assert any("num_attention_heads" in e for e in errors)
    assert any("not divisible by" in e for e in errors)  # a linear layer's divide()
    by_model = {(p["model"], p["tp"]): p for p in PROBES}
    assert by_model["llama2-13b", 5]["accepted"] is False  # 40 heads split, the 13824 FFN does not
    assert any(p["accepted"] and kv_heads_replicated(load_model(p["model"]), p["tp"]) for p in PROBES)


MODELS = ["llama2-13b", "llama3-70b", "mixtral-8x7b", "qwen3-30b-a3b", "gpt3-175b", "qwen1.5-moe-a2.7b"]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(MODELS),
    st.integers(min_value=1, max_value=300),
    st.sampled_from([4, 8, 72]),
)
def test_searched_tp_is_accepted_and_stays_in_an_nvlink_domain(name, gpus, domain):
    model = load_model(name)
    training = TrainingSpec(seq_len=4096, global_batch_size=gpus * 4)
    space = build_space(model, training, gpus, Pins(), domain)
    for layout in space.layouts:
        mesh = dict(zip(LAYOUT_FIELDS, layout, strict=True))
        assert planner_accepts(model, mesh["tp"])
        assert nvlink_tp_reason(mesh["tp"], domain) is None
        assert gpus % mesh["tp"] == 0


def test_inter_node_tp_is_searched_only_when_allowed():
    model, training = load_model("gpt3-175b"), TrainingSpec(seq_len=2048, global_batch_size=64)
    within = {layout[0] for layout in build_space(model, training, 64, Pins(), 8).layouts}
    allowed = {layout[0] for layout in build_space(model, training, 64, Pins(max_tp=64), 8).layouts}
    assert max(within) == 8 and 16 in allowed
