"""Valid tensor and sequence parallelism (issue 10 item 6), checked against what Megatron-LM itself
builds and runs.

``tests/fixtures/megatron_arguments.json`` ``tp_probes``: for bundled models and tp 1 to 16,
whether Megatron-LM (the commit it names) accepts the arguments and builds a decoder layer on rank 0
of tp ranks (``scripts/megatron_args_reference.py`` ``tp_probes``); ``sequence_probes``: for two
models, some sequence lengths, tp and cp, with sequence parallelism on and off, whether it accepts
the arguments and runs the context-parallel split and the embedding's sequence-parallel split;
``offload_probes``: activation offload beside each recompute mode and with pipelining, whether it
builds the ``TransformerConfig``."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.capability import reasons_within, unsupported_reasons
from planner.emit_megatron import megatron_args
from planner.io import load_model
from planner.layout import LAYOUT_MESH
from planner.rules import nvlink_tp_reason, sequence_parallel_reasons, tensor_parallel_reasons, valid_cp
from planner.space import LAYOUT_FIELDS, Pins, build_space
from planner.specs import Framework, ParallelConfig, Recompute, TrainingSpec

from conftest import fixture

PROBES = fixture("megatron_arguments.json")["tp_probes"]
SEQUENCE_PROBES = fixture("megatron_arguments.json")["sequence_probes"]


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


def planner_runs_sequence(model, seq_len: int, tp: int, cp: int, sequence_parallel: bool) -> bool:
    """The cp the planner searches for this sequence, and a layout Megatron's capability rules accept."""
    training = TrainingSpec(seq_len=seq_len, global_batch_size=64)
    config = ParallelConfig(tp=tp, cp=cp, pp=1, dp=1, sequence_parallel=sequence_parallel)
    return cp in valid_cp(seq_len) and not reasons_within(
        LAYOUT_MESH, Framework.MEGATRON, model, training, config
    )


@pytest.mark.parametrize(
    "probe",
    SEQUENCE_PROBES,
    ids=lambda p: f"{p['model']}-s{p['seq_len']}-tp{p['tp']}-cp{p['cp']}-sp{int(p['sequence_parallel'])}",
)
def test_sequence_and_context_splits_agree_with_megatron(probe):
    """Every (sequence length, tp, cp, sequence parallelism) the planner accepts Megatron runs, and
    every one Megatron refuses the planner refuses."""
    model = load_model(probe["model"])
    ours = planner_runs_sequence(
        model, probe["seq_len"], probe["tp"], probe["cp"], probe["sequence_parallel"]
    )
    assert ours == probe["accepted"], probe.get("error")


def test_the_sequence_probes_exercise_both_rules():
    """Megatron refused a cp for 2*cp not dividing the sequence (validate_args) and a tp for not
    dividing the tokens per cp rank though it divides the sequence (the embedding's split), and
    accepted splits that tp * 2cp does not divide (torchtitan's stricter rule is not Megatron's)."""
    by_key = {
        (p["model"], p["seq_len"], p["tp"], p["cp"], p["sequence_parallel"]): p for p in SEQUENCE_PROBES
    }
    assert "2 * context-parallel-size" in by_key["llama3-8b", 4100, 2, 3, True]["error"]
    refused = by_key["llama3-8b", 4100, 4, 2, True]  # 4100 / 4 is whole, 2050 / 4 is not
    assert not refused["accepted"] and "divisible by tensor parallel size" in refused["error"]
    assert by_key["llama3-8b", 4100, 4, 2, False]["accepted"]  # without sequence parallelism
    assert by_key["gpt3-175b", 2052, 2, 2, True]["accepted"] and 2052 % (2 * 2 * 2)
    assert not by_key["gpt3-175b", 2048, 3, 1, True]["accepted"]  # learned positions: the split path


def test_no_searched_layout_splits_a_sequence_megatron_cannot():
    """GPT-3 on an NVL72 rack (tp 3, 6, 12, 24 divide its 96 heads and the 72-GPU domain) at 2048
    tokens: with sequence parallelism only the tp that divide 2048 are searched; with
    --no-sequence-parallel the others come back."""
    model, training = load_model("gpt3-175b"), TrainingSpec(seq_len=2048, global_batch_size=576)
    on = {layout[0] for layout in build_space(model, training, 72, Pins(), 72).layouts}
    off = {
        layout[0] for layout in build_space(model, training, 72, Pins(sequence_parallel=False), 72).layouts
    }
    assert on == {1, 2, 4, 8} and {3, 6, 12, 24} <= off
    for layout in build_space(model, training, 72, Pins(), 72).layouts:
        mesh = dict(zip(LAYOUT_FIELDS, layout, strict=True))
        assert not sequence_parallel_reasons(training.seq_len, mesh["tp"], mesh["cp"])


OFFLOAD_PROBES = fixture("megatron_arguments.json")["offload_probes"]


@pytest.mark.parametrize("probe", OFFLOAD_PROBES, ids=lambda p: f"pp{p['pp']}-{p['recompute']}")
def test_activation_offload_verdicts_agree_with_megatrons_transformer_config(probe):
    """Megatron-Core refuses CPU activation offloading with pipelining and beside any recompute
    granularity, selective included (``TransformerConfig.__post_init__``): the planner refuses the
    same, and emits exactly the arguments Megatron judged."""
    model = load_model(probe["model"])
    training = TrainingSpec(seq_len=4096, global_batch_size=64)
    config = ParallelConfig(
        tp=1,
        pp=probe["pp"],
        dp=probe["gpus"] // probe["pp"],
        activation_offload=True,
        recompute=Recompute(probe["recompute"]),
    )
    assert megatron_args(model, training, config).content == probe["args"]
    refused = unsupported_reasons(Framework.MEGATRON, model, training, config)
    assert (not refused) is probe["accepted"], (refused, probe.get("error"))
