"""The ``convolution`` layer (2-D convolution and deconvolution), with its gradients.

Core ML's definition: a cross-correlation over the last two axes ``(H, W)`` of
``[..., C, H, W]`` (see the package docstring for the tensor layout) with
``outputChannels`` kernels of ``kernelChannels = C / nGroups`` channels each, stored
``[C_out, C_in / nGroups, kH, kW]``; ``stride``, ``dilationFactor``, ``valid``
padding (explicit border amounts) or ``same`` padding (output ``ceil(H / stride)``,
the odd pixel of padding going bottom/right or top/left as ``asymmetryMode``
says). A deconvolution (``isDeconvolution``) is the transposed convolution, its
weights stored ``[C_in, C_out / nGroups, kH, kW]`` (coremltools' layout), its output
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


def _padded_nhwc(x, pads, extra=(0, 0)):
    """``x`` ``[N, C, H, W]`` copied into a zero-padded channel-last buffer ``[N, Hp, Wp, C]``."""
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    buf = np.empty((n, h + pt + pb + extra[0], w + pl + pr + extra[1], c), dtype=np.float32)
    if pt or pb or pl or pr or extra != (0, 0):
        buf[:, :pt] = 0
        buf[:, pt + h:] = 0
        buf[:, pt:pt + h, :pl] = 0
        buf[:, pt:pt + h, pl + w:] = 0
    buf[:, pt:pt + h, pl:pl + w, :] = x.transpose(0, 2, 3, 1)
    return buf


def _im2col(x, kernel, stride, dilation, pads):
    """Patches ``[N * H_out * W_out, kH * kW * C]`` of ``x`` ``[N, C, H, W]`` (channel-last columns)."""
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    kh, kw = kernel
    h_out = (h + pt + pb - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    w_out = (w + pl + pr - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    buf = _padded_nhwc(x, pads)
    if c <= 2:  # few channels: one strided copy per kernel tap beats the 6-D gather (measured 3x)
        cols = np.empty((n, h_out, w_out, kh, kw, c), dtype=np.float32)
        for i in range(kh):
            r0 = i * dilation[0]
            for j in range(kw):
                c0 = j * dilation[1]
                cols[:, :, :, i, j, :] = buf[:, r0:r0 + stride[0] * (h_out - 1) + 1:stride[0],
                                             c0:c0 + stride[1] * (w_out - 1) + 1:stride[1], :]
        return cols.reshape(n * h_out * w_out, kh * kw * c), (h_out, w_out)
    s = buf.strides
    view = as_strided(buf, shape=(n, h_out, w_out, kh, kw, c),
                      strides=(s[0], s[1] * stride[0], s[2] * stride[1], s[1] * dilation[0], s[2] * dilation[1], s[3]),
                      writeable=False)
    return view.reshape(n * h_out * w_out, kh * kw * c), (h_out, w_out)


def _col2im(cols, x_shape, kernel, stride, dilation, pads, out_hw, scatter=None):
    """Sum patches ``[N, H_out, W_out, kH, kW, C]`` back onto ``[N, C, H, W]`` (transpose of ``_im2col``).

    ``scatter(cols, buf, stride, dilation) -> bool``, when given, may do the summing into the
    zeroed channel-last buffer itself (a faster variant's hook); False leaves it to the NumPy loop.
    """
    n, c, h, w = x_shape
    (pt, pb), (pl, pr) = pads
    kh, kw = kernel
    h_out, w_out = out_hw
    buf = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype=np.float32)
    cols = cols.reshape(n, h_out, w_out, kh, kw, c)
    if scatter is not None and scatter(cols, buf, stride, dilation):
        return buf[:, pt:pt + h, pl:pl + w].transpose(0, 3, 1, 2)
    for i in range(kh):  # loops over kernel taps only; each adds a whole batch
        r0 = i * dilation[0]
        rows = slice(r0, r0 + stride[0] * (h_out - 1) + 1, stride[0])
        for j in range(kw):
            c0 = j * dilation[1]
            buf[:, rows, c0:c0 + stride[1] * (w_out - 1) + 1:stride[1]] += cols[:, :, :, i, j]
    return buf[:, pt:pt + h, pl:pl + w].transpose(0, 3, 1, 2)


def _group_cols(cols, kernel, groups, g):
    """The columns of group ``g`` (channels are innermost in the patch order)."""
    if groups == 1:
        return cols
    m, k = cols.shape
    cg = k // (kernel[0] * kernel[1] * groups)
    return cols.reshape(m, kernel[0] * kernel[1], groups, cg)[:, :, g].reshape(m, -1)


def _w_matrix(weights):
    """``[C_out, C_in_g, kH, kW]`` as ``[kH * kW * C_in_g, C_out]`` matching the patch order.

    A Fortran-ordered view (the transpose of a C-ordered ``[C_out, kH * kW * C_in_g]`` copy), which
    BLAS takes as it is: the copy only reorders within each output channel's weights, where a
    C-ordered result gathers every value from a different output channel (9 ms against 0.9 ms
    for ResNet-18's 512-channel 3x3 weights, about the product's own time)."""
    c_out = weights.shape[0]
    return np.ascontiguousarray(weights.transpose(0, 2, 3, 1)).reshape(c_out, -1).T


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
        A transposed view of a channel-last ``[n_samples, H_out, W_out, C_out]`` buffer.
    cols : np.ndarray [shape=(n_samples * H_out * W_out, kH * kW * C_in)]
        The im2col matrix (kept by training for the weight gradient).
    """
    c_out, _, kh, kw = weights.shape
    n = x.shape[0]
    cols, (h_out, w_out) = _im2col(x, (kh, kw), stride, dilation, pads)
    og = c_out // groups
    if groups == 1:
        y2d = cols @ _w_matrix(weights)
    else:
        y2d = np.empty((cols.shape[0], c_out), dtype=np.float32)
        for g in range(groups):
            y2d[:, g * og:(g + 1) * og] = _group_cols(cols, (kh, kw), groups, g) @ _w_matrix(weights[g * og:(g + 1) * og])
    if bias is not None:
        y2d += bias
    return y2d.reshape(n, h_out, w_out, c_out).transpose(0, 3, 1, 2), cols


def conv2d_backward(gy, cols, x_shape, weights, *, stride, dilation, pads, groups, need_input_grads=True,
                    scatter=None):
    """Gradients of ``conv2d_forward``: ``(grad_x, grad_weights, grad_bias)`` (``scatter``: see ``_col2im``)."""
    c_out, c_in_g, kh, kw = weights.shape
    g2d = gy.transpose(0, 2, 3, 1).reshape(-1, c_out)
    og = c_out // groups
    gw = np.empty(weights.shape, dtype=np.float32)
    parts = []
    for g in range(groups):
        cg = _group_cols(cols, (kh, kw), groups, g)
        gg = g2d[:, g * og:(g + 1) * og]
        gw[g * og:(g + 1) * og] = (cg.T @ gg).reshape(kh, kw, c_in_g, og).transpose(3, 2, 0, 1)
        if need_input_grads:
            parts.append(gg @ _w_matrix(weights[g * og:(g + 1) * og]).T)
    # column sums as one BLAS matrix-vector product: NumPy's axis-0 sum of a narrow [M, C] array
    # strides down each column (measured 6.5x slower at C = 16)
    gb = np.ones(g2d.shape[0], dtype=np.float32) @ g2d
    if not need_input_grads:
        return None, gw, gb
    if groups == 1:
        gcols = parts[0]
    else:  # back to the (tap, group, channel) patch order
        m = g2d.shape[0]
        gcols = np.stack([p.reshape(m, kh * kw, c_in_g) for p in parts], axis=2).reshape(m, -1)
    gx = _col2im(gcols, x_shape, (kh, kw), stride, dilation, pads, gy.shape[2:], scatter)
    return gx, gw, gb


def deconv2d_forward(x, weights, bias, *, stride, dilation, crops, groups, out_hw, scatter=None):
    """Transposed convolution; ``weights`` ``[C_in, C_out / groups, kH, kW]`` (Core ML's layout).

    ``crops`` are ``((top, bottom), (left, right))`` pixels removed from the full
    output ``(H - 1) * stride + dilated kernel``; negative values add zero rows.
    Returns ``[n_samples, C_out, H_out, W_out]`` with ``(H_out, W_out) = out_hw``.
    """
    n, c_in, h, w = x.shape
    _, og, kh, kw = weights.shape
    cg = c_in // groups
    x2d = x.transpose(0, 2, 3, 1).reshape(-1, c_in)
    parts = []
    for g in range(groups):
        wg = weights[g * cg:(g + 1) * cg].transpose(0, 2, 3, 1).reshape(cg, kh * kw * og)
        parts.append((x2d[:, g * cg:(g + 1) * cg] @ wg).reshape(-1, kh * kw, og))
    cols = np.stack(parts, axis=2).reshape(x2d.shape[0], -1)
    full_h = (h - 1) * stride[0] + (kh - 1) * dilation[0] + 1
    full_w = (w - 1) * stride[1] + (kw - 1) * dilation[1] + 1
    full = _col2im(cols, (n, og * groups, full_h, full_w), (kh, kw), stride, dilation, ((0, 0), (0, 0)), (h, w),
                   scatter)
    (ct, _), (cl, _) = crops
    h_out, w_out = out_hw
    y = np.zeros((n, og * groups, h_out, w_out), dtype=np.float32)
    src = full[:, :, max(ct, 0):, max(cl, 0):]
    oh, ow = max(-ct, 0), max(-cl, 0)
    dh, dw = min(h_out - oh, src.shape[2]), min(w_out - ow, src.shape[3])
    y[:, :, oh:oh + dh, ow:ow + dw] = src[:, :, :dh, :dw]
    if bias is not None:
        y += bias[:, None, None]
    return y


@register
class Convolution(Layer):
    """``convolution``: grouped, strided, dilated 2-D convolution or deconvolution over ``(H, W)``."""

    kind = "convolution"
    param_names = ("weights", "bias")
    param_fields = {"weights": "weights", "bias": "bias"}
    #: how ``_col2im`` sums patches back (None: the NumPy loop); a faster variant sets its own
    scatter = None

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
        shape = ((self.kernel_channels, self.c_out // self.groups, kh, kw) if self.deconv
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
                                dilation=self.dilation, crops=crops, groups=self.groups, out_hw=out,
                                scatter=self.scatter)

    def forward(self, x):
        y, _ = self._forward(np.asarray(x, dtype=np.float32))
        return (y,)  # a channel-last buffer seen as [..., C, H, W]; the next layers keep that order

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
                                     need_input_grads=need_input_grads, scatter=self.scatter)
        grads = {"weights": gw}
        if "bias" in self.params:
            grads["bias"] = gb
        return (None if gx is None else gx.reshape(x_shape),), grads
