"""The ``convolution`` layer (2-D convolution and deconvolution), with its gradients.

Core ML's definition: a cross-correlation over the last two axes ``(H, W)`` of
``[..., C, H, W]`` (see the package docstring for the tensor layout) with
``outputChannels`` kernels of ``kernelChannels = C / nGroups`` channels each, stored
``[C_out, C_in / nGroups, kH, kW]``; ``stride``, ``dilationFactor``, ``valid``
padding (explicit border amounts) or ``same`` padding (output ``ceil(H / stride)``,
the odd pixel of padding going bottom/right or top/left as ``asymmetryMode``
says). A deconvolution (``isDeconvolution``) is the transposed convolution, its
weights stored ``[C_out / nGroups, C_in, kH, kW]`` (coremltools' layout), its output
sized by ``outputShape`` when given (extra rows/columns at the bottom/right).

Implementation: im2col through a strided view of the padded input plus one float32
BLAS matrix product per group (NumPy has no convolution primitive that runs on
batches of multi-channel images; scipy.signal convolves one 2-D plane at a time).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .base import Layer, register
from .weights import read_weights

__all__ = ["Convolution", "conv2d_forward", "conv2d_backward", "padding_amounts", "deconv2d_forward"]


def padding_amounts(padding, which: str | None, size: tuple[int, int], kernel: tuple[int, int],
                    stride: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Pixels of padding ``((top, bottom), (left, right))`` for ``valid`` or ``same`` padding.

    ``kernel`` is the effective (dilated) kernel size.
    """
    if which == "same":
        pads = []
        for n, k, s in zip(size, kernel, stride):
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            small = total // 2
            pads.append((total - small, small) if padding.asymmetryMode == 1 else (small, total - small))
        return pads[0], pads[1]
    amounts = list(padding.paddingAmounts.borderAmounts) if which == "valid" else []
    if not amounts:
        return (0, 0), (0, 0)
    return ((int(amounts[0].startEdgeSize), int(amounts[0].endEdgeSize)),
            (int(amounts[1].startEdgeSize), int(amounts[1].endEdgeSize)))


def _im2col(x, kernel, stride, dilation, pads):
    """Columns ``[C * kH * kW, N * H_out * W_out]`` of ``x`` ``[N, C, H, W]``."""
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    kh, kw = kernel
    hp, wp = h + pt + pb, w + pl + pr
    h_out = (hp - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    w_out = (wp - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    if pt or pb or pl or pr:
        buf = np.zeros((c, n, hp, wp), dtype=np.float32)
        buf[:, :, pt:pt + h, pl:pl + w] = x.transpose(1, 0, 2, 3)
    else:
        buf = x.transpose(1, 0, 2, 3)
    s = buf.strides
    view = as_strided(buf, shape=(c, kh, kw, n, h_out, w_out),
                      strides=(s[0], s[2] * dilation[0], s[3] * dilation[1], s[1], s[2] * stride[0], s[3] * stride[1]),
                      writeable=False)
    return view.reshape(c * kh * kw, n * h_out * w_out), (h_out, w_out)


def _col2im(cols, x_shape, kernel, stride, dilation, pads, out_hw):
    """Sum columns ``[C, kH, kW, N, H_out, W_out]`` back onto ``[C, N, H, W]`` (transpose of ``_im2col``)."""
    n, c, h, w = x_shape
    (pt, pb), (pl, pr) = pads
    kh, kw = kernel
    h_out, w_out = out_hw
    buf = np.zeros((c, n, h + pt + pb, w + pl + pr), dtype=np.float32)
    cols = cols.reshape(c, kh, kw, n, h_out, w_out)
    for i in range(kh):  # loops over kernel taps only; each adds a whole batch
        r0 = i * dilation[0]
        rows = slice(r0, r0 + stride[0] * (h_out - 1) + 1, stride[0])
        for j in range(kw):
            c0 = j * dilation[1]
            buf[:, :, rows, c0:c0 + stride[1] * (w_out - 1) + 1:stride[1]] += cols[:, i, j]
    return buf[:, :, pt:pt + h, pl:pl + w]


def conv2d_forward(x, weights, bias, *, stride=(1, 1), dilation=(1, 1), pads=((0, 0), (0, 0)), groups=1):
    """Grouped 2-D cross-correlation.

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples, C_in, H, W)], float32
    weights : np.ndarray [shape=(C_out, C_in / groups, kH, kW)], float32
    bias : np.ndarray [shape=(C_out,)] or None

    Returns
    -------
    y : np.ndarray [shape=(n_samples, C_out, H_out, W_out)], float32
        A transposed view of a ``[C_out, n_samples, H_out, W_out]`` buffer.
    cols : np.ndarray [shape=(C_in * kH * kW, n_samples * H_out * W_out)]
        The im2col matrix (kept by training for the weight gradient).
    """
    c_out, c_in_g, kh, kw = weights.shape
    cols, (h_out, w_out) = _im2col(x, (kh, kw), stride, dilation, pads)
    k = c_in_g * kh * kw
    w2d = weights.reshape(c_out, k)
    if groups == 1:
        y2d = w2d @ cols
    else:
        og = c_out // groups
        y2d = np.empty((c_out, cols.shape[1]), dtype=np.float32)
        for g in range(groups):
            np.matmul(w2d[g * og:(g + 1) * og], cols[g * k:(g + 1) * k], out=y2d[g * og:(g + 1) * og])
    if bias is not None:
        y2d += bias[:, None]
    return y2d.reshape(c_out, x.shape[0], h_out, w_out).transpose(1, 0, 2, 3), cols


def conv2d_backward(gy, cols, x_shape, weights, *, stride, dilation, pads, groups, need_input_grads=True):
    """Gradients of ``conv2d_forward``: ``(grad_x, grad_weights, grad_bias)``."""
    c_out, c_in_g, kh, kw = weights.shape
    k = c_in_g * kh * kw
    g2d = gy.transpose(1, 0, 2, 3).reshape(c_out, -1)
    w2d = weights.reshape(c_out, k)
    og = c_out // groups
    gw = np.empty((c_out, k), dtype=np.float32)
    for g in range(groups):
        np.matmul(g2d[g * og:(g + 1) * og], cols[g * k:(g + 1) * k].T, out=gw[g * og:(g + 1) * og])
    gb = g2d.sum(axis=1)
    if not need_input_grads:
        return None, gw.reshape(weights.shape), gb
    if groups == 1:
        gcols = w2d.T @ g2d
    else:
        gcols = np.concatenate([w2d[g * og:(g + 1) * og].T @ g2d[g * og:(g + 1) * og] for g in range(groups)])
    gx = _col2im(gcols, x_shape, (kh, kw), stride, dilation, pads, gy.shape[2:])
    return gx.transpose(1, 0, 2, 3), gw.reshape(weights.shape), gb


def deconv2d_forward(x, weights, bias, *, stride, dilation, crops, groups, out_hw):
    """Transposed convolution; ``weights`` ``[C_out / groups, C_in, kH, kW]`` (Core ML's layout).

    ``crops`` are ``((top, bottom), (left, right))`` pixels removed from the full
    output ``(H - 1) * stride + dilated kernel``; negative values add zero rows.
    """
    n, c_in, h, w = x.shape
    og, _, kh, kw = weights.shape
    cg = c_in // groups
    x2d = x.transpose(1, 0, 2, 3).reshape(c_in, -1)
    # weights as [C_in, C_out/groups * kH * kW], rows grouped like the input channels
    wt = weights.transpose(1, 0, 2, 3).reshape(c_in, og * kh * kw)
    cols = np.concatenate([wt[g * cg:(g + 1) * cg].T @ x2d[g * cg:(g + 1) * cg] for g in range(groups)])
    full_h = (h - 1) * stride[0] + (kh - 1) * dilation[0] + 1
    full_w = (w - 1) * stride[1] + (kw - 1) * dilation[1] + 1
    full = _col2im(cols, (n, og * groups, full_h, full_w), (kh, kw), stride, dilation,
                   ((0, 0), (0, 0)), (h, w))
    (ct, _), (cl, _) = crops
    h_out, w_out = out_hw
    y = np.zeros((og * groups, n, h_out, w_out), dtype=np.float32)
    src = full[:, :, max(ct, 0):, max(cl, 0):]
    dh, dw = min(h_out - max(-ct, 0), src.shape[2]), min(w_out - max(-cl, 0), src.shape[3])
    y[:, :, max(-ct, 0):max(-ct, 0) + dh, max(-cl, 0):max(-cl, 0) + dw] = src[:, :, :dh, :dw]
    if bias is not None:
        y += bias[:, None, None, None]
    return y.transpose(1, 0, 2, 3)


@register
class Convolution(Layer):
    """``convolution``: grouped, strided, dilated 2-D convolution or deconvolution over ``(H, W)``."""

    kind = "convolution"
    param_names = ("weights", "bias")
    param_fields = {"weights": "weights", "bias": "bias"}

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.convolution
        self.groups = int(p.nGroups) or 1
        self.c_out, self.kernel_channels = int(p.outputChannels), int(p.kernelChannels)
        self.kernel = tuple(int(v) for v in p.kernelSize) or (3, 3)
        self.stride = tuple(int(v) for v in p.stride) or (1, 1)
        self.dilation = tuple(int(v) for v in p.dilationFactor) or (1, 1)
        for field, value in (("kernelSize", self.kernel), ("stride", self.stride), ("dilationFactor", self.dilation)):
            if len(value) != 2 or min(value) < 1:
                raise self.error(f"{field} is {list(value)}, expected two positive integers", field)
        if self.c_out % self.groups or self.c_out <= 0:
            raise self.error(f"outputChannels={self.c_out} is not a positive multiple of nGroups={self.groups}",
                             "outputChannels")
        self.padding_kind = p.WhichOneof("ConvolutionPaddingType")
        self.padding = getattr(p, self.padding_kind) if self.padding_kind else None
        self.deconv = bool(p.isDeconvolution)
        self.output_shape = tuple(int(v) for v in p.outputShape)
        kh, kw = self.kernel
        shape = ((self.c_out // self.groups, self.kernel_channels, kh, kw) if self.deconv
                 else (self.c_out, self.kernel_channels, kh, kw))
        self.params["weights"] = read_weights(p.weights, shape=shape, where=f"{self.where}.convolution.weights",
                                              channel_axis=1 if self.deconv else 0)
        if p.hasBias:
            self.params["bias"] = read_weights(p.bias, shape=(self.c_out,), where=f"{self.where}.convolution.bias")
        self.param_names = tuple(self.params)

    def _effective_kernel(self):
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation))

    def _to_4d(self, x):
        c_in = self.kernel_channels if self.deconv else self.kernel_channels * self.groups
        if x.ndim < 4 or x.shape[-3] != c_in:
            raise self.error(f"input {self.inputs[0]!r} has shape {x.shape[1:]}, expected [..., {c_in}, H, W] "
                             f"(kernelChannels={self.kernel_channels}, nGroups={self.groups})")
        return x.reshape((-1,) + x.shape[-3:])

    def _deconv(self, x4):
        h, w = x4.shape[2:]
        ek = self._effective_kernel()
        full = [(n - 1) * s + k for n, s, k in zip((h, w), self.stride, ek)]
        if self.padding_kind == "same":
            out = [n * s for n, s in zip((h, w), self.stride)]
            crops = []
            for f, o in zip(full, out):
                total, small = f - o, (f - o) // 2
                crops.append((total - small, small) if self.padding.asymmetryMode == 1 else (small, total - small))
        else:
            crops = list(padding_amounts(self.padding, self.padding_kind, (h, w), ek, self.stride))
            out = [f - a - b for f, (a, b) in zip(full, crops)]
        if len(self.output_shape) == 2:
            out = list(self.output_shape)
        return deconv2d_forward(x4, self.params["weights"], self.params.get("bias"), stride=self.stride,
                                dilation=self.dilation, crops=crops, groups=self.groups, out_hw=out)

    def forward(self, x):
        y, _ = self._forward(np.asarray(x, dtype=np.float32))
        return (np.ascontiguousarray(y),)

    def _forward(self, x):
        x4 = self._to_4d(x)
        if self.deconv:
            y4, cache = self._deconv(x4), None
        else:
            pads = padding_amounts(self.padding, self.padding_kind, x4.shape[2:], self._effective_kernel(), self.stride)
            y4, cols = conv2d_forward(x4, self.params["weights"], self.params.get("bias"), stride=self.stride,
                                      dilation=self.dilation, pads=pads, groups=self.groups)
            cache = (cols, x4.shape, pads, x.shape)
        return y4.reshape(x.shape[:-3] + y4.shape[1:]), cache

    def forward_train(self, x):
        if self.deconv:
            raise self.error("training a deconvolution is not supported", "isDeconvolution")
        y, cache = self._forward(np.asarray(x, dtype=np.float32))
        return (y,), cache

    def backward(self, cache, gy, *, need_input_grads: bool = True):
        cols, x4_shape, pads, x_shape = cache
        gy4 = gy.reshape((-1,) + gy.shape[-3:])
        gx, gw, gb = conv2d_backward(gy4, cols, x4_shape, self.params["weights"], stride=self.stride,
                                     dilation=self.dilation, pads=pads, groups=self.groups,
                                     need_input_grads=need_input_grads)
        grads = {"weights": gw}
        if "bias" in self.params:
            grads["bias"] = gb
        return (None if gx is None else gx.reshape(x_shape),), grads
