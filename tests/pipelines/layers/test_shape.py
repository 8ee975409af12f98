"""Reshape variants, flattenTo2D, permute, transpose, squeeze, expandDims, getShape, reorganizeData."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, nd_builder, rank5_builder, run

RNG = np.random.default_rng(14)
X = RNG.standard_normal((2, 4, 3, 6)).astype(np.float32)


@pytest.mark.parametrize("target,mode", [((2, 6, 6), "CHANNEL_FIRST"), ((1, 12, 1, 6), "CHANNEL_FIRST"),
                                         ((2, 6, 6), "CHANNEL_LAST")])
def test_legacy_reshape(target, mode):
    b = rank5_builder({"x": (4, 3, 6)})
    b.add_reshape("r", "x", "y", target_shape=target, mode=0 if mode == "CHANNEL_FIRST" else 1)
    (y,) = run(b, {"x": X})
    if mode == "CHANNEL_FIRST":
        ref = X.reshape(2, *target[-3:])
    else:  # [C, H, W] -> [H, W, C], reshape to [H', W', C'], back to [C', H', W']
        c, h, w = target[-3:]
        ref = X.transpose(0, 2, 3, 1).reshape(2, h, w, c).transpose(0, 3, 1, 2)
    close(y.reshape(ref.shape), ref)


def test_nd_reshapes():
    b = nd_builder({"x": (4, 3, 6), "like": (12, 6)}, outputs=("a", "b", "c", "d", "e"))
    b.add_reshape_static("s", "x", "a", output_shape=(6, -1))
    b.add_reshape_like("l", ["x", "like"], "b")
    b.add_get_shape("g", "like", "shape")
    b.add_reshape_dynamic("d", ["x", "shape"], "c")
    b.add_rank_preserving_reshape("p", "x", "d", output_shape=(0, 2, -1))
    b.add_flatten_to_2d("f", "x", "e", axis=2)
    a, bb, c, d, e = run(b, {"x": X, "like": np.zeros((2, 12, 6))}, outputs=("a", "b", "c", "d", "e"))
    close(a, X.reshape(2, 6, 12))
    close(bb, X.reshape(2, 12, 6))
    close(c, X.reshape(2, 12, 6))
    close(d, X.reshape(2, 4, 2, 9))
    close(e, X.reshape(2, 12, 6))


@pytest.mark.parametrize("axes", [(0, 3, 1, 2), (0, 2, 3, 1), (3, 1, 2, 0)])
def test_permute(axes):
    b = rank5_builder({"x": (4, 3, 6)})
    b.add_permute("p", axes, "x", "y")
    (y,) = run(b, {"x": X})
    ref = X[:, None].transpose(0, *[a + 1 for a in axes])  # [N, S=1, C, H, W]
    close(y, ref)


def test_transpose_squeeze_expand_getshape():
    x = RNG.standard_normal((2, 3, 1, 5)).astype(np.float32)
    b = nd_builder({"x": (3, 1, 5)}, outputs=("t", "s", "sa", "e", "g"))
    b.add_transpose("t", [2, 0, 1], "x", "t")
    b.add_squeeze("s", "x", "s", axes=[1])
    b.add_squeeze("sa", "x", "sa", squeeze_all=True)
    b.add_expand_dims("e", "x", "e", axes=[0, -1])
    b.add_get_shape("g", "x", "g")
    t, s, sa, e, g = run(b, {"x": x}, outputs=("t", "s", "sa", "e", "g"))
    close(t, x.transpose(0, 3, 1, 2))
    close(s, x[:, :, 0])
    close(sa, x[:, :, 0])
    close(e, x[:, None, :, :, :, None])
    close(g, np.array([[3, 1, 5]] * 2))


def _depth_to_space_reference(x, b):
    # from the definition in NeuralNetwork.proto: out[c, h*b+i, w*b+j] = in[(i*b+j)*C_out + c, h, w]
    n, c, h, w = x.shape
    c_out = c // (b * b)
    out = np.zeros((n, c_out, h * b, w * b), x.dtype)
    for i in range(b):
        for j in range(b):
            for k in range(c_out):
                out[:, k, i::b, j::b] = x[:, (i * b + j) * c_out + k]
    return out


def test_reorganize_data():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 8, 3, 4)).astype(np.float32)
    b = rank5_builder({"x": (8, 3, 4)}, outputs=("d", "p", "s"))
    b.add_reorganize_data("d", "x", "d", mode="DEPTH_TO_SPACE", block_size=2)
    b.add_reorganize_data("p", "x", "p", mode="PIXEL_SHUFFLE", block_size=2)
    b.add_reorganize_data("s", "d", "s", mode="SPACE_TO_DEPTH", block_size=2)
    d, p, s = run(b, {"x": x}, outputs=("d", "p", "s"))
    close(d[:, 0], _depth_to_space_reference(x, 2))
    close(p[:, 0], torch.nn.functional.pixel_shuffle(torch.from_numpy(x), 2).numpy())
    close(s[:, 0], x)
    # the proto's worked example: C=8, H=1, W=2
    example = np.arange(1, 17, dtype=np.float32).reshape(1, 8, 1, 2)
    b = rank5_builder({"x": (8, 1, 2)})
    b.add_reorganize_data("d", "x", "y", mode="DEPTH_TO_SPACE", block_size=2)
    (y,) = run(b, {"x": example})
    close(y[0, 0], [[[1, 5, 2, 6], [9, 13, 10, 14]], [[3, 7, 4, 8], [11, 15, 12, 16]]])
