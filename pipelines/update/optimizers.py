"""Optimizers as pure functions: ``step(weights, grads, state) -> (weights, state)``.

The update equations are PyTorch's (``torch.optim.SGD`` with ``dampening=0``,
``nesterov=False``; ``torch.optim.Adam`` with ``amsgrad=False``), in float32 and in
the same order of operations, so N steps here equal N steps there:

- SGD: ``g += weight_decay * w``; ``buf = g`` on the first step, then
  ``buf = momentum * buf + g``; ``w -= lr * buf``.
- Adam: ``g += weight_decay * w``; ``m = beta1 m + (1 - beta1) g``;
  ``v = beta2 v + (1 - beta2) g^2``; ``w -= lr / (1 - beta1^t) * m /
  (sqrt(v) / sqrt(1 - beta2^t) + eps)``.

``weights`` and ``grads`` are dicts of arrays keyed alike; ``state`` is whatever
the previous ``step`` returned (``None`` to start). Inputs are never mutated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SGD", "Adam", "make_optimizer"]


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with (heavy-ball) momentum."""

    learning_rate: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0

    def step(self, weights: dict, grads: dict, state: dict | None, *, learning_rate: float | None = None):
        lr = np.float32(self.learning_rate if learning_rate is None else learning_rate)
        state = dict(state or {})
        new = {}
        for key, w in weights.items():
            g = grads[key].astype(np.float32, copy=False)
            if self.weight_decay:
                g = g + np.float32(self.weight_decay) * w
            if self.momentum:
                buf = state.get(key)
                buf = g.copy() if buf is None else np.float32(self.momentum) * buf + g
                state[key] = buf
                g = buf
            new[key] = w - lr * g
        return new, state


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba), bias-corrected as in PyTorch."""

    learning_rate: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0

    def step(self, weights: dict, grads: dict, state: dict | None, *, learning_rate: float | None = None):
        lr = self.learning_rate if learning_rate is None else learning_rate
        state = dict(state or {})
        t = state.get("__t__", 0) + 1
        state["__t__"] = t
        b1, b2 = np.float32(self.beta1), np.float32(self.beta2)
        step_size = lr / (1 - self.beta1 ** t)
        bc2_sqrt = math.sqrt(1 - self.beta2 ** t)
        new = {}
        for key, w in weights.items():
            g = grads[key].astype(np.float32, copy=False)
            if self.weight_decay:
                g = g + np.float32(self.weight_decay) * w
            m, v = state.get(key, (np.zeros_like(w), np.zeros_like(w)))
            m = m * b1 + g * (1 - b1)
            v = v * b2 + g * g * (1 - b2)
            state[key] = (m, v)
            denom = np.sqrt(v) / np.float32(bc2_sqrt) + np.float32(self.eps)
            new[key] = w - np.float32(step_size) * (m / denom)
        return new, state


def make_optimizer(name: str, **kwargs):
    """``"sgd"`` or ``"adam"`` with its hyper-parameters."""
    if name == "sgd":
        return SGD(**kwargs)
    if name == "adam":
        return Adam(**kwargs)
    raise ValueError(f"optimizer {name!r}, expected 'sgd' or 'adam'")
