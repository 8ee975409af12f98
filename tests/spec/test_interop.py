"""Interoperability with coremltools, both ways: their models load here with every field equal
and save back byte-identical; every model pippin writes parses with coremltools."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from google.protobuf.unknown_fields import UnknownFieldSet

import pippin.spec as spec

CT_NAMES = ["updatable_nn", "knn", "pipeline"]


def _fields(message):
    """A nested plain-Python view of a message from ``ListFields`` (field number, name, value)."""
    out = []
    for field, value in message.ListFields():
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                value = sorted((k, _fields(v) if hasattr(v, "ListFields") else v) for k, v in value.items())
            elif field.is_repeated:
                value = [_fields(v) for v in value]
            else:
                value = _fields(value)
        elif field.is_repeated:
            value = list(value)
        out.append((field.number, field.name, value))
    return out


@pytest.mark.parametrize("name", CT_NAMES)
def test_coremltools_models_load_with_every_field_equal(coremltools_models, name):
    from coremltools.proto import Model_pb2 as ct_model_pb2

    data = coremltools_models[name]
    theirs = ct_model_pb2.Model.FromString(data)
    ours = spec.loads(data)
    assert ours.SerializeToString() == theirs.SerializeToString() == data
    assert json_format.MessageToDict(ours) == json_format.MessageToDict(theirs)
    assert _fields(ours) == _fields(theirs)
    assert len(UnknownFieldSet(ours)) == 0  # every field is known to our schema


@pytest.mark.parametrize("name", CT_NAMES)
def test_coremltools_models_save_back_byte_identical(coremltools_models, tmp_path, name):
    data = coremltools_models[name]
    path = spec.save(spec.loads(data), tmp_path / f"{name}.mlmodel")
    assert path.read_bytes() == data


@pytest.mark.parametrize("name", CT_NAMES)
def test_coremltools_models_are_valid_and_described(coremltools_models, name):
    model = spec.loads(coremltools_models[name])
    assert spec.validate(model) == []
    info = spec.describe(model)
    assert info["kind"] == {"updatable_nn": "neuralNetworkClassifier", "knn": "kNearestNeighborsClassifier",
                            "pipeline": "pipelineClassifier"}[name]


def test_coremltools_updatable_nn_details(coremltools_models):
    info = spec.describe(spec.loads(coremltools_models["updatable_nn"]))
    assert info["updatable"] is True
    assert info["updatable_layers"] == ["dense1", "dense2"]
    assert info["layers"] == {"innerProduct": 2, "activation": 1, "softmax": 1}
    assert info["class_labels"] == ["a", "b", "c"]
    assert info["update"]["optimizer"]["type"] == "sgd"
    assert info["update"]["optimizer"]["learningRate"]["default"] == pytest.approx(0.01)
    assert info["update"]["epochs"]["default"] == 5
    assert [t["name"] for t in info["training_inputs"]] == ["features", "label"]


def test_coremltools_knn_details(coremltools_models):
    info = spec.describe(spec.loads(coremltools_models["knn"]))
    assert (info["n_samples"], info["n_dimensions"], info["k"]) == (6, 4, 3)
    assert info["class_labels"] == ["x", "y", "z"]


def test_coremltools_pipeline_stages(coremltools_models):
    info = spec.describe(spec.loads(coremltools_models["pipeline"]))
    assert [s["kind"] for s in info["stages"]] == ["neuralNetwork", "neuralNetworkClassifier"]
    assert info["stages"][1]["class_labels"] == ["u", "v", "w", "q"]


def test_every_model_pippin_writes_parses_with_coremltools(valid_models, tmp_path):
    ct_utils = pytest.importorskip("coremltools").utils
    from coremltools.proto import Model_pb2 as ct_model_pb2

    for name, build in valid_models.items():
        model = build()
        path = spec.save(model, tmp_path / f"{name}.mlmodel")
        theirs = ct_utils.load_spec(str(path))
        assert theirs.SerializeToString() == path.read_bytes(), name
        assert json_format.MessageToDict(theirs) == json_format.MessageToDict(model), name
        assert ct_model_pb2.Model.FromString(path.read_bytes()).WhichOneof("Type") == model.WhichOneof("Type")


def test_broken_model_written_by_pippin_still_parses_with_coremltools(valid_models, tmp_path):
    """A model that fails validation is still well-formed protobuf for coremltools."""
    ct_utils = pytest.importorskip("coremltools").utils
    model = valid_models["knn"]()
    model.kNearestNeighborsClassifier.stringClassLabels.vector.append("extra")
    assert spec.validate(model)
    path = spec.save(model, tmp_path / "broken.mlmodel")
    assert ct_utils.load_spec(str(path)).SerializeToString() == path.read_bytes()
