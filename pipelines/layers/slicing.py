"""Taking parts of a blob: slice, sliceStatic, sliceDynamic, sliceBySize, crop, reverse,
reverseSeq, slidingWindows. Slices follow Python's ``start:end:step`` semantics."""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .common import nd_axis

_LEGACY_SLICE_AXES = {0: -3, 1: -2, 2: -1}


@register
class Slice(Layer):
    """``x[start:end:stride]`` along C, H or W."""

    kind = "slice"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.slice
        if p.stride < 1:
            raise self.error(f"stride is {p.stride}, expected at least 1", "stride")
        self.axis = _LEGACY_SLICE_AXES[int(p.axis)]
        self.slice = slice(int(p.startIndex), int(p.endIndex), int(p.stride))

    def forward(self, x):
        index = [slice(None)] * x.ndim
        index[x.ndim + self.axis] = self.slice
        return (x[tuple(index)],)


def strided_slice(x: np.ndarray, *, begin, end, strides, begin_masks, end_masks, squeeze_masks) -> np.ndarray:
    """Per-example strided slice: one (begin, end, stride) per example axis; a mask ignores
    the begin/end; a squeeze mask keeps only index ``begin`` and drops the axis."""
    rank = x.ndim - 1
    index: list = [slice(None)]
    for i in range(rank):
        b = None if (i < len(begin_masks) and begin_masks[i]) else int(begin[i])
        e = None if (i < len(end_masks) and end_masks[i]) else int(end[i])
        s = int(strides[i]) if i < len(strides) else 1
        if i < len(squeeze_masks) and squeeze_masks[i]:
            index.append(int(begin[i]))
        else:
            index.append(slice(b, e, s))
    y = x[tuple(index)]
    return y.reshape(-1, 1) if y.ndim == 1 else y


@register
class SliceStatic(Layer):
    """Strided slice with begin/end ids, strides, begin/end masks and squeeze masks as parameters."""

    kind = "sliceStatic"

    def forward(self, x):
        p = self.p
        return (strided_slice(x, begin=list(p.beginIds), end=list(p.endIds), strides=list(p.strides),
                              begin_masks=list(p.beginMasks), end_masks=list(p.endMasks),
                              squeeze_masks=list(p.squeezeMasks)),)


def _row(blob) -> list[int]:
    return [int(round(float(v))) for v in np.asarray(blob).reshape(np.asarray(blob).shape[0], -1)[0]]


@register
class SliceDynamic(Layer):
    """Strided slice whose begin ids come from the second input (and end ids, strides,
    begin/end/squeeze masks optionally from inputs 3 to 7)."""

    kind = "sliceDynamic"

    def forward(self, x, begin, *rest):
        p = self.p
        values = [list(p.endIds), list(p.strides), list(p.beginMasks), list(p.endMasks), list(p.squeezeMasks)]
        for i, blob in enumerate(rest):
            values[i] = _row(blob)
        end, strides, begin_masks, end_masks, squeeze = values
        return (strided_slice(x, begin=_row(begin), end=end, strides=strides or [1] * (x.ndim - 1),
                              begin_masks=begin_masks, end_masks=end_masks, squeeze_masks=squeeze),)


@register
class SliceBySize(Layer):
    """``x[begin:begin + size]`` along ``axis``, ``begin`` from the second input."""

    kind = "sliceBySize"

    def forward(self, x, begin):
        p = self.p
        axis = nd_axis(p.axis, x.ndim)
        start = _row(begin)[0]
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, start + int(p.size))
        return (x[tuple(index)],)


@register
class Crop(Layer):
    """Crop H and W by ``cropAmounts`` (one input), or to the second input's H, W at ``offset``."""

    kind = "crop"

    def forward(self, x, reference=None):
        p = self.p
        h, w = x.shape[-2:]
        if reference is None:
            amounts = p.cropAmounts.borderAmounts
            if len(amounts) != 2:
                raise self.error(f"cropAmounts has {len(amounts)} entries, expected 2 (H, W)", "cropAmounts")
            top, bottom = amounts[0].startEdgeSize, amounts[0].endEdgeSize
            left, right = amounts[1].startEdgeSize, amounts[1].endEdgeSize
            return (x[..., top:h - bottom, left:w - right],)
        if len(p.offset) != 2:
            raise self.error(f"offset has {len(p.offset)} values, expected 2 (H, W)", "offset")
        oh, ow = int(p.offset[0]), int(p.offset[1])
        return (x[..., oh:oh + reference.shape[-2], ow:ow + reference.shape[-1]],)


@register
class Reverse(Layer):
    """Reverse the example axes whose ``reverseDim`` entry is true."""

    kind = "reverse"

    def forward(self, x):
        flags = list(self.p.reverseDim)
        axes = tuple(i + 1 for i, flag in enumerate(flags) if flag)
        return (np.flip(x, axis=axes).copy() if axes else x.copy(),)


def reverse_sequences(x: np.ndarray, lengths: np.ndarray, *, batch_axis: int, seq_axis: int) -> np.ndarray:
    """Reverse the first ``lengths[b]`` entries along ``seq_axis`` for each b along ``batch_axis``.

    ``lengths`` [shape=(n, x.shape[batch_axis])]; the axes are array axes of ``x``.
    """
    n_steps = x.shape[seq_axis]
    shape = [1] * x.ndim
    shape[0], shape[batch_axis], shape[seq_axis] = x.shape[0], x.shape[batch_axis], n_steps
    lens_shape = [1] * x.ndim
    lens_shape[0], lens_shape[batch_axis] = x.shape[0], x.shape[batch_axis]
    lens = np.rint(lengths).astype(np.int64).reshape(lens_shape)
    steps_shape = [1] * x.ndim
    steps_shape[seq_axis] = n_steps
    t = np.arange(n_steps).reshape(steps_shape)
    index = np.where(t < lens, lens - 1 - t, t)
    return np.take_along_axis(x, np.broadcast_to(index, x.shape), axis=seq_axis)


@register
class ReverseSeq(Layer):
    """Reverse variable-length sequences: for each index along ``batchAxis`` the first
    ``lengths[i]`` entries along ``sequenceAxis``."""

    kind = "reverseSeq"

    def forward(self, x, lengths):
        p = self.p
        batch_axis, seq_axis = nd_axis(p.batchAxis, x.ndim), nd_axis(p.sequenceAxis, x.ndim)
        lens = np.asarray(lengths).reshape(x.shape[0], -1)
        return (reverse_sequences(x, lens, batch_axis=batch_axis, seq_axis=seq_axis),)


@register
class SlidingWindows(Layer):
    """Windows of ``windowSize`` every ``step`` along ``axis``: that axis becomes (M, windowSize)."""

    kind = "slidingWindows"

    def forward(self, x):
        p = self.p
        axis = nd_axis(p.axis, x.ndim)
        windows = np.lib.stride_tricks.sliding_window_view(x, int(p.windowSize), axis=axis)
        index = [slice(None)] * windows.ndim
        index[axis] = slice(None, None, max(int(p.step), 1))
        return (np.ascontiguousarray(np.moveaxis(windows[tuple(index)], -1, axis + 1)),)
