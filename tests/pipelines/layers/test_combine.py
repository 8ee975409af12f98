"""split, splitND, concatND, stack, tile, padding, constantPad."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, nd_builder, rank5_builder, run

RNG = np.random.default_rng(16)
X = RNG.standard_normal((2, 6, 3, 4)).astype(np.float32)


def test_split_legacy_and_nd():
    b = rank5_builder({"x": (6, 3, 4)}, outputs=("a", "b", "c"))
    b.add_split("s", "x", ["a", "b", "c"])
    a, bb, c = run(b, {"x": X}, outputs=("a", "b", "c"))
    for i, part in enumerate((a, bb, c)):
        close(part[:, 0], X[:, 2 * i:2 * i + 2])
    b = nd_builder({"x": (6, 3, 4)}, outputs=("a", "b", "c", "d"))
    b.add_split_nd("s", "x", ["a", "b"], axis=-1, num_splits=2)
    b.add_split_nd("t", "x", ["c", "d"], axis=0, split_sizes=[1, 5])
    a, bb, c, d = run(b, {"x": X}, outputs=("a", "b", "c", "d"))
    close(a, X[..., :2]), close(bb, X[..., 2:]), close(c, X[:, :1]), close(d, X[:, 1:])


@pytest.mark.parametrize("interleave", [False, True])
def test_concat_nd(interleave):
    y_in = RNG.standard_normal((2, 6, 3, 4)).astype(np.float32)
    b = nd_builder({"x": (6, 3, 4), "w": (6, 3, 4)})
    b.add_concat_nd("c", ["x", "w"], "y", axis=1, interleave=interleave)
    (y,) = run(b, {"x": X, "w": y_in})
    if interleave:
        ref = np.empty((2, 6, 6, 4), np.float32)
        ref[:, :, 0::2], ref[:, :, 1::2] = X, y_in
    else:
        ref = np.concatenate([X, y_in], axis=2)
    close(y, ref)


def test_stack_and_tile():
    b = nd_builder({"x": (6, 3, 4), "w": (6, 3, 4), "reps": (3,)}, outputs=("s", "t", "u"))
    b.add_stack("s", ["x", "w"], "s", axis=-1)
    b.add_tile("t", "x", "t", reps=[2, 3])
    b.add_tile("u", ["x", "reps"], "u")
    s, t, u = run(b, {"x": X, "w": -X, "reps": np.tile([2, 1, 2], (2, 1))}, outputs=("s", "t", "u"))
    close(s, np.stack([X, -X], axis=-1))
    close(t, np.tile(X, (1, 1, 2, 3)))
    close(u, np.tile(X, (1, 2, 1, 2)))


@pytest.mark.parametrize("kind,np_mode", [("constant", "constant"), ("reflection", "reflect"), ("replication", "edge")])
def test_padding(kind, np_mode):
    b = rank5_builder({"x": (6, 3, 4)})
    b.add_padding("p", left=2, right=1, top=2, bottom=0, value=1.5, input_name="x", output_name="y", padding_type=kind)
    (y,) = run(b, {"x": X})
    kw = {"constant_values": 1.5} if kind == "constant" else {}
    close(y[:, 0], np.pad(X, [(0, 0), (0, 0), (2, 0), (2, 1)], mode=np_mode, **kw))


def test_constant_pad_both_modes():
    x = RNG.standard_normal((2, 20, 10)).astype(np.float32)
    b = nd_builder({"x": (20, 10)}, outputs=("y", "z"))
    b.add_constant_pad("p", ["x"], "y", value=-2.0, pad_amounts=[0, 1, 4, 0])
    b.add_constant_pad("q", ["x"], "z", value=3.0, pad_to_given_output_size_mode=True, pad_amounts=[0, 21, 14, 0])
    y, z = run(b, {"x": x}, outputs=("y", "z"))
    close(y, np.pad(x, [(0, 0), (0, 1), (4, 0)], constant_values=-2.0))
    close(z, np.pad(x, [(0, 0), (0, 1), (4, 0)], constant_values=3.0))
