"""The vectorized exact GELU (``pipelines.layers._gelu_kernel``) against ``x Phi(x)`` through float64 ``erfc``.

Every float32 of whole binades (the far negative tail, where ``0.5 x (1 + erf)`` in float32
keeps no digit, around the switch of sign, near zero, and the large values) is compared in
units in the last place; the bound the module docstring proves is one ulp (the float64 value
is within 1e-10 relative, so the float32 result is the rounded exact value or next to it).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from pippin.pipelines.layers._gelu_kernel import gelu_exact


def _exact(x32: np.ndarray) -> np.ndarray:
    x = x32.astype(np.float64)
    e = special.erfc(np.abs(x) / np.sqrt(2.0))
    return np.where(x >= 0, x * (1.0 - 0.5 * e), 0.5 * x * e)


def _binade(lo: float) -> np.ndarray:
    """Every float32 in ``[lo, 2 lo)`` (``lo`` a power of two), 2**23 values."""
    start = np.float32(lo).view(np.uint32)
    return np.arange(start, start + (1 << 23), dtype=np.uint32).view(np.float32)


def _ulps(got: np.ndarray, want64: np.ndarray) -> np.ndarray:
    want32 = want64.astype(np.float32)
    ulp = np.spacing(np.abs(want32)).astype(np.float64)
    ulp = np.maximum(ulp, np.float64(np.finfo(np.float32).smallest_subnormal))
    return np.abs(got.astype(np.float64) - want64) / ulp


@pytest.mark.parametrize("lo", [4.0, 1.0, 2.0 ** -3, 2.0 ** -20])
@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_every_float32_of_a_binade_within_one_ulp(lo, sign):
    x = (np.float32(sign) * _binade(lo)).astype(np.float32)
    assert _ulps(gelu_exact(x), _exact(x)).max() <= 1.0


def test_wide_range_and_layouts():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 50, 41)) * 6).astype(np.float32)
    x[0, 0, :5] = [-14.0, -14.9, 14.9, -30.0, 1e30]
    got = gelu_exact(x)
    assert got.shape == x.shape and got.dtype == np.float32
    assert _ulps(got, _exact(x)).max() <= 1.0
    swapped = np.swapaxes(x, 0, 2)  # a non-contiguous view: same values per element
    assert np.array_equal(gelu_exact(swapped), np.swapaxes(got, 0, 2))


def test_special_values_as_the_reference_formula():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -20.0, 20.0, 3e38, -3e38], np.float32)
    got = gelu_exact(x)
    with np.errstate(invalid="ignore", over="ignore"):
        want = (0.5 * x * (1 + special.erf(x / np.float32(np.sqrt(2))))).astype(np.float32)
    assert np.isnan(got[0]) and np.isnan(want[0])
    assert got[1] == np.inf and np.isnan(got[2]) and np.isnan(want[2])
    np.testing.assert_array_equal(got[3:5], [0.0, 0.0])
    assert np.signbit(got[4]) and got[5] == 0.0 and got[6] == 20.0
    assert got[7] == np.float32(3e38) and got[8] == 0.0
