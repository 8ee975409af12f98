"""mvn, l2normalize, lrn, layerNormalization, softmaxND against NumPy / PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, nd_builder, rank5_builder, run

RNG = np.random.default_rng(12)
X = RNG.standard_normal((3, 4, 5, 6)).astype(np.float32)


@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("variance", [False, True])
def test_mvn(across, variance):
    b = rank5_builder({"x": (4, 5, 6)})
    b.add_mvn("m", "x", "y", across_channels=across, normalize_variance=variance, epsilon=1e-4)
    (y,) = run(b, {"x": X})
    x = X.astype(np.float64)
    axes = (1, 2, 3) if across else (2, 3)
    ref = x - x.mean(axis=axes, keepdims=True)
    if variance:
        ref = ref / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-4)
    close(y.reshape(X.shape), ref, rtol=1e-5, atol=1e-5)


def test_l2_normalize():
    b = rank5_builder({"x": (4, 5, 6)})
    b.add_l2_normalize("l", "x", "y", epsilon=1e-3)
    (y,) = run(b, {"x": X})
    x = X.astype(np.float64)
    close(y.reshape(X.shape), x / np.sqrt((x ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-3))


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn(size):
    torch = pytest.importorskip("torch")
    b = rank5_builder({"x": (4, 5, 6)})
    b.add_lrn("l", "x", "y", alpha=0.3, beta=0.75, local_size=size, k=2.0)
    (y,) = run(b, {"x": X})
    ref = torch.nn.functional.local_response_norm(torch.from_numpy(X.astype(np.float64)), size, 0.3, 0.75, 2.0)
    close(y.reshape(X.shape), ref.numpy())


def test_layer_normalization():
    torch = pytest.importorskip("torch")
    gamma = RNG.standard_normal((5, 6)).astype(np.float32)
    beta = RNG.standard_normal((5, 6)).astype(np.float32)
    b = nd_builder({"x": (4, 5, 6)})
    b.add_layer_normalization("ln", "x", "y", normalized_shape=[5, 6], gamma=gamma, beta=beta, eps=1e-4)
    (y,) = run(b, {"x": X})
    ref = torch.nn.functional.layer_norm(torch.from_numpy(X.astype(np.float64)), (5, 6),
                                         torch.from_numpy(gamma.astype(np.float64)),
                                         torch.from_numpy(beta.astype(np.float64)), eps=1e-4)
    close(y, ref.numpy(), atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_nd(axis):
    b = nd_builder({"x": (4, 5, 6)})
    b.add_softmax_nd("s", "x", "y", axis=axis)
    (y,) = run(b, {"x": X})
    ax = axis + 1 if axis >= 0 else axis
    e = np.exp(X.astype(np.float64) - X.max(axis=ax, keepdims=True))
    close(y, e / e.sum(axis=ax, keepdims=True))
