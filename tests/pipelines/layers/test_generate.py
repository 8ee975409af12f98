"""Constants, fills, broadcasts, ranges, random layers, batchedMatmul."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, load, nd_builder, rank5_builder, run

RNG = np.random.default_rng(18)
N = 3


def test_constants_fill_broadcast_range():
    c = RNG.standard_normal((2, 3)).astype(np.float32)
    x = RNG.standard_normal((N, 4, 1, 3)).astype(np.float32)
    b = nd_builder({"x": (4, 1, 3)}, outputs=("c", "fl", "fs", "fd", "bl", "bs", "bd", "rs", "rd", "sum"))
    b.add_load_constant_nd("c", "c", constant_value=c, shape=(2, 3))
    b.add_fill_like("fl", "x", "fl", value=2.5)
    b.add_fill_static("fs", "fs", output_shape=(2, 2), value=-1.0)
    b.add_get_shape("g", "x", "shape")
    b.add_fill_dynamic("fd", "shape", "fd", value=7.0)
    b.add_broadcast_to_like("bl", ["c", "x"], "bl")
    b.add_broadcast_to_static("bs", "c", "bs", output_shape=(5, 2, 3))
    b.add_broadcast_to_dynamic("bd", ["c", "shape2"], "bd")
    b.add_fill_static("s2", "shape2", output_shape=(1,), value=0.0)  # replaced below by a constant shape
    b.add_range_static("rs", "rs", end=5, start=1, step=1.5)
    b.add_range_dynamic("rd", ["end"], "rd", start=2, step=2)
    b.add_load_constant_nd("end", "end", constant_value=np.array([9.0]), shape=(1,))
    b.add_add_broadcastable("sum", ["x", "c"], "sum")
    # shape2 = [4, 2, 3] as a constant
    spec = b.spec
    for layer in spec.neuralNetwork.layers:
        if layer.name == "s2":
            layer.ClearField("fillStatic")
            layer.loadConstantND.shape.append(3)
            layer.loadConstantND.data.floatValue.extend([4, 2, 3])
    # constants first so later layers can read them
    order = ["c", "s2", "end"]
    layers = sorted(spec.neuralNetwork.layers, key=lambda l: (l.name not in order, order.index(l.name) if l.name in order else 0))
    del spec.neuralNetwork.layers[:]
    spec.neuralNetwork.layers.extend(layers)
    model = load(spec)
    blobs = model.run_layers(model.to_blobs({"x": x}))
    close(blobs["c"], np.broadcast_to(c, (N, 2, 3)))
    close(blobs["fl"], np.full(x.shape, 2.5))
    close(blobs["fs"], np.full((N, 2, 2), -1.0))
    close(blobs["fd"], np.full((N, 4, 1, 3), 7.0))
    close(blobs["bl"], np.broadcast_to(c[None, None], (N, 4, 2, 3)))
    close(blobs["bs"], np.broadcast_to(c, (N, 5, 2, 3)))
    close(blobs["bd"], np.broadcast_to(c, (N, 4, 2, 3)))
    close(blobs["rs"], np.tile(np.arange(1, 5, 1.5), (N, 1)))
    close(blobs["rd"], np.tile(np.arange(2, 9, 2), (N, 1)))
    close(blobs["sum"], x + c[None, None])


def test_legacy_load_constant():
    c = RNG.standard_normal((2, 1, 3)).astype(np.float32)
    b = rank5_builder({"x": (2, 1, 3)})
    b.add_load_constant("k", "k", constant_value=c, shape=(2, 1, 3))
    b.add_elementwise("add", ["x", "k"], "y", "ADD")
    x = RNG.standard_normal((N, 2, 1, 3)).astype(np.float32)
    (y,) = run(b, {"x": x})
    close(y[:, 0], x + c)


@pytest.mark.parametrize("kind", ["normal", "uniform", "bernoulli"])
def test_random_layers_seeded_and_distributed(kind):
    b = nd_builder({"x": (200, 50)}, outputs=("like", "static", "dyn"))
    kw = {"normal": dict(mean=1.5, stddev=2.0), "uniform": dict(minval=-1.0, maxval=3.0),
          "bernoulli": dict(prob=0.3)}[kind]
    getattr(b, f"add_random_{kind}_like")("l", "x", "like", seed=7, **kw)
    getattr(b, f"add_random_{kind}_static")("s", "static", output_shape=(100, 100), seed=8, **kw)
    b.add_get_shape("g", "x", "shape")
    getattr(b, f"add_random_{kind}_dynamic")("d", ["shape"], "dyn", seed=9, **kw)
    x = np.zeros((2, 200, 50), np.float32)
    first = run(b, {"x": x}, outputs=("like", "static", "dyn"))
    second = run(b, {"x": x}, outputs=("like", "static", "dyn"))
    mean, std = {"normal": (1.5, 2.0), "uniform": (1.0, 4 / np.sqrt(12)), "bernoulli": (0.3, np.sqrt(0.21))}[kind]
    for a, c in zip(first, second):
        np.testing.assert_array_equal(a, c)  # same seed, same numbers
        assert abs(a.mean() - mean) < 5 * std / np.sqrt(a.size)
        assert abs(a.std() - std) < 0.05 * std
    assert first[0].shape == (2, 200, 50) and first[1].shape == (2, 100, 100) and first[2].shape == (2, 200, 50)
    if kind == "uniform":
        assert first[0].min() >= -1 and first[0].max() < 3


def test_categorical_distribution_frequencies():
    logits = np.log(np.array([[0.1, 0.2, 0.7]], np.float32))
    b = nd_builder({"x": (3,)})
    b.add_categorical_distribution("c", "x", "y", num_samples=20000, is_logits=True, seed=3)
    (y,) = run(b, {"x": logits})
    freq = np.bincount(y.astype(int).ravel(), minlength=3) / y.size
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.015)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_batched_matmul_two_inputs(ta, tb):
    a = RNG.standard_normal((N, 2, 4, 5)).astype(np.float32)
    c = RNG.standard_normal((N, 5, 3)).astype(np.float32)
    a_in = np.swapaxes(a, -1, -2) if ta else a
    c_in = np.swapaxes(c, -1, -2) if tb else c
    b = nd_builder({"a": a_in.shape[1:], "b": c_in.shape[1:]})
    b.add_batched_mat_mul("m", ["a", "b"], "y", transpose_a=ta, transpose_b=tb)
    (y,) = run(b, {"a": a_in, "b": c_in})
    close(y, np.matmul(a.astype(np.float64), c[:, None]), rtol=1e-5, atol=1e-5)


def test_batched_matmul_weights():
    w = RNG.standard_normal((5, 3)).astype(np.float32)
    bias = RNG.standard_normal(3).astype(np.float32)
    a = RNG.standard_normal((N, 2, 4, 5)).astype(np.float32)
    b = nd_builder({"a": (2, 4, 5)})
    b.add_batched_mat_mul("m", ["a"], "y", weight_matrix_rows=5, weight_matrix_columns=3, W=w, bias=bias)
    (y,) = run(b, {"a": a})
    close(y, a.astype(np.float64) @ w + bias, rtol=1e-5, atol=1e-5)
