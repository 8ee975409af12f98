"""Elementwise unary layers against NumPy / math definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nn_helpers import close, nd_builder, run

RNG = np.random.default_rng(11)
X = RNG.uniform(-0.9, 0.9, (3, 4, 5)).astype(np.float32)

ELEMENTWISE = {
    "ceil": (np.ceil, 3), "floor": (np.floor, 3), "sign": (np.sign, 1), "round": (np.round, 3),
    "exp2": (np.exp2, 1), "sin": (np.sin, 1), "cos": (np.cos, 1), "tan": (np.tan, 1), "asin": (np.arcsin, 1),
    "acos": (np.arccos, 1), "atan": (np.arctan, 1), "sinh": (np.sinh, 1), "cosh": (np.cosh, 1),
    "tanh": (np.tanh, 1), "asinh": (np.arcsinh, 1), "acosh": (np.arccosh, None), "atanh": (np.arctanh, 1),
    "erf": (np.vectorize(math.erf), 1),
}


@pytest.mark.parametrize("kind", sorted(ELEMENTWISE))
def test_elementwise(kind):
    ref, scale = ELEMENTWISE[kind]
    x = X * scale + 0.01 if scale is not None else 1.5 + np.abs(X)
    b = nd_builder({"x": (4, 5)})
    getattr(b, f"add_{kind}")("op", "x", "y")
    (y,) = run(b, {"x": x})
    close(y, ref(x.astype(np.float64)))


@pytest.mark.parametrize("mode", ["EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"])
def test_gelu(mode):
    torch = pytest.importorskip("torch")
    x = X * 4
    b = nd_builder({"x": (4, 5)})
    b.add_gelu("g", "x", "y", mode=mode)
    (y,) = run(b, {"x": x})
    t = torch.from_numpy(x.astype(np.float64))
    if mode == "EXACT":
        ref = torch.nn.functional.gelu(t)
    elif mode == "TANH_APPROXIMATION":
        ref = torch.nn.functional.gelu(t, approximate="tanh")
    else:
        ref = t * torch.sigmoid(1.702 * t)
    close(y, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_clip_and_clamped_relu():
    x = X * 10
    b = nd_builder({"x": (4, 5)}, outputs=("y", "z"))
    b.add_clip("c", "x", "y", min_value=-2.0, max_value=3.0)
    b.add_clamped_relu("r", "x", "z", alpha=0.1, beta=4.0)
    y, z = run(b, {"x": x}, outputs=("y", "z"))
    close(y, np.clip(x, -2, 3))
    close(z, np.minimum(4.0, np.where(x >= 0, x, 0.1 * x.astype(np.float64))))


@pytest.mark.parametrize("mode,kwargs,ref", [
    ("sqrt", {}, lambda z: np.sqrt(z)),
    ("rsqrt", {"epsilon": 1e-3}, lambda z: 1 / np.sqrt(z + 1e-3)),
    ("inverse", {"epsilon": 1e-3}, lambda z: 1 / (z + 1e-3)),
    ("power", {"alpha": 2.5}, lambda z: z ** 2.5),
    ("exp", {}, np.exp),
    ("log", {"epsilon": 1e-3}, lambda z: np.log(z + 1e-3)),
    ("abs", {}, np.abs),
    ("threshold", {"alpha": 1.0}, lambda z: np.maximum(z, 1.0)),
])
def test_unary(mode, kwargs, ref):
    x = np.abs(X) + 0.1 if mode != "abs" else X
    b = nd_builder({"x": (4, 5)})
    b.add_unary("u", "x", "y", mode, scale=1.5, shift=0.25, **kwargs)
    (y,) = run(b, {"x": x})
    close(y, ref(1.5 * x.astype(np.float64) + 0.25), rtol=1e-5)
