"""slice, sliceStatic, sliceDynamic, sliceBySize, crop, reverse, reverseSeq, slidingWindows."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, nd_builder, rank5_builder, run

RNG = np.random.default_rng(15)
X = RNG.standard_normal((2, 5, 6, 7)).astype(np.float32)


@pytest.mark.parametrize("axis,start,end,stride", [("channel", 1, 4, 2), ("height", 0, -1, 1), ("width", 2, 7, 3)])
def test_legacy_slice(axis, start, end, stride):
    b = rank5_builder({"x": (5, 6, 7)})
    b.add_slice("s", "x", "y", axis=axis, start_index=start, end_index=end, stride=stride)
    (y,) = run(b, {"x": X})
    index = [slice(None)] * 4
    index[{"channel": 1, "height": 2, "width": 3}[axis]] = slice(start, end, stride)
    close(y[:, 0], X[tuple(index)])


def test_slice_static_matches_proto_example():
    x = RNG.standard_normal((2, 5, 5, 5)).astype(np.float32)
    b = nd_builder({"x": (5, 5, 5)}, outputs=("y", "z"))
    kw = dict(begin_ids=[1, 2, 3], end_ids=[3, -3, 2], strides=[2, 2, 2],
              begin_masks=[True, False, True], end_masks=[False, True, True])
    b.add_slice_static("s", "x", "y", **kw)
    b.add_slice_static("q", "x", "z", squeeze_masks=[False, True, False], **kw)
    y, z = run(b, {"x": x}, outputs=("y", "z"))
    close(y, x[:, :3:2, 2::2, ::2])
    close(z, x[:, :3:2, 2, ::2])


def test_slice_dynamic_and_by_size():
    b = nd_builder({"x": (5, 6, 7), "begin": (3,), "end": (3,), "b1": (1,)}, outputs=("y", "z"))
    b.add_slice_dynamic("s", ["x", "begin", "end"], "y", strides=[1, 2, -1], begin_masks=[False] * 3,
                        end_masks=[False] * 3, squeeze_masks=[False] * 3)
    b.add_slice_by_size("z", ["x", "b1"], "z", axis=2, size=3)
    begin = np.tile([1, 0, 5], (2, 1)).astype(np.float32)
    end = np.tile([4, 6, 1], (2, 1)).astype(np.float32)
    y, z = run(b, {"x": X, "begin": begin, "end": end, "b1": np.full((2, 1), 2.0)}, outputs=("y", "z"))
    close(y, X[:, 1:4, 0:6:2, 5:1:-1])
    close(z, X[:, :, :, 2:5])


def test_crop_one_and_two_inputs():
    b = rank5_builder({"x": (5, 6, 7), "ref": (5, 3, 4)}, outputs=("y", "z"))
    b.add_crop("c1", left=1, right=2, top=2, bottom=1, offset=[0, 0], input_names=["x"], output_name="y")
    b.add_crop("c2", left=0, right=0, top=0, bottom=0, offset=[1, 2], input_names=["x", "ref"], output_name="z")
    y, z = run(b, {"x": X, "ref": np.zeros((2, 5, 3, 4))}, outputs=("y", "z"))
    close(y[:, 0], X[:, :, 2:5, 1:5])
    close(z[:, 0], X[:, :, 1:4, 2:6])


def test_reverse_and_sliding_windows():
    b = nd_builder({"x": (5, 6, 7)}, outputs=("y", "z"))
    b.add_reverse("r", "x", "y", reverse_dim=[True, False, True])
    b.add_sliding_windows("w", "x", "z", axis=1, window_size=3, step=2)
    y, z = run(b, {"x": X}, outputs=("y", "z"))
    close(y, X[:, ::-1, :, ::-1])
    ref = np.stack([X[:, :, s:s + 3] for s in range(0, 4, 2)], axis=2)  # (N, 5, M, 3, 7)
    close(z, ref)


def test_reverse_seq_proto_example():
    data = np.arange(12, dtype=np.float32).reshape(1, 2, 3, 2)
    b = nd_builder({"x": (2, 3, 2), "lengths": (2,)})
    b.add_reverse_sequence("r", ["x", "lengths"], "y", batch_axis=0, seq_axis=1)
    (y,) = run(b, {"x": data, "lengths": np.array([[2, 3]], np.float32)})
    close(y[0], [[[2, 3], [0, 1], [4, 5]], [[10, 11], [8, 9], [6, 7]]])
