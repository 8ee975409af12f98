"""gather family, scatters, embeddings, oneHot, where*, band/triangular layers against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, nd_builder, rank5_builder, run

RNG = np.random.default_rng(17)
N = 2
DATA = RNG.standard_normal((N, 4, 5, 3)).astype(np.float32)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather(axis):
    idx = RNG.integers(-3, 3, (N, 2, 3)).astype(np.float32)
    b = nd_builder({"d": (4, 5, 3), "i": (2, 3)})
    b.add_gather("g", ["d", "i"], "y", axis=axis)
    (y,) = run(b, {"d": DATA, "i": idx})
    a = axis if axis >= 0 else 3 + axis
    ref = np.stack([np.take(DATA[n], idx[n].astype(int), axis=a) for n in range(N)])
    close(y, ref)


def test_gather_nd_and_along_axis():
    idx = np.stack([RNG.integers(0, 4, (N, 6)), RNG.integers(0, 5, (N, 6))], axis=-1).astype(np.float32)
    along = RNG.integers(0, 5, (N, 4, 2, 3)).astype(np.float32)
    b = nd_builder({"d": (4, 5, 3), "i": (6, 2), "a": (4, 2, 3)}, outputs=("y", "z"))
    b.add_gather_nd("g", ["d", "i"], "y")
    b.add_gather_along_axis("t", ["d", "a"], "z", axis=1)
    y, z = run(b, {"d": DATA, "i": idx, "a": along}, outputs=("y", "z"))
    ref = np.stack([DATA[n][idx[n, :, 0].astype(int), idx[n, :, 1].astype(int)] for n in range(N)])
    close(y, ref)
    close(z, np.take_along_axis(DATA, along.astype(int), axis=2))


MODES = {"UPDATE": None, "ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "DIV": np.divide,
         "MAX": np.maximum, "MIN": np.minimum}


def _loop_scatter(out, index, value, mode):
    if MODES[mode] is None:
        out[index] = value
    else:
        out[index] = MODES[mode](out[index], value)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_scatter(mode):
    idx = np.array([[3, 0], [1, 2]], np.float32)  # distinct indices per example
    upd = RNG.uniform(0.5, 2, (N, 4, 2, 3)).astype(np.float32)
    b = nd_builder({"c": (4, 5, 3), "i": (2,), "u": (4, 2, 3)})
    b.add_scatter("s", ["c", "i", "u"], "y", axis=1, mode=mode)
    (y,) = run(b, {"c": DATA, "i": idx, "u": upd})
    ref = DATA.astype(np.float64).copy()
    for n in range(N):
        for j, i in enumerate(idx[n].astype(int)):
            _loop_scatter(ref[n], (slice(None), i), upd[n, :, j], mode)
    close(y, ref)


@pytest.mark.parametrize("mode", ["UPDATE", "ADD", "MAX"])
def test_scatter_nd_and_along_axis(mode):
    idx = np.array([[[0, 1], [3, 4]], [[2, 2], [1, 0]]], np.float32)
    upd = RNG.standard_normal((N, 2, 3)).astype(np.float32)
    along_idx = np.stack([RNG.permutation(5)[:2] for _ in range(N * 4 * 3)]).reshape(N, 4, 3, 2)
    along_idx = along_idx.transpose(0, 1, 3, 2).astype(np.float32)  # (N, 4, 2, 3), distinct along axis 1
    along_upd = RNG.standard_normal((N, 4, 2, 3)).astype(np.float32)
    b = nd_builder({"c": (4, 5, 3), "i": (2, 2), "u": (2, 3), "ai": (4, 2, 3), "au": (4, 2, 3)},
                   outputs=("y", "z"))
    b.add_scatter_nd("s", ["c", "i", "u"], "y", mode=mode)
    b.add_scatter_along_axis("t", ["c", "ai", "au"], "z", axis=1, mode=mode)
    y, z = run(b, {"c": DATA, "i": idx, "u": upd, "ai": along_idx, "au": along_upd}, outputs=("y", "z"))
    ref = DATA.astype(np.float64).copy()
    for n in range(N):
        for j in range(2):
            _loop_scatter(ref[n], tuple(idx[n, j].astype(int)), upd[n, j], mode)
    close(y, ref)
    ref = DATA.astype(np.float64).copy()
    for n, c, j, k in np.ndindex(N, 4, 2, 3):
        _loop_scatter(ref[n, c], (int(along_idx[n, c, j, k]), k), along_upd[n, c, j, k], mode)
    close(z, ref)


def test_embeddings_and_one_hot():
    w = RNG.standard_normal((6, 10)).astype(np.float32)
    bias = RNG.standard_normal(6).astype(np.float32)
    idx = RNG.integers(0, 10, (N, 4)).astype(np.float32)
    b = nd_builder({"i": (4, 1)}, outputs=("e", "o"))
    b.add_embedding_nd("e", "i", "e", vocab_size=10, embedding_size=6, W=w, b=bias)
    b.add_one_hot("o", ["i"], "o", one_hot_vector_size=12, axis=1, on_value=5.0, off_value=-1.0)
    e, o = run(b, {"i": idx[..., None]}, outputs=("e", "o"))
    close(e, w.T[idx.astype(int)] + bias)
    ref = np.where(np.arange(12)[None, None, :, None] == idx[:, :, None, None], 5.0, -1.0)
    close(o, ref)
    b = rank5_builder({"i": (1,)})
    b.add_embedding("e", W=w, b=bias, input_dim=10, output_channels=6, has_bias=True, input_name="i", output_name="y")
    (y,) = run(b, {"i": idx[:, :1]})
    close(y.reshape(N, 6), w.T[idx[:, 0].astype(int)] + bias)


def test_where_and_triangles():
    x = RNG.integers(0, 2, (N, 3, 4)).astype(np.float32)
    x[1] = x[0]  # same count of non-zeros in both examples
    a, c = RNG.standard_normal((2, N, 3, 4)).astype(np.float32)
    m = RNG.standard_normal((N, 5, 5)).astype(np.float32)
    b = nd_builder({"x": (3, 4), "a": (3, 4), "c": (4,), "m": (5, 5)}, outputs=("nz", "w", "band", "lo", "up"))
    b.add_where_nonzero("nz", "x", "nz")
    b.add_where_broadcastable("w", ["x", "a", "c"], "w")
    b.add_matrix_band_part("band", "m", "band", num_lower=1, num_upper=-1)
    b.add_lower_triangular("lo", "m", "lo", k=-1)
    b.add_upper_triangular("up", "m", "up", k=2)
    nz, w, band, lo, up = run(b, {"x": x, "a": a, "c": c[:, 0], "m": m}, outputs=("nz", "w", "band", "lo", "up"))
    close(nz, np.stack([np.argwhere(x[n] != 0) for n in range(N)]))
    close(w, np.where(x != 0, a, c[:, 0][:, None, :]))
    mm, nn = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
    close(band, np.where(mm - nn <= 1, m, 0))
    close(lo, np.tril(m, -1))
    close(up, np.triu(m, 2))
