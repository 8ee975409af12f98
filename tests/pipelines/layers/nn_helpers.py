"""Shared helpers for the layer tests: build a one-or-few-layer network with coremltools'
NeuralNetworkBuilder, run it in pippin, compare with an independent reference."""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
from coremltools.models import datatypes  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402

import pippin.pipelines as pp  # noqa: E402
from pippin.spec import loads  # noqa: E402

RTOL = 1e-5


def nd_builder(inputs: dict[str, tuple[int, ...]], outputs=("y",)) -> NeuralNetworkBuilder:
    """A builder with exact (ND) shape mapping; inputs are name -> per-example shape."""
    return NeuralNetworkBuilder(
        [(name, datatypes.Array(*shape)) for name, shape in inputs.items()],
        [(name, None) for name in outputs],
        disable_rank5_shape_mapping=True,
    )


def rank5_builder(inputs: dict[str, tuple[int, ...]], outputs=("y",)) -> NeuralNetworkBuilder:
    return NeuralNetworkBuilder(
        [(name, datatypes.Array(*shape)) for name, shape in inputs.items()],
        [(name, None) for name in outputs],
    )


def load(builder_or_spec):
    spec = getattr(builder_or_spec, "spec", builder_or_spec)
    return pp.load(loads(spec.SerializeToString()))


def run(builder, feeds: dict[str, np.ndarray], outputs=("y",)) -> list[np.ndarray]:
    """Run a built network on a batch; returns the raw output blobs (batch axis first)."""
    model = load(builder)
    blobs = model.run_layers(model.to_blobs({k: np.asarray(v, np.float32) for k, v in feeds.items()}))
    return [blobs[name] for name in outputs]


def close(actual, expected, rtol=RTOL, atol=1e-6):
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=rtol, atol=atol)
