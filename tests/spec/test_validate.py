"""validate(): every valid model passes; each minimally broken one yields the expected
problem at the expected field path."""

from __future__ import annotations

import pytest

import pippin.spec as spec
from pippin.spec import Problem

FLOAT16, INT8, DOUBLE = 65552, 131080, 65600


@pytest.mark.parametrize("name", ["sound", "nn_classifier", "nn_plain", "nn_regressor", "knn",
                                  "recommender", "sound_pipeline", "linked"])
def test_valid_models_have_no_problems(valid_models, name):
    assert spec.validate(valid_models[name]()) == []


def _stage(m, i):
    return m.pipelineClassifier.pipeline.models[i]


def _set_version(v):
    def mutate(m):
        m.specificationVersion = v
    return mutate


def _add_layer(kind, inputs=("probs",), outputs=("extra",), name="extra"):
    def mutate(m):
        layer = m.neuralNetworkClassifier.layers.add()
        layer.name = name
        layer.input.extend(inputs)
        layer.output.extend(outputs)
        getattr(layer, kind).SetInParent()
    return mutate


def _nn(m):
    return m.neuralNetworkClassifier


CASES = [
    # rule, base model, mutation, expected path, message fragment
    ("spec-version", "sound", _set_version(0), "specificationVersion", "missing or corrupt"),
    ("spec-version", "sound", _set_version(11), "specificationVersion", "newer than any"),
    ("spec-version", "sound", _set_version(3), "soundAnalysisPreprocessing", ">= 4"),
    ("spec-version", "knn", _set_version(3), "kNearestNeighborsClassifier", ">= 4"),
    ("spec-version", "recommender", _set_version(2), "itemSimilarityRecommender", ">= 4"),
    ("spec-version", "linked", _set_version(1), "linkedModel", ">= 4"),
    ("spec-version", "nn_classifier", _set_version(3), "isUpdatable", ">= 4"),
    ("spec-version", "nn_plain", lambda m: m.neuralNetwork.layers.add().gelu.SetInParent(),
     "neuralNetwork.layers[1]()", "Core ML 3"),
    ("spec-version", "nn_plain", lambda m: (setattr(m, "specificationVersion", 4),
                                            m.neuralNetwork.layers.add().oneHot.SetInParent()),
     "neuralNetwork.layers[1]()", ">= 5"),
    ("spec-version", "sound_pipeline", _set_version(3), "pipelineClassifier.pipeline.models[0]"
     ".soundAnalysisPreprocessing", ">= 4"),
    ("feature-type", "nn_plain", lambda m: setattr(m.description.output[0].type.multiArrayType,
                                                   "dataType", FLOAT16),
     "description.output[0]", "FLOAT16"),
    ("feature-type", "nn_plain", lambda m: m.description.input[0].type.multiArrayType.ClearField("shape"),
     "description.input[0]", "no shape"),
    ("feature-type", "nn_plain", lambda m: m.description.input[0].type.multiArrayType.shape.append(-2),
     "description.input[0]", "negative dimension"),
    ("feature-type", "nn_plain", lambda m: setattr(m.description.input[0].type.multiArrayType,
                                                   "dataType", 7),
     "description.input[0]", "dataType 7"),
    ("feature-type", "knn", lambda m: m.description.output[0].type.dictionaryType.ClearField("stringKeyType"),
     "description.output[0]", "no key type"),
    ("feature-type", "nn_plain", lambda m: m.description.output[0].ClearField("type"),
     "description.output[0]", "has no type"),
    ("feature-name", "nn_plain", lambda m: setattr(m.description.input[0], "name", ""),
     "description.input[0]", "empty name"),
    ("feature-count", "nn_plain", lambda m: m.description.ClearField("output"),
     "description.output", "no outputs"),
    ("optional-output", "nn_plain", lambda m: setattr(m.description.output[0].type, "isOptional", True),
     "description.output[0]", "outputs cannot be optional"),
    ("optional-input", "knn", lambda m: setattr(m.description.input[0].type, "isOptional", True),
     "description.input[0]", "no optional inputs"),
    ("optional-input", "nn_plain", lambda m: setattr(m.description.input[0].type, "isOptional", True),
     "description.input", "at least one required input"),
    ("updatable", "recommender", lambda m: setattr(m, "isUpdatable", True), "isUpdatable",
     "cannot be updatable"),
    ("model-kind", "nn_plain", lambda m: m.ClearField("neuralNetwork"), "", "no type"),
    # pipelines
    ("pipeline-chain", "sound_pipeline",
     lambda m: setattr(_stage(m, 1).description.input[0], "name", "mel"),
     "pipelineClassifier.pipeline.models[1].description.input[0]", "'mel' is neither"),
    ("pipeline-types", "sound_pipeline",
     lambda m: setattr(_stage(m, 1).description.input[0].type.multiArrayType, "dataType", DOUBLE),
     "pipelineClassifier.pipeline.models[1].description.input[0]", "MultiArray<DOUBLE>[1, 96, 64]"),
    ("pipeline-chain", "sound_pipeline",
     lambda m: _stage(m, 1).description.input[0].type.multiArrayType.shape.__setitem__(1, 95),
     "pipelineClassifier.pipeline.models[1].description.input[0]", "stage 0 gives"),
    ("pipeline-chain", "sound_pipeline", lambda m: setattr(m.description.output[1], "name", "other"),
     "description.output[1]", "'other' is not produced"),
    ("pipeline-chain", "sound_pipeline", lambda m: m.pipelineClassifier.pipeline.ClearField("models"),
     "pipelineClassifier.pipeline.models", "no models"),
    ("pipeline-updatable", "sound_pipeline", lambda m: setattr(_stage(m, 0), "isUpdatable", True),
     "pipelineClassifier.pipeline.models[0].isUpdatable", "only the last stage"),
    ("pipeline-updatable", "sound_pipeline", lambda m: setattr(m, "isUpdatable", False),
     "pipelineClassifier.pipeline.models[1].isUpdatable", "inside a pipeline that is not"),
    ("classifier-outputs", "sound_pipeline", lambda m: setattr(m.description, "predictedFeatureName", "x"),
     "description.predictedFeatureName", "'x' is not an output"),
    ("pipeline-names", "sound_pipeline", lambda m: m.pipelineClassifier.pipeline.names.append("x"),
     "pipelineClassifier.pipeline.names", "3 stage names for 2 stages"),
    # neural network graph
    ("nn-graph", "nn_classifier", lambda m: _nn(m).layers[1].input.__setitem__(0, "nowhere"),
     "neuralNetworkClassifier.layers[1](softmax).input[0]", "'nowhere'"),
    ("nn-graph", "nn_classifier", _add_layer("softmax", inputs=("logits",), outputs=("probs",)),
     "neuralNetworkClassifier.layers[2](extra).output[0]", "already produced by 'softmax'"),
    ("nn-graph", "nn_plain", lambda m: m.neuralNetwork.ClearField("layers"), "neuralNetwork.layers",
     "no layers"),
    ("nn-outputs", "nn_plain", lambda m: setattr(m.description.output[0], "name", "z"),
     "description.output[0]", "'z' is not produced"),
    ("nn-outputs", "nn_classifier", lambda m: setattr(_nn(m), "labelProbabilityLayerName", "nope"),
     "neuralNetworkClassifier.labelProbabilityLayerName", "'nope'"),
    ("nn-layer", "nn_plain", lambda m: m.neuralNetwork.layers[0].input.append("x"),
     "neuralNetwork.layers[0](fc).input", "2 inputs, expected 1"),
    ("nn-layer", "nn_classifier", _add_layer("softmax", inputs=("probs",), outputs=("p2",), name="dense"),
     "neuralNetworkClassifier.layers[2](dense)", "also used by layers[0]"),
    ("nn-weights", "nn_plain", lambda m: m.neuralNetwork.layers[0].innerProduct.weights.floatValue.append(1.0),
     "neuralNetwork.layers[0](fc).innerProduct.weights", "9 values, expected 8"),
    ("nn-weights", "nn_classifier", lambda m: _nn(m).layers[0].innerProduct.bias.floatValue.append(1.0),
     "neuralNetworkClassifier.layers[0](dense).innerProduct.bias", "4 values, expected 3"),
    ("feature-type", "nn_plain", lambda m: (m.description.output[0].ClearField("type"),
                                            m.description.output[0].type.stringType.SetInParent()),
     "description.output[0]", "expected multiArrayType or imageType"),
    ("nn-inputs", "nn_plain", lambda m: m.description.input[0].type.multiArrayType.shape.append(2),
     "description.input[0]", "rank 1 or 3"),
    ("nn-shape-mapping", "nn_plain", lambda m: (setattr(m, "specificationVersion", 4),
                                                m.neuralNetwork.layers.add().gelu.SetInParent()),
     "neuralNetwork.arrayInputShapeMapping", "needs Core ML 3's EXACT_ARRAY_MAPPING"),
    ("nn-layer", "nn_plain", lambda m: _add_conv(m).convolution.ClearField("valid"),
     "neuralNetwork.layers[1](conv).convolution", "no padding type"),
    ("nn-weights", "nn_plain", lambda m: _add_conv(m).convolution.weights.floatValue.pop(),
     "neuralNetwork.layers[1](conv).convolution.weights", "1 values, expected 2"),
    ("nn-weights", "nn_plain", lambda m: setattr(_add_conv(m).convolution, "nGroups", 3),
     "neuralNetwork.layers[1](conv).convolution.nGroups", "not divisible by nGroups 3"),
    ("nn-layer", "nn_plain", lambda m: _add_pool(m).pooling.ClearField("valid"),
     "neuralNetwork.layers[1](pool).pooling", "no padding type"),
    ("regressor-outputs", "nn_regressor", lambda m: setattr(m.description, "predictedFeatureName", ""),
     "description.predictedFeatureName", "no predictedFeatureName"),
    ("regressor-outputs", "nn_regressor", lambda m: setattr(m.description, "predictedFeatureName", "q"),
     "description.predictedFeatureName", "'q' is not an output"),
    # classifier labels and outputs
    ("class-labels", "nn_classifier", lambda m: _nn(m).ClearField("stringClassLabels"),
     "neuralNetworkClassifier", "no class labels"),
    ("class-labels", "nn_classifier", lambda m: _nn(m).stringClassLabels.vector.append("yes"),
     "neuralNetworkClassifier.stringClassLabels", "repeat"),
    ("classifier-outputs", "nn_classifier", lambda m: setattr(m.description, "predictedFeatureName", ""),
     "description.predictedFeatureName", "no predictedFeatureName"),
    ("classifier-outputs", "nn_classifier", lambda m: setattr(m.description, "predictedFeatureName", "lbl"),
     "description.predictedFeatureName", "'lbl' is not an output"),
    ("classifier-outputs", "nn_classifier",
     lambda m: setattr(m.description, "predictedProbabilitiesName", "p"),
     "description.predictedProbabilitiesName", "'p' is not an output"),
    ("classifier-outputs", "nn_classifier",
     lambda m: (_nn(m).ClearField("stringClassLabels"), _nn(m).int64ClassLabels.vector.extend([1, 2, 3])),
     "description.output[1]", "expected int64Type"),
    # updatable networks
    ("updatable-layer", "nn_classifier", lambda m: setattr(_nn(m).layers[1], "isUpdatable", True),
     "neuralNetworkClassifier.layers[1](softmax).isUpdatable", "only innerProduct and convolution"),
    ("updatable-layer", "nn_classifier", lambda m: setattr(_nn(m).layers[0].innerProduct.weights,
                                                           "isUpdatable", False),
     "neuralNetworkClassifier.layers[0](dense).innerProduct.weights.isUpdatable", "not marked updatable"),
    ("updatable-layer", "nn_classifier", lambda m: setattr(_nn(m).layers[0], "isUpdatable", False),
     "neuralNetworkClassifier.layers", "no layer is marked updatable"),
    ("loss-layer", "nn_classifier", lambda m: _nn(m).updateParams.lossLayers.add().CopyFrom(
        _nn(m).updateParams.lossLayers[0]),
     "neuralNetworkClassifier.updateParams.lossLayers", "2 loss layers, expected exactly one"),
    ("loss-layer", "nn_classifier", lambda m: _nn(m).updateParams.ClearField("lossLayers"),
     "neuralNetworkClassifier.updateParams.lossLayers", "0 loss layers"),
    ("loss-layer", "nn_classifier",
     lambda m: setattr(_nn(m).updateParams.lossLayers[0].categoricalCrossEntropyLossLayer, "input", "logits"),
     "neuralNetworkClassifier.updateParams.lossLayers[0](loss).categoricalCrossEntropyLossLayer.input",
     "not the output of a softmax"),
    ("loss-layer", "nn_classifier",
     lambda m: setattr(_nn(m).updateParams.lossLayers[0].categoricalCrossEntropyLossLayer, "target", "logits"),
     "neuralNetworkClassifier.updateParams.lossLayers[0](loss).categoricalCrossEntropyLossLayer.target",
     "produced inside the network"),
    ("update-params", "nn_classifier",
     lambda m: setattr(_nn(m).updateParams.optimizer.sgdOptimizer.learningRate, "defaultValue", 2.0),
     "neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer.learningRate", "outside its allowed range"),
    ("update-params", "nn_classifier",
     lambda m: setattr(_nn(m).updateParams.optimizer.sgdOptimizer.miniBatchSize, "defaultValue", 16),
     "neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer.miniBatchSize", "not in its allowed set"),
    ("update-params", "nn_classifier",
     lambda m: _nn(m).updateParams.optimizer.sgdOptimizer.ClearField("miniBatchSize"),
     "neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer.miniBatchSize", "has no miniBatchSize"),
    ("update-params", "nn_classifier", lambda m: _nn(m).updateParams.ClearField("epochs"),
     "neuralNetworkClassifier.updateParams.epochs", "no epochs"),
    ("update-params", "nn_classifier",
     lambda m: (_nn(m).updateParams.epochs.ClearField("set"), setattr(_nn(m).updateParams.epochs,
                                                                      "defaultValue", 0)),
     "neuralNetworkClassifier.updateParams.epochs", "expected a positive value"),
    ("update-params", "nn_classifier", lambda m: _nn(m).updateParams.optimizer.ClearField("sgdOptimizer"),
     "neuralNetworkClassifier.updateParams.optimizer", "no optimizer"),
    ("training-inputs", "nn_classifier", lambda m: m.description.ClearField("trainingInput"),
     "description.trainingInput", "0 training inputs"),
    ("training-inputs", "nn_classifier", lambda m: setattr(m.description.trainingInput[1], "name", "y"),
     "description.trainingInput", "do not include the target 'label'"),
    ("training-inputs", "nn_classifier",
     lambda m: (m.description.trainingInput[1].ClearField("type"),
                m.description.trainingInput[1].type.int64Type.SetInParent()),
     "description.trainingInput[1]", "expected stringType"),
    ("backprop", "nn_classifier",
     lambda m: _insert_before_softmax(m, "floor"),
     "neuralNetworkClassifier.updateParams", "cannot back-propagate"),
    # k-NN
    ("knn-labels", "knn", lambda m: m.kNearestNeighborsClassifier.stringClassLabels.vector.append("no"),
     "kNearestNeighborsClassifier.nearestNeighborsIndex.floatSamples", "4 samples but 5 class labels"),
    ("knn-labels", "knn", lambda m: m.kNearestNeighborsClassifier.ClearField("stringClassLabels"),
     "kNearestNeighborsClassifier", "no default class label"),
    ("knn-index", "knn", lambda m: m.kNearestNeighborsClassifier.nearestNeighborsIndex.floatSamples[2].vector.append(0.0),
     "kNearestNeighborsClassifier.nearestNeighborsIndex.floatSamples[2]", "4 values, expected numberOfDimensions 3"),
    ("knn-index", "knn", lambda m: m.kNearestNeighborsClassifier.nearestNeighborsIndex.ClearField("linearIndex"),
     "kNearestNeighborsClassifier.nearestNeighborsIndex", "no index type"),
    ("knn-index", "knn",
     lambda m: m.kNearestNeighborsClassifier.nearestNeighborsIndex.singleKdTreeIndex.SetInParent(),
     "kNearestNeighborsClassifier.nearestNeighborsIndex.singleKdTreeIndex.leafSize", "leafSize is 0"),
    ("knn-index", "knn",
     lambda m: m.kNearestNeighborsClassifier.nearestNeighborsIndex.ClearField("squaredEuclideanDistance"),
     "kNearestNeighborsClassifier.nearestNeighborsIndex", "no distance function"),
    ("update-params", "knn", lambda m: setattr(m.kNearestNeighborsClassifier.numberOfNeighbors,
                                               "defaultValue", 9),
     "kNearestNeighborsClassifier.numberOfNeighbors", "outside its allowed range [1, 4]"),
    ("knn-params", "knn", lambda m: m.kNearestNeighborsClassifier.ClearField("uniformWeighting"),
     "kNearestNeighborsClassifier", "no weighting scheme"),
    ("knn-labels", "knn", lambda m: setattr(m.kNearestNeighborsClassifier, "defaultInt64Label", 3),
     "kNearestNeighborsClassifier.defaultInt64Label", "default label is int64"),
    # recommender
    ("recommender-ids", "recommender",
     lambda m: m.itemSimilarityRecommender.itemStringIds.vector.pop(),
     "itemSimilarityRecommender.itemStringIds", "2 item ids, but item index 2 is used"),
    ("recommender-ids", "recommender",
     lambda m: m.itemSimilarityRecommender.itemStringIds.vector.__setitem__(1, "a"),
     "itemSimilarityRecommender.itemStringIds", "not unique"),
    ("recommender-ids", "recommender",
     lambda m: m.itemSimilarityRecommender.itemInt64Ids.vector.extend([1, 2, 3]),
     "itemSimilarityRecommender", "expected only one"),
    ("recommender-io", "recommender",
     lambda m: setattr(m.itemSimilarityRecommender, "itemInputFeatureName", "basket"),
     "itemSimilarityRecommender.itemInputFeatureName", "'basket' is not a model input"),
    ("recommender-io", "recommender",
     lambda m: (m.description.input[1].ClearField("type"), m.description.input[1].type.doubleType.SetInParent()),
     "description.input[1]", "expected int64Type"),
    ("recommender-io", "recommender",
     lambda m: (m.itemSimilarityRecommender.ClearField("recommendedItemListOutputFeatureName"),
                m.itemSimilarityRecommender.ClearField("recommendedItemScoreOutputFeatureName")),
     "itemSimilarityRecommender", "no output named"),
    # sound
    ("sound-io", "sound", lambda m: m.description.input[0].type.multiArrayType.shape.__setitem__(0, 16000),
     "description.input[0]", "shape [16000], expected [15600]"),
    ("sound-io", "sound", lambda m: setattr(m.description.input[0].type.multiArrayType, "dataType", DOUBLE),
     "description.input[0]", "dataType DOUBLE, expected FLOAT32"),
    ("sound-io", "sound", lambda m: m.description.output[0].type.multiArrayType.shape.__setitem__(1, 95),
     "description.output[0]", "expected [1, 96, 64]"),
    ("sound-io", "sound", lambda m: setattr(m.description.output[0].type.multiArrayType, "dataType", DOUBLE),
     "description.output[0]", "expected FLOAT32"),
    ("sound-io", "sound", lambda m: m.description.output.add().CopyFrom(m.description.output[0]),
     "description.output", "2 outputs, expected exactly one"),
    ("sound-params", "sound", lambda m: m.soundAnalysisPreprocessing.ClearField("vggish"),
     "soundAnalysisPreprocessing", "no preprocessing type"),
    # linked
    ("linked-model", "linked", lambda m: m.linkedModel.linkedModelFile.linkedModelFileName.ClearField("defaultValue"),
     "linkedModel.linkedModelFile.linkedModelFileName", "empty"),
    ("linked-model", "linked", lambda m: setattr(m, "isUpdatable", True), "isUpdatable",
     "linkedModel cannot be updatable"),
]


def _add_conv(m):
    """A valid 1x1 convolution (1 -> 2 channels) on the plain network's input."""
    layer = m.neuralNetwork.layers.add(name="conv", input=["x"], output=["c"])
    conv = layer.convolution
    conv.outputChannels, conv.kernelChannels = 2, 1
    conv.kernelSize.extend([1, 1])
    conv.valid.SetInParent()
    conv.weights.floatValue.extend([1.0, -1.0])
    return layer


def _add_pool(m):
    layer = m.neuralNetwork.layers.add(name="pool", input=["x"], output=["p"])
    layer.pooling.kernelSize.extend([1, 1])
    layer.pooling.valid.SetInParent()
    return layer


def test_valid_convolution_and_pooling_pass(valid_models):
    model = valid_models["nn_plain"]()
    _add_conv(model)
    _add_pool(model)
    assert spec.validate(model) == []


def _insert_before_softmax(m, kind):
    """dense -> <kind> -> softmax: a layer that cannot back-propagate between update and loss."""
    nn = _nn(m)
    layer = nn.layers.add()
    layer.name = "blocker"
    layer.input.append("logits")
    layer.output.append("logits2")
    getattr(layer, kind).SetInParent()
    nn.layers[1].input[0] = "logits2"
    softmax = nn.layers[1]
    nn.layers.add().CopyFrom(softmax)
    del nn.layers[1]


def _case_id(case):
    return f"{case[0]}:{case[3] or 'model'}:{case[4]}"


@pytest.mark.parametrize("rule, base, mutate, path, fragment", CASES, ids=[_case_id(c) for c in CASES])
def test_broken_model_yields_the_expected_problem(valid_models, rule, base, mutate, path, fragment):
    model = valid_models[base]()
    assert spec.validate(model) == []
    mutate(model)
    problems = spec.validate(model)
    matching = [p for p in problems if p.path == path and p.rule == rule]
    assert matching, f"no {rule!r} problem at {path!r}; got {[str(p) for p in problems]}"
    assert any(fragment in p.message for p in matching), [p.message for p in matching]


def test_problem_is_a_frozen_dataclass():
    p = Problem("description.output[0]", "output 'x' is optional", "optional-output")
    assert str(p) == "description.output[0]: output 'x' is optional"
    assert p.to_dict() == {"path": "description.output[0]", "message": "output 'x' is optional",
                           "rule": "optional-output"}
    with pytest.raises(AttributeError):
        p.path = "other"


def test_validate_accepts_a_coremltools_message(coremltools_models):
    from coremltools.proto import Model_pb2 as ct_model_pb2

    theirs = ct_model_pb2.Model.FromString(coremltools_models["knn"])
    theirs.kNearestNeighborsClassifier.nearestNeighborsIndex.ClearField("linearIndex")
    assert [p.rule for p in spec.validate(theirs)] == ["knn-index"]


def test_validate_rejects_non_models():
    with pytest.raises(TypeError, match="takes a Model"):
        spec.validate("model.mlmodel")


def test_pipeline_classifier_may_omit_predicted_names(valid_models):
    model = valid_models["sound_pipeline"]()
    model.description.ClearField("predictedFeatureName")
    model.description.ClearField("predictedProbabilitiesName")
    assert spec.validate(model) == []
