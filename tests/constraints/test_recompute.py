"""Partial recomputation: the block method's memory and FLOP share, and what each recomputed
module frees, as the terms of the per-layer activation formula it owns."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constraints.activations import Kernels, layer_activation_bytes
from constraints.recompute import (
    RecomputeModule,
    block_recompute_chunk_bytes,
    block_recompute_share,
    module_recompute_freed_bytes,
)
from constraints.units import Recompute

S, B, H, A, Q, K = 4096, 1, 4096, 32, 4096, 1024


def layer(f: int, *, flash: bool = True, recompute: Recompute = Recompute.NONE, sp: bool = True) -> float:
    return layer_activation_bytes(
        S,
        B,
        H,
        A,
        Q,
        K,
        f,
        gated=True,
        t=4,
        sequence_parallel=sp,
        flash=flash,
        dropout=False,
        recompute=recompute,
        e=2,
        kernels=Kernels.FUSED,
    )


def freed(module: RecomputeModule, *, f_dense=0.0, f_routed=0.0, f_shared=0.0, flash=True, sp=True) -> float:
    return module_recompute_freed_bytes(
        module,
        S,
        B,
        H,
        A,
        f_dense=f_dense,
        f_routed=f_routed,
        f_shared=f_shared,
        dispatch_bytes=0.0,
        gated=True,
        t=4,
        sequence_parallel=sp,
        flash=flash,
        dropout=False,
        e=2,
        kernels=Kernels.FUSED,
    )


@given(st.integers(1, 16), st.integers(0, 20))
def test_block_method_between_none_and_full(chunk, n):
    kept, recomputed = layer(14336), layer(14336, recompute=Recompute.FULL)
    total = block_recompute_chunk_bytes(chunk, n, recomputed, kept)
    assert chunk * recomputed <= total <= chunk * kept
    assert (total == chunk * recomputed) == (n >= chunk)
    assert block_recompute_share(chunk, n) == min(n, chunk) / chunk


def test_block_method_memory_falls_with_each_recomputed_layer():
    kept, recomputed = layer(14336), layer(14336, recompute=Recompute.FULL)
    sizes = [block_recompute_chunk_bytes(8, n, recomputed, kept) for n in range(9)]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 9


def test_mlp_recompute_frees_the_mlp_terms_of_the_layer():
    assert freed(RecomputeModule.MLP, f_dense=14336) == pytest.approx(layer(14336) - layer(0))
    assert freed(RecomputeModule.MOE, f_routed=2 * 14336) == pytest.approx(layer(2 * 14336) - layer(0))


def test_core_attention_recompute_frees_what_selective_recompute_frees():
    assert freed(RecomputeModule.CORE_ATTN, flash=False) == pytest.approx(
        layer(14336, flash=False) - layer(14336, flash=False, recompute=Recompute.SELECTIVE)
    )
    assert freed(RecomputeModule.CORE_ATTN, flash=True) == 0


def test_activation_recompute_frees_less_than_the_whole_experts():
    act, whole = (
        freed(RecomputeModule.MOE_ACT, f_routed=8 * 1536),
        freed(RecomputeModule.MOE, f_routed=8 * 1536),
    )
    assert 0 < act < whole


def test_layernorm_recompute_is_split_by_sequence_parallelism():
    assert freed(RecomputeModule.LAYERNORM, sp=False) == 4 * freed(RecomputeModule.LAYERNORM, sp=True)
