"""Small helpers shared by the inference layer families (axes, broadcasting, weights).

Axis convention (package docstring): a Core ML axis ``a`` of an ND layer refers to
array axis ``a + 1`` when ``a >= 0`` (axis 0 is our batch) and to ``a`` when negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .weights import read_weights

__all__ = ["nd_axis", "align", "batch_broadcast", "weights_of", "to_float", "batch_of"]


def nd_axis(axis: int, ndim: int) -> int:
    """The array axis (non-negative) of Core ML axis ``axis`` in a blob with ``ndim`` axes (batch included)."""
    axis = int(axis)
    return axis + 1 if axis >= 0 else ndim + axis


def align(*arrays: np.ndarray) -> list[np.ndarray]:
    """Give every array the same rank by inserting unit axes right after the batch axis.

    Core ML broadcasts the example tensors numpy-style (aligned on their last axis);
    our batch axis must stay first, so shorter examples are padded after it.
    """
    rank = max(a.ndim for a in arrays)
    return [a.reshape(a.shape[:1] + (1,) * (rank - a.ndim) + a.shape[1:]) if a.ndim < rank else a for a in arrays]


def batch_broadcast(*arrays: np.ndarray) -> list[np.ndarray]:
    """``align`` then ``np.broadcast_arrays``."""
    return list(np.broadcast_arrays(*align(*arrays)))


def to_float(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def batch_of(*arrays: np.ndarray | None) -> int:
    """The batch size of the first non-None array (1 when none)."""
    for a in arrays:
        if a is not None:
            return a.shape[0]
    return 1


def weights_of(layer: Any, field: str, weight_params: Any, *, shape: tuple[int, ...] | None = None,
               count: int | None = None) -> np.ndarray:
    """``read_weights`` with the layer's location in errors."""
    return read_weights(weight_params, shape=shape, count=count, where=f"{layer.where}.{layer.kind}.{field}")
