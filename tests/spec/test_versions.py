"""The layer -> minimum specificationVersion table, and the version requirements of features."""

from __future__ import annotations

import pytest

import pippin.spec as spec
from pippin.spec import NeuralNetwork_pb2
from pippin.spec.validate import NEWEST_VERSION, OS_RELEASES
from pippin.spec.validate.versions import layer_min_version, requirements

LAYER_KINDS = [f.name for f in NeuralNetwork_pb2.NeuralNetworkLayer.DESCRIPTOR.oneofs_by_name["layer"].fields]


def _layer(kind, n_inputs=1):
    layer = NeuralNetwork_pb2.NeuralNetworkLayer(name="l")
    getattr(layer, kind).SetInParent()
    layer.input.extend([f"x{i}" for i in range(n_inputs)])
    return layer


def test_every_layer_kind_has_a_version():
    assert len(LAYER_KINDS) == 158
    versions = {kind: layer_min_version(_layer(kind))[0] for kind in LAYER_KINDS}
    counts = {v: sum(1 for x in versions.values() if x == v) for v in range(1, 6)}
    # counted by hand from Utils.cpp isIOS12NeuralNetworkLayer: 36 Core ML 1 layers, custom (1.2),
    # resizeBilinear + cropResize (2), 8 Core ML 4 layers; the other 111 are Core ML 3
    assert counts == {1: 36, 2: 1, 3: 2, 4: 111, 5: 8}


@pytest.mark.parametrize("kind, version", [
    ("convolution", 1), ("innerProduct", 1), ("softmax", 1), ("activation", 1), ("pooling", 1),
    ("flatten", 1), ("batchnorm", 1), ("reshape", 1), ("custom", 2), ("resizeBilinear", 3),
    ("cropResize", 3), ("copy", 4), ("gelu", 4), ("softmaxND", 4), ("batchedMatmul", 4),
    ("reshapeStatic", 4), ("NonMaximumSuppression", 4), ("layerNormalization", 4), ("oneHot", 5),
    ("cumSum", 5), ("clampedReLU", 5), ("argSort", 5), ("pooling3d", 5), ("globalPooling3d", 5),
    ("sliceBySize", 5), ("convolution3d", 5),
])
def test_layer_versions(kind, version):
    assert layer_min_version(_layer(kind))[0] == version


def test_flags_that_raise_a_layer_version():
    conv = _layer("convolution", n_inputs=2)
    assert layer_min_version(conv)[0] == 4
    ip = _layer("innerProduct")
    ip.innerProduct.int8DynamicQuantize = True
    assert layer_min_version(ip)[0] == 5
    up = _layer("upsample")
    up.upsample.linearUpsampleMode = 1
    assert layer_min_version(up)[0] == 5
    up = _layer("upsample")
    up.upsample.fractionalScalingFactor.extend([1.5, 1.5])
    assert layer_min_version(up)[0] == 5
    shuffle = _layer("reorganizeData")
    shuffle.reorganizeData.mode = 2  # PIXEL_SHUFFLE
    assert layer_min_version(shuffle)[0] == 5
    fp16 = _layer("innerProduct")
    fp16.innerProduct.weights.float16Value = b"\x00\x3c" * 4
    assert layer_min_version(fp16) == (2, "float16 weights in innerProduct.weights")
    quant = _layer("convolution")
    quant.convolution.weights.rawValue = b"\x01\x02"
    quant.convolution.weights.quantization.numberOfBits = 8
    assert layer_min_version(quant)[0] == 3


def test_requirements_walk_pipeline_stages(valid_models):
    reqs = requirements(valid_models["sound_pipeline"]())
    paths = {path: v for v, path, _ in reqs}
    assert paths["isUpdatable"] == 4
    assert paths["pipelineClassifier.pipeline.models[0].soundAnalysisPreprocessing"] == 4
    assert paths["pipelineClassifier.pipeline.models[1].neuralNetworkClassifier.arrayInputShapeMapping"] == 4


def test_feature_versions(valid_models):
    model = valid_models["nn_plain"]()
    arr = model.description.input[0].type.multiArrayType
    arr.shapeRange.sizeRanges.add(lowerBound=1, upperBound=8)
    assert (3, "description.input[0]", "a flexible multi-array shape") in requirements(model)
    problems = spec.validate(model)
    assert [(p.path, p.rule) for p in problems] == [("description.input[0]", "spec-version")]
    model.specificationVersion = 3
    assert spec.validate(model) == []


def test_os_release_table_is_complete():
    assert sorted(OS_RELEASES) == list(range(1, NEWEST_VERSION + 1))
    assert OS_RELEASES[4]["iOS"] == "13.0" and OS_RELEASES[10]["macOS"] == "26.0"
    for releases in OS_RELEASES.values():
        assert {"iOS", "macOS", "watchOS", "tvOS"} <= set(releases)
