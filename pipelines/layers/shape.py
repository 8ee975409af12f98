"""Layers that only move data around: reshape and its variants, flattenTo2D, permute,
transpose, squeeze, expandDims, getShape, reorganizeData.

Shapes in parameters are per-example (the batch axis 0 is never part of them); a shape
carried in a blob (getShape's output, a dynamic target shape) is a float vector per
example [shape=(n, rank)], all rows equal.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .common import nd_axis


def shape_from_blob(blob: np.ndarray) -> tuple[int, ...]:
    """The per-example shape held in a shape blob [shape=(n, rank)] (its first row)."""
    return tuple(int(round(float(v))) for v in np.asarray(blob).reshape(blob.shape[0], -1)[0])


def _reshape_examples(x: np.ndarray, shape) -> np.ndarray:
    return x.reshape((x.shape[0],) + tuple(int(d) for d in shape))


@register
class Reshape(Layer):
    """Legacy reshape of ``[S, C, H, W]`` to ``targetShape`` ([C, H, W] keeping S, or [S, C, H, W]);
    CHANNEL_LAST reshapes in [S, H, W, C] order."""

    kind = "reshape"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        target = [int(d) for d in spec.reshape.targetShape]
        if len(target) not in (3, 4):
            raise self.error(f"targetShape {target} must have 3 or 4 values", "targetShape")
        self.target, self.channel_last = target, spec.reshape.mode == 1

    def forward(self, x):
        n = x.shape[0]
        seq = x.shape[1] if x.ndim == 5 and len(self.target) == 3 else None
        if seq is not None:
            target = [seq] + self.target
        else:
            target = self.target if len(self.target) == 4 else [1] + self.target
        if self.channel_last:
            hwc = np.moveaxis(x, -3, -1).reshape(n, target[0], target[2], target[3], target[1])
            return (np.ascontiguousarray(np.moveaxis(hwc, -1, -3)),)
        return (x.reshape(n, *target),)


@register
class ReshapeStatic(Layer):
    """Reshape each example to ``targetShape`` (one entry may be -1)."""

    kind = "reshapeStatic"

    def forward(self, x):
        return (_reshape_examples(x, self.p.targetShape),)


@register
class ReshapeLike(Layer):
    """Reshape the first input to the shape of the second."""

    kind = "reshapeLike"

    def forward(self, x, like):
        return (_reshape_examples(x, like.shape[1:]),)


@register
class ReshapeDynamic(Layer):
    """Reshape the first input to the shape held in the second input."""

    kind = "reshapeDynamic"

    def forward(self, x, shape):
        return (_reshape_examples(x, shape_from_blob(shape)),)


@register
class RankPreservingReshape(Layer):
    """Reshape keeping the rank: 0 copies the input's size, -1 is inferred."""

    kind = "rankPreservingReshape"

    def forward(self, x):
        target = [x.shape[i + 1] if int(d) == 0 else int(d)
                  for i, d in enumerate(self.p.targetShape)]
        return (_reshape_examples(x, target),)


@register
class FlattenTo2D(Layer):
    """Rank-2 output ``[prod(shape[:axis]), prod(shape[axis:])]``."""

    kind = "flattenTo2D"

    def forward(self, x):
        rank = x.ndim - 1
        axis = int(self.p.axis)
        axis = axis + rank if axis < 0 else axis
        shape = x.shape[1:]
        return (x.reshape(x.shape[0], int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))),)


@register
class Permute(Layer):
    """Rank-5 permutation of ``[S, C, H, W]`` by ``axis`` (the batch axis never moves)."""

    kind = "permute"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        axes = [int(a) for a in spec.permute.axis] or [0, 1, 2, 3]
        if sorted(axes) != [0, 1, 2, 3]:
            raise self.error(f"axis {axes} is not a permutation of [0, 1, 2, 3]", "axis")
        self.perm = (0,) + tuple(a + 1 for a in axes)

    def forward(self, x):
        if x.ndim != 5:
            raise self.error(f"input {self.inputs[0]!r} has rank {x.ndim - 1}, expected rank 4 [S, C, H, W]")
        return (np.ascontiguousarray(np.transpose(x, self.perm)),)


@register
class Transpose(Layer):
    """Permute the example's axes: output axis i is input axis ``axes[i]``."""

    kind = "transpose"

    def forward(self, x):
        perm = (0,) + tuple(nd_axis(a, x.ndim) for a in self.p.axes)
        return (np.ascontiguousarray(np.transpose(x, perm)),)


@register
class Squeeze(Layer):
    """Remove the size-1 ``axes`` (every size-1 axis with ``squeezeAll``); a rank-0 result stays [1]."""

    kind = "squeeze"

    def forward(self, x):
        p = self.p
        if p.squeezeAll:
            axes = tuple(i for i in range(1, x.ndim) if x.shape[i] == 1)
        else:
            axes = tuple(nd_axis(a, x.ndim) for a in p.axes)
        bad = [a - 1 for a in axes if x.shape[a] != 1]
        if bad:
            raise self.error(f"cannot squeeze axes {bad} of shape {x.shape[1:]}: not of size 1", "axes")
        y = np.squeeze(x, axis=axes)
        return (y.reshape(-1, 1) if y.ndim == 1 else y,)


@register
class ExpandDims(Layer):
    """Insert size-1 axes at ``axes`` (positions in the output; negative counts from the end)."""

    kind = "expandDims"

    def forward(self, x):
        axes = [int(a) for a in self.p.axes]
        out_rank = x.ndim - 1 + len(axes)
        positions = sorted(a if a >= 0 else out_rank + a for a in axes)
        return (np.expand_dims(x, tuple(p + 1 for p in positions)),)


@register
class GetShape(Layer):
    """The shape of one example as a float vector."""

    kind = "getShape"

    def forward(self, x):
        shape = np.asarray(x.shape[1:], dtype=np.float32)
        return (np.broadcast_to(shape, (x.shape[0], shape.size)).copy(),)


SPACE_TO_DEPTH, DEPTH_TO_SPACE, PIXEL_SHUFFLE = 0, 1, 2


def reorganize(x: np.ndarray, *, mode: int, block: int) -> np.ndarray:
    """Move ``block x block`` spatial tiles into channels (SPACE_TO_DEPTH) or back.

    DEPTH_TO_SPACE takes input channel ``(i * block + j) * C_out + c`` to output
    ``(c, h * block + i, w * block + j)``; PIXEL_SHUFFLE takes channel ``c * block**2 + i * block + j``.
    """
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    k = len(lead)
    if mode == SPACE_TO_DEPTH:
        t = x.reshape(*lead, c, h // block, block, w // block, block)
        t = t.transpose(*range(k), k + 2, k + 4, k, k + 1, k + 3)
        return t.reshape(*lead, c * block * block, h // block, w // block)
    c_out = c // (block * block)
    if mode == DEPTH_TO_SPACE:
        t = x.reshape(*lead, block, block, c_out, h, w).transpose(*range(k), k + 2, k + 3, k, k + 4, k + 1)
    else:
        t = x.reshape(*lead, c_out, block, block, h, w).transpose(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return t.reshape(*lead, c_out, h * block, w * block)


@register
class ReorganizeData(Layer):
    """SPACE_TO_DEPTH, DEPTH_TO_SPACE or PIXEL_SHUFFLE with ``blockSize``."""

    kind = "reorganizeData"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.block = int(spec.reorganizeData.blockSize)
        if self.block < 2:
            raise self.error(f"blockSize is {self.block}, expected at least 2", "blockSize")
        self.mode = int(spec.reorganizeData.mode)

    def forward(self, x):
        c, h, w = x.shape[-3:]
        b = self.block
        if (self.mode == SPACE_TO_DEPTH and (h % b or w % b)) or (self.mode != SPACE_TO_DEPTH and c % (b * b)):
            raise self.error(f"input shape {x.shape[1:]} does not divide into blocks of {b}", "blockSize")
        return (np.ascontiguousarray(reorganize(x, mode=self.mode, block=b)),)
