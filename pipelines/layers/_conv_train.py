"""Training routes of ``FastConvolution``: the forward pass that keeps what backward needs, and backward.

Why not the reference's one im2col matrix per batch: training keeps it from the forward pass to
the backward pass, where it is read again from memory long after it left the caches (7 MB per
8-example shard for the sound CNN's second convolution, 16 -> 32 channels at 48 x 32), and the
input gradient writes and re-reads another matrix that size before summing it back. Here:

- patches are built one example at a time into a reused buffer that stays in the cache,
  for the forward product and again in backward (rebuilt from the kept padded input, cheaper than
  keeping them), and the input gradient's patches are summed back per example straight into
  the unpadded, C-contiguous channel-last gradient (``_col2im_cropped``). Measured on the sound CNN's 16 -> 32 convolution (8 examples, one
  thread, forward + backward, data cold as in training): 6.1 -> 4.5 ms.

A convolution with one input channel (a network's first, on a spectrogram) keeps its patch
matrix, which is small (9 values per output pixel at 3x3): one compiled pass builds it tap-major
with a last row of ones, so one product per example adds the bias in the forward pass and gives the bias
gradient with the weight gradient (no pass over the output for either). Direct numba
convolution kernels measured slower there (113 + 105 ms against 103 + 51 ms per epoch of the
sound CNN's first convolution, forward + backward, for the reference route).

The routes here compute the reference's function (``conv2d_forward``/``conv2d_backward``) to float32
rounding, for ungrouped convolutions with any stride, dilation and padding; the per-example
weight-gradient parts are added in example order, so the result depends on the data only
(tests/pipelines/layers/test_fast_paths.py).
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _kernels
from .conv import _padded_nhwc, _w_matrix

__all__ = ["forward_train", "backward"]


@numba.njit(cache=True, nogil=True)
def _one_channel_cols(xp, kh, kw, sh, sw, dh, dw, ho, wo, cols):
    """``cols[e, i * kW + j, r * W_out + q] = xp[e, r sh + i dh, q sw + j dw]`` and a last row of ones
    (tap-major, so each tap's values are written as one contiguous run per output row)."""
    n, k1, m = cols.shape
    one = np.float32(1)
    for e in range(n):
        for i in range(kh):
            for j in range(kw):
                t = i * kw + j
                for r in range(ho):
                    src = r * sh + i * dh
                    for q in range(wo):
                        cols[e, t, r * wo + q] = xp[e, src, q * sw + j * dw]
        for p in range(m):
            cols[e, k1 - 1, p] = one


def _patch_view(xp, kernel, stride, dilation, out_hw):
    """The patches ``[N, H_out, W_out, kH, kW, C]`` of padded channel-last examples ``[N, Hp, Wp, C]`` (a view;
    one per call: ``as_strided`` costs ~18 us, a per-example index of its result ~0.2 us)."""
    s = xp.strides
    return as_strided(xp, shape=(xp.shape[0],) + out_hw + kernel + (xp.shape[-1],),
                      strides=(s[0], s[1] * stride[0], s[2] * stride[1], s[1] * dilation[0], s[2] * dilation[1], s[3]),
                      writeable=False)


@numba.njit(cache=True, nogil=True)
def _col2im_cropped(gcols, gx, e, sh, sw, dh, dw, pt, pl):
    """``gx[e, r sh + i dh - pt, q sw + j dw - pl, c] += gcols[r, q, i, j, c]`` inside ``gx`` (padding dropped), so
    the input gradient is C-contiguous channel-last with no padded copy to cut."""
    ho, wo, kh, kw, c = gcols.shape
    h, w = gx.shape[1], gx.shape[2]
    for r in range(ho):
        for i in range(kh):
            y = r * sh + i * dh - pt
            if y < 0 or y >= h:
                continue
            for q in range(wo):
                for j in range(kw):
                    x = q * sw + j * dw - pl
                    if x < 0 or x >= w:
                        continue
                    for ch in range(c):
                        gx[e, y, x, ch] += gcols[r, q, i, j, ch]


def forward_train(x4, weights, bias, *, stride, dilation, pads, out_hw):
    """``conv2d_forward`` for training: ``(y, kept)``.

    Parameters
    ----------
    x4 : np.ndarray [shape=(n_samples, C_in, H, W)], float32
    weights : np.ndarray [shape=(C_out, C_in, kH, kW)], float32
    bias : np.ndarray [shape=(C_out,)] or None

    Returns
    -------
    y : np.ndarray [shape=(n_samples, C_out, H_out, W_out)]
        A transposed view of a channel-last buffer, as ``conv2d_forward`` returns.
    kept : np.ndarray [shape=(n_samples, Hp, Wp, C_in)] or [shape=(n_samples, kH * kW + 1, H_out * W_out)]
        What ``backward`` reads: the zero-padded channel-last input, or for one input channel the
        patches (tap-major) with their row of ones.
    """
    c_out, c_in, kh, kw = weights.shape
    n = x4.shape[0]
    h_out, w_out = out_hw
    xp = _padded_nhwc(x4, pads)
    y = np.empty((n, h_out, w_out, c_out), dtype=np.float32)
    if c_in == 1:
        cols = np.empty((n, kh * kw + 1, h_out * w_out), dtype=np.float32)
        _one_channel_cols(xp[..., 0], kh, kw, stride[0], stride[1], dilation[0], dilation[1], h_out, w_out, cols)
        wb = np.empty((kh * kw + 1, c_out), dtype=np.float32)
        wb[:-1] = weights.reshape(c_out, kh * kw).T
        wb[-1] = 0 if bias is None else bias
        np.matmul(cols.transpose(0, 2, 1), wb, out=y.reshape(n, h_out * w_out, c_out))
        return y.transpose(0, 3, 1, 2), cols
    wm = _w_matrix(weights)
    cols = np.empty((h_out, w_out, kh, kw, c_in), dtype=np.float32)
    cols2 = cols.reshape(h_out * w_out, -1)
    y2 = y.reshape(n, h_out * w_out, c_out)
    patches = _patch_view(xp, (kh, kw), stride, dilation, out_hw)
    for e in range(n):
        np.copyto(cols, patches[e])
        np.matmul(cols2, wm, out=y2[e])
    if bias is not None:
        y += bias
    return y.transpose(0, 3, 1, 2), xp


def backward(gy4, xp, x4_shape, weights, *, stride, dilation, pads, need_input_grads=True):
    """Gradients of ``forward_train``: ``(grad_x or None, grad_weights, grad_bias)``, as ``conv2d_backward``.

    Parameters
    ----------
    gy4 : np.ndarray [shape=(n_samples, C_out, H_out, W_out)]
    xp : np.ndarray [shape=(n_samples, Hp, Wp, C_in)]
        ``forward_train``'s ``kept`` (the patches, for one input channel).
    """
    c_out, c_in, kh, kw = weights.shape
    n, _, h_out, w_out = gy4.shape
    g = np.ascontiguousarray(gy4.transpose(0, 2, 3, 1), dtype=np.float32)
    if c_in == 1:
        return _one_channel_backward(g, xp, x4_shape, weights, stride=stride, dilation=dilation, pads=pads,
                                     need_input_grads=need_input_grads)
    g2 = g.reshape(n, h_out * w_out, c_out)
    gb = np.ones(n * h_out * w_out, dtype=np.float32) @ g.reshape(-1, c_out)
    h, w = x4_shape[2:]
    gx = np.zeros((n, h, w, c_in), dtype=np.float32) if need_input_grads else None
    (pt, _), (pl, _) = pads
    w_rows = np.ascontiguousarray(_w_matrix(weights).T)  # [C_out, kH kW C_in]
    cols = np.empty((h_out, w_out, kh, kw, c_in), dtype=np.float32)
    cols2 = cols.reshape(h_out * w_out, -1)
    gcols = np.empty((1, h_out, w_out, kh, kw, c_in), dtype=np.float32) if need_input_grads else None
    gw2 = np.zeros((kh * kw * c_in, c_out), dtype=np.float32)
    part = np.empty_like(gw2)
    patches = _patch_view(xp, (kh, kw), stride, dilation, (h_out, w_out))
    for e in range(n):
        np.copyto(cols, patches[e])
        np.matmul(cols2.T, g2[e], out=part)
        gw2 += part  # example order, whatever runs the shard
        if need_input_grads:
            np.matmul(g2[e], w_rows, out=gcols.reshape(h_out * w_out, -1))
            _col2im_cropped(gcols[0], gx, e, stride[0], stride[1], dilation[0], dilation[1], pt, pl)
    gw = np.ascontiguousarray(gw2.reshape(kh, kw, c_in, c_out).transpose(3, 2, 0, 1))
    if not need_input_grads:
        return None, gw, gb
    return gx.transpose(0, 3, 1, 2), gw, gb


def _one_channel_backward(g, cols, x4_shape, weights, *, stride, dilation, pads, need_input_grads):
    """``backward`` of a one-channel convolution from its kept patches ``[N, kH kW + 1, H_out W_out]``: one
    product per example gives the weight gradient and, from the row of ones, the bias gradient."""
    c_out, _, kh, kw = weights.shape
    k = kh * kw
    n = g.shape[0]
    g2 = g.reshape(-1, c_out)
    parts = np.matmul(cols, g.reshape(n, -1, c_out))  # [N, kH kW + 1, C_out]
    full = parts[0].copy()
    for e in range(1, n):  # example order, whatever runs the shard
        full += parts[e]
    gw = np.ascontiguousarray(full[:-1].T).reshape(weights.shape)
    gb = np.ascontiguousarray(full[-1])
    if not need_input_grads:
        return None, gw, gb
    gcols = g2 @ weights.reshape(c_out, k)  # [M, kH kW]: the patches' gradient, summed back below
    n, h, w = x4_shape[0], x4_shape[2], x4_shape[3]
    (pt, pb), (pl, pr) = pads
    gxp = np.zeros((n, h + pt + pb, w + pl + pr, 1), dtype=np.float32)
    _kernels.col2im_nhwc(gcols.reshape(n, g.shape[1], g.shape[2], kh, kw, 1), gxp, stride[0], stride[1],
                         dilation[0], dilation[1])
    return gxp[:, pt:pt + h, pl:pl + w].transpose(0, 3, 1, 2), gw, gb
