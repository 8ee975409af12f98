"""The ``flatten`` layer, with its gradient.

Core ML's definition: ``[..., C, H, W]`` becomes ``[..., C * H * W, 1, 1]`` (the
rank stays; see the package docstring for the tensor layout), reading the values in
``C, H, W`` order (``CHANNEL_FIRST``) or ``H, W, C`` order (``CHANNEL_LAST``).
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register

__all__ = ["Flatten"]


@register
class Flatten(Layer):
    """``flatten``: the last three axes into the channel axis."""

    kind = "flatten"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.channel_last = int(spec.flatten.mode) == 1

    def forward(self, x):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim < 4:
            raise self.error(f"input {self.inputs[0]!r} has shape {x.shape[1:]}, expected [..., C, H, W]")
        if self.channel_last:
            x = np.moveaxis(x, -3, -1)
        lead = x.shape[:-3]
        return (np.ascontiguousarray(x).reshape(lead + (-1, 1, 1)),)

    def forward_train(self, x):
        return self.forward(x), np.shape(x)

    def backward(self, x_shape, gy, *, need_input_grads: bool = True):
        if self.channel_last:
            c, h, w = x_shape[-3:]
            g = gy.reshape(x_shape[:-3] + (h, w, c))
            return (np.moveaxis(g, -1, -3),), {}
        return (gy.reshape(x_shape),), {}
