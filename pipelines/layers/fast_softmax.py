"""``softmaxND`` at inference: one compiled pass per row when the axis is the last, contiguous one.

The attention softmax of a Transformer encoder runs over short rows (the zoo's: 2 048 rows of
32 per layer), where each of the reference's NumPy passes (max, subtract, exp, sum, divide,
copy) pays its per-row overhead. Here each row is one loop: the float32 ``x - max`` as the
reference takes it, ``exp`` of it in float64 arithmetic that LLVM vectorizes (numba has no
vector ``exp`` here): ``exp(t) = (Taylor_11(t / 256)) ** 256`` for ``-110 <= t <= 0``
(remainder below 1e-13 relative, eight squarings: below 1e-10), 0 below -110 (``e^-110`` is
under the smallest float32), then the float32 row sum and quotients. So every exponential is
the float32 rounding of ``exp(x - max)`` (or next to it), where NumPy's float32 ``exp`` is
within an ulp: results agree with the reference to a few float32 ulps, which
``test_fast_paths.py`` checks. Other axes and layouts keep the reference's operations, in
place in one array.
"""

from __future__ import annotations

import numba
import numpy as np

from .base import register_fast
from .common import nd_axis
from .normalization import SoftmaxND

__all__ = ["FastSoftmaxND", "softmax_rows"]


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _exp_nonpositive(t):
    """``exp(t)`` for float64 ``t <= 0`` (relative error below 1e-10; 0 below -110)."""
    s = max(t, -110.0) * (1.0 / 256.0)
    e = 1.0 + s * (1.0 + s * (1.0 / 2 + s * (1.0 / 6 + s * (1.0 / 24 + s * (1.0 / 120 + s * (
        1.0 / 720 + s * (1.0 / 5040 + s * (1.0 / 40320 + s * (1.0 / 362880 + s * (
            1.0 / 3628800 + s * (1.0 / 39916800)))))))))))
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    return 0.0 if t < -110.0 else e


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def softmax_rows(x, out):
    """Softmax of each row of ``x`` ``[R, L]`` (float32) into ``out``; False when some ``x - max`` is
    not a number (a NaN, or infinities: the caller then takes the reference's operations)."""
    rows, length = x.shape
    bad = 0
    for i in range(rows):
        m = x[i, 0]
        for j in range(1, length):
            v = x[i, j]
            m = v if v > m else m
        for j in range(length):
            t = np.float64(x[i, j] - m)
            bad |= not (t <= 0.0)
            out[i, j] = np.float32(_exp_nonpositive(t))
        total = np.float32(0.0)
        for j in range(length):
            total += out[i, j]
        for j in range(length):
            out[i, j] = out[i, j] / total
    return bad == 0


@register_fast("softmaxND")
class FastSoftmaxND(SoftmaxND):
    """``softmaxND``: the last axis of a C-ordered finite array through ``softmax_rows``; otherwise
    the reference's float32 operations in place in one array (the reference makes four arrays and a
    final copy)."""

    def forward(self, x):
        x = np.asarray(x, dtype=np.float32)
        axis = nd_axis(self.p.axis, x.ndim)
        if axis == x.ndim - 1 and x.flags.c_contiguous and x.size and x.shape[-1] > 0:
            out = np.empty_like(x)
            if softmax_rows(x.reshape(-1, x.shape[-1]), out.reshape(-1, x.shape[-1])):
                return (out,)  # else NaN or infinite inputs: the reference's rules below
        e = np.subtract(x, x.max(axis=axis, keepdims=True))
        np.exp(e, out=e)
        e /= e.sum(axis=axis, keepdims=True)
        return (e,)
