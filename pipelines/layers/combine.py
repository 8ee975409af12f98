"""Joining, splitting, repeating and padding blobs: split, splitND, concatND, stack, tile,
padding, constantPad."""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .common import nd_axis


@register
class Split(Layer):
    """Split along C into ``nOutputs`` equal parts (one per output)."""

    kind = "split"

    def forward(self, x):
        n = len(self.outputs)
        if x.shape[-3] % n:
            raise self.error(f"{x.shape[-3]} channels do not split into {n} equal parts", "nOutputs")
        return tuple(np.split(x, n, axis=x.ndim - 3))


@register
class SplitND(Layer):
    """Split along ``axis`` into ``numSplits`` equal parts or parts of ``splitSizes``."""

    kind = "splitND"

    def forward(self, x):
        p = self.p
        axis = nd_axis(p.axis, x.ndim)
        if len(p.splitSizes):
            bounds = np.cumsum([int(s) for s in p.splitSizes])[:-1]
            return tuple(np.split(x, bounds, axis=axis))
        n = int(p.numSplits) or len(self.outputs)
        if x.shape[axis] % n:
            raise self.error(f"axis of size {x.shape[axis]} does not split into {n} equal parts", "numSplits")
        return tuple(np.split(x, n, axis=axis))


@register
class ConcatND(Layer):
    """Concatenate along ``axis``; with ``interleave`` take one slice of each input in turn."""

    kind = "concatND"

    def forward(self, *inputs):
        p = self.p
        axis = nd_axis(p.axis, inputs[0].ndim)
        if p.interleave:
            stacked = np.stack(inputs, axis=axis + 1)
            shape = list(inputs[0].shape)
            shape[axis] *= len(inputs)
            return (stacked.reshape(shape),)
        return (np.concatenate(inputs, axis=axis),)


@register
class Stack(Layer):
    """Stack the inputs along a new ``axis`` of the output."""

    kind = "stack"

    def forward(self, *inputs):
        axis = nd_axis(self.p.axis, inputs[0].ndim + 1)
        return (np.stack(inputs, axis=axis),)


@register
class Tile(Layer):
    """Repeat the example ``reps`` times along each axis (reps from the parameter or a second input)."""

    kind = "tile"

    def forward(self, x, reps=None):
        values = [int(round(float(v))) for v in np.asarray(reps).reshape(x.shape[0], -1)[0]] \
            if reps is not None else [int(r) for r in self.p.reps]
        values = [1] * (x.ndim - 1 - len(values)) + values
        return (np.tile(x, [1] + values),)


_PAD_MODES = {"constant": "constant", "reflection": "reflect", "replication": "edge"}


@register
class Padding(Layer):
    """Pad H and W (``paddingAmounts`` [H, W] start/end) with a constant, by reflection or by replication."""

    kind = "padding"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.padding
        amounts = p.paddingAmounts.borderAmounts
        if len(amounts) not in (0, 2):
            raise self.error(f"paddingAmounts has {len(amounts)} entries, expected 2 (H, W)", "paddingAmounts")
        self.pads = [(int(a.startEdgeSize), int(a.endEdgeSize)) for a in amounts] or [(0, 0), (0, 0)]
        self.mode = _PAD_MODES[p.WhichOneof("PaddingType") or "constant"]
        self.value = p.constant.value

    def forward(self, x):
        widths = [(0, 0)] * (x.ndim - 2) + self.pads
        if self.mode == "constant":
            return (np.pad(x, widths, mode="constant", constant_values=np.float32(self.value)),)
        return (np.pad(x, widths, mode=self.mode),)


@register
class ConstantPad(Layer):
    """Pad every example axis by (before, after) amounts with ``value``; amounts from the
    parameter or a second input; ``padToGivenOutputSizeMode`` reads them as output sizes."""

    kind = "constantPad"

    def forward(self, x, amounts=None):
        p = self.p
        values = [int(round(float(v))) for v in np.asarray(amounts).reshape(x.shape[0], -1)[0]] \
            if amounts is not None else [int(v) for v in p.padAmounts]
        rank = x.ndim - 1
        if len(values) != 2 * rank:
            raise self.error(f"padAmounts has {len(values)} values, expected {2 * rank} (twice the rank)",
                             "padAmounts")
        widths = [(0, 0)]
        for i in range(rank):
            before, after = values[2 * i], values[2 * i + 1]
            if p.padToGivenOutputSizeMode:
                size = x.shape[i + 1]
                before, after = (max(before - size, 0), 0) if before else (0, max(after - size, 0))
            widths.append((before, after))
        return (np.pad(x, widths, mode="constant", constant_values=np.float32(p.value)),)
