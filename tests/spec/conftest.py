"""Valid models of every kind pippin validates, built field by field, plus coremltools-built ones.

The hand-built models are written straight from the format's field names (no pippin
builder involved), so validator tests do not lean on the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from pippin.spec import Model

FLOAT32, DOUBLE, INT32 = 65568, 65600, 131104


def _array(feature, name, shape, dtype=FLOAT32):
    feature.name = name
    feature.type.multiArrayType.shape.extend(shape)
    feature.type.multiArrayType.dataType = dtype
    return feature


def sound_model() -> Model:
    m = Model()
    m.specificationVersion = 4
    m.soundAnalysisPreprocessing.vggish.SetInParent()
    _array(m.description.input.add(), "audioSamples", [15600])
    _array(m.description.output.add(), "preprocessed", [1, 96, 64])
    return m


def _classifier_outputs(m, labels=("yes", "no", "maybe")):
    out = m.description.output.add()
    out.name = "labelProbability"
    out.type.dictionaryType.stringKeyType.SetInParent()
    out = m.description.output.add()
    out.name = "label"
    out.type.stringType.SetInParent()
    m.description.predictedFeatureName = "label"
    m.description.predictedProbabilitiesName = "labelProbability"


def nn_classifier(*, updatable: bool = True, n_in: int = 8, input_name: str = "features",
                  shape=None) -> Model:
    """features[8] -> dense(8->3, updatable) -> softmax; CE loss, SGD, 2 epochs."""
    m = Model()
    m.specificationVersion = 4
    _array(m.description.input.add(), input_name, shape or [n_in])
    _classifier_outputs(m)
    nn = m.neuralNetworkClassifier
    nn.stringClassLabels.vector.extend(["yes", "no", "maybe"])
    nn.labelProbabilityLayerName = "probs"
    rng = np.random.default_rng(0)
    dense = nn.layers.add()
    dense.name = "dense"
    dense.input.append(input_name)
    dense.output.append("logits")
    ip = dense.innerProduct
    ip.inputChannels, ip.outputChannels, ip.hasBias = n_in, 3, True
    ip.weights.floatValue.extend(rng.standard_normal(3 * n_in).astype(np.float32).tolist())
    ip.bias.floatValue.extend([0.0, 0.0, 0.0])
    soft = nn.layers.add()
    soft.name = "softmax"
    soft.input.append("logits")
    soft.output.append("probs")
    soft.softmax.SetInParent()
    if updatable:
        m.isUpdatable = True
        dense.isUpdatable = True
        ip.weights.isUpdatable = True
        ip.bias.isUpdatable = True
        loss = nn.updateParams.lossLayers.add()
        loss.name = "loss"
        loss.categoricalCrossEntropyLossLayer.input = "probs"
        loss.categoricalCrossEntropyLossLayer.target = "label"
        sgd = nn.updateParams.optimizer.sgdOptimizer
        sgd.learningRate.defaultValue = 0.01
        sgd.learningRate.range.minValue, sgd.learningRate.range.maxValue = 0.0, 1.0
        sgd.miniBatchSize.defaultValue = 8
        sgd.miniBatchSize.set.values.extend([8])
        nn.updateParams.epochs.defaultValue = 2
        nn.updateParams.epochs.set.values.extend([2])
        m.description.trainingInput.add().CopyFrom(m.description.input[0])
        target = m.description.trainingInput.add()
        target.name = "label"
        target.type.stringType.SetInParent()
    return m


def nn_plain() -> Model:
    """x[4] -> innerProduct(4->2) -> y (a plain neuralNetwork)."""
    m = Model()
    m.specificationVersion = 1
    _array(m.description.input.add(), "x", [4])
    _array(m.description.output.add(), "y", [2])
    layer = m.neuralNetwork.layers.add()
    layer.name = "fc"
    layer.input.append("x")
    layer.output.append("y")
    layer.innerProduct.inputChannels, layer.innerProduct.outputChannels = 4, 2
    layer.innerProduct.weights.floatValue.extend([0.5] * 8)
    return m


def nn_regressor() -> Model:
    """The plain network as a neuralNetworkRegressor predicting ``y``."""
    m = nn_plain()
    m.neuralNetworkRegressor.layers.extend(m.neuralNetwork.layers)
    m.description.predictedFeatureName = "y"
    return m


def knn_model() -> Model:
    m = Model()
    m.specificationVersion = 4
    _array(m.description.input.add(), "features", [3])
    _classifier_outputs(m)
    knn = m.kNearestNeighborsClassifier
    knn.numberOfNeighbors.defaultValue = 2
    knn.numberOfNeighbors.range.minValue, knn.numberOfNeighbors.range.maxValue = 1, 4
    knn.uniformWeighting.SetInParent()
    index = knn.nearestNeighborsIndex
    index.numberOfDimensions = 3
    index.linearIndex.SetInParent()
    index.squaredEuclideanDistance.SetInParent()
    for i, label in enumerate(["yes", "no", "yes", "maybe"]):
        index.floatSamples.add().vector.extend([float(i), 1.0, -1.0])
        knn.stringClassLabels.vector.append(label)
    return m


def recommender_model() -> Model:
    m = Model()
    m.specificationVersion = 4
    item = m.description.input.add()
    item.name = "items"
    item.type.dictionaryType.stringKeyType.SetInParent()
    k = m.description.input.add()
    k.name = "k"
    k.type.int64Type.SetInParent()
    out = m.description.output.add()
    out.name = "recommendations"
    out.type.sequenceType.stringType.SetInParent()
    out = m.description.output.add()
    out.name = "scores"
    out.type.dictionaryType.stringKeyType.SetInParent()
    rec = m.itemSimilarityRecommender
    rec.itemStringIds.vector.extend(["a", "b", "c"])
    for i, j, s in [(0, 1, 0.5), (1, 2, 0.25), (2, 0, 0.75)]:
        entry = rec.itemItemSimilarities.add()
        entry.itemId = i
        conn = entry.similarItemList.add()
        conn.itemId, conn.similarityScore = j, s
    rec.itemInputFeatureName = "items"
    rec.numRecommendationsInputFeatureName = "k"
    rec.recommendedItemListOutputFeatureName = "recommendations"
    rec.recommendedItemScoreOutputFeatureName = "scores"
    return m


def sound_pipeline() -> Model:
    """audioSamples -> vggish -> preprocessed[1, 96, 64] -> updatable NN classifier."""
    m = Model()
    m.specificationVersion = 4
    m.isUpdatable = True
    _array(m.description.input.add(), "audioSamples", [15600])
    _classifier_outputs(m)
    pipe = m.pipelineClassifier.pipeline
    pipe.models.add().CopyFrom(sound_model())
    clf = nn_classifier(input_name="preprocessed", shape=[1, 96, 64], n_in=96 * 64)
    clf.neuralNetworkClassifier.arrayInputShapeMapping = 1  # EXACT_ARRAY_MAPPING
    pipe.models.add().CopyFrom(clf)
    pipe.names.extend(["preprocessing", "classifier"])
    m.description.trainingInput.add().CopyFrom(m.description.input[0])
    m.description.trainingInput.add().CopyFrom(clf.description.trainingInput[1])
    return m


def linked_model() -> Model:
    m = Model()
    m.specificationVersion = 4
    _array(m.description.input.add(), "x", [2])
    _array(m.description.output.add(), "y", [2])
    m.linkedModel.linkedModelFile.linkedModelFileName.defaultValue = "other.mlmodelc"
    return m


VALID = {
    "sound": sound_model,
    "nn_classifier": nn_classifier,
    "nn_plain": nn_plain,
    "nn_regressor": nn_regressor,
    "knn": knn_model,
    "recommender": recommender_model,
    "sound_pipeline": sound_pipeline,
    "linked": linked_model,
}


@pytest.fixture(scope="session")
def valid_models():
    """name -> a function returning a fresh valid Model of that kind."""
    return VALID


@pytest.fixture(scope="session")
def coremltools_models():
    """name -> serialized bytes of models built with coremltools (the interoperability oracle)."""
    pytest.importorskip("coremltools")
    return {name: build().SerializeToString() for name, build in _CT_BUILDERS.items()}


def _ct_updatable_nn():
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder, SgdParams

    rng = np.random.default_rng(0)
    b = NeuralNetworkBuilder([("features", datatypes.Array(8))], [("probs", None)], mode="classifier")
    b.add_inner_product("dense1", W=rng.standard_normal((6, 8)).astype(np.float32),
                        b=np.zeros(6, np.float32), input_channels=8, output_channels=6,
                        has_bias=True, input_name="features", output_name="h1")
    b.add_activation("relu1", "RELU", "h1", "h1r")
    b.add_inner_product("dense2", W=rng.standard_normal((3, 6)).astype(np.float32),
                        b=np.zeros(3, np.float32), input_channels=6, output_channels=3,
                        has_bias=True, input_name="h1r", output_name="logits")
    b.add_softmax("softmax", "logits", "probs")
    b.set_class_labels(["a", "b", "c"], predicted_feature_name="label", prediction_blob="probs")
    b.make_updatable(["dense1", "dense2"])
    b.set_categorical_cross_entropy_loss(name="loss", input="probs")
    b.set_sgd_optimizer(SgdParams(lr=0.01, batch=4))
    b.set_epochs(5)
    return b.spec


def _ct_knn():
    from coremltools.models.nearest_neighbors import KNearestNeighborsClassifierBuilder

    b = KNearestNeighborsClassifierBuilder(input_name="features", output_name="label",
                                           number_of_dimensions=4, default_class_label="none",
                                           number_of_neighbors=3)
    b.add_samples(np.random.default_rng(1).standard_normal((6, 4)), ["x", "y", "x", "z", "y", "x"])
    return b.spec


def _ct_pipeline():
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder
    from coremltools.models.pipeline import PipelineClassifier

    rng = np.random.default_rng(2)
    b1 = NeuralNetworkBuilder([("x", datatypes.Array(4))], [("h", datatypes.Array(4))])
    b1.add_inner_product("fc", W=rng.standard_normal((4, 4)).astype(np.float32), b=None,
                         input_channels=4, output_channels=4, has_bias=False,
                         input_name="x", output_name="h")
    b2 = NeuralNetworkBuilder([("h", datatypes.Array(4))], [("p", None)], mode="classifier")
    b2.add_softmax("sm", "h", "p")
    b2.set_class_labels(["u", "v", "w", "q"], predicted_feature_name="cls", prediction_blob="p")
    pipe = PipelineClassifier([("x", datatypes.Array(4))], ["u", "v", "w", "q"],
                              output_features=[("cls", datatypes.String()),
                                               ("p", datatypes.Dictionary(str))])
    pipe.add_model(b1.spec)
    pipe.add_model(b2.spec)
    return pipe.spec


_CT_BUILDERS = {"updatable_nn": _ct_updatable_nn, "knn": _ct_knn, "pipeline": _ct_pipeline}
