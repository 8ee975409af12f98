"""Loss functions of Core ML 3's update: categorical cross-entropy and mean squared error.

- ``categoricalCrossEntropyLossLayer``: ``input`` is a probability vector (the
  softmax output), ``target`` the true class index; the loss is
  ``-mean(log(p[target]))`` over the mini-batch. When ``input`` comes straight out
  of a softmax, the gradient is passed to the softmax's input as ``(p - onehot) / B``
  (the exact, stable form; see ``engine``).
- ``meanSquaredErrorLossLayer``: ``mean((input - target) ** 2)`` over every value of
  the mini-batch (PyTorch's ``MSELoss`` with ``reduction="mean"``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["cross_entropy", "cross_entropy_logits_grad", "mean_squared_error", "LOSSES"]

_TINY = np.float32(1e-30)


def _probs_2d(p):
    # channel axis: -3 of [..., C, 1, 1] blobs, else last
    if p.ndim >= 4:
        return np.moveaxis(p, -3, -1).reshape(p.shape[0], -1)
    return p.reshape(p.shape[0], -1)


def cross_entropy(probs: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Loss and its gradient with respect to ``probs``.

    Parameters
    ----------
    probs : np.ndarray [shape=(n_samples, ..., n_classes, 1, 1) or (n_samples, n_classes)]
    target : np.ndarray [shape=(n_samples,)], int class indices
    """
    p2 = _probs_2d(probs)
    rows = np.arange(p2.shape[0])
    picked = np.maximum(p2[rows, target], _TINY)
    loss = float(-np.mean(np.log(picked.astype(np.float64))))
    g2 = np.zeros_like(p2)
    g2[rows, target] = -1.0 / (picked * p2.shape[0])
    return loss, _restore(g2, probs)


def cross_entropy_logits_grad(probs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Gradient of the cross-entropy with respect to the logits of a softmax: ``(p - onehot) / B``."""
    p2 = _probs_2d(probs).copy()
    p2[np.arange(p2.shape[0]), target] -= 1.0
    p2 /= np.float32(p2.shape[0])
    return _restore(p2, probs)


def _restore(g2, like):
    if like.ndim >= 4:
        moved = list(np.moveaxis(like, -3, -1).shape)
        return np.moveaxis(g2.reshape(moved), -1, -3)
    return g2.reshape(like.shape)


def mean_squared_error(output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Loss and gradient of ``mean((output - target) ** 2)`` (``target`` reshaped like ``output``)."""
    diff = output - np.asarray(target, dtype=np.float32).reshape(output.shape)
    return float(np.mean(diff.astype(np.float64) ** 2)), (2.0 / diff.size) * diff


LOSSES = {"categoricalCrossEntropyLossLayer": cross_entropy, "meanSquaredErrorLossLayer": mean_squared_error}
