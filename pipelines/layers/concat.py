"""The ``concat`` layer, with its gradient.

Core ML's definition: the inputs joined along the channel axis (-3 of
``[..., C, H, W]``, see the package docstring for the tensor layout), or along the
sequence axis (axis 1 of the rank-5 ``[N, S, C, H, W]``; -5 under the exact mapping)
when ``sequenceConcat`` is set. All other axes must agree.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register

__all__ = ["Concat"]


@register
class Concat(Layer):
    """``concat``: join the inputs along the channel (or sequence) axis."""

    kind = "concat"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.sequence = bool(spec.concat.sequenceConcat)
        if len(self.inputs) < 1:
            raise self.error("no inputs; expected at least one", "input")

    def _axis(self, x):
        return -5 if self.sequence else -3

    def forward(self, *xs):
        xs = [np.asarray(x, dtype=np.float32) for x in xs]
        axis = self._axis(xs[0])
        for name, x in zip(self.inputs, xs):
            if x.ndim != xs[0].ndim or x.ndim < -axis:
                raise self.error(f"input {name!r} has shape {x.shape[1:]}; all inputs need the same rank "
                                 f"(at least {-axis - 1} without the batch)")
            other = list(x.shape)
            other.pop(axis)
            ref = list(xs[0].shape)
            ref.pop(axis)
            if other != ref:
                raise self.error(f"input {name!r} has shape {x.shape[1:]}, which differs from "
                                 f"{xs[0].shape[1:]} outside the concatenated axis")
        return (np.concatenate(xs, axis=axis),)

    def forward_train(self, *xs):
        (y,) = self.forward(*xs)
        return (y,), [np.shape(x)[self._axis(y)] for x in xs]

    def backward(self, sizes, gy, *, need_input_grads: bool = True):
        axis = self._axis(gy)
        cuts = np.cumsum(sizes)[:-1]
        return tuple(np.split(gy, cuts, axis=axis)), {}
