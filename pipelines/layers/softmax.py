"""The ``softmax`` layer, with its gradient.

Core ML's definition: ``y = exp(x) / sum(exp(x))`` along the channel axis: axis -3
of ``[..., C, H, W]`` (rank-5 mapping, or an exact-mapping example of rank >= 3),
the last axis of a rank-1 or rank-2 example (see the package docstring for the
tensor layout). Computed as ``exp(x - max(x))`` so large inputs do not overflow.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register

__all__ = ["Softmax", "softmax"]


def softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    """Numerically stable softmax of ``x`` along ``axis`` (float32 in, float32 out)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


@register
class Softmax(Layer):
    """``softmax``: normalised exponentials along the channel axis."""

    kind = "softmax"

    @staticmethod
    def _axis(x):
        return -3 if x.ndim >= 4 else -1

    def forward(self, x):
        x = np.asarray(x, dtype=np.float32)
        return (softmax(x, axis=self._axis(x)),)

    def forward_train(self, x):
        (y,) = self.forward(x)
        return (y,), y

    def backward(self, y, gy, *, need_input_grads: bool = True):
        axis = self._axis(y)
        return (y * (gy - (gy * y).sum(axis=axis, keepdims=True)),), {}
