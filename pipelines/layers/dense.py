"""The ``innerProduct`` layer (a fully connected layer), with its gradients.

Core ML's definition: ``y[..., o] = sum_i W[o, i] * x[..., i] + b[o]`` over the
channel axis, with ``W`` stored as ``[outputChannels, inputChannels]``. Under the
rank-5 mapping the channel axis is axis -3 of ``[N, S, C, 1, 1]``; under the exact
mapping it is axis -3 of inputs of rank >= 3 ending in ``(C, 1, 1)`` and the last
axis otherwise (see the package docstring for the tensor layout).
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .weights import read_weights

__all__ = ["InnerProduct", "inner_product"]


def inner_product(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x @ weights.T + bias`` on the last axis.

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples, n_in)], float32
    weights : np.ndarray [shape=(n_out, n_in)], float32
    bias : np.ndarray [shape=(n_out,)] or None

    Returns
    -------
    y : np.ndarray [shape=(n_samples, n_out)], float32
    """
    y = x @ weights.T
    if bias is not None:
        y += bias
    return y


def _channel_axis(x: np.ndarray) -> int:
    # [N, ..., C, 1, 1] (rank-5 mapping, or ND rank >= 3) vs [N, C] (ND rank 1)
    return -3 if x.ndim >= 4 and x.shape[-1] == 1 and x.shape[-2] == 1 else -1


@register
class InnerProduct(Layer):
    """``innerProduct``: ``y = W x + b`` over the channel axis (W is ``[C_out, C_in]``)."""

    kind = "innerProduct"
    param_names = ("weights", "bias")
    #: proto field of each entry of ``params`` (under ``layer.innerProduct``)
    param_fields = {"weights": "weights", "bias": "bias"}

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.innerProduct
        self.n_in, self.n_out = int(p.inputChannels), int(p.outputChannels)
        if self.n_in <= 0 or self.n_out <= 0:
            raise self.error(f"inputChannels={self.n_in}, outputChannels={self.n_out}; both must be > 0",
                             "outputChannels")
        self.params["weights"] = read_weights(p.weights, shape=(self.n_out, self.n_in),
                                              where=f"{self.where}.innerProduct.weights")
        if p.hasBias:
            self.params["bias"] = read_weights(p.bias, shape=(self.n_out,), where=f"{self.where}.innerProduct.bias")
        self.param_names = tuple(self.params)

    def _as_2d(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        axis = _channel_axis(x)
        if x.shape[axis] != self.n_in:
            raise self.error(f"input {self.inputs[0]!r} has {x.shape[axis]} channels (shape {x.shape[1:]}), "
                             f"expected inputChannels={self.n_in}")
        moved = np.moveaxis(x, axis, -1)
        return moved.reshape(-1, self.n_in), axis

    def _restore(self, y2d: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
        shape = list(np.moveaxis(x, axis, -1).shape)
        shape[-1] = self.n_out
        return np.moveaxis(y2d.reshape(shape), -1, axis)

    def forward(self, x):
        x2d, axis = self._as_2d(np.asarray(x, dtype=np.float32))
        y2d = inner_product(x2d, self.params["weights"], self.params.get("bias"))
        return (np.ascontiguousarray(self._restore(y2d, x, axis)),)

    def forward_train(self, x):
        x = np.asarray(x, dtype=np.float32)
        x2d, axis = self._as_2d(x)
        y2d = inner_product(x2d, self.params["weights"], self.params.get("bias"))
        return (self._restore(y2d, x, axis),), (x2d, x.shape, axis)

    def backward(self, cache, gy, *, need_input_grads: bool = True):
        x2d, x_shape, axis = cache
        g2d = np.moveaxis(gy, axis, -1).reshape(-1, self.n_out)
        grads = {"weights": g2d.T @ x2d}
        if "bias" in self.params:
            grads["bias"] = g2d.sum(axis=0)
        if not need_input_grads:
            return (None,), grads
        gx2d = g2d @ self.params["weights"]
        moved = list(x_shape)
        moved.append(moved.pop(axis))
        gx = np.moveaxis(gx2d.reshape(moved), -1, axis)
        return (gx,), grads
