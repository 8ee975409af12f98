"""Elementwise arithmetic, broadcastable, comparison and logical layers against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, nd_builder, rank5_builder, run

RNG = np.random.default_rng(10)
N = 3


@pytest.mark.parametrize("mode,ref", [
    ("ADD", lambda a, b: a + b), ("MULTIPLY", lambda a, b: a * b), ("AVE", lambda a, b: (a + b) / 2),
    ("MAX", np.maximum), ("MIN", np.minimum),
])
def test_legacy_elementwise(mode, ref):
    b = rank5_builder({"a": (2, 3, 4), "b": (2, 3, 4)})
    b.add_elementwise("op", ["a", "b"], "y", mode)
    a, c = RNG.standard_normal((2, N, 2, 3, 4)).astype(np.float32)
    (y,) = run(b, {"a": a, "b": c})
    close(y.reshape(N, 2, 3, 4), ref(a.astype(np.float64), c))


def test_legacy_add_broadcasts_channel_vector_and_alpha():
    b = rank5_builder({"a": (2, 3, 4), "b": (1, 3, 4)}, outputs=("y", "z"))
    b.add_elementwise("op", ["a", "b"], "y", "ADD")
    b.add_elementwise("op2", ["a"], "z", "MULTIPLY", alpha=2.5)
    a = RNG.standard_normal((N, 2, 3, 4)).astype(np.float32)
    c = RNG.standard_normal((N, 1, 3, 4)).astype(np.float32)
    y, z = run(b, {"a": a, "b": c}, outputs=("y", "z"))
    close(y.reshape(N, 2, 3, 4), a + c)
    close(z.reshape(N, 2, 3, 4), a * 2.5)


@pytest.mark.parametrize("cosine", [False, True])
def test_dot(cosine):
    b = rank5_builder({"a": (5,), "b": (5,)})
    b.add_elementwise("op", ["a", "b"], "y", "COS" if cosine else "DOT")
    a, c = RNG.standard_normal((2, N, 5))
    (y,) = run(b, {"a": a, "b": c})
    ref = (a * c).sum(1)
    if cosine:
        ref = ref / np.linalg.norm(a, axis=1) / np.linalg.norm(c, axis=1)
    close(y.reshape(N), ref)


@pytest.mark.parametrize("shape", [(1,), (2,), (2, 3, 4)])
def test_scale_and_bias(shape):
    b = rank5_builder({"x": (2, 3, 4)}, outputs=("y", "z"))
    w = RNG.standard_normal(shape).astype(np.float32)
    bias = RNG.standard_normal(shape).astype(np.float32)
    b.add_scale("s", w, bias, True, "x", "y", shape_scale=list(shape), shape_bias=list(shape))
    b.add_bias("b", bias, "x", "z", shape_bias=list(shape))
    x = RNG.standard_normal((N, 2, 3, 4)).astype(np.float32)
    y, z = run(b, {"x": x}, outputs=("y", "z"))
    bshape = (-1, 1, 1) if len(shape) == 1 else shape
    close(y.reshape(N, 2, 3, 4), x * w.reshape(bshape) + bias.reshape(bshape))
    close(z.reshape(N, 2, 3, 4), x + bias.reshape(bshape))


BINARY = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
    "floor_div": lambda a, b: np.floor(a / b), "mod": lambda a, b: np.mod(a, b),
    "pow": np.power, "max": np.maximum, "min": np.minimum,
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_broadcastable(name):
    b = nd_builder({"a": (2, 3, 4), "b": (3, 1)})
    getattr(b, f"add_{name}_broadcastable")("op", ["a", "b"], "y")
    a = RNG.uniform(0.5, 3, (N, 2, 3, 4)).astype(np.float32)
    c = RNG.uniform(0.5, 2, (N, 3, 1)).astype(np.float32)
    if name in ("mod", "floor_div"):
        a = a * np.sign(RNG.standard_normal(a.shape)).astype(np.float32)
    (y,) = run(b, {"a": a, "b": c})
    close(y, BINARY[name](a.astype(np.float64), c[:, None]))


@pytest.mark.parametrize("method,kwargs,ref", [
    ("add_equal", {}, np.equal), ("add_not_equal", {}, np.not_equal),
    ("add_less_than", {}, np.less), ("add_less_than", {"use_less_than_equal": True}, np.less_equal),
    ("add_greater_than", {}, np.greater), ("add_greater_than", {"use_greater_than_equal": True}, np.greater_equal),
])
def test_comparison(method, kwargs, ref):
    b = nd_builder({"a": (4, 5), "b": (5,)}, outputs=("y", "z"))
    getattr(b, method)("op", ["a", "b"], "y", **kwargs)
    getattr(b, method)("op1", ["a"], "z", alpha=1.0, **kwargs)
    a = RNG.integers(0, 3, (N, 4, 5)).astype(np.float32)
    c = RNG.integers(0, 3, (N, 5)).astype(np.float32)
    y, z = run(b, {"a": a, "b": c}, outputs=("y", "z"))
    close(y, ref(a, c[:, None]).astype(float))
    close(z, ref(a, 1.0).astype(float))


@pytest.mark.parametrize("mode,ref", [("AND", np.logical_and), ("OR", np.logical_or), ("XOR", np.logical_xor)])
def test_logical(mode, ref):
    b = nd_builder({"a": (6,), "b": (6,)}, outputs=("y", "z"))
    b.add_logical("op", ["a", "b"], "y", mode)
    b.add_logical("not", ["a"], "z", "NOT")
    a = RNG.integers(0, 2, (N, 6)).astype(np.float32) * 3
    c = RNG.integers(0, 2, (N, 6)).astype(np.float32)
    y, z = run(b, {"a": a, "b": c}, outputs=("y", "z"))
    close(y, ref(a != 0, c != 0).astype(float))
    close(z, (a == 0).astype(float))
