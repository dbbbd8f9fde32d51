"""Serving answers: consistent with the memory they are derived from, and the worked examples."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constraints.serving import NumberFormat
from planner.hardware import preset
from planner.io import load_model
from planner.serving import (
    ServeSpec,
    choose_layout,
    max_batch,
    max_context,
    min_pp,
    min_tp,
    serve_document,
    serve_memory,
    valid_serving_tp,
)

H100 = preset("h100-80gb")


def test_worked_examples_gpt3_and_llama3_8b():
    """GPT-3 175B (MHA: 96 KV heads of 128) and Llama 3 8B (GQA: 8 KV heads of 128), 16-bit cache.

    GPT-3 at 2048 tokens: 2 * 2 * 2048 * 96 * 128 * 96 = 9.66e9 bytes; a formula written with the
    hidden size h = 12288 gives the same only because GPT-3 has as many KV heads as query heads.
    Llama 3 8B at 8192 tokens: 2 * 2 * 8192 * 8 * 128 * 32 = 1.07e9 bytes, 4x less than 4 * h * L
    per token would say."""
    gpt3 = serve_memory(load_model("gpt3-175b"), H100, ServeSpec(prompt_tokens=2048, generate_tokens=0))
    llama = serve_memory(load_model("llama3-8b"), H100, ServeSpec(prompt_tokens=8192, generate_tokens=0))
    assert gpt3.kv_cache == 2 * 2 * 2048 * 96 * 128 * 96 == 9_663_676_416
    assert llama.kv_cache == 2 * 2 * 8192 * 8 * 128 * 32 == 1_073_741_824
    assert llama.kv_cache * 4 == 2 * 2 * 8192 * 4096 * 32


def test_weights_follow_the_storage_format():
    model = load_model("llama3-70b")
    bf16 = serve_memory(model, H100, ServeSpec(tp=8)).weights
    int4 = serve_memory(model, H100, ServeSpec(tp=8, weights=NumberFormat.INT4)).weights
    assert bf16 == pytest.approx(70.55e9 * 2 / 8, rel=0.01)
    assert 0.25 < int4 / bf16 < 0.35  # linear layers at ~0.52 B, embeddings and head still 16-bit


@st.composite
def serving(draw):
    model = load_model(draw(st.sampled_from(["llama3-8b", "llama3-70b", "mistral-7b", "gpt3-175b"])))
    spec = ServeSpec(
        prompt_tokens=draw(st.integers(128, 65536)),
        generate_tokens=draw(st.integers(0, 4096)),
        batch=draw(st.integers(1, 64)),
        tp=draw(st.sampled_from(valid_serving_tp(model)[:5])),
        weights=draw(st.sampled_from(list(NumberFormat))),
        kv_cache=draw(st.sampled_from(list(NumberFormat))),
    )
    return model, spec


@settings(max_examples=60, deadline=None)
@given(serving())
def test_answers_agree_with_the_memory(case):
    model, spec = case
    b = max_batch(model, H100, spec)
    if b:
        assert serve_memory(model, H100, replace(spec, batch=b)).fits
    assert not serve_memory(model, H100, replace(spec, batch=b + 1)).fits
    c = max_context(model, H100, spec)
    more = serve_memory(model, H100, replace(spec, batch=spec.batch))
    assert more.total >= 0 and c >= 0
    t = min_tp(model, H100, spec)
    if t is not None:
        assert serve_memory(model, H100, replace(spec, tp=t)).fits
        for smaller in valid_serving_tp(model):
            if smaller < t:
                assert not serve_memory(model, H100, replace(spec, tp=smaller)).fits


@settings(max_examples=60, deadline=None)
@given(serving())
def test_memory_grows_with_batch_and_context_and_falls_with_tp(case):
    model, spec = case
    base = serve_memory(model, H100, spec).total
    assert serve_memory(model, H100, replace(spec, batch=spec.batch + 1)).total >= base
    assert serve_memory(model, H100, replace(spec, generate_tokens=spec.generate_tokens + 64)).total >= base
    wider = [t for t in valid_serving_tp(model) if t > spec.tp]
    if wider:
        assert serve_memory(model, H100, replace(spec, tp=wider[0])).total <= base


@settings(max_examples=40, deadline=None)
@given(serving(), st.sampled_from([1, 2, 4, 8]))
def test_default_layout_keeps_tp_within_a_node_and_finds_the_fewest_gpus(case, node):
    """tp never exceeds the node unless pinned; the smallest tp within a node that fits without
    pipeline stages; when none does, the fewest GPUs (tp x pp) that fit, checked against every
    smaller split."""
    model, spec = case
    hardware = replace(H100, gpus_per_node=node, nvlink_domain_gpus=node)
    layout = choose_layout(model, hardware, spec, None, None)
    assert layout.tp <= node
    split = min_pp(model, hardware, spec)
    fits = serve_memory(model, hardware, replace(spec, tp=layout.tp, pp=layout.pp)).fits
    assert fits == (split is not None)
    tp = min_tp(model, hardware, spec)
    if tp is not None:  # a split with fewer GPUs may fit too (tp 1 x pp 5 against tp 8): no stages
        assert (layout.tp, layout.pp) == (tp, 1)
    elif split is not None:
        assert layout.tp * layout.pp == split[0] * split[1]
        for t in (t for t in valid_serving_tp(model) if t <= node):
            for p in (p for p in range(1, model.num_layers + 1) if model.num_layers % p == 0):
                if t * p < split[0] * split[1]:
                    assert not serve_memory(model, hardware, replace(spec, tp=t, pp=p)).fits


def test_405b_on_one_node_suggests_pipeline_stages_and_pinned_cross_node_tp_is_noted():
    """Llama 3.1 405B in bf16 needs ~810 GB of weights: no tp within 8 H100s holds it, so the
    answer splits the layers over pipeline stages; tp 16 is used only when pinned, with a note."""
    model = load_model("llama3.1-405b")
    spec = ServeSpec(prompt_tokens=7680, generate_tokens=512)
    assert min_tp(model, H100, spec) is None
    layout = choose_layout(model, H100, spec, None, None)
    assert layout.pp > 1 and layout.tp <= 8 and layout.notes
    doc = serve_document(model, H100, replace(spec, tp=layout.tp, pp=layout.pp), layout.notes)
    assert doc["status"] == "fits" and doc["min_pp"]["pp"] == layout.pp
    pinned = choose_layout(model, H100, spec, 16, None)
    assert pinned.tp == 16 and "spans 2 NVLink domains" in pinned.notes[0]
