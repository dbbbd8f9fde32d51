"""Activation bytes against Korthikanti et al. 2022 Table 2 and against measured saved tensors."""

import pytest

from constraints import activations as A
from constraints.units import Recompute

from conftest import fixture, reference_model

# Korthikanti et al. 2022, Table 2: bytes per layer = s*b*h*(const + per_t/t + score * a*s/(h*t)).
TABLE2 = [
    # (row, sequence_parallel, recompute, const, per_t, score)
    ("tensor parallel (baseline)", False, Recompute.NONE, 10, 24, 5),
    ("tensor + sequence parallel", True, Recompute.NONE, 0, 34, 5),
    ("tensor parallel + selective recompute", False, Recompute.SELECTIVE, 10, 24, 0),
    ("tensor + sequence parallel + selective", True, Recompute.SELECTIVE, 0, 34, 0),
    ("full activation recompute", False, Recompute.FULL, 2, 0, 0),
]
# GPT shapes of the paper's Table 3 (22B, 175B, 530B, 1T) and tp = 1 (the "no parallelism" row).
SHAPES = [
    (2048, 4, 6144, 64, 8),
    (2048, 1, 12288, 96, 8),
    (2048, 1, 20480, 128, 8),
    (2048, 1, 25600, 160, 8),
    (2048, 2, 4096, 32, 1),
]


def gpt_layer(s, b, h, a, t, sp, recompute, flash=False):
    return A.layer_activation_bytes(
        s,
        b,
        h,
        a,
        h,
        h,
        4 * h,
        gated=False,
        t=t,
        sequence_parallel=sp,
        flash=flash,
        dropout=True,
        recompute=recompute,
        e=2,
        kernels=A.Kernels.FUSED,
    )


@pytest.mark.parametrize("row", TABLE2, ids=lambda r: r[0])
@pytest.mark.parametrize("shape", SHAPES)
def test_gpt_layer_equals_korthikanti_table2(row, shape):
    _, sp, recompute, const, per_t, score = row
    s, b, h, a, t = shape
    if sp and t == 1:
        pytest.skip("sequence parallelism needs tp > 1")
    paper = s * b * h * (const + per_t / t + score * a * s / (h * t))
    assert gpt_layer(s, b, h, a, t, sp, recompute) == pytest.approx(paper, rel=1e-12)


def test_no_parallelism_row():
    s, b, h, a = 2048, 1, 12288, 96
    paper = s * b * h * (34 + 5 * a * s / h)
    assert gpt_layer(s, b, h, a, 1, False, Recompute.NONE) == pytest.approx(paper, rel=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_flash_attention_removes_only_the_score_term(shape):
    s, b, h, a, t = shape
    paper_without_scores = s * b * h * (10 + 24 / t)
    flash = gpt_layer(s, b, h, a, t, False, Recompute.NONE, flash=True)
    lse = A.LSE_BYTES * a * s * b / t  # FlashAttention's fp32 log-sum-exp, one per row and head
    assert flash == pytest.approx(paper_without_scores + lse, rel=1e-12)


CPU = fixture("saved_tensors.json")["measurements"]


@pytest.mark.parametrize(
    "m", CPU, ids=lambda m: f"{m['config']}-{m['attn_implementation']}-{len(m['overrides'])}"
)
def test_layer_equals_saved_tensors_of_hf_layers_on_cpu(m):
    """What autograd saves in one HF decoder layer, within 1% (the rest: per-model RoPE tables)."""
    model = reference_model("configs/" + m["config"])
    overrides = m["overrides"]
    dropout = (
        model.dropout > 0
        if not overrides
        else max(overrides.get(k, 0.1) for k in ("attn_pdrop", "resid_pdrop")) > 0
    )
    kernels = A.Kernels.HF_EAGER if model.norm.value == "rmsnorm" else A.Kernels.FUSED
    ours = A.layer_activation_bytes(
        m["seq_len"],
        m["micro_batch"],
        model.hidden_size,
        model.num_heads,
        model.q_dim,
        model.kv_dim,
        model.ffn_hidden_size,
        gated=model.gated_mlp,
        t=1,
        sequence_parallel=False,
        flash=m["attn_implementation"] == "sdpa",
        dropout=dropout,
        recompute=Recompute.NONE,
        e=2,
        kernels=kernels,
        mask_bytes=2,
    )  # CPU dropout keeps masks in the activation dtype
    assert ours == pytest.approx(m["saved_bytes"], rel=0.01)


GPU = fixture("gpu_memory.json")["measurements"]
PAIRS = [
    (r4, r2)
    for r4 in GPU
    if r4["layers"] == 4
    for r2 in GPU
    if r2["layers"] == 2 and all(r2[k] == r4[k] for k in ("config", "seq_len", "micro_batch", "recompute"))
]


def hf_layer(m, model, recompute):
    return A.layer_activation_bytes(
        m["seq_len"],
        m["micro_batch"],
        model.hidden_size,
        model.num_heads,
        model.q_dim,
        model.kv_dim,
        model.ffn_hidden_size,
        gated=True,
        t=1,
        sequence_parallel=False,
        flash=True,
        dropout=False,
        recompute=recompute,
        e=2,
        kernels=A.Kernels.HF_EAGER,
    )


@pytest.mark.parametrize(
    "pair",
    PAIRS,
    ids=lambda p: f"{p[0]['config']}-s{p[0]['seq_len']}-b{p[0]['micro_batch']}-{p[0]['recompute']}",
)
def test_layer_equals_h100_measurement(pair):
    """Two extra layers add exactly two layers' kept activations (H100, bf16, SDPA flash)."""
    r4, r2 = pair
    model = reference_model("configs/" + r4["config"])
    measured = (r4["forward_kept_bytes"] - r2["forward_kept_bytes"]) / 2
    assert hf_layer(r4, model, Recompute(r4["recompute"])) == pytest.approx(measured, rel=0.01)


@pytest.mark.parametrize(
    "pair",
    PAIRS[:4],
    ids=lambda p: f"{p[0]['config']}-s{p[0]['seq_len']}-b{p[0]['micro_batch']}-{p[0]['recompute']}",
)
def test_output_and_embedding_equal_h100_measurement(pair):
    """What the forward keeps besides the layers: token ids, final norm, LM head input, logits."""
    r4, r2 = pair
    model = reference_model("configs/" + r4["config"])
    s, b = r2["seq_len"], r2["micro_batch"]
    per_layer = (r4["forward_kept_bytes"] - r2["forward_kept_bytes"]) / 2
    ends = r2["forward_kept_bytes"] - 2 * per_layer
    ours = (
        A.output_activation_bytes(
            s,
            b,
            model.hidden_size,
            model.vocab_size,
            t=1,
            sequence_parallel=False,
            e=2,
            kernels=A.Kernels.HF_EAGER,
        )
        + A.TOKEN_ID_BYTES * s * b
    )
    assert ours == pytest.approx(ends, rel=0.02)


def test_in_flight_microbatches_follow_1f1b():
    assert [A.in_flight_microbatches(4, stage, 8) for stage in range(4)] == [4, 3, 2, 1]
    assert A.in_flight_microbatches(8, 0, 3) == 3


@pytest.mark.parametrize(
    "row",
    GPU,
    ids=lambda r: f"{r['config']}-L{r['layers']}-s{r['seq_len']}-b{r['micro_batch']}-{r['recompute']}",
)
def test_loss_transient_equals_h100_forward_peak(row):
    """The forward peak minus what stays allocated after it is HF's fp32 copy of the logits."""
    model = reference_model("configs/" + row["config"])
    transient = row["forward_peak_bytes"] - row["states_bytes"] - row["forward_kept_bytes"]
    ours = A.loss_transient_bytes(
        row["seq_len"], row["micro_batch"], model.vocab_size, t=1, kernels=A.Kernels.HF_EAGER
    )
    assert ours == pytest.approx(transient, rel=0.01)
    assert (
        A.loss_transient_bytes(
            row["seq_len"], row["micro_batch"], model.vocab_size, t=1, kernels=A.Kernels.FUSED
        )
        == 0
    )
