"""Reductions: the legacy ``reduce`` layer, Core ML 3's ten reduce layers, argMax/argMin,
topK, argSort and cumSum. Indices come out as float32, as Core ML's blobs are float."""

from __future__ import annotations

import numpy as np
from scipy import special

from .base import Layer, register
from .common import nd_axis

_REDUCERS = {
    "Sum": lambda x, axes, keep: x.sum(axis=axes, keepdims=keep, dtype=np.float64),
    "Mean": lambda x, axes, keep: x.mean(axis=axes, keepdims=keep, dtype=np.float64),
    "Prod": lambda x, axes, keep: x.prod(axis=axes, keepdims=keep, dtype=np.float64),
    "Max": lambda x, axes, keep: x.max(axis=axes, keepdims=keep),
    "Min": lambda x, axes, keep: x.min(axis=axes, keepdims=keep),
    "L1": lambda x, axes, keep: np.abs(x).sum(axis=axes, keepdims=keep, dtype=np.float64),
    "L2": lambda x, axes, keep: np.sqrt((x.astype(np.float64) ** 2).sum(axis=axes, keepdims=keep)),
    "SumSquare": lambda x, axes, keep: (x.astype(np.float64) ** 2).sum(axis=axes, keepdims=keep),
    "LogSum": lambda x, axes, keep: np.log(x.sum(axis=axes, keepdims=keep, dtype=np.float64)),
    "LogSumExp": lambda x, axes, keep: special.logsumexp(x.astype(np.float64), axis=axes, keepdims=keep),
}


def reduce(x: np.ndarray, *, op: str, axes: tuple[int, ...], keep_dims: bool) -> np.ndarray:
    """Reduce ``x`` over array ``axes`` with ``op`` (a key of ``_REDUCERS``)."""
    return np.asarray(_REDUCERS[op](x, axes, keep_dims), dtype=np.float32)


class _ReduceND(Layer):
    op = "Sum"

    def forward(self, x):
        p = self.p
        if p.reduceAll or not len(p.axes):
            axes = tuple(range(1, x.ndim))
        else:
            axes = tuple(sorted({nd_axis(a, x.ndim) for a in p.axes}))
        y = reduce(x, op=self.op, axes=axes, keep_dims=p.keepDims)
        return (y.reshape(-1, 1) if y.ndim == 1 else y,)


for _op in _REDUCERS:
    _kind = "reduce" + _op
    register(type(_kind[0].upper() + _kind[1:], (_ReduceND,), {
        "kind": _kind, "op": _op,
        "__doc__": f"{_op} over ``axes`` (or every axis with ``reduceAll``); ``keepDims`` keeps them as size 1.",
    }))

_LEGACY_OPS = {0: "Sum", 1: "Mean", 2: "Prod", 3: "LogSum", 4: "SumSquare", 5: "L1", 6: "L2", 7: "Max", 8: "Min"}
_LEGACY_AXES = {0: (-3, -2, -1), 1: (-2, -1), 2: (-3,), 3: (-2,), 4: (-1,)}
ARGMAX = 9


@register
class Reduce(Layer):
    """Legacy reduce over C, H, W, (H, W) or (C, H, W); LOGSUM is ``sum(log(x + epsilon))``;
    the reduced axes stay as size 1."""

    kind = "reduce"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.reduce
        if p.mode not in _LEGACY_OPS and p.mode != ARGMAX:
            raise self.error(f"unknown mode {p.mode}", "mode")
        if p.mode == ARGMAX and p.axis not in (2, 3, 4):
            raise self.error("ARGMAX needs axis C, H or W", "axis")
        self.mode, self.axes, self.epsilon = int(p.mode), _LEGACY_AXES[int(p.axis)], p.epsilon

    def forward(self, x):
        axes = tuple(x.ndim + a for a in self.axes)
        if self.mode == ARGMAX:
            return (np.expand_dims(np.argmax(x, axis=axes[0]), axes[0]).astype(np.float32),)
        if self.mode == 3:
            return (np.log(x.astype(np.float64) + self.epsilon).sum(axis=axes, keepdims=True).astype(np.float32),)
        return (reduce(x, op=_LEGACY_OPS[self.mode], axes=axes, keep_dims=True),)


class _ArgReduce(Layer):
    func = staticmethod(np.argmax)

    def forward(self, x):
        p = self.p
        axis = nd_axis(p.axis, x.ndim)
        y = self.func(x, axis=axis)
        if not p.removeDim or x.ndim == 2:  # a rank-1 example keeps its one axis
            y = np.expand_dims(y, axis)
        return (y.astype(np.float32),)


@register
class ArgMax(_ArgReduce):
    """Index of the largest value along ``axis`` (the axis removed when ``removeDim``)."""

    kind = "argMax"


@register
class ArgMin(_ArgReduce):
    """Index of the smallest value along ``axis`` (the axis removed when ``removeDim``)."""

    kind = "argMin"
    func = staticmethod(np.argmin)


def top_k(x: np.ndarray, *, k: int, axis: int, bottom: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest (smallest when ``bottom``) values along ``axis``, sorted, with their indices."""
    order = np.argsort(x if bottom else -x, axis=axis, kind="stable")
    indices = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, indices, axis=axis), indices.astype(np.float32)


@register
class TopK(Layer):
    """Top (or bottom) K values and their indices along ``axis``; K from the parameter or a second input."""

    kind = "topK"

    def forward(self, x, k=None):
        p = self.p
        k = int(np.asarray(k).reshape(-1)[0]) if k is not None else int(p.K)
        axis = nd_axis(p.axis, x.ndim)
        return top_k(x, k=k, axis=axis, bottom=p.useBottomK)


@register
class ArgSort(Layer):
    """Indices that sort the values along ``axis`` (ascending, or descending)."""

    kind = "argSort"

    def forward(self, x):
        p = self.p
        axis = nd_axis(p.axis, x.ndim)
        order = np.argsort(-x if p.descending else x, axis=axis, kind="stable")
        return (order.astype(np.float32),)


def cumulative_sum(x: np.ndarray, *, axis: int, exclusive: bool, reverse: bool) -> np.ndarray:
    """Cumulative sum along ``axis``; ``exclusive`` leaves out each element itself."""
    if reverse:
        x = np.flip(x, axis=axis)
    out = np.cumsum(x, axis=axis, dtype=np.float64)
    if exclusive:
        out = out - x
    if reverse:
        out = np.flip(out, axis=axis)
    return out.astype(np.float32)


@register
class CumSum(Layer):
    """Cumulative sum along ``axis`` (from the parameter or a second input), optionally reversed or exclusive."""

    kind = "cumSum"

    def forward(self, x, axis=None):
        p = self.p
        axis = int(np.asarray(axis).reshape(-1)[0]) if axis is not None else int(p.axis)
        return (cumulative_sum(x, axis=nd_axis(axis, x.ndim), exclusive=p.excludeFinalSum, reverse=p.reverse),)
