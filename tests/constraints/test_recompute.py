"""Partial recomputation against what autograd really keeps (``tests/fixtures/
saved_tensors_recompute.json``: a Megatron-like layer under PyTorch's re-entrant checkpoint, as
Megatron-Core checkpoints its modules and the block method's layers; ``tests/fixtures/
megatron_mla_up_proj.json``: Megatron-Core's own multi-head latent attention with and without
``mla_up_proj``), and the facts read in Megatron-Core's code that the formulas encode."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constraints.activations import Kernels, layer_activation_bytes
from constraints.recompute import (
    RecomputeModule,
    block_recompute_chunk_bytes,
    block_recompute_share,
    effective_modules,
    mla_qkv_width,
    module_recompute_freed_bytes,
    modules_recompute_forward_s,
)
from constraints.units import Recompute

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "saved_tensors_recompute.json").read_text())
SHAPE = FIXTURE["shape"]
S, B, H, A, F = SHAPE["seq_len"], SHAPE["micro_batch"], SHAPE["hidden"], SHAPE["heads"], SHAPE["ffn"]
MEASURED = FIXTURE["one_layer_saved_bytes"]
BF16 = 2
# What the measured layer keeps that the formulas leave out as negligible: the fused RMSNorm's fp32
# inverse RMS per token (4 bytes per row of s*b), once per norm.
RSTD_BYTES = 4 * S * B
COMMON = dict(gated=True, t=1, sequence_parallel=False, dropout=False, e=BF16, kernels=Kernels.FUSED)


def layer(recompute: Recompute, *, flash: bool = False, **overrides) -> float:
    return layer_activation_bytes(
        S, B, H, A, H, H, F, recompute=recompute, flash=flash, **(COMMON | overrides)
    )


def freed(module: RecomputeModule, *, flash: bool = False, separate_norms: int = 0, **overrides) -> float:
    widths = dict(f_dense=F, f_routed=0.0, f_shared=0.0, dispatch_bytes=0.0) | overrides
    kwargs = COMMON | {k: v for k, v in widths.items() if k in COMMON}
    widths = {k: v for k, v in widths.items() if k not in COMMON}
    return module_recompute_freed_bytes(
        module, S, B, H, A, separate_norms=separate_norms, flash=flash, **widths, **kwargs
    )


def test_the_measured_layer_is_the_formulas_layer():
    """The reference layer keeps what ``layer_activation_bytes`` counts (two norms' rstd aside),
    and a checkpointed layer only its input."""
    assert MEASURED["none"] == pytest.approx(layer(Recompute.NONE) + 2 * RSTD_BYTES, abs=0)
    assert MEASURED["full"] == layer(Recompute.FULL)


def test_core_attention_recompute_frees_the_softmax_output():
    assert MEASURED["none"] - MEASURED["core_attn"] == freed(RecomputeModule.CORE_ATTN)


def test_mlp_recompute_frees_the_fused_norm_output_and_the_mlp_internals():
    """Checkpointing a Transformer Engine MLP (norm fused into fc1) frees the norm's output as well
    as fc1's output and the SwiGLU output; its input stays as the checkpoint's input."""
    assert MEASURED["none"] - MEASURED["mlp"] == freed(RecomputeModule.MLP) + RSTD_BYTES


def test_module_savings_add_up():
    both = MEASURED["none"] - MEASURED["core_attn,mlp"]
    assert both == freed(RecomputeModule.CORE_ATTN) + freed(RecomputeModule.MLP) + RSTD_BYTES


@pytest.mark.parametrize("n", range(SHAPE["chunk_layers"] + 1))
def test_block_method_keeps_the_inputs_of_its_n_layers_and_everything_of_the_rest(n):
    chunk = SHAPE["chunk_layers"]
    measured = FIXTURE["block_method_saved_bytes"][str(n)]
    assert measured == block_recompute_chunk_bytes(chunk, n, MEASURED["full"], MEASURED["none"])


@given(st.integers(1, 16), st.integers(0, 20))
def test_block_method_between_none_and_full(chunk, n):
    kept, recomputed = layer(Recompute.NONE), layer(Recompute.FULL)
    total = block_recompute_chunk_bytes(chunk, n, recomputed, kept)
    assert chunk * recomputed <= total <= chunk * kept
    assert (total == chunk * recomputed) == (n >= chunk)
    assert (total == chunk * kept) == (n == 0)
    assert block_recompute_share(chunk, n) == min(n, chunk) / chunk


def test_flash_attention_keeps_no_scores_to_recompute():
    assert freed(RecomputeModule.CORE_ATTN, flash=True) == 0


def test_layernorm_recompute_acts_only_on_norms_of_their_own():
    """Transformer Engine's spec fuses a dense layer's norms into the next linear layer
    (``IdentityOp`` norms: ``TransformerLayer`` leaves ``recompute_input_layernorm`` off); an MoE
    layer's pre-MLP norm is its own module, its output the router's input."""
    assert freed(RecomputeModule.LAYERNORM, separate_norms=0) == 0
    one = freed(RecomputeModule.LAYERNORM, separate_norms=1)
    assert one == BF16 * S * B * H
    split = freed(RecomputeModule.LAYERNORM, separate_norms=1, t=4, sequence_parallel=True)
    assert split == one / 4


def test_moe_modules_nest():
    """``moe`` checkpoints the whole MoE layer, which holds the activation ``moe_act`` drops and the
    shared experts: counted once."""
    kwargs = dict(f_dense=0.0, f_routed=8 * 1536.0, f_shared=2048.0, dispatch_bytes=1e6)
    act, shared, whole = (
        freed(m, **kwargs)
        for m in (RecomputeModule.MOE_ACT, RecomputeModule.SHARED_EXPERTS, RecomputeModule.MOE)
    )
    assert 0 < act < whole and 0 < shared < whole
    assert effective_modules(
        [RecomputeModule.MOE, RecomputeModule.MOE_ACT, RecomputeModule.SHARED_EXPERTS]
    ) == (RecomputeModule.MOE,)
    assert effective_modules([]) == (RecomputeModule.CORE_ATTN,)  # Megatron's default


def test_recompute_time_is_the_forward_of_the_modules_rerun():
    times = dict(
        attention_core_s=1.0,
        norms_s=0.1,
        dense_mlp_s=3.0,
        expert_activation_s=0.2,
        moe_s=5.0,
        shared_experts_s=0.5,
    )
    assert modules_recompute_forward_s([], **times) == 1.0
    assert modules_recompute_forward_s(
        [RecomputeModule.LAYERNORM, RecomputeModule.MOE_ACT], **times
    ) == pytest.approx(0.3)
    assert modules_recompute_forward_s([RecomputeModule.MOE, RecomputeModule.SHARED_EXPERTS], **times) == 5.0


MLA = json.loads((Path(__file__).parents[1] / "fixtures" / "megatron_mla_up_proj.json").read_text())
MLA_ROWS = {(r["tp"], r["sequence_parallel"], bool(r["recompute_modules"])): r for r in MLA["rows"]}
# DeepSeek-V3 (the fixture's model): 128 heads, query rank 1536, key/value rank 512, nope 128,
# rope 64, v 128 (examples/deepseek-v3.yaml, the config DeepSeek published).
MLA_HEADS, Q_LORA, KV_LORA, NOPE, ROPE, V = 128, 1536, 512, 128, 64, 128


def mla_freed(
    t: int, sequence_parallel: bool, *, qkv: bool = False, latent: bool = False, rope: bool = False
):
    """One term of ``mla_up_proj``'s freed bytes for the fixture's sequence (the others zeroed)."""
    return module_recompute_freed_bytes(
        RecomputeModule.MLA_UP_PROJ,
        MLA["seq_len"],
        MLA["micro_batch"],
        7168,
        MLA_HEADS,
        **(COMMON | {"t": t, "sequence_parallel": sequence_parallel}),
        f_dense=0.0,
        f_routed=0.0,
        f_shared=0.0,
        dispatch_bytes=0.0,
        separate_norms=0,
        flash=True,
        mla_qkv_width=mla_qkv_width(MLA_HEADS, NOPE, ROPE, V) if qkv else 0,
        mla_latent_width=Q_LORA + KV_LORA if latent else 0,
        mla_rope_dim=ROPE if rope else 0,
    )


@pytest.mark.parametrize("key", [k for k in MLA_ROWS if k[2]], ids=lambda k: f"tp{k[0]}-sp{int(k[1])}")
def test_mla_up_proj_frees_what_megatron_releases(key):
    """Megatron-Core's own MLASelfAttention with ``--recompute-modules mla_up_proj``
    (``scripts/megatron_mla_up_proj.py``): the storages its CheckpointWithoutOutput releases after
    the attention core are exactly the query, key and value term; the up-projections' inputs (their
    fused norms' outputs) that the layer keeps without it are the latent term; under sequence
    parallelism the gathered rotary key the checkpoint keeps is the one term subtracted."""
    t, sp, _ = key
    with_up, without = MLA_ROWS[key], MLA_ROWS[t, sp, False]
    released = sum(x["bytes"] for x in with_up["saved_tensors"] if x["bytes_held"] == 0)
    assert released == mla_freed(t, sp, qkv=True) > 0
    latent_inputs = sum(
        x["bytes"]
        for x in without["saved_tensors"]
        if x["dtype"] == "bfloat16" and len(x["shape"]) == 3 and x["shape"][-1] in (Q_LORA, KV_LORA)
    )
    assert latent_inputs == mla_freed(t, sp, latent=True)
    rotary_key = [
        x for x in with_up["saved_tensors"] if x["shape"] == [MLA["seq_len"], MLA["micro_batch"], ROPE]
    ]
    assert sum(x["bytes"] for x in rotary_key) == -mla_freed(t, sp, rope=True)
    assert bool(rotary_key) == sp
