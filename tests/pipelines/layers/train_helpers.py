"""Helpers for the trainable-layer tests: build one layer with coremltools' builder,
run it forward in pippin, and check its gradients against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
from coremltools.models import datatypes  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402

import pippin.pipelines as pp  # noqa: E402
from pippin.spec import loads  # noqa: E402


def builder(shape, *, exact=False, inputs=None):
    """A coremltools builder with input(s) 'x' (or ``inputs``: name -> shape) and output 'y'."""
    inputs = inputs or {"x": shape}
    return NeuralNetworkBuilder([(n, datatypes.Array(*s)) for n, s in inputs.items()], [("y", None)],
                                disable_rank5_shape_mapping=exact)


def model_of(b):
    return pp.load(loads(b.spec.SerializeToString()))


def forward(b, feeds):
    """Run the built network in pippin on a batch; returns blob 'y' (internal layout)."""
    model = model_of(b)
    blobs = model.run_layers(model.to_blobs({k: np.asarray(v, np.float32) for k, v in feeds.items()}))
    return blobs["y"], model


def blob(x, exact):
    """A batch [N, *shape] as the internal blob: rank-5 [N, 1, C, H, W] unless exact."""
    x = np.asarray(x, np.float32)
    if exact:
        return x
    return x.reshape(x.shape[0], 1, *x.shape[1:]) if x.ndim == 4 else x.reshape(x.shape[0], 1, x.shape[1], 1, 1)


def _loss(layer, xs, r):
    (y,), _ = layer.forward_train(*xs)
    return float(np.sum(y.astype(np.float64) * r))


def check_gradients(layer, xs, *, params=(), eps=1e-2, rtol=2e-2, seed=0, n_probe=12):
    """Compare ``backward`` with central differences of ``sum(y * r)`` at random entries."""
    rng = np.random.default_rng(seed)
    xs = [np.asarray(x, np.float32) for x in xs]
    (y,), cache = layer.forward_train(*xs)
    r = rng.standard_normal(y.shape).astype(np.float32)
    gxs, pgrads = layer.backward(cache, r)
    targets = [("input", i, xs[i], gxs[i]) for i in range(len(xs))]
    targets += [("param", p, layer.params[p], pgrads[p]) for p in params]
    for kind, key, arr, grad in targets:
        assert grad is not None and grad.shape == arr.shape, (kind, key)
        flat = arr.reshape(-1)
        picks = rng.choice(flat.size, size=min(n_probe, flat.size), replace=False)
        for i in picks:
            old = flat[i]
            flat[i] = old + eps
            up = _loss(layer, xs, r)
            flat[i] = old - eps
            down = _loss(layer, xs, r)
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            analytic = float(np.asarray(grad).reshape(-1)[i])
            scale = max(1.0, abs(numeric))
            assert abs(numeric - analytic) <= rtol * scale, (kind, key, i, numeric, analytic)
