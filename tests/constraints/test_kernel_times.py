"""Kernel times: the roofline's two regimes, attention's causal discount and saturation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constraints import kernel_times as K
from constraints.kernels import gemm_flops

H100_BF16_FLOPS, H100_HBM_BYTES_PER_S = 989e12, 3.35e12  # NVIDIA H100 SXM datasheet

sizes = st.integers(1, 1 << 15)


@settings(max_examples=200, deadline=None)
@given(sizes, sizes, sizes, st.floats(0.1, 1.0))
def test_gemm_is_never_faster_than_either_roof(m, n, k, efficiency):
    t = K.gemm_s(m, n, k, H100_BF16_FLOPS, efficiency, H100_HBM_BYTES_PER_S)
    assert t >= gemm_flops(m, n, k) / (H100_BF16_FLOPS * efficiency) * (1 - 1e-12)
    assert t >= K.gemm_bytes(m, n, k, 2, 2) / H100_HBM_BYTES_PER_S * (1 - 1e-12)


def test_narrow_products_are_memory_bound_and_wide_ones_compute_bound():
    """One token through an 8192x8192 weight reads the whole weight; 8192 tokens reuse it."""
    narrow = K.gemm_s(1, 8192, 8192, H100_BF16_FLOPS, 0.7, H100_HBM_BYTES_PER_S)
    assert narrow == pytest.approx(K.gemm_bytes(1, 8192, 8192, 2, 2) / H100_HBM_BYTES_PER_S)
    wide = K.gemm_s(8192, 8192, 8192, H100_BF16_FLOPS, 0.7, H100_HBM_BYTES_PER_S)
    assert wide == pytest.approx(gemm_flops(8192, 8192, 8192) / (H100_BF16_FLOPS * 0.7))


def test_attention_efficiency_rises_with_the_sequence_and_stays_below_its_maximum():
    seqs = np.array([128, 512, 2048, 8192, 131072])
    eff = K.attention_efficiency(seqs, 0.6, 512)
    assert np.all(np.diff(eff) > 0) and np.all(eff < 0.6)


def test_element_wise_maximum_matches_numpy():
    x, y = np.array([1.0, 5.0, 3.0]), np.array([2.0, 4.0, 3.0])
    assert np.array_equal(K.gemm_s(x, 1.0, 1.0, 1.0, 1.0, 1e30), gemm_flops(x, 1.0, 1.0))
    assert np.array_equal(K._maximum(x, y), np.maximum(x, y))
