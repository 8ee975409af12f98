"""Reduce layers (legacy and Core ML 3), argMax/argMin, topK, argSort, cumSum against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, nd_builder, rank5_builder, run

RNG = np.random.default_rng(13)
X = RNG.uniform(0.5, 1.5, (3, 4, 5, 6)).astype(np.float32)
X64 = X.astype(np.float64)

ND = {
    "sum": lambda x, a, k: x.sum(axis=a, keepdims=k), "mean": lambda x, a, k: x.mean(axis=a, keepdims=k),
    "prod": lambda x, a, k: x.prod(axis=a, keepdims=k), "max": lambda x, a, k: x.max(axis=a, keepdims=k),
    "min": lambda x, a, k: x.min(axis=a, keepdims=k), "l1": lambda x, a, k: np.abs(x).sum(axis=a, keepdims=k),
    "l2": lambda x, a, k: np.sqrt((x * x).sum(axis=a, keepdims=k)),
    "sumsquare": lambda x, a, k: (x * x).sum(axis=a, keepdims=k),
    "logsum": lambda x, a, k: np.log(x.sum(axis=a, keepdims=k)),
    "logsumexp": lambda x, a, k: np.log(np.exp(x).sum(axis=a, keepdims=k)),
}


@pytest.mark.parametrize("op", sorted(ND))
@pytest.mark.parametrize("axes,keep", [([1, -1], True), ([0], False)])
def test_reduce_nd(op, axes, keep):
    b = nd_builder({"x": (4, 5, 6)}, outputs=("y", "z"))
    getattr(b, f"add_reduce_{op}")("r", "x", "y", axes=axes, keepdims=keep)
    getattr(b, f"add_reduce_{op}")("all", "x", "z", reduce_all=True, keepdims=False)
    y, z = run(b, {"x": X}, outputs=("y", "z"))
    close(y, ND[op](X64, tuple(a + 1 if a >= 0 else a for a in axes), keep))
    close(z.reshape(-1), ND[op](X64, (1, 2, 3), False))


LEGACY = {
    "SUM": lambda x, a: x.sum(axis=a, keepdims=True), "AVG": lambda x, a: x.mean(axis=a, keepdims=True),
    "PROD": lambda x, a: x.prod(axis=a, keepdims=True),
    "LOGSUM": lambda x, a: np.log(x + 1e-6).sum(axis=a, keepdims=True),
    "SUMSQUARE": lambda x, a: (x * x).sum(axis=a, keepdims=True), "L1": lambda x, a: np.abs(x).sum(axis=a, keepdims=True),
    "L2": lambda x, a: np.sqrt((x * x).sum(axis=a, keepdims=True)), "MAX": lambda x, a: x.max(axis=a, keepdims=True),
    "MIN": lambda x, a: x.min(axis=a, keepdims=True),
    "ARGMAX": lambda x, a: np.expand_dims(x.argmax(axis=a[0]), a[0]),
}


@pytest.mark.parametrize("mode", sorted(LEGACY))
@pytest.mark.parametrize("axis,axes", [("C", (1,)), ("HW", (2, 3)), ("CHW", (1, 2, 3)), ("W", (3,))])
def test_reduce_legacy(mode, axis, axes):
    if mode == "ARGMAX" and len(axes) > 1:
        return
    b = rank5_builder({"x": (4, 5, 6)})
    b.add_reduce("r", "x", "y", axis=axis, mode=mode, epsilon=1e-6)
    (y,) = run(b, {"x": X})
    close(y[:, 0], LEGACY[mode](X64, axes))


@pytest.mark.parametrize("method,func", [("add_argmax", np.argmax), ("add_argmin", np.argmin)])
@pytest.mark.parametrize("keep", [True, False])
def test_arg_reduce(method, func, keep):
    b = nd_builder({"x": (4, 5, 6)})
    getattr(b, method)("a", "x", "y", axis=1, keepdims=keep)
    (y,) = run(b, {"x": X})
    ref = func(X, axis=2)
    close(y, np.expand_dims(ref, 2) if keep else ref)


@pytest.mark.parametrize("bottom", [False, True])
def test_topk(bottom):
    b = nd_builder({"x": (4, 5, 6)}, outputs=("v", "i"))
    b.add_topk("t", ["x"], ["v", "i"], k=3, axis=-1, use_bottom_k=bottom)
    v, i = run(b, {"x": X}, outputs=("v", "i"))
    order = np.argsort(X if bottom else -X, axis=-1)[..., :3]
    close(i, order)
    close(v, np.take_along_axis(X, order, -1))


@pytest.mark.parametrize("descending", [False, True])
def test_argsort(descending):
    b = nd_builder({"x": (4, 5, 6)})
    b.add_argsort("s", "x", "y", axis=2, descending=descending)
    (y,) = run(b, {"x": X})
    close(y, np.argsort(-X if descending else X, axis=3))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("exclusive", [False, True])
def test_cumsum(reverse, exclusive):
    b = nd_builder({"x": (4, 5, 6)})
    b.add_cumsum("c", ["x"], "y", axis=1, reverse=reverse, exclusive=exclusive)
    (y,) = run(b, {"x": X})
    x = X64[:, :, ::-1] if reverse else X64
    ref = np.cumsum(x, axis=2)
    if exclusive:
        ref = np.concatenate([np.zeros_like(ref[:, :, :1]), ref[:, :, :-1]], axis=2)
    close(y, ref[:, :, ::-1] if reverse else ref)
