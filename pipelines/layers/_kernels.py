"""Fused one-pass kernels for the training hot spots of channel-last activations.

Why by hand: NumPy runs each elementwise step as its own pass over memory, and
batchnorm statistics and gradients, the ReLU mask, max pooling that remembers
its argmax and the col2im scatter of a convolution's input gradient take several
passes each (a dozen for pooling); no well-kept library
offers these fused steps on NumPy arrays (PyTorch is only a test oracle here).
numba (already a dependency) compiles each into a single pass; measured 3 to 20
times faster than the NumPy sequence on this project's CNN. They are serial:
numba's parallel loops cost more than they save on 2 cores.
Every kernel takes C-contiguous arrays whose last axis is the channel: a
convolution's ``[N, C, H, W]`` output is such an array seen through a transpose
(see ``conv.py``). Only the faster layer variants of ``fast.py`` call them (the
reference classes stay plain NumPy), and they fall back to the reference code for
any other memory layout.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["channel_last", "channel_sums", "affine", "bn_input_grad", "relu", "relu_grad", "col2im_nhwc",
           "maxpool2_train", "maxpool2_grad"]


def channel_last(x4: np.ndarray) -> np.ndarray | None:
    """The ``[N, H, W, C]`` C-contiguous array behind ``x4`` ``[N, C, H, W]``, or None."""
    view = x4.transpose(0, 2, 3, 1)
    return view if view.flags.c_contiguous else None


@numba.njit(cache=True, fastmath=True)
def _sums(a, b):
    m, c = a.shape
    s1, s2 = np.zeros(c, np.float64), np.zeros(c, np.float64)
    blk1, blk2 = np.zeros(c, np.float32), np.zeros(c, np.float32)
    for i in range(m):
        for j in range(c):
            blk1[j] += a[i, j]
            blk2[j] += a[i, j] * b[i, j]
        if (i & 255) == 255:  # float32 over 256 rows, float64 across blocks
            for j in range(c):
                s1[j] += blk1[j]
                s2[j] += blk2[j]
                blk1[j] = 0
                blk2[j] = 0
    for j in range(c):
        s1[j] += blk1[j]
        s2[j] += blk2[j]
    return s1, s2


def channel_sums(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(sum(a), sum(a * b))`` of ``[M, C]`` float32 arrays, as float64."""
    return _sums(a, b)


@numba.njit(cache=True, fastmath=True)
def _affine(x, scale, shift, out):
    m, c = x.shape
    for i in range(m):
        for j in range(c):
            out[i, j] = x[i, j] * scale[j] + shift[j]


def affine(x2: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x2 * scale + shift`` per channel, ``[M, C]``."""
    out = np.empty_like(x2)
    _affine(x2, np.ascontiguousarray(scale, np.float32), np.ascontiguousarray(shift, np.float32), out)
    return out


@numba.njit(cache=True, fastmath=True)
def _bn_grad(g, x, a, b, c0, out):
    m, c = g.shape
    for i in range(m):
        for j in range(c):
            out[i, j] = g[i, j] * a[j] + x[i, j] * b[j] + c0[j]


def bn_input_grad(g2, x2, a, b, c):
    """``g * a + x * b + c`` per channel, ``[M, C]``."""
    out = np.empty_like(g2)
    f32 = np.float32
    _bn_grad(g2, x2, a.astype(f32), b.astype(f32), c.astype(f32), out)
    return out


@numba.njit(cache=True)
def _relu_grad(g, y, out):
    for i in range(g.size):
        out[i] = g[i] if y[i] > 0 else np.float32(0)


@numba.njit(cache=True)
def _relu(x, out):
    for i in range(x.size):
        out[i] = x[i] if x[i] > 0 else np.float32(0)


def relu(x: np.ndarray) -> np.ndarray | None:
    """``max(x, 0)`` in ``x``'s own dense memory order, or None for other arrays."""
    return relu_grad(x, x, _unary=True)


def relu_grad(g: np.ndarray, y: np.ndarray, *, _unary: bool = False) -> np.ndarray | None:
    """``g * (y > 0)`` when both are float32 in the same dense memory order; else None."""
    if g.dtype != np.float32 or y.dtype != np.float32 or g.shape != y.shape or g.size == 0:
        return None
    squeezed = tuple(d for d in g.shape if d != 1)  # unit axes carry arbitrary strides
    gv, yv = g.reshape(squeezed), y.reshape(squeezed)
    if gv.strides != yv.strides:
        return None
    perm = np.argsort([-s for s in gv.strides], kind="stable")
    gp, yp = gv.transpose(perm), yv.transpose(perm)
    if not (gp.flags.c_contiguous and yp.flags.c_contiguous):
        return None
    out = np.empty_like(gp)
    if _unary:
        _relu(gp.reshape(-1), out.reshape(-1))
    else:
        _relu_grad(gp.reshape(-1), yp.reshape(-1), out.reshape(-1))
    return out.transpose(np.argsort(perm)).reshape(g.shape)


@numba.njit(cache=True)
def col2im_nhwc(cols, buf, stride_h, stride_w, dil_h, dil_w):
    """``buf[n, r*s + i*d, q*s + j*d, c] += cols[n, r, q, i, j, c]`` (the transpose of im2col)."""
    n, ho, wo, kh, kw, c = cols.shape
    for b in range(n):
        for r in range(ho):
            for q in range(wo):
                for i in range(kh):
                    row = r * stride_h + i * dil_h
                    for j in range(kw):
                        col = q * stride_w + j * dil_w
                        for ch in range(c):
                            buf[b, row, col, ch] += cols[b, r, q, i, j, ch]


@numba.njit(cache=True)
def _maxpool2(x, y, idx):
    n, h, w, c = x.shape
    ho, wo = h // 2, w // 2
    for p in range(n * ho):
        b, i = p // ho, p % ho
        for j in range(wo):
            for ch in range(c):
                best = x[b, 2 * i, 2 * j, ch]
                arg = 0
                v = x[b, 2 * i, 2 * j + 1, ch]
                if v > best:
                    best, arg = v, 1
                v = x[b, 2 * i + 1, 2 * j, ch]
                if v > best:
                    best, arg = v, 2
                v = x[b, 2 * i + 1, 2 * j + 1, ch]
                if v > best:
                    best, arg = v, 3
                y[b, i, j, ch] = best
                idx[b, i, j, ch] = arg


def maxpool2_train(x_nhwc: np.ndarray):
    """2x2/stride-2 max pooling of ``[N, H, W, C]`` (even H, W): ``(y, argmax in 0..3)``; first maximum wins."""
    n, h, w, c = x_nhwc.shape
    y = np.empty((n, h // 2, w // 2, c), dtype=np.float32)
    idx = np.empty((n, h // 2, w // 2, c), dtype=np.uint8)
    _maxpool2(x_nhwc, y, idx)
    return y, idx


@numba.njit(cache=True)
def _maxpool2_grad(g, idx, out):
    n, ho, wo, c = g.shape
    for p in range(n * ho):
        b, i = p // ho, p % ho
        for j in range(wo):
            for ch in range(c):
                a = idx[b, i, j, ch]
                v = g[b, i, j, ch]
                out[b, 2 * i, 2 * j, ch] = v if a == 0 else np.float32(0)
                out[b, 2 * i, 2 * j + 1, ch] = v if a == 1 else np.float32(0)
                out[b, 2 * i + 1, 2 * j, ch] = v if a == 2 else np.float32(0)
                out[b, 2 * i + 1, 2 * j + 1, ch] = v if a == 3 else np.float32(0)


def maxpool2_grad(g_nhwc: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Gradient of ``maxpool2_train``: ``[N, H, W, C]`` from ``[N, H/2, W/2, C]``."""
    n, ho, wo, c = g_nhwc.shape
    out = np.empty((n, 2 * ho, 2 * wo, c), dtype=np.float32)
    _maxpool2_grad(np.ascontiguousarray(g_nhwc), idx, out)
    return out
