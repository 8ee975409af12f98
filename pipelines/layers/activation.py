"""The ``activation`` layer: every member of Core ML's ``ActivationParams``, with gradients.

Core ML's definitions (elementwise; the per-channel ``alpha``/``beta`` of PReLU and
parametricSoftplus run along the channel axis -3 of ``[..., C, H, W]``, or the
last axis of a rank-1 example, see the package docstring for the tensor layout):

============================  ==============================================
linear                        ``alpha * x + beta``
ReLU                          ``max(x, 0)``
leakyReLU                     ``x if x >= 0 else alpha * x``
thresholdedReLU               ``x if x > alpha else 0``
PReLU                         ``x if x >= 0 else alpha[c] * x``
tanh / scaledTanh             ``tanh(x)`` / ``alpha * tanh(beta * x)``
sigmoid / sigmoidHard         ``1 / (1 + exp(-x))`` / ``min(max(alpha x + beta, 0), 1)``
ELU                           ``x if x > 0 else alpha * (exp(x) - 1)``
softsign                      ``x / (1 + |x|)``
softplus / parametricSoftplus ``log(1 + exp(x))`` / ``alpha[c] * log(1 + exp(beta[c] * x))``
============================  ==============================================
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .weights import read_weights

__all__ = ["Activation", "ACTIVATIONS"]


def _sigmoid(x):
    # tanh form: no overflow for large |x|
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(np.float32)


def _softplus(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(np.float32)


# name -> (forward(x, a, b), derivative(x, y, a, b)); a/b are the scalars or channel arrays
ACTIVATIONS = {
    "linear": (lambda x, a, b: a * x + b, lambda x, y, a, b: np.broadcast_to(np.float32(a), x.shape)),
    "ReLU": (lambda x, a, b: np.maximum(x, np.float32(0)), lambda x, y, a, b: (x > 0).astype(np.float32)),
    "leakyReLU": (lambda x, a, b: np.where(x >= 0, x, a * x),
                  lambda x, y, a, b: np.where(x >= 0, np.float32(1), np.float32(a))),
    "thresholdedReLU": (lambda x, a, b: np.where(x > a, x, np.float32(0)),
                        lambda x, y, a, b: (x > a).astype(np.float32)),
    "PReLU": (lambda x, a, b: np.where(x >= 0, x, a * x),
              lambda x, y, a, b: np.where(x >= 0, np.float32(1), a)),
    "tanh": (lambda x, a, b: np.tanh(x), lambda x, y, a, b: 1 - y * y),
    "scaledTanh": (lambda x, a, b: a * np.tanh(b * x), lambda x, y, a, b: a * b * (1 - np.tanh(b * x) ** 2)),
    "sigmoid": (lambda x, a, b: _sigmoid(x), lambda x, y, a, b: y * (1 - y)),
    "sigmoidHard": (lambda x, a, b: np.clip(a * x + b, 0, 1),
                    lambda x, y, a, b: np.where((a * x + b > 0) & (a * x + b < 1), np.float32(a), np.float32(0))),
    "ELU": (lambda x, a, b: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
            lambda x, y, a, b: np.where(x > 0, np.float32(1), a * np.exp(np.minimum(x, 0)))),
    "softsign": (lambda x, a, b: x / (1 + np.abs(x)), lambda x, y, a, b: 1 / (1 + np.abs(x)) ** 2),
    "softplus": (lambda x, a, b: _softplus(x), lambda x, y, a, b: _sigmoid(x)),
    "parametricSoftplus": (lambda x, a, b: a * _softplus(b * x), lambda x, y, a, b: a * b * _sigmoid(b * x)),
}


@register
class Activation(Layer):
    """``activation``: one elementwise nonlinearity from ``ActivationParams``."""

    kind = "activation"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.activation
        self.which = p.WhichOneof("NonlinearityType")
        if self.which not in ACTIVATIONS:
            raise self.error(f"no nonlinearity set (got {self.which!r}); expected one of {sorted(ACTIVATIONS)}")
        q = getattr(p, self.which)
        self.per_channel = self.which in ("PReLU", "parametricSoftplus")
        if not self.per_channel:
            self.alpha, self.beta = np.float32(getattr(q, "alpha", 0.0)), np.float32(getattr(q, "beta", 0.0))
        else:
            where = f"{self.where}.activation.{self.which}"
            self.alpha = read_weights(q.alpha, where=f"{where}.alpha")
            self.beta = read_weights(q.beta, where=f"{where}.beta") if self.which == "parametricSoftplus" else None
            for name, arr in (("alpha", self.alpha), ("beta", self.beta)):
                if arr is not None and arr.size == 0:
                    raise self.error(f"{name} is empty, expected 1 value or one per channel", f"{self.which}.{name}")
        self.fn, self.grad = ACTIVATIONS[self.which]

    def _coefficients(self, x):
        if not self.per_channel:
            return self.alpha, self.beta
        axis = -3 if x.ndim >= 4 else -1
        shape = [1] * x.ndim
        shape[axis] = -1
        out = []
        for name, arr in (("alpha", self.alpha), ("beta", self.beta)):
            if arr is None:
                out.append(None)
            elif arr.size not in (1, x.shape[axis]):
                raise self.error(f"{name} has {arr.size} values but the input has {x.shape[axis]} channels",
                                 f"{self.which}.{name}")
            else:
                out.append(arr.reshape(shape) if arr.size > 1 else arr[0])
        return out

    def forward(self, x):
        x = np.asarray(x, dtype=np.float32)
        a, b = self._coefficients(x)
        return (np.asarray(self.fn(x, a, b), dtype=np.float32),)

    def forward_train(self, x):
        x = np.asarray(x, dtype=np.float32)
        a, b = self._coefficients(x)
        if self.which == "ReLU":  # the common case: the gradient needs only the output's mask
            y = np.maximum(x, np.float32(0))
            return (y,), (None, y, a, b)
        y = np.asarray(self.fn(x, a, b), dtype=np.float32)
        return (y,), (x, y, a, b)

    def backward(self, cache, gy, *, need_input_grads: bool = True):
        x, y, a, b = cache
        if self.which == "ReLU":
            return (np.where(y > 0, gy, np.float32(0)),), {}
        return ((gy * self.grad(x, y, a, b)).astype(np.float32),), {}
