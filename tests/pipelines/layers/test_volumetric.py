"""convolution3d (incl. transposed, groups, dilation, padding modes), pooling3d, globalPooling3d vs PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, nd_builder, run

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(21)
X = RNG.standard_normal((2, 1, 4, 5, 6, 7)).astype(np.float32)  # N, batch 1, C=4, D, H, W


def _t(a):
    return torch.from_numpy(np.asarray(a, np.float64))


@pytest.mark.parametrize("padding,stride,dilation,groups", [
    ("valid", 1, 1, 1), ("same", 2, 1, 2), ("custom", 1, 2, 1), ("same", 1, 1, 4),
])
def test_convolution3d(padding, stride, dilation, groups):
    w = RNG.standard_normal((8, 4 // groups, 3, 2, 3)).astype(np.float32)
    bias = RNG.standard_normal(8).astype(np.float32)
    b = nd_builder({"x": (1, 4, 5, 6, 7)})
    b.add_convolution3d("c", input_channels=4, output_channels=8, depth=3, height=2, width=3, W=w, b=bias,
                        has_bias=True, groups=groups, stride_depth=stride, stride_height=stride, stride_width=stride,
                        dilation_depth=dilation, dilation_height=dilation, dilation_width=dilation,
                        padding_mode=padding, padding_front=1, padding_back=0, padding_top=1, padding_bottom=1,
                        padding_left=0, padding_right=2, input_name="x", output_name="y")
    (y,) = run(b, {"x": X})
    x = _t(X[:, 0])
    if padding == "custom":
        x = F.pad(x, (0, 2, 1, 1, 1, 0))
    elif padding == "same":
        pads = []
        for size, k in zip((7, 6, 5), (3, 2, 3)):  # W, H, D order for F.pad
            eff = dilation * (k - 1) + 1
            total = max((-(-size // stride) - 1) * stride + eff - size, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
    ref = F.conv3d(x, _t(w), _t(bias), stride=stride, dilation=dilation, groups=groups)
    close(y[:, 0], ref.numpy(), atol=1e-5)


@pytest.mark.parametrize("stride,groups", [(1, 1), (2, 2)])
def test_deconvolution3d(stride, groups):
    w = RNG.standard_normal((4, 6 // groups, 2, 3, 2)).astype(np.float32)
    b = nd_builder({"x": (1, 4, 5, 6, 7)})
    b.add_convolution3d("c", input_channels=4, output_channels=6, depth=2, height=3, width=2,
                        W=w.transpose(1, 0, 2, 3, 4), b=None, has_bias=False, groups=groups,
                        stride_depth=stride, stride_height=stride, stride_width=stride, padding_mode="custom",
                        padding_front=1, padding_back=0, padding_top=0, padding_bottom=1, padding_left=0,
                        padding_right=0, is_deconv=True, input_name="x", output_name="y")
    (y,) = run(b, {"x": X})
    full = F.conv_transpose3d(_t(X[:, 0]), _t(w), stride=stride, groups=groups).numpy()
    close(y[:, 0], full[:, :, 1:, :-1, :], atol=1e-5)


@pytest.mark.parametrize("kind,exclude", [("MAX", False), ("AVERAGE", False), ("AVERAGE", True)])
@pytest.mark.parametrize("padding", ["valid", "same", "custom"])
def test_pooling3d(kind, exclude, padding):
    x = np.abs(X) + 0.1  # positive: zero padding and -inf padding agree for MAX
    b = nd_builder({"x": (1, 4, 5, 6, 7)})
    b.add_pooling3d("p", "x", "y", pooling_type=kind, kernel_depth=2, kernel_height=3, kernel_width=2,
                    stride_depth=2, stride_height=1, stride_width=2, padding_mode=padding,
                    custom_padding_front=1, custom_padding_back=0, custom_padding_top=1, custom_padding_bottom=1,
                    custom_padding_left=0, custom_padding_right=1, average_pooling_count_excludes_padding=exclude)
    (y,) = run(b, {"x": x})
    t = _t(x[:, 0])
    if padding == "custom":
        pads = (0, 1, 1, 1, 1, 0)
    elif padding == "same":
        pads = []
        for size, k, s in zip((7, 6, 5), (2, 3, 2), (2, 1, 2)):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        pads = tuple(pads)
    else:
        pads = (0,) * 6
    padded = F.pad(t, pads)
    if kind == "MAX":
        ref = F.max_pool3d(padded, (2, 3, 2), (2, 1, 2))
    else:
        ref = F.avg_pool3d(padded, (2, 3, 2), (2, 1, 2))
        if exclude:
            counts = F.avg_pool3d(F.pad(torch.ones_like(t), pads), (2, 3, 2), (2, 1, 2))
            ref = ref / counts
    close(y[:, 0], ref.numpy())


@pytest.mark.parametrize("kind", ["MAX", "AVERAGE"])
def test_global_pooling3d(kind):
    b = nd_builder({"x": (1, 4, 5, 6, 7)})
    b.add_global_pooling3d("g", "x", "y", pooling_type=kind)
    (y,) = run(b, {"x": X})
    ref = X.max(axis=(-3, -2, -1), keepdims=True) if kind == "MAX" else X.mean(axis=(-3, -2, -1), keepdims=True)
    close(y, ref)
