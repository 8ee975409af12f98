"""Contract over every registered layer kind (``LAYERS``) and the README layer table."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines import PipelineError
from pippin.pipelines.layers import LAYERS, Layer, LayerContext
from pippin.pipelines.layers.table import all_layer_kinds, layer_table
from pippin.spec import SpecError
from pippin.spec._proto import NeuralNetwork_pb2

KINDS = all_layer_kinds()


def test_there_are_158_kinds_and_at_least_100_run():
    assert len(KINDS) == 158
    assert len(LAYERS) >= 100


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_registered_kind_contract(kind):
    cls = LAYERS[kind]
    assert kind in KINDS, f"{kind!r} is not a NeuralNetworkLayer.layer oneof member"
    assert issubclass(cls, Layer) and cls.kind == kind
    assert (cls.__doc__ or "").strip(), f"{cls.__name__} has no docstring stating Core ML's definition"
    assert cls.forward is not Layer.forward or getattr(cls, "controls_flow", False)
    # a layer whose parameters are all unset either builds or fails with a located SpecError/PipelineError
    spec = NeuralNetwork_pb2.NeuralNetworkLayer(name="probe", input=["x"], output=["y"])
    getattr(spec, kind).SetInParent()
    round_trip = NeuralNetwork_pb2.NeuralNetworkLayer.FromString(spec.SerializeToString())
    assert round_trip.WhichOneof("layer") == kind
    context = LayerContext(where="m.mlmodel: neuralNetwork.layers[0](probe)", exact_shapes=True, spec_version=4)
    try:
        layer = cls(round_trip, context)
    except (SpecError, PipelineError) as error:
        assert "layers[0](probe)" in str(error.where)
    else:
        assert layer.inputs == ["x"] and layer.outputs == ["y"]


def test_call_enforces_float32_and_batch():
    class Bad(Layer):
        kind = "probe"

        def forward(self, x):
            return (x.astype(np.float64),)

    spec = NeuralNetwork_pb2.NeuralNetworkLayer(name="b", input=["x"], output=["y"])
    layer = Bad(spec, LayerContext(where="w", exact_shapes=True, spec_version=4))
    with pytest.raises(AssertionError, match="float32"):
        layer(np.zeros((2, 3), np.float32))


def test_table_lists_every_kind_once():
    table = layer_table()
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 158
    listed = [row.split("`")[1] for row in rows]
    assert sorted(listed) == sorted(KINDS)
    assert sum("| yes |" in row for row in rows) == len(LAYERS)
    assert f"runs {len(LAYERS)} of the 158" in table
