"""One-pass kernels for a batchnorm with batch statistics followed by a ReLU, the training engine's hot pair.

Why here: ``shards`` applies such a batchnorm itself (it needs the whole mini-batch's
statistics), so it can write the ReLU's output in the same pass, and on the way back
mask the gradient, sum it and turn it into the batchnorm's input gradient without
materialising the masked gradient (two passes over memory instead of five). Every
array is a ``[N, H, W, C]`` view, copied to C-contiguous rows first when it is not
(a convolution's output seen through a transpose already is); sums go per channel in float32 over 256 positions,
then in float64, with no reassociation (the channel loop is the vector loop), so a
shard's result does not depend on the thread that computes it. The kernels release
the GIL.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["bn_relu_forward", "relu_bn_grad_sums", "relu_bn_input_grad", "channel_sums"]


def _rows(a_nhwc: np.ndarray) -> np.ndarray:
    """``[N, H, W, C]`` as C-contiguous ``[N * H * W, C]`` (a view when it already is)."""
    return np.ascontiguousarray(a_nhwc, dtype=np.float32).reshape(-1, a_nhwc.shape[-1])


@numba.njit(cache=True, nogil=True, fastmath=True)
def _bn_relu(x, scale, shift, out):
    m, c = x.shape
    for i in range(m):
        for k in range(c):
            out[i, k] = max(x[i, k] * scale[k] + shift[k], np.float32(0))


def bn_relu_forward(x_nhwc: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``max(x * scale + shift, 0)`` per channel: a C-contiguous ``[N, H, W, C]`` array."""
    out = np.empty(x_nhwc.shape, dtype=np.float32)
    _bn_relu(_rows(x_nhwc), np.ascontiguousarray(scale, np.float32).reshape(-1),
             np.ascontiguousarray(shift, np.float32).reshape(-1), out.reshape(-1, out.shape[-1]))
    return out


@numba.njit(cache=True, nogil=True)
def _sums(g, y, x, masked):
    m, c = x.shape
    s1, s2 = np.zeros(c, np.float64), np.zeros(c, np.float64)
    b1, b2 = np.zeros(c, np.float32), np.zeros(c, np.float32)
    zero = np.float32(0)
    for i in range(m):
        if masked:
            for k in range(c):
                gv = g[i, k] if y[i, k] > zero else zero
                b1[k] += gv
                b2[k] += gv * x[i, k]
        else:
            for k in range(c):
                b1[k] += g[i, k]
                b2[k] += g[i, k] * x[i, k]
        if (i & 255) == 255:  # float32 over 256 rows, float64 across blocks
            for k in range(c):
                s1[k] += b1[k]
                s2[k] += b2[k]
                b1[k] = zero
                b2[k] = zero
    for k in range(c):
        s1[k] += b1[k]
        s2[k] += b2[k]
    return s1, s2


def relu_bn_grad_sums(g_nhwc, y_nhwc, x_nhwc) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(sum(g'), sum(g' * x))`` with ``g' = g * (y > 0)``, as float64."""
    return _sums(_rows(g_nhwc), _rows(y_nhwc), _rows(x_nhwc), True)


def channel_sums(a_nhwc, b_nhwc) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(sum(a), sum(a * b))``, as float64."""
    a = _rows(a_nhwc)
    return _sums(a, a, _rows(b_nhwc), False)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _input_grad(g, y, x, a, bb, cc, masked, out):
    m, c = x.shape
    zero = np.float32(0)
    if masked:
        for i in range(m):
            for k in range(c):
                gv = g[i, k] if y[i, k] > zero else zero
                out[i, k] = gv * a[k] + x[i, k] * bb[k] + cc[k]
    else:
        for i in range(m):
            for k in range(c):
                out[i, k] = g[i, k] * a[k] + x[i, k] * bb[k] + cc[k]


def relu_bn_input_grad(g_nhwc, y_nhwc, x_nhwc, a, b, c, *, masked: bool = True) -> np.ndarray:
    """``g' * a + x * b + c`` per channel (``g' = g * (y > 0)`` when ``masked``): C-contiguous ``[N, H, W, C]``."""
    out = np.empty(x_nhwc.shape, dtype=np.float32)
    f32 = np.float32
    _input_grad(_rows(g_nhwc), _rows(y_nhwc), _rows(x_nhwc), np.asarray(a, f32), np.asarray(b, f32),
                np.asarray(c, f32), masked, out.reshape(-1, out.shape[-1]))
    return out
