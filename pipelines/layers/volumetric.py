"""3-D layers over ``[..., C, D, H, W]``: convolution3d (incl. transposed), pooling3d,
globalPooling3d. Zero padding as the spec defines it: CUSTOM amounts, VALID (none) or
SAME (output ``ceil(in / stride)``, an odd total padding puts the extra one at the back)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import Layer, register
from .common import weights_of

CUSTOM, VALID, SAME = 0, 1, 2


def _same_pads(size, kernel, stride, dilation):
    effective = dilation * (kernel - 1) + 1
    total = max((-(-size // stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pads(p, sizes, kernels, strides, dilations):
    if p.paddingType == SAME:
        return [_same_pads(*args) for args in zip(sizes, kernels, strides, dilations)]
    if p.paddingType == VALID:
        return [(0, 0)] * 3
    return [(p.customPaddingFront, p.customPaddingBack), (p.customPaddingTop, p.customPaddingBottom),
            (p.customPaddingLeft, p.customPaddingRight)]


def _windows(x: np.ndarray, kernels, strides, dilations) -> np.ndarray:
    """[..., C, D, H, W] -> [..., C, Do, Ho, Wo, kd, kh, kw] (a strided view)."""
    extents = [d * (k - 1) + 1 for k, d in zip(kernels, dilations)]
    view = sliding_window_view(x, extents, axis=(-3, -2, -1))
    index = (Ellipsis,) + tuple(slice(None, None, s) for s in strides) + tuple(slice(None, None, d) for d in dilations)
    return view[index]


def conv3d(x: np.ndarray, w: np.ndarray, *, strides, dilations, pads, groups: int) -> np.ndarray:
    """Grouped 3-D cross-correlation; ``w`` [C_out, C_in / groups, kd, kh, kw], zero ``pads`` per axis."""
    widths = [(0, 0)] * (x.ndim - 3) + [tuple(p) for p in pads]
    windows = _windows(np.pad(x, widths), w.shape[2:], strides, dilations)
    c_in, c_out = x.shape[-4] // groups, w.shape[0] // groups
    outs = []
    for g in range(groups):
        part = windows[..., g * c_in:(g + 1) * c_in, :, :, :, :, :, :]
        outs.append(np.einsum("...cdhwijk,ocijk->...odhw", part, w[g * c_out:(g + 1) * c_out], optimize=True))
    return np.concatenate(outs, axis=-4).astype(np.float32)


def deconv3d(x: np.ndarray, w: np.ndarray, *, strides, dilations, pads, groups: int,
             output_shape=None) -> np.ndarray:
    """Transposed 3-D convolution; ``w`` [C_in, C_out / groups, kd, kh, kw]; ``pads`` crop the full output."""
    lead, (c, d, h, wd) = x.shape[:-4], x.shape[-4:]
    dilated = np.zeros(lead + (c,) + tuple((n - 1) * s + 1 for n, s in zip((d, h, wd), strides)), np.float32)
    dilated[(Ellipsis, slice(None)) + tuple(slice(None, None, s) for s in strides)] = x
    kernels = w.shape[2:]
    full_pad = [(dl * (k - 1), dl * (k - 1)) for k, dl in zip(kernels, dilations)]
    c_in = c // groups
    flipped = w[:, :, ::-1, ::-1, ::-1]
    conv_w = np.concatenate([flipped[g * c_in:(g + 1) * c_in].transpose(1, 0, 2, 3, 4) for g in range(groups)])
    full = conv3d(dilated, np.ascontiguousarray(conv_w), strides=(1, 1, 1), dilations=dilations, pads=full_pad,
                  groups=groups)
    index = [Ellipsis]
    for axis, (before, after) in enumerate(pads):
        size = full.shape[-3 + axis]
        end = size - after
        if output_shape:
            end = before + int(output_shape[axis])
        index.append(slice(before, end))
    return np.ascontiguousarray(full[tuple(index)])


@register
class Convolution3D(Layer):
    """Grouped, strided, dilated 3-D convolution (or its transpose) of [C, D, H, W] with
    CUSTOM, VALID or SAME zero padding, plus an optional bias."""

    kind = "convolution3d"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.convolution3d
        self.groups = int(p.nGroups) or 1
        self.kernels = (int(p.kernelDepth), int(p.kernelHeight), int(p.kernelWidth))
        c_out, c_in = int(p.outputChannels), int(p.inputChannels)
        if min(self.kernels) < 1 or c_out < 1 or c_in < 1 or c_in % self.groups or c_out % self.groups:
            raise self.error(f"kernel {self.kernels}, channels {c_in} -> {c_out} and {self.groups} groups "
                             "do not fit together")
        shape = (c_in, c_out // self.groups) if p.isDeconvolution else (c_out, c_in // self.groups)
        self.weights = weights_of(self, "weights", p.weights, shape=shape + self.kernels)
        self.bias = weights_of(self, "bias", p.bias, shape=(c_out,)) if p.hasBias else None
        self.strides = tuple(max(int(s), 1) for s in (p.strideDepth, p.strideHeight, p.strideWidth))
        self.dilations = tuple(max(int(d), 1) for d in (p.dilationDepth, p.dilationHeight, p.dilationWidth))

    def forward(self, x):
        p = self.p
        if p.isDeconvolution:
            if p.paddingType == SAME:
                sizes = [(n - 1) * s + d * (k - 1) + 1 for n, s, k, d in
                         zip(x.shape[-3:], self.strides, self.kernels, self.dilations)]
                totals = [full - n * s for full, n, s in zip(sizes, x.shape[-3:], self.strides)]
                pads = [(t // 2, t - t // 2) for t in totals]
            else:
                pads = _pads(p, x.shape[-3:], self.kernels, self.strides, self.dilations)
            y = deconv3d(x, self.weights, strides=self.strides, dilations=self.dilations, pads=pads,
                         groups=self.groups, output_shape=list(p.outputShape) or None)
        else:
            pads = _pads(p, x.shape[-3:], self.kernels, self.strides, self.dilations)
            y = conv3d(x, self.weights, strides=self.strides, dilations=self.dilations, pads=pads, groups=self.groups)
        return (y + self.bias.reshape(-1, 1, 1, 1) if self.bias is not None else y,)


@register
class Pooling3D(Layer):
    """MAX or AVERAGE pooling over (D, H, W) windows with CUSTOM, VALID or SAME zero padding;
    ``countExcludePadding`` averages over the real values only."""

    kind = "pooling3d"

    def forward(self, x):
        p = self.p
        kernels = (int(p.kernelDepth), int(p.kernelHeight), int(p.kernelWidth))
        strides = tuple(max(int(s), 1) for s in (p.strideDepth, p.strideHeight, p.strideWidth))
        pads = _pads(p, x.shape[-3:], kernels, strides, (1, 1, 1))
        widths = [(0, 0)] * (x.ndim - 3) + [tuple(q) for q in pads]
        windows = _windows(np.pad(x, widths), kernels, strides, (1, 1, 1))
        if p.type == 0:
            return (windows.max(axis=(-3, -2, -1)).astype(np.float32),)
        sums = windows.sum(axis=(-3, -2, -1), dtype=np.float64)
        if p.countExcludePadding:
            ones = np.pad(np.ones(x.shape[-3:], np.float32), [tuple(q) for q in pads])
            counts = _windows(ones, kernels, strides, (1, 1, 1)).sum(axis=(-3, -2, -1))
            return ((sums / counts).astype(np.float32),)
        return ((sums / np.prod(kernels)).astype(np.float32),)


@register
class GlobalPooling3D(Layer):
    """MAX or AVERAGE over all of (D, H, W); those axes stay as size 1."""

    kind = "globalPooling3d"

    def forward(self, x):
        axes = (-3, -2, -1)
        if self.p.type == 0:
            return (x.max(axis=axes, keepdims=True),)
        return (x.mean(axis=axes, keepdims=True, dtype=np.float64).astype(np.float32),)
