"""One-pass kernels for a batchnorm with batch statistics followed by a ReLU, the training engine's hot pair.

Why here: ``shards`` applies such a batchnorm itself (it needs the whole mini-batch's
statistics), so it can write the ReLU's output in the same pass, and on the way back
mask the gradient, sum it and turn it into the batchnorm's input gradient without
materialising the masked gradient (two passes over memory instead of five). When the ReLU
feeds only a 2x2/stride-2 max pooling, that pooling joins the pass too (``bn_relu_pool_forward``
and the ``pool_relu_bn_*`` gradients): the ReLU output and the full-size gradient of the
pooling's input are never written. Every
array is a ``[N, H, W, C]`` view, copied to C-contiguous rows first when it is not
(a convolution's output seen through a transpose already is); sums go per channel in float32 over 256 positions,
then in float64, with no reassociation (the channel loop is the vector loop), so a
shard's result does not depend on the thread that computes it. The kernels release
the GIL.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["bn_relu_forward", "relu_bn_grad_sums", "relu_bn_input_grad", "channel_sums", "bn_relu_pool_forward",
           "pool_relu_bn_grad_sums", "pool_relu_bn_input_grad"]


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


@numba.njit(cache=True, nogil=True, fastmath=True)
def _bn_relu_pool(x, scale, shift, out, idx, picked):
    n, h, w, c = x.shape
    zero = np.float32(0)
    for b in range(n):
        for i in range(h // 2):
            for j in range(w // 2):
                for k in range(c):
                    s, t = scale[k], shift[k]
                    x0 = x[b, 2 * i, 2 * j, k]
                    best, arg, xb = x0 * s + t, 0, x0
                    x1 = x[b, 2 * i, 2 * j + 1, k]
                    v = x1 * s + t
                    if v > best:
                        best, arg, xb = v, 1, x1
                    x2 = x[b, 2 * i + 1, 2 * j, k]
                    v = x2 * s + t
                    if v > best:
                        best, arg, xb = v, 2, x2
                    x3 = x[b, 2 * i + 1, 2 * j + 1, k]
                    v = x3 * s + t
                    if v > best:
                        best, arg, xb = v, 3, x3
                    out[b, i, j, k] = max(best, zero)
                    idx[b, i, j, k] = arg
                    picked[b, i, j, k] = xb


def bn_relu_pool_forward(x_nhwc: np.ndarray, scale: np.ndarray, shift: np.ndarray):
    """2x2/stride-2 max pooling of ``max(x * scale + shift, 0)`` (even H, W): ``(pooled, argmax in 0..3,
    x at the argmax)``, C-contiguous ``[N, H/2, W/2, C]``; the ReLU output itself is never written.

    The argmax is the first maximum of ``x * scale + shift``; where that maximum is positive it is
    the first maximum of the ReLU output too (the pooling layer's rule), and where it is not the
    pooled value is 0 and no gradient passes, whichever position is named.
    """
    n, h, w, c = x_nhwc.shape
    out = np.empty((n, h // 2, w // 2, c), dtype=np.float32)
    idx = np.empty((n, h // 2, w // 2, c), dtype=np.uint8)
    picked = np.empty_like(out)
    _bn_relu_pool(_contiguous(x_nhwc), _contiguous(scale).reshape(-1), _contiguous(shift).reshape(-1),
                  out, idx, picked)
    return out, idx, picked


def pool_relu_bn_grad_sums(gp_nhwc, pooled, picked) -> tuple[np.ndarray, np.ndarray]:
    """``relu_bn_grad_sums`` behind a fused 2x2 max pooling: the gradient ``gp`` of the pooled output
    reaches the argmax position of each window (whose input is ``picked``) where the pooled value is
    positive, nowhere else: the same sums over the pooled positions only."""
    return _sums(_rows(gp_nhwc), _rows(pooled), _rows(picked), True)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _pool_input_grad(gp, pooled, idx, x, a, bb, cc, out):
    n, ho, wo, c = gp.shape
    zero = np.float32(0)
    for b in range(n):
        for i in range(ho):
            for di in range(2):
                r = 2 * i + di
                for j in range(wo):
                    for dj in range(2):
                        q, t = 2 * j + dj, 2 * di + dj
                        for k in range(c):
                            hit = (pooled[b, i, j, k] > zero) & (idx[b, i, j, k] == t)
                            gv = gp[b, i, j, k] if hit else zero
                            out[b, r, q, k] = gv * a[k] + x[b, r, q, k] * bb[k] + cc[k]


def pool_relu_bn_input_grad(gp_nhwc, pooled, idx, x_nhwc, a, b, c) -> np.ndarray:
    """``relu_bn_input_grad`` behind a fused 2x2 max pooling (see ``pool_relu_bn_grad_sums``): C-contiguous
    ``[N, H, W, C]``."""
    x = _contiguous(x_nhwc)
    out = np.empty(x.shape, dtype=np.float32)
    f32 = np.float32
    _pool_input_grad(_contiguous(gp_nhwc), pooled, idx, x, np.asarray(a, f32), np.asarray(b, f32),
                     np.asarray(c, f32), out)
    return out


def _contiguous(a_nhwc):
    return np.ascontiguousarray(a_nhwc, dtype=np.float32)
